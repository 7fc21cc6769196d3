//! # fluxgate-config
//!
//! Circuit breakers as data. A service with many dependencies wants their breakers in a
//! file that operators can read and change, not in code: this crate reads TOML or YAML
//! into a checked [`Config`] and builds breakers (both faces) from it.
//!
//! ```
//! use fluxgate_config::{Config, Trackers};
//! use fluxgate_core::{CircuitBreaker, State};
//!
//! let config = Config::from_toml_str(r#"
//!     [defaults]
//!     window = { type = "count", size = 100 }
//!     tripper = "MinRequests(20) & (FailureRate(0.5) | SlowRate(0.3, 1s))"
//!     retry = { type = "cooldown", duration = "30s", jitter = 0.1 }
//!
//!     [breakers.payment_api]
//!     tracker = "io & !not_found"
//!     retry = { type = "backoff", initial = "10s", max = "5m" }
//!
//!     [breakers.search_api]
//!     state = "metrics_only"          # shadow rollout: record, never open
//! "#)?;
//!
//! let trackers = Trackers::new()
//!     .add::<std::io::Error>("io")
//!     .add_fn("not_found", |e| e.to_string().contains("404"));
//! let payment: CircuitBreaker = config.build("payment_api", &trackers)?;
//! let search: CircuitBreaker = config.build("search_api", &trackers)?;
//! assert_eq!(search.state(), State::MetricsOnly);
//! # let _ = payment;
//! # Ok::<(), fluxgate_config::Error>(())
//! ```
//!
//! - A file has `[defaults]`, laid over SPEC D-1, and `[breakers.<name>]` sections laid
//!   over the defaults field by field ([`BreakerConfig`]).
//! - `tripper` and `tracker` are expressions that read like the code
//!   ([`expr`] has the grammar; [`rules::RULES`] the rule names).
//! - Trackers are named by the application ([`Trackers`]): a file cannot name a type.
//! - [`Live`] runs a `fluxgate_core::registry::Registry` from a configuration and
//!   applies a new one to the running breakers: unchanged ones untouched, changed ones
//!   carried on in their state, removed ones retired, new ones created, all or nothing.
//! - Every error is one [`Error`] naming the file, the line, the breaker (or
//!   `defaults`), the field and the value; loading is all or nothing, and every
//!   component is checked at load exactly as `build()` checks it.
//!
//! YAML is read with `serde_norway`, a maintained fork of the archived `serde_yaml`
//! (same API and licence, its libyaml port kept up to date); `serde_yml` is deprecated
//! and `serde_yaml_ng` builds on the unmaintained `unsafe-libyaml`.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod build;
mod changes;
mod config;
mod duration;
mod error;
pub mod expr;
mod locate;
mod model;
mod reload;
pub mod rules;
mod scale;
mod trackers;

pub use crate::build::Breaker;
pub use crate::changes::Changes;
pub use crate::config::{Config, Format};
pub use crate::duration::{format_duration, parse_duration};
pub use crate::error::{Error, Scope};
pub use crate::model::{
    BreakerConfig, InitialState, PermitConfig, RecoveryConfig, RetryConfig, WindowConfig,
};
pub use crate::reload::Live;
pub use crate::rules::parse_tripper;
pub use crate::trackers::{TrackerName, Trackers, parse_tracker};
