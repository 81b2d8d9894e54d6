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

/// The role the workers act as (sql/schema.sql): NOLOGIN, no attribute, no
/// privilege on any table, EXECUTE on the `identity.worker_*` functions only.
const WORKER_ROLE: &std::ffi::CStr = c"identity_worker";

/// The settings a background worker pins over what the database's or the
/// bootstrap role's settings (applied when it connected, and writable by a
/// database owner who is not a superuser) put there: no operator or
/// function of another schema resolves in its statements (search_path),
/// and no setting can make its transactions read-only, time them out, stop
/// them committing durably, or make its plpgsql fail (a writer that fails
/// leaves reveals unaudited).
const PINNED: &[(&std::ffi::CStr, &std::ffi::CStr)] = &[
    (c"search_path", c"pg_catalog, pg_temp"),
    (c"default_transaction_read_only", c"off"),
    (c"default_transaction_isolation", c"read committed"),
    (c"default_transaction_deferrable", c"off"),
    (c"statement_timeout", c"0"),
    (c"lock_timeout", c"0"),
    (c"idle_in_transaction_session_timeout", c"0"),
    (c"transaction_timeout", c"0"),
    (c"synchronous_commit", c"on"),
    (c"row_security", c"on"),
    (c"standard_conforming_strings", c"on"),
    (c"transform_null_equals", c"off"),
    (c"exit_on_error", c"off"),
    (c"plpgsql.extra_errors", c"none"),
    (c"plpgsql.extra_warnings", c"none"),
    (c"plpgsql.variable_conflict", c"error"),
];

/// Pins `PINNED`. Called once, right after connecting, inside a
/// transaction. A setting this major does not have is skipped (the plpgsql
/// ones are set as placeholders that plpgsql takes when it loads).
pub fn pin_settings() {
    for (name, value) in PINNED {
        let custom = name.to_bytes().contains(&b'.');
        // SAFETY: GetConfigOption reads the named setting (missing_ok: NULL
        // when this major has none); the name is a NUL-terminated static.
        let exists =
            custom || !unsafe { pg_sys::GetConfigOption(name.as_ptr(), true, false) }.is_null();
        if !exists {
            continue;
        }
        // SAFETY: SetConfigOption copies both strings (NUL-terminated
        // statics). At PGC_SUSET with source PGC_S_OVERRIDE no later setting
        // of a lower source replaces it; an invalid value raises an ERROR.
        unsafe {
            pg_sys::SetConfigOption(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_SUSET,
                pg_sys::GucSource::PGC_S_OVERRIDE,
            );
        }
    }
}

/// Runs `f` as the role identity_worker (a security-restricted operation,
/// as REFRESH MATERIALIZED VIEW runs as a view's owner), then acts as the
/// connecting role again. None, and `f` not run, when the role does not
/// exist (the extension is not installed anywhere yet). Must run inside a
/// transaction (the role is looked up in the catalog). An ERROR in `f`
/// ends the worker's transaction, and the abort restores the user id.
pub fn as_worker_role<R>(f: impl FnOnce() -> R) -> Option<R> {
    // SAFETY: get_role_oid reads the syscache inside the caller's
    // transaction; the name is a NUL-terminated static; missing_ok = true
    // returns InvalidOid instead of raising.
    let role = unsafe { pg_sys::get_role_oid(WORKER_ROLE.as_ptr(), true) };
    if role == pg_sys::InvalidOid {
        return None;
    }
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_context: std::ffi::c_int = 0;
    // SAFETY: both out-pointers are to locals that live for the call.
    unsafe { pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_context) };
    let restricted = saved_context
        | pg_sys::SECURITY_LOCAL_USERID_CHANGE as std::ffi::c_int
        | pg_sys::SECURITY_RESTRICTED_OPERATION as std::ffi::c_int;
    // SAFETY: `role` is an existing role's oid; the flags are Postgres' own.
    // Switching the current user is what SECURITY DEFINER calls do; it is
    // undone below, or by the transaction's abort on an ERROR.
    unsafe { pg_sys::SetUserIdAndSecContext(role, restricted) };
    let r = f();
    // SAFETY: the values read above.
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_context) };
    Some(r)
}
