//! Sliding windows: which recent calls the trippers look at.
//!
//! A failure *rate* over a sliding window tells a dependency that is failing from one that
//! had a few unlucky calls; consecutive-failure counters cannot. [`CountWindow`] keeps the
//! last *n* calls, [`TimeWindow`] the calls of the last *d* seconds.
//!
//! Both record with atomics only (no lock, no allocation per call). Every word a window
//! writes carries a *generation* tag: when the breaker changes state it moves to a new
//! generation, and words tagged with an older one read as empty. Clearing the window is
//! therefore free, and an outcome that arrives late, tagged with an old generation, can
//! never leak into the new state's window (SM-17).

use std::time::Duration;

use crate::{ConfigError, Metric, Record};

mod count;
mod time;

pub use count::CountWindow;
pub use time::TimeWindow;

/// A window of recent call outcomes.
///
/// `generation` is the breaker's state epoch: records of another generation are not
/// part of this one's aggregate, so moving to a new generation empties the window.
/// `now_nanos` is the breaker clock's monotonic time.
///
/// ```
/// use std::time::Duration;
/// use fluxgate::windows::{CountWindow, Window};
/// use fluxgate::Record;
///
/// let w = CountWindow::new(2);
/// for _ in 0..3 { w.record(7, 0, Record::failure(Duration::ZERO)); }
/// assert_eq!(w.metric(7, 0).total_count, 2);          // FIFO: only the last two
/// assert_eq!(w.metric(8, 0).total_count, 0);          // a new generation starts empty
/// ```
pub trait Window: Send + Sync + 'static {
    /// Records one outcome in `generation` at time `now_nanos`.
    fn record(&self, generation: u32, now_nanos: u64, record: Record);

    /// The aggregate of `generation` at time `now_nanos`.
    fn metric(&self, generation: u32, now_nanos: u64) -> Metric;

    /// Empties the window for every generation (W-3).
    fn reset(&self);

    /// The latency thresholds to count slow calls for (set once by `build()`, M-3).
    fn set_slow_thresholds(&mut self, thresholds: &[Duration]);

    /// Whether `record` and `metric` need the current time (a time-based window).
    fn needs_time(&self) -> bool {
        false
    }

    /// Checks the window's parameters; called by `build()`.
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

impl<W: Window + ?Sized> Window for Box<W> {
    fn record(&self, generation: u32, now_nanos: u64, record: Record) {
        (**self).record(generation, now_nanos, record)
    }
    fn metric(&self, generation: u32, now_nanos: u64) -> Metric {
        (**self).metric(generation, now_nanos)
    }
    fn reset(&self) {
        (**self).reset()
    }
    fn set_slow_thresholds(&mut self, thresholds: &[Duration]) {
        (**self).set_slow_thresholds(thresholds)
    }
    fn needs_time(&self) -> bool {
        (**self).needs_time()
    }
    fn validate(&self) -> Result<(), ConfigError> {
        (**self).validate()
    }
}

/// Words of the form `tag | value`, updated by compare-and-swap, where a word whose tag is
/// older than the writer's reads as zero and a word whose tag is newer belongs to a later
/// generation that a late writer must not touch.
pub(crate) mod tagged {
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Applies `f` to the value of `word` for `tag`, with `bits` value bits. Returns false
    /// when the word already belongs to a newer tag (the write is dropped).
    #[inline]
    pub(crate) fn update(
        word: &AtomicU64,
        tag: u64,
        bits: u32,
        newer: impl Fn(u64, u64) -> bool,
        mut f: impl FnMut(u64) -> u64,
    ) -> bool {
        let mask = (1u64 << bits) - 1;
        let mut cur = word.load(Ordering::Acquire);
        loop {
            let ctag = cur >> bits;
            let value = if ctag == tag {
                cur & mask
            } else if newer(ctag, tag) {
                return false;
            } else {
                0
            };
            let next = (tag << bits) | (f(value) & mask);
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
        let cur = word.load(Ordering::Acquire);
        if cur >> bits == tag {
            cur & ((1u64 << bits) - 1)
        } else {
            0
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
}
