//! OpenTelemetryListener against the SDK's in-memory exporter, driven by real breakers on
//! a manual clock: the two instruments and their exact attributes from the moment a
//! breaker is built (PR-3), after real transitions (PR-2), a retired circuit leaving the
//! export, one listener shared by many breakers (L-5), and the async face (L-3).

mod support;

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use fluxgate_core::clock::ManualClock;
use fluxgate_core::listeners::Listener;
use fluxgate_core::registry::Registry;
use fluxgate_core::retries::Cooldown;
use fluxgate_core::trippers::FailureStreak;
use fluxgate_core::{AsyncCircuitBreaker, CircuitBreaker, Signal, State};
use fluxgate_otel::OpenTelemetryListener;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use support::{Harness, attrs, pair};

fn fail(cb: &CircuitBreaker) -> fluxgate_core::Error<io::Error> {
    cb.call(|| Err::<(), _>(io::Error::other("503")))
        .expect_err("the call fails")
}

fn succeed(cb: &CircuitBreaker) {
    cb.call(|| Ok::<_, io::Error>(()))
        .expect("the call is admitted and succeeds");
}

/// The four transitions a breaker makes on its own, at the given counts.
fn automatic(counts: [u64; 4]) -> BTreeMap<(String, String), u64> {
    [
        (State::Closed, State::Open),
        (State::Open, State::HalfOpen),
        (State::HalfOpen, State::Open),
        (State::HalfOpen, State::Closed),
    ]
    .into_iter()
    .zip(counts)
    .map(|((old, new), count)| (pair(old, new), count))
    .collect()
}

#[test]
fn pr1_instruments_have_the_prometheus_listeners_names_descriptions_and_kinds() {
    let h = Harness::new();
    let _cb = CircuitBreaker::builder("payment_api")
        .listener(OpenTelemetryListener::new(&h.provider))
        .build()
        .unwrap();
    let collected = h.collect();

    let scopes: Vec<_> = collected.0[0].scope_metrics().collect();
    assert_eq!(scopes.len(), 1);
    assert_eq!(scopes[0].scope().name(), "fluxgate");
    assert_eq!(scopes[0].scope().version(), Some(env!("CARGO_PKG_VERSION")));

    let state = collected
        .metric("circuit_breaker_state")
        .expect("state gauge");
    assert_eq!(state.description(), "Current state of the circuit breaker");
    assert_eq!(state.unit(), "");
    assert!(matches!(
        state.data(),
        AggregatedMetrics::U64(MetricData::Gauge(_))
    ));

    let transitions = collected
        .metric("circuit_breaker_state_transition")
        .expect("transition counter");
    assert_eq!(
        transitions.description(),
        "Count of state transitions for circuit breakers"
    );
    assert_eq!(transitions.unit(), "");
    match transitions.data() {
        AggregatedMetrics::U64(MetricData::Sum(sum)) => {
            assert!(sum.is_monotonic(), "a counter");
            assert_eq!(sum.temporality(), Temporality::Cumulative);
        }
        other => panic!("not a u64 sum: {other:?}"),
    }
    // Without call metrics, nothing else is exported.
    let names: Vec<&str> = scopes[0].metrics().map(|m| m.name()).collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn pr3_a_breaker_built_with_the_listener_is_reported_closed_with_exact_attributes() {
    let h = Harness::new();
    let _cb = CircuitBreaker::builder("payment_api")
        .listener(OpenTelemetryListener::new(&h.provider))
        .build()
        .unwrap();
    let collected = h.collect();

    let mut expected_state_points: Vec<_> = State::ALL
        .iter()
        .map(|s| {
            (
                attrs(&[("circuit_name", "payment_api"), ("state", s.as_str())]),
                u64::from(*s == State::Closed),
            )
        })
        .collect();
    let mut state_points = collected.points("circuit_breaker_state");
    state_points.sort();
    expected_state_points.sort();
    assert_eq!(state_points, expected_state_points);

    let mut transition_points = collected.points("circuit_breaker_state_transition");
    transition_points.sort();
    let mut expected: Vec<_> = automatic([0; 4])
        .into_keys()
        .map(|(old, new)| {
            (
                attrs(&[
                    ("circuit_name", "payment_api"),
                    ("old_state", &old),
                    ("new_state", &new),
                ]),
                0,
            )
        })
        .collect();
    expected.sort();
    assert_eq!(transition_points, expected);
}

#[test]
fn pr2_real_transitions_on_a_manual_clock_move_the_gauge_and_count_each_pair() {
    let h = Harness::new();
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("payment_api")
        .tripper(FailureStreak::new(3))
        .retry(Cooldown::new(Duration::from_secs(30)))
        .permit(fluxgate_core::permits::All)
        .max_half_open_calls(1)
        .clock(clock.clone())
        .listener(OpenTelemetryListener::new(&h.provider))
        .build()
        .unwrap();

    fail(&cb);
    fail(&cb);
    assert_eq!(h.collect().current("payment_api"), State::Closed);
    fail(&cb);
    assert_eq!(cb.info().state, State::Open);
    let collected = h.collect();
    assert_eq!(collected.current("payment_api"), State::Open);
    assert_eq!(
        collected.transitions("payment_api"),
        automatic([1, 0, 0, 0])
    );

    // Within the cooldown calls are rejected: a rejection is not a transition.
    clock.advance(Duration::from_secs(29));
    assert!(matches!(fail(&cb), fluxgate_core::Error::Rejected(_)));
    let collected = h.collect();
    assert_eq!(collected.current("payment_api"), State::Open);
    assert_eq!(
        collected.transitions("payment_api"),
        automatic([1, 0, 0, 0])
    );

    // After it, probes run (open -> half_open); three failures reopen it (SM-9).
    clock.advance(Duration::from_secs(1));
    assert!(matches!(fail(&cb), fluxgate_core::Error::Inner(_)));
    assert!(matches!(fail(&cb), fluxgate_core::Error::Inner(_)));
    let collected = h.collect();
    assert_eq!(collected.current("payment_api"), State::HalfOpen);
    assert_eq!(
        collected.transitions("payment_api"),
        automatic([1, 1, 0, 0])
    );
    assert!(matches!(fail(&cb), fluxgate_core::Error::Inner(_)));
    let collected = h.collect();
    assert_eq!(collected.current("payment_api"), State::Open);
    assert_eq!(
        collected.transitions("payment_api"),
        automatic([1, 1, 1, 0])
    );

    // The next probe succeeds: open -> half_open -> closed.
    clock.advance(Duration::from_secs(30));
    succeed(&cb);
    assert_eq!(cb.info().state, State::Closed);
    let collected = h.collect();
    assert_eq!(collected.current("payment_api"), State::Closed);
    assert_eq!(
        collected.transitions("payment_api"),
        automatic([1, 2, 1, 1])
    );

    // Manual commands, and a reset while closed counts closed -> closed.
    cb.reset();
    cb.force_open();
    let collected = h.collect();
    assert_eq!(collected.current("payment_api"), State::ForcedOpen);
    let mut expected = automatic([1, 2, 1, 1]);
    expected.insert(pair(State::Closed, State::Closed), 1);
    expected.insert(pair(State::Closed, State::ForcedOpen), 1);
    assert_eq!(collected.transitions("payment_api"), expected);
}

#[test]
fn delta_temporality_reports_the_transitions_of_each_interval() {
    let h = Harness::with_temporality(Temporality::Delta);
    let cb = CircuitBreaker::builder("payment_api")
        .listener(OpenTelemetryListener::new(&h.provider))
        .build()
        .unwrap();
    cb.force_open();
    let first = h.collect();
    assert_eq!(first.current("payment_api"), State::ForcedOpen);
    assert_eq!(
        first.transitions("payment_api")[&pair(State::Closed, State::ForcedOpen)],
        1
    );
    cb.reset();
    let second = h.collect();
    assert_eq!(second.current("payment_api"), State::Closed);
    let transitions = second.transitions("payment_api");
    assert_eq!(transitions[&pair(State::Closed, State::ForcedOpen)], 0);
    assert_eq!(transitions[&pair(State::ForcedOpen, State::Closed)], 1);
}

#[test]
fn a_circuit_removed_from_a_registry_stops_being_reported_and_others_stay() {
    let h = Harness::new();
    let registry: Registry<CircuitBreaker> = Registry::builder()
        .listener(OpenTelemetryListener::new(&h.provider))
        .build();
    registry.get_or_create("tenant-1").unwrap().force_open();
    registry.get_or_create("tenant-2").unwrap();
    let collected = h.collect();
    assert_eq!(collected.current("tenant-1"), State::ForcedOpen);
    assert_eq!(collected.current("tenant-2"), State::Closed);

    assert!(registry.remove("tenant-1"));
    let collected = h.collect_until("without tenant-1", |c| !c.reports("tenant-1"));
    assert!(collected.gauges("tenant-1").is_empty());
    assert!(collected.transitions("tenant-1").is_empty());
    assert_eq!(collected.current("tenant-2"), State::Closed);
    assert_eq!(collected.transitions("tenant-2"), automatic([0; 4]));
    // It stays gone.
    assert!(!h.collect().reports("tenant-1"));
}

#[test]
fn remove_circuit_is_idempotent_and_a_later_signal_reports_the_circuit_afresh() {
    let h = Harness::new();
    let listener = OpenTelemetryListener::new(&h.provider);
    let cb = CircuitBreaker::builder("tenant-42")
        .listener(listener.clone())
        .build()
        .unwrap();
    cb.force_open();
    listener.remove_circuit("tenant-42");
    listener.remove_circuit("tenant-42");
    listener.remove_circuit("never-attached");
    assert!(!h.collect().reports("tenant-42"));

    cb.reset();
    let collected = h.collect();
    assert_eq!(collected.current("tenant-42"), State::Closed);
    // Counting starts again from this signal.
    let expected: BTreeMap<_, _> = [(pair(State::ForcedOpen, State::Closed), 1)].into();
    assert_eq!(collected.transitions("tenant-42"), expected);
}

#[test]
fn l5_one_listener_serves_many_breakers_each_with_its_own_series() {
    let h = Harness::new();
    let listener = OpenTelemetryListener::new(&h.provider);
    let breakers: Vec<CircuitBreaker> = (0..24)
        .map(|i| {
            CircuitBreaker::builder(&format!("circuit-{i:02}"))
                .tripper(FailureStreak::new(1))
                .listener(listener.clone())
                .build()
                .unwrap()
        })
        .collect();
    // Every breaker moves on its own thread; each ends in a state chosen by its index.
    std::thread::scope(|scope| {
        for (i, cb) in breakers.iter().enumerate() {
            scope.spawn(move || match i % 4 {
                0 => {}
                1 => {
                    fail(cb);
                }
                2 => cb.disable(),
                _ => {
                    cb.force_open();
                    cb.metrics_only();
                }
            });
        }
    });
    let collected = h.collect();
    assert_eq!(
        collected.points("circuit_breaker_state").len(),
        24 * 6,
        "six points per circuit"
    );
    for (i, cb) in breakers.iter().enumerate() {
        let name = cb.name();
        let expected = [
            State::Closed,
            State::Open,
            State::Disabled,
            State::MetricsOnly,
        ][i % 4];
        assert_eq!(cb.info().state, expected);
        assert_eq!(collected.current(name), expected, "{name}");
        let transitions = collected.transitions(name);
        let moved: u64 = transitions.values().sum();
        assert_eq!(moved, [0, 1, 1, 2][i % 4], "{name}: {transitions:?}");
    }
}

#[test]
fn l3_the_async_breaker_feeds_the_same_series() {
    let h = Harness::new();
    let listener = OpenTelemetryListener::new(&h.provider);
    let cb = AsyncCircuitBreaker::builder("search_api")
        .async_listener(listener)
        .build()
        .unwrap();
    assert_eq!(h.collect().current("search_api"), State::Closed);
    cb.force_open();
    cb.reset();
    let collected = h.collect_until("two transitions", |c| {
        c.transitions("search_api").values().sum::<u64>() == 2
    });
    assert_eq!(collected.current("search_api"), State::Closed);
    let transitions = collected.transitions("search_api");
    assert_eq!(transitions[&pair(State::Closed, State::ForcedOpen)], 1);
    assert_eq!(transitions[&pair(State::ForcedOpen, State::Closed)], 1);
}

#[test]
fn a_listener_used_directly_reports_what_it_was_told() {
    let h = Harness::new();
    let listener = Arc::new(OpenTelemetryListener::new(&h.provider));
    // Names are attribute values, passed as they are.
    let name = "payments \"eu\"\nprimary";
    Listener::on_attach(&listener, name, State::Closed);
    Listener::on_signal(
        &listener,
        &Signal::new(
            name,
            State::Closed,
            State::HalfOpen,
            std::time::SystemTime::now(),
        ),
    )
    .unwrap();
    let collected = h.collect();
    assert_eq!(collected.current(name), State::HalfOpen);
    assert_eq!(
        collected.transitions(name)[&pair(State::Closed, State::HalfOpen)],
        1
    );
    Listener::on_detach(&listener, name);
    assert!(!h.collect().reports(name));
}
