//! The actor of the current request (API.md conventions), from
//! `request.jwt.claims` as PostgREST and Supabase set it when
//! identity.claims_source is `request`. (`verified`, with claims pinned by
//! identity.authenticate, comes with the RLS helpers; until then a session
//! in `verified` mode has no user actor.)

use crate::core::actor::{self, Actor};
use crate::error::PgResult;
use crate::gucs::{self, ClaimsSource};
use crate::spi;
use pgrx::pg_sys;
use std::ffi::CStr;

pub fn current() -> Actor {
    if gucs::claims_source() == ClaimsSource::Verified {
        return Actor::System;
    }
    let raw = unsafe { pg_sys::GetConfigOption(c"request.jwt.claims".as_ptr(), true, false) };
    let text = (!raw.is_null()).then(|| unsafe { CStr::from_ptr(raw) }.to_string_lossy().into_owned());
    actor::from_claims_text(text.as_deref())
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
