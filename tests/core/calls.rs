//! Listeners that want every call (`Listener::wants_calls` / `on_call`): outcomes,
//! durations on the breaker's clock, rejections, the states that report nothing, panics.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fluxgate::clock::ManualClock;
use fluxgate::listeners::ListenerFuture;
use fluxgate::listeners::{AsyncListener, CallEvent, CallOutcome, Listener, ListenerError};
use fluxgate::permits::All;
use fluxgate::retries::Cooldown;
use fluxgate::trackers::TypeOf;
use fluxgate::trippers::FailureStreak;
use fluxgate::{AsyncCircuitBreaker, CircuitBreaker, Signal, State};

use crate::support::logs::Logs;
use crate::support::{Untracked, boom, fail, ok, slow_fail, slow_ok};

/// What a listener heard of one call: (state, outcome, duration).
type Heard = (State, CallOutcome, Option<Duration>);

/// Keeps every call it hears of.
#[derive(Clone, Default)]
struct Calls {
    seen: Arc<Mutex<Vec<Heard>>>,
    signals: Arc<AtomicUsize>,
}

impl Calls {
    fn take(&self) -> Vec<Heard> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

impl Listener for Calls {
    fn on_signal(&self, _: &Signal) -> Result<(), ListenerError> {
        self.signals.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn wants_calls(&self) -> bool {
        true
    }
    fn on_call(&self, call: &CallEvent<'_>) {
        assert_eq!(call.circuit_name, "calls");
        self.seen
            .lock()
            .unwrap()
            .push((call.state, call.outcome, call.duration));
    }
}

impl AsyncListener for Calls {
    fn on_signal(&self, _: Signal) -> ListenerFuture {
        Box::pin(async { Ok::<(), ListenerError>(()) })
    }
    fn wants_calls(&self) -> bool {
        true
    }
    fn on_call(&self, call: &CallEvent<'_>) {
        Listener::on_call(self, call)
    }
}

fn breaker(calls: &Calls, clock: &ManualClock) -> CircuitBreaker {
    CircuitBreaker::builder("calls")
        .tracker(TypeOf::<io::Error>::new())
        .tripper(FailureStreak::new(2))
        .retry(Cooldown::new(Duration::from_secs(10)))
        .permit(All)
        .max_half_open_calls(1)
        .clock(clock.clone())
        .listener(Arc::new(calls.clone()))
        .build()
        .unwrap()
}

const MS: Duration = Duration::from_millis(1);

#[test]
fn every_outcome_is_reported_with_its_duration_on_the_breakers_clock() {
    let (calls, clock) = (Calls::default(), ManualClock::new());
    let cb = breaker(&calls, &clock);
    slow_ok(&cb, &clock, 3 * MS).unwrap();
    let _ = cb.call(|| {
        clock.advance(5 * MS);
        Err::<(), _>(Untracked)
    });
    slow_fail(&cb, &clock, 7 * MS).unwrap_err();
    assert_eq!(
        calls.take(),
        [
            (State::Closed, CallOutcome::Success, Some(3 * MS)),
            (State::Closed, CallOutcome::Ignored, Some(5 * MS)),
            (State::Closed, CallOutcome::Failure, Some(7 * MS)),
        ]
    );
    // SM-5: the ignored error changed nothing the breaker counts.
    assert_eq!(cb.info().metric.total_count, 2);
}

#[test]
fn rejections_are_reported_with_the_rejecting_state_and_no_duration() {
    let (calls, clock) = (Calls::default(), ManualClock::new());
    let cb = breaker(&calls, &clock);
    fail(&cb).unwrap_err();
    fail(&cb).unwrap_err();
    assert_eq!(cb.state(), State::Open);
    calls.take();
    assert!(ok(&cb).unwrap_err().is_rejected()); // SM-6
    clock.advance(Duration::from_secs(10));
    // SM-7/SM-8: the probe holds the only half-open slot; a second call is turned away.
    let ticket = cb.admit().unwrap();
    assert!(ok(&cb).unwrap_err().is_rejected());
    ticket.success();
    cb.force_open();
    assert!(ok(&cb).unwrap_err().is_rejected()); // SM-12
    assert_eq!(
        calls.take(),
        [
            (State::Open, CallOutcome::Rejected, None),
            (State::HalfOpen, CallOutcome::Rejected, None),
            (State::HalfOpen, CallOutcome::Success, Some(Duration::ZERO)),
            (State::ForcedOpen, CallOutcome::Rejected, None),
        ]
    );
}

#[test]
fn metrics_only_calls_are_reported_and_disabled_calls_are_not() {
    let (calls, clock) = (Calls::default(), ManualClock::new());
    let cb = breaker(&calls, &clock);
    cb.metrics_only();
    slow_fail(&cb, &clock, 2 * MS).unwrap_err();
    cb.disable();
    ok(&cb).unwrap(); // SM-11: nothing recorded or timed
    fail(&cb).unwrap_err();
    assert_eq!(
        calls.take(),
        [(State::MetricsOnly, CallOutcome::Failure, Some(2 * MS))]
    );
}

#[test]
fn a_listener_that_does_not_ask_for_calls_hears_none() {
    struct Transitions(Arc<AtomicUsize>);
    impl Listener for Transitions {
        fn on_signal(&self, _: &Signal) -> Result<(), ListenerError> {
            Ok(())
        }
        fn on_call(&self, _: &CallEvent<'_>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let heard = Arc::new(AtomicUsize::new(0));
    let cb = CircuitBreaker::builder("quiet")
        .listener(Transitions(heard.clone()))
        .build()
        .unwrap();
    ok(&cb).unwrap();
    fail(&cb).unwrap_err();
    cb.force_open();
    assert!(ok(&cb).unwrap_err().is_rejected());
    assert_eq!(heard.load(Ordering::Relaxed), 0);
}

#[test]
fn a_panicking_on_call_never_reaches_the_caller_and_is_logged_once() {
    struct Panics;
    impl Listener for Panics {
        fn on_signal(&self, _: &Signal) -> Result<(), ListenerError> {
            Ok(())
        }
        fn wants_calls(&self) -> bool {
            true
        }
        fn on_call(&self, _: &CallEvent<'_>) {
            panic!("on_call panicked");
        }
    }
    let logs = Logs::default();
    let calls = Calls::default();
    tracing::subscriber::with_default(logs.subscriber(), || {
        tracing::callsite::rebuild_interest_cache();
        let cb = CircuitBreaker::builder("calls")
            .tripper(FailureStreak::new(3))
            .listener(Panics)
            .listener(Arc::new(calls.clone()))
            .build()
            .unwrap();
        assert_eq!(cb.call(|| Ok::<_, io::Error>(7)).unwrap(), 7);
        for _ in 0..3 {
            assert_eq!(
                cb.call(|| Err::<(), _>(boom())).unwrap_err().to_string(),
                "boom"
            );
        }
        // The outcomes were recorded in spite of the panics: the streak tripped it.
        assert_eq!(cb.state(), State::Open);
        assert!(ok(&cb).unwrap_err().is_rejected());
    });
    // The listener after the panicking one still heard every call.
    assert_eq!(calls.take().len(), 5);
    let panics: Vec<_> = logs
        .events()
        .into_iter()
        .filter(|e| e.message().contains("on_call"))
        .collect();
    assert_eq!(panics.len(), 1, "{panics:?}");
    assert_eq!(panics[0].field("circuit"), "calls");
}

#[test]
fn shared_and_boxed_listeners_forward_their_wish() {
    let calls = Calls::default();
    let boxed: Box<dyn Listener> = Box::new(calls.clone());
    let cb = CircuitBreaker::builder("calls")
        .listener(boxed)
        .build()
        .unwrap();
    ok(&cb).unwrap();
    assert_eq!(calls.take().len(), 1);
}

#[tokio::test]
async fn async_listeners_hear_the_async_breakers_calls() {
    let (calls, clock) = (Calls::default(), ManualClock::new());
    let cb = AsyncCircuitBreaker::builder("calls")
        .tripper(FailureStreak::new(1))
        .clock(clock.clone())
        .async_listener(Arc::new(calls.clone()))
        .build()
        .unwrap();
    let c = clock.clone();
    cb.call(|| async move {
        c.advance(4 * MS);
        Err::<(), _>(boom())
    })
    .await
    .unwrap_err();
    let r = cb.call(|| async { Ok::<_, io::Error>(()) }).await;
    assert!(r.unwrap_err().is_rejected());
    assert_eq!(
        calls.take(),
        [
            (State::Closed, CallOutcome::Failure, Some(4 * MS)),
            (State::Open, CallOutcome::Rejected, None),
        ]
    );
}
