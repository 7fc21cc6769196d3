//! End to end with a real Prometheus server (PR-3, PR-6, PR-7): this process serves the
//! default registry with `start_http_server` on a free port, a `prometheus` child scrapes
//! it every second, and the test asks Prometheus's HTTP API, with the seed's and the
//! dashboard's PromQL, whether it saw the breaker closed and then open.
//!
//! Needs the `prometheus` binary (Debian package `prometheus`). Without it the test says
//! so on stderr and returns; under `CI=true` it fails.

#![cfg(feature = "prometheus")]

use std::io;
use std::time::{Duration, Instant};

use crate::support::prometheus::{PrometheusServer, require_tool};
use fluxgate::listeners::prometheus::{PrometheusListener, start_http_server};
use fluxgate::retries::Never;
use fluxgate::trippers::FailureStreak;
use fluxgate::{CircuitBreaker, State};

const CIRCUIT: &str = "e2e_payment_api";
const WAIT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(250);

/// The samples of an instant-query answer: (labels, value) pairs.
fn samples(answer: &str) -> Vec<(serde_json::Value, f64)> {
    let parsed: serde_json::Value = match serde_json::from_str(answer) {
        Ok(v) => v,
        Err(_) => return Vec::new(),
    };
    parsed["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|sample| {
            let value = sample["value"][1].as_str()?.parse().ok()?;
            Some((sample["metric"].clone(), value))
        })
        .collect()
}

/// Polls `promql` until `accept` holds for its samples, or fails after [`WAIT`] with
/// everything needed to see why.
fn wait_until(
    prometheus: &mut PrometheusServer,
    promql: &str,
    accept: impl Fn(&[(serde_json::Value, f64)]) -> bool,
) {
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    loop {
        assert!(
            prometheus.is_running(),
            "prometheus exited early:\n{}",
            prometheus.log()
        );
        if let Some(answer) = prometheus.query(promql) {
            if accept(&samples(&answer)) {
                return;
            }
            last = Some(answer);
        }
        assert!(
            Instant::now() < deadline,
            "no good answer to `{promql}` within {WAIT:?}; last answer: {last:?}\nprometheus log:\n{}",
            prometheus.log()
        );
        std::thread::sleep(POLL);
    }
}

fn of_circuit(samples: &[(serde_json::Value, f64)]) -> Vec<f64> {
    samples
        .iter()
        .filter(|(labels, _)| labels["circuit_name"] == CIRCUIT)
        .map(|(_, v)| *v)
        .collect()
}

#[test]
fn pr6_a_real_prometheus_sees_the_breaker_closed_from_build_and_then_open() {
    let Some(binary) = require_tool("prometheus") else {
        return;
    };
    // The seed's page: start_http_server(8000) and PrometheusListener() (port 0 here).
    let server = start_http_server("127.0.0.1:0").unwrap();
    let cb = CircuitBreaker::builder(CIRCUIT)
        .tripper(FailureStreak::new(3))
        .retry(Never)
        .listener(PrometheusListener::new())
        .build()
        .unwrap();
    let mut prometheus = PrometheusServer::start(&binary, server.local_addr());

    // PR-3: scraped before the first transition.
    wait_until(
        &mut prometheus,
        &format!(r#"circuit_breaker_state{{circuit_name="{CIRCUIT}",state="closed"}} == 1"#),
        |s| of_circuit(s) == [1.0],
    );
    wait_until(&mut prometheus, r#"up{job="fluxgate"}"#, |s| {
        s.iter().any(|(_, v)| *v == 1.0)
    });

    for _ in 0..3 {
        let r: Result<(), fluxgate::Error<io::Error>> =
            cb.call(|| Err(io::Error::other("payment service down")));
        assert!(r.is_err());
    }
    assert_eq!(cb.info().state, State::Open);

    // The seed's alert expression and the transition counter.
    wait_until(
        &mut prometheus,
        r#"circuit_breaker_state{state="open"} == 1"#,
        |s| of_circuit(s) == [1.0],
    );
    wait_until(
        &mut prometheus,
        r#"circuit_breaker_state_transition_total{new_state="open"}"#,
        // closed -> open at 1; half_open -> open exists too, at 0.
        |s| of_circuit(s).iter().sum::<f64>() == 1.0,
    );
    // The dashboard's trip-rate panel sees the first trip (its counter existed at 0).
    wait_until(
        &mut prometheus,
        r#"sum(rate(circuit_breaker_state_transition_total{new_state="open"}[5m])) by (circuit_name)"#,
        |s| of_circuit(s).first().is_some_and(|v| *v > 0.0),
    );
    // The state-overview panel.
    wait_until(
        &mut prometheus,
        "sum(circuit_breaker_state) by (state)",
        |s| {
            s.iter()
                .any(|(labels, v)| labels["state"] == "open" && *v >= 1.0)
        },
    );

    drop(prometheus);
    server.shutdown();
}
