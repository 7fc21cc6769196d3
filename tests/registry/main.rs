//! Many breakers: the registry (named breakers, live reconfiguration, retirement) and
//! keyed breakers (the bound, the eviction rule, the keyed tower layer).

#[path = "../support/mod.rs"]
mod support;

mod keyed;
mod registry;
#[cfg(feature = "tower")]
mod tower_keyed;

use std::sync::{Arc, Mutex};

use fluxgate::listeners::{Listener, ListenerError};
use fluxgate::{Signal, State};

/// Records attaches, signals and detaches, per circuit name.
#[derive(Clone, Default)]
pub(crate) struct Lifecycle(Arc<Mutex<Vec<String>>>);

impl Lifecycle {
    pub(crate) fn events(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub(crate) fn count(&self, event: &str) -> usize {
        self.events().iter().filter(|e| *e == event).count()
    }
}

impl Listener for Lifecycle {
    fn on_signal(&self, s: &Signal) -> Result<(), ListenerError> {
        self.0.lock().unwrap().push(format!(
            "signal {} {}->{}",
            s.circuit_name, s.old_state, s.new_state
        ));
        Ok(())
    }
    fn on_attach(&self, name: &str, state: State) {
        self.0
            .lock()
            .unwrap()
            .push(format!("attach {name} {state}"));
    }
    fn on_detach(&self, name: &str) {
        self.0.lock().unwrap().push(format!("detach {name}"));
    }
}

/// Lines of a Prometheus text exposition that are series of `circuit` (or of any circuit
/// when `None`).
#[cfg(any(feature = "prometheus", feature = "prometheus-client"))]
pub(crate) fn series(text: &str, circuit: Option<&str>) -> usize {
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains("circuit_name="))
        .filter(|l| circuit.is_none_or(|c| l.contains(&format!("circuit_name=\"{c}\""))))
        .count()
}

/// A `Lifecycle` whose `on_detach` first waits until the test lets it go: to run a
/// lookup while a breaker is being detached.
#[derive(Clone)]
pub(crate) struct SlowDetach {
    pub(crate) life: Lifecycle,
    entered: std::sync::mpsc::SyncSender<()>,
    release: Arc<Mutex<std::sync::mpsc::Receiver<()>>>,
}

/// The test's side of a [`SlowDetach`].
pub(crate) struct Gate {
    entered: std::sync::mpsc::Receiver<()>,
    release: std::sync::mpsc::Sender<()>,
}

impl SlowDetach {
    pub(crate) fn new() -> (SlowDetach, Gate) {
        let (entered_tx, entered_rx) = std::sync::mpsc::sync_channel(1);
        let (release_tx, release_rx) = std::sync::mpsc::channel();
        let slow = SlowDetach {
            life: Lifecycle::default(),
            entered: entered_tx,
            release: Arc::new(Mutex::new(release_rx)),
        };
        let gate = Gate {
            entered: entered_rx,
            release: release_tx,
        };
        (slow, gate)
    }
}

impl Gate {
    /// Runs `detach` (which must detach a breaker) on one thread and, once the detach
    /// has begun, `build` (which builds a breaker of the same name) on another; then lets
    /// the detach finish. The order the listener sees is up to the code under test: the
    /// pause only gives a `build` that does not wait the time to attach first, so that a
    /// race shows.
    pub(crate) fn race(&self, detach: impl FnOnce() + Send, build: impl FnOnce() + Send) {
        std::thread::scope(|s| {
            let detaching = s.spawn(detach);
            self.entered.recv().unwrap();
            let building = s.spawn(build);
            std::thread::sleep(std::time::Duration::from_millis(50));
            self.release.send(()).unwrap();
            detaching.join().unwrap();
            building.join().unwrap();
        });
    }
}

impl Lifecycle {
    /// The attaches and detaches, without the signals.
    pub(crate) fn lifecycle(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|e| !e.starts_with("signal"))
            .collect()
    }
}

impl Listener for SlowDetach {
    fn on_signal(&self, s: &Signal) -> Result<(), ListenerError> {
        self.life.on_signal(s)
    }
    fn on_attach(&self, name: &str, state: State) {
        self.life.on_attach(name, state);
    }
    fn on_detach(&self, name: &str) {
        let _ = self.entered.try_send(());
        let _ = self
            .release
            .lock()
            .unwrap()
            .recv_timeout(std::time::Duration::from_secs(5));
        self.life.on_detach(name);
    }
}

/// A listener whose `on_signal` for a signal into `state` waits, the first time, until
/// the test lets it go: a slow listener in front of the others, with a signal of a
/// breaker half delivered.
pub(crate) struct SlowSignal {
    state: State,
    entered: std::sync::mpsc::SyncSender<()>,
    release: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
}

impl SlowSignal {
    /// The listener, the receiver told once it waits, and the sender that lets it go.
    pub(crate) fn new(
        state: State,
    ) -> (
        SlowSignal,
        std::sync::mpsc::Receiver<()>,
        std::sync::mpsc::Sender<()>,
    ) {
        let (entered_tx, entered_rx) = std::sync::mpsc::sync_channel(1);
        let (release_tx, release_rx) = std::sync::mpsc::channel();
        let slow = SlowSignal {
            state,
            entered: entered_tx,
            release: Mutex::new(Some(release_rx)),
        };
        (slow, entered_rx, release_tx)
    }
}

impl Listener for SlowSignal {
    fn on_signal(&self, s: &Signal) -> Result<(), ListenerError> {
        if s.new_state != self.state {
            return Ok(());
        }
        let release = self.release.lock().unwrap().take();
        if let Some(release) = release {
            let _ = self.entered.try_send(());
            let _ = release.recv_timeout(std::time::Duration::from_secs(30));
        }
        Ok(())
    }
}
