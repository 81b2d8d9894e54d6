//! The parsed claims of the current request, kept per backend: a copy of
//! settings (`request.jwt.claims`, the pin `identity.verified_claims`,
//! `identity.claims_source`), rebuilt only when the claims generation that
//! their assign hooks bump has moved (`pg::gucs`). The RLS helpers, the
//! actor of every management function and the token minters read it.

use crate::core::actor::{self, ClaimsView};
use crate::pg::gucs::{self, ClaimsSource};
use std::cell::RefCell;

thread_local! {
    static VIEW: RefCell<Option<(u64, ClaimsSource, std::rc::Rc<ClaimsView>)>> = const { RefCell::new(None) };
}

/// The current claims view, rebuilt only when the claims changed.
pub fn view() -> std::rc::Rc<ClaimsView> {
    let generation = gucs::claims_generation();
    let source = gucs::claims_source();
    if let Some(v) = VIEW.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|(g, s, _)| *g == generation && *s == source)
            .map(|(_, _, v)| v.clone())
    }) {
        return v;
    }
    let v = std::rc::Rc::new(actor::view_from_text(
        gucs::current_claims_text().as_deref(),
    ));
    VIEW.with(|c| *c.borrow_mut() = Some((generation, source, v.clone())));
    v
}
