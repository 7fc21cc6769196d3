//! `start_http_server`: a `/metrics` endpoint on a background thread.
//!
//! Python programs expose their metrics with `start_http_server(8000)`, one line that
//! needs no web framework. Most Rust programs that use a synchronous breaker have no async
//! runtime either, so this is a small HTTP/1.1 server over `std::net`: one accept thread,
//! one short-lived thread per connection (at most [`MAX_CONNECTIONS`] at once), a deadline
//! for reading each request and for writing each answer, so a slow or malformed client
//! only ever holds its own connection. It answers `GET`/`HEAD /metrics` with the classic
//! text format (`text/plain; version=0.0.4`) that Prometheus scrapes and Python sends;
//! other paths get 404. Applications that already run axum mount
//! [`axum_router`](super::axum_router) instead.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs,
};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use prometheus::{Registry, TextEncoder};

/// The content type of the classic Prometheus text exposition format, as served by
/// [`start_http_server`] and [`metrics_response`](super::metrics_response) (PR-7).
///
/// ```
/// assert_eq!(
///     fluxgate::listeners::prometheus::CONTENT_TYPE,
///     "text/plain; version=0.0.4; charset=utf-8"
/// );
/// ```
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// At most this many connections are served at once; further ones are closed at once.
const MAX_CONNECTIONS: usize = 64;
/// Time a client has to send its whole request head.
const READ_DEADLINE: Duration = Duration::from_secs(10);
/// Time a client has to take each chunk of the answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head accepted (request line and headers).
const MAX_HEAD: usize = 16 * 1024;
/// How long, and how much, to read after answering, until the client closes.
const LINGER: Duration = Duration::from_secs(2);
const MAX_LINGER_BYTES: usize = 1024 * 1024;

/// Renders `registry` in the classic text exposition format (PR-7).
///
/// ```
/// use fluxgate::listeners::prometheus::{encode_text, PrometheusListener};
/// use fluxgate::listeners::Listener;
///
/// let registry = prometheus::Registry::new();
/// let listener = PrometheusListener::with_registry(&registry).unwrap();
/// listener.on_attach("payment_api", fluxgate::State::Closed);
/// let text = encode_text(&registry).unwrap();
/// assert!(text.starts_with("# HELP circuit_breaker_state Current state of the circuit breaker\n"));
/// ```
pub fn encode_text(registry: &Registry) -> Result<String, prometheus::Error> {
    TextEncoder::new().encode_to_string(&registry.gather())
}

/// Serves the process-wide default registry (the one [`PrometheusListener::new`] writes
/// to) at `http://ADDR/metrics` from a background thread: the seed's
/// `start_http_server(8000)` (PR-6).
///
/// `addr` is anything [`ToSocketAddrs`] accepts: `"0.0.0.0:8000"`, `("0.0.0.0", 8000)`, a
/// [`SocketAddr`]; port 0 picks a free port (see [`MetricsServer::local_addr`]). A port
/// that is already taken is an error whose [`ServeError::kind`] is
/// [`io::ErrorKind::AddrInUse`].
///
/// The server runs until [`MetricsServer::shutdown`]; dropping the handle leaves it
/// running for the life of the process, as Python's does.
///
/// [`PrometheusListener::new`]: super::PrometheusListener::new
///
/// ```
/// use fluxgate::listeners::prometheus::{start_http_server, PrometheusListener};
/// use fluxgate::CircuitBreaker;
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
/// use fluxgate::listeners::prometheus::{start_http_server_with_registry, PrometheusListener};
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
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .map_err(|source| ServeError { addr: None, source })?
        .collect();
    let listener = TcpListener::bind(&addrs[..]).map_err(|source| ServeError {
        addr: addrs.first().copied(),
        source,
    })?;
    let local_addr = listener.local_addr().map_err(|source| ServeError {
        addr: addrs.first().copied(),
        source,
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let registry = registry.clone();
        let stop = Arc::clone(&stop);
        thread::Builder::new()
            .name("fluxgate-metrics".into())
            .spawn(move || accept_loop(listener, registry, stop))
            .map_err(|source| ServeError {
                addr: Some(local_addr),
                source,
            })?
    };
    Ok(MetricsServer {
        local_addr,
        stop,
        thread: Some(thread),
    })
}

/// A running metrics server, returned by [`start_http_server`].
///
/// Dropping it does not stop the server (it keeps serving in the background, like
/// Python's); call [`shutdown`](MetricsServer::shutdown) to stop it.
///
/// ```
/// use fluxgate::listeners::prometheus::start_http_server_with_registry;
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
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// The address the server listens on, with the real port when port 0 was asked for.
    ///
    /// ```
    /// let server = fluxgate::listeners::prometheus::start_http_server("127.0.0.1:0").unwrap();
    /// let url = format!("http://{}/metrics", server.local_addr());
    /// assert!(url.starts_with("http://127.0.0.1:"));
    /// server.shutdown();
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting connections, closes the listening socket and waits for the accept
    /// thread. Requests already being answered finish on their own threads.
    ///
    /// ```
    /// let server = fluxgate::listeners::prometheus::start_http_server("127.0.0.1:0").unwrap();
    /// let addr = server.local_addr();
    /// server.shutdown();
    /// assert!(std::net::TcpStream::connect(addr).is_err());
    /// ```
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Release);
        // `accept` blocks; one connection of our own wakes it so that it sees the flag.
        let wake = wake_addr(self.local_addr);
        let woken = TcpStream::connect_timeout(&wake, Duration::from_secs(5)).is_ok();
        if let Some(thread) = self.thread.take() {
            if woken {
                let _ = thread.join();
            }
        }
    }
}

/// Where to connect to reach a listener bound to `addr` (a wildcard address is reached
/// through the loopback address of its family).
fn wake_addr(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Why [`start_http_server`] could not start: the address did not resolve, the port is
/// taken, or the process may not bind it.
///
/// ```
/// use std::io::ErrorKind;
/// use fluxgate::listeners::prometheus::start_http_server;
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
    /// let err = fluxgate::listeners::prometheus::start_http_server("no port given").unwrap_err();
    /// assert_ne!(err.kind(), std::io::ErrorKind::AddrInUse);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// The address that could not be bound, when the address resolved.
    ///
    /// ```
    /// let err = fluxgate::listeners::prometheus::start_http_server("no port given").unwrap_err();
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

/// Decrements the count of active connections when a connection thread ends, even by a
/// panic in a caller's collector.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn accept_loop(listener: TcpListener, registry: Registry, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            break;
        }
        let stream = match conn {
            Ok(stream) => stream,
            Err(error) => {
                if !matches!(
                    error.kind(),
                    io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::ConnectionReset
                        | io::ErrorKind::Interrupted
                ) {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tracing::warn!(target: "fluxgate", %error, "metrics server: accept failed");
                    thread::sleep(Duration::from_millis(50));
                }
                continue;
            }
        };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            active.fetch_sub(1, Ordering::AcqRel);
            continue; // dropping the stream closes it
        }
        let slot = Slot(Arc::clone(&active));
        let registry = registry.clone();
        // If the thread cannot be spawned the closure, and with it the slot and the
        // stream, is dropped here: the count stays right and the connection is closed.
        let _ = thread::Builder::new()
            .name("fluxgate-metrics-conn".into())
            .spawn(move || {
                let _slot = slot;
                serve_connection(stream, &registry);
            });
    }
}

/// What a client asked for, reduced to what the router needs.
struct Request<'a> {
    method: &'a str,
    path: &'a str,
}

enum HeadError {
    /// The client closed the connection before sending a whole head.
    Closed,
    TooLarge,
    TimedOut,
    Io,
}

fn serve_connection(mut stream: TcpStream, registry: &Registry) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let response = match read_head(&mut stream) {
        Ok(head) => match parse_request(&head) {
            Some(request) => {
                let mut response = route(&request, registry);
                // A HEAD answer carries the headers of the GET answer and no body.
                response.head_only = request.method == "HEAD";
                response
            }
            None => Response::text("400 Bad Request", "Bad Request\n"),
        },
        Err(HeadError::TooLarge) => Response::text(
            "431 Request Header Fields Too Large",
            "Request head too large\n",
        ),
        Err(HeadError::TimedOut) => Response::text("408 Request Timeout", "Request Timeout\n"),
        Err(HeadError::Closed | HeadError::Io) => return,
    };
    if response.write_to(&mut stream).is_err() {
        return;
    }
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
    linger(&mut stream);
}

/// Reads and discards what the client still sends (a body, the rest of an oversized head)
/// until it closes, for a bounded time and amount. Closing a socket with unread input
/// makes the kernel send a reset, which can destroy the answer before the client read it.
fn linger(stream: &mut TcpStream) {
    let deadline = Instant::now() + LINGER;
    let mut discarded = 0usize;
    let mut chunk = [0u8; 4096];
    while discarded < MAX_LINGER_BYTES {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() || stream.set_read_timeout(Some(remaining)).is_err() {
            return;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => discarded += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Reads until the blank line that ends the request head, within [`READ_DEADLINE`]
/// overall (a client that trickles bytes cannot hold the connection for longer).
fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, HeadError> {
    let deadline = Instant::now() + READ_DEADLINE;
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(HeadError::TimedOut);
        }
        stream
            .set_read_timeout(Some(remaining))
            .map_err(|_| HeadError::Io)?;
        let n = match stream.read(&mut chunk) {
            Ok(0) => return Err(HeadError::Closed),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(HeadError::TimedOut)
            }
            Err(_) => return Err(HeadError::Io),
        };
        // Only the new bytes and the three before them can complete a terminator.
        let scan_from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = find_head_end(&head[scan_from..]) {
            head.truncate(scan_from + end);
            return Ok(head);
        }
        if head.len() > MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
    }
}

/// The end of the head: the first `\r\n\r\n` or `\n\n` (lenient, as most servers are).
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).enumerate().find_map(|(i, w)| match w {
        b"\n\n" => Some(i + 2),
        b"\n\r" if bytes.get(i + 2) == Some(&b'\n') => Some(i + 3),
        _ => None,
    })
}

fn parse_request(head: &[u8]) -> Option<Request<'_>> {
    let line_end = head.iter().position(|&b| b == b'\n')?;
    let line = std::str::from_utf8(&head[..line_end]).ok()?;
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut parts = line.split(' ');
    let method = parts.next().filter(|m| !m.is_empty())?;
    let target = parts.next()?;
    let version = parts.next()?;
    if parts.next().is_some() || !version.starts_with("HTTP/1.") {
        return None;
    }
    // origin-form `/metrics?x=y` or absolute-form `http://host:port/metrics`
    let target = match target.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => target,
    };
    let path = target.split(['?', '#']).next().unwrap_or(target);
    Some(Request { method, path })
}

fn route(request: &Request<'_>, registry: &Registry) -> Response {
    if request.path != "/metrics" {
        return Response::text("404 Not Found", "Not Found: metrics are at /metrics\n");
    }
    if !matches!(request.method, "GET" | "HEAD") {
        let mut response = Response::text("405 Method Not Allowed", "Method Not Allowed\n");
        response.allow = true;
        return response;
    }
    match encode_text(registry) {
        Ok(body) => Response {
            status: "200 OK",
            content_type: CONTENT_TYPE,
            body: body.into_bytes(),
            head_only: false,
            allow: false,
        },
        Err(error) => Response::text(
            "500 Internal Server Error",
            &format!("cannot encode metrics: {error}\n"),
        ),
    }
}

struct Response {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    head_only: bool,
    allow: bool,
}

impl Response {
    fn text(status: &'static str, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
            head_only: false,
            allow: false,
        }
    }

    fn write_to(&self, stream: &mut TcpStream) -> io::Result<()> {
        let allow = if self.allow {
            "Allow: GET, HEAD\r\n"
        } else {
            ""
        };
        let head = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len(),
        );
        stream.write_all(head.as_bytes())?;
        if !self.head_only {
            stream.write_all(&self.body)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_end_is_found_for_crlf_and_lf() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\n"), Some(24));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\n"), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }

    #[test]
    fn request_lines_parse_to_method_and_path() {
        let r = parse_request(b"GET /metrics?name[]=x HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((r.method, r.path), ("GET", "/metrics"));
        let r = parse_request(b"HEAD http://h:9/metrics HTTP/1.0\r\n\r\n").unwrap();
        assert_eq!((r.method, r.path), ("HEAD", "/metrics"));
        assert!(parse_request(b"GET /metrics\r\n\r\n").is_none());
        assert!(parse_request(b"GET /metrics HTTP/2.0\r\n\r\n").is_none());
        assert!(parse_request(b"\xff\xfe garbage\r\n\r\n").is_none());
        assert!(parse_request(b" /metrics HTTP/1.1\r\n\r\n").is_none());
    }
}
