use crate::sync::widths;
use crate::sync::{AtomicU64, Ordering};
use std::time::Duration;

use super::Window;
use crate::tagged::{self, Generations, Sweep};
use crate::{ConfigError, Metric, Record};

const TAG_BITS: u32 = widths::COUNT_TAG;
const VALUE_BITS: u32 = 64 - TAG_BITS;
const FIELD_BITS: u32 = 24;
const FIELD_MASK: u64 = (1 << FIELD_BITS) - 1;
const SLOT_DUR_BITS: u32 = 46;
const SLOT_DUR_MAX: u64 = (1 << SLOT_DUR_BITS) - 1;
const SLOT_VALID: u64 = 1 << (SLOT_DUR_BITS + 1);
const SLOT_FAIL: u64 = 1 << SLOT_DUR_BITS;

/// The largest size a [`CountWindow`] accepts.
pub(crate) const MAX_COUNT_WINDOW: usize = 1 << 22;

/// Keeps the last `n` calls (W-1).
///
/// FIFO: the `n+1`-th record evicts the oldest. Recording is lock-free: a ring of packed
/// records plus running totals, each update a single compare-and-swap, and a success that
/// replaces an identical success writes nothing at all.
///
/// Limits: `n` is in `1..=4_194_304`. Durations are kept in whole microseconds,
/// truncated, one record's up to 2.2 years and the window's sum up to 8.9 years.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::windows::{CountWindow, Window};
/// use fluxgate_core::Record;
///
/// let w = CountWindow::new(3);
/// w.record(0, 0, Record::failure(Duration::ZERO));
/// for _ in 0..3 { w.record(0, 0, Record::success(Duration::ZERO)); }
/// let m = w.metric(0, 0);
/// assert_eq!((m.total_count, m.failure_count), (3, 0)); // the failure was evicted
/// ```
#[derive(Debug)]
pub struct CountWindow {
    size: usize,
    head: Padded,
    /// Added to the breaker's generation; `reset` moves it on.
    base: AtomicU64,
    gens: Generations,
    counts: AtomicU64,
    duration: AtomicU64,
    slots: Box<[AtomicU64]>,
    thresholds: Box<[(u64, Duration)]>,
    slow: Box<[AtomicU64]>,
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct Padded(AtomicU64);

impl CountWindow {
    /// A window over the last `size` calls; `size` must be in `1..=4_194_304`, checked by
    /// `build()` (an invalid size never panics: the window is then inert until validated).
    ///
    /// ```
    /// let w = fluxgate_core::windows::CountWindow::new(100);
    /// assert_eq!(w.size(), 100);
    /// ```
    pub fn new(size: usize) -> CountWindow {
        let slots = if (1..=MAX_COUNT_WINDOW).contains(&size) {
            (0..size).map(|_| AtomicU64::new(0)).collect()
        } else {
            Vec::new().into_boxed_slice()
        };
        CountWindow {
            size,
            head: Padded::default(),
            base: AtomicU64::new(0),
            gens: Generations::default(),
            counts: AtomicU64::new(0),
            duration: AtomicU64::new(0),
            slots,
            thresholds: Box::new([]),
            slow: Box::new([]),
        }
    }

    /// The number of calls the window keeps.
    ///
    /// ```
    /// assert_eq!(fluxgate_core::windows::CountWindow::new(5).size(), 5);
    /// ```
    pub fn size(&self) -> usize {
        self.size
    }

    /// The window's own generation for the breaker's `generation`.
    #[inline]
    fn effective(&self, generation: u64) -> u64 {
        generation.wrapping_add(self.base.load(Ordering::Acquire))
    }

    /// Moves to generation `g` if it is new, sweeping stale words when due (R-1).
    #[inline]
    fn enter(&self, g: u64) {
        match self.gens.advance(g, TAG_BITS) {
            None | Some(Sweep::None) => {}
            Some(sweep) => self.sweep(g, sweep == Sweep::All),
        }
    }

    /// Zeroes every word whose tag is not `g`'s: no stale tag lives long enough to come
    /// round again (see `tagged`).
    #[cold]
    fn sweep(&self, g: u64, all: bool) {
        let tag = tagged::tag_of(g, TAG_BITS);
        let live = |w: u64| !all && w >> VALUE_BITS == tag;
        for slot in self.slots.iter() {
            tagged::clear_unless(slot, |w| w & SLOT_VALID != 0 && live(w));
        }
        for word in [&self.counts, &self.duration]
            .into_iter()
            .chain(self.slow.iter())
        {
            tagged::clear_unless(word, live);
        }
        self.gens.swept(g);
    }

    /// Appends `record` to the ring, evicting the oldest record (the general case of
    /// `record`, out of line so that the common case stays small).
    #[inline(never)]
    fn append(&self, g: u64, tag: u64, record: Record) -> bool {
        if self.slots.is_empty() || self.gens.is_late(g) {
            return true;
        }
        let dur = micros(record.duration);
        let new_slot =
            (tag << VALUE_BITS) | SLOT_VALID | if record.failure { SLOT_FAIL } else { 0 } | dur;
        // Positions are handed out once each; the slot is then replaced by CAS so that
        // exactly one writer accounts for each evicted record, even if the ring wraps
        // around while we are here.
        let pos = self.head.0.fetch_add(1, Ordering::Relaxed);
        let slot = &self.slots[(pos % self.size as u64) as usize];
        let mut old = slot.load(Ordering::Acquire);
        loop {
            if old & SLOT_VALID != 0 && old >> VALUE_BITS != tag && self.gens.is_late(g) {
                // A later generation exists: we are a late writer (SM-17).
                return true;
            }
            if old == new_slot {
                // The record evicts its twin: the window's aggregate is what it was.
                return false;
            }
            match slot.compare_exchange_weak(old, new_slot, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => break,
                Err(actual) => old = actual,
            }
        }
        let evicted = slot_valid_for(old, tag);
        let old_fail = evicted && old & SLOT_FAIL != 0;
        let old_dur = if evicted { old & SLOT_DUR_MAX } else { 0 };

        let late = || self.gens.is_late(g);
        let d_total: i64 = if evicted { 0 } else { 1 };
        let d_fail: i64 = i64::from(record.failure) - i64::from(old_fail);
        if d_total != 0 || d_fail != 0 {
            tagged::update(&self.counts, tag, VALUE_BITS, late, |v| {
                let total = tagged::add_field(v & FIELD_MASK, d_total, FIELD_BITS);
                let fail = tagged::add_field(v >> FIELD_BITS, d_fail, FIELD_BITS);
                (fail << FIELD_BITS) | total
            });
        }
        if dur != old_dur {
            let d = dur as i64 - old_dur as i64;
            tagged::update(&self.duration, tag, VALUE_BITS, late, |v| {
                tagged::add_field(v, d, VALUE_BITS)
            });
        }
        for (i, &(t, _)) in self.thresholds.iter().enumerate() {
            let d = i64::from(dur >= t) - i64::from(evicted && old_dur >= t);
            if d != 0 {
                tagged::update(&self.slow[i], tag, VALUE_BITS, late, |v| {
                    tagged::add_field(v, d, VALUE_BITS)
                });
            }
        }
        true
    }

    #[inline(never)]
    fn with_slow_counts(&self, mut m: Metric, tag: u64) -> Metric {
        for (i, &(_, t)) in self.thresholds.iter().enumerate() {
            let c = tagged::field_value(tagged::read(&self.slow[i], tag, VALUE_BITS), VALUE_BITS);
            m.push_slow(t, c.min(m.total_count));
        }
        m
    }

    /// Whether a success without duration, recorded for the breaker's `generation`,
    /// would leave the window as it is (what `record_changed` would answer `false` to,
    /// without writing).
    #[inline(always)]
    pub(crate) fn success_is_quiet(&self, generation: u64) -> bool {
        let tag = tagged::tag_of(self.effective(generation), TAG_BITS);
        self.uniform(tag, false)
    }

    /// Whether the window of `tag` is full of records equal to `(failure, duration 0)`.
    ///
    /// Read from the running totals: `size` records, all or none of them failures, summed
    /// duration zero. A writer between its slot swap and its totals update may be
    /// ordered after this check: it is then the next record after ours, and since
    /// every record in the window equals ours, which slot it evicted cannot be told.
    #[inline]
    fn uniform(&self, tag: u64, failure: bool) -> bool {
        let counts = tagged::read(&self.counts, tag, VALUE_BITS);
        let size = self.size as u64;
        counts & FIELD_MASK == size
            && counts >> FIELD_BITS == if failure { size } else { 0 }
            && tagged::read(&self.duration, tag, VALUE_BITS) == 0
    }
}

#[inline]
fn slot_valid_for(slot: u64, tag: u64) -> bool {
    slot & SLOT_VALID != 0 && slot >> VALUE_BITS == tag
}

/// A duration in whole microseconds (the nanoseconds below one are dropped, as in
/// `TimeWindow`), at most `SLOT_DUR_MAX` (2.2 years). A call is slow for threshold `t`
/// when these microseconds reach `t` rounded up to a whole microsecond, on insertion and
/// eviction alike. That is exact (duration ≥ `t`, M-2) for a threshold that is a whole
/// number of microseconds, which is every threshold a built-in rule accepts (`SlowRate`
/// and `AvgLatency` refuse others at `build()`); a custom rule's threshold of a fraction
/// of a microsecond counts a call slow only from the next whole microsecond on.
#[inline]
fn micros(d: Duration) -> u64 {
    // No 128-bit division: whole seconds beyond the slot's range saturate anyway.
    d.as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(d.subsec_micros()))
        .min(SLOT_DUR_MAX)
}

impl Window for CountWindow {
    fn shape(&self) -> Option<String> {
        Some(super::describe(
            format_args!("count({})", self.size),
            &self.thresholds,
        ))
    }

    #[inline]
    fn record(&self, generation: u64, now_nanos: u64, record: Record) {
        self.record_changed(generation, now_nanos, record);
    }

    #[inline]
    fn record_changed(&self, generation: u64, _now_nanos: u64, record: Record) -> bool {
        let g = self.effective(generation);
        let tag = tagged::tag_of(g, TAG_BITS);
        if record.duration < Duration::from_micros(1) && self.uniform(tag, record.failure) {
            // Every slot already holds this very record: appending it and evicting the
            // oldest leaves the window as it is, so nothing is written. A healthy
            // dependency's steady state (all successes) thus writes no shared memory,
            // and threads calling one breaker do not fight over cache lines.
            return false;
        }
        self.append(g, tag, record)
    }

    fn metric(&self, generation: u64, _now_nanos: u64) -> Metric {
        let g = self.effective(generation);
        let tag = tagged::tag_of(g, TAG_BITS);
        let counts = tagged::read(&self.counts, tag, VALUE_BITS);
        let size = self.size as u64;
        let total = tagged::field_value(counts & FIELD_MASK, FIELD_BITS).min(size);
        let fail = tagged::field_value(counts >> FIELD_BITS, FIELD_BITS).min(total);
        let dur = tagged::field_value(tagged::read(&self.duration, tag, VALUE_BITS), VALUE_BITS);
        let dur = if dur == 0 {
            Duration::ZERO
        } else {
            Duration::from_micros(dur)
        };
        if self.thresholds.is_empty() {
            Metric::totals(total, fail, dur)
        } else {
            self.with_slow_counts(Metric::totals(total, fail, dur), tag)
        }
    }

    fn reset(&self) {
        // A new generation of the window's own: every word reads as empty, and writers
        // of the old one are late.
        self.base.fetch_add(1, Ordering::AcqRel);
        self.enter(self.gens.current().wrapping_add(1));
    }

    fn advance(&self, generation: u64) {
        self.enter(self.effective(generation));
    }

    fn set_slow_thresholds(&mut self, thresholds: &[Duration]) {
        self.thresholds = thresholds
            .iter()
            .map(|t| {
                (
                    u64::try_from(t.as_nanos().div_ceil(1000)).unwrap_or(u64::MAX),
                    *t,
                )
            })
            .collect();
        self.slow = thresholds.iter().map(|_| AtomicU64::new(0)).collect();
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_COUNT_WINDOW).contains(&self.size) {
            return Err(ConfigError::new(
                "CountWindow",
                "size",
                self.size,
                "in 1..=4194304",
            ));
        }
        Ok(())
    }
}
