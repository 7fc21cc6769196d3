//! Opt-in call metrics on the three backends: calls by outcome and a duration histogram per
//! circuit, exact values from a manual clock, promtool-valid, dropped with the circuit, and
//! absent unless asked for (the seed's exposition stays exact).

use std::io;
use std::time::Duration;

use fluxgate::clock::ManualClock;
use fluxgate::trackers::TypeOf;
use fluxgate::trippers::FailureStreak;
use fluxgate::{CircuitBreaker, State};

use crate::support::Untracked;
use crate::support::prometheus::{promtool_check_metrics, require_tool};

const MS: Duration = Duration::from_millis(1);

/// Two successes (3 ms, 30 ms), an ignored error (0.5 s), two failures that trip a
/// streak of 2 (1 ms each) and one rejection.
fn drive(cb: &CircuitBreaker, clock: &ManualClock) {
    for d in [3 * MS, 30 * MS] {
        cb.call(|| {
            clock.advance(d);
            Ok::<_, io::Error>(())
        })
        .unwrap();
    }
    let _ = cb.call(|| {
        clock.advance(500 * MS);
        Err::<(), _>(Untracked)
    });
    for _ in 0..2 {
        let _ = cb.call(|| {
            clock.advance(MS);
            Err::<(), _>(io::Error::other("down"))
        });
    }
    assert_eq!(cb.state(), State::Open);
    assert!(
        cb.call(|| Ok::<_, io::Error>(()))
            .unwrap_err()
            .is_rejected()
    );
}

fn breaker(
    name: &str,
    clock: &ManualClock,
    listener: impl fluxgate::listeners::Listener,
) -> CircuitBreaker {
    CircuitBreaker::builder(name)
        .tracker(TypeOf::<io::Error>::new())
        .tripper(FailureStreak::new(2))
        .clock(clock.clone())
        .listener(listener)
        .build()
        .unwrap()
}

fn samples<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    lines.sort_unstable();
    lines
}

#[cfg(feature = "prometheus")]
mod prometheus_crate {
    use super::*;
    use fluxgate::listeners::prometheus::{PrometheusListener, encode_text};
    use prometheus::Registry;

    #[test]
    fn calls_by_outcome_and_durations_are_exposed_exactly() {
        let registry = Registry::new();
        let clock = ManualClock::new();
        let listener = PrometheusListener::with_registry(&registry)
            .unwrap()
            .with_call_metrics()
            .unwrap();
        let cb = breaker("payment_api", &clock, listener);
        drive(&cb, &clock);
        let text = encode_text(&registry).unwrap();
        assert_eq!(
            samples(&text, "circuit_breaker_calls_total{"),
            [
                r#"circuit_breaker_calls_total{circuit_name="payment_api",outcome="failure"} 2"#,
                r#"circuit_breaker_calls_total{circuit_name="payment_api",outcome="ignored"} 1"#,
                r#"circuit_breaker_calls_total{circuit_name="payment_api",outcome="rejected"} 1"#,
                r#"circuit_breaker_calls_total{circuit_name="payment_api",outcome="success"} 2"#,
            ]
        );
        // Five calls ran (rejections did not): 1, 1, 3, 30 and 500 ms.
        for line in [
            r#"circuit_breaker_call_duration_seconds_bucket{circuit_name="payment_api",le="0.001"} 2"#,
            r#"circuit_breaker_call_duration_seconds_bucket{circuit_name="payment_api",le="0.005"} 3"#,
            r#"circuit_breaker_call_duration_seconds_bucket{circuit_name="payment_api",le="0.05"} 4"#,
            r#"circuit_breaker_call_duration_seconds_bucket{circuit_name="payment_api",le="0.5"} 5"#,
            r#"circuit_breaker_call_duration_seconds_bucket{circuit_name="payment_api",le="+Inf"} 5"#,
            r#"circuit_breaker_call_duration_seconds_sum{circuit_name="payment_api"} 0.535"#,
            r#"circuit_breaker_call_duration_seconds_count{circuit_name="payment_api"} 5"#,
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
        // The direct encoder and `gather` still agree, byte for byte.
        let gathered = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        assert_eq!(text, gathered);
        if let Some(promtool) = require_tool("promtool") {
            promtool_check_metrics(&promtool, &text).unwrap();
        }
    }

    #[test]
    fn series_appear_at_zero_on_attach_and_go_with_the_circuit() {
        let registry = Registry::new();
        let listener = PrometheusListener::with_registry(&registry)
            .unwrap()
            .with_call_metrics()
            .unwrap();
        let clock = ManualClock::new();
        let keep = breaker("keep", &clock, listener.clone());
        let _gone = breaker("gone", &clock, listener.clone());
        let text = encode_text(&registry).unwrap();
        assert!(
            text.contains(
                r#"circuit_breaker_calls_total{circuit_name="gone",outcome="rejected"} 0"#
            )
        );
        assert!(
            text.contains(r#"circuit_breaker_call_duration_seconds_count{circuit_name="gone"} 0"#)
        );
        listener.remove_circuit("gone");
        let text = encode_text(&registry).unwrap();
        assert!(!text.contains("\"gone\""), "{text}");
        assert_eq!(samples(&text, "circuit_breaker_calls_total{").len(), 4);
        keep.call(|| Ok::<_, io::Error>(())).unwrap();
        // A second listener from the same registry's listener shares the vectors.
        let again = listener.clone().with_call_metrics().unwrap();
        let _other = breaker("other", &clock, again);
        let text = encode_text(&registry).unwrap();
        assert!(
            text.contains(
                r#"circuit_breaker_calls_total{circuit_name="keep",outcome="success"} 1"#
            )
        );
        assert!(
            text.contains(
                r#"circuit_breaker_calls_total{circuit_name="other",outcome="success"} 0"#
            )
        );
    }

    #[test]
    fn without_call_metrics_the_exposition_has_only_the_two_families() {
        let registry = Registry::new();
        let clock = ManualClock::new();
        let cb = breaker(
            "plain",
            &clock,
            PrometheusListener::with_registry(&registry).unwrap(),
        );
        drive(&cb, &clock);
        let text = encode_text(&registry).unwrap();
        let families: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        assert_eq!(
            families,
            [
                "# TYPE circuit_breaker_state gauge",
                "# TYPE circuit_breaker_state_transition_total counter"
            ]
        );
    }
}

#[cfg(feature = "prometheus-client")]
mod client_backend {
    use super::*;
    use fluxgate::listeners::prometheus::PrometheusClientListener;
    use prometheus_client::registry::Registry;

    #[test]
    fn calls_by_outcome_and_durations_are_exposed_exactly() {
        let mut registry = Registry::default();
        let listener = PrometheusClientListener::with_call_metrics(&mut registry);
        let clock = ManualClock::new();
        let cb = breaker("payment_api", &clock, listener.clone());
        drive(&cb, &clock);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert_eq!(
            samples(&text, "circuit_breaker_calls_total{"),
            [
                r#"circuit_breaker_calls_total{circuit_name="payment_api",outcome="failure"} 2"#,
                r#"circuit_breaker_calls_total{circuit_name="payment_api",outcome="ignored"} 1"#,
                r#"circuit_breaker_calls_total{circuit_name="payment_api",outcome="rejected"} 1"#,
                r#"circuit_breaker_calls_total{circuit_name="payment_api",outcome="success"} 2"#,
            ]
        );
        assert!(
            text.contains(
                r#"circuit_breaker_call_duration_seconds_count{circuit_name="payment_api"} 5"#
            ),
            "{text}"
        );
        assert!(text.contains(r#"circuit_breaker_call_duration_seconds_bucket{le="0.005",circuit_name="payment_api"} 3"#), "{text}");
        // This crate writes OpenMetrics (family `circuit_breaker_calls`, samples `…_total`),
        // which `promtool check metrics`, a checker of the classic format, does not take.
        listener.remove_circuit("payment_api");
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(!text.contains("payment_api"), "{text}");
    }
}

#[cfg(feature = "metrics")]
mod metrics_backend {
    use super::*;
    use fluxgate::listeners::prometheus::MetricsListener;
    use metrics_exporter_prometheus::PrometheusBuilder;

    #[test]
    fn calls_by_outcome_and_durations_reach_the_recorder() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let clock = ManualClock::new();
        let listener = MetricsListener::with_call_metrics();
        metrics::with_local_recorder(&recorder, || {
            let cb = breaker("payment_api", &clock, listener.clone());
            drive(&cb, &clock);
            // A refresh takes the handles anew from the recorder: the counts go on.
            listener.refresh();
            cb.reset();
            cb.call(|| Ok::<_, io::Error>(())).unwrap();
        });
        let text = handle.render();
        assert_eq!(
            samples(&text, "circuit_breaker_calls_total{"),
            [
                r#"circuit_breaker_calls_total{circuit_name="payment_api",outcome="failure"} 2"#,
                r#"circuit_breaker_calls_total{circuit_name="payment_api",outcome="ignored"} 1"#,
                r#"circuit_breaker_calls_total{circuit_name="payment_api",outcome="rejected"} 1"#,
                r#"circuit_breaker_calls_total{circuit_name="payment_api",outcome="success"} 3"#,
            ]
        );
        // Without buckets the exporter renders a summary; its count and sum are exact.
        assert!(
            text.contains(
                r#"circuit_breaker_call_duration_seconds_count{circuit_name="payment_api"} 6"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"circuit_breaker_call_duration_seconds_sum{circuit_name="payment_api"} 0.535"#
            ),
            "{text}"
        );
        if let Some(promtool) = require_tool("promtool") {
            promtool_check_metrics(&promtool, &text).unwrap();
        }
    }
}
