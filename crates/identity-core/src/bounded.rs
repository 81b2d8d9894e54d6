//! A map of at most `cap` entries that, when full, drops its oldest entry
//! for each new one (first in, first out): for the per-backend copies of
//! rows, which must stay bounded. (Starting over when full, as these maps
//! did, left a backend cycling through more keys than the cap with about
//! half of them remembered on average; FIFO keeps cap of them.)

use crate::hashing::HashMap;
use std::collections::VecDeque;
use std::hash::Hash;

pub struct FifoMap<K, V> {
    map: HashMap<K, V>,
    /// The keys of `map`, oldest first.
    order: VecDeque<K>,
    cap: usize,
}

impl<K: Hash + Eq + Clone, V> FifoMap<K, V> {
    pub fn new(cap: usize) -> Self {
        FifoMap {
            map: HashMap::default(),
            order: VecDeque::new(),
            cap,
        }
    }

    pub fn get(&self, k: &K) -> Option<&V> {
        self.map.get(k)
    }

    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.map.get_mut(k)
    }

    /// Inserts or replaces `k`; a new key beyond the cap drops the oldest.
    pub fn insert(&mut self, k: K, v: V) {
        self.insert_within(k, v, self.cap);
    }

    /// `insert` with the cap given now (for a cap that is a setting).
    pub fn insert_within(&mut self, k: K, v: V, cap: usize) {
        if cap == 0 {
            return;
        }
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
            while self.map.len() > cap {
                match self.order.pop_front() {
                    Some(old) => {
                        self.map.remove(&old);
                    }
                    None => break,
                }
            }
        }
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_cap_entries() {
        let mut m = FifoMap::new(3);
        for i in 0..10 {
            m.insert(i, i * 10);
            assert!(m.len() <= 3);
        }
        assert_eq!(
            (m.get(&6), m.get(&7), m.get(&8), m.get(&9)),
            (None, Some(&70), Some(&80), Some(&90))
        );
        // Replacing a key neither grows the map nor reorders it.
        m.insert(7, 71);
        m.insert(10, 100);
        assert_eq!(
            (m.get(&7), m.get(&8), m.get(&10)),
            (None, Some(&80), Some(&100))
        );
        assert_eq!(m.order.len(), m.len());
        m.clear();
        assert!(m.is_empty() && m.order.is_empty());
    }

    #[test]
    fn cycling_through_more_keys_than_the_cap_keeps_cap_of_them() {
        let mut m = FifoMap::new(800);
        let mut hits = 0;
        for round in 0..10 {
            for k in 0..1000u32 {
                let key = (k * 7919 + round) % 1000;
                if m.get(&key).is_some() {
                    hits += 1;
                } else {
                    m.insert(key, ());
                }
            }
        }
        assert_eq!(m.len(), 800);
        assert!(hits > 0);
    }
}
