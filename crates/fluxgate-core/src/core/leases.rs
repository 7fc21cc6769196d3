//! Half-open slots with a deadline (`Builder::probe_timeout`): a probe that has not
//! recorded its outcome when its time is up gives its slot back, so a hung call cannot keep
//! a circuit from recovering.
//!
//! One word per slot: `0` is free, anything else is the *stamp* of the probe holding it —
//! the low bits of its half-open period's epoch and its deadline in whole milliseconds of
//! the breaker's monotonic clock (rounded up, so a probe never expires early):
//!
//! ```text
//!  63            48 47                                   0
//! ┌────────────────┬──────────────────────────────────────┐
//! │ epoch tag (16) │ deadline, ms (48 bits: 8 900 years)  │
//! └────────────────┴──────────────────────────────────────┘
//! ```
//!
//! Every change of a slot is one compare-and-swap from the stamp its changer saw, so of the
//! probe that records (or is dropped) and a caller that finds it expired, exactly one
//! frees the slot: the winner decides what the probe counted for, the loser does nothing.
//! A stamp is never reused for the same slot while its holder may still act on it:
//! - within one period, the next holder of a slot that was *reclaimed* starts no earlier
//!   than the reclaim, which came at or after the old deadline, so its deadline is later;
//!   a slot given back by its own holder is never touched by that holder again (the
//!   ticket forgets its slot once it gave it back);
//! - across periods the epoch tags differ, and every transition empties every slot (a
//!   slot of another period reads as free, R-7). Residual bound: a probe stalled while
//!   65 536 transitions pass within one millisecond could free a slot of a later period.

use std::time::Duration;

use crate::sync::{AtomicU64, Ordering};
use crate::tagged;

const TAG_BITS: u32 = 16;
const DEADLINE_BITS: u32 = 64 - TAG_BITS;
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

    /// The stamp of a probe of `epoch` admitted at `start` (never 0).
    #[inline]
    pub(crate) fn stamp(&self, epoch: u64, start: u64) -> u64 {
        let deadline = start.saturating_add(self.timeout).div_ceil(NANOS_PER_MS);
        tagged::word(tagged::tag_of(epoch, TAG_BITS), deadline, DEADLINE_BITS)
    }

    /// Whether `stamp` belongs to the period of `epoch` and its deadline has passed at `now`.
    #[inline]
    fn expired(stamp: u64, tag: u64, now: u64) -> bool {
        tagged::value_of(stamp, tag, DEADLINE_BITS).is_some_and(|d| now / NANOS_PER_MS >= d)
    }

    /// Frees every slot of the period of `epoch` whose probe is past its deadline at
    /// `now`, and calls `timed_out` with the start of each probe it freed (exactly once per
    /// probe: a probe that recorded first keeps its outcome).
    pub(crate) fn reclaim(&self, epoch: u64, now: u64, mut timed_out: impl FnMut(u64)) {
        let tag = tagged::tag_of(epoch, TAG_BITS);
        for slot in self.slots.iter() {
            let cur = slot.load(Ordering::Acquire);
            if cur != 0
                && Self::expired(cur, tag, now)
                && slot
                    .compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                let deadline = (cur & ((1 << DEADLINE_BITS) - 1)).saturating_mul(NANOS_PER_MS);
                timed_out(deadline.saturating_sub(self.timeout));
            }
        }
    }

    /// Takes a free slot for a probe of `epoch` admitted at `start`: its index, or `None`
    /// when every slot is held by a probe of that period. Slots of other periods are free.
    pub(crate) fn take(&self, epoch: u64, start: u64) -> Option<u32> {
        let tag = tagged::tag_of(epoch, TAG_BITS);
        let stamp = self.stamp(epoch, start);
        for (i, slot) in self.slots.iter().enumerate() {
            let mut cur = slot.load(Ordering::Acquire);
            loop {
                if cur != 0 && tagged::value_of(cur, tag, DEADLINE_BITS).is_some() {
                    break;
                }
                match slot.compare_exchange(cur, stamp, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return Some(i as u32),
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
        self.slots.get(index as usize).is_some_and(|slot| {
            slot.compare_exchange(stamp, 0, Ordering::AcqRel, Ordering::Acquire)
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
            .filter(|&w| {
                w != 0
                    && tagged::value_of(w, tag, DEADLINE_BITS).is_some()
                    && !Self::expired(w, tag, now)
            })
            .count() as u32
    }
}
