//! The `metrics`-facade backend: [`MetricsListener`].
//!
//! Many services record through the `metrics` facade and choose the exporter once, in
//! `main` (typically `metrics-exporter-prometheus`). For them the breaker's series should
//! go through the same facade, to whatever recorder is installed, rather than into a
//! registry nobody serves.
//!
//! The facade cannot delete a series (see [`MetricsListener`], "Retired circuits"), so a
//! retired circuit's series are dropped by the exporter's idle timeout, with
//! [`MetricsListener::refresh`] keeping the live ones. Nor can the facade group the
//! writes of one signal against a scrape, so a scrape that races a transition may see the
//! circuit's gauges mid-update for that one scrape.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use super::calls::{CallHandles, CallSeries, outcome_index};
use super::{
    CALL_DURATION_HELP, CALL_DURATION_METRIC, CALLS_HELP, CALLS_METRIC, Exporter, STATE_HELP,
    STATE_METRIC, Sink, TRANSITION_HELP, TRANSITION_METRIC,
};
use fluxgate_core::listeners::{CallEvent, CallOutcome, Listener, ListenerError};
use fluxgate_core::{Signal, State};

#[derive(Default)]
struct FacadeSink {
    /// What was written per attached circuit, for `refresh`: its current state and the
    /// transitions counted so far. Dropped on detach, so it holds live circuits only.
    written: Mutex<HashMap<String, Written>>,
}

#[derive(Clone, Default)]
struct Written {
    state: Option<State>,
    transitions: Vec<(State, State)>,
}

impl FacadeSink {
    fn describe(&self) {
        metrics::describe_gauge!(STATE_METRIC, STATE_HELP);
        metrics::describe_counter!(TRANSITION_METRIC, TRANSITION_HELP);
    }

    fn written(&self) -> std::sync::MutexGuard<'_, HashMap<String, Written>> {
        super::lock_ignoring_poison(&self.written)
    }

    fn note(&self, circuit_name: &str, f: impl FnOnce(&mut Written)) {
        let mut written = self.written();
        match written.get_mut(circuit_name) {
            Some(w) => f(w),
            None => f(written.entry(circuit_name.to_owned()).or_default()),
        }
    }
}

impl Sink for FacadeSink {
    fn set_state(&self, circuit_name: &str, state: State, value: i64) -> Result<(), ListenerError> {
        if value == 1 {
            self.note(circuit_name, |w| w.state = Some(state));
        }
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
        self.note(circuit_name, |w| {
            if !w.transitions.contains(&(old_state, new_state)) {
                w.transitions.push((old_state, new_state));
            }
        });
        metrics::counter!(
            TRANSITION_METRIC,
            "circuit_name" => circuit_name.to_owned(),
            "old_state" => old_state.as_str(),
            "new_state" => new_state.as_str(),
        )
        .increment(by);
        Ok(())
    }

    fn remove_circuit(&self, circuit_name: &str) {
        // The facade cannot delete series (see `MetricsListener`): stop refreshing them,
        // so that the exporter's idle timeout drops them.
        self.written().remove(circuit_name);
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
/// # Retired circuits
///
/// A breaker that leaves a registry or a keyed breaker (`on_detach`) should take its
/// series with it. Through the facade that cannot be done:
///
/// - `metrics::Recorder` (0.24) has `describe_*` and `register_*` only, and the handles
///   it returns (`Counter`, `Gauge`, `Histogram`) can only change a value: nothing in
///   the facade names a series to forget.
/// - `metrics-exporter-prometheus` keeps its registry private; its `PrometheusHandle`
///   renders and runs upkeep, and deletes nothing on request.
/// - What it does have is an idle timeout (`PrometheusBuilder::idle_timeout(mask,
///   Some(d))`): at a render or upkeep, a series whose value was not *written* for `d`
///   is dropped. A live breaker that has not changed state for `d` writes nothing
///   either, so on its own the timeout would drop live circuits' series too.
///
/// So: set the exporter's idle timeout, and call [`refresh`](Self::refresh) more often
/// than the timeout. `refresh` writes every live circuit's series again (same values),
/// so only the series of detached circuits go idle and are dropped; this listener
/// forgets a circuit in `on_detach`, so its memory stays bounded too. The `prometheus`
/// and `prometheus-client` backends ([`PrometheusListener`](super::PrometheusListener),
/// `PrometheusClientListener`) delete a retired circuit's series at once, with no
/// timeout, if the exporter is yours to choose.
///
/// ```no_run
/// use std::time::Duration;
/// use fluxgate_prometheus::MetricsListener;
///
/// // In main, with metrics-exporter-prometheus:
/// // PrometheusBuilder::new()
/// //     .idle_timeout(MetricKindMask::GAUGE | MetricKindMask::COUNTER, Some(Duration::from_secs(600)))
/// //     .install()?;
/// let listener = MetricsListener::new();
/// let keep_alive = listener.clone();
/// std::thread::spawn(move || loop {
///     keep_alive.refresh();
///     std::thread::sleep(Duration::from_secs(60));
/// });
/// // … build the registry's or keyed breakers with `listener` …
/// ```
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
            exporter: Arc::new(Exporter::new(
                FacadeSink::default(),
                Arc::new(Mutex::new(())),
            )),
            calls: None,
        }
    }

    /// Writes the series of every circuit this listener serves and has not detached
    /// again, with their current values (the state gauges set as they are, the
    /// transition counters incremented by zero), through the recorder in force at the
    /// call. Nothing a scrape shows changes; an exporter that drops idle series sees
    /// them written, and keeps them. Call it more often than the exporter's idle
    /// timeout (see "Retired circuits" above); it costs eleven writes or so per circuit.
    ///
    /// ```
    /// use fluxgate_prometheus::MetricsListener;
    /// let listener = MetricsListener::new();
    /// let cb = fluxgate_core::CircuitBreaker::builder("db")
    ///     .listener(listener.clone())
    ///     .build()
    ///     .unwrap();
    /// listener.refresh(); // without a recorder installed the facade discards the writes
    /// # let _ = cb;
    /// ```
    pub fn refresh(&self) {
        // Under the exporter's lock, so a refresh never writes a state older than a
        // signal recorded meanwhile.
        let _guard = self.exporter.guard();
        let sink = &self.exporter.sink;
        let written: Vec<(String, Written)> = sink
            .written()
            .iter()
            .map(|(name, w)| (name.clone(), w.clone()))
            .collect();
        for (name, w) in written {
            if let Some(state) = w.state {
                // This backend's sink cannot fail.
                let _ = sink.write_states(&name, state);
            }
            for (old_state, new_state) in w.transitions {
                let _ = sink.add_transition(&name, old_state, new_state, 0);
            }
        }
        if let Some(calls) = &self.calls {
            // The call series' handles are taken again from the recorder in force: a
            // series the exporter dropped as idle is registered anew (its counts start
            // again from 0), so later calls are not written into a forgotten handle.
            calls.renew(CircuitCalls::new);
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
        self.exporter.sink.describe();
        // This backend's sink cannot fail.
        let _ = self.exporter.attach(circuit_name, state);
    }

    /// A retired breaker's series are never written again, [`refresh`](Self::refresh)
    /// included. The facade cannot delete them, so they leave the exposition when the
    /// exporter's idle timeout passes (see "Retired circuits" on [`MetricsListener`]).
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
