//! PrometheusListener driven by real breakers, as the seed's page uses it: the series
//! appear at build (PR-3), follow every transition (PR-2), one listener serves many
//! breakers (L-5, the seed's "multiple circuits"), the gauge ends at the breaker's real
//! state under concurrency (SM-19), and the async breaker feeds it the same way.

#![cfg(feature = "prometheus")]

use std::collections::BTreeMap;
use std::io;

use fluxgate::listeners::prometheus::{PrometheusListener, encode_text};
use fluxgate::retries::{Always, Never};
use fluxgate::trippers::FailureStreak;
use fluxgate::{AsyncCircuitBreaker, CircuitBreaker, State};
use prometheus::Registry;

fn fresh() -> (Registry, PrometheusListener) {
    let registry = Registry::new();
    let listener = PrometheusListener::with_registry(&registry).unwrap();
    (registry, listener)
}

/// `circuit_breaker_state` of one circuit, by state.
fn gauges(registry: &Registry, circuit: &str) -> BTreeMap<String, f64> {
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
            if labels["circuit_name"] == circuit {
                out.insert(labels["state"].to_owned(), metric.get_gauge().get_value());
            }
        }
    }
    out
}

/// The one state whose gauge is 1; panics unless exactly one is.
fn current(registry: &Registry, circuit: &str) -> State {
    let gauges = gauges(registry, circuit);
    assert_eq!(gauges.len(), 6, "{circuit}: {gauges:?}");
    let ones: Vec<&String> = gauges
        .iter()
        .filter(|(_, v)| **v == 1.0)
        .map(|(k, _)| k)
        .collect();
    assert_eq!(ones.len(), 1, "{circuit}: {gauges:?}");
    assert_eq!(gauges.values().filter(|v| **v == 0.0).count(), 5);
    State::from_name(ones[0]).unwrap()
}

/// `circuit_breaker_state_transition_total{circuit_name, old_state, new_state}`, if present.
fn transitions(registry: &Registry, circuit: &str, old: State, new: State) -> Option<f64> {
    registry
        .gather()
        .into_iter()
        .filter(|f| f.name() == "circuit_breaker_state_transition_total")
        .flat_map(|f| f.get_metric().to_vec())
        .find(|m| {
            let labels: BTreeMap<&str, &str> = m
                .get_label()
                .iter()
                .map(|l| (l.name(), l.value()))
                .collect();
            labels["circuit_name"] == circuit
                && labels["old_state"] == old.as_str()
                && labels["new_state"] == new.as_str()
        })
        .map(|m| m.get_counter().get_value())
}

fn fail(cb: &CircuitBreaker) {
    let result: Result<(), fluxgate::Error<io::Error>> = cb.call(|| Err(io::Error::other("boom")));
    assert!(result.is_err());
}

#[test]
fn pr3_a_breaker_built_with_the_listener_is_exposed_as_closed_before_any_transition() {
    let (registry, listener) = fresh();
    let _cb = CircuitBreaker::builder("payment_api")
        .listener(listener)
        .build()
        .unwrap();
    assert_eq!(current(&registry, "payment_api"), State::Closed);
    assert_eq!(
        transitions(&registry, "payment_api", State::Closed, State::Open),
        Some(0.0)
    );
}

#[test]
fn pr2_three_failures_trip_the_breaker_and_the_series_follow() {
    let (registry, listener) = fresh();
    let cb = CircuitBreaker::builder("payment_api")
        .tripper(FailureStreak::new(3))
        .retry(Never)
        .listener(listener)
        .build()
        .unwrap();
    fail(&cb);
    fail(&cb);
    assert_eq!(current(&registry, "payment_api"), State::Closed);
    fail(&cb);
    assert_eq!(cb.info().state, State::Open);
    assert_eq!(current(&registry, "payment_api"), State::Open);
    assert_eq!(
        transitions(&registry, "payment_api", State::Closed, State::Open),
        Some(1.0)
    );
    // Rejected calls are not transitions.
    let rejected: Result<(), fluxgate::Error<io::Error>> = cb.call(|| Ok(()));
    assert!(matches!(rejected, Err(fluxgate::Error::Rejected(_))));
    assert_eq!(
        transitions(&registry, "payment_api", State::Closed, State::Open),
        Some(1.0)
    );
    let exposition = encode_text(&registry).unwrap();
    assert!(
        exposition
            .contains("circuit_breaker_state{circuit_name=\"payment_api\",state=\"open\"} 1\n")
    );
    assert!(exposition.contains(
        "circuit_breaker_state_transition_total{circuit_name=\"payment_api\",new_state=\"open\",old_state=\"closed\"} 1\n"
    ));
}

#[test]
fn pr2_probe_and_recovery_are_counted_per_pair() {
    let (registry, listener) = fresh();
    let cb = CircuitBreaker::builder("probe")
        .tripper(FailureStreak::new(1))
        .retry(Always)
        .permit(fluxgate::permits::All)
        .listener(listener)
        .build()
        .unwrap();
    fail(&cb); // closed -> open
    let ok: Result<(), fluxgate::Error<io::Error>> = cb.call(|| Ok(())); // open -> half_open -> closed
    assert!(ok.is_ok());
    assert_eq!(cb.info().state, State::Closed);
    assert_eq!(current(&registry, "probe"), State::Closed);
    for (old, new) in [
        (State::Closed, State::Open),
        (State::Open, State::HalfOpen),
        (State::HalfOpen, State::Closed),
    ] {
        assert_eq!(
            transitions(&registry, "probe", old, new),
            Some(1.0),
            "{old}->{new}"
        );
    }
    assert_eq!(
        transitions(&registry, "probe", State::HalfOpen, State::Open),
        Some(0.0)
    );
}

#[test]
fn pr2_manual_commands_move_the_gauge_and_reset_while_closed_counts_closed_to_closed() {
    let (registry, listener) = fresh();
    let cb = CircuitBreaker::builder("manual")
        .listener(listener)
        .build()
        .unwrap();
    cb.reset();
    assert_eq!(
        transitions(&registry, "manual", State::Closed, State::Closed),
        Some(1.0)
    );
    assert_eq!(current(&registry, "manual"), State::Closed);
    for (command, expected) in [
        (
            CircuitBreaker::disable as fn(&CircuitBreaker),
            State::Disabled,
        ),
        (CircuitBreaker::metrics_only, State::MetricsOnly),
        (CircuitBreaker::force_open, State::ForcedOpen),
        (CircuitBreaker::force_open, State::ForcedOpen),
        (CircuitBreaker::reset, State::Closed),
    ] {
        command(&cb);
        assert_eq!(current(&registry, "manual"), expected);
        assert_eq!(cb.info().state, expected);
    }
    assert_eq!(
        transitions(&registry, "manual", State::ForcedOpen, State::ForcedOpen),
        Some(1.0)
    );
    // The silent forms (the seed's notify=False) leave the series alone.
    cb.force_open_silently();
    assert_eq!(current(&registry, "manual"), State::Closed);
}

#[test]
fn l5_one_listener_serves_many_breakers() {
    let (registry, listener) = fresh();
    let payment = CircuitBreaker::builder("payment_api")
        .tripper(FailureStreak::new(1))
        .retry(Never)
        .listener(listener.clone())
        .build()
        .unwrap();
    let inventory = CircuitBreaker::builder("inventory_api")
        .listener(listener.clone())
        .build()
        .unwrap();
    fail(&payment);
    inventory.disable();
    assert_eq!(current(&registry, "payment_api"), State::Open);
    assert_eq!(current(&registry, "inventory_api"), State::Disabled);
    assert_eq!(
        transitions(&registry, "inventory_api", State::Closed, State::Open),
        Some(0.0)
    );
}

#[test]
fn pr5_a_dropped_breakers_series_go_with_one_call() {
    let (registry, listener) = fresh();
    let keep = CircuitBreaker::builder("keep")
        .listener(listener.clone())
        .build()
        .unwrap();
    let tenant = CircuitBreaker::builder("tenant-7")
        .listener(listener.clone())
        .build()
        .unwrap();
    tenant.force_open();
    drop(tenant);
    listener.remove_circuit("tenant-7");
    assert!(gauges(&registry, "tenant-7").is_empty());
    assert_eq!(
        transitions(&registry, "tenant-7", State::Closed, State::ForcedOpen),
        None
    );
    assert_eq!(current(&registry, "keep"), State::Closed);
    keep.force_open();
    assert_eq!(current(&registry, "keep"), State::ForcedOpen);
}

#[test]
fn sm19_the_gauge_ends_at_the_breakers_real_state_under_concurrent_transitions() {
    let (registry, listener) = fresh();
    let cb = CircuitBreaker::builder("busy")
        .tripper(FailureStreak::new(1))
        .retry(Always)
        .permit(fluxgate::permits::All)
        .listener(listener)
        .build()
        .unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            let cb = &cb;
            scope.spawn(move || {
                for i in 0..300 {
                    match (t + i) % 5 {
                        0 => cb.reset(),
                        1 => cb.force_open(),
                        2 => {
                            let _: Result<(), _> = cb.call(|| Err(io::Error::other("x")));
                        }
                        _ => {
                            let _: Result<(), fluxgate::Error<io::Error>> = cb.call(|| Ok(()));
                        }
                    }
                }
            });
        }
    });
    // Signals that found the listener busy are delivered in the background.
    assert!(cb.flush_signals(std::time::Duration::from_secs(60)));
    assert_eq!(current(&registry, "busy"), cb.info().state);
}

#[test]
fn the_async_breaker_feeds_the_same_series() {
    let (registry, listener) = fresh();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let cb = AsyncCircuitBreaker::builder("async_api")
            .tripper(FailureStreak::new(2))
            .retry(Never)
            .listener(listener.clone())
            .build()
            .unwrap();
        assert_eq!(current(&registry, "async_api"), State::Closed);
        for _ in 0..2 {
            let r: Result<(), fluxgate::Error<io::Error>> =
                cb.call(|| async { Err(io::Error::other("boom")) }).await;
            assert!(r.is_err());
        }
        assert_eq!(cb.info().state, State::Open);
        assert_eq!(current(&registry, "async_api"), State::Open);
        assert_eq!(
            transitions(&registry, "async_api", State::Closed, State::Open),
            Some(1.0)
        );
    });
}
