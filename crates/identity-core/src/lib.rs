//! Pure logic: no pgrx, no Postgres. Everything here is tested with plain
//! `cargo test` and benchmarked with criterion (`benches/core.rs`).
//! Functions that depend on time take `now` as an argument.

pub mod actor;
pub mod aead;
pub mod authz;
pub mod b64;
pub mod bloom;
pub mod bounded;
pub mod claims;
pub mod error;
pub mod external;
pub mod hashing;
pub mod hook;
pub mod http;
pub mod ids;
pub mod input;
pub mod jsonb;
pub mod jwt;
pub mod keys;
pub mod reason;
pub mod redact;
pub mod request;
pub mod signatures;
pub mod supabase;
pub mod svix;
pub mod token;
pub mod users;
