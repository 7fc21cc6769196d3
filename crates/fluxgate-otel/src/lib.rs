//! OpenTelemetry metrics for circuit breakers: the state gauge and the transition counter.
//!
//! More and more services export metrics through OpenTelemetry rather than through a
//! Prometheus registry. For them, [`OpenTelemetryListener`] records the same two series as
//! the Prometheus listener, on a [`Meter`] the application gives it, so that dashboards
//! and alerts written against one work against the other:
//!
//! | instrument | kind | attributes | value |
//! |---|---|---|---|
//! | `circuit_breaker_state` | gauge (observable, `u64`) | `circuit_name`, `state` | `1` for the current state, `0` for the five others |
//! | `circuit_breaker_state_transition` | counter (observable, monotonic `u64`) | `circuit_name`, `old_state`, `new_state` | transitions so far |
//!
//! The counter is named without `_total`: OpenTelemetry's Prometheus exporters (the
//! `opentelemetry-prometheus` crate, the Collector's `prometheus` and
//! `prometheusremotewrite` exporters) append `_total` to monotonic counters, so an
//! OTel → Prometheus export exposes `circuit_breaker_state` and
//! `circuit_breaker_state_transition_total`, the names, help texts and labels of
//! `fluxgate_prometheus::PrometheusListener` (SPEC PR-1). Neither instrument has a unit,
//! so no unit suffix is added either. The exporter adds its own labels (such as
//! `otel_scope_name`) unless told not to.
//!
//! Like the Prometheus listener, the listener writes all six states of a circuit when a
//! breaker is built with it (PR-3), then on every signal moves the circuit to its new
//! state and counts the `{old_state, new_state}` pair, same-state signals included (PR-2).
//! The counters of the four transitions a breaker makes on its own are reported at 0 from
//! the start, so `rate()` sees the first trip. One listener (and its clones) serves any
//! number of breakers (L-5).
//!
//! ```
//! use fluxgate_core::CircuitBreaker;
//! use fluxgate_otel::OpenTelemetryListener;
//! use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
//!
//! // The application's provider; here with the SDK's in-memory exporter.
//! let exporter = InMemoryMetricExporter::default();
//! let provider = SdkMeterProvider::builder()
//!     .with_reader(PeriodicReader::builder(exporter.clone()).build())
//!     .build();
//!
//! let cb = CircuitBreaker::builder("payment_api")
//!     .listener(OpenTelemetryListener::new(&provider))
//!     .build()?;
//! cb.force_open();
//!
//! provider.force_flush()?;
//! let exported = exporter.get_finished_metrics()?;
//! let names: Vec<String> = exported[0]
//!     .scope_metrics()
//!     .flat_map(|scope| scope.metrics())
//!     .map(|metric| metric.name().to_owned())
//!     .collect();
//! assert!(names.contains(&"circuit_breaker_state".to_owned()));
//! assert!(names.contains(&"circuit_breaker_state_transition".to_owned()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Call metrics (opt-in)
//!
//! For traffic and latency per dependency,
//! [`call_metrics(true)`](OpenTelemetryListenerBuilder::call_metrics) adds the calls
//! counter [`circuit_breaker_calls`](CALLS_METRIC) (attributes `circuit_name`, `outcome`)
//! and the histogram [`circuit_breaker_call_duration`](CALL_DURATION_METRIC) in seconds
//! (attribute `circuit_name`), which a Prometheus export shows as the Prometheus
//! listener's `circuit_breaker_calls_total` and `circuit_breaker_call_duration_seconds`.
//! They are off by default, so that only the two series above are exported.
//!
//! # Retired circuits
//!
//! Both instruments are observable: the listener keeps each circuit's state and counts
//! in a compact store of its own and reports them when the SDK collects. When a breaker is
//! retired (removed from a registry, evicted from a keyed breaker) the listener's
//! [`on_detach`](Listener::on_detach) forgets the circuit, or
//! [`OpenTelemetryListener::remove_circuit`] does it by hand; from the next collection on
//! its series are no longer reported. The OpenTelemetry SDK drops the attribute sets that
//! an observable instrument did not report in its latest collection, so the series leave
//! the export, whatever the temporality. A later signal of a circuit with the same name
//! reports it again, its counters starting from 0 (a counter reset, as after a restart).
//! The call-duration histogram is the exception: it is a synchronous instrument, which the
//! API cannot delete; see [`call_metrics`](OpenTelemetryListenerBuilder::call_metrics).
//!
//! # Many circuits
//!
//! The SDK caps the number of attribute sets per instrument (2000 by default; the
//! extra measurements are folded into one series with the attribute
//! `otel.metric.overflow = true`). A circuit uses six sets of the state gauge, four
//! or more of the transition counter (and, with call metrics, four of the calls
//! counter), so from about 300 circuits on raise the limit with a view, e.g. for
//! 10 000 circuits:
//!
//! ```
//! use opentelemetry_sdk::metrics::{Instrument, SdkMeterProvider, Stream};
//!
//! let provider = SdkMeterProvider::builder()
//!     .with_view(|instrument: &Instrument| {
//!         instrument
//!             .name()
//!             .starts_with("circuit_breaker_")
//!             .then(|| Stream::builder().with_cardinality_limit(100_000).build().ok())
//!             .flatten()
//!     })
//!     .build();
//! # drop(provider);
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;
use std::sync::Arc;

use fluxgate_core::listeners::{AsyncListener, CallEvent, Listener, ListenerError, ListenerFuture};
use fluxgate_core::{Signal, State};
use opentelemetry::InstrumentationScope;
use opentelemetry::metrics::{Histogram, Meter, MeterProvider, ObservableCounter, ObservableGauge};

mod store;

use store::Store;

/// Name of the state gauge; a Prometheus export keeps it as is (PR-1).
///
/// ```
/// assert_eq!(fluxgate_otel::STATE_METRIC, "circuit_breaker_state");
/// ```
pub const STATE_METRIC: &str = "circuit_breaker_state";

/// Description of the state gauge: the Prometheus listener's help text.
///
/// ```
/// assert_eq!(fluxgate_otel::STATE_DESCRIPTION, "Current state of the circuit breaker");
/// ```
pub const STATE_DESCRIPTION: &str = "Current state of the circuit breaker";

/// Name of the transition counter. Prometheus exporters append `_total`, which gives the
/// Prometheus listener's `circuit_breaker_state_transition_total` (PR-1).
///
/// ```
/// assert_eq!(fluxgate_otel::TRANSITION_METRIC, "circuit_breaker_state_transition");
/// ```
pub const TRANSITION_METRIC: &str = "circuit_breaker_state_transition";

/// Description of the transition counter: the Prometheus listener's help text.
///
/// ```
/// assert_eq!(
///     fluxgate_otel::TRANSITION_DESCRIPTION,
///     "Count of state transitions for circuit breakers"
/// );
/// ```
pub const TRANSITION_DESCRIPTION: &str = "Count of state transitions for circuit breakers";

/// Name of the opt-in calls counter (attributes `circuit_name`, `outcome` = `success`,
/// `failure`, `ignored`, `rejected`). Prometheus exporters append `_total`, which gives
/// the Prometheus listener's `circuit_breaker_calls_total`.
///
/// ```
/// assert_eq!(fluxgate_otel::CALLS_METRIC, "circuit_breaker_calls");
/// ```
pub const CALLS_METRIC: &str = "circuit_breaker_calls";

/// Description of the calls counter: the Prometheus listener's help text.
///
/// ```
/// assert_eq!(fluxgate_otel::CALLS_DESCRIPTION, "Calls through the circuit breaker, by outcome");
/// ```
pub const CALLS_DESCRIPTION: &str = "Calls through the circuit breaker, by outcome";

/// Name of the opt-in call-duration histogram (attribute `circuit_name`, unit
/// [`CALL_DURATION_UNIT`]). Prometheus exporters append the unit, which gives the
/// Prometheus listener's `circuit_breaker_call_duration_seconds`.
///
/// ```
/// assert_eq!(fluxgate_otel::CALL_DURATION_METRIC, "circuit_breaker_call_duration");
/// ```
pub const CALL_DURATION_METRIC: &str = "circuit_breaker_call_duration";

/// Unit of the call-duration histogram: seconds, in UCUM as OpenTelemetry asks.
///
/// ```
/// assert_eq!(fluxgate_otel::CALL_DURATION_UNIT, "s");
/// ```
pub const CALL_DURATION_UNIT: &str = "s";

/// Description of the call-duration histogram: the Prometheus listener's help text.
///
/// ```
/// assert!(fluxgate_otel::CALL_DURATION_DESCRIPTION.starts_with("Duration of the calls"));
/// ```
pub const CALL_DURATION_DESCRIPTION: &str =
    "Duration of the calls the circuit breaker let through, in seconds";

/// Bucket boundaries (seconds) the call-duration histogram asks for: 1 ms to 10 s, for
/// calls to other services; the Prometheus listener's buckets. A view
/// (`Aggregation::ExplicitBucketHistogram`) overrides them.
///
/// ```
/// let b = fluxgate_otel::CALL_DURATION_BUCKETS;
/// assert_eq!((b[0], b[b.len() - 1]), (0.001, 10.0));
/// assert!(b.windows(2).all(|w| w[0] < w[1]));
/// ```
pub const CALL_DURATION_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The instrumentation scope of the meter that
/// [`OpenTelemetryListener::builder`] takes from a provider (its version is this
/// crate's).
///
/// ```
/// assert_eq!(fluxgate_otel::SCOPE_NAME, "fluxgate");
/// ```
pub const SCOPE_NAME: &str = "fluxgate";

/// Records every breaker it listens to as `circuit_breaker_state` and
/// `circuit_breaker_state_transition` on an OpenTelemetry [`Meter`] (see the [crate
/// documentation](crate) for the instruments and their Prometheus names).
///
/// Built from the application's [`MeterProvider`] ([`new`](Self::new),
/// [`builder`](Self::builder)) or from a [`Meter`]
/// ([`builder_with_meter`](Self::builder_with_meter)); it never reaches for the global
/// provider unless given it (`opentelemetry::global::meter_provider()`). Build one
/// listener per meter and clone it for every breaker: clones share their series (L-5).
///
/// It is a [`Listener`] for [`CircuitBreaker`](fluxgate_core::CircuitBreaker) and an
/// [`AsyncListener`] for the async breaker. A signal costs a map lookup and three atomic
/// operations; the SDK reads the values when it collects.
///
/// ```
/// use fluxgate_core::{AsyncCircuitBreaker, CircuitBreaker};
/// use fluxgate_otel::OpenTelemetryListener;
/// use opentelemetry_sdk::metrics::SdkMeterProvider;
///
/// let provider = SdkMeterProvider::builder().build(); // with the application's exporter
/// let otel = OpenTelemetryListener::new(&provider);
/// let payment = CircuitBreaker::builder("payment_api").listener(otel.clone()).build()?;
/// let search = AsyncCircuitBreaker::builder("search_api").async_listener(otel).build()?;
/// payment.force_open();
/// # drop(search);
/// # Ok::<(), fluxgate_core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct OpenTelemetryListener {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    // The SDK keeps the callbacks; the handles are kept for the listener's lifetime all
    // the same, as the API asks.
    _state: ObservableGauge<u64>,
    _transitions: ObservableCounter<u64>,
    /// The opt-in call metrics.
    calls: Option<Calls>,
}

/// The calls counter (observable, from the store) and the duration histogram.
struct Calls {
    _counter: ObservableCounter<u64>,
    durations: Histogram<f64>,
}

/// Configures an [`OpenTelemetryListener`]; from [`OpenTelemetryListener::builder`] or
/// [`OpenTelemetryListener::builder_with_meter`].
///
/// ```
/// use fluxgate_otel::OpenTelemetryListener;
/// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
/// let listener = OpenTelemetryListener::builder(&provider).build();
/// # drop(listener);
/// ```
#[must_use = "a builder does nothing until .build() is called"]
pub struct OpenTelemetryListenerBuilder {
    meter: Meter,
    call_metrics: bool,
}

impl fmt::Debug for OpenTelemetryListenerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenTelemetryListenerBuilder")
            .field("call_metrics", &self.call_metrics)
            .finish_non_exhaustive()
    }
}

impl OpenTelemetryListenerBuilder {
    /// Also records every call (off by default, so that only the two series of the
    /// Prometheus listener are exported):
    ///
    /// | instrument | kind | attributes |
    /// |---|---|---|
    /// | [`circuit_breaker_calls`](CALLS_METRIC) | counter (observable, monotonic `u64`) | `circuit_name`, `outcome` = `success`, `failure`, `ignored`, `rejected` |
    /// | [`circuit_breaker_call_duration`](CALL_DURATION_METRIC) | histogram (`f64`, unit `s`, [buckets](CALL_DURATION_BUCKETS) 1 ms … 10 s) | `circuit_name` |
    ///
    /// A breaker built with such a listener times every call and hands the listener one
    /// [`CallEvent`] per call, on the caller's thread: the listener adds 1 to an atomic
    /// counter and, for a call that ran, records its duration in the histogram. Rejected
    /// calls did not run and are not in the histogram; calls of a `disabled` breaker are
    /// not reported at all. The four counters of a circuit are reported at 0 from the
    /// moment its breaker is built and leave with it (like the transition counter); the
    /// histogram is a synchronous instrument, so a circuit appears in it with its first
    /// call, and the OpenTelemetry API cannot delete it: after a circuit is retired the
    /// listener records nothing more for it, and the SDK keeps reporting its last
    /// histogram with cumulative temporality (until the provider is dropped), or stops
    /// after the next collection with delta temporality.
    ///
    /// With a Prometheus exporter the two become `circuit_breaker_calls_total` and
    /// `circuit_breaker_call_duration_seconds`, the Prometheus listener's call metrics.
    ///
    /// ```
    /// use fluxgate_core::CircuitBreaker;
    /// use fluxgate_otel::OpenTelemetryListener;
    ///
    /// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    /// let listener = OpenTelemetryListener::builder(&provider).call_metrics(true).build();
    /// let cb = CircuitBreaker::builder("payment_api").listener(listener).build()?;
    /// cb.call(|| Ok::<_, std::io::Error>(()))?; // counted as success, and timed
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn call_metrics(mut self, on: bool) -> Self {
        self.call_metrics = on;
        self
    }

    /// Creates the instruments on the meter and returns the listener.
    ///
    /// Creating instruments cannot fail in the OpenTelemetry API (an SDK that rejects
    /// one logs it and hands out a no-op instrument); the names used here are valid.
    ///
    /// ```
    /// use fluxgate_otel::OpenTelemetryListener;
    /// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    /// let listener = OpenTelemetryListener::builder(&provider).build();
    /// # drop(listener);
    /// ```
    pub fn build(self) -> OpenTelemetryListener {
        let store = Arc::new(Store::default());
        let state = {
            let store = Arc::clone(&store);
            self.meter
                .u64_observable_gauge(STATE_METRIC)
                .with_description(STATE_DESCRIPTION)
                .with_callback(move |observer| store.observe_states(observer))
                .build()
        };
        let transitions = {
            let store = Arc::clone(&store);
            self.meter
                .u64_observable_counter(TRANSITION_METRIC)
                .with_description(TRANSITION_DESCRIPTION)
                .with_callback(move |observer| store.observe_transitions(observer))
                .build()
        };
        let calls = self.call_metrics.then(|| {
            let counter = {
                let store = Arc::clone(&store);
                self.meter
                    .u64_observable_counter(CALLS_METRIC)
                    .with_description(CALLS_DESCRIPTION)
                    .with_callback(move |observer| store.observe_calls(observer))
                    .build()
            };
            let durations = self
                .meter
                .f64_histogram(CALL_DURATION_METRIC)
                .with_description(CALL_DURATION_DESCRIPTION)
                .with_unit(CALL_DURATION_UNIT)
                .with_boundaries(CALL_DURATION_BUCKETS.to_vec())
                .build();
            Calls {
                _counter: counter,
                durations,
            }
        });
        OpenTelemetryListener {
            inner: Arc::new(Inner {
                store,
                _state: state,
                _transitions: transitions,
                calls,
            }),
        }
    }
}

impl OpenTelemetryListener {
    /// A listener with the default settings on a meter of `provider` (scope
    /// [`SCOPE_NAME`]); the same as `OpenTelemetryListener::builder(provider).build()`.
    ///
    /// ```
    /// use fluxgate_core::CircuitBreaker;
    /// use fluxgate_otel::OpenTelemetryListener;
    ///
    /// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    /// let cb = CircuitBreaker::builder("payment_api")
    ///     .listener(OpenTelemetryListener::new(&provider))
    ///     .build()?;
    /// # drop(cb);
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn new<P: MeterProvider + ?Sized>(provider: &P) -> Self {
        Self::builder(provider).build()
    }

    /// Starts configuring a listener on a meter of `provider`, with the instrumentation
    /// scope [`SCOPE_NAME`] and this crate's version. Pass
    /// `&*opentelemetry::global::meter_provider()` to record through the global provider.
    ///
    /// ```
    /// use fluxgate_otel::OpenTelemetryListener;
    ///
    /// let listener = OpenTelemetryListener::builder(&*opentelemetry::global::meter_provider()).build();
    /// # drop(listener);
    /// ```
    pub fn builder<P: MeterProvider + ?Sized>(provider: &P) -> OpenTelemetryListenerBuilder {
        let scope = InstrumentationScope::builder(SCOPE_NAME)
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        Self::builder_with_meter(provider.meter_with_scope(scope))
    }

    /// Starts configuring a listener on a meter the application already has (its scope
    /// is then the application's).
    ///
    /// ```
    /// use fluxgate_otel::OpenTelemetryListener;
    /// use opentelemetry::metrics::MeterProvider;
    ///
    /// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    /// let meter = provider.meter("checkout");
    /// let listener = OpenTelemetryListener::builder_with_meter(meter).build();
    /// # drop(listener);
    /// ```
    pub fn builder_with_meter(meter: Meter) -> OpenTelemetryListenerBuilder {
        OpenTelemetryListenerBuilder {
            meter,
            call_metrics: false,
        }
    }

    /// Stops reporting one circuit: its six gauge points and its counters leave the
    /// export from the next collection on (see the [crate documentation](crate#retired-circuits)).
    /// Idempotent; other circuits are untouched; a later signal or attach of that circuit
    /// reports it again. [`Listener::on_detach`] calls it when a breaker is retired.
    ///
    /// ```
    /// use fluxgate_core::CircuitBreaker;
    /// use fluxgate_otel::OpenTelemetryListener;
    ///
    /// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    /// let listener = OpenTelemetryListener::new(&provider);
    /// let cb = CircuitBreaker::builder("tenant-42").listener(listener.clone()).build()?;
    /// drop(cb);
    /// listener.remove_circuit("tenant-42");
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn remove_circuit(&self, circuit_name: &str) {
        self.inner.store.remove(circuit_name);
    }

    /// Whether this listener records calls
    /// ([`call_metrics`](OpenTelemetryListenerBuilder::call_metrics)).
    ///
    /// ```
    /// use fluxgate_otel::OpenTelemetryListener;
    /// let provider = opentelemetry_sdk::metrics::SdkMeterProvider::builder().build();
    /// assert!(!OpenTelemetryListener::new(&provider).records_calls());
    /// ```
    pub fn records_calls(&self) -> bool {
        self.inner.calls.is_some()
    }

    fn record_call(&self, call: &CallEvent<'_>) {
        let Some(calls) = &self.inner.calls else {
            return;
        };
        self.inner
            .store
            .with_reported(call.circuit_name, |circuit| {
                circuit.count_call(call.outcome);
                if let Some(duration) = call.duration {
                    calls
                        .durations
                        .record(duration.as_secs_f64(), std::slice::from_ref(&circuit.name));
                }
            });
    }
}

impl fmt::Debug for OpenTelemetryListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenTelemetryListener")
            .finish_non_exhaustive()
    }
}

/// The sync face: `CircuitBreaker::builder(…).listener(otel.clone())`.
impl Listener for OpenTelemetryListener {
    /// PR-2: the circuit's state, then its `{old_state, new_state}` counter.
    fn on_signal(&self, signal: &Signal) -> Result<(), ListenerError> {
        self.inner
            .store
            .record(&signal.circuit_name, signal.old_state, signal.new_state);
        Ok(())
    }

    /// PR-3: the circuit is reported from the moment its breaker is built.
    fn on_attach(&self, circuit_name: &str, state: State) {
        self.inner.store.attach(circuit_name, state);
    }

    /// A retired breaker stops being reported: [`remove_circuit`](OpenTelemetryListener::remove_circuit).
    fn on_detach(&self, circuit_name: &str) {
        self.remove_circuit(circuit_name);
    }

    /// Whether the listener was built with
    /// [`call_metrics(true)`](OpenTelemetryListenerBuilder::call_metrics).
    fn wants_calls(&self) -> bool {
        self.records_calls()
    }

    /// Counts the call by outcome and records the duration of a call that ran, for a
    /// circuit the listener reports.
    fn on_call(&self, call: &CallEvent<'_>) {
        self.record_call(call);
    }

    fn name(&self) -> &str {
        "OpenTelemetryListener"
    }
}

/// The async face: `AsyncCircuitBreaker::builder(…).async_listener(otel.clone())`.
impl AsyncListener for OpenTelemetryListener {
    fn on_signal(&self, signal: Signal) -> ListenerFuture {
        // Recorded now, not when the future is polled: that keeps transition order.
        self.inner
            .store
            .record(&signal.circuit_name, signal.old_state, signal.new_state);
        Box::pin(std::future::ready(Ok(())))
    }

    fn on_attach(&self, circuit_name: &str, state: State) {
        self.inner.store.attach(circuit_name, state);
    }

    fn on_detach(&self, circuit_name: &str) {
        self.remove_circuit(circuit_name);
    }

    fn wants_calls(&self) -> bool {
        self.records_calls()
    }

    fn on_call(&self, call: &CallEvent<'_>) {
        self.record_call(call);
    }

    fn name(&self) -> &str {
        "OpenTelemetryListener"
    }
}
