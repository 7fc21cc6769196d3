//! Test support for the Slack listeners: a local server that answers like Slack's
//! `chat.postMessage` and records what it received, and a `tracing` capture.
//!
//! The server is plain `std::net` with a thread per connection, bound to 127.0.0.1 port 0.
//! Its replies are scripted in order; when the script is empty it answers `ok` with a fresh
//! `ts`. A `Hold` reply keeps the request waiting until the test calls `release`, which is
//! how the tests show structurally that nobody waits for Slack.

#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a test waits for something that should happen promptly before it fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// One scripted answer.
#[derive(Debug, Clone)]
pub(crate) enum Reply {
    /// `200 {"ok": true, "ts": …}` with the next ts.
    Ok,
    /// `200 {"ok": true}` without a ts.
    OkWithoutTs,
    /// `200 {"ok": false, "error": code}`.
    Error(&'static str),
    /// `429` with `Retry-After: secs`.
    RateLimited(u64),
    /// Any status with a body, e.g. `(500, "oops")` or a webhook's `(404, "no_service")`.
    Status(u16, &'static str),
    /// Records the request, then waits for `release()` before answering like `Ok`.
    Hold,
    /// A webhook's success: `200 ok` as plain text.
    WebhookOk,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) method: String,
    pub(crate) path: String,
    /// Header names in lowercase.
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) raw_body: String,
    pub(crate) body: Value,
    pub(crate) at: Instant,
    /// The ts this request was answered with, if any.
    pub(crate) ts: Option<String>,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    pub(crate) fn thread_ts(&self) -> Option<&str> {
        self.body.get("thread_ts").and_then(Value::as_str)
    }

    pub(crate) fn broadcast(&self) -> bool {
        self.body.get("reply_broadcast").and_then(Value::as_bool) == Some(true)
    }

    pub(crate) fn attachment(&self) -> &Value {
        &self.body["attachments"][0]
    }

    pub(crate) fn title(&self) -> &str {
        self.attachment()["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap_or("")
    }

    pub(crate) fn color(&self) -> &str {
        self.attachment()["color"].as_str().unwrap_or("")
    }

    /// The texts of the fields section, in order.
    pub(crate) fn fields(&self) -> Vec<String> {
        self.attachment()["blocks"][1]["fields"]
            .as_array()
            .map(|fields| {
                fields
                    .iter()
                    .map(|f| f["text"].as_str().unwrap_or("").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The value of the field labelled `label` (`Circuit Breaker`, `State Transition`, …).
    pub(crate) fn field(&self, label: &str) -> String {
        let prefix = format!("*{label}:*\n");
        self.fields()
            .into_iter()
            .find_map(|f| f.strip_prefix(&prefix).map(str::to_owned))
            .unwrap_or_default()
    }
}

#[derive(Default)]
struct ServerState {
    script: VecDeque<Reply>,
    received: Vec<Received>,
    holding: usize,
    permits: usize,
    next_ts: u64,
}

#[derive(Default)]
struct Inner {
    state: Mutex<ServerState>,
    changed: Condvar,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, ServerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A local server that answers like Slack.
pub(crate) struct SlackServer {
    pub(crate) addr: SocketAddr,
    inner: Arc<Inner>,
}

impl SlackServer {
    pub(crate) fn start() -> SlackServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner::default());
        let accept = Arc::clone(&inner);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let inner = Arc::clone(&accept);
                thread::spawn(move || handle(stream, &inner));
            }
        });
        SlackServer { addr, inner }
    }

    /// The API base to give the listener: `http://127.0.0.1:PORT/api`.
    pub(crate) fn api_base(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// A webhook URL on this server (its path plays the secret).
    pub(crate) fn webhook_url(&self) -> String {
        format!("http://{}/services/T000/B000/webhooksecret", self.addr)
    }

    /// Appends replies to the script.
    pub(crate) fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.lock().script.extend(replies);
    }

    /// Lets one held request answer.
    pub(crate) fn release(&self) {
        self.inner.lock().permits += 1;
        self.inner.changed.notify_all();
    }

    /// Lets every request held now or later answer.
    pub(crate) fn release_all(&self) {
        self.inner.lock().permits = usize::MAX / 2;
        self.inner.changed.notify_all();
    }

    /// How many requests are waiting for `release`.
    pub(crate) fn holding(&self) -> usize {
        self.inner.lock().holding
    }

    pub(crate) fn requests(&self) -> Vec<Received> {
        self.inner.lock().received.clone()
    }

    /// Waits until `cond` holds for the server's state, or panics after [`DEADLINE`].
    fn wait(&self, what: &str, cond: impl Fn(&ServerState) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        let mut state = self.inner.lock();
        while !cond(&state) {
            let now = Instant::now();
            assert!(
                now < deadline,
                "timed out waiting for {what}; received {} requests",
                state.received.len()
            );
            state = self
                .inner
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Waits until at least `n` requests arrived and returns all of them.
    pub(crate) fn wait_for_requests(&self, n: usize) -> Vec<Received> {
        self.wait(&format!("{n} requests"), |s| s.received.len() >= n);
        self.requests()
    }

    /// Waits until `n` requests are being held.
    pub(crate) fn wait_holding(&self, n: usize) {
        self.wait(&format!("{n} held requests"), |s| s.holding >= n);
    }
}

fn handle(stream: TcpStream, inner: &Inner) {
    let _ = stream.set_read_timeout(Some(DEADLINE));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let mut stream = stream;
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("").to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let raw_body = String::from_utf8_lossy(&body).into_owned();
    let json = serde_json::from_str(&raw_body).unwrap_or(Value::Null);

    let (reply, index) = {
        let mut state = inner.lock();
        let reply = state.script.pop_front().unwrap_or(Reply::Ok);
        state.received.push(Received {
            method,
            path,
            headers,
            raw_body,
            body: json,
            at: Instant::now(),
            ts: None,
        });
        let index = state.received.len() - 1;
        if matches!(reply, Reply::Hold) {
            state.holding += 1;
        }
        inner.changed.notify_all();
        (reply, index)
    };

    if matches!(reply, Reply::Hold) {
        let mut state = inner.lock();
        while state.permits == 0 {
            state = inner.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        state.permits -= 1;
        state.holding -= 1;
    }

    let mut ts = None;
    let (status, extra, content_type, body) = match reply {
        Reply::Ok | Reply::Hold => {
            let mut state = inner.lock();
            state.next_ts += 1;
            let t = format!("1700000000.{:06}", state.next_ts);
            ts = Some(t.clone());
            (
                200,
                String::new(),
                "application/json",
                json!({"ok": true, "channel": "C1", "ts": t}).to_string(),
            )
        }
        Reply::OkWithoutTs => (
            200,
            String::new(),
            "application/json",
            json!({"ok": true}).to_string(),
        ),
        Reply::Error(code) => (
            200,
            String::new(),
            "application/json",
            json!({"ok": false, "error": code}).to_string(),
        ),
        Reply::RateLimited(secs) => (
            429,
            format!("Retry-After: {secs}\r\n"),
            "application/json",
            json!({"ok": false, "error": "ratelimited"}).to_string(),
        ),
        Reply::Status(code, text) => (code, String::new(), "text/plain", text.to_owned()),
        Reply::WebhookOk => (200, String::new(), "text/plain", "ok".to_owned()),
    };
    {
        let mut state = inner.lock();
        state.received[index].ts = ts;
    }
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n{extra}\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.flush();
}
