//! Section 13 of API.md: Supabase Auth's own users (`auth.users`).
//!
//! `link_supabase_auth()` puts three triggers on auth.users (their one
//! function is `identity.supabase_auth_follow`, below) and backfills; from
//! then on every auth user has the identity user of the same id, whose
//! email, phone, ban and deletion follow the auth row. The flags come from
//! `raw_app_meta_data` only (`core::supabase`).
//!
//! The triggers fire in Supabase Auth's own statements, as
//! `supabase_auth_admin`, which has no right in schema identity: the
//! follower reads the auth row as the table's owner and writes identity's
//! rows as identity's owner (`spi::pinned_as`), with `lock_timeout` at
//! 1 ms, inside a subtransaction (`spi::attempt`). Whatever fails (an email
//! another identity user has, an organization that does not exist, a row
//! another transaction holds) is undone, reported as a WARNING and an audit
//! row, and the auth statement goes on: identity never fails or delays
//! Supabase Auth. Such a user is left unlinked (the hook treats it as
//! unknown) until `link_supabase_auth()` runs again.

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

/// What caused a follow: a trigger's row event, or the backfill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    Inserted,
    Updated,
    Deleted,
    Backfill,
}

impl Cause {
    const fn as_str(self) -> &'static str {
        match self {
            Cause::Inserted => "insert",
            Cause::Updated => "update",
            Cause::Deleted => "delete",
            Cause::Backfill => "backfill",
        }
    }
}

/// An auth.users row, the columns identity follows.
struct AuthRow {
    email: Option<String>,
    phone: Option<String>,
    app: Value,
    banned: bool,
    deleted: bool,
}

#[derive(Default)]
struct Counts {
    created: i64,
    linked: i64,
    unlinked: i64,
}

/// auth.users (its oid and owner), or None on a database without it.
fn auth_users() -> PgResult<Option<(Oid, Oid)>> {
    let owner = spi::privileged(|| {
        spi::one_fresh::<Oid>(
            "select c.relowner from pg_catalog.pg_class c \
             where c.oid operator(pg_catalog.=) pg_catalog.to_regclass('auth.users')",
            &[],
        )
    })?;
    let Some(owner) = owner else { return Ok(None) };
    let rel = spi::privileged(|| {
        spi::one_fresh::<Oid>("select pg_catalog.to_regclass('auth.users')::oid", &[])
    })?;
    Ok(rel.map(|r| (r, owner)))
}

fn no_auth_users() -> crate::pg::error::ErrorReport {
    crate::pg::error::ErrorReport::new(
        PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
        "auth.users does not exist",
        "identity",
    )
    .set_hint(
        "link_supabase_auth is for a database where Supabase Auth keeps its users (schema auth)",
    )
}

/// The auth row of `id`, read as the table's owner; None when it is gone.
fn read_row(owner: Oid, id: Uuid) -> PgResult<Option<AuthRow>> {
    let row = spi::pinned_as(owner, &[], || {
        spi::one_fresh::<JsonB>(
            include_str!("../../sql/queries/supabase_auth_row.sql"),
            &[id.into()],
        )
    })?;
    Ok(row.map(|JsonB(v)| AuthRow {
        email: v["email"].as_str().map(str::to_owned),
        phone: v["phone"].as_str().map(str::to_owned),
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

/// Why a row cannot be taken: the reconcile's own refusals (the audit row
/// and the WARNING carry the text; never an email or a metadata value).
fn cannot(what: &'static str) -> crate::pg::error::ErrorReport {
    crate::core::error::IdentityError::invalid(what).pg_error()
}

/// Brings identity's user `id` in step with its auth row (`row`; None:
/// deleted). Inside `spi::privileged`-like switch as identity's owner.
fn reconcile(id: Uuid, row: Option<AuthRow>, cause: Cause, counts: &mut Counts) -> PgResult<()> {
    let uid = id.user_id();
    let linked = spi::one_fresh::<bool>(
        "select banned from identity.supabase_auth_users where user_id operator(pg_catalog.=) $1",
        &[id.into()],
    )?;
    let row = match row {
        Some(r) if !r.deleted => r,
        // Deleted (soft or hard): the soft delete's email hash is never
        // followed. Only a linked user goes; the link goes with it.
        _ => {
            if linked.is_some() {
                if let Some(org) = org_of(id)? {
                    users::delete(&Subject::System, uid, org)?;
                }
                spi::run(
                    "delete from identity.supabase_auth_users where user_id operator(pg_catalog.=) $1",
                    &[id.into()],
                )?;
            }
            return Ok(());
        }
    };
    let by_ban = match linked {
        Some(b) => b,
        // Only an insert (at its commit) or the backfill links; an update
        // of an auth user identity did not take changes nothing.
        None if cause == Cause::Updated => return Ok(()),
        None => {
            link_new(id, &row, cause, counts)?;
            false
        }
    };
    // Email and phone follow the auth row (identity's other columns are
    // identity's own: update_user changes them).
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
                uid,
                json!({"fields": ["email"], "source": "supabase_auth"}),
            )?;
        }
    }
    spi::run(
        "update identity.users u set phone = $2, updated_at = pg_catalog.now() \
         where u.id operator(pg_catalog.=) $1 and u.phone is distinct from $2",
        &[id.into(), row.phone.as_deref().into()],
    )?;
    let active = spi::one_fresh::<String>(
        "select status from identity.users where id operator(pg_catalog.=) $1",
        &[id.into()],
    )?
    .is_some_and(|s| s == "active");
    ban(uid, ban_step(row.banned, active, by_ban))
}

/// The identity user of a new auth user: created with its app_metadata's
/// flags or, for the backfill only, an identity user of the same id
/// linked. A deleted identity user's id is never taken again.
fn link_new(id: Uuid, row: &AuthRow, cause: Cause, counts: &mut Counts) -> PgResult<()> {
    if spi::one_fresh::<bool>(
        "select true from identity.deleted_users where id operator(pg_catalog.=) $1",
        &[id.into()],
    )?
    .is_some()
    {
        return Err(cannot("the id belonged to a deleted identity user"));
    }
    let exists = spi::one_fresh::<bool>(
        "select true from identity.users where id operator(pg_catalog.=) $1",
        &[id.into()],
    )?
    .is_some();
    if exists {
        if cause != Cause::Backfill {
            return Err(cannot("an identity user with this id exists"));
        }
        spi::run(
            "insert into identity.supabase_auth_users (user_id) values ($1)",
            &[id.into()],
        )?;
        counts.linked += 1;
        return Ok(());
    }
    let Some(email) = &row.email else {
        return Err(cannot("the auth user has no email"));
    };
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
    let org_id = org.map(|o| o.org_id());
    users::audit_user(
        &Subject::System,
        org_id,
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
/// it (audited as system, an event, tokens refused at once).
fn ban(uid: UserId, step: BanStep) -> PgResult<()> {
    let id = uid.uuid();
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

/// One auth user followed: read, reconciled, all in a subtransaction;
/// on failure undone, a WARNING and an audit row, never an error.
fn follow(id: Uuid, cause: Cause, auth_owner: Oid, counts: &mut Counts) {
    let done = spi::attempt(|| {
        let row = match cause {
            Cause::Deleted => None,
            _ => read_row(auth_owner, id)?,
        };
        let owner = crate::pg::probe::schema_owner();
        spi::pinned_as(owner, FOLLOW_SETTINGS, || reconcile(id, row, cause, counts))
    });
    if let Err(e) = done {
        counts.unlinked += 1;
        let text = uuid_text(id.as_bytes());
        pgrx::warning!(
            "identity: auth user {text} is not linked or not followed ({}): {}",
            e.sqlstate,
            e.message
        );
        // The audit row is the follower's own: if even it fails, the
        // WARNING above stays the record, and the auth statement goes on.
        let _ = spi::attempt(|| {
            spi::privileged(|| {
                actor::audit(
                    &Subject::System,
                    None,
                    "supabase_auth.not_followed",
                    "user",
                    Some(&text),
                    json!({"cause": cause.as_str(), "sqlstate": e.sqlstate, "reason": e.message}),
                )
            })
        });
    }
}

/// The trigger on auth.users (identity.supabase_auth_follow).
fn followed(ev: RowEvent) {
    let Ok(Some((rel, owner))) = auth_users() else {
        pgrx::warning!("identity: supabase_auth_follow fires only on auth.users");
        return;
    };
    if ev.relation != rel {
        pgrx::warning!("identity: supabase_auth_follow fires only on auth.users");
        return;
    }
    let Some(id) = ev.id else { return };
    let cause = match ev.op {
        RowOp::Insert => Cause::Inserted,
        RowOp::Update => Cause::Updated,
        RowOp::Delete => Cause::Deleted,
    };
    follow(Uuid::from_bytes(id), cause, owner, &mut Counts::default());
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

/// From now on identity.users follows auth.users; every auth user without
/// an identity user gets one (same id). `{created, linked, unlinked}`:
/// identity users made now, auth users followed in all, auth users left
/// unlinked (each with a WARNING). System only; idempotent (a second call
/// also follows what the triggers could not).
#[pg_extern(schema = "identity", volatile)]
fn link_supabase_auth() -> PgResult<JsonB> {
    let s = actor::subject()?;
    authz::require_system(&s, "only system may link Supabase Auth").pg()?;
    let (rel, auth_owner) = auth_users()?.ok_or_else(no_auth_users)?;
    spi::privileged(|| {
        let may = spi::one_fresh::<bool>(
            "select pg_catalog.has_table_privilege($1, 'TRIGGER') and pg_catalog.has_table_privilege($1, 'SELECT')",
            &[rel.into()],
        )?
        .unwrap_or(false);
        if !may {
            return Err(authz::forbidden("identity's owner may not put a trigger on auth.users")
                .hint("grant trigger, select on auth.users to the owner of schema identity (or make it the table's owner)")
                .pg_error());
        }
        Ok(())
    })?;
    // The DROP ... IF EXISTS of a first link would NOTICE.
    spi::pinned_as(crate::pg::probe::schema_owner(), QUIET, || {
        spi::run(
            include_str!("../../sql/queries/supabase_auth_link.sql"),
            &[],
        )
    })?;
    let ids = spi::pinned_as(auth_owner, &[], || {
        spi::column_mut::<Uuid>("select u.id from auth.users u order by u.id", &[])
    })?;
    let mut counts = Counts::default();
    for id in ids {
        check_for_interrupts!();
        follow(id, Cause::Backfill, auth_owner, &mut counts);
    }
    let (linked, answer) = spi::privileged(|| -> PgResult<(i64, Value)> {
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
        Ok((linked, answer))
    })?;
    let _ = linked;
    Ok(JsonB(answer))
}

/// Stops following auth.users: the triggers go, and so do the links (the
/// identity users stay, as they are). `{unlinked}`: links removed. System
/// only; idempotent.
#[pg_extern(schema = "identity", volatile)]
fn unlink_supabase_auth() -> PgResult<JsonB> {
    let s = actor::subject()?;
    authz::require_system(&s, "only system may unlink Supabase Auth").pg()?;
    let exists = auth_users()?.is_some();
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
