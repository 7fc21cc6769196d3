//! Recovery rules: when a half-open circuit has seen enough probes to close, or to open
//! again.
//!
//! Why a component of its own? A tripper answers one question, "is the dependency
//! unhealthy?", with a boolean, and in `half_open` the breaker reads that boolean through
//! the outcome just recorded (SM-9): after a success `false` closes and `true` stays, after
//! a failure `true` reopens and `false` stays. That rule closes a circuit on its first
//! good probe, and a successful probe can never reopen it, however bad the probes before
//! it were. Recovering well needs a three-way answer — *stay*, *close*, *open* — and a
//! count of the probes, so the recovery rule is its own component with its own
//! [`Verdict`], set with [`Builder::recovery`](crate::Builder::recovery):
//!
//! | rule | closes | reopens |
//! |---|---|---|
//! | [`ByTripper`] (default, SM-9) | on a success the tripper does not hold | on a failure the tripper holds |
//! | [`Successes`]`(n)` | on a success the tripper does not hold, once `n` probes succeeded | as `ByTripper` |
//! | [`Probes`]`(n, rule)` | when the `n`-th probe is recorded and `rule` does not hold over the probes | when the `n`-th probe is recorded and `rule` holds |
//!
//! `Probes` is Resilience4j's `permittedNumberOfCallsInHalfOpenState`: wait for `n`
//! probes, then judge them. Its `rule` is any tripper expression (`FailureRate`,
//! `SlowRate`, combined with `&` and `|`), read over the window, which in `half_open`
//! holds only this period's probes (the window is cleared on every transition, SM-14).
//! The flap-free configuration the docs recommend:
//!
//! ```
//! use std::time::Duration;
//! use fluxgate_core::{CircuitBreaker, State, clock::ManualClock};
//! use fluxgate_core::recovery::Probes;
//! use fluxgate_core::retries::Always;
//! use fluxgate_core::trippers::{FailureRate, FailureStreak, SlowRate};
//!
//! let cb = CircuitBreaker::builder("search")
//!     .tripper(FailureStreak::new(1))
//!     .retry(Always)
//!     .permit(fluxgate_core::permits::All)
//!     .recovery(Probes::new(5, FailureRate::new(0.5) | SlowRate::new(0.5, Duration::from_secs(1))))
//!     .clock(ManualClock::new())
//!     .build()?;
//! cb.admit().unwrap().failure();
//! assert_eq!(cb.info().state, State::Open);
//! for _ in 0..4 {
//!     cb.admit().unwrap().success(); // one lucky probe no longer closes it
//!     assert_eq!(cb.info().state, State::HalfOpen);
//! }
//! cb.admit().unwrap().success(); // the fifth probe: 0 of 5 failed, none slow
//! assert_eq!(cb.info().state, State::Closed);
//! # Ok::<(), fluxgate_core::ConfigError>(())
//! ```
//!
//! Each rule is a plain value with simple parameters, so a configuration file writes it
//! the way it writes a tripper: `Successes(3)`, `Probes(10, FailureRate(0.5) | SlowRate(0.5, 1s))`.

use std::time::Duration;

use crate::trippers::Tripper;
use crate::{ConfigError, Metric};

/// The most probes a rule may wait for: the breaker counts the probes of a half-open period
/// in 16 bits (a period of more probes than that is a closed circuit by another name).
pub const MAX_PROBES: u64 = 0xFFFF;

/// What a half-open circuit does after a probe was recorded.
///
/// ```
/// use fluxgate_core::recovery::Verdict;
/// assert_ne!(Verdict::Stay, Verdict::Close);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Stay half-open: keep probing.
    Stay,
    /// Close the circuit: full traffic again.
    Close,
    /// Open the circuit again (`reopens` += 1).
    Open,
}

/// What a recovery rule sees after each recorded probe.
///
/// ```
/// use fluxgate_core::{Metric, recovery::RecoveryContext};
/// let m = Metric::default();
/// let ctx = RecoveryContext::new(&m, false, false, 1, 1, 0);
/// assert_eq!(ctx.successes, 1);
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RecoveryContext<'a> {
    /// The window's aggregate: in `half_open`, this period's probes only (SM-14).
    pub metric: &'a Metric,
    /// Whether the probe just recorded was a tracked failure.
    pub failed: bool,
    /// The breaker's tripper, asked with the state `half_open` (SM-9).
    pub tripped: bool,
    /// Probes recorded in this half-open period, this one included (at most [`MAX_PROBES`]).
    pub probes: u64,
    /// Of those, the successes.
    pub successes: u64,
    /// Tracked failures in a row.
    pub consecutive_failures: u64,
}

impl<'a> RecoveryContext<'a> {
    /// Builds a context (for testing rules).
    ///
    /// ```
    /// let m = fluxgate_core::Metric::default();
    /// let ctx = fluxgate_core::recovery::RecoveryContext::new(&m, true, true, 2, 1, 1);
    /// assert!(ctx.failed && ctx.tripped);
    /// ```
    pub fn new(
        metric: &'a Metric,
        failed: bool,
        tripped: bool,
        probes: u64,
        successes: u64,
        consecutive_failures: u64,
    ) -> Self {
        RecoveryContext {
            metric,
            failed,
            tripped,
            probes,
            successes,
            consecutive_failures,
        }
    }
}

/// Decides, after each recorded probe, whether a half-open circuit stays, closes or opens.
///
/// ```
/// use fluxgate_core::recovery::{Recovery, RecoveryContext, Verdict};
/// /// Closes after two probes whatever they said; a failure reopens.
/// struct TwoStrikes;
/// impl Recovery for TwoStrikes {
///     fn decide(&self, ctx: &RecoveryContext<'_>) -> Verdict {
///         match (ctx.failed, ctx.probes) {
///             (true, _) => Verdict::Open,
///             (false, n) if n >= 2 => Verdict::Close,
///             _ => Verdict::Stay,
///         }
///     }
/// }
/// let cb = fluxgate_core::CircuitBreaker::builder("x").recovery(TwoStrikes).build().unwrap();
/// # let _ = cb;
/// ```
pub trait Recovery: Send + Sync + 'static {
    /// The verdict after a recorded probe (untracked errors record nothing and are not
    /// shown to the rule).
    fn decide(&self, ctx: &RecoveryContext<'_>) -> Verdict;

    /// Checks parameters; called by `build()`.
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }

    /// Adds the latency thresholds whose slow counts this rule reads (M-3).
    fn slow_thresholds(&self, out: &mut Vec<Duration>) {
        let _ = out;
    }

    /// Whether this rule reads call durations (so the breaker must time calls).
    fn needs_durations(&self) -> bool {
        false
    }
}

/// The tripper decides (SM-9), as in the Python library: the default.
///
/// After a success, a tripper that does not hold closes the circuit and one that holds
/// keeps it half-open; after a failure, a tripper that holds reopens it and one that does
/// not keeps it half-open. With the default tripper the first successful probe closes.
///
/// ```
/// use fluxgate_core::{Metric, recovery::{ByTripper, Recovery, RecoveryContext, Verdict}};
/// let m = Metric::default();
/// assert_eq!(ByTripper.decide(&RecoveryContext::new(&m, false, false, 1, 1, 0)), Verdict::Close);
/// assert_eq!(ByTripper.decide(&RecoveryContext::new(&m, true, true, 1, 0, 1)), Verdict::Open);
/// assert_eq!(ByTripper.decide(&RecoveryContext::new(&m, true, false, 1, 0, 1)), Verdict::Stay);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ByTripper;

impl Recovery for ByTripper {
    #[inline]
    fn decide(&self, ctx: &RecoveryContext<'_>) -> Verdict {
        match (ctx.failed, ctx.tripped) {
            (false, false) => Verdict::Close,
            (true, true) => Verdict::Open,
            _ => Verdict::Stay,
        }
    }
}

/// Close only once `n` probes of this half-open period succeeded; `n` in 1..=65535.
///
/// Everything else is [`ByTripper`]'s: a failure reopens the circuit when the tripper
/// holds, and a success closes it only when the tripper does not hold — and, now, only
/// from the `n`-th successful probe on. The successes need not be in a row (a tripper
/// such as `HalfOpened & FailureStreak(2)` says how many failures are too many).
/// `Successes(1)` is `ByTripper`.
///
/// ```
/// use fluxgate_core::{Metric, recovery::{Recovery, RecoveryContext, Successes, Verdict}};
/// let m = Metric::default();
/// let after = |successes| RecoveryContext::new(&m, false, false, successes, successes, 0);
/// assert_eq!(Successes::new(3).decide(&after(2)), Verdict::Stay);
/// assert_eq!(Successes::new(3).decide(&after(3)), Verdict::Close);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Successes(u64);

impl Successes {
    /// The rule "close after `n` successful probes".
    ///
    /// ```
    /// let _ = fluxgate_core::recovery::Successes::new(5);
    /// ```
    pub const fn new(n: u64) -> Self {
        Successes(n)
    }
}

fn validate_probes(component: &'static str, n: u64) -> Result<(), ConfigError> {
    if n == 0 || n > MAX_PROBES {
        return Err(ConfigError::new(component, "n", n, "in 1..=65535"));
    }
    Ok(())
}

impl Recovery for Successes {
    fn decide(&self, ctx: &RecoveryContext<'_>) -> Verdict {
        match ByTripper.decide(ctx) {
            Verdict::Close if ctx.successes < self.0 => Verdict::Stay,
            v => v,
        }
    }
    fn validate(&self) -> Result<(), ConfigError> {
        validate_probes("Successes", self.0)
    }
}

/// Wait for `n` probes, then judge them with `rule`: it holds → open again, it does not →
/// close (Resilience4j's `permittedNumberOfCallsInHalfOpenState`); `n` in 1..=65535.
///
/// Until `n` probes of this half-open period were recorded the circuit stays half-open,
/// whatever they said (the breaker's tripper is not asked). The probe that makes `n`
/// decides, with `rule` read over the window — which in `half_open` holds this period's
/// probes only (SM-14), so give the breaker a window of at least `n` calls (a
/// `CountWindow` smaller than `n` judges its last probes only; a `TimeWindow` the probes of
/// its last seconds). Later probes of the same period (in flight when it was decided) find
/// a new state and are not recorded (SM-17).
///
/// `rule` is any tripper expression: `FailureRate(0.5) | SlowRate(0.5, 1s)` opens again
/// when half of the probes failed or were slow.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::{Metric, recovery::{Probes, Recovery, RecoveryContext, Verdict}};
/// use fluxgate_core::trippers::{FailureRate, SlowRate};
/// let t = Duration::from_millis(100);
/// let rule = Probes::new(4, FailureRate::new(0.5) | SlowRate::new(0.5, t));
/// let three = Metric::new(3, 0, Duration::ZERO, &[(t, 0)]);
/// assert_eq!(rule.decide(&RecoveryContext::new(&three, false, false, 3, 3, 0)), Verdict::Stay);
/// let one_failed = Metric::new(4, 1, Duration::ZERO, &[(t, 1)]);
/// assert_eq!(rule.decide(&RecoveryContext::new(&one_failed, true, false, 4, 3, 1)), Verdict::Close);
/// let two_slow = Metric::new(4, 0, Duration::ZERO, &[(t, 2)]);
/// assert_eq!(rule.decide(&RecoveryContext::new(&two_slow, false, false, 4, 4, 0)), Verdict::Open);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Probes<T> {
    n: u64,
    rule: T,
}

impl<T: Tripper> Probes<T> {
    /// The rule "after `n` probes, open again if `rule` holds over them, else close".
    ///
    /// ```
    /// let _ = fluxgate_core::recovery::Probes::new(10, fluxgate_core::trippers::FailureRate::new(0.5));
    /// ```
    pub const fn new(n: u64, rule: T) -> Self {
        Probes { n, rule }
    }
}

impl<T: Tripper> Recovery for Probes<T> {
    fn decide(&self, ctx: &RecoveryContext<'_>) -> Verdict {
        if ctx.probes < self.n {
            return Verdict::Stay;
        }
        let judged = crate::trippers::TripContext::new(
            ctx.metric,
            crate::State::HalfOpen,
            ctx.consecutive_failures,
        );
        if self.rule.trip(&judged) {
            Verdict::Open
        } else {
            Verdict::Close
        }
    }
    fn validate(&self) -> Result<(), ConfigError> {
        validate_probes("Probes", self.n)?;
        self.rule.validate()
    }
    fn slow_thresholds(&self, out: &mut Vec<Duration>) {
        self.rule.slow_thresholds(out);
    }
    fn needs_durations(&self) -> bool {
        self.rule.needs_durations()
    }
}

impl<R: Recovery + ?Sized> Recovery for Box<R> {
    fn decide(&self, ctx: &RecoveryContext<'_>) -> Verdict {
        (**self).decide(ctx)
    }
    fn validate(&self) -> Result<(), ConfigError> {
        (**self).validate()
    }
    fn slow_thresholds(&self, out: &mut Vec<Duration>) {
        (**self).slow_thresholds(out)
    }
    fn needs_durations(&self) -> bool {
        (**self).needs_durations()
    }
}
