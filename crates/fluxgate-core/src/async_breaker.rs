//! The asynchronous face: [`AsyncCircuitBreaker`].

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::Error;
use crate::breaker::shared_face_methods;
use crate::builder::{Builder, Face};
use crate::core::Core;
use crate::listeners::{AsyncListener, SpawnFuture};

/// A circuit breaker for async calls, over the same core as [`CircuitBreaker`](crate::CircuitBreaker).
///
/// `call` takes a closure that makes the future, so a rejected call never builds it.
/// Dropping the returned future mid-flight records nothing and frees its half-open slot
/// (SM-20).
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let rt = tokio::runtime::Builder::new_current_thread().build()?;
/// # rt.block_on(async {
/// let cb = fluxgate_core::AsyncCircuitBreaker::builder("async_api").build()?;
/// let v = cb.call(|| async { Ok::<_, std::io::Error>(7) }).await?;
/// assert_eq!(v, 7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })
/// # }
/// ```
#[derive(Clone)]
pub struct AsyncCircuitBreaker {
    core: Arc<Core>,
}

impl Face for AsyncCircuitBreaker {
    fn from_core(core: Arc<Core>) -> Self {
        AsyncCircuitBreaker { core }
    }
    fn core(&self) -> &Arc<Core> {
        &self.core
    }
}

impl fmt::Debug for AsyncCircuitBreaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncCircuitBreaker")
            .field("name", &&**self.core.name())
            .field("state", &self.core.state())
            .finish()
    }
}

shared_face_methods!(AsyncCircuitBreaker);

impl Builder<AsyncCircuitBreaker> {
    /// Adds an async listener (L-3): it is called for every signal, in order, and its
    /// future is driven off the call path; the call that caused the transition does not
    /// wait for it. Pending futures and queued signals are bounded per breaker (R-2, see
    /// [`listeners`](crate::listeners)).
    ///
    /// ```
    /// use fluxgate_core::{AsyncCircuitBreaker, Signal};
    /// let cb = AsyncCircuitBreaker::builder("async_api")
    ///     .async_listener(|s: Signal| async move { println!("{} -> {}", s.old_state, s.new_state) })
    ///     .build()
    ///     .unwrap();
    /// cb.force_open();
    /// ```
    pub fn async_listener(mut self, listener: impl AsyncListener) -> Self {
        self.async_listeners.push(Arc::new(listener));
        self
    }

    /// How async listeners' futures are run. By default: on the current tokio runtime
    /// (feature `tokio`), else on the last runtime a transition of the breaker was made
    /// in, else on the runtime it was built in, else (and for the work of a runtime that
    /// shut down) on a small built-in executor thread. Pass your runtime's spawn to use
    /// another one.
    ///
    /// ```
    /// use fluxgate_core::AsyncCircuitBreaker;
    /// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// let handle = rt.handle().clone();
    /// let cb = AsyncCircuitBreaker::builder("a")
    ///     .spawner(move |fut| drop(handle.spawn(fut)))
    ///     .build()
    ///     .unwrap();
    /// # drop(cb);
    /// ```
    pub fn spawner(mut self, spawn: impl Fn(SpawnFuture) + Send + Sync + 'static) -> Self {
        self.spawner = Some(Arc::new(spawn));
        self
    }
}

impl AsyncCircuitBreaker {
    /// Starts configuring an async breaker named `name`.
    ///
    /// ```
    /// let cb = fluxgate_core::AsyncCircuitBreaker::builder("async_api").build().unwrap();
    /// assert_eq!(cb.name(), "async_api");
    /// ```
    pub fn builder(name: &str) -> Builder<AsyncCircuitBreaker> {
        Builder::new(name)
    }

    /// Runs the future `f` makes if the breaker admits the call, and records its outcome.
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let cb = fluxgate_core::AsyncCircuitBreaker::builder("db").build().unwrap();
    /// let r = cb.call(|| async { Err::<(), _>(std::io::Error::other("down")) }).await;
    /// assert!(matches!(r, Err(fluxgate_core::Error::Inner(_))));
    /// # });
    /// ```
    pub async fn call<T, E, F, Fut>(&self, f: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: StdError + 'static,
    {
        let ticket = self.admit().map_err(Error::Rejected)?;
        let result = f().await;
        match &result {
            Ok(_) => ticket.success(),
            Err(e) => ticket.error(e),
        }
        result.map_err(Error::Inner)
    }

    /// Like [`call`](Self::call), with `is_failure` declaring some `Ok` values failures (CF-4).
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let cb = fluxgate_core::AsyncCircuitBreaker::builder("http").build().unwrap();
    /// let s = cb.call_classified(|| async { Ok::<u16, std::io::Error>(503) }, |s| *s >= 500).await;
    /// assert_eq!(s.unwrap(), 503);
    /// assert_eq!(cb.info().metric.failure_count, 1);
    /// # });
    /// ```
    pub async fn call_classified<T, E, F, Fut, C>(&self, f: F, is_failure: C) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        C: FnOnce(&T) -> bool,
        E: StdError + 'static,
    {
        let ticket = self.admit().map_err(Error::Rejected)?;
        let result = f().await;
        match &result {
            Ok(v) if is_failure(v) => ticket.failure(),
            Ok(_) => ticket.success(),
            Err(e) => ticket.error(e),
        }
        result.map_err(Error::Inner)
    }

    /// Like [`call`](Self::call), handing every error to `fallback` (CF-3).
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// let cb = fluxgate_core::AsyncCircuitBreaker::builder("db").build().unwrap();
    /// cb.force_open();
    /// let v = cb.call_with_fallback(|| async { Ok::<u8, std::io::Error>(1) }, |_| async { Ok::<u8, ()>(0) }).await;
    /// assert_eq!(v, Ok(0));
    /// # });
    /// ```
    pub async fn call_with_fallback<T, E, E2, F, Fut, G, GFut>(
        &self,
        f: F,
        fallback: G,
    ) -> Result<T, E2>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        G: FnOnce(Error<E>) -> GFut,
        GFut: Future<Output = Result<T, E2>>,
        E: StdError + 'static,
    {
        match self.call(f).await {
            Ok(v) => Ok(v),
            Err(e) => fallback(e).await,
        }
    }

    /// Like [`call`](Self::call), for futures whose error is not a `std::error::Error`
    /// (`anyhow::Error`, `Box<dyn Error + Send + Sync>`, `String`, any type); trackers see
    /// it as [`CircuitBreaker::call_any`](crate::CircuitBreaker::call_any) describes.
    ///
    /// ```
    /// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    /// # rt.block_on(async {
    /// type BoxError = Box<dyn std::error::Error + Send + Sync>;
    /// let cb = fluxgate_core::AsyncCircuitBreaker::builder("api").build().unwrap();
    /// let r = cb.call_any(|| async { Err::<(), BoxError>("reset".into()) }).await;
    /// assert!(r.is_err());
    /// assert_eq!(cb.info().metric.failure_count, 1);
    /// # });
    /// ```
    pub async fn call_any<T, E, F, Fut>(&self, f: F) -> Result<T, Error<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: 'static,
    {
        let ticket = self.admit().map_err(Error::Rejected)?;
        let result = f().await;
        match &result {
            Ok(_) => ticket.success(),
            Err(e) => ticket.error_any(e),
        }
        result.map_err(Error::Inner)
    }
}
