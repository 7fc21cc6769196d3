//! The `prometheus`-crate backend: [`PrometheusListener`].
//!
//! The `prometheus` crate writes the classic text exposition format that Python's
//! `prometheus_client` serves and that `promtool check metrics` validates, and it has a
//! process-wide default registry, just like Python's. So `PrometheusListener::new()` is a
//! drop-in for the seed's `PrometheusListener()`.

use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

use super::{
    Exporter, STATE_HELP, STATE_METRIC, Sink, TRANSITION_HELP, TRANSITION_METRIC, all_transitions,
    lock_ignoring_poison,
};
use fluxgate_core::listeners::{Listener, ListenerError};
use fluxgate_core::{Signal, State};

/// Exports every breaker it listens to as `circuit_breaker_state` and
/// `circuit_breaker_state_transition_total` on a `prometheus` registry (PR-1..PR-5).
///
/// Cloning is cheap and every clone writes the same series, so one listener serves many
/// breakers (L-5). `new()` writes to [`prometheus::default_registry()`] and every call
/// returns the same shared listener, as Python's module-level metrics do;
/// [`with_registry`](PrometheusListener::with_registry) writes only to the caller's registry.
///
/// On every signal the gauge is set for all six states (1 for the new one, 0 for the five
/// others) and then the counter `{circuit_name, old_state, new_state}` is incremented, so a
/// `reset()` of a closed breaker counts as `closed → closed` (PR-2). When a breaker is
/// built with the listener its gauge is written (`closed` = 1) and the counters of the four
/// automatic transitions are created at 0, so dashboards see a breaker, and `rate()` its
/// first trip, from the start (PR-3).
///
/// ```
/// use fluxgate_prometheus::{start_http_server, PrometheusListener};
/// use fluxgate_core::CircuitBreaker;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let server = start_http_server("127.0.0.1:0")?; // the seed's start_http_server(8000)
/// let cb = CircuitBreaker::builder("payment_api")
///     .listener(PrometheusListener::new())
///     .build()?;
/// cb.force_open();
/// // metrics: http://{server.local_addr()}/metrics
/// # server.shutdown();
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PrometheusListener {
    inner: Arc<Inner>,
}

struct Inner {
    exporter: Exporter<PromSink>,
    registry: Registry,
}

/// The two metric vectors; also registered (through [`GuardedCollector`]) in the registry.
#[derive(Clone)]
struct PromSink {
    state: IntGaugeVec,
    transitions: IntCounterVec,
}

/// What the registry scrapes: the two vectors, read under the listener's write lock so
/// a scrape never sees half of an update.
struct GuardedCollector {
    sink: PromSink,
    lock: Arc<Mutex<()>>,
}

impl Collector for GuardedCollector {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.sink.state.desc();
        descs.extend(self.sink.transitions.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let _guard = lock_ignoring_poison(&self.lock);
        let mut families = self.sink.state.collect();
        families.extend(self.sink.transitions.collect());
        families
    }
}

impl Sink for PromSink {
    fn set_state(&self, circuit_name: &str, state: State, value: i64) -> Result<(), ListenerError> {
        self.state
            .get_metric_with_label_values(&[circuit_name, state.as_str()])?
            .set(value);
        Ok(())
    }

    fn add_transition(
        &self,
        circuit_name: &str,
        old_state: State,
        new_state: State,
        by: u64,
    ) -> Result<(), ListenerError> {
        self.transitions
            .get_metric_with_label_values(&[circuit_name, old_state.as_str(), new_state.as_str()])?
            .inc_by(by);
        Ok(())
    }

    fn remove_circuit(&self, circuit_name: &str) {
        for state in State::ALL {
            // An absent series is not an error: removal is idempotent (PR-5).
            let _ = self
                .state
                .remove_label_values(&[circuit_name, state.as_str()]);
        }
        for (old_state, new_state) in all_transitions() {
            let _ = self.transitions.remove_label_values(&[
                circuit_name,
                old_state.as_str(),
                new_state.as_str(),
            ]);
        }
    }
}

impl PrometheusListener {
    /// The listener on the process-wide default registry (PR-4), the seed's
    /// `PrometheusListener()`.
    ///
    /// Every call returns a clone of the same listener, so calling it once per breaker is
    /// as good as sharing one. Serve the default registry with [`super::start_http_server`]
    /// or [`super::axum_router`]. Should the default registry already hold a different
    /// metric under one of the two names, the error is logged (target `fluxgate`) and the
    /// listener still works, unexposed; use [`with_registry`](Self::with_registry) to get
    /// that error as a value.
    ///
    /// ```
    /// use fluxgate_prometheus::PrometheusListener;
    /// use fluxgate_core::listeners::Listener;
    /// use fluxgate_core::State;
    ///
    /// let listener = PrometheusListener::new();
    /// listener.on_attach("inventory_api", State::Closed);
    /// let text = prometheus::TextEncoder::new()
    ///     .encode_to_string(&prometheus::gather())
    ///     .unwrap();
    /// assert!(text.contains(r#"circuit_breaker_state{circuit_name="inventory_api",state="closed"} 1"#));
    /// ```
    pub fn new() -> Self {
        static DEFAULT: OnceLock<PrometheusListener> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                let registry = prometheus::default_registry().clone();
                let (listener, collector) = PrometheusListener::unregistered(registry);
                if let Err(error) = prometheus::register(collector) {
                    tracing::error!(
                        target: "fluxgate",
                        %error,
                        "PrometheusListener: cannot register its metrics in the default registry; \
                         they will not be exposed"
                    );
                }
                listener
            })
            .clone()
    }

    /// A listener writing only to `registry` (PR-4).
    ///
    /// The registry may hold other metrics. Registering a second listener on the same
    /// registry fails with [`prometheus::Error::AlreadyReg`]: clone the first one instead
    /// (clones share their series). For the default registry use [`new`](Self::new),
    /// which always hands out the one listener registered there.
    ///
    /// ```
    /// use fluxgate_prometheus::PrometheusListener;
    /// use fluxgate_core::CircuitBreaker;
    ///
    /// let registry = prometheus::Registry::new();
    /// let listener = PrometheusListener::with_registry(&registry).unwrap();
    /// let payment = CircuitBreaker::builder("payment_api").listener(listener.clone()).build().unwrap();
    /// let inventory = CircuitBreaker::builder("inventory_api").listener(listener.clone()).build().unwrap();
    /// payment.force_open();
    /// assert!(matches!(
    ///     PrometheusListener::with_registry(&registry),
    ///     Err(prometheus::Error::AlreadyReg)
    /// ));
    /// # drop(inventory);
    /// ```
    pub fn with_registry(registry: &Registry) -> Result<Self, prometheus::Error> {
        let (listener, collector) = PrometheusListener::unregistered(registry.clone());
        registry.register(collector)?;
        Ok(listener)
    }

    fn unregistered(registry: Registry) -> (Self, Box<GuardedCollector>) {
        // `new` rejects only invalid metric or label names and duplicate label names; these
        // are constants, checked by the tests, so the expectations cannot fail at run time.
        let sink = PromSink {
            state: IntGaugeVec::new(
                Opts::new(STATE_METRIC, STATE_HELP),
                &["circuit_name", "state"],
            )
            .expect("valid constant metric options"),
            transitions: IntCounterVec::new(
                Opts::new(TRANSITION_METRIC, TRANSITION_HELP),
                &["circuit_name", "old_state", "new_state"],
            )
            .expect("valid constant metric options"),
        };
        let lock = Arc::new(Mutex::new(()));
        let collector = Box::new(GuardedCollector {
            sink: sink.clone(),
            lock: Arc::clone(&lock),
        });
        let listener = PrometheusListener {
            inner: Arc::new(Inner {
                exporter: Exporter::new(sink, lock),
                registry,
            }),
        };
        (listener, collector)
    }

    /// The registry this listener writes to (the default registry for [`new`](Self::new)).
    ///
    /// ```
    /// use fluxgate_prometheus::{start_http_server_with_registry, PrometheusListener};
    ///
    /// let listener = PrometheusListener::with_registry(&prometheus::Registry::new()).unwrap();
    /// let server = start_http_server_with_registry("127.0.0.1:0", listener.registry()).unwrap();
    /// server.shutdown();
    /// ```
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Drops every series of one circuit: its six gauges and all its counters (PR-5).
    ///
    /// For short-lived breakers (one per tenant, per connection …) that would otherwise
    /// leave their series behind. Idempotent; other circuits are untouched; a later signal
    /// or attach of that circuit creates its series again.
    ///
    /// ```
    /// use fluxgate_prometheus::PrometheusListener;
    /// use fluxgate_core::CircuitBreaker;
    ///
    /// let registry = prometheus::Registry::new();
    /// let listener = PrometheusListener::with_registry(&registry).unwrap();
    /// let cb = CircuitBreaker::builder("tenant-42").listener(listener.clone()).build().unwrap();
    /// drop(cb);
    /// listener.remove_circuit("tenant-42");
    /// assert!(registry.gather().is_empty());
    /// ```
    pub fn remove_circuit(&self, circuit_name: &str) {
        self.inner.exporter.remove(circuit_name);
    }
}

impl Default for PrometheusListener {
    /// Same as [`PrometheusListener::new`].
    ///
    /// ```
    /// let _listener = fluxgate_prometheus::PrometheusListener::default();
    /// ```
    fn default() -> Self {
        PrometheusListener::new()
    }
}

impl fmt::Debug for PrometheusListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusListener").finish_non_exhaustive()
    }
}

impl Listener for PrometheusListener {
    fn on_signal(&self, signal: &Signal) -> Result<(), ListenerError> {
        self.inner.exporter.record(signal)
    }

    fn on_attach(&self, circuit_name: &str, state: State) {
        if let Err(error) = self.inner.exporter.attach(circuit_name, state) {
            tracing::error!(
                target: "fluxgate",
                listener = "PrometheusListener",
                circuit = circuit_name,
                %error,
                "cannot create the circuit's series"
            );
        }
    }

    /// A retired breaker (removed from a registry, evicted from a keyed breaker) takes
    /// its series with it: [`remove_circuit`](PrometheusListener::remove_circuit).
    fn on_detach(&self, circuit_name: &str) {
        self.remove_circuit(circuit_name);
    }

    fn name(&self) -> &str {
        "PrometheusListener"
    }
}
