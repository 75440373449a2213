//! The read cache's doorkeeper (as in W-TinyLFU): a representation that was cheap to make goes
//! into the cache on its second miss, not its first. A scan or a cold start reads most documents
//! once; caching each of them would only push used ones out, and churn the cache's table.
//!
//! A fixed bitset of hashes, set with atomic ORs (no lock), cleared once a quarter of its bits
//! are set, so "seen" means "missed at least once in the last few hundred thousand misses". A
//! collision only lets a representation in one miss early.

use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Bits in the set: 128 KiB.
const BITS: usize = 1 << 20;

/// Marks after which the set starts over.
const RESET_AFTER: usize = BITS / 4;

/// Which representations missed lately.
pub struct Doorkeeper {
    words: Box<[AtomicU64]>,
    marks: AtomicUsize,
}

impl Default for Doorkeeper {
    fn default() -> Self {
        Self {
            words: (0..BITS / 64).map(|_| AtomicU64::new(0)).collect(),
            marks: AtomicUsize::new(0),
        }
    }
}

impl Doorkeeper {
    /// Whether `key` missed before (since the last reset); marks it as missed.
    pub fn missed_before(&self, key: impl Hash) -> bool {
        let hash = foldhash::fast::FixedState::default().hash_one(key);
        // The mask keeps the index below BITS, so the cast is exact.
        let bit = (hash as usize) & (BITS - 1);
        let mask = 1u64 << (bit % 64);
        let word = &self.words[bit / 64];
        if word.fetch_or(mask, Ordering::Relaxed) & mask != 0 {
            return true;
        }
        if self.marks.fetch_add(1, Ordering::Relaxed) + 1 >= RESET_AFTER {
            self.marks.store(0, Ordering::Relaxed);
            for word in &self.words {
                word.store(0, Ordering::Relaxed);
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_let_in_on_its_second_miss_and_forgotten_after_a_reset() {
        let doorkeeper = Doorkeeper::default();
        assert!(!doorkeeper.missed_before(("p", "http://a", 1)));
        assert!(doorkeeper.missed_before(("p", "http://a", 1)));
        assert!(!doorkeeper.missed_before(("p", "http://b", 1)));
        // Enough other keys start the set over.
        let mut i = 0u64;
        loop {
            doorkeeper.missed_before(i);
            i += 1;
            if doorkeeper.marks.load(Ordering::Relaxed) == 0 {
                break;
            }
        }
        assert!(i >= RESET_AFTER as u64);
        assert!(!doorkeeper.missed_before(("p", "http://a", 1)));
    }
}
