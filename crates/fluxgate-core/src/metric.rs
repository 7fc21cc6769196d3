//! What a window knows about recent calls.
//!
//! Trippers decide on aggregates, not on single calls: how many calls, how many failed,
//! how long they took, how many were slow for each latency threshold. [`Metric`] is that
//! aggregate; it is `Copy` and allocation-free, because the breaker builds one on every
//! call.

use std::fmt;
use std::time::Duration;

/// The most distinct `SlowRate` thresholds one breaker can track.
pub const MAX_SLOW_THRESHOLDS: usize = 8;

/// The outcome of one call as a window records it.
///
/// ```
/// use std::time::Duration;
/// let r = fluxgate_core::Record::failure(Duration::from_millis(30));
/// assert!(r.failure);
/// assert_eq!(r.duration, Duration::from_millis(30));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Whether the call counts as a failure.
    pub failure: bool,
    /// How long it ran (zero when the breaker does not time calls).
    pub duration: Duration,
}

impl Record {
    /// A successful call.
    ///
    /// ```
    /// assert!(!fluxgate_core::Record::success(std::time::Duration::ZERO).failure);
    /// ```
    pub const fn success(duration: Duration) -> Record {
        Record {
            failure: false,
            duration,
        }
    }

    /// A failed call; it keeps its real duration (M-2).
    ///
    /// ```
    /// assert!(fluxgate_core::Record::failure(std::time::Duration::ZERO).failure);
    /// ```
    pub const fn failure(duration: Duration) -> Record {
        Record {
            failure: true,
            duration,
        }
    }
}

/// Aggregate of the calls in a window (M-1).
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::windows::{CountWindow, Window};
/// use fluxgate_core::Record;
///
/// let mut w = CountWindow::new(10);
/// w.set_slow_thresholds(&[Duration::from_millis(100)]);
/// w.record(0, 0, Record::success(Duration::from_millis(50)));
/// w.record(0, 0, Record::failure(Duration::from_millis(150)));
/// let m = w.metric(0, 0);
/// assert_eq!(m.total_count, 2);
/// assert_eq!(m.failure_rate(), Some(0.5));
/// assert_eq!(m.avg_duration(), Some(Duration::from_millis(100)));
/// assert_eq!(m.slow_rate(Duration::from_millis(100)), Some(0.5));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Metric {
    /// Calls recorded.
    pub total_count: u64,
    /// Calls recorded as failures.
    pub failure_count: u64,
    /// Sum of the recorded calls' durations.
    pub total_duration: Duration,
    // The slow counts, one column per field: without the padding of `(Duration, u64)`
    // pairs the arrays are contiguous, so building a metric (on every call) zeroes them
    // in a few wide stores.
    slow_secs: [u64; MAX_SLOW_THRESHOLDS],
    slow_nanos: [u32; MAX_SLOW_THRESHOLDS],
    slow: [u64; MAX_SLOW_THRESHOLDS],
    slow_len: u8,
}

impl fmt::Debug for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metric")
            .field("total_count", &self.total_count)
            .field("failure_count", &self.failure_count)
            .field("total_duration", &self.total_duration)
            .field("slow_counts", &SlowCounts(self))
            .finish()
    }
}

struct SlowCounts<'a>(&'a Metric);

impl fmt::Debug for SlowCounts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.slow_counts()).finish()
    }
}

impl Metric {
    /// Builds a metric from its parts (for tests of custom trippers).
    ///
    /// ```
    /// use std::time::Duration;
    /// let m = fluxgate_core::Metric::new(10, 3, Duration::from_secs(1), &[(Duration::from_millis(200), 4)]);
    /// assert_eq!(m.slow_count(Duration::from_millis(200)), 4);
    /// ```
    pub fn new(
        total_count: u64,
        failure_count: u64,
        total_duration: Duration,
        slow_counts: &[(Duration, u64)],
    ) -> Metric {
        let mut m = Metric::totals(total_count, failure_count, total_duration);
        for &(t, c) in slow_counts.iter().take(MAX_SLOW_THRESHOLDS) {
            m.push_slow(t, c);
        }
        m
    }

    /// A metric without slow counts (windows add theirs with `push_slow`).
    #[inline]
    pub(crate) const fn totals(
        total_count: u64,
        failure_count: u64,
        total_duration: Duration,
    ) -> Metric {
        Metric {
            total_count,
            failure_count,
            total_duration,
            slow_secs: [0; MAX_SLOW_THRESHOLDS],
            slow_nanos: [0; MAX_SLOW_THRESHOLDS],
            slow: [0; MAX_SLOW_THRESHOLDS],
            slow_len: 0,
        }
    }

    #[inline]
    pub(crate) fn push_slow(&mut self, threshold: Duration, count: u64) {
        let i = self.slow_len as usize;
        if i < MAX_SLOW_THRESHOLDS {
            self.slow_secs[i] = threshold.as_secs();
            self.slow_nanos[i] = threshold.subsec_nanos();
            self.slow[i] = count;
            self.slow_len += 1;
        }
    }

    /// Average duration, `None` when nothing was recorded.
    ///
    /// ```
    /// assert_eq!(fluxgate_core::Metric::default().avg_duration(), None);
    /// ```
    pub fn avg_duration(&self) -> Option<Duration> {
        if self.total_count == 0 {
            return None;
        }
        // Exact, also past u64 nanoseconds (584 years): the average is at most the total.
        let avg = self.total_duration.as_nanos() / u128::from(self.total_count);
        let secs = u64::try_from(avg / 1_000_000_000).unwrap_or(u64::MAX);
        Some(Duration::new(secs, (avg % 1_000_000_000) as u32))
    }

    /// Failures / total, `None` when nothing was recorded.
    ///
    /// ```
    /// let m = fluxgate_core::Metric::new(4, 1, std::time::Duration::ZERO, &[]);
    /// assert_eq!(m.failure_rate(), Some(0.25));
    /// ```
    pub fn failure_rate(&self) -> Option<f64> {
        (self.total_count > 0).then(|| self.failure_count as f64 / self.total_count as f64)
    }

    /// Calls at least as slow as `threshold` / total; `None` when nothing was recorded,
    /// `Some(0.0)` for a threshold with no slow calls.
    ///
    /// ```
    /// use std::time::Duration;
    /// let m = fluxgate_core::Metric::new(4, 0, Duration::ZERO, &[(Duration::from_secs(1), 1)]);
    /// assert_eq!(m.slow_rate(Duration::from_secs(1)), Some(0.25));
    /// assert_eq!(m.slow_rate(Duration::from_secs(9)), Some(0.0));
    /// ```
    pub fn slow_rate(&self, threshold: Duration) -> Option<f64> {
        (self.total_count > 0).then(|| self.slow_count(threshold) as f64 / self.total_count as f64)
    }

    /// Calls at least as slow as `threshold` (0 for a threshold the window does not track).
    ///
    /// ```
    /// assert_eq!(fluxgate_core::Metric::default().slow_count(std::time::Duration::from_secs(1)), 0);
    /// ```
    pub fn slow_count(&self, threshold: Duration) -> u64 {
        let (secs, nanos) = (threshold.as_secs(), threshold.subsec_nanos());
        (0..usize::from(self.slow_len))
            .find(|&i| self.slow_secs[i] == secs && self.slow_nanos[i] == nanos)
            .map_or(0, |i| self.slow[i])
    }

    /// The tracked thresholds and their slow counts.
    ///
    /// ```
    /// use std::time::Duration;
    /// let m = fluxgate_core::Metric::new(1, 0, Duration::ZERO, &[(Duration::from_secs(1), 1)]);
    /// assert_eq!(m.slow_counts().collect::<Vec<_>>(), [(Duration::from_secs(1), 1)]);
    /// ```
    pub fn slow_counts(&self) -> impl Iterator<Item = (Duration, u64)> + '_ {
        (0..usize::from(self.slow_len)).map(|i| {
            (
                Duration::new(self.slow_secs[i], self.slow_nanos[i]),
                self.slow[i],
            )
        })
    }
}
