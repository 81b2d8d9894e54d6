//! Secrets at rest: XChaCha20-Poly1305 under identity.encryption_key, with
//! associated data that binds each ciphertext to its row (a ciphertext copied
//! to another row does not decrypt). Format: version byte 1, 24-byte nonce,
//! ciphertext and tag.

use super::error::{IdentityError, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const VERSION: u8 = 1;
pub const NONCE_LEN: usize = 24;

/// The 32-byte key from its base64 text. Errors never include the value.
pub fn parse_key(b64: &str) -> Result<[u8; 32]> {
    STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|k| <[u8; 32]>::try_from(k.as_slice()).ok())
        .ok_or_else(|| {
            IdentityError::not_configured(
                "identity.encryption_key is not a base64-encoded 32-byte key",
            )
            .hint("generate one with: openssl rand -base64 32")
        })
}

pub fn seal(key: &[u8; 32], nonce: [u8; NONCE_LEN], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("XChaCha20-Poly1305 encryption does not fail");
    let mut out = Vec::with_capacity(1 + NONCE_LEN + ct.len());
    out.push(VERSION);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

pub fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let refuse = || {
        IdentityError::not_configured("secret cannot be decrypted")
            .detail("wrong identity.encryption_key, or the ciphertext does not belong to this row")
    };
    if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != VERSION {
        return Err(refuse());
    }
    let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
    XChaCha20Poly1305::new(key.into())
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .map_err(|_| refuse())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: [u8; 32] = [7; 32];

    #[test]
    fn round_trip_and_binding() {
        let s = seal(&K, [1; 24], b"sk-or-v1-secret", b"row-1");
        assert_eq!(open(&K, &s, b"row-1").unwrap(), b"sk-or-v1-secret");
        assert!(
            !s.windows(6).any(|w| w == b"secret"),
            "ciphertext leaks plaintext"
        );
        assert!(open(&K, &s, b"row-2").is_err(), "moved to another row");
        assert!(open(&[8; 32], &s, b"row-1").is_err(), "wrong key");
        let mut t = s.clone();
        *t.last_mut().unwrap() ^= 1;
        assert!(open(&K, &t, b"row-1").is_err(), "tampered");
        assert!(open(&K, &s[..10], b"row-1").is_err(), "truncated");
    }

    #[test]
    fn key_parsing_never_echoes_the_value() {
        assert_eq!(parse_key(&STANDARD.encode([3u8; 32])).unwrap(), [3; 32]);
        for bad in [
            "",
            "c2hvcnQ=",
            "not base64 at all %%%",
            &STANDARD.encode([3u8; 31]),
        ] {
            let e = parse_key(bad).unwrap_err();
            assert_eq!(e.sqlstate(), "55000");
            assert!(bad.is_empty() || !e.to_string().contains(bad));
        }
    }
}
