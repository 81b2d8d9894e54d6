//! `jsonwebtoken` (an independent implementation) as a test oracle: tokens
//! we sign verify with it, and tokens it signs verify with ours, for HS256,
//! ES256, RS256 and EdDSA; each side refuses a wrong key, a wrong alg and an
//! expired token. Real time, since jsonwebtoken checks `exp` against the
//! system clock.

use identity_core::jwt::{
    check_with, first_refusal, sign_hs256, sign_with_key, CheckName, HmacKey, KeyChoice, Standard,
    VerifyConfig,
};
use identity_core::keys::{generate, Alg, SigningKey, VerifyingKey};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Map, Value};
use std::rc::Rc;

const SECRET: &[u8] = b"oracle-secret-0123456789abcdef0123456789";
const ISS: &str = "https://issuer.example";
const AUD: &str = "authenticated";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims() -> Map<String, Value> {
    json!({"sub": "8d6a1f3e-2c1b-4e5f-9a7b-1c2d3e4f5a6b", "role": "authenticated"})
        .as_object()
        .unwrap()
        .clone()
}

fn standard(now: i64, ttl: i64) -> Standard<'static> {
    Standard {
        now,
        ttl,
        jti: "oracle-jti",
        issuer: Some(ISS),
        audience: Some(AUD),
    }
}

/// What jsonwebtoken needs to check our tokens: the algorithm, and the
/// keys (ours as DER or JWK; another pair's for the wrong-key case).
struct Pair {
    theirs: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    ours_sign: SigningKey,
    ours_verify: Rc<VerifyingKey>,
}

fn pair(alg: Alg, seed: u64) -> Pair {
    let mut rng = StdRng::seed_from_u64(seed);
    let (der, jwk) = generate(alg, "k1", &mut rng);
    let jwk_typed: jsonwebtoken::jwk::Jwk = serde_json::from_value(Value::Object(jwk.clone()))
        .expect("our JWK is a JWK to jsonwebtoken");
    let encoding = match alg {
        Alg::Es256 => EncodingKey::from_ec_der(&der),
        Alg::EdDsa => EncodingKey::from_ed_der(&der),
        Alg::Rs256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            use rsa::pkcs8::DecodePrivateKey;
            let sk = rsa::RsaPrivateKey::from_pkcs8_der(&der).unwrap();
            EncodingKey::from_rsa_der(sk.to_pkcs1_der().unwrap().as_bytes())
        }
    };
    Pair {
        theirs: match alg {
            Alg::Es256 => Algorithm::ES256,
            Alg::EdDsa => Algorithm::EdDSA,
            Alg::Rs256 => Algorithm::RS256,
        },
        encoding,
        decoding: DecodingKey::from_jwk(&jwk_typed).expect("decoding key from our JWK"),
        ours_sign: SigningKey::from_pkcs8(alg, &der).unwrap(),
        ours_verify: Rc::new(VerifyingKey::from_jwk(alg, &jwk).unwrap()),
    }
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_issuer(&[ISS]);
    v.set_audience(&[AUD]);
    v.leeway = 0;
    v
}

fn their_verdict(token: &str, key: &DecodingKey, alg: Algorithm) -> Result<Value, String> {
    decode::<Value>(token, key, &validation(alg))
        .map(|d| d.claims)
        .map_err(|e| format!("{:?}", e.kind()))
}

/// Our verdict: None when valid, else the first failed check.
fn our_verdict(token: &str, public: Option<&Rc<VerifyingKey>>, secret: &[u8]) -> Option<CheckName> {
    let cfg = VerifyConfig {
        now: now(),
        leeway: 0,
        audience: Some(AUD),
        issuer: Some(ISS),
    };
    let (checks, _) = check_with(
        token,
        &cfg,
        |kid| {
            Ok(match (kid, public) {
                (Some("k1"), Some(k)) => KeyChoice::Public(k.clone()),
                (Some(_), _) => KeyChoice::UnknownKid,
                (None, _) => KeyChoice::Secret(HmacKey::new(secret)),
            })
        },
        |p| serde_json::from_slice::<Map<String, Value>>(p.json).map_err(|e| e.to_string()),
    )
    .unwrap();
    first_refusal(&checks).map(|r| r.check)
}

#[test]
fn our_hs256_tokens_verify_with_jsonwebtoken_and_its_refusals_hold() {
    let t = sign_hs256(claims(), &HmacKey::new(SECRET), &standard(now(), 600));
    let c = their_verdict(&t, &DecodingKey::from_secret(SECRET), Algorithm::HS256).unwrap();
    assert_eq!(c["sub"], claims()["sub"]);
    assert_eq!(c["iss"], ISS);
    let wrong = their_verdict(
        &t,
        &DecodingKey::from_secret(b"another-secret-0123456789abcdef01"),
        Algorithm::HS256,
    );
    assert_eq!(wrong.unwrap_err(), "InvalidSignature");
    let alg = their_verdict(&t, &DecodingKey::from_secret(SECRET), Algorithm::HS384);
    assert_eq!(alg.unwrap_err(), "InvalidAlgorithm");
    let old = sign_hs256(
        claims(),
        &HmacKey::new(SECRET),
        &standard(now() - 7200, 600),
    );
    assert_eq!(
        their_verdict(&old, &DecodingKey::from_secret(SECRET), Algorithm::HS256).unwrap_err(),
        "ExpiredSignature"
    );
}

#[test]
fn jsonwebtoken_hs256_tokens_verify_with_ours_and_our_refusals_hold() {
    let mut c = claims();
    c.insert("iss".into(), json!(ISS));
    c.insert("aud".into(), json!(AUD));
    c.insert("exp".into(), json!(now() + 600));
    c.insert("iat".into(), json!(now()));
    let t = encode(
        &Header::new(Algorithm::HS256),
        &c,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(our_verdict(&t, None, SECRET), None);
    assert_eq!(
        our_verdict(&t, None, b"another-secret-0123456789abcdef01"),
        Some(CheckName::Signature)
    );
    let hs384 = encode(
        &Header::new(Algorithm::HS384),
        &c,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(our_verdict(&hs384, None, SECRET), Some(CheckName::Alg));
    c.insert("exp".into(), json!(now() - 3600));
    let old = encode(
        &Header::new(Algorithm::HS256),
        &c,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(our_verdict(&old, None, SECRET), Some(CheckName::Exp));
}

#[test]
fn our_asymmetric_tokens_verify_with_jsonwebtoken_and_its_refusals_hold() {
    let mut rng = StdRng::seed_from_u64(11);
    for alg in [Alg::Es256, Alg::Rs256, Alg::EdDsa] {
        let p = pair(alg, 1);
        let other = pair(alg, 2);
        let t = sign_with_key(
            claims(),
            &p.ours_sign,
            alg,
            "k1",
            &standard(now(), 600),
            &mut rng,
        );
        let c = their_verdict(&t, &p.decoding, p.theirs).unwrap_or_else(|e| panic!("{alg:?}: {e}"));
        assert_eq!(c["sub"], claims()["sub"], "{alg:?}");
        assert_eq!(
            their_verdict(&t, &other.decoding, p.theirs).unwrap_err(),
            "InvalidSignature",
            "{alg:?}"
        );
        let wrong_alg = if alg == Alg::Es256 {
            Algorithm::ES384
        } else {
            Algorithm::ES256
        };
        assert!(
            their_verdict(&t, &p.decoding, wrong_alg).is_err(),
            "{alg:?}"
        );
        let old = sign_with_key(
            claims(),
            &p.ours_sign,
            alg,
            "k1",
            &standard(now() - 7200, 600),
            &mut rng,
        );
        assert_eq!(
            their_verdict(&old, &p.decoding, p.theirs).unwrap_err(),
            "ExpiredSignature",
            "{alg:?}"
        );
    }
}

#[test]
fn jsonwebtoken_asymmetric_tokens_verify_with_ours_and_our_refusals_hold() {
    for alg in [Alg::Es256, Alg::Rs256, Alg::EdDsa] {
        let p = pair(alg, 3);
        let other = pair(alg, 4);
        let mut c = claims();
        c.insert("iss".into(), json!(ISS));
        c.insert("aud".into(), json!(AUD));
        c.insert("exp".into(), json!(now() + 600));
        let mut h = Header::new(p.theirs);
        h.kid = Some("k1".into());
        let t = encode(&h, &c, &p.encoding).unwrap();
        assert_eq!(
            our_verdict(&t, Some(&p.ours_verify), SECRET),
            None,
            "{alg:?}"
        );
        // The same kid, another key pair's signature.
        let forged = encode(&h, &c, &other.encoding).unwrap();
        assert_eq!(
            our_verdict(&forged, Some(&p.ours_verify), SECRET),
            Some(CheckName::Signature),
            "{alg:?}"
        );
        // HS256 made with a kid that names an asymmetric key: alg confusion.
        let mut hs = Header::new(Algorithm::HS256);
        hs.kid = Some("k1".into());
        let confused = encode(&hs, &c, &EncodingKey::from_secret(SECRET)).unwrap();
        assert_eq!(
            our_verdict(&confused, Some(&p.ours_verify), SECRET),
            Some(CheckName::Alg),
            "{alg:?}"
        );
        c.insert("exp".into(), json!(now() - 3600));
        let old = encode(&h, &c, &p.encoding).unwrap();
        assert_eq!(
            our_verdict(&old, Some(&p.ours_verify), SECRET),
            Some(CheckName::Exp),
            "{alg:?}"
        );
    }
}

#[test]
fn claims_signed_as_text_keep_their_digits_and_verify_with_jsonwebtoken() {
    use identity_core::jwt::sign_with_key_json;
    let mut rng = StdRng::seed_from_u64(12);
    let text = br#"{"sub":"8d6a1f3e-2c1b-4e5f-9a7b-1c2d3e4f5a6b","n":1.50,"big":123456789012345678901234567890.5}"#;
    for alg in [Alg::Es256, Alg::Rs256, Alg::EdDsa] {
        let p = pair(alg, 5);
        let present = |k: &str| k == "sub";
        let t = sign_with_key_json(
            text.to_vec(),
            &present,
            &p.ours_sign,
            alg,
            "k1",
            &standard(now(), 600),
            &mut rng,
        );
        assert!(their_verdict(&t, &p.decoding, p.theirs).is_ok(), "{alg:?}");
        assert_eq!(
            our_verdict(&t, Some(&p.ours_verify), SECRET),
            None,
            "{alg:?}"
        );
        let payload = String::from_utf8(
            base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                t.split('.').nth(1).unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert!(payload.starts_with(r#"{"sub":"8d6a1f3e-2c1b-4e5f-9a7b-1c2d3e4f5a6b","n":1.50,"big":123456789012345678901234567890.5,"iat":"#), "{payload}");
    }
}
