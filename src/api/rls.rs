//! Section 8 of API.md: RLS helpers, cheap enough to call per row.
//!
//! The claims are parsed once into a `core::actor::ClaimsView` and cached per
//! backend with the claims generation (gucs.rs: bumped by assign hooks on
//! request.jwt.claims and identity.verified_claims, and checked against
//! claims_source), so a per-row call is a counter comparison and a copy.
//! Missing or malformed claims give NULL: policies fail closed.

use crate::core::actor::{self, ClaimsView};
use crate::gucs::{self, ClaimsSource};
use pgrx::prelude::*;
use pgrx::{pg_guard, pg_sys, JsonB};
use serde_json::{json, Value};
use std::cell::RefCell;

thread_local! {
    static VIEW: RefCell<Option<(u64, ClaimsSource, std::rc::Rc<ClaimsView>)>> = const { RefCell::new(None) };
}

/// The current claims view, rebuilt only when the claims changed.
pub fn view() -> std::rc::Rc<ClaimsView> {
    let generation = gucs::claims_generation();
    let source = gucs::claims_source();
    if let Some(v) = VIEW.with(|c| c.borrow().as_ref().filter(|(g, s, _)| *g == generation && *s == source).map(|(_, _, v)| v.clone())) {
        return v;
    }
    let v = std::rc::Rc::new(actor::view_from_text(gucs::current_claims_text().as_deref()));
    VIEW.with(|c| *c.borrow_mut() = Some((generation, source, v.clone())));
    v
}

// identity.uid(), org_id() and is_service_user() are called once per row by policies.
// They are plain V1 C functions (declared in FAST_HELPERS_SQL below) rather
// than #[pg_extern]s: the fast path is a generation compare and a 16-byte
// palloc copy, with nothing that can panic; any change of the claims goes
// through `refresh_fast`, which is #[pg_guard]ed. Measured in bench/rls.sh.
thread_local! {
    static FAST: std::cell::Cell<(u64, Option<[u8; 16]>, Option<[u8; 16]>, Option<bool>)> =
        const { std::cell::Cell::new((0, None, None, None)) };
}

#[pg_guard]
extern "C-unwind" fn refresh_fast(generation: u64) {
    let v = view();
    FAST.with(|f| f.set((generation, v.uid, v.org_id, v.is_service_user)));
}

#[inline(always)]
fn fast() -> (Option<[u8; 16]>, Option<[u8; 16]>, Option<bool>) {
    let generation = gucs::claims_generation();
    let (g, uid, org, svc) = FAST.with(|f| f.get());
    if g == generation {
        return (uid, org, svc);
    }
    refresh_fast(generation);
    let (_, uid, org, svc) = FAST.with(|f| f.get());
    (uid, org, svc)
}

unsafe fn uuid_datum(fcinfo: pg_sys::FunctionCallInfo, v: Option<[u8; 16]>) -> pg_sys::Datum {
    match v {
        Some(b) => {
            let p = pg_sys::palloc(16).cast::<u8>();
            std::ptr::copy_nonoverlapping(b.as_ptr(), p, 16);
            pg_sys::Datum::from(p)
        }
        None => {
            (*fcinfo).isnull = true;
            pg_sys::Datum::from(0)
        }
    }
}

/// identity.uid(): the `sub` of the current claims as uuid, or NULL.
#[no_mangle]
pub unsafe extern "C-unwind" fn identity_uid(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    uuid_datum(fcinfo, fast().0)
}

/// identity.org_id(): the organization_id claim as uuid, or NULL.
#[no_mangle]
pub unsafe extern "C-unwind" fn identity_org_id(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    uuid_datum(fcinfo, fast().1)
}

/// identity.is_service_user(): the is_service_user claim, or NULL.
#[no_mangle]
pub unsafe extern "C-unwind" fn identity_is_service_user(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    match fast().2 {
        Some(b) => pg_sys::Datum::from(b),
        None => {
            (*fcinfo).isnull = true;
            pg_sys::Datum::from(0)
        }
    }
}

static V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
#[no_mangle]
pub extern "C" fn pg_finfo_identity_uid() -> &'static pg_sys::Pg_finfo_record {
    &V1
}
#[no_mangle]
pub extern "C" fn pg_finfo_identity_org_id() -> &'static pg_sys::Pg_finfo_record {
    &V1
}
#[no_mangle]
pub extern "C" fn pg_finfo_identity_is_service_user() -> &'static pg_sys::Pg_finfo_record {
    &V1
}

extension_sql!(
    r#"
CREATE FUNCTION identity."uid"() RETURNS uuid STABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'identity_uid';
COMMENT ON FUNCTION identity."uid"() IS 'The sub of the current claims as uuid, or NULL.';
CREATE FUNCTION identity."org_id"() RETURNS uuid STABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'identity_org_id';
COMMENT ON FUNCTION identity."org_id"() IS 'The organization_id claim as uuid, or NULL.';
CREATE FUNCTION identity."is_service_user"() RETURNS boolean STABLE PARALLEL SAFE
    LANGUAGE c AS 'MODULE_PATHNAME', 'identity_is_service_user';
COMMENT ON FUNCTION identity."is_service_user"() IS 'The is_service_user claim, or NULL.';
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
        actor::Actor::User { scopes: Some(s), .. } => Some(actor::covered(&s, scope)),
    }
}

/// `{user_id, organization_id, user_role, is_service_user, kind}`.
#[pg_extern(schema = "identity", stable, parallel_safe)]
fn actor() -> JsonB {
    let v = view();
    let text = |b: Option<[u8; 16]>| b.map(|b| crate::core::claims::uuid_text(&b));
    JsonB(json!({
        "user_id": text(v.uid),
        "organization_id": text(v.org_id),
        "user_role": v.user_role,
        "is_service_user": v.is_service_user,
        "kind": v.kind,
    }))
}

/// Verifies a JWT or an API token and pins its claims for the session: the
/// RLS helpers then read them whatever claims_source is, and in `verified`
/// mode only them. NULL clears the pin.
///
/// A token that does not authenticate clears the pin, raises a WARNING with
/// the reason (SQLSTATE 28000) and returns NULL, but does not raise an error:
/// an error would roll the clearing back with the (sub)transaction (GUC
/// changes are transactional) and leave the previous identity pinned.
/// Configuration errors (55000) still raise.
#[pg_extern(schema = "identity", volatile, parallel_unsafe)]
fn authenticate(token: Option<&str>) -> crate::error::PgResult<Option<JsonB>> {
    gucs::pin_verified_claims(None);
    let Some(token) = token else { return Ok(None) };
    let prefix = format!("{}_", gucs::token_prefix());
    let claims = if token.starts_with(&prefix) && !token.contains('.') {
        match crate::api::tokens::verify(token) {
            Ok(p) => Some(crate::api::tokens::principal_claims(&p)),
            Err(report) => {
                // verify's errors are 28000 refusals (config errors cannot occur:
                // API tokens need no key). Report, but do not raise.
                pgrx::warning!("identity.authenticate: API token rejected ({})", report.message());
                None
            }
        }
    } else {
        let (checks, claims) = crate::api::jwt::verify_checks(token, None, crate::api::jwt::serde_claims)?;
        if claims.is_none() {
            let r = crate::core::jwt::first_refusal(&checks).expect("a failed check");
            pgrx::warning!("identity.authenticate: {} ({})", crate::core::jwt::refusal_message(&r), r.reason);
        }
        claims
    };
    let Some(claims) = claims else { return Ok(None) };
    let text = Value::Object(claims.clone()).to_string();
    gucs::pin_verified_claims(Some(&text));
    Ok(Some(JsonB(Value::Object(claims))))
}
