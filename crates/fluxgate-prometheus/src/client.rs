//! The `prometheus-client` backend: [`PrometheusClientListener`].
//!
//! Applications built on the official `prometheus-client` crate keep all their metrics in
//! one `Registry` that they encode themselves; a second metrics library just for the
//! breakers would split their exposition in two. This backend writes the same two series
//! into the caller's registry. That crate speaks OpenMetrics: it names the counter family
//! `circuit_breaker_state_transition` and its samples
//! `circuit_breaker_state_transition_total`, which is what Prometheus stores and what the
//! PromQL of the dashboards matches.

use std::fmt;
use std::sync::{Arc, Mutex};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::calls::{CallHandles, CallSeries, outcome_index};
use super::{
    CALL_DURATION_BUCKETS, CALL_DURATION_HELP, CALL_DURATION_METRIC, CALLS_HELP, CALLS_METRIC,
    Exporter, STATE_HELP, STATE_METRIC, Sink, TRANSITION_HELP, TRANSITION_METRIC, all_transitions,
    lock_ignoring_poison,
};
use fluxgate_core::listeners::{CallEvent, CallOutcome, Listener, ListenerError};
use fluxgate_core::{Signal, State};

type StateLabels = [(&'static str, String); 2];
type TransitionLabels = [(&'static str, String); 3];

fn state_labels(circuit_name: &str, state: State) -> StateLabels {
    [
        ("circuit_name", circuit_name.to_owned()),
        ("state", state.as_str().to_owned()),
    ]
}

fn transition_labels(circuit_name: &str, old_state: State, new_state: State) -> TransitionLabels {
    [
        ("circuit_name", circuit_name.to_owned()),
        ("old_state", old_state.as_str().to_owned()),
        ("new_state", new_state.as_str().to_owned()),
    ]
}

#[derive(Clone, Debug, Default)]
struct ClientSink {
    state: Family<StateLabels, Gauge>,
    transitions: Family<TransitionLabels, Counter>,
}

impl Sink for ClientSink {
    fn set_state(&self, circuit_name: &str, state: State, value: i64) -> Result<(), ListenerError> {
        self.state
            .get_or_create(&state_labels(circuit_name, state))
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
            .get_or_create(&transition_labels(circuit_name, old_state, new_state))
            .inc_by(by);
        Ok(())
    }

    fn remove_circuit(&self, circuit_name: &str) {
        for state in State::ALL {
            self.state.remove(&state_labels(circuit_name, state));
        }
        for (old_state, new_state) in all_transitions() {
            self.transitions
                .remove(&transition_labels(circuit_name, old_state, new_state));
        }
    }
}

/// Encodes both families under the listener's write lock, with the exact help texts of
/// PR-1 (`Registry::register` would append a period).
#[derive(Debug)]
struct GuardedCollector {
    sink: ClientSink,
    lock: Arc<Mutex<()>>,
}

impl Collector for GuardedCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let _guard = lock_ignoring_poison(&self.lock);
        let metric = encoder.encode_descriptor(
            STATE_METRIC,
            STATE_HELP,
            None,
            self.sink.state.metric_type(),
        )?;
        self.sink.state.encode(metric)?;
        // The encoder adds `_total` to counter samples itself.
        let family_name = TRANSITION_METRIC
            .strip_suffix("_total")
            .unwrap_or(TRANSITION_METRIC);
        let metric = encoder.encode_descriptor(
            family_name,
            TRANSITION_HELP,
            None,
            self.sink.transitions.metric_type(),
        )?;
        self.sink.transitions.encode(metric)
    }
}

/// [`PrometheusListener`](super::PrometheusListener)'s twin for a registry of the official
/// `prometheus-client` crate: the same series, the same behaviour (PR-1..PR-5).
///
/// Cheap to clone; clones share their series, so one listener serves many breakers.
/// Create one per registry and clone it: `prometheus-client` does not reject a second
/// registration, and two listeners on one registry would expose the families twice.
///
/// ```
/// use fluxgate_prometheus::PrometheusClientListener;
/// use fluxgate_core::CircuitBreaker;
/// use prometheus_client::registry::Registry;
///
/// let mut registry = Registry::default();
/// let listener = PrometheusClientListener::new(&mut registry);
/// let cb = CircuitBreaker::builder("payment_api").listener(listener.clone()).build().unwrap();
/// cb.force_open();
///
/// let mut text = String::new();
/// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
/// assert!(text.contains(r#"circuit_breaker_state{circuit_name="payment_api",state="forced_open"} 1"#));
/// assert!(text.contains(
///     r#"circuit_breaker_state_transition_total{circuit_name="payment_api",old_state="closed",new_state="forced_open"} 1"#
/// ));
/// ```
#[derive(Clone)]
pub struct PrometheusClientListener {
    exporter: Arc<Exporter<ClientSink>>,
    calls: Option<Arc<Calls>>,
}

type CallLabels = [(&'static str, String); 2];
type CircuitLabel = [(&'static str, String); 1];

fn call_labels(circuit_name: &str, outcome: CallOutcome) -> CallLabels {
    [
        ("circuit_name", circuit_name.to_owned()),
        ("outcome", outcome.as_str().to_owned()),
    ]
}

fn circuit_label(circuit_name: &str) -> CircuitLabel {
    [("circuit_name", circuit_name.to_owned())]
}

fn duration_histogram() -> Histogram {
    Histogram::new(CALL_DURATION_BUCKETS)
}

/// The opt-in call metrics: the two families and each attached circuit's handles.
struct Calls {
    counter: Family<CallLabels, Counter>,
    durations: Family<CircuitLabel, Histogram, fn() -> Histogram>,
    series: CallSeries<CircuitCalls>,
}

struct CircuitCalls {
    outcomes: [Counter; 4],
    duration: Histogram,
}

impl CallHandles for CircuitCalls {
    fn count(&self, outcome: CallOutcome) {
        self.outcomes[outcome_index(outcome)].inc();
    }
    fn observe(&self, seconds: f64) {
        self.duration.observe(seconds);
    }
}

impl Calls {
    fn attach(&self, circuit_name: &str) {
        self.series.attach(circuit_name, || CircuitCalls {
            outcomes: CallOutcome::ALL.map(|o| {
                self.counter
                    .get_or_create(&call_labels(circuit_name, o))
                    .clone()
            }),
            duration: self
                .durations
                .get_or_create(&circuit_label(circuit_name))
                .clone(),
        });
    }

    fn detach(&self, circuit_name: &str) {
        if self.series.detach(circuit_name).is_some() {
            for o in CallOutcome::ALL {
                self.counter.remove(&call_labels(circuit_name, o));
            }
            self.durations.remove(&circuit_label(circuit_name));
        }
    }
}

impl PrometheusClientListener {
    /// Registers the two families in `registry` and returns the listener writing to them.
    ///
    /// ```
    /// use fluxgate_prometheus::PrometheusClientListener;
    ///
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let listener = PrometheusClientListener::new(&mut registry);
    /// # drop(listener);
    /// ```
    pub fn new(registry: &mut Registry) -> Self {
        let sink = ClientSink::default();
        let lock = Arc::new(Mutex::new(()));
        registry.register_collector(Box::new(GuardedCollector {
            sink: sink.clone(),
            lock: Arc::clone(&lock),
        }));
        PrometheusClientListener {
            exporter: Arc::new(Exporter::new(sink, lock)),
            calls: None,
        }
    }

    /// Like [`new`](Self::new), and also counts every call of the breakers it is attached
    /// to (opt-in call metrics): the counter family `circuit_breaker_calls`
    /// `{circuit_name, outcome}` (samples [`CALLS_METRIC`](super::CALLS_METRIC)) and the
    /// histogram [`CALL_DURATION_METRIC`](super::CALL_DURATION_METRIC) `{circuit_name}`
    /// (buckets [`CALL_DURATION_BUCKETS`](super::CALL_DURATION_BUCKETS)). Each circuit's
    /// series appear at zero when it is attached and go when it is detached.
    ///
    /// ```
    /// use fluxgate_prometheus::PrometheusClientListener;
    /// use fluxgate_core::CircuitBreaker;
    ///
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let listener = PrometheusClientListener::with_call_metrics(&mut registry);
    /// let cb = CircuitBreaker::builder("payment_api").listener(listener).build()?;
    /// cb.call(|| Ok::<_, std::io::Error>(()))?;
    /// let mut text = String::new();
    /// prometheus_client::encoding::text::encode(&mut text, &registry)?;
    /// assert!(text.contains(r#"circuit_breaker_calls_total{circuit_name="payment_api",outcome="success"} 1"#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_call_metrics(registry: &mut Registry) -> Self {
        let mut listener = PrometheusClientListener::new(registry);
        let counter = Family::<CallLabels, Counter>::default();
        let durations = Family::<CircuitLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        // The encoder adds `_total` to counter samples itself.
        let family = CALLS_METRIC.strip_suffix("_total").unwrap_or(CALLS_METRIC);
        registry.register(family, CALLS_HELP, counter.clone());
        registry.register(CALL_DURATION_METRIC, CALL_DURATION_HELP, durations.clone());
        listener.calls = Some(Arc::new(Calls {
            counter,
            durations,
            series: CallSeries::new(),
        }));
        listener
    }

    /// Drops every series of one circuit (PR-5); idempotent, other circuits untouched, a
    /// later signal creates the series again.
    ///
    /// ```
    /// use fluxgate_prometheus::PrometheusClientListener;
    /// use fluxgate_core::listeners::Listener;
    ///
    /// let mut registry = prometheus_client::registry::Registry::default();
    /// let listener = PrometheusClientListener::new(&mut registry);
    /// listener.on_attach("tenant-42", fluxgate_core::State::Closed);
    /// listener.remove_circuit("tenant-42");
    /// let mut text = String::new();
    /// prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    /// assert!(!text.contains("tenant-42"));
    /// ```
    pub fn remove_circuit(&self, circuit_name: &str) {
        self.exporter.remove(circuit_name);
        if let Some(calls) = &self.calls {
            calls.detach(circuit_name);
        }
    }
}

impl fmt::Debug for PrometheusClientListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusClientListener")
            .finish_non_exhaustive()
    }
}

impl Listener for PrometheusClientListener {
    fn on_signal(&self, signal: &Signal) -> Result<(), ListenerError> {
        self.exporter.record(signal)
    }

    fn on_attach(&self, circuit_name: &str, state: State) {
        if let Some(calls) = &self.calls {
            calls.attach(circuit_name);
        }
        // This backend's sink cannot fail.
        let _ = self.exporter.attach(circuit_name, state);
    }

    /// A retired breaker (removed from a registry, evicted from a keyed breaker) takes
    /// its series with it: [`remove_circuit`](PrometheusClientListener::remove_circuit).
    fn on_detach(&self, circuit_name: &str) {
        self.remove_circuit(circuit_name);
    }

    fn wants_calls(&self) -> bool {
        self.calls.is_some()
    }

    fn on_call(&self, call: &CallEvent<'_>) {
        if let Some(calls) = &self.calls {
            calls.series.record(call);
        }
    }

    fn name(&self) -> &str {
        "PrometheusClientListener"
    }
}
