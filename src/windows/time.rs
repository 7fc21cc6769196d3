use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::tagged;
use super::Window;
use crate::{ConfigError, Metric, Record};

const VALUE_BITS: u32 = 40;
const NANOS_PER_SEC: u64 = 1_000_000_000;
const MAX_SECONDS: u64 = 86_400;

/// Keeps the calls of the last `d` seconds, in one-second buckets (W-2).
///
/// Each bucket is stamped with the second it holds, so buckets older than the window are
/// ignored when the window is *read*, not only when a new call overwrites them: a quiet
/// dependency's old failures age out even with no traffic.
///
/// `d` must be a whole number of seconds in `1..=86400`. Durations are summed in
/// microseconds.
///
/// ```
/// use std::time::Duration;
/// use fluxgate::windows::{TimeWindow, Window};
/// use fluxgate::Record;
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
    base: AtomicU32,
    words: Box<[AtomicU64]>,
    thresholds: Box<[(u64, Duration)]>,
}

impl TimeWindow {
    /// A window over the last `span` (whole seconds, at least one; checked by `build()`).
    ///
    /// ```
    /// let w = fluxgate::windows::TimeWindow::new(std::time::Duration::from_secs(60));
    /// assert_eq!(w.span(), std::time::Duration::from_secs(60));
    /// ```
    pub fn new(span: Duration) -> TimeWindow {
        let mut w = TimeWindow {
            span,
            seconds: 0,
            stride: 3,
            base: AtomicU32::new(0),
            words: Box::new([]),
            thresholds: Box::new([]),
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
    /// let w = fluxgate::windows::TimeWindow::new(std::time::Duration::from_secs(5));
    /// assert_eq!(w.span().as_secs(), 5);
    /// ```
    pub fn span(&self) -> Duration {
        self.span
    }

    fn allocate(&mut self) {
        self.stride = 3 + self.thresholds.len();
        let n = self.seconds as usize * self.stride;
        self.words = (0..n).map(|_| AtomicU64::new(0)).collect();
    }

    /// The tag of second `sec` in `generation`: 8 bits of generation, 16 of lap number.
    #[inline]
    fn tag(&self, generation: u32, sec: u64) -> u64 {
        let gen = u64::from(generation.wrapping_add(self.base.load(Ordering::Relaxed))) & 0xFF;
        (gen << 16) | ((sec / self.seconds) & 0xFFFF)
    }

    #[inline]
    fn bucket(&self, sec: u64) -> &[AtomicU64] {
        let i = (sec % self.seconds) as usize * self.stride;
        &self.words[i..i + self.stride]
    }
}

#[inline]
fn newer(a: u64, b: u64) -> bool {
    let gen = ((a >> 16).wrapping_sub(b >> 16)) as u8 as i8;
    gen > 0 || (gen == 0 && (a.wrapping_sub(b) as u16 as i16) > 0)
}

impl Window for TimeWindow {
    fn record(&self, generation: u32, now_nanos: u64, record: Record) {
        if self.words.is_empty() {
            return;
        }
        let sec = now_nanos / NANOS_PER_SEC;
        let tag = self.tag(generation, sec);
        let bucket = self.bucket(sec);
        let add = |word: &AtomicU64, n: u64| {
            tagged::update(word, tag, VALUE_BITS, newer, |v| v.saturating_add(n))
        };
        if !add(&bucket[0], 1) {
            return;
        }
        if record.failure {
            add(&bucket[1], 1);
        }
        let micros = (record.duration.as_nanos() + 500) / 1000;
        if micros > 0 {
            add(&bucket[2], u64::try_from(micros).unwrap_or(u64::MAX));
        }
        let nanos = u64::try_from(record.duration.as_nanos()).unwrap_or(u64::MAX);
        for (i, &(t, _)) in self.thresholds.iter().enumerate() {
            if nanos >= t {
                add(&bucket[3 + i], 1);
            }
        }
    }

    fn metric(&self, generation: u32, now_nanos: u64) -> Metric {
        if self.words.is_empty() {
            return Metric::default();
        }
        let now_sec = now_nanos / NANOS_PER_SEC;
        let (mut total, mut fail, mut micros) = (0u64, 0u64, 0u64);
        let mut slow = [0u64; crate::metric::MAX_SLOW_THRESHOLDS];
        for back in 0..self.seconds.min(now_sec + 1) {
            let sec = now_sec - back;
            let tag = self.tag(generation, sec);
            let b = self.bucket(sec);
            let t = tagged::read(&b[0], tag, VALUE_BITS);
            if t == 0 {
                continue;
            }
            total += t;
            fail += tagged::read(&b[1], tag, VALUE_BITS);
            micros += tagged::read(&b[2], tag, VALUE_BITS);
            for (i, s) in slow.iter_mut().enumerate().take(self.thresholds.len()) {
                *s += tagged::read(&b[3 + i], tag, VALUE_BITS);
            }
        }
        let mut m = Metric::new(total, fail.min(total), Duration::from_micros(micros), &[]);
        for (i, &(_, t)) in self.thresholds.iter().enumerate() {
            m.push_slow(t, slow[i].min(total));
        }
        m
    }

    fn reset(&self) {
        self.base.fetch_add(1, Ordering::AcqRel);
    }

    fn set_slow_thresholds(&mut self, thresholds: &[Duration]) {
        self.thresholds = thresholds
            .iter()
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
