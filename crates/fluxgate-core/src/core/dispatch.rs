//! Delivering signals to listeners (SM-16, SM-18, SM-19, L-4, R-2).
//!
//! The core calls one hook, [`Dispatcher::publish`], at the end of a transition, while the
//! transition is still exclusive: that fixes the signal's place in line (SM-19). The
//! transition's lock is released before any listener runs (SM-16, SM-18).
//!
//! Who delivers:
//! - **The thread that made the transition**, synchronously, when nothing of this breaker
//!   is queued or being delivered (the common case): when a command or call returns, its
//!   listeners have run. Signals that its own listeners cause by calling back into the
//!   breaker (SM-18) follow on the same thread, as long as they are next in line.
//! - **A background delivery thread** otherwise. A signal that finds the line busy is
//!   queued and its caller returns at once; when the thread that is delivering is done
//!   with the signals it caused, it hands the rest of the line to a worker of a small
//!   shared pool and returns. So no caller ever runs listeners for a transition it did not
//!   cause. One worker serves one breaker's backlog at a time, in order; a listener
//!   stuck on one breaker does not hold back the others (up to [`MAX_WORKERS`] stuck
//!   breakers at once).
//!
//! Bound: at most [`QUEUE_CAPACITY`] signals wait per breaker. A signal that finds the
//! queue full is merged into the newest queued one: `X→Y` then `Y→Z` becomes `X→Z` with
//! the later timestamp, so every listener still sees one continuous chain that ends at the
//! breaker's real state. Every merge is counted (`Info::coalesced_signals`) and the first
//! one, then at most one a minute, is logged as a warning.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
#[cfg(not(shuttle))]
use std::sync::OnceLock;

use crate::sync::thread::{self, ThreadId};
use crate::sync::{AtomicU64, Condvar, Mutex, MutexGuard, Ordering};
use std::time::{Duration, Instant};

use crate::Signal;
use crate::listeners::{Listener, name_of, notify_one, panic_message};

/// Signals that may wait for a breaker's listeners before new ones are coalesced.
pub(crate) const QUEUE_CAPACITY: usize = 1024;

/// Background delivery threads at most; more breakers with a backlog wait their turn.
#[cfg_attr(shuttle, allow(dead_code))]
pub(crate) const MAX_WORKERS: usize = 32;

/// How long an idle delivery thread waits for work before it exits.
#[cfg_attr(shuttle, allow(dead_code))]
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Least time between two "falling behind" warnings of one queue.
const WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// How long closing a line waits for the listener call in progress to return.
const CALL_WAIT: Duration = Duration::from_secs(1);

/// Runs after the sync listeners for each signal, on the same thread and in the same
/// order (the async face hands signals to its async listeners with it).
pub(crate) trait SignalHook: Send + Sync {
    /// Called on the thread that made a transition, before its signal is delivered or
    /// queued (the async face's default spawner learns the runtime it is made in).
    fn observe(&self) {}

    /// Takes one signal; must not block.
    fn on_signal(&self, signal: &Signal);

    /// Signals this hook has coalesced so far.
    fn coalesced(&self) -> u64;

    /// The breaker `circuit_name` is retired (`on_detach` of every async listener).
    fn detach(&self, circuit_name: &str) {
        let _ = circuit_name;
    }

    /// Starts no more signals: those still queued are dropped; returns how many.
    fn close(&self) -> usize {
        0
    }
}

/// A bounded, coalescing line of signals.
pub(crate) struct SignalQueue {
    items: VecDeque<Queued>,
    capacity: usize,
    last_warning: Option<Instant>,
}

struct Queued {
    signal: Signal,
    /// The thread whose transition made it, `None` once merged from several.
    origin: Option<ThreadId>,
}

impl SignalQueue {
    pub(crate) fn new(capacity: usize) -> SignalQueue {
        SignalQueue {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            last_warning: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub(crate) fn pop(&mut self) -> Option<Signal> {
        self.items.pop_front().map(|q| q.signal)
    }

    /// Drops every queued signal; returns how many.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.items.len();
        self.items.clear();
        n
    }

    /// Appends `signal`; when full, merges it into the newest queued signal instead and
    /// returns `true`.
    pub(crate) fn push(&mut self, signal: Signal, origin: Option<ThreadId>) -> bool {
        if self.items.len() < self.capacity {
            self.items.push_back(Queued { signal, origin });
            return false;
        }
        if let Some(last) = self.items.back_mut() {
            last.signal = Signal::new(
                last.signal.circuit_name.clone(),
                last.signal.old_state,
                signal.new_state,
                signal.timestamp,
            );
            if last.origin != origin {
                last.origin = None;
            }
        }
        true
    }

    /// Whether a "falling behind" warning is due now (the first merge, then at most one
    /// per [`WARNING_INTERVAL`]).
    pub(crate) fn warning_due(&mut self) -> bool {
        let now = Instant::now();
        match self.last_warning {
            Some(at) if now.duration_since(at) < WARNING_INTERVAL => false,
            _ => {
                self.last_warning = Some(now);
                true
            }
        }
    }

    fn front_origin(&self) -> Option<Option<ThreadId>> {
        self.items.front().map(|q| q.origin)
    }
}

/// Who delivers this breaker's signals right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Nobody,
    /// A thread delivering the signal its own transition made (and what its listeners
    /// caused next).
    Caller,
    /// A pool worker (queued or running) delivering the backlog.
    Worker,
}

struct Line {
    queue: SignalQueue,
    owner: Owner,
    /// The thread inside the listeners right now, if any.
    deliverer: Option<ThreadId>,
    /// Threads in `flush` or `close`.
    waiters: usize,
    /// No more listener calls: the breaker was retired, or a successor took over.
    closed: bool,
    /// A listener (or the hook) is being called.
    in_call: bool,
}

impl Line {
    /// Nothing queued or being delivered any more.
    fn idle(&mut self, settled: &Condvar) {
        self.owner = Owner::Nobody;
        self.deliverer = None;
        if self.waiters > 0 {
            settled.notify_all();
        }
    }
}

struct Shared {
    name: Arc<str>,
    listeners: Vec<Arc<dyn Listener>>,
    hook: Option<Box<dyn SignalHook>>,
    line: Mutex<Line>,
    settled: Condvar,
    coalesced: AtomicU64,
}

/// A breaker's signal delivery (see the module doc).
pub(crate) struct Dispatcher {
    shared: Option<Arc<Shared>>,
}

impl Dispatcher {
    pub(crate) fn new(
        name: Arc<str>,
        listeners: Vec<Arc<dyn Listener>>,
        hook: Option<Box<dyn SignalHook>>,
    ) -> Dispatcher {
        if listeners.is_empty() && hook.is_none() {
            return Dispatcher { shared: None };
        }
        Dispatcher {
            shared: Some(Arc::new(Shared {
                name,
                listeners,
                hook,
                line: Mutex::new(Line {
                    queue: SignalQueue::new(QUEUE_CAPACITY),
                    owner: Owner::Nobody,
                    deliverer: None,
                    waiters: 0,
                    closed: false,
                    in_call: false,
                }),
                settled: Condvar::new(),
                coalesced: AtomicU64::new(0),
            })),
        }
    }

    /// Whether anybody listens (a transition without listeners makes no signal).
    #[inline]
    pub(crate) fn is_active(&self) -> bool {
        self.shared.is_some()
    }

    /// Puts `signal` in line while `exclusive` (the transition's lock guard) is held,
    /// releases it, then delivers the signal on this thread if the line was free.
    /// Otherwise the signal waits in the bounded queue and this returns at once.
    pub(crate) fn publish<G>(&self, signal: Signal, exclusive: G) {
        let Some(shared) = &self.shared else {
            drop(exclusive);
            return;
        };
        if let Some(hook) = &shared.hook {
            let _ = catch_unwind(AssertUnwindSafe(|| hook.observe()));
        }
        let me = thread::current().id();
        let mut warn = None;
        let own = {
            let mut line = shared.lock();
            if line.closed {
                // A retired breaker makes no transitions; nothing is delivered any more.
                None
            } else if line.owner == Owner::Nobody {
                line.owner = Owner::Caller;
                line.deliverer = Some(me);
                Some(signal)
            } else {
                if line.queue.push(signal, Some(me)) {
                    let total = shared.coalesced.fetch_add(1, Ordering::Relaxed) + 1;
                    warn = line.queue.warning_due().then_some(total);
                }
                None
            }
        };
        drop(exclusive);
        if let Some(total) = warn {
            // Logged outside the locks: a slow subscriber must not hold up transitions.
            tracing::warn!(
                target: "fluxgate",
                circuit = &*shared.name,
                coalesced = total,
                capacity = QUEUE_CAPACITY,
                "listeners fall behind: signals coalesced"
            );
        }
        if let Some(signal) = own {
            shared.deliver(&signal);
            Shared::finish_own(shared, me);
        }
    }

    /// Signals queued or being delivered.
    pub(crate) fn pending(&self) -> usize {
        self.shared.as_ref().map_or(0, |s| {
            let line = s.lock();
            line.queue.len() + usize::from(line.deliverer.is_some())
        })
    }

    /// Waits, at most `timeout`, until no signal is queued or being delivered (signals
    /// that listeners cause meanwhile included); whether that happened. A listener that
    /// flushes its own breaker gets `false` at once instead of waiting for itself.
    pub(crate) fn flush(&self, timeout: Duration) -> bool {
        let Some(shared) = &self.shared else {
            return true;
        };
        let me = thread::current().id();
        let line = shared.wait(timeout, |line| {
            line.owner == Owner::Nobody || line.deliverer == Some(me)
        });
        line.owner == Owner::Nobody
    }

    /// Delivers nothing more: signals still queued are dropped (logged with their
    /// number), and the listener call in progress, if any, is waited for (at most
    /// [`CALL_WAIT`]; not by the thread making that call). After this, no listener hears
    /// of this breaker again but through `on_detach`, so a listener that drops a
    /// circuit's state there, or a successor that took over the circuit, sees no older
    /// signal come after.
    pub(crate) fn close(&self) {
        let Some(shared) = &self.shared else {
            return;
        };
        let me = thread::current().id();
        let mut dropped = {
            let mut line = shared.lock();
            line.closed = true;
            line.queue.clear()
        };
        drop(shared.wait(CALL_WAIT, |line| {
            !line.in_call || line.deliverer == Some(me)
        }));
        if let Some(hook) = &shared.hook {
            dropped += catch_unwind(AssertUnwindSafe(|| hook.close())).unwrap_or(0);
        }
        if dropped > 0 {
            tracing::warn!(
                target: "fluxgate",
                circuit = &*shared.name,
                dropped,
                "signals of a retired breaker dropped: its listeners were too slow to take them before it left"
            );
        }
    }

    /// Closes the line ([`close`](Self::close)), then calls `on_detach` on every
    /// listener, then the hook's; panics are contained.
    pub(crate) fn detach(&self) {
        let Some(shared) = &self.shared else {
            return;
        };
        self.close();
        for l in &shared.listeners {
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| l.on_detach(&shared.name))) {
                tracing::error!(
                    target: "fluxgate",
                    circuit = &*shared.name,
                    listener = name_of(|| l.name()),
                    panic = panic_message(&*panic),
                    "listener panicked in on_detach"
                );
            }
        }
        if let Some(hook) = &shared.hook {
            hook.detach(&shared.name);
        }
    }

    /// Signals merged because listeners fell behind, sync and async.
    pub(crate) fn coalesced(&self) -> u64 {
        self.shared.as_ref().map_or(0, |s| {
            s.coalesced.load(Ordering::Relaxed) + s.hook.as_ref().map_or(0, |h| h.coalesced())
        })
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Line> {
        // No listener runs under this lock; a poisoned one still holds a consistent line.
        self.line.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The line once `done` holds, or once `timeout` is over (whichever comes first).
    fn wait(&self, timeout: Duration, done: impl Fn(&Line) -> bool) -> MutexGuard<'_, Line> {
        let deadline = Instant::now().checked_add(timeout);
        let mut line = self.lock();
        while !done(&line) {
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                break;
            }
            line.waiters += 1;
            line = self
                .settled
                .wait_timeout(line, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            line.waiters -= 1;
        }
        line
    }

    /// Every listener, then the hook, outside every lock; failures are contained (L-2).
    /// Stops as soon as the line is closed.
    fn deliver(&self, signal: &Signal) {
        for l in &self.listeners {
            if !self.enter_call() {
                return;
            }
            notify_one(&**l, signal);
            self.leave_call();
        }
        if let Some(hook) = &self.hook {
            if !self.enter_call() {
                return;
            }
            if let Err(panic) = catch_unwind(AssertUnwindSafe(|| hook.on_signal(signal))) {
                tracing::error!(
                    target: "fluxgate",
                    circuit = &*signal.circuit_name,
                    panic = panic_message(&*panic),
                    "signal hook panicked"
                );
            }
            self.leave_call();
        }
    }

    /// Marks a listener call as in progress, unless the line is closed.
    fn enter_call(&self) -> bool {
        let mut line = self.lock();
        if line.closed {
            return false;
        }
        line.in_call = true;
        true
    }

    fn leave_call(&self) {
        let mut line = self.lock();
        line.in_call = false;
        if line.closed && line.waiters > 0 {
            self.settled.notify_all();
        }
    }

    /// After a caller delivered its own signal: delivers what its listeners caused next
    /// (SM-18), then frees the line or hands the rest to a background worker.
    fn finish_own(this: &Arc<Shared>, me: ThreadId) {
        loop {
            let next = {
                let mut line = this.lock();
                match line.queue.front_origin() {
                    None => {
                        line.idle(&this.settled);
                        return;
                    }
                    Some(origin) if origin == Some(me) => line.queue.pop(),
                    Some(_) => {
                        line.owner = Owner::Worker;
                        line.deliverer = None;
                        break;
                    }
                }
            };
            if let Some(signal) = next {
                this.deliver(&signal);
            }
        }
        hand_off(this.clone());
    }

    /// A worker's turn: delivers the backlog in order until the line is empty.
    fn drain(&self) {
        let me = thread::current().id();
        loop {
            let signal = {
                let mut line = self.lock();
                match line.queue.pop() {
                    Some(next) => {
                        line.deliverer = Some(me);
                        next
                    }
                    None => {
                        line.idle(&self.settled);
                        return;
                    }
                }
            };
            self.deliver(&signal);
        }
    }
}

impl super::Core {
    /// See [`Dispatcher::flush`].
    pub(crate) fn flush_signals(&self, timeout: Duration) -> bool {
        self.dispatch.flush(timeout)
    }
}

/// Gives one breaker's backlog to a background delivery thread.
#[cfg(not(shuttle))]
fn hand_off(job: Arc<Shared>) {
    pool().submit(job);
}

/// Under the model checker every hand-off gets a thread of its own: a pool that outlives
/// one explored execution cannot hold that execution's primitives.
#[cfg(shuttle)]
fn hand_off(job: Arc<Shared>) {
    thread::spawn(move || job.drain());
}

/// The background delivery threads, shared by all breakers: started on demand, at most
/// [`MAX_WORKERS`], each exits after [`KEEP_ALIVE`] without work.
#[cfg(not(shuttle))]
struct Pool {
    state: Mutex<PoolState>,
    work: Condvar,
}

#[cfg(not(shuttle))]
struct PoolState {
    jobs: VecDeque<Arc<Shared>>,
    threads: usize,
    idle: usize,
}

#[cfg(not(shuttle))]
fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        state: Mutex::new(PoolState {
            jobs: VecDeque::new(),
            threads: 0,
            idle: 0,
        }),
        work: Condvar::new(),
    })
}

#[cfg(not(shuttle))]
impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues one breaker's backlog (a breaker is queued at most once: its line is owned
    /// by the worker until drained).
    fn submit(&'static self, job: Arc<Shared>) {
        let mut st = self.lock();
        st.jobs.push_back(job);
        self.work.notify_one();
        if st.jobs.len() <= st.idle || st.threads >= MAX_WORKERS {
            return;
        }
        st.threads += 1;
        drop(st);
        let started = thread::Builder::new()
            .name("fluxgate-signals".into())
            .spawn(move || self.work_loop());
        if let Err(error) = started {
            let mut st = self.lock();
            st.threads -= 1;
            if st.threads > 0 {
                return; // a running worker will get to it
            }
            let jobs: Vec<_> = st.jobs.drain(..).collect();
            drop(st);
            tracing::error!(
                target: "fluxgate",
                %error,
                "could not start a signal delivery thread; delivering on the caller"
            );
            for job in jobs {
                job.drain();
            }
        }
    }

    fn work_loop(&'static self) {
        let mut st = self.lock();
        loop {
            if let Some(job) = st.jobs.pop_front() {
                drop(st);
                job.drain();
                drop(job);
                st = self.lock();
                continue;
            }
            st.idle += 1;
            let (next, timeout) = self
                .work
                .wait_timeout(st, KEEP_ALIVE)
                .unwrap_or_else(|p| p.into_inner());
            st = next;
            st.idle -= 1;
            if timeout.timed_out() && st.jobs.is_empty() {
                st.threads -= 1;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::State;
    use std::time::SystemTime;

    fn sig(from: State, to: State, at: u64) -> Signal {
        Signal::new(
            "q",
            from,
            to,
            SystemTime::UNIX_EPOCH + Duration::from_secs(at),
        )
    }

    #[test]
    fn full_queue_merges_into_the_newest_signal() {
        let mut q = SignalQueue::new(2);
        assert!(!q.push(sig(State::Closed, State::Open, 1), None));
        assert!(!q.push(sig(State::Open, State::HalfOpen, 2), None));
        assert!(q.push(sig(State::HalfOpen, State::Closed, 3), None));
        assert!(q.push(sig(State::Closed, State::ForcedOpen, 4), None));
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some(sig(State::Closed, State::Open, 1)));
        assert_eq!(q.pop(), Some(sig(State::Open, State::ForcedOpen, 4)));
        assert!(q.is_empty());
    }

    #[test]
    fn warnings_are_rate_limited() {
        let mut q = SignalQueue::new(1);
        assert!(q.warning_due());
        assert!(!q.warning_due());
    }
}
