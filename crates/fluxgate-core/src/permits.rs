//! Permits: how much traffic a half-open circuit lets through.
//!
//! After an outage a dependency is fragile: sending it full traffic the moment the
//! cooldown ends can knock it over again. A permit admits only a share of the calls while
//! the circuit is `half_open`; [`RampUp`] grows that share over time.
//!
//! ```
//! use std::time::Duration;
//! use fluxgate_core::permits::RampUp;
//! let r = RampUp::new(0.1, 0.8, Duration::from_secs(60));
//! assert_eq!(r.ratio_at(Duration::from_secs(30)), 0.45);
//! ```

use std::time::Duration;

use crate::ConfigError;

/// Decides whether a half-open circuit admits a call.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::permits::Permit;
/// struct FirstMinuteOnly;
/// impl Permit for FirstMinuteOnly {
///     fn permit(&self, since_half_open: Duration) -> bool { since_half_open < Duration::from_secs(60) }
/// }
/// assert!(FirstMinuteOnly.permit(Duration::ZERO));
/// ```
#[doc(alias = "IPermit")]
pub trait Permit: Send + Sync + 'static {
    /// Whether to admit a call, given the time since the circuit entered `half_open`.
    fn permit(&self, since_half_open: Duration) -> bool;

    /// Checks parameters; called by `build()`.
    fn validate(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// Any `Fn(Duration) -> bool` is a permit: it gets the time since the circuit entered
/// `half_open`.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::CircuitBreaker;
/// let cb = CircuitBreaker::builder("x")
///     .permit(|since: Duration| since >= Duration::from_secs(1))
///     .build()
///     .unwrap();
/// # let _ = cb;
/// ```
impl<F> Permit for F
where
    F: Fn(Duration) -> bool + Send + Sync + 'static,
{
    fn permit(&self, since_half_open: Duration) -> bool {
        self(since_half_open)
    }
}

/// Admits every call (P-1).
///
/// ```
/// use fluxgate_core::permits::{All, Permit};
/// assert!(All.permit(std::time::Duration::ZERO));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct All;

impl Permit for All {
    fn permit(&self, _since_half_open: Duration) -> bool {
        true
    }
}

fn check_unit(
    component: &'static str,
    parameter: &'static str,
    r: f64,
    allowed: &'static str,
    open_low: bool,
) -> Result<(), ConfigError> {
    let ok = if open_low { r > 0.0 } else { r >= 0.0 } && r <= 1.0;
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(component, parameter, r, allowed))
    }
}

/// Admits each call with probability `ratio` in [0, 1] (P-1).
///
/// ```
/// use fluxgate_core::permits::{Permit, Random};
/// assert!(!Random::new(0.0).permit(std::time::Duration::ZERO));
/// assert!(Random::new(1.0).permit(std::time::Duration::ZERO));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Random(f64);

impl Random {
    /// Admits with probability `ratio`.
    ///
    /// ```
    /// let _ = fluxgate_core::permits::Random::new(0.5);
    /// ```
    pub const fn new(ratio: f64) -> Self {
        Random(ratio)
    }
}

impl Permit for Random {
    fn permit(&self, _since_half_open: Duration) -> bool {
        fastrand::f64() < self.0
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_unit("Random", "ratio", self.0, "in [0, 1]", false)
    }
}

/// Admits a share that grows linearly from `initial` to `final` over `duration` since
/// entering `half_open`, then stays at `final` (P-2).
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::permits::RampUp;
/// let r = RampUp::new(0.1, 0.8, Duration::from_secs(60));
/// assert_eq!(r.ratio_at(Duration::ZERO), 0.1);
/// assert_eq!(r.ratio_at(Duration::from_secs(15)), 0.275);
/// assert_eq!(r.ratio_at(Duration::from_secs(90)), 0.8);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RampUp {
    initial: f64,
    last: f64,
    duration: Duration,
}

impl RampUp {
    /// A ramp; 0 < initial ≤ final ≤ 1 and duration > 0.
    ///
    /// ```
    /// let _ = fluxgate_core::permits::RampUp::new(0.1, 1.0, std::time::Duration::from_secs(60));
    /// ```
    pub const fn new(initial: f64, final_ratio: f64, duration: Duration) -> Self {
        RampUp {
            initial,
            last: final_ratio,
            duration,
        }
    }

    /// The share admitted `elapsed` after entering `half_open`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let r = fluxgate_core::permits::RampUp::new(0.2, 1.0, Duration::from_secs(10));
    /// assert_eq!(r.ratio_at(Duration::from_secs(5)), 0.6);
    /// ```
    pub fn ratio_at(&self, elapsed: Duration) -> f64 {
        if elapsed >= self.duration {
            return self.last;
        }
        let progress = elapsed.as_secs_f64() / self.duration.as_secs_f64();
        let r = self.initial + (self.last - self.initial) * progress;
        // Round away float noise so documented points (27.5 % at 15 s) are exact.
        (r * 1e12).round() / 1e12
    }
}

impl Permit for RampUp {
    fn permit(&self, since_half_open: Duration) -> bool {
        let r = self.ratio_at(since_half_open);
        r >= 1.0 || fastrand::f64() < r
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_unit("RampUp", "initial", self.initial, "in (0, 1]", true)?;
        check_unit("RampUp", "final", self.last, "in (0, 1]", true)?;
        if self.last < self.initial {
            return Err(ConfigError::new(
                "RampUp",
                "final",
                self.last,
                "at least initial",
            ));
        }
        ConfigError::positive("RampUp", "duration", self.duration)
    }
}
