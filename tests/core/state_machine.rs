//! One test per state-machine rule of SPEC §1 (SM-*), errors §2 (CF-*) and defaults §10 (D-*).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::*;
use fluxgate::clock::{Clock, ManualClock};
use fluxgate::permits::{self, Random};
use fluxgate::retries::{Always, Cooldown, Never, Retry, RetryContext};
use fluxgate::trackers::TypeOf;
use fluxgate::trippers::{
    Closed, FailureRate, FailureStreak, HalfOpened, MinRequests, SlowRate, TripContext, Tripper,
};
use fluxgate::windows::CountWindow;
use fluxgate::{CircuitBreaker, Error, Outcome, Signal, State};

const SEC: Duration = Duration::from_secs(1);

/// A breaker that opens after `streak` failures, probes after 10 s, admits every probe.
fn streak_breaker(streak: u64, clock: &ManualClock, rec: &Recorder) -> CircuitBreaker {
    CircuitBreaker::builder("svc")
        .tripper(FailureStreak::new(streak))
        .retry(Cooldown::new(10 * SEC))
        .permit(permits::All)
        .clock(clock.clone())
        .listener(rec.listener())
        .build()
        .unwrap()
}

fn open_it(cb: &CircuitBreaker) {
    while cb.state() != State::Open {
        let _ = fail(cb);
    }
}

#[test]
fn sm1_six_states_with_canonical_strings() {
    let names: Vec<String> = State::ALL.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        names,
        [
            "closed",
            "open",
            "half_open",
            "metrics_only",
            "disabled",
            "forced_open"
        ]
    );
    for s in State::ALL {
        assert_eq!(State::from_name(s.as_str()), Some(s));
        assert_eq!(s.as_str(), s.to_string());
    }
}

#[test]
fn sm2_new_breaker_is_closed_and_empty() {
    let clock = ManualClock::new();
    clock.advance(5 * SEC);
    let cb = CircuitBreaker::builder("payment_api")
        .clock(clock.clone())
        .build()
        .unwrap();
    let info = cb.info();
    assert_eq!(info.name, "payment_api");
    assert_eq!(info.state, State::Closed);
    assert_eq!(info.reopens, 0);
    assert_eq!(info.metric, fluxgate::Metric::default());
    assert_eq!(info.changed_at, clock.wall());
}

#[test]
fn sm3_closed_tracked_failure_is_recorded_with_duration_and_trips() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = CircuitBreaker::builder("svc")
        .tripper(FailureStreak::new(2))
        .measure_durations(true)
        .clock(clock.clone())
        .listener(rec.listener())
        .build()
        .unwrap();
    let r = slow_fail(&cb, &clock, Duration::from_millis(300));
    match r {
        Err(Error::Inner(e)) => assert_eq!(e.to_string(), "boom"),
        other => panic!("{other:?}"),
    }
    let info = cb.info();
    assert_eq!(info.metric.failure_count, 1);
    assert_eq!(info.metric.total_duration, Duration::from_millis(300));
    assert_eq!(info.consecutive_failures, 1);
    assert_eq!(info.state, State::Closed);
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::Open);
    assert_eq!(rec.pairs(), [(State::Closed, State::Open)]);
}

#[test]
fn sm4_closed_success_resets_streak_and_slow_successes_can_trip() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("svc")
        .tripper(FailureStreak::new(3) | (MinRequests::new(3) & SlowRate::new(1.0, SEC)))
        .clock(clock.clone())
        .build()
        .unwrap();
    let _ = fail(&cb);
    let _ = fail(&cb);
    assert_eq!(cb.info().consecutive_failures, 2);
    ok(&cb).unwrap();
    assert_eq!(cb.info().consecutive_failures, 0);
    assert_eq!(cb.state(), State::Closed);

    let cb = CircuitBreaker::builder("slow")
        .tripper(MinRequests::new(3) & SlowRate::new(1.0, SEC))
        .clock(clock.clone())
        .build()
        .unwrap();
    slow_ok(&cb, &clock, 2 * SEC).unwrap();
    slow_ok(&cb, &clock, 2 * SEC).unwrap();
    assert_eq!(cb.state(), State::Closed);
    slow_ok(&cb, &clock, 2 * SEC).unwrap();
    assert_eq!(cb.state(), State::Open);
}

#[test]
fn sm5_untracked_error_leaves_no_trace() {
    let cb = CircuitBreaker::builder("svc")
        .tracker(TypeOf::<io::Error>::new())
        .tripper(FailureStreak::new(2))
        .build()
        .unwrap();
    let _ = fail(&cb);
    let r = cb.call(|| Err::<(), _>(Untracked));
    assert!(matches!(r, Err(Error::Inner(Untracked))));
    let info = cb.info();
    assert_eq!(info.metric.total_count, 1);
    assert_eq!(info.consecutive_failures, 1);
    assert_eq!(info.state, State::Closed);
}

#[test]
fn sm6_open_rejects_without_invoking_or_recording() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = streak_breaker(1, &clock, &rec);
    open_it(&cb);
    let ran = AtomicUsize::new(0);
    let r = cb.call(|| {
        ran.fetch_add(1, Ordering::Relaxed);
        Ok::<_, io::Error>(())
    });
    match r {
        Err(Error::Rejected(rej)) => {
            assert_eq!(rej.state(), State::Open);
            assert_eq!(rej.circuit_name(), "svc");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ran.load(Ordering::Relaxed), 0);
    assert_eq!(cb.info().metric.total_count, 0);
}

#[test]
fn sm7_open_moves_lazily_to_half_open_and_the_same_call_runs() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = streak_breaker(1, &clock, &rec);
    open_it(&cb);
    clock.advance(10 * SEC);
    assert_eq!(cb.info().state, State::Open, "no call yet: still open");
    let seen = Mutex::new(None);
    cb.call(|| {
        *seen.lock().unwrap() = Some(cb.state());
        Ok::<_, io::Error>(())
    })
    .unwrap();
    assert_eq!(*seen.lock().unwrap(), Some(State::HalfOpen));
    assert_eq!(
        rec.pairs(),
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed)
        ]
    );
}

#[test]
fn sm8_half_open_slots_and_permit_limit_admission() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("svc")
        .tripper(FailureStreak::new(1))
        .retry(Always)
        .permit(permits::All)
        .max_half_open_calls(2)
        .clock(clock.clone())
        .build()
        .unwrap();
    open_it(&cb);
    let a = cb.admit().unwrap();
    let b = cb.admit().unwrap();
    assert_eq!(cb.half_open_in_flight(), 2);
    let rej = cb.admit().unwrap_err();
    assert_eq!(rej.state(), State::HalfOpen);
    assert_eq!(
        rej.to_string(),
        "circuit breaker 'svc' is half-open, call not permitted"
    );
    drop(a);
    assert_eq!(cb.half_open_in_flight(), 1);
    let c = cb.admit().unwrap();
    drop((b, c));
    assert_eq!(cb.half_open_in_flight(), 0);

    let cb = CircuitBreaker::builder("deny")
        .tripper(FailureStreak::new(1))
        .retry(Always)
        .permit(Random::new(0.0))
        .build()
        .unwrap();
    open_it(&cb);
    let ran = AtomicUsize::new(0);
    let r = cb.call(|| {
        ran.fetch_add(1, Ordering::Relaxed);
        Ok::<_, io::Error>(())
    });
    assert_eq!(r.unwrap_err().rejection().unwrap().state(), State::HalfOpen);
    assert_eq!(ran.load(Ordering::Relaxed), 0);
    assert_eq!(cb.info().metric.total_count, 0);
    assert_eq!(cb.half_open_in_flight(), 0);
}

#[test]
fn sm9_half_open_outcomes() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    // Half-open: close once 2 calls passed with < 50 % failures; reopen at >= 50 %.
    let cb = CircuitBreaker::builder("svc")
        .tracker(TypeOf::<io::Error>::new())
        .tripper(
            (Closed & FailureStreak::new(1))
                | (HalfOpened & (FailureRate::new(0.5) | !MinRequestsReached(2))),
        )
        .retry(Always)
        .permit(permits::All)
        .clock(clock.clone())
        .listener(rec.listener())
        .build()
        .unwrap();
    open_it(&cb);
    // success with tripper true (not enough calls yet) -> stay half_open
    ok(&cb).unwrap();
    assert_eq!(cb.state(), State::HalfOpen);
    // untracked error -> nothing recorded, stay
    let _ = cb.call(|| Err::<(), _>(Untracked));
    assert_eq!(cb.state(), State::HalfOpen);
    assert_eq!(cb.info().metric.total_count, 1);
    // success, 2 calls, 0 % failures -> tripper false -> closed
    ok(&cb).unwrap();
    assert_eq!(cb.state(), State::Closed);
    // failure path: reopen counts a reopen
    open_it(&cb);
    let _ = fail(&cb); // half_open, 1 call 100 % failed -> trip -> open
    assert_eq!(cb.state(), State::Open);
    assert_eq!(cb.info().reopens, 1);
}

/// Test helper tripper: true until `n` calls are in the window (so a half-open circuit
/// waits for `n` probes before it may close).
#[derive(Clone, Copy)]
struct MinRequestsReached(u64);
impl Tripper for MinRequestsReached {
    fn trip(&self, ctx: &TripContext<'_>) -> bool {
        ctx.metric.total_count >= self.0
    }
}
impl std::ops::Not for MinRequestsReached {
    type Output = NotTripper<Self>;
    fn not(self) -> Self::Output {
        NotTripper(self)
    }
}
#[derive(Clone, Copy)]
struct NotTripper<T>(T);
impl<T: Tripper> Tripper for NotTripper<T> {
    fn trip(&self, ctx: &TripContext<'_>) -> bool {
        !self.0.trip(ctx)
    }
}

#[test]
fn sm9_half_open_failure_without_trip_stays_half_open() {
    let cb = CircuitBreaker::builder("svc")
        .tripper((Closed & FailureStreak::new(1)) | (HalfOpened & FailureStreak::new(2)))
        .retry(Always)
        .permit(permits::All)
        .build()
        .unwrap();
    open_it(&cb);
    let _ = fail(&cb); // half_open, streak 1 < 2
    assert_eq!(cb.state(), State::HalfOpen);
    assert_eq!(cb.info().reopens, 0);
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::Open);
    assert_eq!(cb.info().reopens, 1);
}

#[test]
fn sm10_metrics_only_records_but_never_trips() {
    let rec = Recorder::default();
    let cb = CircuitBreaker::builder("svc")
        .tripper(FailureStreak::new(1))
        .listener(rec.listener())
        .build()
        .unwrap();
    cb.metrics_only();
    for _ in 0..5 {
        let _ = fail(&cb);
    }
    let info = cb.info();
    assert_eq!(info.state, State::MetricsOnly);
    assert_eq!(info.metric.failure_count, 5);
    assert_eq!(info.consecutive_failures, 5);
    assert_eq!(rec.pairs(), [(State::Closed, State::MetricsOnly)]);
}

#[test]
fn sm11_disabled_passes_through_untimed_and_unrecorded() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("svc")
        .tripper(FailureStreak::new(1))
        .measure_durations(true)
        .clock(clock.clone())
        .build()
        .unwrap();
    cb.disable();
    for _ in 0..3 {
        assert!(matches!(slow_fail(&cb, &clock, SEC), Err(Error::Inner(_))));
    }
    assert_eq!(cb.call(|| Ok::<_, io::Error>(5)).unwrap(), 5);
    let info = cb.info();
    assert_eq!(info.state, State::Disabled);
    assert_eq!(info.metric, fluxgate::Metric::default());
}

/// A retry policy that counts how often it is asked.
#[derive(Clone, Default)]
struct CountingRetry(Arc<AtomicUsize>);
impl Retry for CountingRetry {
    fn wait(&self, _: &RetryContext) -> Option<Duration> {
        self.0.fetch_add(1, Ordering::Relaxed);
        Some(Duration::ZERO)
    }
}

#[test]
fn sm12_forced_open_rejects_everything_and_never_asks_retry() {
    let retry = CountingRetry::default();
    let cb = CircuitBreaker::builder("svc")
        .retry(retry.clone())
        .build()
        .unwrap();
    cb.force_open();
    for _ in 0..10 {
        let r = ok(&cb).unwrap_err();
        let rej = r.rejection().unwrap();
        assert_eq!(rej.state(), State::ForcedOpen);
        assert_eq!(rej.retry_after(), None);
    }
    assert_eq!(retry.0.load(Ordering::Relaxed), 0);
}

#[test]
fn sm13_manual_commands_from_any_state_and_silent_forms() {
    let rec = Recorder::default();
    let cb = CircuitBreaker::builder("svc")
        .tripper(FailureStreak::new(1))
        .retry(Never)
        .listener(rec.listener())
        .build()
        .unwrap();
    cb.reset();
    assert_eq!(rec.pairs(), [(State::Closed, State::Closed)]);
    rec.clear();
    type Cmd = fn(&CircuitBreaker);
    let commands: [(Cmd, State); 4] = [
        (CircuitBreaker::reset, State::Closed),
        (CircuitBreaker::disable, State::Disabled),
        (CircuitBreaker::metrics_only, State::MetricsOnly),
        (CircuitBreaker::force_open, State::ForcedOpen),
    ];
    for (cmd, target) in commands {
        for from in [
            State::Open,
            State::Disabled,
            State::MetricsOnly,
            State::ForcedOpen,
            State::Closed,
        ] {
            match from {
                State::Open => {
                    cb.reset();
                    open_it(&cb);
                }
                State::Disabled => cb.disable(),
                State::MetricsOnly => cb.metrics_only(),
                State::ForcedOpen => cb.force_open(),
                _ => cb.reset(),
            }
            rec.clear();
            cmd(&cb);
            assert_eq!(cb.state(), target);
            assert_eq!(rec.pairs(), [(from, target)]);
        }
    }
    type Silent = fn(&CircuitBreaker);
    let silent: [(Silent, State); 4] = [
        (CircuitBreaker::force_open_silently, State::ForcedOpen),
        (CircuitBreaker::disable_silently, State::Disabled),
        (CircuitBreaker::metrics_only_silently, State::MetricsOnly),
        (CircuitBreaker::reset_silently, State::Closed),
    ];
    rec.clear();
    for (cmd, target) in silent {
        cmd(&cb);
        assert_eq!(cb.state(), target);
    }
    assert!(rec.pairs().is_empty());
}

#[test]
fn sm14_every_transition_stamps_time_clears_window_and_emits_one_signal() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = CircuitBreaker::builder("svc")
        .tripper(MinRequests::new(100) & FailureRate::new(0.5))
        .clock(clock.clone())
        .listener(rec.listener())
        .build()
        .unwrap();
    for _ in 0..10 {
        let _ = fail(&cb);
    }
    assert_eq!(cb.info().metric.total_count, 10);
    clock.advance(3 * SEC);
    cb.metrics_only();
    let info = cb.info();
    assert_eq!(info.metric.total_count, 0);
    assert_eq!(info.consecutive_failures, 0);
    assert_eq!(info.changed_at, clock.wall());
    let signals = rec.signals();
    assert_eq!(signals.len(), 1);
    assert_eq!(
        signals[0],
        Signal::new("svc", State::Closed, State::MetricsOnly, clock.wall())
    );
}

#[test]
fn sm15_reopens_and_streak_bookkeeping() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = streak_breaker(1, &clock, &rec);
    open_it(&cb);
    assert_eq!(cb.info().reopens, 0, "closed->open is not a reopen");
    for expected in 1..=3 {
        clock.advance(10 * SEC);
        let _ = fail(&cb); // half_open -> open
        assert_eq!(cb.info().reopens, expected);
    }
    cb.force_open();
    assert_eq!(cb.info().reopens, 3, "unchanged by other transitions");
    cb.reset();
    assert_eq!(cb.info().reopens, 0);

    // streak is 0 on entry to half_open
    let cb = CircuitBreaker::builder("s")
        .tripper((Closed & FailureStreak::new(2)) | (HalfOpened & FailureStreak::new(1)))
        .retry(Always)
        .permit(permits::All)
        .build()
        .unwrap();
    let _ = fail(&cb);
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::Open);
    let t = cb.admit().unwrap();
    assert_eq!(cb.info().state, State::HalfOpen);
    assert_eq!(cb.info().consecutive_failures, 0);
    t.success();
    assert_eq!(cb.info().consecutive_failures, 0);
}

#[test]
fn sm16_new_state_is_visible_before_listeners_run() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let cell: Arc<Mutex<Option<CircuitBreaker>>> = Arc::new(Mutex::new(None));
    let (s2, c2) = (seen.clone(), cell.clone());
    let cb = CircuitBreaker::builder("svc")
        .tripper(FailureStreak::new(1))
        .listener(move |sig: &Signal| {
            let cb = c2.lock().unwrap().clone().unwrap();
            s2.lock().unwrap().push((sig.new_state, cb.info().state));
        })
        .build()
        .unwrap();
    *cell.lock().unwrap() = Some(cb.clone());
    let _ = fail(&cb);
    cb.force_open();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (State::Open, State::Open),
            (State::ForcedOpen, State::ForcedOpen)
        ]
    );
}

#[test]
fn sm17_late_outcome_is_not_recorded_into_new_state() {
    let rec = Recorder::default();
    let cb = CircuitBreaker::builder("svc")
        .tripper(FailureStreak::new(1))
        .listener(rec.listener())
        .build()
        .unwrap();
    let late = cb.admit().unwrap();
    cb.reset(); // a new epoch of `closed`
    rec.clear();
    late.failure();
    assert_eq!(cb.state(), State::Closed);
    assert_eq!(cb.info().metric.total_count, 0);
    assert!(rec.pairs().is_empty());
    // and the caller of `call` still gets its own result
    let cb2 = cb.clone();
    let r = cb.call(|| {
        cb2.reset();
        Err::<(), _>(boom())
    });
    assert!(matches!(r, Err(Error::Inner(_))));
    assert_eq!(cb.state(), State::Closed);
    assert_eq!(cb.info().metric.total_count, 0);
}

#[test]
fn sm18_listener_may_call_back_into_its_breaker() {
    let cell: Arc<Mutex<Option<CircuitBreaker>>> = Arc::new(Mutex::new(None));
    let c2 = cell.clone();
    let rec = Recorder::default();
    let cb = CircuitBreaker::builder("svc")
        .tripper(FailureStreak::new(1))
        .listener(move |sig: &Signal| {
            let cb = c2.lock().unwrap().clone().unwrap();
            let _ = cb.info();
            if sig.new_state == State::Open {
                cb.reset();
            }
        })
        .listener(rec.listener())
        .build()
        .unwrap();
    *cell.lock().unwrap() = Some(cb.clone());
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::Closed);
    assert_eq!(
        rec.pairs(),
        [(State::Closed, State::Open), (State::Open, State::Closed)]
    );
}

#[test]
fn cf1_error_variants_source_and_retry_after() {
    use std::error::Error as _;
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = streak_breaker(1, &clock, &rec);
    let e = fail(&cb).unwrap_err();
    assert_eq!(e.source().unwrap().to_string(), "boom");
    assert!(matches!(e, Error::Inner(_)));
    clock.advance(4 * SEC);
    let e = ok(&cb).unwrap_err();
    assert!(e.source().is_none());
    let rej = e.rejection().unwrap();
    assert_eq!(rej.retry_after(), Some(6 * SEC));
    assert_eq!(rej.circuit_name(), "svc");
}

#[test]
fn cf2_display_texts() {
    let cb = CircuitBreaker::builder("NAME")
        .tripper(FailureStreak::new(1))
        .retry(Always)
        .permit(Random::new(0.0))
        .build()
        .unwrap();
    cb.force_open();
    assert_eq!(
        ok(&cb).unwrap_err().to_string(),
        "circuit breaker 'NAME' is forced open"
    );
    cb.reset();
    let _ = fail(&cb);
    assert_eq!(
        ok(&cb).unwrap_err().to_string(),
        "circuit breaker 'NAME' is half-open, call not permitted"
    );
    let never = CircuitBreaker::builder("NAME")
        .tripper(FailureStreak::new(1))
        .retry(Never)
        .build()
        .unwrap();
    let _ = fail(&never);
    assert_eq!(
        ok(&never).unwrap_err().to_string(),
        "circuit breaker 'NAME' is open"
    );
    // A hand-made rejection in a state no breaker rejects in says that state (it read
    // "is open" before).
    let made = fluxgate::CallNotPermitted::new("NAME", State::Closed, None);
    assert_eq!(
        made.to_string(),
        "circuit breaker 'NAME' is closed, call not permitted"
    );
}

#[test]
fn cf3_fallback_sees_every_error_after_recording() {
    let cb = CircuitBreaker::builder("svc")
        .tracker(TypeOf::<io::Error>::new())
        .tripper(FailureStreak::new(2))
        .build()
        .unwrap();
    // tracked error: recorded before the fallback runs
    let seen = cb.call_with_fallback(
        || Err::<u32, io::Error>(boom()),
        |e| {
            assert_eq!(cb.info().metric.failure_count, 1);
            assert!(matches!(e, Error::Inner(_)));
            Ok::<u32, String>(1)
        },
    );
    assert_eq!(seen, Ok(1));
    // untracked error also reaches the fallback
    let untracked = CircuitBreaker::builder("u")
        .tracker(TypeOf::<io::Error>::new())
        .build()
        .unwrap();
    let r = untracked.call_with_fallback(
        || Err::<u32, Untracked>(Untracked),
        |e| match e {
            Error::Inner(Untracked) => Ok::<u32, String>(2),
            Error::Rejected(_) => Ok(0),
        },
    );
    assert_eq!(r, Ok(2));
    // rejections reach it; it may return its own error
    cb.force_open();
    let r = cb.call_with_fallback(
        || Ok::<u32, io::Error>(9),
        |e| Err(format!("fallback: {e}")),
    );
    assert_eq!(
        r,
        Err("fallback: circuit breaker 'svc' is forced open".to_string())
    );
    // not called on success
    cb.reset();
    let r = cb.call_with_fallback(
        || Ok::<u32, io::Error>(3),
        |_| -> Result<u32, String> { panic!("fallback on success") },
    );
    assert_eq!(r, Ok(3));
}

#[test]
fn cf4_ok_values_can_count_as_failures() {
    let cb = CircuitBreaker::builder("http")
        .tripper(FailureStreak::new(2))
        .build()
        .unwrap();
    let r = cb.call_classified(|| Ok::<u16, io::Error>(503), |s| *s >= 500);
    assert_eq!(r.unwrap(), 503);
    assert_eq!(cb.info().metric.failure_count, 1);
    let r = cb.call_classified(|| Ok::<u16, io::Error>(200), |s| *s >= 500);
    assert_eq!(r.unwrap(), 200);
    assert_eq!(cb.info().consecutive_failures, 0);
    let _ = cb.call_classified(|| Ok::<u16, io::Error>(502), |s| *s >= 500);
    let _ = cb.call_classified(|| Ok::<u16, io::Error>(500), |s| *s >= 500);
    assert_eq!(cb.state(), State::Open);
}

#[test]
fn ticket_dropped_without_outcome_records_nothing() {
    let cb = CircuitBreaker::builder("svc")
        .tripper(FailureStreak::new(1))
        .retry(Always)
        .permit(permits::All)
        .build()
        .unwrap();
    let t = cb.admit().unwrap();
    drop(t);
    assert_eq!(cb.info().metric.total_count, 0);
    open_it(&cb);
    let t = cb.admit().unwrap();
    assert_eq!(cb.half_open_in_flight(), 1);
    drop(t);
    assert_eq!(cb.half_open_in_flight(), 0);
    assert_eq!(cb.state(), State::HalfOpen);
    // a panic inside the call unwinds through the ticket and frees the slot
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = cb.call(|| -> Result<(), io::Error> { panic!("user code") });
    }));
    assert!(r.is_err());
    assert_eq!(cb.half_open_in_flight(), 0);
    cb.admit().unwrap().record(Outcome::Success);
    assert_eq!(cb.state(), State::Closed);
}

#[test]
fn d1_defaults() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("d")
        .clock(clock.clone())
        .build()
        .unwrap();
    for _ in 0..100 {
        let _ = fail(&cb);
    }
    assert_eq!(cb.state(), State::Open);
    // Cooldown(60 s)
    let rej = ok(&cb).unwrap_err();
    assert_eq!(
        rej.rejection().unwrap().retry_after(),
        Some(Duration::from_secs(60))
    );
    clock.advance(Duration::from_secs(59));
    assert!(ok(&cb).is_err());
    assert_eq!(cb.state(), State::Open);
    clock.advance(SEC);
    // RampUp(0.1, 1.0, 60 s) at 0 s admits ~10 %; max_half_open_calls 10 caps what is held
    let mut held = Vec::new();
    let mut admitted = 0;
    for _ in 0..2000 {
        if let Ok(t) = cb.admit() {
            admitted += 1;
            held.push(t);
        }
    }
    assert_eq!(cb.state(), State::HalfOpen);
    assert_eq!(admitted, 10, "at most 10 half-open calls in flight");
    drop(held);
    // at 60 s into half_open the ramp admits everything (100 %)
    clock.advance(Duration::from_secs(60));
    for _ in 0..50 {
        let t = cb.admit().expect("ramp at 100 %");
        drop(t);
    }
    // the default window is CountWindow(100) and the default tracker tracks everything
    cb.metrics_only();
    for _ in 0..150 {
        let _ = cb.call(|| Err::<(), _>(Untracked));
    }
    let m = cb.info().metric;
    assert_eq!((m.total_count, m.failure_count), (100, 100));
}

#[test]
fn d2_default_tripper_thresholds() {
    let cb = CircuitBreaker::builder("d").build().unwrap();
    for _ in 0..99 {
        let _ = fail(&cb);
    }
    assert_eq!(cb.state(), State::Closed);
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::Open);

    let cb = CircuitBreaker::builder("d").build().unwrap();
    for _ in 0..50 {
        ok(&cb).unwrap();
    }
    for _ in 0..49 {
        let _ = fail(&cb);
    }
    assert_eq!(cb.state(), State::Closed);
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::Open);
}

#[test]
fn both_breakers_are_send_sync_and_clone() {
    fn assert_traits<T: Send + Sync + Clone + 'static>() {}
    assert_traits::<CircuitBreaker>();
    assert_traits::<fluxgate::AsyncCircuitBreaker>();
    let _ = CountWindow::new(1);
}

// The quick check of a success (a count window full of equal successes, streak 0):
// whatever it skips must be what the full record would have done anyway.

fn full_of_successes(cb: &CircuitBreaker) {
    for _ in 0..100 {
        cb.call(|| Ok::<_, io::Error>(())).unwrap();
    }
    assert_eq!(cb.info().metric.total_count, 100);
}

#[test]
fn sm17_a_stale_success_is_dropped_when_the_window_is_full_of_successes() {
    let cb = CircuitBreaker::builder("svc").build().unwrap();
    full_of_successes(&cb);
    let stale = cb.admit().unwrap();
    cb.force_open();
    cb.reset(); // closed again, a new epoch, an empty window
    stale.success();
    assert_eq!(cb.info().metric.total_count, 0);
    let stale = cb.admit().unwrap();
    cb.metrics_only();
    stale.success();
    assert_eq!(cb.info().state, State::MetricsOnly);
    assert_eq!(cb.info().metric.total_count, 0);
}

#[test]
fn sm4_a_success_after_a_failure_resets_the_streak_with_a_full_window() {
    let cb = CircuitBreaker::builder("svc").build().unwrap();
    full_of_successes(&cb);
    let _ = cb.call(|| Err::<(), _>(io::Error::other("down")));
    assert_eq!(cb.info().consecutive_failures, 1);
    cb.call(|| Ok::<_, io::Error>(())).unwrap();
    let info = cb.info();
    assert_eq!(info.consecutive_failures, 0);
    assert_eq!(
        (info.metric.total_count, info.metric.failure_count),
        (100, 1)
    );
    // The failure ages out with the 100th success after it; only then is the window
    // uniform again.
    for _ in 0..98 {
        cb.call(|| Ok::<_, io::Error>(())).unwrap();
    }
    assert_eq!(cb.info().metric.failure_count, 1);
    cb.call(|| Ok::<_, io::Error>(())).unwrap();
    assert_eq!(cb.info().metric.failure_count, 0);
}

#[test]
fn sm4_a_stateful_tripper_is_asked_after_every_success_even_with_a_full_window() {
    let asked = Arc::new(AtomicUsize::new(0));
    let seen = asked.clone();
    let cb = CircuitBreaker::builder("svc")
        .tripper(move |_: &TripContext| {
            seen.fetch_add(1, Ordering::Relaxed);
            false
        })
        .build()
        .unwrap();
    full_of_successes(&cb);
    let before = asked.load(Ordering::Relaxed);
    for _ in 0..10 {
        cb.call(|| Ok::<_, io::Error>(())).unwrap();
    }
    assert_eq!(asked.load(Ordering::Relaxed), before + 10);
}
