//! The core: the state machine, the components, the sync and async faces, listener dispatch
//! and `LogListener`.

#[path = "../support/mod.rs"]
mod support;

mod async_breaker;
mod calls;
mod components;
mod concurrency;
mod extension;
mod listener_dispatch;
mod log_listener;
mod model;
mod recovery;
mod recovery_model;
mod state_machine;
mod window_model;
