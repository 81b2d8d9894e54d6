//! The actor of the current request (API.md conventions), derived from the
//! same cached claims view as the RLS helpers (`rls::view`): claims pinned
//! by identity.authenticate first, else request.jwt.claims in `request` mode.

use crate::core::actor::{self, Actor, ActorKind};
use crate::core::authz::{Caller, OrgId, Subject, UserId};
use crate::core::claims::uuid_bytes;
use crate::core::error::{IdentityError, Kind};
use crate::pg::error::PgResult;
use crate::pg::error::{Pg, PgError};
use crate::pg::ids::ToUuid;
use crate::pg::spi;
use crate::store::tables;

pub fn current() -> Actor {
    actor::from_view(&crate::store::claims::fresh_view())
}

/// Whether the calling role holds the admin grant level (EXECUTE on an
/// admin-only function), or is a superuser.
pub fn caller_is_admin_level() -> PgResult<bool> {
    if crate::pg::gucs::current_role_is_superuser() {
        return Ok(true);
    }
    Ok(spi::one::<bool>(
        "select pg_catalog.has_function_privilege('identity.sign_jwt(pg_catalog.jsonb, pg_catalog.interval)', 'execute')",
        &[],
    )?
    .unwrap_or(false))
}

/// The actor of a management function (API.md sections 6, 7, 9), resolved
/// against the tables: a user from the claims must exist and be active
/// (28000 otherwise: suspension counts at once, whatever the token says), and
/// their role and organization are read from identity.users, never from the
/// claims. No claims means system, but only for a role holding the admin
/// grant level; a user-level role without claims is refused (42501), so
/// forgetting to set claims never escalates.
pub fn subject() -> PgResult<Subject> {
    let view = crate::store::claims::fresh_view();
    match actor::from_view(&view) {
        Actor::System if caller_is_admin_level()? => Ok(Subject::System),
        Actor::System => Err(IdentityError::new(Kind::Forbidden, "no user in the request claims")
            .hint("set request.jwt.claims (or call identity.authenticate) with a user's token; only the admin level acts as system")
            .pg_error()),
        Actor::Anon => Err(revoked_claims().unwrap_or_else(|| {
            IdentityError::new(Kind::Forbidden, "the request claims name no user")
                .hint("sign in: the claims need a sub that is a user id")
                .pg_error()
        })),
        Actor::User { sub, scopes } => {
            let id = UserId(uuid_bytes(&sub).expect("canonical uuid"));
            let u = tables::user_state(id).ok_or_else(|| {
                IdentityError::unauthenticated("the request's user does not exist")
                    .reason(crate::core::reason::Reason::UserDeleted)
            }).pg()?;
            if !u.row.status.is_active() {
                return Err(IdentityError::unauthenticated("the request's user is not active")
                    .detail(format!("user {}", u.row.status))
                    .reason(crate::core::reason::Reason::UserSuspended)
                    .pg_error());
            }
            let org = u.row.org_id();
            let kind = match view.kind {
                ActorKind::Agent => ActorKind::Agent,
                _ if u.row.is_service_user => ActorKind::Service,
                _ => ActorKind::User,
            };
            Ok(Subject::User(Caller {
                id,
                org,
                admin: u.row.user_role == crate::core::claims::UserRole::Admin && org.is_some(),
                is_service_user: u.row.is_service_user,
                kind,
                scopes,
                derived: view.derived,
            }))
        }
    }
}

/// The 28000 for claims that name a user but fail a check verify_jwt
/// applies (a revoked jti or session, the user's state, a revoked parent
/// API token): such claims make an anonymous actor (`store::claims::view`),
/// and a function that needs an actor says why. None for other claims.
pub fn revoked_claims() -> Option<crate::pg::error::ErrorReport> {
    let check = crate::store::claims::refusal()?;
    Some(
        IdentityError::unauthenticated("the request's token is no longer valid")
            .reason(check.code())
            .detail(check.detail.unwrap_or_default())
            .pg_error(),
    )
}

/// One audit row by the caller of an admin-level function (revocations,
/// signing keys, rekey), without an organization: the user its claims name
/// (`subject`: active, passing verify_jwt's checks), else the system; never
/// a blanket `system` for a call made with a user's claims.
pub fn audit_by_caller(
    action: &'static str,
    target_type: &'static str,
    target_id: Option<&str>,
    details: serde_json::Value,
) -> PgResult<()> {
    let s = subject()?;
    audit(&s, None, action, target_type, target_id, details)
}

/// One audit row for `s` acting on `target`.
pub fn audit(
    s: &Subject,
    organization_id: Option<OrgId>,
    action: &'static str,
    target_type: &'static str,
    target_id: Option<&str>,
    details: serde_json::Value,
) -> PgResult<()> {
    spi::audit(spi::Audit {
        actor_id: s.id().map(|u| u.uuid()),
        actor_kind: s.kind().as_str(),
        organization_id: organization_id.map(|o| o.uuid()),
        action,
        target_type,
        target_id,
        details,
    })
}

/// The record of an audit row, as the background writer inserts it.
fn outside_record(
    s: &Subject,
    organization_id: Option<OrgId>,
    action: &'static str,
    target_type: &'static str,
    target_id: Option<&str>,
    details: serde_json::Value,
) -> Vec<u8> {
    let record = serde_json::json!({
        "actor_id": s.id().map(|u| u.text()),
        "actor_kind": s.kind().as_str(),
        "actor_role": crate::pg::gucs::session_user_name(),
        "organization_id": organization_id.map(|o| o.text()),
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "details": details,
    });
    serde_json::to_vec(&record).expect("serialisable")
}

/// One audit row that must outlive the caller's transaction and be written
/// before the caller goes on (a secret revealed): queued for the database's
/// background writer (pg::audit_queue), which commits it on its own, so a
/// rollback or an error in the caller does not erase it. When the queue
/// cannot take it (the database's share of the ring is used up, or the
/// library is not preloaded), the caller's work is refused (55P03, try
/// again), never done unaudited.
pub fn audit_outside(
    s: &Subject,
    organization_id: Option<OrgId>,
    action: &'static str,
    target_type: &'static str,
    target_id: Option<&str>,
    details: serde_json::Value,
) -> PgResult<()> {
    let bytes = outside_record(s, organization_id, action, target_type, target_id, details);
    if crate::pg::audit_queue::record(&bytes, crate::pg::audit_queue::Class::Essential) {
        return Ok(());
    }
    Err(IdentityError::new(Kind::Busy, "the audit trail cannot take the record now")
        .hint("try again shortly; nothing was done (the library must be in shared_preload_libraries)")
        .pg_error())
}

/// `e`, after recording the refused attempt (`<target_type>.refused`, with
/// the operation and the SQLSTATE; never the target's organization, which
/// the caller may not know) outside the caller's transaction. Repeats of
/// one refusal by one actor (same action, operation and SQLSTATE) within a
/// minute are one row at once and one more with a count and an estimate of
/// how many targets were tried (`audit_queue::Class::Refusal`); when the
/// database's share of the ring for refusals is used up, the attempt is
/// counted as dropped (one `audit.refusals_dropped` row says how many), and
/// the caller's error is raised all the same.
pub fn refused(
    s: &Subject,
    target_type: &'static str,
    action: &'static str,
    target_id: Option<&str>,
    operation: &str,
    e: IdentityError,
) -> crate::pg::error::ErrorReport {
    // Ids are short; an oversized argument is recorded cut.
    let target_id = target_id.map(|t| &t[..t.floor_char_boundary(200)]);
    let role = crate::pg::gucs::session_user_name();
    let key = refusal_key(&[
        s.id().map(|u| u.text()).unwrap_or_default().as_bytes(),
        s.kind().as_str().as_bytes(),
        role.as_deref().unwrap_or_default().as_bytes(),
        action.as_bytes(),
        operation.as_bytes(),
        e.sqlstate().as_bytes(),
    ]);
    let bytes = outside_record(
        s,
        None,
        action,
        target_type,
        target_id,
        serde_json::json!({"operation": operation, "sqlstate": e.sqlstate(), "message": e.message}),
    );
    let target = refusal_key(&[target_id.unwrap_or_default().as_bytes()]);
    let _ = crate::pg::audit_queue::record(
        &bytes,
        crate::pg::audit_queue::Class::Refusal { key, target },
    );
    e.pg_error()
}

/// A refusal's key: FNV-1a over its parts, each ended by 0xff.
fn refusal_key(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in part.iter().chain(std::iter::once(&0xffu8)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// A live user's (id, organization), or None (unknown or deleted).
pub fn target(id: UserId) -> Option<Option<OrgId>> {
    crate::store::tables::user_state(id)
        .filter(|u| u.row.status != crate::core::claims::UserStatus::Deleted)
        .map(|u| u.row.org_id())
}

/// The actor's relation to user `id`; P0002 when the user does not exist.
pub fn relation_to(
    s: &Subject,
    id: UserId,
) -> PgResult<(crate::core::authz::Relation, Option<OrgId>)> {
    let org = target(id)
        .ok_or_else(|| crate::core::authz::not_found("user does not exist"))
        .pg()?;
    Ok((crate::core::authz::relation(s, id, org), org))
}
