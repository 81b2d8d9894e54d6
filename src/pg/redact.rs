//! The `emit_log_hook` that keeps secrets out of the server log
//! (`core::redact` decides what is a secret). Installed by `_PG_init`, so
//! only when the library is preloaded (as it must be). On while
//! identity.redact_logs is (superuser-only, on by default).
//!
//! For each message Postgres is about to emit it rewrites, in place, the
//! message, detail, log-only detail, hint, context and internal query, and
//! the statement text printed after them (`debug_query_string`, which the
//! logger prints as STATEMENT): tokens and JWTs by their form, and the
//! secret arguments of the statement's calls to our functions, by position,
//! in literal SQL and in `parameters: $n = '...'` lists. Edits to `edata`
//! reach every destination (stderr, csvlog, jsonlog, the client).

use crate::core::redact;
use crate::pg::gucs;
use pgrx::pg_sys;
use std::ffi::{CStr, CString};

/// The hook that was installed before ours, called after ours.
static mut PREVIOUS: pg_sys::emit_log_hook_type = None;
/// Our redacted copy of debug_query_string (TopMemoryContext), freed when
/// replaced by the next one.
static mut STATEMENT_COPY: *mut std::ffi::c_char = std::ptr::null_mut();

/// Installs the hook. Called once, from _PG_init in the postmaster (or a
/// backend loading the library): single-threaded, before any query.
pub fn install() {
    // SAFETY: _PG_init runs once per process before any other code of this
    // library; reading and writing the hook globals is what hooks are for.
    unsafe {
        PREVIOUS = pg_sys::emit_log_hook;
        pg_sys::emit_log_hook = Some(redact_hook);
    }
}

/// # Safety
/// Called by EmitErrorReport with the error being reported.
unsafe extern "C-unwind" fn redact_hook(edata: *mut pg_sys::ErrorData) {
    // Never raise from inside error reporting: a panic here is caught and
    // the message goes out unredacted rather than recursing.
    if gucs::redact_logs() && !edata.is_null() {
        // SAFETY: edata is the live ErrorData of this report (the contract).
        let _ = std::panic::catch_unwind(|| unsafe { redact_error(edata) });
    }
    // SAFETY: PREVIOUS is the hook installed before ours, or None.
    if let Some(prev) = unsafe { PREVIOUS } {
        // SAFETY: as for our own call.
        unsafe { prev(edata) };
    }
}

/// The text of a C string field, if it is UTF-8.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that lives for the call.
unsafe fn text<'a>(p: *const std::ffi::c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the contract.
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

/// A palloc'd copy of `s` in the current memory context (ErrorContext while
/// an error is reported), or None if `s` holds a NUL.
fn palloc_copy(s: &str) -> Option<*mut std::ffi::c_char> {
    let c = CString::new(s).ok()?;
    // SAFETY: pstrdup copies a NUL-terminated string into palloc'd memory.
    Some(unsafe { pg_sys::pstrdup(c.as_ptr()) })
}

/// # Safety
/// `edata` is the live ErrorData being reported.
unsafe fn redact_error(edata: *mut pg_sys::ErrorData) {
    // SAFETY: the contract; the fields are NULL or palloc'd strings.
    let e = unsafe { &mut *edata };
    // SAFETY: debug_query_string is NULL or the current statement's text.
    let statement = unsafe { text(pg_sys::debug_query_string) };
    // Which bound parameters are secret: from every statement text at hand
    // (a logged "execute <unnamed>: ..." message carries its statement).
    let mut params = Vec::new();
    // SAFETY: fields of the live ErrorData (NULL or NUL-terminated).
    let message = unsafe { text(e.message) };
    // SAFETY: as above.
    let internal = unsafe { text(e.internalquery) };
    for s in [statement, message, internal].into_iter().flatten() {
        params.extend(redact::secret_params(s));
    }
    params.sort_unstable();
    params.dedup();
    for field in [
        &mut e.message,
        &mut e.detail,
        &mut e.detail_log,
        &mut e.hint,
        &mut e.context,
        &mut e.internalquery,
    ] {
        // SAFETY: each field is NULL or a palloc'd string of this report.
        if let Some(new) = unsafe { text(*field) }
            .and_then(|t| redact::redact(t, &params))
            .and_then(|r| palloc_copy(&r))
        {
            *field = new;
        }
    }
    if let Some(r) = statement.and_then(|t| redact::redact(t, &params)) {
        if let Ok(c) = CString::new(r) {
            // SAFETY: a copy in TopMemoryContext outlives this report (the
            // logger prints it after the hook); the previous copy was ours
            // and nothing else points to it once debug_query_string moved
            // on or is replaced here.
            unsafe {
                let copy = pg_sys::MemoryContextStrdup(pg_sys::TopMemoryContext, c.as_ptr());
                let old = STATEMENT_COPY;
                pg_sys::debug_query_string = copy;
                STATEMENT_COPY = copy;
                if !old.is_null() {
                    pg_sys::pfree(old.cast());
                }
            }
        }
    }
}
