#![deny(clippy::undocumented_unsafe_blocks)]
//! The one home of Postgres FFI: SPI, settings, errors to SQLSTATEs, jsonb
//! in and out, index probes and snapshots, the clock. Depends on `core` only;
//! nothing here knows the extension's tables (that is `store`) or its SQL
//! functions (`api`).

pub mod audit_queue;
pub mod clock;
pub mod error;
pub mod fmgr;
pub mod gucs;
pub mod http_errors;
pub mod ids;
pub mod inval;
pub mod jsonb;
pub mod jwks_fetch;
pub mod planner;
pub mod probe;
pub mod redact;
pub mod shared_filter;
pub mod spi;
pub mod workers;
