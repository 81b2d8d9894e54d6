//! A blocked Bloom filter over shared words: the revoked jtis and sessions
//! of a database, in shared memory (src/pg/shared_filter.rs), so a check of
//! a key that was never revoked costs one cache line instead of an index
//! probe, whatever the size of the table.
//!
//! Each key sets `K` bits inside one 512-bit block (one cache line): a
//! lookup reads one block. At `BITS_PER_KEY` bits per key the false
//! positive rate is about 0.1% (measured in the tests); a positive is only
//! "maybe", and the caller then probes the table, so a false positive costs
//! a probe and never a wrong answer. Bits are only ever set (with atomic
//! OR, by any process) or all cleared by the one process that rebuilds the
//! filter; keys are hashed with a seed chosen at server start.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

/// Words per block (512 bits, a cache line).
pub const BLOCK_WORDS: usize = 8;
/// Bits set per key.
const K: u32 = 7;
/// Bits per key a filter is sized for: `capacity` keys.
pub const BITS_PER_KEY: usize = 16;

/// A filter over `words` (a whole number of blocks, at least one).
#[derive(Clone, Copy)]
pub struct Filter<'a> {
    words: &'a [AtomicU64],
    seed: u64,
}

impl<'a> Filter<'a> {
    /// None unless `words` is a non-empty whole number of blocks.
    pub fn new(words: &'a [AtomicU64], seed: u64) -> Option<Filter<'a>> {
        (!words.is_empty() && words.len().is_multiple_of(BLOCK_WORDS))
            .then_some(Filter { words, seed })
    }

    /// How many keys it holds at about the designed false positive rate.
    pub fn capacity(&self) -> usize {
        self.words.len() * 64 / BITS_PER_KEY
    }

    /// The block and the K bit positions (0..512) of `key`.
    fn positions(&self, key: &[u8]) -> (usize, [u32; K as usize]) {
        let h = foldhash::fast::FixedState::with_seed(self.seed).hash_one(key);
        let blocks = (self.words.len() / BLOCK_WORDS) as u64;
        // The high half picks the block (a multiply, not a modulo).
        let block = (((h >> 32) * blocks) >> 32) as usize;
        // The bits from a second, independent mix of the hash.
        let mut g = h ^ 0x9E37_79B9_7F4A_7C15;
        g = (g ^ (g >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        g = (g ^ (g >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        g ^= g >> 31;
        let mut bits = [0u32; K as usize];
        for (i, b) in bits.iter_mut().enumerate() {
            *b = ((g >> (9 * i)) & 511) as u32;
        }
        (block, bits)
    }

    /// Adds `key` (any process, concurrently with lookups and other adds).
    pub fn insert(&self, key: &[u8]) {
        let (block, bits) = self.positions(key);
        let base = block * BLOCK_WORDS;
        for b in bits {
            self.words[base + (b / 64) as usize].fetch_or(1 << (b % 64), Ordering::AcqRel);
        }
    }

    /// False only when `key` was never inserted since the last `clear`.
    pub fn may_contain(&self, key: &[u8]) -> bool {
        let (block, bits) = self.positions(key);
        let base = block * BLOCK_WORDS;
        bits.iter().all(|&b| {
            self.words[base + (b / 64) as usize].load(Ordering::Acquire) & (1 << (b % 64)) != 0
        })
    }

    /// Asks the CPU to bring `key`'s block into its cache, for a lookup to
    /// come (a hint: no answer depends on it). verify_jwt gives it while
    /// its HMAC is still being computed, so the lookup after the signature
    /// check finds the line there instead of waiting on memory.
    pub fn prefetch(&self, key: &[u8]) {
        let (block, _) = self.positions(key);
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p = self.words[block * BLOCK_WORDS].as_ptr().cast::<i8>();
            // SAFETY: a prefetch only hints the cache and never faults; `p`
            // points into `words` (the block was picked within it), and SSE
            // is part of every x86_64.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = block;
    }

    /// Clears every bit (only while no process can insert: the caller holds
    /// a lock that keeps writers of the table out; and a reader trusts a
    /// negative only after seeing that no rebuild began meanwhile: the
    /// stores are Release, the loads Acquire).
    pub fn clear(&self) {
        for w in self.words {
            w.store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(n: usize) -> Vec<AtomicU64> {
        (0..n).map(|_| AtomicU64::new(0)).collect()
    }

    #[test]
    fn a_prefetch_changes_no_answer() {
        let w = words(BLOCK_WORDS * 4);
        let f = Filter::new(&w, 7).unwrap();
        f.insert(b"in");
        for k in [&b"in"[..], b"out", b"", &[0xFF; 300]] {
            let before = f.may_contain(k);
            f.prefetch(k);
            assert_eq!(f.may_contain(k), before);
        }
        assert!(f.may_contain(b"in"));
        assert!(
            w.iter()
                .map(|x| x.load(Ordering::Relaxed).count_ones())
                .sum::<u32>()
                <= K
        );
    }

    #[test]
    fn every_inserted_key_is_found_and_few_others() {
        let w = words(BLOCK_WORDS * 2048); // 1 Mbit: 65,536 keys
        let f = Filter::new(&w, 42).unwrap();
        assert_eq!(f.capacity(), 65_536);
        for i in 0..f.capacity() {
            f.insert(format!("revoked-{i}").as_bytes());
        }
        for i in 0..f.capacity() {
            assert!(f.may_contain(format!("revoked-{i}").as_bytes()));
        }
        let false_positives = (0..100_000)
            .filter(|i| f.may_contain(format!("other-{i}").as_bytes()))
            .count();
        // About 0.1% at capacity; well under 0.5% whatever the seed.
        assert!(false_positives < 500, "{false_positives} of 100,000");
        f.clear();
        assert!(!f.may_contain(b"revoked-1"));
    }

    #[test]
    fn sixteen_byte_ids_and_seeds() {
        let w = words(BLOCK_WORDS * 64);
        let a = Filter::new(&w, 1).unwrap();
        let id = [7u8; 16];
        assert!(!a.may_contain(&id));
        a.insert(&id);
        assert!(a.may_contain(&id));
        // Another seed places the same key elsewhere.
        let w2 = words(BLOCK_WORDS * 64);
        let b = Filter::new(&w2, 2).unwrap();
        b.insert(&id);
        assert_ne!(a.positions(&id), b.positions(&id));
    }

    #[test]
    fn only_whole_blocks() {
        assert!(Filter::new(&words(0), 0).is_none());
        assert!(Filter::new(&words(BLOCK_WORDS + 1), 0).is_none());
        assert!(Filter::new(&words(BLOCK_WORDS), 0).is_some());
    }

    #[test]
    fn concurrent_inserts_are_all_kept() {
        let w = words(BLOCK_WORDS * 256);
        let f = Filter::new(&w, 9).unwrap();
        std::thread::scope(|s| {
            for t in 0..4 {
                s.spawn(move || {
                    for i in 0..2000 {
                        f.insert(format!("{t}-{i}").as_bytes());
                    }
                });
            }
        });
        for t in 0..4 {
            for i in 0..2000 {
                assert!(f.may_contain(format!("{t}-{i}").as_bytes()));
            }
        }
    }
}
