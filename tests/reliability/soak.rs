//! Soak test with fault injection (R-1, R-2, R-3, R-7, SM-16…SM-20, L-2): for a bounded
//! time (`FLUXGATE_SOAK_SECS`, default 20 s) threads and tokio tasks make calls with mixed
//! outcomes — some of them panic inside the protected closure — while an operator thread
//! issues random manual commands, the clock jumps forward by hours and back by
//! milliseconds, and the listeners are slow, panicking and re-entrant. A checker thread
//! reads every breaker continuously; at the end every listener must have seen one
//! continuous chain of transitions that ends at the breaker's state.

use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use fluxgate::clock::Clock;
use fluxgate::retries::Cooldown;
use fluxgate::trippers::{FailureRate, FailureStreak, MinRequests, SlowRate};
use fluxgate::windows::{CountWindow, TimeWindow};
use fluxgate::{AsyncCircuitBreaker, CircuitBreaker, Signal, State, permits};

const WINDOW: usize = 50;
const HALF_OPEN: usize = 3;

/// Real time plus an offset that a test thread moves: forward by hours, back a little.
#[derive(Clone)]
struct JumpyClock {
    origin: Instant,
    offset: Arc<AtomicI64>,
}

impl Clock for JumpyClock {
    fn now_nanos(&self) -> u64 {
        let real = self.origin.elapsed().as_nanos() as i64;
        (real + self.offset.load(Ordering::Relaxed)).max(0) as u64
    }
    fn wall(&self) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_nanos(self.now_nanos())
    }
}

/// A listener that checks the chain of one breaker as it goes: each signal's old state
/// is the previous signal's new state.
#[derive(Default)]
struct Chain {
    last: Mutex<Option<State>>,
    breaks: AtomicU64,
    seen: AtomicU64,
}

impl Chain {
    fn see(&self, s: &Signal) {
        let mut last = self.last.lock().unwrap();
        if last.unwrap_or(State::Closed) != s.old_state {
            self.breaks.fetch_add(1, Ordering::Relaxed);
        }
        *last = Some(s.new_state);
        self.seen.fetch_add(1, Ordering::Relaxed);
    }
    fn state(&self) -> State {
        self.last.lock().unwrap().unwrap_or(State::Closed)
    }
}

fn soak_time() -> Duration {
    let secs = std::env::var("FLUXGATE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    Duration::from_secs(secs)
}

fn outcome(rng: &mut fastrand::Rng) -> Result<u32, io::Error> {
    match rng.u8(0..100) {
        0..=54 => Ok(7),
        55..=89 => Err(io::Error::other("down")),
        _ => panic!("the protected closure panicked"),
    }
}

/// Waits (bounded) until a listener has caught up with the breaker's state.
fn caught_up(chain: &Chain, state: impl Fn() -> State) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if chain.state() == state() {
            return true;
        }
        thread::yield_now();
    }
    false
}

/// Keeps the injected panics quiet; every other panic is reported as usual.
fn quiet_injected_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .unwrap_or_default();
        if !msg.contains("panicked") && !msg.contains("panics") {
            default(info);
        }
    }));
}

#[test]
fn soak_threads_tasks_commands_and_faults_keep_every_invariant() {
    quiet_injected_panics();
    let clock = JumpyClock {
        origin: Instant::now(),
        offset: Arc::new(AtomicI64::new(0)),
    };
    let sync_chain = Arc::new(Chain::default());
    let async_chain = Arc::new(Chain::default());
    let stop = Arc::new(AtomicBool::new(false));

    let chain = sync_chain.clone();
    let me: Arc<OnceLock<Weak<CircuitBreaker>>> = Arc::default();
    let cell = me.clone();
    let slow_tx = Arc::new(AtomicU64::new(0));
    let slow = slow_tx.clone();
    let sync_cb = Arc::new(
        CircuitBreaker::builder("soak-sync")
            .window(CountWindow::new(WINDOW))
            .tripper(FailureStreak::new(5) | (MinRequests::new(10) & FailureRate::new(0.5)))
            .retry(Cooldown::new(Duration::from_millis(2)).jitter(0.5))
            .permit(permits::RampUp::new(0.5, 1.0, Duration::from_millis(5)))
            .max_half_open_calls(HALF_OPEN)
            .clock(clock.clone())
            .listener(move |s: &Signal| chain.see(s))
            .listener(|s: &Signal| {
                if s.new_state == State::Disabled {
                    panic!("a listener that panics");
                }
            })
            .listener(move |s: &Signal| {
                // a re-entrant listener: reads the breaker, and resets it out of
                // metrics_only (a command from inside a listener, SM-18)
                if let Some(cb) = cell.get().and_then(Weak::upgrade) {
                    let _ = cb.info();
                    if s.new_state == State::MetricsOnly {
                        cb.reset();
                    }
                }
            })
            .listener(move |_: &Signal| {
                // a slow listener
                if slow.fetch_add(1, Ordering::Relaxed) % 8 == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
            })
            .build()
            .unwrap(),
    );
    let _ = me.set(Arc::downgrade(&sync_cb));

    let chain = async_chain.clone();
    let async_cb = Arc::new(
        AsyncCircuitBreaker::builder("soak-async")
            .window(TimeWindow::new(Duration::from_secs(2)))
            .tripper(
                (MinRequests::new(10) & FailureRate::new(0.5))
                    | (MinRequests::new(10) & SlowRate::new(0.9, Duration::from_millis(50))),
            )
            .retry(Cooldown::new(Duration::from_millis(2)))
            .permit(permits::All)
            .max_half_open_calls(HALF_OPEN)
            .clock(clock.clone())
            .listener(move |s: &Signal| chain.see(s))
            .build()
            .unwrap(),
    );

    let started = Instant::now();
    let budget = soak_time();
    let mut handles = Vec::new();

    // callers on threads
    for seed in 0..3u64 {
        let (cb, stop) = (sync_cb.clone(), stop.clone());
        handles.push(thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut calls = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let _ = catch_unwind(AssertUnwindSafe(|| cb.call(|| outcome(&mut rng))));
                calls += 1;
            }
            calls
        }));
    }
    // an operator: random manual commands on both breakers
    {
        let (cb, acb, stop) = (sync_cb.clone(), async_cb.clone(), stop.clone());
        handles.push(thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(99);
            let mut commands = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match rng.u8(0..40) {
                    0 => cb.reset(),
                    1 => cb.force_open(),
                    2 => cb.disable(),
                    3 => cb.metrics_only(),
                    4 => cb.metrics_only(),
                    5 => acb.reset(),
                    6 => acb.force_open(),
                    7 => acb.metrics_only(),
                    _ => {}
                }
                commands += 1;
                thread::sleep(Duration::from_micros(200));
            }
            commands
        }));
    }
    // the clock jumps: forward by hours now and then, back by a millisecond
    {
        let (offset, stop) = (clock.offset.clone(), stop.clone());
        handles.push(thread::spawn(move || {
            let mut rng = fastrand::Rng::with_seed(5);
            while !stop.load(Ordering::Relaxed) {
                let jump = match rng.u8(0..10) {
                    0 => 3_600_000_000_000,
                    1..=4 => -1_000_000,
                    _ => 3_000_000,
                };
                offset.fetch_add(jump, Ordering::Relaxed);
                thread::sleep(Duration::from_millis(5));
            }
            0
        }));
    }
    // the checker: every invariant, continuously
    let violations = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let (cb, acb, stop, v) = (
            sync_cb.clone(),
            async_cb.clone(),
            stop.clone(),
            violations.clone(),
        );
        handles.push(thread::spawn(move || {
            let mut checks = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (name, info, in_flight) in [
                    ("sync", cb.info(), cb.half_open_in_flight()),
                    ("async", acb.info(), acb.half_open_in_flight()),
                ] {
                    let m = &info.metric;
                    if m.failure_count > m.total_count
                        || (name == "sync" && m.total_count > WINDOW as u64)
                        || in_flight > HALF_OPEN as u32
                        || m.slow_counts().any(|(_, c)| c > m.total_count)
                    {
                        v.lock()
                            .unwrap()
                            .push(format!("{name}: {info:?}, in flight {in_flight}"));
                    }
                }
                checks += 1;
            }
            checks
        }));
    }

    // callers on tokio tasks
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let task_calls: u64 = rt.block_on(async {
        let tasks: Vec<_> = (0..4u64)
            .map(|seed| {
                let (cb, stop) = (async_cb.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut rng = fastrand::Rng::with_seed(100 + seed);
                    let mut calls = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let ms = rng.u64(0..80);
                        let fail = rng.bool();
                        let call = cb.call(|| async move {
                            if ms > 70 {
                                tokio::task::yield_now().await;
                            }
                            if fail {
                                Err(io::Error::other("down"))
                            } else {
                                Ok(ms)
                            }
                        });
                        if rng.u8(0..10) == 0 {
                            // cancelled mid-flight (SM-20)
                            let _ = tokio::time::timeout(Duration::ZERO, call).await;
                        } else {
                            let _ = call.await;
                        }
                        calls += 1;
                    }
                    calls
                })
            })
            .collect();
        while started.elapsed() < budget {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.store(true, Ordering::Relaxed);
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    let counts: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();

    let v = violations.lock().unwrap();
    assert!(
        v.is_empty(),
        "{} violations, first: {:?}",
        v.len(),
        v.first()
    );
    assert!(counts[..3].iter().all(|&c| c > 0) && task_calls > 0);
    assert!(counts[5] > 0, "the checker ran");

    // Nothing is in flight any more: every half-open slot was given back (R-7, SM-20).
    assert_eq!(sync_cb.half_open_in_flight(), 0);
    assert_eq!(async_cb.half_open_in_flight(), 0);

    // Every listener saw one continuous chain ending at the breaker's state (SM-19, R-2).
    assert!(caught_up(&sync_chain, || sync_cb.info().state));
    assert!(caught_up(&async_chain, || async_cb.info().state));
    assert_eq!(sync_chain.breaks.load(Ordering::Relaxed), 0);
    assert_eq!(async_chain.breaks.load(Ordering::Relaxed), 0);
    assert!(sync_chain.seen.load(Ordering::Relaxed) > 10);

    // Both breakers still work: reset, then a failure streak trips the sync one.
    sync_cb.reset();
    for _ in 0..5 {
        let _ = sync_cb.call(|| Err::<(), _>(io::Error::other("down")));
    }
    assert_eq!(sync_cb.info().state, State::Open);
    eprintln!(
        "soak: {:?}, thread calls {:?}, task calls {task_calls}, commands {}, checks {}, signals {}",
        started.elapsed(),
        &counts[..3],
        counts[3],
        counts[5],
        sync_chain.seen.load(Ordering::Relaxed) + async_chain.seen.load(Ordering::Relaxed)
    );
}
