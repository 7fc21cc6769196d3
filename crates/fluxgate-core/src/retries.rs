//! Retries: when an open circuit lets a probe through.
//!
//! An open circuit protects the dependency and the caller, but it must try again at some
//! point. A retry policy answers, for the time since the circuit opened and the number of
//! times it re-opened from `half_open`, how long is left until a probe may go through.
//! That answer is also what a rejection reports as `retry_after`.
//!
//! ```
//! use std::time::Duration;
//! use fluxgate_core::retries::{Backoff, Retry, RetryContext};
//! let b = Backoff::new(Duration::from_secs(10)).max(Duration::from_secs(30));
//! assert_eq!(b.wait(&RetryContext::new(Duration::ZERO, 1)), Some(Duration::from_secs(20)));
//! ```
//!
//! The built-in policies never panic for a configuration that `build()` accepted (R-3):
//! every wait saturates at `Duration::MAX` instead of overflowing, whatever the duration,
//! multiplier, jitter or number of re-openings. `Cooldown::new(Duration::MAX)` is a valid
//! way to say "only a manual reset closes this circuit, but report a `retry_after`".
//!
//! ```
//! use std::time::Duration;
//! use fluxgate_core::retries::{Backoff, Cooldown, Retry, RetryContext};
//! let ctx = RetryContext::new(Duration::ZERO, u32::MAX).with_seed(7);
//! let c = Cooldown::new(Duration::MAX).jitter(0.5);
//! assert!(c.wait(&ctx).unwrap() > Duration::from_secs(1 << 62));
//! let b = Backoff::new(Duration::from_secs(1)).multiplier(f64::MAX).max(Duration::MAX).jitter(0.9);
//! assert!(b.wait(&ctx).unwrap() > Duration::from_secs(1 << 60));
//! ```

use std::time::Duration;

use crate::ConfigError;

/// What a retry policy sees.
///
/// ```
/// use std::time::Duration;
/// let ctx = fluxgate_core::retries::RetryContext::new(Duration::from_secs(3), 2);
/// assert_eq!(ctx.reopens, 2);
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RetryContext {
    /// Time since the circuit entered `open`.
    pub elapsed: Duration,
    /// How many times the circuit went from `half_open` back to `open` since it was last
    /// closed.
    pub reopens: u32,
    /// A random value fixed for the current open period, for jitter that does not change
    /// from one call to the next.
    pub seed: u64,
}

impl RetryContext {
    /// A context with seed 0.
    ///
    /// ```
    /// let _ = fluxgate_core::retries::RetryContext::new(std::time::Duration::ZERO, 0);
    /// ```
    pub fn new(elapsed: Duration, reopens: u32) -> Self {
        RetryContext {
            elapsed,
            reopens,
            seed: 0,
        }
    }

    /// The same context with another jitter seed.
    ///
    /// ```
    /// let ctx = fluxgate_core::retries::RetryContext::new(std::time::Duration::ZERO, 0).with_seed(9);
    /// assert_eq!(ctx.seed, 9);
    /// ```
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// Decides when an open circuit may probe again.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::retries::{Retry, RetryContext};
/// struct AfterTen;
/// impl Retry for AfterTen {
///     fn wait(&self, _: &RetryContext) -> Option<Duration> { Some(Duration::from_secs(10)) }
/// }
/// let ctx = RetryContext::new(Duration::from_secs(4), 0);
/// assert_eq!(AfterTen.retry_after(&ctx), Some(Duration::from_secs(6)));
/// assert!(!AfterTen.should_retry(&ctx));
/// ```
#[doc(alias = "IRetry")]
pub trait Retry: Send + Sync + 'static {
    /// The total wait after opening before a probe may go; `None` for never.
    fn wait(&self, ctx: &RetryContext) -> Option<Duration>;

    /// What is left of the wait (`Some(ZERO)` once a probe may go).
    fn retry_after(&self, ctx: &RetryContext) -> Option<Duration> {
        self.wait(ctx).map(|w| w.saturating_sub(ctx.elapsed))
    }

    /// Whether a probe may go now (RT-1 … RT-3).
    fn should_retry(&self, ctx: &RetryContext) -> bool {
        self.wait(ctx).is_some_and(|w| ctx.elapsed >= w)
    }

    /// Checks parameters; called by `build()`.
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// Any `Fn(&RetryContext) -> Option<Duration>` is a retry policy: it returns the total
/// wait after opening (`None`: never probe).
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::{CircuitBreaker, retries::RetryContext};
/// let cb = CircuitBreaker::builder("x")
///     .retry(|ctx: &RetryContext| Some(Duration::from_secs(5) * (ctx.reopens + 1)))
///     .build()
///     .unwrap();
/// # let _ = cb;
/// ```
impl<F> Retry for F
where
    F: Fn(&RetryContext) -> Option<Duration> + Send + Sync + 'static,
{
    fn wait(&self, ctx: &RetryContext) -> Option<Duration> {
        self(ctx)
    }
}

/// Always lets a probe through (RT-1).
///
/// ```
/// use fluxgate_core::retries::{Always, Retry, RetryContext};
/// assert!(Always.should_retry(&RetryContext::new(std::time::Duration::ZERO, 0)));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Always;

impl Retry for Always {
    fn wait(&self, _ctx: &RetryContext) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

/// Never lets a probe through; only a manual reset leaves `open` (RT-1).
///
/// ```
/// use fluxgate_core::retries::{Never, Retry, RetryContext};
/// assert!(!Never.should_retry(&RetryContext::new(std::time::Duration::MAX, 0)));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Never;

impl Retry for Never {
    fn wait(&self, _ctx: &RetryContext) -> Option<Duration> {
        None
    }
}

/// A uniform value in [-1, 1) derived from a seed (SplitMix64).
fn unit_jitter(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    let u = (z >> 11) as f64 / (1u64 << 53) as f64;
    2.0 * u - 1.0
}

/// `secs` seconds as a `Duration`, saturating (R-3): zero for a negative value or NaN,
/// `Duration::MAX` for anything longer. `Duration::mul_f64` and `from_secs_f64` panic
/// there instead, and a wait near `Duration::MAX` (a cooldown meant as "practically
/// never", a backoff past its cap) reaches it as soon as jitter stretches it.
fn saturating_secs(secs: f64) -> Duration {
    if secs > 0.0 {
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}

/// wait·(1 + jitter·U(−1, 1)), saturating; the same value `mul_f64` gives when that does
/// not overflow.
fn apply_jitter(wait: Duration, jitter: f64, seed: u64) -> Duration {
    if jitter == 0.0 {
        return wait;
    }
    saturating_secs(wait.as_secs_f64() * (1.0 + jitter * unit_jitter(seed)))
}

fn check_jitter(component: &'static str, j: f64) -> Result<(), ConfigError> {
    if (0.0..1.0).contains(&j) {
        Ok(())
    } else {
        Err(ConfigError::new(component, "jitter", j, "in [0, 1)"))
    }
}

/// Waits `duration` after opening (RT-2), optionally with jitter `j`:
/// wait = d·(1 + U(−j, j)), drawn once per open period.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::retries::{Cooldown, Retry, RetryContext};
/// let c = Cooldown::new(Duration::from_secs(60));
/// assert!(!c.should_retry(&RetryContext::new(Duration::from_secs(59), 0)));
/// assert!(c.should_retry(&RetryContext::new(Duration::from_secs(60), 0)));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Cooldown {
    duration: Duration,
    jitter: f64,
}

impl Cooldown {
    /// A fixed cooldown; `duration` > 0.
    ///
    /// ```
    /// let _ = fluxgate_core::retries::Cooldown::new(std::time::Duration::from_secs(60));
    /// ```
    pub const fn new(duration: Duration) -> Self {
        Cooldown {
            duration,
            jitter: 0.0,
        }
    }

    /// Spreads the wait by ±`jitter` (a fraction in [0, 1)).
    ///
    /// ```
    /// let _ = fluxgate_core::retries::Cooldown::new(std::time::Duration::from_secs(60)).jitter(0.1);
    /// ```
    pub const fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }
}

impl Retry for Cooldown {
    fn wait(&self, ctx: &RetryContext) -> Option<Duration> {
        Some(apply_jitter(self.duration, self.jitter, ctx.seed))
    }
    fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::positive("Cooldown", "duration", self.duration)?;
        check_jitter("Cooldown", self.jitter)
    }
}

/// Exponential backoff over re-openings (RT-3):
/// wait = min(initial·multiplier^reopens, max), jittered, and never above `max`.
///
/// Defaults: multiplier 2, max 300 s, jitter 0.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::retries::{Backoff, Retry, RetryContext};
/// let b = Backoff::new(Duration::from_secs(10)).max(Duration::from_secs(30));
/// let wait = |reopens| b.wait(&RetryContext::new(Duration::ZERO, reopens)).unwrap().as_secs();
/// assert_eq!([wait(0), wait(1), wait(2), wait(10)], [10, 20, 30, 30]);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    initial: Duration,
    multiplier: f64,
    max: Duration,
    jitter: f64,
}

impl Backoff {
    /// Backoff starting at `initial` (> 0).
    ///
    /// ```
    /// let _ = fluxgate_core::retries::Backoff::new(std::time::Duration::from_secs(10));
    /// ```
    pub const fn new(initial: Duration) -> Self {
        Backoff {
            initial,
            multiplier: 2.0,
            max: Duration::from_secs(300),
            jitter: 0.0,
        }
    }

    /// Growth per re-opening (> 1).
    ///
    /// ```
    /// let _ = fluxgate_core::retries::Backoff::new(std::time::Duration::from_secs(1)).multiplier(3.0);
    /// ```
    pub const fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// The longest wait (≥ initial).
    ///
    /// ```
    /// let _ = fluxgate_core::retries::Backoff::new(std::time::Duration::from_secs(1)).max(std::time::Duration::from_secs(60));
    /// ```
    pub const fn max(mut self, max: Duration) -> Self {
        self.max = max;
        self
    }

    /// Spreads each wait by ±`jitter` (in [0, 1)); the result is still clamped to `max`.
    ///
    /// ```
    /// let _ = fluxgate_core::retries::Backoff::new(std::time::Duration::from_secs(1)).jitter(0.2);
    /// ```
    pub const fn jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }
}

impl Retry for Backoff {
    fn wait(&self, ctx: &RetryContext) -> Option<Duration> {
        let factor = self
            .multiplier
            .powi(ctx.reopens.min(i32::MAX as u32) as i32);
        // An overflowing product is +inf, which saturates like any wait above max.
        let base = saturating_secs(self.initial.as_secs_f64() * factor).min(self.max);
        Some(apply_jitter(base, self.jitter, ctx.seed).min(self.max))
    }
    fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::positive("Backoff", "initial", self.initial)?;
        if !(self.multiplier > 1.0 && self.multiplier.is_finite()) {
            return Err(ConfigError::new(
                "Backoff",
                "multiplier",
                self.multiplier,
                "greater than 1",
            ));
        }
        if self.max < self.initial {
            return Err(ConfigError::new(
                "Backoff",
                "max",
                format_args!("{:?}", self.max),
                "at least initial",
            ));
        }
        check_jitter("Backoff", self.jitter)
    }
}
