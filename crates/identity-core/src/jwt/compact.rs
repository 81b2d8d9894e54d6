//! Compact JWS parsing (RFC 7515 / 7519), pure and allocation-light.
//!
//! `split` is the single entry point every JWT path goes through (decode,
//! verify, explain), so the size limit, the part count and the base64url
//! alphabet are checked in exactly one place.

use crate::error::{IdentityError, Result};
use crate::reason::Reason;
use serde_json::{Map, Value};

/// The header every HS256 token here carries, base64url: `{"alg":"HS256","typ":"JWT"}`.
pub const HS256_HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// Tokens over this size are refused before any decoding (API.md section 3).
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// The three base64url segments of a compact JWS, borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parts<'a> {
    pub header_b64: &'a str,
    pub payload_b64: &'a str,
    pub signature_b64: &'a str,
}

impl<'a> Parts<'a> {
    /// The bytes the signature covers: `header.payload`.
    pub fn signing_input(&self, token: &'a str) -> &'a str {
        &token[..self.header_b64.len() + 1 + self.payload_b64.len()]
    }
}

/// A decoded, *unverified* token.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub header: Map<String, Value>,
    pub payload: Map<String, Value>,
    pub signature: Vec<u8>,
}

/// Branch-free over the whole segment, so the compiler vectorises it.
pub(crate) fn is_b64url(s: &str) -> bool {
    s.bytes().fold(true, |ok, b| {
        ok & (b.is_ascii_lowercase()
            | b.is_ascii_uppercase()
            | b.is_ascii_digit()
            | (b == b'-')
            | (b == b'_'))
    })
}

/// One bit per byte of `w` that is a dot.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn dot_mask(w: &[u8; 16]) -> u32 {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is baseline on x86_64; the load reads the 16 bytes of `w`.
    unsafe {
        let v = _mm_loadu_si128(w.as_ptr().cast());
        _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b'.' as i8))) as u32
    }
}

/// The first dot of `b`: 16 bytes per step (SSE2), then a byte at a time.
#[inline]
pub(crate) fn first_dot(b: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    return crate::jsonb::first_where(b, dot_mask, |c| c == b'.');
    #[cfg(not(target_arch = "x86_64"))]
    b.iter().position(|&c| c == b'.')
}

/// The last dot of `b`: 16 bytes per step from the end (SSE2), then a byte
/// at a time.
#[inline]
pub(crate) fn last_dot(b: &[u8]) -> Option<usize> {
    let mut end = b.len();
    #[cfg(target_arch = "x86_64")]
    while end >= 16 {
        let m = dot_mask(b[end - 16..end].try_into().ok()?);
        if m != 0 {
            return Some(end - 16 + (31 - m.leading_zeros()) as usize);
        }
        end -= 16;
    }
    b[..end].iter().rposition(|&c| c == b'.')
}

/// Asks the CPU to load every cache line of `token` at once. A token read
/// from a table is usually not in the cache yet, and the checks read it
/// from both ends (the header, the last dot) and then through the middle:
/// fetched one line at a time, the misses added up to a tenth of a
/// verification. Only as far as a token may be long (longer ones are
/// refused unread).
#[inline]
pub fn prefetch(token: &str) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        for at in (0..token.len().min(MAX_TOKEN_BYTES)).step_by(64) {
            // SAFETY: a hint; the address is inside `token`.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(token.as_ptr().add(at).cast()) };
        }
    }
    let _ = token;
}

/// Splits a compact JWS into its three segments, checking size, shape and
/// alphabet. The error never echoes the token.
pub fn split(token: &str) -> Result<Parts<'_>> {
    if token.is_empty() {
        return Err(IdentityError::invalid("token is empty").reason(Reason::Malformed));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(IdentityError::invalid("token is too large")
            .reason(Reason::TokenTooLarge)
            .detail(format!(
                "{} bytes, the limit is {MAX_TOKEN_BYTES}",
                token.len()
            )));
    }
    let parts_error = || parts_error(token);
    // The first and the last dot, 16 bytes at a time from either end: both
    // are near the ends (core's memchr costs more to set up).
    let b = token.as_bytes();
    let first = first_dot(b).ok_or_else(parts_error)?;
    let last = last_dot(b).filter(|&l| l > first).ok_or_else(parts_error)?;
    let (h, p, s) = (&token[..first], &token[first + 1..last], &token[last + 1..]);
    // A third dot: for our HS256 header found by decoding the payload, which
    // every reader of it does (`b64` and `malformed` say why); for any
    // other header here, so that a header error does not hide it.
    if h != HS256_HEADER_B64 && p.contains('.') {
        return Err(parts_error());
    }
    for (name, seg) in [("header", h), ("signature", s)] {
        if !is_b64url(seg) {
            return Err(IdentityError::invalid("token is malformed")
                .reason(Reason::Malformed)
                .detail(format!("{name} is not base64url")));
        }
    }
    if h.is_empty() || p.is_empty() {
        return Err(IdentityError::invalid("token is malformed")
            .reason(Reason::Malformed)
            .detail("empty header or payload"));
    }
    Ok(Parts {
        header_b64: h,
        payload_b64: p,
        signature_b64: s,
    })
}

pub(crate) fn parts_error(token: &str) -> IdentityError {
    let n = token.matches('.').count() + 1;
    IdentityError::invalid("token is malformed")
        .reason(Reason::Malformed)
        .detail(format!("expected 3 dot-separated parts, found {n}"))
}

pub(crate) fn b64(name: &'static str, seg: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    b64_into(name, seg, &mut out)?;
    Ok(out)
}

/// `b64` into `buf` (its old bytes replaced): the decoded bytes.
pub(crate) fn b64_into<'b>(
    name: &'static str,
    seg: &str,
    buf: &'b mut Vec<u8>,
) -> Result<&'b [u8]> {
    let n = crate::b64::decoded_len(seg.len()).ok_or_else(|| malformed(name, seg))?;
    buf.clear();
    buf.resize(n, 0);
    if !crate::b64::decode_into(seg.as_bytes(), buf) {
        return Err(malformed(name, seg));
    }
    Ok(buf)
}

/// Why `seg` does not decode: a dot in it means more than three parts.
pub(crate) fn malformed(name: &'static str, seg: &str) -> IdentityError {
    if seg.contains('.') {
        return IdentityError::invalid("token is malformed")
            .reason(Reason::Malformed)
            .detail(format!(
                "expected 3 dot-separated parts, found {}",
                seg.matches('.').count() + 3
            ));
    }
    IdentityError::invalid("token is malformed")
        .reason(Reason::Malformed)
        .detail(format!("{name} is not valid base64url"))
}

/// Decodes a base64url JSON segment that must be a JSON object.
pub fn json_object(name: &'static str, seg: &str) -> Result<Map<String, Value>> {
    let bytes = b64(name, seg)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(IdentityError::invalid("token is malformed")
            .reason(Reason::Malformed)
            .detail(format!("{name} is not a JSON object"))),
        Err(_) => Err(IdentityError::invalid("token is malformed")
            .reason(Reason::Malformed)
            .detail(format!("{name} is not valid JSON"))),
    }
}

/// Decodes header, payload and signature without verifying anything.
pub fn decode(token: &str) -> Result<Decoded> {
    let parts = split(token)?;
    Ok(Decoded {
        header: json_object("header", parts.header_b64)?,
        payload: json_object("payload", parts.payload_b64)?,
        signature: b64("signature", parts.signature_b64)?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn dot_scans_match_the_byte_loops() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for len in 0..200usize {
            for _ in 0..40 {
                let mut b: Vec<u8> = (0..len).map(|_| rng.gen_range(b'-'..=b'z')).collect();
                b.iter_mut().for_each(|c| {
                    if *c == b'.' {
                        *c = b'a'
                    }
                });
                for _ in 0..rng.gen_range(0..4) {
                    if len > 0 {
                        let i = rng.gen_range(0..len);
                        b[i] = b'.';
                    }
                }
                assert_eq!(first_dot(&b), b.iter().position(|&c| c == b'.'), "{len}");
                assert_eq!(last_dot(&b), b.iter().rposition(|&c| c == b'.'), "{len}");
            }
        }
    }

    use super::*;
    #[allow(unused_imports)]
    use crate::jwt::*;
    #[allow(unused_imports)]
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    #[allow(unused_imports)]
    use base64::Engine;
    use sha2::Sha256;

    fn enc(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    fn token(h: &str, p: &str, s: &str) -> String {
        format!("{}.{}.{}", enc(h), enc(p), URL_SAFE_NO_PAD.encode(s))
    }

    #[test]
    fn decodes_header_payload_and_signature() {
        let t = token(
            r#"{"alg":"HS256","typ":"JWT"}"#,
            r#"{"sub":"u1","exp":10}"#,
            "sig",
        );
        let d = decode(&t).unwrap();
        assert_eq!(d.header["alg"], "HS256");
        assert_eq!(d.payload["sub"], "u1");
        assert_eq!(d.payload["exp"], 10);
        assert_eq!(d.signature, b"sig");
    }

    #[test]
    fn signing_input_is_header_dot_payload() {
        let t = token(r#"{"alg":"HS256"}"#, r#"{}"#, "x");
        let p = split(&t).unwrap();
        assert_eq!(
            p.signing_input(&t),
            format!("{}.{}", enc(r#"{"alg":"HS256"}"#), enc("{}"))
        );
    }

    #[test]
    fn rejects_wrong_part_counts() {
        for t in ["a", "a.b", "a.b.c.d", "...."] {
            let e = decode(t).unwrap_err();
            assert_eq!(e.sqlstate(), "22023", "{t}");
        }
        assert!(decode("a.b")
            .unwrap_err()
            .detail
            .unwrap()
            .contains("found 2"));
    }

    /// A third dot is reported as such whichever header the token has: for
    /// our HS256 header split leaves it to the payload's decoding.
    #[test]
    fn extra_dots_are_reported_as_parts_for_every_header() {
        let p = enc(r#"{"exp":1}"#);
        for h in [
            HS256_HEADER_B64.to_string(),
            enc(r#"{"alg":"HS256","kid":"k"}"#),
            "a".into(),
        ] {
            for t in [format!("{h}.{p}.{p}.sig"), format!("{h}.{p}..{p}.sig")] {
                let dots = t.matches('.').count() + 1;
                let e = decode(&t).unwrap_err();
                assert_eq!(
                    e.detail.unwrap(),
                    format!("expected 3 dot-separated parts, found {dots}"),
                    "{t}"
                );
                let cfg = VerifyConfig {
                    now: 0,
                    leeway: 0,
                    audience: None,
                    issuer: None,
                };
                let (checks, claims) = check_hs256(&t, b"0123456789abcdef0123456789abcdef", &cfg);
                assert!(claims.is_none());
                assert_eq!(
                    checks[0].detail.as_deref(),
                    Some(&*format!(
                        "token is malformed: expected 3 dot-separated parts, found {dots}"
                    ))
                );
            }
        }
        // A payload with a character outside the alphabet, and no dot.
        let e = decode(&format!("{}.{p}*.sig", HS256_HEADER_B64)).unwrap_err();
        assert_eq!(e.detail.as_deref(), Some("payload is not valid base64url"));
    }

    #[test]
    fn hmac_key_verifies_only_its_own_tags() {
        use hmac::{Hmac, Mac};
        let key = HmacKey::new(b"k1");
        let tag = |k: &[u8], m: &[u8]| {
            let mut mac = Hmac::<Sha256>::new_from_slice(k).unwrap();
            mac.update(m);
            mac.finalize().into_bytes().to_vec()
        };
        assert!(key.verify(b"message", &tag(b"k1", b"message")));
        // The key state is cloned per verification: a second use is the same.
        assert!(key.verify(b"message", &tag(b"k1", b"message")));
        assert!(!key.verify(b"message", &tag(b"k2", b"message")));
        assert!(!key.verify(b"messagf", &tag(b"k1", b"message")));
        assert!(!key.verify(b"message", &tag(b"k1", b"message")[..31]));
    }

    #[test]
    fn rejects_empty_and_oversized() {
        assert_eq!(decode("").unwrap_err().message, "token is empty");
        let big = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(decode(&big).unwrap_err().message, "token is too large");
        let huge = format!("{}.{}.x", "a".repeat(600_000), "b".repeat(600_000));
        assert_eq!(decode(&huge).unwrap_err().message, "token is too large");
    }

    #[test]
    fn rejects_padding_bad_alphabet_and_bad_json() {
        let h = enc(r#"{"alg":"HS256"}"#);
        assert!(
            decode(&format!("{h}=.{h}.")).is_err(),
            "padding is not base64url"
        );
        assert!(
            decode(&format!("{h}.{h}+/.")).is_err(),
            "standard alphabet refused"
        );
        let e = decode(&format!("{}.{h}.", enc("not json"))).unwrap_err();
        assert_eq!(e.detail.as_deref(), Some("header is not valid JSON"));
        let e = decode(&format!("{h}.{}.", enc("[1,2]"))).unwrap_err();
        assert_eq!(e.detail.as_deref(), Some("payload is not a JSON object"));
        // A 5-character segment is impossible base64 (1 dangling char mod 4).
        let e = decode(&format!("{h}.{h}.abcde")).unwrap_err();
        assert_eq!(
            e.detail.as_deref(),
            Some("signature is not valid base64url")
        );
    }

    #[test]
    fn error_never_echoes_the_token() {
        let secretish = "eyJzZWNyZXQiOiJodW50ZXIyIn0";
        for t in [
            format!("{secretish}.x"),
            format!("{secretish}.{secretish}.***"),
        ] {
            let e = decode(&t).unwrap_err();
            assert!(!e.to_string().contains(secretish));
        }
    }

    #[test]
    fn unsigned_token_decodes_with_empty_signature() {
        let t = format!("{}.{}.", enc(r#"{"alg":"none"}"#), enc("{}"));
        assert!(decode(&t).unwrap().signature.is_empty());
    }
}
