//! Section 3 of API.md: JWTs.

use crate::core::claims::{parse_uuid, uuid_text};
use crate::core::error::{required, IdentityError, Kind};
use crate::core::ids::{SessionId, UserId};
use crate::core::jwt::{self, Check, CheckName, Claims, VerifyConfig};
use crate::core::signatures::SignatureCache;
use crate::pg::clock::{interval_seconds, new_uuid, now_unix};
use crate::pg::error::PgResult;
use crate::pg::error::{Pg, PgError};
use crate::pg::jsonb::{RawJsonb, Verified};
use crate::pg::{gucs, spi};
use crate::store::checks::stateful_checks;
use crate::store::tables;
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Map, Value};

/// The HS256 secret, or 55000 with how to set it (never the value).
fn checked_secret(s: Option<&[u8]>) -> Result<&[u8], IdentityError> {
    // Not ALTER SYSTEM: pg_stat_statements keeps that statement, secret and
    // all, and log_statement = 'ddl' logs it.
    let hint = "set identity.jwt_secret (at least 32 random bytes) in postgresql.conf or a file it includes, \
                readable only by the server's OS user, then SELECT pg_reload_conf()";
    let s = s.ok_or_else(|| {
        IdentityError::not_configured("identity.jwt_secret is not set").hint(hint)
    })?;
    if s.len() < jwt::MIN_SECRET_BYTES {
        return Err(
            IdentityError::not_configured("identity.jwt_secret is shorter than 32 bytes")
                .hint(hint),
        );
    }
    Ok(s)
}

thread_local! {
    /// The HMAC key schedule of identity.jwt_secret, and the setting's
    /// generation it was made at: made again after any assignment.
    static HMAC_KEY: std::cell::RefCell<Option<(u64, jwt::HmacKey)>> = const { std::cell::RefCell::new(None) };
}

/// The HS256 key for the current identity.jwt_secret (55000 as `checked_secret` says).
fn hmac_key() -> Result<jwt::HmacKey, IdentityError> {
    let generation = gucs::jwt_secret_generation();
    HMAC_KEY.with(|k| {
        let mut k = k.borrow_mut();
        match &*k {
            Some((g, key)) if *g == generation => Ok(key.clone()),
            _ => {
                let key = gucs::with_jwt_secret(|s| checked_secret(s).map(jwt::HmacKey::new))?;
                *k = Some((generation, key.clone()));
                Ok(key)
            }
        }
    })
}

/// The key new tokens are signed with: the active asymmetric key (kid in
/// the header) when there is one, else HS256 with identity.jwt_secret.
enum Signer {
    Key(crate::store::cache::ActiveKey),
    Secret(jwt::HmacKey),
}

fn signer() -> PgResult<Signer> {
    Ok(match crate::api::keys::active_signing_key().pg()? {
        Some(k) => Signer::Key(k),
        None => Signer::Secret(hmac_key().pg()?),
    })
}

/// Runs `sign` with the standard claims of a token issued now (a new jti,
/// iss from identity.jwt_issuer, and aud from identity.jwt_audience when
/// `fill_aud`), and refuses a token over the size verify_jwt accepts.
fn issue(
    ttl: i64,
    fill_aud: bool,
    sign: impl FnOnce(&jwt::Standard) -> String,
) -> PgResult<String> {
    let jti = new_uuid();
    let token = gucs::with_jwt_audience_issuer(|audience, issuer| {
        sign(&jwt::Standard {
            now: now_unix(),
            ttl,
            jti: &jti,
            issuer,
            audience: audience.filter(|_| fill_aud),
        })
    });
    if token.len() > jwt::MAX_TOKEN_BYTES {
        return Err(IdentityError::invalid("claims are too large")
            .detail(format!(
                "token would be {} bytes, the limit is {}",
                token.len(),
                jwt::MAX_TOKEN_BYTES
            ))
            .pg_error());
    }
    Ok(token)
}

/// Signs `claims` the one way every issuer here does (`signer`), filling
/// iat, exp (now + ttl), jti and iss where absent, and aud from
/// identity.jwt_audience when `fill_aud`.
pub fn sign_claims(claims: Map<String, Value>, ttl: i64, fill_aud: bool) -> PgResult<String> {
    match signer()? {
        Signer::Key(crate::store::cache::ActiveKey { kid, alg, key }) => {
            issue(ttl, fill_aud, |std| {
                jwt::sign_with_key(claims, &key, alg, &kid, std, &mut rand::rngs::OsRng)
            })
        }
        Signer::Secret(key) => issue(ttl, fill_aud, |std| jwt::sign_hs256(claims, &key, std)),
    }
}

/// Every check of verify_jwt: the stateless ones (core::jwt::check_with),
/// then revocation and the user's state, each one index probe (heap.rs).
/// `parse` makes the claims from the verified payload bytes: jsonb_in for the
/// SQL answers (one parse, no text round trip), serde for explain_jwt.
pub fn verify_checks<C: Claims>(
    token: &str,
    audience: Option<&str>,
    parse: impl FnOnce(jwt::Payload) -> Result<C, String>,
) -> Result<(Vec<Check>, Option<C>), IdentityError> {
    audience_arg(audience)?;
    let (checks, claims) = with_cfg(audience, |cfg| {
        jwt::check_with(token, cfg, resolver(cfg.now), parse)
    })?;
    // Every check listed (explain_jwt): the user's row probed.
    let user = |_: &crate::store::cache::Fresh, id| {
        crate::pg::probe::with_newest_snapshot(|snapshot| tables::token_state(id, snapshot))
    };
    Ok(stateful_checks(checks, claims, user))
}

/// verify_checks for verify_jwt and try_verify_jwt: the payload as jsonb,
/// and HS256 signatures remembered (see `SIGNATURES`).
pub fn verify_jsonb(
    token: &str,
    audience: Option<&str>,
) -> Result<(Vec<Check>, Option<Verified>), IdentityError> {
    audience_arg(audience)?;
    jwt::prefetch(token);
    let (checks, claims) = with_cfg(audience, |cfg| {
        // After the settings and the clock are read, which do not wait on
        // the token's cache lines (just asked for): its last dot does.
        let sig = signature_of(token).filter(|_| gucs::jwt_cache_size() > 0);
        match sig.and_then(|sig| remembered(token, sig)) {
            Some(v) => {
                if let Some(top) = v.top() {
                    prefetch_revocations(top);
                }
                let pass = |name| Check {
                    name,
                    pass: true,
                    detail: None,
                };
                let mut checks = Vec::with_capacity(10);
                checks.extend([
                    pass(CheckName::Format),
                    pass(CheckName::Alg),
                    pass(CheckName::Signature),
                ]);
                let ok = jwt::claim_checks(&v, cfg, &mut checks);
                Ok::<_, IdentityError>((checks, ok.then_some(v)))
            }
            None => {
                let (checks, claims) = jwt::check_with_hint(
                    token,
                    cfg,
                    resolver(cfg.now),
                    Verified::parse,
                    prefetch_revocations,
                )?;
                if let (Some(v), Some(sig)) = (&claims, sig) {
                    remember(token, sig, v);
                }
                Ok((checks, claims))
            }
        }
    })?;
    // Only a user the checks can refuse is looked at (cache.rs).
    Ok(stateful_checks(
        checks,
        claims,
        crate::store::cache::Fresh::user_token_state,
    ))
}

/// Starts fetching the revocation filters' lines for a payload's jti and
/// session (a hint; `cache::prefetch_revocations`), so that the two lookups
/// to come wait on memory at once, and early, rather than one after the other.
fn prefetch_revocations(top: &crate::core::jsonb::Top) {
    crate::store::cache::prefetch_revocations(top.string("jti").flatten(), || {
        top.string("session_id")
            .flatten()
            .and_then(parse_uuid)
            .map(SessionId)
    });
}

/// An audience argument: at most 255 bytes (22023), like a jti.
fn audience_arg(audience: Option<&str>) -> Result<(), IdentityError> {
    match audience {
        Some(a) if a.len() > 255 => {
            Err(IdentityError::invalid("audience must be at most 255 bytes")
                .detail(format!("{} bytes", a.len())))
        }
        _ => Ok(()),
    }
}

/// The settings a verification reads, once per call, in place (no copies).
fn with_cfg<R>(audience: Option<&str>, f: impl FnOnce(&VerifyConfig) -> R) -> R {
    gucs::with_jwt_audience_issuer(|default_aud, issuer| {
        f(&VerifyConfig {
            now: now_unix(),
            leeway: gucs::jwt_leeway(),
            audience: audience.or(default_aud),
            issuer,
        })
    })
}

/// The key for a token's kid. The secret is read only for a token without
/// kid (an asymmetric-only deployment needs none).
fn resolver(now: i64) -> impl FnOnce(Option<&str>) -> Result<jwt::KeyChoice, IdentityError> {
    move |kid| match kid {
        Some(kid) => Ok(match crate::api::keys::verifying_key(kid, now)? {
            crate::api::keys::KeyLookup::Usable(k) => jwt::KeyChoice::Public(k),
            crate::api::keys::KeyLookup::Revoked => jwt::KeyChoice::RevokedKid,
            crate::api::keys::KeyLookup::Unknown => jwt::KeyChoice::UnknownKid,
        }),
        None => Ok(jwt::KeyChoice::Secret(hmac_key()?)),
    }
}

/// HS256 tokens whose signature this backend verified
/// (`core::signatures::SignatureCache`, with its rules): for each, the
/// payload's jsonb bytes and top claims, so a hit skips the HMAC and the
/// parse. Only tokens with this extension's own HS256 header (no kid) go in.
type Remembered = (Vec<u8>, std::rc::Rc<crate::core::jsonb::Top>);

thread_local! {
    static SIGNATURES: std::cell::RefCell<SignatureCache<Remembered>> =
        std::cell::RefCell::new(SignatureCache::default());
}

/// The signature segment of a token with exactly our HS256 header.
fn signature_of(token: &str) -> Option<&str> {
    crate::core::signatures::signature_of(token, jwt::HS256_HEADER_B64)
}

/// The remembered verification of `token`, whose signature segment is `sig`.
fn remembered(token: &str, sig: &str) -> Option<Verified> {
    let generation = gucs::jwt_secret_generation();
    SIGNATURES.with(|s| {
        s.borrow()
            .lookup(token, sig, generation)
            .map(|(jsonb, top)| Verified::from_parts(jsonb, top.clone()))
    })
}

/// Marks, or on its second verification remembers, `token` (signature `sig`).
fn remember(token: &str, sig: &str, v: &Verified) {
    let Some(top) = v.top() else { return };
    let (generation, capacity) = (gucs::jwt_secret_generation(), gucs::jwt_cache_size());
    SIGNATURES.with(|s| {
        s.borrow_mut().offer(token, sig, generation, capacity, || {
            (v.jsonb.bytes().to_vec(), top.clone())
        })
    });
}

pub fn serde_claims(p: jwt::Payload) -> Result<Map<String, Value>, String> {
    match serde_json::from_slice::<Value>(p.json) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err("payload is not a JSON object".to_string()),
    }
}

/// The 28000 of the first failed check, with its reason code.
pub fn refuse(checks: &[Check]) -> IdentityError {
    jwt::first_refusal(checks).expect("a failed check").error()
}

/// Signs `claims` with HS256 (identity.jwt_secret), filling iat, exp
/// (now + ttl, default identity.access_token_ttl), jti, and iss / aud from
/// identity.jwt_issuer / identity.jwt_audience, where absent.
#[pg_extern(schema = "identity", volatile)]
fn sign_jwt(claims: Option<RawJsonb>, ttl: default!(Option<Interval>, "NULL")) -> PgResult<String> {
    let Some(claims) = claims.filter(RawJsonb::is_object) else {
        return Err(IdentityError::invalid("claims must be a JSON object").pg_error());
    };
    let ttl = match ttl {
        Some(i) => interval_seconds(&i, 366 * 86_400).pg()?,
        None => gucs::access_token_ttl(),
    };
    sign_jsonb(&claims, ttl)
}

/// sign_claims for a jsonb object without a detour through serde: the
/// stored jsonb is written out as JSON text (core::jsonb) and signed as is,
/// by the secret or the active key, so numbers keep their exact digits.
/// Bytes the writer declines (it reads Postgres' binary jsonb, so only on a
/// major it was checked against) go through jsonb_out's text instead, which
/// is exact too; serde is never the path for a stored object.
fn sign_jsonb(claims: &RawJsonb, ttl: i64) -> PgResult<String> {
    if crate::pg::jsonb::encoder_applies() {
        // Which of the claims the signer may fill are present: a bit each.
        let mut present = 0u8;
        if let Some(text) =
            crate::core::jsonb::text_shape::object_to_json_shaped(claims.bytes(), |k| {
                present |= jwt::standard_claim_bit(k);
            })
        {
            return sign_text(
                text,
                &|k| present & jwt::standard_claim_bit(k.as_bytes()) != 0,
                ttl,
            );
        }
    }
    // jsonb_out's text (`{"a": 1, ...}`), signed as is; serde reads it only
    // for the key names.
    let text = claims.to_text();
    let names: Vec<String> = serde_json::from_str::<Map<String, Value>>(&text)
        .map(|m| m.into_iter().map(|(k, _)| k).collect())
        .map_err(|_| IdentityError::invalid("claims must be a JSON object").pg_error())?;
    sign_text(text.into_bytes(), &|k| names.iter().any(|n| n == k), ttl)
}

/// Signs a compact JSON object's text as is (`present`: whether a standard
/// claim is already in it), by the secret or the active key.
fn sign_text(text: Vec<u8>, present: &dyn Fn(&str) -> bool, ttl: i64) -> PgResult<String> {
    match signer()? {
        Signer::Secret(key) => issue(ttl, true, |std| {
            jwt::sign_hs256_json(text, present, &key, std)
        }),
        Signer::Key(crate::store::cache::ActiveKey { kid, alg, key }) => issue(ttl, true, |std| {
            jwt::sign_with_key_json(text, present, &key, alg, &kid, std, &mut rand::rngs::OsRng)
        }),
    }
}

/// An access JWT for `user_id` with the claims the hook would produce (and
/// Supabase Auth's standard ones), for stacks without Supabase Auth. ttl
/// defaults to identity.access_token_ttl (at most 1 day).
#[pg_extern(schema = "identity", volatile)]
fn issue_access_token(
    user_id: Option<pgrx::Uuid>,
    ttl: default!(Option<Interval>, "NULL"),
) -> PgResult<String> {
    let id = required(user_id, "user_id is required").pg()?;
    let ttl = match ttl {
        Some(i) => interval_seconds(&i, 86_400).pg()?,
        None => gucs::access_token_ttl().min(86_400),
    };
    let user = tables::user_state(UserId(*id.as_bytes()))
        .ok_or_else(|| IdentityError::new(Kind::NotFound, "user does not exist"))
        .pg()?;
    let now = now_unix();
    let session = new_uuid();
    let audience = gucs::jwt_audience();
    let claims = crate::core::claims::access_token_claims(
        &uuid_text(id.as_bytes()),
        &user.email,
        Some(&user.row),
        &audience,
        &session,
        "issued",
        now,
    )
    .ok_or_else(|| {
        IdentityError::invalid("user is not active").detail(format!("user {}", user.row.status))
    })
    .pg()?;
    sign_claims(claims, ttl, false)
}

/// Every check with pass/fail, and the decoded (unverified) header and
/// payload: for troubleshooting.
#[pg_extern(schema = "identity", stable, parallel_safe, strict)]
fn explain_jwt(token: &str) -> PgResult<JsonB> {
    let (checks, payload) = verify_checks(token, None, serde_claims).pg()?;
    let decoded = jwt::decode(token).ok();
    Ok(JsonB(json!({
        "valid": payload.is_some(),
        "checks": checks.iter().map(|c| json!({"check": c.name.as_str(), "pass": c.pass, "detail": c.detail})).collect::<Vec<_>>(),
        "header": decoded.as_ref().map(|d| Value::Object(d.header.clone())),
        "payload": decoded.map(|d| Value::Object(d.payload)),
    })))
}

/// Revokes one token by jti until `expires_at` (its exp; the row can be
/// purged after). Audited.
#[pg_extern(schema = "identity", volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn revoke_jwt(jti: Option<&str>, expires_at: Option<TimestampWithTimeZone>) -> PgResult<()> {
    let jti = jti
        .filter(|j| !j.is_empty() && j.len() <= 255)
        .ok_or_else(|| IdentityError::invalid("jti must be 1 to 255 characters"))
        .pg()?;
    let expires_at = required(expires_at, "expires_at is required").pg()?;
    // Who revokes, resolved before the revocation (which may be of the
    // caller's own token).
    let s = crate::api::actor::subject()?;
    spi::run(
        "insert into identity.revoked_jwts (jti, expires_at) values ($1, $2) \
         on conflict (jti) do update set expires_at = greatest(identity.revoked_jwts.expires_at, excluded.expires_at)",
        &[jti.into(), expires_at.into()],
    )?;
    crate::api::actor::audit(&s, None, "jwt.revoked", "jwt", Some(jti), json!({}))
}

/// Revokes every token of a session (the session_id claim). Audited.
#[pg_extern(schema = "identity", volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn revoke_session(session_id: Option<pgrx::Uuid>) -> PgResult<()> {
    let sid = required(session_id, "session_id is required").pg()?;
    let s = crate::api::actor::subject()?;
    spi::run(
        "insert into identity.revoked_sessions (session_id) values ($1) on conflict (session_id) do nothing",
        &[sid.into()],
    )?;
    let text = uuid_text(sid.as_bytes());
    crate::api::actor::audit(
        &s,
        None,
        "session.revoked",
        "session",
        Some(&text),
        json!({}),
    )
}

/// `{header, payload}` of a token, without verifying anything: for debugging.
/// NULL in, NULL out; malformed or oversized input is 22023.
#[pg_extern(schema = "identity", immutable, parallel_safe, strict)]
fn decode_jwt(token: &str) -> PgResult<JsonB> {
    let d = jwt::decode(token).pg()?;
    Ok(JsonB(
        json!({ "header": Value::Object(d.header), "payload": Value::Object(d.payload) }),
    ))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;
    use pgrx::JsonB;

    const HS256: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
        eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.\
        SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";

    #[pg_test]
    fn decode_jwt_returns_header_and_payload() {
        let v = Spi::get_one_with_args::<JsonB>("select identity.decode_jwt($1)", &[HS256.into()])
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(v["header"]["alg"], "HS256");
        assert_eq!(v["payload"]["sub"], "1234567890");
        assert_eq!(v["payload"]["iat"], 1516239022);
    }

    #[pg_test]
    fn decode_jwt_null_is_null() {
        let v = Spi::get_one::<JsonB>("select identity.decode_jwt(null)").unwrap();
        assert!(v.is_none());
    }

    /// Claims read from a table (numerics with 1-byte varlena headers,
    /// fractions, big values) survive sign_jwt's text writer exactly.
    #[pg_test]
    fn sign_jwt_keeps_stored_claims_exactly() {
        Spi::run(
            r#"create temp table c (n numeric, big numeric, s text, a int[]);
               insert into c values (1.50, 123456789012345678901234567890.5, e'q"\\\n\u00e9\t', '{1,2}'),
                                    (-0.001, 0, '', null), (1e-10, -5, 'x', '{}')"#,
        )
        .unwrap();
        let same = Spi::get_one::<bool>(
            "select bool_and(identity.verify_jwt(identity.sign_jwt(to_jsonb(c))) - 'iat' - 'exp' - 'jti' - 'aud' - 'iss' \
                             = to_jsonb(c) \
                         and identity.verify_jwt(identity.sign_jwt(to_jsonb(c)))->>'n' = to_jsonb(c)->>'n') from c",
        )
        .unwrap();
        assert_eq!(same, Some(true));
    }

    /// With an active asymmetric key too, stored claims are signed as the
    /// jsonb's own text: a fraction keeps its trailing zero and a 30-digit
    /// numeric every digit (a serde round trip through f64 kept neither).
    #[pg_test]
    fn sign_jwt_with_a_signing_key_keeps_stored_claims_exactly() {
        for alg in ["ES256", "EdDSA"] {
            Spi::run(&format!(
                "select identity.activate_signing_key(identity.generate_signing_key('{alg}'))"
            ))
            .unwrap();
            let ok = Spi::get_one_with_args::<bool>(
                "with c(j) as (select '{\"n\": 1.50, \"big\": 123456789012345678901234567890.5, \"s\": \"é\"}'::jsonb), \
                      t(tok) as (select identity.sign_jwt(j) from c) \
                 select identity.verify_jwt(tok) - 'iat' - 'exp' - 'jti' - 'aud' - 'iss' = j \
                    and identity.verify_jwt(tok)->>'n' = '1.50' \
                    and identity.decode_jwt(tok)->'header'->>'alg' = $1 from c, t",
                &[alg.into()],
            )
            .unwrap();
            assert_eq!(ok, Some(true), "{alg}");
        }
    }

    /// A payload the fast encoder declines (fractions, exponents) still
    /// verifies, through jsonb_in, to the same claims.
    #[pg_test]
    fn verify_jwt_reads_payloads_the_encoder_declines() {
        let same = Spi::get_one::<bool>(
            r#"select identity.verify_jwt(identity.sign_jwt('{"x": 1.50, "y": 1e3, "z": [0.5]}')) @> '{"x": 1.50, "y": 1000, "z": [0.5]}'"#,
        )
        .unwrap();
        assert_eq!(same, Some(true));
    }

    /// A remembered signature skips only the HMAC and the parse: the
    /// audience argument, the leeway and the expiry are checked on every call.
    #[pg_test]
    fn a_remembered_token_is_still_checked_on_every_call() {
        let t = Spi::get_one::<String>(
            "select identity.sign_jwt(jsonb_build_object('aud', 'authenticated', 'exp', extract(epoch from now())::bigint - 10))",
        )
        .unwrap()
        .unwrap();
        let reason = |sql: &str| -> Option<String> {
            Spi::get_one_with_args::<String>(sql, &[t.as_str().into()]).unwrap()
        };
        Spi::run("set identity.jwt_leeway = 60").unwrap();
        for _ in 0..2 {
            assert_eq!(
                reason("select reason from identity.try_verify_jwt($1)"),
                None
            );
        }
        assert_eq!(
            reason("select reason from identity.try_verify_jwt($1, 'other')").as_deref(),
            Some(r#"wrong aud (expected "other")"#)
        );
        // The refusal's reason code (API.md 16), NULL when valid.
        assert_eq!(
            reason("select code from identity.try_verify_jwt($1, 'other')").as_deref(),
            Some("wrong_audience")
        );
        assert_eq!(reason("select code from identity.try_verify_jwt($1)"), None);
        assert_eq!(
            reason("select reason from identity.try_verify_jwt($1)"),
            None
        );
        Spi::run("set identity.jwt_cache_size = 0").unwrap();
        assert_eq!(
            reason("select reason from identity.try_verify_jwt($1)"),
            None
        );
        Spi::run("reset identity.jwt_cache_size").unwrap();
        Spi::run("set identity.jwt_leeway = 0").unwrap();
        assert_eq!(
            reason("select reason from identity.try_verify_jwt($1)").as_deref(),
            Some("expired")
        );
        assert_eq!(
            reason("select code from identity.try_verify_jwt($1)").as_deref(),
            Some("token_expired")
        );
        let explained = Spi::get_one_with_args::<bool>(
            "select (identity.explain_jwt($1))->'valid' = 'false'",
            &[t.as_str().into()],
        )
        .unwrap();
        assert_eq!(explained, Some(true));
    }

    #[pg_test(error = "token is malformed")]
    fn decode_jwt_two_parts_is_an_error() {
        Spi::run("select identity.decode_jwt('abc.def')").unwrap();
    }
}
