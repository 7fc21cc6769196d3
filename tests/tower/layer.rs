//! The tower layer: classification (CF-4), rejections as errors or as 503 + Retry-After,
//! and cancellation safety of the response future (SM-20).
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::Duration;

use fluxgate::clock::ManualClock;
use fluxgate::retries::{Always, Cooldown};
use fluxgate::tower::{CircuitBreakerLayer, ServerErrors};
use fluxgate::trippers::FailureStreak;
use fluxgate::{AsyncCircuitBreaker, Error, Outcome, State, permits};
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};

fn status(code: u16) -> http::Response<String> {
    http::Response::builder()
        .status(code)
        .body(format!("{code}"))
        .unwrap()
}

#[tokio::test]
async fn server_errors_count_as_failures_and_open_the_circuit() {
    let clock = ManualClock::new();
    let cb = AsyncCircuitBreaker::builder("upstream")
        .tripper(FailureStreak::new(2))
        .retry(Cooldown::new(Duration::from_secs(30)))
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(cb.clone()).classify(ServerErrors))
        .service(service_fn(|code: u16| async move {
            Ok::<_, Infallible>(status(code))
        }));
    let r = svc.ready().await.unwrap().call(200).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = svc.ready().await.unwrap().call(503).await.unwrap();
    assert_eq!(r.status(), 503, "the caller still gets its response");
    assert_eq!(cb.info().metric.failure_count, 1);
    let _ = svc.ready().await.unwrap().call(500).await.unwrap();
    assert_eq!(cb.state(), State::Open);
    clock.advance(Duration::from_secs(10));
    match svc.ready().await.unwrap().call(200).await {
        Err(Error::Rejected(r)) => {
            assert_eq!(r.state(), State::Open);
            assert_eq!(r.retry_after(), Some(Duration::from_secs(20)));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn custom_classifier_and_errors() {
    let cb = AsyncCircuitBreaker::builder("c")
        .tripper(FailureStreak::new(1))
        .build()
        .unwrap();
    let layer = CircuitBreakerLayer::new(cb.clone()).classify(|r: &Result<u16, String>| match r {
        Err(e) if e == "not found" => Outcome::Ignored,
        Err(_) => Outcome::Failure,
        Ok(_) => Outcome::Success,
    });
    let svc =
        ServiceBuilder::new()
            .layer(layer)
            .service(service_fn(|req: &'static str| async move {
                match req {
                    "ok" => Ok(200u16),
                    e => Err(e.to_string()),
                }
            }));
    assert_eq!(svc.clone().oneshot("ok").await.unwrap(), 200);
    assert!(
        matches!(svc.clone().oneshot("not found").await, Err(Error::Inner(e)) if e == "not found")
    );
    assert_eq!(cb.state(), State::Closed);
    assert!(matches!(
        svc.clone().oneshot("boom").await,
        Err(Error::Inner(_))
    ));
    assert_eq!(cb.state(), State::Open);
    assert!(matches!(svc.oneshot("ok").await, Err(Error::Rejected(_))));
}

#[tokio::test]
async fn respond_503_maps_rejections_to_http() {
    let clock = ManualClock::new();
    let cb = AsyncCircuitBreaker::builder("route")
        .tripper(FailureStreak::new(1))
        .retry(Cooldown::new(Duration::from_millis(7500)))
        .clock(clock.clone())
        .build()
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(
            CircuitBreakerLayer::new(cb.clone())
                .classify(ServerErrors)
                .respond_503(),
        )
        .service(service_fn(|code: u16| async move {
            Ok::<_, Infallible>(status(code))
        }));
    assert_eq!(svc.clone().oneshot(502).await.unwrap().status(), 502);
    let resp = svc.clone().oneshot(200).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "8");
    assert_eq!(resp.body(), "");
    cb.force_open();
    let resp = svc.oneshot(200).await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_none());
}

#[tokio::test]
async fn dropped_response_future_frees_its_half_open_slot() {
    let cb = AsyncCircuitBreaker::builder("drop")
        .tripper(FailureStreak::new(1))
        .retry(Always)
        .permit(permits::All)
        .max_half_open_calls(1)
        .build()
        .unwrap();
    let mut svc = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new(cb.clone()))
        .service(service_fn(|fail: bool| async move {
            if fail {
                Err("down")
            } else {
                std::future::pending::<()>().await;
                Ok(())
            }
        }));
    let _ = svc.ready().await.unwrap().call(true).await;
    assert_eq!(cb.state(), State::Open);
    let mut fut = Box::pin(svc.ready().await.unwrap().call(false));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut fut).as_mut().poll(&mut cx).is_pending());
    assert_eq!(cb.state(), State::HalfOpen);
    assert_eq!(cb.half_open_in_flight(), 1);
    assert!(matches!(
        svc.ready().await.unwrap().call(false).await,
        Err(Error::Rejected(_))
    ));
    drop(fut);
    assert_eq!(cb.half_open_in_flight(), 0);
    assert_eq!(cb.info().metric.total_count, 0);
}

#[test]
fn a_response_future_polled_after_completion_does_not_poll_its_service_again() {
    // The old code kept the finished inner future and polled it again: a `Ready` (or an
    // `async` block) panics when polled after it completed.
    let cb = AsyncCircuitBreaker::builder("upstream").build().unwrap();
    let mut svc = CircuitBreakerLayer::new(cb).layer(service_fn(|_: ()| {
        std::future::ready(Ok::<_, Infallible>(7))
    }));
    let mut fut = Box::pin(svc.call(()));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(matches!(
        fut.as_mut().poll(&mut cx),
        std::task::Poll::Ready(Ok(7))
    ));
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
}

#[tokio::test]
async fn sm5_an_error_the_breakers_tracker_does_not_track_is_not_recorded_through_the_layer() {
    // The layer recorded every `Err` as a failure, whatever the breaker's tracker: an
    // untracked error opened the circuit through tower and was ignored by `call`. The
    // tracker is asked about errors it can see into: `io::Error`, boxed and anyhow ones.
    let cb = AsyncCircuitBreaker::builder("api")
        .tracker(fluxgate::trackers::TypeOf::<io::Error>::new())
        .tripper(FailureStreak::new(1))
        .build()
        .unwrap();
    // Tower's usual error type: the tracker is asked about the error inside.
    let untracked = CircuitBreakerLayer::new(cb.clone()).layer(service_fn(|_: ()| async {
        Err::<(), tower::BoxError>(Box::new(std::fmt::Error))
    }));
    for _ in 0..3 {
        assert!(matches!(
            untracked.clone().oneshot(()).await,
            Err(Error::Inner(_))
        ));
    }
    assert_eq!(cb.state(), State::Closed);
    assert_eq!(cb.info().metric.total_count, 0, "nothing recorded");
    let tracked = CircuitBreakerLayer::new(cb.clone()).layer(service_fn(|_: ()| async {
        Err::<(), _>(io::Error::other("down"))
    }));
    let _ = tracked.oneshot(()).await;
    assert_eq!(cb.state(), State::Open);
}

/// A service that is never ready (a saturated upstream: its concurrency limit used up).
#[derive(Clone)]
struct Saturated;

impl Service<()> for Saturated {
    type Response = http::Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<http::Response<String>, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Pending
    }
    fn call(&mut self, _: ()) -> Self::Future {
        panic!("called while not ready")
    }
}

#[test]
fn an_open_breaker_answers_at_once_even_when_the_inner_service_is_not_ready() {
    // The old layer only forwarded `poll_ready`: an open breaker in front of a saturated
    // upstream waited on its backpressure, so the 503 never came.
    let clock = ManualClock::new();
    let cb = AsyncCircuitBreaker::builder("upstream")
        .tripper(FailureStreak::new(1))
        .retry(Cooldown::new(Duration::from_secs(30)))
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let mut plain = CircuitBreakerLayer::new(cb.clone()).layer(Saturated);
    let mut http = CircuitBreakerLayer::new(cb.clone())
        .respond_503()
        .layer(Saturated);
    // Closed: the upstream's backpressure holds.
    assert!(plain.poll_ready(&mut cx).is_pending());
    assert!(http.poll_ready(&mut cx).is_pending());
    cb.force_open();
    assert!(plain.poll_ready(&mut cx).is_ready());
    let mut fut = Box::pin(plain.call(()));
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Err(e)) => assert!(e.is_rejected()),
        other => panic!("{other:?}"),
    }
    assert!(http.poll_ready(&mut cx).is_ready());
    let mut fut = Box::pin(http.call(()));
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(Ok(r)) => assert_eq!(r.status(), 503),
        other => panic!("{other:?}"),
    }
    // Open with its probe due: the probe must reach the upstream, so backpressure holds.
    cb.reset();
    let _ = cb.admit().map(|t| t.failure());
    assert_eq!(cb.state(), State::Open);
    assert!(plain.poll_ready(&mut cx).is_ready(), "open, 30 s to go");
    clock.advance(Duration::from_secs(30));
    let mut fresh = CircuitBreakerLayer::new(cb.clone()).layer(Saturated);
    assert!(fresh.poll_ready(&mut cx).is_pending(), "the probe is due");
    assert_eq!(cb.info().metric.total_count, 0, "nothing recorded");
}
