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
use pgrx::{JsonB, Uuid};
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

/// The `sub` of the current claims as uuid, or NULL.
#[pg_extern(schema = "identity", stable, parallel_safe)]
fn uid() -> Option<Uuid> {
    view().uid.map(Uuid::from_bytes)
}

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

/// The organization_id claim as uuid, or NULL.
#[pg_extern(schema = "identity", stable, parallel_safe)]
fn org_id() -> Option<Uuid> {
    view().org_id.map(Uuid::from_bytes)
}

/// The user_role claim (admin | user | system), or NULL.
#[pg_extern(schema = "identity", stable, parallel_safe)]
fn user_role() -> Option<String> {
    view().user_role.clone()
}

/// The is_service_user claim, or NULL.
#[pg_extern(schema = "identity", stable, parallel_safe)]
fn is_service_user() -> Option<bool> {
    view().is_service_user
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
