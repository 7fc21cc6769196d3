//! The `/metrics` route for axum applications.
//!
//! A web service already has a server and a port; a second one just for metrics is one
//! more thing to open in the firewall. Python's page mounts `make_asgi_app()` into
//! FastAPI for that reason; here the same registry becomes an axum route that answers
//! exactly what [`start_http_server`](super::start_http_server) answers, and
//! [`status_router`] adds the status page.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use prometheus::Registry;

use super::server::PAGE_POLICY;
use super::{
    CONTENT_TYPE, STATUS_JSON_CONTENT_TYPE, STATUS_PAGE, STATUS_PAGE_CONTENT_TYPE, StatusSource,
    encode_text, status_json,
};

/// A router with `GET /metrics` serving `registry`, to merge into an application: the
/// seed's `app.mount("/metrics", make_asgi_app())` (PR-6).
///
/// Pass [`prometheus::default_registry()`] for the registry that
/// [`PrometheusListener::new`](super::PrometheusListener::new) writes to. The router has
/// no state of its own, so it merges into a router of any state type.
///
/// ```
/// use axum::{routing::get, Router};
/// use fluxgate_prometheus::{axum_router, PrometheusListener};
/// use fluxgate_core::AsyncCircuitBreaker;
///
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .merge(axum_router(prometheus::default_registry()));
///
/// let cb = AsyncCircuitBreaker::builder("api_gateway")
///     .listener(PrometheusListener::new())
///     .build()
///     .unwrap();
/// // axum::serve(tokio::net::TcpListener::bind("0.0.0.0:8000").await?, app).await?;
/// # drop((app, cb));
/// ```
pub fn axum_router<S>(registry: &Registry) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new().route("/metrics", metrics_handler(registry))
}

/// The handler alone, to mount under a path of your choice (`GET` and `HEAD`).
///
/// ```
/// use axum::Router;
/// use fluxgate_prometheus::metrics_handler;
///
/// let registry = prometheus::Registry::new();
/// let app: Router = Router::new().route("/internal/metrics", metrics_handler(&registry));
/// # drop(app);
/// ```
pub fn metrics_handler<S>(registry: &Registry) -> MethodRouter<S>
where
    S: Clone + Send + Sync + 'static,
{
    let registry = registry.clone();
    get(move || {
        let registry = registry.clone();
        async move { metrics_response(&registry) }
    })
}

/// One scrape of `registry` as an HTTP response: 200 with the classic text format and
/// [`CONTENT_TYPE`], or 500 with the encoder's error.
///
/// For handlers that do more than serve metrics (authentication, extra headers …).
///
/// ```
/// use fluxgate_prometheus::{metrics_response, CONTENT_TYPE};
///
/// let response = metrics_response(&prometheus::Registry::new());
/// assert_eq!(response.status(), 200);
/// assert_eq!(response.headers()["content-type"], CONTENT_TYPE);
/// ```
pub fn metrics_response(registry: &Registry) -> Response {
    match encode_text(registry) {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {error}\n"),
        )
            .into_response(),
    }
}

/// A router with `GET /status` (the [`STATUS_PAGE`] of tiles) and `GET /status.json`
/// ([`status_json`]) for the breakers `source` lists: the status endpoints of
/// [`MetricsServer::builder`](super::MetricsServer::builder) as axum routes, to merge next
/// to [`axum_router`] or to [`nest`](Router::nest) under a prefix (the page fetches
/// `status.json` relative to itself).
///
/// `/status.json` is rendered at most once a second; requests within that second share
/// the body.
///
/// ```
/// use axum::Router;
/// use fluxgate_core::CircuitBreaker;
/// use fluxgate_prometheus::{axum_router, status_router};
///
/// let payment = CircuitBreaker::builder("payment_api").build().unwrap();
/// let app: Router = Router::new()
///     .merge(axum_router(prometheus::default_registry()))
///     .merge(status_router(vec![payment]));
/// # drop(app);
/// ```
pub fn status_router<S>(source: impl StatusSource) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let source: Arc<dyn StatusSource> = Arc::new(source);
    let cache: Arc<Mutex<Option<(Instant, Bytes)>>> = Arc::default();
    Router::new()
        .route(
            "/status",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, STATUS_PAGE_CONTENT_TYPE),
                        (header::CONTENT_SECURITY_POLICY, PAGE_POLICY),
                    ],
                    STATUS_PAGE,
                )
            }),
        )
        .route(
            "/status.json",
            get(move || {
                let body = {
                    let mut cache = crate::lock_ignoring_poison(&cache);
                    match &*cache {
                        Some((at, body)) if at.elapsed() < Duration::from_secs(1) => body.clone(),
                        _ => {
                            let body = Bytes::from(status_json(&source.statuses()));
                            *cache = Some((Instant::now(), body.clone()));
                            body
                        }
                    }
                };
                async move {
                    (
                        [
                            (header::CONTENT_TYPE, STATUS_JSON_CONTENT_TYPE),
                            (header::CACHE_CONTROL, "no-store"),
                        ],
                        body,
                    )
                }
            }),
        )
}
