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

    /// Records like [`record`](Self::record) and says whether the window changed: `false`
    /// when the record left it exactly as it was (a success appended to a full window of
    /// equal successes). A breaker whose tripper is
    /// [`stateless`](crate::trippers::Tripper::stateless) then does not ask the tripper
    /// again: a healthy dependency's steady state costs a few loads. The default records
    /// and answers `true`, which is always correct.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_core::windows::{CountWindow, Window};
    /// use fluxgate_core::Record;
    /// let w = CountWindow::new(2);
    /// let ok = Record::success(Duration::ZERO);
    /// assert!(w.record_changed(0, 0, ok));
    /// assert!(w.record_changed(0, 0, ok));
    /// assert!(!w.record_changed(0, 0, ok)); // all successes: one more evicts one
    /// assert!(w.record_changed(0, 0, Record::failure(Duration::ZERO)));
    /// ```
    fn record_changed(&self, generation: u64, now_nanos: u64, record: Record) -> bool {
        self.record(generation, now_nanos, record);
        true
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
    #[inline]
    fn record(&self, generation: u64, now_nanos: u64, record: Record) {
        (**self).record(generation, now_nanos, record)
    }
    #[inline]
    fn metric(&self, generation: u64, now_nanos: u64) -> Metric {
        (**self).metric(generation, now_nanos)
    }
    #[inline]
    fn record_changed(&self, generation: u64, now_nanos: u64, record: Record) -> bool {
        (**self).record_changed(generation, now_nanos, record)
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

/// The breaker's window: the built-in ones called directly (so the hot path inlines
/// them), anything else through a box.
pub(crate) enum AnyWindow {
    Count(CountWindow),
    Time(TimeWindow),
    Other(Box<dyn Window>),
}

impl std::fmt::Debug for AnyWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AnyWindow::Count(w) => w.fmt(f),
            AnyWindow::Time(w) => w.fmt(f),
            AnyWindow::Other(_) => f.write_str("Window"),
        }
    }
}

impl AnyWindow {
    /// Sorts a window given to the builder: a built-in one by value, others boxed.
    pub(crate) fn new<W: Window>(window: W) -> AnyWindow {
        let mut slot = Some(window);
        let any: &mut dyn std::any::Any = &mut slot;
        if let Some(w) = any
            .downcast_mut::<Option<CountWindow>>()
            .and_then(Option::take)
        {
            return AnyWindow::Count(w);
        }
        if let Some(w) = any
            .downcast_mut::<Option<TimeWindow>>()
            .and_then(Option::take)
        {
            return AnyWindow::Time(w);
        }
        if let Some(w) = any
            .downcast_mut::<Option<Box<dyn Window>>>()
            .and_then(Option::take)
        {
            return AnyWindow::Other(w);
        }
        match slot {
            Some(w) => AnyWindow::Other(Box::new(w)),
            // Unreachable: `slot` is only emptied by a successful downcast above.
            None => AnyWindow::Count(CountWindow::new(100)),
        }
    }
}

macro_rules! each_window {
    ($self:ident, $w:ident => $e:expr) => {
        match $self {
            AnyWindow::Count($w) => $e,
            AnyWindow::Time($w) => $e,
            AnyWindow::Other($w) => $e,
        }
    };
}

impl Window for AnyWindow {
    #[inline]
    fn record(&self, generation: u64, now_nanos: u64, record: Record) {
        each_window!(self, w => w.record(generation, now_nanos, record))
    }
    #[inline]
    fn record_changed(&self, generation: u64, now_nanos: u64, record: Record) -> bool {
        each_window!(self, w => w.record_changed(generation, now_nanos, record))
    }
    fn metric(&self, generation: u64, now_nanos: u64) -> Metric {
        each_window!(self, w => w.metric(generation, now_nanos))
    }
    fn reset(&self) {
        each_window!(self, w => w.reset())
    }
    fn advance(&self, generation: u64) {
        each_window!(self, w => w.advance(generation))
    }
    fn set_slow_thresholds(&mut self, thresholds: &[Duration]) {
        each_window!(self, w => w.set_slow_thresholds(thresholds))
    }
    fn needs_time(&self) -> bool {
        each_window!(self, w => w.needs_time())
    }
    fn validate(&self) -> Result<(), ConfigError> {
        each_window!(self, w => w.validate())
    }
    fn shape(&self) -> Option<String> {
        each_window!(self, w => w.shape())
    }
}
