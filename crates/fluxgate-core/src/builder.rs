//! The [`Builder`] both faces share: every component with its default (D-1), checked once
//! at `build()` so that an invalid value never surfaces at call time, then handed to the
//! core. The sync face builds a [`CircuitBreaker`]; the async face adds its async listeners
//! and spawner in `async_breaker.rs`.

use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::core::{Core, Parts};
use crate::listeners::spawn::{Spawner, async_hook};
use crate::listeners::{AsyncListener, CallSink, EventSink, Listener, name_of, panic_message};
use crate::permits::{Permit, RampUp};
use crate::recovery::{ByTripper, Recovery};
use crate::retries::{Cooldown, Retry};
use crate::store::StateStore;
use crate::trackers::{self, Tracker};
use crate::trippers::{FailureRate, MinRequests, Tripper};
use crate::windows::{AnyWindow, CountWindow, Window};
use crate::{CircuitBreaker, ConfigError, State};

/// Half-open slots at most when probes have a deadline (one word each).
const MAX_LEASED_SLOTS: u32 = 4096;

/// Configures a breaker; every component has a default (D-1).
///
/// | component | default |
/// |---|---|
/// | window | `CountWindow::new(100)` |
/// | tracker | `trackers::All` |
/// | tripper | `MinRequests::new(100) & FailureRate::new(0.5)` |
/// | retry | `Cooldown::new(60 s)` |
/// | permit | `RampUp::new(0.1, 1.0, 60 s)` |
/// | recovery | `recovery::ByTripper` (the tripper decides, SM-9) |
/// | probe_timeout | none |
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
    window: AnyWindow,
    tracker: Box<dyn Tracker>,
    tripper: Box<dyn Tripper>,
    recovery: Box<dyn Recovery>,
    probe_timeout: Option<Duration>,
    retry: Box<dyn Retry>,
    permit: Box<dyn Permit>,
    clock: Arc<dyn Clock>,
    measure_durations: bool,
    max_half_open_calls: usize,
    listeners: Vec<Arc<dyn Listener>>,
    store: Option<Arc<dyn StateStore>>,
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

pub(crate) use crate::face::Face;

impl<F: Face> Builder<F> {
    pub(crate) fn new(name: &str) -> Self {
        Builder {
            name: Arc::from(name),
            window: AnyWindow::Count(CountWindow::new(100)),
            tracker: Box::new(trackers::All),
            tripper: Box::new(MinRequests::new(100) & FailureRate::new(0.5)),
            recovery: Box::new(ByTripper),
            probe_timeout: None,
            retry: Box::new(Cooldown::new(Duration::from_secs(60))),
            permit: Box::new(RampUp::new(0.1, 1.0, Duration::from_secs(60))),
            clock: Arc::new(SystemClock::new()),
            measure_durations: false,
            max_half_open_calls: 10,
            listeners: Vec::new(),
            store: None,
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
        self.window = AnyWindow::new(window);
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

    /// When a half-open circuit closes or opens again; default [`ByTripper`] (the tripper
    /// decides, SM-9, the first good probe closes). See the [`recovery`](crate::recovery)
    /// module for the rules.
    ///
    /// ```
    /// use fluxgate_core::{recovery::Probes, trippers::FailureRate};
    /// let _ = fluxgate_core::CircuitBreaker::builder("x").recovery(Probes::new(10, FailureRate::new(0.5)));
    /// ```
    pub fn recovery(mut self, recovery: impl Recovery) -> Self {
        self.recovery = Box::new(recovery);
        self
    }

    /// Frees the half-open slot of a probe that has not recorded its outcome after
    /// `timeout`, so a hung call cannot keep the circuit from recovering; default none.
    ///
    /// The timed-out probe counts as a tracked failure lasting `timeout`, recorded when the
    /// next call arrives in `half_open` (lazily, as the move to `half_open` is); its own
    /// outcome, if it ever comes, is then ignored. Deadlines are kept in whole
    /// milliseconds (rounded up: a probe never times out early). `timeout` must be
    /// greater than zero; with a timeout, `max_half_open_calls` is at most 4096 (one
    /// word per slot).
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_core::{CircuitBreaker, State, clock::ManualClock, retries::Always, trippers::FailureStreak};
    /// let clock = ManualClock::new();
    /// let cb = CircuitBreaker::builder("x")
    ///     .tripper(FailureStreak::new(1))
    ///     .retry(Always)
    ///     .permit(fluxgate_core::permits::All)
    ///     .max_half_open_calls(1)
    ///     .probe_timeout(Duration::from_secs(5))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// cb.admit().unwrap().failure();
    /// let hung = cb.admit().unwrap(); // the only slot
    /// assert!(cb.admit().is_err());
    /// clock.advance(Duration::from_secs(5));
    /// // The hung probe counted as a failure: open again, then half-open for this call.
    /// let probe = cb.admit().unwrap();
    /// hung.success(); // too late: ignored
    /// probe.success();
    /// assert_eq!(cb.info().state, State::Closed);
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn probe_timeout(mut self, timeout: Duration) -> Self {
        self.probe_timeout = Some(timeout);
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

    /// Adds a listener (L-2); listeners run in registration order. A listener shared by
    /// several breakers is passed as an `Arc` (`Arc<L>` and `Box<dyn Listener>` are
    /// listeners too).
    ///
    /// ```
    /// let _ = fluxgate_core::CircuitBreaker::builder("x").listener(|s: &fluxgate_core::Signal| println!("{}", s.new_state));
    /// ```
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listeners.push(Arc::new(listener));
        self
    }

    /// Shares this breaker's state with the breakers of the same name attached to the same
    /// store (a fleet; see the [`store`](crate::store) module): transitions, manual
    /// commands and probe leases travel in the background, never on the call path.
    /// Default none. A store shared by many breakers is passed as an `Arc` or a clone.
    ///
    /// ```
    /// use fluxgate_core::{CircuitBreaker, clock::ManualClock, store::MemoryStore};
    /// let store = MemoryStore::new(ManualClock::new());
    /// let cb = CircuitBreaker::builder("db").store(store.clone()).build().unwrap();
    /// assert_eq!(cb.info().store_connected, Some(true));
    /// ```
    pub fn store(mut self, store: impl StateStore) -> Self {
        self.store = Some(Arc::new(store));
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
    pub fn build(self) -> Result<F, ConfigError> {
        self.assemble(None).map(|(face, _)| face)
    }

    /// Checks every component the way `build()` does, without building anything or
    /// telling any listener (a dry run for configuration that is applied later).
    pub(crate) fn check(&self) -> Result<(), ConfigError> {
        self.window.validate()?;
        self.tripper.validate()?;
        self.recovery.validate()?;
        self.retry.validate()?;
        self.permit.validate()?;
        if self.max_half_open_calls == 0 {
            return Err(ConfigError::new(
                "CircuitBreaker",
                "max_half_open_calls",
                self.max_half_open_calls,
                ">= 1",
            ));
        }
        if let Some(timeout) = self.probe_timeout {
            ConfigError::positive("CircuitBreaker", "probe_timeout", timeout)?;
            let max = u32::try_from(self.max_half_open_calls).unwrap_or(u32::MAX);
            if max > MAX_LEASED_SLOTS {
                return Err(ConfigError::new(
                    "CircuitBreaker",
                    "max_half_open_calls",
                    self.max_half_open_calls,
                    "<= 4096 with a probe_timeout",
                ));
            }
        }
        let mut thresholds = Vec::new();
        self.tripper.slow_thresholds(&mut thresholds);
        self.recovery.slow_thresholds(&mut thresholds);
        if thresholds.len() > crate::metric::MAX_SLOW_THRESHOLDS {
            return Err(ConfigError::new(
                "SlowRate",
                "thresholds",
                thresholds.len(),
                "at most 8 distinct thresholds per breaker",
            ));
        }
        Ok(())
    }

    /// Builds the breaker that takes over from `old` (live reconfiguration): `old`'s
    /// state, epoch, reopens and time of change carry over, and its window too when the
    /// two windows have the same shape; `old` is retired (see `Core::succeed`).
    pub(crate) fn build_succeeding(self, old: &Arc<Core>) -> Result<(F, Succession), ConfigError> {
        let (face, succession) = self.assemble(Some(old))?;
        let succession = succession.unwrap_or_else(|| Succession {
            state: face.core().state(),
            window_kept: false,
            old_window: None,
            new_window: None,
        });
        Ok((face, succession))
    }

    fn assemble(mut self, old: Option<&Arc<Core>>) -> Result<(F, Option<Succession>), ConfigError> {
        self.check()?;
        let max = u32::try_from(self.max_half_open_calls).unwrap_or(u32::MAX);
        let mut thresholds = Vec::new();
        self.tripper.slow_thresholds(&mut thresholds);
        self.recovery.slow_thresholds(&mut thresholds);
        self.window.set_slow_thresholds(&thresholds);
        let calls = CallSink::new(&self.name, &self.listeners, &self.async_listeners);
        let window_durations = self.measure_durations
            || self.tripper.needs_durations()
            || self.recovery.needs_durations();
        let time_calls = window_durations || calls.is_some();
        let new_shape = self.window.shape();
        let shared = old.filter(|old| new_shape.is_some() && old.window_shape() == new_shape);
        let window: Arc<AnyWindow> = match shared {
            Some(old) => old.window().clone(),
            None => Arc::new(self.window),
        };
        let listeners = self.listeners.clone();
        let async_listeners = self.async_listeners.clone();
        let hook = async_hook(self.async_listeners, self.spawner);
        let core = Arc::new(Core::new(Parts {
            name: self.name.clone(),
            window,
            tracker: self.tracker,
            tripper: self.tripper,
            recovery: self.recovery,
            probe_timeout: self.probe_timeout,
            retry: self.retry,
            permit: self.permit,
            clock: self.clock,
            time_calls,
            window_durations,
            max_half_open_calls: max,
            listeners: self.listeners,
            hook,
            calls,
        }));
        let (state, succession) = match old {
            Some(old) => {
                let old_shape = old.window_shape();
                let state = core.succeed(old, shared.is_some());
                // The old core is frozen: its last signals must not reach the listeners
                // after the successor's attach (which tells them the state it took over).
                old.close_signals();
                let succession = Succession {
                    state,
                    window_kept: shared.is_some(),
                    old_window: old_shape,
                    new_window: new_shape,
                };
                (state, Some(succession))
            }
            None => (State::Closed, None),
        };
        if let Some(store) = &self.store {
            core.attach_store(&**store, EventSink::new(&listeners, &async_listeners));
        }
        for l in &listeners {
            attach(|| l.name(), &self.name, || l.on_attach(&self.name, state));
        }
        for l in &async_listeners {
            attach(|| l.name(), &self.name, || l.on_attach(&self.name, state));
        }
        Ok((F::from_core(core), succession))
    }
}

/// Runs a listener's `on_attach`: a panic in it is logged and goes no further (L-2), so
/// the breaker is built all the same and the other listeners are attached. The listener's
/// `name` is only asked for the log, and guarded too (R-3).
fn attach<'a>(name: impl FnOnce() -> &'a str, circuit: &str, on_attach: impl FnOnce()) {
    if let Err(panic) = catch_unwind(AssertUnwindSafe(on_attach)) {
        tracing::error!(
            target: "fluxgate",
            circuit,
            listener = name_of(name),
            panic = panic_message(&*panic),
            "listener panicked in on_attach"
        );
    }
}

/// What a live reconfiguration carried over (see `Builder::build_succeeding`).
#[derive(Debug, Clone)]
pub(crate) struct Succession {
    pub(crate) state: State,
    pub(crate) window_kept: bool,
    pub(crate) old_window: Option<String>,
    pub(crate) new_window: Option<String>,
}
