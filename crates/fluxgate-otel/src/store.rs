//! The listener's compact per-circuit store, read by the observable instruments.
//!
//! The state gauge and the transition counter are asynchronous (observable) instruments:
//! the listener keeps per circuit its current state and its transition counts in atomics,
//! and the SDK asks for them when it collects. That makes a signal a few atomic writes,
//! lets a scrape never see a circuit in two states at once (the six gauge values come
//! from one stored state), and lets a retired circuit leave the export: the callbacks no
//! longer report it, and the SDK forgets attribute sets an observable instrument did not
//! report in its latest collection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use fluxgate_core::State;
use fluxgate_core::listeners::CallOutcome;
use opentelemetry::KeyValue;
use opentelemetry::metrics::AsyncInstrument;

/// The number of `(old_state, new_state)` pairs.
const PAIRS: usize = State::ALL.len() * State::ALL.len();
/// `Circuit::state` before the circuit's state is known.
const NO_STATE: u8 = u8::MAX;

/// The transitions a breaker makes on its own. Their counters are reported from the
/// moment a breaker is attached, at 0, so that `rate()` and `increase()` see the very
/// first trip (as the Prometheus listener does, PR-3).
const AUTOMATIC_TRANSITIONS: [(State, State); 4] = [
    (State::Closed, State::Open),
    (State::Open, State::HalfOpen),
    (State::HalfOpen, State::Open),
    (State::HalfOpen, State::Closed),
];

/// Every circuit the listener reports, by name. The map is looked up on every signal and,
/// with call metrics, on every call: its hasher is foldhash (seeded per map), several times
/// cheaper than SipHash on short keys such as circuit names.
#[derive(Default)]
pub(crate) struct Store {
    circuits: RwLock<HashMap<Arc<str>, Arc<Circuit>, foldhash::fast::RandomState>>,
}

/// One circuit's values.
pub(crate) struct Circuit {
    /// The `circuit_name` attribute, built once (cloning it clones an `Arc`).
    pub(crate) name: KeyValue,
    /// `State as u8` of the current state, or [`NO_STATE`].
    state: AtomicU8,
    /// Bit `old * 6 + new` is set once the counter of that pair is reported.
    present: AtomicU64,
    transitions: [AtomicU64; PAIRS],
    /// Calls by outcome, in the order of [`CallOutcome::ALL`] (call metrics only).
    calls: [AtomicU64; CallOutcome::ALL.len()],
}

fn pair(old_state: State, new_state: State) -> usize {
    old_state as usize * State::ALL.len() + new_state as usize
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl Circuit {
    fn new(name: Arc<str>) -> Circuit {
        Circuit {
            name: KeyValue::new("circuit_name", name),
            state: AtomicU8::new(NO_STATE),
            present: AtomicU64::new(0),
            transitions: std::array::from_fn(|_| AtomicU64::new(0)),
            calls: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn set_state(&self, state: State) {
        self.state.store(state as u8, Ordering::Release);
    }

    fn add_transition(&self, old_state: State, new_state: State, by: u64) {
        let pair = pair(old_state, new_state);
        self.transitions[pair].fetch_add(by, Ordering::AcqRel);
        self.present.fetch_or(1 << pair, Ordering::AcqRel);
    }

    /// Counts one call.
    pub(crate) fn count_call(&self, outcome: CallOutcome) {
        if let Some(index) = CallOutcome::ALL.iter().position(|o| *o == outcome) {
            self.calls[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    fn state(&self) -> Option<State> {
        let index = self.state.load(Ordering::Acquire);
        State::ALL.get(usize::from(index)).copied()
    }
}

impl Store {
    /// Runs `f` on the circuit `name`, creating it if needed.
    pub(crate) fn with_circuit<R>(&self, name: &str, f: impl FnOnce(&Circuit) -> R) -> R {
        if let Some(circuit) = read(&self.circuits).get(name) {
            return f(circuit);
        }
        let circuit = Arc::clone(
            write(&self.circuits)
                .entry(Arc::from(name))
                .or_insert_with_key(|key| Arc::new(Circuit::new(Arc::clone(key)))),
        );
        f(&circuit)
    }

    /// Runs `f` on the circuit `name` if the listener reports it. Calls use this: the
    /// last calls of a retired breaker must not bring its series back.
    pub(crate) fn with_reported<R>(&self, name: &str, f: impl FnOnce(&Circuit) -> R) -> Option<R> {
        read(&self.circuits).get(name).map(|circuit| f(circuit))
    }

    /// A breaker built with the listener: its state and its automatic transitions at 0.
    pub(crate) fn attach(&self, name: &str, state: State) {
        self.with_circuit(name, |circuit| {
            circuit.set_state(state);
            for (old_state, new_state) in AUTOMATIC_TRANSITIONS {
                circuit.add_transition(old_state, new_state, 0);
            }
        });
    }

    /// One transition: the state first, then the counter (same-state signals count).
    pub(crate) fn record(&self, name: &str, old_state: State, new_state: State) {
        self.with_circuit(name, |circuit| {
            circuit.set_state(new_state);
            circuit.add_transition(old_state, new_state, 1);
        });
    }

    /// Forgets one circuit; idempotent.
    pub(crate) fn remove(&self, name: &str) {
        write(&self.circuits).remove(name);
    }

    /// The circuits as they are now; the map's lock is not held while the SDK records.
    fn snapshot(&self) -> Vec<Arc<Circuit>> {
        read(&self.circuits).values().cloned().collect()
    }

    /// `circuit_breaker_state`: six points per circuit, 1 for its state and 0 for the
    /// five others.
    pub(crate) fn observe_states(&self, observer: &dyn AsyncInstrument<u64>) {
        for circuit in self.snapshot() {
            let Some(current) = circuit.state() else {
                continue;
            };
            for state in State::ALL {
                observer.observe(
                    u64::from(state == current),
                    &[circuit.name.clone(), KeyValue::new("state", state.as_str())],
                );
            }
        }
    }

    /// `circuit_breaker_state_transition`: one point per pair seen (or created at 0).
    pub(crate) fn observe_transitions(&self, observer: &dyn AsyncInstrument<u64>) {
        for circuit in self.snapshot() {
            let present = circuit.present.load(Ordering::Acquire);
            for old_state in State::ALL {
                for new_state in State::ALL {
                    let pair = pair(old_state, new_state);
                    if present & (1 << pair) == 0 {
                        continue;
                    }
                    observer.observe(
                        circuit.transitions[pair].load(Ordering::Acquire),
                        &[
                            circuit.name.clone(),
                            KeyValue::new("old_state", old_state.as_str()),
                            KeyValue::new("new_state", new_state.as_str()),
                        ],
                    );
                }
            }
        }
    }

    /// `circuit_breaker_calls`: one point per circuit and outcome.
    pub(crate) fn observe_calls(&self, observer: &dyn AsyncInstrument<u64>) {
        for circuit in self.snapshot() {
            for (count, outcome) in circuit.calls.iter().zip(CallOutcome::ALL) {
                observer.observe(
                    count.load(Ordering::Relaxed),
                    &[
                        circuit.name.clone(),
                        KeyValue::new("outcome", outcome.as_str()),
                    ],
                );
            }
        }
    }
}
