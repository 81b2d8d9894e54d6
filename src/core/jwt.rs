//! Compact JWS parsing (RFC 7515 / 7519), pure and allocation-light.
//!
//! `split` is the single entry point every JWT path goes through (decode,
//! verify, explain), so the size limit, the part count and the base64url
//! alphabet are checked in exactly one place.

use super::error::{IdentityError, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

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

fn is_b64url(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Splits a compact JWS into its three segments, checking size, shape and
/// alphabet. The error never echoes the token.
pub fn split(token: &str) -> Result<Parts<'_>> {
    if token.is_empty() {
        return Err(IdentityError::invalid("token is empty"));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(IdentityError::invalid("token is too large")
            .detail(format!("{} bytes, the limit is {MAX_TOKEN_BYTES}", token.len())));
    }
    let mut it = token.split('.');
    let (h, p, s) = match (it.next(), it.next(), it.next(), it.next()) {
        (Some(h), Some(p), Some(s), None) => (h, p, s),
        _ => {
            let n = token.matches('.').count() + 1;
            return Err(IdentityError::invalid("token is malformed")
                .detail(format!("expected 3 dot-separated parts, found {n}")));
        }
    };
    for (name, seg) in [("header", h), ("payload", p), ("signature", s)] {
        if !is_b64url(seg) {
            return Err(IdentityError::invalid("token is malformed")
                .detail(format!("{name} is not base64url")));
        }
    }
    if h.is_empty() || p.is_empty() {
        return Err(IdentityError::invalid("token is malformed").detail("empty header or payload"));
    }
    Ok(Parts { header_b64: h, payload_b64: p, signature_b64: s })
}

fn b64(name: &'static str, seg: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(seg).map_err(|_| {
        IdentityError::invalid("token is malformed").detail(format!("{name} is not valid base64url"))
    })
}

/// Decodes a base64url JSON segment that must be a JSON object.
pub fn json_object(name: &'static str, seg: &str) -> Result<Map<String, Value>> {
    let bytes = b64(name, seg)?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(IdentityError::invalid("token is malformed")
            .detail(format!("{name} is not a JSON object"))),
        Err(_) => Err(IdentityError::invalid("token is malformed")
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
    use super::*;

    fn enc(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    fn token(h: &str, p: &str, s: &str) -> String {
        format!("{}.{}.{}", enc(h), enc(p), URL_SAFE_NO_PAD.encode(s))
    }

    #[test]
    fn decodes_header_payload_and_signature() {
        let t = token(r#"{"alg":"HS256","typ":"JWT"}"#, r#"{"sub":"u1","exp":10}"#, "sig");
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
        assert_eq!(p.signing_input(&t), format!("{}.{}", enc(r#"{"alg":"HS256"}"#), enc("{}")));
    }

    #[test]
    fn rejects_wrong_part_counts() {
        for t in ["a", "a.b", "a.b.c.d", "...."] {
            let e = decode(t).unwrap_err();
            assert_eq!(e.sqlstate(), "22023", "{t}");
        }
        assert!(decode("a.b").unwrap_err().detail.unwrap().contains("found 2"));
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
        assert!(decode(&format!("{h}=.{h}.")).is_err(), "padding is not base64url");
        assert!(decode(&format!("{h}.{h}+/.")).is_err(), "standard alphabet refused");
        let e = decode(&format!("{}.{h}.", enc("not json"))).unwrap_err();
        assert_eq!(e.detail.as_deref(), Some("header is not valid JSON"));
        let e = decode(&format!("{h}.{}.", enc("[1,2]"))).unwrap_err();
        assert_eq!(e.detail.as_deref(), Some("payload is not a JSON object"));
        // A 5-character segment is impossible base64 (1 dangling char mod 4).
        let e = decode(&format!("{h}.{h}.abcde")).unwrap_err();
        assert_eq!(e.detail.as_deref(), Some("signature is not valid base64url"));
    }

    #[test]
    fn error_never_echoes_the_token() {
        let secretish = "eyJzZWNyZXQiOiJodW50ZXIyIn0";
        for t in [format!("{secretish}.x"), format!("{secretish}.{secretish}.***")] {
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
