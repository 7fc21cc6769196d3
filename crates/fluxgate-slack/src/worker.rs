//! The queue and the worker that post to Slack off the call path (SL-3, SL-4).
//!
//! A listener only enqueues: `on_signal` never waits for the network, whichever breaker,
//! thread or runtime calls it. One worker per listener takes the jobs in the order they
//! were enqueued and posts them one at a time, which is what keeps the messages of a circuit
//! in transition order. The worker is a task on a single-threaded Tokio runtime that lives
//! on a thread of its own, so it works the same for sync code, for async code on any
//! runtime flavour, and for code with no runtime at all.
//!
//! Everything the listener and the worker share sits behind one short lock (`Book`): the
//! jobs, the counts that `flush` waits on, and the thread map (circuit → `ts`). The lock is
//! never held across an await or a request; `on_signal` holds it only to push one job.

use std::collections::{HashMap, VecDeque};
use std::error::Error as _;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use tokio::sync::Notify;

use super::payload::{self, Placement};
use super::template::Templates;
use fluxgate_core::{Signal, State};

pub(super) const TARGET: &str = "fluxgate::listeners::slack";

/// One unit of work for the worker, in queue order.
#[derive(Debug)]
enum Job {
    /// Post this transition.
    Signal(Signal),
    /// The circuit was retired: forget its thread once its earlier messages are out.
    Detach(Arc<str>),
}

/// What the queue knows about one circuit that has signals queued or in flight.
#[derive(Debug, Default)]
struct Circuit {
    /// Its signals queued or being posted.
    signals: usize,
    /// The newest job of this circuit in the queue is a `Detach` (so another is pointless).
    detach_last: bool,
}

/// The state shared by the listener handles and the worker.
#[derive(Debug, Default)]
struct Book {
    jobs: VecDeque<Job>,
    /// Signals in `jobs` (not counting the one being posted); at most the capacity.
    queued: usize,
    /// Signals ever accepted into the queue.
    accepted: u64,
    /// Of those, the ones delivered or given up on; they finish in acceptance order.
    finished: u64,
    /// Circuits with signals queued or in flight (at most capacity + 1 entries).
    circuits: HashMap<Arc<str>, Circuit>,
    /// Circuit → `ts` of the message that started its open thread (SL-3).
    threads: HashMap<Arc<str>, String>,
    /// Every listener handle is gone: the worker stops once the queue is empty.
    closed: bool,
}

/// How a delivered message changes the circuit's thread (SL-3: only after `ok: true`).
enum ThreadChange {
    Keep,
    Start(String),
    End,
}

/// The queue between the listener handles and the worker.
#[derive(Debug)]
pub(super) struct Queue {
    book: Mutex<Book>,
    capacity: usize,
    /// Wakes the worker when a job arrives or the queue closes.
    work: Notify,
    /// Wakes blocking `flush` callers when a message finishes.
    finished_sync: Condvar,
    /// Wakes `flush_async` callers when a message finishes.
    finished_async: Notify,
    dropped: AtomicU64,
}

impl Queue {
    pub(super) fn new(capacity: usize) -> Queue {
        Queue {
            book: Mutex::new(Book::default()),
            capacity,
            work: Notify::new(),
            finished_sync: Condvar::new(),
            finished_async: Notify::new(),
            dropped: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Book> {
        // Nothing under this lock can panic halfway through a change; a poisoned lock
        // (a panic elsewhere on a thread that held it) still holds consistent data.
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Messages accepted and not yet delivered or given up on (queued or in flight).
    pub(super) fn pending(&self) -> usize {
        let book = self.lock();
        (book.accepted - book.finished) as usize
    }

    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Circuits whose incident thread is open (a trip was posted, no closing reply yet).
    pub(super) fn open_threads(&self) -> usize {
        self.lock().threads.len()
    }

    /// Hands a signal to the worker without waiting. When the queue is full the new message
    /// is dropped and logged (the overflow policy): the caller is never blocked.
    pub(super) fn push(&self, signal: Signal) {
        {
            let mut book = self.lock();
            if book.queued < self.capacity {
                let circuit = book
                    .circuits
                    .entry(Arc::clone(&signal.circuit_name))
                    .or_default();
                circuit.signals += 1;
                circuit.detach_last = false;
                book.queued += 1;
                book.accepted += 1;
                book.jobs.push_back(Job::Signal(signal));
                drop(book);
                self.work.notify_one();
                return;
            }
        }
        let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(
            target: TARGET,
            circuit = &*signal.circuit_name,
            old_state = signal.old_state.as_str(),
            new_state = signal.new_state.as_str(),
            capacity = self.capacity,
            dropped,
            "slack queue is full, message dropped"
        );
    }

    /// Forgets the circuit's thread. With none of its messages queued or in flight that
    /// happens now; otherwise after them, in queue order, so the messages of the retired
    /// breaker still land in their thread and a later breaker of the same name starts a
    /// fresh one. A `Detach` is only queued behind a queued or in-flight signal of its
    /// circuit, never twice in a row for one circuit, and costs the worker no request; so
    /// detaches stay a small multiple of the capacity and the queue stays bounded.
    pub(super) fn detach(&self, circuit_name: &str) {
        let mut book = self.lock();
        match book.circuits.get_mut(circuit_name) {
            None => {
                book.threads.remove(circuit_name);
            }
            Some(circuit) if circuit.detach_last => {}
            Some(circuit) => {
                circuit.detach_last = true;
                book.jobs.push_back(Job::Detach(Arc::from(circuit_name)));
                drop(book);
                self.work.notify_one();
            }
        }
    }

    /// The last listener handle is gone: the worker delivers what is queued, then stops.
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.work.notify_one();
    }

    /// Blocks until every message accepted before the call is finished, for at most
    /// `timeout`; true when they all are.
    pub(super) fn flush(&self, timeout: Duration) -> bool {
        let book = self.lock();
        let target = book.accepted;
        let (book, _) = self
            .finished_sync
            .wait_timeout_while(book, timeout, |b| b.finished < target)
            .unwrap_or_else(PoisonError::into_inner);
        book.finished >= target
    }

    /// The async twin of [`flush`](Queue::flush). `deadline` is a timer of the worker's
    /// runtime, so this works on any executor and never blocks the one it runs on.
    pub(super) async fn flush_async(&self, deadline: tokio::time::Sleep) -> bool {
        let target = self.lock().accepted;
        let mut deadline = pin!(deadline);
        loop {
            let mut finished = pin!(self.finished_async.notified());
            // Registered before the check, so a message finishing in between is not missed.
            finished.as_mut().enable();
            if self.lock().finished >= target {
                return true;
            }
            let timed_out = std::future::poll_fn(|cx| {
                if finished.as_mut().poll(cx).is_ready() {
                    Poll::Ready(false)
                } else if deadline.as_mut().poll(cx).is_ready() {
                    Poll::Ready(true)
                } else {
                    Poll::Pending
                }
            })
            .await;
            if timed_out {
                return self.lock().finished >= target;
            }
        }
    }

    /// The next job, or `None` once the queue is closed and empty.
    async fn next(&self) -> Option<Job> {
        loop {
            // `notify_one` leaves a permit when the worker is not waiting, so a job pushed
            // between the check and the wait wakes it at once.
            let woken = self.work.notified();
            {
                let mut book = self.lock();
                if let Some(job) = book.jobs.pop_front() {
                    if let Job::Signal(_) = job {
                        book.queued -= 1;
                    }
                    return Some(job);
                }
                if book.closed {
                    return None;
                }
            }
            woken.await;
        }
    }

    fn thread_of(&self, circuit_name: &str) -> Option<String> {
        self.lock().threads.get(circuit_name).cloned()
    }

    fn forget(&self, circuit_name: &str) {
        let mut book = self.lock();
        book.threads.remove(circuit_name);
        // The signals queued before this detach are all finished; any left were queued
        // after it and keep the entry (and their own `detach_last`).
        if book
            .circuits
            .get(circuit_name)
            .is_some_and(|c| c.signals == 0)
        {
            book.circuits.remove(circuit_name);
        }
    }

    fn finish(&self, signal: &Signal, change: ThreadChange) {
        let name = &signal.circuit_name;
        let mut book = self.lock();
        match change {
            ThreadChange::Keep => {}
            ThreadChange::Start(ts) => {
                book.threads.insert(Arc::clone(name), ts);
            }
            ThreadChange::End => {
                book.threads.remove(name);
            }
        }
        if let Some(circuit) = book.circuits.get_mut(name) {
            circuit.signals -= 1;
            // A queued `Detach` removes the entry itself when the worker reaches it.
            if circuit.signals == 0 && !circuit.detach_last {
                book.circuits.remove(name);
            }
        }
        book.finished += 1;
        drop(book);
        self.finished_sync.notify_all();
        self.finished_async.notify_waiters();
    }
}

/// Where the messages go.
#[derive(Clone)]
pub(super) enum Endpoint {
    /// `chat.postMessage` of the Web API, with a bot token; supports threads.
    WebApi {
        url: reqwest::Url,
        auth: HeaderValue,
        channel: String,
    },
    /// An incoming webhook: the URL is the credential; no threads (no `ts` comes back).
    Webhook { url: reqwest::Url },
}

/// Everything the worker needs to post; owned by the worker alone.
pub(super) struct Delivery {
    pub(super) client: reqwest::Client,
    pub(super) endpoint: Endpoint,
    pub(super) templates: Templates,
    pub(super) timeout: Duration,
    pub(super) max_retries: u32,
    pub(super) max_retry_wait: Duration,
}

/// What Slack made of one message.
enum Posted {
    /// Accepted; the Web API returns the message's `ts`, a webhook does not.
    Ok(Option<String>),
    /// Not accepted; already logged.
    Failed,
}

/// Posts every queued signal, in order, until the queue is closed and empty.
pub(super) async fn run(queue: Arc<Queue>, delivery: Delivery) {
    while let Some(job) = queue.next().await {
        match job {
            Job::Detach(name) => queue.forget(&name),
            Job::Signal(signal) => {
                let thread = queue.thread_of(&signal.circuit_name);
                // A bug in the delivery must not stop the worker: flush and the later
                // messages depend on it. The panic is logged and the message given up.
                let delivered = CatchUnwind(Box::pin(delivery.deliver(&signal, thread))).await;
                let change = delivered.unwrap_or_else(|panic| {
                    log_failure(&signal, None, None, panic_text(&*panic));
                    ThreadChange::Keep
                });
                queue.finish(&signal, change);
            }
        }
    }
}

/// Polls a future, turning a panic into an error.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn std::any::Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "the delivery panicked"
    }
}

fn ends_thread(state: State) -> bool {
    matches!(state, State::Closed | State::Disabled | State::MetricsOnly)
}

impl Delivery {
    /// Posts one signal given the circuit's open thread, if any, and says how the thread
    /// changes; the caller applies that (SL-3: only after `ok: true`).
    async fn deliver(&self, signal: &Signal, thread: Option<String>) -> ThreadChange {
        let placement = match &thread {
            None => Placement::TopLevel,
            Some(ts) if ends_thread(signal.new_state) => Placement::ClosingReply(ts),
            Some(ts) => Placement::Reply(ts),
        };
        let channel = match &self.endpoint {
            Endpoint::WebApi { channel, .. } => Some(channel.as_str()),
            Endpoint::Webhook { .. } => None,
        };
        let template = self.templates.get(signal.old_state, signal.new_state);
        let body = payload::message(channel, template, signal, placement).to_string();

        match (self.post(signal, body).await, placement) {
            (Posted::Ok(Some(ts)), Placement::TopLevel) if signal.new_state == State::Open => {
                ThreadChange::Start(ts)
            }
            (Posted::Ok(_), Placement::ClosingReply(_)) => ThreadChange::End,
            _ => ThreadChange::Keep,
        }
    }

    /// One message, retried only when Slack asks for it (429 with `Retry-After`). The reply
    /// body is read in chunks up to [`MAX_REPLY_BODY`]; a longer one fails the message.
    async fn post(&self, signal: &Signal, body: String) -> Posted {
        let (url, auth) = match &self.endpoint {
            Endpoint::WebApi { url, auth, .. } => (url, Some(auth)),
            Endpoint::Webhook { url } => (url, None),
        };
        let mut attempt = 0;
        loop {
            let mut request = self
                .client
                .post(url.clone())
                .timeout(self.timeout)
                .header(CONTENT_TYPE, "application/json; charset=utf-8")
                .body(body.clone());
            if let Some(auth) = auth {
                request = request.header(AUTHORIZATION, auth.clone());
            }
            let response = match request.send().await {
                Ok(response) => response,
                Err(error) => {
                    log_failure(signal, None, None, &describe(error));
                    return Posted::Failed;
                }
            };
            let status = response.status();
            if status == StatusCode::TOO_MANY_REQUESTS {
                let wait =
                    retry_after(response.headers().get(RETRY_AFTER)).min(self.max_retry_wait);
                if attempt < self.max_retries {
                    attempt += 1;
                    tracing::info!(
                        target: TARGET,
                        circuit = &*signal.circuit_name,
                        retry_after_ms = wait.as_millis() as u64,
                        attempt,
                        "slack rate limited the message, retrying after Retry-After"
                    );
                    tokio::time::sleep(wait).await;
                    continue;
                }
                log_failure(
                    signal,
                    Some(status),
                    Some("ratelimited"),
                    "rate limited, retries exhausted",
                );
                return Posted::Failed;
            }
            // An oversized body fails the message like a reply that is not JSON, and for
            // the same reason is not retried: the server did answer (it may well have
            // posted the message, so a retry could post it twice), and whatever put a
            // body that size in front of us (a broken proxy, a wrong `api_base`) would
            // most likely do it again, holding up the messages queued behind this one.
            let body = match read_capped(response).await {
                Ok(body) => body,
                Err(reason) => {
                    log_failure(signal, Some(status), None, &reason);
                    return Posted::Failed;
                }
            };
            return self.judge(signal, status, &body);
        }
    }

    fn judge(&self, signal: &Signal, status: StatusCode, body: &[u8]) -> Posted {
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        let code = json
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(|e| e.as_str())
            .map(str::to_owned);
        if !status.is_success() {
            // Webhooks answer errors as plain text (`invalid_payload`, `no_service`).
            let code = code.or_else(|| plain_code(body));
            log_failure(
                signal,
                Some(status),
                code.as_deref(),
                "slack answered with an error status",
            );
            return Posted::Failed;
        }
        match (&self.endpoint, json) {
            (Endpoint::Webhook { .. }, _) => Posted::Ok(None),
            (Endpoint::WebApi { .. }, Some(json)) => {
                if json.get("ok").and_then(|ok| ok.as_bool()) == Some(true) {
                    let ts = json.get("ts").and_then(|ts| ts.as_str()).map(str::to_owned);
                    tracing::debug!(
                        target: TARGET,
                        circuit = &*signal.circuit_name,
                        ts = ts.as_deref().unwrap_or(""),
                        "posted to slack"
                    );
                    Posted::Ok(ts)
                } else {
                    log_failure(
                        signal,
                        Some(status),
                        code.as_deref(),
                        "slack rejected the message",
                    );
                    Posted::Failed
                }
            }
            (Endpoint::WebApi { .. }, None) => {
                log_failure(signal, Some(status), None, "slack's answer is not JSON");
                Posted::Failed
            }
        }
    }
}

/// The most of a reply body the worker reads (64 KiB). Slack's `chat.postMessage` answers
/// and a webhook's `ok` are a few KB at most; a longer body (announced by `Content-Length`
/// or met while reading) is not read further and the message counts as failed, so a
/// misbehaving server or proxy cannot make the worker buffer an unbounded reply.
const MAX_REPLY_BODY: usize = 64 * 1024;

/// Reads the reply body, at most [`MAX_REPLY_BODY`] bytes of it, chunk by chunk. A body
/// announced or found to be longer is not read further: the response is dropped, which
/// closes its connection, and the error says why. Other errors are described without the
/// URL.
async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let too_long = || format!("Slack reply body over {MAX_REPLY_BODY} bytes");
    let announced = response.content_length();
    if announced.is_some_and(|len| len > MAX_REPLY_BODY as u64) {
        return Err(too_long());
    }
    let mut body = Vec::with_capacity(announced.map_or(0, |len| len as usize));
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if chunk.len() > MAX_REPLY_BODY - body.len() {
                    return Err(too_long());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(error) => return Err(describe(error)),
        }
    }
}

/// Seconds from a `Retry-After` header; one second when it is missing or not a number.
fn retry_after(value: Option<&HeaderValue>) -> Duration {
    value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs)
}

/// A short plain-text body that looks like an error code.
fn plain_code(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?.trim();
    let looks_like_code = !text.is_empty()
        && text.len() <= 64
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    looks_like_code.then(|| text.to_owned())
}

/// The error and its causes on one line, without the URL (a webhook URL is a secret).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn log_failure(signal: &Signal, status: Option<StatusCode>, code: Option<&str>, detail: &str) {
    tracing::error!(
        target: TARGET,
        circuit = &*signal.circuit_name,
        old_state = signal.old_state.as_str(),
        new_state = signal.new_state.as_str(),
        status = status.map(|s| s.as_u16()),
        slack_error = code,
        detail,
        "slack message not delivered"
    );
}
