//! # fluxgate
//!
//! A composable circuit breaker: calls to a flaky dependency fail fast while it is
//! unhealthy, recover gently, and show up on dashboards and in chat.
//!
//! A breaker watches outcomes in a sliding [window](windows) (the last *n* calls or the
//! last *d* seconds), decides with [trippers] combined by `&` and `|` when to open,
//! lets probes through according to a [retry](retries) policy and a [permit](permits)
//! ramp, and tells [listeners] about every transition. Six [`State`]s: `closed`, `open`,
//! `half_open` driven by traffic; `metrics_only`, `disabled`, `forced_open` by hand.
//!
//! ```
//! use std::time::Duration;
//! use fluxgate::{CircuitBreaker, Error, State};
//! use fluxgate::trippers::{FailureRate, FailureStreak, MinRequests};
//!
//! let cb = CircuitBreaker::builder("payment_api")
//!     .tripper(FailureStreak::new(5) | (MinRequests::new(20) & FailureRate::new(0.5)))
//!     .build()?;
//!
//! fn charge() -> Result<u32, std::io::Error> { Err(std::io::Error::other("503")) }
//! for _ in 0..5 {
//!     assert!(matches!(cb.call(charge), Err(Error::Inner(_))));
//! }
//! assert_eq!(cb.info().state, State::Open);
//! match cb.call(charge) {
//!     Err(Error::Rejected(r)) => assert!(r.retry_after().unwrap() <= Duration::from_secs(60)),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), fluxgate::ConfigError>(())
//! ```
//!
//! ## Faces
//! - [`CircuitBreaker`]: synchronous calls, `Send + Sync`, lock-free hot path.
//! - [`AsyncCircuitBreaker`]: `call(|| async { … })`; the future is built only when the
//!   call is admitted, and dropping it mid-flight records nothing.
//! - [`Ticket`]: the two-phase `admit` / `record` API both faces are built on.
//!
//! ## Many breakers
//! - [`registry::Registry`]: named breakers from one template plus per-name overrides,
//!   listed, reset, removed and reconfigured live (`docs/registry.md`).
//! - [`keyed::Keyed`]: one breaker per key (host, tenant), bounded, evicting only idle
//!   closed breakers; `tower::KeyedCircuitBreakerLayer` keys requests by authority.
//!
//! ## Crates
//! This package is a facade: it re-exports `fluxgate-core` (the state machine, its
//! components, the faces, the listener traits and `LogListener`) and, behind features,
//! the integration crates `fluxgate-prometheus`, `fluxgate-slack`, `fluxgate-otel` and `fluxgate-config`, under the paths
//! below. `docs/architecture.md` draws the crates and the rooms of the core.
//!
//! ## Features
//! | feature | adds |
//! |---|---|
//! | `tokio` | async listeners spawned on tokio |
//! | `tower` | `tower::CircuitBreakerLayer` |
//! | `prometheus` | `listeners::prometheus::PrometheusListener`, `start_http_server` |
//! | `axum` | a `/metrics` route for axum apps |
//! | `prometheus-client`, `metrics` | the same series through those crates |
//! | `slack` | `listeners::slack::SlackListener` (sync and async breakers) |
//! | `quanta` | a cheaper `SystemClock` (CPU time-stamp counter) |
//! | `anyhow` | `call_any` sees the error inside an `anyhow::Error` |
//! | `config` | `config::{Config, Trackers, …}`: breakers from TOML/YAML files |
//! | `opentelemetry` | `listeners::opentelemetry::OpenTelemetryListener`: the same two series on an OpenTelemetry `Meter` |
//! | `redis` | `store::redis::RedisStore`: shared state for a fleet of processes |
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use fluxgate_core::{
    AsyncCircuitBreaker, Builder, CallNotPermitted, CircuitBreaker, ConfigError, Error, Escaped,
    Face, Info, MAX_SLOW_THRESHOLDS, Metric, Opaque, Outcome, Record, Signal, State, Ticket,
    escaped,
};
pub use fluxgate_core::{
    clock, interfaces, keyed, permits, recovery, registry, retries, trackers, trippers, windows,
};

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub use fluxgate_core::tower;

/// Breakers as data: TOML/YAML files with `[defaults]` and per-breaker overrides,
/// tripper and tracker expressions, one error naming the file, line, breaker and field
/// (crate `fluxgate-config`; see `docs/configuration.md`).
#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub mod config {
    pub use fluxgate_config::*;
}

/// Shared state for breakers of the same name in several processes (a fleet): the
/// [`StateStore`](fluxgate_core::store::StateStore) trait and the in-memory store from the
/// core, the Redis store behind the feature `redis` (see `docs/fleet.md`).
pub mod store {
    pub use fluxgate_core::store::*;

    /// The Redis store (crate `fluxgate-redis`).
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub mod redis {
        pub use fluxgate_redis::*;
    }
}

/// Listeners: what happens outside the breaker when its state changes.
///
/// The traits, closures as listeners and [`log::LogListener`](crate::listeners::log::LogListener) come from the core; the
/// Prometheus, Slack and OpenTelemetry listeners from their own crates, behind the
/// features `prometheus`, `slack` and `opentelemetry`. See the core's [module documentation](fluxgate_core::listeners) for which thread
/// runs a listener and what happens when listeners fall behind.
pub mod listeners {
    pub use fluxgate_core::listeners::*;

    /// Prometheus metrics for circuit breakers (crate `fluxgate-prometheus`).
    #[cfg(any(
        feature = "prometheus",
        feature = "prometheus-client",
        feature = "metrics"
    ))]
    #[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
    pub mod prometheus {
        pub use fluxgate_prometheus::*;
    }

    /// The Slack listener, for sync and async breakers (crate `fluxgate-slack`).
    #[cfg(feature = "slack")]
    #[cfg_attr(docsrs, doc(cfg(feature = "slack")))]
    pub mod slack {
        pub use fluxgate_slack::*;
    }

    /// OpenTelemetry metrics for circuit breakers, for sync and async breakers (crate
    /// `fluxgate-otel`).
    #[cfg(feature = "opentelemetry")]
    #[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
    pub mod opentelemetry {
        pub use fluxgate_otel::*;
    }
}

// Every Rust block of the README and of `docs/` is compiled and run as a doctest, so the
// documentation cannot drift from the API. A file is checked when the features its blocks
// use are on (`cargo test --all-features` checks them all).
#[cfg(all(doctest, feature = "tower", feature = "prometheus", feature = "slack"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/index.md")]
struct DocsIndexDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/circuit-breaker.md")]
struct DocsCircuitBreakerDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/components.md")]
struct DocsComponentsDoctests;

#[cfg(all(doctest, feature = "tower"))]
#[doc = include_str!("../docs/registry.md")]
struct DocsRegistryDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/examples.md")]
struct DocsExamplesDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/design-decisions.md")]
struct DocsDesignDecisionsDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/listeners/index.md")]
struct DocsListenersDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/listeners/logging.md")]
struct DocsLoggingDoctests;

#[cfg(all(
    doctest,
    feature = "axum",
    feature = "prometheus-client",
    feature = "metrics"
))]
#[doc = include_str!("../docs/listeners/prometheus.md")]
struct DocsPrometheusDoctests;

#[cfg(all(
    doctest,
    feature = "axum",
    feature = "prometheus-client",
    feature = "metrics"
))]
#[doc = include_str!("../docs/ko/listeners/prometheus.md")]
struct DocsPrometheusKoDoctests;

#[cfg(all(doctest, feature = "config"))]
#[doc = include_str!("../docs/configuration.md")]
struct DocsConfigurationDoctests;

#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../docs/status.md")]
struct DocsStatusDoctests;

#[cfg(all(doctest, feature = "slack"))]
#[doc = include_str!("../docs/listeners/slack.md")]
struct DocsSlackDoctests;

#[cfg(all(doctest, feature = "opentelemetry", feature = "prometheus"))]
#[doc = include_str!("../docs/listeners/opentelemetry.md")]
struct DocsOpenTelemetryDoctests;
#[cfg(all(doctest, feature = "redis"))]
#[doc = include_str!("../docs/fleet.md")]
struct DocsFleetDoctests;
