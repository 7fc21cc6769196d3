//! Listeners: what happens outside the breaker when its state changes.
//!
//! A breaker is only useful if somebody notices it tripped. Listeners receive one
//! [`Signal`] per transition, in the order the transitions happened (SM-19), after the new
//! state is already visible through `info()` (SM-16). They run outside every internal lock,
//! so a listener may call back into the breaker that called it (SM-18). A listener that
//! fails or panics is logged with its type name and never hurts the caller or the other
//! listeners (L-2).
//!
//! # Which thread runs a listener
//!
//! - **The caller's, synchronously**, when none of the breaker's signals is queued or
//!   being delivered (the usual case): when `reset()` or the call that tripped the breaker
//!   returns, the listeners have run. Transitions that the listeners themselves cause by
//!   calling back into the breaker are delivered next, on the same thread.
//! - **A background thread** (`fluxgate-signals`) otherwise: a transition that happens
//!   while listeners are busy with an earlier signal queues its signal and its caller
//!   returns at once; the thread that is delivering hands the queue over when it is done
//!   with the signals it caused. No caller runs listeners for a transition it did not
//!   cause (R-2). The threads are shared by all breakers (at most 32, started on demand,
//!   gone after 10 s idle), each on one breaker's queue at a time.
//!
//! # When listeners fall behind
//!
//! At most 1024 signals wait per breaker. When the queue is full, a new `Y→Z` signal is
//! merged into the newest queued `X→Y`, giving `X→Z`: each listener still sees one
//! continuous chain ending at the real state, minus intermediate steps. Merges are counted
//! in `Info::coalesced_signals` (signals still waiting: `Info::pending_signals`), the
//! first one logs a `tracing` warning (`listeners fall behind: signals coalesced`), then
//! at most one a minute, and `flush_signals(timeout)` waits until the queue is empty.
//!
//! [`AsyncListener`]s (async breaker only) get `on_signal` right after the sync listeners,
//! on the same thread and in the same order; their futures run on the breaker's spawner,
//! at most 64 pending per listener and breaker, further signals queued (1024, coalesced
//! the same way) until futures finish.
//!
//! Any `Fn(&Signal) + Send + Sync + 'static` closure is a [`Listener`]; the crate ships
//! [`log::LogListener`], and behind features `PrometheusListener` (`prometheus`) and the
//! Slack listeners (`slack`).
//!
//! ```
//! use fluxgate_core::{CircuitBreaker, Signal};
//! let cb = CircuitBreaker::builder("payment_api")
//!     .listener(|s: &Signal| println!("{} {} -> {}", s.circuit_name, s.old_state, s.new_state))
//!     .build()
//!     .unwrap();
//! cb.force_open();
//! ```

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::time::Duration;

use crate::{Signal, State};

pub mod log;
pub(crate) mod spawn;
pub use spawn::SpawnFuture;

/// The error a listener may report; it is logged, never propagated to the caller.
pub type ListenerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A boxed future returned by [`AsyncListener::on_signal`].
pub type ListenerFuture = Pin<Box<dyn Future<Output = Result<(), ListenerError>> + Send + 'static>>;

/// How a call ended, as a listener that counts calls sees it (see
/// [`Listener::wants_calls`]).
///
/// ```
/// use fluxgate_core::listeners::CallOutcome;
/// assert_eq!(CallOutcome::Rejected.as_str(), "rejected");
/// assert_eq!(CallOutcome::ALL.len(), 4);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// The call ran and succeeded.
    Success,
    /// The call ran and failed with an error the tracker counts.
    Failure,
    /// The call ran and failed with an error the tracker does not count (SM-5).
    Ignored,
    /// The call was not let through (`open`, `forced_open`, no half-open slot or permit).
    Rejected,
}

impl CallOutcome {
    /// Every outcome, in this order: success, failure, ignored, rejected.
    pub const ALL: [CallOutcome; 4] = [
        CallOutcome::Success,
        CallOutcome::Failure,
        CallOutcome::Ignored,
        CallOutcome::Rejected,
    ];

    /// The label value: `"success"`, `"failure"`, `"ignored"` or `"rejected"`.
    ///
    /// ```
    /// assert_eq!(fluxgate_core::listeners::CallOutcome::Success.as_str(), "success");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Success => "success",
            CallOutcome::Failure => "failure",
            CallOutcome::Ignored => "ignored",
            CallOutcome::Rejected => "rejected",
        }
    }
}

impl std::fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One call through a breaker, given to [`Listener::on_call`] of listeners that asked for
/// calls.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::State;
/// use fluxgate_core::listeners::{CallEvent, CallOutcome};
/// let e = CallEvent::new("db", State::Closed, CallOutcome::Success, Some(Duration::from_millis(3)));
/// assert_eq!(e.outcome.as_str(), "success");
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallEvent<'a> {
    /// The breaker's name.
    pub circuit_name: &'a str,
    /// The state the call was admitted in, or the state that rejected it.
    pub state: State,
    /// How it ended.
    pub outcome: CallOutcome,
    /// How long it ran, from admission to its outcome; `None` for a rejected call.
    pub duration: Option<Duration>,
}

impl<'a> CallEvent<'a> {
    /// An event (for listeners' own tests; breakers build theirs).
    ///
    /// ```
    /// use fluxgate_core::listeners::{CallEvent, CallOutcome};
    /// let e = CallEvent::new("db", fluxgate_core::State::Open, CallOutcome::Rejected, None);
    /// assert!(e.duration.is_none());
    /// ```
    pub const fn new(
        circuit_name: &'a str,
        state: State,
        outcome: CallOutcome,
        duration: Option<Duration>,
    ) -> Self {
        CallEvent {
            circuit_name,
            state,
            outcome,
            duration,
        }
    }
}

/// Receives every transition of the breakers it is registered with (L-2).
///
/// Implement it for a struct, or pass a closure `Fn(&Signal)`.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use fluxgate_core::listeners::{Listener, ListenerError};
/// use fluxgate_core::{CircuitBreaker, Signal};
///
/// #[derive(Default)]
/// struct Opens(AtomicUsize);
/// impl Listener for Opens {
///     fn on_signal(&self, s: &Signal) -> Result<(), ListenerError> {
///         if s.new_state == fluxgate_core::State::Open { self.0.fetch_add(1, Ordering::Relaxed); }
///         Ok(())
///     }
/// }
/// let cb = CircuitBreaker::builder("x").listener(Opens::default()).build().unwrap();
/// cb.reset();
/// ```
#[doc(alias = "IListener")]
pub trait Listener: Send + Sync + 'static {
    /// Called once per transition, outside every lock of the breaker.
    fn on_signal(&self, signal: &Signal) -> Result<(), ListenerError>;

    /// Called once when a breaker is built with this listener, with the breaker's name and
    /// initial state (`closed`), so that e.g. metrics exist before the first transition
    /// (PR-3). A panic in it is logged and goes no further (L-2): the breaker is built and
    /// the other listeners are attached. The default does nothing.
    fn on_attach(&self, circuit_name: &str, state: State) {
        let _ = (circuit_name, state);
    }

    /// Called once when a breaker this listener was attached to is retired: removed from
    /// a registry, evicted from a keyed breaker, or dropped by a live reconfiguration.
    /// Listeners that keep per-circuit state (metric series, chat threads) forget it here,
    /// so that the number of circuits they track stays bounded. The default does nothing.
    ///
    /// ```
    /// use fluxgate_core::listeners::{Listener, ListenerError};
    /// use fluxgate_core::Signal;
    /// struct Forgetful;
    /// impl Listener for Forgetful {
    ///     fn on_signal(&self, _: &Signal) -> Result<(), ListenerError> { Ok(()) }
    ///     fn on_detach(&self, circuit_name: &str) { println!("{circuit_name} retired") }
    /// }
    /// Forgetful.on_detach("payment_api");
    /// ```
    fn on_detach(&self, circuit_name: &str) {
        let _ = circuit_name;
    }

    /// Whether this listener wants every call ([`on_call`](Self::on_call)), not only
    /// transitions. Asked once, when a breaker is built; `false` by default, and a breaker
    /// none of whose listeners wants calls pays nothing for the feature. A breaker with
    /// such a listener times each call (two clock reads) to report its duration.
    fn wants_calls(&self) -> bool {
        false
    }

    /// Called for every call of a breaker built with this listener when
    /// [`wants_calls`](Self::wants_calls) said yes: on the caller's thread, after the call
    /// ran (or when it was rejected), before its outcome is recorded. Keep it cheap and
    /// non-blocking (an atomic add, a histogram observation). A panic here is caught and
    /// logged once; the caller gets its own result. Calls of a `disabled` breaker are not
    /// reported (SM-11: nothing is timed or recorded).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU64, Ordering};
    /// use fluxgate_core::listeners::{CallEvent, CallOutcome, Listener, ListenerError};
    /// use fluxgate_core::{CircuitBreaker, Signal};
    ///
    /// #[derive(Default)]
    /// struct Failures(AtomicU64);
    /// impl Listener for Failures {
    ///     fn on_signal(&self, _: &Signal) -> Result<(), ListenerError> { Ok(()) }
    ///     fn wants_calls(&self) -> bool { true }
    ///     fn on_call(&self, call: &CallEvent<'_>) {
    ///         if call.outcome == CallOutcome::Failure { self.0.fetch_add(1, Ordering::Relaxed); }
    ///     }
    /// }
    /// let failures = std::sync::Arc::new(Failures::default());
    /// let cb = CircuitBreaker::builder("db").listener(failures.clone()).build().unwrap();
    /// let _ = cb.call(|| Err::<(), _>(std::io::Error::other("down")));
    /// assert_eq!(failures.0.load(Ordering::Relaxed), 1);
    /// ```
    fn on_call(&self, call: &CallEvent<'_>) {
        let _ = call;
    }

    /// Called when the shared store of a breaker built with one (a fleet, see
    /// `Builder::store`) loses or regains its connection, from the store's own thread:
    /// once with `false` when the breaker goes on on local state alone, once with `true`
    /// when the store reaches the fleet again. The default does nothing; the Prometheus
    /// listener keeps a `circuit_breaker_store_connected` gauge.
    ///
    /// ```
    /// use fluxgate_core::listeners::{Listener, ListenerError};
    /// use fluxgate_core::Signal;
    /// struct Pager;
    /// impl Listener for Pager {
    ///     fn on_signal(&self, _: &Signal) -> Result<(), ListenerError> { Ok(()) }
    ///     fn on_store_connection(&self, circuit_name: &str, connected: bool) {
    ///         if !connected { eprintln!("{circuit_name}: fleet store unreachable, local state only") }
    ///     }
    /// }
    /// Pager.on_store_connection("payment_api", false);
    /// ```
    fn on_store_connection(&self, circuit_name: &str, connected: bool) {
        let _ = (circuit_name, connected);
    }

    /// A name for log messages about this listener; the type name by default.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }
}

/// Forwards every method of a listener trait to the listener behind a pointer.
macro_rules! forward_listener {
    ($(#[$m:meta])* $trait:ident, $signal:ty, $out:ty, [$($g:tt)*] $t:ty) => {
        $(#[$m])*
        impl<$($g)*> $trait for $t {
            fn on_signal(&self, signal: $signal) -> $out {
                (**self).on_signal(signal)
            }
            fn on_attach(&self, circuit_name: &str, state: State) {
                (**self).on_attach(circuit_name, state)
            }
            fn on_detach(&self, circuit_name: &str) {
                (**self).on_detach(circuit_name)
            }
            fn wants_calls(&self) -> bool {
                (**self).wants_calls()
            }
            fn on_call(&self, call: &CallEvent<'_>) {
                (**self).on_call(call)
            }
            fn on_store_connection(&self, circuit_name: &str, connected: bool) {
                (**self).on_store_connection(circuit_name, connected)
            }
            fn name(&self) -> &str {
                (**self).name()
            }
        }
    };
}

forward_listener!(
    /// A shared listener is a listener: one `Arc` can be registered with many breakers.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use fluxgate_core::{CircuitBreaker, listeners::log::LogListener};
    /// let log = Arc::new(LogListener::new());
    /// let a = CircuitBreaker::builder("a").listener(log.clone()).build().unwrap();
    /// let b = CircuitBreaker::builder("b").listener(log).build().unwrap();
    /// # let _ = (a, b);
    /// ```
    Listener, &Signal, Result<(), ListenerError>, [L: Listener + ?Sized] std::sync::Arc<L>
);

forward_listener!(
    /// A boxed listener is a listener (for lists of listeners chosen at run time).
    ///
    /// ```
    /// use fluxgate_core::{CircuitBreaker, Signal, listeners::{Listener, log::LogListener}};
    /// let chosen: Box<dyn Listener> = if cfg!(debug_assertions) {
    ///     Box::new(LogListener::new())
    /// } else {
    ///     Box::new(|s: &Signal| println!("{}", s.new_state))
    /// };
    /// let cb = CircuitBreaker::builder("a").listener(chosen).build().unwrap();
    /// # let _ = cb;
    /// ```
    Listener, &Signal, Result<(), ListenerError>, [] Box<dyn Listener>
);

impl<F> Listener for F
where
    F: Fn(&Signal) + Send + Sync + 'static,
{
    fn on_signal(&self, signal: &Signal) -> Result<(), ListenerError> {
        self(signal);
        Ok(())
    }
}

/// A listener that does its work asynchronously; only the async breaker accepts it (L-3).
///
/// The async breaker runs its async listeners concurrently and never waits for them on
/// the call path: the call that caused a transition returns at once (L-4). `on_signal` is
/// called in transition order; at most 64 of one listener's futures are pending per
/// breaker, later signals wait in a bounded, coalescing queue (see the [module
/// doc](self)). Any closure `Fn(Signal) -> impl Future<Output = ()>` is an
/// `AsyncListener`.
///
/// ```
/// use fluxgate_core::listeners::{AsyncListener, ListenerError, ListenerFuture};
/// use fluxgate_core::Signal;
///
/// struct Audit;
/// impl AsyncListener for Audit {
///     fn on_signal(&self, signal: Signal) -> ListenerFuture {
///         Box::pin(async move {
///             println!("{} is now {}", signal.circuit_name, signal.new_state);
///             Ok::<(), ListenerError>(())
///         })
///     }
/// }
/// ```
#[doc(alias = "IAsyncListener")]
pub trait AsyncListener: Send + Sync + 'static {
    /// Starts handling one transition; the returned future is driven off the call path.
    /// Work that must keep transition order belongs here, before the future: futures of
    /// one listener may run concurrently.
    fn on_signal(&self, signal: Signal) -> ListenerFuture;

    /// Called once when a breaker is built with this listener (see [`Listener::on_attach`]).
    fn on_attach(&self, circuit_name: &str, state: State) {
        let _ = (circuit_name, state);
    }

    /// Called once when a breaker is retired (see [`Listener::on_detach`]).
    fn on_detach(&self, circuit_name: &str) {
        let _ = circuit_name;
    }

    /// Whether this listener wants every call (see [`Listener::wants_calls`]).
    fn wants_calls(&self) -> bool {
        false
    }

    /// Called synchronously, on the caller's thread, for every call when
    /// [`wants_calls`](Self::wants_calls) said yes (see [`Listener::on_call`]); it must
    /// not block.
    fn on_call(&self, call: &CallEvent<'_>) {
        let _ = call;
    }

    /// Called when a breaker's shared store loses or regains its connection (see
    /// [`Listener::on_store_connection`]); it must not block.
    fn on_store_connection(&self, circuit_name: &str, connected: bool) {
        let _ = (circuit_name, connected);
    }

    /// A name for log messages about this listener; the type name by default.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }
}

forward_listener!(
    /// A shared async listener is an async listener.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use fluxgate_core::{AsyncCircuitBreaker, listeners::log::LogListener};
    /// let log = Arc::new(LogListener::new());
    /// let cb = AsyncCircuitBreaker::builder("a").async_listener(log).build().unwrap();
    /// # drop(cb);
    /// ```
    AsyncListener, Signal, ListenerFuture, [L: AsyncListener + ?Sized] std::sync::Arc<L>
);

forward_listener!(
    /// A boxed async listener is an async listener.
    AsyncListener, Signal, ListenerFuture, [] Box<dyn AsyncListener>
);

impl<F, Fut> AsyncListener for F
where
    F: Fn(Signal) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn on_signal(&self, signal: Signal) -> ListenerFuture {
        let fut = self(signal);
        Box::pin(async move {
            fut.await;
            Ok(())
        })
    }
}

/// Runs one listener on one signal, containing its failure or panic (L-2).
pub(crate) fn notify_one(listener: &dyn Listener, signal: &Signal) {
    match catch_unwind(AssertUnwindSafe(|| listener.on_signal(signal))) {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(
            target: "fluxgate",
            listener = name_of(|| listener.name()),
            circuit = &*signal.circuit_name,
            %error,
            "listener failed"
        ),
        Err(panic) => tracing::error!(
            target: "fluxgate",
            listener = name_of(|| listener.name()),
            circuit = &*signal.circuit_name,
            panic = panic_message(&*panic),
            "listener panicked"
        ),
    }
}

/// Every listener of one breaker, for the events other than signals and calls that come
/// from outside the call path (a store's connection).
pub(crate) struct EventSink {
    sync: Box<[std::sync::Arc<dyn Listener>]>,
    asynchronous: Box<[std::sync::Arc<dyn AsyncListener>]>,
}

impl EventSink {
    pub(crate) fn new(
        sync: &[std::sync::Arc<dyn Listener>],
        asynchronous: &[std::sync::Arc<dyn AsyncListener>],
    ) -> EventSink {
        EventSink {
            sync: sync.into(),
            asynchronous: asynchronous.into(),
        }
    }

    /// Tells every listener that `circuit_name`'s store is connected or not; a panic is
    /// caught and logged.
    pub(crate) fn store_connection(&self, circuit_name: &str, connected: bool) {
        let log = |listener: &str| {
            tracing::error!(
                target: "fluxgate",
                listener,
                circuit = circuit_name,
                "listener panicked in on_store_connection"
            )
        };
        for l in self.sync.iter() {
            let tell = AssertUnwindSafe(|| l.on_store_connection(circuit_name, connected));
            if catch_unwind(tell).is_err() {
                log(name_of(|| l.name()));
            }
        }
        for l in self.asynchronous.iter() {
            let tell = AssertUnwindSafe(|| l.on_store_connection(circuit_name, connected));
            if catch_unwind(tell).is_err() {
                log(name_of(|| l.name()));
            }
        }
    }
}

/// The listeners of one breaker that asked for calls ([`Listener::wants_calls`]).
pub(crate) struct CallSink {
    sync: Box<[std::sync::Arc<dyn Listener>]>,
    asynchronous: Box<[std::sync::Arc<dyn AsyncListener>]>,
    /// A listener's `on_call` panicked already (logged once per breaker, not per call).
    panicked: std::sync::atomic::AtomicBool,
    /// The breaker left its registry or keyed breaker: its calls (through a handle kept
    /// from before) are heard by nobody, so that they never count for a new breaker of
    /// the same name.
    detached: std::sync::atomic::AtomicBool,
}

impl CallSink {
    /// The sink of these listeners of `circuit`, or `None` when none of them wants calls.
    /// A listener whose `wants_calls()` panics is taken as not wanting them (logged).
    pub(crate) fn new(
        circuit: &str,
        sync: &[std::sync::Arc<dyn Listener>],
        asynchronous: &[std::sync::Arc<dyn AsyncListener>],
    ) -> Option<CallSink> {
        let sync: Box<[_]> = sync
            .iter()
            .filter(|l| wants_calls(circuit, || l.wants_calls(), || l.name()))
            .cloned()
            .collect();
        let asynchronous: Box<[_]> = asynchronous
            .iter()
            .filter(|l| wants_calls(circuit, || l.wants_calls(), || l.name()))
            .cloned()
            .collect();
        (!sync.is_empty() || !asynchronous.is_empty()).then(|| CallSink {
            sync,
            asynchronous,
            panicked: std::sync::atomic::AtomicBool::new(false),
            detached: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// No call is told to the listeners any more (the breaker was detached from them).
    pub(crate) fn detach(&self) {
        self.detached
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Gives `event` to every listener; a panic is caught (and logged the first time).
    pub(crate) fn emit(&self, event: &CallEvent<'_>) {
        if self.detached.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        for l in self.sync.iter() {
            if catch_unwind(AssertUnwindSafe(|| l.on_call(event))).is_err() {
                self.panicked(|| l.name(), event);
            }
        }
        for l in self.asynchronous.iter() {
            if catch_unwind(AssertUnwindSafe(|| l.on_call(event))).is_err() {
                self.panicked(|| l.name(), event);
            }
        }
    }

    /// `name` is only asked when the panic is logged (the first time).
    #[cold]
    fn panicked<'a>(&self, name: impl FnOnce() -> &'a str, event: &CallEvent<'_>) {
        if !self
            .panicked
            .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::error!(
                target: "fluxgate",
                listener = name_of(name),
                circuit = event.circuit_name,
                "listener panicked in on_call (logged once per breaker; calls go on)"
            );
        }
    }
}

/// What logs call a listener whose `name()` panicked.
pub(crate) const UNNAMED: &str = "<listener>";

/// A listener's name for a log message (`|| l.name()`), asked inside `catch_unwind`: a
/// panic in `name()` is logged and the message names [`UNNAMED`] instead (L-2, R-3). For
/// cold paths only (attach, detach, a failure being logged), never for a call that went
/// well.
#[cold]
pub(crate) fn name_of<'a>(name: impl FnOnce() -> &'a str) -> &'a str {
    match catch_unwind(AssertUnwindSafe(name)) {
        Ok(name) => name,
        Err(panic) => {
            tracing::error!(
                target: "fluxgate",
                listener = UNNAMED,
                panic = panic_message(&*panic),
                "listener panicked in name"
            );
            UNNAMED
        }
    }
}

/// A listener's `wants_calls()`, asked once per breaker built, inside `catch_unwind`: a
/// panic in it is logged and counts as `false` (L-2, R-3).
fn wants_calls<'a>(
    circuit: &str,
    wants: impl FnOnce() -> bool,
    name: impl FnOnce() -> &'a str,
) -> bool {
    catch_unwind(AssertUnwindSafe(wants)).unwrap_or_else(|panic| {
        tracing::error!(
            target: "fluxgate",
            circuit,
            listener = name_of(name),
            panic = panic_message(&*panic),
            "listener panicked in wants_calls (taken as false)"
        );
        false
    })
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}
