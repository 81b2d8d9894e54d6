//! Section 5 of API.md: short-lived websocket and agent tokens (JWTs).
//! `user_id` NULL means the actor. Minting for anyone else needs the admin
//! grant level; an agent token's scopes never exceed the actor's.

use crate::api::actor;
use crate::api::jwt::{interval_seconds, new_uuid, sign_claims};
use crate::core::actor::{narrow_scopes, Actor};
use crate::core::claims::{uuid_bytes, uuid_text};
use crate::core::error::{IdentityError, Kind};
use crate::core::token;
use crate::error::PgResult;
use crate::heap;
use pgrx::datum::Interval;
use pgrx::prelude::*;
use pgrx::Uuid;
use serde_json::{json, Map, Value};

/// The user a token is for, and the actor's scopes when minting for itself.
fn subject(user_id: Option<Uuid>) -> PgResult<([u8; 16], Option<Vec<String>>)> {
    let actor = actor::current();
    let target = match (&user_id, &actor) {
        (Some(u), _) => *u.as_bytes(),
        (None, Actor::User { sub, .. }) => uuid_bytes(sub).expect("canonical"),
        (None, _) => return Err(IdentityError::invalid("user_id is required when there is no user in the request claims").into()),
    };
    match &actor {
        Actor::User { sub, scopes } if uuid_bytes(sub) == Some(target) => Ok((target, scopes.clone())),
        _ if actor::caller_is_admin_level()? => Ok((target, None)),
        _ => Err(IdentityError::new(Kind::Forbidden, "only the user themself or the admin level may mint this token").into()),
    }
}

fn base_claims(user: [u8; 16], aud: &str) -> PgResult<Map<String, Value>> {
    let u = heap::user_state(user).ok_or_else(|| IdentityError::new(Kind::NotFound, "user does not exist"))?;
    if u.row.status != "active" {
        return Err(IdentityError::invalid("user is not active").detail(format!("user {}", u.row.status)).into());
    }
    let mut c = Map::new();
    c.insert("aud".into(), json!(aud));
    c.insert("sub".into(), json!(uuid_text(&user)));
    c.insert("role".into(), json!("authenticated"));
    c.insert("user_role".into(), json!(u.row.user_role));
    c.insert("organization_id".into(), json!(u.row.organization_id));
    c.insert("is_service_user".into(), json!(u.row.is_service_user));
    Ok(c)
}


/// A JWT with aud `websocket` for realtime connections: default 5 minutes,
/// at most 15.
#[pg_extern(schema = "identity", volatile)]
fn create_websocket_token(
    user_id: default!(Option<Uuid>, "NULL"),
    ttl: default!(Option<Interval>, "'5 minutes'"),
) -> PgResult<String> {
    let ttl = match ttl {
        Some(i) => interval_seconds(&i, 15 * 60)?,
        None => 5 * 60,
    };
    let (user, _) = subject(user_id)?;
    websocket_token(user, ttl)
}

/// A websocket token for `user` (already authorized by the caller).
pub fn websocket_token(user: [u8; 16], ttl: i64) -> PgResult<String> {
    sign_claims(base_claims(user, "websocket")?, ttl, false)
}

/// An agent token for `user` with `scopes` (already narrowed by the caller).
pub fn agent_token(user: [u8; 16], ttl: i64, scopes: Option<Vec<String>>) -> PgResult<String> {
    let mut c = base_claims(user, "agent")?;
    c.insert("act".into(), json!({"sub": format!("agent:{}", new_uuid()), "type": "agent"}));
    if let Some(s) = scopes {
        c.insert("scopes".into(), json!(s));
    }
    sign_claims(c, ttl, false)
}

/// A JWT with aud `agent` for an AI agent acting for a user: `act` names the
/// agent (RFC 8693), scopes never exceed the actor's. Default 1 hour, at
/// most 24.
#[pg_extern(schema = "identity", volatile)]
fn create_agent_token(
    user_id: default!(Option<Uuid>, "NULL"),
    ttl: default!(Option<Interval>, "'1 hour'"),
    scopes: default!(Option<Vec<Option<String>>>, "NULL"),
) -> PgResult<String> {
    let ttl = match ttl {
        Some(i) => interval_seconds(&i, 24 * 3600)?,
        None => 3600,
    };
    let requested = match scopes {
        None => None,
        Some(v) => {
            let mut out = Vec::new();
            for s in v {
                let s = s.ok_or_else(|| IdentityError::invalid("scopes must not contain NULL"))?;
                if !token::validate_scope(&s) {
                    return Err(IdentityError::invalid("invalid scope").detail(format!("scope {s:?}")).into());
                }
                if !out.contains(&s) {
                    out.push(s);
                }
            }
            Some(out)
        }
    };
    let (user, actor_scopes) = subject(user_id)?;
    let scopes = narrow_scopes(actor_scopes.as_deref(), requested).map_err(|extra| {
        IdentityError::new(Kind::Forbidden, "requested scopes exceed the user's").detail(format!("scope {extra:?}"))
    })?;
    agent_token(user, ttl, scopes)
}
