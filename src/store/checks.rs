//! The checks of a token's claims that read the extension's state (revoked
//! jtis and sessions, the user's status and tokens_valid_after, the API
//! token a JWT was derived from), shared by verify_jwt (`api::jwt`) and the
//! claims view of every request (`claims::view`): an actor taken from
//! request.jwt.claims passes exactly the checks verify_jwt applies.

use crate::core::claims::parse_uuid;
use crate::core::ids::{SessionId, TokenId, UserId};
use crate::core::jwt::{Check, CheckName, Claims};
use crate::pg::clock::now_unix;
use crate::store::tables;

/// The longest jti identity.revoke_jwt stores (identity.revoked_jwts).
pub const MAX_JTI_BYTES: usize = 255;

/// A check's record; `detail` is written out only for a refusal.
pub fn check(name: CheckName, pass: bool, detail: impl std::fmt::Display) -> Check {
    Check {
        name,
        pass,
        detail: (!pass).then(|| detail.to_string()),
    }
}

/// Revocation and the user's state, after the stateless checks passed:
/// the revoked jtis and sessions from this backend's copy (cache.rs); the
/// user's state from `user` (None: no user checks, they would pass).
pub fn stateful_checks<C: Claims>(
    mut checks: Vec<Check>,
    claims: Option<C>,
    user: impl FnOnce(&crate::store::cache::Fresh, UserId) -> Option<crate::store::cache::UserToken>,
) -> (Vec<Check>, Option<C>) {
    let Some(c) = claims else {
        return (checks, None);
    };
    let fresh = crate::store::cache::fresh();
    let uuid_claim = |k: &str| c.string(k).and_then(parse_uuid);
    // A claim that names what revoke_jwt, revoke_session or an API token's
    // revocation could match, but in a form none of them can: such a token
    // could never be revoked, so it is refused.
    let present = |k: &str| c.string(k).is_some() || c.number(k) != Ok(None);
    match c.string("jti") {
        Some(jti) if jti.is_empty() || jti.len() > MAX_JTI_BYTES => checks.push(check(
            CheckName::RevokedJti,
            false,
            format_args!(
                "jti empty or longer than {MAX_JTI_BYTES} bytes (it could never be revoked)"
            ),
        )),
        Some(jti) => checks.push(check(
            CheckName::RevokedJti,
            !fresh.jti_revoked(jti),
            "jti revoked",
        )),
        None if present("jti") => checks.push(check(
            CheckName::RevokedJti,
            false,
            "jti is not a string (it could never be revoked)",
        )),
        None => {}
    }
    match uuid_claim("session_id") {
        Some(sid) => checks.push(check(
            CheckName::RevokedSession,
            !fresh.session_revoked(SessionId(sid)),
            "session revoked",
        )),
        None if present("session_id") => checks.push(check(
            CheckName::RevokedSession,
            false,
            "session_id is not a UUID (it could never be revoked)",
        )),
        None => {}
    }
    if let Some(sub) = uuid_claim("sub") {
        if let Some(tables::UserToken {
            valid_after: tokens_valid_after,
            status,
        }) = user(&fresh, UserId(sub))
        {
            checks.push(check(
                CheckName::UserStatus,
                status.is_active(),
                format_args!("user {status}"),
            ));
            let iat = c.number("iat").ok().flatten().unwrap_or(i64::MIN);
            let ok = tokens_valid_after.is_none_or(|va| iat >= va);
            checks.push(check(
                CheckName::TokensValidAfter,
                ok,
                "issued before the user's tokens_valid_after",
            ));
        }
    }
    // A JWT derived from an API token (exchange_api_token, and websocket /
    // agent tokens minted by a caller signed in with one) dies with it:
    // revoked, deleted with its user, or rotated out after its grace. One
    // primary-key probe, only for such tokens, always under the current
    // snapshot (so standbys follow the primary as they replay). After the
    // user's checks, so a deleted user's token says so.
    match uuid_claim("token_id") {
        Some(tid) => checks.push(check(
            CheckName::ParentToken,
            tables::token_live(TokenId(tid), now_unix()),
            "the API token it was derived from is revoked, expired or gone",
        )),
        None if present("token_id") => checks.push(check(
            CheckName::ParentToken,
            false,
            "token_id is not a UUID",
        )),
        None => {}
    }
    let valid = checks.iter().all(|c| c.pass);
    (checks, valid.then_some(c))
}

/// The first stateful check that `claims` fail, or None when they pass
/// them all (or name no user, jti, session or parent token).
pub fn refusal(claims: &serde_json::Map<String, serde_json::Value>) -> Option<Check> {
    let (checks, passed) = stateful_checks(
        Vec::new(),
        Some(claims),
        crate::store::cache::Fresh::user_token_state,
    );
    if passed.is_some() {
        return None;
    }
    checks.into_iter().find(|c| !c.pass)
}
