//! Section 4 of API.md: opaque API tokens.
//!
//! Format and checksum are `core::token`; only SHA-256 is stored. The
//! checksum is checked before any lookup; lookups are primary-key/unique
//! index probes (`heap.rs`). verify and exchange run with the caller's rights
//! (no SECURITY DEFINER on the hot path) and are at the user level: the
//! token is the credential. `last_used_at` is written at most once a minute,
//! never in a read-only transaction or on a standby, and never waits for a
//! row lock (SKIP LOCKED), so verification stays read-only where it must.
//!
//! Management (create, list, revoke, rotate) is at the user level too, for
//! the actor of the request (`actor::subject`, as the users and credentials
//! functions): a user manages their own tokens, an organization admin those
//! of the organization's users (its service users above all), system
//! everyone's; the rules are `core::authz::may_manage_tokens` and
//! `may_receive_token`. Like the other management functions they are not
//! SECURITY DEFINER (the admin level is the calling role's privilege): the
//! decision comes first, then the reads and writes run in `spi::privileged`.

use crate::api::actor;
use crate::api::jwt::sign_claims;
use crate::core::authz::{self, Subject};
use crate::core::claims::{self, uuid_text};
use crate::core::error::{required, IdentityError, Kind};
use crate::core::ids::{OrgId, UserId};
use crate::core::reason::Reason;
use crate::core::token;
use crate::pg::clock::{interval_seconds, new_uuid, now_unix};
use crate::pg::error::ErrorReport;
use crate::pg::error::PgResult;
use crate::pg::error::{Pg, PgError};
use crate::pg::ids::{FromUuid, ToUuid};
use crate::pg::jsonb::{Builder, RawJsonb};
use crate::pg::{gucs, probe, spi};
use crate::store::tables;
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::{JsonB, Uuid};
use rand::rngs::OsRng;
use serde_json::{json, Value};

const MAX_EXPIRY_SECONDS: i64 = 10 * 366 * 86_400;

fn unauthenticated(message: &'static str) -> IdentityError {
    IdentityError::new(Kind::Unauthenticated, message)
}

/// A verified token's principal (API.md section 10).
pub struct Principal {
    token_id: String,
    user_id: UserId,
    user: tables::UserState,
    scopes: Vec<String>,
    expires_at: Option<i64>,
}

impl Principal {
    pub fn user_id(&self) -> UserId {
        self.user_id
    }

    /// The principal as jsonb, written from Rust (`core::jsonb::stored`,
    /// no jsonb FFI) on a major whose layout that was checked on.
    fn jsonb(&self) -> RawJsonb {
        use crate::core::jsonb::stored::{object_document, Value};
        if !crate::pg::jsonb::stored_layout_checked() {
            return self.jsonb_by_postgres();
        }
        fn str(s: &str) -> Value<'_> {
            Value::String(s.as_bytes())
        }
        fn opt(s: Option<&str>) -> Value<'_> {
            s.map_or(Value::Null, str)
        }
        let scopes: Vec<Value> = self.scopes.iter().map(|s| str(s)).collect();
        let (user_id, expires) = (self.user_id.text(), self.expires_at.map(token::rfc3339));
        let row = &self.user.row;
        // In jsonb key order: by length, then bytes.
        let members = [
            (&b"scopes"[..], Value::Array(&scopes)),
            (b"user_id", str(&user_id)),
            (b"token_id", str(&self.token_id)),
            (b"user_role", str(row.user_role.as_str())),
            (b"expires_at", opt(expires.as_deref())),
            (b"is_service_user", Value::Bool(row.is_service_user)),
            (b"organization_id", opt(row.organization_id.as_deref())),
        ];
        match object_document(&members, 256) {
            Some(bytes) => RawJsonb::copy_of(&bytes),
            None => self.jsonb_by_postgres(),
        }
    }

    /// The same through Postgres' jsonb builder: for other majors, and the
    /// reference the `#[pg_test]` below holds `jsonb` to.
    fn jsonb_by_postgres(&self) -> RawJsonb {
        let mut b = Builder::new();
        b.begin_object();
        b.key("token_id");
        b.string(&self.token_id);
        b.key("user_id");
        b.string(&self.user_id.text());
        b.key("organization_id");
        b.opt_string(self.user.row.organization_id.as_deref());
        b.key("is_service_user");
        b.bool(self.user.row.is_service_user);
        b.key("user_role");
        b.string(self.user.row.user_role.as_str());
        b.key("scopes");
        b.begin_array();
        for s in &self.scopes {
            b.elem_string(s);
        }
        b.end_array();
        b.key("expires_at");
        b.opt_string(self.expires_at.map(token::rfc3339).as_deref());
        b.end_object();
        b.finish()
    }
}

/// Every check of verify_api_token, in order; 28000 with the reason.
pub fn verify(token_text: &str) -> PgResult<Principal> {
    check(token_text)?.pg()
}

/// Every check of verify_api_token, in order: Ok(Err) is the 28000 refusal
/// (with its reason code), for any text; Err only what is no fault of the
/// token (an SPI failure of the last_used_at write).
pub fn check(token_text: &str) -> PgResult<Result<Principal, IdentityError>> {
    let prefix = gucs::token_prefix();
    // Shape and checksum first: a typo never reaches a table.
    if let Err(e) = token::parse(token_text, &prefix) {
        return Ok(Err(e));
    }
    // The token's and its user's rows: from this backend's memory when it
    // verified the token before and neither table changed since (cache.rs).
    let hash = token::hash(token_text);
    let Some((row, user)) = crate::store::cache::verified_token(&hash) else {
        return Ok(Err(unauthenticated("invalid API token")
            .detail("unknown token")
            .reason(Reason::UnknownToken)));
    };
    if row.revoked {
        return Ok(Err(
            unauthenticated("API token has been revoked").reason(Reason::TokenRevoked)
        ));
    }
    let now = now_unix();
    if row.expires_at.is_some_and(|e| e <= now) {
        return Ok(Err(
            unauthenticated("API token has expired").reason(Reason::TokenExpired)
        ));
    }
    let Some(user) = user else {
        return Ok(Err(
            unauthenticated("API token's user does not exist").reason(Reason::UserDeleted)
        ));
    };
    if !user.row.status.is_active() {
        let reason = match user.row.status {
            claims::UserStatus::Deleted => Reason::UserDeleted,
            _ => Reason::UserSuspended,
        };
        return Ok(Err(unauthenticated("API token's user is not active")
            .detail(format!("user {}", user.row.status))
            .reason(reason)));
    }
    touch(&row, &hash, now)?;
    Ok(Ok(Principal {
        token_id: row.id,
        user_id: row.user_id,
        user,
        scopes: row.scopes,
        expires_at: row.expires_at,
    }))
}

/// The claims identity.authenticate pins for a valid API token: who, the
/// hook's claims, the token's scopes, amr api_token. (28000 as verify.)
pub fn principal_claims(p: &Principal) -> serde_json::Map<String, Value> {
    let mut c = serde_json::Map::new();
    c.insert("sub".into(), json!(p.user_id.text()));
    c.insert("role".into(), json!("authenticated"));
    c.insert("user_role".into(), json!(p.user.row.user_role.as_str()));
    c.insert("organization_id".into(), json!(p.user.row.organization_id));
    c.insert("is_service_user".into(), json!(p.user.row.is_service_user));
    if p.user.row.is_service_user {
        c.insert("application_id".into(), json!(p.user.row.application_id));
    }
    c.insert("scopes".into(), json!(p.scopes));
    c.insert("token_id".into(), json!(p.token_id));
    c.insert(
        "amr".into(),
        json!([{"method": "api_token", "timestamp": now_unix()}]),
    );
    c
}

/// last_used_at, at most once a minute, only where writes are possible, and
/// without waiting for a lock another verifier holds. verify_api_token runs
/// with the caller's rights (no SECURITY DEFINER on the hot path); this one
/// write runs as the table's owner (`probe::as_owner`). The caller's
/// search_path is in force, so every name and operator below is qualified.
/// A remembered row's last_used_at is this backend's last write (or try):
/// other backends' writes do not invalidate it, so each backend tries again
/// 60 to 120 s after it (`token::touch_after`: spread by token and backend,
/// so backends do not all try at once) and the statement's own condition
/// keeps the column's writes at one a minute. The statement's plan is
/// prepared once per backend.
fn touch(row: &tables::TokenRow, hash: &[u8; 32], now: i64) -> PgResult<()> {
    let wait = token::touch_after(hash, crate::pg::clock::backend_pid());
    let fresh = row.last_used_at.is_some_and(|t| now - t < wait);
    if fresh || !writable() {
        return Ok(());
    }
    let id = Uuid::from_bytes(claims::uuid_bytes(&row.id).expect("uuid from the table"));
    let owner = probe::table_owner(&tables::API_TOKENS);
    probe::as_owner(owner, || {
        spi::run_cached(
            include_str!("../../sql/queries/tokens_touch.sql"),
            &[pgrx::PgOid::BuiltIn(pgrx::PgBuiltInOids::UUIDOID)],
            &[id.into()],
        )
    })?;
    crate::store::cache::token_touched(hash, now);
    Ok(())
}

/// A scopes argument: at most 50 (checked first), none NULL, each valid,
/// duplicates dropped.
pub fn scopes_arg(scopes: Vec<Option<String>>) -> Result<Vec<String>, IdentityError> {
    if scopes.len() > crate::core::input::MAX_SCOPES {
        return Err(IdentityError::invalid("too many scopes").detail(format!(
            "{} scopes, at most {}",
            scopes.len(),
            crate::core::input::MAX_SCOPES
        )));
    }
    let mut out = Vec::with_capacity(scopes.len());
    for s in scopes {
        pgrx::check_for_interrupts!();
        let s = s.ok_or_else(|| IdentityError::invalid("scopes must not contain NULL"))?;
        if !token::validate_scope(&s) {
            return Err(IdentityError::invalid("invalid scope")
                .detail(format!("scope {s:?}"))
                .hint("a scope is 1 to 64 of a-z 0-9 _ . : * -, starting with a letter or digit"));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// Generates, stores (hash only) and returns a new token for `user_id`.
pub(crate) fn issue(
    user_id: Uuid,
    name: &str,
    expires: Option<i64>,
    scopes: &[String],
    rotated_from: Option<Uuid>,
) -> PgResult<(Uuid, String, Option<TimestampWithTimeZone>)> {
    let prefix = gucs::token_prefix();
    let text = token::generate(&prefix, &mut OsRng).pg()?;
    let parsed = token::parse(&text, &prefix).expect("a generated token parses");
    let hash = token::hash(&text);
    let row = spi::write_two::<Uuid, TimestampWithTimeZone>(
        include_str!("../../sql/queries/tokens_issue.sql"),
        &[
            user_id.into(),
            name.into(),
            hash.as_slice().into(),
            parsed.display_prefix().into(),
            parsed.last4().into(),
            scopes.to_vec().into(),
            expires.map(|s| s as f64).into(),
            rotated_from.into(),
        ],
    )?
    .expect("INSERT ... RETURNING returns a row");
    Ok((row.0.expect("id"), text, row.1))
}

fn audit(
    s: &Subject,
    org: Option<OrgId>,
    action: &'static str,
    token_id: &Uuid,
    details: Value,
) -> PgResult<()> {
    actor::audit(
        s,
        org,
        action,
        "api_token",
        Some(&uuid_text(token_id.as_bytes())),
        details,
    )
}

/// The actor, checked for `scope`: how every management function starts.
fn caller(scope: &'static str) -> PgResult<Subject> {
    let s = actor::subject()?;
    authz::require_scope(&s, scope)
        .map_err(|e| actor::refused(&s, "api_token", "api_token.refused", None, scope, e))?;
    Ok(s)
}

/// User `id`'s organization, when `s` may manage their tokens; P0002 with
/// `what` when the user does not exist or is not visible to `s` (the same
/// answer either way).
fn owner_visible(
    s: &Subject,
    id: UserId,
    what: &'static str,
) -> PgResult<(tables::UserState, Option<OrgId>)> {
    let target = id.text();
    let refuse = |e| {
        actor::refused(
            s,
            "api_token",
            "api_token.refused",
            Some(&target),
            "manage",
            e,
        )
    };
    let Some(user) = tables::user_state(id) else {
        return Err(refuse(authz::not_found(what)));
    };
    let org = user.row.org_id();
    authz::may_manage_tokens(authz::relation(s, id, org), what).map_err(refuse)?;
    Ok((user, org))
}

/// Token `id`'s user (id, state, organization), when `s` may manage the
/// token (P0002 "API token does not exist" otherwise, as for an unknown id).
fn token_owner(s: &Subject, id: Uuid) -> PgResult<(UserId, tables::UserState, Option<OrgId>)> {
    const WHAT: &str = "API token does not exist";
    let owner = spi::privileged(|| {
        spi::one::<Uuid>(
            "select user_id from identity.api_tokens where id = $1",
            &[id.into()],
        )
    })?
    .ok_or_else(|| {
        let target = uuid_text(id.as_bytes());
        actor::refused(
            s,
            "api_token",
            "api_token.refused",
            Some(&target),
            "manage",
            authz::not_found(WHAT),
        )
    })?;
    let owner = UserId(*owner.as_bytes());
    let (user, org) = owner_visible(s, owner, WHAT)?;
    Ok((owner, user, org))
}

/// `s` may mint a token acting as `user` (`authz::may_mint_for`).
fn may_mint(
    s: &Subject,
    id: UserId,
    user: &tables::UserState,
    org: Option<OrgId>,
    what: &'static str,
) -> PgResult<()> {
    authz::may_mint_for(
        s,
        authz::relation(s, id, org),
        id,
        user.row.is_service_user,
        what,
    )
    .map_err(|e| {
        actor::refused(
            s,
            "api_token",
            "api_token.refused",
            Some(&id.text()),
            "mint",
            e,
        )
    })
}

/// A new API token for `user_id`, shown once: for the caller themself, a
/// service user of the organization they administer, or anyone for system.
/// `expires_in => NULL` (no expiry): system only.
#[pg_extern(schema = "identity", volatile)]
fn create_api_token(
    user_id: Option<Uuid>,
    name: Option<&str>,
    expires_in: default!(Option<Interval>, "'90 days'"),
    scopes: default!(Option<Vec<Option<String>>>, "'{}'"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(token_id, Uuid),
            name!(token, String),
            name!(expires_at, Option<TimestampWithTimeZone>),
        ),
    >,
    ErrorReport,
> {
    let s = caller("tokens:write")?;
    let user_id = required(user_id, "user_id is required").pg()?;
    let name = name
        .filter(|n| !n.trim().is_empty() && n.len() <= 200)
        .ok_or_else(|| IdentityError::invalid("name must be 1 to 200 characters"))
        .pg()?;
    let scopes = scopes_arg(scopes.unwrap_or_default()).pg()?;
    let expires = expires_in
        .map(|i| interval_seconds(&i, MAX_EXPIRY_SECONDS))
        .transpose()
        .pg()?;
    let (user, org) = owner_visible(&s, user_id.user_id(), "user does not exist")?;
    may_mint(&s, user_id.user_id(), &user, org, "user does not exist")?;
    authz::may_receive_token(&s, expires.is_some(), &scopes).pg()?;
    if !user.row.status.is_active() {
        return Err(IdentityError::invalid("user is not active")
            .detail(format!("user {}", user.row.status))
            .pg_error());
    }
    spi::privileged(|| {
        let (id, text, expires_at) = issue(user_id, name, expires, &scopes, None)?;
        audit(
            &s,
            org,
            "api_token.created",
            &id,
            json!({"user_id": uuid_text(user_id.as_bytes()), "name": name, "scopes": scopes}),
        )?;
        Ok(TableIterator::once((id, text, expires_at)))
    })
}

/// The token's principal, or 28000: unknown, bad checksum, expired, revoked,
/// user not active or deleted. NULL in, NULL out.
#[pg_extern(schema = "identity", volatile)]
fn verify_api_token(token: Option<&str>) -> PgResult<Option<RawJsonb>> {
    let Some(t) = token else { return Ok(None) };
    Ok(Some(verify(t)?.jsonb()))
}

/// verify_api_token without the exception, for any text (NULL, huge,
/// garbage): one row (valid, code, principal); code is the refusal's reason
/// code (`missing_token` for NULL), NULL when valid; principal is what
/// verify_api_token answers, NULL when refused.
#[pg_extern(schema = "identity", volatile)]
fn try_verify_api_token(
    token: Option<&str>,
) -> Result<
    TableIterator<
        'static,
        (
            name!(valid, bool),
            name!(code, Option<&'static str>),
            name!(principal, Option<RawJsonb>),
        ),
    >,
    crate::pg::error::ErrorReport,
> {
    let row = match token {
        None => (false, Some(Reason::MissingToken.as_str()), None),
        Some(t) => match check(t)? {
            Ok(p) => (true, None, Some(p.jsonb())),
            Err(e) => (false, Some(e.code().as_str()), None),
        },
    };
    Ok(TableIterator::once(row))
}

/// A short-lived access JWT for the token's user (the service-user sign-in
/// path): claims as the hook builds them, `amr` method `api_token`, the
/// token's scopes, a new session_id. ttl defaults to identity.access_token_ttl
/// (at most 1 day).
#[pg_extern(schema = "identity", volatile)]
fn exchange_api_token(
    token: Option<&str>,
    ttl: default!(Option<Interval>, "NULL"),
) -> PgResult<String> {
    let token = token
        .ok_or_else(|| {
            unauthenticated("invalid API token")
                .detail("token is null")
                .reason(Reason::MissingToken)
        })
        .pg()?;
    let p = verify(token)?;
    let ttl = match ttl {
        Some(i) => interval_seconds(&i, 86_400).pg()?,
        None => gucs::access_token_ttl().min(86_400),
    };
    let now = now_unix();
    let session = new_uuid();
    let audience = gucs::jwt_audience();
    let mut c = claims::access_token_claims(
        &p.user_id.text(),
        &p.user.email,
        Some(&p.user.row),
        &audience,
        &session,
        "api_token",
        now,
    )
    .ok_or_else(|| unauthenticated("API token's user is not active").reason(Reason::UserSuspended))
    .pg()?;
    c.insert("scopes".into(), json!(p.scopes));
    // The JWT dies with the token (api::jwt::stateful_checks, parent_token).
    c.insert("token_id".into(), json!(p.token_id));
    let jwt = sign_claims(c, ttl, false)?;
    // Audited where the database can write (not on a standby or in a
    // read-only transaction, where verification must still work).
    if writable() {
        let token_id = p.token_id.clone();
        spi::privileged(|| {
            spi::audit(spi::Audit {
                actor_id: Some(p.user_id.uuid()),
                actor_kind: if p.user.row.is_service_user {
                    "service"
                } else {
                    "user"
                },
                organization_id: p.user.row.org_id().map(|o| o.uuid()),
                action: "api_token.exchanged",
                target_type: "api_token",
                target_id: Some(&token_id),
                details: json!({"session_id": session, "ttl_seconds": ttl}),
            })
        })?;
    }
    Ok(jwt)
}

/// Whether this transaction may write (not a standby, not read-only).
fn writable() -> bool {
    gucs::transaction_writable()
}

/// Tokens without secrets: `user_id`'s, or with NULL the actor's own (for
/// system: everyone's). Someone else's list needs what creating a token for
/// them needs.
#[pg_extern(schema = "identity", stable)]
fn list_api_tokens(
    user_id: default!(Option<Uuid>, "NULL"),
) -> Result<SetOfIterator<'static, JsonB>, ErrorReport> {
    let s = caller("tokens:read")?;
    let user_id = match (&s, user_id) {
        (Subject::System, u) => u,
        (Subject::User(c), None) => Some(c.id.uuid()),
        (Subject::User(_), Some(u)) => {
            owner_visible(&s, u.user_id(), "user does not exist")?;
            Some(u)
        }
    };
    let rows = spi::privileged(|| {
        spi::column::<JsonB>(
            include_str!("../../sql/queries/tokens_list_api_tokens.sql"),
            &[user_id.into()],
        )
    })?;
    Ok(SetOfIterator::new(rows))
}

/// Revokes a token for every next verification: its user, an admin of
/// their organization, or system. Idempotent; P0002 if unknown.
#[pg_extern(schema = "identity", volatile)]
fn revoke_api_token(token_id: Option<Uuid>) -> PgResult<()> {
    let s = caller("tokens:write")?;
    let id = required(token_id, "token_id is required").pg()?;
    let (_, _, org) = token_owner(&s, id)?;
    spi::privileged(|| {
        spi::run("update identity.api_tokens set revoked_at = coalesce(revoked_at, pg_catalog.now()) where id = $1", &[id.into()])?;
        audit(&s, org, "api_token.revoked", &id, json!({}))
    })
}

/// A new token with the same user, name, scopes and lifetime; the old one
/// stops working after `grace` (0: at once). Who may: as `create_api_token`
/// (it mints); a scoped caller only for a token within its own scopes.
#[pg_extern(schema = "identity", volatile)]
fn rotate_api_token(
    token_id: Option<Uuid>,
    grace: default!(Option<Interval>, "'0'"),
) -> Result<
    TableIterator<
        'static,
        (
            name!(token_id, Uuid),
            name!(token, String),
            name!(expires_at, Option<TimestampWithTimeZone>),
        ),
    >,
    ErrorReport,
> {
    let s = caller("tokens:write")?;
    let id = required(token_id, "token_id is required").pg()?;
    let grace = match grace {
        None => 0,
        Some(g) if g.months() == 0 && g.days() == 0 && g.micros() == 0 => 0,
        Some(g) => interval_seconds(&g, 30 * 86_400).pg()?,
    };
    let (owner, user, org) = token_owner(&s, id)?;
    may_mint(&s, owner, &user, org, "API token does not exist")?;
    spi::privileged(|| -> PgResult<_> {
        // Lock the old row; read what the new token inherits.
        let old = spi::column_mut::<JsonB>(
            include_str!("../../sql/queries/tokens_rotate_api_token.sql"),
            &[id.into()],
        )?;
        let Some(JsonB(old)) = old.into_iter().next() else {
            return Err(IdentityError::new(Kind::NotFound, "API token does not exist").pg_error());
        };
        if old["revoked"] == true || old["expired"] == true {
            return Err(IdentityError::invalid("API token is revoked or expired").pg_error());
        }
        let user_id = Uuid::from_bytes(
            claims::uuid_bytes(old["user_id"].as_str().unwrap_or_default()).expect("uuid"),
        );
        let scopes: Vec<String> = old["scopes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_owned))
            .collect();
        let lifetime = old["lifetime"]
            .as_f64()
            .map(|f| f.round() as i64)
            .filter(|s| *s > 0);
        authz::may_receive_token(&s, lifetime.is_some(), &scopes).pg()?;
        let (new_id, text, expires_at) = issue(
            user_id,
            old["name"].as_str().unwrap_or("rotated"),
            lifetime,
            &scopes,
            Some(id),
        )?;
        spi::run(
            include_str!("../../sql/queries/tokens_rotate_api_token_2.sql"),
            &[id.into(), grace.into()],
        )?;
        audit(
            &s,
            org,
            "api_token.rotated",
            &id,
            json!({"new_token_id": uuid_text(new_id.as_bytes()), "grace_seconds": grace}),
        )?;
        Ok(TableIterator::once((new_id, text, expires_at)))
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;

    /// try_verify_api_token answers a row for any text, with the refusal's
    /// reason code, and the principal verify_api_token answers.
    #[pg_test]
    fn try_verify_api_token_never_raises() {
        let row = |t: Option<&str>| {
            Spi::get_two_with_args::<bool, String>(
                "select valid, code from identity.try_verify_api_token($1)",
                &[t.into()],
            )
            .unwrap()
        };
        let huge = "x".repeat(1 << 20);
        let zeros = format!("{}_{}", gucs::token_prefix(), "0".repeat(36));
        for (t, code) in [
            (None, "missing_token"),
            (Some(""), "malformed"),
            (Some("garbage"), "malformed"),
            (Some(huge.as_str()), "malformed"),
            (Some("a.b.c"), "malformed"),
            (Some(zeros.as_str()), "bad_checksum"),
        ] {
            assert_eq!(row(t), (Some(false), Some(code.to_string())));
        }
        Spi::run("insert into identity.users (id, email) values ('00000000-0000-0000-0000-0000000031f1', 'try@tokens.test')")
            .unwrap();
        let token = Spi::get_one::<String>(
            "select token from identity.create_api_token('00000000-0000-0000-0000-0000000031f1', 'try')",
        )
        .unwrap()
        .unwrap();
        assert_eq!(row(Some(&token)), (Some(true), None));
        let same = Spi::get_one_with_args::<bool>(
            "select principal = identity.verify_api_token($1) from identity.try_verify_api_token($1)",
            &[token.as_str().into()],
        )
        .unwrap();
        assert_eq!(same, Some(true));
        Spi::run("update identity.api_tokens set revoked_at = now() where user_id = '00000000-0000-0000-0000-0000000031f1'")
            .unwrap();
        assert_eq!(
            row(Some(&token)),
            (Some(false), Some("token_revoked".to_string()))
        );
        Spi::run("delete from identity.users where id = '00000000-0000-0000-0000-0000000031f1'")
            .unwrap();
        assert_eq!(
            row(Some(&token)),
            (Some(false), Some("unknown_token".to_string()))
        );
    }

    /// A principal's jsonb written from Rust is the builder's, byte for
    /// byte, with and without scopes, expiry, organization and service flag.
    #[pg_test]
    fn principal_jsonb_is_the_builders() {
        use crate::core::claims::{UserRole, UserRow, UserStatus};
        let mut n = 0;
        for scopes in [
            vec![],
            vec!["read".to_string()],
            (0..40).map(|i| format!("scope:{i}")).collect(),
        ] {
            for expires_at in [None, Some(1_900_000_000)] {
                for (org, service) in [
                    (None, false),
                    (Some("00000000-0000-0000-0000-00000000000a"), true),
                ] {
                    for role in ["user", "admin"] {
                        let p = Principal {
                            token_id: "7f0c3c1e-8d52-4b8e-9a43-0d1b2c3d4e5f".into(),
                            user_id: UserId([7; 16]),
                            user: tables::UserState {
                                email: "u@example.com".into(),
                                tokens_valid_after: None,
                                row: UserRow {
                                    is_service_user: service,
                                    user_role: UserRole::parse(role),
                                    organization_id: org.map(str::to_string),
                                    application_id: None,
                                    status: UserStatus::parse("active"),
                                },
                            },
                            scopes: scopes.clone(),
                            expires_at,
                        };
                        assert_eq!(p.jsonb().bytes(), p.jsonb_by_postgres().bytes());
                        n += 1;
                    }
                }
            }
        }
        assert_eq!(n, 24);
    }
}
