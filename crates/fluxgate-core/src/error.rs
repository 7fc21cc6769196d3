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
/// use fluxgate_core::{CircuitBreaker, Error};
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
    /// let e: fluxgate_core::Error<&str> = fluxgate_core::Error::Inner("x");
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
    /// let e: fluxgate_core::Error<&str> = fluxgate_core::Error::Inner("x");
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
    /// let e: fluxgate_core::Error<&str> = fluxgate_core::Error::Inner("x");
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

/// How trackers see an error, given to [`call_any`](crate::CircuitBreaker::call_any), that
/// is not a `std::error::Error` (a `String`, a user's `Display` enum): only its type name.
/// Trackers that track everything (`All`, the default) count it as a failure; to judge
/// such errors by value, use the [`Ticket`](crate::Ticket) API or `call_classified`.
///
/// ```
/// use fluxgate_core::{CircuitBreaker, Opaque};
/// let cb = CircuitBreaker::builder("x")
///     .tracker(|e: &(dyn std::error::Error + 'static)| {
///         e.downcast_ref::<Opaque>().is_none_or(|o| !o.type_name().contains("String"))
///     })
///     .build()
///     .unwrap();
/// let _ = cb.call_any(|| Err::<(), String>("not found".into()));
/// assert_eq!(cb.info().metric.failure_count, 0);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opaque {
    type_name: &'static str,
}

impl Opaque {
    /// The Rust type name of the error (as `std::any::type_name` gives it).
    ///
    /// ```
    /// # let cb = fluxgate_core::CircuitBreaker::builder("x")
    /// #     .tracker(|e: &(dyn std::error::Error + 'static)| {
    /// #         assert!(e.downcast_ref::<fluxgate_core::Opaque>().unwrap().type_name().ends_with("String"));
    /// #         true
    /// #     })
    /// #     .build().unwrap();
    /// # let _ = cb.call_any(|| Err::<(), String>("x".into()));
    /// ```
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
}

impl fmt::Display for Opaque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an error of type {}", self.type_name)
    }
}

impl std::error::Error for Opaque {}

/// Calls `judge` with the `std::error::Error` that trackers see for `error`: the error
/// itself behind `Box<dyn Error…>`, `Arc<dyn Error…>` and (feature `anyhow`)
/// `anyhow::Error`, so that `TypeOf` and `Custom` find the real type and its `source()`
/// chain; an [`Opaque`] for any other type.
pub(crate) fn view<E, R>(
    error: &E,
    judge: impl FnOnce(&(dyn std::error::Error + 'static)) -> R,
) -> R
where
    E: 'static,
{
    see(error, judge).unwrap_or_else(|judge| {
        judge(&Opaque {
            type_name: std::any::type_name::<E>(),
        })
    })
}

/// As [`view`], or `None` for a type it cannot see into (no [`Opaque`] stand-in).
#[cfg(feature = "tower")]
pub(crate) fn try_view<E, R>(
    error: &E,
    judge: impl FnOnce(&(dyn std::error::Error + 'static)) -> R,
) -> Option<R>
where
    E: 'static,
{
    see(error, judge).ok()
}

/// `judge`'s answer for the error inside `error`, or `judge` back when `error` is of a
/// type this cannot see into.
fn see<E, R, J>(error: &E, judge: J) -> Result<R, J>
where
    E: 'static,
    J: FnOnce(&(dyn std::error::Error + 'static)) -> R,
{
    use std::error::Error as StdError;
    let any: &dyn std::any::Any = error;
    if let Some(e) = any.downcast_ref::<Box<dyn StdError + Send + Sync>>() {
        return Ok(judge(&**e));
    }
    if let Some(e) = any.downcast_ref::<Box<dyn StdError + Send>>() {
        return Ok(judge(&**e));
    }
    if let Some(e) = any.downcast_ref::<Box<dyn StdError>>() {
        return Ok(judge(&**e));
    }
    if let Some(e) = any.downcast_ref::<Arc<dyn StdError + Send + Sync>>() {
        return Ok(judge(&**e));
    }
    #[cfg(feature = "anyhow")]
    if let Some(e) = any.downcast_ref::<anyhow::Error>() {
        let e: &(dyn StdError + Send + Sync + 'static) = e.as_ref();
        return Ok(judge(e));
    }
    Err(judge)
}

/// The breaker refused a call (CF-1, CF-2).
///
/// ```
/// use fluxgate_core::{CircuitBreaker, Error, State};
/// let cb = CircuitBreaker::builder("payment_api").build().unwrap();
/// cb.force_open();
/// let Err(Error::Rejected(r)) = cb.call(|| Ok::<_, std::io::Error>(())) else { unreachable!() };
/// assert_eq!(r.circuit_name(), "payment_api");
/// assert_eq!(r.state(), State::ForcedOpen);
/// assert_eq!(r.to_string(), "circuit breaker 'payment_api' is forced open");
/// ```
#[derive(Clone)]
pub struct CallNotPermitted {
    name: Name,
    /// The state in the top `STATE_SHIFT` bits, `retry_after` below (see `pack`). One
    /// word instead of an `Option<Duration>` and a byte: every field of a rejection is
    /// then a whole word, so the copies a rejection goes through on its way to the caller
    /// are word moves that the processor forwards from store to load (a byte-sized state
    /// read back with a wider load stalled every rejection), and every `Result` of a
    /// protected call stays at 32 bytes.
    packed: u64,
}

const STATE_SHIFT: u32 = 61;
/// Set when the value below counts microseconds instead of nanoseconds.
const MICROS: u64 = 1 << 60;
const VALUE: u64 = MICROS - 1;
/// No `retry_after`.
const NO_RETRY_AFTER: u64 = MICROS | VALUE;

/// A rejection's state and `retry_after`: to the nanosecond up to 36 years, to the
/// microsecond beyond, saturating at 36 000 years.
#[inline]
fn pack(state: State, retry_after: Option<Duration>) -> u64 {
    let value = match retry_after {
        None => NO_RETRY_AFTER,
        Some(d) => match u64::try_from(d.as_nanos()) {
            Ok(n) if n <= VALUE => n,
            _ => MICROS | u64::try_from(d.as_micros()).map_or(VALUE - 1, |m| m.min(VALUE - 1)),
        },
    };
    ((state as u64) << STATE_SHIFT) | value
}

/// Longest circuit name a rejection copies instead of sharing.
const INLINE_NAME: usize = 15;

/// A circuit name as a rejection carries it.
///
/// Short names are copied into the rejection, so refusing a call touches no shared
/// reference count: with an `Arc` every rejection would increment and decrement one
/// counter, a contended cache line when several threads are refused by one breaker.
/// Longer names share the breaker's `Arc`.
#[derive(Clone)]
enum Name {
    Inline(Inline),
    Shared(Arc<str>),
}

/// A short name: word-aligned, so copying one is two plain 8-byte moves (with an odd
/// layout the copy goes piecewise through the stack and stalls store forwarding).
#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct Inline {
    bytes: [u8; INLINE_NAME],
    len: u8,
}

impl Name {
    fn of(name: &Arc<str>) -> Name {
        let len = name.len();
        if len <= INLINE_NAME {
            let mut bytes = [0; INLINE_NAME];
            bytes[..len].copy_from_slice(name.as_bytes());
            Name::Inline(Inline {
                bytes,
                len: len as u8,
            })
        } else {
            Name::Shared(name.clone())
        }
    }

    fn as_str(&self) -> &str {
        match self {
            // The bytes are a whole `str`, copied: always valid UTF-8.
            Name::Inline(Inline { bytes, len }) => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Name::Shared(name) => name,
        }
    }
}

/// A breaker's name, prepared once for the rejections it returns: making one is then
/// allocation-free, and for names of at most 15 bytes free of any shared reference count.
#[derive(Clone)]
pub(crate) struct RejectionName(Name);

impl RejectionName {
    pub(crate) fn new(name: &Arc<str>) -> Self {
        RejectionName(Name::of(name))
    }

    /// The rejection of a call in `state`.
    #[inline]
    pub(crate) fn reject(&self, state: State, retry_after: Option<Duration>) -> CallNotPermitted {
        CallNotPermitted {
            name: self.0.clone(),
            packed: pack(state, retry_after),
        }
    }
}

impl fmt::Debug for CallNotPermitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallNotPermitted")
            .field("name", &self.name.as_str())
            .field("state", &self.state())
            .field("retry_after", &self.retry_after())
            .finish()
    }
}

impl PartialEq for CallNotPermitted {
    fn eq(&self, other: &Self) -> bool {
        self.name.as_str() == other.name.as_str() && self.packed == other.packed
    }
}

impl Eq for CallNotPermitted {}

impl CallNotPermitted {
    /// Builds a rejection (useful in tests of code that handles one).
    ///
    /// ```
    /// use fluxgate_core::{CallNotPermitted, State};
    /// let r = CallNotPermitted::new("db", State::Open, Some(std::time::Duration::from_secs(3)));
    /// assert_eq!(r.to_string(), "circuit breaker 'db' is open");
    /// ```
    pub fn new(name: impl Into<Arc<str>>, state: State, retry_after: Option<Duration>) -> Self {
        CallNotPermitted {
            name: Name::Shared(name.into()),
            packed: pack(state, retry_after),
        }
    }

    /// The name of the circuit that refused.
    ///
    /// ```
    /// let r = fluxgate_core::CallNotPermitted::new("db", fluxgate_core::State::Open, None);
    /// assert_eq!(r.circuit_name(), "db");
    /// ```
    pub fn circuit_name(&self) -> &str {
        self.name.as_str()
    }

    /// The state that refused: `open`, `half_open` or `forced_open`.
    ///
    /// ```
    /// let r = fluxgate_core::CallNotPermitted::new("db", fluxgate_core::State::HalfOpen, None);
    /// assert_eq!(r.state(), fluxgate_core::State::HalfOpen);
    /// ```
    pub fn state(&self) -> State {
        State::from_bits(self.packed >> STATE_SHIFT)
    }

    /// How long until the breaker will let a probe through, when the retry policy knows
    /// (an HTTP layer sends it as `Retry-After`). `None` in `forced_open` and with
    /// [`retries::Never`](crate::retries::Never). Kept to the nanosecond up to 36 years,
    /// to the microsecond beyond (up to 36 000 years).
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = fluxgate_core::CallNotPermitted::new("db", fluxgate_core::State::Open, Some(Duration::from_secs(9)));
    /// assert_eq!(r.retry_after(), Some(Duration::from_secs(9)));
    /// ```
    pub fn retry_after(&self) -> Option<Duration> {
        match self.packed & NO_RETRY_AFTER {
            NO_RETRY_AFTER => None,
            v if v & MICROS != 0 => Some(Duration::from_micros(v & VALUE)),
            v => Some(Duration::from_nanos(v)),
        }
    }
}

impl fmt::Display for CallNotPermitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // R-6: a name cannot break the text into lines or send terminal escapes.
        let name = escaped(self.name.as_str());
        match self.state() {
            State::HalfOpen => write!(
                f,
                "circuit breaker '{name}' is half-open, call not permitted"
            ),
            State::ForcedOpen => write!(f, "circuit breaker '{name}' is forced open"),
            State::Open => write!(f, "circuit breaker '{name}' is open"),
            // Not a state a breaker rejects in; only a hand-made rejection says so.
            other => write!(f, "circuit breaker '{name}' is {other}, call not permitted"),
        }
    }
}

impl std::error::Error for CallNotPermitted {}

/// A circuit name as text built from it shows it (R-6): control characters and the other
/// characters that can break or reorder a line are escaped, everything else, other
/// scripts and emoji included, is kept. Writes straight to the formatter, no allocation.
///
/// Escaped: the C0 and C1 controls and DEL (`char::is_control`), as `\n`, `\r`, `\t`,
/// `\0` or `\u{1b}` the way `char::escape_debug` writes them; the line and paragraph
/// separators U+2028 and U+2029, which some viewers and JavaScript treat as line breaks;
/// and the bidirectional embedding, override and isolate controls U+202A–U+202E and
/// U+2066–U+2069, which can make a line display in another order than it reads.
/// Backslashes and quotes are kept as they are.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(&'a str);

/// `name`, ready to be written into a message or a `Display` text (R-6).
/// Integrations (the Slack messages, say) use it wherever they show a circuit name.
///
/// ```
/// assert_eq!(fluxgate_core::escaped("pay\nments").to_string(), "pay\\nments");
/// ```
pub fn escaped(name: &str) -> Escaped<'_> {
    Escaped(name)
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(needs_escape) {
            f.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\0' => f.write_str("\\0")?,
                _ => write!(f, "\\u{{{:x}}}", u32::from(c))?,
            }
            rest = &rest[i + c.len_utf8()..];
        }
        f.write_str(rest)
    }
}

/// An invalid configuration, reported by `build()` (never at call time).
///
/// ```
/// use fluxgate_core::{CircuitBreaker, trippers::FailureRate};
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
    /// let e = fluxgate_core::ConfigError::new("MyWindow", "size", 0, ">= 1");
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
    /// assert_eq!(fluxgate_core::ConfigError::new("A", "b", 1, "c").component(), "A");
    /// ```
    pub fn component(&self) -> &'static str {
        self.component
    }

    /// The parameter name.
    ///
    /// ```
    /// assert_eq!(fluxgate_core::ConfigError::new("A", "b", 1, "c").parameter(), "b");
    /// ```
    pub fn parameter(&self) -> &'static str {
        self.parameter
    }

    /// The rejected value, as text.
    ///
    /// ```
    /// assert_eq!(fluxgate_core::ConfigError::new("A", "b", 1.5, "c").value(), "1.5");
    /// ```
    pub fn value(&self) -> &str {
        &self.value
    }

    /// The allowed range, as text.
    ///
    /// ```
    /// assert_eq!(fluxgate_core::ConfigError::new("A", "b", 1, "in (0, 1]").allowed(), "in (0, 1]");
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

impl ConfigError {
    /// Checks that a duration parameter is greater than zero.
    pub(crate) fn positive(
        component: &'static str,
        parameter: &'static str,
        d: Duration,
    ) -> Result<(), ConfigError> {
        if d.is_zero() {
            Err(ConfigError::new(
                component,
                parameter,
                format_args!("{d:?}"),
                "greater than zero",
            ))
        } else {
            Ok(())
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejection_is_small() {
        // Every `Result` a protected call returns is at least this big.
        assert!(std::mem::size_of::<CallNotPermitted>() <= 32);
        assert!(std::mem::size_of::<Result<u64, Error<std::io::Error>>>() <= 32);
        let d = Duration::from_nanos(VALUE);
        assert_eq!(
            CallNotPermitted::new("x", State::Open, Some(d)).retry_after(),
            Some(d)
        );
        // Beyond 36 years, whole microseconds.
        let d = Duration::from_nanos(u64::MAX - 1);
        assert_eq!(
            CallNotPermitted::new("x", State::Open, Some(d)).retry_after(),
            Some(Duration::from_micros(d.as_micros() as u64))
        );
        assert_eq!(
            CallNotPermitted::new("x", State::Open, Some(Duration::MAX)).retry_after(),
            Some(Duration::from_micros(VALUE - 1))
        );
        assert_eq!(
            CallNotPermitted::new("x", State::Open, None).retry_after(),
            None
        );
    }

    #[test]
    fn a_rejection_keeps_its_state_and_retry_after_apart() {
        let waits = [
            None,
            Some(Duration::ZERO),
            Some(Duration::from_nanos(1)),
            Some(Duration::from_secs(60)),
            Some(Duration::from_nanos(VALUE)),
            Some(Duration::from_secs(100 * 365 * 86_400)),
            Some(Duration::from_micros(VALUE - 1)),
        ];
        for state in State::ALL {
            for wait in waits {
                let r = CallNotPermitted::new("x", state, wait);
                assert_eq!((r.state(), r.retry_after()), (state, wait));
            }
            // Longer than 36 000 years saturates; it never spills into the state.
            let r = CallNotPermitted::new("x", state, Some(Duration::MAX));
            assert_eq!(r.state(), state);
            assert_eq!(r.retry_after(), Some(Duration::from_micros(VALUE - 1)));
        }
    }

    #[test]
    fn r6_escaped_names() {
        let e = |s: &str| escaped(s).to_string();
        assert_eq!(e("a\nb\r\t\0"), "a\\nb\\r\\t\\0");
        assert_eq!(e("\x1b[31m\x7f\u{85}"), "\\u{1b}[31m\\u{7f}\\u{85}");
        assert_eq!(
            e("\u{2028}\u{2029}\u{202e}\u{2069}"),
            "\\u{2028}\\u{2029}\\u{202e}\\u{2069}"
        );
        for plain in [
            "",
            "payment_api",
            "café",
            "日本の決済",
            "🚦",
            "a\\nb 'q' \"d\"",
        ] {
            assert_eq!(e(plain), plain);
        }
    }

    #[test]
    fn rejection_copies_short_names_and_shares_long_ones() {
        let short: Arc<str> = Arc::from("payment_api");
        let r = RejectionName::new(&short).reject(State::Open, None);
        assert_eq!(Arc::strong_count(&short), 1);
        assert_eq!(r.circuit_name(), "payment_api");
        assert_eq!(r, CallNotPermitted::new("payment_api", State::Open, None));
        assert_eq!(r.to_string(), "circuit breaker 'payment_api' is open");

        let exact: Arc<str> = Arc::from(format!("{}x", "é".repeat(INLINE_NAME / 2)));
        assert_eq!(exact.len(), INLINE_NAME);
        let r = RejectionName::new(&exact).reject(State::ForcedOpen, None);
        assert_eq!(Arc::strong_count(&exact), 1);
        assert_eq!(r.circuit_name(), &*exact);
        let empty: Arc<str> = Arc::from("");
        assert_eq!(
            RejectionName::new(&empty)
                .reject(State::Open, None)
                .circuit_name(),
            ""
        );

        let long: Arc<str> = Arc::from("a_rather_long_circuit_name_for_a_tenant");
        let r = RejectionName::new(&long).reject(State::HalfOpen, Some(Duration::ZERO));
        assert_eq!(Arc::strong_count(&long), 2);
        assert_eq!(
            r.to_string(),
            "circuit breaker 'a_rather_long_circuit_name_for_a_tenant' is half-open, call not permitted"
        );
        assert_eq!(
            format!("{r:?}"),
            "CallNotPermitted { name: \"a_rather_long_circuit_name_for_a_tenant\", state: HalfOpen, retry_after: Some(0ns) }"
        );
        // The public constructor shares a long name too: no allocation per rejection.
        let r = CallNotPermitted::new(long.clone(), State::Open, None);
        assert_eq!(Arc::strong_count(&long), 3);
        drop(r);
    }
}
