//! The reason codes of every error the extension raises (API.md 16): one
//! catalog, so clients branch on a stable word rather than on message text.
//!
//! Every error's DETAIL starts with its code: `code` alone when there is
//! nothing more to say, else `code: detail`. A code is `[a-z_]+`, so a
//! client reads it as everything up to the first `:` (or the end):
//! `^([a-z_]+)(?::|$)` (`code_of` here). `try_verify_jwt` and
//! `try_verify_api_token` answer the same codes in their `code` column.
//!
//! Pure: no pgrx. The README's "Reason codes" section documents each code
//! with its SQLSTATE and HTTP status; `interop/test_docs.py` and a unit test
//! below keep the two lists equal.

use crate::error::Kind;

macro_rules! reasons {
    ($($(#[$doc:meta])* $variant:ident => $code:literal,)*) => {
        /// One reason code of the catalog.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[$doc])* $variant,)*
        }

        impl Reason {
            /// Every code, in catalog order.
            pub const ALL: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The code as it appears in DETAIL and in `code` columns.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$variant => $code,)*
                }
            }
        }
    };
}

reasons! {
    // Refusals of a token or credential (28000, PostgREST 401).
    /// Not a token of the expected shape (JWT segments, base64url, JSON; an
    /// API token's length, prefix or alphabet); also an empty token.
    Malformed => "malformed",
    /// A JWT over 16 KB.
    TokenTooLarge => "token_too_large",
    /// No token where one is required (NULL).
    MissingToken => "missing_token",
    /// A JWT whose `alg` is not the selected key's (`none` included).
    AlgNotAllowed => "alg_not_allowed",
    /// A JWT whose `kid` names no key we know (or is not a short string).
    UnknownKid => "unknown_kid",
    /// A JWT signed with a key revoked by `revoke_signing_key`.
    KeyRevoked => "key_revoked",
    /// A JWT with a `crit` header (none is supported).
    UnsupportedHeader => "unsupported_header",
    /// The signature does not verify (JWT, webhook delivery).
    BadSignature => "bad_signature",
    /// A verified JWT's claims have the wrong type or form (exp not a number,
    /// jti or session_id of a form that could never be revoked, ...).
    InvalidClaims => "invalid_claims",
    /// A JWT without `exp`.
    MissingExp => "missing_exp",
    /// Past its `exp` (JWT) or `expires_at` (API token), leeway included.
    TokenExpired => "token_expired",
    /// Before its `nbf`.
    NotYetValid => "not_yet_valid",
    /// `iat` in the future.
    IssuedInFuture => "issued_in_future",
    /// `aud` is not the audience required.
    WrongAudience => "wrong_audience",
    /// `iss` is not identity.jwt_issuer.
    WrongIssuer => "wrong_issuer",
    /// The token was revoked: a JWT's jti, an API token, the API token a JWT
    /// was derived from, or every token of the user issued before
    /// `tokens_valid_after`.
    TokenRevoked => "token_revoked",
    /// The JWT's session was revoked (`revoke_session`).
    SessionRevoked => "session_revoked",
    /// A disabled API token (`update_api_token`, `enabled: false`).
    TokenDisabled => "token_disabled",
    /// An API token with the right shape and checksum that is not ours.
    UnknownToken => "unknown_token",
    /// An API token whose checksum does not match (a typo).
    BadChecksum => "bad_checksum",
    /// The token's user is suspended or disabled (or, for the request's
    /// actor, no longer active).
    UserSuspended => "user_suspended",
    /// The token's user was deleted or does not exist.
    UserDeleted => "user_deleted",
    /// An external JWT whose issuer is not registered.
    UnknownIssuer => "unknown_issuer",
    /// An external JWT whose `azp` is not among the issuer's parties.
    WrongAuthorizedParty => "wrong_authorized_party",
    /// An external JWT without a subject.
    MissingSubject => "missing_subject",
    /// An external JWT whose subject is linked to no user here and cannot be
    /// (provisioning off, no verified email, a read-only transaction, a user
    /// the issuer does not speak for).
    NotLinked => "not_linked",
    /// A webhook delivery without its signature headers.
    MissingHeader => "missing_header",
    /// A webhook delivery whose timestamp is not a time, or is outside the
    /// tolerance.
    BadTimestamp => "bad_timestamp",
    /// A request whose earlier `authenticate` in this transaction failed.
    AuthenticationFailed => "authentication_failed",
    /// Any other refusal of a credential.
    Unauthenticated => "unauthenticated",

    // Limits (PT429, PostgREST 429 with Retry-After).
    /// A rate limit's bucket is empty; the wait is in the HINT.
    RateLimited => "rate_limited",
    /// An API token's usage credits are spent (or an AI-service credential's
    /// credit limit is reached).
    UsageExceeded => "usage_exceeded",

    // The caller may not (42501, 403).
    /// The caller may not do this.
    Forbidden => "forbidden",
    /// The caller's token's scopes do not cover this.
    InsufficientScope => "insufficient_scope",
    /// A websocket or agent token used for what mints, changes or reveals.
    DerivedToken => "derived_token",

    // Other errors.
    /// No such object, or not visible to the caller (P0002, 404).
    NotFound => "not_found",
    /// A bad argument: malformed, out of range, wrong shape (22023, 400).
    InvalidArgument => "invalid_argument",
    /// Already exists (23505, 409).
    Duplicate => "duplicate",
    /// The extension is not configured for this (55000, 500).
    NotConfigured => "not_configured",
    /// A row another transaction is changing; retry (55P03, 503).
    Busy => "busy",
    /// An internal error (XX000, 500): a bug, never the caller's fault.
    Internal => "internal",
}

impl Reason {
    /// The code of an error of `kind` that names no more specific one.
    pub const fn of_kind(kind: Kind) -> Reason {
        match kind {
            Kind::Unauthenticated => Reason::Unauthenticated,
            Kind::Forbidden => Reason::Forbidden,
            Kind::InvalidArgument => Reason::InvalidArgument,
            Kind::NotFound => Reason::NotFound,
            Kind::Duplicate => Reason::Duplicate,
            Kind::NotConfigured => Reason::NotConfigured,
            Kind::Busy => Reason::Busy,
        }
    }

    /// The code named `s`, if it is one of the catalog.
    pub fn parse(s: &str) -> Option<Reason> {
        Reason::ALL.iter().copied().find(|r| r.as_str() == s)
    }

    /// The DETAIL of an error with this code: `code`, or `code: detail`.
    pub fn detail(self, detail: Option<&str>) -> String {
        match detail {
            Some(d) if !d.is_empty() => format!("{}: {d}", self.as_str()),
            _ => self.as_str().to_owned(),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The code a DETAIL starts with (`^[a-z_]+` up to the first `:` or the
/// end), if it has that form.
pub fn code_of(detail: &str) -> Option<&str> {
    let end = detail.find(':').unwrap_or(detail.len());
    let code = &detail[..end];
    (!code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')).then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_lowercase_words() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            let s = r.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
            assert!(!s.starts_with('_') && !s.ends_with('_'), "{s}");
            assert_eq!(Reason::parse(s), Some(*r));
            assert_eq!(r.to_string(), s);
        }
        assert_eq!(Reason::parse("nope"), None);
    }

    #[test]
    fn the_api_md_codes_are_in_the_catalog() {
        for s in [
            "token_expired",
            "token_revoked",
            "bad_signature",
            "unknown_kid",
            "user_suspended",
            "rate_limited",
            "usage_exceeded",
            "token_disabled",
            "malformed",
            "token_too_large",
            "alg_not_allowed",
            "not_yet_valid",
            "wrong_audience",
            "wrong_issuer",
            "missing_exp",
            "unknown_token",
            "bad_checksum",
            "forbidden",
            "not_found",
            "invalid_argument",
            "busy",
            "not_configured",
            "duplicate",
        ] {
            assert!(Reason::parse(s).is_some(), "{s}");
        }
    }

    #[test]
    fn every_kind_has_a_code() {
        for (k, s) in [
            (Kind::Unauthenticated, "unauthenticated"),
            (Kind::Forbidden, "forbidden"),
            (Kind::InvalidArgument, "invalid_argument"),
            (Kind::NotFound, "not_found"),
            (Kind::Duplicate, "duplicate"),
            (Kind::NotConfigured, "not_configured"),
            (Kind::Busy, "busy"),
        ] {
            assert_eq!(Reason::of_kind(k).as_str(), s);
        }
    }

    #[test]
    fn details_parse_back_to_their_code() {
        for r in Reason::ALL {
            for d in [None, Some(""), Some("expired"), Some("a: b: c"), Some(":")] {
                let text = r.detail(d);
                assert_eq!(code_of(&text), Some(r.as_str()), "{text}");
            }
        }
        assert_eq!(Reason::TokenExpired.detail(None), "token_expired");
        assert_eq!(
            Reason::WrongAudience.detail(Some("wrong aud")),
            "wrong_audience: wrong aud"
        );
        assert_eq!(code_of("Not a code: x"), None);
        assert_eq!(code_of(""), None);
        assert_eq!(code_of(": x"), None);
        assert_eq!(code_of("user suspended"), None);
    }

    #[test]
    fn the_readme_documents_every_code() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("## Reason codes")
            .nth(1)
            .expect("README has a Reason codes section");
        let section = section.split("\n## ").next().unwrap_or(section);
        for r in Reason::ALL {
            assert!(
                section.contains(&format!("| `{}` |", r.as_str())),
                "README's Reason codes lacks {r}"
            );
        }
    }
}
