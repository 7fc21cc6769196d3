//! The seed's "monitoring several circuit breakers" section: one `PrometheusListener`
//! instance shared by every breaker; each breaker is its own `circuit_name`.
//!
//! ```text
//! cargo run --example prometheus_multiple --features prometheus            # serves until Ctrl-C
//! cargo run --example prometheus_multiple --features prometheus -- --once  # prints, exits
//! ```
//!
//! `METRICS_ADDR` overrides the address (default `0.0.0.0:8000`; with `--once`,
//! `127.0.0.1:0`).

use std::io;
use std::time::Duration;

use fluxgate::CircuitBreaker;
use fluxgate::listeners::prometheus::{PrometheusListener, encode_text, start_http_server};
use fluxgate::trippers::FailureStreak;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|a| a == "--once");
    let addr = std::env::var("METRICS_ADDR")
        .unwrap_or_else(|_| if once { "127.0.0.1:0" } else { "0.0.0.0:8000" }.to_owned());
    let server = start_http_server(addr.as_str())?;

    // Reuse one listener instance.
    let listener = PrometheusListener::new();

    let payment_cb = CircuitBreaker::builder("payment_api")
        .tripper(FailureStreak::new(3))
        .listener(listener.clone())
        .build()?;
    let inventory_cb = CircuitBreaker::builder("inventory_api")
        .tripper(FailureStreak::new(3))
        .listener(listener.clone())
        .build()?;

    println!("metrics: http://{}/metrics", server.local_addr());

    let mut tick = 0u64;
    loop {
        // The payment service is down; the inventory service is fine.
        let _ = payment_cb.call(|| Err::<(), _>(io::Error::other("payment service down")));
        let _ = inventory_cb.call(|| Ok::<_, io::Error>(()));
        tick += 1;
        println!(
            "payment_api: {}, inventory_api: {}",
            payment_cb.info().state,
            inventory_cb.info().state
        );
        if once {
            if tick == 3 {
                break;
            }
        } else {
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    let text = encode_text(listener.registry())?;
    for line in text
        .lines()
        .filter(|l| l.starts_with("circuit_breaker_state{"))
    {
        println!("{line}");
    }
    server.shutdown();
    Ok(())
}
