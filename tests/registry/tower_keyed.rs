//! The keyed tower layer: one breaker per request authority.

use std::convert::Infallible;

use fluxgate::keyed::Keyed;
use fluxgate::tower::{KeyedCircuitBreakerLayer, ServerErrors};
use fluxgate::trippers::FailureStreak;
use fluxgate::{AsyncCircuitBreaker, State};
use tower::{Layer, ServiceExt};

#[tokio::test]
async fn each_authority_has_its_own_breaker() {
    let hosts: Keyed<String, AsyncCircuitBreaker> = Keyed::builder("upstream:")
        .template(|b| b.tripper(FailureStreak::new(2)))
        .build()
        .unwrap();
    let svc = KeyedCircuitBreakerLayer::by_authority(hosts.clone())
        .classify(ServerErrors)
        .layer(tower::service_fn(|req: http::Request<()>| async move {
            let status = if req.uri().host() == Some("bad.example") {
                503
            } else {
                200
            };
            Ok::<_, Infallible>(http::Response::builder().status(status).body(()).unwrap())
        }));
    let get = |uri: &str| http::Request::get(uri).body(()).unwrap();
    for _ in 0..2 {
        let r = svc
            .clone()
            .oneshot(get("http://bad.example/x"))
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
    }
    let rejected = svc.clone().oneshot(get("http://bad.example/x")).await;
    assert!(rejected.unwrap_err().is_rejected());
    let r = svc
        .clone()
        .oneshot(get("http://good.example:8080/x"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(hosts.peek("bad.example").unwrap().state(), State::Open);
    assert_eq!(
        hosts.peek("good.example:8080").unwrap().state(),
        State::Closed
    );
}

#[tokio::test]
async fn any_closure_can_pick_the_key() {
    let tenants: Keyed<u32, AsyncCircuitBreaker> = Keyed::builder("tenant-").build().unwrap();
    let svc = KeyedCircuitBreakerLayer::new(tenants.clone(), |req: &(u32, &str)| req.0).layer(
        tower::service_fn(|_req: (u32, &str)| async { Ok::<_, Infallible>(()) }),
    );
    svc.clone().oneshot((7, "a")).await.unwrap();
    svc.oneshot((9, "b")).await.unwrap();
    let mut keys = tenants.keys();
    keys.sort();
    assert_eq!(keys, [7, 9]);
}
