//! Trippers: when to open (and when a half-open circuit may close).
//!
//! A tripper is a rule over the window's [`Metric`], the current state and the failure
//! streak. Rules combine with `&` and `|` (TR-8), so one expression says "after 5 failures
//! in a row, or once at least 20 calls were seen and half of them failed":
//!
//! ```
//! use fluxgate_core::trippers::{FailureRate, FailureStreak, MinRequests, TripContext, Tripper};
//! use fluxgate_core::{Metric, State};
//! use std::time::Duration;
//!
//! let t = FailureStreak::new(5) | (MinRequests::new(20) & FailureRate::new(0.5));
//! let m = Metric::new(10, 5, Duration::ZERO, &[]);
//! assert!(!t.trip(&TripContext::new(&m, State::Closed, 3)));
//! assert!(t.trip(&TripContext::new(&m, State::Closed, 5)));
//! ```
//!
//! The breaker asks its tripper only in `closed` (true → open) and `half_open` (after a
//! success: false → closed; after a failure: true → open).
//!
//! # Your own rules
//!
//! Any `Fn(&TripContext<'_>) -> bool` closure is a tripper, and a user's type implements
//! [`Tripper`] like the built-ins do. Built-ins combine with anything on their right
//! (`FailureStreak::new(5) | my_rule`); to start an expression with a closure (a foreign
//! type, so no operator can be implemented for it), wrap it with [`from_fn`] or use the
//! [`TripperExt`] methods `and`, `or` and `not`, which every tripper has:
//!
//! ```
//! use fluxgate_core::trippers::{from_fn, FailureRate, MinRequests, TripContext, Tripper, TripperExt};
//! use fluxgate_core::{Metric, State};
//! use std::time::Duration;
//!
//! let many_in_a_row = |ctx: &TripContext<'_>| ctx.consecutive_failures >= 3;
//! let a = from_fn(many_in_a_row) | (MinRequests::new(20) & FailureRate::new(0.5));
//! let b = many_in_a_row.or(MinRequests::new(20).and(FailureRate::new(0.5)));
//! let m = Metric::new(4, 0, Duration::ZERO, &[]);
//! let ctx = TripContext::new(&m, State::Closed, 3);
//! assert!(a.trip(&ctx) && b.trip(&ctx));
//! assert!(!(!from_fn(many_in_a_row)).trip(&ctx));
//! ```
//!
//! A closure cannot declare latency thresholds: a closure that reads
//! `metric.avg_duration()` needs `measure_durations(true)` on the builder, or a latency rule
//! (`AvgLatency`, `SlowRate`) elsewhere in the expression.

use std::fmt;
use std::ops::{BitAnd, BitOr, Not};
use std::sync::Arc;
use std::time::Duration;

use crate::{ConfigError, Metric, State};

/// What a tripper sees (TR-1).
///
/// ```
/// use fluxgate_core::{Metric, State, trippers::TripContext};
/// let m = Metric::default();
/// let ctx = TripContext::new(&m, State::HalfOpen, 0);
/// assert_eq!(ctx.state, State::HalfOpen);
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct TripContext<'a> {
    /// The window's aggregate.
    pub metric: &'a Metric,
    /// `closed` or `half_open`.
    pub state: State,
    /// Tracked failures in a row since the last success or transition.
    pub consecutive_failures: u64,
}

impl<'a> TripContext<'a> {
    /// Builds a context (for testing trippers).
    ///
    /// ```
    /// let m = fluxgate_core::Metric::default();
    /// let _ = fluxgate_core::trippers::TripContext::new(&m, fluxgate_core::State::Closed, 2);
    /// ```
    pub fn new(metric: &'a Metric, state: State, consecutive_failures: u64) -> Self {
        TripContext {
            metric,
            state,
            consecutive_failures,
        }
    }
}

/// A rule that says whether the circuit should be (or stay) open.
///
/// ```
/// use fluxgate_core::trippers::{TripContext, Tripper};
/// struct Never;
/// impl Tripper for Never {
///     fn trip(&self, _: &TripContext<'_>) -> bool { false }
/// }
/// let cb = fluxgate_core::CircuitBreaker::builder("x").tripper(Never).build().unwrap();
/// # let _ = cb;
/// ```
#[doc(alias = "ITripper")]
pub trait Tripper: Send + Sync + 'static {
    /// Whether the rule holds.
    fn trip(&self, ctx: &TripContext<'_>) -> bool;

    /// Checks parameters; combinators check both sides. Called by `build()`.
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

    /// Whether `trip` depends on nothing but its [`TripContext`] (no clock, no state of
    /// its own, no randomness). Then the breaker may skip asking it again when a call left
    /// the window and the streak exactly as they were: the answer could not change. Every
    /// built-in rule is stateless; the default, `false`, is always correct.
    ///
    /// ```
    /// use fluxgate_core::trippers::{FailureRate, MinRequests, Tripper};
    /// assert!((MinRequests::new(10) & FailureRate::new(0.5)).stateless());
    /// ```
    fn stateless(&self) -> bool {
        false
    }
}

/// True iff the state is `closed` (TR-2).
///
/// ```
/// use fluxgate_core::{Metric, State, trippers::{Closed, TripContext, Tripper}};
/// assert!(Closed.trip(&TripContext::new(&Metric::default(), State::Closed, 0)));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Closed;

/// True iff the state is `half_open` (TR-2).
///
/// ```
/// use fluxgate_core::{Metric, State, trippers::{HalfOpened, TripContext, Tripper}};
/// assert!(!HalfOpened.trip(&TripContext::new(&Metric::default(), State::Closed, 0)));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct HalfOpened;

impl Tripper for Closed {
    fn stateless(&self) -> bool {
        true
    }
    fn trip(&self, ctx: &TripContext<'_>) -> bool {
        ctx.state == State::Closed
    }
}
impl Tripper for HalfOpened {
    fn stateless(&self) -> bool {
        true
    }
    fn trip(&self, ctx: &TripContext<'_>) -> bool {
        ctx.state == State::HalfOpen
    }
}

/// At least `n` calls in the window (TR-3); `n ≥ 1`.
///
/// ```
/// use fluxgate_core::{Metric, State, trippers::{MinRequests, TripContext, Tripper}};
/// let m = Metric::new(20, 0, std::time::Duration::ZERO, &[]);
/// assert!(MinRequests::new(20).trip(&TripContext::new(&m, State::Closed, 0)));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct MinRequests(u64);

impl MinRequests {
    /// The rule `total ≥ n`.
    ///
    /// ```
    /// let _ = fluxgate_core::trippers::MinRequests::new(100);
    /// ```
    pub const fn new(n: u64) -> Self {
        MinRequests(n)
    }
}

impl Tripper for MinRequests {
    fn stateless(&self) -> bool {
        true
    }
    fn trip(&self, ctx: &TripContext<'_>) -> bool {
        ctx.metric.total_count >= self.0
    }
    fn validate(&self) -> Result<(), ConfigError> {
        if self.0 == 0 {
            return Err(ConfigError::new("MinRequests", "n", self.0, ">= 1"));
        }
        Ok(())
    }
}

/// A ratio threshold, reached when `part / total` is at least the ratio, the quotient
/// computed as the `f64` nearest to it (IEEE division rounds correctly), as the Python
/// library and the docs write it (TR-4, TR-6). Comparing the product `ratio · total`
/// instead is not the same: `0.28 × 25` is `7.000000000000001`, and 7 failures in 25
/// calls would not reach a 0.28 failure rate. The quotient rule is monotone and reaches
/// a ratio given as an `f64` quotient: `0.28` is reached by 7 of 25, `5.0 / 6.0` by 5 of
/// 6, `1.0 / 3.0` by 1 of 3. For a ratio written as a decimal of `k` places it agrees
/// with exact decimal arithmetic whenever `total · 10^k ≤ 2^53` (so up to 9 places for
/// every window of up to 2^22 calls); beyond that a count just below the decimal can
/// round onto it: 9 of 23 reach `0.391304347826087` although 9/23 = 0.39130434782608695….
#[derive(Debug, Clone, Copy)]
struct Ratio(f64);

impl Ratio {
    /// `part / total ≥ ratio`, with `total > 0`.
    #[inline]
    fn reached(&self, part: u64, total: u64) -> bool {
        total > 0 && part as f64 / total as f64 >= self.0
    }

    fn validate(&self, component: &'static str) -> Result<(), ConfigError> {
        let r = self.0;
        if r > 0.0 && r <= 1.0 {
            Ok(())
        } else {
            Err(ConfigError::new(component, "ratio", r, "in (0, 1]"))
        }
    }
}

/// Failures / total ≥ `ratio`, with at least one call (TR-4); ratio in (0, 1].
///
/// ```
/// use fluxgate_core::{Metric, State, trippers::{FailureRate, TripContext, Tripper}};
/// let m = Metric::new(10, 5, std::time::Duration::ZERO, &[]);
/// assert!(FailureRate::new(0.5).trip(&TripContext::new(&m, State::Closed, 0)));
/// ```
///
/// The quotient `failures / total` is compared with `ratio` (not `ratio · total` with the
/// count, which rounds the wrong way: `0.28 × 25` is `7.000000000000001`), so 7 failures
/// in 25 calls reach `FailureRate::new(0.28)`, 5 in 6 reach `5.0 / 6.0`, and 1 in 3
/// reaches `1.0 / 3.0`: both sides are the same `f64` quotient. A ratio written as a
/// decimal of `k` places is compared as that decimal whenever `total · 10^k ≤ 2^53`
/// (up to 9 places for every window of up to 2^22 calls); with more places a count just
/// below the decimal can round onto it (9 of 23 reach `0.391304347826087`).
///
/// ```
/// use fluxgate_core::{Metric, State, trippers::{FailureRate, TripContext, Tripper}};
/// let seven_of_25 = Metric::new(25, 7, std::time::Duration::ZERO, &[]);
/// assert!(FailureRate::new(0.28).trip(&TripContext::new(&seven_of_25, State::Closed, 0)));
/// let one_of_3 = Metric::new(3, 1, std::time::Duration::ZERO, &[]);
/// assert!(FailureRate::new(1.0 / 3.0).trip(&TripContext::new(&one_of_3, State::Closed, 0)));
/// let five_of_6 = Metric::new(6, 5, std::time::Duration::ZERO, &[]);
/// assert!(FailureRate::new(5.0 / 6.0).trip(&TripContext::new(&five_of_6, State::Closed, 0)));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FailureRate(Ratio);

impl FailureRate {
    /// The rule `failures / total ≥ ratio`.
    ///
    /// ```
    /// let _ = fluxgate_core::trippers::FailureRate::new(0.5);
    /// ```
    pub const fn new(ratio: f64) -> Self {
        FailureRate(Ratio(ratio))
    }
}

impl Tripper for FailureRate {
    fn stateless(&self) -> bool {
        true
    }
    fn trip(&self, ctx: &TripContext<'_>) -> bool {
        let m = ctx.metric;
        self.0.reached(m.failure_count, m.total_count)
    }
    fn validate(&self) -> Result<(), ConfigError> {
        self.0.validate("FailureRate")
    }
}

/// Average duration ≥ `threshold`, with at least one call (TR-5); threshold > 0 and a
/// whole number of microseconds (checked by `build()`).
///
/// The rule holds iff `total_duration ≥ threshold · total`, compared without rounding.
/// The windows keep each call's duration in whole microseconds, truncated, so it is the
/// average of the truncated durations that is compared: one call of 99.9996 ms does not
/// reach `AvgLatency::new(100 ms)`, and a call is never counted as slower than it was.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::{Metric, State, trippers::{AvgLatency, TripContext, Tripper}};
/// let m = Metric::new(2, 0, Duration::from_secs(4), &[]);
/// assert!(AvgLatency::new(Duration::from_secs(2)).trip(&TripContext::new(&m, State::Closed, 0)));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct AvgLatency(Duration);

impl AvgLatency {
    /// The rule `avg duration ≥ threshold`.
    ///
    /// ```
    /// let _ = fluxgate_core::trippers::AvgLatency::new(std::time::Duration::from_secs(2));
    /// ```
    pub const fn new(threshold: Duration) -> Self {
        AvgLatency(threshold)
    }
}

impl Tripper for AvgLatency {
    fn stateless(&self) -> bool {
        true
    }
    fn trip(&self, ctx: &TripContext<'_>) -> bool {
        // total_duration / total ≥ threshold, without rounding the average: total_duration
        // ≥ threshold · total in nanoseconds (a product past u128 is beyond any total
        // duration). The window's total_duration is a sum of truncated microseconds.
        let m = ctx.metric;
        m.total_count > 0
            && self
                .0
                .as_nanos()
                .checked_mul(u128::from(m.total_count))
                .is_some_and(|need| m.total_duration.as_nanos() >= need)
    }
    fn validate(&self) -> Result<(), ConfigError> {
        whole_micros("AvgLatency", self.0)
    }
    fn needs_durations(&self) -> bool {
        true
    }
}

/// Share of calls at least as slow as `threshold` ≥ `ratio` (TR-6); ratio in (0, 1],
/// threshold > 0 and a whole number of microseconds (checked by `build()`, so that both
/// windows, which keep durations in whole microseconds, count a call of exactly
/// `threshold` as slow, M-2). Each `SlowRate` reads only its own threshold's count.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::{Metric, State, trippers::{SlowRate, TripContext, Tripper}};
/// let t = Duration::from_secs(1);
/// let m = Metric::new(10, 0, Duration::ZERO, &[(t, 3)]);
/// assert!(SlowRate::new(0.3, t).trip(&TripContext::new(&m, State::Closed, 0)));
/// ```
///
/// The ratio is compared with the quotient `slow / total`, as for [`FailureRate`].
#[derive(Debug, Clone, Copy)]
pub struct SlowRate {
    ratio: Ratio,
    threshold: Duration,
}

impl SlowRate {
    /// The rule `slow(threshold) / total ≥ ratio`.
    ///
    /// ```
    /// let _ = fluxgate_core::trippers::SlowRate::new(0.3, std::time::Duration::from_secs(1));
    /// ```
    pub const fn new(ratio: f64, threshold: Duration) -> Self {
        SlowRate {
            ratio: Ratio(ratio),
            threshold,
        }
    }
}

impl Tripper for SlowRate {
    fn stateless(&self) -> bool {
        true
    }
    fn trip(&self, ctx: &TripContext<'_>) -> bool {
        let m = ctx.metric;
        m.total_count > 0
            && self
                .ratio
                .reached(m.slow_count(self.threshold), m.total_count)
    }
    fn validate(&self) -> Result<(), ConfigError> {
        self.ratio.validate("SlowRate")?;
        whole_micros("SlowRate", self.threshold)
    }
    fn slow_thresholds(&self, out: &mut Vec<Duration>) {
        if !out.contains(&self.threshold) {
            out.push(self.threshold);
        }
    }
    fn needs_durations(&self) -> bool {
        true
    }
}

/// Checks a latency threshold: greater than zero and a whole number of microseconds, the
/// unit the windows keep durations in (a threshold of 1.0005 ms would make a call of
/// exactly 1.0005 ms slow in one window and not in the other, M-2).
fn whole_micros(component: &'static str, threshold: Duration) -> Result<(), ConfigError> {
    ConfigError::positive(component, "threshold", threshold)?;
    if threshold.subsec_nanos() % 1000 != 0 {
        return Err(ConfigError::new(
            component,
            "threshold",
            format_args!("{threshold:?}"),
            "a whole number of microseconds",
        ));
    }
    Ok(())
}

/// At least `n` tracked failures in a row (TR-7); `n ≥ 1`.
///
/// ```
/// use fluxgate_core::{Metric, State, trippers::{FailureStreak, TripContext, Tripper}};
/// assert!(FailureStreak::new(3).trip(&TripContext::new(&Metric::default(), State::Closed, 3)));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct FailureStreak(u64);

impl FailureStreak {
    /// The rule `consecutive failures ≥ n`.
    ///
    /// ```
    /// let _ = fluxgate_core::trippers::FailureStreak::new(5);
    /// ```
    pub const fn new(n: u64) -> Self {
        FailureStreak(n)
    }
}

impl Tripper for FailureStreak {
    fn stateless(&self) -> bool {
        true
    }
    fn trip(&self, ctx: &TripContext<'_>) -> bool {
        ctx.consecutive_failures >= self.0
    }
    fn validate(&self) -> Result<(), ConfigError> {
        if self.0 == 0 {
            return Err(ConfigError::new("FailureStreak", "n", self.0, ">= 1"));
        }
        Ok(())
    }
}

/// Any `Fn(&TripContext<'_>) -> bool` is a tripper.
///
/// ```
/// use fluxgate_core::{CircuitBreaker, trippers::TripContext};
/// let cb = CircuitBreaker::builder("x")
///     .tripper(|ctx: &TripContext<'_>| ctx.consecutive_failures >= 2)
///     .build()
///     .unwrap();
/// # let _ = cb;
/// ```
impl<F> Tripper for F
where
    F: Fn(&TripContext<'_>) -> bool + Send + Sync + 'static,
{
    fn trip(&self, ctx: &TripContext<'_>) -> bool {
        self(ctx)
    }
}

macro_rules! forward_tripper {
    ($(#[$m:meta])* [$($g:tt)*] $t:ty) => {
        $(#[$m])*
        impl<$($g)*> Tripper for $t {
            #[inline]
            fn trip(&self, ctx: &TripContext<'_>) -> bool {
                (**self).trip(ctx)
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
            fn stateless(&self) -> bool {
                (**self).stateless()
            }
        }
    };
}
forward_tripper!(
    /// A shared tripper is a tripper.
    [T: Tripper + ?Sized] Arc<T>
);
forward_tripper!(
    /// A boxed tripper is a tripper (for rules chosen at run time).
    [] Box<dyn Tripper>
);

/// A closure (or any tripper) wrapped so that it can start an expression with `&`, `|`
/// and `!`: `from_fn(|ctx| …) & FailureRate::new(0.5)`.
///
/// ```
/// use fluxgate_core::trippers::{from_fn, FailureRate, TripContext};
/// let t = from_fn(|ctx: &TripContext<'_>| ctx.metric.total_count >= 10) & FailureRate::new(0.5);
/// # let _ = t;
/// ```
pub fn from_fn<F>(rule: F) -> FromFn<F>
where
    F: Fn(&TripContext<'_>) -> bool + Send + Sync + 'static,
{
    FromFn(rule)
}

/// A tripper made by [`from_fn`]; it has the operators of the built-ins.
#[derive(Clone, Copy)]
pub struct FromFn<F>(F);

impl<F> fmt::Debug for FromFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FromFn")
    }
}

impl<F> Tripper for FromFn<F>
where
    F: Fn(&TripContext<'_>) -> bool + Send + Sync + 'static,
{
    fn trip(&self, ctx: &TripContext<'_>) -> bool {
        (self.0)(ctx)
    }
}

/// `and`, `or` and `not` for every tripper: what the operators do, for types the
/// operators cannot be implemented on (closures, and a user's types that do not implement
/// them).
///
/// ```
/// use fluxgate_core::trippers::{FailureRate, TripContext, Tripper, TripperExt};
/// use fluxgate_core::{Metric, State};
/// let rule = (|ctx: &TripContext<'_>| ctx.metric.total_count >= 2).and(FailureRate::new(0.5));
/// let m = Metric::new(2, 1, std::time::Duration::ZERO, &[]);
/// assert!(rule.trip(&TripContext::new(&m, State::Closed, 0)));
/// assert!(!rule.not().trip(&TripContext::new(&m, State::Closed, 0)));
/// ```
pub trait TripperExt: Tripper + Sized {
    /// `self & other`: both hold (short-circuits left to right).
    fn and<B: Tripper>(self, other: B) -> And<Self, B> {
        And(self, other)
    }
    /// `self | other`: either holds (short-circuits left to right).
    fn or<B: Tripper>(self, other: B) -> Or<Self, B> {
        Or(self, other)
    }
    /// `!self`: the opposite.
    #[allow(clippy::should_implement_trait)]
    fn not(self) -> NotTripper<Self> {
        NotTripper(self)
    }
}

impl<T: Tripper> TripperExt for T {}

/// `a & b` (short-circuits left to right).
#[derive(Debug, Clone, Copy)]
pub struct And<A, B>(pub A, pub B);

/// `a | b` (short-circuits left to right).
#[derive(Debug, Clone, Copy)]
pub struct Or<A, B>(pub A, pub B);

macro_rules! combinator {
    ($name:ident, $op:tt) => {
        impl<A: Tripper, B: Tripper> Tripper for $name<A, B> {
            fn trip(&self, ctx: &TripContext<'_>) -> bool {
                self.0.trip(ctx) $op self.1.trip(ctx)
            }
            fn validate(&self) -> Result<(), ConfigError> {
                self.0.validate()?;
                self.1.validate()
            }
            fn slow_thresholds(&self, out: &mut Vec<Duration>) {
                self.0.slow_thresholds(out);
                self.1.slow_thresholds(out);
            }
            fn needs_durations(&self) -> bool {
                self.0.needs_durations() || self.1.needs_durations()
            }
            fn stateless(&self) -> bool {
                self.0.stateless() && self.1.stateless()
            }
        }
    };
}
combinator!(And, &&);
combinator!(Or, ||);

/// `!a`: holds when `a` does not; `!!a` behaves as `a`. Durations and slow thresholds
/// are those of `a`.
///
/// ```
/// use fluxgate_core::{Metric, State, trippers::{Closed, TripContext, Tripper}};
/// assert!((!Closed).trip(&TripContext::new(&Metric::default(), State::HalfOpen, 0)));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct NotTripper<A>(pub A);

impl<A: Tripper> Tripper for NotTripper<A> {
    fn trip(&self, ctx: &TripContext<'_>) -> bool {
        !self.0.trip(ctx)
    }
    fn validate(&self) -> Result<(), ConfigError> {
        self.0.validate()
    }
    fn slow_thresholds(&self, out: &mut Vec<Duration>) {
        self.0.slow_thresholds(out)
    }
    fn needs_durations(&self) -> bool {
        self.0.needs_durations()
    }
    fn stateless(&self) -> bool {
        self.0.stateless()
    }
}

macro_rules! tripper_ops {
    ($([$($g:tt)*] $t:ty),* $(,)?) => {$(
        impl<$($g)* Rhs: Tripper> BitAnd<Rhs> for $t {
            type Output = And<Self, Rhs>;
            fn bitand(self, rhs: Rhs) -> Self::Output { And(self, rhs) }
        }
        impl<$($g)* Rhs: Tripper> BitOr<Rhs> for $t {
            type Output = Or<Self, Rhs>;
            fn bitor(self, rhs: Rhs) -> Self::Output { Or(self, rhs) }
        }
        impl<$($g)*> Not for $t {
            type Output = NotTripper<Self>;
            fn not(self) -> Self::Output { NotTripper(self) }
        }
    )*};
}

tripper_ops!(
    [] Closed,
    [] HalfOpened,
    [] MinRequests,
    [] FailureRate,
    [] AvgLatency,
    [] SlowRate,
    [] FailureStreak,
    [A: Tripper, B: Tripper,] And<A, B>,
    [A: Tripper, B: Tripper,] Or<A, B>,
    [A: Tripper,] NotTripper<A>,
    [F: Fn(&TripContext<'_>) -> bool + Send + Sync + 'static,] FromFn<F>,
);
