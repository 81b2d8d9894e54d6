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
    String::from_utf8(token).expect("a header, base64url and dots are ASCII")
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
                StandardValue::Int(n) => {
                    use std::io::Write;
                    write!(payload, "{n}").expect("a Vec takes every write")
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
