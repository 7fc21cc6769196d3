//! Half-open slots with a deadline (`Builder::probe_timeout`): a probe that has not
//! recorded its outcome when its time is up gives its slot back, so a hung call cannot keep
//! a circuit from recovering.
//!
//! One word per slot: `0` is free; otherwise the low bits of a half-open period's epoch, two
//! flags and a deadline in whole milliseconds of the breaker's monotonic clock. Without
//! flags the word is the *stamp* of the probe holding the slot (its deadline rounded up,
//! so a probe never expires early); with `FREE` it is a slot freed in that period, and the
//! deadline is that of its last holder (`RECLAIMED` when a caller took it back after that
//! deadline, rather than its holder giving it back):
//!
//! ```text
//!  63            48  47     46      45                                 0
//! ┌────────────────┬──────┬─────────┬─────────────────────────────────────┐
//! │ epoch tag (16) │ FREE │ RECLAIM │ deadline, ms (46 bits: 2 200 years)  │
//! └────────────────┴──────┴─────────┴─────────────────────────────────────┘
//! ```
//!
//! Every change of a slot is one compare-and-swap from the word its changer saw, so of the
//! probe that records (or is dropped) and a caller that finds it expired, exactly one
//! frees the slot: the winner decides what the probe counted for, the loser does nothing.
//! A stamp is never reused for the same slot while its holder may still act on it:
//! - a slot given back by its own holder is never touched by that holder again (the
//!   ticket forgets its slot once it gave it back);
//! - within one period, the deadlines of a slot's stamps never go down, and go up past a
//!   reclaim: the next holder of a slot freed with deadline `d` needs a deadline of at
//!   least `d`, and above `d` if the slot was reclaimed. A caller whose clock reading is
//!   too old for that (it read the clock, then stalled while the slot was reclaimed) reads
//!   the clock again; the reclaim came at or after `d`, so the new reading is later. (Were
//!   the deadline taken from the old reading, the reclaimed probe, still running, would find
//!   its own stamp in the slot and its late outcome would count.)
//! - across periods the epoch tags differ, and every transition empties every slot (a
//!   slot of another period reads as free, R-7). Residual bound: a probe stalled while
//!   65 536 transitions pass within one millisecond could free a slot of a later period.

use std::time::Duration;

use crate::sync::{AtomicU64, Ordering};
use crate::tagged;

const TAG_BITS: u32 = 16;
const VALUE_BITS: u32 = 64 - TAG_BITS;
/// A slot freed in the period of its tag.
const FREE: u64 = 1 << (VALUE_BITS - 1);
/// With `FREE`: freed by a caller that found its probe past the deadline.
const RECLAIMED: u64 = 1 << (VALUE_BITS - 2);
const DEADLINE_MASK: u64 = RECLAIMED - 1;
const NANOS_PER_MS: u64 = 1_000_000;

/// The slots of one breaker with a probe timeout.
pub(crate) struct Leases {
    slots: Box<[AtomicU64]>,
    timeout: u64,
}

impl Leases {
    /// `n` slots whose probes expire after `timeout` (> 0).
    pub(crate) fn new(n: u32, timeout: Duration) -> Leases {
        Leases {
            slots: (0..n).map(|_| AtomicU64::new(0)).collect(),
            timeout: u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX).max(1),
        }
    }

    /// The probe timeout, in nanoseconds.
    pub(crate) fn timeout(&self) -> u64 {
        self.timeout
    }

    /// The deadline, in milliseconds, of a probe admitted at `start` (never 0: the
    /// timeout is at least a nanosecond; below `DEADLINE_MASK`: `u64::MAX` nanoseconds
    /// are 1.8e13 ms).
    #[inline]
    fn deadline(&self, start: u64) -> u64 {
        start.saturating_add(self.timeout).div_ceil(NANOS_PER_MS)
    }

    /// The stamp of a probe of `epoch` admitted at `start` (never 0).
    #[inline]
    pub(crate) fn stamp(&self, epoch: u64, start: u64) -> u64 {
        tagged::word(
            tagged::tag_of(epoch, TAG_BITS),
            self.deadline(start),
            VALUE_BITS,
        )
    }

    /// The deadline of the probe holding a slot whose word is `word`, if that is a probe
    /// of the period of `tag`.
    #[inline]
    fn holder(word: u64, tag: u64) -> Option<u64> {
        if word == 0 {
            return None;
        }
        tagged::value_of(word, tag, VALUE_BITS).filter(|v| v & FREE == 0)
    }

    /// Whether `word` is a probe of the period of `tag` whose deadline has passed at `now`.
    #[inline]
    fn expired(word: u64, tag: u64, now: u64) -> bool {
        Self::holder(word, tag).is_some_and(|d| now / NANOS_PER_MS >= d)
    }

    /// The word of a slot of the period of `tag` freed from its holder with `deadline`.
    #[inline]
    fn freed(tag: u64, deadline: u64, flags: u64) -> u64 {
        tagged::word(tag, FREE | flags | deadline, VALUE_BITS)
    }

    /// Frees every slot of the period of `epoch` whose probe is past its deadline at
    /// `now`, and calls `timed_out` once for each probe it freed (exactly once per probe: a
    /// probe that recorded first keeps its outcome).
    pub(crate) fn reclaim(&self, epoch: u64, now: u64, mut timed_out: impl FnMut()) {
        let tag = tagged::tag_of(epoch, TAG_BITS);
        for slot in self.slots.iter() {
            let cur = slot.load(Ordering::Acquire);
            if let Some(deadline) = Self::holder(cur, tag).filter(|_| Self::expired(cur, tag, now))
            {
                let freed = Self::freed(tag, deadline, RECLAIMED);
                if slot
                    .compare_exchange(cur, freed, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    timed_out();
                }
            }
        }
    }

    /// Takes a free slot for a probe of `epoch` admitted at `start`: its index and the
    /// start its stamp is made from, or `None` when every slot is held by a probe of that
    /// period. Slots of other periods are free. When a slot's last holder makes `start`
    /// too old (see the module documentation), the probe starts at a new reading of
    /// `now`; a slot for which even that is too old (a clock that went back) is passed
    /// over.
    pub(crate) fn take(&self, epoch: u64, start: u64, now: impl Fn() -> u64) -> Option<(u32, u64)> {
        let tag = tagged::tag_of(epoch, TAG_BITS);
        let mut start = start;
        for (i, slot) in self.slots.iter().enumerate() {
            let mut cur = slot.load(Ordering::Acquire);
            loop {
                if Self::holder(cur, tag).is_some() {
                    break;
                }
                // The least deadline the slot's next stamp may have in this period.
                let floor = match tagged::value_of(cur, tag, VALUE_BITS) {
                    Some(v) if cur != 0 && v & RECLAIMED != 0 => (v & DEADLINE_MASK) + 1,
                    Some(v) if cur != 0 => v & DEADLINE_MASK,
                    _ => 0,
                };
                if self.deadline(start) < floor {
                    start = start.max(now());
                    if self.deadline(start) < floor {
                        break;
                    }
                }
                let stamp = self.stamp(epoch, start);
                match slot.compare_exchange(cur, stamp, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return Some((i as u32, start)),
                    Err(actual) => cur = actual,
                }
            }
        }
        None
    }

    /// Gives slot `index` back if it still holds `stamp`; false when it was reclaimed (or
    /// its period is over): then the probe's outcome no longer counts.
    #[inline]
    pub(crate) fn release(&self, index: u32, stamp: u64) -> bool {
        let tag = stamp >> VALUE_BITS;
        let freed = Self::freed(tag, stamp & DEADLINE_MASK, 0);
        self.slots.get(index as usize).is_some_and(|slot| {
            slot.compare_exchange(stamp, freed, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        })
    }

    /// Empties every slot (under the transition lock, before the new epoch is published).
    pub(crate) fn clear(&self) {
        for slot in self.slots.iter() {
            slot.store(0, Ordering::Release);
        }
    }

    /// Probes of the period of `epoch` holding a slot and not yet past their deadline.
    pub(crate) fn held(&self, epoch: u64, now: u64) -> u32 {
        let tag = tagged::tag_of(epoch, TAG_BITS);
        self.slots
            .iter()
            .map(|s| s.load(Ordering::Acquire))
            .filter(|&w| Self::holder(w, tag).is_some() && !Self::expired(w, tag, now))
            .count() as u32
    }
}
