//! Shared state for breakers of the same name in several processes (a fleet), opt-in.
//!
//! A breaker given a [`StateStore`] (`Builder::store`) keeps deciding everything on its
//! own — windows, trips, probes' outcomes — and the call path is unchanged. What the
//! fleet shares goes through the store *in the background*:
//!
//! - the breaker tells its [`StoreSink`] each transition it makes ([`Change`]: local trips,
//!   reopenings, closings, manual commands), from the thread that made it, without
//!   waiting (the sink hands it to the store's own thread);
//! - the store brings the breaker to the fleet's state through the [`StoreLink`] it was
//!   given at attach time ([`StoreLink::apply`]): a transition that is not published
//!   back, with the fleet's deadline for an `open` circuit, so the fleet waits and
//!   probes together; and it acknowledges each change it wrote
//!   ([`StoreLink::written`]) with the fleet's new version;
//! - with probe leases ([`StoreSink::leases_probes`]), an `open` circuit whose deadline
//!   has passed asks the store for a lease ([`StoreSink::wants_probe`]) and keeps
//!   rejecting until the store grants one ([`StoreLink::grant_probe`]) or the fleet
//!   closes or reopens. While the store is disconnected, the breaker probes on its own.
//!
//! [`MemoryStore`] shares state between breakers of one process, delivered when
//! [`MemoryStore::sync`] is called: the semantics, testable with a manual clock. The Redis
//! store lives in the `fluxgate-redis` crate.
//!
//! ```
//! use std::time::Duration;
//! use fluxgate_core::{CircuitBreaker, State, clock::ManualClock, store::MemoryStore};
//! use fluxgate_core::{retries::Cooldown, trippers::FailureStreak};
//!
//! let clock = ManualClock::new();
//! let store = MemoryStore::new(clock.clone());
//! let make = || {
//!     CircuitBreaker::builder("db")
//!         .tripper(FailureStreak::new(1))
//!         .retry(Cooldown::new(Duration::from_secs(30)))
//!         .clock(clock.clone())
//!         .store(store.clone())
//!         .build()
//!         .unwrap()
//! };
//! let (a, b) = (make(), make());
//! let _ = a.call(|| Err::<(), _>(std::io::Error::other("down")));
//! store.sync();
//! assert_eq!(b.state(), State::Open);
//! assert_eq!(b.retry_after(), Some(Duration::from_secs(30)));
//! ```

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::State;
use crate::clock::Clock;
use crate::core::Core;

/// A transition a breaker made on its own (not one a store applied to it).
///
/// ```
/// use fluxgate_core::{State, store::Change};
/// let c = Change::new(State::Closed, State::Open, 0, Some(std::time::Duration::from_secs(60)), 1, false, 0);
/// assert_eq!(c.to, State::Open);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Change {
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// Reopenings since the circuit was last closed, after the transition.
    pub reopens: u32,
    /// For `open`: the whole wait of this open period before a probe may go (`None`:
    /// the retry policy never retries). `None` in every other state.
    pub wait: Option<Duration>,
    /// The breaker's local epoch after the transition (the one `wants_probe` names).
    pub epoch: u64,
    /// Whether it was a manual command (`force_open`, `disable`, `metrics_only`,
    /// `reset`) rather than traffic (a trip, a probe's outcome).
    pub manual: bool,
    /// The fleet version the breaker had last been brought to (`SharedState::version`)
    /// when it made the change: the version a compare-and-set expects.
    pub base: u64,
}

impl Change {
    /// A change (for store implementations' tests).
    ///
    /// ```
    /// let _ = fluxgate_core::store::Change::new(fluxgate_core::State::Open, fluxgate_core::State::Closed, 0, None, 4, true, 2);
    /// ```
    pub fn new(
        from: State,
        to: State,
        reopens: u32,
        wait: Option<Duration>,
        epoch: u64,
        manual: bool,
        base: u64,
    ) -> Self {
        Change {
            from,
            to,
            reopens,
            wait,
            epoch,
            manual,
            base,
        }
    }
}

/// The fleet's state, as a store applies it to a breaker.
///
/// ```
/// use fluxgate_core::{State, store::SharedState};
/// let s = SharedState::new(State::Open, 1, Some(std::time::Duration::from_secs(5))).with_version(7);
/// assert_eq!(s.remaining, Some(std::time::Duration::from_secs(5)));
/// assert_eq!(s.version, 7);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedState {
    /// The state (never `half_open`: probing is local, under a lease).
    pub state: State,
    /// Reopenings since the fleet was last closed.
    pub reopens: u32,
    /// For `open`: the time left before the fleet may probe, `None` for never. Ignored in
    /// every other state.
    pub remaining: Option<Duration>,
    /// The fleet's version of this state (it only grows); a breaker ignores a state whose
    /// version is not above the last one it was brought to (a late delivery). 0: no
    /// version, always applied.
    pub version: u64,
}

impl SharedState {
    /// A shared state.
    ///
    /// ```
    /// let _ = fluxgate_core::store::SharedState::new(fluxgate_core::State::Closed, 0, None);
    /// ```
    pub fn new(state: State, reopens: u32, remaining: Option<Duration>) -> Self {
        SharedState {
            state,
            reopens,
            remaining,
            version: 0,
        }
    }

    /// The same state with the fleet's version.
    ///
    /// ```
    /// let s = fluxgate_core::store::SharedState::new(fluxgate_core::State::Closed, 0, None).with_version(3);
    /// assert_eq!(s.version, 3);
    /// ```
    pub fn with_version(mut self, version: u64) -> Self {
        self.version = version;
        self
    }
}

/// Where a breaker's state is shared (see the [module documentation](self)).
///
/// Implementations never block the breaker: `attach` returns at once, and every method
/// of the sink it returns only hands work to the store's own thread(s). A panic in a
/// store or sink is contained and never reaches the caller.
///
/// ```
/// use fluxgate_core::store::{Change, StateStore, StoreLink, StoreSink};
/// /// Shares nothing: prints what it is told.
/// struct Print;
/// struct PrintSink(String);
/// impl StoreSink for PrintSink {
///     fn changed(&self, c: Change) { println!("{}: {} -> {}", self.0, c.from, c.to); }
/// }
/// impl StateStore for Print {
///     fn attach(&self, link: StoreLink) -> Box<dyn StoreSink> {
///         Box::new(PrintSink(link.name().to_owned()))
///     }
/// }
/// let cb = fluxgate_core::CircuitBreaker::builder("db").store(Print).build().unwrap();
/// cb.force_open();
/// assert_eq!(cb.info().store_connected, Some(true));
/// ```
pub trait StateStore: Send + Sync + 'static {
    /// Called once when a breaker is built with this store: remember `link`, return the
    /// sink the breaker tells its transitions. Must not block.
    fn attach(&self, link: StoreLink) -> Box<dyn StoreSink>;
}

impl<S: StateStore + ?Sized> StateStore for Arc<S> {
    fn attach(&self, link: StoreLink) -> Box<dyn StoreSink> {
        (**self).attach(link)
    }
}

/// A breaker's side of a store: what the breaker tells it. Every method is called on the
/// thread of a caller and must return at once. No lock of the breaker is held while one
/// runs: a sink may call any method of its [`StoreLink`] from any of them.
pub trait StoreSink: Send + Sync + 'static {
    /// The breaker made a transition of its own. Changes arrive one at a time, in
    /// transition order, right after the transition (its lock released): a change made on
    /// another thread meanwhile may be handed over by the thread that is already handing
    /// over, and a change the sink itself causes (through its link) arrives after this
    /// call returns.
    fn changed(&self, change: Change);

    /// The breaker is `open` in local epoch `epoch`, its wait is over, and it needs a
    /// probe lease (only asked when `leases_probes` and `connected` are true). Called on
    /// every rejected call until a lease is granted: cheap and idempotent, please.
    fn wants_probe(&self, epoch: u64) {
        let _ = epoch;
    }

    /// Whether probes need a lease from the store (read once, at build time).
    fn leases_probes(&self) -> bool {
        false
    }

    /// The `retry_after` of a call rejected while waiting for a lease (read once).
    fn lease_retry_after(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// How long a probe grant ([`StoreLink::grant_probe`]) stands when the breaker does
    /// not use it: the lease's TTL (read once). After it, the store may give the lease to
    /// another instance, so the breaker asks again (`wants_probe`) before it probes; a
    /// store that renews a lease its holder asks for again loses nothing by a short one.
    ///
    /// By default, [`lease_retry_after`](Self::lease_retry_after): a store that renews
    /// its leases at most that often (a poll) keeps them at least that long. A store whose
    /// leases last longer should say so (a grant that outlived the lease would let more
    /// than k instances probe).
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_core::store::{Change, StoreSink};
    /// struct Leasing;
    /// impl StoreSink for Leasing {
    ///     fn changed(&self, _: Change) {}
    ///     fn leases_probes(&self) -> bool { true }
    ///     fn lease_ttl(&self) -> Duration { Duration::from_secs(10) }
    /// }
    /// struct Plain;
    /// impl StoreSink for Plain {
    ///     fn changed(&self, _: Change) {}
    /// }
    /// assert_eq!(Leasing.lease_ttl(), Duration::from_secs(10));
    /// assert_eq!(Plain.lease_ttl(), Plain.lease_retry_after());
    /// ```
    fn lease_ttl(&self) -> Duration {
        self.lease_retry_after()
    }

    /// The breaker is ready: from now on `StoreLink::apply` and `grant_probe` act on it
    /// (before, they do nothing). Called once, right after `attach`.
    fn attached(&self) {}

    /// Whether the store currently reaches the fleet (shown in `Info::store_connected`).
    /// While it does not, a breaker probes without a lease.
    fn connected(&self) -> bool {
        true
    }
}

/// The handle a store gets for one breaker: apply the fleet's state, grant a probe
/// lease, read the breaker's state. Holds the breaker weakly: once the breaker is gone,
/// every method does nothing and `is_alive` is false.
#[derive(Clone)]
pub struct StoreLink {
    name: Arc<str>,
    core: Weak<Core>,
}

impl fmt::Debug for StoreLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreLink")
            .field("name", &&*self.name)
            .field("alive", &self.is_alive())
            .finish()
    }
}

impl StoreLink {
    pub(crate) fn new(name: Arc<str>, core: Weak<Core>) -> Self {
        StoreLink { name, core }
    }

    /// The breaker's name (the fleet's key).
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use fluxgate_core::store::*;
    /// # #[derive(Clone, Default)] struct Keep(Arc<Mutex<Option<StoreLink>>>);
    /// # struct Quiet;
    /// # impl StoreSink for Quiet { fn changed(&self, _: Change) {} }
    /// # impl StateStore for Keep {
    /// #     fn attach(&self, l: StoreLink) -> Box<dyn StoreSink> { *self.0.lock().unwrap() = Some(l); Box::new(Quiet) }
    /// # }
    /// # let keep = Keep::default();
    /// # let cb = fluxgate_core::CircuitBreaker::builder("db").store(keep.clone()).build().unwrap();
    /// # let link = keep.0.lock().unwrap().clone().unwrap();
    /// assert_eq!(link.name(), "db");
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the breaker still exists (and was not retired by a registry). Takes no
    /// lock of the breaker.
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use fluxgate_core::store::*;
    /// # #[derive(Clone, Default)] struct Keep(Arc<Mutex<Option<StoreLink>>>);
    /// # struct Quiet;
    /// # impl StoreSink for Quiet { fn changed(&self, _: Change) {} }
    /// # impl StateStore for Keep {
    /// #     fn attach(&self, l: StoreLink) -> Box<dyn StoreSink> { *self.0.lock().unwrap() = Some(l); Box::new(Quiet) }
    /// # }
    /// # let keep = Keep::default();
    /// # let cb = fluxgate_core::CircuitBreaker::builder("db").store(keep.clone()).build().unwrap();
    /// # let link = keep.0.lock().unwrap().clone().unwrap();
    /// assert!(link.is_alive());
    /// drop(cb);
    /// assert!(!link.is_alive());
    /// ```
    pub fn is_alive(&self) -> bool {
        self.core.upgrade().is_some_and(|c| !c.is_retired())
    }

    /// Brings the breaker to the fleet's state: a transition (with its signal to the
    /// listeners) that is not told back to the store; for `open`, the fleet's deadline
    /// replaces the local retry policy's for this open period. A breaker already in that
    /// state makes no transition (it takes the version and reopens, and an `open` one the
    /// new deadline). Nothing happens when `shared.state` is `half_open`, or when
    /// `shared.version` is not above the version the breaker was last brought to.
    /// Whether it was applied.
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use fluxgate_core::store::*;
    /// # #[derive(Clone, Default)] struct Keep(Arc<Mutex<Option<StoreLink>>>);
    /// # struct Quiet;
    /// # impl StoreSink for Quiet { fn changed(&self, _: Change) {} }
    /// # impl StateStore for Keep {
    /// #     fn attach(&self, l: StoreLink) -> Box<dyn StoreSink> { *self.0.lock().unwrap() = Some(l); Box::new(Quiet) }
    /// # }
    /// # let keep = Keep::default();
    /// # let cb = fluxgate_core::CircuitBreaker::builder("db").store(keep.clone()).build().unwrap();
    /// # let link = keep.0.lock().unwrap().clone().unwrap();
    /// use fluxgate_core::State;
    /// let remote = SharedState::new(State::Open, 0, Some(std::time::Duration::from_secs(9)));
    /// assert!(link.apply(remote.with_version(4)));
    /// assert_eq!(cb.state(), State::Open);
    /// assert!(cb.retry_after().unwrap() <= std::time::Duration::from_secs(9));
    /// assert!(!link.apply(SharedState::new(State::Closed, 0, None).with_version(3)), "late");
    /// ```
    pub fn apply(&self, shared: SharedState) -> bool {
        self.core.upgrade().is_some_and(|c| c.apply_shared(&shared))
    }

    /// Grants the probe lease asked for by `wants_probe(epoch)`: the next call after the
    /// wait goes through as a probe. A grant for an epoch that is over does nothing. The
    /// grant lapses after [`StoreSink::lease_ttl`], and a newer fleet version taken
    /// meanwhile revokes it (the write that made it cleared the leases): then the
    /// breaker asks again.
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use fluxgate_core::store::*;
    /// # #[derive(Clone, Default)] struct Keep(Arc<Mutex<Option<StoreLink>>>);
    /// # struct Quiet;
    /// # impl StoreSink for Quiet { fn changed(&self, _: Change) {} }
    /// # impl StateStore for Keep {
    /// #     fn attach(&self, l: StoreLink) -> Box<dyn StoreSink> { *self.0.lock().unwrap() = Some(l); Box::new(Quiet) }
    /// # }
    /// # let keep = Keep::default();
    /// # let cb = fluxgate_core::CircuitBreaker::builder("db").store(keep.clone()).build().unwrap();
    /// # let link = keep.0.lock().unwrap().clone().unwrap();
    /// link.grant_probe(0); // not open: nothing to grant
    /// assert_eq!(cb.state(), fluxgate_core::State::Closed);
    /// ```
    pub fn grant_probe(&self, epoch: u64) {
        if let Some(c) = self.core.upgrade() {
            c.grant_probe(epoch);
        }
    }

    /// Tells the breaker's listeners ([`Listener::on_store_connection`]) that the store
    /// lost (`false`) or regained (`true`) its connection to the fleet. Call it from the
    /// store's own thread, once per change (the breaker reports the state at attach time
    /// itself, from [`StoreSink::connected`]). Listener panics are contained.
    ///
    /// [`Listener::on_store_connection`]: crate::listeners::Listener::on_store_connection
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use fluxgate_core::store::*;
    /// # #[derive(Clone, Default)] struct Keep(Arc<Mutex<Option<StoreLink>>>);
    /// # struct Quiet;
    /// # impl StoreSink for Quiet { fn changed(&self, _: Change) {} }
    /// # impl StateStore for Keep {
    /// #     fn attach(&self, l: StoreLink) -> Box<dyn StoreSink> { *self.0.lock().unwrap() = Some(l); Box::new(Quiet) }
    /// # }
    /// # let keep = Keep::default();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// struct Watch(Arc<Mutex<Vec<bool>>>);
    /// impl fluxgate_core::listeners::Listener for Watch {
    ///     fn on_signal(&self, _: &fluxgate_core::Signal) -> Result<(), fluxgate_core::listeners::ListenerError> { Ok(()) }
    ///     fn on_store_connection(&self, _: &str, connected: bool) { self.0.lock().unwrap().push(connected) }
    /// }
    /// let cb = fluxgate_core::CircuitBreaker::builder("db")
    ///     .store(keep.clone())
    ///     .listener(Watch(seen.clone()))
    ///     .build()
    ///     .unwrap();
    /// let link = keep.0.lock().unwrap().clone().unwrap();
    /// link.connection(false);
    /// assert_eq!(*seen.lock().unwrap(), [true, false]); // at attach, then the loss
    /// # drop(cb);
    /// ```
    pub fn connection(&self, connected: bool) {
        if let Some(c) = self.core.upgrade() {
            c.store_connection(connected);
        }
    }

    /// Tells the breaker that its `change` was written as the fleet's state `shared`
    /// (with the new version). If the breaker took an older fleet state after making the
    /// change (the store's delivery crossed it) and is still in it (or probing from it),
    /// it takes `shared`, which is newer; otherwise — it is where the change left it, or
    /// further on by later changes of its own — it only records the version (versions
    /// only grow: 0 records nothing) and, still in that open period, the fleet's
    /// deadline. Whether the ack was taken (false for a version not above the last one).
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use fluxgate_core::store::*;
    /// # #[derive(Clone, Default)] struct Keep(Arc<Mutex<Option<StoreLink>>>);
    /// # struct Quiet;
    /// # impl StoreSink for Quiet { fn changed(&self, _: Change) {} }
    /// # impl StateStore for Keep {
    /// #     fn attach(&self, l: StoreLink) -> Box<dyn StoreSink> { *self.0.lock().unwrap() = Some(l); Box::new(Quiet) }
    /// # }
    /// # let keep = Keep::default();
    /// # let cb = fluxgate_core::CircuitBreaker::builder("db").store(keep.clone()).build().unwrap();
    /// # let link = keep.0.lock().unwrap().clone().unwrap();
    /// use fluxgate_core::State;
    /// cb.force_open(); // a store would have been told this Change, with base 0
    /// let change = Change::new(State::Closed, State::ForcedOpen, 0, None, 1, true, 0);
    /// assert!(link.written(&change, SharedState::new(State::ForcedOpen, 0, None).with_version(1)));
    /// assert_eq!(cb.state(), State::ForcedOpen);
    /// ```
    pub fn written(&self, change: &Change, shared: SharedState) -> bool {
        self.core
            .upgrade()
            .is_some_and(|c| c.ack_written(change, &shared))
    }

    /// The breaker's own state now (`remaining`: its `retry_after()`), for a store that
    /// re-seeds a fleet that lost its state; `None` once the breaker is gone.
    ///
    /// ```
    /// # use std::sync::{Arc, Mutex};
    /// # use fluxgate_core::store::*;
    /// # #[derive(Clone, Default)] struct Keep(Arc<Mutex<Option<StoreLink>>>);
    /// # struct Quiet;
    /// # impl StoreSink for Quiet { fn changed(&self, _: Change) {} }
    /// # impl StateStore for Keep {
    /// #     fn attach(&self, l: StoreLink) -> Box<dyn StoreSink> { *self.0.lock().unwrap() = Some(l); Box::new(Quiet) }
    /// # }
    /// # let keep = Keep::default();
    /// # let cb = fluxgate_core::CircuitBreaker::builder("db").store(keep.clone()).build().unwrap();
    /// # let link = keep.0.lock().unwrap().clone().unwrap();
    /// cb.force_open();
    /// assert_eq!(link.current().unwrap().state, fluxgate_core::State::ForcedOpen);
    /// ```
    pub fn current(&self) -> Option<SharedState> {
        Some(self.core.upgrade()?.shared_now())
    }
}

// ------------------------------------------------------------------------------------
// MemoryStore

/// Breakers of one process sharing state, with the same rules as the Redis store, moved
/// by hand: nothing travels until [`sync`](MemoryStore::sync). For tests of fleet
/// semantics with a manual clock (several breakers stand for several processes).
///
/// Rules (the same as the Redis store's):
/// - Every write bumps the fleet's version. A traffic transition is written only if the
///   writer had seen the latest version, except a trip, also written when the fleet is
///   `closed` (it is news); a writer that loses takes the fleet's state. Manual commands
///   are always written (an operator's command is the latest word).
/// - `half_open` is never written: at most `probes` breakers hold a lease at once.
/// - A breaker that joins takes the fleet's state (a restart).
/// - A lease lasts `ttl` (`probes`); asking again while holding it renews it.
/// - While disconnected (`set_connected(false)`) nothing travels and breakers work and
///   probe on their own; on reconnection each breaker's last change is written by those
///   rules (a manual command among its offline changes makes it a command, as in the
///   Redis store).
///
/// ```
/// use fluxgate_core::{CircuitBreaker, State, clock::ManualClock, store::MemoryStore};
/// let store = MemoryStore::new(ManualClock::new());
/// let a = CircuitBreaker::builder("db").store(store.clone()).build().unwrap();
/// let b = CircuitBreaker::builder("db").store(store.clone()).build().unwrap();
/// a.force_open();
/// store.sync();
/// assert_eq!(b.state(), State::ForcedOpen);
/// assert_eq!(store.version("db"), Some(1));
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Mutex<Memory>>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

struct Memory {
    clock: Arc<dyn Clock>,
    probes: usize,
    lease_ttl: u64,
    connected: bool,
    fleets: HashMap<Arc<str>, MemFleet>,
    members: Vec<Member>,
    queue: VecDeque<(usize, Msg)>,
}

#[derive(Default)]
struct MemFleet {
    version: u64,
    state: Option<State>,
    reopens: u32,
    /// Store-clock nanos; `None`: never.
    deadline: Option<u64>,
    /// (member, lease expiry) of the current version.
    holders: Vec<(usize, u64)>,
}

struct Member {
    link: StoreLink,
    /// The last version this member wrote: its later changes build on it.
    own: u64,
    /// The last version applied to it.
    told: u64,
    connected: Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Clone, Copy)]
enum Msg {
    Join,
    Changed(Change),
    Probe(u64),
}

struct MemSink {
    id: usize,
    inner: Arc<Mutex<Memory>>,
    connected: Arc<std::sync::atomic::AtomicBool>,
    leases: bool,
    lease_ttl: Duration,
}

fn lock(m: &Mutex<Memory>) -> std::sync::MutexGuard<'_, Memory> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StoreSink for MemSink {
    fn changed(&self, mut change: Change) {
        let mut m = lock(&self.inner);
        if !m.connected {
            // Reconcile step 1: only the last change waits for the reconnection (a
            // `half_open` is never written), a command among those it replaces keeping it
            // a command.
            if change.to == State::HalfOpen {
                return;
            }
            let id = self.id;
            m.queue.retain(|&(member, msg)| match msg {
                Msg::Changed(c) if member == id => {
                    change.manual |= c.manual;
                    false
                }
                _ => true,
            });
        }
        m.queue.push_back((self.id, Msg::Changed(change)));
    }
    fn wants_probe(&self, epoch: u64) {
        lock(&self.inner)
            .queue
            .push_back((self.id, Msg::Probe(epoch)));
    }
    fn attached(&self) {
        lock(&self.inner).queue.push_back((self.id, Msg::Join));
    }
    fn leases_probes(&self) -> bool {
        self.leases
    }
    fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }
    fn connected(&self) -> bool {
        self.connected.load(std::sync::atomic::Ordering::Acquire)
    }
}

impl StateStore for MemoryStore {
    fn attach(&self, link: StoreLink) -> Box<dyn StoreSink> {
        let mut m = lock(&self.inner);
        let id = m.members.len();
        let connected = Arc::new(std::sync::atomic::AtomicBool::new(m.connected));
        m.members.push(Member {
            link,
            own: 0,
            told: 0,
            connected: connected.clone(),
        });
        Box::new(MemSink {
            id,
            inner: self.inner.clone(),
            connected,
            leases: m.probes > 0,
            lease_ttl: Duration::from_nanos(m.lease_ttl),
        })
    }
}

impl MemoryStore {
    /// A store reading deadlines and lease expiries from `clock` (give it the breakers'
    /// `ManualClock`); no probe leases.
    ///
    /// ```
    /// let _ = fluxgate_core::store::MemoryStore::new(fluxgate_core::clock::ManualClock::new());
    /// ```
    pub fn new(clock: impl Clock) -> Self {
        MemoryStore {
            inner: Arc::new(Mutex::new(Memory {
                clock: Arc::new(clock),
                probes: 0,
                lease_ttl: 30_000_000_000,
                connected: true,
                fleets: HashMap::new(),
                members: Vec::new(),
                queue: VecDeque::new(),
            })),
        }
    }

    /// At most `k` breakers of a fleet probe at once (leases lasting `ttl`, so a lease
    /// whose holder is gone frees itself); `k = 0` (the default) turns leases off. Set it
    /// before attaching breakers.
    ///
    /// ```
    /// let _ = fluxgate_core::store::MemoryStore::new(fluxgate_core::clock::ManualClock::new())
    ///     .probes(1, std::time::Duration::from_secs(10));
    /// ```
    pub fn probes(self, k: usize, ttl: Duration) -> Self {
        {
            let mut m = lock(&self.inner);
            m.probes = k;
            m.lease_ttl = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        }
        self
    }

    /// Connects or disconnects every breaker (a store outage); reconnecting delivers
    /// what waited at the next `sync`.
    ///
    /// ```
    /// let s = fluxgate_core::store::MemoryStore::new(fluxgate_core::clock::ManualClock::new());
    /// s.set_connected(false);
    /// ```
    pub fn set_connected(&self, yes: bool) {
        let links: Vec<StoreLink> = {
            let mut m = lock(&self.inner);
            let changed = m.connected != yes;
            m.connected = yes;
            for member in &m.members {
                member
                    .connected
                    .store(yes, std::sync::atomic::Ordering::Release);
            }
            if changed {
                m.members.iter().map(|member| member.link.clone()).collect()
            } else {
                Vec::new()
            }
        };
        // Outside the store's lock: listener code runs here.
        for link in links {
            link.connection(yes);
        }
    }

    /// The fleet's version for `name` (`None` before its first write).
    ///
    /// ```
    /// let s = fluxgate_core::store::MemoryStore::new(fluxgate_core::clock::ManualClock::new());
    /// assert_eq!(s.version("db"), None);
    /// ```
    pub fn version(&self, name: &str) -> Option<u64> {
        lock(&self.inner)
            .fleets
            .get(name)
            .filter(|f| f.version > 0)
            .map(|f| f.version)
    }

    /// The fleet's state for `name` (`None` before its first write).
    ///
    /// ```
    /// let s = fluxgate_core::store::MemoryStore::new(fluxgate_core::clock::ManualClock::new());
    /// assert_eq!(s.state("db"), None);
    /// ```
    pub fn state(&self, name: &str) -> Option<State> {
        lock(&self.inner).fleets.get(name).and_then(|f| f.state)
    }

    /// Delivers everything queued, in order: writes the breakers' changes, grants leases,
    /// and brings every breaker to its fleet's state. Does nothing while disconnected.
    ///
    /// ```
    /// let s = fluxgate_core::store::MemoryStore::new(fluxgate_core::clock::ManualClock::new());
    /// s.sync();
    /// ```
    pub fn sync(&self) {
        loop {
            let (applies, grants) = {
                let mut m = lock(&self.inner);
                if !m.connected {
                    return;
                }
                let Some((id, msg)) = m.queue.pop_front() else {
                    return;
                };
                m.handle(id, msg)
            };
            // Outside the store's lock: applying runs the breakers' listeners.
            for (link, shared, written) in applies {
                match written {
                    Some(change) => link.written(&change, shared),
                    None => link.apply(shared),
                };
            }
            for (link, epoch) in grants {
                link.grant_probe(epoch);
            }
        }
    }
}

/// Fleet states to apply, or (with the change) to acknowledge to their writer.
type Applies = Vec<(StoreLink, SharedState, Option<Change>)>;
type Grants = Vec<(StoreLink, u64)>;

impl Memory {
    fn handle(&mut self, id: usize, msg: Msg) -> (Applies, Grants) {
        let now = self.clock.now_nanos();
        let name: Arc<str> = self.members[id].link.name.clone();
        let mut grants = Vec::new();
        let fleet = self.fleets.entry(name.clone()).or_default();
        let mut wrote = None;
        match msg {
            Msg::Join => {}
            Msg::Changed(c) if c.to == State::HalfOpen => {}
            Msg::Changed(c) => {
                let base = c.base.max(self.members[id].own);
                let write = c.manual
                    || fleet.version == base
                    || (c.to == State::Open && matches!(fleet.state, None | Some(State::Closed)));
                if write {
                    fleet.version += 1;
                    fleet.state = Some(c.to);
                    fleet.reopens = c.reopens;
                    fleet.deadline = c.wait.map(|w| {
                        now.saturating_add(u64::try_from(w.as_nanos()).unwrap_or(u64::MAX))
                    });
                    fleet.holders.clear();
                    self.members[id].own = fleet.version;
                    self.members[id].told = fleet.version;
                    wrote = Some(c);
                }
            }
            Msg::Probe(epoch) => {
                let ttl = self.lease_ttl;
                fleet.holders.retain(|&(_, until)| until > now);
                let until = now.saturating_add(ttl);
                let room = fleet.holders.len() < self.probes;
                let granted = match fleet.holders.iter_mut().find(|(h, _)| *h == id) {
                    // Asked again by its holder: renewed, so the lease lasts as long as
                    // the breaker's new grant.
                    Some((_, expiry)) => {
                        *expiry = until;
                        true
                    }
                    None if room => {
                        fleet.holders.push((id, until));
                        true
                    }
                    None => false,
                };
                if granted {
                    grants.push((self.members[id].link.clone(), epoch));
                }
            }
        }
        let fleet = &self.fleets[&name];
        let mut applies = Vec::new();
        if let Some(state) = fleet.state {
            let remaining = fleet
                .deadline
                .map(|d| Duration::from_nanos(d.saturating_sub(now)));
            let shared =
                SharedState::new(state, fleet.reopens, remaining).with_version(fleet.version);
            for (i, m) in self.members.iter_mut().enumerate() {
                // A member that lost a write is told again (it may have moved on).
                if i == id && wrote.is_some() {
                    applies.push((m.link.clone(), shared, wrote));
                } else if m.link.name == name
                    && (m.told < fleet.version || (i == id && m.own != fleet.version))
                {
                    m.told = fleet.version;
                    applies.push((m.link.clone(), shared, None));
                }
            }
        }
        (applies, grants)
    }
}
