//! `start_http_server`: a `/metrics` endpoint on a background thread.
//!
//! Python programs expose their metrics with `start_http_server(8000)`, one line that
//! needs no web framework. Most Rust programs that use a synchronous breaker have no async
//! runtime either, so the server brings its own: hyper's HTTP/1.1 server on a
//! single-threaded tokio runtime that runs on one dedicated thread (`fluxgate-metrics`).
//! Encoding a large registry runs beside it, on at most one helper thread of that runtime
//! (`fluxgate-metrics-encode`, started by the first scrape and ended after 15 idle
//! minutes), so the connections keep being served meanwhile. It answers `GET`/`HEAD /metrics` with the classic text
//! format (`text/plain; version=0.0.4`) that Prometheus scrapes and Python sends and,
//! when [`MetricsServer::builder`] was given a [`StatusSource`], `/status.json` and the
//! `/status` page; other paths get 404, other methods 405. Applications that already run axum mount
//! [`axum_router`](super::axum_router) instead.
//!
//! # Hostile clients (R-5)
//!
//! A metrics port is often reachable by more than Prometheus, and a scrape that fails
//! looks like an outage. Slow, idle, lingering and malformed clients therefore only ever
//! hold their own connection, for a bounded time, and memory does not grow with their
//! number:
//!
//! | limit | value | what it stops |
//! |---|---|---|
//! | whole request head | 5 s from the connection's start or from the end of its previous answer | clients that trickle their request a byte at a time (slow loris) |
//! | keep-alive idle time | 5 s (the same deadline: the next head must be complete by then) | clients that keep their connection open and silent |
//! | whole answer | 10 s from the request to the last byte handed to the kernel, not per write | clients that read the answer a byte at a time |
//! | request head size | 16 KiB | oversized heads (answered 431) |
//! | connections at once | 128; a new one sheds the oldest idle, unfinished or closing connection (only when every connection is being answered, the oldest of those), and each new one reads its request before the next is taken | floods of any of the above crowding out good scrapes |
//! | closing | at most 2 s and 1 MiB read and discarded after the last answer | closing with unread input resets the connection and can destroy the answer |
//! | encodings | one at a time, at most one a second: scrapes that arrive while one runs, or within 1 s after it ended, share its body (the same for `/status.json`, rendered apart from `/metrics`) | a burst or a loop of scrapes encoding the registry once each |
//! | bodies alive | 4 at most (kept for reuse or still being sent); beyond, scrapes get the newest | slow readers each holding their own copy of a large body |
//!
//! A body is encoded once and shared, as reference-counted [`Bytes`], by every answer that
//! carries it; hyper queues it without copying, so a slow reader costs its connection's
//! buffers, not a body. A scrape sees the registry as it was at most about a second before
//! (plus the time an encoding takes); only while 4 bodies are alive, which takes slow
//! readers holding older ones for up to their 10 s, does a scrape get the newest body
//! whatever its age. Malformed requests get hyper's 400 or 431 answer, or a close.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::Registry;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot};

use super::lock_ignoring_poison;
use super::status::{
    STATUS_JSON_CONTENT_TYPE, STATUS_PAGE, STATUS_PAGE_CONTENT_TYPE, StatusSource, status_json,
};

/// The content type of the classic Prometheus text exposition format, as served by
/// [`start_http_server`] and [`metrics_response`](super::metrics_response) (PR-7).
///
/// ```
/// assert_eq!(
///     fluxgate_prometheus::CONTENT_TYPE,
///     "text/plain; version=0.0.4; charset=utf-8"
/// );
/// ```
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Connections served at once; a new one beyond it sheds an older one (see [`Slots::admit`]).
const MAX_CONNECTIONS: usize = 128;
/// Time a client has to send a whole request head, counted from the start of the
/// connection or the end of its previous answer: also the keep-alive idle timeout.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a whole answer, from the request to the last byte handed to the kernel.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted (request line and headers); hyper answers 431 beyond.
const MAX_HEAD: usize = 16 * 1024;
/// How long, and how much, to read and discard after the last answer, until the client
/// closes.
const LINGER: Duration = Duration::from_secs(2);
const MAX_LINGER_BYTES: usize = 1024 * 1024;
/// A body is reused by the scrapes that arrive within this time after its encoding ended:
/// the registry is encoded at most once per this time, however many scrapes arrive.
const REUSE_WINDOW: Duration = Duration::from_secs(1);
/// Encoded bodies alive at once (kept for reuse, or still being sent); at the bound, new
/// scrapes get the newest one instead of a new encoding.
const MAX_BODIES: usize = 4;
/// How often the deadlines of all connections are checked. hyper enforces the head
/// deadline on its own; this check is what bounds answers and closing, and backs hyper up.
const REAP_EVERY: Duration = Duration::from_millis(250);
/// What a deadline checked by the reaper may overrun by before the connection is closed,
/// so that hyper's own head deadline (which can still answer) goes first.
const REAP_SLACK: Duration = Duration::from_secs(1);
/// How long the encoding thread stays parked between scrapes before it ends. Longer than
/// any scrape interval, so that one thread (and one allocator arena) does every encoding
/// instead of a new thread with fresh memory for each scrape.
const ENCODER_KEEP_ALIVE: Duration = Duration::from_secs(15 * 60);
/// How long [`MetricsServer::shutdown`] waits for the server thread to close the port.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// Back-off after an accept error that is not about one connection (out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Renders `registry` in the classic text exposition format (PR-7).
///
/// ```
/// use fluxgate_prometheus::{encode_text, PrometheusListener};
/// use fluxgate_core::listeners::Listener;
///
/// let registry = prometheus::Registry::new();
/// let listener = PrometheusListener::with_registry(&registry).unwrap();
/// listener.on_attach("payment_api", fluxgate_core::State::Closed);
/// let text = encode_text(&registry).unwrap();
/// assert!(text.starts_with("# HELP circuit_breaker_state Current state of the circuit breaker\n"));
/// ```
pub fn encode_text(registry: &Registry) -> Result<String, prometheus::Error> {
    super::listener::encode_registry(registry)
}

/// Serves the process-wide default registry (the one [`PrometheusListener::new`] writes
/// to) at `http://ADDR/metrics` from a background thread: the seed's
/// `start_http_server(8000)` (PR-6).
///
/// `addr` is anything [`ToSocketAddrs`] accepts: `"0.0.0.0:8000"`, `("0.0.0.0", 8000)`, a
/// [`SocketAddr`]; port 0 picks a free port (see [`MetricsServer::local_addr`]). A port
/// that is already taken is an error whose [`ServeError::kind`] is
/// [`io::ErrorKind::AddrInUse`]. No async runtime is needed: the server brings its own,
/// on its own thread, and works the same when called from inside one.
///
/// The server runs until [`MetricsServer::shutdown`]; dropping the handle leaves it
/// running for the life of the process, as Python's does.
///
/// # Slow, idle and malformed clients (R-5)
///
/// Good scrapes keep being answered, and memory does not grow with the number of hostile
/// clients on the same port:
///
/// - a request head must be complete within 5 s of the connection's start or of the end
///   of its previous answer (which also closes idle keep-alive connections after 5 s);
///   heads larger than 16 KiB get 431;
/// - a whole answer must be taken within 10 s (not per write);
/// - at most 128 connections are served; a new one sheds the oldest connection that is
///   idle, still sending its head or closing (the oldest answer only when all are being
///   answered);
/// - the registry is encoded at most once a second, one encoding at a time; its text is
///   shared, without copies, by every answer that carries it, and at most 4 encodings are
///   alive at once. A scrape thus sees the registry as it was up to about a second before;
/// - malformed requests get 400 or 431, or a close.
///
/// [`PrometheusListener::new`]: super::PrometheusListener::new
///
/// ```
/// use fluxgate_prometheus::{start_http_server, PrometheusListener};
/// use fluxgate_core::CircuitBreaker;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // In a service: start_http_server(("0.0.0.0", 8000))?;
/// let server = start_http_server("127.0.0.1:0")?;
/// let cb = CircuitBreaker::builder("payment_api")
///     .listener(PrometheusListener::new())
///     .build()?;
/// println!("metrics: http://{}/metrics", server.local_addr());
///
/// let taken = start_http_server(server.local_addr()).unwrap_err();
/// assert_eq!(taken.kind(), std::io::ErrorKind::AddrInUse);
/// # drop(cb);
/// server.shutdown();
/// # Ok(())
/// # }
/// ```
pub fn start_http_server(addr: impl ToSocketAddrs) -> Result<MetricsServer, ServeError> {
    start_http_server_with_registry(addr, prometheus::default_registry())
}

/// Like [`start_http_server`], serving `registry` instead of the default registry.
///
/// ```
/// use fluxgate_prometheus::{start_http_server_with_registry, PrometheusListener};
///
/// let registry = prometheus::Registry::new();
/// let listener = PrometheusListener::with_registry(&registry).unwrap();
/// let server = start_http_server_with_registry("127.0.0.1:0", &registry).unwrap();
/// assert_ne!(server.local_addr().port(), 0);
/// server.shutdown();
/// # drop(listener);
/// ```
pub fn start_http_server_with_registry(
    addr: impl ToSocketAddrs,
    registry: &Registry,
) -> Result<MetricsServer, ServeError> {
    MetricsServer::builder(addr).registry(registry).start()
}

/// Options of a metrics server before it starts: [`MetricsServer::builder`].
///
/// ```
/// use fluxgate_core::CircuitBreaker;
/// use fluxgate_prometheus::{MetricsServer, PrometheusListener};
///
/// let registry = prometheus::Registry::new();
/// let listener = PrometheusListener::with_registry(&registry).unwrap();
/// let payment = CircuitBreaker::builder("payment_api").listener(listener.clone()).build().unwrap();
/// let inventory = CircuitBreaker::builder("inventory_api").listener(listener).build().unwrap();
/// let server = MetricsServer::builder("127.0.0.1:0")
///     .registry(&registry)
///     .status(vec![payment, inventory])
///     .start()
///     .unwrap();
/// // http://{addr}/metrics, http://{addr}/status and http://{addr}/status.json
/// server.shutdown();
/// ```
pub struct ServerBuilder {
    addrs: io::Result<Vec<SocketAddr>>,
    registry: Registry,
    status: Option<Arc<dyn StatusSource>>,
}

impl fmt::Debug for ServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBuilder")
            .field("addrs", &self.addrs)
            .field("status", &self.status.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerBuilder {
    /// Serves `registry` at `/metrics` instead of the process-wide default registry.
    ///
    /// ```
    /// let registry = prometheus::Registry::new();
    /// let server = fluxgate_prometheus::MetricsServer::builder("127.0.0.1:0")
    ///     .registry(&registry)
    ///     .start()
    ///     .unwrap();
    /// server.shutdown();
    /// ```
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = registry.clone();
        self
    }

    /// Also serves the status of the breakers that `source` lists: `GET /status.json`
    /// ([`status_json`]) and `GET /status` ([`STATUS_PAGE`], a page of tiles that
    /// refreshes itself). Without a source both answer 404.
    ///
    /// The same limits as for `/metrics` apply: `/status.json` is rendered at most once a
    /// second, on the encoding thread, and its body shared by every answer; the page is a
    /// constant.
    ///
    /// ```
    /// use fluxgate_core::CircuitBreaker;
    /// use fluxgate_prometheus::{BreakerStatus, MetricsServer};
    ///
    /// let cb = CircuitBreaker::builder("payment_api").build().unwrap();
    /// // A closure lists breakers kept anywhere (a map of tenants, a registry …).
    /// let server = MetricsServer::builder("127.0.0.1:0")
    ///     .status(move || vec![BreakerStatus::of(&cb)])
    ///     .start()
    ///     .unwrap();
    /// server.shutdown();
    /// ```
    pub fn status(mut self, source: impl StatusSource) -> Self {
        self.status = Some(Arc::new(source));
        self
    }

    /// Binds the address and starts serving on a background thread, as
    /// [`start_http_server`] does (same errors, same limits).
    ///
    /// ```
    /// let server = fluxgate_prometheus::MetricsServer::builder("127.0.0.1:0").start().unwrap();
    /// assert_ne!(server.local_addr().port(), 0);
    /// server.shutdown();
    /// ```
    pub fn start(self) -> Result<MetricsServer, ServeError> {
        let addrs = self
            .addrs
            .map_err(|source| ServeError { addr: None, source })?;
        let registry = self.registry;
        let metrics = Exposition::new(CONTENT_TYPE, move || {
            encode_text(&registry)
                .map(String::into_bytes)
                .map_err(|error| error.to_string())
        });
        let status = self.status.map(|source| {
            Arc::new(Exposition::new(STATUS_JSON_CONTENT_TYPE, move || {
                Ok(status_json(&source.statuses()).into_bytes())
            }))
        });
        start(&addrs, Arc::new(metrics), status)
    }
}

fn start(
    addrs: &[SocketAddr],
    metrics: Arc<Exposition>,
    status: Option<Arc<Exposition>>,
) -> Result<MetricsServer, ServeError> {
    let first = addrs.first().copied();
    let failed = |source| ServeError {
        addr: first,
        source,
    };
    let listener = std::net::TcpListener::bind(addrs).map_err(failed)?;
    let local_addr = listener.local_addr().map_err(failed)?;
    let failed = |source| ServeError {
        addr: Some(local_addr),
        source,
    };
    listener.set_nonblocking(true).map_err(failed)?;
    let control = Arc::new(Control::default());
    let shared = Arc::new(Shared {
        metrics,
        status,
        slots: Slots::new(),
    });
    // The runtime is built, used and dropped on the server thread only: a runtime may not
    // be dropped inside another one, and the caller may be running one.
    let (ready, started) = mpsc::sync_channel(1);
    {
        let control = Arc::clone(&control);
        thread::Builder::new()
            .name("fluxgate-metrics".into())
            .spawn(move || {
                // Whatever happens on this thread, `shutdown` must not wait for a port
                // that is already closed.
                let _closed = MarkClosed(&control);
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .max_blocking_threads(1)
                    .thread_keep_alive(ENCODER_KEEP_ALIVE)
                    .thread_name("fluxgate-metrics-encode")
                    .build();
                let listener = runtime.and_then(|runtime| {
                    let listener = {
                        let _entered = runtime.enter();
                        TcpListener::from_std(listener)
                    };
                    listener.map(|listener| (runtime, listener))
                });
                let (runtime, listener) = match listener {
                    Ok(started) => started,
                    Err(error) => {
                        let _ = ready.send(Err(error));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                runtime.block_on(serve(listener, shared, &control));
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .map_err(failed)?;
    }
    match started.recv() {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(failed(error)),
        Err(_) => {
            return Err(failed(io::Error::other(
                "the metrics server thread ended while starting",
            )));
        }
    }
    Ok(MetricsServer {
        local_addr,
        control,
    })
}

/// A running metrics server, returned by [`start_http_server`].
///
/// Dropping it does not stop the server (it keeps serving in the background, like
/// Python's); call [`shutdown`](MetricsServer::shutdown) to stop it.
///
/// ```
/// use fluxgate_prometheus::start_http_server_with_registry;
///
/// let server = start_http_server_with_registry("127.0.0.1:0", &prometheus::Registry::new()).unwrap();
/// let addr = server.local_addr();
/// server.shutdown();
/// // The port is free again.
/// let again = start_http_server_with_registry(addr, &prometheus::Registry::new()).unwrap();
/// again.shutdown();
/// ```
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    control: Arc<Control>,
}

impl MetricsServer {
    /// A server to configure before it starts: the registry served at `/metrics` (the
    /// default registry unless told), and a [`StatusSource`] for `/status` and
    /// `/status.json`. `addr` is anything [`ToSocketAddrs`] accepts; an address that does
    /// not resolve is reported by [`start`](ServerBuilder::start).
    ///
    /// ```
    /// use fluxgate_prometheus::MetricsServer;
    ///
    /// let cb = fluxgate_core::CircuitBreaker::builder("payment_api").build().unwrap();
    /// let server = MetricsServer::builder(("127.0.0.1", 0)).status(cb).start().unwrap();
    /// println!("status: http://{}/status", server.local_addr());
    /// server.shutdown();
    /// ```
    pub fn builder(addr: impl ToSocketAddrs) -> ServerBuilder {
        ServerBuilder {
            addrs: addr.to_socket_addrs().map(Iterator::collect),
            registry: prometheus::default_registry().clone(),
            status: None,
        }
    }

    /// The address the server listens on, with the real port when port 0 was asked for.
    ///
    /// ```
    /// let server = fluxgate_prometheus::start_http_server("127.0.0.1:0").unwrap();
    /// let url = format!("http://{}/metrics", server.local_addr());
    /// assert!(url.starts_with("http://127.0.0.1:"));
    /// server.shutdown();
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections and returns once the listening socket is closed.
    /// Idle and unfinished connections are closed at once; answers already being sent get
    /// the rest of their deadline, after which the server thread ends.
    ///
    /// ```
    /// let server = fluxgate_prometheus::start_http_server("127.0.0.1:0").unwrap();
    /// let addr = server.local_addr();
    /// server.shutdown();
    /// assert!(std::net::TcpStream::connect(addr).is_err());
    /// ```
    pub fn shutdown(self) {
        self.control.stop.notify_one();
        self.control.wait_closed(SHUTDOWN_WAIT);
    }
}

/// What the handle and the server thread share: the stop request, and the answer that the
/// port is closed.
#[derive(Debug, Default)]
struct Control {
    stop: Notify,
    closed: Mutex<bool>,
    closed_changed: Condvar,
}

impl Control {
    fn mark_closed(&self) {
        *lock_ignoring_poison(&self.closed) = true;
        self.closed_changed.notify_all();
    }

    fn wait_closed(&self, at_most: Duration) {
        let closed = lock_ignoring_poison(&self.closed);
        let _ = self
            .closed_changed
            .wait_timeout_while(closed, at_most, |closed| !*closed);
    }
}

struct MarkClosed<'a>(&'a Control);

impl Drop for MarkClosed<'_> {
    fn drop(&mut self) {
        self.0.mark_closed();
    }
}

/// Why [`start_http_server`] could not start: the address did not resolve, the port is
/// taken, or the process may not bind it.
///
/// ```
/// use std::io::ErrorKind;
/// use fluxgate_prometheus::start_http_server;
///
/// let first = start_http_server("127.0.0.1:0").unwrap();
/// let err = start_http_server(first.local_addr()).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::AddrInUse);
/// assert_eq!(err.addr(), Some(first.local_addr()));
/// assert!(err.to_string().contains("already in use"), "{err}");
/// first.shutdown();
/// ```
#[derive(Debug)]
pub struct ServeError {
    addr: Option<SocketAddr>,
    source: io::Error,
}

impl ServeError {
    /// The kind of the underlying I/O error ([`io::ErrorKind::AddrInUse`] for a taken port).
    ///
    /// ```
    /// let err = fluxgate_prometheus::start_http_server("no port given").unwrap_err();
    /// assert_ne!(err.kind(), std::io::ErrorKind::AddrInUse);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// The address that could not be bound, when the address resolved.
    ///
    /// ```
    /// let err = fluxgate_prometheus::start_http_server("no port given").unwrap_err();
    /// assert_eq!(err.addr(), None);
    /// ```
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.addr, self.source.kind()) {
            (None, _) => write!(
                f,
                "cannot serve metrics: cannot resolve the address: {}",
                self.source
            ),
            (Some(addr), io::ErrorKind::AddrInUse) => write!(
                f,
                "cannot serve metrics on {addr}: the address is already in use \
                 (another process, or another metrics server, listens on port {})",
                addr.port()
            ),
            (Some(addr), _) => write!(f, "cannot serve metrics on {addr}: {}", self.source),
        }
    }
}

impl std::error::Error for ServeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// What every connection of one server uses.
struct Shared {
    metrics: Arc<Exposition>,
    status: Option<Arc<Exposition>>,
    slots: Slots,
}

/// The accept loop, until [`MetricsServer::shutdown`]; then the drain.
async fn serve(listener: TcpListener, shared: Arc<Shared>, control: &Control) {
    let reaper = tokio::spawn({
        let shared = Arc::clone(&shared);
        async move {
            let mut tick = tokio::time::interval(REAP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                shared.slots.reap();
            }
        }
    });
    let mut stop = pin!(control.stop.notified());
    loop {
        let accepted = poll_fn(|cx| {
            if stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            listener.poll_accept(cx).map(Some)
        })
        .await;
        match accepted {
            None => break,
            Some(Ok((stream, _peer))) => {
                let _ = stream.set_nodelay(true);
                let slot = shared.slots.admit();
                tokio::spawn(connection(stream, slot, Arc::clone(&shared)));
                // Let the new connection read what it was sent before the next one is
                // taken: a good scrape's request is there at once, and once read its
                // connection is answering, the phase shed last. Taking a burst of
                // connections first (up to the runtime's budget) would let a flood of
                // new ones shed the scrape before it was ever read.
                tokio::task::yield_now().await;
            }
            Some(Err(error)) => {
                if !matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                ) {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tracing::warn!(target: "fluxgate", %error, "metrics server: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
    drop(listener);
    control.mark_closed();
    shared.slots.close_all_but_answers();
    let drained = tokio::time::Instant::now() + ANSWER_TIMEOUT + REAP_SLACK;
    while !shared.slots.is_empty() && tokio::time::Instant::now() < drained {
        tokio::time::sleep(REAP_EVERY).await;
    }
    reaper.abort();
}

/// Serves one connection with hyper, within its slot's deadlines, then closes it.
async fn connection(stream: TcpStream, slot: Arc<Slot>, shared: Arc<Shared>) {
    let _release = Release {
        shared: Arc::clone(&shared),
        id: slot.id,
    };
    let (give_back, given_back) = oneshot::channel();
    let io = TokioIo::new(Returned {
        stream: Some(stream),
        back: Some(give_back),
    });
    let service = {
        let slot = Arc::clone(&slot);
        service_fn(move |request| {
            let shared = Arc::clone(&shared);
            let answer = Answering::begin(Arc::clone(&slot));
            async move { Ok::<_, Infallible>(respond(&request, &shared, answer).await) }
        })
    };
    let http = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD)
        .writev(true)
        .half_close(true)
        .serve_connection(io, service);
    let mut http = Box::pin(http);
    let ended = until_shed(&slot, poll_fn(|cx| http.as_mut().poll(cx))).await;
    // Asked before the answer's body goes with `http`.
    let cut_short = ended.is_none() && slot.phase() == Phase::Answering;
    // Dropping the connection hands the socket back (see `Returned`).
    drop(http);
    let mut given_back = given_back;
    let Some(ended) = ended else {
        // Shed or past a deadline: close at once. An answer cut short is reset, so that
        // the kernel discards what it still holds for this client instead of sending it
        // on: a slow reader costs no memory past its deadline, not even the kernel's.
        if let (true, Ok(stream)) = (cut_short, given_back.try_recv()) {
            // A zero linger never blocks (it is tokio's `set_zero_linger`, from 1.50).
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
        }
        return;
    };
    // After an answer (hyper's own 400/431 included), read what the client still sends
    // until it closes; otherwise unread input makes the close a reset, which can destroy
    // the answer before the client read it. After a timeout or an abort there is no
    // answer to protect.
    let answered = match &ended {
        Ok(()) => true,
        Err(error) => error.is_parse(),
    };
    if !answered {
        return;
    }
    if let Ok(stream) = given_back.try_recv() {
        slot.enter_closing();
        let _ = until_shed(&slot, linger(stream)).await;
    }
}

/// Runs `work` until it ends or the slot is told to close (shed, or past a deadline).
async fn until_shed<F: Future>(slot: &Slot, work: F) -> Option<F::Output> {
    let mut work = pin!(work);
    let mut shed = pin!(slot.shed.notified());
    poll_fn(|cx| {
        if shed.as_mut().poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        work.as_mut().poll(cx).map(Some)
    })
    .await
}

/// Shuts the write side (the client sees the end of the answer), then reads and discards
/// until the client closes, for at most [`LINGER`] and [`MAX_LINGER_BYTES`].
async fn linger(mut stream: TcpStream) {
    let _ = poll_fn(|cx| Pin::new(&mut stream).poll_shutdown(cx)).await;
    let deadline = tokio::time::Instant::now() + LINGER;
    let mut discarded = 0usize;
    let mut chunk = [0u8; 1024];
    while discarded < MAX_LINGER_BYTES {
        match tokio::time::timeout_at(deadline, stream.readable()).await {
            Ok(Ok(())) => match stream.try_read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => discarded += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            },
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// The router: `GET`/`HEAD` of `/metrics`, and of `/status` and `/status.json` when a
/// status source is attached; 404 elsewhere, 405 for other methods.
async fn respond(
    request: &Request<Incoming>,
    shared: &Shared,
    answer: Answering,
) -> Response<Full<Bytes>> {
    // A request body is never read: after one, the connection cannot carry another request.
    let has_body = !request.body().is_end_stream();
    let route = match (request.uri().path(), &shared.status) {
        ("/metrics", _) => Route::Cached(&shared.metrics),
        ("/status.json", Some(status)) => Route::Cached(status),
        ("/status", Some(_)) => Route::Page,
        _ => {
            return plain(
                StatusCode::NOT_FOUND,
                "Not Found: metrics are at /metrics\n".into(),
                answer,
                has_body,
            );
        }
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "Method Not Allowed\n".into(),
            answer,
            true,
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let exposition = match route {
        Route::Cached(exposition) => exposition,
        Route::Page => {
            let mut response = plain(StatusCode::OK, STATUS_PAGE.into(), answer, has_body);
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(STATUS_PAGE_CONTENT_TYPE),
            );
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_POLICY),
            );
            return response;
        }
    };
    match exposition.body().await {
        Ok(body) => {
            let content_type = exposition.content_type;
            let body = Bytes::from_owner(Lease {
                text: Text::Encoded(body),
                _answer: answer,
            });
            let mut response = Response::new(Full::new(body));
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(message) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode {}: {message}\n", exposition.what()).into(),
            answer,
            has_body,
        ),
    }
}

/// What a path is served from.
enum Route<'a> {
    /// A body rendered at most once a second and shared.
    Cached(&'a Arc<Exposition>),
    /// The constant status page.
    Page,
}

/// The status page may run its own inline script and style and fetch from its own origin,
/// nothing else.
pub(crate) const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'";

/// A short text answer. `close` ends the connection after it, for requests whose body
/// nobody reads.
fn plain(
    status: StatusCode,
    text: std::borrow::Cow<'static, str>,
    answer: Answering,
    close: bool,
) -> Response<Full<Bytes>> {
    let body = Bytes::from_owner(Lease {
        text: Text::Plain(text),
        _answer: answer,
    });
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The bytes of one answer's body. The answer counts as being sent until hyper has handed
/// the last of them to the kernel and dropped them, which is what the answer deadline
/// measures.
struct Lease {
    text: Text,
    _answer: Answering,
}

enum Text {
    Encoded(Arc<Encoded>),
    Plain(std::borrow::Cow<'static, str>),
}

impl AsRef<[u8]> for Lease {
    fn as_ref(&self) -> &[u8] {
        match &self.text {
            Text::Encoded(body) => &body.text,
            Text::Plain(text) => text.as_bytes(),
        }
    }
}

/// A body rendered once per burst of requests and shared: the exposition of one
/// registry, or the status of the breakers.
struct Exposition {
    render: Box<dyn Fn() -> Result<Vec<u8>, String> + Send + Sync>,
    content_type: &'static str,
    cache: Mutex<Cache>,
    /// Woken when an encoding ends, successful or not.
    encoded: Notify,
    /// Encoded bodies alive (kept in the cache or held by answers).
    alive: Arc<AtomicUsize>,
}

#[derive(Default)]
struct Cache {
    /// The newest body, and when its encoding ended.
    latest: Option<(Arc<Encoded>, Instant)>,
    encoding: bool,
    failure: Option<(Instant, String)>,
}

/// One encoding of the registry.
struct Encoded {
    text: Vec<u8>,
    alive: Arc<AtomicUsize>,
}

impl Drop for Encoded {
    fn drop(&mut self) {
        self.alive.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Exposition {
    /// What the body holds, for error messages.
    fn what(&self) -> &'static str {
        if self.content_type == CONTENT_TYPE {
            "metrics"
        } else {
            "the status"
        }
    }

    fn new(
        content_type: &'static str,
        render: impl Fn() -> Result<Vec<u8>, String> + Send + Sync + 'static,
    ) -> Exposition {
        Exposition {
            render: Box::new(render),
            content_type,
            cache: Mutex::new(Cache::default()),
            encoded: Notify::new(),
            alive: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The body for a scrape that arrives now: one whose encoding ended after the scrape
    /// arrived or less than [`REUSE_WINDOW`] ago, or, once [`MAX_BODIES`] are alive, the
    /// newest one. Otherwise a new encoding, shared with the scrapes that arrive while it
    /// runs.
    async fn body(self: &Arc<Self>) -> Result<Arc<Encoded>, String> {
        let asked = Instant::now();
        loop {
            let ended = {
                let mut cache = lock_ignoring_poison(&self.cache);
                if let Some((latest, at)) = &cache.latest {
                    if *at >= asked
                        || at.elapsed() < REUSE_WINDOW
                        || self.alive.load(Ordering::Acquire) >= MAX_BODIES
                    {
                        return Ok(Arc::clone(latest));
                    }
                }
                if let Some((at, message)) = &cache.failure {
                    if *at >= asked {
                        return Err(message.clone());
                    }
                }
                // Created under the lock, so the end of the encoding cannot be missed.
                let ended = self.encoded.notified();
                if !cache.encoding {
                    cache.encoding = true;
                    self.start_encoding();
                }
                ended
            };
            ended.await;
        }
    }

    /// Encodes on the runtime's blocking thread, so that connections keep being served.
    fn start_encoding(self: &Arc<Self>) {
        let job = EncodeJob {
            exposition: Arc::clone(self),
            outcome: None,
        };
        // If the job never runs (the runtime is shutting down), dropping it ends the
        // encoding all the same, so no scrape waits for it.
        drop(tokio::task::spawn_blocking(move || job.run()));
    }
}

/// One encoding. Its end is published when it is dropped, so that a panicking collector
/// or a job that never ran still ends it: no scrape waits forever.
struct EncodeJob {
    exposition: Arc<Exposition>,
    outcome: Option<Result<Vec<u8>, String>>,
}

impl EncodeJob {
    fn run(mut self) {
        let outcome = (self.exposition.render)().map(|mut text| {
            text.shrink_to_fit();
            text
        });
        self.outcome = Some(outcome);
    }
}

impl Drop for EncodeJob {
    fn drop(&mut self) {
        let outcome = self
            .outcome
            .take()
            .unwrap_or_else(|| Err("the encoding did not finish".to_owned()));
        let exposition = &self.exposition;
        let at = Instant::now();
        let mut cache = lock_ignoring_poison(&exposition.cache);
        match outcome {
            Ok(text) => {
                exposition.alive.fetch_add(1, Ordering::AcqRel);
                let body = Arc::new(Encoded {
                    text,
                    alive: Arc::clone(&exposition.alive),
                });
                cache.latest = Some((body, at));
            }
            Err(message) => cache.failure = Some((at, message)),
        }
        cache.encoding = false;
        drop(cache);
        exposition.encoded.notify_waiters();
    }
}

/// The connections being served: the connection cap and the deadlines.
struct Slots {
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Slot>>>,
}

/// What a connection is doing, in the order in which connections are shed: closing
/// first, then waiting for a request head (new, trickling or idle), answers last.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Closing,
    Waiting,
    Answering,
}

impl Phase {
    /// How long a connection may stay in this phase.
    fn limit(self) -> Duration {
        match self {
            Phase::Closing => LINGER + REAP_SLACK,
            Phase::Waiting => HEAD_TIMEOUT + REAP_SLACK,
            Phase::Answering => ANSWER_TIMEOUT,
        }
    }
}

/// One connection's entry: its phase, since when, and how to tell it to close.
struct Slot {
    id: u64,
    epoch: Instant,
    closing: AtomicBool,
    /// Answers being sent (more than one only when a client pipelines).
    answers: AtomicUsize,
    /// Milliseconds from `epoch` to the last change of phase.
    since: AtomicU64,
    /// Told once, when the connection is shed or overdue; the permit waits if nobody
    /// listens yet.
    shed: Notify,
}

fn millis(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

impl Slot {
    fn now(&self) -> u64 {
        millis(self.epoch.elapsed())
    }

    fn phase(&self) -> Phase {
        if self.closing.load(Ordering::Acquire) {
            Phase::Closing
        } else if self.answers.load(Ordering::Acquire) > 0 {
            Phase::Answering
        } else {
            Phase::Waiting
        }
    }

    fn enter_closing(&self) {
        self.since.store(self.now(), Ordering::Release);
        self.closing.store(true, Ordering::Release);
    }

    fn begin_answer(&self) {
        if self.answers.fetch_add(1, Ordering::AcqRel) == 0 {
            self.since.store(self.now(), Ordering::Release);
        }
    }

    fn end_answer(&self) {
        if self.answers.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.since.store(self.now(), Ordering::Release);
        }
    }

    /// Whether the connection has stayed in its phase longer than the phase allows.
    fn overdue(&self, now: u64) -> bool {
        now.saturating_sub(self.since.load(Ordering::Acquire)) > millis(self.phase().limit())
    }

    /// The order of shedding: by phase, then oldest first.
    fn shed_order(&self) -> (Phase, u64, u64) {
        (self.phase(), self.since.load(Ordering::Acquire), self.id)
    }
}

impl Slots {
    fn new() -> Slots {
        Slots {
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for a new connection. At [`MAX_CONNECTIONS`], the connection that waited
    /// longest in the cheapest phase is shed first: a good scrape is quick, so the oldest
    /// connection that has not sent its head, sits idle or is closing is almost always a
    /// hostile one, and refusing the new connection instead would refuse good scrapes
    /// for as long as the attack lasts.
    fn admit(&self) -> Arc<Slot> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            id,
            epoch: self.epoch,
            closing: AtomicBool::new(false),
            answers: AtomicUsize::new(0),
            since: AtomicU64::new(millis(self.epoch.elapsed())),
            shed: Notify::new(),
        });
        let mut open = lock_ignoring_poison(&self.open);
        if open.len() >= MAX_CONNECTIONS {
            let victim = open
                .values()
                .min_by_key(|slot| slot.shed_order())
                .map(|slot| slot.id);
            if let Some(victim) = victim.and_then(|id| open.remove(&id)) {
                victim.shed.notify_one();
            }
        }
        open.insert(id, Arc::clone(&slot));
        slot
    }

    fn release(&self, id: u64) {
        lock_ignoring_poison(&self.open).remove(&id);
    }

    /// Closes the connections that overstayed their phase.
    fn reap(&self) {
        let now = millis(self.epoch.elapsed());
        self.close_where(|slot| slot.overdue(now));
    }

    /// At shutdown: closes all connections but the ones being answered.
    fn close_all_but_answers(&self) {
        self.close_where(|slot| slot.phase() != Phase::Answering);
    }

    fn close_where(&self, close: impl Fn(&Slot) -> bool) {
        lock_ignoring_poison(&self.open).retain(|_, slot| {
            let closes = close(slot);
            if closes {
                slot.shed.notify_one();
            }
            !closes
        });
    }

    fn is_empty(&self) -> bool {
        lock_ignoring_poison(&self.open).is_empty()
    }
}

/// Frees a connection's slot when its task ends, however it ends.
struct Release {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.shared.slots.release(self.id);
    }
}

/// Marks a connection as answering from the request until the answer's body is dropped.
struct Answering(Arc<Slot>);

impl Answering {
    fn begin(slot: Arc<Slot>) -> Answering {
        slot.begin_answer();
        Answering(slot)
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.end_answer();
    }
}

/// The socket as hyper sees it; when hyper drops it, it goes back to the connection task,
/// which lingers on it before closing (hyper has no lingering close of its own).
struct Returned {
    stream: Option<TcpStream>,
    back: Option<oneshot::Sender<TcpStream>>,
}

impl Returned {
    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.stream
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::ErrorKind::NotConnected.into())
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        if let (Some(stream), Some(back)) = (self.stream.take(), self.back.take()) {
            let _ = back.send(stream);
        }
    }
}

impl AsyncRead for Returned {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_read(cx, buf),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

impl AsyncWrite for Returned {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_write(cx, buf),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_write_vectored(cx, bufs),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_flush(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_shutdown(cx),
            Err(error) => Poll::Ready(Err(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn r5_at_the_cap_the_oldest_waiting_connection_is_shed_before_any_answer() {
        let slots = Slots::new();
        let all: Vec<Arc<Slot>> = (0..MAX_CONNECTIONS).map(|_| slots.admit()).collect();
        // The oldest connection is being answered; the next one waits for its head.
        all[0].begin_answer();
        let _new = slots.admit();
        let open = lock_ignoring_poison(&slots.open);
        assert_eq!(open.len(), MAX_CONNECTIONS);
        assert!(open.contains_key(&all[0].id));
        assert!(!open.contains_key(&all[1].id));
        drop(open);
        // A closing connection goes before one that waits.
        all[5].enter_closing();
        let _newer = slots.admit();
        assert!(!lock_ignoring_poison(&slots.open).contains_key(&all[5].id));
        // The shed connection is told even though nobody listened yet.
        runtime().block_on(all[1].shed.notified());
    }

    #[test]
    fn r5_when_every_connection_is_answered_the_oldest_answer_is_shed() {
        let slots = Slots::new();
        let all: Vec<Arc<Slot>> = (0..MAX_CONNECTIONS).map(|_| slots.admit()).collect();
        for slot in &all {
            slot.begin_answer();
        }
        let _new = slots.admit();
        assert!(!lock_ignoring_poison(&slots.open).contains_key(&all[0].id));
        all[1].end_answer();
        assert_eq!(all[1].phase(), Phase::Waiting);
    }

    #[test]
    fn r5_deadlines_depend_on_the_phase() {
        let slots = Slots::new();
        let slot = slots.admit();
        let head = millis(HEAD_TIMEOUT + REAP_SLACK);
        assert!(!slot.overdue(head));
        assert!(slot.overdue(head + 1));
        slot.begin_answer();
        assert!(!slot.overdue(head + 1));
        slot.end_answer();
        slot.enter_closing();
        assert_eq!(slot.phase(), Phase::Closing);
        let since = slot.since.load(Ordering::Acquire);
        assert!(slot.overdue(since + millis(LINGER + REAP_SLACK) + 1));
        slots.reap();
        slots.release(slot.id);
        assert!(slots.is_empty());
    }

    #[test]
    fn r5_a_body_is_shared_for_a_second_and_bounded_in_number() {
        let age = |exposition: &Exposition| {
            if let Some((_, at)) = &mut lock_ignoring_poison(&exposition.cache).latest {
                *at = Instant::now().checked_sub(REUSE_WINDOW).unwrap();
            }
        };
        runtime().block_on(async {
            let registry = Registry::new();
            let exposition = Arc::new(Exposition::new(CONTENT_TYPE, move || {
                encode_text(&registry)
                    .map(String::into_bytes)
                    .map_err(|error| error.to_string())
            }));
            // Concurrent scrapes share one encoding.
            let (a, b) = tokio::join!(exposition.body(), exposition.body());
            let (a, b) = (a.unwrap(), b.unwrap());
            assert!(Arc::ptr_eq(&a, &b));
            // Within a second, a later scrape shares it too; after, it gets a new one.
            let c = exposition.body().await.unwrap();
            assert!(Arc::ptr_eq(&a, &c));
            drop((a, b, c));
            age(&exposition);
            let first = exposition.body().await.unwrap();
            let first_ptr = Arc::as_ptr(&first);
            drop(first);
            age(&exposition);
            let second = exposition.body().await.unwrap();
            assert_ne!(Arc::as_ptr(&second), first_ptr);
            drop(second);
            // Slow readers hold old bodies: a new body is encoded each time the newest is
            // too old to share, until MAX_BODIES are alive; then the newest is shared.
            let mut held = Vec::new();
            for _ in 0..3 * MAX_BODIES {
                age(&exposition);
                held.push(exposition.body().await.unwrap());
                assert!(exposition.alive.load(Ordering::Acquire) <= MAX_BODIES);
            }
            let distinct = held
                .iter()
                .map(Arc::as_ptr)
                .collect::<std::collections::HashSet<_>>();
            assert_eq!(distinct.len(), MAX_BODIES);
            drop(held);
            assert_eq!(exposition.alive.load(Ordering::Acquire), 1);
        });
    }
}
