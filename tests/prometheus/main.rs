//! The Prometheus integration: the three backends, the server, the axum route, promtool
//! and a real Prometheus scraping it.

#[path = "../support/mod.rs"]
mod support;

mod axum_route;
mod breaker;
mod call_metrics;
mod client_backend;
mod e2e;
mod exposition;
mod hostile;
mod listener;
mod metrics_backend;
mod promtool;
mod server;
mod status;
mod store_gauge;
