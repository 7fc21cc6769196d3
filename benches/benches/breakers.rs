//! fluxgate side by side with the peer circuit breakers, in one binary and one run.
//!
//! Groups (see BENCHMARKS.md for the table and the targets):
//! 1. `closed` — one successful no-op call through a closed breaker, default config;
//!    `direct` is the same closure called without a breaker; `fluxgate/store` the same
//!    breaker with a state store attached (a fleet member).
//! 2. `closed_timed` — the same with a 60-second time window and a latency rule, so
//!    every call is timed.
//! 3. `rejected` — one call refused by an open breaker.
//! 4. `threads` — two threads calling one shared breaker; the reported time is wall time
//!    divided by the calls of both threads (aggregate cost per call: lower is better,
//!    and below the one-thread figure means two threads get more done than one).
//!    `*_1pct_failures` makes every 100th call fail, so the window is written on every call.
//! 5. `async` — async call overhead on a current-thread tokio runtime, and through the
//!    tower layers (`tower/fluxgate` needs `--features tower`).
//! 6. `floors` — what the machine charges for the steps no design can skip: one and two
//!    readings of the breaker's clock (`SystemClock`: `Instant`, or the TSC with
//!    `--features quanta`), and one atomic add to a word that one or two threads share
//!    (aggregate cost per add, as in group 4). The timed-call and two-thread targets are
//!    judged against these.
//!
//! `failsafe` and `recloser` are synchronous. `breaker` and `tower-resilience` only
//! offer async calls; in groups 1–4 their futures are driven by [`block_on`] below, the
//! cheapest possible executor (their futures are ready at the first poll), and group 5
//! measures them on tokio like ours.

use std::future::Future;
use std::hint::black_box;
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use failsafe::CircuitBreaker as _;
use fluxgate::clock::{Clock, SystemClock};
use fluxgate::trippers::{MinRequests, SlowRate};
use fluxgate::windows::TimeWindow;
use fluxgate::{AsyncCircuitBreaker, CircuitBreaker};
use tower::{Layer, Service, ServiceExt};

type Res = Result<u64, io::Error>;

/// The protected work: does nothing and succeeds.
#[inline(always)]
fn work() -> Res {
    Ok(black_box(1))
}

/// The protected work of a breaker that must trip: fails.
#[inline(always)]
fn fail() -> Res {
    Err(io::Error::from(io::ErrorKind::ConnectionRefused))
}

/// Every 100th call fails (per thread): a window that never settles, so every call
/// writes it.
#[inline(always)]
fn one_in_100(i: &mut u64) -> Res {
    *i += 1;
    if *i % 100 == 0 { fail() } else { work() }
}

const HOUR: Duration = Duration::from_secs(3600);
const MINUTE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// A minimal executor for the async-only peers in the synchronous groups.

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

thread_local! {
    static WAKER: Waker = Waker::from(Arc::new(Unpark(thread::current())));
}

/// Polls `fut` to completion on this thread, parking while it is pending.
fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    WAKER.with(|waker| {
        let mut cx = Context::from_waker(waker);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            thread::park();
        }
    })
}

// ---------------------------------------------------------------------------------------
// The breakers, each configured as closely to fluxgate's default as it allows:
// the last 100 calls, at least 100 of them before judging, open at a 50 % failure rate,
// wait 60 s before probing.

fn fluxgate_default() -> CircuitBreaker {
    CircuitBreaker::builder("bench").build().unwrap()
}

fn fluxgate_timed() -> CircuitBreaker {
    CircuitBreaker::builder("bench")
        .window(TimeWindow::new(MINUTE))
        .tripper(MinRequests::new(100) & SlowRate::new(0.5, Duration::from_secs(1)))
        .build()
        .unwrap()
}

type Failsafe = failsafe::StateMachine<
    failsafe::failure_policy::SuccessRateOverTimeWindow<failsafe::backoff::Constant>,
    (),
>;

/// failsafe has no count window: its closest rule is a success rate over a time window
/// (an exponential moving average) with a minimum number of requests.
fn failsafe_default(backoff: Duration) -> Failsafe {
    let policy = failsafe::failure_policy::success_rate_over_time_window(
        0.5,
        100,
        MINUTE,
        failsafe::backoff::constant(backoff),
    );
    failsafe::Config::new().failure_policy(policy).build()
}

fn recloser_default(wait: Duration) -> recloser::Recloser {
    recloser::Recloser::custom()
        .error_rate(0.5)
        .closed_len(100)
        .half_open_len(10)
        .open_wait(wait)
        .build()
}

fn breaker_default(wait: Duration) -> breaker::CircuitBreaker {
    let config = breaker::CircuitBreakerConfig::builder()
        .failure_rate_threshold(0.5)
        .consecutive_failures(u32::MAX)
        .sliding_window_size(100)
        .minimum_calls(100)
        .half_open_max_calls(10)
        .wait_duration(wait)
        .build();
    breaker::CircuitBreaker::new(config)
}

type TowerRes = tower_resilience::circuitbreaker::CircuitBreaker<
    tower::util::ServiceFn<fn(u64) -> std::future::Ready<Res>>,
    tower_resilience::circuitbreaker::DefaultClassifier,
>;

fn ok_service(req: u64) -> std::future::Ready<Res> {
    std::future::ready(Ok(black_box(req)))
}

fn err_service(_req: u64) -> std::future::Ready<Res> {
    std::future::ready(fail())
}

fn tower_resilience_layer(
    wait: Duration,
    timed: bool,
) -> tower_resilience::circuitbreaker::CircuitBreakerLayer {
    let b = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .failure_rate_threshold(0.5)
        .minimum_number_of_calls(100)
        .permitted_calls_in_half_open(10)
        .wait_duration_in_open(wait);
    let b = if timed {
        b.sliding_window_type(tower_resilience::circuitbreaker::SlidingWindowType::TimeBased)
            .sliding_window_duration(MINUTE)
            .slow_call_duration_threshold(Duration::from_secs(1))
            .slow_call_rate_threshold(0.5)
    } else {
        b.sliding_window_size(100)
    };
    b.build().unwrap()
}

fn tower_resilience_service(wait: Duration, timed: bool) -> TowerRes {
    tower_resilience_layer(wait, timed).layer(tower::service_fn(ok_service as fn(u64) -> _))
}

/// One request through a tower service: readiness, then the call.
async fn tower_call<S: Service<u64>>(svc: &mut S) -> Result<S::Response, S::Error> {
    svc.ready().await?.call(black_box(1)).await
}

// ---------------------------------------------------------------------------------------
// 1. Closed-state call overhead.

fn closed(c: &mut Criterion) {
    let mut g = c.benchmark_group("closed");
    g.bench_function("direct", |b| b.iter(|| black_box(work())));

    let cb = fluxgate_default();
    g.bench_function("fluxgate", |b| b.iter(|| black_box(cb.call(work))));

    // The same breaker in a fleet (an in-memory store attached): the call path is the
    // same, so is its cost.
    let store = fluxgate::store::MemoryStore::new(fluxgate::clock::SystemClock::new());
    let fleet = CircuitBreaker::builder("bench")
        .store(store)
        .build()
        .unwrap();
    g.bench_function("fluxgate/store", |b| b.iter(|| black_box(fleet.call(work))));

    let fs = failsafe_default(MINUTE);
    g.bench_function("failsafe", |b| b.iter(|| black_box(fs.call(work))));

    let rc = recloser_default(MINUTE);
    g.bench_function("recloser", |b| b.iter(|| black_box(rc.call(work))));

    let br = breaker_default(MINUTE);
    g.bench_function("breaker", |b| {
        b.iter(|| black_box(block_on(br.call(|| async { work() }))))
    });

    let mut tr = tower_resilience_service(MINUTE, false);
    g.bench_function("tower-resilience", |b| {
        b.iter(|| black_box(block_on(tower_call(&mut tr))))
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------
// 2. Closed-state call, every call timed: 60-second time window and a slow-call rule.

fn closed_timed(c: &mut Criterion) {
    let mut g = c.benchmark_group("closed_timed");
    g.bench_function("direct", |b| b.iter(|| black_box(work())));
    g.bench_function("Instant::now", |b| b.iter(|| black_box(Instant::now())));

    let cb = fluxgate_timed();
    g.bench_function("fluxgate", |b| b.iter(|| black_box(cb.call(work))));

    // failsafe's default policy is already over a time window (it has no slow-call rule).
    let fs = failsafe_default(MINUTE);
    g.bench_function("failsafe", |b| b.iter(|| black_box(fs.call(work))));

    // The only peer with a time window and a slow-call rule.
    let mut tr = tower_resilience_service(MINUTE, true);
    g.bench_function("tower-resilience", |b| {
        b.iter(|| black_box(block_on(tower_call(&mut tr))))
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------
// 3. Rejection cost in the open state (the wait is an hour, so the breakers stay open).

fn rejected(c: &mut Criterion) {
    let mut g = c.benchmark_group("rejected");

    let cb = CircuitBreaker::builder("bench")
        .tripper(fluxgate::trippers::FailureStreak::new(1))
        .retry(fluxgate::retries::Cooldown::new(HOUR))
        .build()
        .unwrap();
    let _ = cb.call(fail);
    assert_eq!(cb.state(), fluxgate::State::Open);
    g.bench_function("fluxgate/open", |b| b.iter(|| black_box(cb.call(work))));

    let forced = fluxgate_default();
    forced.force_open();
    g.bench_function("fluxgate/forced_open", |b| {
        b.iter(|| black_box(forced.call(work)))
    });

    let fs = failsafe::Config::new()
        .failure_policy(failsafe::failure_policy::consecutive_failures(
            1,
            failsafe::backoff::constant(HOUR),
        ))
        .build();
    let _ = fs.call(fail);
    assert!(!fs.is_call_permitted());
    g.bench_function("failsafe", |b| b.iter(|| black_box(fs.call(work))));

    let rc = recloser::Recloser::custom()
        .error_rate(0.5)
        .closed_len(1)
        .open_wait(HOUR)
        .build();
    for _ in 0..2 {
        let _ = rc.call(fail);
    }
    assert!(matches!(rc.call(work), Err(recloser::Error::Rejected)));
    g.bench_function("recloser", |b| b.iter(|| black_box(rc.call(work))));

    let br = breaker_default(HOUR);
    br.trip();
    assert!(br.is_open());
    g.bench_function("breaker", |b| {
        b.iter(|| black_box(block_on(br.call(|| async { work() }))))
    });

    let mut tr = tower_resilience::circuitbreaker::CircuitBreakerLayer::builder()
        .consecutive_failures(1)
        .wait_duration_in_open(HOUR)
        .build()
        .unwrap()
        .layer(tower::service_fn(err_service as fn(u64) -> _));
    let _ = block_on(tower_call(&mut tr));
    assert!(block_on(tower_call(&mut tr)).is_err());
    g.bench_function("tower-resilience", |b| {
        b.iter(|| black_box(block_on(tower_call(&mut tr))))
    });
    g.finish();
}

// ---------------------------------------------------------------------------------------
// 4. Two threads, one shared breaker: aggregate cost per call.

/// Runs `iters` calls of `f` split over `threads` threads (the calling one included),
/// each with its own state from `make`, and returns the wall time from a common start
/// until every thread is done.
fn split<S, M, F>(threads: usize, iters: u64, make: M, f: F) -> Duration
where
    M: Fn() -> S + Sync,
    F: Fn(&mut S) + Sync,
{
    let per = iters.div_ceil(threads as u64);
    let barrier = Barrier::new(threads);
    let run = || {
        let mut state = make();
        barrier.wait();
        for _ in 0..per {
            f(&mut state);
        }
    };
    thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(run);
        }
        let mut state = make();
        barrier.wait();
        let start = Instant::now();
        for _ in 0..per {
            f(&mut state);
        }
        start
    })
    // `scope` returns after joining every thread.
    .elapsed()
}

fn threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("threads");
    for n in [1usize, 2] {
        let cb = fluxgate_default();
        g.bench_function(format!("fluxgate/{n}"), |b| {
            b.iter_custom(|iters| split(n, iters, || (), |_| drop(black_box(cb.call(work)))))
        });
        let cb = fluxgate_timed();
        g.bench_function(format!("fluxgate_timed/{n}"), |b| {
            b.iter_custom(|iters| split(n, iters, || (), |_| drop(black_box(cb.call(work)))))
        });
        let cb = fluxgate_default();
        g.bench_function(format!("fluxgate_1pct_failures/{n}"), |b| {
            b.iter_custom(|iters| {
                split(
                    n,
                    iters,
                    || 0,
                    |i| drop(black_box(cb.call(|| one_in_100(i)))),
                )
            })
        });
        let fs = failsafe_default(MINUTE);
        g.bench_function(format!("failsafe/{n}"), |b| {
            b.iter_custom(|iters| split(n, iters, || (), |_| drop(black_box(fs.call(work)))))
        });
        let rc = recloser_default(MINUTE);
        g.bench_function(format!("recloser/{n}"), |b| {
            b.iter_custom(|iters| split(n, iters, || (), |_| drop(black_box(rc.call(work)))))
        });
        let rc = recloser_default(MINUTE);
        g.bench_function(format!("recloser_1pct_failures/{n}"), |b| {
            b.iter_custom(|iters| {
                split(
                    n,
                    iters,
                    || 0,
                    |i| drop(black_box(rc.call(|| one_in_100(i)))),
                )
            })
        });
        let br = breaker_default(MINUTE);
        g.bench_function(format!("breaker/{n}"), |b| {
            b.iter_custom(|iters| {
                split(
                    n,
                    iters,
                    || (),
                    |_| drop(black_box(block_on(br.call(|| async { work() })))),
                )
            })
        });
        // Each thread calls its own clone of the service; clones share one circuit.
        let tr = tower_resilience_service(MINUTE, false);
        g.bench_function(format!("tower-resilience/{n}"), |b| {
            b.iter_custom(|iters| {
                split(
                    n,
                    iters,
                    || tr.clone(),
                    |svc| drop(black_box(block_on(tower_call(svc)))),
                )
            })
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------
// 5. Async call overhead on a current-thread tokio runtime.

/// Times `iters` awaited calls inside one `block_on`, so the runtime's entry cost is not
/// part of the figure.
fn on_tokio<F, Fut>(rt: &tokio::runtime::Runtime, iters: u64, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            black_box(f().await);
        }
        start.elapsed()
    })
}

fn asynchronous(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("async");

    g.bench_function("direct", |b| {
        b.iter_custom(|iters| on_tokio(&rt, iters, || async { work() }))
    });

    let cb = AsyncCircuitBreaker::builder("bench").build().unwrap();
    g.bench_function("fluxgate", |b| {
        b.iter_custom(|iters| on_tokio(&rt, iters, || cb.call(|| async { work() })))
    });

    let br = breaker_default(MINUTE);
    g.bench_function("breaker", |b| {
        b.iter_custom(|iters| on_tokio(&rt, iters, || br.call(|| async { work() })))
    });

    g.bench_function("tower/direct", |b| {
        let mut svc = tower::service_fn(ok_service);
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(tower_call(&mut svc).await).ok();
                }
                start.elapsed()
            })
        })
    });

    #[cfg(feature = "tower")]
    {
        let breaker = AsyncCircuitBreaker::builder("bench").build().unwrap();
        let mut svc =
            fluxgate::tower::CircuitBreakerLayer::new(breaker).layer(tower::service_fn(ok_service));
        g.bench_function("tower/fluxgate", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        black_box(tower_call(&mut svc).await).ok();
                    }
                    start.elapsed()
                })
            })
        });
    }

    let mut tr = tower_resilience_service(MINUTE, false);
    g.bench_function("tower/tower-resilience", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(tower_call(&mut tr).await).ok();
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .noise_threshold(0.05)
        .configure_from_args()
}

// ---------------------------------------------------------------------------------------
// 6. Opt-in call metrics: a closed call reported to a listener that wants calls.

/// The cheapest listener that wants calls: one relaxed add per call.
#[derive(Default)]
struct CountCalls(std::sync::atomic::AtomicU64);

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

fn call_metrics(c: &mut Criterion) {
    let mut g = c.benchmark_group("call_metrics");
    let cb = fluxgate_default();
    g.bench_function("fluxgate", |b| b.iter(|| black_box(cb.call(work))));
    let counted = CircuitBreaker::builder("counted")
        .listener(CountCalls::default())
        .build()
        .expect("a valid config");
    g.bench_function("fluxgate + counting listener", |b| {
        b.iter(|| black_box(counted.call(work)))
    });
    #[cfg(feature = "prometheus")]
    {
        use fluxgate::listeners::prometheus::PrometheusListener;
        let listener = PrometheusListener::with_registry(&prometheus::Registry::new())
            .and_then(PrometheusListener::with_call_metrics)
            .expect("a fresh registry");
        let exported = CircuitBreaker::builder("exported")
            .listener(listener)
            .build()
            .expect("a valid config");
        g.bench_function("fluxgate + PrometheusListener call metrics", |b| {
            b.iter(|| black_box(exported.call(work)))
        });
    }
    g.finish();
}

// ---------------------------------------------------------------------------------------
// 6. Floors: the clock readings a timed call needs, and a shared atomic add.

/// A word alone on its cache line (two lines: adjacent-line prefetch pairs them).
#[repr(align(128))]
struct Line(AtomicU64);

fn floors(c: &mut Criterion) {
    let mut g = c.benchmark_group("floors");
    let clock = SystemClock::new();
    g.bench_function("clock_read", |b| b.iter(|| black_box(clock.now_nanos())));
    // A timed call's two readings (start and end), nothing else.
    g.bench_function("two_clock_reads", |b| {
        b.iter(|| {
            let start = clock.now_nanos();
            black_box(clock.now_nanos().saturating_sub(black_box(start)))
        })
    });
    let word = Line(AtomicU64::new(0));
    for n in [1usize, 2] {
        g.bench_function(format!("shared_fetch_add/{n}"), |b| {
            b.iter_custom(|iters| {
                split(
                    n,
                    iters,
                    || (),
                    |_| {
                        black_box(word.0.fetch_add(1, Ordering::Relaxed));
                    },
                )
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = config();
    targets = closed, closed_timed, rejected, threads, asynchronous, call_metrics, floors
}
criterion_main!(benches);
