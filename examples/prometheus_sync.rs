//! The seed's "sync circuit breaker" section: `start_http_server(8000)` and a breaker
//! with `PrometheusListener::new()`; metrics at http://localhost:8000/metrics.
//!
//! ```text
//! cargo run --example prometheus_sync --features prometheus            # serves until Ctrl-C
//! cargo run --example prometheus_sync --features prometheus -- --once  # trips, scrapes itself, exits
//! ```
//!
//! `METRICS_ADDR` overrides the address (default `0.0.0.0:8000`; with `--once`,
//! `127.0.0.1:0`, a free port).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use fluxgate::CircuitBreaker;
use fluxgate::listeners::prometheus::{PrometheusListener, start_http_server};
use fluxgate::retries::Cooldown;
use fluxgate::trippers::FailureStreak;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let once = std::env::args().any(|a| a == "--once");
    let addr = std::env::var("METRICS_ADDR")
        .unwrap_or_else(|_| if once { "127.0.0.1:0" } else { "0.0.0.0:8000" }.to_owned());

    // Start the Prometheus metrics server.
    let server = start_http_server(addr.as_str())?;

    let cb = CircuitBreaker::builder("payment_api")
        .tripper(FailureStreak::new(3))
        .retry(Cooldown::new(Duration::from_secs(10)))
        .listener(PrometheusListener::new())
        .build()?;

    println!("metrics: http://{}/metrics", server.local_addr());

    if once {
        for _ in 0..3 {
            let _ = cb.call(|| Err::<(), _>(io::Error::other("payment service down")));
        }
        let body = scrape(server.local_addr())?;
        for line in body.lines().filter(|l| l.contains("payment_api")) {
            println!("{line}");
        }
        server.shutdown();
        return Ok(());
    }

    // A payment service that fails now and then.
    for i in 0u64.. {
        let result = cb.call(|| {
            if i % 7 < 4 {
                Ok(())
            } else {
                Err(io::Error::other("payment service down"))
            }
        });
        println!(
            "call {i}: {:?} (state {})",
            result.map_err(|e| e.to_string()),
            cb.info().state
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}

/// `GET /metrics` over a plain TCP connection, so the example needs no HTTP client.
fn scrape(addr: SocketAddr) -> io::Result<String> {
    let mut stream = TcpStream::connect(addr)?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default())
}
