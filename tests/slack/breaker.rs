//! The Slack listener driven end to end by real breakers, sync and async (SL-3, SL-4, L-4,
//! L-5).

#![cfg(feature = "slack")]

use crate::support::slack as slack_support;

use std::io;
use std::sync::Arc;
use std::sync::mpsc;

use fluxgate::listeners::slack::SlackListener;
use fluxgate::{AsyncCircuitBreaker, CircuitBreaker, Error, State, permits, retries, trippers};
use slack_support::{DEADLINE, Reply, SlackServer};

const TOKEN: &str = "xoxb-test-secret-token";

fn fail() -> Result<(), io::Error> {
    Err(io::Error::other("boom"))
}

fn succeed() -> Result<(), io::Error> {
    Ok(())
}

fn slack(server: &SlackServer) -> SlackListener {
    SlackListener::builder("C0123456789", TOKEN)
        .api_base(server.api_base())
        .build()
        .unwrap()
}

/// Trips on the first failure; a call to an open breaker probes at once (half_open).
fn breaker(name: &str, slack: &SlackListener) -> CircuitBreaker {
    CircuitBreaker::builder(name)
        .tripper(trippers::FailureStreak::new(1))
        .retry(retries::Always)
        .permit(permits::All)
        .listener(slack.clone())
        .build()
        .unwrap()
}

fn transitions(server: &SlackServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .map(|r| r.field("State Transition"))
        .collect()
}

// SL-4, L-4: the protected call that trips the breaker returns while Slack has not
// answered; the server holds its answer until the test releases it, after the call returned.
#[test]
fn sl4_protected_call_returns_before_slack_answers() {
    let server = SlackServer::start();
    server.script([Reply::Hold]);
    let slack = slack(&server);
    let cb = Arc::new(breaker("payment_api", &slack));

    let (done, returned) = mpsc::channel();
    let caller = Arc::clone(&cb);
    std::thread::spawn(move || {
        let result = caller.call(fail);
        let _ = done.send(matches!(result, Err(Error::Inner(_))));
    });
    let got_own_error = returned
        .recv_timeout(DEADLINE)
        .expect("the call waited for Slack");
    assert!(got_own_error);
    assert_eq!(cb.info().state, State::Open);

    server.wait_holding(1); // the trip message reached Slack, which has not answered yet
    // Further calls are served at full speed while Slack is still holding: recovery.
    assert!(cb.call(succeed).is_ok());
    assert_eq!(cb.info().state, State::Closed);
    assert_eq!(server.holding(), 1);
    assert_eq!(slack.pending(), 3);

    server.release();
    assert!(slack.flush(DEADLINE));
    assert_eq!(
        transitions(&server),
        ["closed → open", "open → half_open", "half_open → closed"]
    );
}

// SL-3 through a breaker: trip → half-open reply → re-trip in the same thread → recovery
// broadcast → next trip starts a new thread; disable and metrics_only end the thread.
#[test]
fn sl3_thread_sequence_driven_by_a_breaker() {
    let server = SlackServer::start();
    let slack = slack(&server);
    let cb = breaker("db", &slack);

    assert!(cb.call(fail).is_err()); // closed → open               (thread 1)
    assert!(cb.call(fail).is_err()); // open → half_open → open     (replies)
    assert!(cb.call(succeed).is_ok()); // open → half_open → closed (reply, broadcast)
    assert!(cb.call(fail).is_err()); // closed → open               (thread 2)
    cb.disable(); //                     open → disabled            (reply, broadcast)
    cb.reset(); //                       disabled → closed          (top level)
    assert!(cb.call(fail).is_err()); // closed → open               (thread 3)
    cb.metrics_only(); //                open → metrics_only        (reply, broadcast)
    assert!(slack.flush(DEADLINE));

    let r = server.requests();
    assert_eq!(
        transitions(&server),
        [
            "closed → open",
            "open → half_open",
            "half_open → open",
            "open → half_open",
            "half_open → closed",
            "closed → open",
            "open → disabled",
            "disabled → closed",
            "closed → open",
            "open → metrics_only",
        ]
    );
    let (t1, t2, t3) = (r[0].ts.clone(), r[5].ts.clone(), r[8].ts.clone());
    assert!(t1 != t2 && t2 != t3 && t1 != t3);
    let placements: Vec<(Option<String>, bool)> = r
        .iter()
        .map(|r| (r.thread_ts().map(str::to_owned), r.broadcast()))
        .collect();
    assert_eq!(
        placements,
        [
            (None, false),
            (t1.clone(), false),
            (t1.clone(), false),
            (t1.clone(), false),
            (t1, true),
            (None, false),
            (t2, true),
            (None, false),
            (None, false),
            (t3, true),
        ]
    );
    assert_eq!(r[0].title(), "*🚨 Circuit Breaker Triggered*");
    assert_eq!(r[2].title(), "*⚠️ Circuit Breaker Re-triggered*");
    assert_eq!(r[4].title(), "*✅ Circuit Breaker Recovered*");
}

// L-5: one Slack listener shared by two breakers keeps one thread per circuit.
#[test]
fn l5_one_listener_two_breakers_separate_threads() {
    let server = SlackServer::start();
    let slack = slack(&server);
    let a = breaker("a", &slack);
    let b = breaker("b", &slack);
    assert!(a.call(fail).is_err());
    assert!(b.call(fail).is_err());
    assert!(a.call(succeed).is_ok());
    assert!(b.call(succeed).is_ok());
    assert!(slack.flush(DEADLINE));
    let r = server.requests();
    let ts_of = |circuit: &str| {
        r.iter()
            .find(|r| r.field("Circuit Breaker") == circuit && r.thread_ts().is_none())
            .and_then(|r| r.ts.clone())
    };
    let (ta, tb) = (ts_of("a"), ts_of("b"));
    assert!(ta.is_some() && tb.is_some() && ta != tb);
    for r in &r[2..] {
        let expected = if r.field("Circuit Breaker") == "a" {
            &ta
        } else {
            &tb
        };
        assert_eq!(r.thread_ts(), expected.as_deref());
    }
}

// SL-4, L-2: an unreachable Slack never changes what the caller gets.
#[test]
fn sl4_unreachable_slack_never_reaches_the_caller() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let slack = SlackListener::builder("C0123456789", TOKEN)
        .api_base(format!("http://{closed_port}/api"))
        .build()
        .unwrap();
    let cb = breaker("db", &slack);
    assert!(matches!(cb.call(fail), Err(Error::Inner(e)) if e.to_string() == "boom"));
    assert_eq!(cb.call(|| Ok::<_, io::Error>(7)).unwrap(), 7);
    assert!(slack.flush(DEADLINE));
    assert_eq!(cb.info().state, State::Closed);
}

fn async_breaker(name: &str, slack: &SlackListener) -> AsyncCircuitBreaker {
    AsyncCircuitBreaker::builder(name)
        .tripper(trippers::FailureStreak::new(1))
        .retry(retries::Always)
        .permit(permits::All)
        .async_listener(slack.clone())
        .build()
        .unwrap()
}

// SL-4, L-4 (async): on a multi-thread runtime, the call that trips returns while Slack
// holds its answer; the messages keep transition order and the thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sl4_async_call_returns_before_slack_answers() {
    let server = SlackServer::start();
    server.script([Reply::Hold]);
    let slack = slack(&server);
    let cb = async_breaker("payment_api", &slack);

    let tripped = tokio::time::timeout(DEADLINE, cb.call(|| async { fail() }))
        .await
        .expect("the call waited for Slack");
    assert!(matches!(tripped, Err(Error::Inner(_))));
    tokio::task::block_in_place(|| server.wait_holding(1));
    let recovered = cb.call(|| async { succeed() }).await;
    assert!(recovered.is_ok());
    assert_eq!(cb.info().state, State::Closed);
    assert_eq!(server.holding(), 1);

    server.release();
    assert!(slack.flush_async(DEADLINE).await);
    let r = server.requests();
    assert_eq!(
        transitions(&server),
        ["closed → open", "open → half_open", "half_open → closed"]
    );
    assert_eq!(r[1].thread_ts(), r[0].ts.as_deref());
    assert_eq!(r[2].thread_ts(), r[0].ts.as_deref());
    assert!(r[2].broadcast());
}
