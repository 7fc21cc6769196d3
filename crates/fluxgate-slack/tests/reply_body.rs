//! The worker reads at most 64 KiB of a reply body: a server (or proxy) that answers with a
//! huge or endless body costs one failed message, not the process's memory.
//!
//! The Slack test server of the facade (`tests/support/slack.rs` at the workspace root)
//! belongs to another package and only sends short answers, so this file has a small one
//! of its own, in the same style: plain `std::net` on 127.0.0.1 port 0, a thread per
//! connection, scripted replies, and every wait bounded by [`DEADLINE`].

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, UNIX_EPOCH};

use fluxgate_core::listeners::Listener;
use fluxgate_core::{Signal, State};
use fluxgate_slack::SlackListener;

/// How long a test waits for something that should happen promptly before it fails.
const DEADLINE: Duration = Duration::from_secs(20);
/// The listener's cap on a reply body (`MAX_REPLY_BODY` in `worker.rs`).
const CAP: usize = 64 * 1024;
const MIB: usize = 1024 * 1024;
/// What the server tries to send as an oversized body: 64 MiB, 1 MiB at a time.
const FLOOD: usize = 64 * MIB;

/// One scripted answer.
#[derive(Debug, Clone, Copy)]
enum Reply {
    /// `200 {"ok": true, "ts": …}` with the next ts, `Content-Length` set.
    Ok,
    /// `200` and [`FLOOD`] bytes of spaces, with `Content-Length: 4000000000` when
    /// `announced`, otherwise without a length (the body ends when the connection closes).
    Flood { announced: bool },
    /// `200 {"ok": true, "ts": …}` padded with spaces to exactly `len` bytes, without a
    /// length, so the client reads it in chunks until the connection closes.
    Padded(usize),
}

/// How the server's attempt to send a flood ended.
#[derive(Debug, Clone, Copy)]
struct Flooded {
    /// Body bytes the kernel took from the server before a write failed.
    written: usize,
    /// A write failed: the client closed the connection before the end.
    cut_off: bool,
}

#[derive(Default)]
struct ServerState {
    script: VecDeque<Reply>,
    requests: usize,
    next_ts: u64,
    floods: Vec<Flooded>,
}

#[derive(Default)]
struct Inner {
    state: Mutex<ServerState>,
    changed: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, ServerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A local server that answers `chat.postMessage` from a script (then `Ok`).
struct Server {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Server {
    fn start(script: impl IntoIterator<Item = Reply>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner::default());
        inner.lock().script.extend(script);
        let accept = Arc::clone(&inner);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let inner = Arc::clone(&accept);
                thread::spawn(move || handle(stream, &inner));
            }
        });
        Server { addr, inner }
    }

    fn api_base(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    fn requests(&self) -> usize {
        self.inner.lock().requests
    }

    /// Waits until the server stopped sending `n` floods (cut off or complete), or panics
    /// after [`DEADLINE`].
    fn wait_for_floods(&self, n: usize) -> Vec<Flooded> {
        let deadline = Instant::now() + DEADLINE;
        let mut state = self.inner.lock();
        while state.floods.len() < n {
            let now = Instant::now();
            assert!(now < deadline, "timed out waiting for {n} floods to end");
            state = self
                .inner
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.floods.clone()
    }
}

fn handle(stream: TcpStream, inner: &Inner) {
    let _ = stream.set_read_timeout(Some(DEADLINE));
    // A client that neither reads nor closes fails the test instead of hanging it.
    let _ = stream.set_write_timeout(Some(DEADLINE));
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut stream = stream;
    let mut len = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            len = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let (reply, ts) = {
        let mut state = inner.lock();
        state.requests += 1;
        state.next_ts += 1;
        let reply = state.script.pop_front().unwrap_or(Reply::Ok);
        inner.changed.notify_all();
        (reply, format!("1700000000.{:06}", state.next_ts))
    };
    let ok = format!(r#"{{"ok":true,"channel":"C1","ts":"{ts}"}}"#);
    match reply {
        Reply::Ok => {
            let head = head(Some(ok.len() as u64));
            let _ = stream.write_all(format!("{head}{ok}").as_bytes());
        }
        Reply::Padded(len) => {
            let mut body = ok;
            body.push_str(&" ".repeat(len - body.len()));
            let _ = stream.write_all(format!("{}{body}", head(None)).as_bytes());
        }
        Reply::Flood { announced } => {
            let head = head(announced.then_some(4_000_000_000));
            let flooded = match stream.write_all(head.as_bytes()) {
                Ok(()) => flood(&mut stream),
                Err(_) => Flooded {
                    written: 0,
                    cut_off: true,
                },
            };
            inner.lock().floods.push(flooded);
            inner.changed.notify_all();
        }
    }
    let _ = stream.flush();
}

fn head(content_length: Option<u64>) -> String {
    let length = content_length.map_or(String::new(), |n| format!("Content-Length: {n}\r\n"));
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}Connection: close\r\n\r\n"
    )
}

/// Writes [`FLOOD`] bytes of spaces in 1 MiB chunks, counting what the kernel accepted,
/// and stops at the first failed write (the client hung up).
fn flood(stream: &mut TcpStream) -> Flooded {
    let chunk = vec![b' '; MIB];
    let mut written = 0;
    while written < FLOOD {
        let mut rest = &chunk[..];
        while !rest.is_empty() {
            match stream.write(rest) {
                Ok(0) | Err(_) => {
                    return Flooded {
                        written,
                        cut_off: true,
                    };
                }
                Ok(n) => {
                    written += n;
                    rest = &rest[n..];
                }
            }
        }
    }
    Flooded {
        written,
        cut_off: false,
    }
}

/// The `ERROR` events a listener logs, each as its fields (values as text).
#[derive(Clone, Default)]
struct Errors(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

impl Errors {
    fn events(&self) -> Vec<BTreeMap<String, String>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl tracing::Subscriber for Errors {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() != tracing::Level::ERROR {
            return;
        }
        let mut fields = BTreeMap::new();
        fields.insert("target".to_owned(), event.metadata().target().to_owned());
        event.record(&mut Fields(&mut fields));
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(fields);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

fn trip(circuit: &str) -> Signal {
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    Signal::new(circuit, State::Closed, State::Open, at)
}

/// A Web API listener on `server` whose `ERROR` events land in `errors`.
fn listener(server: &Server, errors: &Errors) -> SlackListener {
    tracing::subscriber::with_default(errors.clone(), || {
        SlackListener::builder("C0123456789", "xoxb-test-secret-token")
            .api_base(server.api_base())
            .build()
            .unwrap()
    })
}

/// The first trip gets a flood; the listener must give it up without reading it, then
/// deliver the next trip from the same server normally.
fn flood_fails_one_message_and_the_listener_goes_on(announced: bool) {
    let server = Server::start([Reply::Flood { announced }]);
    let errors = Errors::default();
    let slack = listener(&server, &errors);

    Listener::on_signal(&slack, &trip("db")).unwrap();
    assert!(
        slack.flush(DEADLINE),
        "the flooded message was never finished"
    );

    // The client hung up long before the server got the flood out: what the server wrote
    // is at most what the socket buffers on both sides hold, nowhere near 64 MiB.
    let floods = server.wait_for_floods(1);
    let flooded = floods[0];
    assert!(
        flooded.cut_off,
        "the client read the whole flood: {flooded:?}"
    );
    assert!(
        flooded.written < FLOOD / 4,
        "the server wrote {} MiB before the client hung up",
        flooded.written / MIB
    );

    // Given up, the way every failed delivery is: finished (not pending), logged, no
    // thread started, and not a queue drop.
    assert_eq!(slack.pending(), 0);
    assert_eq!(slack.dropped(), 0, "dropped() counts only queue overflow");
    assert_eq!(slack.open_threads(), 0, "a failed trip starts no thread");
    let events = errors.events();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = &events[0];
    assert_eq!(event["target"], "fluxgate::listeners::slack");
    assert_eq!(event["circuit"], "db");
    assert_eq!(event["status"], "200");
    assert_eq!(
        event["detail"], "Slack reply body over 65536 bytes",
        "{event:?}"
    );
    // Not retried: one request for that message.
    assert_eq!(server.requests(), 1);

    // The worker goes on: the next message is delivered and starts its thread.
    Listener::on_signal(&slack, &trip("api")).unwrap();
    assert!(slack.flush(DEADLINE), "the next message was never finished");
    assert_eq!(server.requests(), 2);
    assert_eq!(slack.open_threads(), 1, "the next trip was delivered");
    assert_eq!(errors.events().len(), 1, "{:?}", errors.events());
}

// `Content-Length: 4000000000`: refused from the header, no body byte is asked for.
#[test]
fn a_reply_body_over_the_cap_is_not_read_and_the_delivery_fails() {
    flood_fails_one_message_and_the_listener_goes_on(true);
}

// No length at all (the body ends when the connection closes): read in chunks, and given up
// as soon as the bytes read pass the cap.
#[test]
fn a_reply_body_without_a_length_is_read_only_up_to_the_cap() {
    flood_fails_one_message_and_the_listener_goes_on(false);
}

// The cap itself is allowed: a reply of exactly 64 KiB, arriving in chunks, is read whole
// and judged as before (`ok: true` with a `ts` starts the thread).
#[test]
fn a_reply_body_of_exactly_the_cap_is_read_whole() {
    let server = Server::start([Reply::Padded(CAP), Reply::Padded(CAP + 1)]);
    let errors = Errors::default();
    let slack = listener(&server, &errors);

    Listener::on_signal(&slack, &trip("db")).unwrap();
    assert!(slack.flush(DEADLINE));
    assert_eq!(slack.open_threads(), 1, "the 64 KiB reply was accepted");
    assert!(errors.events().is_empty(), "{:?}", errors.events());

    // One byte more is over the cap.
    Listener::on_signal(&slack, &trip("api")).unwrap();
    assert!(slack.flush(DEADLINE));
    assert_eq!(slack.open_threads(), 1, "the second trip was not delivered");
    let events = errors.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"], "Slack reply body over 65536 bytes");
    assert_eq!(server.requests(), 2);
}
