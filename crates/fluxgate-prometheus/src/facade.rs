//! The `metrics`-facade backend: [`MetricsListener`].
//!
//! Many services record through the `metrics` facade and choose the exporter once, in
//! `main` (typically `metrics-exporter-prometheus`). For them the breaker's series should
//! go through the same facade, to whatever recorder is installed, rather than into a
//! registry nobody serves. The facade has no way to delete a series, so this backend has
//! no `remove_circuit`; the Prometheus exporter's idle timeout
//! (`PrometheusBuilder::idle_timeout`) drops series that stop changing. Nor can it group
//! the writes of one signal against a scrape, so a scrape that races a transition may see
//! the circuit's gauges mid-update for that one scrape.

use std::fmt;
use std::sync::{Arc, Mutex};

use super::calls::{CallHandles, CallSeries, outcome_index};
use super::{
    CALL_DURATION_HELP, CALL_DURATION_METRIC, CALLS_HELP, CALLS_METRIC, Exporter, STATE_HELP,
    STATE_METRIC, Sink, TRANSITION_HELP, TRANSITION_METRIC,
};
use fluxgate_core::listeners::{CallEvent, CallOutcome, Listener, ListenerError};
use fluxgate_core::{Signal, State};

struct FacadeSink;

impl FacadeSink {
    fn describe(&self) {
        metrics::describe_gauge!(STATE_METRIC, STATE_HELP);
        metrics::describe_counter!(TRANSITION_METRIC, TRANSITION_HELP);
    }
}

impl Sink for FacadeSink {
    fn set_state(&self, circuit_name: &str, state: State, value: i64) -> Result<(), ListenerError> {
        metrics::gauge!(
            STATE_METRIC,
            "circuit_name" => circuit_name.to_owned(),
            "state" => state.as_str(),
        )
        .set(value as f64);
        Ok(())
    }

    fn add_transition(
        &self,
        circuit_name: &str,
        old_state: State,
        new_state: State,
        by: u64,
    ) -> Result<(), ListenerError> {
        metrics::counter!(
            TRANSITION_METRIC,
            "circuit_name" => circuit_name.to_owned(),
            "old_state" => old_state.as_str(),
            "new_state" => new_state.as_str(),
        )
        .increment(by);
        Ok(())
    }

    fn remove_circuit(&self, _circuit_name: &str) {
        // The facade cannot delete series (see the module documentation).
    }
}

/// Records the breakers' state gauge and transition counter through the `metrics`
/// facade, to the recorder the application installed (PR-1..PR-3).
///
/// The names, help texts and labels are those of
/// [`PrometheusListener`](super::PrometheusListener); with `metrics-exporter-prometheus`
/// the exposition carries the same two series. Cheap to clone; one listener serves many
/// breakers. The help texts are described to the recorder each time a breaker is built
/// with the listener, so install the recorder first.
///
/// ```
/// use fluxgate_prometheus::MetricsListener;
/// use fluxgate_core::CircuitBreaker;
///
/// // metrics_exporter_prometheus::PrometheusBuilder::new().install()?; in main
/// let cb = CircuitBreaker::builder("payment_api")
///     .listener(MetricsListener::new())
///     .build()
///     .unwrap();
/// cb.force_open();
/// ```
#[derive(Clone)]
pub struct MetricsListener {
    exporter: Arc<Exporter<FacadeSink>>,
    calls: Option<Arc<CallSeries<CircuitCalls>>>,
}

/// One circuit's call handles, registered with the recorder installed when the circuit
/// was attached.
struct CircuitCalls {
    outcomes: [metrics::Counter; 4],
    duration: metrics::Histogram,
}

impl CircuitCalls {
    fn new(circuit_name: &str) -> CircuitCalls {
        metrics::describe_counter!(CALLS_METRIC, CALLS_HELP);
        metrics::describe_histogram!(
            CALL_DURATION_METRIC,
            metrics::Unit::Seconds,
            CALL_DURATION_HELP
        );
        CircuitCalls {
            outcomes: CallOutcome::ALL.map(|o| {
                metrics::counter!(
                    CALLS_METRIC,
                    "circuit_name" => circuit_name.to_owned(),
                    "outcome" => o.as_str(),
                )
            }),
            duration: metrics::histogram!(
                CALL_DURATION_METRIC,
                "circuit_name" => circuit_name.to_owned(),
            ),
        }
    }
}

impl CallHandles for CircuitCalls {
    fn count(&self, outcome: CallOutcome) {
        self.outcomes[outcome_index(outcome)].increment(1);
    }
    fn observe(&self, seconds: f64) {
        self.duration.record(seconds);
    }
}

impl MetricsListener {
    /// A listener recording through the globally installed recorder (or the thread's
    /// local one, see `metrics::with_local_recorder`) at the time of each signal.
    ///
    /// ```
    /// use fluxgate_prometheus::MetricsListener;
    /// use fluxgate_core::listeners::Listener;
    /// use fluxgate_core::{Signal, State};
    ///
    /// let listener = MetricsListener::new();
    /// // Without an installed recorder the facade discards the values.
    /// listener
    ///     .on_signal(&Signal::new("db", State::Closed, State::Open, std::time::SystemTime::now()))
    ///     .unwrap();
    /// ```
    pub fn new() -> Self {
        MetricsListener {
            exporter: Arc::new(Exporter::new(FacadeSink, Arc::new(Mutex::new(())))),
            calls: None,
        }
    }

    /// Like [`new`](Self::new), and also counts every call of the breakers it is attached
    /// to (opt-in call metrics): the counter [`CALLS_METRIC`](super::CALLS_METRIC)
    /// `{circuit_name, outcome}` and the histogram
    /// [`CALL_DURATION_METRIC`](super::CALL_DURATION_METRIC) `{circuit_name}`, in seconds.
    /// Histogram buckets are the exporter's choice (for `metrics-exporter-prometheus`,
    /// `set_buckets_for_metric`; [`CALL_DURATION_BUCKETS`](super::CALL_DURATION_BUCKETS)
    /// are the other backends' bounds). The handles are taken from the recorder installed
    /// when each breaker is built.
    ///
    /// ```
    /// use fluxgate_prometheus::MetricsListener;
    /// use fluxgate_core::CircuitBreaker;
    ///
    /// let cb = CircuitBreaker::builder("payment_api")
    ///     .listener(MetricsListener::with_call_metrics())
    ///     .build()?;
    /// cb.call(|| Ok::<_, std::io::Error>(()))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_call_metrics() -> Self {
        let mut listener = MetricsListener::new();
        listener.calls = Some(Arc::new(CallSeries::new()));
        listener
    }
}

impl Default for MetricsListener {
    /// Same as [`MetricsListener::new`].
    ///
    /// ```
    /// let _listener = fluxgate_prometheus::MetricsListener::default();
    /// ```
    fn default() -> Self {
        MetricsListener::new()
    }
}

impl fmt::Debug for MetricsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsListener").finish_non_exhaustive()
    }
}

impl Listener for MetricsListener {
    fn on_signal(&self, signal: &Signal) -> Result<(), ListenerError> {
        self.exporter.record(signal)
    }

    fn on_attach(&self, circuit_name: &str, state: State) {
        if let Some(calls) = &self.calls {
            calls.attach(circuit_name, || CircuitCalls::new(circuit_name));
        }
        FacadeSink.describe();
        // This backend's sink cannot fail.
        let _ = self.exporter.attach(circuit_name, state);
    }

    /// A retired breaker's series are never written again. The facade cannot delete
    /// them, so they leave the exposition when the exporter's idle timeout passes
    /// (`metrics-exporter-prometheus`: `PrometheusBuilder::idle_timeout`); the exporter's
    /// memory stays bounded the same way.
    fn on_detach(&self, circuit_name: &str) {
        self.exporter.remove(circuit_name);
        if let Some(calls) = &self.calls {
            // Stops counting; the facade cannot delete the series themselves.
            calls.detach(circuit_name);
        }
    }

    fn wants_calls(&self) -> bool {
        self.calls.is_some()
    }

    fn on_call(&self, call: &CallEvent<'_>) {
        if let Some(calls) = &self.calls {
            calls.record(call);
        }
    }

    fn name(&self) -> &str {
        "MetricsListener"
    }
}
