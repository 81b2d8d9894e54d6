//! The one place where errors meet HTTP (API.md 16): inside a PostgREST
//! request (`request.method` set), every error this extension raises leaves
//! as PostgREST's custom error, SQLSTATE `PGRST`: its message the response
//! body `{code, message, details, hint}` (our SQLSTATE as `code`), its
//! detail the status and headers (`core::http`): 28000 and PT401 401 with
//! `WWW-Authenticate`, 42501 and PT403 403, P0002 404, class 22 400, 23505
//! 409, PT429 429 and 55P03 503 with `Retry-After`, the rest 500. Outside a
//! request, and for errors of Postgres itself or internal errors (XX000),
//! nothing changes. Called from the emit_log_hook (`pg::redact`), after the
//! redaction, so only what a handler did not catch is rewritten, just
//! before it is sent (the hook runs for every ERROR that reaches the server
//! log, which it does unless log_min_messages is above ERROR).

use pgrx::pg_sys;
use std::ffi::CStr;

/// Whether the current statement is part of a PostgREST request.
fn in_request() -> bool {
    // SAFETY: GetConfigOption reads a setting by name (missing_ok: NULL for
    // an unknown one; request.method is a placeholder PostgREST sets); the
    // result is NULL or a NUL-terminated string of the GUC machinery that
    // lives until the setting changes, read at once here.
    let p = unsafe { pg_sys::GetConfigOption(c"request.method".as_ptr(), true, false) };
    // SAFETY: p is NULL (checked) or NUL-terminated (the contract above).
    !p.is_null() && !unsafe { CStr::from_ptr(p) }.to_bytes().is_empty()
}

/// The text of a field, if any.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that lives for the call.
unsafe fn text(p: *const std::ffi::c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    // SAFETY: the contract.
    Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// Rewrites `edata` as a PGRST custom error when it is an ERROR this
/// extension raised inside a PostgREST request.
///
/// # Safety
/// `edata` is the live ErrorData being reported.
pub unsafe fn rewrite(edata: *mut pg_sys::ErrorData) {
    // SAFETY: the contract; its fields are NULL or palloc'd strings.
    let e = unsafe { &mut *edata };
    if e.elevel != pgrx::PgLogLevel::ERROR as i32 || !in_request() {
        return;
    }
    let state = crate::pg::error::sqlstate_text(e.sqlerrcode);
    // SAFETY: filename is NULL or the static source file name of the report.
    let ours = state != "XX000" && unsafe { text(e.filename) }.is_some_and(|f| f.ends_with(".rs"));
    if !ours || state == "PGRST" {
        return;
    }
    // SAFETY: fields of the live report (NULL or NUL-terminated).
    let (message, detail, hint) = unsafe { (text(e.message), text(e.detail), text(e.hint)) };
    let body = crate::core::http::body(
        &state,
        message.as_deref().unwrap_or_default(),
        detail.as_deref(),
        hint.as_deref(),
    );
    e.sqlerrcode = crate::pg::error::make_sqlstate(*b"PGRST");
    e.message = crate::pg::error::palloc_copy(&body);
    e.detail = crate::pg::error::palloc_copy(&crate::core::http::response(&state));
    e.hint = std::ptr::null_mut();
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_code_is_pgrst() {
        use crate::pg::error::{make_sqlstate, sqlstate_text};
        assert_eq!(sqlstate_text(make_sqlstate(*b"PGRST")), "PGRST");
    }
}
