//! Breakers as data: files, fields, expressions, errors and live reconfiguration
//! (feature `config`).
#![cfg(feature = "config")]

#[path = "../support/mod.rs"]
mod support;

mod errors;
mod expressions;
mod fields;
mod files;
mod reload;
mod scale;

use std::io;

use fluxgate::CircuitBreaker;
use fluxgate::clock::ManualClock;
use fluxgate::config::{Breaker, Config, Trackers};

/// The same configuration written in TOML and in YAML: both load, and are equal.
pub(crate) fn both(toml: &str, yaml: &str) -> [Config; 2] {
    let t = Config::from_toml_str(toml).unwrap_or_else(|e| panic!("toml: {e}"));
    let y = Config::from_yaml_str(yaml).unwrap_or_else(|e| panic!("yaml: {e}"));
    assert_eq!(t, y, "the TOML and the YAML describe different breakers");
    [t, y]
}

/// The trackers the tests' files name.
pub(crate) fn trackers() -> Trackers {
    Trackers::new()
        .add::<io::Error>("io")
        .add_fn("not_found", |e| {
            e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
        })
        .add_fn("timeout", |e| e.to_string().contains("timed out"))
}

/// `name` from `config` on a manual clock, in its initial state.
pub(crate) fn breaker(config: &Config, name: &str, clock: &ManualClock) -> CircuitBreaker {
    let cb = config
        .builder::<CircuitBreaker>(name, &trackers())
        .unwrap_or_else(|e| panic!("{e}"))
        .clock(clock.clone())
        .build()
        .unwrap();
    cb.enter_silently(config.get(name).state);
    cb
}

pub(crate) fn ok(cb: &CircuitBreaker) -> bool {
    cb.call(|| Ok::<_, io::Error>(())).is_ok()
}

pub(crate) fn fail(cb: &CircuitBreaker) -> Result<(), fluxgate::Error<io::Error>> {
    cb.call(|| Err::<(), _>(io::Error::other("boom")))
}
