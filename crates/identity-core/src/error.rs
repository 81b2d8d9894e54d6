//! Domain errors. Pure: no pgrx. `crate::error` turns them into Postgres
//! errors with the SQLSTATE that API.md assigns to each kind.
//!
//! Messages are built from fixed text and non-secret facts only; callers must
//! never put a token, key, password or credential into `message`, `detail` or
//! `hint` (the constructors below take `&'static str` for the message so that
//! a secret cannot be formatted into it by accident).
//!
//! Every error carries a reason code of the catalog (`crate::reason`): the
//! one it was given (`.reason(...)`), else its kind's. `detail_text` is the
//! DETAIL Postgres shows, `code` or `code: detail`: the one place DETAIL is
//! made, so no error goes out without its code.

pub use crate::reason::Reason;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 28000: a token or credential that does not authenticate.
    Unauthenticated,
    /// 42501: the caller may not do this.
    Forbidden,
    /// 22023: malformed, out of range, wrong shape.
    InvalidArgument,
    /// P0002: no such object, or not visible to the caller.
    NotFound,
    /// 23505: duplicate.
    Duplicate,
    /// 55000: the extension is not configured for this (e.g. missing key).
    NotConfigured,
    /// 55P03: a row another transaction is changing; answered at once
    /// instead of waiting for it.
    Busy,
}

impl Kind {
    /// The SQLSTATE of API.md's conventions.
    pub const fn sqlstate(self) -> &'static str {
        match self {
            Kind::Unauthenticated => "28000",
            Kind::Forbidden => "42501",
            Kind::InvalidArgument => "22023",
            Kind::NotFound => "P0002",
            Kind::Duplicate => "23505",
            Kind::NotConfigured => "55000",
            Kind::Busy => "55P03",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityError {
    pub kind: Kind,
    pub message: &'static str,
    pub detail: Option<String>,
    pub hint: Option<std::borrow::Cow<'static, str>>,
    /// The reason code, when more specific than the kind's.
    pub reason: Option<Reason>,
}

impl IdentityError {
    pub const fn new(kind: Kind, message: &'static str) -> Self {
        IdentityError {
            kind,
            message,
            detail: None,
            hint: None,
            reason: None,
        }
    }
    pub fn invalid(message: &'static str) -> Self {
        Self::new(Kind::InvalidArgument, message)
    }
    pub fn unauthenticated(message: &'static str) -> Self {
        Self::new(Kind::Unauthenticated, message)
    }
    pub fn not_configured(message: &'static str) -> Self {
        Self::new(Kind::NotConfigured, message)
    }
    pub fn duplicate(message: &'static str) -> Self {
        Self::new(Kind::Duplicate, message)
    }
    /// DETAIL text: facts about the input (lengths, positions, names), never
    /// the input itself when it may be a secret.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
    pub fn hint(mut self, hint: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    /// The reason code of the catalog this error carries.
    pub fn reason(mut self, reason: Reason) -> Self {
        self.reason = Some(reason);
        self
    }
    /// The error's code: the one given, else its kind's.
    pub fn code(&self) -> Reason {
        self.reason.unwrap_or(Reason::of_kind(self.kind))
    }
    /// The DETAIL raised: `code`, or `code: detail`.
    pub fn detail_text(&self) -> String {
        self.code().detail(self.detail.as_deref())
    }
    pub fn sqlstate(&self) -> &'static str {
        self.kind.sqlstate()
    }
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)?;
        if let Some(d) = &self.detail {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

impl std::error::Error for IdentityError {}

pub type Result<T> = std::result::Result<T, IdentityError>;

/// A required argument: 22023 with `what` (e.g. "email is required") when NULL.
pub fn required<T>(v: Option<T>, what: &'static str) -> Result<T> {
    v.ok_or_else(|| IdentityError::invalid(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_the_api_sqlstate() {
        let cases = [
            (Kind::Unauthenticated, "28000"),
            (Kind::Forbidden, "42501"),
            (Kind::InvalidArgument, "22023"),
            (Kind::NotFound, "P0002"),
            (Kind::Duplicate, "23505"),
            (Kind::NotConfigured, "55000"),
            (Kind::Busy, "55P03"),
        ];
        for (k, s) in cases {
            assert_eq!(k.sqlstate(), s);
            assert_eq!(s.len(), 5);
        }
    }

    #[test]
    fn display_joins_message_and_detail() {
        let e = IdentityError::invalid("token is malformed").detail("expected 3 parts, found 2");
        assert_eq!(
            e.to_string(),
            "token is malformed (expected 3 parts, found 2)"
        );
        assert_eq!(e.sqlstate(), "22023");
    }

    #[test]
    fn detail_text_starts_with_the_code() {
        let e = IdentityError::invalid("token is malformed").detail("expected 3 parts, found 2");
        assert_eq!(
            e.detail_text(),
            "invalid_argument: expected 3 parts, found 2"
        );
        let e = IdentityError::unauthenticated("JWT has expired").reason(Reason::TokenExpired);
        assert_eq!(e.code(), Reason::TokenExpired);
        assert_eq!(e.detail_text(), "token_expired");
        let e = IdentityError::new(Kind::Busy, "busy");
        assert_eq!(e.detail_text(), "busy");
        assert_eq!(IdentityError::duplicate("x").detail_text(), "duplicate");
    }
}
