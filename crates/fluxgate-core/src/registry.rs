//! Named breakers built from one configuration: the [`Registry`].
//!
//! A service talks to a handful of dependencies, and each deserves its own breaker with
//! mostly the same settings. Writing each builder by hand repeats the defaults, spreads
//! the listeners over many call sites and leaves nothing that can list, reset or
//! reconfigure them all. A registry holds the default configuration (a *template*, a
//! closure over [`Builder`]), per-name overrides on top of it and the listeners every
//! breaker gets, and builds a breaker the first time its name is asked for.
//!
//! ```
//! use fluxgate_core::registry::Registry;
//! use fluxgate_core::trippers::FailureStreak;
//! use fluxgate_core::State;
//!
//! let registry = Registry::<fluxgate_core::CircuitBreaker>::builder()
//!     .defaults(|b| b.tripper(FailureStreak::new(5)))
//!     .breaker("payments", |b| b.tripper(FailureStreak::new(2)))
//!     .build();
//!
//! let payments = registry.get_or_create("payments")?;
//! for _ in 0..2 {
//!     let _ = payments.call(|| Err::<(), _>(std::io::Error::other("503")));
//! }
//! assert_eq!(payments.state(), State::Open);
//! assert_eq!(registry.get_or_create("search")?.state(), State::Closed);
//! assert_eq!(registry.names(), ["payments", "search"]);
//! # Ok::<(), fluxgate_core::ConfigError>(())
//! ```
//!
//! ## Handles, removal and reconfiguration
//!
//! A breaker is a cheap handle (an `Arc`); the registry hands out clones. Looking a name
//! up takes one read lock of one of 64 shards, so `get` per request is fine.
//!
//! - [`Registry::remove`] takes the breaker out and **retires** it: every listener gets
//!   `on_detach(name)` (the Prometheus listener drops the circuit's series), and the
//!   breaker never changes state again. A handle kept from before keeps answering as the
//!   breaker stood (closed admits, open rejects as `forced_open`), records nothing that
//!   anybody observes, and emits no signal. Asking the registry for the name again
//!   builds a new breaker.
//! - [`Registry::reconfigure`] (and [`Registry::set_defaults`]) builds a new breaker for
//!   the name that carries on the old one's state (`closed`, `open`, `half_open`, the
//!   manual states, reopens, time of the last change, failure streak) and, when the
//!   window's [shape](crate::windows::Window::shape) is unchanged, its window with its
//!   contents; a window of another shape starts empty. The old breaker is retired as
//!   above, without `on_detach` (the circuit lives on). A handle kept from before does
//!   **not** follow: fetch the breaker from the registry again (per call, or after each
//!   reload). One log line (`tracing`, target `fluxgate`) per change says what carried
//!   over; the [`Reconfigured`] value says the same.
//!
//! Breakers are built under the lock of their shard, so that many threads asking for the
//! same new name get one breaker and listeners see one `on_attach`; a removed breaker is
//! detached under the same lock, so a listener sees a name's `on_detach` before the
//! `on_attach` of a breaker built again under that name. A listener's `on_attach` and
//! `on_detach` must therefore not call back into the same registry.

use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use crate::builder::{Builder, Face};
use crate::listeners::Listener;
use crate::shards::Sharded;
use crate::{AsyncCircuitBreaker, CircuitBreaker, ConfigError, Info, State};

/// A configuration step: takes a builder, returns it with some settings changed.
pub type Configure<F> = Arc<dyn Fn(Builder<F>) -> Builder<F> + Send + Sync + 'static>;

/// What a registry does with each breaker it builds on first use, before anyone else
/// can see it ([`RegistryBuilder::on_create`]).
pub type OnCreate<F> = Arc<dyn Fn(&F) + Send + Sync + 'static>;

/// How long `remove` waits for the signals a breaker already queued to reach its
/// listeners before it tells them the breaker is gone.
const DETACH_FLUSH: Duration = Duration::from_secs(1);

/// A registry of async breakers ([`AsyncCircuitBreaker`]).
///
/// ```
/// let registry = fluxgate_core::registry::AsyncRegistry::new();
/// let cb = registry.get_or_create("api")?;
/// assert_eq!(cb.name(), "api");
/// # Ok::<(), fluxgate_core::ConfigError>(())
/// ```
pub type AsyncRegistry = Registry<AsyncCircuitBreaker>;

/// Named breakers built on first use from a template and per-name overrides (see the
/// [module documentation](self)). Cheap to clone: clones share the breakers.
///
/// ```
/// use fluxgate_core::registry::Registry;
/// let registry: Registry = Registry::new();
/// let a = registry.get_or_create("a")?;
/// assert!(registry.get("a").is_some());
/// assert!(registry.get("b").is_none());
/// # let _ = a;
/// # Ok::<(), fluxgate_core::ConfigError>(())
/// ```
pub struct Registry<F = CircuitBreaker> {
    inner: Arc<Inner<F>>,
}

struct Inner<F> {
    config: RwLock<Config<F>>,
    listeners: Vec<Arc<dyn Listener>>,
    on_create: Option<OnCreate<F>>,
    breakers: Sharded<Arc<str>, F>,
}

struct Config<F> {
    defaults: Configure<F>,
    overrides: HashMap<String, Configure<F>>,
}

impl<F> Clone for Registry<F> {
    fn clone(&self) -> Self {
        Registry {
            inner: self.inner.clone(),
        }
    }
}

impl<F: Face> fmt::Debug for Registry<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.inner.breakers.collect(|k, _| k.clone());
        f.debug_struct("Registry")
            .field("breakers", &names)
            .field("listeners", &self.inner.listeners.len())
            .finish_non_exhaustive()
    }
}

/// Configures a [`Registry`]: the template, per-name overrides and the listeners of every
/// breaker.
///
/// ```
/// use fluxgate_core::registry::Registry;
/// use fluxgate_core::trippers::FailureStreak;
/// let registry: Registry = Registry::builder()
///     .defaults(|b| b.tripper(FailureStreak::new(3)))
///     .listener(|s: &fluxgate_core::Signal| println!("{} -> {}", s.circuit_name, s.new_state))
///     .build();
/// # let _ = registry;
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct RegistryBuilder<F = CircuitBreaker> {
    defaults: Configure<F>,
    overrides: HashMap<String, Configure<F>>,
    listeners: Vec<Arc<dyn Listener>>,
    on_create: Option<OnCreate<F>>,
}

impl<F> fmt::Debug for RegistryBuilder<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryBuilder")
            .field("overrides", &self.overrides.keys().collect::<Vec<_>>())
            .field("listeners", &self.listeners.len())
            .finish_non_exhaustive()
    }
}

impl<F: Face> RegistryBuilder<F> {
    /// The template every breaker starts from, applied to `builder(name)` (default: the
    /// builder's own defaults). Called again for each breaker, and on reconfiguration.
    ///
    /// ```
    /// use fluxgate_core::registry::Registry;
    /// let r: Registry = Registry::builder().defaults(|b| b.max_half_open_calls(3)).build();
    /// # let _ = r;
    /// ```
    pub fn defaults(
        mut self,
        configure: impl Fn(Builder<F>) -> Builder<F> + Send + Sync + 'static,
    ) -> Self {
        self.defaults = Arc::new(configure);
        self
    }

    /// An override for the breaker `name`, applied after the template.
    ///
    /// ```
    /// use fluxgate_core::registry::Registry;
    /// let r: Registry = Registry::builder().breaker("db", |b| b.max_half_open_calls(1)).build();
    /// # let _ = r;
    /// ```
    pub fn breaker(
        mut self,
        name: &str,
        configure: impl Fn(Builder<F>) -> Builder<F> + Send + Sync + 'static,
    ) -> Self {
        self.overrides.insert(name.to_owned(), Arc::new(configure));
        self
    }

    /// A listener every breaker of the registry gets (after the template's and the
    /// override's own); it is attached through the builder, so its `on_attach` runs
    /// for each breaker. One `PrometheusListener` for the whole registry is the common
    /// case.
    ///
    /// ```
    /// use fluxgate_core::registry::Registry;
    /// let r: Registry = Registry::builder().listener(fluxgate_core::listeners::log::LogListener::new()).build();
    /// # let _ = r;
    /// ```
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listeners.push(Arc::new(listener));
        self
    }

    /// Runs `f` on every breaker the registry builds on first use, right after it is
    /// built and before it is stored, so no other caller sees it before `f` returns:
    /// the place to put new breakers in an initial state without a signal (the
    /// `*_silently` commands), as a shadow rollout does with `metrics_only`. Not called
    /// for the successors [`Registry::reconfigure`] and [`Registry::set_defaults`]
    /// build (they carry the old breaker's state on). `f` runs under the lock of the
    /// breaker's shard: it must not call back into the same registry. If `f` panics,
    /// the panic reaches the caller of `get_or_create`, the breaker is not kept and its
    /// listeners let go of it.
    ///
    /// ```
    /// use fluxgate_core::registry::Registry;
    /// use fluxgate_core::{CircuitBreaker, State};
    /// let r: Registry = Registry::builder()
    ///     .on_create(|cb: &CircuitBreaker| cb.metrics_only_silently())
    ///     .build();
    /// assert_eq!(r.get_or_create("new")?.state(), State::MetricsOnly);
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn on_create(mut self, f: impl Fn(&F) + Send + Sync + 'static) -> Self {
        self.on_create = Some(Arc::new(f));
        self
    }

    /// The registry; nothing is built yet (a bad override surfaces from
    /// [`Registry::get_or_create`] or [`Registry::check`]).
    ///
    /// ```
    /// let r: fluxgate_core::registry::Registry = fluxgate_core::registry::Registry::builder().build();
    /// assert!(r.is_empty());
    /// ```
    pub fn build(self) -> Registry<F> {
        Registry {
            inner: Arc::new(Inner {
                config: RwLock::new(Config {
                    defaults: self.defaults,
                    overrides: self.overrides,
                }),
                listeners: self.listeners,
                on_create: self.on_create,
                breakers: Sharded::new(),
            }),
        }
    }
}

/// What a live reconfiguration did to one breaker (also logged, one line per breaker).
///
/// ```
/// use fluxgate_core::registry::Registry;
/// use fluxgate_core::windows::CountWindow;
/// let registry: Registry = Registry::new();
/// registry.get_or_create("db")?.force_open();
/// let change = registry.reconfigure("db", |b| b.max_half_open_calls(2))?.unwrap();
/// assert_eq!(change.state, fluxgate_core::State::ForcedOpen);
/// assert!(change.window_kept);
/// let change = registry.reconfigure("db", |b| b.window(CountWindow::new(10)))?.unwrap();
/// assert!(!change.window_kept);
/// assert_eq!(change.to_string(), "db reconfigured in state forced_open; window count(100) -> count(10), cleared");
/// # Ok::<(), fluxgate_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reconfigured {
    /// The breaker's name.
    pub name: String,
    /// The state the new configuration carried on with.
    pub state: State,
    /// Whether the window (and what it held) was kept: its shape did not change.
    pub window_kept: bool,
    /// The old window's shape (`Window::shape`).
    pub old_window: Option<String>,
    /// The new window's shape.
    pub new_window: Option<String>,
}

impl fmt::Display for Reconfigured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shape = |s: &Option<String>| s.clone().unwrap_or_else(|| "custom".to_owned());
        write!(
            f,
            "{} reconfigured in state {}; window ",
            self.name, self.state
        )?;
        if self.window_kept {
            write!(f, "{}, kept", shape(&self.new_window))
        } else {
            write!(
                f,
                "{} -> {}, cleared",
                shape(&self.old_window),
                shape(&self.new_window)
            )
        }
    }
}

impl<F: Face> Default for Registry<F> {
    /// Same as [`Registry::new`].
    ///
    /// ```
    /// let r: fluxgate_core::registry::Registry = Default::default();
    /// # let _ = r;
    /// ```
    fn default() -> Self {
        Registry::new()
    }
}

impl<F: Face> Registry<F> {
    /// A registry whose breakers all have the builder's defaults.
    ///
    /// ```
    /// let r: fluxgate_core::registry::Registry = fluxgate_core::registry::Registry::new();
    /// assert!(r.is_empty());
    /// ```
    pub fn new() -> Self {
        Registry::builder().build()
    }

    /// Starts configuring a registry.
    ///
    /// ```
    /// let r: fluxgate_core::registry::Registry = fluxgate_core::registry::Registry::builder().build();
    /// # let _ = r;
    /// ```
    pub fn builder() -> RegistryBuilder<F> {
        RegistryBuilder {
            defaults: Arc::new(|b| b),
            overrides: HashMap::new(),
            listeners: Vec::new(),
            on_create: None,
        }
    }
}

impl<F: Face> Registry<F> {
    fn config(&self) -> RwLockReadGuard<'_, Config<F>> {
        self.inner
            .config
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn config_mut(&self) -> RwLockWriteGuard<'_, Config<F>> {
        self.inner
            .config
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The builder for `name` under `config`: template, override, registry listeners.
    fn builder_for(&self, config: &Config<F>, name: &str) -> Builder<F> {
        let mut b = (config.defaults)(Builder::new(name));
        if let Some(o) = config.overrides.get(name) {
            b = o(b);
        }
        for l in &self.inner.listeners {
            b = b.listener(l.clone());
        }
        b
    }

    /// The breaker `name`, built from the template and its override on first use. Many
    /// threads asking for a new name at once get one breaker. An invalid configuration is
    /// the error, every time it is asked for (nothing is stored).
    ///
    /// ```
    /// use fluxgate_core::registry::Registry;
    /// let registry: Registry = Registry::builder().breaker("bad", |b| b.max_half_open_calls(0)).build();
    /// let a = registry.get_or_create("db")?;
    /// let b = registry.get_or_create("db")?;
    /// a.force_open();
    /// assert_eq!(b.state(), fluxgate_core::State::ForcedOpen); // one breaker
    /// let err = registry.get_or_create("bad").unwrap_err();
    /// assert_eq!(err.to_string(), "CircuitBreaker max_half_open_calls must be >= 1, got 0");
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn get_or_create(&self, name: &str) -> Result<F, ConfigError> {
        if let Some(b) = self.inner.breakers.get(name) {
            return Ok(b);
        }
        let config = self.config();
        let shard = self.inner.breakers.shard_of(name);
        let mut map = self.inner.breakers.write(shard);
        if let Some(b) = map.get(name) {
            return Ok(b.clone());
        }
        let breaker = self.builder_for(&config, name).build()?;
        if let Some(on_create) = &self.inner.on_create {
            let hook = catch_unwind(AssertUnwindSafe(|| on_create(&breaker)));
            if let Err(panic) = hook {
                // The breaker is not kept: its listeners let go of it, so the next try
                // does not leave a second circuit attached under the same name.
                drop(map);
                retire(breaker.core(), false);
                resume_unwind(panic);
            }
        }
        map.insert(Arc::from(name), breaker.clone());
        Ok(breaker)
    }

    /// The breaker `name` if it exists (never builds one).
    ///
    /// ```
    /// let r: fluxgate_core::registry::Registry = fluxgate_core::registry::Registry::new();
    /// assert!(r.get("db").is_none());
    /// r.get_or_create("db")?;
    /// assert!(r.get("db").is_some());
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn get(&self, name: &str) -> Option<F> {
        self.inner.breakers.get(name)
    }

    /// Checks the configuration `name` would get (template + override) without building
    /// a breaker or telling a listener: a dry run for configuration loaders.
    ///
    /// ```
    /// use fluxgate_core::registry::Registry;
    /// let r: Registry = Registry::builder().breaker("bad", |b| b.max_half_open_calls(0)).build();
    /// assert!(r.check("good").is_ok());
    /// assert!(r.check("bad").is_err());
    /// ```
    pub fn check(&self, name: &str) -> Result<(), ConfigError> {
        let config = self.config();
        self.builder_for(&config, name).check()
    }

    /// The names of the breakers built so far, sorted.
    ///
    /// ```
    /// let r: fluxgate_core::registry::Registry = fluxgate_core::registry::Registry::new();
    /// r.get_or_create("b")?;
    /// r.get_or_create("a")?;
    /// assert_eq!(r.names(), ["a", "b"]);
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn names(&self) -> Vec<String> {
        let mut names = self.inner.breakers.collect(|k, _| k.to_string());
        names.sort_unstable();
        names
    }

    /// How many breakers exist.
    ///
    /// ```
    /// let r: fluxgate_core::registry::Registry = fluxgate_core::registry::Registry::new();
    /// r.get_or_create("a")?;
    /// assert_eq!(r.len(), 1);
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn len(&self) -> usize {
        (0..self.inner.breakers.shards())
            .map(|i| self.inner.breakers.read(i).len())
            .sum()
    }

    /// Whether no breaker exists yet.
    ///
    /// ```
    /// assert!(fluxgate_core::registry::Registry::<fluxgate_core::CircuitBreaker>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every breaker's [`info()`](crate::CircuitBreaker::info), sorted by name (each read
    /// on its own, not one atomic picture of all).
    ///
    /// ```
    /// let r: fluxgate_core::registry::Registry = fluxgate_core::registry::Registry::new();
    /// r.get_or_create("db")?.force_open();
    /// let infos = r.snapshot();
    /// assert_eq!((infos[0].name.as_str(), infos[0].state), ("db", fluxgate_core::State::ForcedOpen));
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn snapshot(&self) -> Vec<Info> {
        let mut infos: Vec<Info> = self
            .inner
            .breakers
            .collect(|_, b| b.clone())
            .into_iter()
            .map(|b| b.core().info())
            .collect();
        infos.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        infos
    }

    /// Moves every breaker to `closed` (each emits its closed→… signal, SM-13).
    ///
    /// ```
    /// let r: fluxgate_core::registry::Registry = fluxgate_core::registry::Registry::new();
    /// r.get_or_create("db")?.force_open();
    /// r.reset_all();
    /// assert_eq!(r.get("db").unwrap().state(), fluxgate_core::State::Closed);
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn reset_all(&self) {
        for b in self.inner.breakers.collect(|_, b| b.clone()) {
            b.core().transition(None, State::Closed, true);
        }
    }

    /// Removes the breaker `name` and forgets its override; the breaker is retired and
    /// every one of its listeners gets `on_detach(name)` once (after the signals it had
    /// already queued, waited for up to one second). Whether a breaker was removed.
    ///
    /// ```
    /// let r: fluxgate_core::registry::Registry = fluxgate_core::registry::Registry::new();
    /// let old = r.get_or_create("db")?;
    /// assert!(r.remove("db"));
    /// assert!(!r.remove("db"));
    /// assert!(r.get("db").is_none());
    /// old.force_open();                                      // retired: nothing happens
    /// assert_eq!(old.state(), fluxgate_core::State::Closed);
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn remove(&self, name: &str) -> bool {
        if let Some(b) = self.get(name) {
            drain_signals(b.core());
        }
        let mut config = self.config_mut();
        config.overrides.remove(name);
        let shard = self.inner.breakers.shard_of(name);
        let mut map = self.inner.breakers.write(shard);
        drop(config);
        let Some(b) = map.remove(name) else {
            return false;
        };
        // Under the shard's lock: a new breaker of the same name is attached only after
        // this one is detached, so its listeners never drop the new one's series.
        retire(b.core(), false);
        true
    }

    /// Replaces the override of `name` with `configure` and, if the breaker exists,
    /// rebuilds it live: the new breaker carries on the old one's state and, when the
    /// window's shape is unchanged, its window (see the [module documentation](self)).
    /// `Ok(None)` when the breaker did not exist yet (the override applies when it is
    /// built). On error nothing changes, nor when `configure` panics (the panic goes on
    /// to the caller).
    ///
    /// ```
    /// use fluxgate_core::registry::Registry;
    /// use fluxgate_core::trippers::FailureStreak;
    /// let r: Registry = Registry::new();
    /// let cb = r.get_or_create("db")?;
    /// let _ = cb.call(|| Err::<(), _>(std::io::Error::other("x")));
    /// let change = r.reconfigure("db", |b| b.tripper(FailureStreak::new(1)))?.unwrap();
    /// assert!(change.window_kept);
    /// let cb = r.get("db").unwrap();                       // fetch again after a change
    /// assert_eq!(cb.info().metric.failure_count, 1);
    /// assert!(r.reconfigure("db", |b| b.max_half_open_calls(0)).is_err());
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn reconfigure(
        &self,
        name: &str,
        configure: impl Fn(Builder<F>) -> Builder<F> + Send + Sync + 'static,
    ) -> Result<Option<Reconfigured>, ConfigError> {
        let configure: Configure<F> = Arc::new(configure);
        let mut config = self.config_mut();
        let previous = config.overrides.insert(name.to_owned(), configure);
        // The closure is the caller's: one that panics is taken back like one that does
        // not validate, and the panic goes on to the caller.
        let checked = catch_unwind(AssertUnwindSafe(|| self.builder_for(&config, name).check()));
        if !matches!(checked, Ok(Ok(()))) {
            match previous {
                Some(p) => config.overrides.insert(name.to_owned(), p),
                None => config.overrides.remove(name),
            };
            match checked {
                Err(panic) => resume_unwind(panic),
                Ok(result) => result?,
            }
        }
        self.rebuild(&config, name)
    }

    /// Replaces the template and rebuilds every existing breaker live (each keeps its
    /// override on top), all or nothing: if the new template makes any breaker's
    /// configuration invalid, that error is returned and nothing changes (as when
    /// `configure` panics; the panic goes on to the caller).
    ///
    /// ```
    /// use fluxgate_core::registry::Registry;
    /// let r: Registry = Registry::new();
    /// r.get_or_create("a")?;
    /// r.get_or_create("b")?;
    /// let changes = r.set_defaults(|b| b.max_half_open_calls(1))?;
    /// assert_eq!(changes.len(), 2);
    /// assert!(r.set_defaults(|b| b.max_half_open_calls(0)).is_err());
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn set_defaults(
        &self,
        configure: impl Fn(Builder<F>) -> Builder<F> + Send + Sync + 'static,
    ) -> Result<Vec<Reconfigured>, ConfigError> {
        let configure: Configure<F> = Arc::new(configure);
        let mut config = self.config_mut();
        let previous = std::mem::replace(&mut config.defaults, configure);
        let names = self.names();
        let checked = catch_unwind(AssertUnwindSafe(|| {
            names
                .iter()
                .try_for_each(|name| self.builder_for(&config, name).check())
        }));
        match checked {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                config.defaults = previous;
                return Err(e);
            }
            Err(panic) => {
                config.defaults = previous;
                resume_unwind(panic);
            }
        }
        let mut changes = Vec::with_capacity(names.len());
        for name in &names {
            if let Some(change) = self.rebuild(&config, name)? {
                changes.push(change);
            }
        }
        Ok(changes)
    }

    /// Rebuilds the live breaker `name` under `config` (held for writing by the caller).
    fn rebuild(&self, config: &Config<F>, name: &str) -> Result<Option<Reconfigured>, ConfigError> {
        let shard = self.inner.breakers.shard_of(name);
        // The old breaker's queued signals reach its listeners first (waited for briefly,
        // with no lock of the map held): what is still queued when its successor takes
        // over is dropped, so that no old signal comes after the successor's.
        let old = self.inner.breakers.read(shard).get(name).cloned();
        if let Some(old) = old {
            drain_signals(old.core());
        }
        let mut map = self.inner.breakers.write(shard);
        let Some(old) = map.get(name) else {
            return Ok(None);
        };
        let (new, succession) = self
            .builder_for(config, name)
            .build_succeeding(old.core())?;
        map.insert(Arc::from(name), new);
        drop(map);
        let change = Reconfigured {
            name: name.to_owned(),
            state: succession.state,
            window_kept: succession.window_kept,
            old_window: succession.old_window,
            new_window: succession.new_window,
        };
        tracing::info!(
            target: "fluxgate",
            circuit = name,
            state = %change.state,
            window_kept = change.window_kept,
            old_window = change.old_window.as_deref().unwrap_or("custom"),
            new_window = change.new_window.as_deref().unwrap_or("custom"),
            "circuit reconfigured"
        );
        Ok(Some(change))
    }
}

/// Lets the signals `core` has queued reach its listeners (waited for briefly), before a
/// removal takes the lock its `retire` then runs under: the wait holds no lock.
pub(crate) fn drain_signals(core: &crate::core::Core) {
    if core.pending_signals() > 0 {
        core.flush_signals(DETACH_FLUSH);
    }
}

/// Retires a breaker that left a registry or a keyed breaker: no more transitions, then
/// (after its queued signals, waited for briefly) `on_detach` to every listener.
pub(crate) fn retire(core: &crate::core::Core, only_if_closed: bool) -> bool {
    if !core.retire(only_if_closed) {
        return false;
    }
    drain_signals(core);
    core.detach_listeners();
    true
}
