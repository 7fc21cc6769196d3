//! [`LogListener`]: every transition as one `tracing` event.
//!
//! A breaker that opens at 3 a.m. should leave a line in the logs that says which circuit,
//! from which state and to which: that is the cheapest alert there is, and the one that is
//! still there when the dashboards have rolled over. The listener writes through `tracing`
//! so it lands wherever the application's subscriber already sends its logs (stdout, JSON
//! files, OpenTelemetry), with the circuit and both states as structured fields that can be
//! filtered and aggregated on (LG-1).
//!
//! # Why the target is real, not a field
//!
//! `tracing` wants an event's target to be a compile-time constant, yet a caller may want
//! breaker events under its own target (`payments::breaker`) so that the usual filter
//! (`RUST_LOG=payments=warn`, `Targets`, `EnvFilter`) selects them. A fixed target with a
//! `target` *field* would not be filtered that way, so this listener builds a real callsite
//! for each (target, level) pair it needs, once, and keeps it for the life of the process:
//! subscribers see an ordinary event whose `target()` is the one asked for. At most five
//! callsites (one per level) exist per distinct target, however many listeners are built.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use tracing::callsite::{Callsite, DefaultCallsite, Identifier};
use tracing::field::{FieldSet, Value};
use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
use tracing::metadata::Kind;
use tracing::subscriber::Interest;
use tracing::{Event, Metadata};

pub use tracing::Level;

use super::{AsyncListener, Listener, ListenerError, ListenerFuture};
use crate::{Signal, State};

/// The target of the events when none is set: `fluxgate_core::listeners::log`.
///
/// ```
/// assert_eq!(fluxgate_core::listeners::log::DEFAULT_TARGET, "fluxgate::listeners::log");
/// ```
pub const DEFAULT_TARGET: &str = "fluxgate::listeners::log";

const EVENT_NAME: &str = "circuit breaker transition";
const FIELDS: &[&str] = &["message", "circuit", "old_state", "new_state"];

/// Writes one `tracing` event per transition (LG-1).
///
/// The message is `Circuit Breaker 'NAME' transitioned from OLD to NEW` with the lowercase
/// state names of [`State::as_str`]; the fields `circuit`, `old_state` and `new_state` carry
/// the same values for structured logging. Control characters in the name (a newline, a
/// terminal escape) are escaped in the message, as `\n` or `\u{1b}`, so a circuit name
/// cannot forge a log line (R-6); the `circuit` field carries the name as given, for exact
/// filtering, and subscribers quote or escape field values themselves. The level depends on the state entered: `WARN`
/// for `open` and `forced_open`, `INFO` for the others, and each can be changed with
/// [`level`](LogListener::level). The target is [`DEFAULT_TARGET`] unless
/// [`target`](LogListener::target) names another.
///
/// It is a [`Listener`] for [`CircuitBreaker`](crate::CircuitBreaker) and an
/// [`AsyncListener`] for the async breaker; one instance may serve many breakers (L-5).
///
/// ```
/// use fluxgate_core::listeners::log::{Level, LogListener};
/// use fluxgate_core::{CircuitBreaker, State};
///
/// let log = LogListener::new()
///     .target("payments::breaker")
///     .level(State::HalfOpen, Level::DEBUG);
/// let cb = CircuitBreaker::builder("payment_api").listener(log).build().unwrap();
/// cb.force_open(); // WARN payments::breaker: Circuit Breaker 'payment_api' transitioned from closed to forced_open
/// ```
#[derive(Clone)]
pub struct LogListener {
    target: Arc<str>,
    levels: [Level; 6],
    callsites: [&'static TransitionCallsite; 6],
}

impl LogListener {
    /// A listener with the default levels (WARN for `open`/`forced_open`, INFO otherwise)
    /// and the target [`DEFAULT_TARGET`].
    ///
    /// ```
    /// let log = fluxgate_core::listeners::log::LogListener::new();
    /// # let _ = log;
    /// ```
    pub fn new() -> LogListener {
        let levels = State::ALL.map(default_level);
        let target: Arc<str> = Arc::from(DEFAULT_TARGET);
        LogListener {
            callsites: resolve(&target, &levels),
            target,
            levels,
        }
    }

    /// Logs transitions *into* `state` at `level` instead of the default.
    ///
    /// ```
    /// use fluxgate_core::listeners::log::{Level, LogListener};
    /// use fluxgate_core::State;
    /// // Recoveries deserve attention too; probes are noise.
    /// let log = LogListener::new()
    ///     .level(State::Closed, Level::WARN)
    ///     .level(State::HalfOpen, Level::DEBUG)
    ///     .level(State::Open, Level::ERROR);
    /// # let _ = log;
    /// ```
    pub fn level(mut self, state: State, level: Level) -> LogListener {
        let i = state as usize;
        self.levels[i] = level;
        self.callsites[i] = intern(&self.target, level);
        self
    }

    /// Emits the events under `target` instead of [`DEFAULT_TARGET`].
    ///
    /// The target is a real `tracing` target: filters by target (`Targets`, `EnvFilter`,
    /// `RUST_LOG`) select these events, and formatters print it.
    ///
    /// ```
    /// use fluxgate_core::listeners::log::LogListener;
    /// let log = LogListener::new().target("checkout::breakers");
    /// # let _ = log;
    /// ```
    pub fn target(mut self, target: &str) -> LogListener {
        self.target = Arc::from(target);
        self.callsites = resolve(&self.target, &self.levels);
        self
    }

    fn log(&self, signal: &Signal) {
        self.callsites[signal.new_state as usize].emit(signal);
    }
}

impl Default for LogListener {
    fn default() -> LogListener {
        LogListener::new()
    }
}

impl fmt::Debug for LogListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogListener")
            .field("target", &&*self.target)
            .field("levels", &Levels(&self.levels))
            .finish()
    }
}

struct Levels<'a>(&'a [Level; 6]);

impl fmt::Debug for Levels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(State::ALL.iter().map(|s| (s.as_str(), self.0[*s as usize])))
            .finish()
    }
}

impl Listener for LogListener {
    fn on_signal(&self, signal: &Signal) -> Result<(), ListenerError> {
        self.log(signal);
        Ok(())
    }
}

impl AsyncListener for LogListener {
    fn on_signal(&self, signal: Signal) -> ListenerFuture {
        // Logging is quick and must keep transition order, so it happens here, not in the
        // future.
        self.log(&signal);
        Box::pin(std::future::ready(Ok(())))
    }
}

fn default_level(state: State) -> Level {
    match state {
        State::Open | State::ForcedOpen => Level::WARN,
        _ => Level::INFO,
    }
}

fn resolve(target: &str, levels: &[Level; 6]) -> [&'static TransitionCallsite; 6] {
    levels.map(|level| intern(target, level))
}

/// A `tracing` callsite whose target is chosen at run time.
///
/// Subscribers key their per-callsite state on the callsite's address, so each one lives
/// for the rest of the process; [`intern`] makes sure there is only one per (target, level).
struct TransitionCallsite {
    target: &'static str,
    level: Level,
    meta: OnceLock<Metadata<'static>>,
    interest: AtomicU8,
}

const INTEREST_NEVER: u8 = 0;
const INTEREST_SOMETIMES: u8 = 1;
const INTEREST_ALWAYS: u8 = 2;

// Stands in for the metadata only in the instant between a callsite's creation and the
// `set` that follows it in `intern`, before the callsite is registered or used.
static FALLBACK_CALLSITE: DefaultCallsite = DefaultCallsite::new(&FALLBACK_META);
static FALLBACK_META: Metadata<'static> = Metadata::new(
    EVENT_NAME,
    DEFAULT_TARGET,
    Level::INFO,
    None,
    None,
    None,
    FieldSet::new(FIELDS, Identifier(&FALLBACK_CALLSITE)),
    Kind::EVENT,
);

static CALLSITES: Mutex<Vec<&'static TransitionCallsite>> = Mutex::new(Vec::new());

/// The one callsite for (`target`, `level`), created and registered on first use.
fn intern(target: &str, level: Level) -> &'static TransitionCallsite {
    let mut all = CALLSITES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(cs) = all
        .iter()
        .find(|cs| cs.target == target && cs.level == level)
    {
        return cs;
    }
    // Bounded leak: one small allocation per distinct (target, level), ever.
    let target: &'static str = match all.iter().find(|cs| cs.target == target) {
        Some(cs) => cs.target,
        None => Box::leak(Box::<str>::from(target)),
    };
    let cs: &'static TransitionCallsite = Box::leak(Box::new(TransitionCallsite {
        target,
        level,
        meta: OnceLock::new(),
        interest: AtomicU8::new(INTEREST_SOMETIMES),
    }));
    let _ = cs.meta.set(Metadata::new(
        EVENT_NAME,
        target,
        level,
        Some(file!()),
        Some(line!()),
        Some(module_path!()),
        FieldSet::new(FIELDS, Identifier(cs)),
        Kind::EVENT,
    ));
    tracing::callsite::register(cs);
    all.push(cs);
    cs
}

impl Callsite for TransitionCallsite {
    fn set_interest(&self, interest: Interest) {
        let value = if interest.is_never() {
            INTEREST_NEVER
        } else if interest.is_always() {
            INTEREST_ALWAYS
        } else {
            INTEREST_SOMETIMES
        };
        self.interest.store(value, Ordering::Relaxed);
    }

    fn metadata(&self) -> &Metadata<'_> {
        self.meta.get().unwrap_or(&FALLBACK_META)
    }
}

impl TransitionCallsite {
    /// Does what `tracing::event!` does for a static callsite.
    fn emit(&'static self, signal: &Signal) {
        let Some(meta) = self.meta.get() else { return };
        let level = *meta.level();
        if level > STATIC_MAX_LEVEL || level > LevelFilter::current() {
            return;
        }
        let interest = self.interest.load(Ordering::Relaxed);
        if interest == INTEREST_NEVER {
            return;
        }
        if interest != INTEREST_ALWAYS && !tracing::dispatcher::get_default(|d| d.enabled(meta)) {
            return;
        }
        let fields = meta.fields();
        let mut names = fields.iter();
        let (Some(message), Some(circuit), Some(old_state), Some(new_state)) =
            (names.next(), names.next(), names.next(), names.next())
        else {
            return;
        };
        let name: &str = &signal.circuit_name;
        let (old, new) = (signal.old_state.as_str(), signal.new_state.as_str());
        // R-6: the message escapes control characters in the name; the structured
        // `circuit` field keeps the name as given (subscribers quote or escape field values).
        let shown = crate::error::escaped(name);
        let text = format_args!("Circuit Breaker '{shown}' transitioned from {old} to {new}");
        let values: [(&tracing::field::Field, Option<&dyn Value>); 4] = [
            (&message, Some(&text)),
            (&circuit, Some(&name)),
            (&old_state, Some(&old)),
            (&new_state, Some(&new)),
        ];
        Event::dispatch(meta, &fields.value_set(&values));
    }
}
