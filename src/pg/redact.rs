//! The `emit_log_hook` that keeps secrets out of the server log
//! (`core::redact` decides what is a secret). Installed by `_PG_init`, so
//! only when the library is preloaded (as it must be). On while
//! identity.redact_logs is (superuser-only, on by default).
//!
//! For each message Postgres is about to emit it rewrites, in place, the
//! message, detail, log-only detail, hint, context and internal query, and
//! the statement text printed after them (`debug_query_string`, which the
//! logger prints as STATEMENT). Edits to `edata` reach every destination
//! (stderr, csvlog, jsonlog, the client).
//!
//! Fail closed: a statement the redactor cannot read is replaced by a fixed
//! marker and every bound parameter of the report is dropped; a text that is
//! not UTF-8 is read lossily; and if the redactor panics, every text of the
//! report is replaced by the marker and the STATEMENT line is suppressed
//! (`hide_stmt`).

use crate::core::redact::{self, Secrets};
use crate::pg::gucs;
use pgrx::pg_sys;
use std::borrow::Cow;
use std::ffi::{CStr, CString};
use std::sync::{Mutex, MutexGuard};

/// The hook that was installed before ours, called after ours.
static mut PREVIOUS: pg_sys::emit_log_hook_type = None;
/// Our redacted copy of debug_query_string (TopMemoryContext), freed when
/// replaced by the next one.
static mut STATEMENT_COPY: *mut std::ffi::c_char = std::ptr::null_mut();

/// The last statement analysed: what it says about secrets, kept while
/// debug_query_string is that statement or our copy of it (so the later
/// reports of one statement, which see our copy, still know which of its
/// parameters are secret).
struct Analysed {
    /// debug_query_string's address, length and fingerprint, and whether the
    /// report was a syntax error.
    key: (usize, usize, u64, bool),
    secrets: Secrets,
}

/// A static, not a thread_local: the hook also runs while the backend exits,
/// after thread-locals are destroyed (touching one then panics, and the
/// panic aborts the backend). One thread: the lock is never contended.
static LAST: Mutex<Option<Analysed>> = Mutex::new(None);

fn last() -> MutexGuard<'static, Option<Analysed>> {
    LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

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
    // Never raise from inside error reporting: a panic here is caught, and
    // then nothing of the report's texts goes out (fail closed).
    if gucs::redact_logs() && !edata.is_null() {
        // SAFETY: edata is the live ErrorData of this report (the contract).
        let done = std::panic::catch_unwind(|| unsafe { redact_error(edata) });
        if done.is_err() {
            // SAFETY: as above.
            let _ = std::panic::catch_unwind(|| unsafe { fail_closed(edata) });
        }
    }
    if !edata.is_null() {
        // After the redaction: inside a PostgREST request our errors leave
        // as PostgREST's custom errors with their HTTP status.
        // SAFETY: edata is the live ErrorData of this report.
        let _ = std::panic::catch_unwind(|| unsafe { crate::pg::http_errors::rewrite(edata) });
    }
    // SAFETY: PREVIOUS is the hook installed before ours, or None.
    if let Some(prev) = unsafe { PREVIOUS } {
        // SAFETY: as for our own call.
        unsafe { prev(edata) };
    }
}

/// The text of a C string field (lossily if it is not UTF-8).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that lives for the call.
unsafe fn text<'a>(p: *const std::ffi::c_char) -> Option<Cow<'a, str>> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the contract.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy())
}

/// Sets debug_query_string to a TopMemoryContext copy of `s`.
///
/// # Safety
/// Inside error reporting, in the backend's only thread.
unsafe fn replace_statement(s: &str) {
    let c = CString::new(s).unwrap_or_else(|_| CString::from(c"[not logged: redacted]"));
    // SAFETY: a copy in TopMemoryContext outlives this report (the logger
    // prints it after the hook); the previous copy was ours and nothing else
    // points to it once debug_query_string is replaced here.
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

/// # Safety
/// `edata` is the live ErrorData being reported.
unsafe fn redact_error(edata: *mut pg_sys::ErrorData) {
    // SAFETY: the contract; the fields are NULL or palloc'd strings.
    let e = unsafe { &mut *edata };
    let state = crate::pg::error::sqlstate_text(e.sqlerrcode);
    let syntax = state == "42601";
    // SAFETY: a plain global of the backend, read in its only thread.
    let backslash_quotes = unsafe { !pg_sys::standard_conforming_strings };
    // SAFETY: debug_query_string and STATEMENT_COPY are globals of this
    // backend, read in its only thread.
    let (current, ours) = unsafe {
        let p = pg_sys::debug_query_string;
        (p, !p.is_null() && p.cast_mut() == STATEMENT_COPY)
    };
    // What the statement says about secrets: from the cache while
    // debug_query_string is our copy (its original is gone).
    let mut secrets = match (ours, last().as_ref()) {
        (true, Some(a)) => Some(a.secrets.clone()),
        _ => None,
    };
    if ours && secrets.is_none() {
        // Our copy without its analysis (after a panic): fail closed.
        secrets = Some(Secrets::fail_closed());
    }
    let mut secrets = match secrets {
        Some(s) => s,
        None => {
            // SAFETY: debug_query_string is NULL or the current statement.
            let stmt = unsafe { text(current) };
            match stmt {
                None => Secrets::default(),
                Some(stmt) => {
                    let key = (
                        current as usize,
                        stmt.len(),
                        redact::fingerprint(&stmt),
                        syntax,
                    );
                    let hit = last()
                        .as_ref()
                        .filter(|a| a.key == key)
                        .map(|a| a.secrets.clone());
                    match hit {
                        Some(s) => s,
                        None => {
                            let (out, s) = redact::statement_for(&stmt, backslash_quotes, &state);
                            if let Some(r) = out {
                                // SAFETY: inside error reporting, one thread.
                                unsafe { replace_statement(&r) };
                            }
                            // Keyed by the copy when there is one: later
                            // reports see it as debug_query_string.
                            // SAFETY: as above.
                            let now = unsafe { pg_sys::debug_query_string } as usize;
                            let key = if now == current as usize {
                                key
                            } else {
                                (now, 0, 0, syntax)
                            };
                            *last() = Some(Analysed {
                                key,
                                secrets: s.clone(),
                            });
                            s
                        }
                    }
                }
            }
        }
    };
    if ours && syntax && secrets.sensitive() {
        // A syntax error in a sensitive statement logged before (our copy
        // holds its precise redaction): not logged after all.
        secrets.set_all_params();
        // SAFETY: inside error reporting, one thread.
        unsafe { replace_statement(redact::NOT_LOGGED) };
        if let Some(a) = last().as_mut() {
            // SAFETY: as above.
            a.key.0 = unsafe { pg_sys::debug_query_string } as usize;
            a.secrets = secrets.clone();
        }
    }
    // The other SQL texts of the report: the internal query (a statement of
    // its own) and a logged statement in the message (`execute <name>: ...`,
    // auto_explain's query text and parameters).
    // SAFETY: fields of the live ErrorData (NULL or NUL-terminated).
    let internal = unsafe { text(e.internalquery) };
    let mut internal_out = None;
    if let Some(q) = internal.as_deref() {
        let (out, s) = redact::statement_for(q, backslash_quotes, &state);
        secrets.merge(s);
        internal_out = out;
    }
    // SAFETY: as above.
    if let Some(m) = unsafe { text(e.message) } {
        secrets.merge(redact::sql_secrets(&m, backslash_quotes));
    }
    let input_error = redact::input_error(&state);
    if let Some(q) = internal_out {
        e.internalquery = crate::pg::error::palloc_copy(&q);
    }
    // A report this extension raised through its own errors (a Rust source
    // file, never XX000: a panic or internal error may quote data) quotes
    // no literal of the statement: its message, detail and hint keep their
    // words. The context (Postgres' own lines) and internal query do not.
    // SAFETY: filename is NULL or the static source file name of the report.
    let raised_here =
        state != "XX000" && unsafe { text(e.filename) }.is_some_and(|f| f.ends_with(".rs"));
    let ours = secrets.for_our_text();
    for (field, own_words) in [
        (&mut e.message, raised_here),
        (&mut e.detail, raised_here),
        (&mut e.detail_log, raised_here),
        (&mut e.hint, raised_here),
        (&mut e.context, false),
        (&mut e.internalquery, false),
    ] {
        let rules = if own_words { &ours } else { &secrets };
        // SAFETY: each field is NULL or a palloc'd string of this report.
        let t = unsafe { text(*field) };
        if let Some(r) = t.and_then(|t| redact::field(&t, rules, input_error)) {
            *field = crate::pg::error::palloc_copy(&r);
        }
    }
}

/// After a panic: every text of the report becomes the marker, and the
/// STATEMENT line is not printed.
///
/// # Safety
/// `edata` is the live ErrorData being reported.
unsafe fn fail_closed(edata: *mut pg_sys::ErrorData) {
    // SAFETY: the contract.
    let e = unsafe { &mut *edata };
    e.hide_stmt = true;
    for field in [
        &mut e.message,
        &mut e.detail,
        &mut e.detail_log,
        &mut e.hint,
        &mut e.context,
        &mut e.internalquery,
    ] {
        if !field.is_null() {
            *field = crate::pg::error::palloc_copy(redact::NOT_LOGGED);
        }
    }
    // SAFETY: inside error reporting, one thread.
    unsafe { replace_statement(redact::NOT_LOGGED) };
    *last() = None;
}
