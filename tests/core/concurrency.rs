//! Real threads against one breaker: SM-17 (no lost records), SM-19 (signal order),
//! SM-8 (half-open limit under contention), SM-18 (listener re-entry without deadlock).

use std::io;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::thread;
use std::time::Duration;

use crate::support::*;
use fluxgate::clock::ManualClock;
use fluxgate::retries::Always;
use fluxgate::trippers::{Closed, FailureStreak, HalfOpened};
use fluxgate::windows::{CountWindow, TimeWindow};
use fluxgate::{CircuitBreaker, Signal, State, permits};

const THREADS: usize = 8;
const CALLS: usize = 100_000;

fn hammer(cb: &CircuitBreaker) {
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let cb = cb.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                for i in 0..CALLS {
                    let r = if i % 4 == 0 { fail(&cb) } else { ok(&cb) };
                    assert!(!matches!(r, Err(fluxgate::Error::Rejected(_))));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn sm17_eight_threads_lose_no_record_in_a_count_window() {
    let cb = CircuitBreaker::builder("hammer")
        .window(CountWindow::new(1_000_000))
        .build()
        .unwrap();
    hammer(&cb);
    let m = cb.info().metric;
    assert_eq!(m.total_count, (THREADS * CALLS) as u64);
    assert_eq!(m.failure_count, (THREADS * CALLS / 4) as u64);
    assert_eq!(cb.state(), State::Closed);
}

#[test]
fn sm17_eight_threads_wrapping_a_small_count_window_stay_exact() {
    let cb = CircuitBreaker::builder("ring")
        .window(CountWindow::new(64))
        .tripper(FailureStreak::new(u64::MAX))
        .build()
        .unwrap();
    hammer(&cb);
    let m = cb.info().metric;
    assert_eq!(m.total_count, 64);
    assert!(m.failure_count <= 64);
    // the ring holds exactly what the totals say: 64 more successes flush every failure
    for _ in 0..64 {
        ok(&cb).unwrap();
    }
    assert_eq!(cb.info().metric.failure_count, 0);
}

#[test]
fn sm17_eight_threads_lose_no_record_in_a_time_window() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("hammer")
        .window(TimeWindow::new(Duration::from_secs(60)))
        .clock(clock)
        .build()
        .unwrap();
    hammer(&cb);
    let m = cb.info().metric;
    assert_eq!(m.total_count, (THREADS * CALLS) as u64);
    assert_eq!(m.failure_count, (THREADS * CALLS / 4) as u64);
}

#[test]
fn sm19_signals_form_one_chain_under_racing_commands() {
    let rec = Recorder::default();
    let cb = CircuitBreaker::builder("race")
        .tripper(FailureStreak::new(3))
        .retry(Always)
        .permit(permits::All)
        .listener(rec.listener())
        .build()
        .unwrap();
    let barrier = Arc::new(Barrier::new(4));
    let mut handles = Vec::new();
    for t in 0..4 {
        let cb = cb.clone();
        let barrier = barrier.clone();
        handles.push(thread::spawn(move || {
            barrier.wait();
            for i in 0..5_000 {
                match (t, i % 7) {
                    (0, 0) => cb.force_open(),
                    (1, 0) => cb.reset(),
                    (2, 3) => cb.metrics_only(),
                    _ if i % 2 == 0 => {
                        let _ = fail(&cb);
                    }
                    _ => {
                        let _ = ok(&cb);
                    }
                }
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    // Signals that found the listeners busy are delivered in the background.
    assert!(cb.flush_signals(Duration::from_secs(60)));
    let signals = rec.signals();
    assert!(signals.len() > 1000, "{} signals", signals.len());
    assert_eq!(signals[0].old_state, State::Closed);
    for pair in signals.windows(2) {
        assert_eq!(
            pair[0].new_state, pair[1].old_state,
            "chain broken: {pair:?}"
        );
        assert!(pair[0].timestamp <= pair[1].timestamp);
    }
    assert_eq!(signals.last().unwrap().new_state, cb.info().state);
}

#[test]
fn sm8_half_open_limit_holds_under_contention() {
    let cb = CircuitBreaker::builder("probe")
        // closed: trip on the first failure; half_open: always "trip", so successes keep
        // the circuit half-open and every call competes for a slot.
        .tripper((Closed & FailureStreak::new(1)) | HalfOpened)
        .retry(Always)
        .permit(permits::All)
        .max_half_open_calls(3)
        .build()
        .unwrap();
    let _ = fail(&cb);
    let _ = cb.admit(); // open -> half_open
    assert_eq!(cb.state(), State::HalfOpen);
    let in_flight = Arc::new(AtomicU32::new(0));
    let max_seen = Arc::new(AtomicU32::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (cb, in_flight, max_seen, ran, barrier) = (
                cb.clone(),
                in_flight.clone(),
                max_seen.clone(),
                ran.clone(),
                barrier.clone(),
            );
            thread::spawn(move || {
                barrier.wait();
                for _ in 0..20_000 {
                    let _ = cb.call(|| {
                        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        max_seen.fetch_max(now, Ordering::SeqCst);
                        ran.fetch_add(1, Ordering::Relaxed);
                        thread::yield_now();
                        in_flight.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, io::Error>(())
                    });
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(cb.state(), State::HalfOpen);
    assert!(ran.load(Ordering::Relaxed) > 0);
    assert!(
        max_seen.load(Ordering::SeqCst) <= 3,
        "{}",
        max_seen.load(Ordering::SeqCst)
    );
    assert_eq!(cb.half_open_in_flight(), 0);
}

#[test]
fn sm18_listener_calling_info_and_reset_from_many_threads_does_not_deadlock() {
    let cell: Arc<Mutex<Option<CircuitBreaker>>> = Arc::new(Mutex::new(None));
    let c2 = cell.clone();
    let resets = Arc::new(AtomicUsize::new(0));
    let r2 = resets.clone();
    let cb = CircuitBreaker::builder("reentrant")
        .tripper(FailureStreak::new(1))
        .listener(move |s: &Signal| {
            let cb = c2.lock().unwrap().clone().unwrap();
            let _ = cb.info();
            if s.new_state == State::Open {
                r2.fetch_add(1, Ordering::Relaxed);
                cb.reset();
            }
        })
        .build()
        .unwrap();
    *cell.lock().unwrap() = Some(cb.clone());
    let (tx, rx) = mpsc::channel();
    for _ in 0..4 {
        let (cb, tx) = (cb.clone(), tx.clone());
        thread::spawn(move || {
            for _ in 0..2_000 {
                let _ = fail(&cb);
            }
            tx.send(()).unwrap();
        });
    }
    for _ in 0..4 {
        // A deadlock would hang here; the bound only turns a hang into a failure.
        rx.recv_timeout(Duration::from_secs(120))
            .expect("threads finished (no deadlock)");
    }
    // The last trip's listener may still run on the background thread.
    assert!(cb.flush_signals(Duration::from_secs(60)));
    assert!(resets.load(Ordering::Relaxed) > 0);
    assert_eq!(cb.state(), State::Closed);
}
