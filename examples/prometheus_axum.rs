//! The seed's "FastAPI integration" section in axum: the default registry mounted at
//! `/metrics` of the application (instead of `app.mount("/metrics", make_asgi_app())`),
//! and an `AsyncCircuitBreaker` protecting an upstream call.
//!
//! ```text
//! cargo run --example prometheus_axum --features axum            # serves on 0.0.0.0:8000
//! cargo run --example prometheus_axum --features axum -- --once  # one request each, exits
//! ```
//!
//! `APP_ADDR` overrides the address (default `0.0.0.0:8000`; with `--once`, `127.0.0.1:0`).

use std::io;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use fluxgate::AsyncCircuitBreaker;
use fluxgate::listeners::prometheus::{PrometheusListener, axum_router};
use fluxgate::trippers::FailureStreak;

async fn call_upstream() -> Result<&'static str, io::Error> {
    Err(io::Error::other("upstream unavailable"))
}

async fn gateway(State(cb): State<Arc<AsyncCircuitBreaker>>) -> (StatusCode, String) {
    match cb.call(call_upstream).await {
        Ok(body) => (StatusCode::OK, body.to_owned()),
        Err(fluxgate::Error::Rejected(rejected)) => {
            (StatusCode::SERVICE_UNAVAILABLE, rejected.to_string())
        }
        Err(fluxgate::Error::Inner(error)) => (StatusCode::BAD_GATEWAY, error.to_string()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|a| a == "--once");
    let addr = std::env::var("APP_ADDR")
        .unwrap_or_else(|_| if once { "127.0.0.1:0" } else { "0.0.0.0:8000" }.to_owned());

    let cb = Arc::new(
        AsyncCircuitBreaker::builder("api_gateway")
            .tripper(FailureStreak::new(3))
            .listener(PrometheusListener::new())
            .build()?,
    );

    let app = Router::new()
        .route("/gateway", get(gateway))
        .with_state(cb)
        // Mount the Prometheus metrics endpoint.
        .merge(axum_router(prometheus::default_registry()));

    let listener = tokio::net::TcpListener::bind(addr.as_str()).await?;
    let local = listener.local_addr()?;
    println!("gateway: http://{local}/gateway, metrics: http://{local}/metrics");

    if once {
        tokio::spawn(async move { axum::serve(listener, app).await });
        for _ in 0..4 {
            println!("GET /gateway -> {}", get_body(local, "/gateway").await?);
        }
        let metrics = get_body(local, "/metrics").await?;
        for line in metrics.lines().filter(|l| l.contains("api_gateway")) {
            println!("{line}");
        }
        return Ok(());
    }
    axum::serve(listener, app).await?;
    Ok(())
}

async fn get_body(addr: std::net::SocketAddr, path: &'static str) -> io::Result<String> {
    // A plain blocking request on a blocking thread, so the example needs no HTTP client.
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr)?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes())?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default())
    })
    .await?
}
