//! [`Face`]: what the two breakers have in common, for code generic over them.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::builder::Builder;
use crate::core::Core;
#[cfg(doc)]
use crate::{AsyncCircuitBreaker, CircuitBreaker};
use crate::{CallNotPermitted, Info, State, Ticket};

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::CircuitBreaker {}
    impl Sealed for crate::AsyncCircuitBreaker {}
}

/// A breaker face: [`CircuitBreaker`] (synchronous calls) or [`AsyncCircuitBreaker`]
/// (futures). Both are handles to the same kind of breaker and share its builder,
/// snapshots and manual commands; this trait names what they share, so that code can
/// be generic over the face — a [`Registry<F>`](crate::registry::Registry), a
/// [`Keyed<K, F>`](crate::keyed::Keyed), a [`Builder<F>`], or a function of your own.
///
/// Sealed: only the two faces implement it. The calls themselves (`call`, `call_any`
/// …) differ between the faces and are not part of it; [`admit`](Self::admit) is the
/// two-phase call both have.
///
/// ```
/// use fluxgate_core::registry::Registry;
/// use fluxgate_core::{AsyncCircuitBreaker, CircuitBreaker, Face, State};
///
/// /// Opens every breaker of a registry, whichever face it holds.
/// fn open_all<F: Face>(registry: &Registry<F>) -> usize {
///     let names = registry.names();
///     for name in &names {
///         if let Some(breaker) = registry.get(name) {
///             breaker.force_open();
///         }
///     }
///     names.len()
/// }
///
/// let sync: Registry<CircuitBreaker> = Registry::new();
/// sync.get_or_create("db")?;
/// let not_sync: Registry<AsyncCircuitBreaker> = Registry::new();
/// not_sync.get_or_create("api")?;
/// assert_eq!(open_all(&sync) + open_all(&not_sync), 2);
/// assert_eq!(not_sync.get("api").unwrap().state(), State::ForcedOpen);
///
/// // A breaker of either face, from its own builder.
/// fn shadow<F: Face>(name: &str) -> F {
///     let breaker = F::builder(name).build().unwrap();
///     breaker.metrics_only_silently();
///     breaker
/// }
/// assert_eq!(shadow::<AsyncCircuitBreaker>("search").state(), State::MetricsOnly);
/// # Ok::<(), fluxgate_core::ConfigError>(())
/// ```
pub trait Face: sealed::Sealed + Clone + Send + Sync + fmt::Debug + 'static {
    /// A builder for a breaker of this face named `name`, with SPEC D-1's components
    /// (the same as `CircuitBreaker::builder` / `AsyncCircuitBreaker::builder`).
    ///
    /// ```
    /// use fluxgate_core::{Face, CircuitBreaker};
    /// let cb = <CircuitBreaker as Face>::builder("db").build()?;
    /// assert_eq!(cb.name(), "db");
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    fn builder(name: &str) -> Builder<Self> {
        Builder::new(name)
    }

    /// The breaker's name.
    ///
    /// ```
    /// fn name_of<F: fluxgate_core::Face>(b: &F) -> &str { b.name() }
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// assert_eq!(name_of(&cb), "db");
    /// ```
    fn name(&self) -> &str {
        self.core().name()
    }

    /// The current state.
    ///
    /// ```
    /// fn state_of<F: fluxgate_core::Face>(b: &F) -> fluxgate_core::State { b.state() }
    /// let cb = fluxgate_core::AsyncCircuitBreaker::builder("db").build().unwrap();
    /// assert_eq!(state_of(&cb), fluxgate_core::State::Closed);
    /// ```
    fn state(&self) -> State {
        self.core().state()
    }

    /// A snapshot: state, last change, reopens, window metric, failure streak.
    ///
    /// ```
    /// fn calls<F: fluxgate_core::Face>(b: &F) -> u64 { b.info().metric.total_count }
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// assert_eq!(calls(&cb), 0);
    /// ```
    fn info(&self) -> Info {
        self.core().info()
    }

    /// While open, the time left before a call may go through as a probe; `None` in
    /// every other state.
    ///
    /// ```
    /// fn wait<F: fluxgate_core::Face>(b: &F) -> Option<std::time::Duration> { b.retry_after() }
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// assert_eq!(wait(&cb), None);
    /// ```
    fn retry_after(&self) -> Option<Duration> {
        self.core().retry_after()
    }

    /// Phase one of a call: a [`Ticket`] to run one call and record its outcome, or the
    /// rejection.
    ///
    /// ```
    /// fn probe<F: fluxgate_core::Face>(b: &F) -> bool {
    ///     match b.admit() {
    ///         Ok(ticket) => { ticket.success(); true }
    ///         Err(_) => false,
    ///     }
    /// }
    /// let cb = fluxgate_core::AsyncCircuitBreaker::builder("db").build().unwrap();
    /// assert!(probe(&cb));
    /// assert_eq!(cb.info().metric.total_count, 1);
    /// ```
    fn admit(&self) -> Result<Ticket<'_>, CallNotPermitted> {
        Ticket::admit(self.core())
    }

    /// Moves to `closed`, notifying listeners (SM-13).
    ///
    /// ```
    /// use fluxgate_core::{Face, State};
    /// fn cycle<F: Face>(b: &F) { b.force_open(); b.reset(); }
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// cycle(&cb);
    /// assert_eq!(cb.state(), State::Closed);
    /// ```
    fn reset(&self) {
        self.core().transition(None, State::Closed, true);
    }

    /// Moves to `disabled`, notifying listeners: calls pass through unrecorded (SM-11).
    ///
    /// ```
    /// fn off<F: fluxgate_core::Face>(b: &F) { b.disable() }
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// off(&cb);
    /// assert_eq!(cb.state(), fluxgate_core::State::Disabled);
    /// ```
    fn disable(&self) {
        self.core().transition(None, State::Disabled, true);
    }

    /// Moves to `metrics_only`, notifying listeners: calls are recorded, the breaker
    /// never trips (SM-10).
    ///
    /// ```
    /// fn shadow<F: fluxgate_core::Face>(b: &F) { b.metrics_only() }
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// shadow(&cb);
    /// assert_eq!(cb.state(), fluxgate_core::State::MetricsOnly);
    /// ```
    fn metrics_only(&self) {
        self.core().transition(None, State::MetricsOnly, true);
    }

    /// Moves to `forced_open`, notifying listeners: every call is rejected (SM-12).
    ///
    /// ```
    /// fn trip<F: fluxgate_core::Face>(b: &F) { b.force_open() }
    /// let cb = fluxgate_core::AsyncCircuitBreaker::builder("db").build().unwrap();
    /// trip(&cb);
    /// assert_eq!(cb.state(), fluxgate_core::State::ForcedOpen);
    /// ```
    fn force_open(&self) {
        self.core().transition(None, State::ForcedOpen, true);
    }

    /// [`reset`](Self::reset) without notifying listeners.
    ///
    /// ```
    /// fn quietly<F: fluxgate_core::Face>(b: &F) { b.reset_silently() }
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// cb.force_open();
    /// quietly(&cb);
    /// assert_eq!(cb.state(), fluxgate_core::State::Closed);
    /// ```
    fn reset_silently(&self) {
        self.core().transition(None, State::Closed, false);
    }

    /// [`disable`](Self::disable) without notifying listeners.
    ///
    /// ```
    /// fn quietly<F: fluxgate_core::Face>(b: &F) { b.disable_silently() }
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// quietly(&cb);
    /// assert_eq!(cb.state(), fluxgate_core::State::Disabled);
    /// ```
    fn disable_silently(&self) {
        self.core().transition(None, State::Disabled, false);
    }

    /// [`metrics_only`](Self::metrics_only) without notifying listeners: a shadow
    /// rollout's initial state.
    ///
    /// ```
    /// fn quietly<F: fluxgate_core::Face>(b: &F) { b.metrics_only_silently() }
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// quietly(&cb);
    /// assert_eq!(cb.state(), fluxgate_core::State::MetricsOnly);
    /// ```
    fn metrics_only_silently(&self) {
        self.core().transition(None, State::MetricsOnly, false);
    }

    /// [`force_open`](Self::force_open) without notifying listeners.
    ///
    /// ```
    /// fn quietly<F: fluxgate_core::Face>(b: &F) { b.force_open_silently() }
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// quietly(&cb);
    /// assert_eq!(cb.state(), fluxgate_core::State::ForcedOpen);
    /// ```
    fn force_open_silently(&self) {
        self.core().transition(None, State::ForcedOpen, false);
    }

    /// Internal: a face over a breaker's core.
    #[doc(hidden)]
    fn from_core(core: Arc<Core>) -> Self;

    /// Internal: the breaker's core.
    #[doc(hidden)]
    fn core(&self) -> &Arc<Core>;
}
