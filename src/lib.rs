//! identity: users, service users, tokens and credentials inside Postgres.
//!
//! Layout (see README "Architecture"):
//! - `core`  pure logic, no pgrx (unit tests, criterion benches)
//! - `api`   thin `#[pg_extern]` glue, one file per area of API.md
//! - `spi`   the only module that runs SQL, always with bound parameters
//! - `heap`  primary-key probes without SQL; `cache` per-backend copies of
//!   revocations and the active key, invalidated by Postgres' relcache messages
//! - `gucs`  settings; `error` domain errors to SQLSTATEs
//! - `sql/`  schema, RLS, grants (installed by `extension_sql_file!`)

use pgrx::prelude::*;

pub mod api;
pub mod cache;
/// The pure core, a workspace crate of its own (crates/identity-core): no
/// pgrx, so `cargo test -p identity-core` needs no Postgres.
pub use identity_core as core;
pub mod error;
pub mod gucs;
pub mod heap;
pub mod jsonb;
pub mod spi;

::pgrx::pg_module_magic!();

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!("../sql/grants.sql", name = "grants", finalize);

/// Declares the schema to pgrx so functions can say `schema = "identity"`.
/// sql/schema.sql creates it first, as a member of the extension.
#[pg_schema]
mod identity {}

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    gucs::init();
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    // #[pg_test]s live beside the glue they test, in src/api/*.rs.
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        // As production should run it: preloaded, so the secret settings are
        // never placeholders, and with test secrets set in the config file.
        vec![
            "shared_preload_libraries = 'identity'",
            "identity.jwt_secret = 'pg-test-secret-0123456789-abcdefghijklmnop'",
            "identity.encryption_key = 'MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY='",
        ]
    }
}
