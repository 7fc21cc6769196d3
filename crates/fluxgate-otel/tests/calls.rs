//! Opt-in call metrics on OpenTelemetry: calls by outcome and a duration histogram per
//! circuit, exact values from a manual clock, absent unless asked for, and what becomes of
//! a retired circuit's call series.

mod support;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::time::Duration;

use fluxgate_core::clock::ManualClock;
use fluxgate_core::listeners::{CallEvent, CallOutcome, Listener};
use fluxgate_core::registry::Registry;
use fluxgate_core::trackers::TypeOf;
use fluxgate_core::trippers::FailureStreak;
use fluxgate_core::{AsyncCircuitBreaker, CircuitBreaker, State};
use fluxgate_otel::{CALL_DURATION_BUCKETS, OpenTelemetryListener};
use opentelemetry_sdk::metrics::Temporality;
use support::{Harness, HistogramPoint, attrs, ready};

const MS: Duration = Duration::from_millis(1);

/// An error the breaker's tracker (`TypeOf<io::Error>`) does not count.
#[derive(Debug)]
struct Untracked;

impl fmt::Display for Untracked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a failure")
    }
}

impl std::error::Error for Untracked {}

fn breaker(name: &str, clock: &ManualClock, listener: OpenTelemetryListener) -> CircuitBreaker {
    CircuitBreaker::builder(name)
        .tracker(TypeOf::<io::Error>::new())
        .tripper(FailureStreak::new(2))
        .clock(clock.clone())
        .listener(listener)
        .build()
        .unwrap()
}

/// Two successes (3 ms, 30 ms), an ignored error (0.5 s), two failures that trip a
/// streak of 2 (1 ms and 2.5 s), then one rejection.
fn drive(cb: &CircuitBreaker, clock: &ManualClock) {
    for d in [3 * MS, 30 * MS] {
        cb.call(|| {
            clock.advance(d);
            Ok::<_, io::Error>(())
        })
        .unwrap();
    }
    let ignored = cb.call(|| {
        clock.advance(500 * MS);
        Err::<(), _>(Untracked)
    });
    assert!(matches!(
        ignored,
        Err(fluxgate_core::Error::Inner(Untracked))
    ));
    for d in [MS, 2500 * MS] {
        let _ = cb.call(|| {
            clock.advance(d);
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

fn outcomes(success: u64, failure: u64, ignored: u64, rejected: u64) -> BTreeMap<String, u64> {
    [
        ("success", success),
        ("failure", failure),
        ("ignored", ignored),
        ("rejected", rejected),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Bucket counts for durations (in ms), over [`CALL_DURATION_BUCKETS`] and `+Inf`.
fn buckets(durations_ms: &[u64]) -> Vec<u64> {
    let mut counts = vec![0; CALL_DURATION_BUCKETS.len() + 1];
    for d in durations_ms {
        let seconds = *d as f64 / 1000.0;
        let index = CALL_DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(CALL_DURATION_BUCKETS.len());
        counts[index] += 1;
    }
    counts
}

#[test]
fn call_metrics_are_off_by_default() {
    let h = Harness::new();
    let listener = OpenTelemetryListener::new(&h.provider);
    assert!(!listener.records_calls());
    assert!(!Listener::wants_calls(&listener));
    let clock = ManualClock::new();
    let cb = breaker("payment_api", &clock, listener);
    drive(&cb, &clock);
    let collected = h.collect();
    assert!(collected.metric("circuit_breaker_calls").is_none());
    assert!(collected.metric("circuit_breaker_call_duration").is_none());
    // The two series are there all the same.
    assert_eq!(collected.current("payment_api"), State::Open);
}

#[test]
fn calls_are_counted_by_outcome_from_the_moment_the_breaker_is_built() {
    let h = Harness::new();
    let listener = OpenTelemetryListener::builder(&h.provider)
        .call_metrics(true)
        .build();
    assert!(Listener::wants_calls(&listener));
    let clock = ManualClock::new();
    let cb = breaker("payment_api", &clock, listener);

    let collected = h.collect();
    assert_eq!(collected.calls("payment_api"), outcomes(0, 0, 0, 0));
    // A synchronous histogram has no series before its first measurement.
    assert!(
        collected
            .histogram("circuit_breaker_call_duration")
            .is_empty()
    );

    drive(&cb, &clock);
    let collected = h.collect();
    let mut points = collected.points("circuit_breaker_calls");
    points.sort();
    let mut expected: Vec<_> = outcomes(2, 2, 1, 1)
        .into_iter()
        .map(|(outcome, n)| {
            (
                attrs(&[("circuit_name", "payment_api"), ("outcome", &outcome)]),
                n,
            )
        })
        .collect();
    expected.sort();
    assert_eq!(points, expected, "attributes and counts exact");

    let counter = collected.metric("circuit_breaker_calls").unwrap();
    assert_eq!(
        counter.description(),
        "Calls through the circuit breaker, by outcome"
    );
}

#[test]
fn the_duration_histogram_holds_the_calls_that_ran_in_seconds_on_the_breakers_clock() {
    let h = Harness::new();
    let listener = OpenTelemetryListener::builder(&h.provider)
        .call_metrics(true)
        .build();
    let clock = ManualClock::new();
    let cb = breaker("payment_api", &clock, listener);
    drive(&cb, &clock);

    let collected = h.collect();
    let metric = collected.metric("circuit_breaker_call_duration").unwrap();
    assert_eq!(metric.unit(), "s");
    assert_eq!(
        metric.description(),
        "Duration of the calls the circuit breaker let through, in seconds"
    );
    let ran = [3, 30, 500, 1, 2500];
    let points = collected.histogram("circuit_breaker_call_duration");
    assert_eq!(
        points,
        vec![HistogramPoint {
            attributes: attrs(&[("circuit_name", "payment_api")]),
            bounds: CALL_DURATION_BUCKETS.to_vec(),
            bucket_counts: buckets(&ran),
            // The rejected call did not run: five calls, not six.
            count: 5,
            sum: points[0].sum,
        }]
    );
    let expected_sum: f64 = ran.iter().map(|ms| *ms as f64 / 1000.0).sum();
    assert!(
        (points[0].sum - expected_sum).abs() < 1e-9,
        "sum {} != {expected_sum}",
        points[0].sum
    );
}

#[test]
fn many_breakers_share_one_listener_each_with_its_own_call_series() {
    let h = Harness::new();
    let listener = OpenTelemetryListener::builder(&h.provider)
        .call_metrics(true)
        .build();
    let clock = ManualClock::new();
    let breakers: Vec<CircuitBreaker> = (0..8)
        .map(|i| breaker(&format!("dep-{i}"), &clock, listener.clone()))
        .collect();
    std::thread::scope(|scope| {
        for (i, cb) in breakers.iter().enumerate() {
            scope.spawn(move || {
                for _ in 0..=i * 10 {
                    cb.call(|| Ok::<_, io::Error>(())).unwrap();
                }
            });
        }
    });
    let collected = h.collect();
    let histogram = collected.histogram("circuit_breaker_call_duration");
    assert_eq!(histogram.len(), 8);
    for (i, cb) in breakers.iter().enumerate() {
        let n = (i * 10 + 1) as u64;
        assert_eq!(collected.calls(cb.name()), outcomes(n, 0, 0, 0));
        let point = histogram
            .iter()
            .find(|p| p.attributes["circuit_name"] == cb.name())
            .unwrap();
        assert_eq!(point.count, n, "{}", cb.name());
    }
}

#[test]
fn the_async_breaker_reports_its_calls_too() {
    let h = Harness::new();
    let clock = ManualClock::new();
    let cb = AsyncCircuitBreaker::builder("search_api")
        .clock(clock.clone())
        .async_listener(
            OpenTelemetryListener::builder(&h.provider)
                .call_metrics(true)
                .build(),
        )
        .build()
        .unwrap();
    ready(cb.call(|| {
        clock.advance(40 * MS);
        std::future::ready(Ok::<_, io::Error>(()))
    }))
    .unwrap();
    cb.force_open();
    assert!(
        ready(cb.call(|| std::future::ready(Ok::<_, io::Error>(()))))
            .unwrap_err()
            .is_rejected()
    );
    let collected = h.collect();
    assert_eq!(collected.calls("search_api"), outcomes(1, 0, 0, 1));
    let histogram = collected.histogram("circuit_breaker_call_duration");
    assert_eq!(histogram.len(), 1);
    assert_eq!(histogram[0].bucket_counts, buckets(&[40]));
}

/// What the documentation promises for a retired circuit: its calls counter leaves at
/// once; the histogram (a synchronous instrument, which the API cannot delete) gets no
/// more measurements, and the SDK keeps its last value with cumulative temporality.
#[test]
fn a_retired_circuit_takes_its_calls_counter_along_and_its_histogram_stops_growing() {
    let h = Harness::new();
    let listener = OpenTelemetryListener::builder(&h.provider)
        .call_metrics(true)
        .build();
    let registry: Registry<CircuitBreaker> = Registry::builder().listener(listener.clone()).build();
    let retired = registry.get_or_create("tenant-1").unwrap();
    let kept = registry.get_or_create("tenant-2").unwrap();
    for cb in [&retired, &kept] {
        cb.call(|| Ok::<_, io::Error>(())).unwrap();
    }
    assert!(registry.remove("tenant-1"));
    let collected = h.collect_until("without tenant-1's calls", |c| {
        c.calls("tenant-1").is_empty()
    });
    assert_eq!(collected.calls("tenant-2"), outcomes(1, 0, 0, 0));

    // Late calls of the retired circuit do not bring its series back.
    let late = CallEvent::new(
        "tenant-1",
        State::Closed,
        CallOutcome::Success,
        Some(Duration::from_millis(5)),
    );
    Listener::on_call(&listener, &late);
    let collected = h.collect();
    assert!(collected.calls("tenant-1").is_empty());
    let histogram = collected.histogram("circuit_breaker_call_duration");
    let retired_point = histogram
        .iter()
        .find(|p| p.attributes["circuit_name"] == "tenant-1")
        .expect("cumulative: the SDK keeps the last histogram");
    assert_eq!(retired_point.count, 1, "no measurement after retirement");
}

#[test]
fn with_delta_temporality_a_retired_circuits_histogram_leaves_after_one_collection() {
    let h = Harness::with_temporality(Temporality::Delta);
    let listener = OpenTelemetryListener::builder(&h.provider)
        .call_metrics(true)
        .build();
    let clock = ManualClock::new();
    let cb = breaker("tenant-1", &clock, listener.clone());
    cb.call(|| Ok::<_, io::Error>(())).unwrap();
    listener.remove_circuit("tenant-1");
    // The collection after the last call still has it (delta: that interval's calls) …
    assert_eq!(
        h.collect().histogram("circuit_breaker_call_duration").len(),
        1
    );
    // … the next one has nothing for the circuit in any instrument.
    let collected = h.collect();
    assert!(!collected.reports("tenant-1"), "{:#?}", collected.0);
}
