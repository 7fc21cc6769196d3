//! The state machine every face shares: state word, window, streak, half-open slots and
//! the ordered signal queue. Faces (`CircuitBreaker`, `AsyncCircuitBreaker`, the tower
//! service) are thin wrappers around [`Core::admit`] and [`Ticket`].
//!
//! Invariants:
//! - `word` packs the state and a 32-bit epoch; every transition stores a new epoch, so a
//!   ticket knows whether the state it was admitted in still holds (SM-17).
//! - Windows and the failure streak tag their words with the epoch, so a transition
//!   empties them without touching them, and a late writer can never write into the new
//!   epoch.
//! - Transitions are serialised by one mutex that the hot path never takes; `changed` is
//!   written before `word` (release), so a reader that sees an epoch sees its time.
//! - Signals take their place in line under that mutex and are delivered outside every
//!   lock, in transition order, by the thread that caused them or a background thread
//!   (`dispatch`: SM-16, SM-18, SM-19, R-2).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::clock::Clock;
use crate::error::RejectionName;
use crate::listeners::Listener;
use crate::permits::Permit;
use crate::retries::{Retry, RetryContext};
use crate::trackers::Tracker;
use crate::trippers::{TripContext, Tripper};
use crate::windows::{tagged, Window};
use crate::{CallNotPermitted, Metric, Record, Signal, State};

pub(crate) mod dispatch;
mod ticket;
use dispatch::Dispatcher;
pub(crate) use dispatch::SignalHook;
pub use ticket::{Outcome, Ticket};

const STATE_BITS: u32 = 3;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;
const CHANGED_BITS: u32 = 48;
const STREAK_BITS: u32 = 48;

#[inline]
pub(crate) fn state_of(word: u64) -> State {
    State::from_bits(word & STATE_MASK)
}

#[inline]
pub(crate) fn epoch_of(word: u64) -> u32 {
    (word >> STATE_BITS) as u32
}

#[inline]
fn pack(state: State, epoch: u32) -> u64 {
    (u64::from(epoch) << STATE_BITS) | state as u64
}

#[inline]
fn tag16(epoch: u32) -> u64 {
    u64::from(epoch & 0xFFFF)
}

#[inline]
fn newer16(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as u16 as i16) > 0
}

/// Snapshot of a breaker (see `CircuitBreaker::info`).
///
/// ```
/// let cb = fluxgate::CircuitBreaker::builder("db").build().unwrap();
/// let info = cb.info();
/// assert_eq!(info.name, "db");
/// assert_eq!(info.state, fluxgate::State::Closed);
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
}

struct Transitions {
    changed_wall: SystemTime,
}

pub(crate) struct Parts {
    pub(crate) name: Arc<str>,
    pub(crate) window: Box<dyn Window>,
    pub(crate) tracker: Box<dyn Tracker>,
    pub(crate) tripper: Box<dyn Tripper>,
    pub(crate) retry: Box<dyn Retry>,
    pub(crate) permit: Box<dyn Permit>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) time_calls: bool,
    pub(crate) max_half_open_calls: u32,
    pub(crate) listeners: Vec<Arc<dyn Listener>>,
    pub(crate) hook: Option<Box<dyn SignalHook>>,
}

/// The shared state machine (crate-internal; unnameable outside).
pub struct Core {
    word: AtomicU64,
    streak: AtomicU64,
    half_open_in_flight: AtomicU32,
    changed: AtomicU64,
    reopens: AtomicU32,
    name: Arc<str>,
    rejection: RejectionName,
    time_calls: bool,
    needs_now: bool,
    max_half_open_calls: u32,
    window: Box<dyn Window>,
    tracker: Box<dyn Tracker>,
    tripper: Box<dyn Tripper>,
    retry: Box<dyn Retry>,
    permit: Box<dyn Permit>,
    clock: Arc<dyn Clock>,
    dispatch: Dispatcher,
    transitions: Mutex<Transitions>,
}

/// What a ticket remembers about its admission.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admission {
    word: u64,
    start: u64,
    slot: bool,
}

impl Core {
    pub(crate) fn new(p: Parts) -> Core {
        let now = p.clock.now_nanos();
        let wall = p.clock.wall();
        let needs_now = p.time_calls || p.window.needs_time();
        let dispatch = Dispatcher::new(p.name.clone(), p.listeners, p.hook);
        Core {
            word: AtomicU64::new(pack(State::Closed, 0)),
            streak: AtomicU64::new(0),
            half_open_in_flight: AtomicU32::new(0),
            changed: AtomicU64::new(Self::pack_changed(0, now)),
            reopens: AtomicU32::new(0),
            rejection: RejectionName::new(&p.name),
            name: p.name,
            time_calls: p.time_calls,
            needs_now,
            max_half_open_calls: p.max_half_open_calls,
            window: p.window,
            tracker: p.tracker,
            tripper: p.tripper,
            retry: p.retry,
            permit: p.permit,
            clock: p.clock,
            dispatch,
            transitions: Mutex::new(Transitions { changed_wall: wall }),
        }
    }

    fn pack_changed(epoch: u32, now_nanos: u64) -> u64 {
        (tag16(epoch) << CHANGED_BITS) | ((now_nanos / 1000) & ((1 << CHANGED_BITS) - 1))
    }

    /// Time since the transition that produced `word`; zero while that transition is
    /// still being written (it just happened).
    fn since_change(&self, word: u64, now: u64) -> Duration {
        let changed = self.changed.load(Ordering::Acquire);
        if changed >> CHANGED_BITS != tag16(epoch_of(word)) {
            return Duration::ZERO;
        }
        let at_micros = changed & ((1 << CHANGED_BITS) - 1);
        let now_micros = (now / 1000) & ((1 << CHANGED_BITS) - 1);
        Duration::from_micros(now_micros.wrapping_sub(at_micros) & ((1 << CHANGED_BITS) - 1))
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
        self.rejection.reject(state, retry_after)
    }

    fn retry_context(&self, word: u64, now: u64) -> RetryContext {
        let seed = self.changed.load(Ordering::Relaxed);
        RetryContext::new(
            self.since_change(word, now),
            self.reopens.load(Ordering::Acquire),
        )
        .with_seed(seed)
    }

    /// Phase one: may a call run now? (SM-6 … SM-12)
    ///
    /// `closed`, `metrics_only` and `disabled` are decided inline, in the caller's frame;
    /// the states that reject, or need the retry policy, a slot or a permit, go through
    /// `admit_slow`.
    #[inline(always)]
    pub(crate) fn admit(&self) -> Result<Admission, CallNotPermitted> {
        let word = self.word.load(Ordering::Acquire);
        match state_of(word) {
            State::Closed | State::MetricsOnly => Ok(Admission {
                word,
                start: if self.time_calls {
                    self.clock.now_nanos()
                } else {
                    0
                },
                slot: false,
            }),
            State::Disabled => Ok(Admission {
                word,
                start: 0,
                slot: false,
            }),
            _ => self.admit_slow(),
        }
    }

    #[inline(never)]
    fn admit_slow(&self) -> Result<Admission, CallNotPermitted> {
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
                        slot: false,
                    });
                }
                State::Disabled => {
                    return Ok(Admission {
                        word,
                        start: 0,
                        slot: false,
                    })
                }
                State::ForcedOpen => return Err(self.reject(State::ForcedOpen, None)),
                State::Open => {
                    let now = self.clock.now_nanos();
                    let ctx = self.retry_context(word, now);
                    if self.retry.should_retry(&ctx) {
                        // SM-7: the move is lazy and the same call goes on as half-open.
                        self.transition(Some(word), State::HalfOpen, true);
                        continue;
                    }
                    return Err(self.reject(State::Open, self.retry.retry_after(&ctx)));
                }
                State::HalfOpen => {
                    // SM-8: a slot first, then the permit.
                    let taken = self.half_open_in_flight.fetch_add(1, Ordering::AcqRel);
                    if taken >= self.max_half_open_calls {
                        self.half_open_in_flight.fetch_sub(1, Ordering::AcqRel);
                        return Err(self.reject(State::HalfOpen, None));
                    }
                    let now = self.clock.now_nanos();
                    if !self.permit.permit(self.since_change(word, now)) {
                        self.half_open_in_flight.fetch_sub(1, Ordering::AcqRel);
                        return Err(self.reject(State::HalfOpen, None));
                    }
                    return Ok(Admission {
                        word,
                        start: if self.time_calls { now } else { 0 },
                        slot: true,
                    });
                }
            }
        }
    }

    /// Releases what an admission holds; called exactly once per admission.
    #[inline]
    pub(crate) fn release(&self, adm: &Admission) {
        if adm.slot {
            self.half_open_in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Phase two: the call finished with `outcome` (SM-3 … SM-11, SM-17).
    #[inline]
    pub(crate) fn record(&self, adm: &Admission, outcome: Outcome) {
        let state = state_of(adm.word);
        let failure = match outcome {
            Outcome::Ignored => return,
            _ if state == State::Disabled => return,
            Outcome::Success => false,
            Outcome::Failure => true,
        };
        let now = if self.needs_now {
            self.clock.now_nanos()
        } else {
            0
        };
        if self.word.load(Ordering::Acquire) != adm.word {
            // The breaker moved on while the call ran: the outcome belongs to a state
            // that no longer exists (SM-17).
            return;
        }
        let duration = if self.time_calls {
            Duration::from_nanos(now.saturating_sub(adm.start))
        } else {
            Duration::ZERO
        };
        let epoch = epoch_of(adm.word);
        self.window.record(epoch, now, Record { failure, duration });
        let tag = tag16(epoch);
        let streak = if failure {
            let mut streak = 0;
            tagged::update(&self.streak, tag, STREAK_BITS, newer16, |v| {
                streak = v + 1;
                v + 1
            });
            streak
        } else {
            if tagged::read(&self.streak, tag, STREAK_BITS) != 0 {
                tagged::update(&self.streak, tag, STREAK_BITS, newer16, |_| 0);
            }
            0
        };
        if !matches!(state, State::Closed | State::HalfOpen) {
            return;
        }
        let metric = self.window.metric(epoch, now);
        let trip = self.tripper.trip(&TripContext::new(&metric, state, streak));
        match (state, failure, trip) {
            (State::Closed, _, true) => {
                self.transition(Some(adm.word), State::Open, true);
            }
            (State::HalfOpen, false, false) => {
                self.transition(Some(adm.word), State::Closed, true);
            }
            (State::HalfOpen, true, true) => {
                self.transition(Some(adm.word), State::Open, true);
            }
            _ => {}
        }
    }

    pub(crate) fn tracks(&self, error: &(dyn std::error::Error + 'static)) -> bool {
        self.tracker.track(error)
    }

    /// Moves to `to` if the state word is still `expect` (or unconditionally). Returns
    /// whether this call made the transition (SM-13 … SM-16).
    pub(crate) fn transition(&self, expect: Option<u64>, to: State, notify: bool) -> bool {
        let mut t = self.lock();
        let current = self.word.load(Ordering::Acquire);
        if expect.is_some_and(|e| e != current) {
            return false;
        }
        let from = state_of(current);
        let epoch = epoch_of(current).wrapping_add(1);
        let now = self.clock.now_nanos();
        let wall = self.clock.wall();
        let reopens = match (from, to) {
            (State::HalfOpen, State::Open) => {
                self.reopens.load(Ordering::Relaxed).saturating_add(1)
            }
            (_, State::Closed) => 0,
            _ => self.reopens.load(Ordering::Relaxed),
        };
        self.reopens.store(reopens, Ordering::Release);
        self.changed
            .store(Self::pack_changed(epoch, now), Ordering::Release);
        self.word.store(pack(to, epoch), Ordering::Release);
        t.changed_wall = wall;
        if notify && self.dispatch.is_active() {
            // In line while the transition is still exclusive (SM-19); `t` is released
            // before any listener runs (SM-16, SM-18).
            let signal = Signal::new(self.name.clone(), from, to, wall);
            self.dispatch.publish(signal, t);
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
            consecutive_failures: tagged::read(&self.streak, tag16(epoch), STREAK_BITS),
            pending_signals: self.dispatch.pending(),
            coalesced_signals: self.dispatch.coalesced(),
        }
    }

    /// Half-open calls currently running.
    pub(crate) fn half_open_in_flight(&self) -> u32 {
        self.half_open_in_flight.load(Ordering::Acquire)
    }
}
