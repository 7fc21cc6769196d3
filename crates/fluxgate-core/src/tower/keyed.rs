//! The keyed layer: one breaker per key taken from the request.

use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use super::{AnyError, Classify, ResponseFuture};
use crate::keyed::Keyed;
use crate::{AsyncCircuitBreaker, Error};

/// Picks the key of a request. Closures `Fn(&Req) -> K` implement it.
///
/// ```
/// use fluxgate_core::tower::KeyOf;
/// let by_tenant = |req: &(u32, &str)| req.0;
/// assert_eq!(by_tenant.key_of(&(7, "GET /")), 7);
/// ```
pub trait KeyOf<Req, K> {
    /// The key of `req`.
    fn key_of(&self, req: &Req) -> K;
}

impl<F, Req, K> KeyOf<Req, K> for F
where
    F: Fn(&Req) -> K,
{
    fn key_of(&self, req: &Req) -> K {
        self(req)
    }
}

/// The key of an `http::Request`: the host and port of its URI, else of its `Host`
/// header, else the empty string.
///
/// The host is lower-cased (host names are not case-sensitive), any user name and
/// password in the URI are left out (they would end up in breaker names, so in logs,
/// metric labels and Slack messages, and would split one host into one breaker per
/// user), and a URI without a port gets its scheme's default one, so that
/// `http://DB-1.internal/q` and `http://db-1.internal:80/q` share a breaker. A `Host`
/// header has no scheme to take a port from: it is keyed as written, lower-cased
/// (`Host: API.example` is `api.example`, not `api.example:80`); one that is not a valid
/// authority is kept as it is, lower-cased, without anything before an `@`.
///
/// ```
/// use fluxgate_core::tower::{Authority, KeyOf};
/// let req = http::Request::get("http://db-1.internal:8080/q").body(()).unwrap();
/// assert_eq!(Authority.key_of(&req), "db-1.internal:8080");
/// let req = http::Request::get("https://alice:secret@API.example/q").body(()).unwrap();
/// assert_eq!(Authority.key_of(&req), "api.example:443");
/// let req = http::Request::get("/q").header("host", "api.example").body(()).unwrap();
/// assert_eq!(Authority.key_of(&req), "api.example");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Authority;

impl<B> KeyOf<http::Request<B>, String> for Authority {
    fn key_of(&self, req: &http::Request<B>) -> String {
        let uri = req.uri();
        if let Some(a) = uri.authority() {
            let port = a.port_u16().or_else(|| match uri.scheme_str() {
                Some(s) if s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("ws") => {
                    Some(80)
                }
                Some(s) if s.eq_ignore_ascii_case("https") || s.eq_ignore_ascii_case("wss") => {
                    Some(443)
                }
                _ => None,
            });
            return host_port(a.host(), port);
        }
        let Some(host) = req.headers().get(http::header::HOST) else {
            return String::new();
        };
        match host.to_str().ok().map(str::parse::<http::uri::Authority>) {
            Some(Ok(a)) => host_port(a.host(), a.port_u16()),
            _ => {
                // Not an authority: kept as written, but never with what precedes an `@`.
                let raw = String::from_utf8_lossy(host.as_bytes());
                let host = raw.rsplit_once('@').map_or(&*raw, |(_, host)| host);
                host.to_ascii_lowercase()
            }
        }
    }
}

fn host_port(host: &str, port: Option<u16>) -> String {
    let host = host.to_ascii_lowercase();
    match port {
        Some(port) => format!("{host}:{port}"),
        None => host,
    }
}

/// Wraps services in a [`KeyedCircuitBreaker`] service: each request goes through the
/// breaker of its key (see [`keyed`](crate::keyed) for the bound and the eviction rule).
///
/// ```
/// use fluxgate_core::{AsyncCircuitBreaker, keyed::Keyed, tower::KeyedCircuitBreakerLayer};
/// let hosts: Keyed<String, AsyncCircuitBreaker> = Keyed::builder("upstream:").build().unwrap();
/// let by_host = KeyedCircuitBreakerLayer::by_authority(hosts);
/// let by_tenant = KeyedCircuitBreakerLayer::new(
///     Keyed::<u32, AsyncCircuitBreaker>::builder("tenant-").build().unwrap(),
///     |req: &http::Request<()>| req.headers().get("x-tenant").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0u32),
/// );
/// # let _ = (by_host, by_tenant);
/// ```
#[derive(Debug, Clone)]
pub struct KeyedCircuitBreakerLayer<K, KF, C = AnyError> {
    keyed: Keyed<K, AsyncCircuitBreaker>,
    key: KF,
    classify: C,
}

impl<K> KeyedCircuitBreakerLayer<K, Authority> {
    /// Keys `http::Request`s by their authority ([`Authority`]).
    ///
    /// ```
    /// use fluxgate_core::{AsyncCircuitBreaker, keyed::Keyed, tower::KeyedCircuitBreakerLayer};
    /// let _ = KeyedCircuitBreakerLayer::by_authority(Keyed::<String, AsyncCircuitBreaker>::builder("h:").build().unwrap());
    /// ```
    pub fn by_authority(keyed: Keyed<K, AsyncCircuitBreaker>) -> Self {
        KeyedCircuitBreakerLayer {
            keyed,
            key: Authority,
            classify: AnyError,
        }
    }
}

impl<K, KF> KeyedCircuitBreakerLayer<K, KF> {
    /// Keys requests with `key` (a closure `Fn(&Req) -> K` or a [`KeyOf`]).
    ///
    /// ```
    /// use fluxgate_core::{AsyncCircuitBreaker, keyed::Keyed, tower::KeyedCircuitBreakerLayer};
    /// let _ = KeyedCircuitBreakerLayer::new(Keyed::<u8, AsyncCircuitBreaker>::builder("s").build().unwrap(), |r: &u8| *r);
    /// ```
    pub fn new(keyed: Keyed<K, AsyncCircuitBreaker>, key: KF) -> Self {
        KeyedCircuitBreakerLayer {
            keyed,
            key,
            classify: AnyError,
        }
    }
}

impl<K, KF, C> KeyedCircuitBreakerLayer<K, KF, C> {
    /// Uses `classify` to decide how each result counts.
    ///
    /// ```
    /// use fluxgate_core::{AsyncCircuitBreaker, keyed::Keyed, tower::{KeyedCircuitBreakerLayer, ServerErrors}};
    /// let _ = KeyedCircuitBreakerLayer::by_authority(Keyed::<String, AsyncCircuitBreaker>::builder("h:").build().unwrap())
    ///     .classify(ServerErrors);
    /// ```
    pub fn classify<C2>(self, classify: C2) -> KeyedCircuitBreakerLayer<K, KF, C2> {
        KeyedCircuitBreakerLayer {
            keyed: self.keyed,
            key: self.key,
            classify,
        }
    }
}

impl<S, K, KF: Clone, C: Clone> Layer<S> for KeyedCircuitBreakerLayer<K, KF, C> {
    type Service = KeyedCircuitBreaker<S, K, KF, C>;
    fn layer(&self, inner: S) -> Self::Service {
        KeyedCircuitBreaker {
            inner,
            keyed: self.keyed.clone(),
            key: self.key.clone(),
            classify: self.classify.clone(),
        }
    }
}

/// A service protected by one breaker per key; made by [`KeyedCircuitBreakerLayer`].
///
/// ```
/// use fluxgate_core::{AsyncCircuitBreaker, keyed::Keyed, tower::KeyedCircuitBreakerLayer};
/// use tower_layer::Layer;
/// let svc = KeyedCircuitBreakerLayer::by_authority(Keyed::<String, AsyncCircuitBreaker>::builder("h:").build().unwrap()).layer(());
/// assert!(svc.keyed().is_empty());
/// ```
#[derive(Debug, Clone)]
pub struct KeyedCircuitBreaker<S, K, KF, C = AnyError> {
    inner: S,
    keyed: Keyed<K, AsyncCircuitBreaker>,
    key: KF,
    classify: C,
}

impl<S, K, KF, C> KeyedCircuitBreaker<S, K, KF, C> {
    /// The keyed breakers this service reports to.
    ///
    /// ```
    /// use fluxgate_core::{AsyncCircuitBreaker, keyed::Keyed, tower::KeyedCircuitBreakerLayer};
    /// use tower_layer::Layer;
    /// let svc = KeyedCircuitBreakerLayer::by_authority(Keyed::<String, AsyncCircuitBreaker>::builder("h:").build().unwrap()).layer(());
    /// assert_eq!(svc.keyed().max_keys(), 10_000);
    /// ```
    pub fn keyed(&self) -> &Keyed<K, AsyncCircuitBreaker> {
        &self.keyed
    }
}

impl<S, K, KF, C, Req> Service<Req> for KeyedCircuitBreaker<S, K, KF, C>
where
    S: Service<Req>,
    S::Error: 'static,
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    KF: KeyOf<Req, K>,
    C: Classify<S::Response, S::Error> + Clone,
{
    type Response = S::Response;
    type Error = Error<S::Error>;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Error::Inner)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let key = self.key.key_of(&req);
        let breaker = self.keyed.get(&key);
        match breaker.admit_owned() {
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
