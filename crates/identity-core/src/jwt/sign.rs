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
    mut claims: Map<String, Value>,
    key: &crate::keys::SigningKey,
    alg: crate::keys::Alg,
    kid: &str,
    standard: &Standard,
    rng: &mut R,
) -> String {
    for (k, v) in standard.claims() {
        claims.entry(k).or_insert(v);
    }
    let header = serde_json::json!({"alg": alg.name(), "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("serialisable")),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&Value::Object(claims)).expect("serialisable"))
    );
    let sig = key.sign(input.as_bytes(), rng);
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
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

impl Standard<'_> {
    fn claims(&self) -> Vec<(&'static str, Value)> {
        let mut c = vec![
            ("iat", Value::from(self.now)),
            ("exp", Value::from(self.now + self.ttl)),
            ("jti", Value::from(self.jti)),
        ];
        c.extend(self.issuer.map(|iss| ("iss", Value::from(iss))));
        c.extend(self.audience.map(|aud| ("aud", Value::from(aud))));
        c
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
    mut payload: Vec<u8>,
    present: &dyn Fn(&str) -> bool,
    key: &HmacKey,
    standard: &Standard,
) -> String {
    debug_assert!(payload.first() == Some(&b'{') && payload.last() == Some(&b'}'));
    payload.pop();
    for (k, v) in standard.claims() {
        if !present(k) {
            if payload.len() > 1 {
                payload.push(b',');
            }
            payload.extend_from_slice(format!("\"{k}\":").as_bytes());
            serde_json::to_writer(&mut payload, &v).expect("a string or an integer serialises");
        }
    }
    payload.push(b'}');
    let mut token = String::with_capacity(HS256_HEADER_B64.len() + payload.len() * 4 / 3 + 50);
    token.push_str(HS256_HEADER_B64);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let sig = key.sign(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut token);
    token
}
