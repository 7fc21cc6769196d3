//! How a breaker shares its state with the fleet: acknowledgements of its own writes
//! (`StoreLink::written`, docs/fleet.md "Reconcile rule" step 2), probe grants and their
//! leases ("Probe leases"), stores that call the link back, and what a reconnection
//! writes (reconcile step 1). Each test names the rule it checks.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fluxgate::clock::ManualClock;
use fluxgate::listeners::{Listener, ListenerError};
use fluxgate::permits::All;
use fluxgate::recovery::Successes;
use fluxgate::retries::Cooldown;
use fluxgate::store::{Change, MemoryStore, SharedState, StateStore, StoreLink, StoreSink};
use fluxgate::trippers::FailureStreak;
use fluxgate::{CircuitBreaker, Signal, State};

const COOLDOWN: Duration = Duration::from_secs(30);
const LEASE_TTL: Duration = Duration::from_secs(10);

/// The transitions a breaker's listeners heard.
#[derive(Clone, Default)]
struct Heard(Arc<Mutex<Vec<(State, State)>>>);

impl Listener for Heard {
    fn on_signal(&self, s: &Signal) -> Result<(), ListenerError> {
        self.0.lock().unwrap().push((s.old_state, s.new_state));
        Ok(())
    }
}

impl Heard {
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// One instance: trips on a failure, closes on one successful probe, one probe at a time.
fn instance(store: impl StateStore, clock: &ManualClock, heard: Option<&Heard>) -> CircuitBreaker {
    let mut b = CircuitBreaker::builder("db")
        .tripper(FailureStreak::new(1))
        .recovery(Successes::new(1))
        .retry(Cooldown::new(COOLDOWN))
        .permit(All)
        .max_half_open_calls(1)
        .clock(clock.clone());
    if let Some(h) = heard {
        b = b.listener(h.clone());
    }
    b.store(store).build().unwrap()
}

fn fail(cb: &CircuitBreaker) {
    let _ = cb.call(|| Err::<(), _>(std::io::Error::other("down")));
}

/// A store driven by hand: it keeps the link, the changes it was told and the epochs
/// lease requests named.
#[derive(Clone, Default)]
struct Hand {
    link: Arc<Mutex<Option<StoreLink>>>,
    changes: Arc<Mutex<Vec<Change>>>,
    asked: Arc<Mutex<Vec<u64>>>,
    leases: bool,
}

struct HandSink(Hand);

impl StoreSink for HandSink {
    fn changed(&self, change: Change) {
        self.0.changes.lock().unwrap().push(change);
    }
    fn wants_probe(&self, epoch: u64) {
        self.0.asked.lock().unwrap().push(epoch);
    }
    fn leases_probes(&self) -> bool {
        self.0.leases
    }
}

impl StateStore for Hand {
    fn attach(&self, link: StoreLink) -> Box<dyn StoreSink> {
        *self.link.lock().unwrap() = Some(link);
        Box::new(HandSink(self.clone()))
    }
}

impl Hand {
    fn leasing() -> Hand {
        Hand {
            leases: true,
            ..Hand::default()
        }
    }
    fn link(&self) -> StoreLink {
        self.link.lock().unwrap().clone().expect("attached")
    }
    fn change(&self, i: usize) -> Change {
        self.changes.lock().unwrap()[i]
    }
    fn asked(&self) -> Vec<u64> {
        self.asked.lock().unwrap().clone()
    }
}

fn fleet_state(state: State, version: u64) -> SharedState {
    SharedState::new(state, 0, None).with_version(version)
}

// ---- Bug 1: an acknowledgement only takes the written state back when an older fleet
// state crossed the change (`StoreLink::written`, reconcile step 2). ----

/// `StoreLink::written`: "otherwise it only records the version". The ack of an
/// operator's `reset`, arriving after the operator's later `force_open`, must not close
/// the breaker again.
#[test]
fn an_ack_of_an_earlier_command_keeps_a_later_one() {
    let hand = Hand::default();
    let cb = instance(hand.clone(), &ManualClock::new(), None);
    let link = hand.link();
    cb.force_open(); // change 0, base 0
    cb.reset(); // change 1, base 0
    let (forced, reset) = (hand.change(0), hand.change(1));
    assert_eq!((forced.base, reset.base), (0, 0));
    assert!(link.written(&forced, fleet_state(State::ForcedOpen, 1)));
    cb.force_open(); // change 2, made while the store writes the reset
    link.written(&reset, fleet_state(State::Closed, 2));
    assert_eq!(
        cb.state(),
        State::ForcedOpen,
        "the ack of the earlier reset undid the later force_open"
    );
    assert!(
        !link.apply(fleet_state(State::Closed, 2)),
        "the written version is recorded"
    );
}

/// Reconcile step 2 (and `StoreLink::written`): a breaker acknowledged for changes it
/// made itself is where they left it, so acknowledgements make no transition.
#[test]
fn acks_of_own_writes_make_no_transitions() {
    let clock = ManualClock::new();
    let store = MemoryStore::new(clock.clone());
    let heard = Heard::default();
    let a = instance(store.clone(), &clock, Some(&heard));
    store.sync();
    a.force_open();
    a.reset();
    a.force_open();
    assert!(a.flush_signals(Duration::from_secs(5)));
    assert_eq!(heard.len(), 3);
    store.sync();
    assert!(a.flush_signals(Duration::from_secs(5)));
    assert_eq!(store.version("db"), Some(3), "each command is written");
    assert_eq!(a.state(), State::ForcedOpen);
    assert_eq!(
        *heard.0.lock().unwrap(),
        [
            (State::Closed, State::ForcedOpen),
            (State::ForcedOpen, State::Closed),
            (State::Closed, State::ForcedOpen),
        ],
        "acks of a's own writes made transitions"
    );
}

/// The ack of an instance's own reopening (written after its trip) must not throw the
/// probe it started since back to `open` (`StoreLink::written`: only the version is
/// recorded when no fleet state was taken after the change).
#[test]
fn the_ack_of_an_own_reopening_keeps_the_running_probe() {
    let clock = ManualClock::new();
    let store = MemoryStore::new(clock.clone());
    let a = instance(store.clone(), &clock, None);
    store.sync();
    fail(&a); // closed -> open, base 0
    clock.advance(COOLDOWN);
    a.admit().expect("a probe").failure(); // half_open -> open, base 0
    clock.advance(COOLDOWN);
    let probe = a.admit().expect("a second probe");
    assert_eq!(a.state(), State::HalfOpen);
    store.sync(); // writes the trip (v1) and the reopening (v2), acknowledges both
    assert_eq!(store.version("db"), Some(2));
    assert_eq!(
        a.state(),
        State::HalfOpen,
        "an ack threw the running probe back"
    );
    probe.success();
    assert_eq!(a.state(), State::Closed);
    store.sync();
    assert_eq!(store.state("db"), Some(State::Closed));
}

/// Reconcile step 2, the other half: a writer that took an older fleet state after its
/// change (a delivery that crossed it) takes its written state back on the ack.
#[test]
fn a_writer_crossed_by_an_older_state_takes_its_write_back() {
    let hand = Hand::default();
    let cb = instance(hand.clone(), &ManualClock::new(), None);
    let link = hand.link();
    cb.force_open(); // base 0
    let forced = hand.change(0);
    // Another instance's reset, written first (v1), arrives before the ack.
    assert!(link.apply(fleet_state(State::Closed, 1)));
    assert_eq!(cb.state(), State::Closed);
    assert!(link.written(&forced, fleet_state(State::ForcedOpen, 2)));
    assert_eq!(cb.state(), State::ForcedOpen);
    // Still so when the crossing apply left the breaker `open` and it started probing
    // from there: the probe belongs to the older fleet state.
    let clock = ManualClock::new();
    let hand = Hand::default();
    let cb = instance(hand.clone(), &clock, None);
    let link = hand.link();
    cb.reset(); // base 0
    let reset = hand.change(0);
    let open = SharedState::new(State::Open, 0, Some(Duration::ZERO)).with_version(1);
    assert!(link.apply(open));
    clock.advance(Duration::from_millis(1));
    let probe = cb.admit().expect("no leases: a probe");
    assert_eq!(cb.state(), State::HalfOpen);
    assert!(link.written(&reset, fleet_state(State::Closed, 2)));
    assert_eq!(cb.state(), State::Closed, "the operator's reset was lost");
    drop(probe);
}

// ---- Bug 2: a probe grant never outlives its lease ("Probe leases": every write of the
// state clears the leases; a lease lasts `lease_ttl`). ----

/// A fleet reopening (a newer `open` version) was written with every lease cleared: a
/// grant the breaker held for the same open period is gone, it asks again.
#[test]
fn a_fleet_reopening_revokes_a_probe_grant() {
    let clock = ManualClock::new();
    let hand = Hand::leasing();
    let cb = instance(hand.clone(), &clock, None);
    let link = hand.link();
    let open = |v| SharedState::new(State::Open, 0, Some(Duration::ZERO)).with_version(v);
    assert!(link.apply(open(1)));
    clock.advance(Duration::from_millis(1));
    assert!(cb.admit().is_err(), "no lease yet");
    let epoch = *hand.asked().last().expect("a lease asked for");
    link.grant_probe(epoch);
    // Another instance's probe failed: the fleet reopened, its leases cleared.
    assert!(link.apply(open(2)));
    assert_eq!(cb.state(), State::Open);
    let asked = hand.asked().len();
    assert!(
        cb.admit().is_err(),
        "probed on a grant the fleet's reopening cleared"
    );
    assert_eq!(hand.asked().len(), asked + 1, "it asks again");
    link.grant_probe(epoch);
    assert!(cb.admit().is_ok(), "a new grant lets it probe");
}

/// A lease lasts `lease_ttl` when its holder does not probe: after that, another
/// instance may take it, and the first one must ask again (k = 1: one prober).
#[test]
fn a_grant_lapses_with_its_lease() {
    let clock = ManualClock::new();
    let store = MemoryStore::new(clock.clone()).probes(1, LEASE_TTL);
    let a = instance(store.clone(), &clock, None);
    let b = instance(store.clone(), &clock, None);
    store.sync();
    fail(&a);
    store.sync();
    clock.advance(COOLDOWN);
    assert!(a.admit().is_err());
    store.sync(); // a holds the lease, but gets no call for a while
    clock.advance(LEASE_TTL + Duration::from_secs(1));
    assert!(b.admit().is_err());
    store.sync(); // a's lease lapsed: b takes it
    let pb = b.admit().expect("b holds the lease");
    assert!(a.admit().is_err(), "a and b probe at once with probes(1)");
    store.sync(); // a's new request: the lease is b's
    assert!(a.admit().is_err());
    assert_eq!(a.state(), State::Open);
    pb.success();
    store.sync();
    assert_eq!(a.state(), State::Closed);
}

/// With k = 1, a grant of an earlier open period never makes a second prober once the
/// fleet reopened and granted its lease to another instance.
#[test]
fn at_most_k_probe_across_a_fleet_reopening() {
    let clock = ManualClock::new();
    let store = MemoryStore::new(clock.clone()).probes(1, LEASE_TTL);
    let a = instance(store.clone(), &clock, None);
    let b = instance(store.clone(), &clock, None);
    let c = instance(store.clone(), &clock, None);
    store.sync();
    fail(&a);
    store.sync();
    clock.advance(COOLDOWN);
    assert!(a.admit().is_err());
    store.sync(); // a is granted, and gets no call
    clock.advance(LEASE_TTL + Duration::from_secs(1));
    assert!(b.admit().is_err());
    store.sync(); // b takes the lapsed lease
    b.admit().expect("b probes").failure(); // the fleet reopens
    store.sync();
    assert_eq!(a.state(), State::Open);
    clock.advance(COOLDOWN + Duration::from_secs(1));
    assert!(c.admit().is_err());
    store.sync(); // c gets the only lease of the new open period
    let pc = c.admit().expect("c holds the lease");
    assert!(
        a.admit().is_err(),
        "a probes on an old grant while c holds the only lease"
    );
    drop(pc);
}

// ---- Bug 3: a sink may call its link from `changed` ("the trait, for other stores"). ----

/// A store that writes synchronously, from `changed` itself: it reads the breaker
/// (`is_alive`, `current`) and acknowledges the write (`written`) before returning.
#[derive(Clone, Default)]
struct Immediate {
    link: Arc<Mutex<Option<StoreLink>>>,
    version: Arc<Mutex<u64>>,
}

struct ImmediateSink(Immediate);

impl StoreSink for ImmediateSink {
    fn changed(&self, change: Change) {
        let Some(link) = self.0.link.lock().unwrap().clone() else {
            return;
        };
        assert!(link.is_alive());
        let _ = link.current();
        if change.to == State::HalfOpen {
            return;
        }
        let version = {
            let mut v = self.0.version.lock().unwrap();
            *v += 1;
            *v
        };
        let shared = SharedState::new(change.to, change.reopens, change.wait);
        link.written(&change, shared.with_version(version));
        link.grant_probe(change.epoch);
        link.connection(true);
    }
}

impl StateStore for Immediate {
    fn attach(&self, link: StoreLink) -> Box<dyn StoreSink> {
        *self.link.lock().unwrap() = Some(link);
        Box::new(ImmediateSink(self.clone()))
    }
}

/// `StoreSink::changed` may call any method of the link: the caller is not held up.
#[test]
fn a_sink_may_call_its_link_from_changed() {
    let store = Immediate::default();
    let cb = Arc::new(instance(store.clone(), &ManualClock::new(), None));
    let (done, finished) = mpsc::channel();
    {
        let cb = cb.clone();
        std::thread::spawn(move || {
            cb.force_open();
            cb.reset();
            fail(&cb); // a trip
            let _ = done.send(cb.state());
        });
    }
    let state = finished
        .recv_timeout(Duration::from_secs(5))
        .expect("a command never returned: the link called from changed() deadlocked");
    assert_eq!(state, State::Open);
    assert_eq!(*store.version.lock().unwrap(), 3);
    assert!(
        !store
            .link
            .lock()
            .unwrap()
            .clone()
            .unwrap()
            .apply(fleet_state(State::Closed, 3)),
        "the breaker took each version it wrote"
    );
}

/// The sink hears a breaker's changes in transition order, whichever thread made them
/// ("the breaker tells the sink each of its own transitions"); when more than 1 024 wait
/// behind the thread handing them over, further ones are merged into the newest, so the
/// sink hears one unbroken chain that ends at the breaker's state.
#[test]
fn changes_reach_the_sink_in_transition_order() {
    let hand = Hand::default();
    let cb = Arc::new(instance(hand.clone(), &ManualClock::new(), None));
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let cb = cb.clone();
            std::thread::spawn(move || {
                for n in 0..2_000 {
                    match (i + n) % 4 {
                        0 => cb.force_open(),
                        1 => cb.reset(),
                        2 => cb.disable(),
                        _ => cb.metrics_only(),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let changes = hand.changes.lock().unwrap();
    assert!(!changes.is_empty() && changes.len() <= 8_000);
    assert_eq!(changes[0].epoch, 1);
    for (i, pair) in changes.windows(2).enumerate() {
        assert!(pair[1].epoch > pair[0].epoch, "out of order at {i}");
        assert_eq!(pair[1].from, pair[0].to, "broken chain at {i}");
    }
    // Merged or not, every transition is accounted for: the last epoch is the 8 000th.
    assert_eq!(changes.last().unwrap().epoch, 8_000);
    assert_eq!(changes.last().unwrap().to, cb.state());
}

// ---- Bug 4: versions only grow. ----

/// `SharedState::version`: "it only grows". A write acknowledged without a version (0)
/// keeps the version the breaker had taken, so a late delivery stays late.
#[test]
fn a_write_acknowledged_without_version_keeps_the_version() {
    let hand = Hand::default();
    let cb = instance(hand.clone(), &ManualClock::new(), None);
    let link = hand.link();
    assert!(link.apply(fleet_state(State::MetricsOnly, 5)));
    cb.force_open();
    let forced = hand.change(0);
    assert_eq!(forced.base, 5);
    link.written(&forced, fleet_state(State::ForcedOpen, 0));
    assert_eq!(cb.state(), State::ForcedOpen);
    assert!(
        !link.apply(fleet_state(State::MetricsOnly, 4)),
        "a late delivery (v4 < v5) was applied"
    );
}

// ---- Bug 5: reconcile step 1, "the change it made while disconnected (the last one)". ----

/// Two instances `a` and `b` of one fleet on a `MemoryStore`, in sync, then cut off from
/// it; `heard` records what `b`'s listeners hear.
fn two_disconnected() -> (
    ManualClock,
    MemoryStore,
    CircuitBreaker,
    CircuitBreaker,
    Heard,
) {
    let clock = ManualClock::new();
    let store = MemoryStore::new(clock.clone());
    let heard = Heard::default();
    let a = instance(store.clone(), &clock, None);
    let b = instance(store.clone(), &clock, Some(&heard));
    store.sync();
    store.set_connected(false);
    (clock, store, a, b, heard)
}

/// On reconnection an instance writes its last offline change only: the others never
/// replay its history (here a trip and the probe that closed it again).
#[test]
fn a_reconnection_writes_only_the_last_offline_change() {
    let (clock, store, a, b, heard) = two_disconnected();
    fail(&a);
    clock.advance(COOLDOWN);
    a.admit().expect("a probes alone").success();
    assert_eq!(a.state(), State::Closed);
    store.set_connected(true);
    store.sync();
    assert!(b.flush_signals(Duration::from_secs(5)));
    assert_eq!(b.state(), State::Closed);
    assert_eq!(store.version("db"), Some(1), "one write");
    assert_eq!(
        *heard.0.lock().unwrap(),
        [],
        "a's whole offline history was replayed"
    );
}

/// Reconcile step 1: "a manual command is written unconditionally". The last offline
/// change stands for the sequence, so a command among them keeps it a command (as in
/// the Redis store): the fleet takes the instance's last state even though another
/// instance's command was written first.
#[test]
fn an_offline_command_keeps_the_last_change_a_command() {
    let (_clock, store, a, b, heard) = two_disconnected();
    b.force_open();
    a.metrics_only();
    a.reset();
    fail(&a); // a trip: traffic, based on a version the fleet has left
    store.set_connected(true);
    store.sync();
    assert!(b.flush_signals(Duration::from_secs(5)));
    assert_eq!(store.state("db"), Some(State::Open));
    assert_eq!(
        store.version("db"),
        Some(2),
        "b's command, then a's last change"
    );
    assert_eq!(b.state(), State::Open);
    assert_eq!(
        *heard.0.lock().unwrap(),
        [
            (State::Closed, State::ForcedOpen),
            (State::ForcedOpen, State::Open)
        ],
        "b heard a's offline history"
    );
}

/// A sink whose first `changed` waits until the test lets it go, recording every change.
#[derive(Clone, Default)]
struct Stuck {
    seen: Arc<Mutex<Vec<Change>>>,
    gate: Arc<Mutex<Option<mpsc::Receiver<()>>>>,
}

struct StuckSink(Stuck);

impl StoreSink for StuckSink {
    fn changed(&self, change: Change) {
        let gate = self.0.gate.lock().unwrap().take();
        if let Some(gate) = gate {
            let _ = gate.recv_timeout(Duration::from_secs(30));
        }
        self.0.seen.lock().unwrap().push(change);
    }
}

impl StateStore for Stuck {
    fn attach(&self, _: StoreLink) -> Box<dyn StoreSink> {
        Box::new(StuckSink(self.clone()))
    }
}

/// R-2 for the store: behind a sink stuck in `changed`, changes wait in a bounded queue
/// (further ones merged into the newest), and the sink ends on the breaker's state.
#[test]
fn changes_behind_a_stuck_sink_wait_in_a_bounded_queue_that_ends_on_the_state() {
    let (release, gate) = mpsc::channel();
    let store = Stuck::default();
    *store.gate.lock().unwrap() = Some(gate);
    let cb = Arc::new(instance(store.clone(), &ManualClock::new(), None));
    let stuck = {
        let cb = cb.clone();
        std::thread::spawn(move || cb.force_open()) // hands its change over, and waits
    };
    while store.gate.lock().unwrap().is_some() {
        std::thread::yield_now();
    }
    for n in 0..5_000 {
        if n % 2 == 0 {
            cb.reset();
        } else {
            cb.force_open();
        }
    }
    release.send(()).unwrap();
    stuck.join().unwrap();
    let seen = store.seen.lock().unwrap();
    assert!(seen.len() <= 1 + 1024, "{} changes queued", seen.len());
    let last = seen.last().unwrap();
    assert_eq!(last.to, cb.state());
    assert!(last.manual);
}
