//! The hasher of the per-backend lookup tables on verify_jwt's path (the
//! revoked jtis and sessions, the refusable users, remembered signatures).
//!
//! std's SipHash cost about as much as the lookups' other work together;
//! this is one multiply-rotate per 8 bytes (FxHash's construction) from a
//! random key per process. The tables are filled from the database, or
//! with verified tokens, never with keys a caller picks; a caller only
//! looks up, so a collision costs a probe, never a wrong answer.

use std::hash::{BuildHasher, Hasher};

const M: u64 = 0x9E37_79B9_7F4A_7C15;

/// Builds `KeyedHasher`s with this process's key.
#[derive(Clone, Copy)]
pub struct Keyed(u64);

impl Default for Keyed {
    fn default() -> Self {
        static KEY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        Keyed(*KEY.get_or_init(rand::random))
    }
}

impl BuildHasher for Keyed {
    type Hasher = KeyedHasher;
    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher(self.0)
    }
}

pub struct KeyedHasher(u64);

impl KeyedHasher {
    #[inline]
    fn add(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(M);
    }
}

impl Hasher for KeyedHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // hashbrown takes the top 7 bits as a tag and the low bits as the
        // bucket: fold the high half, which the multiplies filled best, down.
        let h = self.0;
        (h ^ (h >> 32)).wrapping_mul(M) ^ (h >> 29)
    }
}

pub type HashMap<K, V> = std::collections::HashMap<K, V, Keyed>;
pub type HashSet<K> = std::collections::HashSet<K, Keyed>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_equal_and_borrowed_forms_agree() {
        let k = Keyed::default();
        assert_eq!(k.hash_one([7u8; 16]), k.hash_one([7u8; 16]));
        let boxed: Box<[u8]> = b"some-jti".to_vec().into();
        assert_eq!(k.hash_one(&boxed), k.hash_one(&b"some-jti"[..]));
        let mut s: HashSet<Box<[u8]>> = HashSet::default();
        s.insert(boxed);
        assert!(s.contains(&b"some-jti"[..]) && !s.contains(&b"some-jtj"[..]));
    }

    /// Keys that differ in one byte, or only in length (trailing zeros),
    /// spread over the buckets: 10,000 of them in 4,096 buckets leave no
    /// bucket with more than a handful.
    #[test]
    fn near_keys_spread() {
        let k = Keyed::default();
        let mut buckets = vec![0u32; 4096];
        for i in 0..10_000u32 {
            let mut key = [0u8; 16];
            key[..4].copy_from_slice(&i.to_le_bytes());
            buckets[(k.hash_one(key) & 4095) as usize] += 1;
        }
        assert!(
            *buckets.iter().max().unwrap() < 16,
            "{:?}",
            buckets.iter().max()
        );
        let lens: std::collections::HashSet<u64> = (0..40usize)
            .map(|n| k.hash_one(&vec![0u8; n][..]))
            .collect();
        assert_eq!(lens.len(), 40);
    }
}
