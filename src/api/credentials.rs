//! Section 7 of API.md: AI-service credentials (OpenRouter-style keys).
//!
//! The secret is sealed with XChaCha20-Poly1305 under identity.encryption_key
//! before it reaches SQL (`core::aead`), with the credential's id and
//! organization as associated data (`core::users::credential_aad`): only
//! ciphertext and the last 4 characters are ever written. Who may do what is
//! `core::authz::may_credential`; reads and writes run in
//! `spi::privileged` after that decision. Every operation is audited
//! without the secret.
//!
//! Pass secrets as bound parameters (any driver's `$1`), not as literals in
//! the query text: Postgres may log a failing statement's text.

use crate::api::actor;
use crate::api::keys::encryption_key;
use crate::core::aead;
use crate::core::authz::{self, CredentialFacts, CredentialOp, OrgId, Subject, UserId};
use crate::core::claims::{uuid_bytes, uuid_text};
use crate::core::error::{required, IdentityError, Kind};
use crate::core::users::{self as rules, check_name};
use crate::pg::clock::new_uuid;
use crate::pg::error::ErrorReport;
use crate::pg::error::PgResult;
use crate::pg::error::{Pg, PgError};
use crate::pg::ids::{FromUuid, ToUuid};
use crate::pg::jsonb::RawJsonb;
use crate::pg::spi;
use pgrx::prelude::*;
use pgrx::{AnyNumeric, JsonB, Uuid};
use rand::rngs::OsRng;
use rand::RngCore;
use serde_json::{json, Value};

/// The credential shape of API.md section 10, from a row aliased `c`.
macro_rules! credential_json {
    () => {
        "jsonb_build_object('id', c.id, 'user_id', c.user_id, 'organization_id', c.organization_id, \
           'provider', c.provider, 'name', c.name, 'last4', c.last4, 'is_default', c.is_default, \
           'is_system', c.is_system, 'enabled', c.enabled, 'credit_limit', c.credit_limit, \
           'usage_total', c.usage_total, 'exhausted_at', c.exhausted_at, \
           'created_at', c.created_at, 'updated_at', c.updated_at)"
    };
}

/// A non-negative, finite numeric argument.
fn amount_arg(v: &AnyNumeric, what: &'static str) -> Result<(), IdentityError> {
    let t = v.to_string();
    if t.starts_with('-')
        || t.eq_ignore_ascii_case("nan")
        || t.to_ascii_lowercase().contains("infinity")
    {
        return Err(IdentityError::invalid(what).detail("a finite number >= 0"));
    }
    Ok(())
}

fn seal(key: &aead::Keyring, id: &str, org: Option<&str>, secret: &str) -> Vec<u8> {
    let mut nonce = [0u8; aead::NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    key.seal(nonce, secret.as_bytes(), &rules::credential_aad(id, org))
}

/// Moves user `user`'s credentials to organization `new_org` (update_user
/// changed it): each row's organization_id, and its ciphertext re-sealed,
/// since the organization is bound into it as associated data. Runs inside
/// the caller's `spi::privileged`; 55000 without the encryption key (and
/// then update_user writes nothing). Returns how many moved.
pub fn follow_owner(user: UserId, new_org: Option<OrgId>) -> PgResult<usize> {
    let user = user.uuid();
    let new = new_org.map(|o| o.uuid());
    lock_owner(user)?;
    let ids = spi::column_mut::<Uuid>(
        "select id from identity.credentials where user_id = $1 and organization_id is distinct from $2 for update",
        &[user.into(), new.into()],
    )?;
    if ids.is_empty() {
        return Ok(0);
    }
    let key = encryption_key().pg()?;
    for id in &ids {
        pgrx::check_for_interrupts!();
        let id_text = uuid_text(id.as_bytes());
        let old = spi::one::<Uuid>(
            "select organization_id from identity.credentials where id = $1",
            &[(*id).into()],
        )?
        .map(|o| uuid_text(o.as_bytes()));
        let sealed = spi::one::<Vec<u8>>(
            "select ciphertext from identity.credentials where id = $1",
            &[(*id).into()],
        )?
        .ok_or_else(|| authz::not_found("credential does not exist"))
        .pg()?;
        let plain = key
            .open(&sealed, &rules::credential_aad(&id_text, old.as_deref()))
            .pg()?;
        let secret = String::from_utf8(plain)
            .map_err(|_| IdentityError::not_configured("secret cannot be decrypted"))
            .pg()?;
        let new_text = new.map(|o| uuid_text(o.as_bytes()));
        let resealed = seal(&key, &id_text, new_text.as_deref(), &secret);
        spi::run(
            "update identity.credentials set organization_id = $2, ciphertext = $3, updated_at = now() where id = $1",
            &[(*id).into(), new.into(), resealed.into()],
        )?;
    }
    Ok(ids.len())
}

/// The facts authorization needs, read (and row-locked when `lock`).
fn facts(id: Uuid, lock: bool) -> PgResult<Option<CredentialFacts>> {
    macro_rules! facts_sql {
        () => {
            "select jsonb_build_object('user_id', user_id, 'organization_id', organization_id, 'is_system', is_system, \
                    'enabled', enabled) from identity.credentials where id = $1"
        };
    }
    let row = if lock {
        spi::column_mut::<JsonB>(concat!(facts_sql!(), " for update"), &[id.into()])?
            .into_iter()
            .next()
    } else {
        spi::one::<JsonB>(facts_sql!(), &[id.into()])?
    };
    Ok(row.map(|JsonB(r)| CredentialFacts {
        owner: UserId(
            r["user_id"]
                .as_str()
                .and_then(uuid_bytes)
                .expect("user_id is not null"),
        ),
        org: r["organization_id"]
            .as_str()
            .and_then(uuid_bytes)
            .map(OrgId),
        is_system: r["is_system"].as_bool().unwrap_or(true),
        enabled: r["enabled"].as_bool().unwrap_or(false),
    }))
}

/// Authorizes `op` on credential `id` for `s`; P0002 when it does not exist
/// or is not visible. Runs inside `spi::privileged`.
///
/// A change may move the owner's default, which takes the owner's lock and
/// then other credential rows (`make_default`). So a change takes the
/// owner's lock before this credential's row: every path takes the locks in
/// the order owner, then credentials, and concurrent changes of one user's
/// credentials queue instead of deadlocking.
fn authorize(s: &Subject, id: Uuid, op: CredentialOp) -> PgResult<CredentialFacts> {
    if op == CredentialOp::Change {
        // The owner of a credential never changes, so reading it unlocked is safe.
        if let Some(owner) = spi::one::<Uuid>(
            "select user_id from identity.credentials where id = $1",
            &[id.into()],
        )? {
            lock_owner(owner)?;
        }
    }
    let target = uuid_text(id.as_bytes());
    let refuse = |e| {
        actor::refused(
            s,
            "credential",
            "credential.refused",
            Some(&target),
            op_name(op),
            e,
        )
    };
    let Some(f) = facts(id, op != CredentialOp::Read)? else {
        return Err(refuse(authz::not_found("credential does not exist")));
    };
    authz::may_credential(s, &f, op).map_err(refuse)?;
    Ok(f)
}

fn credential(id: Uuid) -> PgResult<Value> {
    spi::one::<JsonB>(
        concat!(
            "select ",
            credential_json!(),
            " from identity.credentials c where c.id = $1"
        ),
        &[id.into()],
    )?
    .map(|j| j.0)
    .ok_or_else(|| authz::not_found("credential does not exist").pg_error())
}

/// The actor, checked for `scope`, and the required credential id: how
/// every function on one credential starts.
/// The operation's name in a refusal's audit row.
fn op_name(op: CredentialOp) -> &'static str {
    match op {
        CredentialOp::Read => "read",
        CredentialOp::Change => "change",
        CredentialOp::Delete => "delete",
        CredentialOp::Reveal => "reveal",
        CredentialOp::Use => "record_usage",
    }
}

fn caller_on(credential_id: Option<Uuid>, scope: &'static str) -> PgResult<(Subject, Uuid)> {
    let s = actor::subject()?;
    authz::require_scope(&s, scope)
        .map_err(|e| actor::refused(&s, "credential", "credential.refused", None, scope, e))?;
    Ok((
        s,
        required(credential_id, "credential_id is required").pg()?,
    ))
}

fn audit(
    s: &Subject,
    f: &CredentialFacts,
    action: &'static str,
    id: Uuid,
    details: Value,
) -> PgResult<()> {
    let mut d = details;
    d["owner_id"] = json!(f.owner.text());
    actor::audit(
        s,
        f.org,
        action,
        "credential",
        Some(&uuid_text(id.as_bytes())),
        d,
    )
}

/// Serializes the changes of one user's credentials (defaults, credit):
/// `store::locks`, keyed on the user, not a lock on the user's row (a
/// user's own open transaction after a credential change never delays an
/// admin's update_user, suspend_user or delete_user of that user), and not
/// an advisory lock any role could take first.
fn lock_owner(owner: Uuid) -> PgResult<()> {
    crate::store::locks::lock(crate::store::locks::Mutex::CredentialsOf(*owner.as_bytes()))
}

/// Makes `id` the only default of `owner`: the owner's row is locked first,
/// so concurrent calls for one user run one after the other and the partial
/// unique index never sees two defaults.
fn make_default(owner: UserId, id: Uuid) -> PgResult<()> {
    lock_owner(owner.uuid())?;
    spi::run(
        "update identity.credentials set is_default = false, updated_at = now() \
         where user_id = $1 and is_default and id <> $2",
        &[owner.uuid().into(), id.into()],
    )?;
    spi::run(
        "update identity.credentials set is_default = true, updated_at = now() where id = $1",
        &[id.into()],
    )
}

struct NewCredential<'a> {
    owner: UserId,
    org: Option<OrgId>,
    provider: &'a str,
    name: &'a str,
    secret: &'a str,
    is_default: bool,
    is_system: bool,
    credit_limit: Option<AnyNumeric>,
}

fn insert(s: &Subject, n: NewCredential) -> PgResult<Value> {
    rules::check_provider(n.provider).pg()?;
    check_name(Some(n.name), "name must be 1 to 200 characters", 200).pg()?;
    rules::check_secret(n.secret).pg()?;
    if let Some(l) = &n.credit_limit {
        amount_arg(l, "credit_limit must be a finite number >= 0").pg()?;
    }
    let key = encryption_key().pg()?;
    let id_text = new_uuid();
    let id = Uuid::from_bytes(uuid_bytes(&id_text).expect("uuid"));
    let org_text = n.org.map(|o| o.text());
    let sealed = seal(&key, &id_text, org_text.as_deref(), n.secret);
    spi::privileged(|| {
        let inserted = spi::write_one::<Uuid>(
            include_str!("../../sql/queries/credentials_insert.sql"),
            &[
                id.into(),
                n.owner.uuid().into(),
                n.org.map(|o| o.uuid()).into(),
                n.provider.into(),
                n.name.into(),
                sealed.as_slice().into(),
                rules::last4(n.secret).into(),
                n.is_system.into(),
                n.credit_limit.clone().into(),
                s.id().map(|u| u.uuid()).into(),
            ],
        )?;
        if inserted.is_none() {
            return Err(IdentityError::duplicate(
                "a credential with this provider and name already exists",
            )
            .hint("choose another name, or update the existing credential")
            .pg_error());
        }
        if n.is_default {
            make_default(n.owner, id)?;
        }
        let f = CredentialFacts {
            owner: n.owner,
            org: n.org,
            is_system: n.is_system,
            enabled: true,
        };
        audit(
            s,
            &f,
            if n.is_system {
                "credential.system_created"
            } else {
                "credential.created"
            },
            id,
            json!({"provider": n.provider, "name": n.name, "is_default": n.is_default}),
        )?;
        credential(id)
    })
}

/// A credential of the actor (a signed-in user), shown masked.
#[pg_extern(schema = "identity", volatile)]
fn create_credential(
    provider: Option<&str>,
    name: Option<&str>,
    secret: Option<&str>,
    is_default: default!(Option<bool>, "false"),
    credit_limit: default!(Option<AnyNumeric>, "NULL"),
) -> PgResult<JsonB> {
    let s = actor::subject()?;
    authz::require_scope(&s, "credentials:write").pg()?;
    let Subject::User(me) = &s else {
        return Err(
            IdentityError::invalid("system has no credentials of its own")
                .hint("use identity.create_system_credential(user_id, provider, secret)")
                .pg_error(),
        );
    };
    insert(
        &s,
        NewCredential {
            owner: me.id,
            org: me.org,
            provider: required(provider, "provider is required").pg()?,
            name: required(name, "name is required").pg()?,
            secret: required(secret, "secret is required").pg()?,
            is_default: is_default.unwrap_or(false),
            is_system: false,
            credit_limit,
        },
    )
    .map(JsonB)
}

/// A system credential for `user_id` (system only): users can read and use
/// it but not change, disable or delete it. It becomes the user's default
/// when they have none, and completes the user's pending
/// `credential.requested` events.
#[pg_extern(schema = "identity", volatile)]
fn create_system_credential(
    user_id: Option<Uuid>,
    provider: Option<&str>,
    secret: Option<&str>,
    credit_limit: default!(Option<AnyNumeric>, "NULL"),
) -> PgResult<JsonB> {
    let s = actor::subject()?;
    authz::require_system(&s, "only system may create system credentials").pg()?;
    let user = required(user_id, "user_id is required").pg()?;
    let org = crate::api::actor::target(user.user_id())
        .ok_or_else(|| authz::not_found("user does not exist"))
        .pg()?;
    let has_default = spi::privileged(|| {
        spi::one::<bool>(
            "select true from identity.credentials where user_id = $1 and is_default",
            &[user.into()],
        )
    })?
    .is_some();
    let c = insert(
        &s,
        NewCredential {
            owner: user.user_id(),
            org,
            provider: required(provider, "provider is required").pg()?,
            name: "system",
            secret: required(secret, "secret is required").pg()?,
            is_default: !has_default,
            is_system: true,
            credit_limit,
        },
    )?;
    spi::privileged(|| {
        spi::run(
            "update identity.events set processed_at = now() \
             where type = 'credential.requested' and user_id = $1 and processed_at is null",
            &[user.into()],
        )
    })?;
    Ok(JsonB(c))
}

/// The actor's credentials, masked (system: everyone's). Audited (one row
/// per call, with the count), as every credential operation is: VOLATILE
/// for that reason.
#[pg_extern(schema = "identity", volatile)]
fn list_credentials() -> Result<SetOfIterator<'static, JsonB>, ErrorReport> {
    let s = actor::subject()?;
    authz::require_scope(&s, "credentials:read").pg()?;
    let rows = spi::privileged(|| {
        let rows = spi::column::<JsonB>(
            concat!(
                "select ",
                credential_json!(),
                " from identity.credentials c \
                     where $1::uuid is null or c.user_id = $1 order by c.created_at, c.id"
            ),
            &[s.id().map(|u| u.uuid()).into()],
        )?;
        actor::audit(
            &s,
            s.org(),
            "credential.listed",
            "credential",
            None,
            json!({"count": rows.len()}),
        )?;
        Ok::<_, ErrorReport>(rows)
    })?;
    Ok(SetOfIterator::new(rows))
}

/// One credential, masked: the owner, an admin of its organization, system.
/// Audited.
#[pg_extern(schema = "identity", volatile)]
fn get_credential(credential_id: Option<Uuid>) -> PgResult<JsonB> {
    let (s, id) = caller_on(credential_id, "credentials:read")?;
    spi::privileged(|| {
        let f = authorize(&s, id, CredentialOp::Read)?;
        let c = credential(id)?;
        audit(&s, &f, "credential.read", id, json!({}))?;
        Ok(JsonB(c))
    })
}

/// Changes name, credit_limit, or the secret (re-encrypted). The owner
/// (not on system credentials) or system.
#[pg_extern(schema = "identity", volatile)]
fn update_credential(credential_id: Option<Uuid>, changes: Option<RawJsonb>) -> PgResult<JsonB> {
    let (s, id) = caller_on(credential_id, "credentials:write")?;
    let changes = required(changes, "changes is required")
        .pg()?
        .bounded("changes is too large or too deeply nested")
        .pg()?;
    let m = rules::check_credential_changes(&changes).pg()?;
    let key = if m.contains_key("secret") {
        Some(encryption_key().pg()?)
    } else {
        None
    };
    let fields: Vec<&String> = m.keys().collect();
    spi::privileged(|| {
        let f = authorize(&s, id, CredentialOp::Change)?;
        let (sealed, last4) = match (m.get("secret").and_then(Value::as_str), key) {
            (Some(secret), Some(key)) => {
                let id_text = uuid_text(id.as_bytes());
                let org = f.org.map(|o| o.text());
                (
                    Some(seal(&key, &id_text, org.as_deref(), secret)),
                    Some(rules::last4(secret)),
                )
            }
            _ => (None, None),
        };
        let mut public = m.clone();
        public.remove("secret");
        let updated = spi::write_one::<bool>(
            include_str!("../../sql/queries/credentials_update_credential.sql"),
            &[
                id.into(),
                JsonB(Value::Object(public)).into(),
                sealed.into(),
                last4.into(),
            ],
        )?;
        if updated.is_none() {
            return Err(IdentityError::duplicate(
                "a credential with this provider and name already exists",
            )
            .pg_error());
        }
        audit(&s, &f, "credential.updated", id, json!({"fields": fields}))?;
        credential(id).map(JsonB)
    })
}

/// Deletes a credential and its ciphertext: the owner (not system
/// credentials) or system.
#[pg_extern(schema = "identity", volatile)]
fn delete_credential(credential_id: Option<Uuid>) -> PgResult<()> {
    let (s, id) = caller_on(credential_id, "credentials:write")?;
    spi::privileged(|| {
        let f = authorize(&s, id, CredentialOp::Delete)?;
        spi::run(
            "delete from identity.credentials where id = $1",
            &[id.into()],
        )?;
        audit(&s, &f, "credential.deleted", id, json!({}))
    })
}

/// Makes a credential the owner's only default (enforced by a unique index;
/// concurrent calls serialize on the owner's row).
#[pg_extern(schema = "identity", volatile)]
fn set_default_credential(credential_id: Option<Uuid>) -> PgResult<()> {
    let (s, id) = caller_on(credential_id, "credentials:write")?;
    spi::privileged(|| {
        let f = authorize(&s, id, CredentialOp::Change)?;
        if !f.enabled {
            return Err(IdentityError::invalid("credential is disabled")
                .hint("enable it first")
                .pg_error());
        }
        make_default(f.owner, id)?;
        audit(&s, &f, "credential.default_set", id, json!({}))
    })
}

/// Enables or disables a credential (disabling also clears its default).
#[pg_extern(schema = "identity", volatile)]
fn set_credential_enabled(credential_id: Option<Uuid>, enabled: Option<bool>) -> PgResult<()> {
    let (s, id) = caller_on(credential_id, "credentials:write")?;
    let enabled = required(enabled, "enabled is required").pg()?;
    spi::privileged(|| {
        let f = authorize(&s, id, CredentialOp::Change)?;
        spi::run(
            "update identity.credentials set enabled = $2, is_default = is_default and $2, updated_at = now() where id = $1",
            &[id.into(), enabled.into()],
        )?;
        audit(
            &s,
            &f,
            if enabled {
                "credential.enabled"
            } else {
                "credential.disabled"
            },
            id,
            json!({}),
        )
    })
}

/// The secret in clear, for the owner or system, enabled credentials only.
/// Audited. A wrong identity.encryption_key is 55000, never garbage.
#[pg_extern(schema = "identity", volatile)]
fn reveal_credential_secret(credential_id: Option<Uuid>) -> PgResult<String> {
    let (s, id) = caller_on(credential_id, "credentials:reveal")?;
    let key = encryption_key().pg()?;
    spi::privileged(|| {
        let f = authorize(&s, id, CredentialOp::Reveal)?;
        let sealed = spi::one::<Vec<u8>>(
            "select ciphertext from identity.credentials where id = $1",
            &[id.into()],
        )?
        .ok_or_else(|| authz::not_found("credential does not exist"))
        .pg()?;
        let org = f.org.map(|o| o.text());
        let plain = key
            .open(
                &sealed,
                &rules::credential_aad(&uuid_text(id.as_bytes()), org.as_deref()),
            )
            .pg()?;
        let text = String::from_utf8(plain)
            .map_err(|_| IdentityError::not_configured("secret cannot be decrypted"))
            .pg()?;
        // Outside the caller's transaction: the secret is in the caller's
        // hands even if it rolls back.
        actor::audit_outside(
            &s,
            f.org,
            "credential.revealed",
            "credential",
            Some(&uuid_text(id.as_bytes())),
            json!({"owner_id": f.owner.text()}),
        )?;
        Ok(text)
    })
}

/// Records a call's cost. With a credit limit, a call that would pass it is
/// refused (42501) and nothing is recorded; concurrent recorders cannot
/// overspend (the check and the add are one row update). Reaching the limit
/// exactly marks the credential exhausted.
#[pg_extern(schema = "identity", volatile)]
fn record_credential_usage(
    credential_id: Option<Uuid>,
    amount: Option<AnyNumeric>,
    tokens: default!(Option<i64>, "NULL"),
) -> PgResult<()> {
    let (s, id) = caller_on(credential_id, "credentials:use")?;
    let amount = required(amount, "amount is required").pg()?;
    amount_arg(&amount, "amount must be a finite number >= 0").pg()?;
    if tokens.is_some_and(|t| t < 0) {
        return Err(IdentityError::invalid("tokens must be >= 0").pg_error());
    }
    spi::privileged(|| {
        let f = authorize(&s, id, CredentialOp::Use)?;
        let added = spi::write_one::<bool>(
            include_str!("../../sql/queries/credentials_record_credential_usage.sql"),
            &[id.into(), amount.clone().into()],
        )?;
        if added.is_none() {
            let remaining = spi::one::<String>(
                "select greatest(credit_limit - usage_total, 0)::text from identity.credentials where id = $1",
                &[id.into()],
            )?;
            return Err(IdentityError::new(Kind::Forbidden, "credit limit reached")
                .reason(crate::core::reason::Reason::UsageExceeded)
                .detail(format!(
                    "remaining credit {}",
                    remaining.unwrap_or_default()
                ))
                .hint("raise credit_limit with update_credential, or use another credential")
                .pg_error());
        }
        spi::run(
            "insert into identity.credential_usage (credential_id, user_id, amount, tokens) values ($1, $2, $3, $4)",
            &[id.into(), Uuid::from_bytes(f.owner.0).into(), amount.clone().into(), tokens.into()],
        )?;
        audit(
            &s,
            &f,
            "credential.usage_recorded",
            id,
            json!({"amount": amount.to_string(), "tokens": tokens}),
        )
    })
}

/// `{calls, total_amount, total_tokens, remaining, recent}` (remaining is
/// null without a limit; recent: the last 20 calls). Audited.
#[pg_extern(schema = "identity", volatile)]
fn credential_usage(credential_id: Option<Uuid>) -> PgResult<JsonB> {
    let (s, id) = caller_on(credential_id, "credentials:read")?;
    spi::privileged(|| {
        let f = authorize(&s, id, CredentialOp::Read)?;
        audit(&s, &f, "credential.usage_read", id, json!({}))?;
        spi::one::<JsonB>(
            include_str!("../../sql/queries/credentials_credential_usage.sql"),
            &[id.into()],
        )?
        .ok_or_else(|| authz::not_found("credential does not exist").pg_error())
    })
}
