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

use crate::{Signal, State};

pub mod log;
pub(crate) mod spawn;
pub use spawn::SpawnFuture;

/// The error a listener may report; it is logged, never propagated to the caller.
pub type ListenerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A boxed future returned by [`AsyncListener::on_signal`].
pub type ListenerFuture = Pin<Box<dyn Future<Output = Result<(), ListenerError>> + Send + 'static>>;

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
    /// (PR-3). The default does nothing.
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
            listener = listener.name(),
            circuit = &*signal.circuit_name,
            %error,
            "listener failed"
        ),
        Err(panic) => tracing::error!(
            target: "fluxgate",
            listener = listener.name(),
            circuit = &*signal.circuit_name,
            panic = panic_message(&*panic),
            "listener panicked"
        ),
    }
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
