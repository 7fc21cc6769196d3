//! What a new configuration changes, breaker by breaker: the plan a live reload follows.

use std::fmt;

use fluxgate_core::registry::Reconfigured;

use crate::config::Config;

/// The difference between two configurations, by breaker name (each list sorted).
///
/// A breaker is *changed* when its effective configuration (its section laid over the
/// defaults) differs: a change of `[defaults]` changes every breaker that inherits the
/// changed field.
///
/// ```
/// use fluxgate_config::Config;
/// let old = Config::from_toml_str("[breakers.a]\n[breakers.b]\n[breakers.c]\n")?;
/// let new = Config::from_toml_str("[breakers.a]\n[breakers.b]\nstate = \"disabled\"\n[breakers.d]\n")?;
/// let changes = old.changes(&new);
/// assert_eq!(changes.added, ["d"]);
/// assert_eq!(changes.changed, ["b"]);
/// assert_eq!(changes.removed, ["c"]);
/// assert_eq!(changes.unchanged, ["a"]);
/// assert_eq!(changes.to_string(), "added d; changed b; removed c; 1 unchanged");
/// # Ok::<(), fluxgate_config::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Named by the new configuration only.
    pub added: Vec<String>,
    /// Named by both, with different effective configurations.
    pub changed: Vec<String>,
    /// Named by the old configuration only.
    pub removed: Vec<String>,
    /// Named by both, with the same effective configuration.
    pub unchanged: Vec<String>,
    /// Whether `[defaults]` changed (breakers the files do not name follow it).
    pub defaults_changed: bool,
    /// What the registry carried over for each breaker it reconfigured (filled by
    /// [`Live::apply`](crate::Live::apply)).
    pub reconfigured: Vec<Reconfigured>,
}

impl Changes {
    /// Whether nothing changes.
    ///
    /// ```
    /// let c = fluxgate_config::Config::default();
    /// assert!(c.changes(&c).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.changed.is_empty()
            && self.removed.is_empty()
            && !self.defaults_changed
    }
}

impl fmt::Display for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (label, names) in [
            ("added", &self.added),
            ("changed", &self.changed),
            ("removed", &self.removed),
        ] {
            if !names.is_empty() {
                parts.push(format!("{label} {}", names.join(", ")));
            }
        }
        if self.defaults_changed {
            parts.push("defaults changed".to_owned());
        }
        parts.push(format!("{} unchanged", self.unchanged.len()));
        f.write_str(&parts.join("; "))
    }
}

impl Config {
    /// What replacing `self` by `new` changes.
    ///
    /// ```
    /// use fluxgate_config::Config;
    /// let old = Config::from_toml_str("[defaults]\nmax_half_open_calls = 3\n[breakers.a]\n[breakers.b]\nmax_half_open_calls = 5\n")?;
    /// let new = Config::from_toml_str("[defaults]\nmax_half_open_calls = 4\n[breakers.a]\n[breakers.b]\nmax_half_open_calls = 5\n")?;
    /// let changes = old.changes(&new);
    /// assert!(changes.defaults_changed);
    /// assert_eq!(changes.changed, ["a"]); // b sets its own
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn changes(&self, new: &Config) -> Changes {
        let mut c = Changes {
            defaults_changed: self.defaults != new.defaults,
            ..Changes::default()
        };
        for (name, config) in &new.breakers {
            match self.breakers.get(name) {
                None => c.added.push(name.clone()),
                Some(old) if old != config => c.changed.push(name.clone()),
                Some(_) => c.unchanged.push(name.clone()),
            }
        }
        c.removed = self
            .breakers
            .keys()
            .filter(|n| !new.breakers.contains_key(*n))
            .cloned()
            .collect();
        c
    }
}
