//! Asymmetric signing keys and the JWKS (API.md section 3). Private keys are
//! stored only as AEAD ciphertext under identity.encryption_key, bound to
//! their kid. Lookups on the signing and verification paths are index probes
//! (heap.rs) with per-backend caches of parsed keys; management functions are
//! SECURITY DEFINER with a pinned search_path.

use crate::core::aead;
use crate::core::error::{required, IdentityError, Kind};
use crate::core::keys::{self, Alg, KeyStatus, SigningKey, VerifyingKey};
use crate::pg::error::PgResult;
use crate::pg::error::{Pg, PgError};
use crate::pg::{gucs, probe, spi};
use crate::store::tables;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pgrx::prelude::*;
use pgrx::JsonB;
use rand::rngs::OsRng;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// How long a retired key stays in the JWKS and keeps verifying: the longest
/// lifetime sign_jwt allows (366 days), so no token it signed outlives it.
const RETIRED_KEY_SECONDS: i64 = 366 * 86_400;

thread_local! {
    static VERIFYING: RefCell<HashMap<String, Rc<VerifyingKey>>> = RefCell::new(HashMap::new());
    static SIGNING: RefCell<HashMap<String, Rc<SigningKey>>> = RefCell::new(HashMap::new());
}

fn aad(kid: &str) -> Vec<u8> {
    format!("identity.signing_keys:{kid}").into_bytes()
}

/// The encryption keyring: identity.encryption_key (seals, and opens) and
/// identity.previous_encryption_keys (open only, until identity.rekey has
/// re-sealed what they sealed).
pub fn encryption_key() -> Result<aead::Keyring, IdentityError> {
    let text = gucs::encryption_key().ok_or_else(|| {
        IdentityError::not_configured("identity.encryption_key is not set")
            .hint(
                "set identity.encryption_key (openssl rand -base64 32) in postgresql.conf or a file it \
                 includes, readable only by the server's OS user, then SELECT pg_reload_conf()",
            )
    })?;
    let current = aead::parse_key(&text)?;
    let previous = match gucs::previous_encryption_keys() {
        Some(p) => aead::parse_previous_keys(&p)?,
        None => Vec::new(),
    };
    Ok(aead::Keyring::new(current, previous))
}

/// What a token's kid names.
pub enum KeyLookup {
    /// A key that may verify tokens now: active, next, or retired and not yet
    /// expired.
    Usable(Rc<VerifyingKey>),
    /// A revoked key: refused as such ("key revoked").
    Revoked,
    /// No key, or a retired one past its expiry.
    Unknown,
}

/// The public key named `kid`. The row's state is read at every call (one
/// index probe under the current snapshot), so a revocation counts from the
/// next verification on every connection, and on a standby once replayed;
/// only the parsed key is cached.
pub fn verifying_key(kid: &str, now: i64) -> Result<KeyLookup, IdentityError> {
    let row = probe::probe(&tables::SIGNING_KEYS, probe::Key::Text(kid), |r| {
        (r.text(0), r.jsonb(1), r.text(2), r.epoch_seconds(3))
    });
    let Some((Some(alg), jwk, Some(status), expires)) = row else {
        return Ok(KeyLookup::Unknown);
    };
    match KeyStatus::parse(&status) {
        Some(KeyStatus::Revoked) => return Ok(KeyLookup::Revoked),
        Some(st) if st.verifies(expires, now) => {}
        _ => return Ok(KeyLookup::Unknown),
    }
    if let Some(k) = VERIFYING.with(|c| c.borrow().get(kid).cloned()) {
        return Ok(KeyLookup::Usable(k));
    }
    let alg = Alg::parse(&alg)
        .ok_or_else(|| IdentityError::not_configured("signing key has an unknown alg"))?;
    let Some(JsonB(Value::Object(jwk))) = jwk else {
        return Err(IdentityError::not_configured(
            "signing key has no public JWK",
        ));
    };
    let k = Rc::new(VerifyingKey::from_jwk(alg, &jwk)?);
    VERIFYING.with(|c| c.borrow_mut().insert(kid.to_string(), k.clone()));
    Ok(KeyLookup::Usable(k))
}

/// The active asymmetric key (kid, alg, parsed private key), if any.
/// The active asymmetric key: kid, algorithm, the decrypted private key.
pub use crate::store::cache::ActiveKey;

/// The active key, from this backend's copy (cache.rs), read from the table
/// once per change of identity.signing_keys.
pub fn active_signing_key() -> Result<Option<ActiveKey>, IdentityError> {
    crate::store::cache::active_key(read_active_signing_key)
}

fn read_active_signing_key() -> Result<Option<ActiveKey>, IdentityError> {
    let row = probe::probe(&tables::ACTIVE_SIGNING_KEY, probe::Key::Bool(true), |r| {
        (r.text(0), r.text(1), r.bytea(2), r.text(3))
    });
    let Some((Some(kid), Some(alg), Some(sealed), Some(status))) = row else {
        return Ok(None);
    };
    if KeyStatus::parse(&status) != Some(KeyStatus::Active) {
        return Ok(None);
    }
    let alg = Alg::parse(&alg)
        .ok_or_else(|| IdentityError::not_configured("signing key has an unknown alg"))?;
    if let Some(k) = SIGNING.with(|c| c.borrow().get(&kid).cloned()) {
        return Ok(Some(ActiveKey { kid, alg, key: k }));
    }
    let der = encryption_key()?.open(&sealed, &aad(&kid))?;
    let k = Rc::new(SigningKey::from_pkcs8(alg, &der)?);
    SIGNING.with(|c| c.borrow_mut().insert(kid.clone(), k.clone()));
    Ok(Some(ActiveKey { kid, alg, key: k }))
}

fn audit(action: &'static str, kid: &str, details: Value) -> PgResult<()> {
    crate::api::actor::audit_by_caller(action, "signing_key", Some(kid), details)
}

/// A new key pair (ES256, RS256 or EdDSA), stored as `next`; returns its kid.
/// Publish it (jwks) before activating it, so verifiers already know it.
#[pg_extern(schema = "identity", volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn generate_signing_key(alg: default!(Option<&str>, "'ES256'")) -> PgResult<String> {
    // The SQL default is 'ES256'; an explicit NULL is a mistake, not a request.
    let alg_name = required(alg, "alg is required").pg()?;
    let alg = Alg::parse(alg_name)
        .ok_or_else(|| {
            IdentityError::invalid("unsupported signing algorithm")
                .detail(format!("alg {alg_name:?}"))
                .hint("use ES256, RS256 or EdDSA")
        })
        .pg()?;
    let enc = encryption_key().pg()?;
    let mut kid_bytes = [0u8; 16];
    rand::RngCore::fill_bytes(&mut OsRng, &mut kid_bytes);
    let kid = URL_SAFE_NO_PAD.encode(kid_bytes);
    let (der, jwk) = keys::generate(alg, &kid, &mut OsRng);
    let mut nonce = [0u8; aead::NONCE_LEN];
    rand::RngCore::fill_bytes(&mut OsRng, &mut nonce);
    let sealed = enc.seal(nonce, &der, &aad(&kid));
    spi::run(
        "insert into identity.signing_keys (kid, alg, public_jwk, private_key_ciphertext, status) values ($1, $2, $3, $4, 'next')",
        &[kid.as_str().into(), alg.name().into(), JsonB(Value::Object(jwk)).into(), sealed.as_slice().into()],
    )?;
    audit("signing_key.generated", &kid, json!({"alg": alg.name()}))?;
    Ok(kid)
}

/// Makes `kid` the signing key; the previously active key is retired (it
/// keeps verifying, and stays in the JWKS, for 366 days).
#[pg_extern(schema = "identity", volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn activate_signing_key(kid: Option<&str>) -> PgResult<()> {
    let kid = required(kid, "kid is required").pg()?;
    kid_arg(kid)?;
    let status = locked_status(kid)?;
    match status {
        None => {
            let e = IdentityError::new(Kind::NotFound, "signing key does not exist");
            return Err(refused(kid, "activate", e));
        }
        Some(Some(KeyStatus::Retired)) => {
            let e = IdentityError::invalid("a retired signing key cannot be activated again");
            return Err(refused(kid, "activate", e));
        }
        Some(Some(KeyStatus::Revoked)) => {
            let e = IdentityError::invalid("a revoked signing key cannot be activated");
            return Err(refused(kid, "activate", e));
        }
        _ => {}
    }
    spi::run(
        "update identity.signing_keys set status = 'retired', retired_at = now(), expires_at = now() + make_interval(secs => $2::float8) \
         where status = 'active' and kid <> $1",
        &[kid.into(), (RETIRED_KEY_SECONDS as f64).into()],
    )?;
    spi::run(
        "update identity.signing_keys set status = 'active', activated_at = now() where kid = $1",
        &[kid.into()],
    )?;
    audit("signing_key.activated", kid, json!({}))
}

/// Retires `kid`: it stops signing at once and keeps verifying (and stays in
/// the JWKS) for 366 days. Retiring the active key makes sign_jwt fall back
/// to HS256.
#[pg_extern(schema = "identity", volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn retire_signing_key(kid: Option<&str>) -> PgResult<()> {
    let kid = required(kid, "kid is required").pg()?;
    kid_arg(kid)?;
    let found = spi::write_one::<String>(
        include_str!("../../sql/queries/keys_retire_signing_key.sql"),
        &[kid.into(), (RETIRED_KEY_SECONDS as f64).into()],
    )?;
    if found.is_none() {
        let e = match key_status(kid)? {
            Some(KeyStatus::Revoked) => {
                IdentityError::invalid("a revoked signing key stays revoked")
            }
            _ => IdentityError::new(Kind::NotFound, "signing key does not exist"),
        };
        return Err(refused(kid, "retire", e));
    }
    audit("signing_key.retired", kid, json!({}))
}

/// `e`, after recording the refused attempt on key `kid` outside the
/// caller's transaction (`signing_key.refused`).
fn refused(kid: &str, operation: &str, e: IdentityError) -> crate::pg::error::ErrorReport {
    // The caller as recorded (a refusal is recorded even when the claims
    // name no usable user: then as the system it fell back to before).
    let s = crate::api::actor::subject().unwrap_or(crate::core::authz::Subject::System);
    crate::api::actor::refused(
        &s,
        "signing_key",
        "signing_key.refused",
        Some(kid),
        operation,
        e,
    )
}

/// A kid argument: at most 100 bytes, as the table allows (22023), checked
/// before any lookup.
fn kid_arg(kid: &str) -> PgResult<()> {
    if kid.len() > 100 {
        return Err(IdentityError::invalid("kid is too long")
            .detail("at most 100 bytes")
            .pg_error());
    }
    Ok(())
}

/// A key's state, its row locked for the rest of the transaction: None when
/// the key does not exist (Some(None): a state this build does not know).
fn locked_status(kid: &str) -> PgResult<Option<Option<KeyStatus>>> {
    let status = spi::column_mut::<String>(
        "select status from identity.signing_keys where kid = $1 for update",
        &[kid.into()],
    )?;
    Ok(status.first().map(|st| KeyStatus::parse(st)))
}

/// A key's state, None when it does not exist.
fn key_status(kid: &str) -> PgResult<Option<KeyStatus>> {
    Ok(spi::one::<String>(
        "select status from identity.signing_keys where kid = $1",
        &[kid.into()],
    )?
    .as_deref()
    .and_then(KeyStatus::parse))
}

/// Revokes `kid` for good: from the next verification on, on every
/// connection and standby, tokens naming it are refused ("key revoked"), and
/// it leaves jwks(). The active key cannot be revoked until another is
/// activated (55000). Revoking a revoked key changes nothing; no function
/// makes a revoked key usable again.
#[pg_extern(schema = "identity", volatile, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn revoke_signing_key(kid: Option<&str>) -> PgResult<()> {
    let kid = required(kid, "kid is required").pg()?;
    kid_arg(kid)?;
    let status = locked_status(kid)?;
    match status {
        None => Err(refused(
            kid,
            "revoke",
            IdentityError::new(Kind::NotFound, "signing key does not exist"),
        )),
        Some(Some(KeyStatus::Active)) => Err(refused(
            kid,
            "revoke",
            IdentityError::not_configured("the active signing key cannot be revoked").hint(
                "activate another key first (identity.activate_signing_key), then revoke this one",
            ),
        )),
        Some(Some(KeyStatus::Revoked)) => Ok(()),
        Some(_) => {
            spi::run(
                "update identity.signing_keys set status = 'revoked', revoked_at = pg_catalog.now() \
                 where kid = $1",
                &[kid.into()],
            )?;
            audit(
                "signing_key.revoked",
                kid,
                json!({"previous_status": status.flatten().map(KeyStatus::as_str)}),
            )
        }
    }
}

/// `{"keys": [...]}`: the public JWKs of the active, next and not-yet-expired
/// retired keys, as standard JWT libraries read them.
#[pg_extern(schema = "identity", stable, security_definer)]
#[search_path(pg_catalog, pg_temp)]
fn jwks() -> PgResult<JsonB> {
    Ok(
        spi::one::<JsonB>(include_str!("../../sql/queries/keys_jwks.sql"), &[])?
            .unwrap_or(JsonB(json!({"keys": []}))),
    )
}

/// `e` with the row it is about in DETAIL (ids only, never a secret).
fn row_named(mut e: IdentityError, what: &str, id: &str) -> IdentityError {
    let d = e.detail.take().map_or(String::new(), |d| format!("; {d}"));
    e.detail = Some(format!("{what} {id}{d}"));
    e
}

/// Re-seals credentials and private signing keys that are not under the
/// current identity.encryption_key (sealed by a key now in
/// identity.previous_encryption_keys, or by 0.1.0), at most `batch_size`
/// of them, and returns how many it re-sealed. Call it until it returns 0
/// (each call in its own transaction: resumable, and every batch commits
/// on its own); then the previous keys can be dropped with nothing lost.
/// Safe while other sessions read and write: the rows of a batch are locked
/// (a concurrent change of one waits, or re-seals it first, and then it is
/// not in the batch). System only (the admin level without claims); audited.
#[pg_extern(schema = "identity", volatile)]
fn rekey(batch_size: default!(Option<i32>, 1000)) -> PgResult<i64> {
    let s = crate::api::actor::subject()?;
    crate::core::authz::require_system(&s, "only system may re-seal secrets").pg()?;
    let batch = batch_size.unwrap_or(0);
    if !(1..=100_000).contains(&batch) {
        return Err(IdentityError::invalid("batch_size must be 1 to 100000").pg_error());
    }
    let ring = encryption_key().pg()?;
    let current = ring.current_id().to_vec();
    // encode(bytea, 'base64') wraps its output every 76 characters.
    let b64 = |v: &Value, k: &str| {
        let text: String = v[k]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| IdentityError::not_configured("secret cannot be decrypted"))
    };
    spi::privileged(|| {
        let mut credentials = 0i64;
        let rows = spi::column_mut::<JsonB>(
            include_str!("../../sql/queries/keys_rekey_credentials.sql"),
            &[current.as_slice().into(), (batch as i64).into()],
        )?;
        for JsonB(r) in &rows {
            pgrx::check_for_interrupts!();
            let id = r["id"].as_str().unwrap_or_default();
            let org = r["organization_id"].as_str();
            let aad = crate::core::users::credential_aad(id, org);
            // A value no configured key opens stops the run (55000), naming
            // the row: nothing is skipped, so 0 means every value is re-sealed.
            let plain = ring
                .open(&b64(r, "ciphertext").pg()?, &aad)
                .map_err(|e| row_named(e, "credential", id))
                .pg()?;
            let mut nonce = [0u8; aead::NONCE_LEN];
            rand::RngCore::fill_bytes(&mut OsRng, &mut nonce);
            let sealed = ring.seal(nonce, &plain, &aad);
            let id = pgrx::Uuid::from_bytes(
                crate::core::claims::uuid_bytes(id).expect("a credential id is a uuid"),
            );
            spi::run(
                "update identity.credentials set ciphertext = $2 where id = $1",
                &[id.into(), sealed.into()],
            )?;
            credentials += 1;
        }
        let mut signing_keys = 0i64;
        let left = batch as i64 - credentials;
        if left > 0 {
            let rows = spi::column_mut::<JsonB>(
                include_str!("../../sql/queries/keys_rekey_signing_keys.sql"),
                &[current.as_slice().into(), left.into()],
            )?;
            for JsonB(r) in &rows {
                pgrx::check_for_interrupts!();
                let kid = r["kid"].as_str().unwrap_or_default();
                let plain = ring
                    .open(&b64(r, "ciphertext").pg()?, &aad(kid))
                    .map_err(|e| row_named(e, "signing key", kid))
                    .pg()?;
                let mut nonce = [0u8; aead::NONCE_LEN];
                rand::RngCore::fill_bytes(&mut OsRng, &mut nonce);
                let sealed = ring.seal(nonce, &plain, &aad(kid));
                spi::run(
                    "update identity.signing_keys set private_key_ciphertext = $2 where kid = $1",
                    &[kid.into(), sealed.into()],
                )?;
                signing_keys += 1;
            }
        }
        if credentials + signing_keys > 0 {
            crate::api::actor::audit_by_caller(
                "encryption.rekeyed",
                "encryption_key",
                Some(&aead::key_id_hex(&ring.current_id())),
                json!({"credentials": credentials, "signing_keys": signing_keys}),
            )?;
        }
        Ok(credentials + signing_keys)
    })
}
