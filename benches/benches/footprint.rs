//! Memory per breaker, and the `/metrics` exposition of 10 000 circuits (BENCHMARKS.md,
//! group 6).
//!
//! Memory is counted by a global allocator that tracks live heap bytes: a breaker's cost
//! is the growth of the heap while 1 000 of them are built, divided by 1 000, plus the
//! size of the handle itself. That is the bytes asked of the allocator; its own
//! bookkeeping per allocation is not included.
//!
//! The exposition part needs the feature `prometheus`:
//! `cargo bench --bench footprint --features prometheus`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tower::Layer;

/// The system allocator, counting live bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the counter is
// only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes one value built by `make` holds: heap growth over 1 000 of them, plus the
/// value's own size.
fn bytes_per<T>(make: impl Fn(usize) -> T) -> usize {
    const N: usize = 1000;
    let mut keep = Vec::with_capacity(N);
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..N {
        keep.push(make(i));
    }
    let after = LIVE.load(Ordering::Relaxed);
    black_box(&keep);
    (after - before) as usize / N + std::mem::size_of::<T>()
}

const MINUTE: Duration = Duration::from_secs(60);

fn memory(_c: &mut Criterion) {
    let names: Vec<String> = (0..1000).map(|i| format!("circuit_{i:04}")).collect();
    let rows: [(&str, usize); 7] = [
        (
            "fluxgate (default: CountWindow(100))",
            bytes_per(|i| {
                fluxgate::CircuitBreaker::builder(&names[i])
                    .build()
                    .unwrap()
            }),
        ),
        (
            "fluxgate (TimeWindow(60 s) + SlowRate)",
            bytes_per(|i| {
                fluxgate::CircuitBreaker::builder(&names[i])
                    .window(fluxgate::windows::TimeWindow::new(MINUTE))
                    .tripper(
                        fluxgate::trippers::MinRequests::new(100)
                            & fluxgate::trippers::SlowRate::new(0.5, Duration::from_secs(1)),
                    )
                    .build()
                    .unwrap()
            }),
        ),
        (
            "fluxgate async (default)",
            bytes_per(|i| {
                fluxgate::AsyncCircuitBreaker::builder(&names[i])
                    .build()
                    .unwrap()
            }),
        ),
        (
            "failsafe (success rate over 60 s)",
            bytes_per(|_| {
                failsafe::Config::new()
                    .failure_policy(failsafe::failure_policy::success_rate_over_time_window(
                        0.5,
                        100,
                        MINUTE,
                        failsafe::backoff::constant(MINUTE),
                    ))
                    .build()
            }),
        ),
        (
            "recloser (ring of 100)",
            bytes_per(|_| recloser::Recloser::custom().closed_len(100).build()),
        ),
        (
            "breaker (window of 100)",
            bytes_per(|_| {
                breaker::CircuitBreaker::new(
                    breaker::CircuitBreakerConfig::builder()
                        .sliding_window_size(100)
                        .build(),
                )
            }),
        ),
        (
            "tower-resilience (window of 100, one service)",
            bytes_per(|_| {
                tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
                    .sliding_window_size(100)
                    .build()
                    .unwrap()
                    .layer(tower::service_fn(|r: u64| async move {
                        Ok::<_, std::io::Error>(r)
                    }))
            }),
        ),
    ];
    println!("\nmemory per breaker (heap bytes asked of the allocator + handle size)");
    for (name, bytes) in rows {
        println!("memory/{name:<48} {bytes:>7} B");
    }
    println!();
}

#[cfg(feature = "prometheus")]
fn exposition(c: &mut Criterion) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::sync::Arc;

    use fluxgate::listeners::Listener;
    use fluxgate::listeners::prometheus::{
        MetricsServer, PrometheusListener, StatusSource, encode_text, status_json,
    };

    const CIRCUITS: usize = 10_000;

    // The listener's own memory per circuit: heap growth while 10 000 circuits are
    // attached (names included), next to the same series in the prometheus crate's vectors.
    let names: Vec<String> = (0..CIRCUITS).map(|i| format!("tenant_{i:05}")).collect();
    let per_circuit = |attach: &dyn Fn(&str)| {
        let before = LIVE.load(Ordering::Relaxed);
        for name in &names {
            attach(name);
        }
        (LIVE.load(Ordering::Relaxed) - before) as usize / CIRCUITS
    };
    let measured = PrometheusListener::with_registry(&prometheus::Registry::new()).unwrap();
    let listener_bytes = per_circuit(&|name| measured.on_attach(name, fluxgate::State::Closed));
    let gauges = prometheus::IntGaugeVec::new(
        prometheus::Opts::new("circuit_breaker_state", "help"),
        &["circuit_name", "state"],
    )
    .unwrap();
    let counters = prometheus::IntCounterVec::new(
        prometheus::Opts::new("circuit_breaker_state_transition_total", "help"),
        &["circuit_name", "old_state", "new_state"],
    )
    .unwrap();
    let vectors_bytes = per_circuit(&|name| {
        for state in fluxgate::State::ALL {
            gauges
                .with_label_values(&[name, state.as_str()])
                .set(i64::from(state == fluxgate::State::Closed));
        }
        for (old, new) in [
            ("closed", "open"),
            ("open", "half_open"),
            ("half_open", "open"),
            ("half_open", "closed"),
        ] {
            counters.with_label_values(&[name, old, new]).inc_by(0);
        }
    });
    println!(
        "memory/listener per circuit: {listener_bytes} B (the same 10 series in IntGaugeVec + IntCounterVec: {vectors_bytes} B)"
    );
    drop((measured, gauges, counters));
    let registry = prometheus::Registry::new();
    let listener: Arc<dyn Listener> =
        Arc::new(PrometheusListener::with_registry(&registry).unwrap());
    let breakers: Vec<_> = (0..CIRCUITS)
        .map(|i| {
            fluxgate::CircuitBreaker::builder(&format!("tenant_{i:05}"))
                .listener(listener.clone())
                .build()
                .unwrap()
        })
        .collect();
    // Some circuits have moved, as in a real fleet.
    for cb in breakers.iter().step_by(10) {
        cb.force_open();
    }
    let text = encode_text(&registry).unwrap();
    println!(
        "exposition: {CIRCUITS} circuits, {} series, {} bytes",
        text.lines().filter(|l| !l.starts_with('#')).count(),
        text.len()
    );

    let direct = encode_text(&registry).unwrap();
    let gathered = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert_eq!(
        direct, gathered,
        "the direct writer must give the bytes of gather"
    );

    let mut g = c.benchmark_group("exposition");
    g.sample_size(20);
    g.bench_function("encode_text/10000", |b| {
        b.iter(|| black_box(encode_text(&registry).unwrap()))
    });
    g.bench_function("gather+TextEncoder/10000", |b| {
        b.iter(|| {
            black_box(
                prometheus::TextEncoder::new()
                    .encode_to_string(&registry.gather())
                    .unwrap(),
            )
        })
    });

    let get = |addr: std::net::SocketAddr, path: &str| {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").as_bytes())
            .unwrap();
        let mut reader = BufReader::new(stream);
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        body
    };
    let breakers = Arc::new(breakers);
    let server = MetricsServer::builder("127.0.0.1:0")
        .registry(&registry)
        .status(Arc::clone(&breakers))
        .start()
        .unwrap();
    let addr = server.local_addr();
    // Scrapes within a second share one body: this is the cost of sending it.
    g.bench_function("http_get/10000", |b| {
        b.iter(|| black_box(get(addr, "/metrics")))
    });
    // A scrape that finds no body to share: encoding plus sending. Each one goes to a
    // server started (untimed) for it.
    g.bench_function("http_get_fresh/10000", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let fresh = MetricsServer::builder("127.0.0.1:0")
                    .registry(&registry)
                    .start()
                    .unwrap();
                let started = std::time::Instant::now();
                black_box(get(fresh.local_addr(), "/metrics"));
                total += started.elapsed();
                fresh.shutdown();
            }
            total
        })
    });
    g.bench_function("status_json/10000", |b| {
        b.iter(|| black_box(status_json(&breakers.statuses())))
    });
    g.finish();
    server.shutdown();
    drop(breakers);
}

#[cfg(not(feature = "prometheus"))]
fn exposition(_c: &mut Criterion) {
    println!("exposition: skipped (needs --features prometheus)");
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = memory, exposition
}
criterion_main!(benches);
