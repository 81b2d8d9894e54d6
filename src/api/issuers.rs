//! Section 11 of API.md: external identity providers. Trusted issuers and
//! their keys (register_issuer, set_issuer_jwks, remove_issuer,
//! list_issuers), sign-in with their tokens (identity.authenticate and
//! exchange_external_token, through `sign_in`), and Svix-signed webhooks
//! (handle_webhook).
//!
//! A token of a registered issuer is verified with that issuer's keys only
//! (its alg must be the key's: `none`, HS256 and any confusion refused),
//! its `iss` exactly, its options (`aud`, `azp`, leeway); its subject is
//! then mapped to our user through identity.identities (or linked to the
//! user whose external_id it is, when that user is this issuer's or, with
//! match_external_id, provision_user's; or provisioned), and the user's
//! state is checked as for every other token. The claims pinned or signed
//! are ours. Every link is scoped to its issuer: one issuer's tokens and
//! webhooks never reach another issuer's users or organizations.

use crate::api::actor;
use crate::api::users::{self, Provisioned};
use crate::core::authz::{self, Subject};
use crate::core::claims::{self, parse_uuid, uuid_text};
use crate::core::error::{required, IdentityError};
use crate::core::external::{self, ExternalKey, IssuerOptions, OrgSource, Provisioning};
use crate::core::ids::{OrgId, UserId};
use crate::core::jwt::{self, VerifyConfig};
use crate::core::reason::Reason;
use crate::core::svix;
use crate::pg::clock::{interval_seconds, new_uuid, now_unix};
use crate::pg::error::{Pg, PgError, PgResult};
use crate::pg::ids::{FromUuid, ToUuid};
use crate::pg::jsonb::RawJsonb;
use crate::pg::{gucs, jwks_fetch, probe, spi};
use crate::store::tables;
use pgrx::datum::Interval;
use pgrx::prelude::*;
use pgrx::{JsonB, Uuid};
use rand::RngCore;
use serde_json::{json, Map, Value};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// An issuer as verification uses it: its options and parsed keys, at the
/// version of its row they were read from.
pub struct Issuer {
    version: i64,
    options: IssuerOptions,
    keys: Vec<ExternalKey>,
}

thread_local! {
    /// Parsed issuers of this backend, by `iss`; an entry is used only while
    /// its row's version is the same (read by one index probe per call).
    static ISSUERS: RefCell<HashMap<String, Rc<Issuer>>> = RefCell::new(HashMap::new());
}

/// At most this many issuers are remembered (then the map starts over).
const MAX_CACHED: usize = 256;

fn corrupt() -> IdentityError {
    IdentityError::not_configured("an issuer's stored keys or options are corrupt")
        .hint("set them again with identity.register_issuer or identity.set_issuer_jwks")
}

/// A stored set: what parse_jwks accepts, or the empty set of an issuer
/// whose jwks_uri was not fetched yet.
fn stored_keys(jwks: &Value) -> Result<Vec<ExternalKey>, IdentityError> {
    match jwks.get("keys").and_then(Value::as_array) {
        Some(a) if a.is_empty() => Ok(Vec::new()),
        _ => external::parse_jwks(jwks).map_err(|_| corrupt()),
    }
}

/// The registered issuer `iss`, if any (one index probe; keys parsed once
/// per change of its row).
pub fn registered(iss: &str) -> Result<Option<Rc<Issuer>>, IdentityError> {
    if iss.is_empty() || iss.len() > external::MAX_ISSUER_BYTES {
        return Ok(None);
    }
    enum Read {
        Same(Rc<Issuer>),
        New(i64, Option<JsonB>, Option<JsonB>),
    }
    let cached = ISSUERS.with(|c| c.borrow().get(iss).cloned());
    let read = probe::probe(&tables::ISSUERS, probe::Key::Text(iss), |r| {
        let v = r.int8(0).unwrap_or(0);
        match &cached {
            Some(c) if c.version == v => Read::Same(c.clone()),
            _ => Read::New(v, r.jsonb(1), r.jsonb(2)),
        }
    });
    let (version, jwks, options) = match read {
        None => return Ok(None),
        Some(Read::Same(i)) => return Ok(Some(i)),
        Some(Read::New(v, Some(JsonB(j)), Some(JsonB(o)))) => (v, j, o),
        Some(Read::New(..)) => return Err(corrupt()),
    };
    let (options, _, _) = external::parse_options(&options).map_err(|_| corrupt())?;
    let keys = stored_keys(&jwks)?;
    let i = Rc::new(Issuer {
        version,
        options,
        keys,
    });
    ISSUERS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() >= MAX_CACHED {
            c.clear();
        }
        c.insert(iss.to_string(), i.clone());
    });
    Ok(Some(i))
}

/// A verified sign-in through an external issuer.
pub struct SignIn {
    pub user: UserId,
    pub state: tables::UserState,
    pub issuer: String,
    /// The external token's exp.
    pub exp: Option<i64>,
    /// The external token's verified claims.
    pub claims: Map<String, Value>,
}

/// Verifies `token` if its `iss` names a registered issuer (None: it does
/// not, and the token is not ours to judge here). Some(Err) is the 28000
/// refusal; provisioning errors (a duplicate email, say) raise.
pub fn sign_in(token: &str) -> PgResult<Option<Result<SignIn, IdentityError>>> {
    let Some(iss) = external::peek_issuer(token) else {
        return Ok(None);
    };
    if gucs::jwt_issuer().as_deref() == Some(iss.as_str()) {
        return Ok(None);
    }
    let Some(issuer) = registered(&iss).pg()? else {
        return Ok(None);
    };
    let o = &issuer.options;
    if o.jwks_uri.is_some() {
        jwks_fetch::wake(false);
    }
    let cfg = VerifyConfig {
        now: now_unix(),
        leeway: o.leeway,
        audience: o.audience.as_deref(),
        issuer: Some(&iss),
    };
    let (mut checks, claims) = jwt::check_with(
        token,
        &cfg,
        |kid| Ok(external::select_key(&issuer.keys, kid)),
        crate::api::jwt::serde_claims,
    )
    .pg()?;
    let Some(claims) = claims else {
        let unknown_kid = checks
            .iter()
            .any(|c| !c.pass && c.name == jwt::CheckName::Kid);
        if unknown_kid && o.jwks_uri.is_some() {
            // The worker refetches (at most once a minute); this token is
            // refused now: verification never waits for the network.
            jwks_fetch::wake(true);
        }
        return Ok(Some(Err(crate::api::jwt::refuse(&checks))));
    };
    if !external::external_checks(&claims, o, &mut checks) {
        return Ok(Some(Err(crate::api::jwt::refuse(&checks))));
    }
    let subject = claims["sub"].as_str().expect("checked").to_owned();
    let (user, fresh) = match link(&iss, &subject, &claims, o)? {
        Ok(u) => u,
        Err(e) => return Ok(Some(Err(e))),
    };
    // A user linked or provisioned just now is not in the statement's
    // snapshot: read it under a fresh one then.
    let state = match fresh {
        false => tables::user_state(user),
        true => probe::with_latest_snapshot(|s| s.while_active(|| tables::user_state(user))),
    };
    let Some(state) = state else {
        return Ok(Some(Err(IdentityError::unauthenticated(
            "JWT user is not active",
        )
        .detail("user deleted")
        .reason(Reason::UserDeleted))));
    };
    if !state.row.status.is_active() {
        return Ok(Some(Err(IdentityError::unauthenticated(
            "JWT user is not active",
        )
        .detail(format!("user {}", state.row.status))
        .reason(Reason::UserSuspended))));
    }
    // revoke_jwt and revoke_session speak for an external token's jti and
    // session_id too, as they do in request claims.
    let fresh = crate::store::cache::fresh();
    let revoked_jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .is_some_and(|j| fresh.jti_revoked(j));
    let revoked_session = claims
        .get("session_id")
        .and_then(Value::as_str)
        .and_then(parse_uuid)
        .is_some_and(|s| fresh.session_revoked(crate::core::ids::SessionId(s)));
    if revoked_jti || revoked_session {
        return Ok(Some(Err(IdentityError::unauthenticated(
            "JWT has been revoked",
        )
        .reason(Reason::TokenRevoked)
        .detail(if revoked_jti {
            "jti revoked"
        } else {
            "session revoked"
        }))));
    }
    if let Some(tva) = state.tokens_valid_after.filter(|t| *t > i64::MIN) {
        let iat = claims.get("iat").and_then(Value::as_i64);
        if iat.is_none_or(|iat| iat < tva) {
            return Ok(Some(Err(IdentityError::unauthenticated(
                "JWT was issued before the user's tokens were revoked",
            )
            .reason(Reason::TokenRevoked))));
        }
    }
    Ok(Some(Ok(SignIn {
        user,
        state,
        issuer: iss,
        exp: claims.get("exp").and_then(Value::as_i64),
        claims,
    })))
}

/// verify_jwt's answer for a token of a registered issuer whose `sub` is
/// our user id (`subject_is_user_id`: Supabase Auth's own access tokens):
/// Some(Ok(its claims)) when sign_in accepts it (and it names `audience`,
/// when one is asked for), Some(Err(the 28000 refusal)); None for any
/// other token (ours, or another issuer's, which verify_jwt never accepts).
/// Writes nothing: such an issuer links and provisions no one.
pub fn verify_user_id_token(
    token: &str,
    audience: Option<&str>,
) -> PgResult<Option<Result<Map<String, Value>, IdentityError>>> {
    let Some(iss) = external::peek_issuer(token) else {
        return Ok(None);
    };
    if gucs::jwt_issuer().as_deref() == Some(iss.as_str()) {
        return Ok(None);
    }
    match registered(&iss).pg()? {
        Some(i) if i.options.subject_is_user_id => {}
        _ => return Ok(None),
    }
    Ok(match sign_in(token)? {
        Some(Ok(si)) => {
            let names = |a: &str| match si.claims.get("aud") {
                Some(Value::String(s)) => s == a,
                Some(Value::Array(v)) => v.iter().any(|x| x.as_str() == Some(a)),
                _ => false,
            };
            match audience {
                Some(a) if !names(a) => Some(Err(IdentityError::unauthenticated(
                    "JWT audience does not match",
                )
                .reason(Reason::WrongAudience))),
                _ => {
                    // The token's own claims, but identity's names say what
                    // identity.users says (a claim of the same name in
                    // Supabase's token, from its hook or anywhere, is not
                    // ours to pass on).
                    let mut c = si.claims;
                    for k in ["scopes", "token_id"] {
                        c.remove(k);
                    }
                    let row = &si.state.row;
                    c.insert("user_role".into(), Value::from(row.user_role.as_str()));
                    c.insert("is_service_user".into(), Value::from(row.is_service_user));
                    c.insert("organization_id".into(), json!(row.organization_id));
                    c.insert("application_id".into(), json!(row.application_id));
                    Some(Ok(c))
                }
            }
        }
        Some(Err(e)) => Some(Err(e)),
        None => None,
    })
}

/// Our claims for a sign-in: the hook's (internal uuid `sub`, user_role,
/// organization_id, is_service_user, ...), a new session_id, and `amr`
/// naming the issuer.
pub fn our_claims(si: &SignIn, now: i64) -> Result<Map<String, Value>, IdentityError> {
    let mut c = claims::access_token_claims(
        &si.user.text(),
        &si.state.email,
        Some(&si.state.row),
        &gucs::jwt_audience(),
        &new_uuid(),
        "external",
        now,
    )
    .ok_or_else(|| {
        IdentityError::unauthenticated("JWT user is not active").reason(Reason::UserSuspended)
    })?;
    c.insert("amr".into(), external::amr(&si.issuer, now));
    Ok(c)
}

/// The lock of one (issuer, subject) (`store::locks`): concurrent first
/// sign-ins and webhook deliveries of one subject take turns, so one user
/// results.
fn lock_subject(issuer: &str, subject: &str) -> PgResult<()> {
    crate::store::locks::lock(crate::store::locks::Mutex::Subject { issuer, subject })
}

enum Linked {
    Unknown,
    Tombstone,
    User(UserId, bool),
}

fn lookup(iss: &str, subject: &str) -> PgResult<Linked> {
    let row = spi::one::<JsonB>(
        include_str!("../../sql/queries/identities_lookup.sql"),
        &[iss.into(), subject.into()],
    )?;
    Ok(match row {
        None => Linked::Unknown,
        Some(JsonB(v)) => match v["user_id"].as_str().and_then(parse_uuid) {
            None => Linked::Tombstone,
            Some(id) => Linked::User(UserId(id), v["stale"].as_bool().unwrap_or(true)),
        },
    })
}

fn insert_identity(iss: &str, subject: &str, user: Option<UserId>) -> PgResult<()> {
    spi::run(
        "insert into identity.identities (issuer, subject, user_id, last_seen_at) \
         values ($1, $2, $3, case when $3 is null then null else now() end) \
         on conflict (issuer, subject) do nothing",
        &[iss.into(), subject.into(), user.map(|u| u.uuid()).into()],
    )
}

/// The user of `subject` at `iss`: the identity linked before, or the user
/// whose external_id the subject is (linked now), or, with provisioning
/// `auto`, a new user (as provision_user makes one); and whether it was
/// linked just now. Err: the 28000 refusal.
fn link(
    iss: &str,
    subject: &str,
    claims: &Map<String, Value>,
    o: &IssuerOptions,
) -> PgResult<Result<(UserId, bool), IdentityError>> {
    let writable = gucs::transaction_writable();
    if o.subject_is_user_id {
        return supabase_user(subject);
    }
    spi::privileged(|| {
        match lookup(iss, subject)? {
            Linked::User(u, stale) => {
                if stale && writable {
                    spi::run(
                        "update identity.identities set last_seen_at = now() \
                         where issuer = $1 and subject = $2",
                        &[iss.into(), subject.into()],
                    )?;
                }
                return Ok(Ok((u, false)));
            }
            Linked::Tombstone => {
                return Ok(Err(IdentityError::unauthenticated(
                    "JWT user is not active",
                )
                .detail("user deleted")
                .reason(Reason::UserDeleted)))
            }
            Linked::Unknown => {}
        }
        if !writable {
            return Ok(Err(IdentityError::unauthenticated(
                "JWT subject is not linked to a user",
            )
            .reason(Reason::NotLinked)
            .detail(
                "a first sign-in cannot link or provision in a read-only transaction",
            )));
        }
        lock_subject(iss, subject)?;
        // Another sign-in of the subject may have linked it meanwhile.
        match lookup(iss, subject)? {
            Linked::User(u, _) => return Ok(Ok((u, true))),
            Linked::Tombstone => {
                return Ok(Err(IdentityError::unauthenticated(
                    "JWT user is not active",
                )
                .detail("user deleted")
                .reason(Reason::UserDeleted)))
            }
            Linked::Unknown => {}
        }
        if let Some(u) = by_external_id(iss, subject, o)? {
            insert_identity(iss, subject, Some(u))?;
            audit_link(iss, subject, u, "identity.linked")?;
            return Ok(Ok((u, true)));
        }
        if o.provisioning == Provisioning::Off {
            return Ok(Err(IdentityError::unauthenticated(
                "JWT subject is not linked to a user",
            )
            .reason(Reason::NotLinked)
            .detail("the issuer's provisioning is off")
            .hint(
                "provision the user first (a webhook, or identity.provision_user)",
            )));
        }
        let (email, first, last) = external::profile(claims, o);
        let Some(email) = email.filter(|e| crate::core::users::check_email(e).is_ok()) else {
            let unverified = external::string_at(claims, &o.email_claim, 320).is_some()
                && !external::email_verified(claims, o);
            return Ok(Err(IdentityError::unauthenticated(
                "JWT carries no email to provision the user with",
            )
            .reason(Reason::NotLinked)
            .detail(if unverified {
                format!("the {} claim is not true", o.email_verified_claim)
            } else {
                format!("no valid {} claim", o.email_claim)
            })
            .hint(
                "add the email and whether it is verified to the provider's session token, \
                 or set the options email_claim and email_verified_claim",
            )));
        };
        let org = organization(iss, claims, o)?;
        let u = provision_subject(
            iss,
            subject,
            o,
            &email,
            first.as_deref(),
            last.as_deref(),
            org,
        )?;
        Ok(Ok((u, true)))
    })
}

/// The user a Supabase Auth token's `sub` names: one linked from
/// auth.users (link_supabase_auth), never another (a service user made in
/// identity, another issuer's user): 28000. Nothing is written.
fn supabase_user(subject: &str) -> PgResult<Result<(UserId, bool), IdentityError>> {
    let refused = || {
        IdentityError::unauthenticated("JWT subject is not a user linked from auth.users")
            .reason(Reason::NotLinked)
            .hint("identity.link_supabase_auth() links Supabase Auth's users")
    };
    let Some(id) = parse_uuid(subject) else {
        return Ok(Err(refused()));
    };
    // Not while a deletion or ban of the user waits (pending), nor once
    // the user's tombstone is in, even if the deletion itself waits for
    // the user's row: fail closed.
    let linked = spi::privileged(|| {
        spi::one::<bool>(
            "select true from identity.supabase_auth_users l \
             where l.user_id operator(pg_catalog.=) $1 and not l.pending \
               and not exists (select from identity.deleted_users d where d.id operator(pg_catalog.=) $1)",
            &[Uuid::from_bytes(id).into()],
        )
    })?;
    Ok(match linked {
        Some(_) => Ok((UserId(id), false)),
        None => Err(refused()),
    })
}

/// A new user for `subject` at `iss` (provision_user's work, as system),
/// linked to it. With match_external_id the subject becomes its
/// external_id (and `iss` its external_issuer), unless another user holds
/// that id (another issuer's, which is never linked): then the new user
/// has none.
fn provision_subject(
    iss: &str,
    subject: &str,
    o: &IssuerOptions,
    email: &str,
    first_name: Option<&str>,
    last_name: Option<&str>,
    organization_id: Option<Uuid>,
) -> PgResult<UserId> {
    let external_id = match o.match_external_id {
        false => None,
        true => spi::one::<bool>(
            "select true from identity.users where external_id = $1",
            &[subject.into()],
        )?
        .is_none()
        .then_some(subject),
    };
    let made = users::provision(
        &Subject::System,
        Provisioned {
            external_id,
            email,
            first_name,
            last_name,
            organization_id,
            user_id: None,
            issuer: Some(iss),
        },
    )?;
    let u = UserId(
        made["user"]["id"]
            .as_str()
            .and_then(parse_uuid)
            .expect("a user has an id"),
    );
    insert_identity(iss, subject, Some(u))?;
    Ok(u)
}

/// The user whose external_id is `subject`, when the issuer matches
/// external ids: a user of this issuer, or one of no issuer
/// (provision_user's), which becomes this issuer's; never another
/// issuer's user.
fn by_external_id(iss: &str, subject: &str, o: &IssuerOptions) -> PgResult<Option<UserId>> {
    if !o.match_external_id {
        return Ok(None);
    }
    Ok(spi::write_one::<Uuid>(
        include_str!("../../sql/queries/identities_match_external_id.sql"),
        &[subject.into(), iss.into()],
    )?
    .map(|u| u.user_id()))
}

/// Where a new user of `iss` goes: the fixed organization, or the one whose
/// external_id the claim holds and whose external_issuer is `iss` (none
/// found: no organization; another issuer's organization is never one).
fn organization(
    iss: &str,
    claims: &Map<String, Value>,
    o: &IssuerOptions,
) -> PgResult<Option<Uuid>> {
    Ok(match &o.organization {
        OrgSource::None => None,
        OrgSource::Fixed(id) => {
            let id = Uuid::from_bytes(*id);
            spi::one::<Uuid>(
                "select id from identity.organizations where id = $1",
                &[id.into()],
            )?
        }
        OrgSource::Claim(path) => match external::string_at(claims, path, 255) {
            None => None,
            Some(x) => spi::one::<Uuid>(
                "select id from identity.organizations where external_id = $1 \
                 and external_issuer = $2",
                &[x.into(), iss.into()],
            )?,
        },
    })
}

fn audit_link(iss: &str, subject: &str, u: UserId, action: &'static str) -> PgResult<()> {
    spi::audit(spi::Audit {
        actor_id: None,
        actor_kind: "system",
        organization_id: None,
        action,
        target_type: "user",
        target_id: Some(&u.text()),
        details: json!({"issuer": iss, "subject": subject}),
    })
}

fn audit_issuer(s: &Subject, action: &'static str, iss: &str, details: Value) -> PgResult<()> {
    actor::audit(s, None, action, "issuer", Some(iss), details)
}

fn system(what: &'static str) -> PgResult<Subject> {
    let s = actor::subject()?;
    authz::require_system(&s, what).pg()?;
    Ok(s)
}

fn issuer_arg(issuer: Option<&str>) -> Result<&str, IdentityError> {
    let i = required(issuer, "issuer is required")?;
    external::check_issuer(i)?;
    Ok(i)
}

/// A JWKS argument, checked (size first, then every key).
fn jwks_arg(jwks: &Value) -> Result<Vec<ExternalKey>, IdentityError> {
    let len = jwks.to_string().len();
    if len > external::MAX_JWKS_BYTES {
        return Err(IdentityError::invalid("jwks is too large")
            .detail(format!("{len} bytes, at most {}", external::MAX_JWKS_BYTES)));
    }
    external::parse_jwks(jwks)
}

fn kids(keys: &[ExternalKey]) -> Value {
    json!(keys
        .iter()
        .filter_map(|k| k.kid.clone())
        .collect::<Vec<_>>())
}

fn issuer_json(iss: &str) -> PgResult<Value> {
    Ok(spi::one::<JsonB>(
        include_str!("../../sql/queries/issuers_list.sql"),
        &[Some(iss).into()],
    )?
    .map_or(Value::Null, |j| j.0))
}

/// Trusts `issuer` (the exact `iss` of its tokens): its public keys and
/// options (API.md 11), or, for an issuer already registered, replaces
/// them (its identities stay). With options.jwks_uri, `jwks` may be NULL:
/// the background worker fetches the set. System only; audited.
#[pg_extern(schema = "identity", volatile)]
fn register_issuer(
    issuer: Option<&str>,
    jwks: Option<RawJsonb>,
    options: default!(Option<RawJsonb>, "'{}'"),
) -> PgResult<JsonB> {
    let s = system("only system may register issuers")?;
    let iss = issuer_arg(issuer).pg()?;
    if gucs::jwt_issuer().as_deref() == Some(iss) {
        return Err(IdentityError::invalid("issuer is this database's own identity.jwt_issuer")
            .hint("our own tokens are verified with identity.verify_jwt; register other issuers only")
            .pg_error());
    }
    // Depth and size are checked before any parse (22023, never XX000).
    let options = match options {
        Some(o) => o
            .bounded("options are too large or too deeply nested")
            .pg()?,
        None => json!({}),
    };
    let jwks = jwks
        .map(|j| j.bounded("jwks is too large or too deeply nested"))
        .transpose()
        .pg()?;
    if options.to_string().len() > 16 * 1024 {
        return Err(IdentityError::invalid("options are too large")
            .detail("at most 16 KB")
            .pg_error());
    }
    let (o, secret, stored) = external::parse_options(&options).pg()?;
    let (jwks, keys) = match jwks {
        Some(j) => {
            let keys = jwks_arg(&j).pg()?;
            (j, keys)
        }
        None if o.jwks_uri.is_some() => (json!({"keys": []}), Vec::new()),
        None => {
            return Err(IdentityError::invalid("jwks is required")
                .hint("the provider's public JWKS, or options.jwks_uri to have it fetched")
                .pg_error())
        }
    };
    let sealed = match &secret {
        None => None,
        Some(k) => {
            let ring = crate::api::keys::encryption_key().pg()?;
            let mut nonce = [0u8; crate::core::aead::NONCE_LEN];
            rand::rngs::OsRng.fill_bytes(&mut nonce);
            Some(ring.seal(nonce, k, &secret_aad(iss)))
        }
    };
    spi::privileged(|| {
        let created = spi::write_one::<bool>(
            include_str!("../../sql/queries/issuers_register.sql"),
            &[
                iss.into(),
                JsonB(jwks).into(),
                JsonB(Value::Object(stored.clone())).into(),
                sealed.into(),
            ],
        )?
        .unwrap_or(false);
        audit_issuer(
            &s,
            if created {
                "issuer.registered"
            } else {
                "issuer.updated"
            },
            iss,
            json!({"kids": kids(&keys), "provisioning": o.provisioning.as_str(),
                   "jwks_uri": o.jwks_uri, "webhook_secret": secret.is_some()}),
        )?;
        if o.jwks_uri.is_some() {
            jwks_fetch::wake_after_commit();
        }
        issuer_json(iss).map(JsonB)
    })
}

fn secret_aad(iss: &str) -> Vec<u8> {
    format!("identity.issuers:{iss}").into_bytes()
}

/// Replaces an issuer's keys (a rotation: tokens of the new keys verify
/// from this commit on, tokens of keys no longer in the set are refused).
/// System only; audited.
#[pg_extern(schema = "identity", volatile)]
fn set_issuer_jwks(issuer: Option<&str>, jwks: Option<RawJsonb>) -> PgResult<JsonB> {
    let s = system("only system may change issuers")?;
    let iss = issuer_arg(issuer).pg()?;
    let jwks = required(jwks, "jwks is required")
        .pg()?
        .bounded("jwks is too large or too deeply nested")
        .pg()?;
    let keys = jwks_arg(&jwks).pg()?;
    spi::privileged(|| {
        let found = spi::write_one::<bool>(
            "update identity.issuers set jwks = $2, version = version + 1, updated_at = now() \
             where issuer = $1 returning true",
            &[iss.into(), JsonB(jwks).into()],
        )?;
        if found.is_none() {
            return Err(authz::not_found("issuer is not registered").pg_error());
        }
        audit_issuer(&s, "issuer.jwks_set", iss, json!({"kids": kids(&keys)}))?;
        issuer_json(iss).map(JsonB)
    })
}

/// Stops trusting an issuer: its tokens are refused from this commit on;
/// its identities and webhook deliveries go (the users stay). System only;
/// audited.
#[pg_extern(schema = "identity", volatile)]
fn remove_issuer(issuer: Option<&str>) -> PgResult<()> {
    let s = system("only system may remove issuers")?;
    let iss = issuer_arg(issuer).pg()?;
    spi::privileged(|| {
        let n = spi::write_one::<i64>(
            "with d as (delete from identity.issuers where issuer = $1 returning issuer) \
             select count(*) from d",
            &[iss.into()],
        )?
        .unwrap_or(0);
        if n == 0 {
            return Err(authz::not_found("issuer is not registered").pg_error());
        }
        audit_issuer(&s, "issuer.removed", iss, json!({}))
    })
}

/// Every registered issuer: options (never the webhook secret), kids,
/// fetch state, how many users sign in through it. System only.
#[pg_extern(schema = "identity", stable)]
fn list_issuers() -> Result<SetOfIterator<'static, JsonB>, crate::pg::error::ErrorReport> {
    system("only system may list issuers")?;
    let rows = spi::privileged(|| {
        spi::column::<JsonB>(
            include_str!("../../sql/queries/issuers_list.sql"),
            &[None::<&str>.into()],
        )
    })?;
    Ok(SetOfIterator::new(rows))
}

/// Verifies a registered issuer's token as identity.authenticate does, then
/// signs an access JWT of ours for its user (the hook's claims, `amr`
/// naming the issuer, a new session): token exchange in the spirit of
/// RFC 8693. ttl defaults to identity.access_token_ttl, at most 1 day.
#[pg_extern(schema = "identity", volatile)]
fn exchange_external_token(
    token: Option<&str>,
    ttl: default!(Option<Interval>, "NULL"),
) -> PgResult<String> {
    let token = token
        .ok_or_else(|| {
            IdentityError::unauthenticated("JWT is malformed")
                .detail("token is null")
                .reason(Reason::MissingToken)
        })
        .pg()?;
    if token.len() > jwt::MAX_TOKEN_BYTES {
        return Err(IdentityError::unauthenticated("JWT is malformed")
            .detail("token is over 16 KB")
            .reason(Reason::TokenTooLarge)
            .pg_error());
    }
    let ttl = match ttl {
        Some(i) => interval_seconds(&i, 86_400).pg()?,
        None => gucs::access_token_ttl().min(86_400),
    };
    let si = match sign_in(token)? {
        None => {
            return Err(
                IdentityError::unauthenticated("JWT issuer is not registered")
                    .reason(Reason::UnknownIssuer)
                    .hint("identity.register_issuer trusts an identity provider")
                    .pg_error(),
            )
        }
        Some(r) => r.pg()?,
    };
    let c = our_claims(&si, now_unix()).pg()?;
    let session = c["session_id"].clone();
    let jwt = crate::api::jwt::sign_claims(c, ttl, false)?;
    if gucs::transaction_writable() {
        spi::privileged(|| {
            spi::audit(spi::Audit {
                actor_id: Some(si.user.uuid()),
                actor_kind: if si.state.row.is_service_user {
                    "service"
                } else {
                    "user"
                },
                organization_id: si.state.row.org_id().map(|o| o.uuid()),
                action: "external_token.exchanged",
                target_type: "issuer",
                target_id: Some(&si.issuer),
                details: json!({"session_id": session, "ttl_seconds": ttl}),
            })
        })?;
    }
    Ok(jwt)
}

/// A header of a webhook delivery, by lowercase name (PostgREST's
/// request.headers are lowercase; others may not be); the Standard
/// Webhooks names (`webhook-id`, ...) are accepted for `svix-...` too.
fn header<'a>(headers: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    let alt = name.replace("svix-", "webhook-");
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name) || k.eq_ignore_ascii_case(&alt))
        .and_then(|(_, v)| v.as_str())
}

/// One Svix-signed webhook delivery of `issuer` (API.md 11): verified
/// (28000 and nothing written when the signature, the timestamp or the
/// issuer's secret does not match), idempotent on svix-id, then Clerk's
/// user.created / user.updated / user.deleted acted on.
/// Answers `{status: processed | duplicate | ignored, user_id}`.
#[pg_extern(schema = "identity", volatile)]
fn handle_webhook(
    issuer: Option<&str>,
    headers: Option<RawJsonb>,
    body: Option<&str>,
) -> PgResult<JsonB> {
    let body = required(body, "body is required").pg()?;
    if body.len() > svix::MAX_BODY_BYTES {
        return Err(IdentityError::invalid("webhook body is too large")
            .detail(format!(
                "{} bytes, at most {}",
                body.len(),
                svix::MAX_BODY_BYTES
            ))
            .pg_error());
    }
    let iss = issuer_arg(issuer).pg()?;
    let headers = required(headers, "headers are required")
        .pg()?
        .bounded("headers are too large or too deeply nested")
        .pg()?;
    let headers = headers
        .as_object()
        .filter(|h| h.len() <= 200)
        .ok_or_else(|| {
            IdentityError::invalid("headers must be a JSON object of at most 200 headers")
        })
        .pg()?;
    let refused = |r: svix::Refusal| {
        IdentityError::unauthenticated("webhook signature is invalid")
            .detail(r.reason())
            .reason(r.code())
            .pg_error()
    };
    let sealed = spi::privileged(|| {
        spi::one::<Vec<u8>>(
            "select webhook_secret_ciphertext from identity.issuers where issuer = $1",
            &[iss.into()],
        )
    })?;
    // An unknown issuer, or one without a secret, answers as a bad signature.
    let Some(sealed) = sealed else {
        return Err(refused(svix::Refusal::BadSignature));
    };
    let secret = crate::api::keys::encryption_key()
        .and_then(|k| k.open(&sealed, &secret_aad(iss)))
        .pg()?;
    let id = header(headers, "svix-id");
    svix::verify(
        &secret,
        id,
        header(headers, "svix-timestamp"),
        header(headers, "svix-signature"),
        body.as_bytes(),
        now_unix(),
    )
    .map_err(refused)?;
    let id = id.expect("verified");
    let parsed: Value = serde_json::from_str(body)
        .map_err(|_| IdentityError::invalid("webhook body is not JSON"))
        .pg()?;
    let event = svix::parse_event(&parsed).pg()?;
    spi::privileged(|| {
        let first = spi::write_one::<bool>(
            "insert into identity.webhook_deliveries (issuer, svix_id, event_type, status) \
             values ($1, $2, $3, 'ignored') on conflict do nothing returning true",
            &[iss.into(), id.into(), event.type_name().into()],
        )?;
        if first.is_none() {
            let user = spi::one::<Uuid>(
                "select user_id from identity.webhook_deliveries where issuer = $1 and svix_id = $2",
                &[iss.into(), id.into()],
            )?;
            return Ok(JsonB(
                json!({"status": "duplicate", "user_id": user.map(|u| uuid_text(u.as_bytes()))}),
            ));
        }
        let o = registered(iss).pg()?.ok_or_else(|| corrupt().pg_error())?;
        let (status, user) = act(iss, &event, &o.options)?;
        spi::run(
            "update identity.webhook_deliveries set status = $3, user_id = $4 \
             where issuer = $1 and svix_id = $2",
            &[
                iss.into(),
                id.into(),
                status.into(),
                user.map(|u| u.uuid()).into(),
            ],
        )?;
        spi::audit(spi::Audit {
            actor_id: None,
            actor_kind: "system",
            organization_id: None,
            action: "webhook.received",
            target_type: "issuer",
            target_id: Some(iss),
            details: json!({"svix_id": id, "type": event.type_name(), "status": status,
                            "user_id": user.map(|u| u.text())}),
        })?;
        Ok(JsonB(
            json!({"status": status, "user_id": user.map(|u| u.text())}),
        ))
    })
}

/// What a verified event does; (status, user).
fn act(
    iss: &str,
    event: &svix::Event,
    o: &IssuerOptions,
) -> PgResult<(&'static str, Option<UserId>)> {
    use svix::Event;
    let subject = match event {
        Event::Created(d) | Event::Updated(d) => d.subject.as_str(),
        Event::Deleted(s) => s.as_str(),
        Event::Other(_) => return Ok(("ignored", None)),
    };
    lock_subject(iss, subject)?;
    let linked = match lookup(iss, subject)? {
        Linked::User(u, _) => Some(u),
        Linked::Tombstone => return Ok(("ignored", None)),
        Linked::Unknown => by_external_id(iss, subject, o)?,
    };
    match (event, linked) {
        (Event::Deleted(_), None) => {
            // Before its user.created: a tombstone, so the late created does nothing.
            insert_identity(iss, subject, None)?;
            Ok(("processed", None))
        }
        (Event::Deleted(_), Some(u)) => {
            insert_identity(iss, subject, Some(u))?;
            if let Some(state) = tables::user_state(u) {
                users::delete(&Subject::System, u, state.row.org_id())?;
            }
            spi::run(
                "update identity.identities set user_id = null where issuer = $1 and subject = $2",
                &[iss.into(), subject.into()],
            )?;
            Ok(("processed", Some(u)))
        }
        (Event::Created(_), Some(u)) => {
            insert_identity(iss, subject, Some(u))?;
            Ok(("processed", Some(u)))
        }
        (Event::Updated(d), Some(u)) => {
            insert_identity(iss, subject, Some(u))?;
            let changed = spi::one::<JsonB>(
                include_str!("../../sql/queries/webhook_profile.sql"),
                &[
                    u.uuid().into(),
                    d.email.as_deref().into(),
                    d.first_name.as_deref().into(),
                    d.last_name.as_deref().into(),
                ],
            )?;
            let changed = changed.map_or(json!({}), |j| j.0);
            if changed
                .as_object()
                .is_some_and(|m| m.values().any(|v| v == &json!(true)))
            {
                spi::audit(spi::Audit {
                    actor_id: None,
                    actor_kind: "system",
                    organization_id: tables::user_state(u)
                        .and_then(|s| s.row.org_id())
                        .map(|o: OrgId| o.uuid()),
                    action: "user.updated",
                    target_type: "user",
                    target_id: Some(&u.text()),
                    details: json!({"issuer": iss, "changed": changed}),
                })?;
            }
            Ok(("processed", Some(u)))
        }
        // Created, or an updated that came first: provision.
        (Event::Created(d) | Event::Updated(d), None) => {
            let Some(email) = d
                .email
                .as_deref()
                .filter(|e| crate::core::users::check_email(e).is_ok())
            else {
                return Ok(("ignored", None));
            };
            // Clerk's user events name no organization: a claim path gives none.
            let org = organization(iss, &Map::new(), o)?;
            let u = provision_subject(
                iss,
                subject,
                o,
                email,
                d.first_name.as_deref(),
                d.last_name.as_deref(),
                org,
            )?;
            Ok(("processed", Some(u)))
        }
        (Event::Other(_), _) => Ok(("ignored", None)),
    }
}
