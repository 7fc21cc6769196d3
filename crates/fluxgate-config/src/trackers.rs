//! Trackers by name: the application names the error types (and predicates) a
//! configuration file may mention, and `tracker` fields combine those names with `&`, `|`
//! and `!`.
//!
//! A file cannot name a Rust type, so the application gives each tracker a name once, in
//! code, and the file refers to it: `tracker = "io & !not_found"`. `All` is always known.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use fluxgate_core::trackers::{self, Tracker, TypeOf};

use crate::expr::{self, Call, Expr, ExprError, err};

/// The trackers a configuration may name.
///
/// ```
/// use std::io;
/// use fluxgate_config::Trackers;
/// use fluxgate_core::trackers::Tracker;
///
/// let known = Trackers::new()
///     .add::<io::Error>("io")
///     .add_fn("timeout", |e| e.to_string().contains("timed out"));
/// let t = known.build(&fluxgate_config::parse_tracker("io & !timeout").unwrap()).unwrap();
/// assert!(t.track(&io::Error::other("reset")));
/// assert!(!t.track(&io::Error::other("timed out")));
/// assert_eq!(known.names().collect::<Vec<_>>(), ["All", "io", "timeout"]);
/// ```
#[derive(Clone)]
pub struct Trackers {
    by_name: BTreeMap<String, Arc<dyn Tracker>>,
}

impl fmt::Debug for Trackers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

impl Default for Trackers {
    fn default() -> Self {
        Trackers::new()
    }
}

impl Trackers {
    /// Only `All` (every error).
    ///
    /// ```
    /// assert_eq!(fluxgate_config::Trackers::new().names().collect::<Vec<_>>(), ["All"]);
    /// ```
    pub fn new() -> Trackers {
        let mut by_name: BTreeMap<String, Arc<dyn Tracker>> = BTreeMap::new();
        by_name.insert("All".into(), Arc::new(trackers::All));
        Trackers { by_name }
    }

    /// `name` tracks errors that are a `T` or have one in their `source()` chain
    /// (`TypeOf::<T>`). A name is a word (letters, digits, `_`, `-`, `.`, `:`, starting
    /// with a letter or `_`); adding a name again replaces it.
    ///
    /// ```
    /// let t = fluxgate_config::Trackers::new().add::<std::io::Error>("io");
    /// assert!(t.contains("io"));
    /// ```
    #[allow(clippy::should_implement_trait)] // the name the builder reads best with
    pub fn add<T: StdError + 'static>(self, name: &str) -> Trackers {
        self.add_tracker(name, TypeOf::<T>::new())
    }

    /// `name` tracks the errors a predicate accepts.
    ///
    /// ```
    /// let t = fluxgate_config::Trackers::new().add_fn("timeout", |e| e.to_string().contains("timed out"));
    /// assert!(t.contains("timeout"));
    /// ```
    pub fn add_fn<F>(self, name: &str, predicate: F) -> Trackers
    where
        F: Fn(&(dyn StdError + 'static)) -> bool + Send + Sync + 'static,
    {
        self.add_tracker(name, predicate)
    }

    /// `name` is any tracker (a `Custom`, a combination…).
    ///
    /// ```
    /// use fluxgate_core::trackers::Custom;
    /// let t = fluxgate_config::Trackers::new()
    ///     .add_tracker("not_found", Custom::new(|e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound));
    /// assert!(t.contains("not_found"));
    /// ```
    pub fn add_tracker(mut self, name: &str, tracker: impl Tracker) -> Trackers {
        self.by_name.insert(name.to_owned(), Arc::new(tracker));
        self
    }

    /// Whether `name` is known.
    ///
    /// ```
    /// assert!(fluxgate_config::Trackers::new().contains("All"));
    /// ```
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The known names, sorted.
    ///
    /// ```
    /// assert_eq!(fluxgate_config::Trackers::new().names().count(), 1);
    /// ```
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Checks that every name of an expression is known; the error names the first
    /// unknown one, where it is, and lists the known ones.
    ///
    /// ```
    /// use fluxgate_config::{parse_tracker, Trackers};
    /// let err = Trackers::new().check(&parse_tracker("All & io").unwrap()).unwrap_err();
    /// assert_eq!(err.to_string(), "column 7: unknown tracker 'io' (known: All)");
    /// ```
    pub fn check(&self, e: &Expr<TrackerName>) -> Result<(), ExprError> {
        e.try_map(&mut |n: &TrackerName| {
            if self.contains(&n.name) {
                Ok(())
            } else {
                err(
                    n.column,
                    format!(
                        "unknown tracker '{}' (known: {})",
                        n.name,
                        self.names().collect::<Vec<_>>().join(", ")
                    ),
                )
            }
        })
        .map(drop)
    }

    /// Builds the tracker an expression describes (after [`check`](Self::check)).
    ///
    /// ```
    /// use fluxgate_config::{parse_tracker, Trackers};
    /// use fluxgate_core::trackers::Tracker;
    /// let t = Trackers::new().build(&parse_tracker("!All").unwrap()).unwrap();
    /// assert!(!t.track(&std::fmt::Error));
    /// ```
    pub fn build(&self, e: &Expr<TrackerName>) -> Result<Box<dyn Tracker>, ExprError> {
        self.check(e)?;
        Ok(e.fold(
            &mut |n: &TrackerName| match self.by_name.get(&n.name) {
                Some(t) => Box::new(Arc::clone(t)) as Box<dyn Tracker>,
                // `check` saw every name.
                None => Box::new(trackers::All),
            },
            &|a| Box::new(trackers::NotTracker(a)) as Box<dyn Tracker>,
            &|a, b| Box::new(trackers::And(a, b)) as Box<dyn Tracker>,
            &|a, b| Box::new(trackers::Or(a, b)) as Box<dyn Tracker>,
        ))
    }
}

/// A name in a tracker expression, and where it was written.
///
/// ```
/// let e = fluxgate_config::parse_tracker("io | timeout").unwrap();
/// assert_eq!(e.to_string(), "io | timeout");
/// ```
#[derive(Debug, Clone)]
pub struct TrackerName {
    /// The name.
    pub name: String,
    /// Its column (1-based).
    pub column: usize,
}

/// Names compare by name only: the same expression written with other spacing is the
/// same configuration.
impl PartialEq for TrackerName {
    fn eq(&self, other: &TrackerName) -> bool {
        self.name == other.name
    }
}

impl fmt::Display for TrackerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Parses a tracker expression: names combined by `&`, `|`, `!` and parentheses.
///
/// ```
/// let err = fluxgate_config::parse_tracker("io(1)").unwrap_err();
/// assert_eq!(err.to_string(), "column 3: a tracker name takes no arguments: 'io'");
/// ```
pub fn parse_tracker(text: &str) -> Result<Expr<TrackerName>, ExprError> {
    expr::parse(text)?.try_map(&mut |c: &Call| match c.args {
        None => Ok(TrackerName {
            name: c.name.clone(),
            column: c.column,
        }),
        Some(_) => err(
            c.column + c.name.chars().count(),
            format!("a tracker name takes no arguments: '{}'", c.name),
        ),
    })
}
