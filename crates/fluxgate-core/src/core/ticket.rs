use std::fmt;
use std::sync::Arc;

use super::{Admission, Core, state_of};
use crate::State;

/// How a call ended, as the breaker should count it.
///
/// ```
/// use fluxgate_core::Outcome;
/// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
/// cb.admit().unwrap().record(Outcome::Failure);
/// assert_eq!(cb.info().metric.failure_count, 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A success: recorded, resets the failure streak.
    Success,
    /// A tracked failure: recorded, extends the failure streak.
    Failure,
    /// Neither (an untracked error): nothing is recorded (SM-5).
    Ignored,
}

/// Permission to run one call, from [`CircuitBreaker::admit`](crate::CircuitBreaker::admit).
///
/// Run the work, then record how it went. A ticket dropped without recording (a
/// cancelled future, a panic) releases its half-open slot and records nothing (SM-20).
/// An outcome recorded after the breaker changed state is discarded (SM-17).
///
/// ```
/// use fluxgate_core::CircuitBreaker;
/// let cb = CircuitBreaker::builder("db").build().unwrap();
/// match cb.admit() {
///     Ok(ticket) => ticket.success(),
///     Err(rejected) => eprintln!("{rejected}"),
/// }
/// assert_eq!(cb.info().metric.total_count, 1);
/// ```
///
/// `Ticket<'static>` (from `admit_owned`) owns a handle to the breaker, for futures that
/// must be `'static` (tower services, spawned tasks).
#[must_use = "a ticket records nothing unless an outcome is given"]
pub struct Ticket<'a> {
    core: CoreRef<'a>,
    adm: Admission,
}

enum CoreRef<'a> {
    Borrowed(&'a Core),
    Owned(Arc<Core>),
}

impl std::ops::Deref for CoreRef<'_> {
    type Target = Core;
    #[inline]
    fn deref(&self) -> &Core {
        match self {
            CoreRef::Borrowed(c) => c,
            CoreRef::Owned(c) => c,
        }
    }
}

impl Ticket<'static> {
    /// [`Ticket::admit`] with a ticket that owns a handle to `core`.
    #[inline(always)]
    pub(crate) fn admit_owned(core: &Arc<Core>) -> Result<Self, crate::CallNotPermitted> {
        match core.admit_fast() {
            Some(adm) => Ok(Ticket::owned(core.clone(), adm)),
            None => core
                .admit_slow()
                .map(|adm| Ticket::owned(core.clone(), adm)),
        }
    }

    #[inline(always)]
    pub(crate) fn owned(core: Arc<Core>, adm: Admission) -> Self {
        Ticket {
            core: CoreRef::Owned(core),
            adm,
        }
    }
}

impl<'a> Ticket<'a> {
    /// A ticket for a call on `core`, if it admits one. The states decided inline build
    /// the ticket in place; moving an admission out of a `Result` made with the
    /// out-of-line path costs a store-forwarding stall on every call.
    #[inline(always)]
    pub(crate) fn admit(core: &'a Core) -> Result<Self, crate::CallNotPermitted> {
        match core.admit_fast() {
            Some(adm) => Ok(Ticket::new(core, adm)),
            None => core.admit_slow().map(|adm| Ticket::new(core, adm)),
        }
    }

    #[inline(always)]
    pub(crate) fn new(core: &'a Core, adm: Admission) -> Self {
        Ticket {
            core: CoreRef::Borrowed(core),
            adm,
        }
    }

    /// The state the call was admitted in.
    ///
    /// ```
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// assert_eq!(cb.admit().unwrap().state(), fluxgate_core::State::Closed);
    /// ```
    pub fn state(&self) -> State {
        state_of(self.adm.word)
    }

    /// Records `outcome`.
    ///
    /// ```
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// cb.admit().unwrap().record(fluxgate_core::Outcome::Ignored);
    /// assert_eq!(cb.info().metric.total_count, 0);
    /// ```
    #[inline]
    pub fn record(mut self, outcome: Outcome) {
        self.core.record(&mut self.adm, outcome);
    }

    /// Records a success.
    ///
    /// ```
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// cb.admit().unwrap().success();
    /// ```
    #[inline(always)]
    pub fn success(mut self) {
        // The check that it changes nothing inline, then its own out-of-line copy of
        // `record` with the outcome known: the hot path of every face.
        self.core.record_success(&mut self.adm);
    }

    /// Records a tracked failure.
    ///
    /// ```
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// cb.admit().unwrap().failure();
    /// assert_eq!(cb.info().consecutive_failures, 1);
    /// ```
    #[inline]
    pub fn failure(self) {
        self.record(Outcome::Failure)
    }

    /// Records `error` as a failure if the breaker's tracker tracks it, else ignores it.
    ///
    /// ```
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// cb.admit().unwrap().error(&std::io::Error::other("x"));
    /// assert_eq!(cb.info().metric.failure_count, 1);
    /// ```
    #[inline]
    pub fn error(self, error: &(dyn std::error::Error + 'static)) {
        let outcome = if self.core.tracks(error) {
            Outcome::Failure
        } else {
            Outcome::Ignored
        };
        self.record(outcome)
    }

    /// Records an error of any type: as [`error`](Self::error) for the error inside a
    /// `Box<dyn Error…>`, an `Arc<dyn Error…>` or (feature `anyhow`) an `anyhow::Error`;
    /// other types are judged by the tracker as an [`Opaque`](crate::Opaque).
    ///
    /// ```
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// let e: Box<dyn std::error::Error + Send + Sync> = "timed out".into();
    /// cb.admit().unwrap().error_any(&e);
    /// assert_eq!(cb.info().metric.failure_count, 1);
    /// ```
    #[inline]
    pub fn error_any<E: 'static>(self, error: &E) {
        let tracked = crate::error::view(error, |e| self.core.tracks(e));
        self.record(if tracked {
            Outcome::Failure
        } else {
            Outcome::Ignored
        })
    }

    /// Records a failure, unless `error` is one the breaker's tracker can be asked about
    /// (a `std::io::Error`, or what [`error_any`](Self::error_any) sees into) and does not
    /// track (then nothing is recorded, SM-5). For layers that get any error type and are
    /// told by a classifier that it failed (`tower`).
    #[cfg(feature = "tower")]
    pub(crate) fn failure_unless_untracked<E: 'static>(self, error: &E) {
        let any: &dyn std::any::Any = error;
        let tracked = match any.downcast_ref::<std::io::Error>() {
            Some(io) => Some(self.core.tracks(io)),
            None => crate::error::try_view(error, |e| self.core.tracks(e)),
        };
        self.record(if tracked == Some(false) {
            Outcome::Ignored
        } else {
            Outcome::Failure
        })
    }
}

impl Drop for Ticket<'_> {
    #[inline]
    fn drop(&mut self) {
        self.core.release(&mut self.adm);
    }
}

impl fmt::Debug for Ticket<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("circuit", &&*self.core.name)
            .field("state", &self.state())
            .finish()
    }
}
