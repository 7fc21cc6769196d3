//! Sliding windows: which recent calls the trippers look at.
//!
//! A failure *rate* over a sliding window tells a dependency that is failing from one that
//! had a few unlucky calls; consecutive-failure counters cannot. [`CountWindow`] keeps the
//! last *n* calls, [`TimeWindow`] the calls of the last *d* seconds.
//!
//! Both record with atomics only (no lock, no allocation per call). Every word a window
//! writes carries a *generation* tag: when the breaker changes state it moves to a new
//! generation, and words tagged with another one read as empty. Clearing the window is
//! therefore O(1), and an outcome that arrives late, tagged with an old generation, can
//! never leak into the new state's window (SM-17). Tags are truncated, so they are only
//! ever compared for equality, and stale words are swept before their tag can come round
//! again: any number of transitions and any idle time leave a window exact (R-1).

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
/// use fluxgate_core::windows::{CountWindow, Window};
/// use fluxgate_core::Record;
///
/// let w = CountWindow::new(2);
/// w.advance(7);
/// for _ in 0..3 { w.record(7, 0, Record::failure(Duration::ZERO)); }
/// assert_eq!(w.metric(7, 0).total_count, 2);          // FIFO: only the last two
/// w.advance(8);
/// assert_eq!(w.metric(8, 0).total_count, 0);          // a new generation starts empty
/// ```
#[doc(alias = "IWindow")]
pub trait Window: Send + Sync + 'static {
    /// Records one outcome in `generation` at time `now_nanos`.
    fn record(&self, generation: u64, now_nanos: u64, record: Record);

    /// The aggregate of `generation` at time `now_nanos`.
    fn metric(&self, generation: u64, now_nanos: u64) -> Metric;

    /// Empties the window for every generation (W-3).
    fn reset(&self);

    /// Tells the window that `generation` is now the breaker's state epoch, before any
    /// call of it is recorded or read. The breaker calls it on every transition; whoever
    /// drives a window by hand must do the same whenever the generation changes. The
    /// windows of this crate use it to tell late writers from current ones and to retire
    /// stale words before their truncated tags could come round again (R-1). The default
    /// does nothing.
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_core::windows::{CountWindow, Window};
    /// use fluxgate_core::Record;
    ///
    /// let w = CountWindow::new(10);
    /// w.record(0, 0, Record::failure(Duration::ZERO));
    /// for generation in 1..=200_000 {
    ///     w.advance(generation);
    /// }
    /// assert_eq!(w.metric(200_000, 0).total_count, 0);
    /// w.record(200_000, 0, Record::failure(Duration::ZERO));
    /// assert_eq!(w.metric(200_000, 0).failure_count, 1);
    /// ```
    fn advance(&self, generation: u64) {
        let _ = generation;
    }

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

    /// What the window keeps, as a short description (`"count(100)"`,
    /// `"time(60s) slow>=[1s]"`), or `None` if unknown. A live reconfiguration
    /// (`registry::Registry::reconfigure`) keeps a breaker's window, contents included,
    /// when the old and the new window have the same shape, and starts an empty one
    /// otherwise; a window without a shape is never kept. The default is `None`.
    ///
    /// ```
    /// use fluxgate_core::windows::{CountWindow, Window};
    /// assert_eq!(CountWindow::new(100).shape().as_deref(), Some("count(100)"));
    /// ```
    fn shape(&self) -> Option<String> {
        None
    }
}

/// The shape description of the built-in windows: `kind(size)`, then the slow-call
/// thresholds when there are any.
pub(crate) fn describe(kind: std::fmt::Arguments<'_>, thresholds: &[(u64, Duration)]) -> String {
    let mut s = kind.to_string();
    if !thresholds.is_empty() {
        let t: Vec<String> = thresholds.iter().map(|(_, d)| format!("{d:?}")).collect();
        s.push_str(&format!(" slow>=[{}]", t.join(",")));
    }
    s
}

impl<W: Window + ?Sized> Window for Box<W> {
    fn record(&self, generation: u64, now_nanos: u64, record: Record) {
        (**self).record(generation, now_nanos, record)
    }
    fn metric(&self, generation: u64, now_nanos: u64) -> Metric {
        (**self).metric(generation, now_nanos)
    }
    fn reset(&self) {
        (**self).reset()
    }
    fn advance(&self, generation: u64) {
        (**self).advance(generation)
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
    fn shape(&self) -> Option<String> {
        (**self).shape()
    }
}
