//! Domain errors (`core::error`) to Postgres errors with the SQLSTATE of
//! API.md. `#[pg_extern]` functions return `PgResult<T>`; pgrx raises the
//! `ErrorReport` with its own code, message, DETAIL and HINT.

use crate::core::error::{IdentityError, Kind};
use pgrx::pg_sys::panic::ErrorReport;
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
    }
}

impl From<IdentityError> for ErrorReport {
    #[track_caller]
    fn from(e: IdentityError) -> Self {
        let mut r = ErrorReport::new(sqlerrcode(e.kind), e.message, "identity");
        if let Some(d) = e.detail {
            r = r.set_detail(d);
        }
        if let Some(h) = e.hint {
            r = r.set_hint(h);
        }
        r
    }
}

/// SPI failures are internal errors; their text comes from Postgres and
/// contains no bound parameter values.
pub fn spi(e: pgrx::spi::Error) -> ErrorReport {
    ErrorReport::new(PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, format!("identity: {e}"), "identity")
}
