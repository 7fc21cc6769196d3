//! Fleet semantics (`fluxgate::store`) with the in-memory store and a manual clock:
//! several breakers of one name stand for several processes. The Redis store's tests, on
//! a real server, are in `crates/fluxgate-redis/tests/`.

mod sharing;

use std::sync::Arc;
use std::time::Duration;

use fluxgate::clock::ManualClock;
use fluxgate::permits::All;
use fluxgate::retries::Cooldown;
use fluxgate::store::{Change, MemoryStore, StateStore, StoreLink, StoreSink};
use fluxgate::trippers::FailureStreak;
use fluxgate::{CircuitBreaker, Error, State};

const COOLDOWN: Duration = Duration::from_secs(30);

fn breaker(store: &MemoryStore, clock: &ManualClock) -> CircuitBreaker {
    CircuitBreaker::builder("db")
        .tripper(FailureStreak::new(1))
        .retry(Cooldown::new(COOLDOWN))
        .permit(All)
        .max_half_open_calls(1)
        .clock(clock.clone())
        .store(store.clone())
        .build()
        .unwrap()
}

fn fail(cb: &CircuitBreaker) -> Result<(), Error<std::io::Error>> {
    cb.call(|| Err(std::io::Error::other("down")))
}

fn succeed(cb: &CircuitBreaker) -> Result<(), Error<std::io::Error>> {
    cb.call(|| Ok(()))
}

fn rejected(r: &Result<(), Error<std::io::Error>>) -> Option<Option<Duration>> {
    match r {
        Err(Error::Rejected(e)) => Some(e.retry_after()),
        _ => None,
    }
}

/// One instance trips (SM-3): the others open with the fleet's deadline and reject with
/// what is left of it (SM-6), and probe when it is over, not before (SM-7).
#[test]
fn a_trip_opens_the_fleet_with_one_deadline() {
    let clock = ManualClock::new();
    let store = MemoryStore::new(clock.clone());
    let fleet: Vec<_> = (0..3).map(|_| breaker(&store, &clock)).collect();
    store.sync();
    assert!(matches!(fail(&fleet[0]), Err(Error::Inner(_))));
    assert_eq!(
        fleet[1].state(),
        State::Closed,
        "nothing travels before sync"
    );
    store.sync();
    for cb in &fleet {
        assert_eq!(cb.state(), State::Open);
        assert_eq!(cb.retry_after(), Some(COOLDOWN));
    }
    assert_eq!(store.version("db"), Some(1));
    clock.advance(Duration::from_secs(10));
    let r = succeed(&fleet[2]);
    assert_eq!(rejected(&r), Some(Some(Duration::from_secs(20))));
    clock.advance(Duration::from_secs(20));
    // No leases: each instance probes on its own once the fleet's deadline is over.
    assert!(succeed(&fleet[2]).is_ok());
    assert_eq!(fleet[2].state(), State::Closed);
    store.sync();
    for cb in &fleet {
        assert_eq!(cb.state(), State::Closed);
    }
    assert_eq!(store.version("db"), Some(2));
}

/// A breaker built after the fleet opened (a restarted process) starts open, with the
/// time that is left.
#[test]
fn a_restarted_instance_starts_from_the_fleet_state() {
    let clock = ManualClock::new();
    let store = MemoryStore::new(clock.clone());
    let a = breaker(&store, &clock);
    let _ = fail(&a);
    store.sync();
    clock.advance(Duration::from_secs(12));
    let restarted = breaker(&store, &clock);
    assert_eq!(restarted.state(), State::Closed);
    store.sync();
    assert_eq!(restarted.state(), State::Open);
    assert_eq!(restarted.retry_after(), Some(Duration::from_secs(18)));
}

/// With k = 1 lease, exactly one instance probes (SM-8 fleet-wide); the others reject
/// with `retry_after` until the prober closes the fleet (SM-9).
#[test]
fn exactly_k_instances_probe() {
    let clock = ManualClock::new();
    let store = MemoryStore::new(clock.clone()).probes(1, Duration::from_secs(10));
    let fleet: Vec<_> = (0..3).map(|_| breaker(&store, &clock)).collect();
    let _ = fail(&fleet[1]);
    store.sync();
    clock.advance(COOLDOWN);
    // Each asks for a lease; none has one yet.
    for cb in &fleet {
        assert_eq!(rejected(&succeed(cb)), Some(Some(Duration::from_secs(1))));
        assert_eq!(cb.state(), State::Open);
    }
    store.sync();
    let results: Vec<_> = fleet.iter().map(|cb| cb.admit().ok()).collect();
    let probing: Vec<_> = fleet
        .iter()
        .filter(|cb| cb.state() == State::HalfOpen)
        .collect();
    assert_eq!(probing.len(), 1, "exactly one instance probes");
    assert_eq!(results.iter().filter(|r| r.is_some()).count(), 1);
    for t in results.into_iter().flatten() {
        t.success();
    }
    assert_eq!(
        fleet
            .iter()
            .filter(|cb| cb.state() == State::Closed)
            .count(),
        1
    );
    store.sync();
    for cb in &fleet {
        assert_eq!(cb.state(), State::Closed);
    }
}

/// A lease whose holder is gone frees itself after its TTL.
#[test]
fn a_lease_of_a_crashed_prober_expires() {
    let clock = ManualClock::new();
    let store = MemoryStore::new(clock.clone()).probes(1, Duration::from_secs(10));
    let a = breaker(&store, &clock);
    let b = breaker(&store, &clock);
    let _ = fail(&a);
    store.sync();
    clock.advance(COOLDOWN);
    let _ = succeed(&a);
    store.sync();
    let probe = a.admit().unwrap();
    assert_eq!(a.state(), State::HalfOpen);
    std::mem::forget(probe);
    drop(a); // the prober's process dies mid-probe
    let _ = succeed(&b);
    store.sync();
    assert!(rejected(&succeed(&b)).is_some(), "the lease is still held");
    clock.advance(Duration::from_secs(10));
    let _ = succeed(&b);
    store.sync();
    assert!(succeed(&b).is_ok());
    assert_eq!(b.state(), State::Closed);
}

/// Manual commands on one instance reach the whole fleet (SM-13).
#[test]
fn manual_commands_are_fleet_wide() {
    let clock = ManualClock::new();
    let store = MemoryStore::new(clock.clone());
    let fleet: Vec<_> = (0..3).map(|_| breaker(&store, &clock)).collect();
    for (cmd, state) in [
        (
            CircuitBreaker::force_open as fn(&CircuitBreaker),
            State::ForcedOpen,
        ),
        (CircuitBreaker::disable, State::Disabled),
        (CircuitBreaker::metrics_only, State::MetricsOnly),
        (CircuitBreaker::reset, State::Closed),
    ] {
        cmd(&fleet[0]);
        store.sync();
        for cb in &fleet {
            assert_eq!(cb.state(), state);
        }
        assert_eq!(store.state("db"), Some(state));
    }
    assert_eq!(store.version("db"), Some(4));
}

/// A writer that had not seen the latest version loses: its traffic transition is not
/// written and it takes the fleet's state.
#[test]
fn a_stale_writer_loses() {
    let clock = ManualClock::new();
    let store = MemoryStore::new(clock.clone());
    let a = breaker(&store, &clock);
    let b = breaker(&store, &clock);
    let _ = fail(&a);
    store.sync();
    clock.advance(COOLDOWN);
    a.force_open(); // version 2, queued first
    assert!(succeed(&b).is_ok()); // b's probe closes b, based on version 1
    assert_eq!(b.state(), State::Closed);
    store.sync();
    assert_eq!(store.version("db"), Some(2));
    assert_eq!(store.state("db"), Some(State::ForcedOpen));
    assert_eq!(b.state(), State::ForcedOpen);
}

/// While the store is unreachable, breakers work and probe on local state; when it is
/// back, a local open made meanwhile is published (the fleet was closed: it is news),
/// reopens included (SM-15).
#[test]
fn disconnected_breakers_work_alone_and_reconcile() {
    let clock = ManualClock::new();
    let store = MemoryStore::new(clock.clone()).probes(1, Duration::from_secs(10));
    let a = breaker(&store, &clock);
    let b = breaker(&store, &clock);
    store.sync();
    store.set_connected(false);
    assert_eq!(a.info().store_connected, Some(false));
    let _ = fail(&a);
    store.sync();
    assert_eq!(
        b.state(),
        State::Closed,
        "nothing travels while disconnected"
    );
    clock.advance(COOLDOWN);
    // No lease needed while disconnected.
    let probe = a.admit().unwrap();
    assert_eq!(a.state(), State::HalfOpen);
    probe.failure();
    assert_eq!(a.state(), State::Open);
    store.set_connected(true);
    store.sync();
    assert_eq!(b.state(), State::Open);
    assert_eq!(b.info().reopens, 1);
    assert_eq!(store.state("db"), Some(State::Open));
}

/// A store that panics never hurts the caller: calls, trips and commands go on.
#[test]
fn a_panicking_store_is_contained() {
    struct Bad;
    struct BadSink;
    impl StoreSink for BadSink {
        fn changed(&self, _: Change) {
            panic!("store bug");
        }
        fn leases_probes(&self) -> bool {
            true
        }
        fn connected(&self) -> bool {
            panic!("store bug");
        }
    }
    impl StateStore for Bad {
        fn attach(&self, _: StoreLink) -> Box<dyn StoreSink> {
            Box::new(BadSink)
        }
    }
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("db")
        .tripper(FailureStreak::new(1))
        .retry(Cooldown::new(COOLDOWN))
        .permit(All)
        .clock(clock.clone())
        .store(Arc::new(Bad))
        .build()
        .unwrap();
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::Open);
    clock.advance(COOLDOWN);
    assert!(succeed(&cb).is_ok());
    assert_eq!(cb.state(), State::Closed);
    cb.force_open();
    assert_eq!(cb.info().store_connected, Some(false));
}

/// Registries in two processes get the store through their template: their breakers of
/// one name form a fleet; a live reconfiguration keeps the breaker in it.
#[test]
fn registries_share_through_their_template() {
    use fluxgate::registry::Registry;
    let clock = ManualClock::new();
    let store = MemoryStore::new(clock.clone());
    let registry = || -> Registry {
        let (store, clock) = (store.clone(), clock.clone());
        Registry::builder()
            .defaults(move |b| {
                b.tripper(FailureStreak::new(1))
                    .retry(Cooldown::new(COOLDOWN))
                    .clock(clock.clone())
                    .store(store.clone())
            })
            .build()
    };
    let (one, two) = (registry(), registry());
    let a = one.get_or_create("db").unwrap();
    let b = two.get_or_create("db").unwrap();
    let other = two.get_or_create("cache").unwrap();
    store.sync();
    let _ = fail(&a);
    store.sync();
    assert_eq!(b.state(), State::Open);
    assert_eq!(
        other.state(),
        State::Closed,
        "another name is another fleet"
    );
    two.reconfigure("db", |b| b.max_half_open_calls(2)).unwrap();
    let b2 = two.get("db").unwrap();
    assert_eq!(b2.state(), State::Open, "the successor inherits the state");
    one.reset_all();
    store.sync();
    assert_eq!(b2.state(), State::Closed, "the successor is in the fleet");
}

/// Calls, trips and commands on three instances race with the store applying the fleet's
/// state (SM-17): nothing panics, and once everything is delivered every instance is in
/// the fleet's state.
#[test]
fn racing_calls_and_applies_converge() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let clock = ManualClock::new();
    let store = MemoryStore::new(clock.clone());
    let fleet: Vec<_> = (0..3)
        .map(|_| {
            CircuitBreaker::builder("db")
                .tripper(FailureStreak::new(3))
                .retry(Cooldown::new(COOLDOWN))
                .clock(clock.clone())
                .store(store.clone())
                .build()
                .unwrap()
        })
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let syncer = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                store.sync();
                std::thread::yield_now();
            }
        })
    };
    let callers: Vec<_> = fleet
        .iter()
        .enumerate()
        .map(|(i, cb)| {
            let cb = cb.clone();
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(i as u64);
                for n in 0..20_000u32 {
                    let _ = if rng.u8(..) < 40 {
                        fail(&cb)
                    } else {
                        succeed(&cb)
                    };
                    match n % 5_000 {
                        1_000 if i == 0 => cb.force_open(),
                        2_000 if i == 1 => cb.reset(),
                        3_000 if i == 2 => cb.metrics_only(),
                        4_000 if i == 0 => cb.reset(),
                        _ => {}
                    }
                }
            })
        })
        .collect();
    for c in callers {
        c.join().expect("no caller panics");
    }
    done.store(true, Ordering::Release);
    syncer.join().expect("the store never panics");
    store.sync();
    let fleet_state = store.state("db").expect("the fleet has a state");
    for cb in &fleet {
        assert_eq!(cb.state(), fleet_state);
    }
}
