//! Trackers: which errors count as failures.
//!
//! Not every error means the dependency is unhealthy: a 404, a validation error or a
//! cancelled request says nothing about the payment API's health. A tracker decides, per
//! error, whether it is recorded as a failure; untracked errors are returned to the caller
//! unchanged and leave no trace in the breaker (SM-5).
//!
//! Trackers combine with `&`, `|` and `!` (TK-2):
//!
//! ```
//! use std::io;
//! use fluxgate_core::trackers::{Custom, Tracker, TypeOf};
//!
//! let t = TypeOf::<io::Error>::new() & !Custom::new(|e: &io::Error| e.kind() == io::ErrorKind::NotFound);
//! assert!(t.track(&io::Error::other("reset")));
//! assert!(!t.track(&io::Error::from(io::ErrorKind::NotFound)));
//! ```
//!
//! Any `Fn(&(dyn Error + 'static)) -> bool` closure is a tracker too; [`from_fn`] and
//! [`TrackerExt`] let a closure (or a user's type) start an expression.

use std::error::Error as StdError;
use std::fmt;
use std::marker::PhantomData;
use std::ops::{BitAnd, BitOr, Not};

/// Decides whether an error counts as a failure (TK-1).
///
/// ```
/// use fluxgate_core::trackers::{All, Tracker};
/// assert!(All.track(&std::io::Error::other("x")));
/// ```
#[doc(alias = "ITracker")]
pub trait Tracker: Send + Sync + 'static {
    /// Whether `error` is recorded as a failure.
    fn track(&self, error: &(dyn StdError + 'static)) -> bool;
}

/// Any `Fn(&(dyn Error + 'static)) -> bool` is a tracker.
///
/// ```
/// use fluxgate_core::CircuitBreaker;
/// let cb = CircuitBreaker::builder("x")
///     .tracker(|e: &(dyn std::error::Error + 'static)| !e.to_string().contains("404"))
///     .build()
///     .unwrap();
/// # let _ = cb;
/// ```
impl<F> Tracker for F
where
    F: Fn(&(dyn StdError + 'static)) -> bool + Send + Sync + 'static,
{
    fn track(&self, error: &(dyn StdError + 'static)) -> bool {
        self(error)
    }
}

/// A boxed tracker is a tracker (for rules chosen at run time).
impl Tracker for Box<dyn Tracker> {
    #[inline]
    fn track(&self, error: &(dyn StdError + 'static)) -> bool {
        (**self).track(error)
    }
}

/// A shared tracker is a tracker.
impl<T: Tracker + ?Sized> Tracker for std::sync::Arc<T> {
    fn track(&self, error: &(dyn StdError + 'static)) -> bool {
        (**self).track(error)
    }
}

/// A closure wrapped so that it can start an expression with `&`, `|` and `!`.
///
/// ```
/// use std::io;
/// use fluxgate_core::trackers::{from_fn, Tracker, TypeOf};
/// let t = !from_fn(|e| e.to_string().contains("404")) & TypeOf::<io::Error>::new();
/// assert!(t.track(&io::Error::other("503")));
/// assert!(!t.track(&io::Error::other("404")));
/// ```
pub fn from_fn<F>(rule: F) -> FromFn<F>
where
    F: Fn(&(dyn StdError + 'static)) -> bool + Send + Sync + 'static,
{
    FromFn(rule)
}

/// A tracker made by [`from_fn`]; it has the operators of the built-ins.
#[derive(Clone, Copy)]
pub struct FromFn<F>(F);

impl<F> fmt::Debug for FromFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FromFn")
    }
}

impl<F> Tracker for FromFn<F>
where
    F: Fn(&(dyn StdError + 'static)) -> bool + Send + Sync + 'static,
{
    fn track(&self, error: &(dyn StdError + 'static)) -> bool {
        (self.0)(error)
    }
}

/// `and`, `or` and `not` for every tracker, for types the operators cannot be
/// implemented on (closures, a user's types).
///
/// ```
/// use std::io;
/// use fluxgate_core::trackers::{Tracker, TrackerExt, TypeOf};
/// let not_found = |e: &(dyn std::error::Error + 'static)| e.to_string().contains("404");
/// let t = not_found.not().and(TypeOf::<io::Error>::new());
/// assert!(t.track(&io::Error::other("503")));
/// ```
pub trait TrackerExt: Tracker + Sized {
    /// `self & other`: both track.
    fn and<B: Tracker>(self, other: B) -> And<Self, B> {
        And(self, other)
    }
    /// `self | other`: either tracks.
    fn or<B: Tracker>(self, other: B) -> Or<Self, B> {
        Or(self, other)
    }
    /// `!self`: the opposite.
    #[allow(clippy::should_implement_trait)]
    fn not(self) -> NotTracker<Self> {
        NotTracker(self)
    }
}

impl<T: Tracker> TrackerExt for T {}

/// Tracks every error.
///
/// ```
/// use fluxgate_core::trackers::{All, Tracker};
/// assert!(All.track(&std::fmt::Error));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct All;

impl Tracker for All {
    fn track(&self, _error: &(dyn StdError + 'static)) -> bool {
        true
    }
}

/// Tracks an error that is a `T` or has a `T` in its `source()` chain. The chain
/// includes the error an `io::Error` carries (`io::Error::other(e)`, `io::Error::new`),
/// which its own `source()` skips. A `Box<T>` or `Arc<T>` returned as the call's error is
/// not a `T` (its `source()` is the `T`'s source): track `TypeOf::<Box<T>>` for those.
///
/// ```
/// use std::io;
/// use fluxgate_core::trackers::{Tracker, TypeOf};
/// #[derive(Debug)]
/// struct Wrapper(io::Error);
/// impl std::fmt::Display for Wrapper {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("wrapped") }
/// }
/// impl std::error::Error for Wrapper {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> { Some(&self.0) }
/// }
/// let t = TypeOf::<io::Error>::new();
/// assert!(t.track(&Wrapper(io::Error::other("x"))));
/// assert!(!t.track(&std::fmt::Error));
/// ```
pub struct TypeOf<T>(PhantomData<fn() -> T>);

impl<T: StdError + 'static> TypeOf<T> {
    /// A tracker for errors of type `T`.
    ///
    /// ```
    /// let _ = fluxgate_core::trackers::TypeOf::<std::io::Error>::new();
    /// ```
    pub const fn new() -> Self {
        TypeOf(PhantomData)
    }
}

impl<T: StdError + 'static> Default for TypeOf<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Clone for TypeOf<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for TypeOf<T> {}

impl<T> fmt::Debug for TypeOf<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TypeOf<{}>", std::any::type_name::<T>())
    }
}

/// The next error of `e`'s chain: the payload of an `io::Error` (whose `source()` is the
/// payload's own source, so the payload itself would be skipped), else `source()`.
fn next_in_chain<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    if let Some(payload) = e
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
    {
        return Some(payload);
    }
    e.source()
}

impl<T: StdError + 'static> Tracker for TypeOf<T> {
    fn track(&self, error: &(dyn StdError + 'static)) -> bool {
        let mut cur = Some(error);
        while let Some(e) = cur {
            if e.is::<T>() {
                return true;
            }
            cur = next_in_chain(e);
        }
        false
    }
}

/// Tracks errors of type `E` for which the predicate returns true; errors of other types
/// are not tracked. `E` is looked for in the `source()` chain like [`TypeOf`].
///
/// ```
/// use std::io;
/// use fluxgate_core::trackers::{Custom, Tracker};
/// let timeouts = Custom::new(|e: &io::Error| e.kind() == io::ErrorKind::TimedOut);
/// assert!(timeouts.track(&io::Error::from(io::ErrorKind::TimedOut)));
/// assert!(!timeouts.track(&io::Error::from(io::ErrorKind::NotFound)));
/// ```
pub struct Custom<E, F> {
    predicate: F,
    _error: PhantomData<fn(&E)>,
}

impl<E, F> Custom<E, F>
where
    E: StdError + 'static,
    F: Fn(&E) -> bool + Send + Sync + 'static,
{
    /// A tracker delegating to `predicate`.
    ///
    /// ```
    /// let _ = fluxgate_core::trackers::Custom::new(|e: &std::fmt::Error| true);
    /// ```
    pub fn new(predicate: F) -> Self {
        Custom {
            predicate,
            _error: PhantomData,
        }
    }
}

impl<E, F> fmt::Debug for Custom<E, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Custom<{}>", std::any::type_name::<E>())
    }
}

impl<E, F> Tracker for Custom<E, F>
where
    E: StdError + 'static,
    F: Fn(&E) -> bool + Send + Sync + 'static,
{
    fn track(&self, error: &(dyn StdError + 'static)) -> bool {
        let mut cur = Some(error);
        while let Some(e) = cur {
            if let Some(e) = e.downcast_ref::<E>() {
                return (self.predicate)(e);
            }
            cur = next_in_chain(e);
        }
        false
    }
}

/// `a & b`: both track (short-circuits left to right).
#[derive(Debug, Clone, Copy)]
pub struct And<A, B>(pub A, pub B);
/// `a | b`: either tracks (short-circuits left to right).
#[derive(Debug, Clone, Copy)]
pub struct Or<A, B>(pub A, pub B);
/// `!a`: the opposite of `a`; `!!a` behaves as `a`.
#[derive(Debug, Clone, Copy)]
pub struct NotTracker<A>(pub A);

impl<A: Tracker, B: Tracker> Tracker for And<A, B> {
    fn track(&self, error: &(dyn StdError + 'static)) -> bool {
        self.0.track(error) && self.1.track(error)
    }
}
impl<A: Tracker, B: Tracker> Tracker for Or<A, B> {
    fn track(&self, error: &(dyn StdError + 'static)) -> bool {
        self.0.track(error) || self.1.track(error)
    }
}
impl<A: Tracker> Tracker for NotTracker<A> {
    fn track(&self, error: &(dyn StdError + 'static)) -> bool {
        !self.0.track(error)
    }
}

macro_rules! tracker_ops {
    ($([$($g:tt)*] $t:ty),* $(,)?) => {$(
        impl<$($g)* Rhs: Tracker> BitAnd<Rhs> for $t {
            type Output = And<Self, Rhs>;
            fn bitand(self, rhs: Rhs) -> Self::Output { And(self, rhs) }
        }
        impl<$($g)* Rhs: Tracker> BitOr<Rhs> for $t {
            type Output = Or<Self, Rhs>;
            fn bitor(self, rhs: Rhs) -> Self::Output { Or(self, rhs) }
        }
        impl<$($g)*> Not for $t {
            type Output = NotTracker<Self>;
            fn not(self) -> Self::Output { NotTracker(self) }
        }
    )*};
}

tracker_ops!(
    [] All,
    [T: StdError + 'static,] TypeOf<T>,
    [E: StdError + 'static, F: Fn(&E) -> bool + Send + Sync + 'static,] Custom<E, F>,
    [A: Tracker, B: Tracker,] And<A, B>,
    [A: Tracker, B: Tracker,] Or<A, B>,
    [A: Tracker,] NotTracker<A>,
    [F: Fn(&(dyn StdError + 'static)) -> bool + Send + Sync + 'static,] FromFn<F>,
);
