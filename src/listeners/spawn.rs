//! Driving async listeners off the call path (L-3, L-4).
//!
//! The async breaker never awaits its async listeners: each signal's futures are handed
//! to a spawner. With the `tokio` feature and a tokio runtime around (the current one,
//! or the one the breaker was built in) they are spawned there; otherwise a small
//! built-in executor thread drives them, so async listeners work with any runtime or
//! none. Every future is guarded: an error or a panic is logged, nothing else.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Wake, Waker};

use super::{panic_message, ListenerFuture};

/// A future with no output, boxed, as spawners receive it.
pub type SpawnFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Something that runs futures in the background (a runtime's `spawn`).
pub(crate) type Spawner = Arc<dyn Fn(SpawnFuture) + Send + Sync>;

/// Wraps a listener's future so its error or panic is logged and goes no further.
pub(crate) fn guarded(listener: String, circuit: Arc<str>, fut: ListenerFuture) -> SpawnFuture {
    Box::pin(Guarded {
        fut,
        listener,
        circuit,
    })
}

struct Guarded {
    fut: ListenerFuture,
    listener: String,
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
                    listener = %this.listener,
                    circuit = &*this.circuit,
                    %error,
                    "async listener failed"
                );
                Poll::Ready(())
            }
            Err(panic) => {
                tracing::error!(
                    target: "fluxgate",
                    listener = %this.listener,
                    circuit = &*this.circuit,
                    panic = panic_message(&*panic),
                    "async listener panicked"
                );
                Poll::Ready(())
            }
        }
    }
}

/// Spawns on tokio when a runtime is reachable, else on the built-in executor.
pub(crate) fn default_spawner() -> Spawner {
    #[cfg(feature = "tokio")]
    {
        let built_in = tokio::runtime::Handle::try_current().ok();
        Arc::new(move |fut: SpawnFuture| {
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                drop(handle.spawn(fut));
            } else if let Some(handle) = &built_in {
                drop(handle.spawn(fut));
            } else {
                spawn_builtin(fut);
            }
        })
    }
    #[cfg(not(feature = "tokio"))]
    {
        Arc::new(spawn_builtin)
    }
}

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
