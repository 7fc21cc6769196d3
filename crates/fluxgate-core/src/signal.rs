//! The message a breaker sends to its listeners on every transition.

use std::sync::Arc;
use std::time::SystemTime;

use crate::State;

/// One state transition of one breaker (L-1).
///
/// Immutable and cheap to clone: the circuit name is shared, not copied.
///
/// ```
/// use fluxgate_core::{Signal, State};
/// let s = Signal::new("payment_api", State::Closed, State::Open, std::time::SystemTime::now());
/// assert_eq!(&*s.circuit_name, "payment_api");
/// assert_eq!((s.old_state, s.new_state), (State::Closed, State::Open));
/// let t = s.clone();
/// assert!(std::sync::Arc::ptr_eq(&s.circuit_name, &t.circuit_name));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Signal {
    /// The breaker's name.
    pub circuit_name: Arc<str>,
    /// The state before the transition.
    pub old_state: State,
    /// The state after the transition.
    pub new_state: State,
    /// Wall-clock time of the transition; equals the breaker's `changed_at`.
    pub timestamp: SystemTime,
}

impl Signal {
    /// Builds a signal (useful for testing listeners in isolation).
    ///
    /// ```
    /// use fluxgate_core::{Signal, State};
    /// let s = Signal::new("db", State::Open, State::HalfOpen, std::time::SystemTime::UNIX_EPOCH);
    /// assert_eq!(s.new_state, State::HalfOpen);
    /// ```
    pub fn new(
        circuit_name: impl Into<Arc<str>>,
        old_state: State,
        new_state: State,
        timestamp: SystemTime,
    ) -> Signal {
        Signal {
            circuit_name: circuit_name.into(),
            old_state,
            new_state,
            timestamp,
        }
    }
}
