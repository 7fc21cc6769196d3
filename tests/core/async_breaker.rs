//! The async face: lazy futures, cancellation safety (SM-20), async listeners (L-3, L-4),
//! and concurrency with real tokio tasks.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::support::*;
use fluxgate::clock::ManualClock;
use fluxgate::listeners::{AsyncListener, ListenerError, ListenerFuture};
use fluxgate::retries::Always;
use fluxgate::trippers::{Closed, FailureStreak, HalfOpened, MinRequests, SlowRate};
use fluxgate::windows::CountWindow;
use fluxgate::{AsyncCircuitBreaker, Error, Signal, State, permits};
use futures_like::poll_once;

/// A minimal "poll once" helper so tests can start a future and then drop it mid-flight.
mod futures_like {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    pub(crate) fn poll_once<F: Future>(fut: &mut Pin<Box<F>>) -> Poll<F::Output> {
        let mut cx = Context::from_waker(Waker::noop());
        fut.as_mut().poll(&mut cx)
    }
}

fn half_open_breaker(max: usize) -> AsyncCircuitBreaker {
    let cb = AsyncCircuitBreaker::builder("probe")
        .tripper((Closed & FailureStreak::new(1)) | (HalfOpened & FailureStreak::new(1)))
        .retry(Always)
        .permit(permits::All)
        .max_half_open_calls(max)
        .build()
        .unwrap();
    // open it, then let the next admission move it to half_open
    let t = cb.admit().unwrap();
    t.failure();
    assert_eq!(cb.state(), State::Open);
    drop(cb.admit().unwrap());
    assert_eq!(cb.state(), State::HalfOpen);
    cb
}

#[tokio::test]
async fn rejected_call_never_builds_its_future() {
    let cb = AsyncCircuitBreaker::builder("lazy").build().unwrap();
    cb.force_open();
    let built = AtomicBool::new(false);
    let r = cb
        .call(|| {
            built.store(true, Ordering::Relaxed);
            async { Ok::<_, io::Error>(()) }
        })
        .await;
    assert!(matches!(r, Err(Error::Rejected(_))));
    assert!(!built.load(Ordering::Relaxed));
}

#[tokio::test]
async fn async_calls_follow_the_same_rules() {
    let clock = ManualClock::new();
    let cb = AsyncCircuitBreaker::builder("rules")
        .tripper(MinRequests::new(2) & SlowRate::new(1.0, Duration::from_secs(1)))
        .clock(clock.clone())
        .build()
        .unwrap();
    for _ in 0..2 {
        let c = clock.clone();
        cb.call(|| async move {
            c.advance(Duration::from_secs(2)); // a slow call on the manual clock
            Ok::<_, io::Error>(())
        })
        .await
        .unwrap();
    }
    assert_eq!(cb.state(), State::Open);
    let fb = cb
        .call_with_fallback(
            || async { Ok::<u8, io::Error>(1) },
            |e| async move {
                assert!(e.is_rejected());
                Ok::<u8, io::Error>(0)
            },
        )
        .await;
    assert_eq!(fb.unwrap(), 0);
    let err = cb
        .call(|| async { Ok::<(), io::Error>(()) })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "circuit breaker 'rules' is open");
    cb.reset();
    let s = cb
        .call_classified(|| async { Ok::<u16, io::Error>(503) }, |s| *s >= 500)
        .await
        .unwrap();
    assert_eq!(s, 503);
    assert_eq!(cb.info().metric.failure_count, 1);
}

#[tokio::test]
async fn sm20_dropped_futures_release_slots_and_record_nothing() {
    let cb = half_open_breaker(2);
    let before = cb.info();
    // 1. dropped before its first poll: never admitted
    let never_polled = cb.call(|| async { Ok::<_, io::Error>(()) });
    drop(never_polled);
    assert_eq!(cb.half_open_in_flight(), 0);
    // 2. dropped while awaiting: admitted, holds a slot, then cancelled
    let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
    let rx = Arc::new(tokio::sync::Mutex::new(Some(rx)));
    let r2 = rx.clone();
    let mut a = Box::pin(cb.call(move || async move {
        let rx = r2.lock().await.take().unwrap();
        let _ = rx.await;
        Err::<(), _>(boom())
    }));
    let mut b = Box::pin(cb.call(std::future::pending::<Result<(), io::Error>>));
    assert!(poll_once(&mut a).is_pending());
    assert!(poll_once(&mut b).is_pending());
    assert_eq!(cb.half_open_in_flight(), 2);
    let third = cb.call(|| async { Ok::<_, io::Error>(()) }).await;
    assert_eq!(
        third.unwrap_err().rejection().unwrap().state(),
        State::HalfOpen
    );
    drop(a);
    assert_eq!(cb.half_open_in_flight(), 1);
    drop(b);
    assert_eq!(cb.half_open_in_flight(), 0);
    // 3. cancelled by a timeout (tokio paused time is not needed: the future never ends)
    let t = tokio::time::timeout(
        Duration::from_millis(1),
        cb.call(std::future::pending::<Result<(), io::Error>>),
    )
    .await;
    assert!(t.is_err());
    assert_eq!(cb.half_open_in_flight(), 0);
    // 4. a spawned task aborted mid-flight
    let (started_tx, started_rx) = tokio::sync::oneshot::channel();
    let cb2 = cb.clone();
    let task = tokio::spawn(async move {
        cb2.call(|| async move {
            let _ = started_tx.send(());
            std::future::pending::<Result<(), io::Error>>().await
        })
        .await
    });
    started_rx.await.unwrap();
    assert_eq!(cb.half_open_in_flight(), 1);
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    assert_eq!(cb.half_open_in_flight(), 0);
    // nothing recorded, no transition
    let after = cb.info();
    assert_eq!(after.state, State::HalfOpen);
    assert_eq!(after.metric, before.metric);
    assert_eq!(after.changed_at, before.changed_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l3_l4_never_finishing_async_listener_does_not_hold_calls() {
    let (started_tx, started_rx) = mpsc::channel::<Signal>();
    let started_tx = Mutex::new(started_tx);
    let cb = AsyncCircuitBreaker::builder("stuck")
        .tripper(FailureStreak::new(1))
        .async_listener(move |s: Signal| {
            let _ = started_tx.lock().unwrap().send(s);
            std::future::pending::<()>()
        })
        .build()
        .unwrap();
    // the triggering call returns although the listener never completes
    let r = cb.call(|| async { Err::<(), _>(boom()) }).await;
    assert!(matches!(r, Err(Error::Inner(_))));
    assert_eq!(cb.info().state, State::Open);
    for _ in 0..1000 {
        assert!(cb.call(|| async { Ok::<_, io::Error>(()) }).await.is_err());
    }
    cb.reset();
    for _ in 0..1000 {
        cb.call(|| async { Ok::<_, io::Error>(()) }).await.unwrap();
    }
    let first = started_rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(
        (first.old_state, first.new_state),
        (State::Closed, State::Open)
    );
    let second = started_rx.recv_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(
        (second.old_state, second.new_state),
        (State::Open, State::Closed)
    );
}

struct FailingAsync;
impl AsyncListener for FailingAsync {
    fn on_signal(&self, _: Signal) -> ListenerFuture {
        Box::pin(async { Err::<(), ListenerError>("async backend down".into()) })
    }
}

struct PanickingAsync;
impl AsyncListener for PanickingAsync {
    fn on_signal(&self, _: Signal) -> ListenerFuture {
        Box::pin(async { panic!("async listener bug") })
    }
}

#[tokio::test]
async fn sync_and_async_listeners_together_and_failures_are_contained() {
    let rec = Recorder::default();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let cb = AsyncCircuitBreaker::builder("mixed")
        .tripper(FailureStreak::new(1))
        .listener(rec.listener())
        .async_listener(FailingAsync)
        .async_listener(PanickingAsync)
        .async_listener(move |s: Signal| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((s.old_state, s.new_state));
            }
        })
        .build()
        .unwrap();
    let _ = cb.call(|| async { Err::<(), _>(boom()) }).await;
    cb.reset();
    assert_eq!(
        rec.pairs(),
        [(State::Closed, State::Open), (State::Open, State::Closed)]
    );
    assert_eq!(rx.recv().await, Some((State::Closed, State::Open)));
    assert_eq!(rx.recv().await, Some((State::Open, State::Closed)));
    assert!(cb.call(|| async { Ok::<_, io::Error>(()) }).await.is_ok());
}

#[test]
fn async_listeners_run_without_any_runtime() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let cb = AsyncCircuitBreaker::builder("no-runtime")
        .async_listener(move |s: Signal| {
            let tx = tx.lock().unwrap().clone();
            async move {
                // yields once, so the built-in executor must re-poll on wake
                YieldOnce(false).await;
                let _ = tx.send(s.new_state);
            }
        })
        .build()
        .unwrap();
    std::thread::spawn(move || {
        cb.force_open();
        cb.disable();
    })
    .join()
    .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(60)),
        Ok(State::ForcedOpen)
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(60)),
        Ok(State::Disabled)
    );
}

struct YieldOnce(bool);
impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
}

/// 16 tasks of `calls` calls each; every `fail_every`-th call fails. With `commands`,
/// task 0 calls `metrics_only()` every 1000 calls.
async fn run_tasks(cb: &AsyncCircuitBreaker, calls: u32, fail_every: u32, commands: bool) {
    let tasks: Vec<_> = (0..16)
        .map(|t| {
            let cb = cb.clone();
            tokio::spawn(async move {
                for i in 0..calls {
                    if commands && t == 0 && i % 1000 == 0 {
                        cb.metrics_only();
                    }
                    let _ = cb
                        .call(|| async move {
                            tokio::task::yield_now().await;
                            if i % fail_every == 0 {
                                Err(boom())
                            } else {
                                Ok(())
                            }
                        })
                        .await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_tasks_lose_no_record_and_keep_signal_order() {
    let rec = Recorder::default();
    let cb = AsyncCircuitBreaker::builder("tasks")
        .window(CountWindow::new(1_000_000))
        .listener(rec.listener())
        .build()
        .unwrap();
    // 16 tasks × 10 000 calls, one in three failing, while one task keeps moving the
    // breaker to metrics_only (closed → metrics_only, then metrics_only → metrics_only).
    run_tasks(&cb, 10_000, 3, true).await;
    let signals = rec.signals();
    assert_eq!(signals.len(), 10);
    for pair in signals.windows(2) {
        assert_eq!(pair[0].new_state, pair[1].old_state);
    }
    // a fresh epoch, then 16 × 5 000 calls, one in two failing: every record counted
    cb.metrics_only();
    run_tasks(&cb, 5_000, 2, false).await;
    let m = cb.info().metric;
    assert_eq!(m.total_count, 80_000);
    assert_eq!(m.failure_count, 40_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn half_open_limit_holds_across_tasks() {
    let cb = AsyncCircuitBreaker::builder("limit")
        .tripper((Closed & FailureStreak::new(1)) | HalfOpened)
        .retry(Always)
        .permit(permits::All)
        .max_half_open_calls(3)
        .build()
        .unwrap();
    let _ = cb.call(|| async { Err::<(), _>(boom()) }).await;
    let in_flight = Arc::new(AtomicU32::new(0));
    let max_seen = Arc::new(AtomicU32::new(0));
    let ran = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (cb, in_flight, max_seen, ran) =
                (cb.clone(), in_flight.clone(), max_seen.clone(), ran.clone());
            tokio::spawn(async move {
                for _ in 0..500 {
                    let (f, m, r) = (in_flight.clone(), max_seen.clone(), ran.clone());
                    let _ = cb
                        .call(|| async move {
                            let now = f.fetch_add(1, Ordering::SeqCst) + 1;
                            m.fetch_max(now, Ordering::SeqCst);
                            r.fetch_add(1, Ordering::Relaxed);
                            tokio::task::yield_now().await;
                            f.fetch_sub(1, Ordering::SeqCst);
                            Ok::<_, io::Error>(())
                        })
                        .await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(ran.load(Ordering::Relaxed) > 0);
    assert!(max_seen.load(Ordering::SeqCst) <= 3);
    assert_eq!(cb.half_open_in_flight(), 0);
    assert_eq!(cb.state(), State::HalfOpen);
}

/// Waits (bounded) until `cond` holds; whether it did.
fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

#[test]
fn l3_futures_of_queued_signals_run_on_the_runtime_their_transitions_were_made_in() {
    // Built before any runtime exists; every transition is made on a tokio task, but a
    // slow sync listener makes most signals queue, to be delivered by a delivery thread,
    // which has no runtime. The old spawner then ran their futures on the built-in
    // executor, where a future that uses tokio (a timer, an HTTP client) panics.
    let (started, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let cb = {
        let (started, done) = (started.clone(), done.clone());
        AsyncCircuitBreaker::builder("built_outside")
            .listener(|_: &Signal| std::thread::sleep(Duration::from_millis(2)))
            .async_listener(move |_: Signal| {
                started.fetch_add(1, Ordering::SeqCst);
                let done = done.clone();
                async move {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    done.fetch_add(1, Ordering::SeqCst);
                }
            })
            .build()
            .unwrap()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tasks: Vec<_> = (0..4)
            .map(|t| {
                let cb = cb.clone();
                tokio::spawn(async move {
                    for i in 0..25 {
                        if (i + t) % 2 == 0 {
                            cb.force_open();
                        } else {
                            cb.reset();
                        }
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(cb.flush_signals(Duration::from_secs(20)));
    });
    let all_done = eventually(|| {
        let s = started.load(Ordering::SeqCst);
        s > 0 && done.load(Ordering::SeqCst) == s
    });
    assert!(
        all_done,
        "{} futures started, {} finished",
        started.load(Ordering::SeqCst),
        done.load(Ordering::SeqCst)
    );
    drop(rt);
}

#[test]
fn l3_a_signal_made_after_the_breakers_runtime_shut_down_still_reaches_its_async_listener() {
    // The old spawner kept spawning on the runtime the breaker was built in after it had
    // shut down: the lane's task was dropped unpolled, and the signal waited for a later
    // transition made inside a live runtime, if one ever came.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cb = rt.block_on(async {
        let seen = seen.clone();
        AsyncCircuitBreaker::builder("outlived")
            .async_listener(move |s: Signal| {
                let seen = seen.clone();
                async move { seen.lock().unwrap().push(s.new_state) }
            })
            .build()
            .unwrap()
    });
    rt.block_on(async { cb.disable() });
    assert!(eventually(|| seen
        .lock()
        .unwrap()
        .contains(&State::Disabled)));
    drop(rt);
    cb.metrics_only(); // on this thread: no runtime anywhere now
    assert!(
        eventually(|| seen.lock().unwrap().contains(&State::MetricsOnly)),
        "{:?}",
        seen.lock().unwrap()
    );
}
