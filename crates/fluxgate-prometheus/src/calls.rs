//! Opt-in call metrics, shared by the backends: the per-circuit handles of the calls
//! counter and the duration histogram, created when a circuit is attached and dropped when
//! it is detached, so a call costs one map lookup under a read lock and no allocation.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use fluxgate_core::listeners::{CallEvent, CallOutcome};

/// One circuit's call series in some backend.
pub(crate) trait CallHandles: Send + Sync + 'static {
    /// Counts one call with `outcome`.
    fn count(&self, outcome: CallOutcome);
    /// Observes one call's duration, in seconds.
    fn observe(&self, seconds: f64);
}

/// The index of `outcome` in [`CallOutcome::ALL`] (and in a backend's handle array).
pub(crate) fn outcome_index(outcome: CallOutcome) -> usize {
    CallOutcome::ALL
        .iter()
        .position(|o| *o == outcome)
        .unwrap_or_default()
}

/// Per-circuit handles. Calls of a circuit that is not attached (or was detached) are not
/// counted: a retired breaker's last calls must not bring its series back.
pub(crate) struct CallSeries<H> {
    circuits: RwLock<HashMap<Box<str>, H, foldhash::fast::RandomState>>,
}

impl<H: CallHandles> CallSeries<H> {
    pub(crate) fn new() -> Self {
        CallSeries {
            circuits: RwLock::new(HashMap::default()),
        }
    }

    /// Creates the circuit's handles (its series appear at zero) unless they exist.
    pub(crate) fn attach(&self, circuit_name: &str, make: impl FnOnce() -> H) {
        let mut circuits = self
            .circuits
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if !circuits.contains_key(circuit_name) {
            circuits.insert(circuit_name.into(), make());
        }
    }

    /// Forgets the circuit's handles and gives them back (for the backend to delete the
    /// series).
    pub(crate) fn detach(&self, circuit_name: &str) -> Option<H> {
        self.circuits
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(circuit_name)
    }

    /// Takes every attached circuit's handles anew (for a backend whose exporter may
    /// forget idle series).
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn renew(&self, make: impl Fn(&str) -> H) {
        let mut circuits = self
            .circuits
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for (name, handles) in circuits.iter_mut() {
            *handles = make(name);
        }
    }

    /// Counts `call` (and its duration, when it ran).
    pub(crate) fn record(&self, call: &CallEvent<'_>) {
        let circuits = self.circuits.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(handles) = circuits.get(call.circuit_name) {
            handles.count(call.outcome);
            if let Some(duration) = call.duration {
                handles.observe(duration.as_secs_f64());
            }
        }
    }
}
