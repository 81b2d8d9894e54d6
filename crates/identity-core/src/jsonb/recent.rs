//! The templates a backend keeps (`shape`, `text_shape`): a few, most
//! recently used first, and a back-off so that a stream of ever new shapes
//! pays for making a template rarely: after a miss the next template is
//! made only after twice as many misses in a row (at most `BACKOFF_MAX`
//! more); a hit resets it.

/// Templates kept per backend, of each kind.
const KEPT: usize = 4;
const BACKOFF_MAX: u32 = 64;

pub(super) struct Recent<T> {
    items: Vec<T>,
    /// Misses in a row, and the count of them at which the next template
    /// is made.
    misses: u32,
    next_at: u32,
    hits: u64,
}

impl<T> Default for Recent<T> {
    fn default() -> Self {
        Recent {
            items: Vec::new(),
            misses: 0,
            next_at: 0,
            hits: 0,
        }
    }
}

impl<T> Recent<T> {
    /// The answer of the first template `f` answers for, most recent
    /// first; that template becomes the most recent.
    pub(super) fn find<R>(&mut self, mut f: impl FnMut(&T) -> Option<R>) -> Option<R> {
        for k in 0..self.items.len() {
            if let Some(r) = f(&self.items[k]) {
                if k > 0 {
                    let t = self.items.remove(k);
                    self.items.insert(0, t);
                }
                self.misses = 0;
                self.next_at = 0;
                self.hits += 1;
                return Some(r);
            }
        }
        None
    }

    /// After a miss: whether a template is to be made of this input.
    pub(super) fn make_one(&mut self) -> bool {
        self.misses = self.misses.saturating_add(1);
        if self.misses <= self.next_at {
            return false;
        }
        self.next_at = self.misses.saturating_mul(2).min(self.misses + BACKOFF_MAX);
        true
    }

    /// A new template, the most recent; the oldest goes past `KEPT`.
    pub(super) fn add(&mut self, t: T) {
        self.items.truncate(KEPT - 1);
        self.items.insert(0, t);
    }

    pub(super) fn hits(&self) -> u64 {
        self.hits
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    #[cfg(test)]
    pub(super) fn first(&self) -> Option<&T> {
        self.items.first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_in_a_row_make_templates_ever_more_rarely() {
        let mut r: Recent<u32> = Recent::default();
        let made: Vec<u32> = (1..=200).filter(|_| r.make_one()).collect();
        // Doubling, then at most BACKOFF_MAX misses apart.
        assert_eq!(made, [1, 3, 7, 15, 31, 63, 127, 192]);
        assert!(r.find(|_| None::<()>).is_none());
        r.add(1);
        r.add(2);
        assert_eq!(r.find(|&t| (t == 1).then_some(t)), Some(1));
        assert_eq!(r.first(), Some(&1));
        // A hit resets the back-off.
        assert!(r.make_one());
        for t in 0..10 {
            r.add(t);
        }
        assert_eq!(r.len(), KEPT);
    }
}
