//! JWT verification (RFC 7519, JWS RFC 7515): every check of verify_jwt
//! that needs no table (format, alg, key, signature, claims, exp / nbf /
//! iat with leeway, aud, iss), as a list of named checks; and the HMAC key
//! schedule HS256 signs and verifies with. Pure: `now` is an argument.

use super::compact::*;
use super::hs256::Hs256Key;
use crate::error::{IdentityError, Result};
use crate::reason::Reason;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

/// Minimum HS256 secret length (RFC 7518 3.2: a key of at least the hash size).
pub const MIN_SECRET_BYTES: usize = 32;

/// Everything verification depends on besides the token.
#[derive(Debug, Clone)]
pub struct VerifyConfig<'a> {
    pub now: i64,
    pub leeway: i64,
    /// Required `aud` (a string equal to it, or an array containing it).
    pub audience: Option<&'a str>,
    /// Required `iss`, when configured.
    pub issuer: Option<&'a str>,
}

/// One named check and its outcome, as `explain_jwt` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: CheckName,
    pub pass: bool,
    pub detail: Option<String>,
}

/// The name of one verification check (explain_jwt's `check`, the first
/// failed one's message in `refusal_message`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckName {
    Format,
    Alg,
    Kid,
    Crit,
    Signature,
    Claims,
    Exp,
    Nbf,
    Iat,
    Aud,
    Iss,
    RevokedJti,
    RevokedSession,
    UserStatus,
    TokensValidAfter,
    ParentToken,
    /// An external issuer's token: azp among the authorized parties.
    Azp,
    /// An external issuer's token: a subject.
    Sub,
}

impl CheckName {
    pub const fn as_str(self) -> &'static str {
        match self {
            CheckName::Format => "format",
            CheckName::Alg => "alg",
            CheckName::Kid => "kid",
            CheckName::Crit => "crit",
            CheckName::Signature => "signature",
            CheckName::Claims => "claims",
            CheckName::Exp => "exp",
            CheckName::Nbf => "nbf",
            CheckName::Iat => "iat",
            CheckName::Aud => "aud",
            CheckName::Iss => "iss",
            CheckName::RevokedJti => "revoked_jti",
            CheckName::RevokedSession => "revoked_session",
            CheckName::UserStatus => "user_status",
            CheckName::TokensValidAfter => "tokens_valid_after",
            CheckName::ParentToken => "parent_token",
            CheckName::Azp => "azp",
            CheckName::Sub => "sub",
        }
    }
}

impl std::fmt::Display for CheckName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Check {
    /// The reason code of this check's failure (`crate::reason`), from its
    /// name and detail: what `try_verify_jwt` answers as `code` and every
    /// refusal's DETAIL starts with.
    pub fn code(&self) -> Reason {
        let d = self.detail.as_deref().unwrap_or_default();
        match self.name {
            CheckName::Format if d.starts_with("token is too large") => Reason::TokenTooLarge,
            CheckName::Format => Reason::Malformed,
            CheckName::Alg => Reason::AlgNotAllowed,
            CheckName::Kid if d == KEY_REVOKED => Reason::KeyRevoked,
            CheckName::Kid => Reason::UnknownKid,
            CheckName::Crit => Reason::UnsupportedHeader,
            CheckName::Signature => Reason::BadSignature,
            CheckName::Claims => Reason::InvalidClaims,
            CheckName::Exp if d == NO_EXP => Reason::MissingExp,
            CheckName::Exp => Reason::TokenExpired,
            CheckName::Nbf => Reason::NotYetValid,
            CheckName::Iat => Reason::IssuedInFuture,
            CheckName::Aud => Reason::WrongAudience,
            CheckName::Iss => Reason::WrongIssuer,
            // A jti, session_id or token_id in a form nothing could revoke.
            CheckName::RevokedJti | CheckName::RevokedSession | CheckName::ParentToken
                if d.contains("could never be revoked") || d.contains("is not a UUID") =>
            {
                Reason::InvalidClaims
            }
            CheckName::RevokedJti | CheckName::TokensValidAfter | CheckName::ParentToken => {
                Reason::TokenRevoked
            }
            CheckName::RevokedSession => Reason::SessionRevoked,
            CheckName::UserStatus if d == "user deleted" => Reason::UserDeleted,
            CheckName::UserStatus => Reason::UserSuspended,
            CheckName::Azp => Reason::WrongAuthorizedParty,
            CheckName::Sub => Reason::MissingSubject,
        }
    }
}

/// Why a token was refused: the reason text of API.md section 3, and its
/// code of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub check: CheckName,
    pub reason: String,
    pub code: Reason,
}

impl Refusal {
    /// The refusal's DETAIL: `code: reason`.
    pub fn detail(&self) -> String {
        self.code.detail(Some(&self.reason))
    }

    /// The refusal as the 28000 error verify_jwt raises.
    pub fn error(&self) -> IdentityError {
        IdentityError::unauthenticated(refusal_message(self))
            .detail(self.reason.clone())
            .reason(self.code)
    }
}

/// The exp check's detail for a token without exp.
pub const NO_EXP: &str = "no exp claim";

fn b64_decode(seg: &str) -> Option<Vec<u8>> {
    crate::b64::decode(seg.as_bytes())
}

/// Read access to a token's claims, so the checks below run unchanged over a
/// serde map (unit tests, explain) and over a Postgres jsonb (the SQL hot
/// path, which parses the payload once, with jsonb_in).
pub trait Claims {
    /// A numeric claim (fractions floor): None when absent, Err when present
    /// but not a number (the caller names the claim in its refusal).
    #[allow(clippy::result_unit_err)]
    fn number(&self, k: &str) -> std::result::Result<Option<i64>, ()>;
    /// A string claim.
    fn string(&self, k: &str) -> Option<&str>;
    /// `aud` equals `want`, or is an array containing it.
    fn aud_contains(&self, want: &str) -> bool;
}

/// Claims behind a reference are read through it (the claims view of a
/// request checks the map it keeps).
impl<T: Claims + ?Sized> Claims for &T {
    fn number(&self, k: &str) -> std::result::Result<Option<i64>, ()> {
        (**self).number(k)
    }
    fn string(&self, k: &str) -> Option<&str> {
        (**self).string(k)
    }
    fn aud_contains(&self, want: &str) -> bool {
        (**self).aud_contains(want)
    }
}

impl Claims for Map<String, Value> {
    fn number(&self, k: &str) -> std::result::Result<Option<i64>, ()> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .or_else(|| {
                    v.as_f64()
                        .filter(|f| f.is_finite())
                        .map(|f| f.floor() as i64)
                })
                .map(Some)
                .ok_or(()),
        }
    }
    fn string(&self, k: &str) -> Option<&str> {
        self.get(k).and_then(Value::as_str)
    }
    fn aud_contains(&self, want: &str) -> bool {
        match self.get("aud") {
            Some(Value::String(s)) => s == want,
            Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(want)),
            _ => false,
        }
    }
}

/// Validates a payload as JSON that Postgres' jsonb_in will also accept,
/// without building anything: an object, and no \u0000 (jsonb refuses it).
/// The glue calls jsonb_in only after the signature verified, so the gaps
/// left (a number beyond numeric's range, a lone surrogate escape) are
/// reachable only by a holder of the secret, and then raise rather than pass.
pub fn payload_is_jsonb_object(bytes: &[u8]) -> std::result::Result<(), &'static str> {
    let trimmed = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map(|i| bytes[i]);
    if trimmed != Some(b'{') {
        return Err("payload is not a JSON object");
    }
    // jsonb_in trusts its input to be in the database encoding.
    std::str::from_utf8(bytes).map_err(|_| "payload is not valid UTF-8")?;
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes)
        .map_err(|_| "payload is not valid JSON")?;
    if bytes.windows(6).any(|w| w == b"\\u0000") {
        return Err("payload contains \\u0000");
    }
    Ok(())
}

/// A verified payload, handed to the caller's parser: its JSON text (valid
/// UTF-8, a JSON object, no \u0000) and, when `core::jsonb` encoded it, the
/// binary jsonb jsonb_in would make of it.
pub struct Payload<'a> {
    pub json: &'a [u8],
    pub jsonb: Option<crate::jsonb::Encoded>,
}

/// An HS256 key with HMAC's key schedule done (the padded key's inner and
/// outer blocks hashed), so a verification hashes only the token; a clone
/// copies the two states.
#[derive(Clone)]
pub struct HmacKey(Hs256Key);

impl HmacKey {
    pub fn new(secret: &[u8]) -> HmacKey {
        HmacKey(Hs256Key::new(secret))
    }

    /// The HMAC-SHA256 of `input`.
    pub fn sign(&self, input: &[u8]) -> [u8; 32] {
        self.0.mac(input)
    }

    /// Whether `sig` is the HMAC-SHA256 of `input` (compared in constant time).
    pub fn verify(&self, input: &[u8], sig: &[u8]) -> bool {
        same_mac(&self.0.mac(input), sig)
    }

    /// The MAC of `input` as a stream to compress between other work.
    pub fn stream<'a>(&self, input: &'a [u8]) -> super::hs256::Stream<'a> {
        self.0.stream(input)
    }
}

/// Whether `sig` is `mac`, in constant time.
fn same_mac(mac: &[u8; 32], sig: &[u8]) -> bool {
    sig.len() == 32 && bool::from(mac.as_slice().ct_eq(sig))
}

/// The key a token's header selects.
pub enum KeyChoice {
    /// No `kid`: the HS256 shared secret.
    Secret(HmacKey),
    /// A `kid` naming a known asymmetric key.
    Public(std::rc::Rc<crate::keys::VerifyingKey>),
    /// A `kid` naming no acceptable key.
    UnknownKid,
    /// A `kid` naming a revoked key.
    RevokedKid,
}

/// Runs every stateless check of a token in order, recording each; stops at
/// the first failure of a check later ones depend on (format, key, alg,
/// signature). `resolve` picks the key from the header (an Err is a
/// configuration error, e.g. no secret, and is returned as is); the header's
/// alg must be exactly that key's algorithm (so `none`, and HS256 made with
/// an asymmetric key's public part, are refused). `parse` turns the decoded
/// payload bytes into claims, only after the signature verified.
pub fn check_with<C: Claims>(
    token: &str,
    cfg: &VerifyConfig,
    resolve: impl FnOnce(Option<&str>) -> Result<KeyChoice>,
    parse: impl FnOnce(Payload) -> std::result::Result<C, String>,
) -> Result<(Vec<Check>, Option<C>)> {
    check_with_hint(token, cfg, resolve, parse, |_| {})
}

/// `check_with`, and `hint` sees the payload's top claims as soon as the
/// encoder has read them, before the signature is checked: for work the
/// caller can start early (verify_jwt prefetches its revocation lookups
/// while the HMAC finishes). Nothing may be decided on them there: the
/// signature is not checked yet.
pub fn check_with_hint<C: Claims>(
    token: &str,
    cfg: &VerifyConfig,
    resolve: impl FnOnce(Option<&str>) -> Result<KeyChoice>,
    parse: impl FnOnce(Payload) -> std::result::Result<C, String>,
    hint: impl FnOnce(&crate::jsonb::Top),
) -> Result<(Vec<Check>, Option<C>)> {
    with_payload_buffer(|buf| {
        let mut checks = Vec::with_capacity(10);
        let mut push = |name: CheckName, pass: bool, detail: Option<String>| {
            checks.push(Check { name, pass, detail });
            pass
        };
        let reason = |e: IdentityError| match e.detail {
            Some(d) => format!("{}: {d}", e.message),
            None => e.message.to_string(),
        };
        let parts = match split(token) {
            Ok(p) => p,
            Err(e) => {
                push(CheckName::Format, false, Some(reason(e)));
                return Ok((checks, None));
            }
        };
        // The header every HS256 token of ours carries is known without a parse.
        let header = if parts.header_b64 == HS256_HEADER_B64 {
            None
        } else {
            match json_object("header", parts.header_b64) {
                Ok(h) => Some(h),
                Err(e) => {
                    push(CheckName::Format, false, Some(reason(e)));
                    return Ok((checks, None));
                }
            }
        };
        let field = |k: &str| header.as_ref().and_then(|h| h.get(k));
        let payload_bytes = match b64_into("payload", parts.payload_b64, buf) {
            Ok(b) => b,
            Err(e) => {
                push(CheckName::Format, false, Some(reason(e)));
                return Ok((checks, None));
            }
        };
        // The key is chosen now, so that an HS256 MAC can be compressed while
        // the payload is encoded (hs256.rs says why); a bad kid and the
        // resolver's error still count only after the format check, as before.
        let kid = match field("kid") {
            None => Ok(None),
            Some(Value::String(k)) if !k.is_empty() && k.len() <= 100 => Ok(Some(k.as_str())),
            Some(_) => Err(()),
        };
        let key = kid.map(resolve);
        let input = parts.signing_input(token).as_bytes();
        let mut mac = match &key {
            Ok(Ok(KeyChoice::Secret(k))) => Some(k.stream(input)),
            _ => None,
        };
        // The binary jsonb, when the fast encoder takes the payload (it accepts
        // valid JSON objects only); otherwise the full validation decides. One
        // block of the MAC every third string.
        let mut strings = 0u32;
        let jsonb = crate::jsonb::shape::encode_claims_shaped(payload_bytes, || {
            strings += 1;
            if strings.is_multiple_of(3) {
                if let Some(m) = mac.as_mut() {
                    m.step();
                }
            }
        });
        if let Some(e) = &jsonb {
            hint(&e.top);
        }
        if jsonb.is_none() {
            if let Err(why) = payload_is_jsonb_object(payload_bytes) {
                push(
                    CheckName::Format,
                    false,
                    Some(format!("token is malformed: {why}")),
                );
                return Ok((checks, None));
            }
        }
        push(CheckName::Format, true, None);
        let key = match key {
            Ok(k) => k?,
            Err(()) => {
                push(
                    CheckName::Kid,
                    false,
                    Some("kid is not a short string".into()),
                );
                return Ok((checks, None));
            }
        };
        match key {
            KeyChoice::UnknownKid => {
                push(CheckName::Kid, false, Some("unknown kid".into()));
                return Ok((checks, None));
            }
            KeyChoice::RevokedKid => {
                push(CheckName::Kid, false, Some(KEY_REVOKED.into()));
                return Ok((checks, None));
            }
            _ => {}
        }
        // alg allow-list: exactly the selected key's algorithm ("none", and any
        // other algorithm, are refused).
        let allowed = match &key {
            KeyChoice::Secret(_) => "HS256",
            KeyChoice::Public(k) => k.alg().name(),
            KeyChoice::UnknownKid | KeyChoice::RevokedKid => unreachable!(),
        };
        let alg = if header.is_none() {
            "HS256"
        } else {
            field("alg").and_then(Value::as_str).unwrap_or("")
        };
        if !push(
            CheckName::Alg,
            alg == allowed,
            (alg != allowed).then(|| format!("alg {alg:?} is not allowed")),
        ) {
            return Ok((checks, None));
        }
        if field("crit").is_some() {
            push(
                CheckName::Crit,
                false,
                Some("unsupported crit header".into()),
            );
            return Ok((checks, None));
        }
        let sig_ok = match &key {
            KeyChoice::Secret(k) => {
                let mut sig = [0u8; 32];
                let mac = match mac {
                    Some(m) => m.finish(),
                    None => k.sign(input),
                };
                crate::b64::decode_into(parts.signature_b64.as_bytes(), &mut sig)
                    && same_mac(&mac, &sig)
            }
            KeyChoice::Public(k) => {
                b64_decode(parts.signature_b64).is_some_and(|sig| k.verify(input, &sig))
            }
            KeyChoice::UnknownKid | KeyChoice::RevokedKid => false,
        };
        if !push(
            CheckName::Signature,
            sig_ok,
            (!sig_ok).then(|| "bad signature".to_string()),
        ) {
            return Ok((checks, None));
        }
        let claims = match parse(Payload {
            json: payload_bytes,
            jsonb,
        }) {
            Ok(c) => c,
            Err(e) => {
                push(CheckName::Claims, false, Some(e));
                return Ok((checks, None));
            }
        };
        let all = claim_checks(&claims, cfg, &mut checks);
        Ok((checks, all.then_some(claims)))
    })
}

/// Runs `f` with the thread's payload buffer (`PAYLOAD`), or a buffer of
/// its own for a verification inside a verification (a key resolver that
/// ran SQL calling verify_jwt: never expected).
fn with_payload_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    PAYLOAD.with(|b| match b.try_borrow_mut() {
        Ok(mut buf) => {
            let r = f(&mut buf);
            // Kept for the next call unless a large payload grew it.
            if buf.capacity() > PAYLOAD_KEPT {
                *buf = Vec::new();
            }
            r
        }
        Err(_) => f(&mut Vec::new()),
    })
}

thread_local! {
    /// The decoded payload of the verification in progress, reused from
    /// call to call: no allocation (and no zeroed copy) per token.
    static PAYLOAD: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The payload buffer a thread keeps between verifications (bytes of
/// capacity); a larger one, grown by a large payload, is let go.
const PAYLOAD_KEPT: usize = 4096;

/// The checks of a verified payload's claims (exp, nbf, iat, aud, iss),
/// recorded in `checks`; true when all pass. Shared by `check_with` and by
/// callers that already hold a payload whose signature verified.
pub fn claim_checks<C: Claims>(claims: &C, cfg: &VerifyConfig, checks: &mut Vec<Check>) -> bool {
    let mut push = |name: CheckName, pass: bool, detail: Option<String>| {
        checks.push(Check { name, pass, detail });
        pass
    };
    let mut all = true;
    let (exp, nbf, iat) = match (
        claims.number("exp"),
        claims.number("nbf"),
        claims.number("iat"),
    ) {
        (Ok(e), Ok(n), Ok(i)) => (e, n, i),
        (e, n, i) => {
            let k = if e.is_err() {
                "exp"
            } else if n.is_err() {
                "nbf"
            } else {
                "iat"
            };
            let _ = i;
            push(
                CheckName::Claims,
                false,
                Some(format!("{k} is not a number")),
            );
            return false;
        }
    };
    all &= match exp {
        None => push(CheckName::Exp, false, Some(NO_EXP.into())),
        Some(exp) => push(
            CheckName::Exp,
            cfg.now < exp.saturating_add(cfg.leeway),
            (cfg.now >= exp.saturating_add(cfg.leeway)).then(|| "expired".into()),
        ),
    };
    if let Some(nbf) = nbf {
        let ok = cfg.now.saturating_add(cfg.leeway) >= nbf;
        all &= push(CheckName::Nbf, ok, (!ok).then(|| "not yet valid".into()));
    }
    if let Some(iat) = iat {
        let ok = iat <= cfg.now.saturating_add(cfg.leeway);
        all &= push(
            CheckName::Iat,
            ok,
            (!ok).then(|| "issued in the future".into()),
        );
    }
    if let Some(want) = cfg.audience {
        let ok = claims.aud_contains(want);
        all &= push(
            CheckName::Aud,
            ok,
            (!ok).then(|| format!("wrong aud (expected {want:?})")),
        );
    }
    if let Some(want) = cfg.issuer {
        let ok = claims.string("iss") == Some(want);
        all &= push(
            CheckName::Iss,
            ok,
            (!ok).then(|| format!("wrong iss (expected {want:?})")),
        );
    }
    all
}

/// `check_with` for HS256 only, over a serde map (unit tests).
pub fn check_hs256(
    token: &str,
    secret: &[u8],
    cfg: &VerifyConfig,
) -> (Vec<Check>, Option<Map<String, Value>>) {
    check_with(
        token,
        cfg,
        |_| Ok(KeyChoice::Secret(HmacKey::new(secret))),
        |p| match serde_json::from_slice::<Value>(p.json) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err("payload is not a JSON object".to_string()),
        },
    )
    .expect("the secret resolver does not fail")
}

/// The first failed check as a refusal (API.md reason text).
pub fn first_refusal(checks: &[Check]) -> Option<Refusal> {
    checks.iter().find(|c| !c.pass).map(|c| Refusal {
        check: c.name,
        code: c.code(),
        reason: c
            .detail
            .clone()
            .unwrap_or_else(|| format!("{} check failed", c.name)),
    })
}

/// The one-line message for a refused token (reasons go in DETAIL).
/// The kid check's detail for a revoked key.
pub const KEY_REVOKED: &str = "key revoked";

pub fn refusal_message(r: &Refusal) -> &'static str {
    match (r.check, r.reason.as_str()) {
        (CheckName::Exp, NO_EXP) => "JWT has no exp claim",
        (CheckName::Exp, _) => "JWT has expired",
        (CheckName::Format, _) => "JWT is malformed",
        (CheckName::Alg, _) => "JWT algorithm is not allowed",
        (CheckName::Kid, KEY_REVOKED) => "JWT signing key has been revoked",
        (CheckName::Kid, _) => "JWT key id is unknown",
        (CheckName::Crit, _) => "JWT has an unsupported critical header",
        (CheckName::Signature, _) => "JWT signature is invalid",
        (CheckName::Claims, _) => "JWT claims are malformed",
        (CheckName::Nbf, _) => "JWT is not yet valid",
        (CheckName::Iat, _) => "JWT is issued in the future",
        (CheckName::Aud, _) => "JWT audience is wrong",
        (CheckName::Iss, _) => "JWT issuer is wrong",
        (CheckName::RevokedJti, _) => "JWT has been revoked",
        (CheckName::RevokedSession, _) => "JWT session has been revoked",
        (CheckName::ParentToken, _) => "JWT's API token is no longer valid",
        (CheckName::TokensValidAfter, _) => "JWT was issued before the user's tokens were revoked",
        (CheckName::UserStatus, _) => "JWT user is not active",
        (CheckName::Azp, _) => "JWT authorized party is not allowed",
        (CheckName::Sub, _) => "JWT has no subject",
    }
}

#[cfg(test)]
mod hs256_tests {
    use super::*;
    #[allow(unused_imports)]
    use crate::jwt::*;
    #[allow(unused_imports)]
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    #[allow(unused_imports)]
    use base64::Engine;
    use hmac::{Hmac, Mac};
    use serde_json::json;
    use sha2::Sha256;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_800_000_000;

    fn cfg() -> VerifyConfig<'static> {
        VerifyConfig {
            now: NOW,
            leeway: 30,
            audience: Some("authenticated"),
            issuer: None,
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn sign(c: Value) -> String {
        sign_hs256(
            claims(c),
            &HmacKey::new(SECRET),
            &Standard {
                now: NOW,
                ttl: 3600,
                jti: "jti-1",
                issuer: None,
                audience: Some("authenticated"),
            },
        )
    }

    #[test]
    fn the_text_signer_fills_and_signs_like_the_map_signer() {
        for c in [
            json!({}),
            json!({"sub": "u", "iat": 5}),
            json!({"a": [1, {"b": "\"é"}], "aud": "x", "exp": 1800000100, "jti": "j", "iss": "me"}),
        ] {
            let text = serde_json::to_vec(&c).unwrap();
            let m = claims(c);
            let std = Standard {
                now: NOW,
                ttl: 60,
                jti: "jti-1",
                issuer: Some("iss-1"),
                audience: Some("aud-1"),
            };
            let via_text =
                sign_hs256_json(text, &|k| m.contains_key(k), &HmacKey::new(SECRET), &std);
            let via_map = sign_hs256(m.clone(), &HmacKey::new(SECRET), &std);
            assert_eq!(
                decode(&via_text).unwrap().payload,
                decode(&via_map).unwrap().payload
            );
            let cfg = VerifyConfig {
                audience: None,
                ..cfg()
            };
            assert!(
                check_hs256(&via_text, SECRET, &cfg).1.is_some(),
                "{via_text}"
            );
        }
        assert!(
            URL_SAFE_NO_PAD.decode(HS256_HEADER_B64).unwrap() == br#"{"alg":"HS256","typ":"JWT"}"#
        );
    }

    fn refusal(token: &str, cfg: &VerifyConfig) -> Option<String> {
        let (checks, payload) = check_hs256(token, SECRET, cfg);
        assert_eq!(payload.is_some(), first_refusal(&checks).is_none());
        first_refusal(&checks).map(|r| r.reason)
    }

    // RFC 7515 appendix A.1 style check against an independent vector:
    // HS256 of "abc" under key "key" from RFC 4231-like known answer.
    #[test]
    fn hmac_known_answer() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
        mac.update(b"The quick brown fox jumps over the lazy dog");
        let out = mac.finalize().into_bytes();
        assert_eq!(out[..4], [0xf7, 0xbc, 0x83, 0xf4]);
    }

    #[test]
    fn sign_fills_standard_claims_and_verifies() {
        let t = sign(json!({"sub": "u1"}));
        let (checks, p) = check_hs256(&t, SECRET, &cfg());
        let p = p.unwrap_or_else(|| panic!("{checks:?}"));
        assert_eq!(p["iat"], NOW);
        assert_eq!(p["exp"], NOW + 3600);
        assert_eq!(p["jti"], "jti-1");
        assert_eq!(p["aud"], "authenticated");
        assert_eq!(decode(&t).unwrap().header["alg"], "HS256");
        // Given claims are kept, not overwritten.
        let t = sign(json!({"exp": NOW + 5, "aud": "x"}));
        assert_eq!(decode(&t).unwrap().payload["exp"], NOW + 5);
    }

    #[test]
    fn each_refusal_reason() {
        let c = cfg();
        assert_eq!(
            refusal(&sign(json!({"exp": NOW - 31})), &c).as_deref(),
            Some("expired")
        );
        assert_eq!(
            refusal(&sign(json!({"exp": NOW - 29})), &c),
            None,
            "within leeway"
        );
        assert_eq!(
            refusal(&sign(json!({"nbf": NOW + 31})), &c).as_deref(),
            Some("not yet valid")
        );
        assert_eq!(
            refusal(&sign(json!({"iat": NOW + 31})), &c).as_deref(),
            Some("issued in the future")
        );
        assert!(refusal(&sign(json!({"aud": "other"})), &c)
            .unwrap()
            .starts_with("wrong aud"));
        assert_eq!(
            refusal(&sign(json!({"aud": ["x", "authenticated"]})), &c),
            None
        );
        let with_iss = VerifyConfig {
            issuer: Some("https://issuer"),
            ..cfg()
        };
        assert!(refusal(&sign(json!({})), &with_iss)
            .unwrap()
            .starts_with("wrong iss"));
        let t = sign_hs256(
            Map::new(),
            &HmacKey::new(SECRET),
            &Standard {
                now: NOW,
                ttl: 60,
                jti: "j",
                issuer: Some("https://issuer"),
                audience: None,
            },
        );
        assert_eq!(
            refusal(
                &t,
                &VerifyConfig {
                    audience: None,
                    ..with_iss
                }
            ),
            None
        );
        assert!(refusal(&sign(json!({"exp": "soon"})), &c)
            .unwrap()
            .contains("exp is not a number"));
    }

    fn code(token: &str, cfg: &VerifyConfig) -> Option<&'static str> {
        let (checks, _) = check_hs256(token, SECRET, cfg);
        first_refusal(&checks).map(|r| {
            assert!(r.detail().starts_with(&format!("{}: ", r.code)));
            assert_eq!(r.error().code(), r.code);
            r.code.as_str()
        })
    }

    #[test]
    fn each_refusal_has_its_code() {
        let c = cfg();
        let with_iss = VerifyConfig {
            issuer: Some("https://issuer"),
            ..cfg()
        };
        let t = sign(json!({"sub": "u1"}));
        let parts: Vec<&str> = t.split('.').collect();
        let h = |j: &str| URL_SAFE_NO_PAD.encode(j);
        for (token, cfg, want) in [
            (sign(json!({"exp": NOW - 31})), &c, "token_expired"),
            (sign(json!({"nbf": NOW + 31})), &c, "not_yet_valid"),
            (sign(json!({"iat": NOW + 31})), &c, "issued_in_future"),
            (sign(json!({"aud": "other"})), &c, "wrong_audience"),
            (sign(json!({})), &with_iss, "wrong_issuer"),
            (sign(json!({"exp": "soon"})), &c, "invalid_claims"),
            ("a.b".to_string(), &c, "malformed"),
            (String::new(), &c, "malformed"),
            ("x".repeat(MAX_TOKEN_BYTES + 1), &c, "token_too_large"),
            (
                format!("{}.{}.", h(r#"{"alg":"none"}"#), parts[1]),
                &c,
                "alg_not_allowed",
            ),
            (
                format!(
                    "{}.{}.{}",
                    h(r#"{"alg":"HS256","crit":["x"]}"#),
                    parts[1],
                    parts[2]
                ),
                &c,
                "unsupported_header",
            ),
            (
                format!("{}.{}.AAAA", parts[0], parts[1]),
                &c,
                "bad_signature",
            ),
            (
                format!(
                    "{}.{}.{}",
                    h(r#"{"alg":"HS256","kid":7}"#),
                    parts[1],
                    parts[2]
                ),
                &c,
                "unknown_kid",
            ),
        ] {
            assert_eq!(code(&token, cfg), Some(want), "{want}");
        }
        assert_eq!(code(&t, &c), None);
        let no_exp = |d: &str| Check {
            name: CheckName::Exp,
            pass: false,
            detail: Some(d.into()),
        };
        assert_eq!(no_exp(NO_EXP).code(), Reason::MissingExp);
        assert_eq!(no_exp("expired").code(), Reason::TokenExpired);
        for (name, detail, want) in [
            (CheckName::Kid, KEY_REVOKED, Reason::KeyRevoked),
            (CheckName::Kid, "unknown kid", Reason::UnknownKid),
            (CheckName::RevokedJti, "jti revoked", Reason::TokenRevoked),
            (
                CheckName::RevokedJti,
                "jti is not a string (it could never be revoked)",
                Reason::InvalidClaims,
            ),
            (
                CheckName::RevokedSession,
                "session revoked",
                Reason::SessionRevoked,
            ),
            (
                CheckName::TokensValidAfter,
                "issued before the user's tokens_valid_after",
                Reason::TokenRevoked,
            ),
            (
                CheckName::ParentToken,
                "the API token it was derived from is revoked",
                Reason::TokenRevoked,
            ),
            (
                CheckName::ParentToken,
                "token_id is not a UUID",
                Reason::InvalidClaims,
            ),
            (
                CheckName::UserStatus,
                "user suspended",
                Reason::UserSuspended,
            ),
            (
                CheckName::UserStatus,
                "user disabled",
                Reason::UserSuspended,
            ),
            (CheckName::UserStatus, "user deleted", Reason::UserDeleted),
            (CheckName::Azp, "azp", Reason::WrongAuthorizedParty),
            (CheckName::Sub, "no sub", Reason::MissingSubject),
        ] {
            let c = Check {
                name,
                pass: false,
                detail: Some(detail.into()),
            };
            assert_eq!(c.code(), want, "{name} {detail}");
        }
    }

    #[test]
    fn missing_exp_is_refused() {
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#);
        let p = URL_SAFE_NO_PAD.encode(br#"{"aud":"authenticated"}"#);
        let input = format!("{h}.{p}");
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(input.as_bytes());
        let t = format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(refusal(&t, &cfg()).as_deref(), Some("no exp claim"));
    }

    #[test]
    fn alg_none_and_other_algs_are_refused() {
        let good = sign(json!({}));
        let (_, p, _) = (0, good.split('.').nth(1).unwrap(), 0);
        for alg in ["none", "None", "HS384", "RS256", "ES256", "EdDSA", ""] {
            let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}"}}"#));
            let t = format!("{h}.{p}.");
            assert!(
                refusal(&t, &cfg()).unwrap().contains("is not allowed"),
                "{alg}"
            );
        }
    }

    #[test]
    fn tampering_and_truncation_are_refused() {
        let t = sign(json!({"sub": "u1", "role": "user"}));
        let parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD
            .encode(br#"{"sub":"u1","role":"admin","exp":9999999999,"aud":"authenticated"}"#);
        for bad in [
            format!("{}.{}.{}", parts[0], forged, parts[2]),
            format!("{}.{}.", parts[0], parts[1]),
            format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                &parts[2][..parts[2].len() - 2]
            ),
            format!(
                "{}.{}.{}",
                URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","kid":"x"}"#),
                parts[1],
                parts[2]
            ),
        ] {
            assert_eq!(
                refusal(&bad, &cfg()).as_deref(),
                Some("bad signature"),
                "{bad}"
            );
        }
        let (checks, _) = check_hs256(&t, b"another-secret-another-secret-xx", &cfg());
        assert_eq!(
            first_refusal(&checks).map(|r| r.reason).as_deref(),
            Some("bad signature")
        );
    }

    #[test]
    fn explain_lists_every_check() {
        let t = sign(json!({"nbf": NOW, "iat": NOW}));
        let (checks, _) = check_hs256(
            &t,
            SECRET,
            &VerifyConfig {
                issuer: Some("i"),
                ..cfg()
            },
        );
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "format",
                "alg",
                "signature",
                "exp",
                "nbf",
                "iat",
                "aud",
                "iss"
            ]
        );
        assert_eq!(checks.iter().filter(|c| !c.pass).count(), 1);
    }

    fn asym_refusal(
        token: &str,
        vk: &std::rc::Rc<crate::keys::VerifyingKey>,
        kid: &str,
    ) -> Option<String> {
        let (checks, _) = check_with(
            token,
            &cfg(),
            |k| {
                Ok(match k {
                    Some(k) if k == kid => KeyChoice::Public(vk.clone()),
                    Some(_) => KeyChoice::UnknownKid,
                    None => KeyChoice::Secret(HmacKey::new(SECRET)),
                })
            },
            |p| serde_json::from_slice::<Map<String, Value>>(p.json).map_err(|e| e.to_string()),
        )
        .unwrap();
        first_refusal(&checks).map(|r| r.reason)
    }

    #[test]
    fn a_revoked_kid_is_refused_as_revoked_before_any_signature_math() {
        use crate::keys::{generate, Alg, SigningKey};
        use rand::rngs::StdRng;
        use rand::SeedableRng;
        let mut rng = StdRng::seed_from_u64(9);
        let (der, _) = generate(Alg::EdDsa, "gone", &mut rng);
        let sk = SigningKey::from_pkcs8(Alg::EdDsa, &der).unwrap();
        let std = Standard {
            now: NOW,
            ttl: 60,
            jti: "j",
            issuer: None,
            audience: Some("authenticated"),
        };
        let t = sign_with_key(
            claims(json!({"sub": "u"})),
            &sk,
            Alg::EdDsa,
            "gone",
            &std,
            &mut rng,
        );
        let (checks, c) = check_with(
            &t,
            &cfg(),
            |_| Ok(KeyChoice::RevokedKid),
            |_| Err::<Map<String, Value>, _>("never parsed".to_string()),
        )
        .unwrap();
        assert!(c.is_none());
        let r = first_refusal(&checks).unwrap();
        assert_eq!((r.check, r.reason.as_str()), (CheckName::Kid, KEY_REVOKED));
        assert_eq!(refusal_message(&r), "JWT signing key has been revoked");
        assert!(checks.iter().all(|c| c.name != CheckName::Signature));
    }

    #[test]
    fn asymmetric_tokens_verify_by_kid_and_only_with_their_alg() {
        use crate::keys::{generate, Alg, SigningKey, VerifyingKey};
        use rand::rngs::StdRng;
        use rand::SeedableRng;
        let mut rng = StdRng::seed_from_u64(3);
        for alg in [Alg::Es256, Alg::EdDsa, Alg::Rs256] {
            let (der, jwk) = generate(alg, "k1", &mut rng);
            let sk = SigningKey::from_pkcs8(alg, &der).unwrap();
            let vk = std::rc::Rc::new(VerifyingKey::from_jwk(alg, &jwk).unwrap());
            let std = Standard {
                now: NOW,
                ttl: 60,
                jti: "j",
                issuer: None,
                audience: Some("authenticated"),
            };
            let t = sign_with_key(claims(json!({"sub": "u"})), &sk, alg, "k1", &std, &mut rng);
            assert_eq!(asym_refusal(&t, &vk, "k1"), None, "{alg:?}");
            assert_eq!(decode(&t).unwrap().header["kid"], "k1");
            assert_eq!(
                asym_refusal(&t, &vk, "other").as_deref(),
                Some("unknown kid")
            );
            // The same token with its header's alg changed: refused before any signature math.
            let p: Vec<&str> = t.split('.').collect();
            for forged_alg in [
                "HS256",
                "none",
                "ES384",
                if alg == Alg::Es256 { "EdDSA" } else { "ES256" },
            ] {
                let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{forged_alg}","kid":"k1"}}"#));
                let forged = format!("{h}.{}.{}", p[1], p[2]);
                assert!(
                    asym_refusal(&forged, &vk, "k1")
                        .unwrap()
                        .contains("is not allowed"),
                    "{alg:?} as {forged_alg}"
                );
            }
        }
    }

    #[test]
    fn hs256_made_with_a_public_key_is_refused() {
        use crate::keys::{generate, Alg, VerifyingKey};
        use rand::rngs::StdRng;
        use rand::SeedableRng;
        let (_, jwk) = generate(Alg::Es256, "k1", &mut StdRng::seed_from_u64(4));
        let vk = std::rc::Rc::new(VerifyingKey::from_jwk(Alg::Es256, &jwk).unwrap());
        // The attacker HMACs with the public JWK text as the "secret" and names the kid.
        let public_text = serde_json::to_vec(&jwk).unwrap();
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","kid":"k1"}"#);
        let pl = URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{},"aud":"authenticated"}}"#, NOW + 60));
        let mut mac = Hmac::<Sha256>::new_from_slice(&public_text).unwrap();
        mac.update(format!("{h}.{pl}").as_bytes());
        let t = format!(
            "{h}.{pl}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        );
        assert_eq!(
            asym_refusal(&t, &vk, "k1").as_deref(),
            Some(r#"alg "HS256" is not allowed"#)
        );
    }

    #[test]
    fn payloads_jsonb_would_refuse_are_refused_first() {
        assert!(payload_is_jsonb_object(br#" {"a": 1}"#).is_ok());
        assert!(payload_is_jsonb_object(br#"[1]"#).is_err());
        assert!(payload_is_jsonb_object(br#"{"a": "x\u0000y"}"#).is_err());
        // Surrogate pairs, as Python's json.dumps writes emoji, pass.
        assert!(payload_is_jsonb_object(br#"{"a": "\ud83d\ude00"}"#).is_ok());
        assert!(payload_is_jsonb_object(b"{\"a\": 1} trailing").is_err());
        assert_eq!(
            payload_is_jsonb_object(b"{\"a\": \"\xff\"}"),
            Err("payload is not valid UTF-8")
        );
    }

    proptest::proptest! {
        #[test]
        fn verifier_never_panics_on_random_input(s in "\\PC{0,300}") {
            let _ = check_hs256(&s, SECRET, &cfg());
        }

        #[test]
        fn any_single_byte_change_is_refused(pos in 0usize..200, byte in 0u8..128) {
            let t = sign(json!({"sub": "u1", "n": 12345}));
            let mut b = t.clone().into_bytes();
            let pos = pos % b.len();
            proptest::prop_assume!(b[pos] != byte);
            b[pos] = byte;
            if let Ok(m) = String::from_utf8(b) {
                let (_, payload) = check_hs256(&m, SECRET, &cfg());
                // A change that decodes to the same bytes (base64 padding bits
                // in the last char) may still verify, and must then carry the
                // same claims.
                if let Some(p) = payload {
                    proptest::prop_assert_eq!(Value::Object(p), Value::Object(decode(&t).unwrap().payload));
                }
            }
        }
    }
}
