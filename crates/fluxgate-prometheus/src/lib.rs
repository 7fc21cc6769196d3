//! Prometheus metrics for circuit breakers: a state gauge and a transition counter.
//!
//! A tripped breaker is invisible unless something records it. Dashboards and alerts
//! written for the Python library match on two series, so this module exports exactly
//! those, with the same names, help texts, labels and values (PR-1):
//!
//! | series | type | labels | value |
//! |---|---|---|---|
//! | `circuit_breaker_state` | gauge | `circuit_name`, `state` | `1` for the current state, `0` for the five others |
//! | `circuit_breaker_state_transition_total` | counter | `circuit_name`, `old_state`, `new_state` | transitions so far |
//!
//! The logic — six gauge writes and one counter increment per [`Signal`] (PR-2), the
//! series written when a breaker is built (PR-3), one call to drop a circuit (PR-5) — is
//! written once here and shared by three thin backends, each behind its own feature:
//!
//! - `prometheus`: [`PrometheusListener`] on the `prometheus` crate, with a process-wide
//!   default registry like Python's, [`start_http_server`] (a `/metrics` endpoint on a
//!   background thread, no async runtime) and, with feature `axum`, [`axum_router`].
//!   Its exposition is the classic text format that `promtool check metrics` accepts (PR-7).
//! - `prometheus-client`: [`PrometheusClientListener`] on a caller's registry of the
//!   official `prometheus-client` crate.
//! - `metrics`: [`MetricsListener`] on the `metrics` facade, for applications that export
//!   through `metrics-exporter-prometheus` or another recorder.
//!
//! A scrape never sees a circuit in two states at once, or in none: the `prometheus`
//! backend keeps one current state per circuit in its own compact store (and derives the
//! six gauge values from it when it writes the exposition), and the `prometheus-client`
//! scraper takes the lock under which the writes of one signal are grouped.
//!
//! With the `prometheus` feature the same server also answers `/status` and
//! `/status.json` for the breakers a [`StatusSource`] lists ([`MetricsServer::builder`]).
//!
//! ```
//! # #[cfg(feature = "prometheus")] {
//! use fluxgate_prometheus::PrometheusListener;
//! use fluxgate_core::listeners::Listener;
//! use fluxgate_core::{Signal, State};
//!
//! let registry = prometheus::Registry::new();
//! let listener = PrometheusListener::with_registry(&registry).unwrap();
//! listener.on_attach("payment_api", State::Closed);
//! listener
//!     .on_signal(&Signal::new("payment_api", State::Closed, State::Open, std::time::SystemTime::now()))
//!     .unwrap();
//! let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather()).unwrap();
//! assert!(text.contains(r#"circuit_breaker_state{circuit_name="payment_api",state="open"} 1"#));
//! # }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// The docs link the backends to each other; with only some of the features on, some
// targets do not exist (docs.rs builds with all of them).
#![cfg_attr(
    not(all(
        feature = "prometheus",
        feature = "axum",
        feature = "prometheus-client",
        feature = "metrics"
    )),
    allow(rustdoc::broken_intra_doc_links)
)]

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use fluxgate_core::listeners::ListenerError;
use fluxgate_core::{Signal, State};

#[cfg(any(
    feature = "prometheus",
    feature = "prometheus-client",
    feature = "metrics"
))]
mod calls;
#[cfg(feature = "prometheus")]
mod listener;
#[cfg(feature = "prometheus")]
mod server;
mod status;
#[cfg(feature = "axum")]
mod web;

#[cfg(feature = "prometheus-client")]
mod client;

#[cfg(feature = "metrics")]
mod facade;

#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub use listener::PrometheusListener;
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub use server::{
    CONTENT_TYPE, MetricsServer, ServeError, ServerBuilder, encode_text, start_http_server,
    start_http_server_with_registry,
};
pub use status::{
    BreakerStatus, STATUS_JSON_CONTENT_TYPE, STATUS_PAGE, STATUS_PAGE_CONTENT_TYPE, StatusSource,
    status_json,
};
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub use web::{axum_router, metrics_handler, metrics_response, status_router};

#[cfg(feature = "prometheus-client")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus-client")))]
pub use client::PrometheusClientListener;

#[cfg(feature = "metrics")]
#[cfg_attr(docsrs, doc(cfg(feature = "metrics")))]
pub use facade::MetricsListener;

/// Name of the state gauge (PR-1).
///
/// ```
/// assert_eq!(fluxgate_prometheus::STATE_METRIC, "circuit_breaker_state");
/// ```
pub const STATE_METRIC: &str = "circuit_breaker_state";

/// Help text of the state gauge (PR-1).
///
/// ```
/// assert_eq!(fluxgate_prometheus::STATE_HELP, "Current state of the circuit breaker");
/// ```
pub const STATE_HELP: &str = "Current state of the circuit breaker";

/// Name of the transition counter as exposed, with its `_total` suffix (PR-1).
///
/// ```
/// assert_eq!(
///     fluxgate_prometheus::TRANSITION_METRIC,
///     "circuit_breaker_state_transition_total"
/// );
/// ```
pub const TRANSITION_METRIC: &str = "circuit_breaker_state_transition_total";

/// Help text of the transition counter (PR-1).
///
/// ```
/// assert_eq!(
///     fluxgate_prometheus::TRANSITION_HELP,
///     "Count of state transitions for circuit breakers"
/// );
/// ```
pub const TRANSITION_HELP: &str = "Count of state transitions for circuit breakers";

/// Name of the opt-in calls counter, with its `_total` suffix: calls by `circuit_name`
/// and `outcome` (`success`, `failure`, `ignored`, `rejected`). Off by default, so the
/// seed's exposition stays exact; each backend has a `with_call_metrics` constructor.
///
/// ```
/// assert_eq!(fluxgate_prometheus::CALLS_METRIC, "circuit_breaker_calls_total");
/// ```
pub const CALLS_METRIC: &str = "circuit_breaker_calls_total";

/// Help text of the calls counter.
///
/// ```
/// assert!(fluxgate_prometheus::CALLS_HELP.starts_with("Calls through"));
/// ```
pub const CALLS_HELP: &str = "Calls through the circuit breaker, by outcome";

/// Name of the opt-in call-duration histogram (seconds, label `circuit_name`): the calls
/// that ran, whatever their outcome; rejected calls did not run and are not in it.
///
/// ```
/// assert_eq!(fluxgate_prometheus::CALL_DURATION_METRIC, "circuit_breaker_call_duration_seconds");
/// ```
pub const CALL_DURATION_METRIC: &str = "circuit_breaker_call_duration_seconds";

/// Help text of the call-duration histogram.
///
/// ```
/// assert!(fluxgate_prometheus::CALL_DURATION_HELP.contains("seconds"));
/// ```
pub const CALL_DURATION_HELP: &str =
    "Duration of the calls the circuit breaker let through, in seconds";

/// Upper bounds (seconds) of the call-duration histogram's buckets: 1 ms to 10 s, for
/// calls to other services.
///
/// ```
/// assert_eq!(fluxgate_prometheus::CALL_DURATION_BUCKETS.len(), 13);
/// ```
pub const CALL_DURATION_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Name of the gauge of a breaker's shared store (a fleet): 1 while the store reaches the
/// fleet, 0 while the breaker runs on local state alone; label `circuit_name`. Exposed
/// only for breakers built with a store, from its first report on.
///
/// ```
/// assert_eq!(fluxgate_prometheus::STORE_CONNECTED_METRIC, "circuit_breaker_store_connected");
/// ```
pub const STORE_CONNECTED_METRIC: &str = "circuit_breaker_store_connected";

/// Help text of the store gauge.
///
/// ```
/// assert!(fluxgate_prometheus::STORE_CONNECTED_HELP.contains("store"));
/// ```
pub const STORE_CONNECTED_HELP: &str = "Whether the circuit breaker's shared state store is reachable (1) or the breaker runs on local state (0)";

/// The transitions a breaker makes on its own. Their counters are created at zero when a
/// breaker is attached, so that `rate()` and `increase()` see the very first trip (a
/// series that appears with value 1 has no earlier sample to compare with).
const AUTOMATIC_TRANSITIONS: [(State, State); 4] = [
    (State::Closed, State::Open),
    (State::Open, State::HalfOpen),
    (State::HalfOpen, State::Open),
    (State::HalfOpen, State::Closed),
];

/// Where a backend stores the two series. Implementations are thin: every decision about
/// *what* to write lives in [`Exporter`].
pub(crate) trait Sink: Send + Sync + 'static {
    /// Sets `circuit_breaker_state{circuit_name, state}`.
    fn set_state(&self, circuit_name: &str, state: State, value: i64) -> Result<(), ListenerError>;

    /// Adds `by` to `circuit_breaker_state_transition_total{circuit_name, old, new}`,
    /// creating the series if needed (`by` may be 0).
    fn add_transition(
        &self,
        circuit_name: &str,
        old_state: State,
        new_state: State,
        by: u64,
    ) -> Result<(), ListenerError>;

    /// Drops every series of one circuit; absent series are not an error.
    fn remove_circuit(&self, circuit_name: &str);

    /// Sets the gauge of all six states: 1 for `current`, 0 for the five others. A
    /// backend that stores the current state as one value overrides it, so that no reader
    /// sees a circuit in two states at once, or in none.
    fn write_states(&self, circuit_name: &str, current: State) -> Result<(), ListenerError> {
        for state in State::ALL {
            self.set_state(circuit_name, state, i64::from(state == current))?;
        }
        Ok(())
    }
}

/// The listener logic, shared by every backend.
///
/// `lock` groups the writes of one signal; a backend whose scraper can take the same lock
/// (see the `prometheus` and `prometheus-client` collectors) thereby never exposes a
/// half-written update.
pub(crate) struct Exporter<S> {
    sink: S,
    lock: Arc<Mutex<()>>,
}

impl<S: Sink> Exporter<S> {
    pub(crate) fn new(sink: S, lock: Arc<Mutex<()>>) -> Self {
        Exporter { sink, lock }
    }

    fn guard(&self) -> MutexGuard<'_, ()> {
        // The lock protects no data, only the grouping of writes: a panic elsewhere
        // cannot leave anything inconsistent behind it.
        lock_ignoring_poison(&self.lock)
    }

    /// PR-3: a breaker's series exist from the moment it is built.
    pub(crate) fn attach(&self, circuit_name: &str, state: State) -> Result<(), ListenerError> {
        let _guard = self.guard();
        self.write_states(circuit_name, state)?;
        for (old_state, new_state) in AUTOMATIC_TRANSITIONS {
            self.sink
                .add_transition(circuit_name, old_state, new_state, 0)?;
        }
        Ok(())
    }

    /// PR-2: the gauge for all six states, then the counter (same-state signals count).
    pub(crate) fn record(&self, signal: &Signal) -> Result<(), ListenerError> {
        let _guard = self.guard();
        self.write_states(&signal.circuit_name, signal.new_state)?;
        self.sink
            .add_transition(&signal.circuit_name, signal.old_state, signal.new_state, 1)
    }

    /// PR-5: drops one circuit's series; idempotent.
    #[cfg_attr(
        not(any(feature = "prometheus", feature = "prometheus-client")),
        allow(dead_code)
    )]
    pub(crate) fn remove(&self, circuit_name: &str) {
        let _guard = self.guard();
        self.sink.remove_circuit(circuit_name);
    }

    fn write_states(&self, circuit_name: &str, current: State) -> Result<(), ListenerError> {
        self.sink.write_states(circuit_name, current)
    }
}

pub(crate) fn lock_ignoring_poison<T>(lock: &Mutex<T>) -> MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every `(old_state, new_state)` pair, for backends that drop series one label set at a
/// time.
#[cfg(feature = "prometheus-client")]
pub(crate) fn all_transitions() -> impl Iterator<Item = (State, State)> {
    State::ALL
        .into_iter()
        .flat_map(|old| State::ALL.into_iter().map(move |new| (old, new)))
}
