//! One factor over every wait of a configuration: [`Config::scale_durations`].

use std::time::Duration;

use fluxgate_core::{CircuitBreaker, ConfigError};

use crate::build::apply_parts;
use crate::config::Config;
use crate::model::{BreakerConfig, PermitConfig, RetryConfig, WindowConfig};

impl Config {
    /// The same configuration on another time scale: every duration that paces a
    /// breaker's life is multiplied by `factor` — a time window's span, the retry's
    /// cooldown (or the backoff's `initial` and `max`), the permit ramp's duration and
    /// `probe_timeout`, in `[defaults]` and in every breaker.
    ///
    /// Left as written:
    /// - the latency thresholds of `SlowRate(ratio, threshold)` in `tripper` and in a
    ///   `probes` recovery rule: they say how slow a *call* is, which does not change
    ///   with the pace of the scenario;
    /// - counts, ratios, jitter and the backoff's multiplier.
    ///
    /// A time window counts whole seconds, so its scaled span is rounded to the nearest
    /// whole second, and is at least one second. The result is checked as a loaded file
    /// is (each breaker built once).
    ///
    /// Useful for a demo or a test that replays a one-minute scenario in six seconds
    /// (`0.1`), or a soak test that stretches it.
    ///
    /// # Errors
    /// A factor that is zero, negative, NaN or infinite, or so large that a duration no
    /// longer fits, is a [`ConfigError`] naming `factor` and its value; a scaled value
    /// its component refuses (a time window beyond a day) is that component's error.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_config::{Config, PermitConfig, RetryConfig, WindowConfig};
    ///
    /// let config = Config::from_toml_str(r#"
    ///     [breakers.search]
    ///     window = { type = "time", duration = "30s" }
    ///     tripper = "MinRequests(20) & SlowRate(0.5, 40ms)"
    ///     retry = { type = "cooldown", duration = "4s", jitter = 0.2 }
    ///     permit = { type = "ramp_up", initial = 0.2, final = 1.0, duration = "6s" }
    /// "#)?;
    /// let fast = config.scale_durations(0.1).unwrap();
    /// let search = fast.breaker("search").unwrap();
    /// assert_eq!(search.window, WindowConfig::Time(Duration::from_secs(3)));
    /// assert_eq!(search.retry, RetryConfig::Cooldown { duration: Duration::from_millis(400), jitter: 0.2 });
    /// assert!(matches!(search.permit, PermitConfig::RampUp { duration, .. } if duration == Duration::from_millis(600)));
    /// // The latency threshold is a call's, not the scenario's: unchanged.
    /// assert_eq!(search.tripper.to_string(), "MinRequests(20) & SlowRate(0.5, 40ms)");
    ///
    /// let err = Config::default().scale_durations(0.0).unwrap_err();
    /// assert_eq!(err.to_string(), "scale_durations factor must be finite and > 0, got 0");
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn scale_durations(mut self, factor: f64) -> Result<Config, ConfigError> {
        if !(factor.is_finite() && factor > 0.0) {
            return Err(bad_factor(factor, "finite and > 0"));
        }
        self.defaults.scale(factor)?;
        for config in self.breakers.values_mut() {
            config.scale(factor)?;
        }
        for name in std::iter::once(None).chain(self.breakers.keys().map(|n| Some(n.as_str()))) {
            let c = name.map_or(&self.defaults, |n| self.get(n));
            apply_parts(CircuitBreaker::builder(name.unwrap_or("defaults")), c, None).build()?;
        }
        Ok(self)
    }
}

fn bad_factor(factor: f64, allowed: &'static str) -> ConfigError {
    ConfigError::new("scale_durations", "factor", factor, allowed)
}

/// `d × factor`, to the nanosecond.
fn scaled(d: Duration, factor: f64) -> Result<Duration, ConfigError> {
    let nanos = (d.as_nanos() as f64 * factor).round();
    if nanos >= u64::MAX as f64 {
        return Err(bad_factor(
            factor,
            "small enough for every scaled duration to fit",
        ));
    }
    Ok(Duration::from_nanos(nanos as u64))
}

impl BreakerConfig {
    fn scale(&mut self, factor: f64) -> Result<(), ConfigError> {
        if let WindowConfig::Time(span) = self.window {
            let secs = scaled(span, factor)?.as_secs_f64().round().max(1.0);
            self.window = WindowConfig::Time(Duration::from_secs(secs as u64));
        }
        match &mut self.retry {
            RetryConfig::Always | RetryConfig::Never => {}
            RetryConfig::Cooldown { duration, .. } => *duration = scaled(*duration, factor)?,
            RetryConfig::Backoff { initial, max, .. } => {
                *initial = scaled(*initial, factor)?;
                *max = scaled(*max, factor)?;
            }
        }
        if let PermitConfig::RampUp { duration, .. } = &mut self.permit {
            *duration = scaled(*duration, factor)?;
        }
        if let Some(t) = &mut self.probe_timeout {
            *t = scaled(*t, factor)?;
        }
        // `recovery` holds counts and latency thresholds only: nothing to scale.
        Ok(())
    }
}
