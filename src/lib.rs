//! identity: users, service users, tokens and credentials inside Postgres.
//!
//! Layers, each depending only on those above it (README "Architecture"):
//! - `core`  the workspace crate crates/identity-core: pure logic, no pgrx
//! - `pg`    the one home of Postgres FFI (SPI, settings, errors, jsonb,
//!   index probes, clock)
//! - `store` table descriptors, typed rows, per-backend copies
//! - `api`   thin `#[pg_extern]` glue, one file per area of API.md
//! - `sql/`  schema, RLS, grants and long statements (`include_str!`)

use pgrx::prelude::*;

pub mod api;
/// The pure core, a workspace crate of its own (crates/identity-core): no
/// pgrx, so `cargo test -p identity-core` needs no Postgres.
pub use identity_core as core;
pub mod pg;
pub mod store;

::pgrx::pg_module_magic!();

extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
extension_sql_file!("../sql/grants.sql", name = "grants", finalize);
extension_sql_file!(
    "../sql/comments.sql",
    name = "comments",
    requires = ["grants"]
);

/// Declares the schema to pgrx so functions can say `schema = "identity"`.
/// sql/schema.sql creates it first, as a member of the extension.
#[pg_schema]
mod identity {}

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    pg::gucs::init();
    pg::shared_filter::init();
    pg::redact::install();
    pg::audit_queue::init();
    pg::jwks_fetch::init();
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
