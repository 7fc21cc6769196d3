//! PrometheusListener on the `prometheus` crate: the exact exposition (PR-1, PR-2, PR-3),
//! registries (PR-4) and dropping a circuit (PR-5). The listener is driven directly
//! through `Listener::on_attach`/`on_signal`, one step at a time.

#![cfg(feature = "prometheus")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use fluxgate::listeners::Listener;
use fluxgate::listeners::prometheus::{PrometheusListener, encode_text};
use fluxgate::{Signal, State};
use prometheus::Registry;

fn signal(circuit: &str, old: State, new: State) -> Signal {
    Signal::new(circuit, old, new, SystemTime::now())
}

fn fresh() -> (Registry, PrometheusListener) {
    let registry = Registry::new();
    let listener = PrometheusListener::with_registry(&registry).expect("fresh registry");
    (registry, listener)
}

fn text(registry: &Registry) -> String {
    encode_text(registry).expect("encodable")
}

/// The value of every `circuit_breaker_state` sample of `circuit`, by state.
fn states_of(registry: &Registry, circuit: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for family in registry.gather() {
        if family.name() != "circuit_breaker_state" {
            continue;
        }
        for metric in family.get_metric() {
            let labels: BTreeMap<&str, &str> = metric
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            if labels.get("circuit_name") == Some(&circuit) {
                out.insert(labels["state"].to_owned(), metric.get_gauge().get_value());
            }
        }
    }
    out
}

const HEAD_STATE: &str = "# HELP circuit_breaker_state Current state of the circuit breaker\n\
                          # TYPE circuit_breaker_state gauge\n";
const HEAD_TRANSITIONS: &str = "# HELP circuit_breaker_state_transition_total Count of state transitions for circuit breakers\n\
                                # TYPE circuit_breaker_state_transition_total counter\n";

#[test]
fn pr1_pr3_attach_exposes_closed_gauge_and_zero_counters_of_automatic_transitions() {
    let (registry, listener) = fresh();
    listener.on_attach("payment_api", State::Closed);
    let expected = format!(
        "{HEAD_STATE}\
circuit_breaker_state{{circuit_name=\"payment_api\",state=\"closed\"}} 1
circuit_breaker_state{{circuit_name=\"payment_api\",state=\"disabled\"}} 0
circuit_breaker_state{{circuit_name=\"payment_api\",state=\"forced_open\"}} 0
circuit_breaker_state{{circuit_name=\"payment_api\",state=\"half_open\"}} 0
circuit_breaker_state{{circuit_name=\"payment_api\",state=\"metrics_only\"}} 0
circuit_breaker_state{{circuit_name=\"payment_api\",state=\"open\"}} 0
{HEAD_TRANSITIONS}\
circuit_breaker_state_transition_total{{circuit_name=\"payment_api\",new_state=\"closed\",old_state=\"half_open\"}} 0
circuit_breaker_state_transition_total{{circuit_name=\"payment_api\",new_state=\"half_open\",old_state=\"open\"}} 0
circuit_breaker_state_transition_total{{circuit_name=\"payment_api\",new_state=\"open\",old_state=\"closed\"}} 0
circuit_breaker_state_transition_total{{circuit_name=\"payment_api\",new_state=\"open\",old_state=\"half_open\"}} 0
"
    );
    assert_eq!(text(&registry), expected);
}

#[test]
fn pr2_trip_and_probe_write_six_gauges_and_count_each_transition() {
    let (registry, listener) = fresh();
    listener.on_attach("payment_api", State::Closed);
    listener
        .on_signal(&signal("payment_api", State::Closed, State::Open))
        .unwrap();
    listener
        .on_signal(&signal("payment_api", State::Open, State::HalfOpen))
        .unwrap();
    listener
        .on_signal(&signal("payment_api", State::HalfOpen, State::Open))
        .unwrap();
    let expected = format!(
        "{HEAD_STATE}\
circuit_breaker_state{{circuit_name=\"payment_api\",state=\"closed\"}} 0
circuit_breaker_state{{circuit_name=\"payment_api\",state=\"disabled\"}} 0
circuit_breaker_state{{circuit_name=\"payment_api\",state=\"forced_open\"}} 0
circuit_breaker_state{{circuit_name=\"payment_api\",state=\"half_open\"}} 0
circuit_breaker_state{{circuit_name=\"payment_api\",state=\"metrics_only\"}} 0
circuit_breaker_state{{circuit_name=\"payment_api\",state=\"open\"}} 1
{HEAD_TRANSITIONS}\
circuit_breaker_state_transition_total{{circuit_name=\"payment_api\",new_state=\"closed\",old_state=\"half_open\"}} 0
circuit_breaker_state_transition_total{{circuit_name=\"payment_api\",new_state=\"half_open\",old_state=\"open\"}} 1
circuit_breaker_state_transition_total{{circuit_name=\"payment_api\",new_state=\"open\",old_state=\"closed\"}} 1
circuit_breaker_state_transition_total{{circuit_name=\"payment_api\",new_state=\"open\",old_state=\"half_open\"}} 1
"
    );
    assert_eq!(text(&registry), expected);
}

#[test]
fn pr2_a_signal_without_attach_creates_all_six_gauges_and_its_counter() {
    let (registry, listener) = fresh();
    listener
        .on_signal(&signal("db", State::Closed, State::ForcedOpen))
        .unwrap();
    let expected = format!(
        "{HEAD_STATE}\
circuit_breaker_state{{circuit_name=\"db\",state=\"closed\"}} 0
circuit_breaker_state{{circuit_name=\"db\",state=\"disabled\"}} 0
circuit_breaker_state{{circuit_name=\"db\",state=\"forced_open\"}} 1
circuit_breaker_state{{circuit_name=\"db\",state=\"half_open\"}} 0
circuit_breaker_state{{circuit_name=\"db\",state=\"metrics_only\"}} 0
circuit_breaker_state{{circuit_name=\"db\",state=\"open\"}} 0
{HEAD_TRANSITIONS}\
circuit_breaker_state_transition_total{{circuit_name=\"db\",new_state=\"forced_open\",old_state=\"closed\"}} 1
"
    );
    assert_eq!(text(&registry), expected);
}

#[test]
fn pr2_same_state_signal_counts_as_a_transition() {
    let (registry, listener) = fresh();
    listener.on_attach("db", State::Closed);
    for _ in 0..3 {
        listener
            .on_signal(&signal("db", State::Closed, State::Closed))
            .unwrap();
    }
    let exposition = text(&registry);
    assert!(
        exposition.contains(
            "circuit_breaker_state_transition_total{circuit_name=\"db\",new_state=\"closed\",old_state=\"closed\"} 3\n"
        ),
        "{exposition}"
    );
    assert!(exposition.contains("circuit_breaker_state{circuit_name=\"db\",state=\"closed\"} 1\n"));
}

#[test]
fn pr2_every_state_is_written_as_the_only_one() {
    let (registry, listener) = fresh();
    let mut old = State::Closed;
    for new in State::ALL.into_iter().chain(State::ALL.into_iter().rev()) {
        listener.on_signal(&signal("svc", old, new)).unwrap();
        let states = states_of(&registry, "svc");
        assert_eq!(states.len(), 6, "{states:?}");
        for state in State::ALL {
            let expected = if state == new { 1.0 } else { 0.0 };
            assert_eq!(states[state.as_str()], expected, "after {old} -> {new}");
        }
        old = new;
    }
}

#[test]
fn pr1_label_values_are_escaped() {
    let (registry, listener) = fresh();
    listener.on_attach("we\"ird\\name\nx", State::Closed);
    let exposition = text(&registry);
    assert!(
        exposition.contains(
            "circuit_breaker_state{circuit_name=\"we\\\"ird\\\\name\\nx\",state=\"closed\"} 1\n"
        ),
        "{exposition}"
    );
}

#[test]
fn pr4_a_listener_on_a_callers_registry_writes_only_there() {
    let (registry, listener) = fresh();
    let other = Registry::new();
    listener.on_attach("pr4-only-here", State::Closed);
    assert!(text(&registry).contains("pr4-only-here"));
    assert_eq!(text(&other), "");
    let default = encode_text(prometheus::default_registry()).unwrap();
    assert!(!default.contains("pr4-only-here"));
}

#[test]
fn pr4_the_registry_may_hold_other_metrics_and_clones_share_series() {
    let registry = Registry::new();
    let mine = prometheus::IntCounter::new("my_custom_metric", "Description").unwrap();
    registry.register(Box::new(mine.clone())).unwrap();
    let listener = PrometheusListener::with_registry(&registry).unwrap();
    let clone = listener.clone();
    listener.on_attach("a", State::Closed);
    clone
        .on_signal(&signal("a", State::Closed, State::Open))
        .unwrap();
    mine.inc();
    assert_eq!(states_of(&registry, "a")["open"], 1.0);
    assert!(text(&registry).contains("my_custom_metric 1\n"));
}

#[test]
fn pr4_a_second_listener_on_the_same_registry_is_a_clear_error() {
    let (registry, _listener) = fresh();
    let second = PrometheusListener::with_registry(&registry);
    assert!(matches!(second, Err(prometheus::Error::AlreadyReg)));
}

#[test]
fn pr4_new_writes_to_the_default_registry_and_every_new_shares_it() {
    let first = PrometheusListener::new();
    let second = PrometheusListener::new();
    first.on_attach("pr4-default", State::Closed);
    second
        .on_signal(&signal("pr4-default", State::Closed, State::Open))
        .unwrap();
    let default = prometheus::default_registry();
    let states = states_of(default, "pr4-default");
    assert_eq!(states["open"], 1.0);
    assert_eq!(states["closed"], 0.0);
    // `registry()` of a default listener is a handle on the process-wide registry.
    assert_eq!(states_of(second.registry(), "pr4-default"), states);
    let exposition = encode_text(default).unwrap();
    assert!(exposition.contains(
        "circuit_breaker_state_transition_total{circuit_name=\"pr4-default\",new_state=\"open\",old_state=\"closed\"} 1\n"
    ));
}

#[test]
fn pr5_remove_circuit_drops_one_circuit_idempotently_and_signals_recreate_it() {
    let (registry, listener) = fresh();
    listener.on_attach("tenant-1", State::Closed);
    listener.on_attach("tenant-2", State::Closed);
    listener
        .on_signal(&signal("tenant-1", State::Closed, State::Open))
        .unwrap();
    listener
        .on_signal(&signal("tenant-1", State::Open, State::Disabled))
        .unwrap();
    let before_other = states_of(&registry, "tenant-2");

    listener.remove_circuit("tenant-1");
    let exposition = text(&registry);
    assert!(!exposition.contains("tenant-1"), "{exposition}");
    assert_eq!(states_of(&registry, "tenant-2"), before_other);
    assert!(exposition.contains(
        "circuit_breaker_state_transition_total{circuit_name=\"tenant-2\",new_state=\"open\",old_state=\"closed\"} 0\n"
    ));

    listener.remove_circuit("tenant-1");
    listener.remove_circuit("never-seen");
    assert_eq!(text(&registry), exposition);

    listener
        .on_signal(&signal("tenant-1", State::Closed, State::Open))
        .unwrap();
    assert_eq!(states_of(&registry, "tenant-1")["open"], 1.0);
    assert!(text(&registry).contains(
        "circuit_breaker_state_transition_total{circuit_name=\"tenant-1\",new_state=\"open\",old_state=\"closed\"} 1\n"
    ));
}

#[test]
fn pr2_a_scrape_never_sees_a_circuit_in_two_states_or_in_none() {
    let (registry, listener) = fresh();
    listener.on_attach("race", State::Closed);
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let listener = listener.clone();
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut old = State::Closed;
            for i in 0..20_000 {
                let new = State::ALL[i % 6];
                listener.on_signal(&signal("race", old, new)).unwrap();
                old = new;
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut scrapes = 0;
    while !done.load(Ordering::Acquire) || scrapes == 0 {
        let states = states_of(&registry, "race");
        let ones = states.values().filter(|v| **v == 1.0).count();
        let zeros = states.values().filter(|v| **v == 0.0).count();
        assert_eq!((ones, zeros), (1, 5), "scrape {scrapes} saw {states:?}");
        scrapes += 1;
    }
    writer.join().unwrap();
}

#[test]
fn l5_the_listener_is_cheap_to_share_across_threads() {
    fn assert_traits<T: Listener + Clone + Send + Sync + std::fmt::Debug>() {}
    assert_traits::<PrometheusListener>();
    let (_registry, listener) = fresh();
    assert_eq!(listener.name(), "PrometheusListener");
}
