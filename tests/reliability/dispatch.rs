//! Signal delivery under slow listeners and signal storms: R-2 (no caller is held hostage
//! by listeners of transitions it did not cause; queues are bounded and what they coalesce
//! is counted), with SM-16, SM-18, SM-19 and L-4 still holding.
//!
//! The protocols below use channels, never sleeps: a listener blocks until the test
//! releases it, and the test only releases it after the thread under test has returned.
//! Where a thread that is held hostage would hang forever, a generous `recv_timeout`
//! turns the hang into a failure.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Barrier, Mutex};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use crate::support::logs::LogText;
use crate::support::*;
use fluxgate::trippers::FailureStreak;
use fluxgate::{AsyncCircuitBreaker, CircuitBreaker, Signal, State, permits, retries};

/// How long a thread may take to come back before the test calls it stuck.
const STUCK: Duration = Duration::from_secs(20);

/// Signals the breaker has not handed to its listeners yet.
fn pending(cb: &CircuitBreaker) -> usize {
    cb.info().pending_signals
}

/// Signals merged with their neighbours because listeners fell behind.
fn coalesced(cb: &CircuitBreaker) -> u64 {
    cb.info().coalesced_signals
}

/// Waits until every signal so far has reached the listeners (the background delivery
/// may still be working on a backlog when the threads that caused it have returned).
fn settle(cb: &CircuitBreaker) {
    assert!(
        cb.flush_signals(Duration::from_secs(60)),
        "signals still pending"
    );
    assert_eq!(pending(cb), 0);
}

/// A listener that records every signal with the thread that delivered it, and blocks
/// on the first `blocked` signals until the test releases each one.
struct Gate {
    seen: Arc<Mutex<Vec<(Signal, ThreadId)>>>,
    entered: Receiver<usize>,
    release: Option<Sender<()>>,
}

fn gate(blocked: usize) -> (impl Fn(&Signal) + Send + Sync + 'static, Gate) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let count = AtomicUsize::new(0);
    let log = seen.clone();
    let listener = move |s: &Signal| {
        log.lock()
            .unwrap()
            .push((s.clone(), thread::current().id()));
        let i = count.fetch_add(1, Ordering::SeqCst);
        if i < blocked {
            let _ = entered_tx.send(i);
            // Returns on release, or when the test is over (the sender is dropped).
            let _ = release_rx.lock().unwrap().recv();
        }
    };
    (
        listener,
        Gate {
            seen,
            entered,
            release: Some(release),
        },
    )
}

impl Gate {
    /// Waits until the listener is blocked on signal number `i` (0-based).
    fn entered(&self, i: usize) {
        let got = self
            .entered
            .recv_timeout(STUCK)
            .expect("the listener was never called for the next signal");
        assert_eq!(got, i);
    }
    fn release(&self) {
        self.release.as_ref().unwrap().send(()).unwrap();
    }
    fn signals(&self) -> Vec<Signal> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(s, _)| s.clone())
            .collect()
    }
    fn threads(&self) -> Vec<ThreadId> {
        self.seen.lock().unwrap().iter().map(|(_, t)| *t).collect()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        // Unblocks a listener still waiting when a test fails.
        self.release.take();
    }
}

/// Each signal's `old_state` is the previous one's `new_state`, the first starts at
/// `closed`, the last is the breaker's real state (SM-19).
fn assert_chain(signals: &[Signal], real: State) {
    assert!(!signals.is_empty());
    assert_eq!(signals[0].old_state, State::Closed, "{:?}", signals[0]);
    for pair in signals.windows(2) {
        assert_eq!(
            pair[0].new_state, pair[1].old_state,
            "chain broken: {pair:?}"
        );
    }
    assert_eq!(signals.last().unwrap().new_state, real);
}

fn flapping(name: &str) -> fluxgate::Builder<CircuitBreaker> {
    CircuitBreaker::builder(name)
        .tripper(FailureStreak::new(1))
        .retry(retries::Always)
        .permit(permits::All)
}

// R-2, L-4, SM-16: a listener blocks on thread A's transition while thread B's call
// transitions twice. B returns at once; and A, once its own listener returns, does not
// stay to deliver B's signals: A returns while the listener is blocked on B's first
// signal, which a background thread delivers.
#[test]
fn r2_no_call_waits_for_listeners_of_transitions_it_did_not_cause() {
    let (listener, gate) = gate(2);
    let cb = flapping("hostage").listener(listener).build().unwrap();
    let (a_done_tx, a_done) = mpsc::channel();
    let a = {
        let cb = cb.clone();
        thread::spawn(move || {
            let r = fail(&cb); // closed → open; the listener blocks on it
            a_done_tx.send(()).unwrap();
            (r.is_err(), thread::current().id())
        })
    };
    gate.entered(0);
    // SM-16, L-4: the new state is visible while the listener runs.
    assert_eq!(cb.info().state, State::Open);
    // B's call: open → half_open (retry Always), the call succeeds: half_open → closed.
    // It returns although the listener is still blocked on A's signal.
    assert!(ok(&cb).is_ok());
    assert_eq!(cb.state(), State::Closed);
    assert!(pending(&cb) >= 2, "B's signals wait in line");
    gate.release();
    // The listener now blocks on B's first signal ...
    gate.entered(1);
    // ... and A has returned all the same: it delivered its own signal, nothing else.
    let a_returned = a_done.recv_timeout(STUCK).is_ok();
    gate.release();
    assert!(
        a_returned,
        "A was held to deliver the signal of B's transition"
    );
    let (a_failed, a_thread) = a.join().unwrap();
    assert!(a_failed);
    settle(&cb);
    let signals = gate.signals();
    let pairs: Vec<_> = signals.iter().map(|s| (s.old_state, s.new_state)).collect();
    assert_eq!(
        pairs,
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Closed)
        ]
    );
    let threads = gate.threads();
    assert_eq!(threads[0], a_thread, "A delivers its own signal");
    let main = thread::current().id();
    assert!(
        threads[1..].iter().all(|t| *t != a_thread && *t != main),
        "B's signals are delivered by the background thread"
    );
    assert_eq!(coalesced(&cb), 0);
}

// R-2, L-4, SM-19: a storm of 1 000 000 manual commands while a listener is blocked. The
// queue stays bounded (the coalesced counter says how much was merged), one warning is
// logged, and once released every listener ends at the real state through one
// continuous chain.
#[test]
fn r2_command_storm_with_blocked_listener_stays_bounded() {
    const COMMANDS: usize = 1_000_000;
    let (listener, gate) = gate(2);
    let rec = Recorder::default();
    let cb = CircuitBreaker::builder("storm")
        .listener(listener)
        .listener(rec.listener())
        .build()
        .unwrap();
    let (a_done_tx, a_done) = mpsc::channel();
    let a = {
        let cb = cb.clone();
        thread::spawn(move || {
            cb.force_open(); // the listener blocks on it
            a_done_tx.send(()).unwrap();
        })
    };
    gate.entered(0);
    let captured = LogText::default();
    let subscriber = captured.subscriber();
    let mut max_pending = 0;
    tracing::subscriber::with_default(subscriber, || {
        for i in 0..COMMANDS {
            match i % 4 {
                0 => cb.reset(),
                1 => cb.disable(),
                2 => cb.metrics_only(),
                _ => cb.force_open(),
            }
            if i % 10_000 == 0 {
                max_pending = max_pending.max(pending(&cb));
            }
        }
    });
    let queued = pending(&cb);
    max_pending = max_pending.max(queued);
    assert!(
        max_pending <= 2_000,
        "the queue grew to {max_pending} signals"
    );
    let merged = coalesced(&cb);
    assert!(
        merged as usize >= COMMANDS - 2_000,
        "only {merged} signals coalesced"
    );
    let log = captured.text();
    assert_eq!(
        log.matches("listeners fall behind").count(),
        1,
        "one rate-limited warning: {log}"
    );
    assert!(log.contains("storm"), "{log}");
    // The listener now blocks on the first queued signal, on the background thread; the
    // thread that made the first transition has returned.
    gate.release();
    gate.entered(1);
    let a_returned = a_done.recv_timeout(STUCK).is_ok();
    gate.release();
    assert!(a_returned, "the first caller was held to deliver the storm");
    a.join().unwrap();
    settle(&cb);
    let real = cb.state();
    assert_eq!(real, State::ForcedOpen);
    for signals in [gate.signals(), rec.signals()] {
        assert_chain(&signals, real);
        // Every signal made is either delivered or merged into one that is.
        assert_eq!(signals.len() as u64 + coalesced(&cb), 1 + COMMANDS as u64);
        assert!(signals.len() <= 2_001, "{} delivered", signals.len());
    }
}

// SM-19, R-2: transitions race on four threads while a listener is slow; each listener
// sees one continuous chain ending at `info().state`, and no racing thread is held to
// deliver another's signals.
#[test]
fn sm19_racing_transitions_with_slow_listener_form_one_chain() {
    const THREADS: usize = 4;
    let (listener, gate) = gate(2);
    let rec = Recorder::default();
    let cb = flapping("race")
        .tripper(FailureStreak::new(2))
        .listener(listener)
        .listener(rec.listener())
        .build()
        .unwrap();
    let barrier = Arc::new(Barrier::new(THREADS));
    let (done_tx, done) = mpsc::channel();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (cb, barrier, done_tx) = (cb.clone(), barrier.clone(), done_tx.clone());
            thread::spawn(move || {
                barrier.wait();
                for i in 0..20_000usize {
                    match (t, i % 5) {
                        (0, 0) => cb.force_open(),
                        (1, 0) => cb.reset(),
                        (2, 0) => cb.metrics_only(),
                        _ if i % 2 == 0 => {
                            let _ = fail(&cb);
                        }
                        _ => {
                            let _ = ok(&cb);
                        }
                    }
                }
                done_tx.send(t).unwrap();
            })
        })
        .collect();
    // One thread's first transition blocks in the listener; the others finish meanwhile.
    gate.entered(0);
    for _ in 0..THREADS - 1 {
        done.recv_timeout(STUCK)
            .expect("a racing thread waited for another's listener");
    }
    gate.release();
    // The listener blocks on the next signal, on the background thread; the last racing
    // thread finishes anyway.
    gate.entered(1);
    let last_returned = done.recv_timeout(STUCK).is_ok();
    gate.release();
    assert!(
        last_returned,
        "a racing thread was held to deliver others' signals"
    );
    for h in handles {
        h.join().unwrap();
    }
    settle(&cb);
    let real = cb.info().state;
    for signals in [gate.signals(), rec.signals()] {
        assert!(signals.len() > 2, "{} signals", signals.len());
        assert_chain(&signals, real);
        for pair in signals.windows(2) {
            assert!(pair[0].timestamp <= pair[1].timestamp);
        }
    }
}

// SM-18, R-2: a listener that calls back into its breaker (reset / force_open) works on
// the background delivery thread too: its commands do not wait for themselves, their
// signals follow in order, and the callers are never held.
#[test]
fn sm18_reentrant_listener_on_background_delivery_does_not_deadlock() {
    let (listener, gate) = gate(1);
    let cell: Arc<Mutex<Option<CircuitBreaker>>> = Arc::new(Mutex::new(None));
    let c2 = cell.clone();
    let reentries = Arc::new(AtomicUsize::new(0));
    let r2 = reentries.clone();
    let rec = Recorder::default();
    let cb = flapping("reentrant")
        .listener(listener)
        .listener(move |s: &Signal| {
            let cb = c2.lock().unwrap().clone().unwrap();
            assert!(cb.info().changed_at >= s.timestamp, "SM-16");
            match s.new_state {
                State::ForcedOpen => {
                    r2.fetch_add(1, Ordering::SeqCst);
                    cb.reset();
                }
                State::Disabled => {
                    r2.fetch_add(1, Ordering::SeqCst);
                    cb.force_open();
                }
                _ => {}
            }
        })
        .listener(rec.listener())
        .build()
        .unwrap();
    *cell.lock().unwrap() = Some(cb.clone());
    let (a_done_tx, a_done) = mpsc::channel();
    let a = {
        let cb = cb.clone();
        thread::spawn(move || {
            cb.metrics_only(); // the gate blocks on it
            a_done_tx.send(()).unwrap();
            thread::current().id()
        })
    };
    gate.entered(0);
    // Queued behind A's signal: metrics_only → disabled; its listener re-enters with
    // force_open, whose listener re-enters with reset.
    cb.disable();
    assert_eq!(cb.state(), State::Disabled);
    gate.release();
    a_done
        .recv_timeout(STUCK)
        .expect("A was held (or a re-entrant command deadlocked)");
    let a_thread = a.join().unwrap();
    settle(&cb);
    assert_eq!(reentries.load(Ordering::SeqCst), 2);
    assert_eq!(cb.state(), State::Closed);
    assert_eq!(
        rec.pairs(),
        [
            (State::Closed, State::MetricsOnly),
            (State::MetricsOnly, State::Disabled),
            (State::Disabled, State::ForcedOpen),
            (State::ForcedOpen, State::Closed)
        ]
    );
    let threads = gate.threads();
    let main = thread::current().id();
    assert_eq!(threads[0], a_thread);
    assert!(
        threads[1..].iter().all(|t| *t != a_thread && *t != main),
        "the backlog and its re-entrant signals go to the background thread"
    );

    // Without a backlog, a re-entrant command's signal is delivered by the thread whose
    // listener made it, before the command that started it returns (as before).
    cb.disable();
    assert_eq!(cb.state(), State::Closed);
    let tail: Vec<_> = rec.pairs().split_off(4);
    assert_eq!(
        tail,
        [
            (State::Closed, State::Disabled),
            (State::Disabled, State::ForcedOpen),
            (State::ForcedOpen, State::Closed)
        ]
    );
    assert!(gate.threads()[4..].iter().all(|t| *t == main));

    // And under racing threads with the re-entrant listener: nothing deadlocks.
    let (done_tx, done) = mpsc::channel();
    for t in 0..4 {
        let (cb, done_tx) = (cb.clone(), done_tx.clone());
        thread::spawn(move || {
            for i in 0..2_000 {
                match (t + i) % 3 {
                    0 => cb.disable(),
                    1 => cb.force_open(),
                    _ => {
                        let _ = fail(&cb);
                    }
                }
            }
            done_tx.send(()).unwrap();
        });
    }
    for _ in 0..4 {
        done.recv_timeout(Duration::from_secs(120))
            .expect("threads finished (no deadlock)");
    }
    settle(&cb);
    assert_chain(&rec.signals(), cb.state());
}

// R-2, L-3, L-4: a flood of signals at an async listener that never finishes keeps the
// number of its pending futures bounded, counts what is coalesced, and a second async
// listener still sees one continuous chain ending at the real state. Without a runtime
// (the built-in executor thread) ...
#[test]
fn r2_async_listener_flood_keeps_pending_futures_bounded() {
    let flood = AsyncFlood::new();
    flood.run();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !flood.caught_up() {
        assert!(
            Instant::now() < deadline,
            "the async listener never caught up"
        );
        thread::yield_now();
    }
    flood.check();
}

// ... and on a tokio runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_async_listener_flood_on_tokio_keeps_pending_futures_bounded() {
    let flood = AsyncFlood::new();
    flood.run();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !flood.caught_up() {
        assert!(
            Instant::now() < deadline,
            "the async listener never caught up"
        );
        tokio::task::yield_now().await;
    }
    flood.check();
}

struct AsyncFlood {
    cb: AsyncCircuitBreaker,
    started: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Signal>>>,
}

impl AsyncFlood {
    const COMMANDS: usize = 200_000;

    fn new() -> AsyncFlood {
        let started = Arc::new(AtomicUsize::new(0));
        let s2 = started.clone();
        let seen = Arc::new(Mutex::new(Vec::<Signal>::new()));
        let seen2 = seen.clone();
        let cb = AsyncCircuitBreaker::builder("async_flood")
            .async_listener(move |_: Signal| {
                s2.fetch_add(1, Ordering::SeqCst);
                std::future::pending::<()>()
            })
            .async_listener(move |s: Signal| {
                seen2.lock().unwrap().push(s);
                async {}
            })
            .build()
            .unwrap();
        AsyncFlood { cb, started, seen }
    }

    fn run(&self) {
        for i in 0..Self::COMMANDS {
            if i % 2 == 0 {
                self.cb.force_open();
            } else {
                self.cb.reset();
            }
        }
        // The flood never disables, so a signal into `disabled` can only be the last.
        self.cb.disable();
        assert_eq!(self.cb.state(), State::Disabled);
    }

    /// The finishing listener has seen the last signal.
    fn caught_up(&self) -> bool {
        let real = self.cb.state();
        self.seen
            .lock()
            .unwrap()
            .last()
            .is_some_and(|s| s.new_state == real)
    }

    fn check(&self) {
        let pending_futures = self.started.load(Ordering::SeqCst);
        assert!(
            pending_futures <= 64,
            "{pending_futures} never-finishing futures pending"
        );
        let merged = self.cb.info().coalesced_signals;
        assert!(
            merged as usize >= Self::COMMANDS - 64 - 2_048,
            "only {merged} signals coalesced"
        );
        let signals = self.seen.lock().unwrap().clone();
        assert_chain(&signals, self.cb.state());
    }
}

// L-1, docs/listeners/index.md ("The signal"): a signal's `timestamp` is the wall-clock
// time of the transition, *the same as* the breaker's `info().changed_at` (not merely no
// later than it). Without a backlog the command's own thread runs the listener before the
// command returns, so after each command the last recorded signal is that transition's.
#[test]
fn l1_signal_timestamp_equals_info_changed_at_after_each_command() {
    let rec = Recorder::default();
    let cb = CircuitBreaker::builder("stamped")
        .listener(rec.listener())
        .build()
        .unwrap();
    type Command = (&'static str, fn(&CircuitBreaker), State);
    let commands: [Command; 2] = [
        ("force_open", CircuitBreaker::force_open, State::ForcedOpen),
        ("reset", CircuitBreaker::reset, State::Closed),
    ];
    for round in 1..=3 {
        for (name, command, expected) in commands {
            command(&cb);
            let info = cb.info();
            let last = rec.signals().pop().expect("a signal per command");
            assert_eq!(
                (info.state, last.new_state),
                (expected, expected),
                "round {round}, {name}"
            );
            assert_eq!(
                last.timestamp, info.changed_at,
                "L-1: round {round}, {name}: the signal's timestamp is info().changed_at"
            );
        }
    }
    assert_eq!(rec.signals().len(), 6);
    assert_eq!(pending(&cb), 0);
}

// R-2, docs/listeners/index.md ("When listeners fall behind"): each breaker queues at most
// 1024 signals. A listener blocks on a holder thread's force_open (that signal is being
// delivered, so it counts in `pending_signals`); 5 000 alternating reset / force_open from
// this thread never make more than 1024 + 1 pending. Once released, the merges are
// counted and the listener ends at the breaker's real state.
#[test]
fn r2_signal_queue_holds_at_most_1024_plus_the_one_being_delivered() {
    const QUEUE_CAPACITY: usize = 1024;
    const COMMANDS: usize = 5_000;
    let (listener, gate) = gate(1);
    let cb = CircuitBreaker::builder("bounded_queue")
        .listener(listener)
        .build()
        .unwrap();
    let holder = {
        let cb = cb.clone();
        thread::spawn(move || cb.force_open()) // the listener blocks on it
    };
    gate.entered(0);
    let mut max_pending = pending(&cb);
    for i in 0..COMMANDS {
        if i % 2 == 0 {
            cb.reset();
        } else {
            cb.force_open();
        }
        max_pending = max_pending.max(pending(&cb));
    }
    assert!(
        max_pending <= QUEUE_CAPACITY + 1,
        "R-2: {max_pending} signals pending, more than 1024 queued + 1 being delivered"
    );
    // The storm outgrew the queue, so the bound was reached, not just respected.
    assert_eq!(max_pending, QUEUE_CAPACITY + 1);
    gate.release();
    holder.join().unwrap();
    settle(&cb);
    let info = cb.info();
    assert!(info.coalesced_signals > 0, "R-2: merges are counted");
    let seen = gate.signals();
    assert_eq!(
        seen.len() as u64 + info.coalesced_signals,
        1 + COMMANDS as u64,
        "every signal is delivered or merged into one that is"
    );
    assert_eq!(info.state, State::ForcedOpen);
    assert_eq!(
        seen.last().unwrap().new_state,
        info.state,
        "the listener ends at the breaker's real state"
    );
}
