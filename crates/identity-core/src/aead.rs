//! Secrets at rest: XChaCha20-Poly1305 under identity.encryption_key, with
//! associated data that binds each ciphertext to its row (a ciphertext copied
//! to another row does not decrypt).
//!
//! Format 2 (every seal since 0.2.0): version byte 2, the sealing key's
//! 8-byte id (`key_id`: derived from the key, never the key), 24-byte nonce,
//! ciphertext and tag; the version and key id are authenticated with the
//! row's associated data. Format 1 (0.1.0): version byte 1, nonce,
//! ciphertext and tag; opened by trying each configured key.
//!
//! A `Keyring` is the current key (which seals) and the previous keys
//! (identity.previous_encryption_keys), which still open what they sealed
//! until `identity.rekey` has re-sealed it under the current one.

use super::error::{IdentityError, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const V1: u8 = 1;
const V2: u8 = 2;
pub const NONCE_LEN: usize = 24;
pub const KEY_ID_LEN: usize = 8;
const TAG_LEN: usize = 16;

/// A key's id: the first 8 bytes of SHA-256("identity-key-id:" || key).
/// Shown as 16 hex digits; computable by an operator from the key alone:
/// `(printf 'identity-key-id:'; printf %s "$KEY" | base64 -d) | sha256sum | cut -c1-16`.
pub fn key_id(key: &[u8; 32]) -> [u8; KEY_ID_LEN] {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(b"identity-key-id:");
    h.update(key);
    let d = h.finalize();
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&d[..KEY_ID_LEN]);
    id
}

/// A key id as 16 lowercase hex digits.
pub fn key_id_hex(id: &[u8; KEY_ID_LEN]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// The current key and the previous ones still accepted for opening.
#[derive(Clone)]
pub struct Keyring {
    pub current: [u8; 32],
    pub previous: Vec<[u8; 32]>,
}

impl Keyring {
    pub fn new(current: [u8; 32], previous: Vec<[u8; 32]>) -> Keyring {
        Keyring { current, previous }
    }

    pub fn current_id(&self) -> [u8; KEY_ID_LEN] {
        key_id(&self.current)
    }

    fn all(&self) -> impl Iterator<Item = &[u8; 32]> {
        std::iter::once(&self.current).chain(self.previous.iter())
    }

    /// Seals under the current key (format 2).
    pub fn seal(&self, nonce: [u8; NONCE_LEN], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        seal(&self.current, nonce, plaintext, aad)
    }

    /// Opens a value sealed under the current key or a previous one. A value
    /// sealed under a key this ring does not hold: 55000 whose hint names the
    /// key id it needs.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
        match sealed_key_id(sealed) {
            Some(id) => match self.all().find(|k| key_id(k) == id) {
                Some(k) => open(k, sealed, aad),
                None => Err(IdentityError::not_configured(
                    "secret was sealed under an encryption key that is not configured",
                )
                .detail(format!("key id {}", key_id_hex(&id)))
                .hint(format!(
                    "add the key with id {} to identity.previous_encryption_keys",
                    key_id_hex(&id)
                ))),
            },
            None => self
                .all()
                .find_map(|k| open(k, sealed, aad).ok())
                .ok_or_else(|| open(&self.current, sealed, aad).unwrap_err()),
        }
    }

    /// Whether `sealed` is not under the current key (format 1, or another
    /// key's id): what identity.rekey re-seals.
    pub fn needs_rekey(&self, sealed: &[u8]) -> bool {
        sealed_key_id(sealed) != Some(self.current_id())
    }
}

/// The id of the key that sealed `sealed` (None: format 1, or not sealed).
pub fn sealed_key_id(sealed: &[u8]) -> Option<[u8; KEY_ID_LEN]> {
    if sealed.first() != Some(&V2) || sealed.len() < 1 + KEY_ID_LEN {
        return None;
    }
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&sealed[1..1 + KEY_ID_LEN]);
    Some(id)
}

/// Parses identity.previous_encryption_keys: base64 keys separated by
/// commas or whitespace. Errors name the position, never a value.
pub fn parse_previous_keys(text: &str) -> Result<Vec<[u8; 32]>> {
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|k| !k.is_empty())
        .enumerate()
        .map(|(i, k)| {
            parse_key(k).map_err(|_| {
                IdentityError::not_configured(
                    "identity.previous_encryption_keys holds a value that is not a base64-encoded 32-byte key",
                )
                .detail(format!("entry {}", i + 1))
            })
        })
        .collect()
}

fn header_aad(header: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(header.len() + aad.len());
    v.extend_from_slice(header);
    v.extend_from_slice(aad);
    v
}

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

/// Seals under `key` (format 2: its id in the header).
pub fn seal(key: &[u8; 32], nonce: [u8; NONCE_LEN], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.push(V2);
    out.extend_from_slice(&key_id(key));
    let full_aad = header_aad(&out, aad);
    let ct = XChaCha20Poly1305::new(key.into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: &full_aad,
            },
        )
        .expect("XChaCha20-Poly1305 encryption does not fail");
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Opens a value sealed under `key`, in either format.
pub fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    let refuse = || {
        IdentityError::not_configured("secret cannot be decrypted")
            .detail("wrong identity.encryption_key, or the ciphertext does not belong to this row")
    };
    let (nonce, ct, full_aad) = match sealed.first() {
        Some(&V1) if sealed.len() >= 1 + NONCE_LEN + TAG_LEN => {
            let (nonce, ct) = sealed[1..].split_at(NONCE_LEN);
            (nonce, ct, aad.to_vec())
        }
        Some(&V2) if sealed.len() >= 1 + KEY_ID_LEN + NONCE_LEN + TAG_LEN => {
            let (header, rest) = sealed.split_at(1 + KEY_ID_LEN);
            let (nonce, ct) = rest.split_at(NONCE_LEN);
            (nonce, ct, header_aad(header, aad))
        }
        _ => return Err(refuse()),
    };
    XChaCha20Poly1305::new(key.into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: &full_aad,
            },
        )
        .map_err(|_| refuse())
}

/// A format-1 value, as 0.1.0 sealed it (for tests of the upgrade path).
#[cfg(test)]
fn seal_v1(key: &[u8; 32], nonce: [u8; NONCE_LEN], plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let ct = XChaCha20Poly1305::new(key.into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("encrypts");
    let mut out = vec![V1];
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
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
    fn a_keyring_opens_what_its_keys_sealed_and_names_a_missing_key() {
        let k1 = [1u8; 32];
        let k2 = [2u8; 32];
        let old = Keyring::new(k1, vec![]).seal([5; 24], b"secret-under-k1", b"row");
        let v1 = seal_v1(&k1, [6; 24], b"0.1.0 secret", b"row");
        // Rotated: k2 current, k1 previous. Both formats open.
        let ring = Keyring::new(k2, vec![k1]);
        assert_eq!(ring.open(&old, b"row").unwrap(), b"secret-under-k1");
        assert_eq!(ring.open(&v1, b"row").unwrap(), b"0.1.0 secret");
        assert!(ring.needs_rekey(&old) && ring.needs_rekey(&v1));
        let fresh = ring.seal([7; 24], b"new", b"row");
        assert!(!ring.needs_rekey(&fresh));
        assert_eq!(sealed_key_id(&fresh), Some(key_id(&k2)));
        // k1 dropped: its values name the key id they need, never a key.
        let only2 = Keyring::new(k2, vec![]);
        let e = only2.open(&old, b"row").unwrap_err();
        assert_eq!(e.sqlstate(), "55000");
        let hint = e.hint.clone().unwrap_or_default();
        assert!(hint.contains(&key_id_hex(&key_id(&k1))), "{hint}");
        assert_eq!(only2.open(&fresh, b"row").unwrap(), b"new");
        assert!(only2.open(&v1, b"row").is_err());
        // The header is authenticated: another key id in it does not open.
        let mut swapped = fresh.clone();
        swapped[1..9].copy_from_slice(&key_id(&k1));
        assert!(Keyring::new(k2, vec![k1]).open(&swapped, b"row").is_err());
        // Still bound to its row.
        assert!(ring.open(&old, b"other row").is_err());
    }

    #[test]
    fn key_ids_are_stable_and_the_operator_can_compute_them() {
        // (printf 'identity-key-id:'; printf '\x07%.0s' $(seq 32)) | sha256sum | cut -c1-16
        assert_eq!(key_id_hex(&key_id(&K)).len(), 16);
        assert_eq!(key_id(&K), key_id(&K));
        assert_ne!(key_id(&K), key_id(&[8; 32]));
    }

    #[test]
    fn previous_keys_parse_without_echoing_a_value() {
        let a = STANDARD.encode([1u8; 32]);
        let b = STANDARD.encode([2u8; 32]);
        assert_eq!(
            parse_previous_keys(&format!("{a}, {b}")).unwrap(),
            vec![[1; 32], [2; 32]]
        );
        assert!(parse_previous_keys("").unwrap().is_empty());
        let e = parse_previous_keys(&format!("{a},not-a-key")).unwrap_err();
        assert!(!e.to_string().contains("not-a-key") && e.detail.as_deref() == Some("entry 2"));
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
