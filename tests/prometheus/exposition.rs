//! The listener's compact store: the direct text writer that `encode_text` and the server
//! use gives the same bytes as `TextEncoder` over `Registry::gather`, whatever else the
//! registry holds, and `on_detach` drops a retired circuit's series.

#![cfg(feature = "prometheus")]

use std::time::SystemTime;

use fluxgate::listeners::Listener;
use fluxgate::listeners::prometheus::{PrometheusListener, encode_text};
use fluxgate::{Signal, State};
use prometheus::{IntCounter, IntGaugeVec, Opts, Registry, TextEncoder};

fn gathered(registry: &Registry) -> String {
    TextEncoder::new()
        .encode_to_string(&registry.gather())
        .expect("encodable")
}

fn series(text: &str, circuit: &str) -> usize {
    let label = format!("circuit_name=\"{circuit}\"");
    text.lines()
        .filter(|line| !line.starts_with('#') && line.contains(&label))
        .count()
}

/// Names that need escaping, sort in surprising places, or are empty.
const NAMES: [&str; 9] = [
    "payment_api",
    "a\"quoted\"",
    "back\\slash",
    "new\nline",
    "<script>alert(1)</script>",
    "zürich-€",
    "",
    "Z_upper",
    "tab\there",
];

fn exercise(listener: &PrometheusListener) {
    for (i, name) in NAMES.iter().enumerate() {
        listener.on_attach(name, State::Closed);
        let signal = |old, new| {
            listener
                .on_signal(&Signal::new(*name, old, new, SystemTime::now()))
                .unwrap();
        };
        for _ in 0..i {
            signal(State::Closed, State::Open);
            signal(State::Open, State::HalfOpen);
            signal(State::HalfOpen, State::Closed);
        }
        if i % 3 == 0 {
            signal(State::Closed, State::ForcedOpen);
        }
        if i % 4 == 1 {
            signal(State::Closed, State::Closed);
            signal(State::Closed, State::MetricsOnly);
            signal(State::MetricsOnly, State::Disabled);
        }
    }
}

#[test]
fn direct_writer_gives_the_bytes_of_gather_and_text_encoder() {
    let registry = Registry::new();
    let listener = PrometheusListener::with_registry(&registry).unwrap();
    assert_eq!(encode_text(&registry).unwrap(), gathered(&registry));
    assert_eq!(encode_text(&registry).unwrap(), "");
    // Other families sort before, between and after the listener's two.
    let before = IntCounter::new("aaa_requests_total", "Requests.").unwrap();
    let between = IntGaugeVec::new(
        Opts::new("circuit_breaker_state_budget", "Between the two families."),
        &["pool"],
    )
    .unwrap();
    let after = IntCounter::new("zzz_total", "Last.").unwrap();
    registry.register(Box::new(before.clone())).unwrap();
    registry.register(Box::new(between.clone())).unwrap();
    registry.register(Box::new(after.clone())).unwrap();
    before.inc_by(3);
    between.with_label_values(&["x"]).set(-2);
    after.inc();
    exercise(&listener);
    let direct = encode_text(&registry).unwrap();
    assert_eq!(direct, gathered(&registry));
    assert!(
        direct.contains("circuit_breaker_state_budget{pool=\"x\"} -2\n"),
        "{direct}"
    );
    assert!(
        direct.contains(r#"circuit_breaker_state{circuit_name="a\"quoted\"",state="disabled"} 1"#),
        "{direct}"
    );
    assert!(direct.contains(r#"circuit_name="new\nline""#), "{direct}");
    // Only the listener's families.
    let only = Registry::new();
    let alone = PrometheusListener::with_registry(&only).unwrap();
    exercise(&alone);
    assert_eq!(encode_text(&only).unwrap(), gathered(&only));
}

#[test]
fn direct_writer_matches_gather_for_a_thousand_circuits() {
    let registry = Registry::new();
    let listener = PrometheusListener::with_registry(&registry).unwrap();
    for i in (0..1000).rev() {
        let name = format!("tenant_{i}");
        listener.on_attach(&name, State::Closed);
        if i % 7 == 0 {
            listener
                .on_signal(&Signal::new(
                    name,
                    State::Closed,
                    State::Open,
                    SystemTime::now(),
                ))
                .unwrap();
        }
    }
    let direct = encode_text(&registry).unwrap();
    assert_eq!(direct, gathered(&registry));
    // Six gauges and the four automatic counters per circuit; the trips add no series.
    assert_eq!(
        direct.lines().filter(|l| !l.starts_with('#')).count(),
        10_000
    );
    assert!(direct.contains(
        r#"circuit_breaker_state_transition_total{circuit_name="tenant_7",new_state="open",old_state="closed"} 1"#
    ));
}

#[test]
fn a_registry_with_a_prefix_or_common_labels_is_encoded_through_gather() {
    let labels = [("region".to_owned(), "eu".to_owned())].into();
    for registry in [
        Registry::new_custom(Some("app".into()), None).unwrap(),
        Registry::new_custom(None, Some(labels)).unwrap(),
    ] {
        let listener = PrometheusListener::with_registry(&registry).unwrap();
        exercise(&listener);
        let text = encode_text(&registry).unwrap();
        assert_eq!(text, gathered(&registry));
        assert!(
            text.contains("app_circuit_breaker_state{") || text.contains("region=\"eu\""),
            "{text}"
        );
    }
}

#[test]
fn on_detach_drops_the_retired_circuits_series() {
    let registry = Registry::new();
    let listener = PrometheusListener::with_registry(&registry).unwrap();
    exercise(&listener);
    let before = encode_text(&registry).unwrap();
    assert_eq!(series(&before, "payment_api"), 6 + 4 + 1);
    let others = series(&before, "Z_upper");
    assert!(others > 0);
    listener.on_detach("payment_api");
    let after = encode_text(&registry).unwrap();
    assert_eq!(series(&after, "payment_api"), 0, "{after}");
    assert_eq!(series(&after, "Z_upper"), others);
    assert_eq!(after, gathered(&registry));
    // Idempotent, and a later attach brings the circuit back at its first values.
    listener.on_detach("payment_api");
    listener.on_detach("never-seen");
    listener.on_attach("payment_api", State::Open);
    let again = encode_text(&registry).unwrap();
    assert_eq!(series(&again, "payment_api"), 6 + 4);
    assert!(again.contains(r#"circuit_breaker_state{circuit_name="payment_api",state="open"} 1"#));
}

#[test]
fn a_detached_breaker_leaves_no_series() {
    let registry = Registry::new();
    let listener = PrometheusListener::with_registry(&registry).unwrap();
    let keep = fluxgate::CircuitBreaker::builder("keep")
        .listener(listener.clone())
        .build()
        .unwrap();
    listener.on_attach("tenant-9", State::Closed);
    assert_eq!(series(&encode_text(&registry).unwrap(), "tenant-9"), 10);
    listener.on_detach("tenant-9");
    let text = encode_text(&registry).unwrap();
    assert_eq!(series(&text, "tenant-9"), 0);
    assert_eq!(series(&text, "keep"), 10);
    drop(keep);
}

#[test]
fn one_long_circuit_name_costs_its_own_length_once_not_once_per_circuit() {
    // The old writer reserved, for every circuit, room for the first circuit's name: a
    // 1 MB name sorting first among 200 circuits made a 10 MB exposition ask for 1.2 GB,
    // and among 10 000 the process aborted on a 63 GB allocation (R-5).
    let registry = Registry::new();
    let listener = PrometheusListener::with_registry(&registry).unwrap();
    listener.on_attach(&format!("0{}", "x".repeat(1 << 20)), State::Closed);
    for i in 0..200 {
        listener.on_attach(&format!("tenant-{i}"), State::Closed);
    }
    let text = encode_text(&registry).unwrap();
    assert_eq!(text, gathered(&registry));
    assert!(
        text.capacity() < 2 * text.len(),
        "{} MB reserved for {} MB",
        text.capacity() >> 20,
        text.len() >> 20
    );
}
