//! Thin `#[pg_extern]` glue, one file per area of API.md: convert arguments,
//! call `core`, map errors. No logic lives here that a unit test could cover.

pub mod actor;
pub mod admin;
pub mod credentials;
pub mod flags;
pub mod hook;
pub mod issuers;
pub mod jwt;
pub mod keys;
pub mod rls;
pub mod session_tokens;
pub mod supabase;
pub mod tokens;
pub mod users;
pub mod verify;
