//! PR-1 through OpenTelemetry: the same breaker with both listeners, the OTel side exported
//! to Prometheus by `opentelemetry-prometheus`, gives the Prometheus listener's families
//! line for line (names with `_total`, help texts, types, labels and values), and so do
//! the opt-in call metrics (the histogram's name gets `_seconds` from its unit).

use std::collections::BTreeSet;
use std::io;
use std::time::Duration;

use fluxgate_core::CircuitBreaker;
use fluxgate_core::clock::ManualClock;
use fluxgate_core::trippers::FailureStreak;
use fluxgate_otel::OpenTelemetryListener;
use fluxgate_prometheus::{PrometheusListener, encode_text};
use opentelemetry_sdk::metrics::SdkMeterProvider;

/// The lines of a text exposition that belong to the breaker families.
fn breaker_lines(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|line| line.contains("circuit_breaker_"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn pr1_an_otel_to_prometheus_export_has_the_prometheus_listeners_series() {
    let direct = prometheus::Registry::new();
    let prometheus_listener = PrometheusListener::with_registry(&direct).unwrap();

    let exported = prometheus::Registry::new();
    let exporter = opentelemetry_prometheus::exporter()
        .with_registry(exported.clone())
        .scope_info_enabled(false)
        .without_target_info()
        .build()
        .unwrap();
    let provider = SdkMeterProvider::builder().with_reader(exporter).build();
    let otel_listener = OpenTelemetryListener::new(&provider);

    let payment = CircuitBreaker::builder("payment_api")
        .tripper(FailureStreak::new(2))
        .listener(prometheus_listener.clone())
        .listener(otel_listener.clone())
        .build()
        .unwrap();
    let inventory = CircuitBreaker::builder("inventory_api")
        .listener(prometheus_listener)
        .listener(otel_listener)
        .build()
        .unwrap();
    for _ in 0..2 {
        let failed: Result<(), _> = payment.call(|| Err(io::Error::other("503")));
        assert!(failed.is_err());
    }
    inventory.reset();
    inventory.force_open();

    let want = breaker_lines(&encode_text(&direct).unwrap());
    let got = breaker_lines(
        &prometheus::TextEncoder::new()
            .encode_to_string(&exported.gather())
            .unwrap(),
    );
    // The comparison is not vacuous: both circuits, both families.
    assert!(want.contains("# TYPE circuit_breaker_state_transition_total counter"));
    assert!(want.contains(
        r#"circuit_breaker_state_transition_total{circuit_name="payment_api",new_state="open",old_state="closed"} 1"#
    ));
    assert!(
        want.contains(
            r#"circuit_breaker_state{circuit_name="inventory_api",state="forced_open"} 1"#
        )
    );
    assert_eq!(got, want);
}

#[test]
fn call_metrics_exported_to_prometheus_match_the_prometheus_listeners() {
    let direct = prometheus::Registry::new();
    let prometheus_listener = PrometheusListener::with_registry(&direct)
        .unwrap()
        .with_call_metrics()
        .unwrap();

    let exported = prometheus::Registry::new();
    let exporter = opentelemetry_prometheus::exporter()
        .with_registry(exported.clone())
        .scope_info_enabled(false)
        .without_target_info()
        .build()
        .unwrap();
    let provider = SdkMeterProvider::builder().with_reader(exporter).build();
    let otel_listener = OpenTelemetryListener::builder(&provider)
        .call_metrics(true)
        .build();

    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("payment_api")
        .tripper(FailureStreak::new(2))
        .clock(clock.clone())
        .listener(prometheus_listener)
        .listener(otel_listener)
        .build()
        .unwrap();
    for d in [3, 30, 700] {
        cb.call(|| {
            clock.advance(Duration::from_millis(d));
            Ok::<_, io::Error>(())
        })
        .unwrap();
    }
    for _ in 0..2 {
        let failed: Result<(), _> = cb.call(|| {
            clock.advance(Duration::from_millis(4000));
            Err(io::Error::other("503"))
        });
        assert!(failed.is_err());
    }
    assert!(
        cb.call(|| Ok::<_, io::Error>(()))
            .unwrap_err()
            .is_rejected()
    );

    let want = breaker_lines(&encode_text(&direct).unwrap());
    let got = breaker_lines(
        &prometheus::TextEncoder::new()
            .encode_to_string(&exported.gather())
            .unwrap(),
    );
    assert!(want.contains(
        r#"circuit_breaker_calls_total{circuit_name="payment_api",outcome="rejected"} 1"#
    ));
    assert!(want.contains(
        r#"circuit_breaker_call_duration_seconds_bucket{circuit_name="payment_api",le="0.05"} 2"#
    ));
    assert_eq!(got, want);
}
