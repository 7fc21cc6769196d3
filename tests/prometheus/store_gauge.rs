//! The store gauge: `circuit_breaker_store_connected` follows a breaker's shared store
//! (issue 14's failure model), and exists only for breakers with a store.

#![cfg(feature = "prometheus")]

use fluxgate::CircuitBreaker;
use fluxgate::clock::ManualClock;
use fluxgate::listeners::prometheus::{PrometheusListener, encode_text};
use fluxgate::store::MemoryStore;
use prometheus::Registry;

fn gauge_lines(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("circuit_breaker_store_connected"))
        .collect()
}

#[test]
fn the_store_gauge_follows_the_connection_and_leaves_with_the_circuit() {
    let registry = Registry::new();
    let listener = PrometheusListener::with_registry(&registry).unwrap();
    let store = MemoryStore::new(ManualClock::new());
    let fleet = CircuitBreaker::builder("payment_api")
        .store(store.clone())
        .listener(listener.clone())
        .build()
        .unwrap();
    let _local = CircuitBreaker::builder("local_only")
        .listener(listener.clone())
        .build()
        .unwrap();
    let text = encode_text(&registry).unwrap();
    assert_eq!(
        gauge_lines(&text),
        [r#"circuit_breaker_store_connected{circuit_name="payment_api"} 1"#]
    );
    store.set_connected(false);
    assert_eq!(fleet.info().store_connected, Some(false));
    let text = encode_text(&registry).unwrap();
    assert_eq!(
        gauge_lines(&text),
        [r#"circuit_breaker_store_connected{circuit_name="payment_api"} 0"#]
    );
    if let Some(promtool) = crate::support::prometheus::require_tool("promtool") {
        crate::support::prometheus::promtool_check_metrics(&promtool, &text).unwrap();
    }
    store.set_connected(true);
    let text = encode_text(&registry).unwrap();
    assert_eq!(
        gauge_lines(&text),
        [r#"circuit_breaker_store_connected{circuit_name="payment_api"} 1"#]
    );
    listener.remove_circuit("payment_api");
    let text = encode_text(&registry).unwrap();
    assert!(gauge_lines(&text).is_empty(), "{text}");
}

#[test]
fn without_a_store_there_is_no_store_gauge() {
    let registry = Registry::new();
    let listener = PrometheusListener::with_registry(&registry).unwrap();
    let cb = CircuitBreaker::builder("plain")
        .listener(listener)
        .build()
        .unwrap();
    cb.force_open();
    let text = encode_text(&registry).unwrap();
    assert!(!text.contains("store_connected"), "{text}");
}
