//! The parsed claims of the current request, kept per backend: a copy of
//! settings (`request.jwt.claims`, the pin `identity.verified_claims`,
//! `identity.claims_source`), rebuilt when the claims generation that their
//! assign hooks bump has moved (`pg::gucs`), or when this backend took in an
//! invalidation of any table (`cache::generation_seen`): claims that name a user
//! pass exactly the stateful checks verify_jwt applies (`checks::refusal`)
//! when the view is built, so a revocation, a suspension, a moved
//! tokens_valid_after or a revoked parent API token committed anywhere takes
//! effect at this backend's next call (a pin of identity.authenticate was
//! checked when it was made, in this transaction). The RLS helpers, the
//! actor of every management function and the token minters read it.

use crate::core::actor::{self, ClaimsView};
use crate::pg::gucs::{self, ClaimsSource};
use std::cell::RefCell;

/// What a view was built for: the claims generation, their source, and the
/// invalidations taken in so far.
type Key = (u64, ClaimsSource, u64);

/// A view, and until when it holds (Unix seconds; `i64::MAX`: no limit):
/// claims set for a whole session outlive their `exp`, and a JWT derived
/// from an API token outlives that token's expiry, without any table
/// changing.
struct Cached {
    key: Key,
    until: i64,
    view: std::rc::Rc<ClaimsView>,
    /// Why request claims that name a user were refused (the view is then
    /// anonymous), for the 28000 of a function that needs an actor.
    refused: Option<crate::core::jwt::Check>,
}

thread_local! {
    static VIEW: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

/// How often a view of a JWT derived from an API token is checked again
/// (the token's expiry, or a rotation's grace ending, moves no table).
const DERIVED_RECHECK_SECONDS: i64 = 60;

/// When request claims expire: their `exp` with identity.jwt_leeway
/// (`i64::MAX` without one).
fn expires(claims: &serde_json::Map<String, serde_json::Value>) -> i64 {
    claims
        .get("exp")
        .and_then(serde_json::Value::as_f64)
        .filter(|e| e.is_finite())
        .map_or(i64::MAX, |e| {
            (e.floor() as i64).saturating_add(gucs::jwt_leeway())
        })
}

/// The current claims view, rebuilt only when the claims or the extension's
/// state changed (as far as this backend has taken in: Postgres takes in
/// what others committed at every transaction start and lock; `fresh_view`
/// takes it in first).
pub fn view() -> std::rc::Rc<ClaimsView> {
    let generation = gucs::claims_generation();
    let source = gucs::claims_source();
    let invals = crate::store::cache::generation_seen();
    if let Some(v) = VIEW.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|c| c.key == (generation, source, invals))
            .filter(|c| c.until == i64::MAX || crate::pg::clock::now_unix() < c.until)
            .map(|c| c.view.clone())
    }) {
        return v;
    }
    // Claims from request.jwt.claims (their signature checked by PostgREST,
    // not their state) pass the stateful checks here; a pin of
    // identity.authenticate passed every check in this transaction (an API
    // token's claims carry no iat: tokens_valid_after is not theirs).
    let (text, pinned) = gucs::current_claims_text_pinned();
    let mut v = actor::view_from_text(text.as_deref());
    let mut until = i64::MAX;
    let mut refused = None;
    if let Some(claims) = v.claims.as_ref().filter(|_| v.uid.is_some() && !pinned) {
        let now = crate::pg::clock::now_unix();
        let expires = expires(claims);
        // A derived JWT's API token may expire (or a rotation's grace end)
        // with no table changing: checked again a minute on.
        let recheck = if claims.contains_key("token_id") {
            now.saturating_add(DERIVED_RECHECK_SECONDS)
        } else {
            i64::MAX
        };
        until = expires.min(recheck);
        refused = if now >= expires {
            Some(crate::store::checks::check(
                crate::core::jwt::CheckName::Exp,
                false,
                "expired",
            ))
        } else {
            crate::store::checks::refusal(claims)
        };
        if refused.is_some() {
            v = actor::refused_view();
        }
    }
    let v = std::rc::Rc::new(v);
    // The checks took in messages themselves: key the view on the count
    // after them, when it reflects every change they saw.
    let key = (generation, source, crate::store::cache::generation_seen());
    VIEW.with(|c| {
        *c.borrow_mut() = Some(Cached {
            key,
            until,
            view: v.clone(),
            refused,
        })
    });
    v
}

/// Until when the current view holds (`i64::MAX`: no limit): what the fast
/// helpers keep beside their answers.
pub fn view_holds_until() -> i64 {
    VIEW.with(|c| c.borrow().as_ref().map_or(i64::MAX, |c| c.until))
}

/// The current claims view after taking in every change committed before
/// the call: for the actor of a management function.
pub fn fresh_view() -> std::rc::Rc<ClaimsView> {
    crate::store::cache::generation();
    view()
}

/// Why the current claims are refused (expired, or a stateful check: a
/// revoked jti or session, the user's state, the parent API token), for the
/// 28000 of a function that needs an actor; None when they pass, name no
/// user, or are a pin. What the current view was built with.
pub fn refusal() -> Option<crate::core::jwt::Check> {
    view();
    VIEW.with(|c| c.borrow().as_ref().and_then(|c| c.refused.clone()))
}
