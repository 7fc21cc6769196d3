//! A [`Registry`] run from a configuration file, and live reconfiguration: a new file
//! applied to running breakers. Unchanged breakers are not touched, changed ones are
//! reconfigured in place (keeping their state, and their window when its shape did not
//! change), removed ones retired, new ones created — after everything was checked, so a
//! bad file changes nothing.

use std::sync::{Arc, Mutex, RwLock};

use fluxgate_core::Builder;
use fluxgate_core::registry::{Registry, RegistryBuilder};

use crate::build::{Breaker, apply_parts};
use crate::changes::Changes;
use crate::config::Config;
use crate::error::Error;
use crate::model::BreakerConfig;
use crate::trackers::Trackers;

/// The configuration a [`Registry`] runs with, and the one way to change it.
///
/// ```
/// use fluxgate_config::{Config, Live, Trackers};
/// use fluxgate_core::{CircuitBreaker, State};
///
/// let live = Live::new(Config::from_toml_str(r#"
///     [defaults]
///     tripper = "FailureStreak(3)"
///     [breakers.payments]
///     tripper = "FailureStreak(1)"
///     [breakers.search]
///     state = "metrics_only"
/// "#)?, Trackers::new())?;
/// // Registry-level listeners are the caller's: add them before `build`.
/// let registry = live
///     .registry_builder::<CircuitBreaker>()
///     .listener(|s: &fluxgate_core::Signal| println!("{} -> {}", s.circuit_name, s.new_state))
///     .build();
/// live.start(&registry)?; // the file's breakers, built now, in their initial states
/// assert_eq!(registry.names(), ["payments", "search"]);
/// assert_eq!(registry.get("search").unwrap().state(), State::MetricsOnly);
/// // Names the file does not mention are built on first use from [defaults].
/// let other = registry.get_or_create("orders").unwrap();
/// # let _ = other;
///
/// let changes = live.apply(&registry, Config::from_toml_str(r#"
///     [defaults]
///     tripper = "FailureStreak(3)"
///     [breakers.payments]
///     tripper = "FailureStreak(2)"
///     [breakers.inventory]
/// "#)?)?;
/// assert_eq!(changes.to_string(), "added inventory; changed payments; removed search; 0 unchanged");
/// assert_eq!(registry.names(), ["inventory", "orders", "payments"]);
/// # Ok::<(), fluxgate_config::Error>(())
/// ```
#[derive(Debug)]
pub struct Live {
    current: Mutex<Config>,
    /// What the registry's template and its first-use hook read: the configuration in
    /// force, replaced on a reload (apart from `current`, which a reload holds while it
    /// calls into the registry, and so the registry's closures must not take).
    shared: Arc<RwLock<Config>>,
    trackers: Trackers,
}

/// A configuration step that sets every component of `config` (the tracker names were
/// checked before, so building the tracker cannot fail; if it did, the builder's own
/// tracker would stay).
fn configure<B: Breaker>(
    config: BreakerConfig,
    trackers: Trackers,
) -> impl Fn(Builder<B>) -> Builder<B> + Send + Sync + 'static {
    move |b: Builder<B>| {
        let tracker = trackers.build(&config.tracker).ok();
        apply_parts(b, &config, tracker)
    }
}

fn read(cell: &RwLock<Config>) -> std::sync::RwLockReadGuard<'_, Config> {
    cell.read().unwrap_or_else(|p| p.into_inner())
}

impl Live {
    /// Checks `config`'s tracker names against `trackers` and keeps both.
    ///
    /// ```
    /// use fluxgate_config::{Config, Live, Trackers};
    /// let config = Config::from_toml_str("[defaults]\ntracker = \"io\"\n")?;
    /// assert!(Live::new(config.clone(), Trackers::new()).is_err());
    /// assert!(Live::new(config, Trackers::new().add::<std::io::Error>("io")).is_ok());
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn new(config: Config, trackers: Trackers) -> Result<Live, Error> {
        config.check(&trackers)?;
        Ok(Live {
            shared: Arc::new(RwLock::new(config.clone())),
            current: Mutex::new(config),
            trackers,
        })
    }

    /// A registry builder whose template is the configuration's `[defaults]` (following
    /// reloads) and whose breakers named in the file get their sections. Add the
    /// registry's listeners, `build()`, then [`start`](Self::start).
    ///
    /// Breakers the file does not name are built on first use from `[defaults]`, in
    /// the defaults' `state` (entered silently before the registry hands the breaker
    /// out): with `state = "metrics_only"` in `[defaults]` every breaker of a shadow
    /// rollout records and never opens, named or not. A breaker's own `state` wins.
    ///
    /// See [`Live`] for an example.
    pub fn registry_builder<B: Breaker>(&self) -> RegistryBuilder<B> {
        let cell = Arc::clone(&self.shared);
        let trackers = self.trackers.clone();
        let template = move |b: Builder<B>| {
            let config = read(&cell).defaults.clone();
            configure::<B>(config, trackers.clone())(b)
        };
        let cell = Arc::clone(&self.shared);
        Registry::<B>::builder()
            .defaults(template)
            .on_create(move |b: &B| b.enter_silently(read(&cell).get(b.name()).state))
    }

    /// Builds the breakers the file names, each in its initial state (silently).
    ///
    /// See [`Live`] for an example.
    pub fn start<B: Breaker>(&self, registry: &Registry<B>) -> Result<(), Error> {
        let current = self.lock();
        // Overrides first, all checked by the registry before any breaker is built.
        for (name, config) in &current.breakers {
            registry
                .reconfigure(name, configure::<B>(config.clone(), self.trackers.clone()))
                .map_err(|e| current.core_error(Some(name), config, &e))?;
        }
        for (name, config) in &current.breakers {
            let b = registry
                .get_or_create(name)
                .map_err(|e| current.core_error(Some(name), config, &e))?;
            b.enter_silently(config.state);
        }
        Ok(())
    }

    /// The configuration in force.
    ///
    /// ```
    /// use fluxgate_config::{Config, Live, Trackers};
    /// let live = Live::new(Config::default(), Trackers::new())?;
    /// assert_eq!(live.config(), Config::default());
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn config(&self) -> Config {
        self.lock().clone()
    }

    /// The tracker names configurations may use.
    ///
    /// ```
    /// use fluxgate_config::{Config, Live, Trackers};
    /// let live = Live::new(Config::default(), Trackers::new())?;
    /// assert_eq!(live.trackers().names().collect::<Vec<_>>(), ["All"]);
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn trackers(&self) -> &Trackers {
        &self.trackers
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Config> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `new` to `registry`, all or nothing: the new file was checked when it was
    /// loaded, its tracker names are checked here, and only then is the registry
    /// touched:
    ///
    /// - a breaker whose effective configuration is unchanged is not touched (its handle
    ///   stays valid);
    /// - a changed one is reconfigured by the registry, which carries its state on (and
    ///   its window when the window's shape is the same); if its `state` field changed,
    ///   the new state is entered silently, since that is what the operator asked for;
    /// - a breaker the new file drops is retired (`Registry::remove`); one it adds is
    ///   built, in its initial state;
    /// - when `[defaults]` changed, breakers the file does not name are reconfigured too.
    ///
    /// One `tracing` info line (target `fluxgate_config`) says what changed; the
    /// returned [`Changes`] says the same, with what the registry carried over.
    ///
    /// See [`Live`] for an example.
    pub fn apply<B: Breaker>(&self, registry: &Registry<B>, new: Config) -> Result<Changes, Error> {
        let mut current = self.lock();
        new.check(&self.trackers)?;
        let mut changes = current.changes(&new);
        // The template first: breakers built from here on get the new defaults (and the
        // new sections' states).
        *self.shared.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
        // Then the running breakers, so that none built from the old template is missed.
        // `Registry::get_or_create` reads the template (and the first-use hook reads the
        // state) while it holds the write lock of the name's shard, and inserts the
        // breaker before letting go of it. A breaker that read the old configuration read
        // it before the switch above, so its shard was locked before the switch too, and
        // `names()`, which reads every shard after the switch, waits for that lock and
        // sees the breaker. Listed the other way round, a breaker built after its shard
        // was read but before the switch would keep the old defaults for good. A breaker
        // built from the new template may be listed as well: it is rebuilt with what it
        // already has, keeping its state and window.
        let running = registry.names();
        let step = |name: &str, config: &BreakerConfig| -> Result<_, Error> {
            registry
                .reconfigure(name, configure::<B>(config.clone(), self.trackers.clone()))
                .map_err(|e| new.core_error(Some(name), config, &e))
        };
        for name in &changes.changed {
            let config = new.get(name);
            if let Some(r) = step(name, config)? {
                changes.reconfigured.push(r);
            }
            if current.get(name).state != config.state {
                if let Some(b) = registry.get(name) {
                    b.enter_silently(config.state);
                }
            }
        }
        for name in &changes.added {
            let config = new.get(name);
            let existed = running.contains(name);
            if let Some(r) = step(name, config)? {
                changes.reconfigured.push(r);
            }
            let b = registry
                .get_or_create(name)
                .map_err(|e| new.core_error(Some(name), config, &e))?;
            if !existed || current.defaults.state != config.state {
                b.enter_silently(config.state);
            }
        }
        for name in &changes.removed {
            registry.remove(name);
        }
        if changes.defaults_changed {
            let state_changed = current.defaults.state != new.defaults.state;
            for name in running
                .iter()
                .filter(|n| !new.breakers.contains_key(*n) && !current.breakers.contains_key(*n))
            {
                if let Some(r) = registry
                    .reconfigure(name, |b| b)
                    .map_err(|e| new.core_error(None, &new.defaults, &e))?
                {
                    changes.reconfigured.push(r);
                }
                // As for a named breaker whose `state` changed: what the operator asked.
                if state_changed {
                    if let Some(b) = registry.get(name) {
                        b.enter_silently(new.defaults.state);
                    }
                }
            }
        }
        if !changes.is_empty() {
            tracing::info!(
                target: "fluxgate_config",
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
