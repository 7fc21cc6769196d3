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
