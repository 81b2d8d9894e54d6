//! Section 5 of API.md: short-lived websocket and agent tokens (JWTs).
//! `user_id` NULL means the actor. Minting for anyone else needs the admin
//! grant level; an agent token's scopes never exceed the actor's.

use crate::api::actor;
use crate::api::jwt::sign_claims;
use crate::core::actor::{narrow_scopes, Actor};
use crate::core::claims::{uuid_bytes, uuid_text};
use crate::core::error::{IdentityError, Kind};
use crate::core::ids::UserId;
use crate::pg::clock::{interval_seconds, new_uuid};
use crate::pg::error::PgResult;
use crate::pg::error::{Pg, PgError};
use crate::store::tables;
use pgrx::datum::Interval;
use pgrx::prelude::*;
use pgrx::Uuid;
use serde_json::{json, Map, Value};

/// What a websocket or agent token inherits from the caller that made it
/// for itself: its scopes (None: unrestricted), and the API token
/// (`token_id`) or session (`session_id`) it signed in with, so the derived
/// token dies when that is revoked (`api::jwt::stateful_checks`).
#[derive(Default)]
pub struct Lineage {
    pub scopes: Option<Vec<String>>,
    token_id: Option<String>,
    session_id: Option<String>,
}

impl Lineage {
    /// The current claims' lineage (`scopes` as the actor holds them).
    pub fn of_current(scopes: Option<Vec<String>>) -> Lineage {
        let view = crate::store::claims::view();
        let uuid_claim = |k| {
            let c = view.claims.as_ref()?;
            c.get(k)
                .and_then(Value::as_str)
                .and_then(uuid_bytes)
                .map(|b| uuid_text(&b))
        };
        Lineage {
            scopes,
            token_id: uuid_claim("token_id"),
            session_id: uuid_claim("session_id"),
        }
    }

    fn stamp(&self, c: &mut Map<String, Value>) {
        if let Some(s) = &self.scopes {
            c.insert("scopes".into(), json!(s));
        }
        if let Some(t) = &self.token_id {
            c.insert("token_id".into(), json!(t));
        }
        if let Some(s) = &self.session_id {
            c.insert("session_id".into(), json!(s));
        }
    }
}

/// The user a token is for, and what it inherits: the actor's lineage when
/// minting for itself, none when the admin level mints for a user. A caller
/// acting through a websocket or agent token mints nothing (42501).
fn subject(user_id: Option<Uuid>) -> PgResult<(UserId, Lineage)> {
    if crate::store::claims::view().derived {
        return Err(IdentityError::new(
            Kind::Forbidden,
            "a websocket or agent token cannot mint tokens",
        )
        .hint("sign in with an access token or an API token")
        .pg_error());
    }
    let actor = actor::current();
    if actor == Actor::Anon {
        if let Some(e) = actor::revoked_claims() {
            return Err(e);
        }
    }
    let target = match (&user_id, &actor) {
        (Some(u), _) => UserId(*u.as_bytes()),
        (None, Actor::User { sub, .. }) => UserId(uuid_bytes(sub).expect("canonical")),
        (None, _) => {
            return Err(IdentityError::invalid(
                "user_id is required when there is no user in the request claims",
            )
            .pg_error())
        }
    };
    match &actor {
        Actor::User { sub, scopes } if uuid_bytes(sub) == Some(target.0) => {
            Ok((target, Lineage::of_current(scopes.clone())))
        }
        Actor::System if actor::caller_is_admin_level()? => Ok((target, Lineage::default())),
        _ => Err(IdentityError::new(
            Kind::Forbidden,
            "only the user themself or the admin level may mint this token",
        )
        .pg_error()),
    }
}

fn base_claims(user: UserId, aud: &str) -> PgResult<Map<String, Value>> {
    let u = tables::user_state(user)
        .ok_or_else(|| IdentityError::new(Kind::NotFound, "user does not exist"))
        .pg()?;
    if !u.row.status.is_active() {
        return Err(IdentityError::invalid("user is not active")
            .detail(format!("user {}", u.row.status))
            .pg_error());
    }
    let mut c = Map::new();
    c.insert("aud".into(), json!(aud));
    c.insert("sub".into(), json!(user.text()));
    c.insert("role".into(), json!("authenticated"));
    c.insert("user_role".into(), json!(u.row.user_role.as_str()));
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
        Some(i) => interval_seconds(&i, 15 * 60).pg()?,
        None => 5 * 60,
    };
    let (user, lineage) = subject(user_id)?;
    websocket_token(user, ttl, &lineage)
}

/// A websocket token for `user` (already authorized by the caller), with
/// what it inherits.
pub fn websocket_token(user: UserId, ttl: i64, lineage: &Lineage) -> PgResult<String> {
    let mut c = base_claims(user, "websocket")?;
    lineage.stamp(&mut c);
    sign_claims(c, ttl, false)
}

/// An agent token for `user` (already authorized by the caller), with what
/// it inherits; its scopes are `lineage.scopes`, already narrowed.
pub fn agent_token(user: UserId, ttl: i64, lineage: &Lineage) -> PgResult<String> {
    let mut c = base_claims(user, "agent")?;
    c.insert(
        "act".into(),
        json!({"sub": format!("agent:{}", new_uuid()), "type": "agent"}),
    );
    lineage.stamp(&mut c);
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
        Some(i) => interval_seconds(&i, 24 * 3600).pg()?,
        None => 3600,
    };
    // At most 50 scopes, checked before any work (the deduplication is
    // quadratic in them).
    let requested = scopes
        .map(crate::api::tokens::scopes_arg)
        .transpose()
        .pg()?;
    let (user, mut lineage) = subject(user_id)?;
    lineage.scopes = narrow_scopes(lineage.scopes.as_deref(), requested)
        .map_err(|extra| {
            IdentityError::new(Kind::Forbidden, "requested scopes exceed the user's")
                .detail(format!("scope {extra:?}"))
        })
        .pg()?;
    agent_token(user, ttl, &lineage)
}
