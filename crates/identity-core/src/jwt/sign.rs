//! JWT signing: the standard claims every issuer adds, HS256 over serde
//! claims or over JSON text as is, and ES256 / RS256 / EdDSA with a signing
//! key. Pure: time and ids come in `Standard`.

use super::compact::*;
use super::verify::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// Signs with an asymmetric key: header {alg, typ, kid}; fills claims as
/// `sign_hs256` does.
pub fn sign_with_key<R: rand::RngCore + rand::CryptoRng>(
    claims: Map<String, Value>,
    key: &crate::keys::SigningKey,
    alg: crate::keys::Alg,
    kid: &str,
    standard: &Standard,
    rng: &mut R,
) -> String {
    let text = serde_json::to_vec(&claims).expect("serialisable");
    sign_with_key_json(
        text,
        &|k| claims.contains_key(k),
        key,
        alg,
        kid,
        standard,
        rng,
    )
}

/// The standard claims every issuer here adds where absent (given claims
/// are never overwritten): `iat`, `exp` (now + ttl), `jti` and, when given,
/// `iss` and `aud`.
#[derive(Debug, Clone, Copy)]
pub struct Standard<'a> {
    pub now: i64,
    pub ttl: i64,
    pub jti: &'a str,
    pub issuer: Option<&'a str>,
    pub audience: Option<&'a str>,
}

/// A bit for each claim `Standard` may fill (iat, exp, jti, iss, aud), 0
/// for any other key: for callers that note which are present as they
/// read the claims' keys.
pub fn standard_claim_bit(key: &[u8]) -> u8 {
    match key {
        b"iat" => 1,
        b"exp" => 2,
        b"jti" => 4,
        b"iss" => 8,
        b"aud" => 16,
        _ => 0,
    }
}

/// Appends an integer's decimal digits (as `{n}` formats it).
fn write_int(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// A standard claim's value.
enum StandardValue<'a> {
    Int(i64),
    Str(&'a str),
}

impl Standard<'_> {
    /// In the order they are appended.
    fn claims(&self) -> [(&'static str, Option<StandardValue<'_>>); 5] {
        [
            ("iat", Some(StandardValue::Int(self.now))),
            ("exp", Some(StandardValue::Int(self.now + self.ttl))),
            ("jti", Some(StandardValue::Str(self.jti))),
            ("iss", self.issuer.map(StandardValue::Str)),
            ("aud", self.audience.map(StandardValue::Str)),
        ]
    }
}

/// Fills the standard claims and signs with HS256 (`sign_hs256_json` over
/// the serialised map).
pub fn sign_hs256(claims: Map<String, Value>, key: &HmacKey, standard: &Standard) -> String {
    let text = serde_json::to_vec(&claims).expect("serialisable");
    sign_hs256_json(text, &|k| claims.contains_key(k), key, standard)
}

/// `sign_hs256` over claims already serialised as a compact JSON object
/// (`{...}`, as core::jsonb::object_to_json writes it): the standard claims
/// `present` reports absent are appended, with the same values
/// `Standard` gives, and the text is signed as is (no parse,
/// no re-serialisation).
pub fn sign_hs256_json(
    payload: Vec<u8>,
    present: &dyn Fn(&str) -> bool,
    key: &HmacKey,
    standard: &Standard,
) -> String {
    let payload = with_standard_claims(payload, present, standard);
    let mut token = Vec::with_capacity(HS256_HEADER_B64.len() + payload.len() * 4 / 3 + 50);
    token.extend_from_slice(HS256_HEADER_B64.as_bytes());
    token.push(b'.');
    crate::b64::encode_append(&payload, &mut token);
    let sig = key.sign(&token);
    token.push(b'.');
    crate::b64::encode_append(&sig, &mut token);
    debug_assert!(token.is_ascii());
    // SAFETY: a constant ASCII header, base64url digits (encode_append
    // writes only its alphabet, unit-tested) and dots: ASCII, so UTF-8.
    // (The check it skips read all ~900 bytes once more per token.)
    unsafe { String::from_utf8_unchecked(token) }
}

/// `sign_with_key` over claims already serialised as a compact JSON object,
/// as `sign_hs256_json` does for HS256: the text is signed as is, so a
/// number keeps its exact digits (`1.50`, a 30-digit numeric), which a
/// serde round trip through f64 would not.
pub fn sign_with_key_json<R: rand::RngCore + rand::CryptoRng>(
    payload: Vec<u8>,
    present: &dyn Fn(&str) -> bool,
    key: &crate::keys::SigningKey,
    alg: crate::keys::Alg,
    kid: &str,
    standard: &Standard,
    rng: &mut R,
) -> String {
    let payload = with_standard_claims(payload, present, standard);
    let header = serde_json::json!({"alg": alg.name(), "typ": "JWT", "kid": kid});
    let mut token = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("serialisable"));
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let sig = key.sign(token.as_bytes(), rng);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut token);
    token
}

/// A compact JSON object's text with the standard claims `present` reports
/// absent appended, with the values `Standard` gives.
fn with_standard_claims(
    mut payload: Vec<u8>,
    present: &dyn Fn(&str) -> bool,
    standard: &Standard,
) -> Vec<u8> {
    debug_assert!(payload.first() == Some(&b'{') && payload.last() == Some(&b'}'));
    payload.pop();
    for (k, v) in standard.claims() {
        let Some(v) = v else { continue };
        if !present(k) {
            if payload.len() > 1 {
                payload.push(b',');
            }
            payload.push(b'"');
            payload.extend_from_slice(k.as_bytes());
            payload.extend_from_slice(b"\":");
            match v {
                StandardValue::Int(n) => write_int(&mut payload, n),
                // A jti, an issuer URL, an audience: nothing to escape, as
                // a rule; serde escapes the rest.
                StandardValue::Str(s)
                    if !s.bytes().any(|c| c < 0x20 || c == b'"' || c == b'\\') =>
                {
                    payload.push(b'"');
                    payload.extend_from_slice(s.as_bytes());
                    payload.push(b'"');
                }
                StandardValue::Str(s) => {
                    serde_json::to_writer(&mut payload, s).expect("a string serialises")
                }
            }
        }
    }
    payload.push(b'}');
    payload
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_written_as_format_writes_them() {
        for n in [0, 1, -1, 9, 10, 1_796_152_928, -42, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            write_int(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes(), "{n}");
        }
    }

    #[test]
    fn standard_claims_are_appended_as_serde_writes_them() {
        let std = Standard {
            now: 1_700_000_000,
            ttl: 3600,
            jti: "j-1",
            issuer: Some("https://x.example/auth/v1"),
            audience: Some("a \"quoted\"\\ \n aud"),
        };
        let out = with_standard_claims(br#"{"sub":"u"}"#.to_vec(), &|k| k == "iat", &std);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"sub": "u", "exp": 1_700_003_600, "jti": "j-1",
                "iss": "https://x.example/auth/v1", "aud": "a \"quoted\"\\ \n aud"})
        );
        let expected = format!(
            r#"{{"sub":"u","exp":1700003600,"jti":"j-1","iss":"https://x.example/auth/v1","aud":{}}}"#,
            serde_json::to_string("a \"quoted\"\\ \n aud").unwrap()
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn each_kind_of_string_is_escaped_as_serde_escapes_it() {
        for aud in ["plain", "q\"q", "b\\b", "c\u{1}c", "t\tt", "é ü", ""] {
            let std = Standard {
                now: 0,
                ttl: 0,
                jti: "j",
                issuer: None,
                audience: Some(aud),
            };
            let out = with_standard_claims(b"{}".to_vec(), &|k| k != "aud", &std);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!(r#"{{"aud":{}}}"#, serde_json::to_string(aud).unwrap()),
                "{aud:?}"
            );
        }
    }

    #[test]
    fn a_bit_per_claim_the_signer_fills() {
        let bits: Vec<u8> = ["iat", "exp", "jti", "iss", "aud"]
            .iter()
            .map(|k| standard_claim_bit(k.as_bytes()))
            .collect();
        assert_eq!(bits, [1, 2, 4, 8, 16]);
        for k in ["", "sub", "nbf", "ia", "iatx", "IAT"] {
            assert_eq!(standard_claim_bit(k.as_bytes()), 0, "{k}");
        }
    }
}
