//! Extension points: a user's closures and types take the places of the crate's own
//! components (trippers TR-8, trackers TK-2, retries, permits, listeners L-5) and `call_any`
//! protects closures whose error is not a `std::error::Error` (CF-1 for any error type).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fluxgate::clock::ManualClock;
use fluxgate::listeners::{AsyncListener, Listener, ListenerError};
use fluxgate::retries::RetryContext;
use fluxgate::trackers::{self, Tracker, TrackerExt, TypeOf};
use fluxgate::trippers::{
    self, Closed, FailureRate, FailureStreak, MinRequests, SlowRate, TripContext, Tripper,
    TripperExt,
};
use fluxgate::{AsyncCircuitBreaker, CircuitBreaker, Error, Metric, Opaque, Signal, State};

fn ctx(m: &Metric, streak: u64) -> TripContext<'_> {
    TripContext::new(m, State::Closed, streak)
}

fn metric(total: u64, failures: u64) -> Metric {
    Metric::new(total, failures, Duration::ZERO, &[])
}

#[test]
fn tr8_a_closure_is_a_tripper_of_a_breaker() {
    let cb = CircuitBreaker::builder("closure")
        .tripper(|c: &TripContext<'_>| c.consecutive_failures >= 2)
        .build()
        .unwrap();
    let _ = cb.call(|| Err::<(), _>(io::Error::other("x")));
    assert_eq!(cb.state(), State::Closed);
    let _ = cb.call(|| Err::<(), _>(io::Error::other("x")));
    assert_eq!(cb.state(), State::Open);
}

#[test]
fn tr8_closures_combine_on_either_side_of_built_ins() {
    let streak3 = |c: &TripContext<'_>| c.consecutive_failures >= 3;
    let built_in_left = MinRequests::new(10) & FailureRate::new(0.5) | streak3;
    let closure_left = trippers::from_fn(streak3) | (MinRequests::new(10) & FailureRate::new(0.5));
    let ext = streak3.or(MinRequests::new(10).and(FailureRate::new(0.5)));
    let cases = [
        (metric(4, 1), 3, true),
        (metric(4, 1), 2, false),
        (metric(10, 5), 0, true),
        (metric(10, 4), 2, false),
    ];
    for (m, streak, want) in cases {
        let c = ctx(&m, streak);
        assert_eq!(built_in_left.trip(&c), want, "{m:?} {streak}");
        assert_eq!(closure_left.trip(&c), want, "{m:?} {streak}");
        assert_eq!(ext.trip(&c), want, "{m:?} {streak}");
    }
}

#[test]
fn tr8_not_negates_built_ins_closures_and_user_types() {
    struct Never;
    impl Tripper for Never {
        fn trip(&self, _: &TripContext<'_>) -> bool {
            false
        }
    }
    let m = metric(1, 1);
    let c = ctx(&m, 1);
    assert!(!(!Closed).trip(&c));
    assert!(!(!!(!Closed)).trip(&c));
    assert!(Never.not().trip(&c));
    assert!((!trippers::from_fn(|_: &TripContext<'_>| false)).trip(&c));
    assert!(Never.not().and(Closed).trip(&c));
    assert!(!Never.or(Never).trip(&c));
}

#[test]
fn tr8_negation_and_shared_trippers_keep_validation_and_latency_needs() {
    // A bad parameter inside `!` or behind an Arc is still a ConfigError at build().
    let err = CircuitBreaker::builder("x")
        .tripper(!FailureRate::new(1.5))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("FailureRate"), "{err}");
    let shared: Arc<dyn Tripper> = Arc::new(FailureStreak::new(0));
    let err = CircuitBreaker::builder("x")
        .tripper(shared)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("FailureStreak"), "{err}");
    // The latency rule under `!` still makes the breaker time its calls.
    let rule = !SlowRate::new(0.5, Duration::from_millis(10));
    assert!(rule.needs_durations());
    let mut out = Vec::new();
    rule.slow_thresholds(&mut out);
    assert_eq!(out, [Duration::from_millis(10)]);
    let boxed: Box<dyn Tripper> = Box::new(rule);
    assert!(boxed.needs_durations());
}

#[test]
fn tk2_closures_are_trackers_and_combine() {
    let not_found = |e: &(dyn std::error::Error + 'static)| e.to_string().contains("404");
    let t = not_found.not().and(TypeOf::<io::Error>::new());
    assert!(t.track(&io::Error::other("503")));
    assert!(!t.track(&io::Error::other("404")));
    assert!(!t.track(&std::fmt::Error));
    let t = !trackers::from_fn(not_found) & TypeOf::<io::Error>::new();
    assert!(t.track(&io::Error::other("503")));
    assert!(!t.track(&io::Error::other("404")));

    let cb = CircuitBreaker::builder("tk")
        .tracker(not_found.not())
        .build()
        .unwrap();
    let _ = cb.call(|| Err::<(), _>(io::Error::other("404")));
    let _ = cb.call(|| Err::<(), _>(io::Error::other("500")));
    assert_eq!(cb.info().metric.failure_count, 1);
    assert_eq!(cb.info().metric.total_count, 1);
}

#[test]
fn rt_a_closure_is_a_retry_policy() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("retry")
        .clock(clock.clone())
        .tripper(FailureStreak::new(1))
        .retry(|c: &RetryContext| Some(Duration::from_secs(5) * (c.reopens + 1)))
        .permit(fluxgate::permits::All)
        .build()
        .unwrap();
    let _ = cb.call(|| Err::<(), _>(io::Error::other("x")));
    assert_eq!(cb.state(), State::Open);
    clock.advance(Duration::from_secs(4));
    let Err(Error::Rejected(r)) = cb.call(|| Ok::<_, io::Error>(())) else {
        panic!("admitted before the closure's wait")
    };
    assert_eq!(r.retry_after(), Some(Duration::from_secs(1)));
    clock.advance(Duration::from_secs(1));
    assert!(cb.call(|| Ok::<_, io::Error>(())).is_ok());
    assert_eq!(cb.state(), State::Closed);
}

#[test]
fn p_a_closure_is_a_permit() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("permit")
        .clock(clock.clone())
        .tripper(FailureStreak::new(1))
        .retry(fluxgate::retries::Always)
        .permit(|since: Duration| since >= Duration::from_secs(2))
        .build()
        .unwrap();
    let _ = cb.call(|| Err::<(), _>(io::Error::other("x")));
    // open → half_open at once (Always), but the permit refuses for 2 s.
    assert!(
        cb.call(|| Ok::<_, io::Error>(()))
            .unwrap_err()
            .is_rejected()
    );
    assert_eq!(cb.state(), State::HalfOpen);
    clock.advance(Duration::from_secs(2));
    assert!(cb.call(|| Ok::<_, io::Error>(())).is_ok());
    assert_eq!(cb.state(), State::Closed);
}

#[derive(Default)]
struct Recorder {
    attached: Mutex<Vec<String>>,
    signals: AtomicUsize,
    detached: Mutex<Vec<String>>,
}

impl Listener for Recorder {
    fn on_signal(&self, _: &Signal) -> Result<(), ListenerError> {
        self.signals.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
    fn on_attach(&self, name: &str, _: State) {
        self.attached.lock().unwrap().push(name.to_owned());
    }
    fn on_detach(&self, name: &str) {
        self.detached.lock().unwrap().push(name.to_owned());
    }
    fn name(&self) -> &str {
        "recorder"
    }
}

#[test]
fn l5_one_arc_serves_many_breakers_and_forwards_every_hook() {
    let shared = Arc::new(Recorder::default());
    let a = CircuitBreaker::builder("a")
        .listener(shared.clone())
        .build()
        .unwrap();
    let boxed: Box<dyn Listener> = Box::new(shared.clone());
    let b = CircuitBreaker::builder("b")
        .listener(boxed)
        .build()
        .unwrap();
    a.force_open();
    b.force_open();
    a.reset();
    assert_eq!(*shared.attached.lock().unwrap(), ["a", "b"]);
    assert_eq!(shared.signals.load(Ordering::SeqCst), 3);
    // Forwarding keeps the inner listener's name and detach hook.
    let as_arc: Arc<Recorder> = shared.clone();
    assert_eq!(Listener::name(&as_arc), "recorder");
    Listener::on_detach(&as_arc, "a");
    assert_eq!(*shared.detached.lock().unwrap(), ["a"]);
}

#[test]
fn l3_an_arc_is_an_async_listener() {
    struct Counting(AtomicUsize);
    impl AsyncListener for Counting {
        fn on_signal(&self, _: Signal) -> fluxgate::listeners::ListenerFuture {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(()) })
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let shared = Arc::new(Counting(AtomicUsize::new(0)));
    let cb = rt.block_on(async {
        AsyncCircuitBreaker::builder("async")
            .async_listener(shared.clone())
            .async_listener(Box::new(shared.clone()) as Box<dyn AsyncListener>)
            .build()
            .unwrap()
    });
    cb.force_open();
    assert_eq!(shared.0.load(Ordering::SeqCst), 2);
}

#[derive(Debug)]
struct Wrapped(io::Error);
impl std::fmt::Display for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("wrapped")
    }
}
impl std::error::Error for Wrapped {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

fn io_only() -> CircuitBreaker {
    CircuitBreaker::builder("io_only")
        .tracker(TypeOf::<io::Error>::new())
        .build()
        .unwrap()
}

#[test]
fn cf1_call_any_sees_through_boxed_errors_to_their_source_chain() {
    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    let cb = io_only();
    let r = cb.call_any(|| Err::<(), BoxError>(Box::new(Wrapped(io::Error::other("reset")))));
    // The caller gets its own error back, unchanged.
    match r {
        Err(Error::Inner(e)) => assert_eq!(e.to_string(), "wrapped"),
        other => panic!("{other:?}"),
    }
    let _ = cb.call_any(|| Err::<(), BoxError>("not an io error".into()));
    let _ = cb.call_any(|| {
        Err::<(), Arc<dyn std::error::Error + Send + Sync>>(Arc::new(io::Error::other("x")))
    });
    let _ = cb.call_any(|| Err::<(), Box<dyn std::error::Error>>(Box::new(io::Error::other("y"))));
    let m = cb.info().metric;
    assert_eq!((m.failure_count, m.total_count), (3, 3));
}

#[cfg(feature = "anyhow")]
#[test]
fn cf1_call_any_sees_through_anyhow() {
    let cb = io_only();
    let r = cb.call_any(|| -> anyhow::Result<()> {
        Err(anyhow::Error::new(io::Error::other("refused")).context("charging"))
    });
    assert_eq!(r.unwrap_err().into_inner().unwrap().to_string(), "charging");
    let _ = cb.call_any(|| -> anyhow::Result<()> { Err(anyhow::anyhow!("validation")) });
    let m = cb.info().metric;
    assert_eq!((m.failure_count, m.total_count), (1, 1));
}

#[test]
fn cf1_call_any_counts_display_only_errors_as_opaque() {
    #[derive(Debug)]
    enum Upstream {
        Busy,
    }
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let cb = CircuitBreaker::builder("opaque")
        .tracker(move |e: &(dyn std::error::Error + 'static)| {
            let o = e.downcast_ref::<Opaque>().expect("opaque view");
            log.lock().unwrap().push(o.type_name());
            true
        })
        .tripper(FailureStreak::new(2))
        .build()
        .unwrap();
    let _ = cb.call_any(|| Err::<(), _>(Upstream::Busy));
    let _ = cb.call_any(|| Err::<(), _>("down".to_string()));
    assert_eq!(cb.state(), State::Open);
    let seen = seen.lock().unwrap();
    assert!(seen[0].ends_with("Upstream"), "{seen:?}");
    assert!(seen[1].ends_with("String"), "{seen:?}");
    // Rejected calls do not run the closure.
    let ran = AtomicUsize::new(0);
    let r = cb.call_any(|| {
        ran.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(())
    });
    assert!(r.unwrap_err().is_rejected());
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn cf1_async_call_any_records_like_the_sync_one() {
    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let cb = AsyncCircuitBreaker::builder("async_any")
            .tracker(TypeOf::<io::Error>::new())
            .build()
            .unwrap();
        let _ = cb
            .call_any(|| async { Err::<(), BoxError>(Box::new(io::Error::other("x"))) })
            .await;
        let _ = cb
            .call_any(|| async { Err::<(), BoxError>("other".into()) })
            .await;
        let v = cb.call_any(|| async { Ok::<_, String>(7) }).await.unwrap();
        assert_eq!(v, 7);
        let m = cb.info().metric;
        assert_eq!((m.failure_count, m.total_count), (1, 2));
    });
}

#[test]
fn sm4_a_tripper_that_is_not_stateless_is_asked_after_every_success() {
    // Successes into a full window of successes change nothing, so a stateless tripper is
    // not asked again; a closure may depend on more than its context, so it always is.
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    let cb = CircuitBreaker::builder("asked")
        .window(fluxgate::windows::CountWindow::new(10))
        .tripper(move |_: &TripContext<'_>| {
            count.fetch_add(1, Ordering::SeqCst);
            false
        })
        .build()
        .unwrap();
    for _ in 0..300 {
        cb.call(|| Ok::<_, io::Error>(())).unwrap();
    }
    assert_eq!(asked.load(Ordering::SeqCst), 300);
    assert!(!trippers::from_fn(|_: &TripContext<'_>| false).stateless());
    assert!((MinRequests::new(1) & !FailureRate::new(0.5) | FailureStreak::new(2)).stateless());
}
