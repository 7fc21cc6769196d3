//! Tests for the reliability guarantees and R-7 (SPEC §11). Those that name a
//! fix ("Before: …") are regressions: each one failed on the breaker before that fix.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, SystemTime};

use crate::support::{fail, ok};
use fluxgate::clock::{Clock, ManualClock};
use fluxgate::permits;
use fluxgate::retries::{Always, Cooldown, Never};
use fluxgate::trippers::{FailureRate, FailureStreak, MinRequests, SlowRate};
use fluxgate::windows::{CountWindow, TimeWindow};
use fluxgate::{CircuitBreaker, Error, State};

const SEC: Duration = Duration::from_secs(1);

fn time_window_breaker(clock: &ManualClock, span: u64) -> CircuitBreaker {
    CircuitBreaker::builder("nightly")
        .window(TimeWindow::new(Duration::from_secs(span)))
        .tripper(MinRequests::new(10) & FailureRate::new(0.5))
        .retry(Never)
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// Fails calls until the breaker opens; returns how many it took (at most `limit`).
fn failures_to_open(cb: &CircuitBreaker, limit: usize) -> Option<usize> {
    (1..=limit).find(|_| {
        let _ = fail(cb);
        cb.info().state == State::Open
    })
}

#[test]
fn r1_time_window_trips_after_any_number_of_manual_transitions() {
    // Before: 129 disable/reset pairs left the 8-bit bucket tags looking "newer" than the
    // epoch and every later write was dropped: 1 000 failures, still closed.
    for cycles in [129, 200, 2_100, 70_000] {
        let clock = ManualClock::new();
        let cb = time_window_breaker(&clock, 60);
        let _ = ok(&cb);
        for _ in 0..cycles {
            cb.disable_silently();
            cb.reset_silently();
        }
        assert_eq!(
            failures_to_open(&cb, 1_000),
            Some(10),
            "after {cycles} cycles"
        );
    }
}

#[test]
fn r1_failure_streak_trips_after_any_number_of_resets() {
    // Before: 32 769 silent resets made the 16-bit streak tag look newer: 100 failures,
    // still closed.
    for resets in [32_769, 65_536, 100_000] {
        let cb = CircuitBreaker::builder("streak")
            .tripper(FailureStreak::new(5))
            .build()
            .unwrap();
        let _ = fail(&cb);
        for _ in 0..resets {
            cb.reset_silently();
        }
        assert_eq!(failures_to_open(&cb, 100), Some(5), "after {resets} resets");
    }
}

#[test]
fn r1_records_of_an_old_epoch_never_come_back() {
    // Before: after exactly 65 536 resets the 16-bit tags matched again and 60 failures of
    // epoch 0 were counted in the fresh window.
    let cb = CircuitBreaker::builder("ghosts")
        .window(CountWindow::new(100))
        .tripper(MinRequests::new(1_000) & FailureRate::new(0.5))
        .build()
        .unwrap();
    for _ in 0..60 {
        let _ = fail(&cb);
    }
    assert_eq!(cb.info().metric.failure_count, 60);
    for i in 1..=(3 * 65_536 + 7) {
        cb.reset_silently();
        if i % 65_536 == 0 || i % 16_384 == 1 {
            let info = cb.info();
            assert_eq!(info.metric.total_count, 0, "after {i} resets");
            assert_eq!(info.consecutive_failures, 0, "after {i} resets");
        }
    }
    let _ = ok(&cb);
    assert_eq!(cb.info().metric.total_count, 1);
}

#[test]
fn r1_a_late_outcome_of_an_old_epoch_never_counts() {
    // A ticket admitted before 65 536 transitions records after them: SM-17 drops it.
    let cb = CircuitBreaker::builder("late").build().unwrap();
    let ticket = cb.admit().unwrap();
    for _ in 0..65_536 {
        cb.reset_silently();
    }
    ticket.failure();
    assert_eq!(cb.info().metric.total_count, 0);
    assert_eq!(cb.info().consecutive_failures, 0);
}

#[test]
fn r1_time_window_trips_after_a_day_of_silence() {
    // Before: a 2 s window stored the lap in 16 bits; after 24 h without a call the
    // bucket tags looked newer and 10 failures were never recorded.
    let clock = ManualClock::new();
    let cb = time_window_breaker(&clock, 2);
    let _ = ok(&cb);
    clock.advance(Duration::from_secs(24 * 3600));
    assert_eq!(failures_to_open(&cb, 10), Some(10));
}

#[test]
fn r1_time_window_idle_gaps_of_any_length_leave_it_exact() {
    for span in [1u64, 2, 7] {
        for gap_laps in [32_768u64, 65_536, 4_096, 4_095, 1 << 20, 3 * 65_536 + 1] {
            let clock = ManualClock::new();
            let cb = time_window_breaker(&clock, span);
            for _ in 0..5 {
                let _ = fail(&cb);
            }
            clock.advance(Duration::from_secs(gap_laps * span));
            // exactly a multiple of the window later: the old bucket must not count
            assert_eq!(
                cb.info().metric.total_count,
                0,
                "span {span}, gap {gap_laps} laps"
            );
            assert_eq!(failures_to_open(&cb, 10), Some(10), "span {span}");
        }
    }
}

#[test]
fn r1_a_bucket_left_alone_for_thousands_of_laps_does_not_count_again() {
    // Calls only ever land in the first second of a 2 s window; the failures once put in
    // the second bucket must stay out of every later window.
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("even-seconds")
        .window(TimeWindow::new(Duration::from_secs(2)))
        .tripper(MinRequests::new(1_000_000) & FailureRate::new(0.5))
        .clock(clock.clone())
        .build()
        .unwrap();
    clock.advance(SEC);
    for _ in 0..3 {
        let _ = fail(&cb);
    }
    clock.advance(3 * SEC);
    for lap in 2..=70_000u64 {
        let _ = ok(&cb);
        let m = cb.info().metric;
        assert_eq!(
            (m.total_count, m.failure_count),
            (1, 0),
            "lap {lap}: only this lap's call is in the window"
        );
        clock.advance(2 * SEC);
    }
}

#[test]
fn r4_breakers_tripped_together_wait_different_times() {
    // Before: the jitter was seeded from the transition time, so 200 breakers tripped on
    // the same clock reading waited 1–2 distinct times.
    let clock = ManualClock::new();
    let mut waits = HashSet::new();
    for i in 0..200 {
        let cb = CircuitBreaker::builder(&format!("replica-{i}"))
            .tripper(FailureStreak::new(1))
            .retry(Cooldown::new(Duration::from_secs(60)).jitter(0.5))
            .clock(clock.clone())
            .build()
            .unwrap();
        let _ = fail(&cb);
        let Err(Error::Rejected(r)) = ok(&cb) else {
            panic!("breaker {i} did not open");
        };
        let wait = r.retry_after().expect("a cooldown knows its wait");
        assert!(wait >= Duration::from_secs(30) && wait <= Duration::from_secs(90));
        // the wait is fixed for the open period (RT-2): asking again gives the same
        let Err(Error::Rejected(again)) = ok(&cb) else {
            panic!("breaker {i} closed");
        };
        assert_eq!(again.retry_after(), Some(wait));
        waits.insert(wait);
    }
    assert!(waits.len() >= 190, "only {} distinct waits", waits.len());
}

/// A clock whose monotonic time can be set, backwards too.
#[derive(Clone, Default)]
struct SteppingClock(Arc<AtomicU64>);

impl Clock for SteppingClock {
    fn now_nanos(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
    fn wall(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.now_nanos())
    }
}

#[test]
fn r7_a_clock_that_steps_back_never_admits_a_probe_early() {
    // Before: `since_change` was computed modulo 2^48 µs, so a step back of 1 µs read as
    // 8.9 years and the probe went through at once.
    let clock = SteppingClock::default();
    clock.0.store(10_000_000_000, Ordering::Release);
    let cb = CircuitBreaker::builder("stepping")
        .tripper(FailureStreak::new(1))
        .retry(Cooldown::new(Duration::from_secs(60)))
        .permit(permits::All)
        .clock(clock.clone())
        .build()
        .unwrap();
    let _ = fail(&cb);
    assert_eq!(cb.info().state, State::Open);
    clock.0.fetch_sub(1_000, Ordering::AcqRel);
    let Err(Error::Rejected(r)) = ok(&cb) else {
        panic!("a probe went through after the clock stepped back");
    };
    assert_eq!(r.state(), State::Open);
    assert_eq!(r.retry_after(), Some(Duration::from_secs(60)));
    clock.0.fetch_add(60_000_001_000, Ordering::AcqRel);
    assert!(ok(&cb).is_ok());
}

#[test]
fn r3_a_call_timed_across_a_clock_step_back_lasts_zero() {
    // The TSC clock (feature `quanta`) can read earlier on another core: a call whose end
    // reading is before its start lasts zero, it is neither a panic nor centuries.
    let clock = SteppingClock::default();
    clock.0.store(10_000_000_000, Ordering::Release);
    let cb = CircuitBreaker::builder("stepping-call")
        .tripper(MinRequests::new(100) & SlowRate::new(0.5, SEC))
        .clock(clock.clone())
        .build()
        .unwrap();
    let back = cb.call(|| {
        clock.0.fetch_sub(5_000_000_000, Ordering::AcqRel);
        Ok::<_, std::io::Error>(())
    });
    assert!(back.is_ok());
    let m = cb.info().metric;
    assert_eq!((m.total_count, m.total_duration), (1, Duration::ZERO));
    assert_eq!(m.slow_rate(SEC), Some(0.0));
    // The same breaker still times the next call from its own readings.
    let forward = cb.call(|| {
        clock.0.fetch_add(2_000_000_000, Ordering::AcqRel);
        Ok::<_, std::io::Error>(())
    });
    assert!(forward.is_ok());
    let m = cb.info().metric;
    assert_eq!((m.total_count, m.total_duration), (2, 2 * SEC));
    assert_eq!(m.slow_rate(SEC), Some(0.5));
}

#[test]
fn r7_a_half_open_slot_belongs_to_its_period() {
    // Before: a probe ticket still held from an earlier half-open period kept its slot
    // after reset() and a re-trip, and the next period rejected every probe.
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("slots")
        .tripper(FailureStreak::new(1))
        .retry(Cooldown::new(SEC))
        .permit(permits::All)
        .max_half_open_calls(1)
        .clock(clock.clone())
        .build()
        .unwrap();
    let _ = fail(&cb);
    clock.advance(SEC);
    let hung = cb.admit().expect("the first probe");
    assert_eq!(cb.info().state, State::HalfOpen);
    assert_eq!(cb.half_open_in_flight(), 1);
    cb.reset();
    let _ = fail(&cb);
    clock.advance(SEC);
    let probe = cb.admit().expect("the new period's probe is admitted");
    assert_eq!(cb.half_open_in_flight(), 1);
    drop(hung); // gives back nothing of the new period
    assert_eq!(cb.half_open_in_flight(), 1);
    assert!(
        cb.admit().is_err(),
        "the limit of the new period still holds"
    );
    probe.success();
    assert_eq!(cb.info().state, State::Closed);
}

#[test]
fn r7_half_open_in_flight_never_reads_above_the_limit() {
    // Before: a caller turned away took the slot first and gave it back after, so a
    // reader could see the limit + 1.
    const LIMIT: usize = 2;
    let cb = Arc::new(
        CircuitBreaker::builder("limit")
            .tripper(FailureStreak::new(1))
            .retry(Always)
            .permit(permits::All)
            .max_half_open_calls(LIMIT)
            .build()
            .unwrap(),
    );
    let _ = fail(&cb);
    let held: Vec<_> = (0..LIMIT).map(|_| cb.admit().unwrap()).collect();
    assert_eq!(cb.info().state, State::HalfOpen);
    let stop = Arc::new(AtomicBool::new(false));
    let callers: Vec<_> = (0..3)
        .map(|_| {
            let (cb, stop) = (cb.clone(), stop.clone());
            thread::spawn(move || {
                for _ in 0..200_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    assert!(cb.admit().is_err());
                }
            })
        })
        .collect();
    let mut max = 0;
    for _ in 0..2_000_000 {
        max = max.max(cb.half_open_in_flight());
        if max > LIMIT as u32 {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in callers {
        c.join().unwrap();
    }
    drop(held);
    assert!(max <= LIMIT as u32, "read {max} slots in flight");
}
