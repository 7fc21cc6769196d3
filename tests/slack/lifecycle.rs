//! One Slack listener for both breaker kinds, in every runtime setting, and its lifecycle:
//! retired circuits (`on_detach`), a dropped listener, a Slack that never answers (SL-3,
//! SL-4, L-2, L-4, L-5).

#![cfg(feature = "slack")]

use crate::support::slack as slack_support;

use std::io;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, UNIX_EPOCH};

use State::{Closed, HalfOpen, Open};
use fluxgate::listeners::slack::SlackListener;
use fluxgate::listeners::{AsyncListener, Listener};
use fluxgate::{AsyncCircuitBreaker, CircuitBreaker, Error, Signal, State};
use fluxgate::{permits, retries, trippers};
use slack_support::{DEADLINE, Reply, SlackServer};

const TOKEN: &str = "xoxb-test-secret-token";

fn slack(server: &SlackServer) -> SlackListener {
    SlackListener::builder("C0123456789", TOKEN)
        .api_base(server.api_base())
        .build()
        .unwrap()
}

fn sig(name: &str, old: State, new: State) -> Signal {
    Signal::new(
        name,
        old,
        new,
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    )
}

fn fail() -> Result<(), io::Error> {
    Err(io::Error::other("boom"))
}

fn succeed() -> Result<(), io::Error> {
    Ok(())
}

/// Trips on the first failure; a call to an open breaker probes at once.
fn sync_breaker(name: &str, listener: impl Listener) -> CircuitBreaker {
    CircuitBreaker::builder(name)
        .tripper(trippers::FailureStreak::new(1))
        .retry(retries::Always)
        .permit(permits::All)
        .listener(listener)
        .build()
        .unwrap()
}

fn async_breaker(name: &str, listener: impl AsyncListener) -> AsyncCircuitBreaker {
    AsyncCircuitBreaker::builder(name)
        .tripper(trippers::FailureStreak::new(1))
        .retry(retries::Always)
        .permit(permits::All)
        .async_listener(listener)
        .build()
        .unwrap()
}

/// (circuit, transition, thread_ts, broadcast) of every request.
fn posts(server: &SlackServer) -> Vec<(String, String, Option<String>, bool)> {
    server
        .requests()
        .iter()
        .map(|r| {
            (
                r.field("Circuit Breaker"),
                r.field("State Transition"),
                r.thread_ts().map(str::to_owned),
                r.broadcast(),
            )
        })
        .collect()
}

/// Runs `f` on a thread of its own and fails the test if it does not return in time.
fn returns_promptly<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("{what} waited for Slack"))
}

// L-5: clones of one listener serve a sync breaker (`listener`) and an async breaker
// (`async_listener`), and an `Arc` of it works too; one queue, one worker, one thread map.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l5_one_listener_serves_sync_and_async_breakers() {
    let server = SlackServer::start();
    let slack = slack(&server);
    let shared = Arc::new(slack.clone());
    let sync_cb = sync_breaker("sync_db", slack.clone());
    let async_cb = async_breaker("async_db", slack.clone());
    let arc_cb = sync_breaker("arc_db", Arc::clone(&shared));

    assert!(sync_cb.call(fail).is_err());
    assert!(async_cb.call(|| async { fail() }).await.is_err());
    assert!(arc_cb.call(fail).is_err());
    assert!(slack.flush_async(DEADLINE).await);
    assert_eq!(slack.open_threads(), 3);
    assert_eq!(
        shared.open_threads(),
        3,
        "the Arc'd clone sees the same threads"
    );

    assert!(sync_cb.call(succeed).is_ok());
    assert!(async_cb.call(|| async { succeed() }).await.is_ok());
    assert!(arc_cb.call(succeed).is_ok());
    assert!(slack.flush_async(DEADLINE).await);
    assert_eq!(slack.open_threads(), 0);

    let r = server.requests();
    assert_eq!(r.len(), 9);
    for name in ["sync_db", "async_db", "arc_db"] {
        let of: Vec<_> = r
            .iter()
            .filter(|r| r.field("Circuit Breaker") == name)
            .collect();
        let transitions: Vec<String> = of.iter().map(|r| r.field("State Transition")).collect();
        assert_eq!(
            transitions,
            ["closed → open", "open → half_open", "half_open → closed"],
            "{name}"
        );
        assert_eq!(of[1].thread_ts(), of[0].ts.as_deref(), "{name}");
        assert_eq!(of[2].thread_ts(), of[0].ts.as_deref(), "{name}");
        assert!(of[2].broadcast(), "{name}");
    }
}

// SL-4, L-4: a sync breaker used inside a tokio current_thread runtime (the sync
// `Listener` path, on the runtime's only thread). The trip returns while Slack holds its
// answer, and flush_async lets the worker deliver without this runtime doing anything.
#[test]
fn sl4_sync_path_inside_a_current_thread_runtime() {
    let server = Arc::new(SlackServer::start());
    server.script([Reply::Hold]);
    let in_runtime = Arc::clone(&server);
    let (tripped_tx, tripped) = mpsc::channel();
    let task = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            // Built inside the runtime, used from it through the sync face.
            let slack = slack(&in_runtime);
            let cb = sync_breaker("db", slack.clone());
            let result = cb.call(fail);
            let _ = tripped_tx.send(matches!(result, Err(Error::Inner(_))));
            assert!(cb.call(succeed).is_ok());
            assert_eq!(cb.info().state, Closed);
            // The answer is held until the test thread releases it; this waits without
            // blocking the runtime's only thread.
            slack.flush_async(DEADLINE).await
        })
    });
    assert!(
        tripped
            .recv_timeout(DEADLINE)
            .expect("the call waited for Slack")
    );
    server.wait_holding(1);
    server.release();
    assert!(task.join().unwrap(), "flush_async saw every message out");
    let transitions: Vec<String> = posts(&server).into_iter().map(|p| p.1).collect();
    assert_eq!(
        transitions,
        ["closed → open", "open → half_open", "half_open → closed"]
    );
}

// SL-4: a sync breaker with no runtime anywhere in the program's reach: plain threads only.
#[test]
fn sl4_sync_breaker_without_any_runtime() {
    assert!(tokio::runtime::Handle::try_current().is_err());
    let server = SlackServer::start();
    let slack = slack(&server);
    let cb = sync_breaker("db", slack.clone());
    assert!(cb.call(fail).is_err());
    assert!(cb.call(succeed).is_ok());
    assert!(slack.flush(DEADLINE));
    let p = posts(&server);
    let t = server.requests()[0].ts.clone();
    assert_eq!(p[1].2, t);
    assert_eq!(p[2].2, t);
    assert!(p[2].3);
}

// SL-4, L-4: a Slack that accepts the connection and never answers. The protected calls
// are unaffected, and flush gives up after its timeout (false) instead of hanging.
#[test]
fn sl4_slack_that_never_answers_leaves_callers_unaffected_and_flush_bounded() {
    let server = SlackServer::start();
    server.script([Reply::Hold]); // never released while the test checks
    let slack = slack(&server);
    let cb = Arc::new(sync_breaker("db", slack.clone()));

    let caller = Arc::clone(&cb);
    let outcomes = returns_promptly("the protected calls", move || {
        (0..100)
            .map(|i| caller.call(if i % 2 == 0 { fail } else { succeed }).is_ok())
            .filter(|ok| *ok)
            .count()
    });
    assert_eq!(outcomes, 50, "every call got its own result");
    server.wait_holding(1);

    let timeout = Duration::from_millis(100);
    let started = Instant::now();
    let flushed = returns_promptly("flush", {
        let slack = slack.clone();
        move || slack.flush(timeout)
    });
    assert!(!flushed);
    assert!(started.elapsed() >= timeout);
    assert!(slack.pending() > 0);
    server.release_all(); // let the server's threads go
}

// SL-4: the per-request timeout gives up on a Slack that never answers; the message is
// logged as not delivered, the next one goes out, and flush says everything was handled.
#[test]
fn sl4_request_timeout_gives_up_on_a_hung_slack() {
    let server = SlackServer::start();
    server.script([Reply::Hold]);
    let slack = SlackListener::builder("C0123456789", TOKEN)
        .api_base(server.api_base())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    Listener::on_signal(&slack, &sig("db", Closed, Open)).unwrap();
    Listener::on_signal(&slack, &sig("db", Open, HalfOpen)).unwrap();
    server.wait_for_requests(2); // the second one was only sent after the first timed out
    assert!(slack.flush(DEADLINE));
    let p = posts(&server);
    assert_eq!(p[1].2, None, "the trip was never delivered: no thread");
    assert_eq!(slack.open_threads(), 0);
    server.release_all();
}

// SL-4, L-2: a listener dropped while messages are pending: the drop returns at once, and
// the worker still delivers what was queued, in order, before it stops.
#[test]
fn sl4_listener_dropped_while_messages_are_pending() {
    let server = SlackServer::start();
    server.script([Reply::Hold]);
    let slack = slack(&server);
    let cb = sync_breaker("db", slack.clone());
    assert!(cb.call(fail).is_err());
    assert!(cb.call(succeed).is_ok());
    server.wait_holding(1);
    assert_eq!(slack.pending(), 3);

    returns_promptly("dropping the listener", move || {
        drop(cb);
        drop(slack);
    });
    server.release();
    let r = server.wait_for_requests(3);
    let transitions: Vec<String> = r.iter().map(|r| r.field("State Transition")).collect();
    assert_eq!(
        transitions,
        ["closed → open", "open → half_open", "half_open → closed"]
    );
    assert_eq!(r[2].thread_ts(), r[0].ts.as_deref());
}

// SL-3, on_detach: a retired circuit's thread is forgotten; a later trip of a circuit with
// the same name starts a fresh thread instead of replying in the old incident.
#[test]
fn sl3_on_detach_forgets_the_thread_and_a_new_trip_starts_a_fresh_one() {
    let server = SlackServer::start();
    let slack = slack(&server);
    let first = sync_breaker("tenant-7", slack.clone());
    assert!(first.call(fail).is_err());
    assert!(slack.flush(DEADLINE));
    assert_eq!(slack.open_threads(), 1);

    // The registry retires the breaker while it is open.
    Listener::on_detach(&slack, "tenant-7");
    drop(first);
    assert_eq!(slack.open_threads(), 0);

    let second = sync_breaker("tenant-7", slack.clone());
    assert!(second.call(fail).is_err());
    assert!(second.call(succeed).is_ok());
    assert!(slack.flush(DEADLINE));
    let r = server.requests();
    let (old, new) = (r[0].ts.clone(), r[1].ts.clone());
    assert!(new.is_some() && new != old);
    assert_eq!(
        posts(&server)
            .into_iter()
            .map(|p| (p.1, p.2))
            .collect::<Vec<_>>(),
        [
            ("closed → open".to_owned(), None),
            ("closed → open".to_owned(), None),
            ("open → half_open".to_owned(), new.clone()),
            ("half_open → closed".to_owned(), new),
        ]
    );
    assert_eq!(slack.open_threads(), 0);
}

// SL-3, SL-4, on_detach: detaching while the circuit's messages are still queued keeps
// queue order: the queued messages still reply in their thread, and only a signal queued
// after the detach starts a fresh one. The async face's on_detach does the same.
#[test]
fn sl3_on_detach_applies_after_the_messages_queued_before_it() {
    let server = SlackServer::start();
    server.script([Reply::Hold]);
    let slack = slack(&server);
    Listener::on_signal(&slack, &sig("db", Closed, Open)).unwrap();
    server.wait_holding(1);
    Listener::on_signal(&slack, &sig("db", Open, HalfOpen)).unwrap();
    AsyncListener::on_detach(&slack, "db");
    AsyncListener::on_detach(&slack, "db"); // idempotent
    drop(AsyncListener::on_signal(&slack, sig("db", Closed, Open)));
    Listener::on_signal(&slack, &sig("db", Open, HalfOpen)).unwrap();
    server.release();
    assert!(slack.flush(DEADLINE));

    let r = server.requests();
    let (t1, t2) = (r[0].ts.clone(), r[2].ts.clone());
    assert!(t1.is_some() && t2.is_some() && t1 != t2);
    let placements: Vec<Option<String>> = posts(&server).into_iter().map(|p| p.2).collect();
    assert_eq!(placements, [None, t1, None, t2]);
    assert_eq!(slack.open_threads(), 1);
}

// on_detach keeps the per-circuit state bounded: many short-lived circuits that tripped
// and were retired leave nothing behind; detaching unknown circuits is a no-op.
#[test]
fn on_detach_keeps_per_circuit_state_bounded() {
    let server = SlackServer::start();
    let slack = slack(&server);
    for i in 0..50 {
        Listener::on_signal(&slack, &sig(&format!("tenant-{i}"), Closed, Open)).unwrap();
    }
    assert!(slack.flush(DEADLINE));
    assert_eq!(slack.open_threads(), 50);
    for i in 0..50 {
        Listener::on_detach(&slack, &format!("tenant-{i}"));
        Listener::on_detach(&slack, &format!("never-seen-{i}"));
    }
    assert_eq!(slack.open_threads(), 0);
    assert!(slack.flush(DEADLINE));
    assert_eq!(server.requests().len(), 50, "detaching posts nothing");
}

// L-4: on_signal returns at once even from many threads while Slack holds every answer;
// the queue bound (not the network) decides what is kept.
#[test]
fn l4_on_signal_never_waits_while_slack_holds_everything() {
    let server = SlackServer::start();
    server.script(std::iter::repeat_n(Reply::Hold, 4));
    let slack = SlackListener::builder("C0123456789", TOKEN)
        .api_base(server.api_base())
        .queue_capacity(8)
        .build()
        .unwrap();
    let feeder = slack.clone();
    returns_promptly("on_signal", move || {
        std::thread::scope(|scope| {
            for t in 0..4 {
                let slack = feeder.clone();
                scope.spawn(move || {
                    for i in 0..25 {
                        let name = format!("c{t}-{i}");
                        Listener::on_signal(&slack, &sig(&name, Closed, Open)).unwrap();
                    }
                });
            }
        });
    });
    // One in flight at most, eight queued: the rest were dropped, counted, not waited on.
    assert!(slack.pending() <= 9);
    assert_eq!(slack.pending() as u64 + slack.dropped(), 100);
    server.release_all();
    assert!(slack.flush(DEADLINE));
}
