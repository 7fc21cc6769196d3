//! The `prometheus-client` backend: the same two series (PR-1), the same writes (PR-2,
//! PR-3), dropping a circuit (PR-5), in the caller's registry of the official crate.

#![cfg(feature = "prometheus-client")]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use fluxgate::listeners::Listener;
use fluxgate::listeners::prometheus::PrometheusClientListener;
use fluxgate::{CircuitBreaker, Signal, State};
use prometheus_client::registry::Registry;

fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    text
}

/// The exposition split into its header lines, in order, and its samples, as a set
/// (the crate does not order samples within a family).
fn split(text: &str) -> (Vec<String>, BTreeSet<String>) {
    let (headers, samples): (Vec<&str>, Vec<&str>) =
        text.lines().partition(|line| line.starts_with('#'));
    (
        headers.into_iter().map(str::to_owned).collect(),
        samples.into_iter().map(str::to_owned).collect(),
    )
}

fn signal(circuit: &str, old: State, new: State) -> Signal {
    Signal::new(circuit, old, new, SystemTime::now())
}

#[test]
fn pr1_pr2_pr3_the_exposition_has_the_two_series_with_their_exact_help_and_labels() {
    let mut registry = Registry::default();
    let listener = PrometheusClientListener::new(&mut registry);
    listener.on_attach("payment_api", State::Closed);
    listener
        .on_signal(&signal("payment_api", State::Closed, State::Open))
        .unwrap();
    let text = encode(&registry);
    let (headers, samples) = split(&text);
    assert_eq!(
        headers,
        [
            "# HELP circuit_breaker_state Current state of the circuit breaker",
            "# TYPE circuit_breaker_state gauge",
            "# HELP circuit_breaker_state_transition Count of state transitions for circuit breakers",
            "# TYPE circuit_breaker_state_transition counter",
            "# EOF",
        ]
    );
    let expected: BTreeSet<String> = [
        r#"circuit_breaker_state{circuit_name="payment_api",state="closed"} 0"#,
        r#"circuit_breaker_state{circuit_name="payment_api",state="open"} 1"#,
        r#"circuit_breaker_state{circuit_name="payment_api",state="half_open"} 0"#,
        r#"circuit_breaker_state{circuit_name="payment_api",state="metrics_only"} 0"#,
        r#"circuit_breaker_state{circuit_name="payment_api",state="disabled"} 0"#,
        r#"circuit_breaker_state{circuit_name="payment_api",state="forced_open"} 0"#,
        r#"circuit_breaker_state_transition_total{circuit_name="payment_api",old_state="closed",new_state="open"} 1"#,
        r#"circuit_breaker_state_transition_total{circuit_name="payment_api",old_state="open",new_state="half_open"} 0"#,
        r#"circuit_breaker_state_transition_total{circuit_name="payment_api",old_state="half_open",new_state="open"} 0"#,
        r#"circuit_breaker_state_transition_total{circuit_name="payment_api",old_state="half_open",new_state="closed"} 0"#,
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(samples, expected, "{text}");
}

#[test]
fn pr2_same_state_signals_count_and_breakers_drive_the_series() {
    let mut registry = Registry::default();
    let listener = PrometheusClientListener::new(&mut registry);
    let cb = CircuitBreaker::builder("db")
        .listener(listener.clone())
        .build()
        .unwrap();
    cb.reset();
    cb.reset();
    cb.metrics_only();
    let text = encode(&registry);
    assert!(text.contains(
        r#"circuit_breaker_state_transition_total{circuit_name="db",old_state="closed",new_state="closed"} 2"#
    ));
    assert!(text.contains(r#"circuit_breaker_state{circuit_name="db",state="metrics_only"} 1"#));
    assert!(text.contains(r#"circuit_breaker_state{circuit_name="db",state="closed"} 0"#));
}

#[test]
fn pr5_remove_circuit_drops_one_circuit_idempotently() {
    let mut registry = Registry::default();
    let listener = PrometheusClientListener::new(&mut registry);
    listener.on_attach("a", State::Closed);
    listener.on_attach("b", State::Closed);
    listener
        .on_signal(&signal("a", State::Closed, State::Disabled))
        .unwrap();
    listener.remove_circuit("a");
    listener.remove_circuit("a");
    let text = encode(&registry);
    assert!(!text.contains("\"a\""), "{text}");
    assert!(text.contains(r#"circuit_breaker_state{circuit_name="b",state="closed"} 1"#));
    listener
        .on_signal(&signal("a", State::Disabled, State::Closed))
        .unwrap();
    assert!(
        encode(&registry).contains(r#"circuit_breaker_state{circuit_name="a",state="closed"} 1"#)
    );
}

#[test]
fn pr2_a_scrape_never_sees_a_circuit_in_two_states_or_in_none() {
    let mut registry = Registry::default();
    let listener = PrometheusClientListener::new(&mut registry);
    listener.on_attach("race", State::Closed);
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let listener = listener.clone();
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut old = State::Closed;
            for i in 0..5_000 {
                let new = State::ALL[i % 6];
                listener.on_signal(&signal("race", old, new)).unwrap();
                old = new;
            }
            done.store(true, Ordering::Release);
        })
    };
    let mut scrapes = 0;
    while !done.load(Ordering::Acquire) || scrapes == 0 {
        let text = encode(&registry);
        let ones = text
            .lines()
            .filter(|l| l.starts_with("circuit_breaker_state{") && l.ends_with(" 1"))
            .count();
        assert_eq!(ones, 1, "scrape {scrapes}:\n{text}");
        scrapes += 1;
    }
    writer.join().unwrap();
}
