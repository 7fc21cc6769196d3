//! The seed's "async circuit breaker" section: the metrics server runs on its own thread
//! (`start_http_server`), the breaker is an `AsyncCircuitBreaker` in a tokio program.
//!
//! ```text
//! cargo run --example prometheus_async --features prometheus            # serves until Ctrl-C
//! cargo run --example prometheus_async --features prometheus -- --once  # trips, prints, exits
//! ```
//!
//! `METRICS_ADDR` overrides the address (default `0.0.0.0:8000`; with `--once`,
//! `127.0.0.1:0`).

use std::io;
use std::time::Duration;

use fluxgate::AsyncCircuitBreaker;
use fluxgate::listeners::prometheus::{PrometheusListener, encode_text, start_http_server};
use fluxgate::trippers::FailureStreak;

async fn fetch_quote(attempt: u64) -> Result<u32, io::Error> {
    tokio::time::sleep(Duration::from_millis(20)).await;
    if attempt % 5 < 3 {
        Ok(42)
    } else {
        Err(io::Error::other("quote service timed out"))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|a| a == "--once");
    let addr = std::env::var("METRICS_ADDR")
        .unwrap_or_else(|_| if once { "127.0.0.1:0" } else { "0.0.0.0:8000" }.to_owned());

    // Start the Prometheus metrics server (a separate thread, no runtime needed).
    let server = start_http_server(addr.as_str())?;

    let cb = AsyncCircuitBreaker::builder("async_api")
        .tripper(FailureStreak::new(2))
        .listener(PrometheusListener::new())
        .build()?;

    println!("metrics: http://{}/metrics", server.local_addr());

    if once {
        for _ in 0..2 {
            let _ = cb
                .call(|| async { Err::<(), _>(io::Error::other("down")) })
                .await;
        }
        let text = encode_text(prometheus::default_registry())?;
        for line in text.lines().filter(|l| l.contains("async_api")) {
            println!("{line}");
        }
        server.shutdown();
        return Ok(());
    }

    for attempt in 0u64.. {
        let result = cb.call(|| fetch_quote(attempt)).await;
        println!(
            "quote {attempt}: {:?} (state {})",
            result.map_err(|e| e.to_string()),
            cb.info().state
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}
