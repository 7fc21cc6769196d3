//! The process-wide default registry already holding conflicting series: its own binary,
//! because it spoils the default registry for every other test of its process.

#[path = "../support/mod.rs"]
mod support;

mod default_conflict;
