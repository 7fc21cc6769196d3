//! The synchronisation primitives of the state machine and the windows: std's, or
//! shuttle's when the crate is built for model checking (`RUSTFLAGS="--cfg shuttle"`,
//! see `tests/model_check.rs`), so that every interleaving shuttle explores goes through
//! the very code that ships.

#[cfg(not(shuttle))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
#[cfg(not(shuttle))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};
#[cfg(not(shuttle))]
pub(crate) use std::thread;

#[cfg(shuttle)]
pub(crate) use shuttle::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};
#[cfg(shuttle)]
pub(crate) use shuttle::sync::{Condvar, Mutex, MutexGuard};
#[cfg(shuttle)]
pub(crate) use shuttle::thread;

/// Tag widths: the real ones, or tiny ones under the model checker so that a handful of
/// transitions or laps already wraps every tag and exercises every sweep.
pub(crate) mod widths {
    /// Generation tag bits of a `CountWindow` word.
    pub(crate) const COUNT_TAG: u32 = if cfg!(shuttle) { 4 } else { 16 };
    /// Generation, era and lap tag bits of a `TimeWindow` word (24 in all).
    pub(crate) const TIME_GEN: u32 = if cfg!(shuttle) { 3 } else { 8 };
    pub(crate) const TIME_ERA: u32 = if cfg!(shuttle) { 2 } else { 4 };
    pub(crate) const TIME_LAP: u32 = if cfg!(shuttle) { 3 } else { 12 };
    /// Epoch tag bits of the failure streak and the half-open slots.
    pub(crate) const EPOCH_TAG: u32 = if cfg!(shuttle) { 2 } else { 32 };
}
