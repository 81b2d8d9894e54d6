//! Section 13 of API.md: Supabase Auth's own users (`auth.users`).
//!
//! `link_supabase_auth()` puts three triggers on auth.users (their one
//! function is `identity.supabase_auth_follow`, below) and backfills; from
//! then on every auth user with a confirmed email has the identity user of
//! the same id, whose email, phone, ban and deletion follow the auth row.
//! The flags come from `raw_app_meta_data` only (`core::supabase`).
//!
//! auth.users is trusted only as Supabase makes it: a plain table whose
//! owner and schema owner are a superuser or `supabase_auth_admin`, with
//! the column types identity reads (`auth_table`). The triggers fire in
//! Supabase Auth's own statements, as `supabase_auth_admin`, which has no
//! right in schema identity: the follower reads the auth row as the
//! table's owner (`spi::as_untrusted_owner`: row security off, every
//! setting its statement changed thrown away) and writes identity's rows
//! as identity's owner with `lock_timeout` 1 ms, each step in its own
//! subtransaction (`spi::attempt`): a deletion first (its tombstone
//! alone, so the user is refused even when the rest must wait), then a
//! ban, then email and phone, so one failing step never blocks another.
//! What fails is undone, reported as a WARNING and an audit row, and the
//! auth statement goes on: identity never fails or delays Supabase Auth.
//! A deletion or ban that could not be done is marked pending and retried
//! by the next follow of any auth user and by `link_supabase_auth()`.

use crate::api::{actor, users};
use crate::core::authz::{self, Subject};
use crate::core::claims::uuid_text;
use crate::core::ids::UserId;
use crate::core::supabase::{ban_step, flags_from_app_metadata, BanStep};
use crate::pg::error::{Pg, PgError, PgResult};
use crate::pg::fmgr::{Oid, RowEvent, RowOp};
use crate::pg::ids::{FromUuid, ToUuid};
use crate::pg::{gucs, spi};
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode, Uuid};
use serde_json::{json, Value};
use std::ffi::CStr;

/// The follower never waits on identity's row locks (the user's own open
/// transaction, an admin changing the user): 1 ms, then it gives up.
const FOLLOW_SETTINGS: &[(&CStr, &CStr)] = &[(c"lock_timeout", c"1ms")];

/// Link and unlink's DDL, without DROP ... IF EXISTS's NOTICEs.
const QUIET: &[(&CStr, &CStr)] = &[(c"client_min_messages", c"warning")];

/// Pending deletions and bans retried after each follow, at most.
const RETRIES_PER_FOLLOW: i64 = 4;

/// What caused a follow: a trigger's row event, the backfill, or the
/// retry of a pending step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Inserted,
    Updated,
    Deleted,
    Backfill,
    Retry,
}

impl Cause {
    const fn as_str(self) -> &'static str {
        match self {
            Cause::Inserted => "insert",
            Cause::Updated => "update",
            Cause::Deleted => "delete",
            Cause::Backfill => "backfill",
            Cause::Retry => "retry",
        }
    }
}

/// An auth.users row, the columns identity follows.
struct AuthRow {
    email: Option<String>,
    phone: Option<String>,
    confirmed: bool,
    app: Value,
    banned: bool,
    deleted: bool,
}

#[derive(Default)]
struct Counts {
    created: i64,
    unlinked: i64,
}

/// auth.users as identity follows it.
#[derive(Clone, Copy)]
struct AuthTable {
    rel: Oid,
    owner: Oid,
}

/// auth.users, or None on a database without it; Err (42501) when it is
/// not the table Supabase makes (a view, an owner or schema owner that is
/// neither a superuser nor supabase_auth_admin, columns of other types):
/// any role that may create a schema could otherwise have identity take
/// its rows as users.
fn auth_table() -> PgResult<Option<AuthTable>> {
    let Some(JsonB(v)) = spi::privileged(|| {
        spi::one_fresh::<JsonB>(
            include_str!("../../sql/queries/supabase_auth_table.sql"),
            &[],
        )
    })?
    else {
        return Ok(None);
    };
    let oid = |k: &str| Oid::from(v[k].as_i64().unwrap_or(0) as u32);
    let refused = |what: &'static str| {
        Err(authz::forbidden(what)
            .hint("auth.users must be Supabase Auth's: a table owned, with its schema, by a superuser or supabase_auth_admin")
            .pg_error())
    };
    if v["plain"] != json!(true) {
        return refused("auth.users is not a plain table");
    }
    if v["trusted"] != json!(true) {
        return refused("auth.users or schema auth is owned by an untrusted role");
    }
    if v["columns"] != json!(true) {
        return refused("auth.users does not have the columns identity reads, of their types");
    }
    Ok(Some(AuthTable {
        rel: oid("rel"),
        owner: oid("owner"),
    }))
}

fn no_auth_users() -> crate::pg::error::ErrorReport {
    crate::pg::error::ErrorReport::new(
        PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
        "auth.users does not exist",
        "identity",
    )
    .set_detail("not_configured")
    .set_hint(
        "link_supabase_auth is for a database where Supabase Auth keeps its users (schema auth)",
    )
}

/// The auth row of `id`, read as the table's owner; None when it is gone.
fn read_row(t: AuthTable, id: Uuid) -> PgResult<Option<AuthRow>> {
    let row = spi::as_untrusted_owner(t.owner, || {
        spi::one_fresh::<JsonB>(
            include_str!("../../sql/queries/supabase_auth_row.sql"),
            &[id.into()],
        )
    })?;
    Ok(row.map(|JsonB(v)| AuthRow {
        email: v["email"].as_str().map(str::to_owned),
        phone: v["phone"].as_str().map(str::to_owned),
        confirmed: v["confirmed"].as_bool().unwrap_or(false),
        app: v["app"].clone(),
        banned: v["banned"].as_bool().unwrap_or(false),
        deleted: v["deleted"].as_bool().unwrap_or(false),
    }))
}

/// User `id`'s organization (Some(None): a user of none), or None when
/// identity has no such user.
fn org_of(id: Uuid) -> PgResult<Option<Option<crate::core::ids::OrgId>>> {
    let row = spi::one_fresh::<JsonB>(
        "select pg_catalog.jsonb_build_object('org', organization_id) from identity.users \
         where id operator(pg_catalog.=) $1",
        &[id.into()],
    )?;
    Ok(row.map(|JsonB(v)| {
        v["org"]
            .as_str()
            .and_then(crate::core::claims::parse_uuid)
            .map(|b| Uuid::from_bytes(b).org_id())
    }))
}

/// Why a row cannot be taken: the follower's own refusals (the audit row
/// and the WARNING carry the text; never an email or a metadata value).
fn cannot(what: &'static str) -> crate::pg::error::ErrorReport {
    crate::core::error::IdentityError::invalid(what).pg_error()
}

/// A WARNING and an audit row (as system) for a step that failed; a
/// retry that fails again stays pending, unreported.
fn not_followed(id: Uuid, cause: Cause, step: &'static str, e: &spi::Caught) {
    if cause == Cause::Retry {
        return;
    }
    let text = uuid_text(id.as_bytes());
    pgrx::warning!(
        "identity: auth user {text} is not linked or not followed ({step}, {}): {}",
        e.sqlstate,
        e.message
    );
    // If even the audit row fails, the WARNING above stays the record, and
    // the auth statement goes on.
    let _ = spi::attempt(|| {
        spi::privileged(|| {
            actor::audit(
                &Subject::System,
                None,
                "supabase_auth.not_followed",
                "user",
                Some(&text),
                json!({"cause": cause.as_str(), "step": step, "sqlstate": e.sqlstate, "reason": e.message}),
            )
        })
    });
}

/// One step of a follow, as identity's owner, never waiting, in its own
/// subtransaction; None (reported) when it failed.
fn step<R>(
    id: Uuid,
    cause: Cause,
    name: &'static str,
    f: impl FnOnce() -> PgResult<R>,
) -> Option<R> {
    let owner = crate::pg::probe::schema_owner();
    match spi::attempt(|| spi::pinned_as(owner, FOLLOW_SETTINGS, f)) {
        Ok(r) => Some(r),
        Err(e) => {
            not_followed(id, cause, name, &e);
            None
        }
    }
}

/// Marks a linked user's deletion or ban as still to do (retried).
fn mark_pending(id: Uuid, cause: Cause) {
    step(id, cause, "pending", || {
        spi::run(
            "update identity.supabase_auth_users set pending = true where user_id operator(pg_catalog.=) $1",
            &[id.into()],
        )
    });
}

/// Brings identity's user `id` in step with its auth row (`row`; None:
/// deleted).
fn reconcile(id: Uuid, row: Option<AuthRow>, cause: Cause, counts: &mut Counts) {
    let Some(linked) = step(id, cause, "read", || {
        spi::one_fresh::<bool>(
            "select banned from identity.supabase_auth_users where user_id operator(pg_catalog.=) $1",
            &[id.into()],
        )
    }) else {
        return;
    };
    let row = match row {
        Some(r) if !r.deleted => r,
        // Deleted (soft or hard): the soft delete's email hash is never
        // followed. Only a linked user goes.
        _ => {
            if linked.is_some() {
                delete_linked(id, cause);
            }
            return;
        }
    };
    let by_ban = match linked {
        Some(b) => b,
        // An email not confirmed yet makes no user (an address anyone can
        // type would otherwise hold the email in identity): the update
        // that confirms it does.
        None if !row.confirmed || cause == Cause::Retry => return,
        None => {
            let made = step(id, cause, "link", || link_new(id, &row, cause, counts));
            if made.is_none() {
                counts.unlinked += 1;
                return;
            }
            false
        }
    };
    let active = step(id, cause, "read", || {
        spi::one_fresh::<String>(
            "select status from identity.users where id operator(pg_catalog.=) $1",
            &[id.into()],
        )
    });
    let Some(active) = active else { return };
    let bs = ban_step(row.banned, active.as_deref() == Some("active"), by_ban);
    if step(id, cause, "ban", || ban(id.user_id(), bs)).is_none() {
        mark_pending(id, cause);
    }
    if row.confirmed {
        step(id, cause, "email", || follow_contact(id, &row));
    }
}

/// The deletion of a linked user: its tombstone and the revocation of its
/// API tokens first, alone, then the deletion as delete_user does it; what
/// could not be done is pending.
fn delete_linked(id: Uuid, cause: Cause) {
    // Neither needs the user's row: the tombstone keeps the id from coming
    // back, the revocation refuses the user's API tokens from this commit
    // on even when the deletion itself must wait for the row.
    let tombstone = step(id, cause, "delete", || {
        spi::run(
            "insert into identity.deleted_users (id) values ($1) on conflict do nothing",
            &[id.into()],
        )?;
        spi::run(
            "update identity.api_tokens set revoked_at = pg_catalog.now() \
             where user_id operator(pg_catalog.=) $1 and revoked_at is null",
            &[id.into()],
        )
    });
    let done = step(id, cause, "delete", || {
        let deferred = match org_of(id)? {
            Some(org) => users::delete(&Subject::System, id.user_id(), org)?,
            None => false,
        };
        if !deferred {
            spi::run(
                "delete from identity.supabase_auth_users where user_id operator(pg_catalog.=) $1",
                &[id.into()],
            )?;
        }
        Ok(!deferred)
    });
    // A deletion delete_user had to defer (the user's own transaction held
    // their rows) stays pending until the row is gone.
    if tombstone.is_none() || done != Some(true) {
        mark_pending(id, cause);
    }
}

/// Email and phone follow the auth row (identity's other columns are
/// identity's own: update_user changes them).
fn follow_contact(id: Uuid, row: &AuthRow) -> PgResult<()> {
    if let Some(email) = &row.email {
        let changed = spi::write_one::<bool>(
            "update identity.users u set email = $2, updated_at = pg_catalog.now() \
             where u.id operator(pg_catalog.=) $1 and u.email operator(pg_catalog.<>) $2 returning true",
            &[id.into(), email.as_str().into()],
        )?;
        if changed.is_some() {
            users::audit_user(
                &Subject::System,
                org_of(id)?.flatten(),
                "user.updated",
                id.user_id(),
                json!({"fields": ["email"], "source": "supabase_auth"}),
            )?;
        }
    }
    spi::run(
        "update identity.users u set phone = $2, updated_at = pg_catalog.now() \
         where u.id operator(pg_catalog.=) $1 and u.phone is distinct from $2",
        &[id.into(), row.phone.as_deref().into()],
    )
}

/// The identity user of a new auth user: created with its app_metadata's
/// flags or, for the backfill only, an identity user of the same id and
/// email (any case) linked, never a service user nor a user any other
/// issuer signed in or provisioned (its identities). A
/// deleted identity user's id is never taken again.
fn link_new(id: Uuid, row: &AuthRow, cause: Cause, counts: &mut Counts) -> PgResult<()> {
    if spi::one_fresh::<bool>(
        "select true from identity.deleted_users where id operator(pg_catalog.=) $1",
        &[id.into()],
    )?
    .is_some()
    {
        return Err(cannot("the id belonged to a deleted identity user"));
    }
    let Some(email) = &row.email else {
        return Err(cannot("the auth user has no email"));
    };
    let same = spi::one_fresh::<bool>(
        "select pg_catalog.lower(u.email) operator(pg_catalog.=) pg_catalog.lower($2) \
                and not u.is_service_user and u.external_issuer is null \
                and not exists (select from identity.identities i where i.user_id operator(pg_catalog.=) u.id) \
         from identity.users u where u.id operator(pg_catalog.=) $1",
        &[id.into(), email.as_str().into()],
    )?;
    match same {
        Some(true) if cause == Cause::Backfill => {
            spi::run(
                "insert into identity.supabase_auth_users (user_id) values ($1)",
                &[id.into()],
            )?;
            return Ok(());
        }
        Some(_) => {
            return Err(cannot(
                "an identity user of this id exists (the backfill links one only of the same email, not a service user nor another issuer's)",
            ))
        }
        None => {}
    }
    let flags = flags_from_app_metadata(Some(&row.app)).map_err(cannot)?;
    let org = flags.organization_id.map(Uuid::from_bytes);
    spi::write_one::<bool>(
        include_str!("../../sql/queries/supabase_auth_create.sql"),
        &[
            id.into(),
            email.as_str().into(),
            row.phone.as_deref().into(),
            org.into(),
            flags.user_role.map(|r| r.as_str()).into(),
            flags.is_service_user.into(),
            flags.application_id.map(Uuid::from_bytes).into(),
            flags.application_name.as_deref().into(),
        ],
    )?;
    counts.created += 1;
    let uid = id.user_id();
    users::audit_user(
        &Subject::System,
        org.map(|o| o.org_id()),
        "user.created",
        uid,
        json!({"source": "supabase_auth", "is_service_user": flags.is_service_user,
               "user_role": flags.user_role.map(|r| r.as_str()).unwrap_or("user")}),
    )?;
    spi::event(
        "user.created",
        Some(id),
        org,
        json!({"user_id": uid.text(), "email": email, "is_service_user": flags.is_service_user,
               "source": "supabase_auth"}),
    )?;
    let trial_days = gucs::trial_days();
    if trial_days > 0 && !flags.is_service_user {
        spi::run(
            "insert into identity.subscriptions (user_id, plan, status, trial_ends_at) \
             values ($1, 'trial', 'trialing', pg_catalog.now() operator(pg_catalog.+) pg_catalog.make_interval(days => $2))",
            &[id.into(), trial_days.into()],
        )?;
    }
    Ok(())
}

/// A ban's step on a linked user, as suspend_user and reactivate_user do
/// it (audited as system, an event, tokens refused at once); clears a
/// pending mark.
fn ban(uid: UserId, step: BanStep) -> PgResult<()> {
    let id = uid.uuid();
    spi::run(
        "update identity.supabase_auth_users set pending = false where user_id operator(pg_catalog.=) $1 and pending",
        &[id.into()],
    )?;
    let (sql, action, reason): (&'static str, &'static str, Option<&str>) = match step {
        BanStep::Keep => return Ok(()),
        BanStep::Forget => {
            return spi::run(
                "update identity.supabase_auth_users set banned = false where user_id operator(pg_catalog.=) $1",
                &[id.into()],
            )
        }
        BanStep::Suspend => (
            "update identity.users u set status = 'suspended', status_reason = 'banned in Supabase Auth', \
                    tokens_valid_after = pg_catalog.now(), updated_at = pg_catalog.now() \
             where u.id operator(pg_catalog.=) $1 and u.status operator(pg_catalog.=) 'active' returning true",
            "user.suspended",
            Some("banned in Supabase Auth"),
        ),
        BanStep::Reactivate => (
            "update identity.users u set status = 'active', status_reason = null, updated_at = pg_catalog.now() \
             where u.id operator(pg_catalog.=) $1 and u.status operator(pg_catalog.=) 'suspended' returning true",
            "user.reactivated",
            None,
        ),
    };
    users::take_user_row(uid)?;
    if spi::write_one::<bool>(sql, &[id.into()])?.is_none() {
        return Ok(());
    }
    spi::run(
        "update identity.supabase_auth_users set banned = $2 where user_id operator(pg_catalog.=) $1",
        &[id.into(), (step == BanStep::Suspend).into()],
    )?;
    let org = org_of(id)?.flatten();
    users::audit_user(
        &Subject::System,
        org,
        action,
        uid,
        json!({"reason": reason, "source": "supabase_auth"}),
    )?;
    spi::event(
        action,
        Some(id),
        org.map(|o| o.uuid()),
        json!({"user_id": uid.text()}),
    )
}

/// One auth user followed: its row read, then reconciled step by step.
fn follow(id: Uuid, cause: Cause, t: AuthTable, counts: &mut Counts) {
    let row = match cause {
        Cause::Deleted => Ok(None),
        _ => spi::attempt(|| read_row(t, id)),
    };
    match row {
        Ok(row) => reconcile(id, row, cause, counts),
        Err(e) => not_followed(id, cause, "read", &e),
    }
}

/// Pending deletions and bans (a step that found the user's row busy),
/// a few at a time, in random order (one that keeps failing never starves
/// the others), each followed again from its auth row. No row lock is
/// held for them: a concurrent follow of the same user is never blocked
/// by a retry (each step takes its own locks, or gives up in 1 ms).
fn retry_pending(t: AuthTable, limit: i64, followed_now: Uuid) {
    let owner = crate::pg::probe::schema_owner();
    let ids = spi::attempt(|| {
        spi::pinned_as(owner, FOLLOW_SETTINGS, || {
            spi::column_mut::<Uuid>(
                "select l.user_id from identity.supabase_auth_users l \
                 where l.pending and l.user_id operator(pg_catalog.<>) $2 \
                 order by pg_catalog.random() limit $1",
                &[limit.into(), followed_now.into()],
            )
        })
    });
    for id in ids.unwrap_or_default() {
        follow(id, Cause::Retry, t, &mut Counts::default());
    }
}

/// The trigger on auth.users (identity.supabase_auth_follow).
fn followed(ev: RowEvent) {
    let t = match spi::attempt(auth_table) {
        Ok(Some(t)) if t.rel == ev.relation => t,
        Ok(_) => {
            pgrx::warning!("identity: supabase_auth_follow follows auth.users only");
            return;
        }
        Err(e) => {
            pgrx::warning!("identity: auth.users is not followed: {}", e.message);
            return;
        }
    };
    let Some(id) = ev.id else { return };
    let cause = match ev.op {
        RowOp::Insert => Cause::Inserted,
        RowOp::Update => Cause::Updated,
        RowOp::Delete => Cause::Deleted,
    };
    let id = Uuid::from_bytes(id);
    follow(id, cause, t, &mut Counts::default());
    retry_pending(t, RETRIES_PER_FOLLOW, id);
}

crate::v1_row_trigger!(identity_supabase_auth_follow, pg_finfo_identity_supabase_auth_follow => followed);

extension_sql!(
    r#"
CREATE FUNCTION identity.supabase_auth_follow() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'identity_supabase_auth_follow';
REVOKE ALL ON FUNCTION identity.supabase_auth_follow() FROM PUBLIC;
"#,
    name = "supabase_auth_follow",
    requires = ["schema"],
);

/// From now on identity.users follows auth.users; every auth user with a
/// confirmed email and without an identity user gets one (same id).
/// `{created, linked, unlinked}`: identity users made now, auth users
/// followed in all, auth users left unlinked (each with a WARNING). Links
/// whose auth row is gone are followed as deletions, pending steps retried.
/// System only; idempotent.
#[pg_extern(schema = "identity", volatile)]
fn link_supabase_auth() -> PgResult<JsonB> {
    let s = actor::subject()?;
    authz::require_system(&s, "only system may link Supabase Auth").pg()?;
    let t = auth_table()?.ok_or_else(no_auth_users)?;
    spi::privileged(|| {
        // DROP TRIGGER needs the table's owner's rights.
        let may = spi::one_fresh::<bool>(
            "select pg_catalog.pg_has_role($1, 'USAGE')",
            &[t.owner.into()],
        )?
        .unwrap_or(false);
        if !may {
            return Err(authz::forbidden("identity's owner may not manage triggers on auth.users")
                .hint("create the extension as a superuser (on Supabase: supabase_admin), or grant auth.users' owner to identity's owner")
                .pg_error());
        }
        Ok(())
    })?;
    spi::pinned_as(crate::pg::probe::schema_owner(), QUIET, || {
        spi::run(
            include_str!("../../sql/queries/supabase_auth_link.sql"),
            &[],
        )
    })?;
    let ids = spi::as_untrusted_owner(t.owner, || {
        spi::column_mut::<Uuid>("select u.id from only auth.users u order by u.id", &[])
    })?;
    let mut counts = Counts::default();
    for id in &ids {
        check_for_interrupts!();
        follow(*id, Cause::Backfill, t, &mut counts);
    }
    // Links whose auth row is gone (a deletion that could not be done).
    let gone = spi::privileged(|| {
        spi::column_mut::<Uuid>(
            "select l.user_id from identity.supabase_auth_users l \
             where l.user_id operator(pg_catalog.<>) all ($1::uuid[]) order by 1",
            &[ids.into()],
        )
    })?;
    for id in gone {
        check_for_interrupts!();
        follow(id, Cause::Deleted, t, &mut counts);
    }
    spi::privileged(|| {
        let linked = spi::one_fresh::<i64>(
            "select pg_catalog.count(*) from identity.supabase_auth_users",
            &[],
        )?
        .unwrap_or(0);
        let answer =
            json!({"created": counts.created, "linked": linked, "unlinked": counts.unlinked});
        actor::audit(
            &Subject::System,
            None,
            "supabase_auth.linked",
            "supabase_auth",
            None,
            answer.clone(),
        )?;
        Ok(JsonB(answer))
    })
}

/// Stops following auth.users: the triggers go, and so do the links (the
/// identity users stay, as they are). `{unlinked}`: links removed. System
/// only; idempotent.
#[pg_extern(schema = "identity", volatile)]
fn unlink_supabase_auth() -> PgResult<JsonB> {
    let s = actor::subject()?;
    authz::require_system(&s, "only system may unlink Supabase Auth").pg()?;
    let exists = spi::privileged(|| {
        spi::one_fresh::<bool>(
            "select pg_catalog.to_regclass('auth.users') is not null",
            &[],
        )
    })?
    .unwrap_or(false);
    if exists {
        spi::pinned_as(crate::pg::probe::schema_owner(), QUIET, || {
            spi::run(
                include_str!("../../sql/queries/supabase_auth_unlink.sql"),
                &[],
            )
        })?;
    }
    spi::privileged(|| {
        let n = spi::column_mut::<Uuid>(
            "delete from identity.supabase_auth_users returning user_id",
            &[],
        )?
        .len() as i64;
        let answer = json!({"unlinked": n});
        actor::audit(
            &Subject::System,
            None,
            "supabase_auth.unlinked",
            "supabase_auth",
            None,
            answer.clone(),
        )?;
        Ok(JsonB(answer))
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use crate::pg::spi;
    use pgrx::prelude::*;

    /// The follower's subtransaction: a failure inside it (here while
    /// switched to another role, as the follower is) undoes its writes and
    /// the role switch, and the caller's transaction goes on as itself; a
    /// success keeps its writes.
    #[pg_test]
    fn attempt_undoes_a_failure_and_keeps_a_success() {
        Spi::run("create table attempt_rows (n int)").unwrap();
        Spi::run("create role attempt_other nologin").unwrap();
        let me = Spi::get_one::<String>("select current_user::text").unwrap();
        let other = Spi::get_one::<crate::pg::fmgr::Oid>("select 'attempt_other'::regrole::oid")
            .unwrap()
            .unwrap();
        let failed = spi::attempt(|| {
            spi::run("insert into attempt_rows values (1)", &[])?;
            spi::pinned_as(other, &[], || {
                spi::run("select 1 / 0", &[]) // an ERROR, as the other role
            })
        });
        let caught = failed.unwrap_err();
        assert_eq!(caught.sqlstate, "22012");
        assert_eq!(
            Spi::get_one::<String>("select current_user::text").unwrap(),
            me
        );
        assert_eq!(
            Spi::get_one::<String>("select current_setting('search_path')").unwrap(),
            Spi::get_one::<String>("select reset_val from pg_settings where name = 'search_path'")
                .unwrap()
        );
        let kept = spi::attempt(|| spi::run("insert into attempt_rows values (2)", &[]));
        assert!(kept.is_ok());
        assert_eq!(
            Spi::get_one::<String>("select string_agg(n::text, ',') from attempt_rows").unwrap(),
            Some("2".into())
        );
    }
}
