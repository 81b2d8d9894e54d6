//! Section 8 of API.md: RLS helpers, cheap enough to call per row.
//!
//! The claims are parsed once into a `core::actor::ClaimsView` and cached per
//! backend with the claims generation (gucs.rs: bumped by assign hooks on
//! request.jwt.claims and identity.verified_claims, and checked against
//! claims_source), so a per-row call is a counter comparison and a copy.
//! Missing or malformed claims give NULL: policies fail closed.

use crate::core::actor;
use crate::core::ids::{OrgId, UserId};
use crate::core::jwt::Claims;
use crate::pg::error::Pg;
use crate::pg::gucs::{self, ClaimsSource};
use crate::pg::jsonb::RawJsonb;
use crate::store::claims::view;
use pgrx::prelude::*;
use pgrx::{pg_guard, JsonB};
use serde_json::{json, Value};

// identity.uid(), org_id() and is_service_user() are called once per row by policies.
// They are plain V1 C functions (declared in FAST_HELPERS_SQL below) rather
// than #[pg_extern]s: the fast path is a generation compare and a 16-byte
// palloc copy, with nothing that can panic; any change of the claims goes
// through `refresh_fast`, which is #[pg_guard]ed. Measured in bench/rls.sh.
/// What the three fast helpers answer, for one claims generation.
#[derive(Clone, Copy)]
struct Fast {
    generation: u64,
    /// The invalidations taken in when it was filled (`cache::generation`).
    invals: u64,
    /// Until when the answers hold (Unix seconds; `claims::view_holds_until`).
    until: i64,
    uid: Option<UserId>,
    org_id: Option<OrgId>,
    is_service_user: Option<bool>,
}

thread_local! {
    static FAST: std::cell::Cell<Fast> =
        const { std::cell::Cell::new(Fast { generation: 0, invals: crate::store::cache::NOT_LISTENING - 1, until: i64::MAX, uid: None, org_id: None, is_service_user: None }) };
}

#[pg_guard]
extern "C-unwind" fn refresh_fast(generation: u64) {
    let v = view();
    let invals = crate::store::cache::generation_seen();
    let until = crate::store::claims::view_holds_until();
    FAST.with(|f| {
        f.set(Fast {
            generation,
            invals,
            until,
            uid: v.uid,
            org_id: v.org_id,
            is_service_user: v.is_service_user,
        })
    });
}

#[inline(always)]
fn fast() -> Fast {
    let generation = gucs::claims_generation();
    let f = FAST.with(|f| f.get());
    // The invalidations taken in so far (a revocation or a suspension
    // committed elsewhere moves it at this backend's next transaction or
    // lock): the answers are built again.
    if f.generation == generation
        && f.invals == crate::store::cache::generation_seen_no_call()
        && (f.until == i64::MAX || crate::pg::clock::now_unix() < f.until)
    {
        return f;
    }
    refresh_fast(generation);
    FAST.with(|f| f.get())
}

#[inline(always)]
fn uid_answer() -> Option<[u8; 16]> {
    fast().uid.map(|u| u.0)
}
#[inline(always)]
fn org_id_answer() -> Option<[u8; 16]> {
    fast().org_id.map(|o| o.0)
}
#[inline(always)]
fn is_service_user_answer() -> Option<bool> {
    fast().is_service_user
}
crate::v1_function!(uuid identity_uid, pg_finfo_identity_uid => uid_answer);
crate::v1_function!(uuid identity_org_id, pg_finfo_identity_org_id => org_id_answer);
crate::v1_function!(bool identity_is_service_user, pg_finfo_identity_is_service_user => is_service_user_answer);

// identity.helper_support (src/pg/planner.rs) is the planner support
// function that sql/grants.sql attaches to every per-row helper: an
// unwrapped call becomes a once-per-execution InitPlan.
extension_sql!(
    r#"
CREATE FUNCTION identity."helper_support"(internal) RETURNS internal
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'identity_helper_support';
CREATE FUNCTION identity."uid"() RETURNS uuid STABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'identity_uid';
CREATE FUNCTION identity."org_id"() RETURNS uuid STABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'identity_org_id';
CREATE FUNCTION identity."is_service_user"() RETURNS boolean STABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'identity_is_service_user';
"#,
    name = "fast_helpers",
    requires = ["schema"],
);

/// The current claims, or NULL.
#[pg_extern(schema = "identity", stable, parallel_safe)]
fn jwt() -> Option<JsonB> {
    view().claims.clone().map(|c| JsonB(Value::Object(c)))
}

/// One claim: a string as is, any other value as JSON text; NULL if absent.
#[pg_extern(schema = "identity", stable, parallel_safe)]
fn claim(name: Option<&str>) -> Option<String> {
    actor::claim_text(&view(), name?)
}

/// The user_role claim (admin | user | system), or NULL.
#[pg_extern(schema = "identity", stable, parallel_safe)]
fn user_role() -> Option<String> {
    view().user_role.clone()
}

/// Whether user_role is admin; NULL without claims.
#[pg_extern(schema = "identity", stable, parallel_safe)]
fn is_admin() -> Option<bool> {
    let v = view();
    v.claims.as_ref()?;
    Some(v.user_role.as_deref() == Some("admin"))
}

/// Whether the claims' user_role or Postgres role is `role`; NULL without claims.
#[pg_extern(schema = "identity", stable, parallel_safe)]
fn has_role(role: Option<&str>) -> Option<bool> {
    let role = role?;
    let v = view();
    v.claims.as_ref()?;
    Some(v.user_role.as_deref() == Some(role) || v.role.as_deref() == Some(role))
}

/// Whether the current claims allow `scope`: true for a user whose claims
/// carry no (or an empty) `scopes` list, else whether a scope in it covers
/// `scope` (equal, `*`, or `prefix:*`); false for claims without a user;
/// NULL without claims. Policies use it so a scoped service token sees only
/// what its scopes allow.
#[pg_extern(schema = "identity", stable, parallel_safe)]
fn has_scope(scope: Option<&str>) -> Option<bool> {
    let scope = scope?;
    match actor::from_view(&view()) {
        actor::Actor::System => None,
        actor::Actor::Anon => Some(false),
        actor::Actor::User { scopes: None, .. } => Some(true),
        actor::Actor::User {
            scopes: Some(s), ..
        } => Some(actor::covered(&s, scope)),
    }
}

/// `{user_id, organization_id, user_role, is_service_user, kind}`.
#[pg_extern(schema = "identity", stable, parallel_safe)]
fn actor() -> JsonB {
    let v = view();
    JsonB(json!({
        "user_id": v.uid.map(|u| u.text()),
        "organization_id": v.org_id.map(|o| o.text()),
        "user_role": v.user_role,
        "is_service_user": v.is_service_user,
        "kind": v.kind.as_str(),
    }))
}

/// What a token authenticates as: the claims to pin (as text, the form the
/// pin holds; as jsonb, the form authenticate returns; and the Postgres role
/// they name), or why it does not (message and detail of the 28000 refusal;
/// never the token).
struct Authenticated {
    text: String,
    jsonb: RawJsonb,
    role: Option<String>,
}
type Verdict = Result<Authenticated, (String, Option<String>)>;

/// Verifies `token`, an API token (our prefix, no dot) or a JWT, as
/// verify_api_token / verify_jwt do (the same checks, caches and remembered
/// signatures). Configuration errors (55000) raise.
fn verdict(token: &str) -> crate::pg::error::PgResult<Verdict> {
    let prefix = format!("{}_", gucs::token_prefix());
    if token.starts_with(&prefix) && !token.contains('.') {
        return api_token_verdict(token);
    }
    if let Some(signed_in) = crate::api::issuers::sign_in(token)? {
        return external_verdict(signed_in);
    }
    let (checks, claims) = crate::api::jwt::verify_jsonb(token, None).pg()?;
    Ok(match claims {
        Some(v) => Ok(Authenticated {
            text: v.jsonb.to_text(),
            role: v.string("role").map(str::to_owned),
            jsonb: v.jsonb,
        }),
        None => {
            let r = crate::core::jwt::first_refusal(&checks).expect("a failed check");
            Err((
                crate::core::jwt::refusal_message(&r).to_owned(),
                Some(r.detail()),
            ))
        }
    })
}

/// A registered issuer's token (api::issuers::sign_in): our claims for its
/// user, with the external token's exp.
fn external_verdict(
    signed_in: Result<crate::api::issuers::SignIn, crate::core::error::IdentityError>,
) -> crate::pg::error::PgResult<Verdict> {
    let si = match signed_in {
        Ok(si) => si,
        Err(e) => return Ok(Err((e.message.to_owned(), Some(e.detail_text())))),
    };
    let now = crate::pg::clock::now_unix();
    let mut claims = match crate::api::issuers::our_claims(&si, now) {
        Ok(c) => c,
        Err(e) => return Ok(Err((e.message.to_owned(), Some(e.detail_text())))),
    };
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(si.exp));
    let text = Value::Object(claims).to_string();
    let jsonb = RawJsonb::parse_text(text.as_bytes())
        .map_err(|e| crate::core::error::IdentityError::invalid("claims are not JSON").detail(e))
        .pg()?;
    Ok(Ok(Authenticated {
        text,
        jsonb,
        role: Some("authenticated".into()),
    }))
}

/// An API token's verdict, as verify_api_token decides it; the claims are
/// `tokens::principal_claims`.
fn api_token_verdict(token: &str) -> crate::pg::error::PgResult<Verdict> {
    Ok(match crate::api::tokens::check(token)? {
        Ok(p) => {
            let claims = crate::api::tokens::principal_claims(&p);
            let role = claims
                .get("role")
                .and_then(Value::as_str)
                .map(str::to_owned);
            let text = Value::Object(claims).to_string();
            let jsonb = RawJsonb::parse_text(text.as_bytes())
                .map_err(|e| {
                    crate::core::error::IdentityError::invalid("claims are not JSON").detail(e)
                })
                .pg()?;
            Ok(Authenticated { text, jsonb, role })
        }
        // verify's refusals are 28000 (API tokens need no key); their
        // DETAIL starts with the reason code.
        Err(e) => Err((e.message.to_owned(), Some(e.detail_text()))),
    })
}

/// Verifies a JWT or an API token and pins its claims for the current
/// transaction only (API.md section 8): the RLS helpers, `actor()`, `jwt()`
/// and the management functions then read them whatever claims_source is,
/// and in `verified` mode only them. Commit or rollback ends the pin (so
/// does rolling back a savepoint it was made in): a pooled server connection
/// never carries one client's identity into the next transaction. NULL
/// clears the pin.
///
/// A token that does not authenticate pins nobody, raises a WARNING with
/// the reason (SQLSTATE 28000) and returns NULL, but does not raise an error:
/// an error would roll the pin back with the (sub)transaction (GUC
/// changes are transactional) and leave an earlier pin of the same
/// transaction in place. Configuration errors (55000) still raise.
///
/// A failure fails closed: it pins "nobody" (`actor::NOBODY`) for the rest
/// of the transaction, so a caller that ignores the NULL acts as no one
/// (actor `anon`, every helper NULL, every function that needs an actor
/// refused; never the `system` of a caller without claims). Neither a later
/// authenticate nor `authenticate(NULL)` lifts it before the transaction
/// (or the savepoint the failure happened in) ends.
#[pg_extern(schema = "identity", volatile, parallel_unsafe)]
fn authenticate(token: Option<&str>) -> crate::pg::error::PgResult<Option<RawJsonb>> {
    if gucs::nobody_pinned() {
        pgrx::warning!(
            "identity.authenticate: an earlier identity.authenticate of this transaction failed (nobody is signed in until it ends)"
        );
        return Ok(None);
    }
    gucs::pin_verified_claims(None);
    let Some(token) = token else { return Ok(None) };
    match verdict(token)? {
        Ok(a) => {
            gucs::pin_verified_claims(Some(&a.text));
            Ok(Some(a.jsonb))
        }
        Err((message, detail)) => {
            gucs::pin_verified_claims(Some(actor::NOBODY));
            pgrx::warning!(
                "identity.authenticate: {message} ({})",
                detail.unwrap_or_default()
            );
            Ok(None)
        }
    }
}

// identity.pre_request(), for PostgREST's `db-pre-request` (API.md section
// 8). Reads `request.headers`: an API token in `x-api-key`, or, in mode
// `verified`, a JWT in `Authorization: Bearer`, is verified and pinned for
// the request's transaction (as `authenticate`), and the request switches
// (`SET LOCAL ROLE`) to the role the claims name (`authenticated` for API
// tokens) when it is not already that role. Postgres allows the switch only
// to roles the session user (PostgREST's authenticator) is a member of; a
// superuser role is never taken. In mode `request` a Bearer JWT is
// PostgREST's own business (it verified it and set `request.jwt.claims`).
//
// A token that does not authenticate raises `PT401` (PostgREST answers HTTP
// 401) with the refusal's message, which names no secret; a superuser role
// in the claims `PT403`. Malformed headers are 22023 (HTTP 400).
//
// A plain V1 C function (declared below) because pgrx would turn the
// `PTxxx` SQLSTATE into XX000: the work runs in `pre_request_guarded`
// (#[pg_guard]: its Rust errors raise with their own codes), and the PTxxx
// refusal is raised here, after it returned, by `error::raise_custom`.
//
crate::v1_void_raising!(identity_pre_request, pg_finfo_identity_pre_request => pre_request_refusal);

/// Runs the request's authentication; `Some` is the PTxxx refusal to raise.
fn pre_request_refusal() -> Option<crate::pg::error::CustomError> {
    let mut refusal = None;
    pre_request_guarded(&mut refusal);
    refusal
}

#[pg_guard]
extern "C-unwind" fn pre_request_guarded(refusal: &mut Option<crate::pg::error::CustomError>) {
    match pre_request() {
        Ok(r) => *refusal = r,
        Err(report) => report.report(pgrx::PgLogLevel::ERROR),
    }
}

fn pre_request() -> crate::pg::error::PgResult<Option<crate::pg::error::CustomError>> {
    use crate::core::request::{self, Credential};
    use crate::pg::error::CustomError;
    let headers = gucs::with_placeholder(c"request.headers", request::parse_headers).pg()?;
    let verdict = match request::credential(&headers).pg()? {
        Credential::None => return Ok(None),
        // x-api-key holds an API token, whatever it looks like.
        Credential::ApiKey(t) => api_token_verdict(t)?,
        Credential::Bearer(_) if gucs::claims_source() == ClaimsSource::Request => return Ok(None),
        Credential::Bearer(t) => verdict(t)?,
    };
    if gucs::nobody_pinned() {
        // A failed authenticate earlier in this transaction: nobody, still.
        return Ok(Some(CustomError {
            sqlstate: *b"PT401",
            message: "an earlier identity.authenticate of this transaction failed".into(),
            detail: Some(crate::core::reason::Reason::AuthenticationFailed.detail(None)),
        }));
    }
    gucs::pin_verified_claims(None);
    let a = match verdict {
        Ok(a) => a,
        Err((message, detail)) => {
            return Ok(Some(CustomError {
                sqlstate: *b"PT401",
                message,
                detail,
            }))
        }
    };
    if let Some(role) = a.role.as_deref().filter(|r| !gucs::current_role_is(r)) {
        if gucs::role_is_superuser(role) {
            return Ok(Some(CustomError {
                sqlstate: *b"PT403",
                message: "the token's role may not be taken by a request".into(),
                detail: Some(
                    crate::core::reason::Reason::Forbidden.detail(Some("a superuser role")),
                ),
            }));
        }
        gucs::set_local_role(role).pg()?;
    }
    gucs::pin_verified_claims(Some(&a.text));
    Ok(None)
}

extension_sql!(
    r#"
CREATE FUNCTION identity."pre_request"() RETURNS void VOLATILE PARALLEL UNSAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'identity_pre_request';
"#,
    name = "pre_request",
    requires = ["schema"],
);
