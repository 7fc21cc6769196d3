//! The configuration of one breaker, as data: every component of the SPEC with its
//! parameters, comparable (`==`) so a reload can tell what changed.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{Deserializer, Error as _, MapAccess, Visitor};

use crate::expr::Expr;
use crate::rules::RuleCall;
use crate::trackers::TrackerName;

/// Which recent calls count (W-1, W-2).
///
/// ```
/// use fluxgate_config::WindowConfig;
/// assert_eq!(WindowConfig::default(), WindowConfig::Count(100));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowConfig {
    /// `{ type = "count", size = N }`: the last N calls.
    Count(usize),
    /// `{ type = "time", duration = "60s" }`: the calls of the last whole seconds.
    Time(Duration),
}

impl Default for WindowConfig {
    fn default() -> Self {
        WindowConfig::Count(100)
    }
}

/// When an open circuit may probe again (RT-1…RT-3).
///
/// ```
/// use std::time::Duration;
/// use fluxgate_config::RetryConfig;
/// assert_eq!(RetryConfig::default(), RetryConfig::Cooldown { duration: Duration::from_secs(60), jitter: 0.0 });
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RetryConfig {
    /// `{ type = "always" }`
    Always,
    /// `{ type = "never" }`
    Never,
    /// `{ type = "cooldown", duration = "60s", jitter = 0.1 }` (jitter optional, 0).
    Cooldown {
        /// The wait.
        duration: Duration,
        /// ± share of the wait, in [0, 1).
        jitter: f64,
    },
    /// `{ type = "backoff", initial = "10s", multiplier = 2, max = "5m", jitter = 0 }`
    /// (all but `initial` optional, with `Backoff`'s defaults).
    Backoff {
        /// The first wait.
        initial: Duration,
        /// Growth per re-opening (> 1).
        multiplier: f64,
        /// The longest wait.
        max: Duration,
        /// ± share of each wait, in [0, 1).
        jitter: f64,
    },
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig::Cooldown {
            duration: Duration::from_secs(60),
            jitter: 0.0,
        }
    }
}

/// How much traffic a half-open circuit admits (P-1, P-2).
///
/// ```
/// use std::time::Duration;
/// use fluxgate_config::PermitConfig;
/// assert_eq!(
///     PermitConfig::default(),
///     PermitConfig::RampUp { initial: 0.1, final_ratio: 1.0, duration: Duration::from_secs(60) },
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PermitConfig {
    /// `{ type = "all" }`
    All,
    /// `{ type = "random", ratio = 0.5 }`
    Random(f64),
    /// `{ type = "ramp_up", initial = 0.1, final = 1.0, duration = "60s" }`
    RampUp {
        /// The share admitted on entering `half_open`.
        initial: f64,
        /// The share admitted from `duration` on (`final` in the file).
        final_ratio: f64,
        /// How long the ramp takes.
        duration: Duration,
    },
}

impl Default for PermitConfig {
    fn default() -> Self {
        PermitConfig::RampUp {
            initial: 0.1,
            final_ratio: 1.0,
            duration: Duration::from_secs(60),
        }
    }
}

/// The state a breaker is put in right after it is built, without notifying listeners
/// (SM-13's silent forms).
///
/// ```
/// use fluxgate_config::InitialState;
/// assert_eq!(InitialState::default(), InitialState::Closed);
/// assert_eq!(InitialState::MetricsOnly.to_string(), "metrics_only");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InitialState {
    /// Normal operation (the default).
    #[default]
    Closed,
    /// Calls run and are recorded, the circuit never opens: a shadow rollout (SM-10).
    MetricsOnly,
    /// Every call rejected (SM-12).
    ForcedOpen,
    /// Calls pass straight through, nothing recorded (SM-11).
    Disabled,
}

impl fmt::Display for InitialState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InitialState::Closed => "closed",
            InitialState::MetricsOnly => "metrics_only",
            InitialState::ForcedOpen => "forced_open",
            InitialState::Disabled => "disabled",
        })
    }
}

/// Everything one breaker is built from; [`Default`] is SPEC D-1.
///
/// A file's `[breakers.<name>]` section is laid over its `[defaults]`, field by field: a
/// field the section sets replaces the default's whole (a `retry` table replaces the
/// default `retry`, it is not merged key by key); a field neither sets is D-1's.
///
/// ```
/// let d = fluxgate_config::BreakerConfig::default();
/// assert_eq!(d.tripper.to_string(), "MinRequests(100) & FailureRate(0.5)");
/// assert_eq!(d.tracker.to_string(), "All");
/// assert_eq!(d.max_half_open_calls, 10);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// `window`
    pub window: WindowConfig,
    /// `tracker`: names from [`Trackers`](crate::Trackers) combined with `&`, `|`, `!`.
    pub tracker: Expr<TrackerName>,
    /// `tripper`: rules combined with `&`, `|`, `!`.
    pub tripper: Expr<RuleCall>,
    /// `retry`
    pub retry: RetryConfig,
    /// `permit`
    pub permit: PermitConfig,
    /// `max_half_open_calls` (≥ 1).
    pub max_half_open_calls: usize,
    /// `measure_durations`: time every call even without a latency rule.
    pub measure_durations: bool,
    /// `state`: the state right after building.
    pub state: InitialState,
    /// `recovery`: when a half-open circuit closes (`by_tripper`, SM-9, by default).
    pub recovery: RecoveryConfig,
    /// `probe_timeout`: a half-open probe that has not recorded in this time gives its
    /// slot back and counts as a failure (none by default).
    pub probe_timeout: Option<std::time::Duration>,
}

/// The half-open recovery rule of a breaker (`fluxgate_core::recovery`).
///
/// ```toml
/// recovery = { type = "probes", n = 10, rule = "FailureRate(0.5) | SlowRate(0.5, 40ms)" }
/// ```
///
/// ```
/// assert_eq!(fluxgate_config::RecoveryConfig::default(), fluxgate_config::RecoveryConfig::ByTripper);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RecoveryConfig {
    /// `{ type = "by_tripper" }`: the tripper decides after each probe (SM-9).
    #[default]
    ByTripper,
    /// `{ type = "successes", n = 3 }`: close from the n-th successful probe.
    Successes(u64),
    /// `{ type = "probes", n = 10, rule = "FailureRate(0.5)" }`: after n probes, open
    /// again if `rule` holds over them, else close.
    Probes {
        /// Probes to wait for.
        n: u64,
        /// The rule judged over the probes.
        rule: Expr<RuleCall>,
    },
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            window: WindowConfig::default(),
            tracker: Expr::Leaf(TrackerName {
                name: "All".into(),
                column: 1,
            }),
            tripper: crate::rules::default_tripper(),
            retry: RetryConfig::default(),
            permit: PermitConfig::default(),
            max_half_open_calls: 10,
            measure_durations: false,
            state: InitialState::Closed,
            recovery: RecoveryConfig::ByTripper,
            probe_timeout: None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// What serde reads: the file's shape, every field optional (for the merge) and unknown
// fields refused. Meaning (durations, expressions, ranges) is checked afterwards, field
// by field, so that every error can name its breaker, field and line.

#[derive(Debug, Default, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table with `defaults` and `breakers`"
)]
pub(crate) struct RawFile {
    // `Option`: YAML's `defaults:` with nothing after it (null) means "all D-1", as a
    // breaker's `payment_api:` (the `Option` of `breakers`) means "all defaults"; the
    // fields inside a section may not be null.
    #[serde(default)]
    pub(crate) defaults: Option<RawBreaker>,
    #[serde(default, deserialize_with = "unique_sections")]
    pub(crate) breakers: BTreeMap<String, Option<RawBreaker>>,
}

/// How the error about a breaker section written twice starts (the name follows, quoted).
pub(crate) const DUPLICATE_BREAKER: &str = "duplicate breaker ";

/// Reads the `breakers` table, one section per name. serde's own map visitors keep the
/// last of two equal keys, silently; TOML's parser refuses a repeated key itself, YAML's
/// does not, so a section written twice is refused here, and the error goes the usual
/// way (with the file and the line).
fn unique_sections<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Option<RawBreaker>>, D::Error> {
    struct Sections;

    impl<'de> Visitor<'de> for Sections {
        type Value = BTreeMap<String, Option<RawBreaker>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table of breakers by name")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut sections = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                if sections.contains_key(&name) {
                    return Err(A::Error::custom(format_args!(
                        "{DUPLICATE_BREAKER}{name:?}"
                    )));
                }
                let section = map.next_value()?;
                sections.insert(name, section);
            }
            Ok(sections)
        }
    }

    deserializer.deserialize_map(Sections)
}

/// The message for a field written without a value (YAML's `~`, `null`, or nothing after
/// the colon).
pub(crate) const NULL_GIVEN: &str = "a value is required (null given)";

/// Reads a field that may be left out (serde's `default` gives `None` then) but not
/// written as null: a null would read as "not set" too, and silently keep the default
/// the operator meant to change. Only YAML has a null; TOML's values are never one.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<T>::deserialize(deserializer)? {
        Some(value) => Ok(Some(value)),
        None => Err(D::Error::custom(NULL_GIVEN)),
    }
}

/// A section's fields. Each may be left out, none may be null (see [`present`]); the
/// section itself may be null, meaning every field inherited (see [`RawFile`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table of breaker fields")]
pub(crate) struct RawBreaker {
    #[serde(default, deserialize_with = "present")]
    pub(crate) window: Option<RawWindow>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) tracker: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) tripper: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) retry: Option<RawRetry>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) permit: Option<RawPermit>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) max_half_open_calls: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) measure_durations: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) state: Option<InitialState>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) recovery: Option<RawRecovery>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) probe_timeout: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RecoveryKind {
    ByTripper,
    Successes,
    Probes,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a recovery table such as { type = \"successes\", n = 3 }"
)]
pub(crate) struct RawRecovery {
    #[serde(rename = "type")]
    pub(crate) kind: RecoveryKind,
    #[serde(default, deserialize_with = "present")]
    pub(crate) n: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) rule: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum WindowKind {
    Count,
    Time,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a window table such as { type = \"count\", size = 100 }"
)]
pub(crate) struct RawWindow {
    #[serde(rename = "type")]
    pub(crate) kind: WindowKind,
    #[serde(default, deserialize_with = "present")]
    pub(crate) size: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) duration: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RetryKind {
    Always,
    Never,
    Cooldown,
    Backoff,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a retry table such as { type = \"cooldown\", duration = \"60s\" }"
)]
pub(crate) struct RawRetry {
    #[serde(rename = "type")]
    pub(crate) kind: RetryKind,
    #[serde(default, deserialize_with = "present")]
    pub(crate) duration: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) jitter: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) initial: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) multiplier: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) max: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum PermitKind {
    All,
    Random,
    RampUp,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a permit table such as { type = \"ramp_up\", initial = 0.1, final = 1.0, duration = \"60s\" }"
)]
pub(crate) struct RawPermit {
    #[serde(rename = "type")]
    pub(crate) kind: PermitKind,
    #[serde(default, deserialize_with = "present")]
    pub(crate) ratio: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) initial: Option<f64>,
    #[serde(rename = "final")]
    #[serde(default, deserialize_with = "present")]
    pub(crate) final_ratio: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) duration: Option<String>,
}
