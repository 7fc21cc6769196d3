use crate::sync::widths;
use crate::sync::{AtomicU64, Ordering, fence};
use std::time::Duration;

use super::Window;
use crate::metric::MAX_SLOW_THRESHOLDS;
use crate::tagged::{self, Generations, Sweep};
use crate::{ConfigError, Metric, Record};

const VALUE_BITS: u32 = 40;
const VALUE_MASK: u64 = (1 << VALUE_BITS) - 1;
/// A word's tag: the generation's low bits, the era's (see `stamp`), then the lap's
/// (`second / d`).
const GEN_BITS: u32 = widths::TIME_GEN;
const ERA_BITS: u32 = widths::TIME_ERA;
const ERA_MASK: u64 = (1 << ERA_BITS) - 1;
/// Buckets of older eras are swept every quarter of the era tag space.
const ERA_SWEEP_EVERY: u64 = 1 << (ERA_BITS - 2);
const LAP_BITS: u32 = widths::TIME_LAP;
const LAP_MASK: u64 = (1 << LAP_BITS) - 1;
/// A later lap than a writer's own that a bucket may legitimately hold: a writer whose
/// clock read is at most this many laps behind another's.
const NEWER_LAPS: u64 = 2;
const NANOS_PER_SEC: u64 = 1_000_000_000;
const MAX_SECONDS: u64 = 86_400;

/// Words per bucket besides the slow counts: calls, failures, microseconds.
const BASE_WORDS: usize = 3;
const TOTAL: usize = 0;
const FAILURES: usize = 1;
const MICROS: usize = 2;

// The cache key: state (2 bits) | version (14) | generation (16) | second (32).
const KEY_SECOND_BITS: u32 = 32;
const KEY_SECOND_MASK: u64 = (1 << KEY_SECOND_BITS) - 1;
const KEY_GEN_BITS: u32 = 16;
const KEY_BODY_MASK: u64 = (1 << (KEY_SECOND_BITS + KEY_GEN_BITS)) - 1;
const KEY_VERSION_SHIFT: u32 = KEY_SECOND_BITS + KEY_GEN_BITS;
const KEY_VERSION_MASK: u64 = (1 << 14) - 1;
const KEY_STATE_SHIFT: u32 = 62;
const INVALID: u64 = 0;
const BUILDING: u64 = 1;
const VALID: u64 = 2;

#[inline]
fn key(state: u64, version: u64, body: u64) -> u64 {
    (state << KEY_STATE_SHIFT) | ((version & KEY_VERSION_MASK) << KEY_VERSION_SHIFT) | body
}

#[inline]
fn key_state(k: u64) -> u64 {
    k >> KEY_STATE_SHIFT
}

#[inline]
fn key_version(k: u64) -> u64 {
    (k >> KEY_VERSION_SHIFT) & KEY_VERSION_MASK
}

#[inline]
fn key_second(k: u64) -> u64 {
    k & KEY_SECOND_MASK
}

/// Sums of some buckets: the words of a bucket, added up.
#[derive(Clone, Copy, Default)]
struct Sums([u64; BASE_WORDS + MAX_SLOW_THRESHOLDS]);

/// Keeps the calls of the last `d` seconds, in one-second buckets (W-2).
///
/// Each bucket is stamped with the second it holds, so buckets older than the window are
/// ignored when the window is *read*, not only when a new call overwrites them: a quiet
/// dependency's old failures age out even with no traffic.
///
/// Reading is O(1): the sums of the finished seconds of the window are kept in a cache
/// rebuilt once per second, and only the current second's bucket is read live. A call
/// that is recorded into a finished second after the cache was built (its thread was
/// preempted across the second boundary) invalidates the cache, so the sums stay exact.
/// (From 2^32 seconds, 136 years, after the clock's origin, reads sum every bucket.)
///
/// `d` must be a whole number of seconds in `1..=86400`. Durations are summed in whole
/// microseconds, each call's truncated (the nanoseconds below one are dropped), as in
/// [`CountWindow`](super::CountWindow); a call is slow for a threshold when its duration,
/// to the nanosecond, reaches it.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::windows::{TimeWindow, Window};
/// use fluxgate_core::Record;
///
/// let w = TimeWindow::new(Duration::from_secs(10));
/// let sec = 1_000_000_000;
/// w.record(0, 0, Record::failure(Duration::ZERO));
/// w.record(0, 5 * sec, Record::success(Duration::ZERO));
/// assert_eq!(w.metric(0, 9 * sec).total_count, 2);
/// assert_eq!(w.metric(0, 10 * sec).total_count, 1); // second 0 has left the window
/// assert_eq!(w.metric(0, 15 * sec).total_count, 0);
/// ```
#[derive(Debug)]
pub struct TimeWindow {
    span: Duration,
    seconds: u64,
    stride: usize,
    /// Added to the breaker's generation; `reset` moves it on.
    base: AtomicU64,
    gens: Generations,
    /// The highest lap any call was recorded in (high 40 bits) and the *era* (low 24):
    /// a count of the times a call came after a whole window of silence. One word, so
    /// that a caller either raises the lap or sees the new era, never neither.
    stamp: AtomicU64,
    /// The lap of the last sweep by time.
    lap_swept: AtomicU64,
    words: Box<[AtomicU64]>,
    thresholds: Box<[(u64, Duration)]>,
    /// Which sums `cache` holds (see the key layout above): those of the seconds
    /// `second - d + 1 ..= second - 1` of one generation, when the state is `VALID`.
    key: AtomicU64,
    cache: Box<[AtomicU64]>,
    /// ⌈2^64 / seconds⌉, see `divmod`.
    magic: u128,
}

impl TimeWindow {
    /// A window over the last `span` (whole seconds, at least one; checked by `build()`).
    ///
    /// ```
    /// let w = fluxgate_core::windows::TimeWindow::new(std::time::Duration::from_secs(60));
    /// assert_eq!(w.span(), std::time::Duration::from_secs(60));
    /// ```
    pub fn new(span: Duration) -> TimeWindow {
        let mut w = TimeWindow {
            span,
            seconds: 0,
            stride: BASE_WORDS,
            base: AtomicU64::new(0),
            gens: Generations::default(),
            stamp: AtomicU64::new(0),
            lap_swept: AtomicU64::new(0),
            words: Box::new([]),
            thresholds: Box::new([]),
            key: AtomicU64::new(0),
            cache: Box::new([]),
            magic: 0,
        };
        if w.validate().is_ok() {
            w.seconds = span.as_secs();
            w.allocate();
        }
        w
    }

    /// The window's length.
    ///
    /// ```
    /// let w = fluxgate_core::windows::TimeWindow::new(std::time::Duration::from_secs(5));
    /// assert_eq!(w.span().as_secs(), 5);
    /// ```
    pub fn span(&self) -> Duration {
        self.span
    }

    fn allocate(&mut self) {
        self.stride = BASE_WORDS + self.thresholds.len();
        let n = self.seconds as usize * self.stride;
        self.words = (0..n).map(|_| AtomicU64::new(0)).collect();
        self.cache = (0..self.stride).map(|_| AtomicU64::new(0)).collect();
        self.key.store(0, Ordering::Relaxed);
        self.magic = (1u128 << 64).div_ceil(u128::from(self.seconds));
    }

    /// The tag prefix of generation `g` in era `era`.
    #[inline]
    fn prefix(g: u64, era: u64) -> u64 {
        (tagged::tag_of(g, GEN_BITS) << ERA_BITS) | (era & ERA_MASK)
    }

    /// Second `sec`'s bucket and its tag under `prefix`.
    #[inline]
    fn locate(&self, prefix: u64, sec: u64) -> (u64, &[AtomicU64]) {
        self.locate_at(prefix, self.divmod(sec))
    }

    /// The bucket and tag of the second whose `(lap, index)` is given.
    #[inline]
    fn locate_at(&self, prefix: u64, (lap, index): (u64, u64)) -> (u64, &[AtomicU64]) {
        let i = index as usize * self.stride;
        (
            (prefix << LAP_BITS) | (lap & LAP_MASK),
            &self.words[i..i + self.stride],
        )
    }

    /// Moves to generation `g` if it is new: drops the cache of the old one and sweeps
    /// stale generation tags when due (R-1).
    #[inline]
    fn enter(&self, g: u64) {
        if let Some(sweep) = self.gens.advance(g, GEN_BITS) {
            self.enter_slow(g, sweep);
        }
    }

    #[cold]
    fn enter_slow(&self, g: u64, sweep: Sweep) {
        // The cache holds sums of the old generation: drop it, whatever second it is of.
        self.invalidate(self.key.load(Ordering::SeqCst), 0, true);
        if sweep != Sweep::None {
            let live = tagged::tag_of(g, GEN_BITS);
            let all = sweep == Sweep::All;
            for w in self.words.iter() {
                tagged::clear_unless(w, |v| {
                    !all && v >> (VALUE_BITS + LAP_BITS + ERA_BITS) == live
                });
            }
            self.gens.swept(g);
        }
    }

    /// The era a call recorded in lap `lap` belongs to, after raising the stamp's lap to
    /// it; `None` when a call two laps later was already recorded (this second has left
    /// every window there is: a caller whose clock read is that old).
    ///
    /// A call that comes a whole window or more after the last recorded one (`lap` two
    /// or more past it) finds every bucket stale, and starts a new era rather than trust
    /// lap tags that may have come round again; a caller that raced it either raised the
    /// lap first (then there is no new era) or sees the new era in the word it loses
    /// the race to. Every quarter of the era tag space the buckets of older eras are
    /// swept, and every quarter of the lap tag space those of other laps (`sweep_laps`),
    /// so no tag within an era comes round either.
    #[inline]
    fn era(&self, lap: u64) -> Option<u64> {
        let cur = self.stamp.load(Ordering::Acquire);
        let last = cur >> 24;
        if lap <= last {
            return (lap.saturating_add(2) > last).then_some(cur & 0xFF_FFFF);
        }
        self.raise(cur, lap)
    }

    #[cold]
    #[cfg_attr(shuttle, allow(clippy::bad_bit_mask))] // one era per sweep there
    fn raise(&self, mut cur: u64, lap: u64) -> Option<u64> {
        loop {
            let last = cur >> 24;
            if lap <= last {
                return (lap.saturating_add(2) > last).then_some(cur & 0xFF_FFFF);
            }
            let era = if lap >= last.saturating_add(2) {
                (cur + 1) & 0xFF_FFFF
            } else {
                cur & 0xFF_FFFF
            };
            match self.stamp.compare_exchange_weak(
                cur,
                (lap << 24) | era,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if era != cur & 0xFF_FFFF && era & (ERA_SWEEP_EVERY - 1) == 0 {
                        self.sweep_eras(era);
                    }
                    // The stamp's lap only ever rises here, so this keeps the last lap
                    // sweep within a quarter of the lap tag space of every recorded call.
                    if Generations::sweep_due(self.lap_swept.load(Ordering::Acquire), lap, LAP_BITS)
                    {
                        self.sweep_laps(lap, era);
                    }
                    return Some(era);
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Zeroes every word of another era than `era`.
    #[cold]
    fn sweep_eras(&self, era: u64) {
        for w in self.words.iter() {
            tagged::clear_unless(w, |v| {
                (v >> (VALUE_BITS + LAP_BITS)) & ERA_MASK == era & ERA_MASK
            });
        }
    }

    /// Zeroes every word that is not of the current generation and `era` and within two
    /// laps of `lap` (every quarter of the lap tag space, see `raise`).
    #[cold]
    fn sweep_laps(&self, lap: u64, era: u64) {
        let live = Self::prefix(self.gens.current(), era);
        for w in self.words.iter() {
            tagged::clear_unless(w, |v| {
                let tag = v >> VALUE_BITS;
                let near = (tag.wrapping_sub(lap).wrapping_add(NEWER_LAPS)) & LAP_MASK;
                tag >> LAP_BITS == live && near <= 2 * NEWER_LAPS
            });
        }
        self.lap_swept.fetch_max(lap, Ordering::AcqRel);
    }

    /// The cache key's body for the window ending at `sec` in a generation.
    #[inline]
    fn key_body(g: u64, sec: u64) -> u64 {
        ((g & ((1 << KEY_GEN_BITS) - 1)) << KEY_SECOND_BITS) | (sec & KEY_SECOND_MASK)
    }

    /// `(sec / d, sec % d)` by a multiplication (a 64-bit division costs more than the
    /// rest of a call): `magic` is ⌈2^64 / d⌉, so the estimate is the quotient or one more.
    #[inline]
    fn divmod(&self, sec: u64) -> (u64, u64) {
        let mut q = ((u128::from(sec) * self.magic) >> 64) as u64;
        if q.wrapping_mul(self.seconds) > sec {
            q -= 1;
        }
        (q, sec - q * self.seconds)
    }

    /// Adds second `sec`'s bucket to `sums`. Failures and slow counts are read before the
    /// call count: every call is counted before it is counted as failed or slow, so a
    /// reader delayed between two loads can under-state a ratio, never over-state it.
    #[inline]
    fn add_bucket(&self, sums: &mut Sums, prefix: u64, sec: u64, order: Ordering) {
        let (tag, b) = self.locate(prefix, sec);
        let read = |w: &AtomicU64| {
            let v = w.load(order);
            if v >> VALUE_BITS == tag {
                v & VALUE_MASK
            } else {
                0
            }
        };
        for i in (FAILURES..self.stride).rev() {
            sums.0[i] += read(&b[i]);
        }
        sums.0[TOTAL] += read(&b[TOTAL]);
    }

    /// Sums the seconds of the window ending at `sec` that exist (the clock starts at
    /// zero): the finished ones, and the current one if `current`.
    fn scan(&self, prefix: u64, sec: u64, current: bool, order: Ordering) -> Sums {
        let mut sums = Sums::default();
        for s in (sec + 1).saturating_sub(self.seconds)..sec {
            self.add_bucket(&mut sums, prefix, s, order);
        }
        if current {
            self.add_bucket(&mut sums, prefix, sec, order);
        }
        sums
    }

    /// The cache does not hold the finished seconds of the window ending at `sec`:
    /// rebuild it, unless another thread is doing so (then sum every bucket instead).
    ///
    /// Only one thread builds at a time (the one that moved the key to `BUILDING`); it
    /// alone moves the key out of `BUILDING`, so two builders never write the cache at
    /// once.
    #[cold]
    fn rebuild(&self, g: u64, prefix: u64, sec: u64) -> Sums {
        let body = Self::key_body(g, sec);
        let k = self.key.load(Ordering::SeqCst);
        let building = key(BUILDING, key_version(k) + 1, body);
        if key_state(k) == BUILDING
            || self
                .key
                .compare_exchange(k, building, Ordering::SeqCst, Ordering::Relaxed)
                .is_err()
        {
            return self.scan(prefix, sec, true, Ordering::Acquire);
        }
        // Readers that see one of the stores below see the key change first (seqlock).
        fence(Ordering::Release);
        // SeqCst loads pair with the writers' SeqCst update-then-check (see `record`):
        // a late write into a finished second is either seen here or invalidates the key.
        let past = self.scan(prefix, sec, false, Ordering::SeqCst);
        for (slot, v) in self.cache.iter().zip(past.0) {
            slot.store(v, Ordering::Relaxed);
        }
        // Publish, unless a late write invalidated the build meanwhile (it bumped the
        // version): then leave the cache invalid for the next reader to rebuild.
        let mut cur = building;
        loop {
            let next = if cur == building {
                key(VALID, key_version(building), body)
            } else {
                key(INVALID, key_version(cur), 0)
            };
            match self
                .key
                .compare_exchange_weak(cur, next, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        let mut sums = past;
        self.add_bucket(&mut sums, prefix, sec, Ordering::Acquire);
        sums
    }

    /// A call was recorded into second `sec` after the cache of a later second was built
    /// or started (or, with `any`, the generation changed): drop that cache (a build in
    /// progress is told by a version bump).
    #[cold]
    fn invalidate(&self, mut k: u64, sec: u64, any: bool) {
        loop {
            let next = match key_state(k) {
                _ if !any && key_second(k) <= sec => return,
                INVALID => return,
                BUILDING => key(BUILDING, key_version(k) + 1, k & KEY_BODY_MASK),
                _ => key(INVALID, key_version(k), 0),
            };
            match self
                .key
                .compare_exchange_weak(k, next, Ordering::SeqCst, Ordering::SeqCst)
            {
                Ok(_) => return,
                Err(actual) => k = actual,
            }
        }
    }

    fn to_metric(&self, sums: &Sums) -> Metric {
        let total = sums.0[TOTAL];
        let mut m = Metric::totals(
            total,
            sums.0[FAILURES].min(total),
            match sums.0[MICROS] {
                0 => Duration::ZERO,
                micros => Duration::from_micros(micros),
            },
        );
        for (i, &(_, t)) in self.thresholds.iter().enumerate() {
            m.push_slow(t, sums.0[BASE_WORDS + i].min(total));
        }
        m
    }
}

/// Adds `n` to a bucket word of `tag`. A word of the same generation and one of the next
/// laps belongs to a writer whose clock is ahead: our second has left its window, so the
/// write is dropped (false). A word of another generation is stale unless `late()` says
/// a newer generation exists (then false). Any other word is stale and restarts at zero.
/// SeqCst: see `record`.
#[inline]
fn add(word: &AtomicU64, tag: u64, n: u64, late: impl Fn() -> bool) -> bool {
    let mut cur = word.load(Ordering::Relaxed);
    loop {
        let ctag = cur >> VALUE_BITS;
        let value = if ctag == tag {
            cur & VALUE_MASK
        } else if ctag >> LAP_BITS == tag >> LAP_BITS {
            let ahead = ctag.wrapping_sub(tag) & LAP_MASK;
            if (1..=NEWER_LAPS).contains(&ahead) && cur & VALUE_MASK != 0 {
                return false;
            }
            0
        } else if late() {
            return false;
        } else {
            0
        };
        let next = (tag << VALUE_BITS) | (value.saturating_add(n) & VALUE_MASK);
        match word.compare_exchange_weak(cur, next, Ordering::SeqCst, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(actual) => cur = actual,
        }
    }
}

impl Window for TimeWindow {
    fn shape(&self) -> Option<String> {
        Some(super::describe(
            format_args!("time({:?})", self.span),
            &self.thresholds,
        ))
    }

    fn record(&self, generation: u64, now_nanos: u64, record: Record) {
        if self.words.is_empty() {
            return;
        }
        let sec = now_nanos / NANOS_PER_SEC;
        let at = self.divmod(sec);
        let Some(era) = self.era(at.0) else {
            return;
        };
        let g = generation.wrapping_add(self.base.load(Ordering::Acquire));
        let late = || self.gens.is_late(g);
        if late() {
            return;
        }
        let (tag, bucket) = self.locate_at(Self::prefix(g, era), at);
        // Calls first, then failures and slow counts (see `add_bucket`).
        if !add(&bucket[TOTAL], tag, 1, late) {
            return;
        }
        if record.failure {
            add(&bucket[FAILURES], tag, 1, late);
        }
        // Whole microseconds, truncated as `CountWindow` does: a call is never counted
        // as slower than it was. 64-bit arithmetic: a 128-bit division is a library call.
        let nanos = u64::try_from(record.duration.as_nanos()).unwrap_or(u64::MAX);
        let micros = nanos / 1000;
        if micros > 0 {
            add(&bucket[MICROS], tag, micros, late);
        }
        for (i, &(t, _)) in self.thresholds.iter().enumerate() {
            if nanos >= t {
                add(&bucket[BASE_WORDS + i], tag, 1, late);
            }
        }
        // Dekker-style pairing with `rebuild`: our SeqCst updates come before this SeqCst
        // load; the builder's SeqCst key change comes before its SeqCst scan. Either the
        // scan sees our updates, or we see the cache of a later second and drop it.
        let k = self.key.load(Ordering::SeqCst);
        if key_second(k) > sec && key_state(k) != INVALID {
            self.invalidate(k, sec, false);
        }
    }

    fn metric(&self, generation: u64, now_nanos: u64) -> Metric {
        if self.words.is_empty() {
            return Metric::default();
        }
        let sec = now_nanos / NANOS_PER_SEC;
        let (lap, _) = self.divmod(sec);
        let stamp = self.stamp.load(Ordering::Acquire);
        if lap >= (stamp >> 24).saturating_add(2) {
            // No call in the last whole window.
            return self.to_metric(&Sums::default());
        }
        let era = stamp & 0xFF_FFFF;
        let g = generation.wrapping_add(self.base.load(Ordering::Acquire));
        let prefix = Self::prefix(g, era);
        if sec > KEY_SECOND_MASK {
            // 136 years after the clock's origin (a clock set so far ahead): the key
            // cannot name the second, so every bucket is summed.
            return self.to_metric(&self.scan(prefix, sec, true, Ordering::Acquire));
        }
        let body = Self::key_body(g, sec);
        let k = self.key.load(Ordering::Acquire);
        if key_state(k) == VALID && k & KEY_BODY_MASK == body {
            let mut sums = Sums::default();
            for (v, slot) in sums.0.iter_mut().zip(self.cache.iter()) {
                *v = slot.load(Ordering::Relaxed);
            }
            fence(Ordering::Acquire);
            if self.key.load(Ordering::Relaxed) == k {
                self.add_bucket(&mut sums, prefix, sec, Ordering::Acquire);
                return self.to_metric(&sums);
            }
        }
        let sums = self.rebuild(g, prefix, sec);
        self.to_metric(&sums)
    }

    fn reset(&self) {
        // A new generation of the window's own: every word reads as empty, and writers
        // of the old one write again in the new one (see `record`).
        self.base.fetch_add(1, Ordering::AcqRel);
        self.enter(self.gens.current().wrapping_add(1));
    }

    fn advance(&self, generation: u64) {
        self.enter(generation.wrapping_add(self.base.load(Ordering::Acquire)));
    }

    fn set_slow_thresholds(&mut self, thresholds: &[Duration]) {
        self.thresholds = thresholds
            .iter()
            .take(MAX_SLOW_THRESHOLDS)
            .map(|t| (u64::try_from(t.as_nanos()).unwrap_or(u64::MAX), *t))
            .collect();
        if self.seconds > 0 {
            self.allocate();
        }
    }

    fn needs_time(&self) -> bool {
        true
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let secs = self.span.as_secs();
        if self.span.subsec_nanos() != 0 || !(1..=MAX_SECONDS).contains(&secs) {
            return Err(ConfigError::new(
                "TimeWindow",
                "span",
                format_args!("{:?}", self.span),
                "a whole number of seconds in 1..=86400",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::thread;

    const SEC: u64 = NANOS_PER_SEC;

    /// The window as a list of (generation, second, record), summed naively.
    #[derive(Default)]
    struct Model(Vec<(u64, u64, Record)>);

    impl Model {
        fn metric(&self, span: u64, thresholds: &[Duration], generation: u64, now: u64) -> Metric {
            let sec = now / SEC;
            let live =
                |&&(g, s, _): &&(u64, u64, Record)| g == generation && s <= sec && s + span > sec;
            let calls: Vec<_> = self.0.iter().filter(live).map(|e| e.2).collect();
            let total = calls.len() as u64;
            let fail = calls.iter().filter(|r| r.failure).count() as u64;
            let micros: u128 = calls.iter().map(|r| r.duration.as_nanos() / 1000).sum();
            let slow: Vec<_> = thresholds
                .iter()
                .map(|&t| (t, calls.iter().filter(|r| r.duration >= t).count() as u64))
                .collect();
            Metric::new(total, fail, Duration::from_micros(micros as u64), &slow)
        }
    }

    #[test]
    fn w2_cached_sums_match_a_naive_window() {
        let thresholds = [Duration::from_millis(5), Duration::from_millis(50)];
        for seed in 0..40 {
            let mut rng = fastrand::Rng::with_seed(seed);
            let span = rng.u64(1..=8);
            let mut w = TimeWindow::new(Duration::from_secs(span));
            w.set_slow_thresholds(&thresholds);
            let mut model = Model::default();
            let (mut now, mut generation) = (0u64, 0u64);
            for _ in 0..400 {
                match rng.u8(0..20) {
                    // time moves on, sometimes by more than the window
                    0..=3 => now += rng.u64(0..3 * SEC),
                    4 => now += rng.u64(0..(span + 2) * SEC),
                    5 => {
                        generation += 1;
                        w.advance(generation);
                    }
                    op => {
                        let r = Record {
                            failure: rng.bool(),
                            duration: Duration::from_nanos(rng.u64(0..100_000_000)),
                        };
                        // sometimes a caller whose clock read is up to a second behind
                        // (preempted across a second boundary)
                        let at = if op == 6 {
                            now.saturating_sub(rng.u64(0..SEC))
                        } else {
                            now
                        };
                        w.record(generation, at, r);
                        model.0.push((generation, at / SEC, r));
                    }
                }
                assert_eq!(
                    w.metric(generation, now),
                    model.metric(span, &thresholds, generation, now),
                    "seed {seed}, now {now}, generation {generation}"
                );
            }
        }
    }

    #[test]
    fn divmod_by_multiplication_is_exact() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut spans: Vec<u64> = (1..=70).chain([86_399, 86_400]).collect();
        spans.extend((0..50).map(|_| rng.u64(1..=86_400)));
        let max = u64::MAX / NANOS_PER_SEC;
        for seconds in spans {
            let w = TimeWindow::new(Duration::from_secs(seconds));
            let mut secs = vec![0, 1, seconds - 1, seconds, seconds + 1, max];
            secs.extend((0..200).map(|_| rng.u64(0..=max)));
            for sec in secs {
                assert_eq!(
                    w.divmod(sec),
                    (sec / seconds, sec % seconds),
                    "{sec} / {seconds}"
                );
            }
        }
    }

    #[test]
    fn w2_a_clock_2_pow_32_seconds_ahead_does_not_read_an_old_cache() {
        // The cache key keeps 32 bits of the second: the old code took the cache built
        // for second 6 as that of second 6 + 2^32 and counted a call 136 years old.
        let jump = (1u64 << 32) * SEC;
        let w = TimeWindow::new(Duration::from_secs(10));
        w.record(0, 5 * SEC, Record::failure(Duration::ZERO));
        assert_eq!(w.metric(0, 6 * SEC).total_count, 1);
        w.record(0, 6 * SEC + jump, Record::success(Duration::ZERO));
        let m = w.metric(0, 6 * SEC + jump);
        assert_eq!((m.total_count, m.failure_count), (1, 0));
        w.record(0, 8 * SEC + jump, Record::failure(Duration::ZERO));
        let m = w.metric(0, 9 * SEC + jump);
        assert_eq!((m.total_count, m.failure_count), (2, 1));
        assert_eq!(w.metric(0, 20 * SEC + jump).total_count, 0);
    }

    #[test]
    fn w2_a_late_write_into_a_finished_second_invalidates_the_cache() {
        let w = TimeWindow::new(Duration::from_secs(10));
        w.record(0, 4 * SEC, Record::success(Duration::ZERO));
        assert_eq!(w.metric(0, 5 * SEC).total_count, 1); // cache of second 5 built
        w.record(0, 4 * SEC + 1, Record::failure(Duration::ZERO)); // preempted writer
        let m = w.metric(0, 5 * SEC);
        assert_eq!((m.total_count, m.failure_count), (2, 1));
        assert_eq!(w.metric(0, 13 * SEC).total_count, 2);
        assert_eq!(w.metric(0, 14 * SEC).total_count, 0);
    }

    #[test]
    fn sm17_writers_racing_a_second_boundary_lose_no_record() {
        // Writers record into second 0 while readers keep rebuilding the cache of
        // second 1: every record of second 0 must be in the sums of second 1.
        const THREADS: u64 = 4;
        const CALLS: u64 = 20_000;
        for round in 0..20u64 {
            let w = Arc::new(TimeWindow::new(Duration::from_secs(60)));
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let w = w.clone();
                    thread::spawn(move || {
                        for i in 0..CALLS {
                            if t == 0 && i % 16 == 0 {
                                // a reader of the next second (re)builds its cache
                                let _ = w.metric(round, SEC + i);
                            }
                            w.record(round, SEC - 1, Record::failure(Duration::ZERO));
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().unwrap();
            }
            let m = w.metric(round, SEC + 5);
            assert_eq!(m.total_count, THREADS * CALLS, "round {round}");
            assert_eq!(m.failure_count, THREADS * CALLS, "round {round}");
        }
    }
}
