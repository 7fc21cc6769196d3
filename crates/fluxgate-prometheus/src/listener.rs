//! The `prometheus`-crate backend: [`PrometheusListener`].
//!
//! The `prometheus` crate writes the classic text exposition format that Python's
//! `prometheus_client` serves and that `promtool check metrics` validates, and it has a
//! process-wide default registry, just like Python's. So `PrometheusListener::new()` is a
//! drop-in for the seed's `PrometheusListener()`.
//!
//! The two families live in a compact per-circuit store rather than in the crate's metric
//! vectors, so that a scrape of 10 000 circuits takes milliseconds (see
//! `encode_registry`).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, LabelPair, MetricFamily, MetricType};
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use super::calls::{CallHandles, CallSeries, outcome_index};
use super::{
    CALL_DURATION_BUCKETS, CALL_DURATION_HELP, CALL_DURATION_METRIC, CALLS_HELP, CALLS_METRIC,
    Exporter, STATE_HELP, STATE_METRIC, STORE_CONNECTED_HELP, STORE_CONNECTED_METRIC, Sink,
    TRANSITION_HELP, TRANSITION_METRIC,
};
use fluxgate_core::listeners::{CallEvent, CallOutcome, Listener, ListenerError};
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
/// The series live in the listener's own compact store (per circuit: its name, its current
/// state and its transition counts), registered in the registry as a collector: `gather()`
/// sees the two families as usual, and [`encode_text`](super::encode_text) writes them
/// straight from the store, in the same bytes, without `gather`'s per-series objects and
/// sort. [`Listener::on_detach`] drops a retired circuit's series.
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
    /// The call series, when this listener was made with
    /// [`with_call_metrics`](PrometheusListener::with_call_metrics).
    calls: Option<Arc<Calls>>,
}

struct Inner {
    exporter: Exporter<Arc<Store>>,
    registry: Registry,
    /// The call metrics, registered in `registry` by the first `with_call_metrics`.
    calls: Mutex<Option<Arc<Calls>>>,
    /// `circuit_breaker_store_connected`, registered when a store first reports.
    store: Mutex<Option<IntGaugeVec>>,
}

/// The opt-in call metrics: the two vectors and the handles of each attached circuit.
struct Calls {
    counter: IntCounterVec,
    durations: HistogramVec,
    series: CallSeries<CircuitCalls>,
}

/// One circuit's call series.
struct CircuitCalls {
    outcomes: [IntCounter; 4],
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
    fn register(registry: &Registry) -> Result<Calls, prometheus::Error> {
        // The `prometheus` crate writes a counter's name as given, `_total` included.
        let counter = IntCounterVec::new(
            Opts::new(CALLS_METRIC, CALLS_HELP),
            &["circuit_name", "outcome"],
        )?;
        let durations = HistogramVec::new(
            HistogramOpts::new(CALL_DURATION_METRIC, CALL_DURATION_HELP)
                .buckets(CALL_DURATION_BUCKETS.to_vec()),
            &["circuit_name"],
        )?;
        registry.register(Box::new(counter.clone()))?;
        if let Err(error) = registry.register(Box::new(durations.clone())) {
            let _ = registry.unregister(Box::new(counter));
            return Err(error);
        }
        Ok(Calls {
            counter,
            durations,
            series: CallSeries::new(),
        })
    }

    fn attach(&self, circuit_name: &str) {
        self.series.attach(circuit_name, || CircuitCalls {
            outcomes: CallOutcome::ALL
                .map(|o| self.counter.with_label_values(&[circuit_name, o.as_str()])),
            duration: self.durations.with_label_values(&[circuit_name]),
        });
    }

    fn detach(&self, circuit_name: &str) {
        if self.series.detach(circuit_name).is_some() {
            for o in CallOutcome::ALL {
                let _ = self
                    .counter
                    .remove_label_values(&[circuit_name, o.as_str()]);
            }
            let _ = self.durations.remove_label_values(&[circuit_name]);
        }
    }
}

/// The number of `(old_state, new_state)` pairs.
const PAIRS: usize = State::ALL.len() * State::ALL.len();
/// `Circuit::state` before the circuit's gauges exist.
const NO_STATE: u8 = u8::MAX;

/// The two families, kept compactly: per circuit its name, its current state and its
/// transition counts. The six gauge values of a circuit are derived from its one current
/// state, so a scrape never sees it in two states at once, or in none.
///
/// Writers are serialised by the exporter's lock; the map's own lock is taken for writing
/// only when a circuit comes or goes, so a scrape reads while signals keep being recorded.
pub(crate) struct Store {
    circuits: RwLock<BTreeMap<Box<str>, Circuit>>,
}

/// One circuit's series.
struct Circuit {
    /// `circuit_name="…"`, escaped for the text format, when escaping changes the name.
    escaped: Option<Box<str>>,
    /// Index in [`State::ALL`] of the state whose gauge is 1, or [`NO_STATE`].
    state: AtomicU8,
    /// Bit `old * 6 + new` is set once the counter of that pair exists.
    present: AtomicU64,
    counts: [AtomicU64; PAIRS],
}

fn state_index(state: State) -> usize {
    State::ALL
        .iter()
        .position(|s| *s == state)
        .unwrap_or_default()
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl Circuit {
    fn new(name: &str) -> Circuit {
        let escaped = escape_label(name);
        Circuit {
            escaped: (escaped != name).then(|| escaped.into_owned().into_boxed_str()),
            state: AtomicU8::new(NO_STATE),
            present: AtomicU64::new(0),
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn label<'a>(&'a self, name: &'a str) -> &'a str {
        self.escaped.as_deref().unwrap_or(name)
    }
}

/// Escapes a label value as the `prometheus` crate's text encoder does: `\`, `\n`, `\"`.
fn escape_label(value: &str) -> std::borrow::Cow<'_, str> {
    if !value.contains(['\\', '\n', '"']) {
        return value.into();
    }
    let mut escaped = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '"' => escaped.push_str("\\\""),
            c => escaped.push(c),
        }
    }
    escaped.into()
}

/// The orders in which `Registry::gather` sorts one circuit's series (by label value),
/// with the constant tail of each line pre-rendered.
struct Layout {
    /// Gauges: state index, and `,state="…"} `.
    states: Vec<(usize, String)>,
    /// Counters, by new state then old state: pair index, and
    /// `,new_state="…",old_state="…"} `.
    pairs: Vec<(usize, String)>,
}

fn layout() -> &'static Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let mut states: Vec<(usize, String)> = State::ALL
            .iter()
            .enumerate()
            .map(|(i, s)| (i, format!(",state=\"{}\"}} ", s.as_str())))
            .collect();
        states.sort_by_key(|&(i, _)| State::ALL[i].as_str());
        let mut pairs: Vec<(usize, usize)> = (0..State::ALL.len())
            .flat_map(|old| (0..State::ALL.len()).map(move |new| (old, new)))
            .collect();
        pairs.sort_by_key(|&(old, new)| (State::ALL[new].as_str(), State::ALL[old].as_str()));
        let pairs = pairs
            .into_iter()
            .map(|(old, new)| {
                (
                    old * State::ALL.len() + new,
                    format!(
                        ",new_state=\"{}\",old_state=\"{}\"}} ",
                        State::ALL[new].as_str(),
                        State::ALL[old].as_str()
                    ),
                )
            })
            .collect();
        Layout { states, pairs }
    })
}

/// A counter's value as the text encoder writes it (an `f64`'s `Display`).
fn push_count(out: &mut String, count: u64) {
    use std::fmt::Write as _;
    // Below 2^53 an f64 holds the count exactly and prints as the integer.
    if count < 1 << 53 {
        let _ = write!(out, "{count}");
    } else {
        let _ = write!(out, "{}", count as f64);
    }
}

impl Store {
    fn new() -> Store {
        Store {
            circuits: RwLock::new(BTreeMap::new()),
        }
    }

    /// Runs `f` on the circuit, creating it first if needed.
    fn with_circuit(&self, circuit_name: &str, f: impl FnOnce(&Circuit)) {
        if let Some(circuit) = read(&self.circuits).get(circuit_name) {
            f(circuit);
            return;
        }
        let mut circuits = write(&self.circuits);
        let circuit = circuits
            .entry(circuit_name.into())
            .or_insert_with(|| Circuit::new(circuit_name));
        f(circuit);
    }

    /// Writes the classic text exposition of `others` (as gathered, sorted by name) and of
    /// the two families of this store, each family at its place in name order: exactly
    /// what `TextEncoder` writes for a `gather()` that holds all of them.
    fn encode_with(
        &self,
        others: &[MetricFamily],
        out: &mut String,
    ) -> Result<(), prometheus::Error> {
        let circuits = read(&self.circuits);
        let encoder = TextEncoder::new();
        let mut ours = [STATE_METRIC, TRANSITION_METRIC].into_iter().peekable();
        for family in others {
            while let Some(name) = ours.next_if(|name| *name < family.name()) {
                write_family(&circuits, name, out);
            }
            encoder.encode_utf8(std::slice::from_ref(family), out)?;
        }
        for name in ours {
            write_family(&circuits, name, out);
        }
        Ok(())
    }

    /// The two families in the `prometheus` crate's model, for `gather`.
    fn families(&self) -> Vec<MetricFamily> {
        let circuits = read(&self.circuits);
        let label = |name: &str, value: &str| {
            let mut pair = LabelPair::default();
            pair.set_name(name.to_owned());
            pair.set_value(value.to_owned());
            pair
        };
        let mut gauges = Vec::new();
        let mut counters = Vec::new();
        for (name, circuit) in circuits.iter() {
            let current = usize::from(circuit.state.load(Ordering::Acquire));
            if current < State::ALL.len() {
                for (i, state) in State::ALL.iter().enumerate() {
                    let mut gauge = proto::Gauge::default();
                    gauge.set_value(if i == current { 1.0 } else { 0.0 });
                    let mut metric = proto::Metric::default();
                    metric.set_label(vec![
                        label("circuit_name", name),
                        label("state", state.as_str()),
                    ]);
                    metric.set_gauge(gauge);
                    gauges.push(metric);
                }
            }
            let present = circuit.present.load(Ordering::Acquire);
            for (old, old_state) in State::ALL.iter().enumerate() {
                for (new, new_state) in State::ALL.iter().enumerate() {
                    let pair = old * State::ALL.len() + new;
                    if present & (1 << pair) == 0 {
                        continue;
                    }
                    let mut counter = proto::Counter::default();
                    counter.set_value(circuit.counts[pair].load(Ordering::Acquire) as f64);
                    let mut metric = proto::Metric::default();
                    metric.set_label(vec![
                        label("circuit_name", name),
                        label("new_state", new_state.as_str()),
                        label("old_state", old_state.as_str()),
                    ]);
                    metric.set_counter(counter);
                    counters.push(metric);
                }
            }
        }
        let family = |name: &str, help: &str, kind, metrics| {
            let mut family = MetricFamily::default();
            family.set_name(name.to_owned());
            family.set_help(help.to_owned());
            family.set_field_type(kind);
            family.set_metric(metrics);
            family
        };
        vec![
            family(STATE_METRIC, STATE_HELP, MetricType::GAUGE, gauges),
            family(
                TRANSITION_METRIC,
                TRANSITION_HELP,
                MetricType::COUNTER,
                counters,
            ),
        ]
    }
}

/// The bytes of a family of `lines` lines per circuit, each `fixed` bytes plus the
/// circuit's label: from every circuit's own label, so that one long name counts once
/// (taking one name's length for all circuits asked for gigabytes with a 1 MB name).
fn estimate(circuits: &BTreeMap<Box<str>, Circuit>, lines: usize, fixed: usize) -> usize {
    circuits
        .iter()
        .map(|(name, circuit)| {
            lines.saturating_mul(fixed.saturating_add(circuit.label(name).len()))
        })
        .fold(0, usize::saturating_add)
}

/// Writes one of the two families straight from the store, in `gather`'s order; nothing
/// for a family without series (`gather` drops those).
fn write_family(circuits: &BTreeMap<Box<str>, Circuit>, family: &str, out: &mut String) {
    let layout = layout();
    if family == STATE_METRIC {
        let mut header = false;
        for (name, circuit) in circuits {
            let current = usize::from(circuit.state.load(Ordering::Acquire));
            if current >= State::ALL.len() {
                continue;
            }
            if !header {
                header = true;
                out.reserve(estimate(circuits, 6, 70));
                out.push_str(concat!(
                    "# HELP circuit_breaker_state Current state of the circuit breaker\n",
                    "# TYPE circuit_breaker_state gauge\n"
                ));
            }
            let label = circuit.label(name);
            for (i, tail) in &layout.states {
                out.push_str("circuit_breaker_state{circuit_name=\"");
                out.push_str(label);
                out.push('"');
                out.push_str(tail);
                out.push(if *i == current { '1' } else { '0' });
                out.push('\n');
            }
        }
    } else {
        let mut header = false;
        for (name, circuit) in circuits {
            let present = circuit.present.load(Ordering::Acquire);
            if present == 0 {
                continue;
            }
            if !header {
                header = true;
                out.reserve(estimate(circuits, 4, 110));
                out.push_str(concat!(
                    "# HELP circuit_breaker_state_transition_total Count of state transitions for circuit breakers\n",
                    "# TYPE circuit_breaker_state_transition_total counter\n"
                ));
            }
            let label = circuit.label(name);
            for (pair, tail) in &layout.pairs {
                if present & (1 << pair) == 0 {
                    continue;
                }
                out.push_str("circuit_breaker_state_transition_total{circuit_name=\"");
                out.push_str(label);
                out.push('"');
                out.push_str(tail);
                push_count(out, circuit.counts[*pair].load(Ordering::Acquire));
                out.push('\n');
            }
        }
    }
}

thread_local! {
    /// Set while [`encode_registry`] gathers on this thread: the listener collectors in
    /// the registry put their store here instead of building their families.
    static DIRECT: RefCell<Option<Vec<Arc<Store>>>> = const { RefCell::new(None) };
}

/// Ends direct mode on this thread however the gathering ends.
struct DirectMode;

impl DirectMode {
    fn begin() -> DirectMode {
        DIRECT.with(|direct| *direct.borrow_mut() = Some(Vec::new()));
        DirectMode
    }

    fn stores(&self) -> Vec<Arc<Store>> {
        DIRECT.with(|direct| direct.borrow_mut().take().unwrap_or_default())
    }
}

impl Drop for DirectMode {
    fn drop(&mut self) {
        DIRECT.with(|direct| *direct.borrow_mut() = None);
    }
}

/// The classic text exposition of `registry`, byte for byte what
/// `TextEncoder::encode_to_string(&registry.gather())` writes, but with a listener's two
/// families written straight from its store instead of through `gather` (which builds and
/// sorts one object per series).
///
/// The collector answers a gathering in direct mode with a one-series probe of its gauge
/// family and hands over its store. When the probe comes back as sent (the registry adds
/// no prefix and no common labels, and nothing else wrote into the family), the other
/// families are encoded as usual and the store's two are spliced in at their place in
/// name order. Otherwise the registry is gathered and encoded the usual way.
pub(crate) fn encode_registry(registry: &Registry) -> Result<String, prometheus::Error> {
    let (mut families, stores) = {
        let direct = DirectMode::begin();
        let families = registry.gather();
        (families, direct.stores())
    };
    if let [store] = &stores[..] {
        let probe = families
            .iter()
            .position(|family| family.name() == STATE_METRIC);
        // In direct mode the collector sends no counter family: one in the gathering was
        // written by another collector, and `gather` would merge it with ours.
        let intact = probe.is_some_and(|at| {
            let metrics = families[at].get_metric();
            metrics.len() == 1 && metrics[0].get_label().len() == 1
        }) && families
            .iter()
            .all(|family| family.name() != TRANSITION_METRIC);
        if let (true, Some(at)) = (intact, probe) {
            families.remove(at);
            let mut out = String::new();
            store.encode_with(&families, &mut out)?;
            return Ok(out);
        }
    }
    if stores.is_empty() {
        // No listener in this registry: what was gathered is complete.
        return TextEncoder::new().encode_to_string(&families);
    }
    TextEncoder::new().encode_to_string(&registry.gather())
}

/// What the registry scrapes: the listener's store, as two metric families.
struct StoreCollector {
    store: Arc<Store>,
    descs: Vec<Desc>,
}

impl StoreCollector {
    fn new(store: Arc<Store>) -> StoreCollector {
        // `Desc::new` rejects only invalid metric or label names; these are constants,
        // checked by the tests, so the expectations cannot fail at run time.
        let desc = |name: &str, help: &str, labels: &[&str]| {
            Desc::new(
                name.to_owned(),
                help.to_owned(),
                labels.iter().map(|label| (*label).to_owned()).collect(),
                HashMap::new(),
            )
            .expect("valid constant metric description")
        };
        StoreCollector {
            store,
            descs: vec![
                desc(STATE_METRIC, STATE_HELP, &["circuit_name", "state"]),
                desc(
                    TRANSITION_METRIC,
                    TRANSITION_HELP,
                    &["circuit_name", "old_state", "new_state"],
                ),
            ],
        }
    }
}

impl Collector for StoreCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let direct = DIRECT.with(|direct| match direct.borrow_mut().as_mut() {
            Some(stores) => {
                stores.push(Arc::clone(&self.store));
                true
            }
            None => false,
        });
        if !direct {
            return self.store.families();
        }
        let mut pair = LabelPair::default();
        pair.set_name("circuit_name".to_owned());
        let mut metric = proto::Metric::default();
        metric.set_label(vec![pair]);
        metric.set_gauge(proto::Gauge::default());
        let mut probe = MetricFamily::default();
        probe.set_name(STATE_METRIC.to_owned());
        probe.set_field_type(MetricType::GAUGE);
        probe.set_metric(vec![metric]);
        vec![probe]
    }
}

impl Sink for Arc<Store> {
    fn set_state(&self, circuit_name: &str, state: State, value: i64) -> Result<(), ListenerError> {
        // The gauges are derived from the one current state: only the 1 is written.
        if value != 0 {
            self.write_states(circuit_name, state)?;
        }
        Ok(())
    }

    fn write_states(&self, circuit_name: &str, current: State) -> Result<(), ListenerError> {
        let index = u8::try_from(state_index(current)).unwrap_or_default();
        self.with_circuit(circuit_name, |circuit| {
            circuit.state.store(index, Ordering::Release);
        });
        Ok(())
    }

    fn add_transition(
        &self,
        circuit_name: &str,
        old_state: State,
        new_state: State,
        by: u64,
    ) -> Result<(), ListenerError> {
        let pair = state_index(old_state) * State::ALL.len() + state_index(new_state);
        self.with_circuit(circuit_name, |circuit| {
            circuit.counts[pair].fetch_add(by, Ordering::AcqRel);
            circuit.present.fetch_or(1 << pair, Ordering::AcqRel);
        });
        Ok(())
    }

    fn remove_circuit(&self, circuit_name: &str) {
        // An absent circuit is not an error: removal is idempotent (PR-5).
        write(&self.circuits).remove(circuit_name);
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

    fn unregistered(registry: Registry) -> (Self, Box<StoreCollector>) {
        let store = Arc::new(Store::new());
        let collector = Box::new(StoreCollector::new(Arc::clone(&store)));
        let listener = PrometheusListener {
            inner: Arc::new(Inner {
                exporter: Exporter::new(store, Arc::new(Mutex::new(()))),
                registry,
                calls: Mutex::new(None),
                store: Mutex::new(None),
            }),
            calls: None,
        };
        (listener, collector)
    }

    /// This listener, also counting every call of the breakers it is attached to
    /// (opt-in call metrics): [`CALLS_METRIC`](super::CALLS_METRIC)
    /// `{circuit_name, outcome}` and the histogram
    /// [`CALL_DURATION_METRIC`](super::CALL_DURATION_METRIC) `{circuit_name}` (buckets
    /// [`CALL_DURATION_BUCKETS`](super::CALL_DURATION_BUCKETS)), registered in the
    /// listener's registry the first time (later calls, on any clone, share them). Only
    /// breakers built with the returned listener (or a clone of it) are counted; each
    /// circuit's series appear at zero when it is attached and go when it is detached.
    ///
    /// A call then costs a lookup of the circuit's handles and two atomic adds, plus the
    /// two clock readings that time it (see BENCHMARKS.md).
    ///
    /// ```
    /// use fluxgate_prometheus::PrometheusListener;
    /// use fluxgate_core::CircuitBreaker;
    ///
    /// let registry = prometheus::Registry::new();
    /// let listener = PrometheusListener::with_registry(&registry)?.with_call_metrics()?;
    /// let cb = CircuitBreaker::builder("payment_api").listener(listener).build()?;
    /// cb.call(|| Ok::<_, std::io::Error>(()))?;
    /// let text = prometheus::TextEncoder::new().encode_to_string(&registry.gather())?;
    /// assert!(text.contains(r#"circuit_breaker_calls_total{circuit_name="payment_api",outcome="success"} 1"#));
    /// assert!(text.contains(r#"circuit_breaker_call_duration_seconds_count{circuit_name="payment_api"} 1"#));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_call_metrics(mut self) -> Result<Self, prometheus::Error> {
        let mut calls = self
            .inner
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let shared = match &*calls {
            Some(shared) => Arc::clone(shared),
            None => {
                let shared = Arc::new(Calls::register(&self.inner.registry)?);
                *calls = Some(Arc::clone(&shared));
                shared
            }
        };
        drop(calls);
        self.calls = Some(shared);
        Ok(self)
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
        if let Some(store) = &*self
            .inner
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
        {
            let _ = store.remove_label_values(&[circuit_name]);
        }
        let calls = self
            .inner
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(calls) = calls {
            calls.detach(circuit_name);
        }
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
        if let Some(calls) = &self.calls {
            calls.attach(circuit_name);
        }
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

    fn wants_calls(&self) -> bool {
        self.calls.is_some()
    }

    fn on_call(&self, call: &CallEvent<'_>) {
        if let Some(calls) = &self.calls {
            calls.series.record(call);
        }
    }

    /// Sets [`STORE_CONNECTED_METRIC`](super::STORE_CONNECTED_METRIC)
    /// `{circuit_name}` to 1 or 0, registering the gauge in the listener's registry the
    /// first time a store reports (breakers without a store add nothing to the
    /// exposition).
    fn on_store_connection(&self, circuit_name: &str, connected: bool) {
        let mut store = self
            .inner
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if store.is_none() {
            let gauge = IntGaugeVec::new(
                Opts::new(STORE_CONNECTED_METRIC, STORE_CONNECTED_HELP),
                &["circuit_name"],
            )
            .and_then(|gauge| {
                self.inner.registry.register(Box::new(gauge.clone()))?;
                Ok(gauge)
            });
            match gauge {
                Ok(gauge) => *store = Some(gauge),
                Err(error) => {
                    tracing::error!(
                        target: "fluxgate",
                        listener = "PrometheusListener",
                        %error,
                        "cannot register the store gauge"
                    );
                    return;
                }
            }
        }
        if let Some(gauge) = &*store {
            gauge
                .with_label_values(&[circuit_name])
                .set(i64::from(connected));
        }
    }

    fn name(&self) -> &str {
        "PrometheusListener"
    }
}
