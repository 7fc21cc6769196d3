//! Makes `N` calls of one kind through a breaker, for counting instructions per call with
//! `valgrind --tool=callgrind` (a count does not depend on what else the machine does).
//!
//! ```text
//! cargo build --release -p fluxgate-bench --example instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/instructions closed 0
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/instructions closed 200000
//! ```
//!
//! (the second total minus the first, divided by 200 000). Kinds: `closed` (default
//! config), `closed_store` (the same with a state store attached), `pct1` (1 % failures),
//! `open` (rejection while open), `forced` (rejection while forced open), `timed`
//! (`TimeWindow(60 s)` + `MinRequests(100) & SlowRate(0.5, 1 s)`), `calls` (closed, with a
//! listener that wants every call), `prometheus_calls` (closed, with the Prometheus
//! listener's call metrics; feature `prometheus`).

use std::hint::black_box;
use std::time::Duration;

use fluxgate::trippers::{FailureStreak, MinRequests, SlowRate};
use fluxgate::{CircuitBreaker, retries::Cooldown, windows::TimeWindow};

fn work() -> Result<u64, std::io::Error> {
    Ok(black_box(1))
}

fn fail() -> Result<u64, std::io::Error> {
    Err(std::io::Error::other("down"))
}

/// Counts the calls it hears of (`calls` kind).
struct CountCalls(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl fluxgate::listeners::Listener for CountCalls {
    fn on_signal(&self, _: &fluxgate::Signal) -> Result<(), fluxgate::listeners::ListenerError> {
        Ok(())
    }
    fn wants_calls(&self) -> bool {
        true
    }
    fn on_call(&self, _: &fluxgate::listeners::CallEvent<'_>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().unwrap_or_else(|| "closed".into());
    let n: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let default = || {
        CircuitBreaker::builder("b")
            .build()
            .expect("a valid config")
    };
    match kind.as_str() {
        "closed" => {
            let cb = default();
            (0..n).for_each(|_| drop(black_box(cb.call(work))));
        }
        "closed_store" => {
            // The same breaker in a fleet: an in-memory state store attached.
            let store = fluxgate::store::MemoryStore::new(fluxgate::clock::SystemClock::new());
            let cb = CircuitBreaker::builder("b")
                .store(store)
                .build()
                .expect("a valid config");
            (0..n).for_each(|_| drop(black_box(cb.call(work))));
        }
        "pct1" => {
            let cb = default();
            for i in 0..n {
                drop(black_box(if i % 100 == 0 {
                    cb.call(fail)
                } else {
                    cb.call(work)
                }));
            }
        }
        "open" => {
            let cb = CircuitBreaker::builder("b")
                .tripper(FailureStreak::new(1))
                .retry(Cooldown::new(Duration::from_secs(3600)))
                .build()
                .expect("a valid config");
            let _ = cb.call(fail);
            (0..n).for_each(|_| drop(black_box(cb.call(work))));
        }
        "forced" => {
            let cb = default();
            cb.force_open();
            (0..n).for_each(|_| drop(black_box(cb.call(work))));
        }
        "timed" => {
            let cb = CircuitBreaker::builder("b")
                .window(TimeWindow::new(Duration::from_secs(60)))
                .tripper(MinRequests::new(100) & SlowRate::new(0.5, Duration::from_secs(1)))
                .build()
                .expect("a valid config");
            (0..n).for_each(|_| drop(black_box(cb.call(work))));
        }
        "calls" => {
            // A closed call reported to a listener that wants every call.
            let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
            let counter = seen.clone();
            let cb = CircuitBreaker::builder("b")
                .listener(CountCalls(counter))
                .build()
                .expect("a valid config");
            (0..n).for_each(|_| drop(black_box(cb.call(work))));
            assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), n);
        }
        #[cfg(feature = "prometheus")]
        "prometheus_calls" => {
            // A closed call counted and timed by the Prometheus listener's call metrics.
            use fluxgate::listeners::prometheus::PrometheusListener;
            let listener = PrometheusListener::with_registry(&Default::default())
                .and_then(PrometheusListener::with_call_metrics)
                .expect("a fresh registry");
            let cb = CircuitBreaker::builder("b")
                .listener(listener)
                .build()
                .expect("a valid config");
            (0..n).for_each(|_| drop(black_box(cb.call(work))));
        }
        other => eprintln!(
            "unknown kind {other}: closed, closed_store, pct1, open, forced, timed, calls or (feature \
             prometheus) prometheus_calls"
        ),
    }
}
