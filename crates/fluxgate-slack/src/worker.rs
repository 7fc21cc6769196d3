//! The queue and the worker that post to Slack off the call path (SL-3, SL-4).
//!
//! A listener only enqueues: `on_signal` never waits for the network. One worker per
//! listener takes the signals in the order they were enqueued and posts them one at a time,
//! which is what keeps the messages of a circuit in transition order and lets the worker own
//! the thread map without a lock.

use std::collections::HashMap;
use std::error::Error as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use tokio::sync::Notify;
use tokio::sync::mpsc::{self, error::TrySendError};

use super::payload::{self, Placement};
use super::template::Templates;
use fluxgate_core::{Signal, State};

pub(super) const TARGET: &str = "fluxgate::listeners::slack";

/// Counts of the messages a listener has accepted and not yet finished with.
#[derive(Debug, Default)]
pub(super) struct Progress {
    pending: Mutex<usize>,
    idle: Condvar,
    idle_async: Notify,
    dropped: AtomicU64,
}

impl Progress {
    fn lock(&self) -> MutexGuard<'_, usize> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn pending(&self) -> usize {
        *self.lock()
    }

    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn start(&self) {
        *self.lock() += 1;
    }

    fn finish(&self) {
        let mut pending = self.lock();
        *pending = pending.saturating_sub(1);
        if *pending == 0 {
            self.idle.notify_all();
            self.idle_async.notify_waiters();
        }
    }

    /// Blocks until nothing is pending or `timeout` has passed; true when nothing is.
    pub(super) fn wait_idle(&self, timeout: Duration) -> bool {
        let pending = self.lock();
        let (pending, _) = self
            .idle
            .wait_timeout_while(pending, timeout, |n| *n > 0)
            .unwrap_or_else(PoisonError::into_inner);
        *pending == 0
    }

    /// Waits until nothing is pending or `timeout` has passed; true when nothing is.
    pub(super) async fn wait_idle_async(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let mut notified = std::pin::pin!(self.idle_async.notified());
            // Registered before the check, so a `finish` between the two is not missed.
            notified.as_mut().enable();
            if self.pending() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.pending() == 0;
            }
        }
    }
}

/// The sending side, held by the listener and its clones.
#[derive(Debug)]
pub(super) struct Queue {
    tx: mpsc::Sender<Signal>,
    capacity: usize,
    pub(super) progress: Arc<Progress>,
}

impl Queue {
    pub(super) fn new(capacity: usize) -> (Queue, mpsc::Receiver<Signal>, Arc<Progress>) {
        let (tx, rx) = mpsc::channel(capacity);
        let progress = Arc::new(Progress::default());
        let queue = Queue {
            tx,
            capacity,
            progress: Arc::clone(&progress),
        };
        (queue, rx, progress)
    }

    /// Hands a signal to the worker without waiting. When the queue is full the new message
    /// is dropped and logged (the overflow policy): the caller is never blocked.
    pub(super) fn push(&self, signal: Signal) {
        self.progress.start();
        match self.tx.try_send(signal) {
            Ok(()) => {}
            Err(TrySendError::Full(signal)) => {
                self.progress.finish();
                let dropped = self.progress.dropped.fetch_add(1, Ordering::Relaxed) + 1;
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
            Err(TrySendError::Closed(signal)) => {
                self.progress.finish();
                let dropped = self.progress.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::error!(
                    target: TARGET,
                    circuit = &*signal.circuit_name,
                    old_state = signal.old_state.as_str(),
                    new_state = signal.new_state.as_str(),
                    dropped,
                    "slack worker has stopped (its runtime shut down), message dropped"
                );
            }
        }
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
    /// Circuit name → `ts` of the message that started its open thread (SL-3).
    pub(super) threads: HashMap<Arc<str>, String>,
}

/// What Slack made of one message.
enum Posted {
    /// Accepted; the Web API returns the message's `ts`, a webhook does not.
    Ok(Option<String>),
    /// Not accepted; already logged.
    Failed,
}

/// Posts every queued signal, in order, until all senders are gone and the queue is empty.
pub(super) async fn run(
    mut rx: mpsc::Receiver<Signal>,
    mut delivery: Delivery,
    progress: Arc<Progress>,
) {
    while let Some(signal) = rx.recv().await {
        delivery.deliver(&signal).await;
        progress.finish();
    }
}

fn ends_thread(state: State) -> bool {
    matches!(state, State::Closed | State::Disabled | State::MetricsOnly)
}

impl Delivery {
    async fn deliver(&mut self, signal: &Signal) {
        let thread = self.threads.get(&signal.circuit_name).cloned();
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

        // SL-3: the thread map changes only once Slack said `ok: true`.
        if let Posted::Ok(ts) = self.post(signal, body).await {
            match placement {
                Placement::TopLevel if signal.new_state == State::Open => {
                    if let Some(ts) = ts {
                        self.threads.insert(Arc::clone(&signal.circuit_name), ts);
                    }
                }
                Placement::ClosingReply(_) => {
                    self.threads.remove(&signal.circuit_name);
                }
                _ => {}
            }
        }
    }

    /// One message, retried only when Slack asks for it (429 with `Retry-After`).
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
            let bytes = match response.bytes().await {
                Ok(bytes) => bytes,
                Err(error) => {
                    log_failure(signal, Some(status), None, &describe(error));
                    return Posted::Failed;
                }
            };
            return self.judge(signal, status, &bytes);
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
