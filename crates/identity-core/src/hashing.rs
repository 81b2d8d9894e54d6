//! The hasher of the per-backend lookup tables on verify_jwt's path (the
//! revoked jtis and sessions, the refusable users, remembered signatures):
//! foldhash, a maintained crate, instead of std's SipHash (which cost about
//! as much as the lookups' other work together) and of the hand-written
//! FxHash-style hasher it replaced, which benches/core.rs measured slower
//! (16-byte ids 5.39 -> 4.64 ns per hit and miss, 36-byte jtis 16.7 -> 5.7
//! ns per hit). Keyed at random per process: the tables are filled from the
//! database, or with verified tokens, never with keys a caller picks; a
//! caller only looks up, so a collision costs a probe, never a wrong answer.

use std::hash::{BuildHasher, Hash};

pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

/// A hash of `v` that stays the same for the life of the process (one
/// random key per process): for a table indexed by hash across calls.
pub fn process_hash<T: Hash>(v: T) -> u64 {
    static KEY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    foldhash::fast::FixedState::with_seed(*KEY.get_or_init(rand::random)).hash_one(v)
}

/// HMAC-SHA256 of `parts` (each ended by a 0xff byte, which no UTF-8 text
/// has) under `key`, spread over 1..=`rows`: the same row in every backend
/// of the server, and one that no caller without the key can aim at.
pub fn keyed_row(key: &[u8], parts: &[&[u8]], rows: u32) -> u32 {
    use hmac::{Hmac, Mac};
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
        mac.update(&[0xff]);
    }
    let out = mac.finalize().into_bytes();
    1 + u32::from_be_bytes([out[0], out[1], out[2], out[3]]) % rows.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_rows_depend_on_the_key_and_spread() {
        let rows: HashSet<u32> = (0..5000u32)
            .map(|i| keyed_row(b"k1", &[b"credentials", &i.to_be_bytes()], 1024))
            .collect();
        assert!(rows.iter().all(|r| (1..=1024).contains(r)));
        assert!(rows.len() > 900, "{}", rows.len());
        let moved = (0..64u32)
            .filter(|i| {
                keyed_row(b"k1", &[&i.to_be_bytes()], 1024)
                    != keyed_row(b"k2", &[&i.to_be_bytes()], 1024)
            })
            .count();
        assert!(moved > 60, "another key, other rows: {moved}");
        assert_ne!(
            keyed_row(b"k", &[b"ab", b"c"], 1 << 30),
            keyed_row(b"k", &[b"a", b"bc"], 1 << 30)
        );
    }

    #[test]
    fn a_process_hash_is_stable_and_spreads() {
        assert_eq!(process_hash(42u64), process_hash(42u64));
        let hashes: HashSet<u64> = (0..10_000u64).map(process_hash).collect();
        assert_eq!(
            hashes.len(),
            10_000,
            "no collision among 10,000 small integers"
        );
        // The low bits (used as slot indices) spread too.
        let slots: HashSet<u64> = (0..4096u64).map(|i| process_hash(i) & 4095).collect();
        assert!(slots.len() > 2400, "{} of 4096 slots", slots.len());
    }

    #[test]
    fn tables_find_what_they_hold() {
        let mut m: HashMap<[u8; 16], u32> = HashMap::default();
        for i in 0..1000u32 {
            let mut k = [0u8; 16];
            k[..4].copy_from_slice(&i.to_le_bytes());
            m.insert(k, i);
        }
        let mut k = [0u8; 16];
        k[..4].copy_from_slice(&517u32.to_le_bytes());
        assert_eq!(m.get(&k), Some(&517));
    }
}
