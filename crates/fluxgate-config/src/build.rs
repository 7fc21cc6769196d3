//! Configuration → `Builder<F>` for both faces, and the initial state after `build()`.

use fluxgate_core::permits::{self, RampUp, Random};
use fluxgate_core::retries::{Always, Backoff, Cooldown, Never};
use fluxgate_core::windows::{CountWindow, TimeWindow};
#[cfg(doc)]
use fluxgate_core::{AsyncCircuitBreaker, CircuitBreaker};
use fluxgate_core::{Builder, Face};

use crate::config::{Config, quote};
use crate::error::Error;
use crate::model::RecoveryConfig;
use crate::model::{BreakerConfig, InitialState, PermitConfig, RetryConfig, WindowConfig};
use crate::rules::build_tripper;
use crate::trackers::Trackers;
use fluxgate_core::recovery::{ByTripper, Probes, Successes};

/// What configuration needs of a breaker face beyond [`Face`]: entering an
/// [`InitialState`]. Implemented for every face ([`CircuitBreaker`],
/// [`AsyncCircuitBreaker`]); code generic over the face names `B: Breaker` (or just
/// `Face`, for registries and keyed breakers).
///
/// ```
/// use fluxgate_config::{Breaker, InitialState};
/// use fluxgate_core::{CircuitBreaker, Face, State};
/// let cb = CircuitBreaker::builder("x").build().unwrap();
/// cb.enter_silently(InitialState::ForcedOpen);
/// assert_eq!(cb.state(), State::ForcedOpen);
///
/// // Generic over the face:
/// fn shadow<B: Breaker>(name: &str) -> B {
///     let b = B::builder(name).build().unwrap();
///     b.enter_silently(InitialState::MetricsOnly);
///     b
/// }
/// assert_eq!(shadow::<fluxgate_core::AsyncCircuitBreaker>("y").state(), State::MetricsOnly);
/// ```
pub trait Breaker: Face {
    /// Puts the breaker in `state` without notifying listeners (SM-13's silent forms);
    /// `Closed` resets it silently.
    ///
    /// ```
    /// use fluxgate_config::{Breaker, InitialState};
    /// let cb = fluxgate_core::AsyncCircuitBreaker::builder("x").build().unwrap();
    /// cb.enter_silently(InitialState::Disabled);
    /// assert_eq!(cb.state(), fluxgate_core::State::Disabled);
    /// ```
    fn enter_silently(&self, state: InitialState) {
        match state {
            InitialState::Closed => self.reset_silently(),
            InitialState::MetricsOnly => self.metrics_only_silently(),
            InitialState::ForcedOpen => self.force_open_silently(),
            InitialState::Disabled => self.disable_silently(),
        }
    }
}

impl<F: Face> Breaker for F {}

/// Sets every component of `c` on `builder` (the tracker already built).
pub(crate) fn apply_parts<B: Face>(
    builder: Builder<B>,
    c: &BreakerConfig,
    tracker: Option<Box<dyn fluxgate_core::trackers::Tracker>>,
) -> Builder<B> {
    let b = match c.window {
        WindowConfig::Count(n) => builder.window(CountWindow::new(n)),
        WindowConfig::Time(d) => builder.window(TimeWindow::new(d)),
    };
    let b = match tracker {
        Some(t) => b.tracker(t),
        None => b,
    };
    let b = b.tripper(build_tripper(&c.tripper));
    let b = match c.retry {
        RetryConfig::Always => b.retry(Always),
        RetryConfig::Never => b.retry(Never),
        RetryConfig::Cooldown { duration, jitter } => {
            b.retry(Cooldown::new(duration).jitter(jitter))
        }
        RetryConfig::Backoff {
            initial,
            multiplier,
            max,
            jitter,
        } => b.retry(
            Backoff::new(initial)
                .multiplier(multiplier)
                .max(max)
                .jitter(jitter),
        ),
    };
    let b = match c.permit {
        PermitConfig::All => b.permit(permits::All),
        PermitConfig::Random(r) => b.permit(Random::new(r)),
        PermitConfig::RampUp {
            initial,
            final_ratio,
            duration,
        } => b.permit(RampUp::new(initial, final_ratio, duration)),
    };
    let b = match &c.recovery {
        RecoveryConfig::ByTripper => b.recovery(ByTripper),
        RecoveryConfig::Successes(n) => b.recovery(Successes::new(*n)),
        RecoveryConfig::Probes { n, rule } => b.recovery(Probes::new(*n, build_tripper(rule))),
    };
    let b = match c.probe_timeout {
        Some(d) => b.probe_timeout(d),
        None => b,
    };
    b.max_half_open_calls(c.max_half_open_calls)
        .measure_durations(c.measure_durations)
}

impl BreakerConfig {
    /// Sets every component on a builder the caller made (with its clock, listeners…).
    /// The initial [`state`](Self::state) is not a builder's: apply it to the built
    /// breaker with [`Breaker::enter_silently`], or use [`build`](Self::build).
    ///
    /// ```
    /// use fluxgate_config::{BreakerConfig, Trackers};
    /// use fluxgate_core::{clock::ManualClock, CircuitBreaker};
    /// let config = BreakerConfig::default();
    /// let cb = config
    ///     .apply(CircuitBreaker::builder("x").clock(ManualClock::new()), &Trackers::new())?
    ///     .build()
    ///     .unwrap();
    /// # let _ = cb;
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn apply<B: Breaker>(
        &self,
        builder: Builder<B>,
        trackers: &Trackers,
    ) -> Result<Builder<B>, Error> {
        let tracker = trackers.build(&self.tracker).map_err(|e| {
            let mut err = Error::new(e.to_string());
            err.0.field = Some("tracker".into());
            err.0.value = Some(quote(&self.tracker.to_string()));
            err
        })?;
        Ok(apply_parts(builder, self, Some(tracker)))
    }

    /// Builds a breaker named `name` and puts it in the initial state (silently).
    ///
    /// ```
    /// use fluxgate_config::{BreakerConfig, InitialState, Trackers};
    /// use fluxgate_core::{AsyncCircuitBreaker, State};
    /// let config = BreakerConfig { state: InitialState::MetricsOnly, ..BreakerConfig::default() };
    /// let cb: AsyncCircuitBreaker = config.build("shadow", &Trackers::new())?;
    /// assert_eq!(cb.state(), State::MetricsOnly);
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn build<B: Breaker>(&self, name: &str, trackers: &Trackers) -> Result<B, Error> {
        let b = self
            .apply(B::builder(name), trackers)?
            .build()
            .map_err(|e| Error::new(e.to_string()))?;
        b.enter_silently(self.state);
        Ok(b)
    }
}

impl Config {
    /// A builder for `name` (its section, or the defaults) with every component set; the
    /// caller adds a clock, listeners…, builds, and may apply the initial state with
    /// [`Breaker::enter_silently`]. Errors (an unknown tracker name) name the file,
    /// breaker, field and line.
    ///
    /// ```
    /// use fluxgate_config::{Config, Trackers};
    /// use fluxgate_core::CircuitBreaker;
    /// let config = Config::from_toml_str("[breakers.a]\nmax_half_open_calls = 2\n")?;
    /// let cb = config
    ///     .builder::<CircuitBreaker>("a", &Trackers::new())?
    ///     .listener(|s: &fluxgate_core::Signal| println!("{s:?}"))
    ///     .build()
    ///     .unwrap();
    /// # let _ = cb;
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn builder<B: Breaker>(
        &self,
        name: &str,
        trackers: &Trackers,
    ) -> Result<Builder<B>, Error> {
        self.apply(B::builder(name), name, trackers)
    }

    /// Sets `name`'s components on a builder the caller made.
    ///
    /// ```
    /// use fluxgate_config::{Config, Trackers};
    /// use fluxgate_core::{clock::ManualClock, AsyncCircuitBreaker};
    /// let config = Config::default();
    /// let b = config.apply(AsyncCircuitBreaker::builder("x").clock(ManualClock::new()), "x", &Trackers::new())?;
    /// let _cb = b.build().unwrap();
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn apply<B: Breaker>(
        &self,
        builder: Builder<B>,
        name: &str,
        trackers: &Trackers,
    ) -> Result<Builder<B>, Error> {
        let section = self.breakers.contains_key(name).then_some(name);
        self.check_one(section, trackers)?;
        self.get(name)
            .apply(builder, trackers)
            .map_err(|e| self.error_at(section, "tracker", e.0.value, e.0.message))
    }

    /// Builds `name` (its section, or the defaults) and puts it in its initial state.
    ///
    /// ```
    /// use fluxgate_config::{Config, Trackers};
    /// use fluxgate_core::{CircuitBreaker, State};
    /// let config = Config::from_yaml_str("breakers:\n  a:\n    state: forced_open\n")?;
    /// let cb: CircuitBreaker = config.build("a", &Trackers::new())?;
    /// assert_eq!(cb.state(), State::ForcedOpen);
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn build<B: Breaker>(&self, name: &str, trackers: &Trackers) -> Result<B, Error> {
        let section = self.breakers.contains_key(name).then_some(name);
        let config = self.get(name);
        let b = self
            .apply(B::builder(name), name, trackers)?
            .build()
            .map_err(|e| self.core_error(section, config, &e))?;
        b.enter_silently(config.state);
        Ok(b)
    }
}
