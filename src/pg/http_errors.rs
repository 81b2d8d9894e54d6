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
use std::ffi::{CStr, CString};

/// MAKE_SQLSTATE('P','G','R','S','T').
fn pgrst() -> i32 {
    b"PGRST"
        .iter()
        .enumerate()
        .map(|(i, &ch)| ((ch.wrapping_sub(b'0') & 0x3F) as i32) << (6 * i))
        .sum()
}

/// The five characters of a SQLSTATE code.
fn sqlstate(code: i32) -> String {
    (0..5)
        .map(|i| char::from(((code >> (6 * i)) & 0x3F) as u8 + b'0'))
        .collect()
}

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

fn palloc_copy(s: &str) -> *mut std::ffi::c_char {
    let c = CString::new(s.replace('\0', "")).unwrap_or_default();
    // SAFETY: pstrdup copies a NUL-terminated string into palloc'd memory
    // (ErrorContext while an error is reported).
    unsafe { pg_sys::pstrdup(c.as_ptr()) }
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
    let state = sqlstate(e.sqlerrcode);
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
    e.sqlerrcode = pgrst();
    e.message = palloc_copy(&body);
    e.detail = palloc_copy(&crate::core::http::response(&state));
    e.hint = std::ptr::null_mut();
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_code_is_pgrst() {
        assert_eq!(super::sqlstate(super::pgrst()), "PGRST");
    }
}
