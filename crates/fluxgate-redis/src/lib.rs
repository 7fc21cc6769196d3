//! # fluxgate-redis
//!
//! A [`StateStore`] on Redis (or Valkey) for [fluxgate](https://docs.rs/fluxgate-breaker)
//! circuit breakers: the breakers of one name in several processes (a fleet) open
//! together, wait for one deadline, probe under at most `k` leases, and obey manual
//! commands given to any of them. See `docs/fleet.md` for the semantics and the failure
//! model.
//!
//! Nothing of it runs on the call path. A breaker hands its transitions to the store's
//! worker thread without waiting; the worker talks to Redis (every write one Lua script:
//! a compare-and-set on a version, deadlines in server time), a subscriber thread listens
//! for the fleet's changes (pub/sub) and the worker also polls every `poll_interval`, so
//! a lost message is late by at most that much. When Redis is down, slow or unreachable,
//! breakers work on local state, the worker reconnects with backoff and logs once on loss
//! and once on recovery (target `fluxgate`), and `info().store_connected` says so. An
//! error about one breaker's own keys cuts off that breaker alone, and keys that this
//! crate did not write read as no state (see `docs/fleet.md`, "Failure model").
//!
//! ```no_run
//! use fluxgate_core::CircuitBreaker;
//! use fluxgate_redis::RedisStore;
//!
//! let store = RedisStore::builder("redis://127.0.0.1:6379/").probes(1).build()?;
//! let cb = CircuitBreaker::builder("payment_api").store(store.clone()).build()?;
//! # Ok::<(), fluxgate_core::ConfigError>(())
//! ```
//!
//! ## Redis data
//! For a breaker `name` and the prefix `p` (default `fluxgate`):
//! - `p:{name}`: a hash `v` (version), `s` (state), `r` (reopens), `d` (the open
//!   period's deadline, server milliseconds, -1 for none), expiring `key_ttl` after the
//!   last live instance refreshed it;
//! - `p:{name}:probes`: a sorted set of probe leases (instance id → expiry), emptied by
//!   every write of the state;
//! - channel `p:changes`: the name of each breaker whose state was written.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use fluxgate_core::store::{Change, SharedState, StateStore, StoreLink, StoreSink};
use fluxgate_core::{ConfigError, State};

/// The Lua both state scripts start with: `state(key)` reads a state hash as
/// `{version, state, reopens, deadline_ms}`. A key that is not a hash, or a hash without a
/// version and a known state name (written by something else than this crate), reads as
/// no state (version 0), and fields out of range as their defaults.
macro_rules! state_lua {
    () => {
        r"
local function int(x, d, lo, hi)
  local n = tonumber(x)
  if n == nil or n ~= n or n < lo or n > hi then return d end
  return math.floor(n)
end
local known = {closed = true, open = true, half_open = true, metrics_only = true, disabled = true, forced_open = true}
local function state(key)
  if redis.call('TYPE', key)['ok'] ~= 'hash' then return {0, 'closed', 0, -1} end
  local h = redis.call('HMGET', key, 'v', 's', 'r', 'd')
  local v = int(h[1], 0, 1, 9007199254740992)
  if v == 0 or not known[h[2]] then return {0, 'closed', 0, -1} end
  return {v, h[2], int(h[3], 0, 0, 4294967295), int(h[4], -1, 0, 9007199254740992)}
end
"
    };
}

/// The compare-and-set of a state, run by Redis as one script.
///
/// `KEYS[1]` the state hash, `KEYS[2]` the lease set; `ARGV`: the version the writer
/// last saw (`base`), the new state's name, reopens, the open period's wait in
/// milliseconds (-1: none), `1` for a manual command, the key TTL in milliseconds, the
/// channel and the breaker's name. The state is written when it is a manual command,
/// when `base` is the current version, or when it is `open` and the fleet is `closed`
/// (or has no state); a writer that loses changes nothing. The new version is
/// `max(version + 1, server time in µs)`, so versions keep growing even after Redis lost
/// its data. Returns `{written, version, state, reopens, deadline_ms, now_ms}`.
///
/// A key that is not a hash, or a hash without a version and a known state name (written
/// by something else than this crate), reads as no state, and the write replaces it.
pub const WRITE_SCRIPT: &str = concat!(
    state_lua!(),
    r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'hash' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
if redis.call('TYPE', KEYS[2])['ok'] ~= 'zset' then redis.call('DEL', KEYS[2]) end
local was = state(KEYS[1])
local cur, cs = was[1], was[2]
local ok = ARGV[5] == '1' or cur == tonumber(ARGV[1]) or (ARGV[2] == 'open' and cs == 'closed')
if ok then
  local v = math.max(cur + 1, tonumber(t[1]) * 1000000 + tonumber(t[2]))
  local d = -1
  if tonumber(ARGV[4]) >= 0 then d = now + tonumber(ARGV[4]) end
  redis.call('HSET', KEYS[1], 'v', v, 's', ARGV[2], 'r', ARGV[3], 'd', d)
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  redis.call('DEL', KEYS[2])
  redis.call('PUBLISH', ARGV[7], ARGV[8])
end
local f = state(KEYS[1])
return {ok and 1 or 0, f[1], f[2], f[3], f[4], now}
"
);

/// Reads a state and refreshes its TTL (`ARGV[1]`, ms); the same reply as
/// [`WRITE_SCRIPT`] with `written = 0` (version 0: no state, also for a key or fields
/// this crate did not write).
const READ_SCRIPT: &str = concat!(
    state_lua!(),
    r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local f = state(KEYS[1])
if f[1] > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {0, f[1], f[2], f[3], f[4], now}
"
);

/// Takes or renews a probe lease: `ARGV` instance id, k, lease TTL in ms; 1 if held. A
/// key that is not a sorted set (not written by this crate) is replaced.
const LEASE_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('TYPE', KEYS[1])['ok'] ~= 'zset' then redis.call('DEL', KEYS[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
";

/// Hinted names kept between rounds; more make the next round read every breaker.
const MAX_HINTS: usize = 4096;

/// The reply of the write and read scripts.
type Reply = (i64, u64, String, u32, i64, i64);

/// Configures a [`RedisStore`].
///
/// | setting | default |
/// |---|---|
/// | prefix | `fluxgate` |
/// | probes (leases at once, 0: no leases) | 1 |
/// | lease_ttl | 10 s |
/// | poll_interval | 1 s |
/// | key_ttl | 10 min |
/// | timeout (connect, read, write) | 500 ms |
/// | max_backoff | 5 s |
///
/// ```
/// use std::time::Duration;
/// let store = fluxgate_redis::RedisStore::builder("redis://127.0.0.1:6379/")
///     .prefix("shop")
///     .probes(2)
///     .poll_interval(Duration::from_millis(500))
///     .build()?;
/// # Ok::<(), fluxgate_core::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use = "a builder does nothing until build() is called"]
pub struct RedisStoreBuilder {
    url: String,
    prefix: String,
    probes: usize,
    lease_ttl: Duration,
    poll_interval: Duration,
    key_ttl: Duration,
    timeout: Duration,
    max_backoff: Duration,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("url", &redact(&self.url))
            .field("prefix", &self.prefix)
            .field("probes", &self.probes)
            .field("lease_ttl", &self.lease_ttl)
            .field("poll_interval", &self.poll_interval)
            .field("key_ttl", &self.key_ttl)
            .field("timeout", &self.timeout)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

/// The URL without its credentials (`redis://***@host/`), for errors and `Debug`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if scheme < at => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

impl RedisStoreBuilder {
    /// The key prefix: breakers share state when they have the same name and prefix.
    ///
    /// ```
    /// let _ = fluxgate_redis::RedisStore::builder("redis://127.0.0.1/").prefix("shop");
    /// ```
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// At most `k` instances probe at once in `half_open`; 0 turns leases off (every
    /// instance probes when the fleet's deadline is over).
    ///
    /// ```
    /// let _ = fluxgate_redis::RedisStore::builder("redis://127.0.0.1/").probes(3);
    /// ```
    pub fn probes(mut self, k: usize) -> Self {
        self.probes = k;
        self
    }

    /// How long a probe lease lasts unless its holder renews it (it does while it is
    /// `half_open`, every `poll_interval`): a crashed prober frees its lease after this.
    ///
    /// ```
    /// let _ = fluxgate_redis::RedisStore::builder("redis://127.0.0.1/").lease_ttl(std::time::Duration::from_secs(5));
    /// ```
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// How often the fleet's state is read even without a pub/sub message: the bound on
    /// propagation when a message is lost; also the pace of TTL and lease renewals.
    ///
    /// ```
    /// let _ = fluxgate_redis::RedisStore::builder("redis://127.0.0.1/").poll_interval(std::time::Duration::from_millis(200));
    /// ```
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every;
        self
    }

    /// How long a breaker's state outlives the last live instance (refreshed by every
    /// poll); must be longer than `poll_interval`.
    ///
    /// ```
    /// let _ = fluxgate_redis::RedisStore::builder("redis://127.0.0.1/").key_ttl(std::time::Duration::from_secs(3600));
    /// ```
    pub fn key_ttl(mut self, ttl: Duration) -> Self {
        self.key_ttl = ttl;
        self
    }

    /// Connect, read and write timeout of every Redis operation (on the store's threads).
    ///
    /// ```
    /// let _ = fluxgate_redis::RedisStore::builder("redis://127.0.0.1/").timeout(std::time::Duration::from_millis(200));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The longest wait between reconnection attempts (they start at 50 ms and double).
    ///
    /// ```
    /// let _ = fluxgate_redis::RedisStore::builder("redis://127.0.0.1/").max_backoff(std::time::Duration::from_secs(1));
    /// ```
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max;
        self
    }

    /// Checks the settings and starts the store's two threads (`fluxgate-redis` and
    /// `fluxgate-redis-sub`); it connects in the background, so a Redis that is down is
    /// not an error here.
    ///
    /// ```
    /// let err = fluxgate_redis::RedisStore::builder("http://user:secret@x").build().unwrap_err();
    /// assert!(err.to_string().starts_with("RedisStore url must be"));
    /// assert!(!err.to_string().contains("secret"));
    /// ```
    pub fn build(self) -> Result<RedisStore, ConfigError> {
        let client = redis::Client::open(self.url.as_str()).map_err(|_| {
            ConfigError::new(
                "RedisStore",
                "url",
                redact(&self.url),
                "a redis:// URL (TLS is not built in)",
            )
        })?;
        for (name, d) in [
            ("lease_ttl", self.lease_ttl),
            ("poll_interval", self.poll_interval),
            ("timeout", self.timeout),
            ("max_backoff", self.max_backoff),
        ] {
            if d.is_zero() {
                return Err(ConfigError::new(
                    "RedisStore",
                    name,
                    format!("{d:?}"),
                    "> 0",
                ));
            }
        }
        if self.key_ttl <= self.poll_interval {
            return Err(ConfigError::new(
                "RedisStore",
                "key_ttl",
                format!("{:?}", self.key_ttl),
                "> poll_interval",
            ));
        }
        if self.prefix.is_empty() {
            return Err(ConfigError::new(
                "RedisStore",
                "prefix",
                "\"\"",
                "not empty",
            ));
        }
        Ok(RedisStore::start(client, self))
    }
}

/// A Redis-backed [`StateStore`]: see the [crate documentation](crate). Cheap to clone
/// (clones share one connection pair and one worker); attach it to any number of
/// breakers (`Builder::store`), also through a registry's template.
///
/// ```no_run
/// let store = fluxgate_redis::RedisStore::builder("redis://127.0.0.1:6379/").build()?;
/// let a = fluxgate_core::CircuitBreaker::builder("db").store(store.clone()).build()?;
/// assert_eq!(a.info().store_connected, Some(store.is_connected()));
/// # Ok::<(), fluxgate_core::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RedisStore {
    handle: Arc<Handle>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.handle.shared.config.prefix)
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

/// Stops the threads when the last store clone and the last attached breaker are gone.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.shared.wake.try_send(Msg::Wake);
    }
}

struct Shared {
    config: RedisStoreBuilder,
    client: redis::Client,
    /// `host:port` of the server, for the logs (never the password).
    addr: String,
    instance: String,
    regs: Mutex<Vec<Arc<Reg>>>,
    wake: SyncSender<Msg>,
    connected: AtomicBool,
    stop: AtomicBool,
}

enum Msg {
    /// Look at the breakers' pending changes.
    Wake,
    /// The fleet's state of this name was written (pub/sub).
    Hint(String),
    /// Read every state (the subscriber (re)connected: it may have missed messages).
    Resync,
}

/// One attached breaker.
struct Reg {
    /// Set by `StoreSink::attached`: the breaker can take the fleet's state.
    ready: AtomicBool,
    name: String,
    link: StoreLink,
    pending: Mutex<Option<Change>>,
    /// `epoch + 1` of a lease request not yet taken by the worker (0: none); an atomic,
    /// as it is asked on every rejected call while the breaker waits for a lease.
    probe: AtomicU64,
    work: Mutex<Work>,
    /// Its last sync failed on an answer about its own keys (not on the connection):
    /// logged once, and its listeners told the store is gone for it, until it works again.
    failing: AtomicBool,
}

/// What the worker remembers of one breaker.
struct Work {
    /// Joined: its first read (the fleet's state for a restarted instance) is done.
    joined: bool,
    /// The last version this instance wrote; its later changes build on it.
    own: u64,
    /// The last version applied to the breaker.
    told: u64,
    /// A change taken from `pending` but not written yet (Redis was unreachable).
    unsent: Option<Change>,
    /// The epoch a lease was asked for, and when the last attempt was made.
    want: Option<u64>,
    tried: Option<Instant>,
    /// This instance holds the fleet's probe lease (renewed while `half_open`).
    holding: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1)
}

struct Sink {
    reg: Arc<Reg>,
    handle: Arc<Handle>,
}

impl Sink {
    fn wake(&self) {
        match self.handle.shared.wake.try_send(Msg::Wake) {
            Ok(()) | Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

impl StoreSink for Sink {
    fn changed(&self, change: Change) {
        if change.to == State::HalfOpen {
            // Probing is local (under a lease): `half_open` is never the fleet's state.
            return;
        }
        {
            let mut p = lock(&self.reg.pending);
            // Latest wins; a manual command among coalesced changes keeps the whole
            // sequence a command (it must not lose a compare-and-set).
            let manual = change.manual || p.is_some_and(|c| c.manual);
            *p = Some(Change::new(
                change.from,
                change.to,
                change.reopens,
                change.wait,
                change.epoch,
                manual,
                change.base,
            ));
        }
        self.wake();
    }

    fn wants_probe(&self, epoch: u64) {
        let asked = epoch.wrapping_add(1);
        if self.reg.probe.load(Ordering::Acquire) != asked
            && self.reg.probe.swap(asked, Ordering::AcqRel) != asked
        {
            self.wake();
        }
    }

    fn leases_probes(&self) -> bool {
        self.handle.shared.config.probes > 0
    }

    fn attached(&self) {
        self.reg.ready.store(true, Ordering::Release);
        self.wake();
    }

    fn lease_retry_after(&self) -> Duration {
        self.handle.shared.config.poll_interval
    }

    /// The lease's TTL, less the time its grant may have spent on the way back (at most
    /// the command timeout; the lease's clock starts on the server before the reply).
    fn lease_ttl(&self) -> Duration {
        let config = &self.handle.shared.config;
        config
            .lease_ttl
            .saturating_sub(config.timeout)
            .max(config.lease_ttl / 2)
    }

    fn connected(&self) -> bool {
        self.handle.shared.connected.load(Ordering::Acquire)
            && !self.reg.failing.load(Ordering::Acquire)
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.wake();
    }
}

impl StateStore for RedisStore {
    fn attach(&self, link: StoreLink) -> Box<dyn StoreSink> {
        let reg = Arc::new(Reg {
            ready: AtomicBool::new(false),
            name: link.name().to_owned(),
            link,
            pending: Mutex::new(None),
            probe: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            work: Mutex::new(Work {
                joined: false,
                own: 0,
                told: 0,
                unsent: None,
                want: None,
                tried: None,
                holding: false,
            }),
        });
        lock(&self.handle.shared.regs).push(reg.clone());
        Box::new(Sink {
            reg,
            handle: self.handle.clone(),
        })
    }
}

impl RedisStore {
    /// Starts configuring a store for the Redis at `url` (`redis://host:port/db`,
    /// `redis://:password@host/`, …).
    ///
    /// ```
    /// let _ = fluxgate_redis::RedisStore::builder("redis://127.0.0.1:6379/");
    /// ```
    pub fn builder(url: &str) -> RedisStoreBuilder {
        RedisStoreBuilder {
            url: url.to_owned(),
            prefix: "fluxgate".to_owned(),
            probes: 1,
            lease_ttl: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            key_ttl: Duration::from_secs(600),
            timeout: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
        }
    }

    /// Whether the worker reaches Redis now (what `info().store_connected` shows).
    ///
    /// ```
    /// let store = fluxgate_redis::RedisStore::builder("redis://127.0.0.1:1/").build().unwrap();
    /// assert!(!store.is_connected()); // nothing listens on port 1
    /// ```
    pub fn is_connected(&self) -> bool {
        self.handle.shared.connected.load(Ordering::Acquire)
    }

    /// The key of the state hash of breaker `name`.
    ///
    /// ```
    /// let store = fluxgate_redis::RedisStore::builder("redis://127.0.0.1/").build().unwrap();
    /// assert_eq!(store.state_key("db"), "fluxgate:{db}");
    /// ```
    pub fn state_key(&self, name: &str) -> String {
        format!("{}:{{{name}}}", self.handle.shared.config.prefix)
    }

    /// The key of the probe-lease set of breaker `name`.
    ///
    /// ```
    /// let store = fluxgate_redis::RedisStore::builder("redis://127.0.0.1/").build().unwrap();
    /// assert_eq!(store.lease_key("db"), "fluxgate:{db}:probes");
    /// ```
    pub fn lease_key(&self, name: &str) -> String {
        format!("{}:probes", self.state_key(name))
    }

    /// The pub/sub channel of the fleet's changes.
    ///
    /// ```
    /// let store = fluxgate_redis::RedisStore::builder("redis://127.0.0.1/").build().unwrap();
    /// assert_eq!(store.channel(), "fluxgate:changes");
    /// ```
    pub fn channel(&self) -> String {
        format!("{}:changes", self.handle.shared.config.prefix)
    }

    fn start(client: redis::Client, config: RedisStoreBuilder) -> RedisStore {
        let (wake, rx) = std::sync::mpsc::sync_channel(1024);
        let instance = {
            use std::hash::BuildHasher;
            let h = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
            format!("{}-{h:016x}", std::process::id())
        };
        let addr = client.get_connection_info().addr().to_string();
        let shared = Arc::new(Shared {
            config,
            client,
            addr,
            instance,
            regs: Mutex::new(Vec::new()),
            wake,
            connected: AtomicBool::new(false),
            stop: AtomicBool::new(false),
        });
        let worker = Worker {
            shared: shared.clone(),
            con: None,
            down_since_logged: false,
            backoff: Duration::from_millis(50),
            retry_at: Instant::now(),
            polled: None,
        };
        // If a thread cannot be started the breakers simply stay on local state.
        let _ = thread::Builder::new()
            .name("fluxgate-redis".into())
            .spawn(move || worker.run(rx));
        let sub = shared.clone();
        let _ = thread::Builder::new()
            .name("fluxgate-redis-sub".into())
            .spawn(move || subscribe(&sub));
        RedisStore {
            handle: Arc::new(Handle { shared }),
        }
    }
}

fn connect(shared: &Shared) -> redis::RedisResult<redis::Connection> {
    let t = shared.config.timeout;
    let mut con = shared.client.get_connection_with_timeout(t)?;
    con.set_read_timeout(Some(t))?;
    con.set_write_timeout(Some(t))?;
    redis::cmd("PING").query::<String>(&mut con)?;
    Ok(con)
}

/// The subscriber thread: forwards the names written by any instance to the worker.
fn subscribe(shared: &Shared) {
    let channel = format!("{}:changes", shared.config.prefix);
    let mut backoff = Duration::from_millis(50);
    while !shared.stop.load(Ordering::Acquire) {
        let Ok(mut con) = connect(shared) else {
            thread::sleep(backoff);
            backoff = (backoff * 2).min(shared.config.max_backoff);
            continue;
        };
        backoff = Duration::from_millis(50);
        let mut ps = con.as_pubsub();
        if ps.subscribe(&channel).is_err()
            || ps
                .set_read_timeout(Some(Duration::from_millis(200)))
                .is_err()
        {
            continue;
        }
        let _ = shared.wake.send(Msg::Resync);
        while !shared.stop.load(Ordering::Acquire) {
            match ps.get_message() {
                Ok(msg) => {
                    if let Ok(name) = msg.get_payload::<String>() {
                        let _ = shared.wake.send(Msg::Hint(name));
                    }
                }
                Err(e) if e.is_timeout() => {}
                Err(_) => break,
            }
        }
    }
}

struct Worker {
    shared: Arc<Shared>,
    con: Option<redis::Connection>,
    down_since_logged: bool,
    backoff: Duration,
    retry_at: Instant,
    polled: Option<Instant>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Msg>) {
        let write = redis::Script::new(WRITE_SCRIPT);
        let read = redis::Script::new(READ_SCRIPT);
        let lease = redis::Script::new(LEASE_SCRIPT);
        let scripts = Scripts {
            write: &write,
            read: &read,
            lease: &lease,
        };
        let mut hinted: HashSet<String> = HashSet::new();
        let mut resync = true;
        loop {
            if self.shared.stop.load(Ordering::Acquire) {
                return;
            }
            let poll = self.shared.config.poll_interval;
            let wait = match (self.con.is_some(), self.polled) {
                (false, _) => self.retry_at.saturating_duration_since(Instant::now()),
                (true, Some(at)) => poll.saturating_sub(at.elapsed()),
                (true, None) => Duration::ZERO,
            };
            let mut first = match rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            while let Some(m) = first.take().or_else(|| rx.try_recv().ok()) {
                match m {
                    Msg::Wake => {}
                    Msg::Hint(name) => {
                        // Names come from anyone publishing on the channel: past a bound,
                        // a full read of every breaker replaces the list.
                        if hinted.len() < MAX_HINTS {
                            hinted.insert(name);
                        } else {
                            hinted.clear();
                            resync = true;
                        }
                    }
                    Msg::Resync => resync = true,
                }
            }
            if self.con.is_none() {
                if Instant::now() < self.retry_at {
                    continue;
                }
                match connect(&self.shared) {
                    Ok(con) => {
                        self.con = Some(con);
                        self.up();
                        resync = true;
                    }
                    Err(e) => {
                        self.down(&e);
                        continue;
                    }
                }
            }
            let due = resync || self.polled.is_none_or(|at| at.elapsed() >= poll);
            match self.round(&scripts, &hinted, due) {
                Ok(()) => {
                    hinted.clear();
                    if due {
                        resync = false;
                        self.polled = Some(Instant::now());
                    }
                }
                Err(e) => self.down(&e),
            }
        }
    }

    /// Tells every attached breaker's listeners that the connection came or went.
    fn tell_connection(&self, connected: bool) {
        let links: Vec<StoreLink> = lock(&self.shared.regs)
            .iter()
            .map(|r| {
                // A breaker whose keys failed is told again if they still do.
                r.failing.store(false, Ordering::Release);
                r.link.clone()
            })
            .collect();
        for link in links {
            link.connection(connected);
        }
    }

    fn up(&mut self) {
        if !self.shared.connected.swap(true, Ordering::AcqRel) {
            self.tell_connection(true);
        }
        self.backoff = Duration::from_millis(50);
        if self.down_since_logged {
            tracing::info!(target: "fluxgate", store = "redis", redis = %self.shared.addr, "fleet store reconnected; reconciling with the fleet's state");
        }
        self.down_since_logged = false;
    }

    fn down(&mut self, e: &redis::RedisError) {
        self.con = None;
        self.polled = None;
        if self.shared.connected.swap(false, Ordering::AcqRel) {
            self.tell_connection(false);
        }
        if !self.down_since_logged {
            tracing::warn!(target: "fluxgate", store = "redis", redis = %self.shared.addr, error = %e, "fleet store unreachable; breakers work on local state until it is back");
            self.down_since_logged = true;
        }
        self.retry_at = Instant::now() + self.backoff;
        self.backoff = (self.backoff * 2).min(self.shared.config.max_backoff);
    }

    /// One pass over the attached breakers: pending changes, lease requests, and reads
    /// (all of them when `all`, else the hinted names and the breakers not joined yet).
    fn round(
        &mut self,
        s: &Scripts<'_>,
        hinted: &HashSet<String>,
        all: bool,
    ) -> redis::RedisResult<()> {
        let regs: Vec<Arc<Reg>> = {
            let mut regs = lock(&self.shared.regs);
            regs.retain(|r| r.link.is_alive());
            regs.iter()
                .filter(|r| r.ready.load(Ordering::Acquire))
                .cloned()
                .collect()
        };
        let Some(con) = self.con.as_mut() else {
            return Ok(());
        };
        let cfg = &self.shared.config;
        let ctx = Ctx {
            cfg,
            instance: &self.shared.instance,
            channel: format!("{}:changes", cfg.prefix),
        };
        for reg in regs {
            match sync(&ctx, s, con, &reg, hinted, all) {
                Ok(()) => {
                    if reg.failing.swap(false, Ordering::AcqRel) {
                        tracing::info!(target: "fluxgate", store = "redis", redis = %self.shared.addr, circuit = %fluxgate_core::escaped(&reg.name), "fleet store syncs this breaker again");
                        reg.link.connection(true);
                    }
                }
                // The connection is gone: every breaker waits for the reconnection.
                Err(e) if connection_lost(&e) => return Err(e),
                // Something about this breaker's own keys (a value or a key type that
                // something else wrote, a script error): the others go on.
                Err(e) => {
                    if !reg.failing.swap(true, Ordering::AcqRel) {
                        tracing::warn!(target: "fluxgate", store = "redis", redis = %self.shared.addr, circuit = %fluxgate_core::escaped(&reg.name), error = %e, "fleet store cannot sync this breaker; it works on local state");
                        reg.link.connection(false);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Whether `e` means the connection is unusable (every breaker must wait for a new
/// one), rather than an answer about one breaker's keys.
fn connection_lost(e: &redis::RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_connection_refusal()
}

/// Syncs one breaker: its pending change, its lease request, and a read when it is due
/// (`all`, or its name was hinted).
fn sync(
    ctx: &Ctx<'_>,
    s: &Scripts<'_>,
    con: &mut redis::Connection,
    reg: &Reg,
    hinted: &HashSet<String>,
    all: bool,
) -> redis::RedisResult<()> {
    let cfg = ctx.cfg;
    let mut w = lock(&reg.work);
    let change = lock(&reg.pending).take();
    let probe = match reg.probe.swap(0, Ordering::AcqRel) {
        0 => None,
        asked => Some(asked - 1),
    };
    if let Some(c) = change {
        w.unsent = Some(c);
        w.holding = false;
    }
    if probe.is_some() {
        w.want = probe;
    }
    let key = format!("{}:{{{}}}", cfg.prefix, reg.name);
    let lease_key = format!("{key}:probes");
    if !w.joined {
        // A restarted instance takes the fleet's state before writing its own.
        let reply: Reply = s.read.key(&key).arg(ms(cfg.key_ttl)).invoke(con)?;
        adopt(reg, &mut w, &reply, false);
        w.joined = true;
    }
    if let Some(c) = w.unsent {
        let base = c.base.max(w.own);
        let reply = ctx.write(s, con, &key, &lease_key, &reg.name, &c, base)?;
        w.unsent = None;
        if reply.0 == 1 {
            w.own = reply.1;
            w.told = w.told.max(reply.1);
            if let Some(shared) = shared_of(&reply) {
                reg.link.written(&c, shared);
            }
        } else {
            adopt(reg, &mut w, &reply, true);
        }
    }
    if let Some(epoch) = w.want {
        let due = w.tried.is_none_or(|t| t.elapsed() >= cfg.poll_interval);
        if due && cfg.probes > 0 {
            w.tried = Some(Instant::now());
            let got = ctx.lease(s, con, &lease_key)?;
            w.want = None;
            if got {
                w.holding = true;
                reg.link.grant_probe(epoch);
            }
        }
    }
    if all || hinted.contains(&reg.name) {
        let reply: Reply = s.read.key(&key).arg(ms(cfg.key_ttl)).invoke(con)?;
        if reply.1 == 0 && w.told > 0 {
            // Redis lost the fleet's state (restarted empty, or the key expired):
            // an instance that is not closed seeds it again.
            w.told = 0;
            w.own = 0;
            if let Some(local) = reg.link.current().filter(|l| l.state != State::Closed) {
                let c = Change::new(
                    local.state,
                    local.state,
                    local.reopens,
                    local.remaining,
                    0,
                    false,
                    0,
                );
                let reply = ctx.write(s, con, &key, &lease_key, &reg.name, &c, 0)?;
                if reply.0 == 1 {
                    w.own = reply.1;
                    w.told = reply.1;
                    // The same state, under the fleet's new version.
                    if let Some(shared) = shared_of(&reply) {
                        reg.link.apply(shared);
                    }
                } else {
                    adopt(reg, &mut w, &reply, true);
                }
            }
        } else {
            adopt(reg, &mut w, &reply, false);
        }
        if all && w.holding {
            if reg
                .link
                .current()
                .is_some_and(|l| l.state == State::HalfOpen)
            {
                ctx.lease(s, con, &lease_key)?;
            } else {
                w.holding = false;
            }
        }
    }
    Ok(())
}

struct Scripts<'a> {
    write: &'a redis::Script,
    read: &'a redis::Script,
    lease: &'a redis::Script,
}

struct Ctx<'a> {
    cfg: &'a RedisStoreBuilder,
    instance: &'a str,
    channel: String,
}

impl Ctx<'_> {
    /// Takes or renews this instance's probe lease; whether it holds one.
    fn lease(
        &self,
        s: &Scripts<'_>,
        con: &mut redis::Connection,
        lease_key: &str,
    ) -> redis::RedisResult<bool> {
        let got: i64 = s
            .lease
            .key(lease_key)
            .arg(self.instance)
            .arg(self.cfg.probes)
            .arg(ms(self.cfg.lease_ttl))
            .invoke(con)?;
        Ok(got == 1)
    }

    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        s: &Scripts<'_>,
        con: &mut redis::Connection,
        key: &str,
        lease_key: &str,
        name: &str,
        c: &Change,
        base: u64,
    ) -> redis::RedisResult<Reply> {
        let wait = c
            .wait
            .map_or(-1, |w| i64::try_from(w.as_millis()).unwrap_or(i64::MAX));
        s.write
            .key(key)
            .key(lease_key)
            .arg(base)
            .arg(c.to.as_str())
            .arg(c.reopens)
            .arg(wait)
            .arg(if c.manual { 1 } else { 0 })
            .arg(ms(self.cfg.key_ttl))
            .arg(&self.channel)
            .arg(name)
            .invoke(con)
    }
}

/// Brings the breaker to the fleet's state of `reply` if it is newer than what it was
/// told (or always, after it lost a write: it may have moved on since).
fn adopt(reg: &Reg, w: &mut Work, reply: &Reply, lost: bool) {
    if reply.1 == 0 || (!lost && reply.1 <= w.told) {
        return;
    }
    if let Some(shared) = shared_of(reply) {
        w.told = reply.1;
        reg.link.apply(shared);
    }
}

/// The fleet's state of a script's reply (`None` for no state or an unknown name).
fn shared_of(reply: &Reply) -> Option<SharedState> {
    let &(_, version, ref state, reopens, deadline, now) = reply;
    let state = State::from_name(state).filter(|_| version > 0)?;
    let remaining = u64::try_from(deadline)
        .ok()
        .map(|d| Duration::from_millis(d.saturating_sub(u64::try_from(now).unwrap_or(0))));
    Some(SharedState::new(state, reopens, remaining).with_version(version))
}
