//! PR-4 edge: `PrometheusListener::new()` when the process-wide default registry already
//! holds a different metric under the same name. Its own process, because the default
//! registry is global. The listener must not panic, must not hurt the breaker or its
//! caller, and must leave the caller's metric alone.

#![cfg(feature = "prometheus")]

use std::io;

use fluxgate::listeners::prometheus::{PrometheusListener, encode_text};
use fluxgate::trippers::FailureStreak;
use fluxgate::{CircuitBreaker, State};
use prometheus::{IntGaugeVec, Opts};

#[test]
fn pr4_a_name_clash_in_the_default_registry_is_logged_not_fatal() {
    let theirs = IntGaugeVec::new(
        Opts::new("circuit_breaker_state", "Someone else's gauge"),
        &["service"],
    )
    .unwrap();
    prometheus::register(Box::new(theirs.clone())).unwrap();
    theirs.with_label_values(&["billing"]).set(7);

    let cb = CircuitBreaker::builder("clash")
        .tripper(FailureStreak::new(1))
        .listener(PrometheusListener::new())
        .build()
        .unwrap();
    let r: Result<(), fluxgate::Error<io::Error>> = cb.call(|| Err(io::Error::other("boom")));
    assert!(matches!(r, Err(fluxgate::Error::Inner(_))));
    assert_eq!(cb.info().state, State::Open);

    let text = encode_text(prometheus::default_registry()).unwrap();
    assert!(
        text.contains("circuit_breaker_state{service=\"billing\"} 7\n"),
        "{text}"
    );
    assert!(!text.contains("clash"), "{text}");
}
