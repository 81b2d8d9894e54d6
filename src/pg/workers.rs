//! What the database's background workers share (the audit writer,
//! `audit_queue`; the JWKS fetcher, `jwks_fetch`): one dynamic worker per
//! database, registered on demand, and the clock of their heartbeats.

use pgrx::bgworkers::{BackgroundWorkerBuilder, BgWorkerStartTime};
use pgrx::pg_sys;
use std::time::Duration;

/// Whether the library is being preloaded (shared_preload_libraries), the
/// only time Postgres accepts shared memory requests and worker
/// registrations from it.
pub fn preloading() -> bool {
    // SAFETY: a backend global that Postgres sets before loading preloaded
    // libraries; read only.
    unsafe { pg_sys::process_shared_preload_libraries_in_progress }
}

/// Milliseconds since the Unix epoch (heartbeats in shared memory).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// This backend's database.
pub fn my_db() -> u32 {
    // SAFETY: MyDatabaseId is set in every backend connected to a database.
    u32::from(unsafe { pg_sys::MyDatabaseId })
}

/// Registers the worker `function` of this library (named `name`) for
/// database `db` (its argument), with SPI, after recovery. The postmaster
/// starts it again `restart` after it ends with an ERROR (exit code 1); one
/// that returns is not restarted. False when it could not be registered
/// (no free worker slot).
pub fn start(name: &str, function: &str, db: u32, restart: Duration) -> bool {
    BackgroundWorkerBuilder::new(name)
        .set_type(name)
        .set_library("identity")
        .set_function(function)
        .set_argument(Some(pg_sys::Datum::from(db)))
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(Some(restart))
        .load_dynamic()
        .is_ok()
}
