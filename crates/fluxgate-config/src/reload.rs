//! Live reconfiguration: a new file applied to running breakers. Unchanged breakers are
//! not touched, changed ones are reconfigured in place (keeping their state), removed
//! ones retired, new ones created — after everything was checked, so a bad file changes
//! nothing.

use std::sync::Mutex;

use fluxgate_core::{Builder, ConfigError};

use crate::build::Breaker;
use crate::changes::Changes;
use crate::config::Config;
use crate::error::Error;
use crate::model::InitialState;
use crate::trackers::Trackers;

/// The operations a live reload needs from a set of named breakers.
///
/// ```
/// use std::collections::BTreeMap;
/// use std::sync::Mutex;
/// use fluxgate_config::{Breaker, Fleet, InitialState};
/// use fluxgate_core::{Builder, CircuitBreaker, ConfigError};
///
/// /// Rebuilds a breaker on every change (so it loses its state; a registry keeps it).
/// #[derive(Default)]
/// struct Map(Mutex<BTreeMap<String, CircuitBreaker>>);
///
/// impl Fleet for Map {
///     type Breaker = CircuitBreaker;
///     fn names(&self) -> Vec<String> { self.0.lock().unwrap().keys().cloned().collect() }
///     fn create(&self, name: &str, b: Builder<CircuitBreaker>, state: InitialState) -> Result<(), ConfigError> {
///         let cb = b.build()?;
///         cb.enter_silently(state);
///         self.0.lock().unwrap().insert(name.to_owned(), cb);
///         Ok(())
///     }
///     fn reconfigure(&self, name: &str, b: Builder<CircuitBreaker>) -> Result<(), ConfigError> {
///         self.create(name, b, InitialState::Closed)
///     }
///     fn retire(&self, name: &str) { self.0.lock().unwrap().remove(name); }
/// }
/// # let _ = Map::default();
/// ```
pub trait Fleet {
    /// The face of its breakers.
    type Breaker: Breaker;

    /// The names of the breakers it holds.
    fn names(&self) -> Vec<String>;

    /// Adds a breaker built from `builder`, put in `state` silently.
    fn create(
        &self,
        name: &str,
        builder: Builder<Self::Breaker>,
        state: InitialState,
    ) -> Result<(), ConfigError>;

    /// Gives a running breaker the components of `builder`, keeping its state.
    fn reconfigure(&self, name: &str, builder: Builder<Self::Breaker>) -> Result<(), ConfigError>;

    /// Retires a breaker (its listeners are detached).
    fn retire(&self, name: &str);
}

/// The configuration a fleet of breakers runs with, and the one way to change it.
///
/// ```
/// # use std::collections::BTreeMap;
/// # use std::sync::Mutex;
/// # use fluxgate_config::{Breaker, Fleet, InitialState};
/// # use fluxgate_core::{Builder, CircuitBreaker, ConfigError};
/// # #[derive(Default)]
/// # struct Map(Mutex<BTreeMap<String, CircuitBreaker>>);
/// # impl Fleet for Map {
/// #     type Breaker = CircuitBreaker;
/// #     fn names(&self) -> Vec<String> { self.0.lock().unwrap().keys().cloned().collect() }
/// #     fn create(&self, name: &str, b: Builder<CircuitBreaker>, state: InitialState) -> Result<(), ConfigError> {
/// #         let cb = b.build()?; cb.enter_silently(state);
/// #         self.0.lock().unwrap().insert(name.to_owned(), cb); Ok(())
/// #     }
/// #     fn reconfigure(&self, name: &str, b: Builder<CircuitBreaker>) -> Result<(), ConfigError> { self.create(name, b, InitialState::Closed) }
/// #     fn retire(&self, name: &str) { self.0.lock().unwrap().remove(name); }
/// # }
/// use fluxgate_config::{Config, Live, Trackers};
///
/// let fleet = Map::default();
/// let live = Live::start(&fleet, Config::from_toml_str("[breakers.a]\n[breakers.b]\n")?, Trackers::new())?;
/// let changes = live.apply(&fleet, Config::from_toml_str("[breakers.a]\nstate = \"disabled\"\n[breakers.c]\n")?)?;
/// assert_eq!(changes.to_string(), "added c; changed a; removed b; 0 unchanged");
/// assert_eq!(fleet.names(), ["a", "c"]);
///
/// // A bad file changes nothing.
/// let bad = Config::from_toml_str("[breakers.a]\ntracker = \"io\"\n")?;
/// assert!(live.apply(&fleet, bad).is_err());
/// assert_eq!(fleet.names(), ["a", "c"]);
/// # Ok::<(), fluxgate_config::Error>(())
/// ```
#[derive(Debug)]
pub struct Live {
    current: Mutex<Config>,
    trackers: Trackers,
}

impl Live {
    /// Creates the file's breakers in `fleet` and remembers the configuration.
    ///
    /// See [`Live`] for an example.
    pub fn start<F: Fleet>(fleet: &F, config: Config, trackers: Trackers) -> Result<Live, Error> {
        let live = Live {
            current: Mutex::new(Config::default()),
            trackers,
        };
        live.apply(fleet, config)?;
        Ok(live)
    }

    /// The configuration in force.
    ///
    /// ```
    /// # use fluxgate_config::{Config, Live, Trackers};
    /// # struct None_;
    /// # impl fluxgate_config::Fleet for None_ {
    /// #     type Breaker = fluxgate_core::CircuitBreaker;
    /// #     fn names(&self) -> Vec<String> { Vec::new() }
    /// #     fn create(&self, _: &str, _: fluxgate_core::Builder<Self::Breaker>, _: fluxgate_config::InitialState) -> Result<(), fluxgate_core::ConfigError> { Ok(()) }
    /// #     fn reconfigure(&self, _: &str, _: fluxgate_core::Builder<Self::Breaker>) -> Result<(), fluxgate_core::ConfigError> { Ok(()) }
    /// #     fn retire(&self, _: &str) {}
    /// # }
    /// let live = Live::start(&None_, Config::default(), Trackers::new())?;
    /// assert_eq!(live.config(), Config::default());
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn config(&self) -> Config {
        self.lock().clone()
    }

    /// The tracker names configurations may use.
    ///
    /// ```
    /// # use fluxgate_config::{Config, Live, Trackers};
    /// # let live: Option<Live> = None;
    /// # if let Some(live) = live { let _ = live.trackers(); }
    /// ```
    pub fn trackers(&self) -> &Trackers {
        &self.trackers
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Config> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `new`: checks all of it first (tracker names, and every added or changed
    /// breaker built once), then creates, reconfigures and retires, and logs one
    /// `tracing` info line with what changed. Breakers whose effective configuration did
    /// not change are not touched. On an error nothing was changed.
    ///
    /// See [`Live`] for an example.
    pub fn apply<F: Fleet>(&self, fleet: &F, new: Config) -> Result<Changes, Error> {
        let mut current = self.lock();
        let changes = current.changes(&new);
        new.check(&self.trackers)?;
        // Everything that will be built, built once before anything is touched.
        let mut plan = Vec::with_capacity(changes.added.len() + changes.changed.len());
        for name in changes.added.iter().chain(&changes.changed) {
            let _probe: F::Breaker = new.build(name, &self.trackers)?;
            plan.push((name, new.builder::<F::Breaker>(name, &self.trackers)?));
        }
        let running = fleet.names();
        for (name, builder) in plan {
            let result = if running.iter().any(|r| r == name) {
                fleet.reconfigure(name, builder)
            } else {
                fleet.create(name, builder, new.get(name).state)
            };
            // Checked above with the same builder; a fleet may still refuse (a name it
            // reserves): report it, with what was already applied left as it is.
            result.map_err(|e| {
                let section = Some(name.as_str());
                new.core_error(section, new.get(name), &e)
            })?;
        }
        for name in &changes.removed {
            fleet.retire(name);
        }
        if !changes.is_empty() {
            tracing::info!(
                file = new.file().unwrap_or(""),
                added = changes.added.len(),
                changed = changes.changed.len(),
                removed = changes.removed.len(),
                "circuit breaker configuration applied: {changes}"
            );
        }
        *current = new;
        Ok(changes)
    }
}
