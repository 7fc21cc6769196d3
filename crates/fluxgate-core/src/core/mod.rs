//! The state machine every face shares: state word, window, streak, half-open slots and
//! the ordered signal queue. Faces (`CircuitBreaker`, `AsyncCircuitBreaker`, the tower
//! service) are thin wrappers around [`Ticket::admit`] (`Core::admit_fast`, then
//! `Core::admit_slow`) and the [`Ticket`] it returns.
//!
//! Invariants:
//! - `word` packs the state and a 61-bit epoch; every transition stores a new epoch, so a
//!   ticket knows whether the state it was admitted in still holds (SM-17). At one
//!   transition per nanosecond the epoch would wrap after 73 years.
//! - Windows tag their words with the epoch, so a transition empties them without
//!   touching them (the window is told of each new epoch first, see `Window::advance`,
//!   R-1). The failure streak and the half-open slots carry the epoch's low 32 bits and are
//!   rewritten by every transition, so a word with another tag always means "a transition
//!   happened since": a late writer drops its write, and a slot taken in an earlier
//!   half-open period is never given back to a later one (R-7).
//! - Transitions are serialised by one mutex that the hot path never takes; `changed` is
//!   written before `word` (release), so a reader that sees an epoch sees its time.
//! - Signals take their place in line under that mutex and are delivered outside every
//!   lock, in transition order, by the thread that caused them or a background thread
//!   (`dispatch`: SM-16, SM-18, SM-19, R-2).
//! - With a store, a transition's `Change` is queued under that mutex too and handed to
//!   the sink after it is released, in transition order, one thread at a time
//!   (`Fleet::hand_over`): a sink may call back into the breaker.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::sync::widths;
use crate::sync::{AtomicU32, AtomicU64, Mutex, MutexGuard, Ordering};
use crate::tagged;
use std::time::{Duration, SystemTime};

use crate::clock::Clock;
use crate::error::RejectionName;
use crate::listeners::{CallEvent, CallOutcome, CallSink, EventSink, Listener};
use crate::permits::Permit;
use crate::recovery::{Recovery, RecoveryContext, Verdict};
use crate::retries::{Retry, RetryContext};
use crate::store::{Change, SharedState, StateStore, StoreLink, StoreSink};
use crate::trackers::Tracker;
use crate::trippers::{TripContext, Tripper};
use crate::windows::{AnyWindow, Window};
use crate::{CallNotPermitted, Metric, Record, Signal, State};

pub(crate) mod dispatch;
mod leases;
mod ticket;
use dispatch::Dispatcher;
pub(crate) use dispatch::SignalHook;
use leases::Leases;
pub use ticket::{Outcome, Ticket};

const STATE_BITS: u32 = 3;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;
const EPOCH_MASK: u64 = u64::MAX >> STATE_BITS;
/// The streak and the half-open slots: the epoch's low bits, then a 32-bit count.
const COUNT_BITS: u32 = 32;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;
/// The probes of a half-open period: recorded probes in the high half of the count, their
/// successes in the low half, each saturating at `recovery::MAX_PROBES`.
const PROBE_BITS: u32 = COUNT_BITS / 2;
const PROBE_MAX: u64 = (1 << PROBE_BITS) - 1;

/// The half-open slot an admission holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// None (any state but `half_open`, or given back already).
    None,
    /// One of the `half_open` counter.
    Counted,
    /// Slot `Admission::lease` of the leases (`Builder::probe_timeout`).
    Leased,
}

#[inline]
pub(crate) fn state_of(word: u64) -> State {
    State::from_bits(word & STATE_MASK)
}

#[inline]
pub(crate) fn epoch_of(word: u64) -> u64 {
    word >> STATE_BITS
}

#[inline]
fn pack(state: State, epoch: u64) -> u64 {
    ((epoch & EPOCH_MASK) << STATE_BITS) | state as u64
}

/// A streak or slot word of `epoch` holding `count` (a tagged word, see `crate::tagged`).
#[inline]
fn counted(epoch: u64, count: u64) -> u64 {
    tagged::word(tagged::tag_of(epoch, widths::EPOCH_TAG), count, COUNT_BITS)
}

/// The count of a streak or slot word if it belongs to `epoch`.
#[inline]
fn count_in(word: u64, epoch: u64) -> Option<u64> {
    tagged::value_of(word, tagged::tag_of(epoch, widths::EPOCH_TAG), COUNT_BITS)
}

/// A jitter seed from the operating system's randomness (std's `RandomState` keys), new
/// for each open period (R-4).
fn fresh_seed(epoch: u64) -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(epoch)
}

/// Snapshot of a breaker (see `CircuitBreaker::info`).
///
/// ```
/// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
/// let info = cb.info();
/// assert_eq!(info.name, "db");
/// assert_eq!(info.state, fluxgate_core::State::Closed);
/// assert_eq!(info.reopens, 0);
/// assert_eq!(info.metric.total_count, 0);
/// assert_eq!(info.pending_signals, 0);
/// assert_eq!(info.coalesced_signals, 0);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Info {
    /// The breaker's name.
    pub name: String,
    /// The current state.
    pub state: State,
    /// Wall-clock time of the last transition (construction time before any).
    pub changed_at: SystemTime,
    /// Times the circuit went from `half_open` back to `open` since it was last closed.
    pub reopens: u32,
    /// The window's aggregate for the current state.
    pub metric: Metric,
    /// Tracked failures in a row.
    pub consecutive_failures: u64,
    /// Signals not yet handed to the listeners: queued behind a slow listener, or being
    /// delivered (R-2).
    pub pending_signals: usize,
    /// Signals merged with their neighbours because listeners fell behind, since the
    /// breaker was built (R-2; see the `listeners` module).
    pub coalesced_signals: u64,
    /// With a [`StateStore`](crate::store::StateStore): whether it reaches the fleet now;
    /// `None` without a store.
    pub store_connected: Option<bool>,
}

struct Transitions {
    changed_wall: SystemTime,
    /// Set when a registry or keyed breaker hands this breaker over to a successor or
    /// drops it: a retired core never makes another transition (`succeed`, `retire`).
    retired: bool,
}

pub(crate) struct Parts {
    pub(crate) name: Arc<str>,
    /// Shared with a successor on live reconfiguration; the built-in windows are still
    /// called without a vtable.
    pub(crate) window: Arc<AnyWindow>,
    pub(crate) tracker: Box<dyn Tracker>,
    pub(crate) tripper: Box<dyn Tripper>,
    pub(crate) recovery: Box<dyn Recovery>,
    pub(crate) probe_timeout: Option<Duration>,
    pub(crate) retry: Box<dyn Retry>,
    pub(crate) permit: Box<dyn Permit>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) time_calls: bool,
    /// The window keeps the calls' durations (a rule needs them, or
    /// `measure_durations(true)`); else it records 0 even when calls are timed for
    /// listeners that want calls (SM-3).
    pub(crate) window_durations: bool,
    pub(crate) max_half_open_calls: u32,
    pub(crate) listeners: Vec<Arc<dyn Listener>>,
    pub(crate) hook: Option<Box<dyn SignalHook>>,
    /// The listeners that want every call, if any.
    pub(crate) calls: Option<CallSink>,
}

/// A breaker's link to its fleet (`Builder::store`); never read on the closed path.
struct Fleet {
    sink: Box<dyn StoreSink>,
    /// The open period's deadline set by the fleet, in `clock` nanos: 0 when the local
    /// retry policy decides (a local open), `u64::MAX` for never.
    until: AtomicU64,
    /// `epoch + 1` of the open period whose probe lease the store granted (0: none).
    /// Written under the transition lock; cleared when a newer fleet version is taken
    /// (every write of the fleet's state clears its leases).
    granted: AtomicU64,
    /// When that grant lapses, in `clock` nanos (the lease's TTL after the grant): the
    /// store may give the lease to another instance from then on.
    grant_until: AtomicU64,
    /// The fleet version last taken (written under the transition lock; only grows).
    version: AtomicU64,
    /// `epoch + 1` of the state the last fleet state applied (`apply`) put the breaker
    /// in, carried over to the local `half_open` that follows it (0: none). An
    /// acknowledged change older than that epoch was crossed by an older fleet state
    /// (`ack_written`). Written under the transition lock.
    remote_epoch: AtomicU64,
    leases: bool,
    lease_retry_after: Duration,
    /// How long a probe grant stands (`StoreSink::lease_ttl`), in nanos.
    lease_ttl: u64,
    /// The breaker's own changes, queued in transition order under the transition lock
    /// and handed to the sink after it is released (`Fleet::hand_over`).
    outbox: Mutex<Outbox>,
    /// The breaker's listeners, told when the store's connection comes and goes.
    events: EventSink,
}

/// Changes waiting for the sink, and whether a thread is handing them over.
struct Outbox {
    queue: VecDeque<Change>,
    handing: bool,
}

impl Outbox {
    /// Queues `change`; behind a sink that does not keep up, at most
    /// [`dispatch::QUEUE_CAPACITY`] wait, and a further change is merged into the newest
    /// one: the later state, from the earlier one's, manual if either was (a store writes
    /// the last change of a run anyway, as after a disconnection).
    fn push(&mut self, change: Change) {
        if self.queue.len() < dispatch::QUEUE_CAPACITY {
            self.queue.push_back(change);
            return;
        }
        if let Some(last) = self.queue.back_mut() {
            *last = Change {
                from: last.from,
                manual: last.manual || change.manual,
                ..change
            };
        }
    }
}

impl Fleet {
    fn outbox(&self) -> MutexGuard<'_, Outbox> {
        // Never held while foreign code runs: it cannot be poisoned by a sink.
        self.outbox.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands the queued changes to the sink, in order, outside every lock of the breaker
    /// (so the sink may call its link). One thread at a time: a thread that finds another
    /// handing over leaves its change to it, which keeps the order; a sink whose
    /// `changed` makes the breaker change again gets that change after it returns.
    fn hand_over(&self) {
        {
            let mut outbox = self.outbox();
            if outbox.handing {
                return;
            }
            outbox.handing = true;
        }
        loop {
            let next = {
                let mut outbox = self.outbox();
                let next = outbox.queue.pop_front();
                outbox.handing = next.is_some();
                next
            };
            let Some(change) = next else {
                return;
            };
            contained(|| self.sink.changed(change));
        }
    }

    /// Whether the store's probe grant for the open period of `epoch` still stands.
    fn granted(&self, epoch: u64, now: u64) -> bool {
        self.granted.load(Ordering::Acquire) == epoch.wrapping_add(1)
            && now < self.grant_until.load(Ordering::Acquire)
    }

    /// Takes `version` as the last fleet version (versions only grow; 0 changes nothing);
    /// a newer one revokes the probe grant, as the write that made it cleared the
    /// leases. Under the transition lock.
    fn take(&self, version: u64) {
        let last = self.version.load(Ordering::Acquire);
        if version > last {
            self.granted.store(0, Ordering::Release);
            self.version.store(version, Ordering::Release);
        }
    }
}

/// The transition lock of a transition that queued a change for the store: dropping it
/// releases the lock, then hands the change over (`Fleet::hand_over`). Given to the
/// signal dispatcher in place of the bare guard, so the store hears of the change before
/// listeners run on this thread.
struct Exclusive<'a> {
    guard: Option<MutexGuard<'a, Transitions>>,
    handover: Option<&'a Fleet>,
}

impl Drop for Exclusive<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        if let Some(f) = self.handover {
            f.hand_over();
        }
    }
}

/// Runs a store's code on a caller's thread; a panic in it is contained.
fn contained<T>(f: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).ok()
}

/// The shared state machine (crate-internal; unnameable outside).
pub struct Core {
    word: AtomicU64,
    /// Tracked failures in a row, as `counted(epoch, n)`.
    streak: AtomicU64,
    /// Half-open calls in flight, as `counted(epoch, n)` of the half-open period.
    half_open: AtomicU64,
    /// Probes recorded in the half-open period, as `counted(epoch, probes << 16 | successes)`.
    probes: AtomicU64,
    /// Slots with a deadline, instead of `half_open`, when a probe timeout is set.
    leases: Option<Leases>,
    /// Monotonic time of the last transition, written before `word`.
    changed: AtomicU64,
    /// The jitter seed of the current open period.
    seed: AtomicU64,
    reopens: AtomicU32,
    name: Arc<str>,
    rejection: RejectionName,
    time_calls: bool,
    window_durations: bool,
    needs_now: bool,
    /// The tripper is stateless: a success that leaves window and streak as they were
    /// cannot change its answer, so it is neither recorded nor asked.
    quiet_successes: bool,
    /// A success in `closed` can be checked for "changes nothing" before any other work
    /// (`success_is_quiet`): quiet successes, a count window, no clock reading needed and
    /// no listener that wants calls.
    quick_successes: bool,
    max_half_open_calls: u32,
    window: Arc<AnyWindow>,
    tracker: Box<dyn Tracker>,
    tripper: Box<dyn Tripper>,
    recovery: Box<dyn Recovery>,
    retry: Box<dyn Retry>,
    permit: Box<dyn Permit>,
    clock: Arc<dyn Clock>,
    dispatch: Dispatcher,
    /// Listeners that want every call; `None` (the common case) costs one branch.
    calls: Option<Box<CallSink>>,
    transitions: Mutex<Transitions>,
    /// Half-open probes record, count and are judged one at a time, so that the rule
    /// judges the probes it counted (SM-9); holds `epoch + 1` of the half-open period
    /// already decided (0: none), whose later probes record nothing. Never held while a
    /// transition runs (its listeners may call back).
    probe_turn: Mutex<u64>,
    /// `Transitions::retired`, readable without the lock (`StoreLink::is_alive`, which a
    /// store may call from anywhere): 1 once retired. Written with it, under the lock.
    retired: AtomicU32,
    fleet: std::sync::OnceLock<Fleet>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("name", &self.name)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// An admission that holds a half-open slot while the caller is not admitted yet: the
/// slot is given back when the guard is dropped (a refusal, or a panic in the permit or
/// the clock) unless [`admit`](Held::admit) hands the admission on.
struct Held<'a> {
    core: &'a Core,
    adm: Admission,
}

impl<'a> Held<'a> {
    fn new(core: &'a Core, adm: Admission) -> Held<'a> {
        Held { core, adm }
    }

    /// The admission, with its slot: the caller is admitted.
    fn admit(mut self) -> Admission {
        let adm = self.adm;
        self.adm.slot = Slot::None;
        adm
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.core.release(&mut self.adm);
    }
}

/// What a ticket remembers about its admission.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admission {
    word: u64,
    start: u64,
    slot: Slot,
    /// The index of a `Slot::Leased` (kept apart so that `Slot` leaves a niche in the byte
    /// it takes: the rejection path writes one byte less for it).
    lease: u32,
}

impl Core {
    pub(crate) fn new(p: Parts) -> Core {
        let now = p.clock.now_nanos();
        let wall = p.clock.wall();
        let needs_now = p.time_calls || p.window.needs_time();
        let dispatch = Dispatcher::new(p.name.clone(), p.listeners, p.hook);
        let quiet_successes = p.tripper.stateless();
        let quick_successes = quiet_successes
            && !needs_now
            && !p.window_durations
            && p.calls.is_none()
            && matches!(*p.window, AnyWindow::Count(_));
        Core {
            word: AtomicU64::new(pack(State::Closed, 0)),
            streak: AtomicU64::new(counted(0, 0)),
            half_open: AtomicU64::new(counted(0, 0)),
            probes: AtomicU64::new(counted(0, 0)),
            leases: p
                .probe_timeout
                .map(|t| Leases::new(p.max_half_open_calls, t)),
            changed: AtomicU64::new(now),
            seed: AtomicU64::new(fresh_seed(0)),
            reopens: AtomicU32::new(0),
            rejection: RejectionName::new(&p.name),
            name: p.name,
            time_calls: p.time_calls,
            window_durations: p.window_durations,
            needs_now,
            quiet_successes,
            quick_successes,
            max_half_open_calls: p.max_half_open_calls,
            window: p.window,
            tracker: p.tracker,
            tripper: p.tripper,
            recovery: p.recovery,
            retry: p.retry,
            permit: p.permit,
            clock: p.clock,
            dispatch,
            calls: p.calls.map(Box::new),
            transitions: Mutex::new(Transitions {
                changed_wall: wall,
                retired: false,
            }),
            probe_turn: Mutex::new(0),
            retired: AtomicU32::new(0),
            fleet: std::sync::OnceLock::new(),
        }
    }

    /// Attaches this (new) core to `store` (`Builder::store`); called once, at build time.
    pub(crate) fn attach_store(self: &Arc<Self>, store: &dyn StateStore, events: EventSink) {
        let link = StoreLink::new(self.name.clone(), Arc::downgrade(self));
        let Some(sink) = contained(|| store.attach(link)) else {
            return;
        };
        let leases = contained(|| sink.leases_probes()).unwrap_or(false);
        let lease_retry_after =
            contained(|| sink.lease_retry_after()).unwrap_or(Duration::from_secs(1));
        let lease_ttl = contained(|| sink.lease_ttl()).unwrap_or(lease_retry_after);
        let fleet = Fleet {
            sink,
            until: AtomicU64::new(0),
            granted: AtomicU64::new(0),
            grant_until: AtomicU64::new(0),
            version: AtomicU64::new(0),
            remote_epoch: AtomicU64::new(0),
            leases,
            lease_retry_after,
            lease_ttl: u64::try_from(lease_ttl.as_nanos()).unwrap_or(u64::MAX),
            outbox: Mutex::new(Outbox {
                queue: VecDeque::new(),
                handing: false,
            }),
            events,
        };
        if self.fleet.set(fleet).is_ok() {
            if let Some(f) = self.fleet.get() {
                contained(|| f.sink.attached());
                // The listeners learn the store's state from the start (a gauge exists
                // before the first outage); later changes come through the link.
                let connected = contained(|| f.sink.connected()).unwrap_or(false);
                f.events.store_connection(&self.name, connected);
            }
        }
    }

    /// Tells the listeners that the store lost (`false`) or regained (`true`) its
    /// connection (`StoreLink::connection`).
    pub(crate) fn store_connection(&self, connected: bool) {
        // A retired breaker's listeners let go of it (or its successor reports instead):
        // a late report must not bring its series back.
        if self.is_retired() {
            return;
        }
        if let Some(f) = self.fleet.get() {
            f.events.store_connection(&self.name, connected);
        }
    }

    /// Without the transition lock: a store may ask from anywhere (`StoreLink::is_alive`).
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire) != 0
    }

    /// While open: whether a probe may go now, and the time left (the fleet's deadline
    /// when it set one, else the retry policy's).
    fn open_wait(&self, ctx: &RetryContext, now: u64) -> (bool, Option<Duration>) {
        match self.fleet.get().map(|f| f.until.load(Ordering::Acquire)) {
            Some(u64::MAX) => (false, None),
            Some(until) if until != 0 => (
                now >= until,
                Some(Duration::from_nanos(until.saturating_sub(now))),
            ),
            _ => (self.retry.should_retry(ctx), self.retry.retry_after(ctx)),
        }
    }

    /// With probe leases and a connected store: whether the fleet granted this open
    /// period's probe and the grant has not lapsed (asking for it if not). Always true
    /// otherwise.
    fn fleet_allows_probe(&self, word: u64) -> Result<(), Option<Duration>> {
        let Some(f) = self.fleet.get() else {
            return Ok(());
        };
        let epoch = epoch_of(word);
        if !f.leases
            || f.granted(epoch, self.clock.now_nanos())
            || !contained(|| f.sink.connected()).unwrap_or(false)
        {
            return Ok(());
        }
        contained(|| f.sink.wants_probe(epoch));
        Err(Some(f.lease_retry_after))
    }

    /// `StoreLink::grant_probe`: the lease for the open period of `epoch`, standing for
    /// the store's lease TTL from now.
    pub(crate) fn grant_probe(&self, epoch: u64) {
        if let Some(f) = self.fleet.get() {
            // Under the lock: a newer fleet version taken meanwhile revokes it, not the
            // other way round.
            let _t = self.lock();
            let word = self.word.load(Ordering::Acquire);
            if epoch_of(word) == epoch && state_of(word) == State::Open {
                let until = self.clock.now_nanos().saturating_add(f.lease_ttl);
                f.grant_until.store(until, Ordering::Release);
                f.granted.store(epoch.wrapping_add(1), Ordering::Release);
            }
        }
    }

    /// `StoreLink::current`: the breaker's own state now, without the transition lock.
    pub(crate) fn shared_now(&self) -> SharedState {
        let state = self.state();
        let reopens = self.reopens.load(Ordering::Acquire);
        SharedState::new(state, reopens, self.retry_after())
    }

    /// `StoreLink::apply`: the fleet's state, as a transition not told back to the store.
    pub(crate) fn apply_shared(&self, shared: &SharedState) -> bool {
        let Some(f) = self.fleet.get() else {
            return false;
        };
        if shared.state == State::HalfOpen {
            return false;
        }
        {
            let t = self.lock();
            if t.retired {
                return false;
            }
            if self.state() == shared.state {
                // No transition: the version, reopens and (open) the fleet's deadline.
                if !self.take_version(f, shared) {
                    return false;
                }
                self.reopens.store(shared.reopens, Ordering::Release);
                if shared.state == State::Open {
                    self.set_fleet_deadline(shared);
                }
                return true;
            }
        }
        self.shift(None, shared.state, true, Some(shared))
    }

    /// `StoreLink::written`: the store wrote `change` as the fleet's state `shared`.
    pub(crate) fn ack_written(&self, change: &Change, shared: &SharedState) -> bool {
        let Some(f) = self.fleet.get() else {
            return false;
        };
        {
            let t = self.lock();
            let last = f.version.load(Ordering::Acquire);
            if t.retired || (shared.version != 0 && shared.version <= last) {
                return false;
            }
            // Crossed: the breaker is still in the state a fleet state applied after the
            // change put it in (or in the `half_open` that followed it). Every change
            // made before the first ack has the same base, so the base cannot tell.
            let word = self.word.load(Ordering::Acquire);
            let epoch = epoch_of(word);
            let crossed = f.remote_epoch.load(Ordering::Acquire) == epoch.wrapping_add(1)
                && epoch > change.epoch;
            if !crossed {
                // The breaker is where the change left it, or further on by changes of
                // its own (written next): it records the version only.
                f.take(shared.version);
                if epoch == change.epoch
                    && state_of(word) == State::Open
                    && shared.state == State::Open
                {
                    self.set_fleet_deadline(shared);
                }
                return true;
            }
        }
        // An older fleet state was applied after the change and overrode it; the write
        // is newer than that state.
        self.apply_shared(shared)
    }

    /// Records `shared.version` as the last taken; false if it is not newer (a late
    /// delivery). Under the transition lock.
    fn take_version(&self, f: &Fleet, shared: &SharedState) -> bool {
        let last = f.version.load(Ordering::Acquire);
        if shared.version != 0 && shared.version <= last {
            return false;
        }
        f.take(shared.version);
        true
    }

    fn set_fleet_deadline(&self, shared: &SharedState) {
        if let Some(f) = self.fleet.get() {
            let until = match shared.remaining {
                None => u64::MAX,
                Some(d) => {
                    let d = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                    self.clock
                        .now_nanos()
                        .saturating_add(d)
                        .clamp(1, u64::MAX - 1)
                }
            };
            f.until.store(until, Ordering::Release);
        }
    }

    /// Time since the last transition, zero when the clock reads earlier than it (a
    /// clock that stepped back). `changed` is written before the state word, so a caller
    /// that saw a state sees at least that state's time; if a later transition already
    /// wrote its own, the answer is shorter, which only delays a probe.
    fn since_change(&self, now: u64) -> Duration {
        Duration::from_nanos(now.saturating_sub(self.changed.load(Ordering::Acquire)))
    }

    pub(crate) fn name(&self) -> &Arc<str> {
        &self.name
    }

    #[inline]
    pub(crate) fn state(&self) -> State {
        state_of(self.word.load(Ordering::Acquire))
    }

    fn lock(&self) -> MutexGuard<'_, Transitions> {
        // Listeners never run under this lock, so it cannot be poisoned by them; if it
        // ever is, the data is still consistent (every write is a plain store).
        self.transitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[inline]
    fn reject(&self, state: State, retry_after: Option<Duration>) -> CallNotPermitted {
        if let Some(calls) = &self.calls {
            calls.emit(&CallEvent::new(
                &self.name,
                state,
                CallOutcome::Rejected,
                None,
            ));
        }
        self.rejection.reject(state, retry_after)
    }

    fn retry_context(&self, now: u64) -> RetryContext {
        RetryContext::new(self.since_change(now), self.reopens.load(Ordering::Acquire))
            .with_seed(self.seed.load(Ordering::Acquire))
    }

    /// Phase one, its inline part: may a call run now? (SM-6 … SM-12)
    ///
    /// `closed`, `metrics_only` and `disabled` are decided here, in the caller's frame;
    /// `None` sends the states that reject, or need the retry policy, a slot or a
    /// permit, to `admit_slow` (see `Ticket::admit`).
    #[inline(always)]
    pub(crate) fn admit_fast(&self) -> Option<Admission> {
        let word = self.word.load(Ordering::Acquire);
        match state_of(word) {
            State::Closed | State::MetricsOnly => Some(Admission {
                word,
                start: if self.time_calls {
                    self.clock.now_nanos()
                } else {
                    0
                },
                slot: Slot::None,
                lease: 0,
            }),
            State::Disabled => Some(Admission {
                word,
                start: 0,
                slot: Slot::None,
                lease: 0,
            }),
            _ => None,
        }
    }

    #[inline(never)]
    pub(crate) fn admit_slow(&self) -> Result<Admission, CallNotPermitted> {
        loop {
            let word = self.word.load(Ordering::Acquire);
            match state_of(word) {
                State::Closed | State::MetricsOnly => {
                    let start = if self.time_calls {
                        self.clock.now_nanos()
                    } else {
                        0
                    };
                    return Ok(Admission {
                        word,
                        start,
                        slot: Slot::None,
                        lease: 0,
                    });
                }
                State::Disabled => {
                    return Ok(Admission {
                        word,
                        start: 0,
                        slot: Slot::None,
                        lease: 0,
                    });
                }
                State::ForcedOpen => return Err(self.reject(State::ForcedOpen, None)),
                State::Open => {
                    // A reading that may lag, never lead: at worst the probe goes a tick
                    // later (see `Clock::recent_nanos`).
                    let now = self.clock.recent_nanos();
                    let ctx = self.retry_context(now);
                    let (due, retry_after) = self.open_wait(&ctx, now);
                    if due {
                        if let Err(retry_after) = self.fleet_allows_probe(word) {
                            // Another instance of the fleet holds the probe lease.
                            return Err(self.reject(State::Open, retry_after));
                        }
                        // SM-7: the move is lazy and the same call goes on as half-open.
                        self.transition(Some(word), State::HalfOpen, true);
                        continue;
                    }
                    return Err(self.reject(State::Open, retry_after));
                }
                State::HalfOpen => {
                    if self.leases.is_some() {
                        return self.admit_leased(word);
                    }
                    // SM-8: a slot of this half-open period first, then the permit.
                    // A period that is already over (a transition is being written) turns
                    // the caller away like a full one: waiting for it would make this
                    // caller depend on another thread's progress.
                    if !self.take_slot(epoch_of(word)) {
                        return Err(self.reject(State::HalfOpen, None));
                    }
                    // Held by a guard until admitted: a clock or permit that panics
                    // gives the slot back (else the period would be one slot short).
                    let mut held = Held::new(
                        self,
                        Admission {
                            word,
                            start: 0,
                            slot: Slot::Counted,
                            lease: 0,
                        },
                    );
                    let now = self.clock.now_nanos();
                    if !self.permit.permit(self.since_change(now)) {
                        drop(held);
                        return Err(self.reject(State::HalfOpen, None));
                    }
                    if self.time_calls {
                        held.adm.start = now;
                    }
                    return Ok(held.admit());
                }
            }
        }
    }

    /// SM-8 with a probe timeout: probes past their deadline give their slots back first,
    /// each counted as a tracked failure (which may end the period: then the caller is
    /// admitted as the new state says); then a slot, then the permit.
    #[cold]
    #[inline(never)]
    fn admit_leased(&self, word: u64) -> Result<Admission, CallNotPermitted> {
        let Some(leases) = self.leases.as_ref() else {
            return Err(self.reject(State::HalfOpen, None));
        };
        let epoch = epoch_of(word);
        let now = self.clock.now_nanos();
        leases.reclaim(epoch, now, || {
            // The hung probe's ticket will find its slot gone and record nothing. It
            // counts as a failure lasting the timeout, whenever a caller finds it.
            let mut timed_out = Admission {
                word,
                start: now.saturating_sub(leases.timeout()),
                slot: Slot::None,
                lease: 0,
            };
            self.record(&mut timed_out, Outcome::Failure);
        });
        if self.word.load(Ordering::Acquire) != word {
            // The timed-out probes ended the period (or another transition did): look again.
            return self.admit_slow();
        }
        let Some((index, start)) = leases.take(epoch, now, || self.clock.now_nanos()) else {
            return Err(self.reject(State::HalfOpen, None));
        };
        let held = Held::new(
            self,
            Admission {
                word,
                start,
                slot: Slot::Leased,
                lease: index,
            },
        );
        // A period that ended while the slot was taken turns the caller away like a full
        // one (its slot is then one of a period that is over).
        if self.word.load(Ordering::Acquire) != word
            || !self.permit.permit(self.since_change(start))
        {
            drop(held);
            return Err(self.reject(State::HalfOpen, None));
        }
        Ok(held.admit())
    }

    /// Takes a half-open slot of the period of `epoch`; false when all are taken or that
    /// period is over. The count never exceeds the limit, not even for a moment.
    fn take_slot(&self, epoch: u64) -> bool {
        let mut cur = self.half_open.load(Ordering::Acquire);
        loop {
            match count_in(cur, epoch) {
                Some(n) if n < u64::from(self.max_half_open_calls) => {}
                _ => return false,
            }
            match self.half_open.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Releases what an admission holds; called exactly once per admission. A slot of a
    /// half-open period that is over is not given back: the new period started with all
    /// of its slots free (R-7).
    #[inline]
    pub(crate) fn release(&self, adm: &mut Admission) {
        if adm.slot != Slot::None {
            self.release_slot(adm);
        }
    }

    /// Gives back the slot of `adm` and forgets it, so it is given back once; false when
    /// it was a lease that a caller reclaimed after its deadline (the probe then counted
    /// as a failure, and its own outcome must not count).
    #[inline(never)]
    fn release_slot(&self, adm: &mut Admission) -> bool {
        match (std::mem::replace(&mut adm.slot, Slot::None), &self.leases) {
            (Slot::Counted, _) => {
                self.release_counted(epoch_of(adm.word));
                true
            }
            (Slot::Leased, Some(leases)) => {
                leases.release(adm.lease, leases.stamp(epoch_of(adm.word), adm.start))
            }
            _ => true,
        }
    }

    fn release_counted(&self, epoch: u64) {
        let mut cur = self.half_open.load(Ordering::Acquire);
        while let Some(n) = count_in(cur, epoch) {
            if n == 0 {
                return;
            }
            match self.half_open.compare_exchange_weak(
                cur,
                cur - 1,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Phase two: the call finished with `outcome` (SM-3 … SM-11, SM-17).
    #[inline]
    pub(crate) fn record(&self, adm: &mut Admission, outcome: Outcome) {
        self.record_inline(adm, outcome)
    }

    /// [`record`](Self::record) of a success: the check that it changes nothing inline,
    /// the rest out of line and specialised.
    #[inline(always)]
    pub(crate) fn record_success(&self, adm: &mut Admission) {
        if !self.success_is_quiet(adm) {
            self.record_success_slow(adm)
        }
    }

    #[inline(never)]
    fn record_success_slow(&self, adm: &mut Admission) {
        self.record_inline(adm, Outcome::Success)
    }

    /// Whether a success admitted by `adm` would be dropped by `record_at` as changing
    /// nothing, decided from the same words without any other work: admitted in
    /// `closed` or `metrics_only`, the count window of its epoch full of equal successes
    /// (nothing written) and the streak of its epoch 0. Whether the breaker is still in
    /// the state and epoch of `adm` need not be read: if it moved on, `record_at` drops
    /// the outcome too (SM-17). Only for breakers whose every other step would be a
    /// no-op for such a call (`quick_successes`).
    #[inline(always)]
    fn success_is_quiet(&self, adm: &Admission) -> bool {
        const CLOSED: u64 = State::Closed as u64;
        const METRICS_ONLY: u64 = State::MetricsOnly as u64;
        if !self.quick_successes || !matches!(adm.word & STATE_MASK, CLOSED | METRICS_ONLY) {
            return false;
        }
        let epoch = epoch_of(adm.word);
        matches!(&*self.window, AnyWindow::Count(w) if w.success_is_quiet(epoch))
            && count_in(self.streak.load(Ordering::Acquire), epoch) == Some(0)
    }

    #[inline(always)]
    fn record_inline(&self, adm: &mut Admission, outcome: Outcome) {
        if self.calls.is_some() {
            return self.record_observed(adm, outcome);
        }
        self.record_at(adm, outcome, None)
    }

    /// [`record`](Self::record) for a breaker with listeners that want calls: they hear of
    /// the call first (with the duration from the same clock reading the window gets).
    #[cold]
    #[inline(never)]
    fn record_observed(&self, adm: &mut Admission, outcome: Outcome) {
        let state = state_of(adm.word);
        let Some(calls) = self.calls.as_deref().filter(|_| state != State::Disabled) else {
            return self.record_at(adm, outcome, None);
        };
        let now = self.clock.now_nanos();
        let outcome_seen = match outcome {
            Outcome::Success => CallOutcome::Success,
            Outcome::Failure => CallOutcome::Failure,
            Outcome::Ignored => CallOutcome::Ignored,
        };
        let duration = Duration::from_nanos(now.saturating_sub(adm.start));
        calls.emit(&CallEvent::new(
            &self.name,
            state,
            outcome_seen,
            Some(duration),
        ));
        self.record_at(adm, outcome, Some(now))
    }

    /// Records `outcome`; `now` is the clock reading when the caller has one already.
    #[inline(always)]
    fn record_at(&self, adm: &mut Admission, outcome: Outcome, now: Option<u64>) {
        let state = state_of(adm.word);
        let failure = match outcome {
            Outcome::Ignored => return,
            _ if state == State::Disabled => return,
            Outcome::Success => false,
            Outcome::Failure => true,
        };
        if adm.slot == Slot::Leased && !self.release_slot(adm) {
            // Its deadline passed and a caller counted it as a failure already.
            return;
        }
        let now = match now {
            Some(now) => now,
            None if self.needs_now => self.clock.now_nanos(),
            None => 0,
        };
        if state == State::HalfOpen {
            return self.record_probe(adm, failure, now);
        }
        if self.word.load(Ordering::Acquire) != adm.word {
            // The breaker moved on while the call ran: the outcome belongs to a state
            // that no longer exists (SM-17).
            return;
        }
        let duration = if self.window_durations {
            Duration::from_nanos(now.saturating_sub(adm.start))
        } else {
            Duration::ZERO
        };
        let epoch = epoch_of(adm.word);
        let record = Record { failure, duration };
        if !self.window.record_changed(epoch, now, record)
            && !failure
            && self.quiet_successes
            && matches!(state, State::Closed | State::MetricsOnly)
            && count_in(self.streak.load(Ordering::Acquire), epoch) == Some(0)
        {
            // The window held only such successes and the streak is 0: this call changed
            // neither, so the stateless tripper would answer what it answered for the
            // call that made them so (closed stays closed).
            return;
        }
        let streak = self.count_streak(epoch, failure);
        if state != State::Closed {
            return;
        }
        let metric = self.window.metric(epoch, now);
        if self.tripper.trip(&TripContext::new(&metric, state, streak)) {
            self.transition(Some(adm.word), State::Open, true);
        }
    }

    /// A half-open probe's outcome (SM-8, SM-9): recorded, counted and judged in one turn
    /// with the other probes of its period, so that the metric the rule reads holds
    /// exactly the probes counted so far; once a probe decided the period, later ones
    /// record nothing (SM-17). The transition runs after the turn.
    #[cold]
    #[inline(never)]
    fn record_probe(&self, adm: &Admission, failure: bool, now: u64) {
        let word = adm.word;
        let epoch = epoch_of(word);
        let verdict = {
            let mut decided = self.probe_turn.lock().unwrap_or_else(|p| p.into_inner());
            if *decided == epoch.wrapping_add(1) || self.word.load(Ordering::Acquire) != word {
                // The period was decided, or the breaker moved on (SM-17).
                return;
            }
            let duration = if self.window_durations {
                Duration::from_nanos(now.saturating_sub(adm.start))
            } else {
                Duration::ZERO
            };
            self.window
                .record_changed(epoch, now, Record { failure, duration });
            let streak = self.count_streak(epoch, failure);
            let metric = self.window.metric(epoch, now);
            let tripped = self
                .tripper
                .trip(&TripContext::new(&metric, State::HalfOpen, streak));
            let Some((probes, successes)) = self.count_probe(epoch, failure) else {
                return;
            };
            let ctx = RecoveryContext::new(&metric, failure, tripped, probes, successes, streak);
            let verdict = self.recovery.decide(&ctx);
            if verdict != Verdict::Stay {
                *decided = epoch.wrapping_add(1);
            }
            verdict
        };
        match verdict {
            Verdict::Stay => {}
            Verdict::Close => {
                self.transition(Some(word), State::Closed, true);
            }
            Verdict::Open => {
                self.transition(Some(word), State::Open, true);
            }
        }
    }

    /// Counts a recorded probe of `epoch`: (probes, successes) of the period so far, or
    /// `None` when a transition happened since (the probe then decides nothing).
    fn count_probe(&self, epoch: u64, failed: bool) -> Option<(u64, u64)> {
        let mut cur = self.probes.load(Ordering::Acquire);
        loop {
            let n = count_in(cur, epoch)?;
            let probes = ((n >> PROBE_BITS) + 1).min(PROBE_MAX);
            let successes = ((n & PROBE_MAX) + u64::from(!failed)).min(PROBE_MAX);
            let next = counted(epoch, (probes << PROBE_BITS) | successes);
            match self
                .probes
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return Some((probes, successes)),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Extends (failure) or ends (success) the streak of `epoch` and returns it. A streak
    /// word of another epoch means a transition happened since: nothing is written.
    #[inline]
    fn count_streak(&self, epoch: u64, failure: bool) -> u64 {
        let mut cur = self.streak.load(Ordering::Acquire);
        loop {
            let Some(n) = count_in(cur, epoch) else {
                return 0;
            };
            let next = if failure { (n + 1).min(COUNT_MASK) } else { 0 };
            if next == n {
                return n;
            }
            match self.streak.compare_exchange_weak(
                cur,
                counted(epoch, next),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return next,
                Err(actual) => cur = actual,
            }
        }
    }

    pub(crate) fn tracks(&self, error: &(dyn std::error::Error + 'static)) -> bool {
        self.tracker.track(error)
    }

    /// Moves to `to` if the state word is still `expect` (or unconditionally). Returns
    /// whether this call made the transition (SM-13 … SM-16).
    pub(crate) fn transition(&self, expect: Option<u64>, to: State, notify: bool) -> bool {
        self.shift(expect, to, notify, None)
    }

    /// `transition`, made by the fleet (`remote`: not told back to the store) or locally.
    fn shift(
        &self,
        expect: Option<u64>,
        to: State,
        notify: bool,
        remote: Option<&SharedState>,
    ) -> bool {
        let mut t = self.lock();
        let current = self.word.load(Ordering::Acquire);
        if t.retired || expect.is_some_and(|e| e != current) {
            return false;
        }
        if let (Some(shared), Some(f)) = (remote, self.fleet.get()) {
            if !self.take_version(f, shared) {
                return false;
            }
        }
        let from = state_of(current);
        let epoch = epoch_of(current).wrapping_add(1) & EPOCH_MASK;
        let now = self.clock.now_nanos();
        let wall = self.clock.wall();
        let reopens = match (from, to, remote) {
            (_, _, Some(shared)) => shared.reopens,
            (State::HalfOpen, State::Open, _) => {
                self.reopens.load(Ordering::Relaxed).saturating_add(1)
            }
            (_, State::Closed, _) => 0,
            _ => self.reopens.load(Ordering::Relaxed),
        };
        self.reopens.store(reopens, Ordering::Release);
        // Everything of the new epoch is in place before the state word publishes it.
        self.window.advance(epoch);
        self.streak.store(counted(epoch, 0), Ordering::Release);
        self.half_open.store(counted(epoch, 0), Ordering::Release);
        self.probes.store(counted(epoch, 0), Ordering::Release);
        if let Some(leases) = &self.leases {
            leases.clear();
        }
        if to == State::Open {
            self.seed.store(fresh_seed(epoch), Ordering::Release);
        }
        let fleet = self.fleet.get();
        if let Some(f) = fleet {
            match remote {
                Some(shared) if to == State::Open => self.set_fleet_deadline(shared),
                _ => f.until.store(0, Ordering::Release),
            }
            let applied = f.remote_epoch.load(Ordering::Acquire);
            if remote.is_some()
                || (to == State::HalfOpen && applied == epoch_of(current).wrapping_add(1))
            {
                f.remote_epoch
                    .store(epoch.wrapping_add(1), Ordering::Release);
            }
        }
        self.changed.store(now, Ordering::Release);
        self.word.store(pack(to, epoch), Ordering::Release);
        t.changed_wall = wall;
        let mut handover = None;
        if let (Some(f), None) = (fleet, remote) {
            // Queued in transition order (under the lock), handed to the sink once the
            // lock is released (`Exclusive`), so that the sink may call its link.
            let wait = (to == State::Open)
                .then(|| {
                    let ctx = RetryContext::new(Duration::ZERO, reopens)
                        .with_seed(self.seed.load(Ordering::Acquire));
                    self.retry.wait(&ctx)
                })
                .flatten();
            let base = f.version.load(Ordering::Acquire);
            let change = Change::new(from, to, reopens, wait, epoch, expect.is_none(), base);
            f.outbox().push(change);
            handover = Some(f);
        }
        let exclusive = Exclusive {
            guard: Some(t),
            handover,
        };
        if notify && self.dispatch.is_active() {
            // In line while the transition is still exclusive (SM-19); the lock is
            // released, and the change handed to the store, before any listener runs
            // (SM-16, SM-18).
            let signal = Signal::new(self.name.clone(), from, to, wall);
            self.dispatch.publish(signal, exclusive);
        } else {
            drop(exclusive);
        }
        true
    }

    pub(crate) fn info(&self) -> Info {
        let (word, changed_at) = {
            let t = self.lock();
            (self.word.load(Ordering::Acquire), t.changed_wall)
        };
        let epoch = epoch_of(word);
        let now = self.clock.now_nanos();
        Info {
            name: self.name.to_string(),
            state: state_of(word),
            changed_at,
            reopens: self.reopens.load(Ordering::Acquire),
            metric: self.window.metric(epoch, now),
            consecutive_failures: count_in(self.streak.load(Ordering::Acquire), epoch).unwrap_or(0),
            pending_signals: self.dispatch.pending(),
            coalesced_signals: self.dispatch.coalesced(),
            store_connected: self
                .fleet
                .get()
                .map(|f| contained(|| f.sink.connected()).unwrap_or(false)),
        }
    }

    /// While open: what is left of the wait before a probe may go (`Some(ZERO)` once
    /// it may); `None` in every other state, or when the retry policy never retries.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        if state_of(self.word.load(Ordering::Acquire)) != State::Open {
            return None;
        }
        let now = self.clock.now_nanos();
        self.open_wait(&self.retry_context(now), now).1
    }

    /// Half-open calls currently running.
    pub(crate) fn half_open_in_flight(&self) -> u32 {
        let word = self.word.load(Ordering::Acquire);
        if state_of(word) != State::HalfOpen {
            return 0;
        }
        if let Some(leases) = &self.leases {
            return leases.held(epoch_of(word), self.clock.now_nanos());
        }
        count_in(self.half_open.load(Ordering::Acquire), epoch_of(word)).unwrap_or(0) as u32
    }

    // ---- Fleet hooks (registry, keyed breakers): never on the call path. ----

    pub(crate) fn window(&self) -> &Arc<AnyWindow> {
        &self.window
    }

    pub(crate) fn window_shape(&self) -> Option<String> {
        self.window.shape()
    }

    /// Signals queued or being delivered.
    pub(crate) fn pending_signals(&self) -> usize {
        self.dispatch.pending()
    }

    /// This (new, unpublished) core takes over from `old`: state and epoch, failure
    /// streak, reopens, jitter seed and the time of the last change carry over; the
    /// half-open slots start free (calls in flight on `old` finish there). With
    /// `window_shared` both cores hold one window, tagged with the epoch they share, so
    /// its contents stay valid; otherwise this core's own, empty window moves to the
    /// inherited epoch. `old` is retired in the same critical section, so no transition
    /// of it can slip in after the state was read: it never advances the shared window
    /// again, and an outcome it records later is either of the shared epoch (a real
    /// outcome, counted) or late (discarded by the window, which compares full
    /// generations). An `open` old core is frozen as `forced_open` (its retry policy
    /// would otherwise try a transition that can no longer happen). Returns the state.
    pub(crate) fn succeed(&self, old: &Core, window_shared: bool) -> State {
        let mut retiring = old.lock();
        let word = old.word.load(Ordering::Acquire);
        let epoch = epoch_of(word);
        let state = state_of(word);
        let elapsed = old.since_change(old.clock.now_nanos());
        {
            let mut t = self.lock();
            if !window_shared {
                self.window.advance(epoch);
            }
            self.streak
                .store(old.streak.load(Ordering::Acquire), Ordering::Release);
            self.half_open.store(counted(epoch, 0), Ordering::Release);
            self.seed
                .store(old.seed.load(Ordering::Acquire), Ordering::Release);
            self.reopens
                .store(old.reopens.load(Ordering::Acquire), Ordering::Release);
            let now = self.clock.now_nanos();
            let elapsed = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
            self.changed
                .store(now.saturating_sub(elapsed), Ordering::Release);
            self.word.store(word, Ordering::Release);
            t.changed_wall = retiring.changed_wall;
        }
        Self::freeze(old, &mut retiring);
        state
    }

    /// Retires this core (it never changes state again; see `succeed`); with
    /// `only_if_closed`, only if it is `closed`, decided under the transition lock so that
    /// no concurrent trip is lost. Whether it was retired by this call.
    pub(crate) fn retire(&self, only_if_closed: bool) -> bool {
        let mut t = self.lock();
        if t.retired || (only_if_closed && self.state() != State::Closed) {
            return false;
        }
        Self::freeze(self, &mut t);
        true
    }

    fn freeze(core: &Core, t: &mut Transitions) {
        t.retired = true;
        core.retired.store(1, Ordering::Release);
        let word = core.word.load(Ordering::Acquire);
        if state_of(word) == State::Open {
            core.word
                .store(pack(State::ForcedOpen, epoch_of(word)), Ordering::Release);
        }
    }

    /// Tells every listener, sync and async, that this breaker is retired
    /// (`Listener::on_detach`); a panicking listener is contained.
    pub(crate) fn detach_listeners(&self) {
        if let Some(calls) = &self.calls {
            calls.detach();
        }
        self.dispatch.detach();
    }

    /// After a successor took over (`succeed`): delivers none of this core's signals any
    /// more (those still queued are dropped, the listener call in progress is waited for
    /// briefly), so the successor's listeners never hear an older signal after a newer
    /// one of the same circuit.
    pub(crate) fn close_signals(&self) {
        self.dispatch.close();
    }
}
