//! Loading: a file's text → checked [`Config`], all or nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use fluxgate_core::{CircuitBreaker, ConfigError};

use crate::build::apply_parts;
use crate::duration::parse_duration;
use crate::error::{Error, Scope};
use crate::locate::{Lines, line_of};
use crate::model::{
    BreakerConfig, DUPLICATE_BREAKER, NULL_GIVEN, PermitConfig, PermitKind, RawBreaker, RawFile,
    RawPermit, RawRecovery, RawRetry, RawWindow, RecoveryConfig, RecoveryKind, RetryConfig,
    RetryKind, WindowConfig, WindowKind,
};
use crate::rules::{build_tripper, parse_tripper};
use crate::trackers::{Trackers, parse_tracker};

/// A file's format.
///
/// ```
/// use fluxgate_config::Format;
/// assert_eq!(Format::from_path("breakers.yml"), Some(Format::Yaml));
/// assert_eq!(Format::from_path("breakers.json"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML (`.toml`).
    Toml,
    /// YAML (`.yaml`, `.yml`).
    Yaml,
}

impl Format {
    /// The format a file's extension names.
    ///
    /// ```
    /// assert_eq!(fluxgate_config::Format::from_path("a/b.TOML"), Some(fluxgate_config::Format::Toml));
    /// ```
    pub fn from_path(path: impl AsRef<Path>) -> Option<Format> {
        let ext = path.as_ref().extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "toml" => Some(Format::Toml),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

/// A checked configuration: `[defaults]` and the named breakers laid over them.
///
/// Loading checks everything it can without the application's code: the file's shape
/// (unknown fields are errors), durations, expressions, and every component's parameters
/// the way `build()` checks them (each breaker is built once, at load). Tracker names are
/// checked when a breaker is built with the application's [`Trackers`], or up front with
/// [`check`](Self::check).
///
/// ```
/// use fluxgate_config::{Config, Trackers};
/// use fluxgate_core::CircuitBreaker;
///
/// let config = Config::from_toml_str(r#"
///     [defaults]
///     tripper = "FailureStreak(5) | (MinRequests(100) & FailureRate(0.5))"
///
///     [breakers.payment_api]
///     window = { type = "count", size = 200 }
///     retry = { type = "backoff", initial = "10s", max = "5m" }
/// "#)?;
/// let cb: CircuitBreaker = config.build("payment_api", &Trackers::new())?;
/// assert_eq!(cb.name(), "payment_api");
/// assert_eq!(config.names().collect::<Vec<_>>(), ["payment_api"]);
/// # Ok::<(), fluxgate_config::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    pub(crate) file: Option<String>,
    pub(crate) defaults: BreakerConfig,
    pub(crate) breakers: BTreeMap<String, BreakerConfig>,
    /// The fields each breaker's own section sets (the others come from `[defaults]`).
    pub(crate) own: BTreeMap<String, BTreeSet<&'static str>>,
    /// Tracker expressions as written (`None`: the defaults'), so that an unknown name's
    /// column matches the value the error shows.
    pub(crate) tracker_text: BTreeMap<Option<String>, String>,
    pub(crate) lines: Lines,
}

impl Default for Config {
    /// No breakers, D-1 defaults.
    fn default() -> Self {
        Config {
            file: None,
            defaults: BreakerConfig::default(),
            breakers: BTreeMap::new(),
            own: BTreeMap::new(),
            tracker_text: BTreeMap::new(),
            lines: Lines::default(),
        }
    }
}

impl PartialEq for Config {
    /// Two configurations are equal when they build the same breakers (where they were
    /// read from and how they were spelled do not count).
    fn eq(&self, other: &Config) -> bool {
        self.defaults == other.defaults && self.breakers == other.breakers
    }
}

impl Config {
    /// Reads TOML.
    ///
    /// ```
    /// let c = fluxgate_config::Config::from_toml_str("[breakers.a]\nstate = \"disabled\"\n")?;
    /// assert_eq!(c.get("a").state, fluxgate_config::InitialState::Disabled);
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn from_toml_str(text: &str) -> Result<Config, Error> {
        load(text, Format::Toml, None)
    }

    /// Reads YAML.
    ///
    /// ```
    /// let c = fluxgate_config::Config::from_yaml_str("breakers:\n  a:\n    state: disabled\n")?;
    /// assert_eq!(c.get("a").state, fluxgate_config::InitialState::Disabled);
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn from_yaml_str(text: &str) -> Result<Config, Error> {
        load(text, Format::Yaml, None)
    }

    /// Reads text of a given format.
    ///
    /// ```
    /// use fluxgate_config::{Config, Format};
    /// assert!(Config::from_str_as("", Format::Yaml)?.names().next().is_none());
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn from_str_as(text: &str, format: Format) -> Result<Config, Error> {
        load(text, format, None)
    }

    /// Reads a file; the extension says the format (`.toml`, `.yaml`, `.yml`). Errors name
    /// the path as given.
    ///
    /// ```
    /// let err = fluxgate_config::Config::from_path("breakers.ini").unwrap_err();
    /// assert_eq!(err.to_string(), "breakers.ini: unknown format: expected a .toml, .yaml or .yml file");
    /// ```
    pub fn from_path(path: impl AsRef<Path>) -> Result<Config, Error> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let Some(format) = Format::from_path(path) else {
            return Err(
                Error::new("unknown format: expected a .toml, .yaml or .yml file")
                    .in_file(Some(&file)),
            );
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::new(format!("cannot read the file: {e}")).in_file(Some(&file)))?;
        load(&text, format, Some(file))
    }

    /// The file this was read from, if any.
    ///
    /// ```
    /// assert_eq!(fluxgate_config::Config::default().file(), None);
    /// ```
    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// `[defaults]` laid over D-1: what a breaker the file does not name is built from.
    ///
    /// ```
    /// let c = fluxgate_config::Config::from_toml_str("[defaults]\nmax_half_open_calls = 3\n")?;
    /// assert_eq!(c.defaults().max_half_open_calls, 3);
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn defaults(&self) -> &BreakerConfig {
        &self.defaults
    }

    /// A breaker the file names, with the defaults filled in.
    ///
    /// ```
    /// let c = fluxgate_config::Config::from_toml_str("[defaults]\nmax_half_open_calls = 3\n[breakers.a]\n")?;
    /// assert_eq!(c.breaker("a").unwrap().max_half_open_calls, 3);
    /// assert!(c.breaker("b").is_none());
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn breaker(&self, name: &str) -> Option<&BreakerConfig> {
        self.breakers.get(name)
    }

    /// The configuration for `name`: its own section's, or the defaults.
    ///
    /// ```
    /// let c = fluxgate_config::Config::default();
    /// assert_eq!(c.get("anything"), c.defaults());
    /// ```
    pub fn get(&self, name: &str) -> &BreakerConfig {
        self.breakers.get(name).unwrap_or(&self.defaults)
    }

    /// The names of the breakers the file describes, sorted.
    ///
    /// ```
    /// let c = fluxgate_config::Config::from_yaml_str("breakers:\n  b: {}\n  a: {}\n")?;
    /// assert_eq!(c.names().collect::<Vec<_>>(), ["a", "b"]);
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.breakers.keys().map(String::as_str)
    }

    /// Checks every tracker expression against the application's names; the error names
    /// the first unknown one with its breaker, line and the known names.
    ///
    /// ```
    /// use fluxgate_config::{Config, Trackers};
    /// let c = Config::from_toml_str("[breakers.a]\ntracker = \"io\"\n")?;
    /// let err = c.check(&Trackers::new()).unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "line 2: breaker \"a\", field tracker = \"io\": column 1: unknown tracker 'io' (known: All)",
    /// );
    /// assert!(c.check(&Trackers::new().add::<std::io::Error>("io")).is_ok());
    /// # Ok::<(), fluxgate_config::Error>(())
    /// ```
    pub fn check(&self, trackers: &Trackers) -> Result<(), Error> {
        self.check_one(None, trackers)?;
        for name in self.breakers.keys() {
            self.check_one(Some(name), trackers)?;
        }
        Ok(())
    }

    /// Checks the tracker of `name` (or of the defaults).
    pub(crate) fn check_one(&self, name: Option<&str>, trackers: &Trackers) -> Result<(), Error> {
        let config = match name {
            Some(n) => self.get(n),
            None => &self.defaults,
        };
        trackers.check(&config.tracker).map_err(|e| {
            let e = self.error_at(name, "tracker", None, e.to_string());
            let key = e.breaker().map(str::to_owned);
            let text = self.tracker_text.get(&key).cloned();
            let mut e = e;
            e.0.value = Some(quote(&text.unwrap_or_else(|| config.tracker.to_string())));
            e
        })
    }

    /// An error about `field` of breaker `name` (or of the defaults, or of the section
    /// the field was inherited from), with its file and line.
    pub(crate) fn error_at(
        &self,
        name: Option<&str>,
        field: &str,
        value: Option<String>,
        message: String,
    ) -> Error {
        let top = field.split('.').next().unwrap_or(field);
        let scope = match name {
            Some(n) if self.own.get(n).is_some_and(|f| f.contains(top)) => {
                Scope::Breaker(n.to_owned())
            }
            // A breaker the file does not name, or a field it inherits: the defaults'.
            _ => Scope::Defaults,
        };
        let mut e = Error::at(scope.clone(), field, value, message).in_file(self.file.as_deref());
        e.0.line = self.lines.find(
            &path_of(&scope, field)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        e
    }
}

fn path_of(scope: &Scope, field: &str) -> Vec<String> {
    let mut path = match scope {
        Scope::Defaults => vec!["defaults".to_owned()],
        Scope::Breaker(n) => vec!["breakers".to_owned(), n.clone()],
    };
    path.extend(field.split('.').map(str::to_owned));
    path
}

pub(crate) fn quote(s: &str) -> String {
    format!("{s:?}")
}

fn load(text: &str, format: Format, file: Option<String>) -> Result<Config, Error> {
    let raw = parse(text, format).map_err(|e| e.in_file(file.as_deref()))?;
    let lines = match format {
        Format::Toml => Lines::toml(text),
        Format::Yaml => Lines::yaml(text),
    };
    let mut config = Config {
        file,
        lines,
        ..Config::default()
    };
    let at = |scope: &Scope, field: &str, value: Option<String>, message: String| {
        let mut e = Error::at(scope.clone(), field, value, message).in_file(config.file.as_deref());
        e.0.line = config.lines.find(
            &path_of(scope, field)
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        e
    };
    let none = RawBreaker::default();
    let defaults = resolve(
        raw.defaults.as_ref().unwrap_or(&none),
        &BreakerConfig::default(),
        &Scope::Defaults,
        &at,
    )?;
    let mut breakers = BTreeMap::new();
    let mut own = BTreeMap::new();
    for (name, section) in &raw.breakers {
        let section = section.as_ref().unwrap_or(&none);
        let scope = Scope::Breaker(name.clone());
        breakers.insert(name.clone(), resolve(section, &defaults, &scope, &at)?);
        own.insert(name.clone(), set_fields(section));
    }
    if let Some(t) = raw.defaults.as_ref().and_then(|d| d.tracker.clone()) {
        config.tracker_text.insert(None, t);
    }
    for (name, section) in &raw.breakers {
        if let Some(t) = section.as_ref().and_then(|s| s.tracker.clone()) {
            config.tracker_text.insert(Some(name.clone()), t);
        }
    }
    config.defaults = defaults;
    config.breakers = breakers;
    config.own = own;
    // Every component was checked on its own above; building each breaker once more
    // checks them together, exactly as the application's `build()` will.
    for name in std::iter::once(None).chain(config.breakers.keys().map(|n| Some(n.as_str()))) {
        let c = name.map_or(&config.defaults, |n| config.get(n));
        let builder = apply_parts(CircuitBreaker::builder(name.unwrap_or("defaults")), c, None);
        if let Err(e) = builder.build() {
            return Err(config.core_error(name, c, &e));
        }
    }
    Ok(config)
}

impl Config {
    /// A `ConfigError` from `build()`, attributed to the field of its component.
    pub(crate) fn core_error(
        &self,
        name: Option<&str>,
        c: &BreakerConfig,
        e: &ConfigError,
    ) -> Error {
        let (field, value) = match e.component() {
            "CountWindow" | "TimeWindow" => ("window", None),
            "Cooldown" | "Backoff" => ("retry", None),
            "Random" | "RampUp" => ("permit", None),
            "CircuitBreaker" => (
                "max_half_open_calls",
                Some(c.max_half_open_calls.to_string()),
            ),
            _ => ("tripper", Some(quote(&c.tripper.to_string()))),
        };
        self.error_at(name, field, value, e.to_string())
    }
}

fn set_fields(r: &RawBreaker) -> BTreeSet<&'static str> {
    let mut s = BTreeSet::new();
    let mut add = |set: bool, f| {
        if set {
            s.insert(f);
        }
    };
    add(r.window.is_some(), "window");
    add(r.tracker.is_some(), "tracker");
    add(r.tripper.is_some(), "tripper");
    add(r.retry.is_some(), "retry");
    add(r.permit.is_some(), "permit");
    add(r.max_half_open_calls.is_some(), "max_half_open_calls");
    add(r.measure_durations.is_some(), "measure_durations");
    add(r.state.is_some(), "state");
    add(r.recovery.is_some(), "recovery");
    add(r.probe_timeout.is_some(), "probe_timeout");
    s
}

/// Reads the file's shape: syntax, types, unknown fields.
fn parse(text: &str, format: Format) -> Result<RawFile, Error> {
    match format {
        Format::Toml => {
            let de = toml::Deserializer::parse(text).map_err(|e| toml_error(text, &e, None))?;
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = segments(e.path());
                toml_error(text, e.inner(), Some(path))
            })
        }
        Format::Yaml => {
            if text.lines().all(|l| {
                let t = l.trim();
                t.is_empty() || t.starts_with('#') || t == "---"
            }) {
                return Ok(RawFile::default());
            }
            if let Some(line) = flow_too_deep(text) {
                let mut e = Error::new(format!(
                    "brackets nested deeper than {MAX_FLOW_DEPTH} levels"
                ));
                e.0.line = Some(line);
                return Err(e);
            }
            let de = serde_norway::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let path = segments(e.path());
                let mut err = yaml_error(e.inner(), path.clone());
                // The YAML parser places a null field's error at the start of the mapping
                // the field is in; the line that matters is the field's own, further down.
                if err.message() == NULL_GIVEN {
                    let keys: Vec<&str> = path.iter().map(String::as_str).collect();
                    if let Some(line) = Lines::yaml(text).find(&keys) {
                        err.0.line = Some(err.0.line.map_or(line, |l| l.max(line)));
                    }
                }
                // The YAML parser places the error at the start of the `breakers`
                // mapping; the line that matters is the one that repeats a name.
                if err.0.scope.is_none()
                    && err.field() == Some("breakers")
                    && err.message().starts_with(DUPLICATE_BREAKER)
                {
                    if let Some(line) = Lines::yaml_repeated(text, &["breakers"]) {
                        err.0.line = Some(line);
                    }
                }
                err
            })
        }
    }
}

/// The deepest nesting of YAML flow collections (`[…]`, `{…}`) a file may have. The YAML
/// parser refuses more than 128 levels anyway, but only after a scan whose time grows
/// with the square of the depth (seconds for a 100 KB file), so deeper text is refused
/// before it is parsed.
const MAX_FLOW_DEPTH: usize = 128;

/// The line where the flow collections of `text` nest deeper than [`MAX_FLOW_DEPTH`],
/// if they do. Brackets inside quoted strings and comments do not count (a quote or `#`
/// starts one only at the start of a token, as in YAML); brackets in the text of a block
/// scalar (`|`, `>`) do count, so such text with more than 128 unmatched opening brackets
/// is refused too. An unmatched closing bracket is left to the parser.
fn flow_too_deep(text: &str) -> Option<usize> {
    let (mut depth, mut line) = (0usize, 1usize);
    let mut chars = text.chars().peekable();
    let mut after_space = true;
    while let Some(c) = chars.next() {
        match c {
            '\n' => line += 1,
            '#' if after_space => while chars.next_if(|&c| c != '\n').is_some() {},
            '"' | '\'' if after_space => {
                // To the closing quote: `\` escapes in double quotes, `''` in single.
                while let Some(q) = chars.next() {
                    match q {
                        '\n' => line += 1,
                        '\\' if c == '"' => line += usize::from(chars.next() == Some('\n')),
                        q if q == c => {
                            if c == '\'' && chars.next_if_eq(&'\'').is_some() {
                                continue;
                            }
                            break;
                        }
                        _ => {}
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Some(line);
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        after_space = c.is_whitespace() || matches!(c, '[' | '{' | ',');
    }
    None
}

fn segments(path: &serde_path_to_error::Path) -> Vec<String> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(key.clone()),
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect()
}

/// An error at a key path: the scope and field the path names.
fn located(path: &[String], message: String) -> Error {
    let (scope, rest) = match path {
        [d, rest @ ..] if d == "defaults" => (Some(Scope::Defaults), rest),
        [b, name, rest @ ..] if b == "breakers" => (Some(Scope::Breaker(name.clone())), rest),
        _ => (None, path),
    };
    let mut e = Error::new(message);
    e.0.scope = scope;
    if !rest.is_empty() {
        e.0.field = Some(rest.join("."));
    }
    e
}

fn toml_error(text: &str, e: &toml::de::Error, path: Option<Vec<String>>) -> Error {
    let mut err = located(
        path.as_deref().unwrap_or_default(),
        e.message().trim().to_owned(),
    );
    err.0.line = e.span().map(|s| line_of(text, s.start));
    err
}

fn yaml_error(e: &serde_norway::Error, path: Vec<String>) -> Error {
    // serde_norway writes "PATH: MESSAGE at line L column C"; keep the message.
    let mut message = e.to_string();
    if let Some(loc) = e.location() {
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        message = message.replacen(&suffix, "", 1);
    }
    // The YAML crate's own path may stop short of ours (an unknown field's key).
    for n in (1..=path.len()).rev() {
        if let Some(m) = message.strip_prefix(&format!("{}: ", path[..n].join("."))) {
            message = m.to_owned();
            break;
        }
    }
    let mut err = located(&path, message);
    err.0.line = e.location().map(|l| l.line());
    err
}

type At<'a> = dyn Fn(&Scope, &str, Option<String>, String) -> Error + 'a;

fn duration(at: &At<'_>, scope: &Scope, field: &str, text: &str) -> Result<Duration, Error> {
    parse_duration(text).map_err(|m| at(scope, field, Some(quote(text)), m))
}

fn required<T: Clone>(
    at: &At<'_>,
    scope: &Scope,
    field: &str,
    kind: &str,
    value: &Option<T>,
) -> Result<T, Error> {
    value.clone().ok_or_else(|| {
        let (top, key) = field.split_once('.').unwrap_or((field, field));
        at(scope, top, None, format!("a {kind} {top} needs `{key}`"))
    })
}

fn refuse<T>(
    at: &At<'_>,
    scope: &Scope,
    field: &str,
    kind: &str,
    value: &Option<T>,
) -> Result<(), Error> {
    if value.is_some() {
        let (top, key) = field.split_once('.').unwrap_or((field, field));
        return Err(at(
            scope,
            field,
            None,
            format!("`{key}` is not a parameter of a {kind} {top}"),
        ));
    }
    Ok(())
}

/// Lays one section over `base`, checking each field it sets on its own.
fn resolve(
    raw: &RawBreaker,
    base: &BreakerConfig,
    scope: &Scope,
    at: &At<'_>,
) -> Result<BreakerConfig, Error> {
    let mut c = base.clone();
    let component = |field: &str, value: Option<String>, r: Result<(), ConfigError>| {
        r.map_err(|e| at(scope, field, value, e.to_string()))
    };
    if let Some(w) = &raw.window {
        c.window = window(w, scope, at)?;
        let check = match c.window {
            WindowConfig::Count(n) => fluxgate_core::windows::Window::validate(
                &fluxgate_core::windows::CountWindow::new(n),
            ),
            WindowConfig::Time(d) => fluxgate_core::windows::Window::validate(
                &fluxgate_core::windows::TimeWindow::new(d),
            ),
        };
        let value = match (w.kind, &w.size, &w.duration) {
            (WindowKind::Count, Some(n), _) => ("window.size", Some(n.to_string())),
            (WindowKind::Time, _, Some(d)) => ("window.duration", Some(quote(d))),
            _ => ("window", None),
        };
        component(value.0, value.1, check)?;
    }
    if let Some(t) = &raw.tracker {
        c.tracker =
            parse_tracker(t).map_err(|e| at(scope, "tracker", Some(quote(t)), e.to_string()))?;
    }
    if let Some(t) = &raw.tripper {
        let value = Some(quote(t));
        c.tripper =
            parse_tripper(t).map_err(|e| at(scope, "tripper", value.clone(), e.to_string()))?;
        let built = build_tripper(&c.tripper);
        component("tripper", value.clone(), built.validate())?;
        let mut thresholds = Vec::new();
        built.slow_thresholds(&mut thresholds);
        thresholds.sort();
        thresholds.dedup();
        if thresholds.len() > fluxgate_core::MAX_SLOW_THRESHOLDS {
            return Err(at(
                scope,
                "tripper",
                value,
                format!(
                    "at most {} distinct SlowRate thresholds per breaker, got {}",
                    fluxgate_core::MAX_SLOW_THRESHOLDS,
                    thresholds.len()
                ),
            ));
        }
    }
    if let Some(r) = &raw.retry {
        c.retry = retry(r, scope, at)?;
        let check = match c.retry {
            RetryConfig::Always | RetryConfig::Never => Ok(()),
            RetryConfig::Cooldown { duration, jitter } => fluxgate_core::retries::Retry::validate(
                &fluxgate_core::retries::Cooldown::new(duration).jitter(jitter),
            ),
            RetryConfig::Backoff {
                initial,
                multiplier,
                max,
                jitter,
            } => fluxgate_core::retries::Retry::validate(
                &fluxgate_core::retries::Backoff::new(initial)
                    .multiplier(multiplier)
                    .max(max)
                    .jitter(jitter),
            ),
        };
        if let Err(e) = check {
            let key = match e.parameter() {
                "duration" | "jitter" | "initial" | "multiplier" | "max" => e.parameter(),
                _ => "",
            };
            let value = retry_value(r, key);
            let field = if key.is_empty() {
                "retry".to_owned()
            } else {
                format!("retry.{key}")
            };
            return Err(at(scope, &field, value, e.to_string()));
        }
    }
    if let Some(p) = &raw.permit {
        c.permit = permit(p, scope, at)?;
        let check =
            match c.permit {
                PermitConfig::All => Ok(()),
                PermitConfig::Random(r) => fluxgate_core::permits::Permit::validate(
                    &fluxgate_core::permits::Random::new(r),
                ),
                PermitConfig::RampUp {
                    initial,
                    final_ratio,
                    duration,
                } => fluxgate_core::permits::Permit::validate(
                    &fluxgate_core::permits::RampUp::new(initial, final_ratio, duration),
                ),
            };
        if let Err(e) = check {
            let (key, value) = match e.parameter() {
                "ratio" => ("ratio", p.ratio.map(|v| v.to_string())),
                "initial" => ("initial", p.initial.map(|v| v.to_string())),
                "final" => ("final", p.final_ratio.map(|v| v.to_string())),
                "duration" => ("duration", p.duration.as_deref().map(quote)),
                _ => ("", None),
            };
            let field = if key.is_empty() {
                "permit".to_owned()
            } else {
                format!("permit.{key}")
            };
            return Err(at(scope, &field, value, e.to_string()));
        }
    }
    if let Some(n) = raw.max_half_open_calls {
        let value = Some(n.to_string());
        c.max_half_open_calls = usize::try_from(n).map_err(|_| {
            at(
                scope,
                "max_half_open_calls",
                value.clone(),
                format!("too large for this platform, got {n}"),
            )
        })?;
        if n == 0 {
            return Err(at(
                scope,
                "max_half_open_calls",
                value,
                ConfigError::new("CircuitBreaker", "max_half_open_calls", n, ">= 1").to_string(),
            ));
        }
    }
    if let Some(m) = raw.measure_durations {
        c.measure_durations = m;
    }
    if let Some(s) = raw.state {
        c.state = s;
    }
    if let Some(r) = &raw.recovery {
        c.recovery = recovery(r, scope, at)?;
    }
    if let Some(t) = &raw.probe_timeout {
        let d = duration(at, scope, "probe_timeout", t)?;
        if d.is_zero() {
            return Err(at(
                scope,
                "probe_timeout",
                Some(quote(t)),
                ConfigError::new("CircuitBreaker", "probe_timeout", "0s", "> 0").to_string(),
            ));
        }
        c.probe_timeout = Some(d);
    }
    Ok(c)
}

fn recovery(r: &RawRecovery, scope: &Scope, at: &At<'_>) -> Result<RecoveryConfig, Error> {
    use fluxgate_core::recovery::{Probes, Recovery, Successes};
    let n_value = r.n.map(|n| n.to_string());
    let checked = |v: Result<(), ConfigError>| {
        v.map_err(|e| at(scope, "recovery.n", n_value.clone(), e.to_string()))
    };
    match r.kind {
        RecoveryKind::ByTripper => {
            refuse(at, scope, "recovery.n", "by_tripper", &r.n)?;
            refuse(at, scope, "recovery.rule", "by_tripper", &r.rule)?;
            Ok(RecoveryConfig::ByTripper)
        }
        RecoveryKind::Successes => {
            refuse(at, scope, "recovery.rule", "successes", &r.rule)?;
            let n = required(at, scope, "recovery.n", "successes", &r.n)?;
            checked(Successes::new(n).validate())?;
            Ok(RecoveryConfig::Successes(n))
        }
        RecoveryKind::Probes => {
            let n = required(at, scope, "recovery.n", "probes", &r.n)?;
            let text = required(at, scope, "recovery.rule", "probes", &r.rule)?;
            let value = Some(quote(&text));
            let rule = parse_tripper(&text)
                .map_err(|e| at(scope, "recovery.rule", value.clone(), e.to_string()))?;
            let built = Probes::new(n, build_tripper(&rule));
            match built.validate() {
                Ok(()) => Ok(RecoveryConfig::Probes { n, rule }),
                Err(e) if e.parameter() == "n" => {
                    Err(at(scope, "recovery.n", n_value.clone(), e.to_string()))
                }
                Err(e) => Err(at(scope, "recovery.rule", value, e.to_string())),
            }
        }
    }
}

fn retry_value(r: &RawRetry, key: &str) -> Option<String> {
    match key {
        "duration" => r.duration.as_deref().map(quote),
        "initial" => r.initial.as_deref().map(quote),
        "max" => r.max.as_deref().map(quote),
        "jitter" => r.jitter.map(|v| v.to_string()),
        "multiplier" => r.multiplier.map(|v| v.to_string()),
        _ => None,
    }
}

fn window(w: &RawWindow, scope: &Scope, at: &At<'_>) -> Result<WindowConfig, Error> {
    match w.kind {
        WindowKind::Count => {
            refuse(at, scope, "window.duration", "count", &w.duration)?;
            let n = required(at, scope, "window.size", "count", &w.size)?;
            // A size beyond usize is out of the window's range anyway; clamp so the
            // core reports it with its own words.
            Ok(WindowConfig::Count(
                usize::try_from(n).unwrap_or(usize::MAX),
            ))
        }
        WindowKind::Time => {
            refuse(at, scope, "window.size", "time", &w.size)?;
            let d = required(at, scope, "window.duration", "time", &w.duration)?;
            Ok(WindowConfig::Time(duration(
                at,
                scope,
                "window.duration",
                &d,
            )?))
        }
    }
}

fn retry(r: &RawRetry, scope: &Scope, at: &At<'_>) -> Result<RetryConfig, Error> {
    match r.kind {
        RetryKind::Always | RetryKind::Never => {
            let kind = if r.kind == RetryKind::Always {
                "always"
            } else {
                "never"
            };
            refuse(at, scope, "retry.duration", kind, &r.duration)?;
            refuse(at, scope, "retry.jitter", kind, &r.jitter)?;
            refuse(at, scope, "retry.initial", kind, &r.initial)?;
            refuse(at, scope, "retry.multiplier", kind, &r.multiplier)?;
            refuse(at, scope, "retry.max", kind, &r.max)?;
            Ok(if r.kind == RetryKind::Always {
                RetryConfig::Always
            } else {
                RetryConfig::Never
            })
        }
        RetryKind::Cooldown => {
            refuse(at, scope, "retry.initial", "cooldown", &r.initial)?;
            refuse(at, scope, "retry.multiplier", "cooldown", &r.multiplier)?;
            refuse(at, scope, "retry.max", "cooldown", &r.max)?;
            let d = required(at, scope, "retry.duration", "cooldown", &r.duration)?;
            Ok(RetryConfig::Cooldown {
                duration: duration(at, scope, "retry.duration", &d)?,
                jitter: r.jitter.unwrap_or(0.0),
            })
        }
        RetryKind::Backoff => {
            refuse(at, scope, "retry.duration", "backoff", &r.duration)?;
            let i = required(at, scope, "retry.initial", "backoff", &r.initial)?;
            let initial = duration(at, scope, "retry.initial", &i)?;
            let max = match &r.max {
                Some(m) => duration(at, scope, "retry.max", m)?,
                None => BACKOFF_MAX,
            };
            Ok(RetryConfig::Backoff {
                initial,
                multiplier: r.multiplier.unwrap_or(2.0),
                max,
                jitter: r.jitter.unwrap_or(0.0),
            })
        }
    }
}

/// `Backoff`'s default `max` (RT-3).
const BACKOFF_MAX: Duration = Duration::from_secs(300);

fn permit(p: &RawPermit, scope: &Scope, at: &At<'_>) -> Result<PermitConfig, Error> {
    match p.kind {
        PermitKind::All => {
            refuse(at, scope, "permit.ratio", "all", &p.ratio)?;
            refuse(at, scope, "permit.initial", "all", &p.initial)?;
            refuse(at, scope, "permit.final", "all", &p.final_ratio)?;
            refuse(at, scope, "permit.duration", "all", &p.duration)?;
            Ok(PermitConfig::All)
        }
        PermitKind::Random => {
            refuse(at, scope, "permit.initial", "random", &p.initial)?;
            refuse(at, scope, "permit.final", "random", &p.final_ratio)?;
            refuse(at, scope, "permit.duration", "random", &p.duration)?;
            Ok(PermitConfig::Random(required(
                at,
                scope,
                "permit.ratio",
                "random",
                &p.ratio,
            )?))
        }
        PermitKind::RampUp => {
            refuse(at, scope, "permit.ratio", "ramp_up", &p.ratio)?;
            let initial = required(at, scope, "permit.initial", "ramp_up", &p.initial)?;
            let final_ratio = required(at, scope, "permit.final", "ramp_up", &p.final_ratio)?;
            let d = required(at, scope, "permit.duration", "ramp_up", &p.duration)?;
            Ok(PermitConfig::RampUp {
                initial,
                final_ratio,
                duration: duration(at, scope, "permit.duration", &d)?,
            })
        }
    }
}
