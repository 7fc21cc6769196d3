//! Errors: what a protected call returns, and what `build()` reports.
//!
//! A caller must always be able to tell "the breaker said no" from "my call failed", and
//! must get its own error back unchanged. [`Error`] keeps the two apart;
//! [`CallNotPermitted`] says which circuit refused, in which state, and when to come back.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::State;

/// What a protected call returns on failure (CF-1).
///
/// ```
/// use fluxgate::{CircuitBreaker, Error};
/// let cb = CircuitBreaker::builder("db").build().unwrap();
/// let r: Result<(), Error<std::io::Error>> = cb.call(|| Err(std::io::Error::other("down")));
/// match r {
///     Err(Error::Inner(e)) => assert_eq!(e.to_string(), "down"),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error<E> {
    /// The breaker did not run the call.
    Rejected(CallNotPermitted),
    /// The call ran and failed with its own error.
    Inner(E),
}

impl<E> Error<E> {
    /// The caller's own error, if the call ran.
    ///
    /// ```
    /// let e: fluxgate::Error<&str> = fluxgate::Error::Inner("x");
    /// assert_eq!(e.into_inner(), Some("x"));
    /// ```
    pub fn into_inner(self) -> Option<E> {
        match self {
            Error::Inner(e) => Some(e),
            Error::Rejected(_) => None,
        }
    }

    /// The rejection, if the breaker refused the call.
    ///
    /// ```
    /// let e: fluxgate::Error<&str> = fluxgate::Error::Inner("x");
    /// assert!(e.rejection().is_none());
    /// ```
    pub fn rejection(&self) -> Option<&CallNotPermitted> {
        match self {
            Error::Rejected(r) => Some(r),
            Error::Inner(_) => None,
        }
    }

    /// Whether the breaker refused the call.
    ///
    /// ```
    /// let e: fluxgate::Error<&str> = fluxgate::Error::Inner("x");
    /// assert!(!e.is_rejected());
    /// ```
    pub fn is_rejected(&self) -> bool {
        matches!(self, Error::Rejected(_))
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Rejected(r) => r.fmt(f),
            Error::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for Error<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Rejected(_) => None,
            Error::Inner(e) => Some(e),
        }
    }
}

impl<E> From<CallNotPermitted> for Error<E> {
    fn from(r: CallNotPermitted) -> Self {
        Error::Rejected(r)
    }
}

/// The breaker refused a call (CF-1, CF-2).
///
/// ```
/// use fluxgate::{CircuitBreaker, Error, State};
/// let cb = CircuitBreaker::builder("payment_api").build().unwrap();
/// cb.force_open();
/// let Err(Error::Rejected(r)) = cb.call(|| Ok::<_, std::io::Error>(())) else { unreachable!() };
/// assert_eq!(r.circuit_name(), "payment_api");
/// assert_eq!(r.state(), State::ForcedOpen);
/// assert_eq!(r.to_string(), "circuit breaker 'payment_api' is forced open");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallNotPermitted {
    name: Arc<str>,
    state: State,
    retry_after: Option<Duration>,
}

impl CallNotPermitted {
    /// Builds a rejection (useful in tests of code that handles one).
    ///
    /// ```
    /// use fluxgate::{CallNotPermitted, State};
    /// let r = CallNotPermitted::new("db", State::Open, Some(std::time::Duration::from_secs(3)));
    /// assert_eq!(r.to_string(), "circuit breaker 'db' is open");
    /// ```
    pub fn new(name: impl Into<Arc<str>>, state: State, retry_after: Option<Duration>) -> Self {
        CallNotPermitted {
            name: name.into(),
            state,
            retry_after,
        }
    }

    /// The name of the circuit that refused.
    ///
    /// ```
    /// let r = fluxgate::CallNotPermitted::new("db", fluxgate::State::Open, None);
    /// assert_eq!(r.circuit_name(), "db");
    /// ```
    pub fn circuit_name(&self) -> &str {
        &self.name
    }

    /// The state that refused: `open`, `half_open` or `forced_open`.
    ///
    /// ```
    /// let r = fluxgate::CallNotPermitted::new("db", fluxgate::State::HalfOpen, None);
    /// assert_eq!(r.state(), fluxgate::State::HalfOpen);
    /// ```
    pub fn state(&self) -> State {
        self.state
    }

    /// How long until the breaker will let a probe through, when the retry policy knows
    /// (an HTTP layer sends it as `Retry-After`). `None` in `forced_open` and with
    /// [`retries::Never`](crate::retries::Never).
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = fluxgate::CallNotPermitted::new("db", fluxgate::State::Open, Some(Duration::from_secs(9)));
    /// assert_eq!(r.retry_after(), Some(Duration::from_secs(9)));
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for CallNotPermitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.state {
            State::HalfOpen => write!(
                f,
                "circuit breaker '{}' is half-open, call not permitted",
                self.name
            ),
            State::ForcedOpen => write!(f, "circuit breaker '{}' is forced open", self.name),
            _ => write!(f, "circuit breaker '{}' is open", self.name),
        }
    }
}

impl std::error::Error for CallNotPermitted {}

/// An invalid configuration, reported by `build()` (never at call time).
///
/// ```
/// use fluxgate::{CircuitBreaker, trippers::FailureRate};
/// let err = CircuitBreaker::builder("x").tripper(FailureRate::new(1.5)).build().unwrap_err();
/// assert_eq!(err.to_string(), "FailureRate ratio must be in (0, 1], got 1.5");
/// assert_eq!(err.component(), "FailureRate");
/// assert_eq!(err.parameter(), "ratio");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    component: &'static str,
    parameter: &'static str,
    value: String,
    allowed: &'static str,
}

impl ConfigError {
    /// Builds an error for a component's parameter, its rejected value and the allowed
    /// range (for custom components' `validate`).
    ///
    /// ```
    /// let e = fluxgate::ConfigError::new("MyWindow", "size", 0, ">= 1");
    /// assert_eq!(e.to_string(), "MyWindow size must be >= 1, got 0");
    /// ```
    pub fn new(
        component: &'static str,
        parameter: &'static str,
        value: impl fmt::Display,
        allowed: &'static str,
    ) -> Self {
        ConfigError {
            component,
            parameter,
            value: value.to_string(),
            allowed,
        }
    }

    /// The component type (`FailureRate`, `CountWindow`, `CircuitBreaker` …).
    ///
    /// ```
    /// assert_eq!(fluxgate::ConfigError::new("A", "b", 1, "c").component(), "A");
    /// ```
    pub fn component(&self) -> &'static str {
        self.component
    }

    /// The parameter name.
    ///
    /// ```
    /// assert_eq!(fluxgate::ConfigError::new("A", "b", 1, "c").parameter(), "b");
    /// ```
    pub fn parameter(&self) -> &'static str {
        self.parameter
    }

    /// The rejected value, as text.
    ///
    /// ```
    /// assert_eq!(fluxgate::ConfigError::new("A", "b", 1.5, "c").value(), "1.5");
    /// ```
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The allowed range, as text.
    ///
    /// ```
    /// assert_eq!(fluxgate::ConfigError::new("A", "b", 1, "in (0, 1]").allowed(), "in (0, 1]");
    /// ```
    pub fn allowed(&self) -> &'static str {
        self.allowed
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} must be {}, got {}",
            self.component, self.parameter, self.allowed, self.value
        )
    }
}

impl std::error::Error for ConfigError {}
