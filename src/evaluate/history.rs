//! The bounded histories an alert keeps (SPEC §3.2–3.3), stored so that one
//! run costs O(1) whatever their length, and so that copying an alert state
//! (the undo journal does it on every first change after a commit) is a
//! plain memory copy with no allocation for the usual sizes.
//!
//! - [`Verdicts`]: the flap window and the calm history, a ring of bits
//!   (1 = BAD) with the running counts the learned `fire_after` needs
//!   (BADs, trailing BADs); the flap share reads the window a word at a
//!   time.
//! - [`Gaps`]: the last [`GAPS_KEPT`] gaps between runs, in arrival order
//!   and sorted, so the median is one read.
//!
//! Both persist in the readable forms they always had: a `G`/`B` string
//! (oldest first) and a JSON array of milliseconds (oldest first).

use std::fmt;

use serde::de::{Deserializer, Error as _};
use serde::{Deserialize, Serialize, Serializer};

/// How many gaps between runs are kept for `stale_after = "auto"`.
pub const GAPS_KEPT: usize = 20;

/// Bits kept inline; longer histories (`auto.learn` or `flap.window` above
/// this) spill to the heap.
const INLINE_WORDS: usize = 4;

#[derive(Clone)]
enum Bits {
    Inline([u64; INLINE_WORDS]),
    Heap(Box<[u64]>),
}

impl Bits {
    fn words(&self) -> &[u64] {
        match self {
            Bits::Inline(w) => w,
            Bits::Heap(w) => w,
        }
    }

    fn words_mut(&mut self) -> &mut [u64] {
        match self {
            Bits::Inline(w) => w,
            Bits::Heap(w) => w,
        }
    }
}

fn bit(words: &[u64], pos: usize) -> bool {
    words[pos / 64] >> (pos % 64) & 1 == 1
}

fn set(words: &mut [u64], pos: usize, bad: bool) {
    let word = &mut words[pos / 64];
    if bad {
        *word |= 1 << (pos % 64);
    } else {
        *word &= !(1 << (pos % 64));
    }
}

/// A bounded sequence of GOOD/BAD verdicts, oldest first. See the module
/// documentation.
#[derive(Clone)]
pub struct Verdicts {
    bits: Bits,
    /// Ring position of the oldest verdict.
    head: usize,
    len: usize,
    bad: usize,
    /// BAD verdicts at the newest end.
    trailing_bad: usize,
}

impl Default for Verdicts {
    fn default() -> Self {
        Verdicts {
            bits: Bits::Inline([0; INLINE_WORDS]),
            head: 0,
            len: 0,
            bad: 0,
            trailing_bad: 0,
        }
    }
}

impl Verdicts {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// BAD verdicts in the history.
    pub fn bad(&self) -> usize {
        self.bad
    }

    /// BAD verdicts at the newest end (the streak being judged).
    pub fn trailing_bad(&self) -> usize {
        self.trailing_bad
    }

    fn capacity(&self) -> usize {
        self.bits.words().len() * 64
    }

    /// The verdict at `i` (0 = oldest); `true` is BAD.
    pub fn get(&self, i: usize) -> bool {
        debug_assert!(i < self.len);
        let words = self.bits.words();
        bit(words, (self.head + i) & (words.len() * 64 - 1))
    }

    /// Doubles the storage, unrolling the ring so the oldest is at 0.
    fn grow(&mut self) {
        let words = (self.bits.words().len() * 2).max(INLINE_WORDS);
        let mut bits = vec![0; words].into_boxed_slice();
        for i in 0..self.len {
            set(&mut bits, i, self.get(i));
        }
        self.bits = Bits::Heap(bits);
        self.head = 0;
    }

    /// Appends a verdict, keeping only the newest `limit`.
    pub fn push(&mut self, bad: bool, limit: usize) {
        if limit == 0 {
            self.clear();
            return;
        }
        // Make room first, so the storage never needs more than `limit`.
        while self.len >= limit {
            self.pop_front();
        }
        if self.len == self.capacity() {
            self.grow();
        }
        let words = self.bits.words_mut();
        let mask = words.len() * 64 - 1;
        set(words, (self.head + self.len) & mask, bad);
        self.len += 1;
        if bad {
            self.bad += 1;
            self.trailing_bad += 1;
        } else {
            self.trailing_bad = 0;
        }
    }

    /// Drops the oldest verdict.
    fn pop_front(&mut self) {
        if self.len == 0 {
            return;
        }
        let words = self.bits.words();
        let mask = words.len() * 64 - 1;
        let first = bit(words, self.head);
        self.head = (self.head + 1) & mask;
        self.len -= 1;
        if first {
            self.bad -= 1;
        }
        self.trailing_bad = self.trailing_bad.min(self.len);
    }

    /// Drops the oldest verdicts until at most `limit` remain.
    pub fn truncate_front(&mut self, limit: usize) {
        while self.len > limit {
            self.pop_front();
        }
    }

    pub fn clear(&mut self) {
        *self = Verdicts::default();
    }

    /// SPEC §3.3's weighted change share: transition `i` (1-based, oldest
    /// first) weighs `0.75 + 0.5 · (i − 1) / (n − 2)`, the sum of the changed
    /// ones is divided by `n − 1`.
    ///
    /// The terms are added in the same order and with the same operations
    /// as the plain loop over the window, so the result is bit-identical
    /// to it (a threshold or a rounded `{:.2}` never depends on how the
    /// share was computed); only changed transitions cost anything: a
    /// window of up to 64 verdicts is one word, and its changes are the set
    /// bits of `w ^ (w >> 1)`.
    pub fn share(&self) -> f64 {
        let n = self.len;
        if n < 3 {
            return 0.0;
        }
        let span = (n - 2) as f64;
        let mut sum = 0.0;
        if n <= 64 {
            let w = self.word(0, n);
            // Bit j set: verdicts j and j + 1 differ (transition i = j + 1).
            let mut changed = (w ^ (w >> 1)) & (u64::MAX >> (65 - n));
            while changed != 0 {
                let j = changed.trailing_zeros();
                sum += 0.75 + 0.5 * f64::from(j) / span;
                changed &= changed - 1;
            }
        } else {
            let mut prev = self.get(0);
            for i in 1..n {
                let v = self.get(i);
                if v != prev {
                    sum += 0.75 + 0.5 * (i - 1) as f64 / span;
                }
                prev = v;
            }
        }
        sum / (n - 1) as f64
    }

    /// Verdicts `start .. start + count` (count ≤ 64) as the low bits of a
    /// word, the oldest in bit 0.
    fn word(&self, start: usize, count: usize) -> u64 {
        debug_assert!(count <= 64 && start + count <= self.len);
        let words = self.bits.words();
        let pos = (self.head + start) & (words.len() * 64 - 1);
        let (w, off) = (pos / 64, pos % 64);
        let mut bits = words[w] >> off;
        if off > 0 {
            bits |= words[(w + 1) % words.len()] << (64 - off);
        }
        if count < 64 {
            bits & ((1 << count) - 1)
        } else {
            bits
        }
    }

    /// The verdicts as `G`/`B`, oldest first.
    pub fn to_gb(&self) -> String {
        (0..self.len)
            .map(|i| if self.get(i) { 'B' } else { 'G' })
            .collect()
    }

    /// Parses a `G`/`B` string, oldest first.
    pub fn from_gb(text: &str) -> Result<Verdicts, char> {
        let mut v = Verdicts::default();
        for c in text.chars() {
            match c {
                'B' => v.push(true, usize::MAX),
                'G' => v.push(false, usize::MAX),
                other => return Err(other),
            }
        }
        Ok(v)
    }
}

impl PartialEq for Verdicts {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && (0..self.len).all(|i| self.get(i) == other.get(i))
    }
}

impl PartialEq<&str> for Verdicts {
    fn eq(&self, other: &&str) -> bool {
        self.len == other.len()
            && other
                .bytes()
                .enumerate()
                .all(|(i, b)| (b == b'B') == self.get(i) && (b == b'B' || b == b'G'))
    }
}

impl fmt::Debug for Verdicts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_gb())
    }
}

impl Serialize for Verdicts {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_gb())
    }
}

impl<'de> Deserialize<'de> for Verdicts {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Verdicts::from_gb(&text)
            .map_err(|c| D::Error::custom(format!("verdict history: {c:?} is neither G nor B")))
    }
}

/// The last [`GAPS_KEPT`] gaps between runs, in arrival order, with their
/// sorted order kept as ring positions (small: the journal copies it).
#[derive(Clone, Copy)]
pub struct Gaps {
    /// Ring in arrival order; `head` is the oldest.
    ring: [i64; GAPS_KEPT],
    /// Ring positions, by ascending gap.
    order: [u8; GAPS_KEPT],
    head: u8,
    len: u8,
}

impl Default for Gaps {
    fn default() -> Self {
        Gaps {
            ring: [0; GAPS_KEPT],
            order: [0; GAPS_KEPT],
            head: 0,
            len: 0,
        }
    }
}

impl Gaps {
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records a gap (negative ones count as 0), keeping the last
    /// [`GAPS_KEPT`].
    pub fn push(&mut self, gap_ms: i64) {
        let gap = gap_ms.max(0);
        let len = self.len();
        let head = usize::from(self.head);
        let (slot, mut k) = if len == GAPS_KEPT {
            // The oldest leaves; the new gap takes its ring position and
            // then moves to where it belongs in the order.
            self.head = ((head + 1) % GAPS_KEPT) as u8;
            let k = self.order.iter().position(|&o| usize::from(o) == head);
            (head, k.unwrap_or(len - 1))
        } else {
            let slot = (head + len) % GAPS_KEPT;
            self.order[len] = slot as u8;
            self.len += 1;
            (slot, len)
        };
        self.ring[slot] = gap;
        let n = self.len();
        while k > 0 && self.ring[usize::from(self.order[k - 1])] > gap {
            self.order.swap(k - 1, k);
            k -= 1;
        }
        while k + 1 < n && self.ring[usize::from(self.order[k + 1])] < gap {
            self.order.swap(k, k + 1);
            k += 1;
        }
    }

    /// The `i`-th smallest gap.
    pub fn nth_smallest(&self, i: usize) -> Option<i64> {
        (i < self.len()).then(|| self.ring[usize::from(self.order[i])])
    }

    /// The gaps sorted ascending.
    pub fn sorted(&self) -> impl Iterator<Item = i64> + '_ {
        self.order[..self.len()]
            .iter()
            .map(|&o| self.ring[usize::from(o)])
    }

    /// The gaps in arrival order, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.ring[(usize::from(self.head) + i) % GAPS_KEPT])
    }
}

impl PartialEq for Gaps {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl fmt::Debug for Gaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Gaps {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

impl<'de> Deserialize<'de> for Gaps {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut g = Gaps::default();
        for gap in Vec::<i64>::deserialize(d)? {
            g.push(gap);
        }
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The share as SPEC §3.3 states it, summed in floating point.
    fn share_by_sum(window: &str) -> f64 {
        let v = window.as_bytes();
        let n = v.len();
        if n < 3 {
            return 0.0;
        }
        let span = (n - 2) as f64;
        let mut sum = 0.0;
        for i in 1..n {
            if v[i] != v[i - 1] {
                sum += 0.75 + 0.5 * (i - 1) as f64 / span;
            }
        }
        sum / (n - 1) as f64
    }

    proptest! {
        #[test]
        fn the_ring_behaves_like_a_string_with_counts(
            pushes in prop::collection::vec(any::<bool>(), 0..700),
            limit in 1usize..400,
        ) {
            let mut v = Verdicts::default();
            let mut s = String::new();
            for bad in pushes {
                v.push(bad, limit);
                s.push(if bad { 'B' } else { 'G' });
                let excess = s.len().saturating_sub(limit);
                s.drain(..excess);
                prop_assert_eq!(v.to_gb(), s.clone());
                prop_assert_eq!(v.bad(), s.bytes().filter(|&b| b == b'B').count());
                prop_assert_eq!(v.trailing_bad(), s.len() - s.trim_end_matches('B').len());
                prop_assert_eq!(v.share().to_bits(), share_by_sum(&s).to_bits());
            }
            let json = serde_json::to_string(&v).expect("serializes");
            let back: Verdicts = serde_json::from_str(&json).expect("parses back");
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(back.share(), v.share());
        }

        #[test]
        fn gaps_keep_the_last_twenty_sorted(gaps in prop::collection::vec(-5i64..50, 0..80)) {
            let mut g = Gaps::default();
            let mut plain: Vec<i64> = Vec::new();
            for gap in gaps {
                g.push(gap);
                plain.push(gap.max(0));
                let excess = plain.len().saturating_sub(GAPS_KEPT);
                plain.drain(..excess);
                prop_assert_eq!(g.iter().collect::<Vec<_>>(), plain.clone());
                let mut sorted = plain.clone();
                sorted.sort_unstable();
                prop_assert_eq!(g.sorted().collect::<Vec<_>>(), sorted.clone());
                prop_assert_eq!(g.nth_smallest(g.len() / 2), sorted.get(sorted.len() / 2).copied());
            }
        }
    }

    #[test]
    fn truncating_shrinks_from_the_oldest_end() {
        let mut v = Verdicts::from_gb("BGGBB").expect("valid");
        v.truncate_front(3);
        assert_eq!(v, "GBB");
        assert_eq!((v.bad(), v.trailing_bad()), (2, 2));
        v.truncate_front(1);
        assert_eq!(v, "B");
        assert_eq!(v.share(), 0.0);
    }

    #[test]
    fn long_histories_spill_to_the_heap_and_keep_their_order() {
        let text: String = (0..1000)
            .map(|i| if i % 7 == 0 { 'B' } else { 'G' })
            .collect();
        let v = Verdicts::from_gb(&text).expect("valid");
        assert_eq!(v.to_gb(), text);
        assert!(Verdicts::from_gb("GBX").is_err());
    }
}
