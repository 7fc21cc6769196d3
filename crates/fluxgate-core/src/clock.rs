//! Time, injected.
//!
//! Cooldowns, ramps and latency rules depend on time, and tests of time-dependent rules
//! must not sleep. Every breaker owns a [`Clock`]: [`SystemClock`] in production,
//! [`ManualClock`] in tests, moved by hand with [`ManualClock::advance`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(feature = "quanta"))]
use std::time::Instant;
use std::time::{Duration, SystemTime};

/// A source of time for a breaker.
///
/// `now_nanos` is monotonic (durations, cooldowns, ramps); `wall` is only used for
/// timestamps shown to people (`Signal::timestamp`, `Info::changed_at`).
///
/// ```
/// use fluxgate_core::clock::{Clock, ManualClock};
/// let c = ManualClock::new();
/// c.advance(std::time::Duration::from_millis(5));
/// assert_eq!(c.now_nanos(), 5_000_000);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Monotonic nanoseconds since an origin fixed by the clock.
    fn now_nanos(&self) -> u64;
    /// Wall-clock time now.
    fn wall(&self) -> SystemTime;
}

/// The real clock: a monotonic clock for durations, `SystemTime` for timestamps.
///
/// The monotonic clock is `std::time::Instant`; with the feature `quanta` it is the
/// CPU's time-stamp counter, calibrated once per process by the `quanta` crate (which
/// falls back to the OS clock where the counter is not invariant). A breaker that times
/// its calls reads the clock twice per call: about 22 ns per read with `Instant` on a
/// Linux VM, about 10 ns with `quanta` (see BENCHMARKS.md).
///
/// ```
/// use fluxgate_core::clock::{Clock, SystemClock};
/// let c = SystemClock::new();
/// let a = c.now_nanos();
/// assert!(c.now_nanos() >= a);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    #[cfg(not(feature = "quanta"))]
    origin: Instant,
    /// The counter's raw reading at the origin.
    #[cfg(feature = "quanta")]
    origin: u64,
}

/// One calibrated counter clock for the whole process.
#[cfg(feature = "quanta")]
fn counter() -> &'static quanta::Clock {
    static COUNTER: std::sync::OnceLock<quanta::Clock> = std::sync::OnceLock::new();
    COUNTER.get_or_init(quanta::Clock::new)
}

impl SystemClock {
    /// A clock whose monotonic origin is now.
    ///
    /// ```
    /// let _ = fluxgate_core::clock::SystemClock::new();
    /// ```
    pub fn new() -> Self {
        SystemClock {
            #[cfg(not(feature = "quanta"))]
            origin: Instant::now(),
            #[cfg(feature = "quanta")]
            origin: counter().raw(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        // u64 nanoseconds cover 584 years of uptime.
        #[cfg(not(feature = "quanta"))]
        return self.origin.elapsed().as_nanos() as u64;
        // Raw counter readings, scaled once: the cheapest reading quanta offers.
        #[cfg(feature = "quanta")]
        {
            let counter = counter();
            counter.delta_as_nanos(self.origin, counter.raw())
        }
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to; clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::{CircuitBreaker, State, clock::ManualClock, retries::Cooldown, trippers::FailureStreak};
///
/// let clock = ManualClock::new();
/// let cb = CircuitBreaker::builder("db")
///     .tripper(FailureStreak::new(1))
///     .retry(Cooldown::new(Duration::from_secs(30)))
///     .permit(fluxgate_core::permits::All)
///     .clock(clock.clone())
///     .build()
///     .unwrap();
/// let _ = cb.call(|| Err::<(), _>(std::io::Error::other("down")));
/// assert_eq!(cb.info().state, State::Open);
/// clock.advance(Duration::from_secs(30));
/// assert!(cb.call(|| Ok::<_, std::io::Error>(())).is_ok());
/// assert_eq!(cb.info().state, State::Closed);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<ManualInner>,
}

#[derive(Debug)]
struct ManualInner {
    nanos: AtomicU64,
    wall_origin: SystemTime,
}

impl ManualClock {
    /// A clock at monotonic zero whose wall time starts at the Unix epoch plus one day.
    ///
    /// ```
    /// use fluxgate_core::clock::{Clock, ManualClock};
    /// assert_eq!(ManualClock::new().now_nanos(), 0);
    /// ```
    pub fn new() -> Self {
        Self::starting_at(SystemTime::UNIX_EPOCH + Duration::from_secs(86_400))
    }

    /// A clock at monotonic zero whose wall time starts at `wall`.
    ///
    /// ```
    /// use fluxgate_core::clock::{Clock, ManualClock};
    /// let t = std::time::SystemTime::UNIX_EPOCH;
    /// assert_eq!(ManualClock::starting_at(t).wall(), t);
    /// ```
    pub fn starting_at(wall: SystemTime) -> Self {
        ManualClock {
            inner: Arc::new(ManualInner {
                nanos: AtomicU64::new(0),
                wall_origin: wall,
            }),
        }
    }

    /// Moves time forward by `d` (saturating).
    ///
    /// ```
    /// use fluxgate_core::clock::{Clock, ManualClock};
    /// let c = ManualClock::new();
    /// c.advance(std::time::Duration::from_secs(1));
    /// assert_eq!(c.elapsed(), std::time::Duration::from_secs(1));
    /// ```
    pub fn advance(&self, d: Duration) {
        let add = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let _ = self
            .inner
            .nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                Some(n.saturating_add(add))
            });
    }

    /// Time since the clock's origin.
    ///
    /// ```
    /// assert_eq!(fluxgate_core::clock::ManualClock::new().elapsed(), std::time::Duration::ZERO);
    /// ```
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.inner.nanos.load(Ordering::Acquire))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now_nanos(&self) -> u64 {
        self.inner.nanos.load(Ordering::Acquire)
    }
    fn wall(&self) -> SystemTime {
        self.inner.wall_origin + self.elapsed()
    }
}
