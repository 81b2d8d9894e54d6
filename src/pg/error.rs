//! Domain errors (`core::error`) to Postgres errors with the SQLSTATE of
//! API.md. `#[pg_extern]` functions return `PgResult<T>`; pgrx raises the
//! `ErrorReport` with its own code, message, DETAIL and HINT.

use crate::core::error::{IdentityError, Kind};
pub use pgrx::pg_sys::panic::ErrorReport;
use pgrx::PgSqlErrorCode;

pub type PgResult<T> = Result<T, ErrorReport>;

pub fn sqlerrcode(kind: Kind) -> PgSqlErrorCode {
    match kind {
        Kind::Unauthenticated => PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION,
        Kind::Forbidden => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        Kind::InvalidArgument => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        Kind::NotFound => PgSqlErrorCode::ERRCODE_NO_DATA_FOUND,
        Kind::Duplicate => PgSqlErrorCode::ERRCODE_UNIQUE_VIOLATION,
        Kind::NotConfigured => PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        Kind::Busy => PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
    }
}

/// A domain error as the Postgres error pgrx raises (the core crate knows
/// nothing of pgrx, so this is a function, not a `From`). Its DETAIL is
/// `IdentityError::detail_text`: the reason code first, always.
#[track_caller]
pub fn report(e: IdentityError) -> ErrorReport {
    let mut r =
        ErrorReport::new(sqlerrcode(e.kind), e.message, "identity").set_detail(e.detail_text());
    if let Some(h) = e.hint {
        r = r.set_hint(h);
    }
    r
}

/// `?` for core results in glue that returns `PgResult`: `.pg()?`.
pub trait Pg<T> {
    fn pg(self) -> PgResult<T>;
}

/// `IdentityError::...(...).pg_error()` where an `ErrorReport` is wanted.
pub trait PgError {
    fn pg_error(self) -> ErrorReport;
}

impl PgError for IdentityError {
    #[track_caller]
    fn pg_error(self) -> ErrorReport {
        report(self)
    }
}

impl<T> Pg<T> for Result<T, IdentityError> {
    #[track_caller]
    fn pg(self) -> PgResult<T> {
        self.map_err(report)
    }
}

/// SPI failures are internal errors; their text comes from Postgres and
/// contains no bound parameter values. DETAIL: the code `internal`.
pub fn spi(e: pgrx::spi::Error) -> ErrorReport {
    ErrorReport::new(
        PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        format!("identity: {e}"),
        "identity",
    )
    .set_detail(crate::core::reason::Reason::Internal.as_str())
}

/// The reason code an error's DETAIL starts with (`core::reason::code_of`).
pub fn code_of(r: &ErrorReport) -> Option<crate::core::reason::Reason> {
    r.detail()
        .and_then(crate::core::reason::code_of)
        .and_then(crate::core::reason::Reason::parse)
}

/// An error to raise with an SQLSTATE that pgrx's `PgSqlErrorCode` cannot
/// carry (PostgREST's `PTxxx` convention: `PT401` answers HTTP 401). pgrx
/// turns every error that crosses one of its guards into a known code (an
/// unknown one becomes XX000), so these are raised by `raise_custom` from a
/// plain V1 function, outside any guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomError {
    pub sqlstate: [u8; 5],
    pub message: String,
    /// Starts with the reason code, as every DETAIL (`Reason::detail`).
    pub detail: Option<String>,
}

/// A palloc'd copy of `s` in the current memory context (ErrorContext while
/// an error is reported); a NUL in `s` (never in our output) gives the
/// marker.
pub fn palloc_copy(s: &str) -> *mut std::ffi::c_char {
    let c = std::ffi::CString::new(s)
        .unwrap_or_else(|_| std::ffi::CString::from(c"[not logged: redacted]"));
    // SAFETY: pstrdup copies a NUL-terminated string into palloc'd memory.
    unsafe { pgrx::pg_sys::pstrdup(c.as_ptr()) }
}

/// The five characters of an `ErrorData.sqlerrcode` (elog.h's unpacking).
pub fn sqlstate_text(code: i32) -> String {
    (0..5)
        .map(|i| char::from(((code >> (6 * i)) & 0x3F) as u8 + b'0'))
        .collect()
}

/// MAKE_SQLSTATE of elog.h: six bits per character.
pub fn make_sqlstate(c: [u8; 5]) -> i32 {
    c.iter()
        .enumerate()
        .map(|(i, &ch)| ((ch.wrapping_sub(b'0') & 0x3F) as i32) << (6 * i))
        .sum()
}

// The ereport entry points; pgrx keeps them out of its bindings.
unsafe extern "C-unwind" {
    fn errstart(elevel: std::ffi::c_int, domain: *const std::ffi::c_char) -> bool;
    fn errcode(sqlerrcode: std::ffi::c_int) -> std::ffi::c_int;
    fn errmsg(fmt: *const std::ffi::c_char, ...) -> std::ffi::c_int;
    fn errdetail(fmt: *const std::ffi::c_char, ...) -> std::ffi::c_int;
    fn errfinish(
        filename: *const std::ffi::c_char,
        lineno: std::ffi::c_int,
        funcname: *const std::ffi::c_char,
    );
}

/// Raises `e` as an ERROR and does not return.
///
/// # Safety
/// `errfinish` longjmps to the innermost Postgres error handler, skipping
/// every Rust frame in between without running destructors. The caller must
/// be a V1 function called by the function manager directly (not inside a
/// `#[pg_guard]` or `pg_extern`, whose frames hold values to drop), and hold
/// no value that needs dropping at the call: `e` is moved in and its strings
/// are copied into palloc memory and freed before the jump.
pub unsafe fn raise_custom(e: CustomError) -> ! {
    use pgrx::pg_sys::AsPgCStr;
    // palloc copies in the current context (reset with the error); the Rust
    // strings are dropped here, before errfinish.
    let message = e.message.as_str().as_pg_cstr();
    let detail = e.detail.as_deref().map(|d| d.as_pg_cstr());
    let code = make_sqlstate(e.sqlstate);
    drop(e);
    // SAFETY: the elog.h sequence, as pgrx's do_ereport runs it; "%s" with
    // NUL-terminated palloc strings.
    unsafe {
        if errstart(pgrx::PgLogLevel::ERROR as _, std::ptr::null()) {
            errcode(code);
            errmsg(c"%s".as_ptr(), message);
            if let Some(d) = detail {
                errdetail(c"%s".as_ptr(), d);
            }
            errfinish(c"error.rs".as_ptr(), line!() as _, c"raise_custom".as_ptr());
        }
    }
    unreachable!("errfinish at ERROR does not return")
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlstates_encode_as_elog_h() {
        // ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION is MAKE_SQLSTATE('2','8','0','0','0').
        assert_eq!(
            super::make_sqlstate(*b"28000"),
            pgrx::PgSqlErrorCode::ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION as i32
        );
        assert_eq!(
            super::make_sqlstate(*b"P0002"),
            pgrx::PgSqlErrorCode::ERRCODE_NO_DATA_FOUND as i32
        );
    }
}
