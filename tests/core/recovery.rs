//! Recovery rules (`fluxgate::recovery`) and the probe timeout: how a half-open circuit
//! decides to close or open again (SM-9 and the rules beside it), and how a hung probe
//! gives back its slot (SM-8, SM-17, R-7). Time moves by hand (`ManualClock`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use crate::support::*;
use fluxgate::clock::ManualClock;
use fluxgate::permits;
use fluxgate::recovery::{ByTripper, Probes, Recovery, RecoveryContext, Successes, Verdict};
use fluxgate::retries::{Always, Cooldown};
use fluxgate::trippers::{
    Closed, FailureRate, FailureStreak, HalfOpened, MinRequests, SlowRate, TripContext, Tripper,
};
use fluxgate::windows::{CountWindow, TimeWindow};
use fluxgate::{Builder, CircuitBreaker, State};

const SEC: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

/// Opens on the first failure, probes at once, admits every probe.
fn base(clock: &ManualClock, rec: &Recorder) -> Builder {
    CircuitBreaker::builder("svc")
        .tripper(FailureStreak::new(1))
        .retry(Always)
        .permit(permits::All)
        .clock(clock.clone())
        .listener(rec.listener())
}

/// Opens `cb` with one failure (its tripper must trip on it) and lets the next call
/// find it half-open.
fn open_it(cb: &CircuitBreaker) {
    let _ = fail(cb);
    assert_eq!(cb.state(), State::Open);
}

fn build(b: Builder) -> CircuitBreaker {
    b.build().unwrap()
}

// ---------------------------------------------------------------------------------------
// SM-9: the default is unchanged.

#[test]
fn sm9_default_recovery_closes_on_the_first_successful_probe() {
    // D-1 defaults: 100 failures open it, 60 s cooldown, RampUp permit at 10 %.
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = CircuitBreaker::builder("svc")
        .clock(clock.clone())
        .permit(permits::All)
        .listener(rec.listener())
        .build()
        .unwrap();
    for _ in 0..100 {
        let _ = fail(&cb);
    }
    assert_eq!(cb.state(), State::Open);
    clock.advance(60 * SEC);
    // A failed probe: the default tripper (MinRequests(100) & ...) does not hold, stay.
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::HalfOpen);
    // The first success closes (SM-9, Python-compatible).
    ok(&cb).unwrap();
    assert_eq!(cb.state(), State::Closed);
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
fn sm9_by_tripper_is_the_default_and_reads_the_tripper_after_each_probe() {
    for explicit in [false, true] {
        let clock = ManualClock::new();
        let rec = Recorder::default();
        // Closed: one failure opens. Half-open: two failures in a row reopen.
        let mut b = base(&clock, &rec)
            .tripper((Closed & FailureStreak::new(1)) | (HalfOpened & FailureStreak::new(2)));
        if explicit {
            b = b.recovery(ByTripper);
        }
        let cb = build(b);
        open_it(&cb);
        let _ = fail(&cb); // streak 1 in half_open: stay
        assert_eq!(cb.state(), State::HalfOpen);
        let _ = fail(&cb); // streak 2: reopen
        assert_eq!(cb.state(), State::Open);
        assert_eq!(cb.info().reopens, 1);
        ok(&cb).unwrap(); // Always: half-open, success, tripper false → closed
        assert_eq!(cb.state(), State::Closed);
        assert_eq!(cb.info().reopens, 0);
    }
}

#[test]
fn sm9_untracked_errors_are_no_probes() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = build(
        base(&clock, &rec)
            .tracker(fluxgate::trackers::TypeOf::<std::io::Error>::new())
            .recovery(Probes::new(2, FailureRate::new(0.5))),
    );
    open_it(&cb);
    for _ in 0..5 {
        let r: Result<(), _> = cb.call(|| Err(Untracked));
        assert!(r.is_err());
    }
    assert_eq!(cb.state(), State::HalfOpen);
    assert_eq!(cb.info().metric.total_count, 0);
    ok(&cb).unwrap();
    assert_eq!(cb.state(), State::HalfOpen);
    ok(&cb).unwrap();
    assert_eq!(cb.state(), State::Closed);
}

// ---------------------------------------------------------------------------------------
// Successes(n)

#[test]
fn successes_keeps_the_circuit_half_open_until_n_probes_succeeded() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    // Worked example: Successes(3), half-open failures judged by FailureStreak(2).
    let cb = build(
        base(&clock, &rec)
            .tripper((Closed & FailureStreak::new(1)) | (HalfOpened & FailureStreak::new(2)))
            .recovery(Successes::new(3)),
    );
    open_it(&cb);
    ok(&cb).unwrap(); // 1 success
    let _ = fail(&cb); // streak 1: stay
    ok(&cb).unwrap(); // 2 successes (not in a row: still counted)
    assert_eq!(cb.state(), State::HalfOpen);
    ok(&cb).unwrap(); // 3 successes → closed
    assert_eq!(cb.state(), State::Closed);
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
fn successes_reopens_as_the_tripper_says() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = build(
        base(&clock, &rec)
            .tripper((Closed & FailureStreak::new(1)) | (HalfOpened & FailureStreak::new(2)))
            .recovery(Successes::new(3)),
    );
    open_it(&cb);
    ok(&cb).unwrap();
    let _ = fail(&cb);
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::Open);
    assert_eq!(cb.info().reopens, 1);
    // The next period counts its own successes from zero.
    for _ in 0..2 {
        ok(&cb).unwrap();
        assert_eq!(cb.state(), State::HalfOpen);
    }
    ok(&cb).unwrap();
    assert_eq!(cb.state(), State::Closed);
}

#[test]
fn successes_needs_the_tripper_to_agree_as_well() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    // In half_open the tripper holds while fewer than 10 probes were seen: a success then
    // keeps it half-open (SM-9), whatever Successes counts.
    let cb = build(
        base(&clock, &rec)
            .tripper((Closed & FailureStreak::new(1)) | (HalfOpened & !MinRequestsAtLeast(4)))
            .recovery(Successes::new(2)),
    );
    open_it(&cb);
    for _ in 0..3 {
        ok(&cb).unwrap();
        assert_eq!(cb.state(), State::HalfOpen);
    }
    ok(&cb).unwrap();
    assert_eq!(cb.state(), State::Closed);
}

/// `!MinRequests(n)` for the test above (trippers have no `!`).
#[derive(Clone, Copy)]
struct MinRequestsAtLeast(u64);
impl Tripper for MinRequestsAtLeast {
    fn trip(&self, ctx: &TripContext<'_>) -> bool {
        MinRequests::new(self.0).trip(ctx)
    }
}
struct NotTripper<T>(T);
impl<T: Tripper> Tripper for NotTripper<T> {
    fn trip(&self, ctx: &TripContext<'_>) -> bool {
        !self.0.trip(ctx)
    }
}
impl std::ops::Not for MinRequestsAtLeast {
    type Output = NotTripper<MinRequestsAtLeast>;
    fn not(self) -> Self::Output {
        NotTripper(self)
    }
}

#[test]
fn successes_one_is_by_tripper() {
    let m = fluxgate::Metric::default();
    for failed in [false, true] {
        for tripped in [false, true] {
            let ctx = RecoveryContext::new(&m, failed, tripped, 1, u64::from(!failed), 0);
            assert_eq!(Successes::new(1).decide(&ctx), ByTripper.decide(&ctx));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Probes(n, rule)

#[test]
fn probes_waits_for_n_probes_then_closes_below_the_thresholds() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = build(base(&clock, &rec).recovery(Probes::new(5, FailureRate::new(0.5))));
    open_it(&cb);
    // Worked example: S F S F S → 2 of 5 failed (40 % < 50 %) → closed.
    ok(&cb).unwrap();
    let _ = fail(&cb); // a failure before n probes: no reopen (the tripper is not asked)
    ok(&cb).unwrap();
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::HalfOpen);
    assert_eq!(cb.info().metric.total_count, 4);
    ok(&cb).unwrap();
    assert_eq!(cb.state(), State::Closed);
    assert_eq!(cb.info().reopens, 0);
}

#[test]
fn probes_reopens_when_the_rate_is_reached_even_on_a_successful_last_probe() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = build(base(&clock, &rec).recovery(Probes::new(4, FailureRate::new(0.5))));
    open_it(&cb);
    // F F S S: 2 of 4 failed (50 % ≥ 50 %); the fourth probe succeeded and still reopens —
    // what the tripper alone (SM-9) cannot say.
    let _ = fail(&cb);
    let _ = fail(&cb);
    ok(&cb).unwrap();
    assert_eq!(cb.state(), State::HalfOpen);
    ok(&cb).unwrap();
    assert_eq!(cb.state(), State::Open);
    assert_eq!(cb.info().reopens, 1);
    assert_eq!(
        cb.info().metric.total_count,
        0,
        "SM-14: the window was cleared"
    );
    // Next period: four good probes close it and reset reopens (SM-15).
    for _ in 0..3 {
        ok(&cb).unwrap();
    }
    assert_eq!(cb.state(), State::HalfOpen);
    ok(&cb).unwrap();
    assert_eq!(cb.state(), State::Closed);
    assert_eq!(cb.info().reopens, 0);
}

#[test]
fn probes_judges_the_slow_rate_with_its_threshold() {
    let t = Duration::from_millis(100);
    let rule = || Probes::new(4, FailureRate::new(0.5) | SlowRate::new(0.5, t));
    // Two slow probes of four: reopen. One: close. The tripper has no latency rule; the
    // recovery rule's makes the breaker time calls (M-3).
    for (slow, expect) in [(2, State::Open), (1, State::Closed)] {
        let clock = ManualClock::new();
        let rec = Recorder::default();
        let cb = build(base(&clock, &rec).recovery(rule()));
        open_it(&cb);
        for i in 0..4 {
            if i < slow {
                slow_ok(&cb, &clock, t).unwrap();
            } else {
                slow_ok(&cb, &clock, t - MS).unwrap();
            }
        }
        assert_eq!(cb.state(), expect, "{slow} slow probes of 4");
    }
}

#[test]
fn probes_rule_composes_with_and_or_over_the_probes() {
    // Reopen when 3 failures in a row, or at least 2 probes failed and 40 % of them.
    let rule = FailureStreak::new(3) | (MinRequests::new(2) & FailureRate::new(0.4));
    let cases: [(&[bool], State); 4] = [
        (&[true, false, false, false, false], State::Closed), // 1 of 5
        (&[true, true, false, false, false], State::Open),    // 2 of 5 = 40 %
        (&[false, false, true, true, true], State::Open),     // streak 3
        (&[false, true, false, false, false], State::Closed),
    ];
    for (probes, expect) in cases {
        let clock = ManualClock::new();
        let rec = Recorder::default();
        let cb = build(
            base(&clock, &rec)
                .window(CountWindow::new(50))
                .recovery(Probes::new(5, rule)),
        );
        open_it(&cb);
        for &failed in probes {
            let _ = if failed { fail(&cb) } else { ok(&cb) };
        }
        assert_eq!(cb.state(), expect, "{probes:?}");
    }
}

#[test]
fn recovery_leaves_the_closed_tripper_expression_alone() {
    // TR-8's worked cases still hold with a recovery rule set.
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = build(
        base(&clock, &rec)
            .tripper(FailureStreak::new(5) | (MinRequests::new(20) & FailureRate::new(0.5)))
            .recovery(Probes::new(3, FailureRate::new(0.5))),
    );
    for _ in 0..5 {
        ok(&cb).unwrap();
    }
    for _ in 0..4 {
        let _ = fail(&cb);
    }
    assert_eq!(cb.state(), State::Closed, "streak 4, 4/9 failed");
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::Open, "streak 5");
    // Three good probes close it.
    for _ in 0..3 {
        ok(&cb).unwrap();
    }
    assert_eq!(cb.state(), State::Closed);
}

#[test]
fn probes_counts_the_period_even_when_the_window_is_smaller() {
    // A CountWindow(2) with Probes(4): the fourth probe decides over the last two.
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = build(
        base(&clock, &rec)
            .window(CountWindow::new(2))
            .recovery(Probes::new(4, FailureRate::new(0.5))),
    );
    open_it(&cb);
    let _ = fail(&cb);
    let _ = fail(&cb);
    ok(&cb).unwrap();
    assert_eq!(cb.state(), State::HalfOpen);
    ok(&cb).unwrap();
    assert_eq!(
        cb.state(),
        State::Closed,
        "the window holds the last two: both good"
    );
}

#[test]
fn probes_counts_probes_that_left_a_time_window() {
    // A TimeWindow(2 s): probes older than the window no longer count in the rates, but
    // they count as probes, so the period ends after n probes however slow the traffic.
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = build(
        base(&clock, &rec)
            .window(TimeWindow::new(2 * SEC))
            .recovery(Probes::new(3, FailureRate::new(0.5))),
    );
    open_it(&cb);
    let _ = fail(&cb);
    clock.advance(10 * SEC);
    ok(&cb).unwrap();
    clock.advance(10 * SEC);
    assert_eq!(cb.state(), State::HalfOpen);
    ok(&cb).unwrap();
    assert_eq!(cb.state(), State::Closed);
}

#[test]
fn a_custom_recovery_rule_sees_the_probes() {
    /// What the rule saw: failed, tripped, probes, successes, window total.
    type Seen = (bool, bool, u64, u64, u64);
    struct Log(Arc<std::sync::Mutex<Vec<Seen>>>);
    impl Recovery for Log {
        fn decide(&self, c: &RecoveryContext<'_>) -> Verdict {
            self.0.lock().unwrap().push((
                c.failed,
                c.tripped,
                c.probes,
                c.successes,
                c.metric.total_count,
            ));
            Verdict::Stay
        }
    }
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = build(base(&clock, &rec).recovery(Log(seen.clone())));
    open_it(&cb);
    ok(&cb).unwrap();
    let _ = fail(&cb);
    ok(&cb).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (false, false, 1, 1, 1),
            (true, true, 2, 1, 2),
            (false, false, 3, 2, 3)
        ]
    );
    assert_eq!(cb.state(), State::HalfOpen);
}

// ---------------------------------------------------------------------------------------
// Validation

#[test]
fn recovery_and_probe_timeout_parameters_are_validated_at_build() {
    let err = |b: Builder| b.build().unwrap_err().to_string();
    let b = || CircuitBreaker::builder("x");
    assert_eq!(
        err(b().recovery(Successes::new(0))),
        "Successes n must be in 1..=65535, got 0"
    );
    assert_eq!(
        err(b().recovery(Probes::new(0, FailureRate::new(0.5)))),
        "Probes n must be in 1..=65535, got 0"
    );
    assert_eq!(
        err(b().recovery(Probes::new(65_536, FailureRate::new(0.5)))),
        "Probes n must be in 1..=65535, got 65536"
    );
    assert_eq!(
        err(b().recovery(Probes::new(10, FailureRate::new(1.5)))),
        "FailureRate ratio must be in (0, 1], got 1.5"
    );
    assert_eq!(
        err(b().recovery(Probes::new(10, FailureRate::new(0.0)))),
        "FailureRate ratio must be in (0, 1], got 0"
    );
    assert_eq!(
        err(b().recovery(Probes::new(
            10,
            FailureRate::new(0.5) | SlowRate::new(0.5, Duration::ZERO)
        ))),
        "SlowRate threshold must be greater than zero, got 0ns"
    );
    assert_eq!(
        err(b().recovery(Probes::new(10, SlowRate::new(-0.1, SEC)))),
        "SlowRate ratio must be in (0, 1], got -0.1"
    );
    assert_eq!(
        err(b().probe_timeout(Duration::ZERO)),
        "CircuitBreaker probe_timeout must be greater than zero, got 0ns"
    );
    assert_eq!(
        err(b().probe_timeout(SEC).max_half_open_calls(4097)),
        "CircuitBreaker max_half_open_calls must be <= 4096 with a probe_timeout, got 4097"
    );
    // The edges are accepted.
    b().recovery(Successes::new(65_535)).build().unwrap();
    b().recovery(Probes::new(1, FailureRate::new(1.0)))
        .build()
        .unwrap();
    b().probe_timeout(Duration::from_nanos(1))
        .max_half_open_calls(4096)
        .build()
        .unwrap();
    // Without a timeout the slot limit is unchanged.
    b().max_half_open_calls(100_000).build().unwrap();
}

#[test]
fn recovery_slow_thresholds_count_against_the_limit() {
    // M-3: the tripper's and the recovery rule's thresholds, deduplicated, at most 8.
    let s = |ms| SlowRate::new(0.5, Duration::from_millis(ms));
    let tripper = s(1) | s(2) | s(3) | s(4) | s(5);
    let same = Probes::new(5, s(1) | s(2) | s(3));
    CircuitBreaker::builder("x")
        .tripper(tripper)
        .recovery(same)
        .build()
        .unwrap();
    let more = Probes::new(5, s(6) | s(7) | s(8) | s(9));
    let e = CircuitBreaker::builder("x")
        .tripper(tripper)
        .recovery(more)
        .build()
        .unwrap_err();
    assert_eq!(e.component(), "SlowRate");
}

// ---------------------------------------------------------------------------------------
// Probe timeout (SM-8 slots, SM-17, R-7)

/// One slot, a 5 s probe timeout; half-open failures reopen only after 3 in a row.
fn one_slot(clock: &ManualClock, rec: &Recorder) -> CircuitBreaker {
    build(
        base(clock, rec)
            .tripper((Closed & FailureStreak::new(1)) | (HalfOpened & FailureStreak::new(3)))
            .max_half_open_calls(1)
            .probe_timeout(5 * SEC)
            .measure_durations(true),
    )
}

#[test]
fn sm8_a_hung_probe_gives_back_the_only_slot_after_the_timeout() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = one_slot(&clock, &rec);
    open_it(&cb);
    let hung = cb.admit().unwrap();
    assert_eq!(cb.half_open_in_flight(), 1);
    assert!(cb.admit().is_err(), "the only slot is held");
    clock.advance(5 * SEC - MS);
    assert!(cb.admit().is_err(), "not yet");
    clock.advance(MS);
    assert_eq!(cb.half_open_in_flight(), 0, "past its deadline");
    let probe = cb.admit().expect("the slot came back");
    // The hung probe counted as one failure, lasting (at least) the timeout.
    let info = cb.info();
    assert_eq!(info.state, State::HalfOpen);
    assert_eq!((info.metric.total_count, info.metric.failure_count), (1, 1));
    assert!(info.metric.total_duration >= 5 * SEC);
    assert_eq!(info.consecutive_failures, 1);
    // Its late outcome is ignored: no record, no transition, no slot given back.
    hung.success();
    let info = cb.info();
    assert_eq!((info.metric.total_count, info.state), (1, State::HalfOpen));
    assert_eq!(
        cb.half_open_in_flight(),
        1,
        "the new probe still holds the slot"
    );
    assert!(cb.admit().is_err());
    probe.success();
    assert_eq!(cb.state(), State::Closed);
}

#[test]
fn sm8_a_hung_probe_dropped_late_does_not_free_a_slot_twice() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = build(
        base(&clock, &rec)
            .tripper((Closed & FailureStreak::new(1)) | (HalfOpened & FailureStreak::new(9)))
            .max_half_open_calls(2)
            .probe_timeout(SEC),
    );
    open_it(&cb);
    let a = cb.admit().unwrap();
    clock.advance(SEC / 2);
    let b = cb.admit().unwrap();
    clock.advance(SEC / 2); // a is past its deadline, b is not
    let c = cb.admit().expect("a's slot");
    assert!(cb.admit().is_err());
    drop(a);
    assert_eq!(cb.half_open_in_flight(), 2, "b and c");
    assert!(cb.admit().is_err());
    // Same instant, same slot: the stamps of successive holders still differ.
    drop(c);
    let d = cb.admit().unwrap();
    assert!(cb.admit().is_err());
    drop((b, d));
    assert_eq!(cb.half_open_in_flight(), 0);
}

/// A manual clock that makes the one thread it is armed for stall right after its next
/// reading, until the test lets it go: a thread preempted between reading the clock and
/// using the reading.
#[derive(Clone)]
struct StallingClock(Arc<Stall>);

struct Stall {
    time: ManualClock,
    armed: std::sync::Mutex<Option<thread::ThreadId>>,
    read: std::sync::Barrier,
    go: std::sync::Barrier,
}

impl fluxgate::clock::Clock for StallingClock {
    fn now_nanos(&self) -> u64 {
        let s = &self.0;
        let now = s.time.now_nanos();
        let mut armed = s.armed.lock().unwrap();
        if *armed == Some(thread::current().id()) {
            *armed = None;
            drop(armed);
            s.read.wait();
            s.go.wait();
        }
        now
    }
    fn wall(&self) -> std::time::SystemTime {
        self.0.time.wall()
    }
}

#[test]
fn sm8_a_caller_that_read_the_clock_before_a_reclaim_never_takes_the_reclaimed_probes_stamp() {
    // The old code stamped the new probe with the deadline of its stale reading: the
    // reclaimed probe's own stamp. That probe, still running, then found "its" slot, gave
    // it back under the new probe, and its late success closed the circuit.
    let stall = Arc::new(Stall {
        time: ManualClock::new(),
        armed: std::sync::Mutex::new(None),
        read: std::sync::Barrier::new(2),
        go: std::sync::Barrier::new(2),
    });
    let clock = StallingClock(stall.clone());
    let deny = Arc::new(AtomicBool::new(false));
    let cb = {
        let deny = deny.clone();
        CircuitBreaker::builder("svc")
            .tripper(Closed & FailureStreak::new(1))
            .retry(Always)
            .permit(move |_: Duration| !deny.load(Ordering::SeqCst))
            .max_half_open_calls(1)
            .probe_timeout(MS)
            .clock(clock.clone())
            .build()
            .unwrap()
    };
    open_it(&cb);
    let hung = cb.admit().unwrap(); // the only slot, deadline 1 ms
    let stale = {
        let (cb, stall) = (cb.clone(), stall.clone());
        thread::spawn(move || {
            *stall.armed.lock().unwrap() = Some(thread::current().id());
            cb.admit_owned() // reads t = 0, stalls, then goes on
        })
    };
    stall.read.wait(); // the caller has read t = 0
    stall.time.advance(MS);
    deny.store(true, Ordering::SeqCst);
    assert!(
        cb.admit().is_err(),
        "reclaims the hung probe, then is refused"
    );
    assert_eq!(
        cb.info().metric.failure_count,
        1,
        "the hung probe timed out"
    );
    deny.store(false, Ordering::SeqCst);
    stall.go.wait();
    let probe = stale.join().unwrap().expect("the reclaimed slot");
    assert_eq!(cb.half_open_in_flight(), 1);
    hung.success();
    let info = cb.info();
    assert_eq!(
        info.state,
        State::HalfOpen,
        "the timed-out probe's success counted"
    );
    assert_eq!((info.metric.total_count, info.metric.failure_count), (1, 1));
    assert_eq!(
        cb.half_open_in_flight(),
        1,
        "the new probe still holds the slot"
    );
    probe.success();
    assert_eq!(cb.state(), State::Closed);
}

#[test]
fn sm8_a_timed_out_probe_counts_as_a_failure_lasting_the_timeout_whenever_it_is_found() {
    // The old code recorded it as lasting until the caller that found it: a probe hung
    // for 5 s and found at 7 s counted 7 s, so slow-call rules saw whatever the traffic
    // made of it.
    for found_after in [5 * SEC, 7 * SEC, 3600 * SEC] {
        let clock = ManualClock::new();
        let rec = Recorder::default();
        let cb = one_slot(&clock, &rec);
        open_it(&cb);
        let hung = cb.admit().unwrap();
        clock.advance(found_after);
        let probe = cb.admit().expect("the slot came back");
        let m = cb.info().metric;
        assert_eq!((m.total_count, m.failure_count), (1, 1));
        assert_eq!(m.total_duration, 5 * SEC, "found after {found_after:?}");
        drop((hung, probe));
    }
}

#[test]
fn sm8_a_permit_that_panics_gives_the_half_open_slot_back() {
    // The old code took the slot, then asked the permit: a panic there left the slot
    // taken for good, and with one slot the circuit stayed half-open, refusing every call.
    for timeout in [None, Some(SEC)] {
        let clock = ManualClock::new();
        let rec = Recorder::default();
        let panics = Arc::new(AtomicBool::new(true));
        let mut b = {
            let panics = panics.clone();
            base(&clock, &rec)
                .permit(move |_: Duration| {
                    assert!(!panics.swap(false, Ordering::SeqCst), "permit source down");
                    true
                })
                .max_half_open_calls(1)
        };
        if let Some(t) = timeout {
            b = b.probe_timeout(t);
        }
        let cb = build(b);
        open_it(&cb);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = cb.admit();
        }));
        assert!(caught.is_err(), "the permit's panic reaches its caller");
        assert_eq!(cb.state(), State::HalfOpen);
        assert_eq!(cb.half_open_in_flight(), 0, "{timeout:?}: the slot leaked");
        cb.admit().expect("the slot is free").success();
        assert_eq!(cb.state(), State::Closed, "{timeout:?}");
    }
}

#[test]
fn sm8_a_timed_out_probe_counts_once_however_many_callers_find_it() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = build(
        base(&clock, &rec)
            .tripper((Closed & FailureStreak::new(1)) | (HalfOpened & FailureStreak::new(9)))
            .max_half_open_calls(2)
            .probe_timeout(SEC),
    );
    open_it(&cb);
    let hung = [cb.admit().unwrap(), cb.admit().unwrap()];
    clock.advance(SEC);
    let x = cb.admit().unwrap();
    let y = cb.admit().unwrap();
    assert!(cb.admit().is_err());
    assert_eq!(cb.info().metric.failure_count, 2);
    drop((x, y));
    let _z = cb.admit().unwrap();
    assert_eq!(cb.info().metric.failure_count, 2);
    for t in hung {
        t.failure(); // late: ignored
    }
    assert_eq!(cb.info().metric.total_count, 2);
}

#[test]
fn sm17_a_probe_that_timed_out_and_reopened_the_circuit_records_nothing_later() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = build(
        base(&clock, &rec)
            .retry(Cooldown::new(10 * SEC))
            .max_half_open_calls(1)
            .probe_timeout(SEC),
    );
    open_it(&cb);
    clock.advance(10 * SEC);
    let hung = cb.admit().unwrap();
    clock.advance(SEC);
    // The next caller finds the probe timed out: a failure, FailureStreak(1) → open again.
    assert!(cb.admit().is_err());
    assert_eq!(cb.state(), State::Open);
    assert_eq!(cb.info().reopens, 1);
    rec.clear();
    clock.advance(10 * SEC);
    let probe = cb.admit().unwrap();
    hung.failure(); // belongs to a period that is over (SM-17)
    assert_eq!(cb.state(), State::HalfOpen);
    assert_eq!(cb.info().metric.total_count, 0);
    probe.success();
    assert_eq!(cb.state(), State::Closed);
    assert_eq!(
        rec.pairs(),
        [
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed)
        ]
    );
}

#[test]
fn sm8_timed_out_probes_count_as_probes_of_the_recovery_rule() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = build(
        base(&clock, &rec)
            .retry(Cooldown::new(10 * SEC))
            .max_half_open_calls(2)
            .probe_timeout(SEC)
            .recovery(Probes::new(2, FailureRate::new(0.5))),
    );
    open_it(&cb);
    clock.advance(10 * SEC);
    let _hung = [cb.admit().unwrap(), cb.admit().unwrap()];
    clock.advance(SEC);
    // Both time out: two failed probes of two → open again.
    assert!(cb.admit().is_err());
    assert_eq!(cb.state(), State::Open);
    assert_eq!(cb.info().reopens, 1);
}

#[test]
fn r7_leased_slots_of_an_earlier_period_never_block_a_later_one() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = one_slot(&clock, &rec);
    open_it(&cb);
    let old = cb.admit().unwrap();
    cb.reset();
    open_it(&cb);
    let new = cb.admit().expect("a new period starts with its slot free");
    drop(old);
    assert_eq!(cb.half_open_in_flight(), 1);
    assert!(cb.admit().is_err());
    drop(new);
    assert_eq!(cb.half_open_in_flight(), 0);
}

#[test]
fn without_a_probe_timeout_a_hung_probe_holds_its_slot() {
    // The default: no timeout (the Python library has none either).
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = build(base(&clock, &rec).max_half_open_calls(1));
    open_it(&cb);
    let _hung = cb.admit().unwrap();
    clock.advance(Duration::from_secs(86_400));
    assert!(cb.admit().is_err());
}

#[test]
fn a_probe_timeout_never_touches_closed_calls() {
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = build(
        base(&clock, &rec)
            .tripper(FailureStreak::new(3))
            .probe_timeout(SEC),
    );
    let long = cb.admit().unwrap();
    clock.advance(60 * SEC);
    ok(&cb).unwrap();
    long.success();
    assert_eq!(cb.info().metric.total_count, 2);
    assert_eq!(cb.state(), State::Closed);
}

// ---------------------------------------------------------------------------------------
// Concurrency: real threads.

/// A rule that never ends the period, so every probe of a run belongs to one period.
struct Forever;
impl Recovery for Forever {
    fn decide(&self, _: &RecoveryContext<'_>) -> Verdict {
        Verdict::Stay
    }
}

#[test]
fn sm8_racing_probes_never_exceed_the_limit_and_timed_out_slots_are_reclaimed_once() {
    const MAX: u32 = 3;
    const THREADS: usize = 6;
    const ROUNDS: usize = 2_000;
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let cb = Arc::new(build(
        base(&clock, &rec)
            .window(CountWindow::new(100_000))
            .max_half_open_calls(MAX as usize)
            .probe_timeout(MS)
            .recovery(Forever),
    ));
    open_it(&cb);
    let admitted = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let checker = {
        let (cb, done) = (cb.clone(), done.clone());
        thread::spawn(move || {
            let mut worst = 0;
            while !done.load(Ordering::Relaxed) {
                worst = worst.max(cb.half_open_in_flight());
            }
            worst
        })
    };
    let ticker = {
        let (clock, done) = (clock.clone(), done.clone());
        thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                clock.advance(Duration::from_micros(100));
                thread::yield_now();
            }
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|i| {
            let (cb, admitted) = (cb.clone(), admitted.clone());
            thread::spawn(move || {
                for r in 0..ROUNDS {
                    if let Ok(t) = cb.admit() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                        // Some probes take a while (and time out), all record a success.
                        if (i + r) % 4 == 0 {
                            for _ in 0..50 {
                                thread::yield_now();
                            }
                        }
                        t.success();
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    ticker.join().unwrap();
    let worst = checker.join().unwrap();
    // Every admitted probe counted exactly once: as its own success, or as a failure when a
    // caller found it past its deadline — never both, never neither.
    let m = cb.info().metric;
    assert_eq!(cb.state(), State::HalfOpen);
    assert_eq!(m.total_count, admitted.load(Ordering::Relaxed));
    assert!(worst <= MAX, "{worst} in flight");
    assert_eq!(cb.half_open_in_flight(), 0);
    eprintln!(
        "{} probes admitted, {} timed out",
        m.total_count, m.failure_count
    );
}

#[test]
fn sm9_racing_probes_decide_once() {
    // Ten probes at once with Probes(10): exactly one transition out of half_open.
    for _ in 0..50 {
        let clock = ManualClock::new();
        let rec = Recorder::default();
        let cb = Arc::new(build(
            base(&clock, &rec).recovery(Probes::new(10, FailureRate::new(0.5))),
        ));
        open_it(&cb);
        let tickets: Vec<_> = (0..10).map(|_| cb.admit_owned().unwrap()).collect();
        assert!(cb.admit().is_err());
        let handles: Vec<_> = tickets
            .into_iter()
            .enumerate()
            .map(|(i, t)| thread::spawn(move || if i % 3 == 0 { t.failure() } else { t.success() }))
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(cb.state(), State::Closed, "4 of 10 failed");
        let pairs = rec.pairs();
        assert_eq!(
            pairs.iter().filter(|p| p.0 == State::HalfOpen).count(),
            1,
            "{pairs:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The demo's slow phase, modelled: the dependency answers, but slowly.

/// Transitions of a breaker in front of a dependency that succeeds but takes 60 ms, with
/// a 40 ms slow threshold, over 20 s of traffic (one call every 10 ms), probing every
/// 300 ms. Returns the signal pairs.
fn slow_phase(recovery: Option<Box<dyn Recovery>>) -> Vec<(State, State)> {
    let slow = Duration::from_millis(40);
    let clock = ManualClock::new();
    let rec = Recorder::default();
    let mut b = CircuitBreaker::builder("search_api")
        .window(TimeWindow::new(2 * SEC))
        .tripper(MinRequests::new(20) & (FailureRate::new(0.5) | SlowRate::new(0.5, slow)))
        .retry(Cooldown::new(Duration::from_millis(300)))
        .permit(permits::All)
        .clock(clock.clone())
        .listener(rec.listener());
    if let Some(r) = recovery {
        b = b.recovery(r);
    }
    let cb = b.build().unwrap();
    let tick = Duration::from_millis(10);
    let mut elapsed = Duration::ZERO;
    while elapsed < 20 * SEC {
        match cb.admit() {
            Ok(t) => {
                // The call takes 60 ms; the clock is shared, so account the time once.
                clock.advance(Duration::from_millis(60));
                t.success();
                elapsed += Duration::from_millis(60);
            }
            Err(_) => {
                clock.advance(tick);
                elapsed += tick;
            }
        }
    }
    rec.pairs()
}

/// Counts half_open → closed immediately followed by closed → open.
fn flaps(pairs: &[(State, State)]) -> usize {
    pairs
        .windows(2)
        .filter(|w| {
            w[0] == (State::HalfOpen, State::Closed) && w[1] == (State::Closed, State::Open)
        })
        .count()
}

#[test]
fn slow_phase_flaps_with_the_default_recovery_and_not_with_probes() {
    let default = slow_phase(None);
    assert!(
        flaps(&default) >= 5,
        "the default (SM-9) closes on one lucky probe: {default:?}"
    );
    let slow = Duration::from_millis(40);
    let probes = slow_phase(Some(Box::new(Probes::new(
        10,
        FailureRate::new(0.5) | SlowRate::new(0.5, slow),
    ))));
    assert_eq!(flaps(&probes), 0, "{probes:?}");
    assert!(
        !probes.contains(&(State::HalfOpen, State::Closed)),
        "slow probes never close it: {probes:?}"
    );
    assert!(probes.contains(&(State::HalfOpen, State::Open)));
}

#[test]
fn sm9_a_probes_rule_judges_exactly_the_probes_it_counted() {
    // Probe a recorded its success and read the metric; b then recorded its failure and
    // was counted first; a, counted second, judged the metric it had read (one success):
    // `Probes(2, FailureRate(0.5))` closed on a success and a failure, which must reopen.
    // The tripper pauses a between its reading and its count, where the old code let b in.
    let pause = Arc::new(AtomicBool::new(true));
    let (paused_tx, paused_rx) = std::sync::mpsc::channel::<()>();
    let paused_tx = std::sync::Mutex::new(paused_tx);
    let tripper = {
        let pause = pause.clone();
        move |ctx: &TripContext<'_>| -> bool {
            if ctx.state == State::HalfOpen && pause.swap(false, Ordering::SeqCst) {
                paused_tx.lock().unwrap().send(()).unwrap();
                // Gives b the time to go first where it can (the old code); with the
                // probes' turn, b waits for a whatever this pause is.
                thread::sleep(Duration::from_millis(200));
            }
            ctx.state == State::Closed && ctx.consecutive_failures >= 1
        }
    };
    let cb = CircuitBreaker::builder("svc")
        .tripper(tripper)
        .retry(Always)
        .permit(permits::All)
        .max_half_open_calls(2)
        .recovery(Probes::new(2, FailureRate::new(0.5)))
        .clock(ManualClock::new())
        .build()
        .unwrap();
    cb.admit().unwrap().failure();
    let a = cb.admit_owned().unwrap();
    let b = cb.admit_owned().unwrap();
    assert_eq!(cb.state(), State::HalfOpen);
    let judged = thread::scope(|s| {
        let first = s.spawn(move || a.success());
        paused_rx.recv().unwrap(); // a is between its reading and its count
        let second = s.spawn(move || b.failure());
        first.join().unwrap();
        second.join().unwrap();
        cb.state()
    });
    assert_eq!(judged, State::Open, "a success and a failure must reopen");
    assert_eq!(cb.info().reopens, 1);
}
