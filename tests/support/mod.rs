//! The one support module of the test binaries (`tests/<area>/main.rs` each include it):
//! helpers for breakers and listeners here, log capture in `logs`, and the helpers of the
//! Prometheus and Slack areas in their own files.
#![allow(dead_code)]

pub(crate) mod logs;
pub(crate) mod prometheus;
#[cfg(feature = "slack")]
pub(crate) mod slack;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fluxgate::clock::ManualClock;
use fluxgate::{CircuitBreaker, Signal, State};

pub(crate) fn boom() -> io::Error {
    io::Error::other("boom")
}

/// Records the signals it sees.
#[derive(Clone, Default)]
pub(crate) struct Recorder(pub(crate) Arc<Mutex<Vec<Signal>>>);

impl Recorder {
    pub(crate) fn listener(&self) -> impl Fn(&Signal) + Send + Sync + 'static + use<> {
        let inner = self.0.clone();
        move |s: &Signal| inner.lock().unwrap().push(s.clone())
    }
    pub(crate) fn pairs(&self) -> Vec<(State, State)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|s| (s.old_state, s.new_state))
            .collect()
    }
    pub(crate) fn signals(&self) -> Vec<Signal> {
        self.0.lock().unwrap().clone()
    }
    pub(crate) fn clear(&self) {
        self.0.lock().unwrap().clear()
    }
}

pub(crate) fn ok(cb: &CircuitBreaker) -> Result<(), fluxgate::Error<io::Error>> {
    cb.call(|| Ok(()))
}

pub(crate) fn fail(cb: &CircuitBreaker) -> Result<(), fluxgate::Error<io::Error>> {
    cb.call(|| Err(boom()))
}

/// A call that takes `d` on the manual clock.
pub(crate) fn slow_ok(
    cb: &CircuitBreaker,
    clock: &ManualClock,
    d: Duration,
) -> Result<(), fluxgate::Error<io::Error>> {
    cb.call(|| {
        clock.advance(d);
        Ok(())
    })
}

pub(crate) fn slow_fail(
    cb: &CircuitBreaker,
    clock: &ManualClock,
    d: Duration,
) -> Result<(), fluxgate::Error<io::Error>> {
    cb.call(|| {
        clock.advance(d);
        Err(boom())
    })
}

/// An error that `TypeOf<io::Error>` does not track.
#[derive(Debug, PartialEq)]
pub(crate) struct Untracked;
impl std::fmt::Display for Untracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("untracked")
    }
}
impl std::error::Error for Untracked {}
