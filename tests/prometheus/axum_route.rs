//! The axum route (PR-6, the seed's FastAPI `make_asgi_app` section): the same registry,
//! the same bytes and content type as `start_http_server`, mounted into an application.

#![cfg(feature = "axum")]

use std::net::SocketAddr;

use crate::support::prometheus::{HttpResponse, http_get, raw_request};
use axum::Router;
use axum::routing::get;
use fluxgate::listeners::prometheus::{
    CONTENT_TYPE, PrometheusListener, axum_router, encode_text, metrics_handler,
};
use fluxgate::{AsyncCircuitBreaker, State};
use prometheus::Registry;

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn fetch(addr: SocketAddr, path: &'static str) -> HttpResponse {
    tokio::task::spawn_blocking(move || http_get(addr, path).unwrap())
        .await
        .unwrap()
}

#[derive(Clone)]
struct AppState {
    greeting: &'static str,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pr6_the_axum_route_serves_the_registry_like_start_http_server() {
    let registry = Registry::new();
    let listener = PrometheusListener::with_registry(&registry).unwrap();
    let cb = AsyncCircuitBreaker::builder("api_gateway")
        .listener(listener.clone())
        .build()
        .unwrap();
    cb.force_open();
    assert_eq!(cb.info().state, State::ForcedOpen);

    // An application with its own state, as a real one has.
    let app = Router::new()
        .route(
            "/",
            get(
                |axum::extract::State(s): axum::extract::State<AppState>| async move { s.greeting },
            ),
        )
        .merge(axum_router(&registry))
        .with_state(AppState { greeting: "hello" });
    let addr = serve(app).await;

    let metrics = fetch(addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert_eq!(metrics.header("content-type"), Some(CONTENT_TYPE));
    assert_eq!(metrics.body, encode_text(&registry).unwrap());
    assert!(
        metrics.body.contains(
            "circuit_breaker_state{circuit_name=\"api_gateway\",state=\"forced_open\"} 1\n"
        )
    );

    assert_eq!(fetch(addr, "/").await.body, "hello");
    assert_eq!(fetch(addr, "/nothing").await.status, 404);
    let head = tokio::task::spawn_blocking(move || {
        raw_request(
            addr,
            b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.body, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pr6_the_handler_mounts_under_any_path_and_sees_later_transitions() {
    let registry = Registry::new();
    let listener = PrometheusListener::with_registry(&registry).unwrap();
    let app = Router::new().route("/internal/metrics", metrics_handler(&registry));
    let addr = serve(app).await;
    let cb = AsyncCircuitBreaker::builder("late")
        .listener(listener)
        .build()
        .unwrap();
    cb.disable();
    let response = fetch(addr, "/internal/metrics").await;
    assert_eq!(response.status, 200);
    assert!(
        response
            .body
            .contains("circuit_breaker_state{circuit_name=\"late\",state=\"disabled\"} 1\n")
    );
    assert_eq!(fetch(addr, "/metrics").await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_routes_serve_the_page_and_the_json_of_async_breakers() {
    use fluxgate::listeners::prometheus::{STATUS_PAGE, status_router};

    let cb = AsyncCircuitBreaker::builder("api_gateway").build().unwrap();
    cb.force_open();
    let app: Router = Router::new().nest("/ops", status_router(vec![cb]));
    let addr = serve(app).await;
    let page = fetch(addr, "/ops/status").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.header("content-security-policy").is_some());
    assert_eq!(page.body, STATUS_PAGE);
    let json = fetch(addr, "/ops/status.json").await;
    assert_eq!(json.status, 200);
    assert_eq!(json.header("content-type"), Some("application/json"));
    let document: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(document["breakers"][0]["name"], "api_gateway");
    assert_eq!(document["breakers"][0]["state"], "forced_open");
}
