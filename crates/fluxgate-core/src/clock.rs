//! Time, injected.
//!
//! Cooldowns, ramps and latency rules depend on time, and tests of time-dependent rules
//! must not sleep. Every breaker owns a [`Clock`]: [`SystemClock`] in production,
//! [`ManualClock`] in tests, moved by hand with [`ManualClock::advance`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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

    /// A cheap reading of the monotonic clock that may lag `now_nanos` (for
    /// `SystemClock`: about a millisecond, more while its clock thread waits for a CPU)
    /// but never leads it. The breaker uses it only where lateness
    /// can only delay: whether an `open` circuit may probe yet, and the `retry_after` of a
    /// rejection (a probe goes at most that much later; it never goes early). The default
    /// is `now_nanos`.
    ///
    /// ```
    /// use fluxgate_core::clock::{Clock, SystemClock};
    /// let c = SystemClock::new();
    /// assert!(c.recent_nanos() <= c.now_nanos());
    /// ```
    fn recent_nanos(&self) -> u64 {
        self.now_nanos()
    }
}

/// The real clock: a monotonic clock for durations, `SystemTime` for timestamps.
///
/// The monotonic clock is `std::time::Instant`; with the feature `quanta` it is the
/// CPU's time-stamp counter, calibrated once per process by the `quanta` crate (which
/// falls back to the OS clock where the counter is not invariant). A breaker that times
/// its calls reads the clock twice per call: 20–40 ns per read with `Instant` on the
/// Linux VMs of BENCHMARKS.md, 12–17 ns with `quanta`.
///
/// `quanta` is off by default because the counter is not monotonic on every machine:
/// `quanta` does not detect counters that differ from core to core (some laptops and
/// VMs), and there a thread moved to another core can read an earlier time. The breaker
/// does not break on that (every difference of two readings saturates at zero), but a
/// call's duration can come out as zero or as far too long, and a cooldown can end early
/// or late. Turn it on where the OS itself uses the counter as its clock source (on
/// Linux, `/sys/devices/system/clocksource/clocksource0/current_clocksource` reads `tsc`).
///
/// [`recent_nanos`](Clock::recent_nanos), which rejections while `open` read, is one
/// atomic load: a background thread (`fluxgate-clock`, started on the first such read,
/// gone after a second without readers) refreshes it every millisecond; on a machine so
/// loaded that the thread is not scheduled, the reading lags further, which delays probes
/// and never lets one go early. If that thread cannot be started, it is the precise
/// clock.
///
/// All `SystemClock`s of a process share one origin.
///
/// ```
/// use fluxgate_core::clock::{Clock, SystemClock};
/// let c = SystemClock::new();
/// let a = c.now_nanos();
/// assert!(c.now_nanos() >= a);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    _private: (),
}

impl SystemClock {
    /// The process's monotonic clock.
    ///
    /// ```
    /// let _ = fluxgate_core::clock::SystemClock::new();
    /// ```
    pub fn new() -> Self {
        ticker::precise();
        SystemClock { _private: () }
    }
}

/// The process-wide monotonic clock, and its coarse, cheap copy.
mod ticker {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
    use std::time::Duration;

    #[cfg(not(feature = "quanta"))]
    fn origin() -> &'static std::time::Instant {
        static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
        ORIGIN.get_or_init(std::time::Instant::now)
    }

    /// One calibrated counter clock and its reading at the origin.
    #[cfg(feature = "quanta")]
    fn counter() -> &'static (quanta::Clock, u64) {
        static COUNTER: OnceLock<(quanta::Clock, u64)> = OnceLock::new();
        COUNTER.get_or_init(|| {
            let clock = quanta::Clock::new();
            let origin = clock.raw();
            (clock, origin)
        })
    }

    /// Nanoseconds since the process's origin (u64 nanoseconds cover 584 years).
    #[inline]
    pub(super) fn precise() -> u64 {
        #[cfg(not(feature = "quanta"))]
        return origin().elapsed().as_nanos() as u64;
        // Raw counter readings, scaled once: the cheapest reading quanta offers.
        #[cfg(feature = "quanta")]
        {
            let (clock, origin) = counter();
            clock.delta_as_nanos(*origin, clock.raw())
        }
    }

    const IDLE: u8 = 0;
    const STARTING: u8 = 1;
    const RUNNING: u8 = 2;
    const UNAVAILABLE: u8 = 3;
    const TICK: Duration = Duration::from_millis(1);
    /// Ticks without a reader after which the thread ends.
    const IDLE_TICKS: u32 = 1000;

    static STATE: AtomicU8 = AtomicU8::new(IDLE);
    static RECENT: AtomicU64 = AtomicU64::new(0);
    static READ: AtomicBool = AtomicBool::new(false);

    /// A reading at most about a tick old, never ahead of `precise()`, and never behind a
    /// reading an earlier `recent()` returned while the thread ran.
    #[inline]
    pub(super) fn recent() -> u64 {
        if STATE.load(Ordering::Acquire) == RUNNING {
            // One store per tick at most, so readers do not fight over the line.
            if !READ.load(Ordering::Relaxed) {
                READ.store(true, Ordering::Relaxed);
            }
            return RECENT.load(Ordering::Acquire);
        }
        start()
    }

    /// Starts the thread if nobody has; the precise time meanwhile.
    #[cold]
    fn start() -> u64 {
        if STATE
            .compare_exchange(IDLE, STARTING, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // Starting elsewhere, or threads are unavailable.
            return precise();
        }
        let now = precise();
        // Published before RUNNING, so that no reader sees a value older than this one.
        RECENT.fetch_max(now, Ordering::AcqRel);
        READ.store(true, Ordering::Relaxed);
        STATE.store(RUNNING, Ordering::Release);
        let spawned = std::thread::Builder::new()
            .name("fluxgate-clock".into())
            .spawn(|| {
                let mut quiet = 0;
                loop {
                    std::thread::sleep(TICK);
                    RECENT.fetch_max(precise(), Ordering::AcqRel);
                    if READ.swap(false, Ordering::Relaxed) {
                        quiet = 0;
                    } else {
                        quiet += 1;
                        if quiet >= IDLE_TICKS {
                            STATE.store(IDLE, Ordering::Release);
                            return;
                        }
                    }
                }
            });
        if spawned.is_err() {
            STATE.store(UNAVAILABLE, Ordering::Release);
        }
        now
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn recent_never_leads_precise_and_follows_it() {
            let mut last = recent();
            for _ in 0..10_000 {
                let r = recent();
                assert!(r <= precise());
                if STATE.load(Ordering::Acquire) == RUNNING {
                    assert!(r >= last, "went back from {last} to {r}");
                }
                last = r;
            }
            // The thread refreshes the reading: it catches up with a moment already past.
            let target = precise();
            let mut spins = 0u64;
            while recent() < target {
                std::thread::yield_now();
                spins += 1;
                assert!(spins < 100_000_000, "the coarse clock never caught up");
            }
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
        ticker::precise()
    }
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
    #[inline]
    fn recent_nanos(&self) -> u64 {
        ticker::recent()
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
