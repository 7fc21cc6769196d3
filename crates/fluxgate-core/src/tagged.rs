//! Words of the form `tag | value`, and the generation bookkeeping that keeps their tags
//! honest for any number of generations. The one home of the tag helpers: the
//! windows tag their words with a generation, the core tags its failure streak and its
//! half-open slots with the epoch of the state they count for.
//!
//! A window word carries a few bits of the generation it was written in, so that moving
//! to a new generation empties the window without touching it. A truncated tag can only
//! say "same" or "different", never "older" or "newer": after 2^bits generations every
//! tag comes back. Two rules keep that from ever mattering:
//!
//! 1. *Sweeps.* [`Generations::advance`] rewrites every word whose tag is not the current
//!    one to zero once per [`SWEEP_EVERY`](Generations::sweep_due) generations, so no
//!    word keeps a stale tag long enough for that tag to come round again. Zero is empty
//!    under any tag.
//! 2. *Late writers ask, they do not compare.* A writer that finds a word with another
//!    tag treats it as stale (zero) when its own generation is still the newest the
//!    window has seen, and drops its write when a newer generation exists: then it is a
//!    late writer whose outcome belongs to a state that no longer exists (SM-17).
//!
//! The only residue is a writer stalled between two adjacent atomic operations while
//! more than three quarters of the tag space of generations pass; `docs/reliability.md`
//! states that bound.

use crate::sync::{AtomicU64, Ordering};

/// What [`Generations::advance`] asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sweep {
    /// Nothing to do.
    None,
    /// Zero every word whose tag is not the new generation's.
    Stale,
    /// Zero every word.
    All,
}

/// The wide generation a window has seen, and when it last swept its words.
#[derive(Debug, Default)]
pub(crate) struct Generations {
    current: AtomicU64,
    swept: AtomicU64,
}

impl Generations {
    /// The newest generation seen.
    #[inline]
    pub(crate) fn current(&self) -> u64 {
        self.current.load(Ordering::Acquire)
    }

    /// Whether a writer of `generation` is late: a newer generation exists.
    #[inline]
    pub(crate) fn is_late(&self, generation: u64) -> bool {
        self.current.load(Ordering::Acquire) > generation
    }

    /// Makes `generation` the newest one if it is newer: `None` when it is not, else
    /// which sweep the words need first (`Sweep::Stale` once a quarter of the tag space
    /// of `tag_bits` passed since the last sweep); the caller then sweeps and calls
    /// [`Generations::swept`].
    #[inline]
    pub(crate) fn advance(&self, generation: u64, tag_bits: u32) -> Option<Sweep> {
        let previous = self.current.load(Ordering::Acquire);
        if previous >= generation {
            return None;
        }
        self.current.fetch_max(generation, Ordering::AcqRel);
        let swept = self.swept.load(Ordering::Acquire);
        Some(if generation - previous >= 1u64 << (tag_bits - 1) {
            // A jump this long may land on a tag still present: nothing of `generation`
            // was written before it became the newest, so empty everything.
            Sweep::All
        } else if Self::sweep_due(swept, generation, tag_bits) {
            Sweep::Stale
        } else {
            Sweep::None
        })
    }

    /// Whether `now` is far enough from `last` that a sweep is due.
    #[inline]
    pub(crate) fn sweep_due(last: u64, now: u64, tag_bits: u32) -> bool {
        now.saturating_sub(last) >= 1u64 << (tag_bits - 2)
    }

    /// Records that the words were swept for `generation`.
    pub(crate) fn swept(&self, generation: u64) {
        self.swept.fetch_max(generation, Ordering::AcqRel);
    }
}

/// The low `bits` bits of a generation.
#[inline]
pub(crate) fn tag_of(generation: u64, bits: u32) -> u64 {
    generation & ((1u64 << bits) - 1)
}

/// The word that holds `value` (its low `bits` bits) under `tag`.
#[inline]
pub(crate) fn word(tag: u64, value: u64, bits: u32) -> u64 {
    (tag << bits) | (value & ((1u64 << bits) - 1))
}

/// The value of `word` if it carries `tag`, `None` when it carries another one.
#[inline]
pub(crate) fn value_of(word: u64, tag: u64, bits: u32) -> Option<u64> {
    (word >> bits == tag).then_some(word & ((1u64 << bits) - 1))
}

/// Applies `f` to the value of `word` for `tag`, with `bits` value bits. A word of
/// another tag is stale (its value reads as zero) unless `late()` says a newer
/// generation exists; then nothing is written and false is returned.
#[inline]
pub(crate) fn update(
    word: &AtomicU64,
    tag: u64,
    bits: u32,
    late: impl Fn() -> bool,
    mut f: impl FnMut(u64) -> u64,
) -> bool {
    let mut cur = word.load(Ordering::Acquire);
    loop {
        let value = match value_of(cur, tag, bits) {
            Some(value) => value,
            None if late() => return false,
            None => 0,
        };
        let next = self::word(tag, f(value), bits);
        if next == cur {
            return true;
        }
        match word.compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return true,
            Err(actual) => cur = actual,
        }
    }
}

/// The value of `word` for `tag`, zero when the word carries another tag.
#[inline]
pub(crate) fn read(word: &AtomicU64, tag: u64, bits: u32) -> u64 {
    value_of(word.load(Ordering::Acquire), tag, bits).unwrap_or(0)
}

/// Sets `word` to zero unless `keep` says its content is live. A concurrent writer that
/// makes the word live first wins: its compare-and-swap or ours fails, and the loop looks
/// again.
#[inline]
pub(crate) fn clear_unless(word: &AtomicU64, keep: impl Fn(u64) -> bool) {
    let mut cur = word.load(Ordering::Acquire);
    while cur != 0 && !keep(cur) {
        match word.compare_exchange_weak(cur, 0, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return,
            Err(actual) => cur = actual,
        }
    }
}

/// Adds a signed delta to a field of `bits` bits, wrapping inside the field.
#[inline]
pub(crate) fn add_field(value: u64, delta: i64, bits: u32) -> u64 {
    value.wrapping_add(delta as u64) & ((1u64 << bits) - 1)
}

/// Reads a field of `bits` bits as a signed number clamped at zero: while concurrent
/// writers are between their eviction and their insertion a field may briefly be
/// negative; it is exact again once they finish.
#[inline]
pub(crate) fn field_value(raw: u64, bits: u32) -> u64 {
    let shift = 64 - bits;
    let signed = ((raw << shift) as i64) >> shift;
    signed.max(0) as u64
}
