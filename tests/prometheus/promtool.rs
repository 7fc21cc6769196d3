//! `promtool` on everything this crate ships for Prometheus (PR-6, PR-7): the exposition
//! (as encoded and as served), the alerting rules in `crates/fluxgate-prometheus/dashboards/alerts.yml` (syntax and
//! behaviour, with promtool's rule unit tests) and the PromQL of `crates/fluxgate-prometheus/dashboards/grafana.json`.
//!
//! Without `promtool` on PATH these tests say so on stderr and return; under `CI=true`
//! they fail.

#![cfg(feature = "prometheus")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use crate::support::prometheus::{TempDir, http_get, promtool_check_metrics, require_tool};
use fluxgate::listeners::Listener;
use fluxgate::listeners::prometheus::{
    PrometheusListener, encode_text, start_http_server_with_registry,
};
use fluxgate::{Signal, State};
use prometheus::Registry;

fn manifest_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A registry with several circuits in every state, every kind of transition and a name
/// that needs escaping.
fn busy_registry() -> Registry {
    let registry = Registry::new();
    let listener = PrometheusListener::with_registry(&registry).unwrap();
    let now = SystemTime::now();
    for (i, name) in ["payment_api", "inventory_api", "tenant \"a\\b\"\nc"]
        .into_iter()
        .enumerate()
    {
        listener.on_attach(name, State::Closed);
        let mut old = State::Closed;
        for new in State::ALL.into_iter().cycle().skip(i).take(8) {
            listener
                .on_signal(&Signal::new(name, old, new, now))
                .unwrap();
            old = new;
        }
    }
    registry
}

fn run(command: &mut Command) -> Result<String, String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {command:?}: {e}"))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(said)
    } else {
        Err(format!("{command:?} failed ({}):\n{said}", output.status))
    }
}

#[test]
fn pr7_promtool_finds_no_problem_in_the_exposition() {
    let Some(promtool) = require_tool("promtool") else {
        return;
    };
    let text = encode_text(&busy_registry()).unwrap();
    promtool_check_metrics(&promtool, &text).unwrap();
}

#[test]
fn pr7_promtool_finds_no_problem_in_what_the_server_sends() {
    let Some(promtool) = require_tool("promtool") else {
        return;
    };
    let registry = busy_registry();
    let server = start_http_server_with_registry("127.0.0.1:0", &registry).unwrap();
    let response = http_get(server.local_addr(), "/metrics").unwrap();
    server.shutdown();
    assert_eq!(response.status, 200);
    promtool_check_metrics(&promtool, &response.body).unwrap();
}

#[test]
fn promtool_check_rules_accepts_the_shipped_alerts() {
    let Some(promtool) = require_tool("promtool") else {
        return;
    };
    let said = run(Command::new(&promtool)
        .args(["check", "rules"])
        .arg(manifest_path(
            "crates/fluxgate-prometheus/dashboards/alerts.yml",
        )))
    .unwrap();
    assert!(said.contains("SUCCESS: 2 rules found"), "{said}");
}

/// promtool's rule unit tests: the "open for more than 5 minutes" alert fires after five
/// minutes of open (a half-open probe in between does not restart the clock) and not
/// for a circuit that recovered; the flapping alert fires on the third trip in 15 minutes.
#[test]
fn the_shipped_alerts_fire_when_they_should_and_only_then() {
    let Some(promtool) = require_tool("promtool") else {
        return;
    };
    let dir = TempDir::new("fluxgate-alerts-test");
    let tests = dir.path().join("alerts_test.yml");
    let rules = manifest_path("crates/fluxgate-prometheus/dashboards/alerts.yml");
    let labels = r#"job="app",instance="app:8000""#;
    std::fs::write(
        &tests,
        format!(
            r#"rule_files:
  - {rules}
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'circuit_breaker_state{{{labels},circuit_name="payment_api",state="open"}}'
        values: '0 1 1 0 1 1 1 1 1 1 1 1'
      - series: 'circuit_breaker_state{{{labels},circuit_name="payment_api",state="half_open"}}'
        values: '0 0 0 1 0 0 0 0 0 0 0 0'
      - series: 'circuit_breaker_state{{{labels},circuit_name="inventory_api",state="open"}}'
        values: '0 1 1 1 0 0 0 0 0 0 0 0'
      - series: 'circuit_breaker_state{{{labels},circuit_name="inventory_api",state="half_open"}}'
        values: '0 0 0 0 0 0 0 0 0 0 0 0'
      - series: 'circuit_breaker_state_transition_total{{{labels},circuit_name="payment_api",old_state="closed",new_state="open"}}'
        values: '0 1 1 2 2 3 3 3 3 3 3 3'
      - series: 'circuit_breaker_state_transition_total{{{labels},circuit_name="inventory_api",old_state="closed",new_state="open"}}'
        values: '0 1 1 1 1 1 1 1 1 1 1 1'
    alert_rule_test:
      - eval_time: 5m
        alertname: CircuitBreakerOpen
        exp_alerts: []
      - eval_time: 7m
        alertname: CircuitBreakerOpen
        exp_alerts:
          - exp_labels:
              severity: critical
              job: app
              instance: app:8000
              circuit_name: payment_api
            exp_annotations:
              summary: "Circuit breaker payment_api has been open for more than 5 minutes"
              description: "Calls through circuit breaker payment_api on app:8000 are rejected; the protected service has not recovered for 5 minutes."
      - eval_time: 3m
        alertname: CircuitBreakerFlapping
        exp_alerts: []
      - eval_time: 6m
        alertname: CircuitBreakerFlapping
        exp_alerts:
          - exp_labels:
              severity: warning
              job: app
              instance: app:8000
              circuit_name: payment_api
            exp_annotations:
              summary: "Circuit breaker payment_api is flapping"
              description: "Circuit breaker payment_api on app:8000 tripped 3 times in 15 minutes; the protected service is unstable."
"#,
            rules = rules.display()
        ),
    )
    .unwrap();
    let said = run(Command::new(&promtool).args(["test", "rules"]).arg(&tests)).unwrap();
    assert!(said.contains("SUCCESS"), "{said}");
}

fn dashboard_expressions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(manifest_path(
        "crates/fluxgate-prometheus/dashboards/grafana.json",
    ))
    .unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dashboard["panels"].as_array().expect("panels");
    panels
        .iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            panel["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| {
                    (
                        title.clone(),
                        t["expr"].as_str().unwrap_or_default().to_owned(),
                    )
                })
        })
        .collect()
}

#[test]
fn pr6_the_dashboard_has_the_three_panels_with_the_seeds_promql() {
    let exprs = dashboard_expressions();
    let expected = [
        (
            "Open circuits",
            r#"circuit_breaker_state{state="open"} == 1"#,
        ),
        (
            "Trip rate (5m)",
            r#"sum(rate(circuit_breaker_state_transition_total{new_state="open"}[5m])) by (circuit_name)"#,
        ),
        ("State overview", "sum(circuit_breaker_state) by (state)"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(t, e)| (t.to_string(), e.to_string()))
        .collect();
    assert_eq!(exprs, expected);
}

#[test]
fn pr6_the_dashboards_promql_parses() {
    let Some(promtool) = require_tool("promtool") else {
        return;
    };
    let dir = TempDir::new("fluxgate-dashboard-promql");
    let rules = dir.path().join("dashboard_rules.yml");
    let mut yaml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (_, expr)) in dashboard_expressions().iter().enumerate() {
        yaml.push_str(&format!(
            "      - record: fluxgate:dashboard_panel_{i}\n        expr: '{}'\n",
            expr.replace('\'', "''")
        ));
    }
    std::fs::write(&rules, yaml).unwrap();
    run(Command::new(&promtool).args(["check", "rules"]).arg(&rules)).unwrap();
}
