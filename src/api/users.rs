//! Section 6 of API.md: organizations, users, service users.
//!
//! Every function resolves the actor first (`actor::subject`: the claims'
//! user as the tables describe them, or system for the admin grant level),
//! decides with `core::authz`, and only then reads and writes, inside
//! `spi::privileged` (table owner, pinned search_path). A target the actor
//! may not see is P0002, the same answer as for an id that does not exist.
//! Every change writes one audit row; lifecycle changes also write an event
//! (identity.events + NOTIFY identity_events on commit).

use crate::api::actor;
use crate::api::{flags, session_tokens, tokens};
use crate::core::authz::{self, FieldClass, Relation, Subject};
use crate::core::claims::{uuid_bytes, uuid_text};
use crate::core::error::{required, IdentityError, Kind};
use crate::core::ids::{OrgId, UserId};
use crate::core::users::{self as rules, check_email, check_name};
use crate::pg::error::PgResult;
use crate::pg::error::{Pg, PgError};
use crate::pg::ids::{FromUuid, ToUuid};
use crate::pg::jsonb::RawJsonb;
use crate::pg::{gucs, spi};
use crate::store::tables;
use pgrx::prelude::*;
use pgrx::{JsonB, Uuid};
use serde_json::{json, Value};

/// The user shape of API.md section 10, from a row aliased `u`.
macro_rules! user_json {
    () => {
        "jsonb_build_object('id', u.id, 'email', u.email, 'external_id', u.external_id, \
           'first_name', u.first_name, 'last_name', u.last_name, 'organization_id', u.organization_id, \
           'user_role', u.user_role, 'is_service_user', u.is_service_user, 'status', u.status, \
           'application_id', u.application_id, 'application_name', u.application_name, \
           'description', u.description, 'created_by', u.created_by, 'created_by_name', u.created_by_name, \
           'created_at', u.created_at, 'updated_at', u.updated_at, 'metadata', u.metadata, 'phone', u.phone)"
    };
}

/// An API token made at provisioning lives this long (as create_api_token's default).
const FIRST_TOKEN_SECONDS: i64 = 90 * 86_400;

fn duplicate(message: &'static str) -> IdentityError {
    IdentityError::duplicate(message)
}

/// P0002 unless organization `org` exists.
fn require_org(org: Uuid) -> PgResult<()> {
    match spi::one::<bool>(
        "select true from identity.organizations where id = $1",
        &[org.into()],
    )? {
        Some(_) => Ok(()),
        None => Err(authz::not_found("organization does not exist").pg_error()),
    }
}

fn uuid(id: impl ToUuid) -> Uuid {
    id.uuid()
}

fn id_of(v: &Value) -> UserId {
    UserId(
        v["id"]
            .as_str()
            .and_then(uuid_bytes)
            .expect("a user row has an id"),
    )
}

pub fn user_json(id: UserId) -> PgResult<Value> {
    let row = spi::one::<JsonB>(
        concat!(
            "select ",
            user_json!(),
            " from identity.users u where u.id = $1"
        ),
        &[uuid(id).into()],
    )?;
    row.map(|j| j.0)
        .ok_or_else(|| authz::not_found("user does not exist").pg_error())
}

/// Takes user `id`'s row for an admin's change (update_user, suspend,
/// reactivate, delete) without waiting: a user's own open transaction must
/// never delay an admin's action on them. Credential changes no longer lock
/// the user's row (a row of identity.mutexes serializes them, `credentials::lock_owner`)
/// and foreign-key share locks do not conflict with this one, so the row is
/// free unless another transaction is itself changing the user; then the
/// answer is 55P03 at once ("retry"), never an indefinite wait.
/// P0002 for a user whose deletion was deferred (its tombstone is in
/// identity.deleted_users while its own transaction held its rows): only
/// the next delete_user may touch it, so no update_user or reactivation
/// brings a deleted user back.
fn refuse_if_deleted(id: UserId) -> PgResult<()> {
    let deleted = spi::one::<bool>(
        "select exists (select from identity.deleted_users d where d.id operator(pg_catalog.=) $1)",
        &[uuid(id).into()],
    )?
    .unwrap_or(false);
    if deleted {
        return Err(authz::not_found("user does not exist").pg_error());
    }
    Ok(())
}

pub(crate) fn take_user_row(id: UserId) -> PgResult<()> {
    let got = spi::column_mut::<bool>(
        "select true from identity.users where id = $1 for no key update skip locked",
        &[uuid(id).into()],
    )?;
    if got.is_empty() {
        return Err(IdentityError::new(
            Kind::Busy,
            "the user is being changed by another transaction",
        )
        .hint("retry when it has ended")
        .pg_error());
    }
    Ok(())
}

pub(crate) fn audit_user(
    s: &Subject,
    org: Option<OrgId>,
    action: &'static str,
    id: UserId,
    details: Value,
) -> PgResult<()> {
    actor::audit(s, org, action, "user", Some(&id.text()), details)
}

/// A new organization (system only). Returns its id.
#[pg_extern(schema = "identity", volatile)]
fn create_organization(name: Option<&str>) -> PgResult<Uuid> {
    let s = actor::subject()?;
    authz::require_system(&s, "only system may create organizations").pg()?;
    let name = required(name, "name is required").pg()?;
    check_name(Some(name), "name must be 1 to 200 characters", 200).pg()?;
    spi::privileged(|| {
        let id = spi::write_one::<Uuid>(
            "insert into identity.organizations (name) values ($1) returning id",
            &[name.into()],
        )?
        .expect("INSERT ... RETURNING returns a row");
        actor::audit(
            &s,
            Some(id.org_id()),
            "organization.created",
            "organization",
            Some(&uuid_text(id.as_bytes())),
            json!({"name": name}),
        )?;
        spi::event(
            "organization.created",
            None,
            Some(id),
            json!({"organization_id": uuid_text(id.as_bytes()), "name": name}),
        )?;
        Ok(id)
    })
}

/// Creates the user of an identity provider's `external_id` once; a repeat
/// call (also a concurrent one) returns the same user with `created` false
/// and no token. System only.
#[pg_extern(schema = "identity", volatile)]
fn provision_user(
    external_id: Option<&str>,
    email: Option<&str>,
    first_name: default!(Option<&str>, "NULL"),
    last_name: default!(Option<&str>, "NULL"),
    organization_id: default!(Option<Uuid>, "NULL"),
    user_id: default!(Option<Uuid>, "NULL"),
) -> PgResult<JsonB> {
    let s = actor::subject()?;
    authz::require_system(&s, "only system may provision users").pg()?;
    let external_id = required(external_id, "external_id is required").pg()?;
    check_name(
        Some(external_id),
        "external_id must be 1 to 255 characters",
        255,
    )
    .pg()?;
    let email = required(email, "email is required").pg()?;
    check_email(email).pg()?;
    check_name(first_name, "first_name must be 1 to 200 characters", 200).pg()?;
    check_name(last_name, "last_name must be 1 to 200 characters", 200).pg()?;
    spi::privileged(|| {
        provision(
            &s,
            Provisioned {
                external_id: Some(external_id),
                email,
                first_name,
                last_name,
                organization_id,
                user_id,
                issuer: None,
            },
        )
        .map(JsonB)
    })
}

/// Sets (or, with NULL, clears) an organization's external id: the
/// identity provider's id of it (Clerk's `org_...`), and the registered
/// `issuer` it is an id of: only that issuer's organization claim path
/// (e.g. `o.id`) places users here (with no issuer, no claim does). System
/// only; audited.
#[pg_extern(schema = "identity", volatile)]
fn set_organization_external_id(
    organization_id: Option<Uuid>,
    external_id: Option<&str>,
    issuer: default!(Option<&str>, "NULL"),
) -> PgResult<()> {
    let s = actor::subject()?;
    authz::require_system(&s, "only system may change organizations").pg()?;
    let org = required(organization_id, "organization_id is required").pg()?;
    check_name(external_id, "external_id must be 1 to 255 characters", 255).pg()?;
    if let Some(iss) = issuer {
        crate::core::external::check_issuer(iss).pg()?;
        if external_id.is_none() {
            return Err(IdentityError::invalid("an issuer needs an external_id")
                .hint("NULL external_id clears the organization's id and its issuer")
                .pg_error());
        }
    }
    spi::privileged(|| {
        require_org(org)?;
        if let Some(iss) = issuer {
            let known = spi::one::<bool>(
                "select true from identity.issuers where issuer = $1",
                &[iss.into()],
            )?;
            if known.is_none() {
                return Err(authz::not_found("issuer is not registered")
                    .hint("identity.register_issuer first")
                    .pg_error());
            }
        }
        let taken = match external_id {
            Some(x) => spi::one::<bool>(
                "select true from identity.organizations where external_id = $1 and id <> $2",
                &[x.into(), org.into()],
            )?
            .is_some(),
            None => false,
        };
        if taken {
            return Err(
                duplicate("an organization with this external_id already exists").pg_error(),
            );
        }
        spi::run(
            "update identity.organizations set external_id = $2, external_issuer = $3, \
             updated_at = now() where id = $1",
            &[org.into(), external_id.into(), issuer.into()],
        )?;
        actor::audit(
            &s,
            Some(org.org_id()),
            "organization.updated",
            "organization",
            Some(&uuid_text(org.as_bytes())),
            json!({"external_id": external_id, "issuer": issuer}),
        )
    })
}

/// What a provisioning creates a user from: provision_user's arguments, or
/// an external issuer's token or webhook (`issuer`, recorded in the audit
/// row and the event, and as the user's external_issuer; `external_id` then
/// the subject, or None).
pub struct Provisioned<'a> {
    pub external_id: Option<&'a str>,
    pub email: &'a str,
    pub first_name: Option<&'a str>,
    pub last_name: Option<&'a str>,
    pub organization_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub issuer: Option<&'a str>,
}

/// provision_user's work, for a caller already authorised, inside
/// `spi::privileged`, arguments checked: the user (or, for an external_id
/// already provisioned, that user with `created` false), a first API token,
/// a trial, a credential request, `user.created`; answers
/// `{user, api_token, created}`.
pub fn provision(s: &Subject, p: Provisioned) -> PgResult<Value> {
    let Provisioned {
        external_id,
        email,
        first_name,
        last_name,
        organization_id,
        user_id,
        issuer,
    } = p;
    if let Some(org) = organization_id {
        require_org(org)?;
    }
    if let Some(id) = user_id {
        if spi::one::<bool>(
            "select true from identity.deleted_users where id = $1",
            &[id.into()],
        )?
        .is_some()
        {
            return Err(duplicate("user id belonged to a deleted user")
                .hint("ids of deleted users are never reused")
                .pg_error());
        }
    }
    // ON CONFLICT DO NOTHING on every unique index: a concurrent
    // provisioner of the same external_id waits for the first, then
    // finds its row below.
    let inserted = spi::write_one::<JsonB>(
        concat!(
            include_str!("../../sql/queries/users_provision_user.sql"),
            user_json!()
        ),
        &[
            user_id.into(),
            email.into(),
            external_id.into(),
            first_name.into(),
            last_name.into(),
            organization_id.into(),
            issuer.filter(|_| external_id.is_some()).into(),
        ],
    )?;
    let Some(JsonB(user)) = inserted else {
        // The user of this external_id: for provision_user (system), any;
        // for an issuer, only its own (never another issuer's user, nor
        // provision_user's: linking those is match_external_id's, before).
        let existing = match external_id {
            Some(x) => spi::one::<JsonB>(
                concat!(
                    "select ",
                    user_json!(),
                    " from identity.users u where u.external_id = $1 \
                      and ($2::text is null or u.external_issuer = $2)"
                ),
                &[x.into(), issuer.into()],
            )?,
            None => None,
        };
        if let Some(JsonB(user)) = existing {
            return Ok(json!({"user": user, "api_token": null, "created": false}));
        }
        if let (Some(x), Some(_)) = (external_id, issuer) {
            let taken = spi::one::<bool>(
                "select true from identity.users where external_id = $1",
                &[x.into()],
            )?;
            if taken.is_some() {
                return Err(duplicate("a user with this external_id already exists")
                    .hint("the subject is another issuer's user, or provision_user's")
                    .pg_error());
            }
        }
        let email_taken = spi::one::<bool>(
            "select true from identity.users where lower(email) = lower($1)",
            &[email.into()],
        )?;
        return Err(if email_taken.is_some() {
            duplicate("a user with this email already exists")
                .hint("emails are unique regardless of case")
        } else {
            duplicate("a user with this id already exists")
        }
        .pg_error());
    };
    let id = id_of(&user);
    let (token_id, token, _) =
        tokens::issue(uuid(id), "default", Some(FIRST_TOKEN_SECONDS), &[], None)?;
    let trial_days = gucs::trial_days();
    if trial_days > 0 {
        spi::run(
            "insert into identity.subscriptions (user_id, plan, status, trial_ends_at) \
             values ($1, 'trial', 'trialing', now() + make_interval(days => $2))",
            &[uuid(id).into(), trial_days.into()],
        )?;
    }
    let org = organization_id;
    let mut details = json!({"external_id": external_id, "api_token_id": uuid_text(token_id.as_bytes()), "trial_days": trial_days});
    let mut payload = json!({"user_id": id.text(), "external_id": external_id, "email": email, "is_service_user": false});
    if let Some(iss) = issuer {
        details["issuer"] = json!(iss);
        payload["issuer"] = json!(iss);
    }
    audit_user(s, org.map(|o| o.org_id()), "user.provisioned", id, details)?;
    spi::event("user.created", Some(uuid(id)), org, payload)?;
    spi::event(
        "credential.requested",
        Some(uuid(id)),
        org,
        json!({"user_id": id.text(), "kind": "system", "reason": "provisioned"}),
    )?;
    Ok(json!({"user": user, "api_token": token, "created": true}))
}

/// A service user in `organization_id` (org admin of it, or system), with
/// its first API token shown once. Records who created it.
#[pg_extern(schema = "identity", volatile)]
fn create_service_user(
    email: Option<&str>,
    organization_id: Option<Uuid>,
    application_id: default!(Option<Uuid>, "NULL"),
    application_name: default!(Option<&str>, "NULL"),
    description: default!(Option<&str>, "NULL"),
) -> Result<
    TableIterator<'static, (name!(user_id, Uuid), name!(token, String))>,
    crate::pg::error::ErrorReport,
> {
    let s = actor::subject()?;
    authz::require_scope(&s, "users:write").pg()?;
    let org = required(organization_id, "organization_id is required").pg()?;
    authz::may_create_service_user(&s, authz::OrgId(*org.as_bytes())).pg()?;
    let email = required(email, "email is required").pg()?;
    check_email(email).pg()?;
    check_name(
        application_name,
        "application_name must be 1 to 200 characters",
        200,
    )
    .pg()?;
    check_name(
        description,
        "description must be 1 to 2000 characters",
        2000,
    )
    .pg()?;
    spi::privileged(|| {
        require_org(org)?;
        let creator_name = match s.id() {
            None => spi::one::<String>("select 'system (' || session_user || ')'", &[])?,
            Some(me) => spi::one::<String>(
                "select coalesce(nullif(concat_ws(' ', first_name, last_name), ''), email) from identity.users where id = $1",
                &[uuid(me).into()],
            )?,
        };
        let id = spi::write_one::<Uuid>(
            include_str!("../../sql/queries/users_create_service_user.sql"),
            &[
                email.into(),
                org.into(),
                application_id.into(),
                application_name.into(),
                description.into(),
                s.id().map(uuid).into(),
                creator_name.into(),
            ],
        )?
        .ok_or_else(|| {
            duplicate("a user with this email already exists")
                .hint("emails are unique regardless of case")
        })
        .pg()?;
        let (token_id, token, _) =
            tokens::issue(id, "service", Some(FIRST_TOKEN_SECONDS), &[], None)?;
        audit_user(
            &s,
            Some(org.org_id()),
            "service_user.created",
            id.user_id(),
            json!({"api_token_id": uuid_text(token_id.as_bytes()), "application_id": application_id.map(|a| uuid_text(a.as_bytes()))}),
        )?;
        spi::event(
            "user.created",
            Some(id),
            Some(org),
            json!({"user_id": uuid_text(id.as_bytes()), "email": email, "is_service_user": true,
                          "created_by": s.id().map(|i| i.text())}),
        )?;
        Ok(TableIterator::once((id, token)))
    })
}

/// Changes fields of a user. The user edits their own profile (first_name,
/// last_name, metadata); an org admin also status, role, email and the
/// application fields of their organization's users; system also the
/// organization and external id. Unknown fields are refused whole.
#[pg_extern(schema = "identity", volatile)]
fn update_user(user_id: Option<Uuid>, changes: Option<RawJsonb>) -> PgResult<JsonB> {
    let s = actor::subject()?;
    authz::require_scope(&s, "users:write").pg()?;
    let id = required(user_id, "user_id is required").pg()?.user_id();
    let changes = required(changes, "changes is required")
        .pg()?
        .bounded("changes is too large or too deeply nested")
        .pg()?;
    let (rel, org) = actor::relation_to(&s, id)?;
    authz::may_read_user(rel).pg()?;
    let class = rules::check_changes(&changes).pg()?;
    if !authz::may_set(rel, class) {
        return Err(authz::forbidden(match class {
            FieldClass::Profile => "you may not change this user",
            FieldClass::Admin => "only an organization admin or system may change these fields",
            FieldClass::System => "only system may change organization_id or external_id",
        })
        .pg_error());
    }
    if changes.get("user_role").and_then(Value::as_str) == Some("system") && rel != Relation::System
    {
        return Err(authz::forbidden("only system may give the system role").pg_error());
    }
    if changes.get("is_service_user").and_then(Value::as_bool) == Some(true)
        && !tables::user_state(id).is_some_and(|u| u.row.is_service_user)
    {
        authz::may_make_service_user(rel).pg()?;
    }
    let fields: Vec<&String> = changes.as_object().expect("checked").keys().collect();
    spi::privileged(|| {
        refuse_if_deleted(id)?;
        take_user_row(id)?;
        if let Some(email) = changes.get("email").and_then(Value::as_str) {
            let taken = spi::one::<bool>(
                "select true from identity.users where lower(email) = lower($1) and id <> $2",
                &[email.into(), uuid(id).into()],
            )?;
            if taken.is_some() {
                return Err(duplicate("a user with this email already exists").pg_error());
            }
        }
        if let Some(Some(o)) = changes
            .get("organization_id")
            .map(|v| v.as_str().and_then(uuid_bytes))
        {
            require_org(Uuid::from_bytes(o))?;
        }
        // One statement: each column keeps its value unless `changes` names
        // it. Leaving `active` moves tokens_valid_after, as suspend_user does,
        // and so does a change of role or organization (or of the service
        // user flag): a JWT carrying the old ones is refused from this commit
        // on, never acting with them in RLS until it expires.
        let user = spi::write_one::<JsonB>(
            concat!(
                include_str!("../../sql/queries/users_update_user.sql"),
                user_json!()
            ),
            &[uuid(id).into(), JsonB(changes.clone()).into()],
        )?
        .ok_or_else(|| authz::not_found("user does not exist"))
        .pg()?;
        // A move between organizations takes the user's credentials along
        // (tokens, usage and the subscription follow the user's row).
        let mut details = json!({"fields": fields});
        if let Some(v) = changes.get("organization_id") {
            let new_org = v.as_str().and_then(uuid_bytes).map(OrgId);
            let moved = crate::api::credentials::follow_owner(id, new_org)?;
            details["credentials_moved"] = json!(moved);
        }
        audit_user(&s, org, "user.updated", id, details)?;
        if changes.get("status").is_some() {
            forget_ban(id)?;
        }
        if let Some(st) = changes.get("status").and_then(Value::as_str) {
            spi::event(
                if st == "active" {
                    "user.reactivated"
                } else {
                    "user.suspended"
                },
                Some(uuid(id)),
                org.map(uuid),
                json!({"user_id": id.text(), "status": st}),
            )?;
        }
        Ok(JsonB(user.0))
    })
}

fn set_status(user_id: Option<Uuid>, suspend: bool, reason: Option<&str>) -> PgResult<()> {
    let s = actor::subject()?;
    authz::require_scope(&s, "users:write").pg()?;
    let id = required(user_id, "user_id is required").pg()?.user_id();
    check_name(reason, "reason must be 1 to 1000 characters", 1000).pg()?;
    let (rel, org) = actor::relation_to(&s, id)?;
    authz::may_administer_user(rel).pg()?;
    spi::privileged(|| {
        refuse_if_deleted(id)?;
        take_user_row(id)?;
        // Never a user whose deletion was deferred, even one whose tombstone
        // committed after refuse_if_deleted looked.
        let changed = if suspend {
            spi::write_one::<bool>(
                "update identity.users u set status = 'suspended', status_reason = $2, tokens_valid_after = now(), \
                        updated_at = now() where u.id = $1 \
                        and not exists (select from identity.deleted_users d where d.id = u.id) returning true",
                &[uuid(id).into(), reason.into()],
            )?
        } else {
            spi::write_one::<bool>(
                "update identity.users u set status = 'active', status_reason = null, updated_at = now() \
                        where u.id = $1 and not exists (select from identity.deleted_users d where d.id = u.id) \
                        returning true",
                &[uuid(id).into()],
            )?
        };
        if changed.is_none() {
            return Err(authz::not_found("user does not exist").pg_error());
        }
        forget_ban(id)?;
        let (action, event) = if suspend {
            ("user.suspended", "user.suspended")
        } else {
            ("user.reactivated", "user.reactivated")
        };
        audit_user(&s, org, action, id, json!({"reason": reason}))?;
        spi::event(
            event,
            Some(uuid(id)),
            org.map(uuid),
            json!({"user_id": id.text()}),
        )
    })
}

/// An admin's status decision (suspend_user, reactivate_user, update_user's
/// `status`): a later unban in Supabase Auth never undoes it (API.md 13).
fn forget_ban(id: UserId) -> PgResult<()> {
    spi::run(
        "update identity.supabase_auth_users set banned = false where user_id = $1 and banned",
        &[uuid(id).into()],
    )
}

/// Suspends a user at once: API tokens, the hook and verify_jwt refuse them
/// from the next call (JWTs issued before now stay refused after
/// reactivation: tokens_valid_after). Org admin or system.
#[pg_extern(schema = "identity", volatile)]
fn suspend_user(user_id: Option<Uuid>, reason: default!(Option<&str>, "NULL")) -> PgResult<()> {
    set_status(user_id, true, reason)
}

/// Lets a suspended user sign in again (new tokens only). Org admin or system.
#[pg_extern(schema = "identity", volatile)]
fn reactivate_user(user_id: Option<Uuid>) -> PgResult<()> {
    set_status(user_id, false, None)
}

/// Deletes a user: their API tokens, credentials (ciphertext included),
/// overrides and subscription go with the row; a tombstone keeps every JWT
/// issued to them refused; the audit trail stays. Org admin or system.
/// Never waits for the user's own open transaction: when it holds rows the
/// deletion removes, the user is disabled (status_reason `deleted`, every
/// token refused) at once and the rows go at the next delete_user call.
#[pg_extern(schema = "identity", volatile)]
fn delete_user(user_id: Option<Uuid>) -> PgResult<()> {
    let s = actor::subject()?;
    authz::require_scope(&s, "users:write").pg()?;
    let id = required(user_id, "user_id is required").pg()?.user_id();
    let (rel, org) = actor::relation_to(&s, id)?;
    authz::may_administer_user(rel).pg()?;
    spi::privileged(|| delete(&s, id, org).map(|_| ()))
}

/// delete_user's work, for a caller already authorised, inside
/// `spi::privileged`: tokens, credentials and the row go (or, while the
/// user's own transaction holds its rows, the user is disabled and removed
/// by the next call: answers true then); the id stays refused; identities
/// become tombstones.
pub fn delete(s: &Subject, id: UserId, org: Option<OrgId>) -> PgResult<bool> {
    {
        let counts = spi::one::<JsonB>(
            include_str!("../../sql/queries/users_delete_user.sql"),
            &[uuid(id).into()],
        )?
        .map(|j| j.0)
        .unwrap_or_default();
        spi::run(
            "insert into identity.deleted_users (id, deleted_by) values ($1, $2) on conflict do nothing",
            &[uuid(id).into(), s.id().map(uuid).into()],
        )?;
        take_user_row(id)?;
        let free = spi::one::<bool>(
            include_str!("../../sql/queries/user_rows_unlocked.sql"),
            &[uuid(id).into()],
        )?
        .unwrap_or(false);
        let mut counts = counts;
        if free {
            spi::run(
                "delete from identity.users where id = $1",
                &[uuid(id).into()],
            )?;
        } else {
            // Rows the user's own open transaction holds: removing them would
            // wait for it. Disabled now (every token refused from this
            // commit on, as a deletion would), removed by the next call.
            spi::run(
                "update identity.users set status = 'disabled', status_reason = 'deleted', \
                        tokens_valid_after = now(), updated_at = now() where id = $1",
                &[uuid(id).into()],
            )?;
            counts["deferred"] = json!(true);
        }
        audit_user(s, org, "user.deleted", id, counts)?;
        spi::event(
            "user.deleted",
            Some(uuid(id)),
            org.map(uuid),
            json!({"user_id": id.text()}),
        )?;
        Ok(!free)
    }
}

fn read_user(s: &Subject, id: UserId) -> PgResult<JsonB> {
    authz::require_scope(s, "users:read").pg()?;
    let (rel, _) = actor::relation_to(s, id)?;
    authz::may_read_user(rel).pg()?;
    spi::privileged(|| user_json(id)).map(JsonB)
}

/// The user `user_id` if the actor may see them (themself, their org admin,
/// system), else P0002. NULL in, NULL out.
#[pg_extern(schema = "identity", stable)]
fn user_by_id(user_id: Option<Uuid>) -> PgResult<Option<JsonB>> {
    let Some(id) = user_id else { return Ok(None) };
    let s = actor::subject()?;
    read_user(&s, id.user_id()).map(Some)
}

/// As user_by_id, by the identity provider's id.
#[pg_extern(schema = "identity", stable)]
fn user_by_external_id(external_id: Option<&str>) -> PgResult<Option<JsonB>> {
    let Some(ext) = external_id else {
        return Ok(None);
    };
    let s = actor::subject()?;
    // The scope before the lookup: a token without users:read gets the same
    // answer for an id that exists and one that does not.
    authz::require_scope(&s, "users:read").pg()?;
    let id = spi::privileged(|| {
        spi::one::<Uuid>(
            "select id from identity.users where external_id = $1",
            &[ext.into()],
        )
    })?
    .ok_or_else(|| authz::not_found("user does not exist"))
    .pg()?;
    read_user(&s, id.user_id()).map(Some)
}

/// The user an API token belongs to (28000 if the token does not
/// authenticate), if the actor may see them.
#[pg_extern(schema = "identity", volatile)]
fn user_by_api_token(token: Option<&str>) -> PgResult<Option<JsonB>> {
    let Some(t) = token else { return Ok(None) };
    let s = actor::subject()?;
    authz::require_scope(&s, "users:read").pg()?;
    let p = tokens::verify(t)?;
    read_user(&s, p.user_id()).map(Some)
}

/// The actor's own profile: user, organization, role, fresh websocket and
/// agent tokens, feature flags, subscription.
#[pg_extern(schema = "identity", volatile, name = "current_user")]
fn current_user_profile() -> PgResult<JsonB> {
    let s = actor::subject()?;
    // The profile is the user's row and more: users:read, as user_by_id.
    authz::require_scope(&s, "users:read").pg()?;
    let Subject::User(me) = &s else {
        return Err(authz::not_found("no user in the request claims")
            .hint("current_user() describes a signed-in user; system has no profile")
            .pg_error());
    };
    // Fresh websocket and agent tokens inherit the caller's scopes and the
    // API token or session it signed in with; a caller acting through a
    // websocket or agent token gets none (those mint nothing).
    let (websocket, agent) = if me.derived {
        (Value::Null, Value::Null)
    } else {
        let mut lineage = session_tokens::Lineage::of_current(me.scopes.clone());
        let websocket = session_tokens::websocket_token(me.id, 5 * 60, &lineage)?;
        lineage.scopes = crate::core::actor::narrow_scopes(me.scopes.as_deref(), None)
            .map_err(|_| authz::forbidden("the token's scopes allow no agent token"))
            .pg()?;
        (
            json!(websocket),
            json!(session_tokens::agent_token(me.id, 3600, &lineage)?),
        )
    };
    let (user, organization) = spi::privileged(|| -> PgResult<(Value, Value)> {
        let org = match me.org {
            None => Value::Null,
            Some(o) => spi::one::<JsonB>(
                "select jsonb_build_object('id', id, 'name', name) from identity.organizations where id = $1",
                &[uuid(o).into()],
            )?
            .map_or(Value::Null, |j| j.0),
        };
        Ok((user_json(me.id)?, org))
    })?;
    let flags = flags::evaluate(Some(me.id))?;
    let subscription = flags::subscription(me.id)?;
    Ok(JsonB(json!({
        "user": user,
        "organization": organization,
        "user_role": user["user_role"],
        "is_service_user": me.is_service_user,
        "tokens": {"websocket": websocket, "agent": agent},
        "feature_flags": flags,
        "subscription": subscription,
    })))
}
