//! The hot paths allocate nothing: a closed-state call, a rejection (`open` and
//! `forced_open`) and a half-open call, sync and async.
//!
//! A counting global allocator counts the allocations the current thread makes while its
//! flag is up; each case is warmed up first, so lazily built state (thread-locals, the
//! clock's calibration) is not counted. One test in its own binary, so no other test's
//! allocations can be counted either.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::io;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use fluxgate::clock::ManualClock;
use fluxgate::retries::{Always, Cooldown};
use fluxgate::trippers::{FailureStreak, HalfOpened, MinRequests, SlowRate};
use fluxgate::windows::TimeWindow;
use fluxgate::{AsyncCircuitBreaker, CircuitBreaker, Error, State, permits};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note_allocation() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; counting touches
// only an atomic and a const-initialised thread-local without destructor (no allocation).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as ours.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Allocations made by this thread while running `f` 1000 times, after 1000 warm-up
/// runs.
fn allocations(mut f: impl FnMut()) -> usize {
    for _ in 0..1000 {
        f();
    }
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    for _ in 0..1000 {
        f();
    }
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

fn ok() -> Result<u64, io::Error> {
    Ok(black_box(7))
}

fn down() -> Result<u64, io::Error> {
    Err(io::Error::from(io::ErrorKind::ConnectionRefused))
}

/// Polls a future that completes at once.
fn ready<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the future was expected to be ready"),
    }
}

#[test]
fn hot_paths_allocate_nothing() {
    // The counter sees this thread's allocations.
    assert_eq!(allocations(|| drop(black_box(Box::new(1u64)))), 1000);

    // SM-3/SM-4: a closed-state call, successes and failures, default config.
    let cb = CircuitBreaker::builder("payment_api").build().unwrap();
    let mut i = 0u64;
    let n = allocations(|| {
        i += 1;
        // one failure in eight: the window keeps changing, the breaker stays closed
        let r = if i % 8 == 0 {
            cb.call(down)
        } else {
            cb.call(ok)
        };
        assert!(!matches!(r, Err(Error::Rejected(_))));
    });
    assert_eq!(cb.state(), State::Closed);
    assert_eq!(n, 0, "closed-state call");

    // The same with a time window and a latency rule (every call timed).
    let timed = CircuitBreaker::builder("timed_api")
        .window(TimeWindow::new(Duration::from_secs(60)))
        .tripper(MinRequests::new(100) & SlowRate::new(0.5, Duration::from_secs(1)))
        .build()
        .unwrap();
    let n = allocations(|| {
        black_box(timed.call(ok)).unwrap();
    });
    assert_eq!(n, 0, "closed-state call, timed");

    // SM-6: rejection while open (the retry policy is asked, retry_after computed).
    let open = CircuitBreaker::builder("open_api")
        .tripper(FailureStreak::new(1))
        .retry(Cooldown::new(Duration::from_secs(3600)))
        .build()
        .unwrap();
    let _ = open.call(down);
    assert_eq!(open.state(), State::Open);
    let n = allocations(|| {
        let r = black_box(open.call(ok));
        assert!(matches!(r, Err(Error::Rejected(ref e)) if e.state() == State::Open));
    });
    assert_eq!(n, 0, "rejection in open");

    // SM-12: rejection while forced open; a long name is shared, not copied.
    let forced = CircuitBreaker::builder("a_circuit_name_longer_than_fifteen_bytes")
        .build()
        .unwrap();
    forced.force_open();
    let n = allocations(|| {
        let r = black_box(forced.call(ok));
        assert!(matches!(r, Err(Error::Rejected(ref e)) if e.state() == State::ForcedOpen));
    });
    assert_eq!(n, 0, "rejection in forced_open");

    // SM-8/SM-9: half-open calls. `HalfOpened` keeps the circuit half-open after a
    // success, so every measured call is a half-open call (slot, permit, record).
    let clock = ManualClock::new();
    let half = CircuitBreaker::builder("half_api")
        .tripper(FailureStreak::new(1) | HalfOpened)
        .retry(Always)
        .permit(permits::All)
        .clock(clock.clone())
        .build()
        .unwrap();
    let _ = half.call(down);
    half.call(ok).unwrap();
    assert_eq!(half.state(), State::HalfOpen);
    let n = allocations(|| {
        black_box(half.call(ok)).unwrap();
    });
    assert_eq!(half.state(), State::HalfOpen);
    assert_eq!(n, 0, "half-open call");

    // Half-open with the default ramp: admitted or refused by the permit, no allocation.
    let ramp = CircuitBreaker::builder("ramp_api")
        .tripper(FailureStreak::new(1) | HalfOpened)
        .retry(Always)
        .clock(clock.clone())
        .build()
        .unwrap();
    let _ = ramp.call(down);
    let _ = ramp.call(ok);
    assert_eq!(ramp.state(), State::HalfOpen);
    let n = allocations(|| {
        let _ = black_box(ramp.call(ok));
    });
    assert_eq!(n, 0, "half-open call with a ramp");

    // The async face: closed, rejected, half-open.
    let acb = AsyncCircuitBreaker::builder("async_api").build().unwrap();
    let n = allocations(|| {
        ready(acb.call(|| async { ok() })).unwrap();
    });
    assert_eq!(n, 0, "async closed-state call");
    acb.force_open();
    let n = allocations(|| {
        assert!(ready(acb.call(|| async { ok() })).is_err());
    });
    assert_eq!(n, 0, "async rejection");
    let ahalf = AsyncCircuitBreaker::builder("async_half")
        .tripper(FailureStreak::new(1) | HalfOpened)
        .retry(Always)
        .permit(permits::All)
        .clock(clock)
        .build()
        .unwrap();
    let _ = ready(ahalf.call(|| async { down() }));
    ready(ahalf.call(|| async { ok() })).unwrap();
    assert_eq!(ahalf.state(), State::HalfOpen);
    let n = allocations(|| {
        ready(ahalf.call(|| async { ok() })).unwrap();
    });
    assert_eq!(n, 0, "async half-open call");
}
