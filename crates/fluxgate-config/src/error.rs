//! The one error a bad configuration gives: where (file, line, breaker, field), what was
//! written there, and what is wrong with it.

use std::fmt;

/// Which part of the file an error is in.
///
/// ```
/// use fluxgate_config::Scope;
/// assert_eq!(Scope::Breaker("payment_api".into()).to_string(), "breaker \"payment_api\"");
/// assert_eq!(Scope::Defaults.to_string(), "defaults");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The `[defaults]` section.
    Defaults,
    /// A `[breakers.<name>]` section.
    Breaker(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Defaults => f.write_str("defaults"),
            Scope::Breaker(name) => write!(f, "breaker {name:?}"),
        }
    }
}

/// A configuration that cannot be used, with everything needed to find and fix it.
///
/// One line: `FILE, line N: breaker "NAME", field FIELD = VALUE: what is wrong`; the parts
/// that are not known (a string has no file; a syntax error belongs to no field) are left
/// out.
///
/// ```
/// let text = "[breakers.payment_api]\ntripper = \"FailureRate(1.5)\"\n";
/// let err = fluxgate_config::Config::from_toml_str(text).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "line 2: breaker \"payment_api\", field tripper = \"FailureRate(1.5)\": \
///      FailureRate ratio must be in (0, 1], got 1.5",
/// );
/// assert_eq!(err.line(), Some(2));
/// assert_eq!(err.field(), Some("tripper"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub(crate) Box<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Inner {
    pub(crate) file: Option<String>,
    pub(crate) line: Option<usize>,
    pub(crate) scope: Option<Scope>,
    pub(crate) field: Option<String>,
    pub(crate) value: Option<String>,
    pub(crate) message: String,
}

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Error {
        Error(Box::new(Inner {
            file: None,
            line: None,
            scope: None,
            field: None,
            value: None,
            message: message.into(),
        }))
    }

    pub(crate) fn at(
        scope: Scope,
        field: impl Into<String>,
        value: Option<String>,
        message: impl Into<String>,
    ) -> Error {
        let mut e = Error::new(message);
        e.0.scope = Some(scope);
        e.0.field = Some(field.into());
        e.0.value = value;
        e
    }

    pub(crate) fn in_file(mut self, file: Option<&str>) -> Error {
        if self.0.file.is_none() {
            self.0.file = file.map(str::to_owned);
        }
        self
    }

    /// The file, when the configuration was loaded from a path.
    ///
    /// ```
    /// let err = fluxgate_config::Config::from_path("no/such/breakers.toml").unwrap_err();
    /// assert_eq!(err.file(), Some("no/such/breakers.toml"));
    /// ```
    pub fn file(&self) -> Option<&str> {
        self.0.file.as_deref()
    }

    /// The line (1-based), where the format tells it.
    ///
    /// ```
    /// let err = fluxgate_config::Config::from_toml_str("[defaults]\nwindow = 3\n").unwrap_err();
    /// assert_eq!(err.line(), Some(2));
    /// ```
    pub fn line(&self) -> Option<usize> {
        self.0.line
    }

    /// The section: `defaults` or a breaker.
    ///
    /// ```
    /// let err = fluxgate_config::Config::from_toml_str("[defaults]\nwindow = 3\n").unwrap_err();
    /// assert_eq!(err.scope(), Some(&fluxgate_config::Scope::Defaults));
    /// ```
    pub fn scope(&self) -> Option<&Scope> {
        self.0.scope.as_ref()
    }

    /// The breaker's name, when the error is in a breaker's section.
    ///
    /// ```
    /// let err = fluxgate_config::Config::from_toml_str("[breakers.a]\nwindow = 3\n").unwrap_err();
    /// assert_eq!(err.breaker(), Some("a"));
    /// ```
    pub fn breaker(&self) -> Option<&str> {
        match &self.0.scope {
            Some(Scope::Breaker(name)) => Some(name),
            _ => None,
        }
    }

    /// The field, dotted for a parameter of a component (`retry.jitter`).
    ///
    /// ```
    /// let err = fluxgate_config::Config::from_toml_str("[defaults]\nretry = { type = \"cooldown\", duration = \"1s\", jitter = 2.0 }\n").unwrap_err();
    /// assert_eq!(err.field(), Some("retry.jitter"));
    /// ```
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    /// The value written there, as it would be written in the file (strings quoted).
    ///
    /// ```
    /// let err = fluxgate_config::Config::from_toml_str("[defaults]\nmax_half_open_calls = 0\n").unwrap_err();
    /// assert_eq!(err.value(), Some("0"));
    /// ```
    pub fn value(&self) -> Option<&str> {
        self.0.value.as_deref()
    }

    /// What is wrong, without the location.
    ///
    /// ```
    /// let err = fluxgate_config::Config::from_toml_str("[defaults]\nmax_half_open_calls = 0\n").unwrap_err();
    /// assert_eq!(err.message(), "CircuitBreaker max_half_open_calls must be >= 1, got 0");
    /// ```
    pub fn message(&self) -> &str {
        &self.0.message
    }
}

/// Characters of a value an error message shows; a longer value (a hostile file's
/// 100 000-term expression) is cut there, with its length, so that the message stays a
/// line. [`Error::value`] keeps it whole.
const SHOWN_VALUE: usize = 120;

fn write_value(f: &mut fmt::Formatter<'_>, value: &str) -> fmt::Result {
    match value.char_indices().nth(SHOWN_VALUE) {
        None => write!(f, " = {value}"),
        Some((cut, _)) => write!(f, " = {}… ({} bytes)", &value[..cut], value.len()),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut any = false;
        if let Some(file) = &self.0.file {
            f.write_str(file)?;
            any = true;
        }
        if let Some(line) = self.0.line {
            if any {
                f.write_str(", ")?;
            }
            write!(f, "line {line}")?;
            any = true;
        }
        if let Some(scope) = &self.0.scope {
            if any {
                f.write_str(": ")?;
            }
            write!(f, "{scope}")?;
            any = true;
        }
        if let Some(field) = &self.0.field {
            if any {
                f.write_str(", ")?;
            }
            write!(f, "field {field}")?;
            if let Some(value) = &self.0.value {
                write_value(f, value)?;
            }
            any = true;
        }
        if any {
            f.write_str(": ")?;
        }
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for Error {}
