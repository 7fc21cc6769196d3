//! A Slack listener: a message in a channel for every transition, without slowing a call.
//!
//! A breaker trips when a dependency is failing, which is exactly when the people on call
//! want to hear about it — and exactly when the network is least trustworthy. So the
//! listener never talks to Slack on the call path: the call that caused a transition only
//! puts the signal in a bounded queue, and a worker posts the messages one by one, in
//! transition order (SL-4). A slow, rate-limited or unreachable Slack delays the messages,
//! never the protected calls; what cannot be delivered is logged through `tracing` with the
//! Slack error code and dropped.
//!
//! Each message is a `chat.postMessage` call with a coloured attachment: a title, then the
//! circuit, `OLD → NEW`, the time and a description (SL-1, SL-2). The messages of one
//! incident stay together: the trip starts a thread, the recovery attempts and re-trips reply
//! in it, and the recovery closes it with a reply that is also shown in the channel (SL-3).
//!
//! # One type for sync and async breakers
//!
//! [`SlackListener`] is both a [`Listener`] (for `CircuitBreaker::listener`) and an
//! [`AsyncListener`] (for `AsyncCircuitBreaker::async_listener`), the way `LogListener` is.
//! Either way `on_signal` only enqueues. The messages are posted by one worker task running
//! on a single-threaded Tokio runtime that the listener owns, on a thread of its own named
//! `fluxgate-slack`: it never borrows a thread from the application's runtime, so it works
//! the same when the listener is built outside any runtime or inside one, and a Slack that
//! hangs never holds up a Tokio worker. Clones share one queue, one worker and one set of
//! incident threads, so one listener may serve many breakers of both kinds (L-5).
//!
//! # Before exit
//!
//! Messages still queued when the process exits are lost. Wait for them, bounded:
//! [`SlackListener::flush`] blocks the calling thread (sync code, `main` before it returns);
//! [`SlackListener::flush_async`] is its async twin and never blocks the executor. Both wait
//! only for what was queued before the call, and return whether all of it went out (or was
//! given up on after an error that is logged).
//!
//! When a breaker is retired (removed from a registry, evicted from a keyed breaker), the
//! listener forgets that circuit's thread ([`Listener::on_detach`]), so the state it keeps
//! stays bounded by the live circuits.
//!
//! ```
//! use std::time::Duration;
//! use fluxgate_slack::SlackListener;
//! use fluxgate_core::CircuitBreaker;
//!
//! let slack = SlackListener::builder("C0123456789", "xoxb-your-bot-token")
//! #   .api_base("http://127.0.0.1:9")
//!     .build()
//!     .unwrap();
//! let cb = CircuitBreaker::builder("payment_api")
//!     .listener(slack.clone())
//!     .build()
//!     .unwrap();
//! cb.force_open(); // returns at once; the message is posted in the background
//! slack.flush(Duration::from_secs(5)); // before exit: wait (bounded) for pending messages
//! ```
//!
//! The same listener with an async breaker:
//!
//! ```
//! use std::time::Duration;
//! use fluxgate_slack::SlackListener;
//! use fluxgate_core::AsyncCircuitBreaker;
//!
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() {
//!     let slack = SlackListener::builder("C0123456789", "xoxb-your-bot-token")
//! #       .api_base("http://127.0.0.1:9")
//!         .build()
//!         .unwrap();
//!     let cb = AsyncCircuitBreaker::builder("payment_api")
//!         .async_listener(slack.clone())
//!         .build()
//!         .unwrap();
//!     cb.force_open();
//!     slack.flush_async(Duration::from_secs(5)).await; // never blocks the executor
//! }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod payload;
mod template;
mod worker;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderValue;
use tracing::Dispatch;

pub use template::Template;

use fluxgate_core::listeners::{AsyncListener, Listener, ListenerError, ListenerFuture};
use fluxgate_core::{Signal, State};
use template::Templates;
use worker::{Delivery, Endpoint, Queue};

/// The Slack Web API base used unless [`SlackBuilder::api_base`] says otherwise.
///
/// ```
/// assert_eq!(fluxgate_slack::DEFAULT_API_BASE, "https://slack.com/api");
/// ```
pub const DEFAULT_API_BASE: &str = "https://slack.com/api";

const DEFAULT_QUEUE_CAPACITY: usize = 1024;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_MAX_RETRIES: u32 = 3;
const DEFAULT_MAX_RETRY_WAIT: Duration = Duration::from_secs(60);
const REDACTED: &str = "<redacted>";

/// A Slack listener's configuration that could not be used; nothing was started.
///
/// Its text never contains the token or the webhook URL (SL-4).
///
/// ```
/// use fluxgate_slack::SlackListener;
/// let err = SlackListener::builder("C0123456789", "").build().unwrap_err();
/// assert_eq!(err.to_string(), "slack listener: the bot token is empty");
/// ```
#[derive(Debug)]
pub struct SlackError {
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl SlackError {
    fn new(message: impl Into<String>) -> SlackError {
        SlackError {
            message: message.into(),
            source: None,
        }
    }

    fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> SlackError {
        SlackError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl fmt::Display for SlackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slack listener: {}", self.message)
    }
}

impl std::error::Error for SlackError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[derive(Clone)]
enum Destination {
    WebApi { channel: String, token: String },
    Webhook { url: String },
}

/// Configures a [`SlackListener`]; made by [`SlackListener::builder`] and
/// [`SlackListener::webhook`].
///
/// Defaults: API base
/// [`DEFAULT_API_BASE`], the templates of SL-2, a queue of 1024 messages, 10 s per request,
/// up to 3 retries when Slack answers 429, each waiting `Retry-After` (at most 60 s).
///
/// ```
/// use std::time::Duration;
/// use fluxgate_slack::{SlackListener, Template};
/// use fluxgate_core::State;
///
/// let slack = SlackListener::builder("C0123456789", "xoxb-your-bot-token")
///     .template(
///         State::Closed,
///         State::Open,
///         Template::new("<!here> 🚨 Payments tripped", "#FF4C4C", "See the runbook."),
///     )
///     .queue_capacity(256)
///     .timeout(Duration::from_secs(5))
///     .build()
///     .unwrap();
/// # let _ = slack;
/// ```
pub struct SlackBuilder {
    destination: Destination,
    api_base: String,
    templates: Templates,
    queue_capacity: usize,
    timeout: Duration,
    max_retries: u32,
    max_retry_wait: Duration,
    client: Option<reqwest::Client>,
}

impl SlackBuilder {
    fn new(destination: Destination) -> SlackBuilder {
        SlackBuilder {
            destination,
            api_base: DEFAULT_API_BASE.to_owned(),
            templates: Templates::default(),
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            timeout: DEFAULT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            max_retry_wait: DEFAULT_MAX_RETRY_WAIT,
            client: None,
        }
    }

    /// Posts to `{base}/chat.postMessage` instead of Slack's own API (SL-5): a proxy, a
    /// Slack-compatible server, or a local server in tests. Ignored by webhook listeners.
    ///
    /// ```
    /// use fluxgate_slack::SlackListener;
    /// let slack = SlackListener::builder("C0123456789", "xoxb-test")
    ///     .api_base("http://127.0.0.1:8080/api")
    ///     .build()
    ///     .unwrap();
    /// # let _ = slack;
    /// ```
    pub fn api_base(mut self, base: impl Into<String>) -> Self {
        self.api_base = base.into();
        self
    }

    /// Uses `template` for the transitions from `old` to `new` (SL-2).
    ///
    /// ```
    /// use fluxgate_slack::{SlackListener, Template};
    /// use fluxgate_core::State;
    /// let slack = SlackListener::builder("C0123456789", "xoxb-test")
    ///     .template(State::Closed, State::ForcedOpen, Template::new("⛔ Forced open", "#000000", "By an operator."))
    ///     .build()
    ///     .unwrap();
    /// # let _ = slack;
    /// ```
    pub fn template(mut self, old: State, new: State, template: Template) -> Self {
        self.templates.set(old, new, template);
        self
    }

    /// Uses `template` for every transition that has no template of its own (by default
    /// `ℹ️ Circuit Breaker State Changed`).
    ///
    /// ```
    /// use fluxgate_slack::{SlackListener, Template};
    /// let slack = SlackListener::builder("C0123456789", "xoxb-test")
    ///     .fallback_template(Template::new("Breaker changed", "#CCCCCC", "Someone flipped a switch."))
    ///     .build()
    ///     .unwrap();
    /// # let _ = slack;
    /// ```
    pub fn fallback_template(mut self, template: Template) -> Self {
        self.templates.set_fallback(template);
        self
    }

    /// How many messages may wait for delivery (at least 1; default 1024). When the queue
    /// is full a new message is dropped and a warning is logged: the caller never waits.
    ///
    /// ```
    /// use fluxgate_slack::SlackListener;
    /// let slack = SlackListener::builder("C0123456789", "xoxb-test").queue_capacity(64).build().unwrap();
    /// # let _ = slack;
    /// ```
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity;
        self
    }

    /// The longest one request to Slack may take (default 10 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_slack::SlackListener;
    /// let slack = SlackListener::builder("C0123456789", "xoxb-test")
    ///     .timeout(Duration::from_secs(3))
    ///     .build()
    ///     .unwrap();
    /// # let _ = slack;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How often one message is retried after a 429 answer (default 3).
    ///
    /// ```
    /// use fluxgate_slack::SlackListener;
    /// let slack = SlackListener::builder("C0123456789", "xoxb-test").max_retries(0).build().unwrap();
    /// # let _ = slack;
    /// ```
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// The longest wait honoured from a `Retry-After` header (default 60 s); a longer one
    /// is shortened to it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use fluxgate_slack::SlackListener;
    /// let slack = SlackListener::builder("C0123456789", "xoxb-test")
    ///     .max_retry_wait(Duration::from_secs(10))
    ///     .build()
    ///     .unwrap();
    /// # let _ = slack;
    /// ```
    pub fn max_retry_wait(mut self, wait: Duration) -> Self {
        self.max_retry_wait = wait;
        self
    }

    /// Posts with the caller's `reqwest` client (proxy, custom roots, connection pool)
    /// instead of one made by the listener.
    ///
    /// The `slack` feature turns on reqwest's rustls support *without* a crypto provider
    /// (the listener's own client brings `ring` itself). A client built by the application
    /// therefore needs a provider: install one once at start-up, as below, unless the
    /// application's own reqwest features already bring one.
    ///
    /// ```
    /// use fluxgate_slack::SlackListener;
    /// let _ = rustls::crypto::ring::default_provider().install_default();
    /// let client = reqwest::Client::builder().build().unwrap();
    /// let slack = SlackListener::builder("C0123456789", "xoxb-test")
    ///     .http_client(client)
    ///     .build()
    ///     .unwrap();
    /// # let _ = slack;
    /// ```
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Checks the configuration and makes everything the worker needs.
    fn prepare(self) -> Result<(Delivery, usize), SlackError> {
        if self.queue_capacity == 0 {
            return Err(SlackError::new(
                "the queue capacity must be at least 1, got 0",
            ));
        }
        let endpoint = match self.destination {
            Destination::WebApi { channel, token } => {
                if channel.trim().is_empty() {
                    return Err(SlackError::new("the channel is empty"));
                }
                if token.trim().is_empty() {
                    return Err(SlackError::new("the bot token is empty"));
                }
                let mut auth =
                    HeaderValue::try_from(format!("Bearer {}", token.trim())).map_err(|_| {
                        SlackError::new("the bot token has characters an HTTP header cannot carry")
                    })?;
                auth.set_sensitive(true);
                let base = self.api_base.trim_end_matches('/');
                let url =
                    reqwest::Url::parse(&format!("{base}/chat.postMessage")).map_err(|e| {
                        SlackError::with_source(
                            format!("the API base '{base}' is not a valid URL"),
                            e,
                        )
                    })?;
                Endpoint::WebApi { url, auth, channel }
            }
            Destination::Webhook { url } => {
                let url = reqwest::Url::parse(url.trim()).map_err(|e| {
                    SlackError::with_source("the webhook URL is not a valid URL", e)
                })?;
                Endpoint::Webhook { url }
            }
        };
        let client = match self.client {
            Some(client) => client,
            None => default_client()?,
        };
        let delivery = Delivery {
            client,
            endpoint,
            templates: self.templates,
            timeout: self.timeout,
            max_retries: self.max_retries,
            max_retry_wait: self.max_retry_wait,
        };
        Ok((delivery, self.queue_capacity))
    }
}

impl fmt::Debug for SlackBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("SlackBuilder");
        match &self.destination {
            Destination::WebApi { channel, .. } => {
                s.field("channel", channel)
                    .field("token", &REDACTED)
                    .field("api_base", &self.api_base);
            }
            Destination::Webhook { .. } => {
                s.field("webhook", &REDACTED);
            }
        }
        s.field("queue_capacity", &self.queue_capacity)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("max_retry_wait", &self.max_retry_wait)
            .finish_non_exhaustive()
    }
}

/// A client with rustls on the `ring` provider (or the process default provider, if the
/// application installed one) and the platform's certificate verifier.
fn default_client() -> Result<reqwest::Client, SlackError> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_platform_verifier())
        .map_err(|e| SlackError::with_source("could not set up TLS", e))?
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .user_agent(concat!("fluxgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SlackError::with_source("could not build the HTTP client", e.without_url()))
}

/// The subscriber of the code that builds a listener, so its worker logs to the same place
/// (unless there is none yet, in which case the worker follows the global default).
fn current_dispatch() -> Option<Dispatch> {
    let dispatch = tracing::dispatcher::get_default(Dispatch::clone);
    (!dispatch.is::<tracing::subscriber::NoSubscriber>()).then_some(dispatch)
}

/// A runtime that may be dropped anywhere: plain `Drop` of a Tokio runtime panics inside an
/// async context, which is where `build` may be running when the worker thread could not
/// be started.
struct WorkerRuntime(Option<tokio::runtime::Runtime>);

impl Drop for WorkerRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Starts the worker: a task on a single-threaded runtime that runs on a thread of its own
/// (`fluxgate-slack`). Returns a handle of that runtime, whose timers `flush_async` uses.
fn spawn_worker(
    queue: Arc<Queue>,
    delivery: Delivery,
) -> Result<tokio::runtime::Handle, SlackError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| SlackError::with_source("could not start the worker's runtime", e))?;
    let handle = runtime.handle().clone();
    let runtime = WorkerRuntime(Some(runtime));
    let dispatch = current_dispatch();
    std::thread::Builder::new()
        .name("fluxgate-slack".to_owned())
        .spawn(move || {
            let Some(rt) = &runtime.0 else { return };
            let run = worker::run(queue, delivery);
            match dispatch {
                Some(dispatch) => tracing::dispatcher::with_default(&dispatch, || rt.block_on(run)),
                None => rt.block_on(run),
            }
        })
        .map_err(|e| SlackError::with_source("could not start the worker thread", e))?;
    Ok(handle)
}

/// What the clones of one listener share; the worker stops when the last clone is gone.
struct Shared {
    queue: Arc<Queue>,
    /// The worker's runtime; alive as long as this value, since the worker only stops
    /// after `Drop` closed the queue.
    runtime: tokio::runtime::Handle,
    describe: String,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.queue.close();
    }
}

/// Posts every transition of the breakers it serves to Slack (SL-1 … SL-5), sync and async
/// alike.
///
/// It is a [`Listener`] for [`CircuitBreaker`](fluxgate_core::CircuitBreaker) and an
/// [`AsyncListener`] for [`AsyncCircuitBreaker`](fluxgate_core::AsyncCircuitBreaker): pass
/// it (or a clone, or an `Arc` of it) to `.listener(…)` or `.async_listener(…)`. Clones
/// share one queue, one worker and one set of incident threads, so one listener may serve
/// many breakers of both kinds (L-5).
///
/// `on_signal` only enqueues, in a few hundred nanoseconds, on whatever thread calls it: a
/// plain thread, a Tokio worker, a `current_thread` runtime. The messages are posted by a
/// worker task on a single-threaded Tokio runtime of the listener's own, on a thread named
/// `fluxgate-slack`; it works whether the listener is built inside a runtime or outside
/// any. The worker posts in transition order, keeps one thread per circuit and logs what
/// Slack refuses. When the last clone is dropped, the worker delivers what is still queued
/// and stops.
///
/// Before exit, wait for the last messages: [`flush`](SlackListener::flush) in sync code,
/// [`flush_async`](SlackListener::flush_async) in async code.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use fluxgate_core::listeners::Listener;
/// use fluxgate_slack::SlackListener;
/// use fluxgate_core::{Signal, State};
///
/// let slack = SlackListener::new("C0123456789", "xoxb-your-bot-token").unwrap();
/// # let slack = SlackListener::builder("C0123456789", "xoxb-your-bot-token")
/// #     .api_base("http://127.0.0.1:9").max_retries(0).build().unwrap();
/// slack
///     .on_signal(&Signal::new("payment_api", State::Closed, State::Open, SystemTime::now()))
///     .unwrap();
/// assert!(!format!("{slack:?}").contains("xoxb"));
/// slack.flush(Duration::from_secs(5));
/// ```
#[derive(Clone)]
pub struct SlackListener {
    shared: Arc<Shared>,
}

/// The name SPEC §0 gives the Slack listener of async breakers: the same type as
/// [`SlackListener`], which is a listener for both faces (its posting runs on its own
/// worker, never on the caller's executor).
///
/// ```
/// use fluxgate_slack::AsyncSlackListener;
/// let slack: AsyncSlackListener = AsyncSlackListener::builder("C0123456789", "xoxb-t")
///     .api_base("http://127.0.0.1:9")
///     .build()
///     .unwrap();
/// let cb = fluxgate_core::AsyncCircuitBreaker::builder("payments")
///     .async_listener(slack)
///     .build()
///     .unwrap();
/// # let _ = cb;
/// ```
pub type AsyncSlackListener = SlackListener;

impl SlackListener {
    /// A listener that posts to `channel` (an id such as `C0123456789`; the bot must be a
    /// member) with a bot token (`xoxb-…`, scope `chat:write`), with the defaults of
    /// [`SlackBuilder`].
    ///
    /// ```
    /// use fluxgate_slack::SlackListener;
    /// let slack = SlackListener::new("C0123456789", "xoxb-your-bot-token").unwrap();
    /// # let _ = slack;
    /// ```
    pub fn new(
        channel: impl Into<String>,
        token: impl Into<String>,
    ) -> Result<SlackListener, SlackError> {
        SlackListener::builder(channel, token).build()
    }

    /// A builder for a listener that posts to `channel` with a bot token.
    ///
    /// ```
    /// use fluxgate_slack::SlackListener;
    /// let slack = SlackListener::builder("C0123456789", "xoxb-your-bot-token")
    ///     .queue_capacity(100)
    ///     .build()
    ///     .unwrap();
    /// # let _ = slack;
    /// ```
    pub fn builder(channel: impl Into<String>, token: impl Into<String>) -> SlackBuilder {
        SlackBuilder::new(Destination::WebApi {
            channel: channel.into(),
            token: token.into(),
        })
    }

    /// A builder for a listener that posts to an incoming webhook. The webhook decides the
    /// channel; Slack returns no message id for it, so every message is a top-level message
    /// (no threads).
    ///
    /// ```
    /// use fluxgate_slack::SlackListener;
    /// let slack = SlackListener::webhook("https://hooks.slack.com/services/T000/B000/XXXX")
    ///     .build()
    ///     .unwrap();
    /// assert!(!format!("{slack:?}").contains("XXXX"));
    /// ```
    pub fn webhook(url: impl Into<String>) -> SlackBuilder {
        SlackBuilder::new(Destination::Webhook { url: url.into() })
    }

    /// Waits until every message accepted before this call has been delivered or given up
    /// on, for at most `timeout`; true when they all have. Messages accepted later are not
    /// waited for, so a busy breaker cannot keep it waiting.
    ///
    /// It blocks the calling thread: call it from sync code or on shutdown. In async code
    /// use [`flush_async`](SlackListener::flush_async), which does not block the executor.
    ///
    /// ```
    /// use std::time::Duration;
    /// let slack = fluxgate_slack::SlackListener::new("C0123456789", "xoxb-test").unwrap();
    /// assert!(slack.flush(Duration::from_millis(10))); // nothing was sent
    /// ```
    pub fn flush(&self, timeout: Duration) -> bool {
        self.shared.queue.flush(timeout)
    }

    /// Messages accepted and not yet delivered or given up on (queued or in flight).
    ///
    /// ```
    /// let slack = fluxgate_slack::SlackListener::new("C0123456789", "xoxb-test").unwrap();
    /// assert_eq!(slack.pending(), 0);
    /// ```
    pub fn pending(&self) -> usize {
        self.shared.queue.pending()
    }

    /// Messages dropped because the queue was full.
    ///
    /// ```
    /// let slack = fluxgate_slack::SlackListener::new("C0123456789", "xoxb-test").unwrap();
    /// assert_eq!(slack.dropped(), 0);
    /// ```
    pub fn dropped(&self) -> u64 {
        self.shared.queue.dropped()
    }

    /// Circuits whose incident thread is open: their trip was posted and no closing reply
    /// yet (SL-3). A retired breaker's thread is forgotten (see
    /// [`Listener::on_detach`]), so this stays bounded by the live circuits.
    ///
    /// ```
    /// let slack = fluxgate_slack::SlackListener::new("C0123456789", "xoxb-test").unwrap();
    /// assert_eq!(slack.open_threads(), 0);
    /// ```
    pub fn open_threads(&self) -> usize {
        self.shared.queue.open_threads()
    }
}

impl SlackListener {
    /// The async twin of [`flush`](SlackListener::flush): waits until every message
    /// accepted before this call has been delivered or given up on, for at most `timeout`;
    /// true when they all have.
    ///
    /// It never blocks the executor, and needs nothing from it: the timeout is measured by
    /// the listener's own runtime, so it works on any executor, a `current_thread` runtime
    /// or one without the time driver included.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use std::time::Duration;
    /// let slack = fluxgate_slack::SlackListener::new("C0123456789", "xoxb-test").unwrap();
    /// assert!(slack.flush_async(Duration::from_millis(10)).await);
    /// # }
    /// ```
    pub async fn flush_async(&self, timeout: Duration) -> bool {
        let deadline = {
            // The timer belongs to the worker's runtime, which outlives `self`; the guard
            // is gone before the first await.
            let _runtime = self.shared.runtime.enter();
            tokio::time::sleep(timeout)
        };
        self.shared.queue.flush_async(deadline).await
    }
}

impl SlackBuilder {
    /// Checks the configuration and starts the worker thread.
    ///
    /// ```
    /// use fluxgate_slack::SlackListener;
    /// assert!(SlackListener::builder("C0123456789", "xoxb-test").build().is_ok());
    /// assert!(SlackListener::builder("", "xoxb-test").build().is_err());
    /// assert!(SlackListener::builder("C0123456789", "bad\ntoken").build().is_err());
    /// ```
    pub fn build(self) -> Result<SlackListener, SlackError> {
        let (delivery, capacity) = self.prepare()?;
        let describe = match &delivery.endpoint {
            Endpoint::WebApi { url, channel, .. } => {
                format!(
                    "channel: {channel:?}, url: {:?}, token: {REDACTED:?}",
                    url.as_str()
                )
            }
            Endpoint::Webhook { .. } => format!("webhook: {REDACTED:?}"),
        };
        let queue = Arc::new(Queue::new(capacity));
        let runtime = spawn_worker(Arc::clone(&queue), delivery)?;
        Ok(SlackListener {
            shared: Arc::new(Shared {
                queue,
                runtime,
                describe,
            }),
        })
    }
}

impl fmt::Debug for SlackListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let queue = &self.shared.queue;
        write!(
            f,
            "SlackListener {{ {}, pending: {}, dropped: {} }}",
            self.shared.describe,
            queue.pending(),
            queue.dropped()
        )
    }
}

/// The sync face: `CircuitBreaker::builder(…).listener(slack.clone())`.
impl Listener for SlackListener {
    fn on_signal(&self, signal: &Signal) -> Result<(), ListenerError> {
        self.shared.queue.push(signal.clone());
        Ok(())
    }

    /// Forgets the circuit's incident thread once its queued messages are out; a later
    /// trip of a circuit with the same name starts a fresh thread.
    fn on_detach(&self, circuit_name: &str) {
        self.shared.queue.detach(circuit_name);
    }

    fn name(&self) -> &str {
        "SlackListener"
    }
}

/// The async face: `AsyncCircuitBreaker::builder(…).async_listener(slack.clone())`.
impl AsyncListener for SlackListener {
    fn on_signal(&self, signal: Signal) -> ListenerFuture {
        // Enqueued now, not when the future is first polled: that keeps transition order.
        self.shared.queue.push(signal);
        Box::pin(std::future::ready(Ok(())))
    }

    fn on_detach(&self, circuit_name: &str) {
        self.shared.queue.detach(circuit_name);
    }

    fn name(&self) -> &str {
        "SlackListener"
    }
}
