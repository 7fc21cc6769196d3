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
    assert_eq!(hosts.peek("bad.example:80").unwrap().state(), State::Open);
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

#[test]
fn the_authority_key_is_host_and_port_without_credentials() {
    use fluxgate::tower::{Authority, KeyOf};
    let key = |uri: &str| Authority.key_of(&http::Request::get(uri).body(()).unwrap());
    // The old key was the authority as written: a password in the URI went into the
    // breaker's name (logs, metric labels, Slack), and each user got a breaker of its own.
    assert_eq!(
        key("http://alice:s3cret@db-1.internal:8080/q"),
        "db-1.internal:8080"
    );
    assert_eq!(key("http://bob@db-1.internal:8080/q"), "db-1.internal:8080");
    // One breaker per host and port, however the URI spells them.
    assert_eq!(key("http://DB-1.Internal/q"), "db-1.internal:80");
    assert_eq!(key("http://db-1.internal:80/q"), "db-1.internal:80");
    assert_eq!(key("https://db-1.internal/q"), "db-1.internal:443");
    assert_eq!(key("http://[::1]:9000/q"), "[::1]:9000");
    let host = |h: &[u8]| {
        let req = http::Request::get("/q")
            .header("host", http::HeaderValue::from_bytes(h).unwrap())
            .body(())
            .unwrap();
        Authority.key_of(&req)
    };
    assert_eq!(host(b"API.example:8443"), "api.example:8443");
    assert_eq!(host(b"api.example"), "api.example");
    assert_eq!(host(b"not an authority"), "not an authority");
    // Not an authority, and credentials in it: they never reach the key.
    assert_eq!(host(b"alice:s3cret@DB x"), "db x");
    assert_eq!(
        Authority.key_of(&http::Request::get("/q").body(()).unwrap()),
        ""
    );
}

#[tokio::test]
async fn users_of_one_host_share_its_breaker_and_its_name_holds_no_password() {
    let hosts: Keyed<String, AsyncCircuitBreaker> = Keyed::builder("upstream:").build().unwrap();
    let svc = KeyedCircuitBreakerLayer::by_authority(hosts.clone()).layer(tower::service_fn(
        |_: http::Request<()>| async { Ok::<_, Infallible>(http::Response::new(())) },
    ));
    for uri in ["http://alice:pw1@db:80/x", "http://bob:pw2@DB/x"] {
        let req = http::Request::get(uri).body(()).unwrap();
        svc.clone().oneshot(req).await.unwrap();
    }
    assert_eq!(hosts.keys(), ["db:80"]);
    assert_eq!(hosts.get("db:80").name(), "upstream:db:80");
}
