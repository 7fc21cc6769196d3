//! One test per component rule: windows (W-*), metrics (M-*), trackers (TK-*), trippers
//! (TR-*), retries (RT-*), permits (P-*), and every ConfigError of SPEC.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::support::*;
use fluxgate::clock::ManualClock;
use fluxgate::permits::{self, Permit, RampUp, Random};
use fluxgate::retries::{Always, Backoff, Cooldown, Never, Retry, RetryContext};
use fluxgate::trackers::{All, Custom, Tracker, TypeOf};
use fluxgate::trippers::{
    AvgLatency, Closed, FailureRate, FailureStreak, HalfOpened, MinRequests, SlowRate, TripContext,
    Tripper,
};
use fluxgate::windows::{CountWindow, TimeWindow, Window};
use fluxgate::{CircuitBreaker, ConfigError, Metric, Record, State};

const MS: Duration = Duration::from_millis(1);
const SEC: Duration = Duration::from_secs(1);
const NS_PER_SEC: u64 = 1_000_000_000;

fn ctx(m: &Metric, streak: u64) -> TripContext<'_> {
    TripContext::new(m, State::Closed, streak)
}

#[test]
fn w1_count_window_keeps_last_n_fifo() {
    let mut w = CountWindow::new(3);
    w.set_slow_thresholds(&[100 * MS]);
    w.record(1, 0, Record::failure(200 * MS));
    w.record(1, 0, Record::success(50 * MS));
    w.record(1, 0, Record::success(150 * MS));
    let m = w.metric(1, 0);
    assert_eq!((m.total_count, m.failure_count), (3, 1));
    assert_eq!(m.total_duration, 400 * MS);
    assert_eq!(m.slow_count(100 * MS), 2);
    w.record(1, 0, Record::success(10 * MS)); // evicts the 200 ms failure
    let m = w.metric(1, 0);
    assert_eq!((m.total_count, m.failure_count), (3, 0));
    assert_eq!(m.total_duration, 210 * MS);
    assert_eq!(m.slow_count(100 * MS), 1);
    for _ in 0..10 {
        w.record(1, 0, Record::failure(Duration::ZERO));
    }
    let m = w.metric(1, 0);
    assert_eq!((m.total_count, m.failure_count), (3, 3));
    assert_eq!(m.total_duration, Duration::ZERO);
}

#[test]
fn w1_count_window_size_zero_is_config_error() {
    let err = CircuitBreaker::builder("x")
        .window(CountWindow::new(0))
        .build()
        .unwrap_err();
    assert_eq!(err.component(), "CountWindow");
    assert_eq!(err.parameter(), "size");
    assert_eq!(err.value(), "0");
    assert_eq!(
        err.to_string(),
        "CountWindow size must be in 1..=4194304, got 0"
    );
}

#[test]
fn w2_time_window_buckets_expire_on_read() {
    let mut w = TimeWindow::new(Duration::from_secs(60));
    w.set_slow_thresholds(&[SEC]);
    w.record(0, 0, Record::failure(2 * SEC));
    w.record(0, 30 * NS_PER_SEC, Record::success(MS));
    w.record(0, 59 * NS_PER_SEC + 999, Record::success(MS));
    let m = w.metric(0, 59 * NS_PER_SEC);
    assert_eq!((m.total_count, m.failure_count), (3, 1));
    assert_eq!(m.slow_count(SEC), 1);
    assert_eq!(m.total_duration, 2 * SEC + 2 * MS);
    // second 0 leaves the window at t = 60 s, with no write in between (read-side expiry)
    let m = w.metric(0, 60 * NS_PER_SEC);
    assert_eq!((m.total_count, m.failure_count), (2, 0));
    assert_eq!(m.slow_count(SEC), 0);
    assert_eq!(w.metric(0, 200 * NS_PER_SEC).total_count, 0);
    // a bucket reused one lap later starts from zero
    w.record(0, 120 * NS_PER_SEC, Record::success(MS));
    assert_eq!(w.metric(0, 120 * NS_PER_SEC).total_count, 1);
}

#[test]
fn w2_time_window_in_a_breaker_follows_the_clock() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("t")
        .window(TimeWindow::new(Duration::from_secs(10)))
        .tripper(MinRequests::new(4) & FailureRate::new(0.5))
        .clock(clock.clone())
        .build()
        .unwrap();
    let _ = fail(&cb);
    let _ = fail(&cb);
    clock.advance(10 * SEC); // the two failures age out
    ok(&cb).unwrap();
    ok(&cb).unwrap();
    let _ = fail(&cb);
    assert_eq!(cb.info().metric.total_count, 3);
    assert_eq!(cb.state(), State::Closed);
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::Open);
}

#[test]
fn w2_time_window_span_must_be_whole_seconds() {
    for span in [
        Duration::ZERO,
        Duration::from_millis(1500),
        Duration::from_secs(86_401),
    ] {
        let err = CircuitBreaker::builder("x")
            .window(TimeWindow::new(span))
            .build()
            .unwrap_err();
        assert_eq!((err.component(), err.parameter()), ("TimeWindow", "span"));
        assert!(err.to_string().contains(&format!("{span:?}")), "{err}");
    }
    assert!(
        CircuitBreaker::builder("x")
            .window(TimeWindow::new(SEC))
            .build()
            .is_ok()
    );
}

#[test]
fn w3_reset_clears_everything() {
    let w = CountWindow::new(5);
    w.record(0, 0, Record::failure(MS));
    w.reset();
    assert_eq!(w.metric(0, 0), Metric::default());
    w.record(0, 0, Record::success(MS));
    assert_eq!(w.metric(0, 0).total_count, 1);
    let t = TimeWindow::new(5 * SEC);
    t.record(0, 0, Record::failure(MS));
    t.reset();
    assert_eq!(t.metric(0, 0), Metric::default());
}

#[test]
fn m1_metric_ratios() {
    let m = Metric::default();
    assert_eq!(
        (m.avg_duration(), m.failure_rate(), m.slow_rate(SEC)),
        (None, None, None)
    );
    let m = Metric::new(4, 1, 8 * SEC, &[(SEC, 2)]);
    assert_eq!(m.avg_duration(), Some(2 * SEC));
    assert_eq!(m.failure_rate(), Some(0.25));
    assert_eq!(m.slow_rate(SEC), Some(0.5));
    assert_eq!(m.slow_rate(Duration::from_secs(7)), Some(0.0));
}

#[test]
fn m2_slow_is_at_least_threshold_and_failures_keep_duration() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("m")
        .tripper(SlowRate::new(1.0, SEC) & MinRequests::new(1000))
        .clock(clock.clone())
        .build()
        .unwrap();
    slow_ok(&cb, &clock, SEC).unwrap(); // exactly the threshold: slow
    slow_ok(&cb, &clock, SEC - Duration::from_nanos(1)).unwrap(); // just under: not
    let _ = slow_fail(&cb, &clock, Duration::from_secs(30)); // a 30 s timeout: slow too
    let m = cb.info().metric;
    assert_eq!(m.slow_count(SEC), 2);
    assert_eq!(m.failure_count, 1);
    // durations are kept to the microsecond
    assert_eq!(
        m.total_duration,
        Duration::from_secs(32) - Duration::from_micros(1)
    );
}

#[test]
fn m3_thresholds_are_collected_from_the_tripper_tree() {
    let clock = ManualClock::new();
    let t1 = Duration::from_millis(100);
    let t2 = Duration::from_millis(500);
    let cb = CircuitBreaker::builder("m")
        .tripper(MinRequests::new(1000) & (SlowRate::new(0.9, t1) | SlowRate::new(0.9, t2)))
        .clock(clock.clone())
        .build()
        .unwrap();
    slow_ok(&cb, &clock, Duration::from_millis(200)).unwrap();
    slow_ok(&cb, &clock, Duration::from_millis(600)).unwrap();
    let m = cb.info().metric;
    assert_eq!(m.slow_counts().collect::<Vec<_>>(), [(t1, 2), (t2, 1)]);
    // TR-6: each SlowRate reads only its own threshold
    assert!(SlowRate::new(1.0, t1).trip(&ctx(&m, 0)));
    assert!(!SlowRate::new(1.0, t2).trip(&ctx(&m, 0)));
    assert!(SlowRate::new(0.5, t2).trip(&ctx(&m, 0)));
}

/// The microseconds both windows keep of a call: whole ones, truncated (M-1).
fn truncated_micros(calls: &[Duration]) -> Duration {
    Duration::from_micros(calls.iter().map(|d| d.as_nanos() as u64 / 1000).sum())
}

#[test]
fn m1_tr5_time_window_truncates_so_a_99_9996_ms_call_stays_under_avg_latency_100_ms() {
    // TR-5 over M-1 durations: a call of 99.9996 ms is kept as 99 999 µs (truncated), in a
    // TimeWindow as in a CountWindow, so it does not reach AvgLatency(100 ms). The time
    // window used to round it to 100 000 µs and open the circuit.
    let call = Duration::from_nanos(99_999_600);
    for (name, window) in [
        (
            "time",
            AnyWindow::Time(TimeWindow::new(Duration::from_secs(60))),
        ),
        ("count", AnyWindow::Count(CountWindow::new(10))),
    ] {
        let clock = ManualClock::new();
        let cb = window
            .install(CircuitBreaker::builder("avg"))
            .tripper(AvgLatency::new(100 * MS))
            .clock(clock.clone())
            .build()
            .unwrap();
        slow_ok(&cb, &clock, call).unwrap();
        assert_eq!(cb.state(), State::Closed, "{name}");
        assert_eq!(
            cb.info().metric.total_duration,
            Duration::from_micros(99_999),
            "{name}"
        );
        // 100 ms itself reaches it: (99 999 + 100 001) µs over two calls
        slow_ok(&cb, &clock, Duration::from_micros(100_001)).unwrap();
        assert_eq!(cb.state(), State::Open, "{name}");
    }
}

/// A window handed to a builder by value, either kind.
enum AnyWindow {
    Time(TimeWindow),
    Count(CountWindow),
}

impl AnyWindow {
    fn install(self, b: fluxgate::Builder) -> fluxgate::Builder {
        match self {
            AnyWindow::Time(w) => b.window(w),
            AnyWindow::Count(w) => b.window(w),
        }
    }
}

#[test]
fn m1_w1_w2_count_and_time_windows_sum_the_same_truncated_durations() {
    // W-1, W-2, M-1: the same calls give the same total_duration in both windows, each
    // call's duration truncated to whole microseconds.
    let mut calls: Vec<Duration> = [
        1,
        499,
        500,
        501,
        999,
        1_000,
        1_001,
        1_499,
        1_500,
        1_999,
        99_999_600,
        1_000_500,
        123_456_789,
        2_999_999_999,
    ]
    .into_iter()
    .map(Duration::from_nanos)
    .collect();
    let mut rng = fastrand::Rng::with_seed(42);
    calls.extend((0..500).map(|_| Duration::from_nanos(rng.u64(0..10_000_000) | 1)));
    let count = CountWindow::new(1000);
    let time = TimeWindow::new(Duration::from_secs(60));
    for (i, &d) in calls.iter().enumerate() {
        let record = if i % 3 == 0 {
            Record::failure(d)
        } else {
            Record::success(d)
        };
        count.record(0, 0, record);
        time.record(0, 0, record);
    }
    let (c, t) = (count.metric(0, 0), time.metric(0, 0));
    assert_eq!(c.total_duration, truncated_micros(&calls));
    assert_eq!(t.total_duration, c.total_duration);
    assert_eq!(
        (t.total_count, t.failure_count),
        (c.total_count, c.failure_count)
    );
}

#[test]
fn tr5_tr6_latency_thresholds_must_be_whole_microseconds() {
    // M-2 needs both windows to count a call of exactly t as slow; the count window keeps
    // whole microseconds, so a threshold between two of them is refused at build().
    let odd = Duration::from_nanos(1_000_500);
    let err = CircuitBreaker::builder("x")
        .tripper(SlowRate::new(0.5, odd))
        .build()
        .unwrap_err();
    assert_eq!(
        (err.component(), err.parameter(), err.value()),
        ("SlowRate", "threshold", "1.0005ms")
    );
    assert_eq!(
        err.to_string(),
        "SlowRate threshold must be a whole number of microseconds, got 1.0005ms"
    );
    let err = CircuitBreaker::builder("x")
        .tripper(MinRequests::new(5) & AvgLatency::new(odd))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "AvgLatency threshold must be a whole number of microseconds, got 1.0005ms"
    );
    // TR-8: found anywhere in the tree, and in a recovery rule too
    let err = CircuitBreaker::builder("x")
        .recovery(fluxgate::recovery::Probes::new(
            3,
            FailureRate::new(0.5) | SlowRate::new(0.5, Duration::from_nanos(1)),
        ))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "SlowRate threshold must be a whole number of microseconds, got 1ns"
    );
    assert_eq!(
        CircuitBreaker::builder("x")
            .tripper(SlowRate::new(0.5, Duration::MAX))
            .build()
            .unwrap_err()
            .to_string(),
        "SlowRate threshold must be a whole number of microseconds, got 18446744073709551615.999999999s"
    );
    for ok in [
        Duration::from_micros(1),
        Duration::from_nanos(1_001_000),
        Duration::from_secs(u64::MAX),
    ] {
        assert!(
            CircuitBreaker::builder("x")
                .tripper(SlowRate::new(0.5, ok) | AvgLatency::new(ok))
                .build()
                .is_ok(),
            "{ok:?}"
        );
    }
}

#[test]
fn m2_a_call_of_exactly_a_whole_microsecond_threshold_is_slow_in_both_windows() {
    // M-2: slow iff duration >= t, for t = 1.001 ms, in a CountWindow and a TimeWindow.
    let t = Duration::from_micros(1001);
    let ns = Duration::from_nanos(1);
    for (name, window) in [
        (
            "time",
            AnyWindow::Time(TimeWindow::new(Duration::from_secs(60))),
        ),
        ("count", AnyWindow::Count(CountWindow::new(10))),
    ] {
        let clock = ManualClock::new();
        let cb = window
            .install(CircuitBreaker::builder("slow"))
            .tripper(SlowRate::new(1.0, t) & MinRequests::new(1000))
            .clock(clock.clone())
            .build()
            .unwrap();
        slow_ok(&cb, &clock, t).unwrap(); // exactly t: slow
        assert_eq!(cb.info().metric.slow_count(t), 1, "{name}");
        slow_ok(&cb, &clock, t - ns).unwrap(); // one nanosecond less: not
        let _ = slow_fail(&cb, &clock, t + 999 * ns); // slow, failed or not
        let m = cb.info().metric;
        assert_eq!((m.total_count, m.slow_count(t)), (3, 2), "{name}");
        assert_eq!(
            m.total_duration,
            truncated_micros(&[t, t - ns, t + 999 * ns]),
            "{name}"
        );
    }
}

#[derive(Debug)]
struct Wrapped(io::Error);
impl fmt::Display for Wrapped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("wrapped")
    }
}
impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn tk1_all_typeof_custom() {
    let io_err = io::Error::from(io::ErrorKind::TimedOut);
    assert!(All.track(&Untracked));
    assert!(TypeOf::<io::Error>::new().track(&io_err));
    assert!(TypeOf::<io::Error>::new().track(&Wrapped(io::Error::other("x"))));
    assert!(!TypeOf::<io::Error>::new().track(&Untracked));
    let timeouts = Custom::new(|e: &io::Error| e.kind() == io::ErrorKind::TimedOut);
    assert!(timeouts.track(&io_err));
    assert!(timeouts.track(&Wrapped(io::Error::from(io::ErrorKind::TimedOut))));
    assert!(!timeouts.track(&io::Error::from(io::ErrorKind::NotFound)));
    assert!(!timeouts.track(&Untracked));
}

#[test]
fn tk1_the_error_an_io_error_carries_is_in_the_chain() {
    // `io::Error::other(e)` carries `e`, but its `source()` is `e`'s own source: the old
    // walk skipped `e`, so `TypeOf::<E>` and `Custom<E>` missed the commonest wrapping.
    let carried = io::Error::other(Untracked);
    assert!(TypeOf::<Untracked>::new().track(&carried));
    assert!(Custom::new(|_: &Untracked| true).track(&carried));
    let deeper = Wrapped(io::Error::new(io::ErrorKind::TimedOut, Untracked));
    assert!(TypeOf::<Untracked>::new().track(&deeper));
    assert!(!TypeOf::<Untracked>::new().track(&io::Error::other("text only")));
    // Through the breaker: the tracker decides what a failure is.
    let cb = CircuitBreaker::builder("carried")
        .tracker(TypeOf::<Untracked>::new())
        .build()
        .unwrap();
    let _ = cb.call(|| Err::<(), _>(io::Error::other(Untracked)));
    assert_eq!(cb.info().metric.failure_count, 1);
}

#[test]
fn tk2_combinators_nest_and_short_circuit() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let io_t = TypeOf::<io::Error>::new();
    let not_found = Custom::new(|e: &io::Error| e.kind() == io::ErrorKind::NotFound);
    let t = io_t & !not_found;
    assert!(t.track(&io::Error::other("x")));
    assert!(!t.track(&io::Error::from(io::ErrorKind::NotFound)));
    assert!(!t.track(&Untracked));
    let either = TypeOf::<Untracked>::new() | TypeOf::<io::Error>::new();
    assert!(either.track(&Untracked) && either.track(&io::Error::other("x")));
    let double = !!TypeOf::<io::Error>::new();
    assert!(double.track(&io::Error::other("x")) && !double.track(&Untracked));
    let nested = (All & !TypeOf::<Untracked>::new()) | (TypeOf::<Untracked>::new() & All);
    assert!(nested.track(&Untracked) && nested.track(&io::Error::other("x")));

    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let counting = Custom::new(move |_: &io::Error| {
        c.fetch_add(1, Ordering::Relaxed);
        true
    });
    let and = !All & counting;
    assert!(!and.track(&io::Error::other("x")));
    assert_eq!(calls.load(Ordering::Relaxed), 0, "& short-circuits");
    let c = calls.clone();
    let counting = Custom::new(move |_: &io::Error| {
        c.fetch_add(1, Ordering::Relaxed);
        true
    });
    let or = All | counting;
    assert!(or.track(&io::Error::other("x")));
    assert_eq!(calls.load(Ordering::Relaxed), 0, "| short-circuits");
}

#[test]
fn tr1_tr2_state_rules() {
    let m = Metric::default();
    let closed = TripContext::new(&m, State::Closed, 0);
    let half = TripContext::new(&m, State::HalfOpen, 0);
    assert!(Closed.trip(&closed) && !Closed.trip(&half));
    assert!(HalfOpened.trip(&half) && !HalfOpened.trip(&closed));
}

#[test]
fn tr3_to_tr7_leaf_rules() {
    let m = Metric::new(20, 10, 40 * SEC, &[(SEC, 6)]);
    assert!(MinRequests::new(20).trip(&ctx(&m, 0)));
    assert!(!MinRequests::new(21).trip(&ctx(&m, 0)));
    assert!(FailureRate::new(0.5).trip(&ctx(&m, 0)));
    assert!(!FailureRate::new(0.51).trip(&ctx(&m, 0)));
    assert!(AvgLatency::new(2 * SEC).trip(&ctx(&m, 0)));
    assert!(!AvgLatency::new(2 * SEC + MS).trip(&ctx(&m, 0)));
    assert!(SlowRate::new(0.3, SEC).trip(&ctx(&m, 0)));
    assert!(!SlowRate::new(0.31, SEC).trip(&ctx(&m, 0)));
    assert!(FailureStreak::new(5).trip(&ctx(&m, 5)));
    assert!(!FailureStreak::new(5).trip(&ctx(&m, 4)));
    let empty = Metric::default();
    assert!(!FailureRate::new(0.1).trip(&ctx(&empty, 0)));
    assert!(!AvgLatency::new(MS).trip(&ctx(&empty, 0)));
    assert!(!SlowRate::new(0.1, MS).trip(&ctx(&empty, 0)));
}

#[test]
fn tr8_worked_cases() {
    let t = FailureStreak::new(5) | (MinRequests::new(20) & FailureRate::new(0.5));
    let half = Metric::new(10, 5, Duration::ZERO, &[]);
    assert!(!t.trip(&ctx(&half, 3)));
    assert!(t.trip(&ctx(&half, 5)));
    let twenty = Metric::new(20, 10, Duration::ZERO, &[]);
    assert!(t.trip(&ctx(&twenty, 2)));

    // FailureStreak(3): fail, fail, untracked, fail -> open
    let cb = CircuitBreaker::builder("s")
        .tracker(TypeOf::<io::Error>::new())
        .tripper(FailureStreak::new(3))
        .build()
        .unwrap();
    let _ = fail(&cb);
    let _ = fail(&cb);
    let _ = cb.call(|| Err::<(), _>(Untracked));
    assert_eq!(cb.state(), State::Closed);
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::Open);
}

#[test]
fn tr8_validation_walks_the_whole_tree() {
    let err = CircuitBreaker::builder("x")
        .tripper(FailureStreak::new(5) | (MinRequests::new(20) & (Closed | FailureRate::new(1.5))))
        .build()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "FailureRate ratio must be in (0, 1], got 1.5"
    );
}

#[test]
fn rt1_always_and_never() {
    for reopens in [0, 5] {
        let c = RetryContext::new(Duration::ZERO, reopens);
        assert!(Always.should_retry(&c));
        assert_eq!(Always.retry_after(&c), Some(Duration::ZERO));
        let late = RetryContext::new(Duration::from_secs(1 << 40), reopens);
        assert!(!Never.should_retry(&late));
        assert_eq!(Never.retry_after(&late), None);
    }
    // only a manual reset leaves open under Never
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("n")
        .tripper(FailureStreak::new(1))
        .retry(Never)
        .clock(clock.clone())
        .build()
        .unwrap();
    let _ = fail(&cb);
    clock.advance(Duration::from_secs(1_000_000));
    assert!(ok(&cb).is_err());
    cb.reset();
    assert!(ok(&cb).is_ok());
}

#[test]
fn rt2_cooldown_with_and_without_jitter() {
    let c = Cooldown::new(60 * SEC);
    assert!(!c.should_retry(&RetryContext::new(60 * SEC - MS, 0)));
    assert!(c.should_retry(&RetryContext::new(60 * SEC, 7)));
    assert_eq!(
        c.retry_after(&RetryContext::new(15 * SEC, 0)),
        Some(45 * SEC)
    );
    let j = Cooldown::new(60 * SEC).jitter(0.5);
    let mut waits = Vec::new();
    for seed in 0..2000u64 {
        let ctx = RetryContext::new(Duration::ZERO, 0).with_seed(seed);
        let w = j.wait(&ctx).unwrap();
        assert!(w >= 30 * SEC && w <= 90 * SEC, "{w:?}");
        assert_eq!(j.wait(&ctx), Some(w), "stable for one open period");
        waits.push(w);
    }
    assert!(waits.iter().any(|w| *w < 45 * SEC) && waits.iter().any(|w| *w > 75 * SEC));
}

#[test]
fn rt3_backoff_grows_and_is_clamped_even_with_jitter() {
    let b = Backoff::new(10 * SEC).max(30 * SEC);
    let wait = |r| b.wait(&RetryContext::new(Duration::ZERO, r)).unwrap();
    assert_eq!(
        [wait(0), wait(1), wait(2), wait(10)],
        [10 * SEC, 20 * SEC, 30 * SEC, 30 * SEC]
    );
    assert_eq!(wait(u32::MAX), 30 * SEC);
    let j = Backoff::new(10 * SEC)
        .max(30 * SEC)
        .jitter(0.9)
        .multiplier(3.0);
    for seed in 0..2000u64 {
        for r in 0..5 {
            let w = j
                .wait(&RetryContext::new(Duration::ZERO, r).with_seed(seed))
                .unwrap();
            assert!(w <= 30 * SEC, "{w:?}");
        }
    }
    // in a breaker, each re-trip waits longer
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("b")
        .tripper(FailureStreak::new(1))
        .retry(Backoff::new(10 * SEC).max(30 * SEC))
        .permit(permits::All)
        .clock(clock.clone())
        .build()
        .unwrap();
    let _ = fail(&cb);
    for expected in [10, 20, 30, 30] {
        let rej = ok(&cb).unwrap_err();
        assert_eq!(
            rej.rejection().unwrap().retry_after(),
            Some(Duration::from_secs(expected))
        );
        clock.advance(Duration::from_secs(expected));
        let _ = fail(&cb); // probe fails: re-open
    }
}

#[test]
fn p1_all_and_random() {
    assert!((0..1000).all(|_| permits::All.permit(Duration::ZERO)));
    assert!((0..1000).all(|_| !Random::new(0.0).permit(Duration::ZERO)));
    assert!((0..1000).all(|_| Random::new(1.0).permit(Duration::ZERO)));
    let admitted = (0..20_000)
        .filter(|_| Random::new(0.5).permit(Duration::ZERO))
        .count();
    // 20 000 draws at p = 0.5: sd = 71; the bounds are 14 sd away.
    assert!((9_000..=11_000).contains(&admitted), "{admitted}");
}

#[test]
fn p2_ramp_up_is_linear_then_flat() {
    let r = RampUp::new(0.1, 0.8, 60 * SEC);
    assert_eq!(r.ratio_at(Duration::ZERO), 0.1);
    assert_eq!(r.ratio_at(15 * SEC), 0.275);
    assert_eq!(r.ratio_at(30 * SEC), 0.45);
    assert_eq!(r.ratio_at(60 * SEC), 0.8);
    assert_eq!(r.ratio_at(600 * SEC), 0.8);
    let full = RampUp::new(1.0, 1.0, SEC);
    assert!((0..1000).all(|_| full.permit(Duration::ZERO)));
    // in a breaker the ramp is measured from entering half_open
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("r")
        .tripper(FailureStreak::new(1))
        .retry(Cooldown::new(10 * SEC))
        .permit(RampUp::new(0.01, 1.0, 60 * SEC))
        .clock(clock.clone())
        .build()
        .unwrap();
    let _ = fail(&cb);
    clock.advance(10 * SEC);
    let _ = cb.admit(); // moves to half_open now
    assert_eq!(cb.state(), State::HalfOpen);
    clock.advance(60 * SEC);
    let t = cb.admit().expect("100 % after the ramp");
    drop(t);
}

fn err_of<F: fluxgate::windows::Window>(w: F) -> ConfigError {
    CircuitBreaker::builder("x").window(w).build().unwrap_err()
}

#[test]
fn config_errors_name_component_parameter_value_and_range() {
    let b = || CircuitBreaker::builder("x");
    let cases: Vec<(ConfigError, &str)> = vec![
        (
            err_of(CountWindow::new(0)),
            "CountWindow size must be in 1..=4194304, got 0",
        ),
        (
            err_of(CountWindow::new(5_000_000)),
            "CountWindow size must be in 1..=4194304, got 5000000",
        ),
        (
            err_of(TimeWindow::new(Duration::ZERO)),
            "TimeWindow span must be a whole number of seconds in 1..=86400, got 0ns",
        ),
        (
            b().tripper(MinRequests::new(0)).build().unwrap_err(),
            "MinRequests n must be >= 1, got 0",
        ),
        (
            b().tripper(FailureRate::new(0.0)).build().unwrap_err(),
            "FailureRate ratio must be in (0, 1], got 0",
        ),
        (
            b().tripper(FailureRate::new(f64::NAN)).build().unwrap_err(),
            "FailureRate ratio must be in (0, 1], got NaN",
        ),
        (
            b().tripper(AvgLatency::new(Duration::ZERO))
                .build()
                .unwrap_err(),
            "AvgLatency threshold must be greater than zero, got 0ns",
        ),
        (
            b().tripper(SlowRate::new(1.2, SEC)).build().unwrap_err(),
            "SlowRate ratio must be in (0, 1], got 1.2",
        ),
        (
            b().tripper(SlowRate::new(0.5, Duration::ZERO))
                .build()
                .unwrap_err(),
            "SlowRate threshold must be greater than zero, got 0ns",
        ),
        (
            b().tripper(SlowRate::new(0.5, Duration::from_nanos(1_000_500)))
                .build()
                .unwrap_err(),
            "SlowRate threshold must be a whole number of microseconds, got 1.0005ms",
        ),
        (
            b().tripper(AvgLatency::new(Duration::from_nanos(1_000_500)))
                .build()
                .unwrap_err(),
            "AvgLatency threshold must be a whole number of microseconds, got 1.0005ms",
        ),
        (
            b().tripper(FailureStreak::new(0)).build().unwrap_err(),
            "FailureStreak n must be >= 1, got 0",
        ),
        (
            b().retry(Cooldown::new(Duration::ZERO))
                .build()
                .unwrap_err(),
            "Cooldown duration must be greater than zero, got 0ns",
        ),
        (
            b().retry(Cooldown::new(SEC).jitter(1.0))
                .build()
                .unwrap_err(),
            "Cooldown jitter must be in [0, 1), got 1",
        ),
        (
            b().retry(Backoff::new(Duration::ZERO)).build().unwrap_err(),
            "Backoff initial must be greater than zero, got 0ns",
        ),
        (
            b().retry(Backoff::new(SEC).multiplier(1.0))
                .build()
                .unwrap_err(),
            "Backoff multiplier must be greater than 1, got 1",
        ),
        (
            b().retry(Backoff::new(10 * SEC).max(SEC))
                .build()
                .unwrap_err(),
            "Backoff max must be at least initial, got 1s",
        ),
        (
            b().retry(Backoff::new(SEC).jitter(-0.1))
                .build()
                .unwrap_err(),
            "Backoff jitter must be in [0, 1), got -0.1",
        ),
        (
            b().permit(Random::new(1.5)).build().unwrap_err(),
            "Random ratio must be in [0, 1], got 1.5",
        ),
        (
            b().permit(RampUp::new(0.0, 1.0, SEC)).build().unwrap_err(),
            "RampUp initial must be in (0, 1], got 0",
        ),
        (
            b().permit(RampUp::new(0.5, 1.5, SEC)).build().unwrap_err(),
            "RampUp final must be in (0, 1], got 1.5",
        ),
        (
            b().permit(RampUp::new(0.5, 0.2, SEC)).build().unwrap_err(),
            "RampUp final must be at least initial, got 0.2",
        ),
        (
            b().permit(RampUp::new(0.1, 1.0, Duration::ZERO))
                .build()
                .unwrap_err(),
            "RampUp duration must be greater than zero, got 0ns",
        ),
        (
            b().max_half_open_calls(0).build().unwrap_err(),
            "CircuitBreaker max_half_open_calls must be >= 1, got 0",
        ),
    ];
    for (err, text) in cases {
        assert_eq!(err.to_string(), text);
    }
    let too_many = SlowRate::new(0.5, MS)
        | SlowRate::new(0.5, 2 * MS)
        | SlowRate::new(0.5, 3 * MS)
        | SlowRate::new(0.5, 4 * MS)
        | SlowRate::new(0.5, 5 * MS)
        | SlowRate::new(0.5, 6 * MS)
        | SlowRate::new(0.5, 7 * MS)
        | SlowRate::new(0.5, 8 * MS)
        | SlowRate::new(0.5, 9 * MS);
    let err = b().tripper(too_many).build().unwrap_err();
    assert_eq!(
        err.to_string(),
        "SlowRate thresholds must be at most 8 distinct thresholds per breaker, got 9"
    );
}

#[test]
fn no_panic_on_extreme_inputs() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("x")
        .tripper(
            AvgLatency::new(Duration::from_micros(1))
                | SlowRate::new(1.0, Duration::from_secs(u64::MAX)),
        )
        .retry(
            Backoff::new(Duration::from_nanos(1))
                .max(Duration::MAX)
                .multiplier(1e300),
        )
        .max_half_open_calls(usize::MAX)
        .clock(clock.clone())
        .build()
        .unwrap();
    let _ = slow_fail(&cb, &clock, Duration::from_secs(u64::MAX / 4));
    clock.advance(Duration::MAX);
    let _ = ok(&cb);
    let _ = cb.info();
}

#[test]
fn w2_time_window_records_of_old_generations_never_come_back() {
    let w = TimeWindow::new(Duration::from_secs(60));
    w.record(3, 5 * NS_PER_SEC, Record::failure(MS));
    assert_eq!(w.metric(3, 10 * NS_PER_SEC).total_count, 1);
    for later in [4u64, 3 + 256, 3 + 512, 3 + 65_536, 3 + (1 << 24)] {
        w.advance(later);
        assert_eq!(
            w.metric(later, 10 * NS_PER_SEC).total_count,
            0,
            "generation {later}"
        );
    }
}

#[test]
fn w2_sm14_a_flapping_breaker_keeps_its_time_window_empty_on_every_entry() {
    // Every failed probe is two transitions (open → half_open → open): 300 probes in one
    // second move the epoch by 600, past any short wrap of a generation tag.
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("flap")
        .window(TimeWindow::new(Duration::from_secs(60)))
        .tripper(FailureStreak::new(1))
        .retry(Always)
        .permit(permits::All)
        .clock(clock.clone())
        .build()
        .unwrap();
    clock.advance(10 * SEC);
    let _ = fail(&cb);
    for probe in 0..300 {
        if probe == 1 {
            // later probes land in another second's bucket; the first one's stays put
            clock.advance(10 * SEC);
        }
        let ticket = cb.admit().unwrap(); // open -> half_open: a new, empty window
        let info = cb.info();
        assert_eq!(info.state, State::HalfOpen, "probe {probe}");
        assert_eq!(info.metric.total_count, 0, "probe {probe}");
        ticket.failure(); // half_open -> open
        assert_eq!(cb.state(), State::Open);
    }
}
