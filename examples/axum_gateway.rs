//! The seed's FastAPI example, in Rust: an axum gateway that mounts `/metrics` and protects
//! a route that calls a flaky upstream. Rejections become `503` with `Retry-After`.
//!
//! ```text
//! cargo run --example axum_gateway --features tower,axum,tokio -- [--addr 127.0.0.1:8080] [--seconds 60]
//! curl -i localhost:8080/price     # 200 while the upstream is healthy, 502 when it fails,
//!                                  # 503 + Retry-After once the breaker is open
//! curl localhost:8080/metrics
//! ```
//! The simulated upstream is healthy for 10 s, then fails for 20 s, and so on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State as AxumState;
use axum::http::StatusCode;
use axum::routing::get;
use fluxgate::AsyncCircuitBreaker;
use fluxgate::listeners::prometheus::{PrometheusListener, axum_router};
use fluxgate::retries::Cooldown;
use fluxgate::tower::{CircuitBreakerLayer, ServerErrors};
use fluxgate::trippers::{FailureRate, MinRequests};

/// A simulated upstream whose health can be switched at run time.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `false` makes every answer a 500.
    pub healthy: Arc<AtomicBool>,
}

/// Starts the upstream on 127.0.0.1 with a free port.
pub(crate) async fn start_upstream() -> std::io::Result<Upstream> {
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = healthy.clone();
    let app = Router::new().route(
        "/price",
        get(move || {
            let ok = flag.load(Ordering::Relaxed);
            async move {
                if ok {
                    (StatusCode::OK, "42")
                } else {
                    (StatusCode::INTERNAL_SERVER_ERROR, "upstream failure")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Upstream { addr, healthy })
}

/// The HTTP client for the upstream. With fluxgate's `slack` feature on, reqwest's rustls
/// support is built without a crypto provider of its own, so one is installed first.
pub(crate) fn http_client() -> reqwest::Client {
    #[cfg(feature = "slack")]
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

#[derive(Clone)]
struct Gateway {
    client: reqwest::Client,
    upstream: String,
}

async fn price(AxumState(gw): AxumState<Gateway>) -> (StatusCode, String) {
    match gw.client.get(&gw.upstream).send().await {
        Ok(resp) if resp.status().is_success() => {
            (StatusCode::OK, resp.text().await.unwrap_or_default())
        }
        Ok(resp) => (
            StatusCode::BAD_GATEWAY,
            format!("upstream answered {}", resp.status()),
        ),
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("upstream unreachable: {e}"),
        ),
    }
}

/// The gateway app: `/price` behind the breaker `api_gateway`, and `/metrics` for
/// `registry`.
pub(crate) fn gateway(
    upstream: SocketAddr,
    registry: &prometheus::Registry,
) -> Result<(Router, AsyncCircuitBreaker), Box<dyn std::error::Error>> {
    let cb = AsyncCircuitBreaker::builder("api_gateway")
        .tripper(MinRequests::new(5) & FailureRate::new(0.5))
        .retry(Cooldown::new(Duration::from_secs(30)))
        .listener(PrometheusListener::with_registry(registry)?)
        .build()?;
    let state = Gateway {
        client: http_client(),
        upstream: format!("http://{upstream}/price"),
    };
    let app = Router::new()
        .route("/price", get(price))
        .route_layer(
            CircuitBreakerLayer::new(cb.clone())
                .classify(ServerErrors)
                .respond_503(),
        )
        .with_state(state)
        .merge(axum_router(registry));
    Ok((app, cb))
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut addr = "127.0.0.1:8080".to_string();
    let mut seconds = 60u64;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => addr = args.next().ok_or("--addr needs a value")?,
            "--seconds" => seconds = args.next().ok_or("--seconds needs a value")?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let upstream = start_upstream().await?;
    let (app, cb) = gateway(upstream.addr, prometheus::default_registry())?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!(
        "gateway on http://{}/price, metrics on http://{0}/metrics",
        listener.local_addr()?
    );
    let healthy = upstream.healthy.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(10)).await;
            healthy.store(false, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_secs(20)).await;
            healthy.store(true, Ordering::Relaxed);
        }
    });
    let server = axum::serve(listener, app);
    tokio::select! {
        r = server => r?,
        _ = tokio::time::sleep(Duration::from_secs(seconds)) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!("breaker state at exit: {}", cb.state());
    Ok(())
}
