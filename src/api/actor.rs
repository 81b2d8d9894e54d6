//! The actor of the current request (API.md conventions), derived from the
//! same cached claims view as the RLS helpers (`rls::view`): claims pinned
//! by identity.authenticate first, else request.jwt.claims in `request` mode.

use crate::core::actor::{self, Actor};
use crate::error::PgResult;
use crate::spi;
use pgrx::pg_sys;

pub fn current() -> Actor {
    actor::from_view(&crate::api::rls::view())
}

/// Whether the calling role holds the admin grant level (EXECUTE on an
/// admin-only function), or is a superuser.
pub fn caller_is_admin_level() -> PgResult<bool> {
    if unsafe { pg_sys::superuser() } {
        return Ok(true);
    }
    Ok(spi::one::<bool>(
        "select pg_catalog.has_function_privilege('identity.sign_jwt(pg_catalog.jsonb, pg_catalog.interval)', 'execute')",
        &[],
    )?
    .unwrap_or(false))
}
