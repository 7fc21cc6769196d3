//! The synchronous face: [`CircuitBreaker`], and the manual commands and snapshots both
//! faces share (`shared_face_methods!`).

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use crate::Error;
use crate::builder::{Builder, Face};
use crate::core::Core;

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
    fn core(&self) -> &Arc<Core> {
        &self.core
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

            /// While open, the time left before a call may go through as a probe
            /// (`Some(ZERO)` once one may); `None` in every other state, or when the
            /// retry policy never retries. The `retry_after` of a rejection, without a call.
            ///
            /// ```
            #[doc = concat!("let cb = fluxgate_core::", stringify!($ty), "::builder(\"db\").build().unwrap();")]
            /// assert_eq!(cb.retry_after(), None);
            /// ```
            pub fn retry_after(&self) -> Option<std::time::Duration> {
                self.core.retry_after()
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
                crate::Ticket::admit(&self.core)
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
                crate::Ticket::admit_owned(&self.core)
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
    #[inline(always)]
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

    /// Like [`call`](Self::call), for closures whose error is not a `std::error::Error`:
    /// `anyhow::Error`, `Box<dyn Error + Send + Sync>` (tower's `BoxError`), `String`, any
    /// type. Trackers see the error inside a `Box<dyn Error…>`, an `Arc<dyn Error…>` or
    /// (feature `anyhow`) an `anyhow::Error`, so `TypeOf` and `Custom` work as with
    /// `call`; any other type is seen as an [`Opaque`](crate::Opaque) (counted by the
    /// default tracker `All`). The caller gets its error back unchanged.
    ///
    /// `call` keeps the `E: Error` bound because Rust's coherence rules do not let one
    /// method accept both every `E: Error` and `Box<dyn Error>` or `anyhow::Error`, which
    /// do not implement `Error`.
    ///
    /// ```
    /// use fluxgate_core::{CircuitBreaker, Error, State, trippers::FailureStreak};
    /// type BoxError = Box<dyn std::error::Error + Send + Sync>;
    ///
    /// let cb = CircuitBreaker::builder("api").tripper(FailureStreak::new(2)).build().unwrap();
    /// let r = cb.call_any(|| Err::<u32, BoxError>("connection reset".into()));
    /// assert!(matches!(r, Err(Error::Inner(e)) if e.to_string() == "connection reset"));
    /// let _ = cb.call_any(|| Err::<u32, String>("timeout".to_string()));
    /// assert_eq!(cb.state(), State::Open);
    /// ```
    #[inline]
    pub fn call_any<T, E, F>(&self, f: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Result<T, E>,
        E: 'static,
    {
        let ticket = self.admit().map_err(Error::Rejected)?;
        let result = f();
        match &result {
            Ok(_) => ticket.success(),
            Err(e) => ticket.error_any(e),
        }
        result.map_err(Error::Inner)
    }
}
