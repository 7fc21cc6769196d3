//! A tower [`Layer`] that puts a circuit breaker in front of any
//! `tower::Service` (feature `tower`).
//!
//! Middleware is where HTTP stacks want resilience: one `ServiceBuilder` line protects a
//! client or a route. The service admits each request through the breaker's core, runs
//! the inner service, and records the outcome a [`Classify`] rule gives (CF-4: an HTTP
//! response with status 5xx is a failure although the call returned `Ok`). A rejection is
//! `fluxgate_core::Error::Rejected`; [`CircuitBreakerLayer::respond_503`] turns it into an HTTP
//! `503 Service Unavailable` with a `Retry-After` header instead.
//!
//! ```
//! use fluxgate_core::tower::{CircuitBreakerLayer, ServerErrors};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let breaker = fluxgate_core::AsyncCircuitBreaker::builder("upstream").build().unwrap();
//! let svc = ServiceBuilder::new()
//!     .layer(CircuitBreakerLayer::new(breaker.clone()).classify(ServerErrors).respond_503())
//!     .service_fn(|_req: http::Request<()>| async {
//!         Ok::<_, std::convert::Infallible>(http::Response::builder().status(502).body(String::new()).unwrap())
//!     });
//! let resp = svc.oneshot(http::Request::new(())).await.unwrap();
//! assert_eq!(resp.status(), 502);
//! assert_eq!(breaker.info().metric.failure_count, 1);
//! # });
//! ```

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::{AsyncCircuitBreaker, CallNotPermitted, Error, Outcome, Ticket};

mod keyed;
pub use keyed::{Authority, KeyOf, KeyedCircuitBreaker, KeyedCircuitBreakerLayer};

/// Decides how a service result counts (CF-4).
///
/// Closures `Fn(&Result<T, E>) -> Outcome` implement it.
///
/// ```
/// use fluxgate_core::{Outcome, tower::Classify};
/// let c = |r: &Result<u16, ()>| match r { Ok(s) if *s >= 500 => Outcome::Failure, Ok(_) => Outcome::Success, Err(_) => Outcome::Ignored };
/// assert_eq!(c.classify(&Ok(503)), Outcome::Failure);
/// ```
pub trait Classify<T, E> {
    /// The outcome to record for `result`.
    fn classify(&self, result: &Result<T, E>) -> Outcome;
}

impl<F, T, E> Classify<T, E> for F
where
    F: Fn(&Result<T, E>) -> Outcome,
{
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        self(result)
    }
}

/// Every `Ok` is a success, every `Err` a failure (the default). As everywhere, an error
/// the breaker's tracker does not track is not recorded (SM-5): the tracker is asked about
/// a `std::io::Error`, a `Box<dyn Error…>`, an `Arc<dyn Error…>` and an `anyhow::Error`
/// (tower's `BoxError` included); an error of another type is a failure.
///
/// ```
/// use fluxgate_core::{Outcome, tower::{AnyError, Classify}};
/// assert_eq!(AnyError.classify(&Err::<(), _>("x")), Outcome::Failure);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyError;

impl<T, E> Classify<T, E> for AnyError {
    fn classify(&self, result: &Result<T, E>) -> Outcome {
        match result {
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// HTTP responses with a 5xx status and errors are failures; other responses succeed. An
/// error counts only if the breaker's tracker tracks it (SM-5).
///
/// ```
/// use fluxgate_core::{Outcome, tower::{Classify, ServerErrors}};
/// let r = http::Response::builder().status(503).body(()).unwrap();
/// assert_eq!(ServerErrors.classify(&Ok::<_, ()>(r)), Outcome::Failure);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerErrors;

impl<B, E> Classify<http::Response<B>, E> for ServerErrors {
    fn classify(&self, result: &Result<http::Response<B>, E>) -> Outcome {
        match result {
            Ok(r) if r.status().is_server_error() => Outcome::Failure,
            Ok(_) => Outcome::Success,
            Err(_) => Outcome::Failure,
        }
    }
}

/// `503 Service Unavailable` for a rejection, with `Retry-After` (whole seconds, rounded
/// up) when the breaker knows when it will probe again.
///
/// ```
/// use std::time::Duration;
/// use fluxgate_core::{CallNotPermitted, State};
/// let r = CallNotPermitted::new("db", State::Open, Some(Duration::from_millis(2500)));
/// let resp: http::Response<String> = fluxgate_core::tower::service_unavailable(&r);
/// assert_eq!(resp.status(), 503);
/// assert_eq!(resp.headers()["retry-after"], "3");
/// ```
pub fn service_unavailable<B: Default>(rejection: &CallNotPermitted) -> http::Response<B> {
    let mut response = http::Response::new(B::default());
    *response.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    if let Some(wait) = rejection.retry_after() {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
    }
    response
}

/// Wraps services in a [`CircuitBreaker`] service sharing one breaker.
///
/// ```
/// use fluxgate_core::tower::CircuitBreakerLayer;
/// let layer = CircuitBreakerLayer::new(fluxgate_core::AsyncCircuitBreaker::builder("api").build().unwrap());
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreakerLayer<C = AnyError> {
    breaker: AsyncCircuitBreaker,
    classify: C,
}

impl CircuitBreakerLayer {
    /// A layer recording `Ok` as success and `Err` as failure.
    ///
    /// ```
    /// let _ = fluxgate_core::tower::CircuitBreakerLayer::new(fluxgate_core::AsyncCircuitBreaker::builder("api").build().unwrap());
    /// ```
    pub fn new(breaker: AsyncCircuitBreaker) -> Self {
        CircuitBreakerLayer {
            breaker,
            classify: AnyError,
        }
    }
}

impl<C> CircuitBreakerLayer<C> {
    /// Uses `classify` to decide how each result counts.
    ///
    /// ```
    /// use fluxgate_core::tower::{CircuitBreakerLayer, ServerErrors};
    /// let _ = CircuitBreakerLayer::new(fluxgate_core::AsyncCircuitBreaker::builder("api").build().unwrap()).classify(ServerErrors);
    /// ```
    pub fn classify<C2>(self, classify: C2) -> CircuitBreakerLayer<C2> {
        CircuitBreakerLayer {
            breaker: self.breaker,
            classify,
        }
    }

    /// Answers rejections with `503` + `Retry-After` instead of an error, for HTTP
    /// services (an axum route keeps its `Infallible` error type).
    ///
    /// ```
    /// use fluxgate_core::tower::CircuitBreakerLayer;
    /// let _ = CircuitBreakerLayer::new(fluxgate_core::AsyncCircuitBreaker::builder("api").build().unwrap()).respond_503();
    /// ```
    pub fn respond_503(self) -> Respond503Layer<C> {
        Respond503Layer { layer: self }
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;
    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker {
            inner,
            breaker: self.breaker.clone(),
            classify: self.classify.clone(),
            shed: false,
        }
    }
}

/// A service protected by a circuit breaker; made by [`CircuitBreakerLayer`].
///
/// The breaker decides in `call`. An open breaker does not wait for the inner service's
/// backpressure, though: when the inner service is not ready and the breaker would
/// reject a call now (`forced_open`, or `open` before its probe is due), `poll_ready`
/// answers ready and the next `call` is rejected without reaching the inner service. A
/// saturated upstream is when failing fast matters most.
///
/// ```
/// use fluxgate_core::tower::CircuitBreakerLayer;
/// use tower_layer::Layer;
/// let svc = CircuitBreakerLayer::new(fluxgate_core::AsyncCircuitBreaker::builder("api").build().unwrap()).layer(());
/// assert_eq!(svc.breaker().name(), "api");
/// ```
#[derive(Debug, Clone)]
pub struct CircuitBreaker<S, C = AnyError> {
    inner: S,
    breaker: AsyncCircuitBreaker,
    classify: C,
    /// `poll_ready` answered ready for the breaker, not for the inner service: the next
    /// call is rejected without reaching it.
    shed: bool,
}

impl<S, C> CircuitBreaker<S, C> {
    /// The breaker this service reports to.
    ///
    /// ```
    /// # use fluxgate_core::tower::CircuitBreakerLayer; use tower_layer::Layer;
    /// let svc = CircuitBreakerLayer::new(fluxgate_core::AsyncCircuitBreaker::builder("api").build().unwrap()).layer(());
    /// assert_eq!(svc.breaker().state(), fluxgate_core::State::Closed);
    /// ```
    pub fn breaker(&self) -> &AsyncCircuitBreaker {
        &self.breaker
    }
}

impl<S, C> CircuitBreaker<S, C> {
    /// The inner service's readiness, or the breaker's when it would reject a call now
    /// and the inner service is not ready (see the type's documentation).
    fn ready<Req>(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>>
    where
        S: Service<Req>,
    {
        match self.inner.poll_ready(cx) {
            Poll::Ready(ready) => {
                self.shed = false;
                Poll::Ready(ready)
            }
            Poll::Pending if rejects_now(&self.breaker) => {
                self.shed = true;
                Poll::Ready(Ok(()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S, C, Req> Service<Req> for CircuitBreaker<S, C>
where
    S: Service<Req>,
    S::Error: 'static,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.ready(cx).map_err(Error::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        if std::mem::take(&mut self.shed) {
            // The inner service was not ready: it must not be called. Rejected as the
            // breaker stands now (an admission made meanwhile is given back unused).
            let rejection = match self.breaker.admit_owned() {
                Err(rejection) => rejection,
                Ok(_unused) => CallNotPermitted::new(
                    self.breaker.name(),
                    self.breaker.state(),
                    self.breaker.retry_after(),
                ),
            };
            return ResponseFuture {
                inner: None,
                ticket: None,
                rejected: Some(rejection),
                classify: self.classify.clone(),
            };
        }
        match self.breaker.admit_owned() {
            Ok(ticket) => ResponseFuture {
                inner: Some(self.inner.call(req)),
                ticket: Some(ticket),
                rejected: None,
                classify: self.classify.clone(),
            },
            Err(rejection) => ResponseFuture {
                inner: None,
                ticket: None,
                rejected: Some(rejection),
                classify: self.classify.clone(),
            },
        }
    }
}

pin_project! {
    /// The future of a [`CircuitBreaker`] service. Dropping it before it completes records
    /// nothing and frees its half-open slot (SM-20).
    pub struct ResponseFuture<F, C> {
        #[pin]
        inner: Option<F>,
        ticket: Option<Ticket<'static>>,
        rejected: Option<CallNotPermitted>,
        classify: C,
    }
}

impl<F, C, T, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<T, E>>,
    E: 'static,
    C: Classify<T, E>,
{
    type Output = Result<T, Error<E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(rejection) = this.rejected.take() {
            return Poll::Ready(Err(Error::Rejected(rejection)));
        }
        let Some(inner) = this.inner.as_mut().as_pin_mut() else {
            // Polled again after completion: nothing left to do.
            return Poll::Pending;
        };
        let result = std::task::ready!(inner.poll(cx));
        // The inner future is done: drop it now, so a poll after completion finds
        // nothing to poll (a finished future may panic when polled again).
        this.inner.set(None);
        if let Some(ticket) = this.ticket.take() {
            match (this.classify.classify(&result), &result) {
                // An error the classifier calls a failure is one only if the breaker's
                // tracker tracks it (SM-5), as for the breaker's own calls.
                (Outcome::Failure, Err(error)) => ticket.failure_unless_untracked(error),
                (outcome, _) => ticket.record(outcome),
            }
        }
        Poll::Ready(result.map_err(Error::Inner))
    }
}

/// Whether `breaker` would reject a call now: `forced_open`, or `open` before its probe is
/// due (a wait of `None` is a retry policy that never retries).
fn rejects_now(breaker: &AsyncCircuitBreaker) -> bool {
    match breaker.state() {
        crate::State::ForcedOpen => true,
        crate::State::Open => breaker.retry_after() != Some(std::time::Duration::ZERO),
        _ => false,
    }
}

/// [`CircuitBreakerLayer`] that answers rejections with `503` + `Retry-After`.
///
/// ```
/// use fluxgate_core::tower::{CircuitBreakerLayer, ServerErrors};
/// let _ = CircuitBreakerLayer::new(fluxgate_core::AsyncCircuitBreaker::builder("api").build().unwrap())
///     .classify(ServerErrors)
///     .respond_503();
/// ```
#[derive(Debug, Clone)]
pub struct Respond503Layer<C = AnyError> {
    layer: CircuitBreakerLayer<C>,
}

impl<S, C: Clone> Layer<S> for Respond503Layer<C> {
    type Service = Respond503<S, C>;
    fn layer(&self, inner: S) -> Self::Service {
        Respond503 {
            inner: self.layer.layer(inner),
        }
    }
}

/// A protected HTTP service whose rejections are `503` responses; made by
/// [`Respond503Layer`].
///
/// ```
/// use fluxgate_core::tower::CircuitBreakerLayer;
/// use tower_layer::Layer;
/// let svc = CircuitBreakerLayer::new(fluxgate_core::AsyncCircuitBreaker::builder("api").build().unwrap()).respond_503().layer(());
/// assert_eq!(svc.breaker().name(), "api");
/// ```
#[derive(Debug, Clone)]
pub struct Respond503<S, C = AnyError> {
    inner: CircuitBreaker<S, C>,
}

impl<S, C> Respond503<S, C> {
    /// The breaker this service reports to.
    ///
    /// ```
    /// # use fluxgate_core::tower::CircuitBreakerLayer; use tower_layer::Layer;
    /// let svc = CircuitBreakerLayer::new(fluxgate_core::AsyncCircuitBreaker::builder("api").build().unwrap()).respond_503().layer(());
    /// assert_eq!(svc.breaker().state(), fluxgate_core::State::Closed);
    /// ```
    pub fn breaker(&self) -> &AsyncCircuitBreaker {
        self.inner.breaker()
    }
}

impl<S, C, Req, B> Service<Req> for Respond503<S, C>
where
    S: Service<Req, Response = http::Response<B>>,
    S::Error: 'static,
    C: Classify<S::Response, S::Error> + Clone,
    B: Default,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = Respond503Future<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The breaker's readiness (it may answer for an inner service that is not ready,
        // see `CircuitBreaker`).
        self.inner.ready::<Req>(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        Respond503Future {
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The future of a [`Respond503`] service.
    pub struct Respond503Future<F, C> {
        #[pin]
        inner: ResponseFuture<F, C>,
    }
}

impl<F, C, B, E: 'static> Future for Respond503Future<F, C>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    C: Classify<http::Response<B>, E>,
    B: Default,
{
    type Output = Result<http::Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match std::task::ready!(self.project().inner.poll(cx)) {
            Ok(response) => Ok(response),
            Err(Error::Rejected(r)) => Ok(service_unavailable(&r)),
            Err(Error::Inner(e)) => Err(e),
        })
    }
}
