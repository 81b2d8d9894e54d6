//! Asymmetric signing keys: ES256 (P-256), RS256 (RSA 2048, PKCS#1 v1.5,
//! SHA-256) and EdDSA (Ed25519). Generation, the public JWK, signing and
//! verification. Private keys leave here only as PKCS#8 DER, which the glue
//! encrypts (`aead`) before it reaches a table.

use super::error::{IdentityError, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::{CryptoRng, RngCore};
use serde_json::{json, Map, Value};

/// A signing key's state (identity.signing_keys.status), as Supabase's
/// signing keys name them: standby (`next`), current (`active`), previously
/// used (`retired`), and `revoked` (compromised: refused at once, never
/// again usable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Next,
    Active,
    Retired,
    Revoked,
}

impl KeyStatus {
    pub fn parse(s: &str) -> Option<KeyStatus> {
        match s {
            "next" => Some(KeyStatus::Next),
            "active" => Some(KeyStatus::Active),
            "retired" => Some(KeyStatus::Retired),
            "revoked" => Some(KeyStatus::Revoked),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Next => "next",
            KeyStatus::Active => "active",
            KeyStatus::Retired => "retired",
            KeyStatus::Revoked => "revoked",
        }
    }

    /// Whether a key in this state verifies tokens at `now` (a retired key
    /// until its `expires_at`).
    pub fn verifies(self, expires_at: Option<i64>, now: i64) -> bool {
        match self {
            KeyStatus::Active | KeyStatus::Next => true,
            KeyStatus::Retired => expires_at.is_none_or(|e| e > now),
            KeyStatus::Revoked => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Es256,
    Rs256,
    EdDsa,
}

impl Alg {
    pub fn parse(s: &str) -> Option<Alg> {
        match s {
            "ES256" => Some(Alg::Es256),
            "RS256" => Some(Alg::Rs256),
            "EdDSA" => Some(Alg::EdDsa),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Rs256 => "RS256",
            Alg::EdDsa => "EdDSA",
        }
    }
}

fn b64(b: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

/// A new key pair: PKCS#8 DER of the private key, and the public JWK.
pub fn generate<R: RngCore + CryptoRng>(
    alg: Alg,
    kid: &str,
    rng: &mut R,
) -> (Vec<u8>, Map<String, Value>) {
    use p256::pkcs8::EncodePrivateKey;
    let (der, mut jwk) = match alg {
        Alg::Es256 => {
            let sk = p256::ecdsa::SigningKey::random(rng);
            let point = sk.verifying_key().to_encoded_point(false);
            let jwk = json!({"kty": "EC", "crv": "P-256",
                             "x": b64(point.x().expect("affine")), "y": b64(point.y().expect("affine"))});
            (sk.to_pkcs8_der().expect("pkcs8").as_bytes().to_vec(), jwk)
        }
        Alg::EdDsa => {
            let sk = ed25519_dalek::SigningKey::generate(rng);
            let jwk =
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(sk.verifying_key().as_bytes())});
            (sk.to_pkcs8_der().expect("pkcs8").as_bytes().to_vec(), jwk)
        }
        Alg::Rs256 => {
            use rsa::traits::PublicKeyParts;
            let sk = rsa::RsaPrivateKey::new(rng, 2048).expect("RSA key generation");
            let jwk = json!({"kty": "RSA", "n": b64(&sk.n().to_bytes_be()), "e": b64(&sk.e().to_bytes_be())});
            (sk.to_pkcs8_der().expect("pkcs8").as_bytes().to_vec(), jwk)
        }
    };
    let m = jwk.as_object_mut().expect("object");
    m.insert("kid".into(), json!(kid));
    m.insert("alg".into(), json!(alg.name()));
    m.insert("use".into(), json!("sig"));
    (der, m.clone())
}

/// A private key ready to sign, parsed once from PKCS#8 DER.
pub enum SigningKey {
    Es256(p256::ecdsa::SigningKey),
    Rs256(Box<rsa::pkcs1v15::SigningKey<sha2::Sha256>>),
    EdDsa(ed25519_dalek::SigningKey),
}

impl SigningKey {
    pub fn from_pkcs8(alg: Alg, der: &[u8]) -> Result<SigningKey> {
        use p256::pkcs8::DecodePrivateKey;
        let bad = || IdentityError::not_configured("signing key is corrupt");
        Ok(match alg {
            Alg::Es256 => {
                SigningKey::Es256(p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|_| bad())?)
            }
            Alg::EdDsa => SigningKey::EdDsa(
                ed25519_dalek::SigningKey::from_pkcs8_der(der).map_err(|_| bad())?,
            ),
            Alg::Rs256 => SigningKey::Rs256(Box::new(rsa::pkcs1v15::SigningKey::new(
                rsa::RsaPrivateKey::from_pkcs8_der(der).map_err(|_| bad())?,
            ))),
        })
    }

    /// The JWS signature of `input` (ES256: r||s, 64 bytes).
    pub fn sign<R: RngCore + CryptoRng>(&self, input: &[u8], rng: &mut R) -> Vec<u8> {
        use rsa::signature::{RandomizedSigner, SignatureEncoding, Signer};
        match self {
            SigningKey::Es256(k) => {
                let s: p256::ecdsa::Signature = k.sign(input);
                s.to_bytes().to_vec()
            }
            // Randomised (blinded) RSA signing resists timing attacks.
            SigningKey::Rs256(k) => k.sign_with_rng(rng, input).to_vec(),
            SigningKey::EdDsa(k) => k.sign(input).to_bytes().to_vec(),
        }
    }
}

/// A public key ready to verify, parsed and validated once from its JWK.
/// ES256 and RS256 verify with ring (assembly); EdDSA with ed25519-dalek.
pub enum VerifyingKey {
    /// Uncompressed SEC1 point (validated on the curve at parse time).
    Es256(Vec<u8>),
    /// Modulus and exponent, big-endian (validated at parse time).
    Rs256 {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    EdDsa(ed25519_dalek::VerifyingKey),
}

impl VerifyingKey {
    pub fn from_jwk(alg: Alg, jwk: &Map<String, Value>) -> Result<VerifyingKey> {
        let bad = || IdentityError::not_configured("signing key's public JWK is corrupt");
        let field = |k: &str| {
            jwk.get(k)
                .and_then(Value::as_str)
                .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
                .ok_or_else(bad)
        };
        Ok(match alg {
            Alg::Es256 => {
                let (x, y) = (field("x")?, field("y")?);
                // RFC 7518 wants both coordinates at full length (32 bytes);
                // some encoders (PyJWT before 2.10) drop leading zero bytes,
                // about one key in 128. Such a coordinate is the same number:
                // left-padded, then the point is validated as any other.
                if !(1..=32).contains(&x.len()) || !(1..=32).contains(&y.len()) {
                    return Err(bad());
                }
                let mut sec1 = vec![0u8; 65];
                sec1[0] = 4;
                sec1[33 - x.len()..33].copy_from_slice(&x);
                sec1[65 - y.len()..].copy_from_slice(&y);
                // Validates the point once; ring re-checks it per call cheaply.
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| bad())?;
                VerifyingKey::Es256(sec1)
            }
            Alg::EdDsa => {
                let x: [u8; 32] = field("x")?.try_into().map_err(|_| bad())?;
                VerifyingKey::EdDsa(ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|_| bad())?)
            }
            Alg::Rs256 => {
                let (n, e) = (field("n")?, field("e")?);
                rsa::RsaPublicKey::new(
                    rsa::BigUint::from_bytes_be(&n),
                    rsa::BigUint::from_bytes_be(&e),
                )
                .map_err(|_| bad())?;
                VerifyingKey::Rs256 { n, e }
            }
        })
    }

    pub fn alg(&self) -> Alg {
        match self {
            VerifyingKey::Es256(_) => Alg::Es256,
            VerifyingKey::Rs256 { .. } => Alg::Rs256,
            VerifyingKey::EdDsa(_) => Alg::EdDsa,
        }
    }

    /// Whether `sig` is a valid signature of `input` (EdDSA: strict, no
    /// malleable signatures).
    pub fn verify(&self, input: &[u8], sig: &[u8]) -> bool {
        use ring::signature as rs;
        match self {
            VerifyingKey::Es256(sec1) => {
                rs::UnparsedPublicKey::new(&rs::ECDSA_P256_SHA256_FIXED, sec1)
                    .verify(input, sig)
                    .is_ok()
            }
            VerifyingKey::Rs256 { n, e } => rs::RsaPublicKeyComponents { n, e }
                .verify(&rs::RSA_PKCS1_2048_8192_SHA256, input, sig)
                .is_ok(),
            VerifyingKey::EdDsa(k) => ed25519_dalek::Signature::from_slice(sig)
                .is_ok_and(|s| k.verify_strict(input, &s).is_ok()),
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_retired_key_verifies_until_it_expires_and_states_round_trip() {
        for st in [
            KeyStatus::Next,
            KeyStatus::Active,
            KeyStatus::Retired,
            KeyStatus::Revoked,
        ] {
            assert_eq!(KeyStatus::parse(st.as_str()), Some(st));
        }
        assert_eq!(KeyStatus::parse("revoked?"), None);
        assert!(KeyStatus::Retired.verifies(Some(101), 100));
        assert!(!KeyStatus::Retired.verifies(Some(100), 100));
        assert!(KeyStatus::Next.verifies(Some(0), 100));
        assert!(!KeyStatus::Revoked.verifies(None, 100));
    }

    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn each_alg_signs_and_verifies_through_its_jwk() {
        let mut rng = StdRng::seed_from_u64(9);
        for alg in [Alg::Es256, Alg::EdDsa, Alg::Rs256] {
            let (der, jwk) = generate(alg, "k1", &mut rng);
            assert_eq!(jwk["kid"], "k1");
            assert_eq!(jwk["alg"], alg.name());
            assert!(
                !jwk.contains_key("d"),
                "public JWK must not hold the private part"
            );
            let sk = SigningKey::from_pkcs8(alg, &der).unwrap();
            let vk = VerifyingKey::from_jwk(alg, &jwk).unwrap();
            let sig = sk.sign(b"header.payload", &mut rng);
            assert!(vk.verify(b"header.payload", &sig), "{alg:?}");
            assert!(
                !vk.verify(b"header.payload2", &sig),
                "{alg:?} other message"
            );
            let mut bad = sig.clone();
            bad[5] ^= 1;
            assert!(!vk.verify(b"header.payload", &bad), "{alg:?} tampered");
            assert!(
                !vk.verify(b"header.payload", &sig[..sig.len() - 1]),
                "{alg:?} truncated"
            );
            assert!(!vk.verify(b"header.payload", &[]), "{alg:?} empty");
        }
    }

    #[test]
    fn a_key_of_one_alg_does_not_verify_another_algs_signature() {
        let mut rng = StdRng::seed_from_u64(10);
        let (der_e, _) = generate(Alg::Es256, "e", &mut rng);
        let (_, jwk_e2) = generate(Alg::Es256, "e2", &mut rng);
        let sig = SigningKey::from_pkcs8(Alg::Es256, &der_e)
            .unwrap()
            .sign(b"m", &mut rng);
        assert!(!VerifyingKey::from_jwk(Alg::Es256, &jwk_e2)
            .unwrap()
            .verify(b"m", &sig));
        assert!(
            VerifyingKey::from_jwk(Alg::EdDsa, &jwk_e2).is_err(),
            "an EC JWK is not an Ed25519 key"
        );
    }

    #[test]
    fn es256_coordinates_without_leading_zeros_are_the_same_key() {
        // Find a key whose x or y starts with a zero byte (about 1 in 128).
        let mut rng = StdRng::seed_from_u64(7);
        for i in 0..5000 {
            let (der, jwk) = generate(Alg::Es256, "z", &mut rng);
            let coord = |k: &str| URL_SAFE_NO_PAD.decode(jwk[k].as_str().unwrap()).unwrap();
            let Some(k) = ["x", "y"].into_iter().find(|k| coord(k)[0] == 0) else {
                continue;
            };
            let full = coord(k);
            let mut short = jwk.clone();
            let trimmed: Vec<u8> = full.iter().copied().skip_while(|b| *b == 0).collect();
            short.insert(k.into(), json!(URL_SAFE_NO_PAD.encode(&trimmed)));
            let sig = SigningKey::from_pkcs8(Alg::Es256, &der)
                .unwrap()
                .sign(b"m", &mut rng);
            assert!(
                VerifyingKey::from_jwk(Alg::Es256, &short)
                    .unwrap()
                    .verify(b"m", &sig),
                "key {i}"
            );
            // Longer than the curve's 32 bytes: refused.
            let mut long = jwk.clone();
            let mut padded = vec![0u8];
            padded.extend_from_slice(&full);
            long.insert(k.into(), json!(URL_SAFE_NO_PAD.encode(&padded)));
            assert!(VerifyingKey::from_jwk(Alg::Es256, &long).is_err());
            return;
        }
        panic!("no key with a leading zero coordinate in 5000");
    }

    #[test]
    fn corrupt_material_is_an_error_not_a_panic() {
        assert!(SigningKey::from_pkcs8(Alg::Es256, b"garbage").is_err());
        let mut jwk = Map::new();
        jwk.insert("x".into(), json!("AAAA"));
        jwk.insert("y".into(), json!("AAAA"));
        assert!(VerifyingKey::from_jwk(Alg::Es256, &jwk).is_err());
        assert!(Alg::parse("none").is_none() && Alg::parse("HS256").is_none());
    }
}
