//! The synchronous face: [`CircuitBreaker`] and the [`Builder`] both faces share.

use std::error::Error as StdError;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::core::{Core, Parts, SignalHook};
use crate::listeners::spawn::{default_spawner, AsyncHook, Spawner};
use crate::listeners::{AsyncListener, Listener};
use crate::permits::{Permit, RampUp};
use crate::retries::{Cooldown, Retry};
use crate::trackers::{self, Tracker};
use crate::trippers::{FailureRate, MinRequests, Tripper};
use crate::windows::{CountWindow, Window};
use crate::{ConfigError, Error, State};

/// Configures a breaker; every component has a default (D-1).
///
/// | component | default |
/// |---|---|
/// | window | `CountWindow::new(100)` |
/// | tracker | `trackers::All` |
/// | tripper | `MinRequests::new(100) & FailureRate::new(0.5)` |
/// | retry | `Cooldown::new(60 s)` |
/// | permit | `RampUp::new(0.1, 1.0, 60 s)` |
/// | listeners | none |
/// | max_half_open_calls | 10 |
/// | clock | `SystemClock` |
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::{CircuitBreaker, windows::TimeWindow, trippers::*, retries::Backoff, permits::RampUp};
///
/// let cb = CircuitBreaker::builder("payment_api")
///     .window(TimeWindow::new(Duration::from_secs(60)))
///     .tripper(FailureStreak::new(5) | (MinRequests::new(20) & FailureRate::new(0.5)))
///     .retry(Backoff::new(Duration::from_secs(10)))
///     .permit(RampUp::new(0.1, 1.0, Duration::from_secs(30)))
///     .max_half_open_calls(5)
///     .build()?;
/// # Ok::<(), fluxgate_core::ConfigError>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct Builder<F = CircuitBreaker> {
    name: Arc<str>,
    window: Box<dyn Window>,
    tracker: Box<dyn Tracker>,
    tripper: Box<dyn Tripper>,
    retry: Box<dyn Retry>,
    permit: Box<dyn Permit>,
    clock: Arc<dyn Clock>,
    measure_durations: bool,
    max_half_open_calls: usize,
    listeners: Vec<Arc<dyn Listener>>,
    pub(crate) async_listeners: Vec<Arc<dyn AsyncListener>>,
    pub(crate) spawner: Option<Spawner>,
    face: PhantomData<fn() -> F>,
}

impl<F> fmt::Debug for Builder<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("name", &&*self.name)
            .field("max_half_open_calls", &self.max_half_open_calls)
            .field("listeners", &self.listeners.len())
            .finish_non_exhaustive()
    }
}

/// Hands every signal to the async listeners' lanes, off the call path (L-3, R-2).
fn async_hook(
    listeners: Vec<Arc<dyn AsyncListener>>,
    spawner: Option<Spawner>,
) -> Option<Box<dyn SignalHook>> {
    if listeners.is_empty() {
        return None;
    }
    let spawner = spawner.unwrap_or_else(default_spawner);
    Some(Box::new(AsyncHook::new(listeners, spawner)))
}

/// A face built from a core (implemented by both breakers; sealed).
pub trait Face: Sized {
    #[doc(hidden)]
    fn from_core(core: Arc<Core>) -> Self;
}

impl<F: Face> Builder<F> {
    pub(crate) fn new(name: &str) -> Self {
        Builder {
            name: Arc::from(name),
            window: Box::new(CountWindow::new(100)),
            tracker: Box::new(trackers::All),
            tripper: Box::new(MinRequests::new(100) & FailureRate::new(0.5)),
            retry: Box::new(Cooldown::new(Duration::from_secs(60))),
            permit: Box::new(RampUp::new(0.1, 1.0, Duration::from_secs(60))),
            clock: Arc::new(SystemClock::new()),
            measure_durations: false,
            max_half_open_calls: 10,
            listeners: Vec::new(),
            async_listeners: Vec::new(),
            spawner: None,
            face: PhantomData,
        }
    }

    /// The sliding window (W-1, W-2).
    ///
    /// ```
    /// let _ = fluxgate_core::CircuitBreaker::builder("x").window(fluxgate_core::windows::CountWindow::new(50));
    /// ```
    pub fn window(mut self, window: impl Window) -> Self {
        self.window = Box::new(window);
        self
    }

    /// Which errors count as failures (TK-1).
    ///
    /// ```
    /// let _ = fluxgate_core::CircuitBreaker::builder("x").tracker(fluxgate_core::trackers::TypeOf::<std::io::Error>::new());
    /// ```
    pub fn tracker(mut self, tracker: impl Tracker) -> Self {
        self.tracker = Box::new(tracker);
        self
    }

    /// When to open (TR-*).
    ///
    /// ```
    /// let _ = fluxgate_core::CircuitBreaker::builder("x").tripper(fluxgate_core::trippers::FailureStreak::new(3));
    /// ```
    pub fn tripper(mut self, tripper: impl Tripper) -> Self {
        self.tripper = Box::new(tripper);
        self
    }

    /// When an open circuit may probe again (RT-*).
    ///
    /// ```
    /// let _ = fluxgate_core::CircuitBreaker::builder("x").retry(fluxgate_core::retries::Always);
    /// ```
    pub fn retry(mut self, retry: impl Retry) -> Self {
        self.retry = Box::new(retry);
        self
    }

    /// How much traffic a half-open circuit admits (P-*).
    ///
    /// ```
    /// let _ = fluxgate_core::CircuitBreaker::builder("x").permit(fluxgate_core::permits::Random::new(0.5));
    /// ```
    pub fn permit(mut self, permit: impl Permit) -> Self {
        self.permit = Box::new(permit);
        self
    }

    /// Adds a listener (L-2); listeners run in registration order.
    ///
    /// ```
    /// let _ = fluxgate_core::CircuitBreaker::builder("x").listener(|s: &fluxgate_core::Signal| println!("{}", s.new_state));
    /// ```
    pub fn listener(self, listener: impl Listener) -> Self {
        self.listener_arc(Arc::new(listener))
    }

    /// Adds a shared listener.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use fluxgate_core::listeners::Listener;
    /// let l: Arc<dyn Listener> = Arc::new(|s: &fluxgate_core::Signal| println!("{}", s.new_state));
    /// let a = fluxgate_core::CircuitBreaker::builder("a").listener_arc(l.clone()).build().unwrap();
    /// let b = fluxgate_core::CircuitBreaker::builder("b").listener_arc(l).build().unwrap();
    /// # let _ = (a, b);
    /// ```
    pub fn listener_arc(mut self, listener: Arc<dyn Listener>) -> Self {
        self.listeners.push(listener);
        self
    }

    /// The most calls in flight while `half_open` (SM-8); at least 1, default 10.
    ///
    /// ```
    /// let _ = fluxgate_core::CircuitBreaker::builder("x").max_half_open_calls(3);
    /// ```
    pub fn max_half_open_calls(mut self, n: usize) -> Self {
        self.max_half_open_calls = n;
        self
    }

    /// The breaker's clock (a `ManualClock` in tests).
    ///
    /// ```
    /// let _ = fluxgate_core::CircuitBreaker::builder("x").clock(fluxgate_core::clock::ManualClock::new());
    /// ```
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Times every call even when no rule reads durations, so that `info().metric`
    /// reports them. By default calls are timed only when the tripper has a latency rule
    /// (`AvgLatency`, `SlowRate`): reading a clock costs more than the rest of a call.
    ///
    /// ```
    /// let cb = fluxgate_core::CircuitBreaker::builder("x").measure_durations(true).build().unwrap();
    /// # let _ = cb;
    /// ```
    pub fn measure_durations(mut self, yes: bool) -> Self {
        self.measure_durations = yes;
        self
    }

    /// Checks every component and builds the breaker; the first invalid parameter is the
    /// error (nothing panics on bad input).
    ///
    /// ```
    /// let err = fluxgate_core::CircuitBreaker::builder("x").max_half_open_calls(0).build().unwrap_err();
    /// assert_eq!(err.to_string(), "CircuitBreaker max_half_open_calls must be >= 1, got 0");
    /// ```
    pub fn build(mut self) -> Result<F, ConfigError> {
        self.window.validate()?;
        self.tripper.validate()?;
        self.retry.validate()?;
        self.permit.validate()?;
        let max = u32::try_from(self.max_half_open_calls).unwrap_or(u32::MAX);
        if max == 0 {
            return Err(ConfigError::new(
                "CircuitBreaker",
                "max_half_open_calls",
                self.max_half_open_calls,
                ">= 1",
            ));
        }
        let mut thresholds = Vec::new();
        self.tripper.slow_thresholds(&mut thresholds);
        if thresholds.len() > crate::metric::MAX_SLOW_THRESHOLDS {
            return Err(ConfigError::new(
                "SlowRate",
                "thresholds",
                thresholds.len(),
                "at most 8 distinct thresholds per breaker",
            ));
        }
        self.window.set_slow_thresholds(&thresholds);
        let time_calls = self.measure_durations || self.tripper.needs_durations();
        for l in &self.listeners {
            l.on_attach(&self.name, State::Closed);
        }
        for l in &self.async_listeners {
            l.on_attach(&self.name, State::Closed);
        }
        let hook = async_hook(self.async_listeners, self.spawner);
        let core = Core::new(Parts {
            name: self.name,
            window: self.window,
            tracker: self.tracker,
            tripper: self.tripper,
            retry: self.retry,
            permit: self.permit,
            clock: self.clock,
            time_calls,
            max_half_open_calls: max,
            listeners: self.listeners,
            hook,
        });
        Ok(F::from_core(Arc::new(core)))
    }
}

/// A thread-safe circuit breaker for synchronous calls.
///
/// Cheap to clone (clones share one breaker) and `Send + Sync`; the closed-state path
/// takes no lock and allocates nothing.
///
/// ```
/// use fluxgate_core::{CircuitBreaker, Error, State};
/// use fluxgate_core::trippers::FailureStreak;
///
/// let cb = CircuitBreaker::builder("payment_api").tripper(FailureStreak::new(2)).build()?;
/// for _ in 0..2 {
///     let r = cb.call(|| Err::<(), _>(std::io::Error::other("503")));
///     assert!(matches!(r, Err(Error::Inner(_))));
/// }
/// assert_eq!(cb.info().state, State::Open);
/// assert!(matches!(cb.call(|| Ok::<_, std::io::Error>(1)), Err(Error::Rejected(_))));
/// # Ok::<(), fluxgate_core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct CircuitBreaker {
    core: Arc<Core>,
}

impl Face for CircuitBreaker {
    fn from_core(core: Arc<Core>) -> Self {
        CircuitBreaker { core }
    }
}

impl fmt::Debug for CircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("name", &&**self.core.name())
            .field("state", &self.core.state())
            .finish()
    }
}

/// The manual commands and snapshots both faces share (SM-13).
macro_rules! shared_face_methods {
    ($ty:ident) => {
        impl $ty {
            /// The breaker's name.
            ///
            /// ```
            #[doc = concat!("let cb = fluxgate_core::", stringify!($ty), "::builder(\"db\").build().unwrap();")]
            /// assert_eq!(cb.name(), "db");
            /// ```
            pub fn name(&self) -> &str {
                self.core.name()
            }

            /// A snapshot: state, last change, reopens, window metric, failure streak.
            ///
            /// ```
            #[doc = concat!("let cb = fluxgate_core::", stringify!($ty), "::builder(\"db\").build().unwrap();")]
            /// assert_eq!(cb.info().state, fluxgate_core::State::Closed);
            /// ```
            pub fn info(&self) -> crate::Info {
                self.core.info()
            }

            /// The current state (cheaper than `info()`).
            ///
            /// ```
            #[doc = concat!("let cb = fluxgate_core::", stringify!($ty), "::builder(\"db\").build().unwrap();")]
            /// assert_eq!(cb.state(), fluxgate_core::State::Closed);
            /// ```
            pub fn state(&self) -> crate::State {
                self.core.state()
            }

            /// Half-open calls currently running.
            ///
            /// ```
            #[doc = concat!("let cb = fluxgate_core::", stringify!($ty), "::builder(\"db\").build().unwrap();")]
            /// assert_eq!(cb.half_open_in_flight(), 0);
            /// ```
            pub fn half_open_in_flight(&self) -> u32 {
                self.core.half_open_in_flight()
            }

            /// Waits, at most `timeout`, until no signal of this breaker is queued or being
            /// delivered to its listeners (async listeners: handed over); `true` if so,
            /// `false` on timeout. A transition's signal is delivered by the thread that
            /// made it unless listeners are still busy with earlier signals: then it is
            /// delivered in the background and its caller returns at once (R-2), so e.g.
            /// a test that races transitions on several threads flushes before it reads
            /// what its listeners saw. Called from a listener of this breaker, it returns
            /// `false` at once rather than wait for itself.
            ///
            /// ```
            #[doc = concat!("let cb = fluxgate_core::", stringify!($ty), "::builder(\"db\")")]
            ///     .listener(|s: &fluxgate_core::Signal| println!("{}", s.new_state))
            ///     .build()
            ///     .unwrap();
            /// cb.force_open();
            /// assert!(cb.flush_signals(std::time::Duration::from_secs(5)));
            /// assert_eq!(cb.info().pending_signals, 0);
            /// ```
            pub fn flush_signals(&self, timeout: std::time::Duration) -> bool {
                self.core.flush_signals(timeout)
            }

            /// Moves to `closed` (even from `closed`, which still emits closed→closed).
            ///
            /// ```
            #[doc = concat!("let cb = fluxgate_core::", stringify!($ty), "::builder(\"db\").build().unwrap();")]
            /// cb.force_open();
            /// cb.reset();
            /// assert_eq!(cb.state(), fluxgate_core::State::Closed);
            /// ```
            pub fn reset(&self) {
                self.core.transition(None, crate::State::Closed, true);
            }

            /// Moves to `disabled`: calls pass straight through, nothing is recorded.
            ///
            /// ```
            #[doc = concat!("let cb = fluxgate_core::", stringify!($ty), "::builder(\"db\").build().unwrap();")]
            /// cb.disable();
            /// assert_eq!(cb.state(), fluxgate_core::State::Disabled);
            /// ```
            pub fn disable(&self) {
                self.core.transition(None, crate::State::Disabled, true);
            }

            /// Moves to `metrics_only`: calls are recorded, the breaker never trips.
            ///
            /// ```
            #[doc = concat!("let cb = fluxgate_core::", stringify!($ty), "::builder(\"db\").build().unwrap();")]
            /// cb.metrics_only();
            /// assert_eq!(cb.state(), fluxgate_core::State::MetricsOnly);
            /// ```
            pub fn metrics_only(&self) {
                self.core.transition(None, crate::State::MetricsOnly, true);
            }

            /// Moves to `forced_open`: every call is rejected until another command.
            ///
            /// ```
            #[doc = concat!("let cb = fluxgate_core::", stringify!($ty), "::builder(\"db\").build().unwrap();")]
            /// cb.force_open();
            /// assert_eq!(cb.state(), fluxgate_core::State::ForcedOpen);
            /// ```
            pub fn force_open(&self) {
                self.core.transition(None, crate::State::ForcedOpen, true);
            }

            /// [`reset`](Self::reset) without notifying listeners.
            ///
            /// ```
            #[doc = concat!("let cb = fluxgate_core::", stringify!($ty), "::builder(\"db\").build().unwrap();")]
            /// cb.reset_silently();
            /// ```
            pub fn reset_silently(&self) {
                self.core.transition(None, crate::State::Closed, false);
            }

            /// [`disable`](Self::disable) without notifying listeners.
            ///
            /// ```
            #[doc = concat!("let cb = fluxgate_core::", stringify!($ty), "::builder(\"db\").build().unwrap();")]
            /// cb.disable_silently();
            /// ```
            pub fn disable_silently(&self) {
                self.core.transition(None, crate::State::Disabled, false);
            }

            /// [`metrics_only`](Self::metrics_only) without notifying listeners.
            ///
            /// ```
            #[doc = concat!("let cb = fluxgate_core::", stringify!($ty), "::builder(\"db\").build().unwrap();")]
            /// cb.metrics_only_silently();
            /// ```
            pub fn metrics_only_silently(&self) {
                self.core.transition(None, crate::State::MetricsOnly, false);
            }

            /// [`force_open`](Self::force_open) without notifying listeners.
            ///
            /// ```
            #[doc = concat!("let cb = fluxgate_core::", stringify!($ty), "::builder(\"db\").build().unwrap();")]
            /// cb.force_open_silently();
            /// ```
            pub fn force_open_silently(&self) {
                self.core.transition(None, crate::State::ForcedOpen, false);
            }

            /// Phase one of a call, for integrations the crate does not cover: a
            /// [`Ticket`](crate::Ticket) to run one call, or the rejection.
            ///
            /// ```
            #[doc = concat!("let cb = fluxgate_core::", stringify!($ty), "::builder(\"db\").build().unwrap();")]
            /// let ticket = cb.admit().unwrap();
            /// ticket.success();
            /// ```
            #[inline]
            pub fn admit(&self) -> Result<crate::Ticket<'_>, crate::CallNotPermitted> {
                self.core
                    .admit()
                    .map(|adm| crate::Ticket::new(&self.core, adm))
            }

            /// Like [`admit`](Self::admit), but the ticket owns a handle to the breaker,
            /// so it can move into a `'static` future or another thread.
            ///
            /// ```
            #[doc = concat!("let cb = fluxgate_core::", stringify!($ty), "::builder(\"db\").build().unwrap();")]
            /// let ticket = cb.admit_owned().unwrap();
            /// std::thread::spawn(move || ticket.success()).join().unwrap();
            /// assert_eq!(cb.info().metric.total_count, 1);
            /// ```
            pub fn admit_owned(&self) -> Result<crate::Ticket<'static>, crate::CallNotPermitted> {
                self.core
                    .admit()
                    .map(|adm| crate::Ticket::owned(self.core.clone(), adm))
            }
        }
    };
}
pub(crate) use shared_face_methods;

shared_face_methods!(CircuitBreaker);

impl CircuitBreaker {
    /// Starts configuring a breaker named `name`.
    ///
    /// ```
    /// let cb = fluxgate_core::CircuitBreaker::builder("payment_api").build().unwrap();
    /// assert_eq!(cb.name(), "payment_api");
    /// ```
    pub fn builder(name: &str) -> Builder<CircuitBreaker> {
        Builder::new(name)
    }

    /// Runs `f` if the breaker admits it, records the outcome and returns `f`'s result;
    /// tracked errors are failures, untracked ones are returned without a trace (SM-3 …
    /// SM-12).
    ///
    /// ```
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// let v = cb.call(|| Ok::<_, std::io::Error>(42)).unwrap();
    /// assert_eq!(v, 42);
    /// ```
    #[inline]
    pub fn call<T, E, F>(&self, f: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Result<T, E>,
        E: StdError + 'static,
    {
        let ticket = self.admit().map_err(Error::Rejected)?;
        let result = f();
        match &result {
            Ok(_) => ticket.success(),
            Err(e) => ticket.error(e),
        }
        result.map_err(Error::Inner)
    }

    /// Like [`call`](Self::call), but `is_failure` can declare an `Ok` value a failure
    /// (CF-4: an HTTP client's `Ok(response)` with status 503). The caller still gets its
    /// `Ok`.
    ///
    /// ```
    /// use fluxgate_core::{CircuitBreaker, trippers::FailureStreak, State};
    /// let cb = CircuitBreaker::builder("http").tripper(FailureStreak::new(1)).build().unwrap();
    /// let status = cb.call_classified(|| Ok::<u16, std::io::Error>(503), |s| *s >= 500).unwrap();
    /// assert_eq!(status, 503);
    /// assert_eq!(cb.state(), State::Open);
    /// ```
    #[inline]
    pub fn call_classified<T, E, F, C>(&self, f: F, is_failure: C) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Result<T, E>,
        C: FnOnce(&T) -> bool,
        E: StdError + 'static,
    {
        let ticket = self.admit().map_err(Error::Rejected)?;
        let result = f();
        match &result {
            Ok(v) if is_failure(v) => ticket.failure(),
            Ok(_) => ticket.success(),
            Err(e) => ticket.error(e),
        }
        result.map_err(Error::Inner)
    }

    /// Like [`call`](Self::call), but every error that would leave the breaker (the call's
    /// own, tracked or not, and rejections) goes to `fallback` instead, after the outcome
    /// was recorded (CF-3). `fallback` is not called on success.
    ///
    /// ```
    /// use fluxgate_core::{CircuitBreaker, Error};
    /// let cb = CircuitBreaker::builder("prices").build().unwrap();
    /// cb.force_open();
    /// let price = cb.call_with_fallback(
    ///     || Ok::<u32, std::io::Error>(120),
    ///     |e: Error<std::io::Error>| if e.is_rejected() { Ok(100) } else { Err(e) },
    /// );
    /// assert_eq!(price.unwrap(), 100);
    /// ```
    pub fn call_with_fallback<T, E, E2, F, G>(&self, f: F, fallback: G) -> Result<T, E2>
    where
        F: FnOnce() -> Result<T, E>,
        G: FnOnce(Error<E>) -> Result<T, E2>,
        E: StdError + 'static,
    {
        self.call(f).or_else(fallback)
    }
}
