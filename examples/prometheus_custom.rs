//! The seed's "custom metrics" section: a listener of your own (`IListener`, the seed's
//! name for [`fluxgate::listeners::Listener`]) that exports its own counter next to the
//! built-in series, in the same default registry.
//!
//! ```text
//! cargo run --example prometheus_custom --features prometheus            # serves until Ctrl-C
//! cargo run --example prometheus_custom --features prometheus -- --once  # prints, exits
//! ```
//!
//! `METRICS_ADDR` overrides the address (default `0.0.0.0:8000`; with `--once`,
//! `127.0.0.1:0`).

use std::time::Duration;

use fluxgate::interfaces::IListener;
use fluxgate::listeners::ListenerError;
use fluxgate::listeners::prometheus::{PrometheusListener, encode_text, start_http_server};
use fluxgate::{CircuitBreaker, Signal};
use prometheus::{IntCounterVec, Opts};

/// Counts every transition of every circuit in `my_custom_metric{circuit_name}`.
struct CustomListener {
    custom_metric: IntCounterVec,
}

impl CustomListener {
    fn new() -> Result<Self, prometheus::Error> {
        let custom_metric = IntCounterVec::new(
            Opts::new("my_custom_metric", "Description"),
            &["circuit_name"],
        )?;
        prometheus::register(Box::new(custom_metric.clone()))?;
        Ok(CustomListener { custom_metric })
    }
}

impl IListener for CustomListener {
    fn on_signal(&self, signal: &Signal) -> Result<(), ListenerError> {
        // Custom logic.
        self.custom_metric
            .get_metric_with_label_values(&[&signal.circuit_name])?
            .inc();
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|a| a == "--once");
    let addr = std::env::var("METRICS_ADDR")
        .unwrap_or_else(|_| if once { "127.0.0.1:0" } else { "0.0.0.0:8000" }.to_owned());
    let server = start_http_server(addr.as_str())?;

    let cb = CircuitBreaker::builder("payment_api")
        .listener(PrometheusListener::new())
        .listener(CustomListener::new()?)
        .build()?;
    println!("metrics: http://{}/metrics", server.local_addr());

    loop {
        cb.force_open();
        cb.reset();
        if once {
            break;
        }
        std::thread::sleep(Duration::from_secs(5));
    }

    let text = encode_text(prometheus::default_registry())?;
    for line in text.lines().filter(|l| l.starts_with("my_custom_metric")) {
        println!("{line}");
    }
    server.shutdown();
    Ok(())
}
