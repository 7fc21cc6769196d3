//! Helpers shared by the core test binaries.
#![allow(dead_code)]

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fluxgate::clock::ManualClock;
use fluxgate::{CircuitBreaker, Signal, State};

pub fn boom() -> io::Error {
    io::Error::other("boom")
}

/// Records the signals it sees.
#[derive(Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<Signal>>>);

impl Recorder {
    pub fn listener(&self) -> impl Fn(&Signal) + Send + Sync + 'static {
        let inner = self.0.clone();
        move |s: &Signal| inner.lock().unwrap().push(s.clone())
    }
    pub fn pairs(&self) -> Vec<(State, State)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|s| (s.old_state, s.new_state))
            .collect()
    }
    pub fn signals(&self) -> Vec<Signal> {
        self.0.lock().unwrap().clone()
    }
    pub fn clear(&self) {
        self.0.lock().unwrap().clear()
    }
}

pub fn ok(cb: &CircuitBreaker) -> Result<(), fluxgate::Error<io::Error>> {
    cb.call(|| Ok(()))
}

pub fn fail(cb: &CircuitBreaker) -> Result<(), fluxgate::Error<io::Error>> {
    cb.call(|| Err(boom()))
}

/// A call that takes `d` on the manual clock.
pub fn slow_ok(
    cb: &CircuitBreaker,
    clock: &ManualClock,
    d: Duration,
) -> Result<(), fluxgate::Error<io::Error>> {
    cb.call(|| {
        clock.advance(d);
        Ok(())
    })
}

pub fn slow_fail(
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
pub struct Untracked;
impl std::fmt::Display for Untracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("untracked")
    }
}
impl std::error::Error for Untracked {}
