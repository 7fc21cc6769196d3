//! The `/metrics` route for axum applications.
//!
//! A web service already has a server and a port; a second one just for metrics is one
//! more thing to open in the firewall. Python's page mounts `make_asgi_app()` into
//! FastAPI for that reason; here the same registry becomes an axum route that answers
//! exactly what [`start_http_server`](super::start_http_server) answers.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use prometheus::Registry;

use super::{CONTENT_TYPE, encode_text};

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
