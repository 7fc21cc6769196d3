//! # fluxgate-core
//!
//! The core of [`fluxgate`](https://docs.rs/fluxgate-breaker): the state machine, its
//! components, the sync, async and tower faces, the listener traits and their dispatch,
//! and `LogListener`. Applications depend on the facade package `fluxgate-breaker`
//! (`use fluxgate_core::…`), which re-exports everything here; integrations (Prometheus,
//! Slack) depend on this crate alone.
//!
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
//! use fluxgate_core::{CircuitBreaker, Error, State};
//! use fluxgate_core::trippers::{FailureRate, FailureStreak, MinRequests};
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
//! # Ok::<(), fluxgate_core::ConfigError>(())
//! ```
//!
//! ## Faces
//! - [`CircuitBreaker`]: synchronous calls, `Send + Sync`, lock-free hot path.
//! - [`AsyncCircuitBreaker`]: `call(|| async { … })`; the future is built only when the
//!   call is admitted, and dropping it mid-flight records nothing.
//! - [`Ticket`]: the two-phase `admit` / `record` API both faces are built on.
//! - [`Face`]: what the two faces share (builder, snapshots, manual commands, `admit`),
//!   for code generic over them, such as `Registry<F>` and `Keyed<K, F>`.
//!
//! ## Many breakers
//! - [`registry::Registry`]: named breakers from one template plus per-name overrides,
//!   listed, reset, removed and reconfigured live.
//! - [`keyed::Keyed`]: one breaker per key (host, tenant), bounded, evicting only idle
//!   closed breakers.
//!
//! ## Features
//! | feature | adds |
//! |---|---|
//! | `tokio` | async listeners spawned on tokio |
//! | `tower` | `tower::CircuitBreakerLayer` |
//! | `quanta` | a cheaper `SystemClock` (CPU time-stamp counter) |
//! | `anyhow` | `call_any` sees the error inside an `anyhow::Error` |
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod async_breaker;
mod breaker;
mod builder;
pub mod clock;
mod core;
mod error;
mod face;
pub mod interfaces;
pub mod keyed;
pub mod listeners;
mod metric;
pub mod permits;
pub mod recovery;
pub mod registry;
pub mod retries;
mod shards;
mod signal;
mod state;
pub mod store;
mod sync;
mod tagged;
pub mod trackers;
pub mod trippers;
pub mod windows;

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

pub use crate::async_breaker::AsyncCircuitBreaker;
pub use crate::breaker::CircuitBreaker;
pub use crate::builder::Builder;
pub use crate::core::{Info, Outcome, Ticket};
pub use crate::error::{CallNotPermitted, ConfigError, Error, Escaped, Opaque, escaped};
pub use crate::face::Face;
pub use crate::metric::{MAX_SLOW_THRESHOLDS, Metric, Record};
pub use crate::signal::Signal;
pub use crate::state::State;
