//! The Slack listeners, against a scripted Slack server (feature `slack`).

#[path = "../support/mod.rs"]
mod support;

mod breaker;
mod lifecycle;
mod listener;
