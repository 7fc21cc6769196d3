//! Model checks of the lock-free pieces (R-1, R-7, SM-17, SM-19, the fleet's lease gate)
//! with shuttle: the crate's atomics and mutex are shuttle's under `--cfg shuttle`, and its tag widths
//! shrink (4-bit count tags, 3-bit generation and lap tags, 2-bit epoch tags) so that a
//! few transitions or laps already wrap every tag and run every sweep. Each test runs
//! thousands of random and PCT schedules of real threads over the code that ships.
//!
//! Run: `RUSTFLAGS="--cfg shuttle" cargo test -p fluxgate-core --test model_check --target-dir target/shuttle`
//! (`.ci/run` does). Shuttle explores interleavings under sequential consistency; the
//! memory orderings are argued in the code's comments.
#![cfg(shuttle)]

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fluxgate_core::clock::ManualClock;
use fluxgate_core::permits;
use fluxgate_core::retries::Cooldown;
use fluxgate_core::trippers::FailureStreak;
use fluxgate_core::windows::{CountWindow, TimeWindow, Window};
use fluxgate_core::{CircuitBreaker, Record, Signal, State};
use shuttle::thread;

const SEC: u64 = 1_000_000_000;
const ITERATIONS: usize = 3_000;
const MS: Duration = Duration::from_millis(1);

fn check(name: &str, f: impl Fn() + Send + Sync + 'static) {
    let f = Arc::new(f);
    let g = f.clone();
    shuttle::check_random(move || f(), ITERATIONS);
    shuttle::check_pct(move || g(), ITERATIONS, 3);
    eprintln!(
        "{name}: {} random + {} PCT schedules",
        ITERATIONS, ITERATIONS
    );
}

/// A history of generations 0..=40 with records in some, so that 4-bit tags wrapped
/// twice and sweeps ran.
fn count_window_with_history() -> Arc<CountWindow> {
    let w = Arc::new(CountWindow::new(4));
    for g in 0..40 {
        if g % 3 == 0 {
            w.record(g, 0, Record::failure(MS));
        }
        w.advance(g + 1);
    }
    w
}

#[test]
fn r1_count_window_late_writers_never_count_and_current_ones_are_exact() {
    check("count window, late writers", || {
        let w = count_window_with_history();
        let g = 40;
        let current = {
            let w = w.clone();
            thread::spawn(move || {
                w.record(g, 0, Record::success(MS));
                w.record(g, 0, Record::failure(2 * MS));
                w.record(g, 0, Record::success(Duration::ZERO));
            })
        };
        let late = {
            let w = w.clone();
            // the same 4-bit tag as `g` (g - 16, g - 32) and the one just before
            thread::spawn(move || {
                for old in [g - 1, g - 16, g - 32] {
                    w.record(old, 0, Record::failure(Duration::from_secs(1)));
                }
            })
        };
        let reader = {
            let w = w.clone();
            thread::spawn(move || {
                for _ in 0..2 {
                    let m = w.metric(g, 0);
                    assert!(m.total_count <= 3 && m.failure_count <= 1, "{m:?}");
                }
            })
        };
        for t in [current, late, reader] {
            t.join().unwrap();
        }
        let m = w.metric(g, 0);
        assert_eq!((m.total_count, m.failure_count), (3, 1));
        assert_eq!(m.total_duration, 3 * MS);
    });
}

#[test]
fn sm17_count_window_records_of_a_generation_never_leak_into_the_next() {
    check("count window, racing transition", || {
        let w = count_window_with_history();
        let g = 40;
        let old = {
            let w = w.clone();
            thread::spawn(move || {
                for _ in 0..3 {
                    w.record(g, 0, Record::failure(MS));
                }
            })
        };
        // The breaker tells the window of a new generation before any call of it can
        // record (`Window::advance`); calls of the old one may still be recording.
        let new = {
            let w = w.clone();
            thread::spawn(move || {
                w.advance(g + 1);
                w.record(g + 1, 0, Record::success(MS));
                w.record(g + 1, 0, Record::success(MS));
            })
        };
        for t in [old, new] {
            t.join().unwrap();
        }
        let m = w.metric(g + 1, 0);
        assert_eq!((m.total_count, m.failure_count), (2, 0), "{m:?}");
        assert_eq!(m.total_duration, 2 * MS);
    });
}

/// A 2 s window whose 3-bit lap tags wrapped and whose sweeps ran: records in laps 0..20
/// and generations 0..12.
fn time_window_with_history() -> Arc<TimeWindow> {
    let w = Arc::new(TimeWindow::new(Duration::from_secs(2)));
    for lap in 0..20u64 {
        let g = lap * 3 / 5;
        w.advance(g);
        w.record(g, lap * 2 * SEC + (lap % 2) * SEC, Record::failure(MS));
    }
    w
}

#[test]
fn r1_time_window_writers_racing_a_second_boundary_and_a_transition_are_exact() {
    check("time window, racing writers", || {
        let w = time_window_with_history();
        let (g, now) = (11, 40 * SEC);
        let a = {
            let w = w.clone();
            thread::spawn(move || {
                w.record(g, now, Record::failure(MS));
                w.record(g, now + SEC, Record::success(MS));
            })
        };
        let b = {
            let w = w.clone();
            thread::spawn(move || {
                w.record(g, now + SEC / 2, Record::success(MS));
                let m = w.metric(g, now + SEC);
                assert!(m.total_count <= 3 && m.failure_count <= 1, "{m:?}");
            })
        };
        let late = {
            let w = w.clone();
            // generations with the same 3-bit tag as `g`, and the one before
            thread::spawn(move || {
                for old in [g - 1, g - 8] {
                    w.record(old, now, Record::failure(MS));
                }
            })
        };
        for t in [a, b, late] {
            t.join().unwrap();
        }
        let m = w.metric(g, now + SEC);
        assert_eq!((m.total_count, m.failure_count), (3, 1), "{m:?}");
        w.advance(g + 1);
        assert_eq!(w.metric(g + 1, now + SEC).total_count, 0);
    });
}

#[test]
fn r1_time_window_threads_waking_it_after_idleness_lose_nothing() {
    check("time window, waking", || {
        let w = time_window_with_history();
        let g = 11;
        // 1 000 laps of silence: every lap tag came round more than a hundred times
        let now = 40 * SEC + 2_000 * SEC;
        let wakers: Vec<_> = (0..2)
            .map(|i| {
                let w = w.clone();
                thread::spawn(move || {
                    w.record(g, now + i * SEC / 3, Record::failure(MS));
                    w.record(g, now + SEC, Record::success(MS));
                })
            })
            .collect();
        let stale = {
            let w = w.clone();
            // callers whose clock reads are one and three laps old (out of the window)
            thread::spawn(move || {
                w.record(g, now - 2 * SEC, Record::failure(MS));
                w.record(g, now - 6 * SEC, Record::failure(MS));
            })
        };
        for t in wakers.into_iter().chain([stale]) {
            t.join().unwrap();
        }
        let m = w.metric(g, now + SEC);
        assert_eq!((m.total_count, m.failure_count), (4, 2), "{m:?}");
    });
}

fn breaker(clock: &ManualClock, signals: &Arc<Mutex<Vec<Signal>>>) -> Arc<CircuitBreaker> {
    let seen = signals.clone();
    Arc::new(
        CircuitBreaker::builder("model")
            .tripper(FailureStreak::new(1))
            .retry(Cooldown::new(Duration::from_secs(1)))
            .permit(permits::All)
            .max_half_open_calls(1)
            .clock(clock.clone())
            .listener(move |s: &Signal| seen.lock().unwrap().push(s.clone()))
            .build()
            .unwrap(),
    )
}

fn fail(cb: &CircuitBreaker) {
    let _ = cb.call(|| Err::<(), _>(io::Error::other("down")));
}

#[test]
fn r7_half_open_slots_never_exceed_the_limit_nor_leak_across_periods() {
    check("half-open slots", || {
        let clock = ManualClock::new();
        let signals = Arc::new(Mutex::new(Vec::new()));
        let cb = breaker(&clock, &signals);
        // epochs 0..6 so that the 2-bit epoch tags wrap
        for _ in 0..3 {
            fail(&cb);
            cb.reset();
        }
        fail(&cb);
        clock.advance(Duration::from_secs(1));
        let probers: Vec<_> = (0..2)
            .map(|_| {
                let cb = cb.clone();
                thread::spawn(move || {
                    if let Ok(t) = cb.admit() {
                        assert!(cb.half_open_in_flight() <= 1);
                        drop(t);
                    }
                })
            })
            .collect();
        let operator = {
            let (cb, clock) = (cb.clone(), clock.clone());
            thread::spawn(move || {
                cb.reset();
                fail(&cb);
                clock.advance(Duration::from_secs(1));
            })
        };
        let reader = {
            let cb = cb.clone();
            thread::spawn(move || {
                for _ in 0..3 {
                    assert!(cb.half_open_in_flight() <= 1);
                }
            })
        };
        for t in probers.into_iter().chain([operator, reader]) {
            t.join().unwrap();
        }
        assert_eq!(cb.half_open_in_flight(), 0, "a slot leaked");
        if cb.info().state == State::HalfOpen || cb.info().state == State::Open {
            // every slot of the current period is free again: a probe goes through
            let t = cb.admit().expect("a free slot");
            t.success();
            assert_eq!(cb.info().state, State::Closed);
        }
    });
}

#[test]
fn sm19_racing_transitions_reach_the_listener_as_one_chain_ending_at_the_state() {
    check("signal order", || {
        let clock = ManualClock::new();
        let signals = Arc::new(Mutex::new(Vec::new()));
        let cb = breaker(&clock, &signals);
        let tripper = {
            let (cb, clock) = (cb.clone(), clock.clone());
            thread::spawn(move || {
                fail(&cb);
                clock.advance(Duration::from_secs(1));
                let _ = cb.call(|| Ok::<_, io::Error>(()));
            })
        };
        let operator = {
            let cb = cb.clone();
            thread::spawn(move || {
                cb.force_open();
                cb.reset();
                cb.metrics_only();
            })
        };
        for t in [tripper, operator] {
            t.join().unwrap();
        }
        // a backlog may still be on its way on a delivery thread
        assert!(cb.flush_signals(Duration::from_secs(3600)));
        let seen = signals.lock().unwrap();
        let mut state = State::Closed;
        for s in seen.iter() {
            assert_eq!(s.old_state, state, "broken chain: {seen:?}");
            state = s.new_state;
        }
        assert_eq!(state, cb.info().state, "{seen:?}");
    });
}

/// A rule that never ends a half-open period, so every probe of a model belongs to one.
struct Forever;
impl fluxgate_core::recovery::Recovery for Forever {
    fn decide(
        &self,
        _: &fluxgate_core::recovery::RecoveryContext<'_>,
    ) -> fluxgate_core::recovery::Verdict {
        fluxgate_core::recovery::Verdict::Stay
    }
}

/// A breaker with `slots` half-open slots whose probes time out after 1 s and whose
/// half-open period never ends by itself, made half-open (its next call is a probe).
fn half_open_with_leases(slots: usize) -> (ManualClock, Arc<CircuitBreaker>) {
    let clock = ManualClock::new();
    let cb = Arc::new(
        CircuitBreaker::builder("model")
            .tripper(FailureStreak::new(1))
            .retry(Cooldown::new(Duration::from_secs(1)))
            .permit(permits::All)
            .max_half_open_calls(slots)
            .probe_timeout(Duration::from_secs(1))
            .recovery(Forever)
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    fail(&cb);
    clock.advance(Duration::from_secs(1));
    (clock, cb)
}

#[test]
fn sm8_a_timed_out_probe_counts_once_and_frees_its_slot_once() {
    check("probe timeout", || {
        let (clock, cb) = half_open_with_leases(2);
        let recorded = cb.admit_owned().unwrap();
        let dropped = cb.admit_owned().unwrap();
        // Both are past their deadline: each ends as its own outcome or as a timeout.
        clock.advance(Duration::from_secs(1));
        let recorder = thread::spawn(move || recorded.success());
        let dropper = thread::spawn(move || drop(dropped));
        let prober = {
            let cb = cb.clone();
            thread::spawn(move || {
                let mut held = Vec::new();
                for _ in 0..2 {
                    if let Ok(t) = cb.admit_owned() {
                        held.push(t);
                    }
                    assert!(cb.half_open_in_flight() <= 2);
                }
                held
            })
        };
        recorder.join().unwrap();
        dropper.join().unwrap();
        let held = prober.join().unwrap();
        assert!(cb.half_open_in_flight() <= 2);
        // A late release never frees a slot that a new probe holds.
        assert_eq!(cb.half_open_in_flight() as usize, held.len());
        let m = cb.info().metric;
        // The recorded probe counts once (its success, or a timeout failure); the dropped
        // one counts as a failure iff a caller found it before it was dropped.
        assert!((1..=2).contains(&m.total_count), "{m:?}");
        assert!(m.total_count - m.failure_count <= 1, "{m:?}");
        assert_eq!(cb.info().state, State::HalfOpen);
        drop(held);
        assert_eq!(cb.half_open_in_flight(), 0, "a slot leaked");
        let a = cb.admit().expect("a free slot");
        let b = cb.admit().expect("a free slot");
        assert!(cb.admit().is_err());
        drop((a, b));
    });
}

/// One slot, a probe past its deadline, and a caller whose clock reading may come from
/// before the reclaim: whatever the interleaving, the hung probe's late outcome never
/// frees the slot of the probe admitted after it (the new stamp is never the old one).
#[test]
fn sm8_a_reclaimed_probe_never_frees_the_slot_of_a_later_probe() {
    check("probe timeout, stale reading", || {
        let (clock, cb) = half_open_with_leases(1);
        let hung = cb.admit_owned().unwrap();
        // The reclaimer moves the clock past the hung probe's deadline, reclaims it and
        // gives its own slot straight back; the caller reads the clock before or after.
        let reclaimer = {
            let (cb, clock) = (cb.clone(), clock.clone());
            thread::spawn(move || {
                clock.advance(Duration::from_secs(1));
                drop(cb.admit_owned());
            })
        };
        let caller = {
            let cb = cb.clone();
            thread::spawn(move || cb.admit_owned().ok())
        };
        // The hung probe holds the only slot until the reclaim: the caller can only be
        // admitted after it, with a deadline the clock never reaches.
        reclaimer.join().unwrap();
        let late = thread::spawn(move || hung.success());
        let probe = caller.join().unwrap();
        late.join().unwrap();
        assert_eq!(
            cb.half_open_in_flight() as usize,
            usize::from(probe.is_some()),
            "the late outcome freed the new probe's slot"
        );
        let admitted = probe.is_some();
        if let Some(p) = probe {
            p.failure();
        }
        assert_eq!(cb.half_open_in_flight(), 0, "a slot leaked");
        // The hung probe counts once, as a timeout; its late success never counts.
        let m = cb.info().metric;
        assert_eq!(m.failure_count, 1 + u64::from(admitted), "{m:?}");
        assert_eq!(m.total_count, m.failure_count, "{m:?}");
    });
}

/// A store that hands out its link and records the probe leases asked for.
#[derive(Clone, Default)]
struct Gate {
    link: Arc<Mutex<Option<fluxgate_core::store::StoreLink>>>,
    wanted: Arc<Mutex<Vec<u64>>>,
}

struct GateSink(Arc<Mutex<Vec<u64>>>);

impl fluxgate_core::store::StoreSink for GateSink {
    fn changed(&self, _: fluxgate_core::store::Change) {}
    fn wants_probe(&self, epoch: u64) {
        self.0.lock().unwrap().push(epoch);
    }
    fn leases_probes(&self) -> bool {
        true
    }
}

impl fluxgate_core::store::StateStore for Gate {
    fn attach(
        &self,
        link: fluxgate_core::store::StoreLink,
    ) -> Box<dyn fluxgate_core::store::StoreSink> {
        *self.link.lock().unwrap() = Some(link);
        Box::new(GateSink(self.wanted.clone()))
    }
}

#[test]
fn fleet_a_probe_needs_the_lease_of_its_open_period_and_the_fleets_deadline() {
    use fluxgate_core::store::SharedState;
    use shuttle::sync::atomic::{AtomicU8, Ordering};
    check("fleet lease gate", || {
        let clock = ManualClock::new();
        let gate = Gate::default();
        let cb = Arc::new(
            CircuitBreaker::builder("fleet")
                .tripper(FailureStreak::new(1))
                .retry(Cooldown::new(Duration::from_secs(10)))
                .permit(permits::All)
                .max_half_open_calls(1)
                .clock(clock.clone())
                .store(gate.clone())
                .build()
                .unwrap(),
        );
        fail(&cb);
        clock.advance(Duration::from_secs(10));
        // Due, but no lease yet: rejected, and the lease is asked for.
        assert!(cb.admit().is_err());
        let epoch = *gate
            .wanted
            .lock()
            .unwrap()
            .last()
            .expect("a lease asked for");
        let link = gate.link.lock().unwrap().clone().unwrap();
        // 0: nothing granted; 1: the grant may have happened; 2: the fleet set a new
        // deadline (10 s ahead) for this open period.
        let phase = Arc::new(AtomicU8::new(0));
        let store = {
            let phase = phase.clone();
            thread::spawn(move || {
                phase.store(1, Ordering::SeqCst);
                link.grant_probe(epoch);
                let later = SharedState::new(State::Open, 0, Some(Duration::from_secs(10)));
                link.apply(later.with_version(2));
                phase.store(2, Ordering::SeqCst);
            })
        };
        let caller = {
            let cb = cb.clone();
            let phase = phase.clone();
            thread::spawn(move || {
                for _ in 0..2 {
                    let before = phase.load(Ordering::SeqCst);
                    let admitted = cb.admit();
                    let after = phase.load(Ordering::SeqCst);
                    if let Ok(ticket) = admitted {
                        assert!(after >= 1, "a probe without the fleet's lease");
                        assert!(before < 2, "a probe before the fleet's new deadline");
                        assert_eq!(ticket.state(), State::HalfOpen);
                        ticket.failure();
                    }
                }
            })
        };
        store.join().unwrap();
        caller.join().unwrap();
        // However it went, no probe is in flight and the breaker is open again.
        assert_eq!(cb.half_open_in_flight(), 0);
        assert_eq!(cb.state(), State::Open);
    });
}
