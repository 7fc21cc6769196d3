//! Reliability: what stays true under load, races, slow listeners and hostile input.

#[path = "../support/mod.rs"]
mod support;

mod dispatch;
mod fixes;
mod reliability;
mod soak;
