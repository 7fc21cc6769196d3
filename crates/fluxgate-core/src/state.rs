//! The six states of a circuit breaker.
//!
//! Two states are driven by traffic (`closed` ⇄ `open` ⇄ `half_open`); the other three
//! are entered only by a manual command and stay until the next one. The string forms
//! are part of the contract: they are the values of the `state`, `old_state` and
//! `new_state` labels that dashboards and alerts match on.

use std::fmt;

/// The state of a circuit breaker (SM-1).
///
/// ```
/// use fluxgate_core::State;
/// assert_eq!(State::HalfOpen.as_str(), "half_open");
/// assert_eq!(State::ALL.len(), 6);
/// assert_eq!(State::ForcedOpen.to_string(), "forced_open");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum State {
    /// Calls run and are recorded; the tripper decides when to open.
    Closed = 0,
    /// Calls are rejected until the retry policy lets a probe through.
    Open = 1,
    /// A limited number of probe calls run; their outcome closes or reopens the circuit.
    HalfOpen = 2,
    /// Calls run and are recorded, but the breaker never trips on its own.
    MetricsOnly = 3,
    /// Calls pass straight through; nothing is recorded.
    Disabled = 4,
    /// Every call is rejected until a manual command says otherwise.
    ForcedOpen = 5,
}

impl State {
    /// All six states in canonical order.
    ///
    /// ```
    /// use fluxgate_core::State;
    /// let names: Vec<&str> = State::ALL.iter().map(|s| s.as_str()).collect();
    /// assert_eq!(names, ["closed", "open", "half_open", "metrics_only", "disabled", "forced_open"]);
    /// ```
    pub const ALL: [State; 6] = [
        State::Closed,
        State::Open,
        State::HalfOpen,
        State::MetricsOnly,
        State::Disabled,
        State::ForcedOpen,
    ];

    /// The canonical lowercase name (`closed`, `open`, `half_open`, `metrics_only`,
    /// `disabled`, `forced_open`).
    ///
    /// ```
    /// assert_eq!(fluxgate_core::State::MetricsOnly.as_str(), "metrics_only");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
            State::MetricsOnly => "metrics_only",
            State::Disabled => "disabled",
            State::ForcedOpen => "forced_open",
        }
    }

    /// The state for a canonical name, if it is one.
    ///
    /// ```
    /// use fluxgate_core::State;
    /// assert_eq!(State::from_name("open"), Some(State::Open));
    /// assert_eq!(State::from_name("OPEN"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|s| s.as_str() == name)
    }

    pub(crate) const fn from_bits(bits: u64) -> State {
        match bits {
            0 => State::Closed,
            1 => State::Open,
            2 => State::HalfOpen,
            3 => State::MetricsOnly,
            4 => State::Disabled,
            _ => State::ForcedOpen,
        }
    }

    /// Whether calls in this state are rejected without running (`open`, `forced_open`).
    ///
    /// ```
    /// assert!(fluxgate_core::State::ForcedOpen.rejects());
    /// assert!(!fluxgate_core::State::HalfOpen.rejects());
    /// ```
    pub const fn rejects(self) -> bool {
        matches!(self, State::Open | State::ForcedOpen)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
