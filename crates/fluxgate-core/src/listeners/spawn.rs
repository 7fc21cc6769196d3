//! Driving async listeners off the call path (L-3, L-4).
//!
//! The async breaker never awaits its async listeners: each listener has a lane with a
//! bounded number of pending futures and a bounded, coalescing queue ([`AsyncHook`]),
//! driven by one task per lane on a spawner. With the `tokio` feature and a tokio runtime
//! around they are spawned there: the current one, else the last one a transition of the
//! breaker was made in (signals delivered later, on a delivery thread, still reach their
//! futures' runtime), else the one the breaker was built in. Otherwise, and for the
//! futures of a runtime that shut down before finishing them, a small built-in executor
//! thread drives them, so async listeners work with any runtime or none. Every future is
//! guarded: an error or a panic is logged, nothing else.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use super::{AsyncListener, ListenerFuture, name_of, panic_message};
use crate::Signal;
use crate::core::dispatch::{QUEUE_CAPACITY, SignalHook, SignalQueue};

/// A future with no output, boxed, as spawners receive it.
pub type SpawnFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Something that runs futures in the background (a runtime's `spawn`).
pub(crate) type Spawner = Arc<dyn Fn(SpawnFuture) + Send + Sync>;

/// Wraps a listener's future so its error or panic is logged and goes no further; the
/// listener's name is only asked (guarded) when there is something to log.
pub(crate) fn guarded(
    listener: Arc<dyn AsyncListener>,
    circuit: Arc<str>,
    fut: ListenerFuture,
) -> SpawnFuture {
    Box::pin(Guarded {
        fut,
        listener,
        circuit,
    })
}

struct Guarded {
    fut: ListenerFuture,
    listener: Arc<dyn AsyncListener>,
    circuit: Arc<str>,
}

impl Future for Guarded {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        match catch_unwind(AssertUnwindSafe(|| this.fut.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(Ok(()))) => Poll::Ready(()),
            Ok(Poll::Ready(Err(error))) => {
                tracing::error!(
                    target: "fluxgate",
                    listener = name_of(|| this.listener.name()),
                    circuit = &*this.circuit,
                    %error,
                    "async listener failed"
                );
                Poll::Ready(())
            }
            Err(panic) => {
                tracing::error!(
                    target: "fluxgate",
                    listener = name_of(|| this.listener.name()),
                    circuit = &*this.circuit,
                    panic = panic_message(&*panic),
                    "async listener panicked"
                );
                Poll::Ready(())
            }
        }
    }
}

/// The tokio runtime the default spawner falls back on when the spawning thread has none
/// (a delivery thread): the one the breaker was built in, then the last one a transition
/// of the breaker was made in; none once it shut down.
#[cfg(feature = "tokio")]
#[derive(Default)]
struct Known(Mutex<Option<tokio::runtime::Handle>>);

#[cfg(feature = "tokio")]
impl Known {
    fn lock(&self) -> MutexGuard<'_, Option<tokio::runtime::Handle>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Remembers the current thread's runtime, if it has one.
    fn observe(&self) {
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            *self.lock() = Some(handle);
        }
    }
}

/// A future spawned on a tokio runtime that may shut down before it is done: dropped
/// unfinished, it goes on on the built-in executor (and the runtime is forgotten), so a
/// lane's pump is never lost with the runtime it ran on.
#[cfg(feature = "tokio")]
struct OnRuntime {
    fut: Option<SpawnFuture>,
    known: Arc<Known>,
}

#[cfg(feature = "tokio")]
impl Future for OnRuntime {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(fut) = self.fut.as_mut() else {
            return Poll::Ready(());
        };
        let done = fut.as_mut().poll(cx);
        if done.is_ready() {
            self.fut = None;
        }
        done
    }
}

#[cfg(feature = "tokio")]
impl Drop for OnRuntime {
    fn drop(&mut self) {
        if let Some(fut) = self.fut.take() {
            *self.known.lock() = None;
            spawn_builtin(fut);
        }
    }
}

/// The spawner of a breaker without one of its own, and (with the `tokio` feature) what
/// its transitions call to let it follow the runtime they are made in.
pub(crate) fn default_spawner() -> (Spawner, Option<Observer>) {
    #[cfg(feature = "tokio")]
    {
        let known = Arc::new(Known::default());
        known.observe();
        let spawn = {
            let known = Arc::clone(&known);
            Arc::new(move |fut: SpawnFuture| {
                let handle = tokio::runtime::Handle::try_current()
                    .ok()
                    .or_else(|| known.lock().clone());
                match handle {
                    Some(handle) => {
                        let known = Arc::clone(&known);
                        drop(handle.spawn(OnRuntime {
                            fut: Some(fut),
                            known,
                        }));
                    }
                    None => spawn_builtin(fut),
                }
            })
        };
        let observe: Observer = Arc::new(move || known.observe());
        (spawn, Some(observe))
    }
    #[cfg(not(feature = "tokio"))]
    {
        (Arc::new(spawn_builtin), None)
    }
}

/// Called on the thread of each transition (see [`SignalHook::observe`]).
pub(crate) type Observer = Arc<dyn Fn() + Send + Sync>;

struct Task {
    fut: Mutex<Option<SpawnFuture>>,
    queue: Sender<Arc<Task>>,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        let queue = self.queue.clone();
        let _ = queue.send(self);
    }
}

/// Runs `fut` on a single background thread that polls every spawned future
/// concurrently (woken futures are re-queued).
pub(crate) fn spawn_builtin(fut: SpawnFuture) {
    static QUEUE: OnceLock<Option<Sender<Arc<Task>>>> = OnceLock::new();
    let queue = QUEUE.get_or_init(|| {
        let (tx, rx) = channel::<Arc<Task>>();
        std::thread::Builder::new()
            .name("fluxgate-listeners".into())
            .spawn(move || {
                while let Ok(task) = rx.recv() {
                    let waker = Waker::from(task.clone());
                    let mut cx = Context::from_waker(&waker);
                    let mut slot = task.fut.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(fut) = slot.as_mut() {
                        if fut.as_mut().poll(&mut cx).is_ready() {
                            *slot = None;
                        }
                    }
                }
            })
            .ok()
            .map(|_| tx)
    });
    match queue {
        Some(tx) => {
            let task = Arc::new(Task {
                fut: Mutex::new(Some(fut)),
                queue: tx.clone(),
            });
            let _ = tx.send(task);
        }
        None => tracing::error!(
            target: "fluxgate",
            "could not start the async listener thread; signal not delivered"
        ),
    }
}

/// Futures of one async listener that may be pending at once, per breaker; further
/// signals wait in that listener's bounded queue.
pub(crate) const ASYNC_IN_FLIGHT: usize = 64;

/// Signals one pump starts in one poll before it yields to its executor.
const STARTS_PER_POLL: usize = 1024;

/// The async face's signal hook: one lane per async listener (R-2, L-3, L-4).
///
/// `on_signal` is called on the thread that delivers the signal, in transition order. A
/// lane with room (fewer than [`ASYNC_IN_FLIGHT`] pending futures, nothing queued) calls
/// the listener's `on_signal` right there, so its synchronous part runs in order and
/// before the command that caused the signal returns; the future goes to the lane's pump,
/// one task on the spawner that drives the lane's futures concurrently. A lane without
/// room queues the signal (bounded, coalescing like the sync queue) and its pump starts it
/// when a future finishes. Nothing here ever awaits on the call path.
pub(crate) struct AsyncHook {
    lanes: Vec<Arc<Lane>>,
    spawner: Spawner,
    observe: Option<Observer>,
    coalesced: Arc<AtomicU64>,
}

struct Lane {
    listener: Arc<dyn AsyncListener>,
    coalesced: Arc<AtomicU64>,
    state: Mutex<LaneState>,
}

struct LaneState {
    queue: SignalQueue,
    /// Futures started by `on_signal` and not yet taken by the pump.
    handed: Vec<SpawnFuture>,
    /// Futures started and not finished (handed ones included).
    in_flight: usize,
    /// The pump is calling the listener for a queued signal (later ones must wait).
    starting: bool,
    /// A pump task exists.
    running: bool,
    waker: Option<Waker>,
    /// The breaker was retired or taken over: no signal is started any more.
    closed: bool,
}

impl AsyncHook {
    pub(crate) fn new(
        listeners: Vec<Arc<dyn AsyncListener>>,
        spawner: Spawner,
        observe: Option<Observer>,
    ) -> AsyncHook {
        let coalesced = Arc::new(AtomicU64::new(0));
        let lanes = listeners
            .into_iter()
            .map(|listener| {
                Arc::new(Lane {
                    listener,
                    coalesced: coalesced.clone(),
                    state: Mutex::new(LaneState {
                        queue: SignalQueue::new(QUEUE_CAPACITY),
                        handed: Vec::new(),
                        in_flight: 0,
                        starting: false,
                        running: false,
                        waker: None,
                        closed: false,
                    }),
                })
            })
            .collect();
        AsyncHook {
            lanes,
            spawner,
            observe,
            coalesced,
        }
    }
}

impl SignalHook for AsyncHook {
    fn observe(&self) {
        if let Some(observe) = &self.observe {
            observe();
        }
    }

    fn on_signal(&self, signal: &Signal) {
        for lane in &self.lanes {
            let mut warn = None;
            let start_now = {
                let mut st = lane.lock();
                if st.closed {
                    continue;
                }
                if st.queue.is_empty() && !st.starting && st.in_flight < ASYNC_IN_FLIGHT {
                    st.in_flight += 1;
                    true
                } else {
                    if st.queue.push(signal.clone(), None) {
                        let total = lane.coalesced.fetch_add(1, Ordering::Relaxed) + 1;
                        warn = st.queue.warning_due().then_some(total);
                    }
                    false
                }
            };
            if let Some(total) = warn {
                tracing::warn!(
                    target: "fluxgate",
                    circuit = &*signal.circuit_name,
                    listener = name_of(|| lane.listener.name()),
                    coalesced = total,
                    capacity = QUEUE_CAPACITY,
                    "async listener falls behind: signals coalesced"
                );
            }
            let started = if start_now {
                lane.start(signal.clone())
            } else {
                None
            };
            let (spawn, wake) = {
                let mut st = lane.lock();
                if start_now {
                    match started {
                        Some(fut) => st.handed.push(fut),
                        None => st.in_flight -= 1,
                    }
                }
                let work = !st.handed.is_empty() || !st.queue.is_empty();
                if st.running {
                    (false, if work { st.waker.take() } else { None })
                } else if work {
                    st.running = true;
                    (true, None)
                } else {
                    (false, None)
                }
            };
            if let Some(waker) = wake {
                waker.wake();
            }
            if spawn {
                (self.spawner)(Box::pin(Pump {
                    lane: lane.clone(),
                    futs: Vec::new(),
                    finished: false,
                }));
            }
        }
    }

    fn coalesced(&self) -> u64 {
        self.coalesced.load(Ordering::Relaxed)
    }

    fn close(&self) -> usize {
        self.lanes
            .iter()
            .map(|lane| {
                let mut st = lane.lock();
                st.closed = true;
                st.queue.clear()
            })
            .sum()
    }

    fn detach(&self, circuit_name: &str) {
        for lane in &self.lanes {
            let detach = AssertUnwindSafe(|| lane.listener.on_detach(circuit_name));
            if let Err(panic) = catch_unwind(detach) {
                tracing::error!(
                    target: "fluxgate",
                    circuit = circuit_name,
                    listener = name_of(|| lane.listener.name()),
                    panic = panic_message(&*panic),
                    "async listener panicked in on_detach"
                );
            }
        }
    }
}

impl Lane {
    fn lock(&self) -> MutexGuard<'_, LaneState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Calls the listener (outside the lane's lock) and guards its future.
    fn start(&self, signal: Signal) -> Option<SpawnFuture> {
        let circuit = signal.circuit_name.clone();
        match catch_unwind(AssertUnwindSafe(|| self.listener.on_signal(signal))) {
            Ok(fut) => Some(guarded(self.listener.clone(), circuit, fut)),
            Err(panic) => {
                tracing::error!(
                    target: "fluxgate",
                    listener = name_of(|| self.listener.name()),
                    circuit = &*circuit,
                    panic = panic_message(&*panic),
                    "async listener panicked"
                );
                None
            }
        }
    }
}

/// Drives one lane's futures and starts its queued signals in order; ends when the lane
/// has nothing left.
struct Pump {
    lane: Arc<Lane>,
    futs: Vec<SpawnFuture>,
    finished: bool,
}

impl Future for Pump {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let mut starts = 0;
        loop {
            let next = {
                let mut st = this.lane.lock();
                this.futs.append(&mut st.handed);
                if st.in_flight < ASYNC_IN_FLIGHT && starts < STARTS_PER_POLL {
                    st.queue.pop().inspect(|_| {
                        st.in_flight += 1;
                        st.starting = true;
                    })
                } else {
                    None
                }
            };
            if let Some(signal) = next {
                starts += 1;
                let fut = this.lane.start(signal);
                let mut st = this.lane.lock();
                st.starting = false;
                match fut {
                    Some(fut) => this.futs.push(fut),
                    None => st.in_flight -= 1,
                }
                continue;
            }
            let before = this.futs.len();
            this.futs.retain_mut(|f| f.as_mut().poll(cx).is_pending());
            let done = before - this.futs.len();
            let mut st = this.lane.lock();
            st.in_flight -= done;
            let more =
                !st.handed.is_empty() || (!st.queue.is_empty() && st.in_flight < ASYNC_IN_FLIGHT);
            if more && starts < STARTS_PER_POLL {
                continue;
            }
            if more {
                // Lets the executor run others; comes back at once.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if st.in_flight == 0 {
                st.running = false;
                st.waker = None;
                this.finished = true;
                return Poll::Ready(());
            }
            st.waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        if !self.finished {
            // Dropped by its executor (e.g. a runtime shutting down): the next signal
            // starts a new pump, which takes over what was handed and queued.
            let mut st = self.lane.lock();
            st.in_flight -= self.futs.len();
            st.running = false;
            st.waker = None;
        }
    }
}

/// Hands every signal to the async listeners' lanes, off the call path (L-3, R-2).
pub(crate) fn async_hook(
    listeners: Vec<Arc<dyn AsyncListener>>,
    spawner: Option<Spawner>,
) -> Option<Box<dyn SignalHook>> {
    if listeners.is_empty() {
        return None;
    }
    let (spawner, observe) = match spawner {
        Some(spawner) => (spawner, None),
        None => default_spawner(),
    };
    Some(Box::new(AsyncHook::new(listeners, spawner, observe)))
}
