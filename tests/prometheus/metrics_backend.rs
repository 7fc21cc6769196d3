//! The `metrics`-facade backend rendered by `metrics-exporter-prometheus`: the same two
//! series (PR-1) written the same way (PR-2, PR-3), and an exposition that `promtool`
//! accepts (PR-7); a retired circuit's series leave through the exporter's idle timeout
//! while `refresh` keeps the live ones (PR-5).

#![cfg(feature = "metrics")]

use std::time::{Duration, Instant, SystemTime};

use crate::support::prometheus::{promtool_check_metrics, require_tool};
use fluxgate::listeners::Listener;
use fluxgate::listeners::prometheus::MetricsListener;
use fluxgate::registry::Registry;
use fluxgate::{CircuitBreaker, Signal, State};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use metrics_util::MetricKindMask;

fn recorder() -> PrometheusRecorder {
    PrometheusBuilder::new().build_recorder()
}

fn sample_lines(text: &str, circuit: &str) -> Vec<String> {
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(&format!("circuit_name=\"{circuit}\"")))
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn pr1_pr2_pr3_the_exporter_renders_the_two_series() {
    let recorder = recorder();
    let handle = recorder.handle();
    let listener = MetricsListener::new();
    metrics::with_local_recorder(&recorder, || {
        listener.on_attach("payment_api", State::Closed);
        listener
            .on_signal(&Signal::new(
                "payment_api",
                State::Closed,
                State::Open,
                SystemTime::now(),
            ))
            .unwrap();
    });
    let text = handle.render();
    for header in [
        "# HELP circuit_breaker_state Current state of the circuit breaker\n# TYPE circuit_breaker_state gauge\n",
        "# HELP circuit_breaker_state_transition_total Count of state transitions for circuit breakers\n\
         # TYPE circuit_breaker_state_transition_total counter\n",
    ] {
        assert!(text.contains(header), "{text}");
    }
    assert_eq!(
        sample_lines(&text, "payment_api"),
        [
            r#"circuit_breaker_state_transition_total{circuit_name="payment_api",old_state="closed",new_state="open"} 1"#,
            r#"circuit_breaker_state_transition_total{circuit_name="payment_api",old_state="half_open",new_state="closed"} 0"#,
            r#"circuit_breaker_state_transition_total{circuit_name="payment_api",old_state="half_open",new_state="open"} 0"#,
            r#"circuit_breaker_state_transition_total{circuit_name="payment_api",old_state="open",new_state="half_open"} 0"#,
            r#"circuit_breaker_state{circuit_name="payment_api",state="closed"} 0"#,
            r#"circuit_breaker_state{circuit_name="payment_api",state="disabled"} 0"#,
            r#"circuit_breaker_state{circuit_name="payment_api",state="forced_open"} 0"#,
            r#"circuit_breaker_state{circuit_name="payment_api",state="half_open"} 0"#,
            r#"circuit_breaker_state{circuit_name="payment_api",state="metrics_only"} 0"#,
            r#"circuit_breaker_state{circuit_name="payment_api",state="open"} 1"#,
        ],
        "{text}"
    );
}

#[test]
fn pr2_breakers_drive_the_series_and_same_state_signals_count() {
    let recorder = recorder();
    let handle = recorder.handle();
    let listener = MetricsListener::new();
    metrics::with_local_recorder(&recorder, || {
        let a = CircuitBreaker::builder("a")
            .listener(listener.clone())
            .build()
            .unwrap();
        let b = CircuitBreaker::builder("b")
            .listener(listener.clone())
            .build()
            .unwrap();
        a.reset();
        b.force_open();
    });
    let text = handle.render();
    assert!(text.contains(
        r#"circuit_breaker_state_transition_total{circuit_name="a",old_state="closed",new_state="closed"} 1"#
    ));
    assert!(text.contains(r#"circuit_breaker_state{circuit_name="a",state="closed"} 1"#));
    assert!(text.contains(r#"circuit_breaker_state{circuit_name="b",state="forced_open"} 1"#));
    assert!(text.contains(r#"circuit_breaker_state{circuit_name="b",state="closed"} 0"#));
}

#[test]
fn pr7_promtool_accepts_the_exporters_rendering() {
    let Some(promtool) = require_tool("promtool") else {
        return;
    };
    let recorder = recorder();
    let handle = recorder.handle();
    let listener = MetricsListener::new();
    metrics::with_local_recorder(&recorder, || {
        listener.on_attach("payment_api", State::Closed);
        listener
            .on_signal(&Signal::new(
                "payment_api",
                State::Closed,
                State::Open,
                SystemTime::now(),
            ))
            .unwrap();
    });
    promtool_check_metrics(&promtool, &handle.render()).unwrap();
}

#[test]
fn pr5_a_detached_circuit_goes_idle_and_refresh_keeps_the_live_ones() {
    // The facade cannot delete a series; the exporter drops series not written within
    // its idle timeout. A zero timeout: whatever was not written since the last render.
    let recorder = PrometheusBuilder::new()
        .idle_timeout(MetricKindMask::ALL, Some(Duration::ZERO))
        .build_recorder();
    let handle = recorder.handle();
    let listener = MetricsListener::new();
    let registry: Registry = Registry::builder().listener(listener.clone()).build();
    metrics::with_local_recorder(&recorder, || {
        registry.get_or_create("live").unwrap().force_open();
        registry.get_or_create("retired").unwrap();
    });
    let text = handle.render();
    let live = sample_lines(&text, "live");
    assert_eq!(
        live.len(),
        6 + 5,
        "six gauges, five transition counters:\n{text}"
    );
    assert!(live.contains(
        &r#"circuit_breaker_state{circuit_name="live",state="forced_open"} 1"#.to_owned()
    ));
    assert_eq!(sample_lines(&text, "retired").len(), 6 + 4, "{text}");

    assert!(registry.remove("retired")); // on_detach
    // Refreshed before every render, the live circuit keeps all its series, with their
    // values; the retired one, no longer written, goes.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        metrics::with_local_recorder(&recorder, || listener.refresh());
        let text = handle.render();
        assert_eq!(
            sample_lines(&text, "live"),
            live,
            "a live series went:\n{text}"
        );
        if sample_lines(&text, "retired").is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the retired circuit's series are still rendered:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }

    // Why refresh exists: without it, a live circuit whose state does not change is
    // idle too, and the exporter drops it as well.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sample_lines(&handle.render(), "live").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the exporter kept an idle series"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // And the next signal writes it back.
    metrics::with_local_recorder(&recorder, || registry.get("live").unwrap().reset());
    let text = handle.render();
    assert!(
        text.contains(r#"circuit_breaker_state{circuit_name="live",state="closed"} 1"#),
        "{text}"
    );
}
