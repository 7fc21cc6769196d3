//! One breaker per key: [`Keyed`].
//!
//! A client that talks to many hosts (or tenants, or shards) needs one breaker per host:
//! one failing host must not open the circuit for the healthy ones. The keys are often
//! not known in advance and may come from outside (the authority of a request), so their
//! number must be bounded, and the bound must not cost the protection it exists for.
//!
//! ```
//! use fluxgate_core::keyed::Keyed;
//! use fluxgate_core::trippers::FailureStreak;
//! use fluxgate_core::State;
//!
//! let hosts: Keyed<String> = Keyed::builder("upstream:")
//!     .template(|b| b.tripper(FailureStreak::new(3)))
//!     .max_keys(10_000)
//!     .build()?;
//!
//! for _ in 0..3 {
//!     let _ = hosts.get("db-1.internal").call(|| Err::<(), _>(std::io::Error::other("503")));
//! }
//! assert_eq!(hosts.get("db-1.internal").state(), State::Open);
//! assert_eq!(hosts.get("db-2.internal").state(), State::Closed);
//! assert_eq!(hosts.get("db-1.internal").name(), "upstream:db-1.internal");
//! # Ok::<(), fluxgate_core::ConfigError>(())
//! ```
//!
//! ## The bound and the eviction rule
//!
//! At most `max_keys` breakers exist. When a new key finds the map full, idle breakers
//! are evicted, a batch at a time (a sixteenth of `max_keys`), by a *clock* (second
//! chance) sweep, an approximation of least-recently-used: a hand moves over the map's
//! shards, each turn of the hand begins a new *era*, each lookup marks its entry as used
//! in the current era, and an entry is idle when a full turn of the hand went by without
//! a lookup. No clock is read on the lookup path (the era is a counter, and a lookup
//! writes it only when it changed): an idle key is one the traffic has not touched while
//! the map was turned over once, whatever the wall time.
//!
//! The lookup that builds a key does not count as a use: a key seen once is idle as soon
//! as the hand has turned once more, while a key the traffic came back to is kept for a
//! full turn after its last lookup. A flood of one-off keys therefore evicts one-off keys
//! first, not the keys that are in use (the sweep resists scans, as 2Q and CLOCK-Pro do).
//!
//! A breaker is evicted only if **all** of these hold:
//! - it is `closed` (an `open`, `half_open`, `forced_open`, `metrics_only` or `disabled`
//!   breaker is never evicted: forgetting a failing host would let traffic hit it again);
//! - nobody holds a handle to it (no call in flight, nobody keeping it): decided under the
//!   lock of its shard, which is also the only way to get a new handle, so no call can
//!   race the eviction and no outcome is lost;
//! - it has no signal waiting for its listeners;
//! - it is idle.
//!
//! Evicted breakers are retired and their listeners get `on_detach(name)`: the Prometheus
//! listener drops their series, so the exposition stays bounded too.
//!
//! **When nothing can be evicted** (every breaker is busy or not closed — typically a
//! wide outage), new keys are served by one shared **overflow breaker** (named
//! `"{prefix}(overflow)"` by default), built with the same template. It keeps protecting:
//! new keys that fail open it together, so a flood of new failing hosts is still cut off,
//! while no failing host already tracked loses its breaker. Rejecting new keys outright
//! would deny healthy hosts; a pass-through would protect nobody. The next sweep is
//! attempted after a sixteenth of `max_keys` more overflow lookups, so a flood cannot make
//! every lookup scan the map. [`Keyed::overflowed`] counts these lookups.
//!
//! Breaker names are what listeners key their state by (metric series, Slack threads), so
//! two live breakers must not share one: the naming closure must give distinct keys
//! distinct names, and a key whose name is the overflow breaker's (the key `"(overflow)"`
//! with the default naming) is served by the overflow breaker.
//!
//! A panic in the naming closure, the template or the key's own `Hash`/`Eq` reaches the
//! caller of [`Keyed::get`] and costs nothing else: the key gets no breaker, its place in
//! the bound is given back, and a breaker already built is detached from its listeners.
//!
//! ## Handles
//!
//! [`Keyed::get`] returns a handle (a clone); use it for the call and drop it. A handle
//! kept for long pins its key (it cannot be evicted while held). A handle held on a
//! breaker that [`Keyed::remove`] took out sees it retired, as with
//! [`Registry::remove`](crate::registry::Registry::remove).

use std::borrow::Borrow;
use std::fmt;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::builder::{Builder, Face};
use crate::listeners::Listener;
use crate::registry::{Configure, drain_signals, retire};
use crate::shards::Sharded;
use crate::{CircuitBreaker, ConfigError, Info, State};

type Naming<K> = Arc<dyn Fn(&K) -> String + Send + Sync + 'static>;

/// One breaker per key, bounded, evicting only idle closed breakers (see the
/// [module documentation](self)). Cheap to clone: clones share the breakers.
///
/// ```
/// use fluxgate_core::keyed::Keyed;
/// let tenants: Keyed<u64> = Keyed::builder("tenant-").build()?;
/// assert_eq!(tenants.get(&42).name(), "tenant-42");
/// assert_eq!(tenants.len(), 1);
/// # Ok::<(), fluxgate_core::ConfigError>(())
/// ```
pub struct Keyed<K, F = CircuitBreaker> {
    inner: Arc<Inner<K, F>>,
}

struct Entry<F> {
    breaker: F,
    /// The era of the last lookup.
    used: AtomicU64,
}

struct Inner<K, F> {
    map: Sharded<K, Entry<F>>,
    naming: Naming<K>,
    template: Configure<F>,
    listeners: Vec<Arc<dyn Listener>>,
    max_keys: usize,
    len: AtomicUsize,
    era: AtomicU64,
    overflow: F,
    /// Overflow lookups left before the next sweep after one that evicted nothing.
    backoff: AtomicUsize,
    /// The shard the next sweep starts at.
    hand: AtomicUsize,
    sweeping: Mutex<()>,
    evicted: AtomicU64,
    overflowed: AtomicU64,
}

impl<K, F> Clone for Keyed<K, F> {
    fn clone(&self) -> Self {
        Keyed {
            inner: self.inner.clone(),
        }
    }
}

impl<K, F: Face> fmt::Debug for Keyed<K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyed")
            .field("keys", &self.inner.len.load(Ordering::Relaxed))
            .field("max_keys", &self.inner.max_keys)
            .field("evicted", &self.inner.evicted.load(Ordering::Relaxed))
            .field("overflowed", &self.inner.overflowed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Configures a [`Keyed`] breaker.
///
/// ```
/// use fluxgate_core::keyed::Keyed;
/// let hosts: Keyed<String> = Keyed::builder("host:")
///     .max_keys(1000)
///     .naming(|host: &String| format!("upstream_{}", host.replace('.', "_")))
///     .build()?;
/// assert_eq!(hosts.get("a.b").name(), "upstream_a_b");
/// # Ok::<(), fluxgate_core::ConfigError>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct KeyedBuilder<K, F = CircuitBreaker> {
    prefix: String,
    naming: Naming<K>,
    overflow_name: Option<String>,
    template: Configure<F>,
    listeners: Vec<Arc<dyn Listener>>,
    max_keys: usize,
}

impl<K, F> fmt::Debug for KeyedBuilder<K, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBuilder")
            .field("prefix", &self.prefix)
            .field("max_keys", &self.max_keys)
            .field("listeners", &self.listeners.len())
            .finish_non_exhaustive()
    }
}

/// The default bound on the number of keys.
pub const DEFAULT_MAX_KEYS: usize = 10_000;

impl<K, F> Keyed<K, F>
where
    K: Hash + Eq + Clone + Send + Sync + fmt::Display + 'static,
    F: Face,
{
    /// Starts configuring; breakers are named `"{prefix}{key}"` unless
    /// [`naming`](KeyedBuilder::naming) says otherwise.
    ///
    /// ```
    /// let k: fluxgate_core::keyed::Keyed<String> = fluxgate_core::keyed::Keyed::builder("api:").build()?;
    /// assert_eq!(k.get("x").name(), "api:x");
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn builder(prefix: &str) -> KeyedBuilder<K, F> {
        let p = prefix.to_owned();
        KeyedBuilder {
            prefix: prefix.to_owned(),
            naming: Arc::new(move |k: &K| format!("{p}{k}")),
            overflow_name: None,
            template: Arc::new(|b| b),
            listeners: Vec::new(),
            max_keys: DEFAULT_MAX_KEYS,
        }
    }
}

impl<K, F> KeyedBuilder<K, F>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    F: Face,
{
    /// The configuration every key's breaker is built with, applied to
    /// `builder(name)`.
    ///
    /// ```
    /// let k: fluxgate_core::keyed::Keyed<String> = fluxgate_core::keyed::Keyed::builder("api:")
    ///     .template(|b| b.max_half_open_calls(1))
    ///     .build()?;
    /// # let _ = k;
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn template(
        mut self,
        configure: impl Fn(Builder<F>) -> Builder<F> + Send + Sync + 'static,
    ) -> Self {
        self.template = Arc::new(configure);
        self
    }

    /// How a key's breaker is named (the name listeners and metrics see).
    ///
    /// ```
    /// let k: fluxgate_core::keyed::Keyed<u32> = fluxgate_core::keyed::Keyed::builder("")
    ///     .naming(|shard: &u32| format!("shard_{shard:03}"))
    ///     .build()?;
    /// assert_eq!(k.get(&7).name(), "shard_007");
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn naming(mut self, naming: impl Fn(&K) -> String + Send + Sync + 'static) -> Self {
        self.naming = Arc::new(naming);
        self
    }

    /// The name of the overflow breaker (default `"{prefix}(overflow)"`).
    ///
    /// ```
    /// let k: fluxgate_core::keyed::Keyed<String> = fluxgate_core::keyed::Keyed::builder("api:")
    ///     .overflow_name("api_overflow")
    ///     .build()?;
    /// assert_eq!(k.overflow().name(), "api_overflow");
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn overflow_name(mut self, name: &str) -> Self {
        self.overflow_name = Some(name.to_owned());
        self
    }

    /// The most breakers at once, at least 1 (default [`DEFAULT_MAX_KEYS`]).
    ///
    /// ```
    /// let err = fluxgate_core::keyed::Keyed::<String>::builder("api:").max_keys(0).build().unwrap_err();
    /// assert_eq!(err.to_string(), "Keyed max_keys must be >= 1, got 0");
    /// ```
    pub fn max_keys(mut self, n: usize) -> Self {
        self.max_keys = n;
        self
    }

    /// A listener every key's breaker gets (attached through the builder: `on_attach`
    /// runs per breaker, `on_detach` when it is evicted or removed). Both run under the
    /// lock of the key's shard, so a key's `on_detach` comes before the `on_attach` of
    /// its next breaker; they must not call back into the same keyed breaker.
    ///
    /// ```
    /// let k: fluxgate_core::keyed::Keyed<String> = fluxgate_core::keyed::Keyed::builder("api:")
    ///     .listener(fluxgate_core::listeners::log::LogListener::new())
    ///     .build()?;
    /// # let _ = k;
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn listener(mut self, listener: impl Listener) -> Self {
        self.listeners.push(Arc::new(listener));
        self
    }

    /// Checks `max_keys` and the template (by building the overflow breaker, which every
    /// key's breaker resembles), and returns the keyed breaker.
    ///
    /// ```
    /// let err = fluxgate_core::keyed::Keyed::<String>::builder("api:")
    ///     .template(|b| b.max_half_open_calls(0))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.to_string(), "CircuitBreaker max_half_open_calls must be >= 1, got 0");
    /// ```
    pub fn build(self) -> Result<Keyed<K, F>, ConfigError> {
        if self.max_keys == 0 {
            return Err(ConfigError::new("Keyed", "max_keys", 0, ">= 1"));
        }
        let overflow_name = self
            .overflow_name
            .clone()
            .unwrap_or_else(|| format!("{}(overflow)", self.prefix));
        let overflow = build_one(&self.template, &self.listeners, &overflow_name)?;
        Ok(Keyed {
            inner: Arc::new(Inner {
                map: Sharded::new(),
                naming: self.naming,
                template: self.template,
                listeners: self.listeners,
                max_keys: self.max_keys,
                len: AtomicUsize::new(0),
                era: AtomicU64::new(1),
                overflow,
                backoff: AtomicUsize::new(0),
                hand: AtomicUsize::new(0),
                sweeping: Mutex::new(()),
                evicted: AtomicU64::new(0),
                overflowed: AtomicU64::new(0),
            }),
        })
    }
}

/// A new key's place in the bound while its breaker is built and inserted: given back,
/// and a breaker already built detached from its listeners, unless [`keep`](Self::keep)
/// is called. A panic in the naming closure, the template or the key's own `Hash`/`Eq`
/// thus leaks no place (else `max_keys` such panics would send every new key to the
/// overflow breaker for good).
struct Claim<'a, F: Face> {
    len: &'a AtomicUsize,
    built: Option<F>,
}

impl<F: Face> Claim<'_, F> {
    /// The entry is in the map: the place stays taken.
    fn keep(mut self) {
        self.built = None;
        std::mem::forget(self);
    }
}

impl<F: Face> Drop for Claim<'_, F> {
    fn drop(&mut self) {
        self.len.fetch_sub(1, Ordering::AcqRel);
        if let Some(breaker) = self.built.take() {
            retire(breaker.core(), false);
        }
    }
}

fn build_one<F: Face>(
    template: &Configure<F>,
    listeners: &[Arc<dyn Listener>],
    name: &str,
) -> Result<F, ConfigError> {
    let mut b = template(Builder::new(name));
    for l in listeners {
        b = b.listener(l.clone());
    }
    b.build()
}

impl<K, F> Keyed<K, F>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    F: Face,
{
    /// The breaker of `key`, built on first use; the overflow breaker when the map is
    /// full and nothing can be evicted (see the [module documentation](self)). Takes one
    /// shard's read lock when the key exists; never a lock over the whole map.
    ///
    /// ```
    /// let k: fluxgate_core::keyed::Keyed<String> = fluxgate_core::keyed::Keyed::builder("api:").build()?;
    /// let v = k.get("db-1").call(|| Ok::<_, std::io::Error>(5)).unwrap();
    /// assert_eq!(v, 5);
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> F
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let inner = &*self.inner;
        let shard = inner.map.shard_of(key);
        {
            let map = inner.map.read(shard);
            if let Some(entry) = map.get(key) {
                inner.touch(entry);
                return entry.breaker.clone();
            }
        }
        self.insert(shard, key)
    }

    #[inline(never)]
    fn insert<Q>(&self, shard: usize, key: &Q) -> F
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let inner = &*self.inner;
        for attempt in 0..2 {
            if inner.len.load(Ordering::Acquire) >= inner.max_keys
                && (attempt > 0 || !self.make_room())
            {
                inner.overflowed.fetch_add(1, Ordering::Relaxed);
                return inner.overflow.clone();
            }
            let mut map = inner.map.write(shard);
            if let Some(entry) = map.get(key) {
                inner.touch(entry);
                return entry.breaker.clone();
            }
            // Claim a place first: the bound holds even when many shards insert at once,
            // and the count never reads above it, not even for a moment.
            if inner
                .len
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                    (n < inner.max_keys).then_some(n + 1)
                })
                .is_err()
            {
                continue;
            }
            let mut claim = Claim {
                len: &inner.len,
                built: None,
            };
            let owned = key.to_owned();
            let name = (inner.naming)(&owned);
            if name == inner.overflow.name() {
                // A key named like the overflow breaker (a key `"(overflow)"`, maybe from
                // a request) is served by it: two breakers of one name would share their
                // listeners' series, and the key's eviction would drop the live overflow
                // breaker's.
                drop(claim);
                return inner.overflow.clone();
            }
            match build_one(&inner.template, &inner.listeners, &name) {
                Ok(breaker) => {
                    claim.built = Some(breaker.clone());
                    let entry = Entry {
                        breaker: breaker.clone(),
                        // One era behind: the lookup that builds a key does not count
                        // as a use, so a key seen once is idle after the hand's next turn.
                        used: AtomicU64::new(inner.era.load(Ordering::Relaxed) - 1),
                    };
                    map.insert(owned, entry);
                    claim.keep();
                    return breaker;
                }
                Err(error) => {
                    // The template was checked by `build()`; a template that fails for
                    // one name only is served by the overflow breaker.
                    drop(claim);
                    tracing::error!(target: "fluxgate", circuit = name, %error, "cannot build keyed breaker");
                    inner.overflowed.fetch_add(1, Ordering::Relaxed);
                    return inner.overflow.clone();
                }
            }
        }
        inner.overflowed.fetch_add(1, Ordering::Relaxed);
        inner.overflow.clone()
    }

    /// Runs a sweep (or waits for the one running) when the map is full; whether there is
    /// room now.
    fn make_room(&self) -> bool {
        let inner = &*self.inner;
        let guard = match inner.sweeping.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::WouldBlock) => {
                let _wait = inner.sweeping.lock().unwrap_or_else(|p| p.into_inner());
                return inner.len.load(Ordering::Acquire) < inner.max_keys;
            }
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        };
        if inner.len.load(Ordering::Acquire) < inner.max_keys {
            return true;
        }
        // After a sweep that found nothing, wait for some overflow traffic before the
        // next one: a flood must not scan the map on every lookup.
        let left = inner.backoff.load(Ordering::Relaxed);
        if left > 0 {
            inner.backoff.store(left - 1, Ordering::Relaxed);
            return false;
        }
        let batch = (inner.max_keys / 16).max(1);
        // To the end of the turn under way, then two whole turns at most: by then every
        // entry not used since the sweep began is idle.
        let evicted = self.sweep(batch, self.to_turn() + 2 * inner.map.shards());
        if evicted == 0 {
            inner.backoff.store(batch, Ordering::Relaxed);
        }
        drop(guard);
        inner.len.load(Ordering::Acquire) < inner.max_keys
    }

    /// Moves the clock hand over at most `shards` shards, evicting up to `limit`
    /// evictable idle entries. A new era begins each time the hand starts a new turn; an
    /// entry is idle when it was last used two eras ago or earlier: the hand has passed
    /// it a full turn without a lookup touching it. Returns how many were evicted.
    fn sweep(&self, limit: usize, shards: usize) -> usize {
        let inner = &*self.inner;
        let total = inner.map.shards();
        let mut n = 0;
        let mut hand = inner.hand.load(Ordering::Relaxed);
        for _ in 0..shards {
            if n >= limit {
                break;
            }
            if hand == 0 {
                inner.era.fetch_add(1, Ordering::AcqRel);
            }
            let era = inner.era.load(Ordering::Acquire);
            let mut map = inner.map.write(hand);
            // Retired under the shard's lock, as `remove` does: a lookup that comes back
            // for an evicted key builds its new breaker only after the old one's
            // listeners let go of it (else they would drop the new one's series). An
            // evictable breaker has no signal waiting, so nothing here waits.
            map.retain(|_, entry| {
                if n >= limit
                    || entry.used.load(Ordering::Relaxed).saturating_add(2) > era
                    || !evictable(&entry.breaker)
                    || !retire(entry.breaker.core(), true)
                {
                    return true;
                }
                n += 1;
                false
            });
            drop(map);
            hand = (hand + 1) % total;
        }
        inner.hand.store(hand, Ordering::Relaxed);
        inner.len.fetch_sub(n, Ordering::AcqRel);
        inner.evicted.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Turns the clock hand once around the map, however full it is, evicting every
    /// idle breaker that may be evicted (closed, not held, no signal pending, not used
    /// since the turn before); returns how many. For a periodic clean-up: lookups sweep
    /// by themselves when the map is full.
    ///
    /// ```
    /// let k: fluxgate_core::keyed::Keyed<String> = fluxgate_core::keyed::Keyed::builder("api:").build()?;
    /// k.get("a");
    /// k.get("a");
    /// k.get("once");
    /// k.get("b").force_open();
    /// assert_eq!(k.evict_idle(), 1);  // "once" was seen once: it goes at the next turn
    /// assert_eq!(k.evict_idle(), 1);  // "a" was not used for a turn; "b" is not closed
    /// assert_eq!(k.keys(), ["b"]);
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn evict_idle(&self) -> usize {
        let _guard = self
            .inner
            .sweeping
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.sweep(usize::MAX, self.to_turn() + self.inner.map.shards())
    }

    /// Shards left before the hand starts a new turn (0 when it is at the start). An
    /// entry's idleness is told in whole turns, which begin at shard 0: a sweep that
    /// begins in the middle of a turn finishes it first (else the shards after the hand
    /// would be seen in one era fewer, and entries there idle for a whole turn kept).
    fn to_turn(&self) -> usize {
        let total = self.inner.map.shards();
        (total - self.inner.hand.load(Ordering::Relaxed)) % total
    }

    /// The breaker of `key` if it exists (never builds one, does not count as a use).
    ///
    /// ```
    /// let k: fluxgate_core::keyed::Keyed<String> = fluxgate_core::keyed::Keyed::builder("api:").build()?;
    /// assert!(k.peek("a").is_none());
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn peek<Q>(&self, key: &Q) -> Option<F>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.inner.map.shard_of(key);
        self.inner
            .map
            .read(shard)
            .get(key)
            .map(|e| e.breaker.clone())
    }

    /// Removes the breaker of `key` whatever its state (an explicit removal, unlike
    /// eviction); it is retired and its listeners get `on_detach`. Whether it existed.
    ///
    /// ```
    /// let k: fluxgate_core::keyed::Keyed<String> = fluxgate_core::keyed::Keyed::builder("api:").build()?;
    /// k.get("a").force_open();
    /// assert!(k.remove("a"));
    /// assert_eq!(k.get("a").state(), fluxgate_core::State::Closed); // a new breaker
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn remove<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if let Some(b) = self.peek(key) {
            drain_signals(b.core());
        }
        let shard = self.inner.map.shard_of(key);
        let mut map = self.inner.map.write(shard);
        let Some(entry) = map.remove(key) else {
            return false;
        };
        self.inner.len.fetch_sub(1, Ordering::AcqRel);
        // Under the shard's lock: the key's next breaker is attached only after this one
        // is detached (see `sweep`).
        retire(entry.breaker.core(), false);
        true
    }

    /// The shared breaker for new keys when the map is full and nothing can be evicted.
    ///
    /// ```
    /// let k: fluxgate_core::keyed::Keyed<String> = fluxgate_core::keyed::Keyed::builder("api:").build()?;
    /// assert_eq!(k.overflow().name(), "api:(overflow)");
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn overflow(&self) -> &F {
        &self.inner.overflow
    }

    /// The keys that have a breaker now (in no particular order).
    ///
    /// ```
    /// let k: fluxgate_core::keyed::Keyed<String> = fluxgate_core::keyed::Keyed::builder("api:").build()?;
    /// k.get("a");
    /// assert_eq!(k.keys(), ["a"]);
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn keys(&self) -> Vec<K> {
        self.inner.map.collect(|k, _| k.clone())
    }

    /// Every key with its breaker's `info()` (the overflow breaker is not included).
    ///
    /// ```
    /// let k: fluxgate_core::keyed::Keyed<String> = fluxgate_core::keyed::Keyed::builder("api:").build()?;
    /// k.get("a");
    /// assert_eq!(k.snapshot()[0].1.name, "api:a");
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn snapshot(&self) -> Vec<(K, Info)> {
        self.inner
            .map
            .collect(|k, e| (k.clone(), e.breaker.clone()))
            .into_iter()
            .map(|(k, b)| (k, b.core().info()))
            .collect()
    }

    /// How many keys have a breaker.
    ///
    /// ```
    /// let k: fluxgate_core::keyed::Keyed<String> = fluxgate_core::keyed::Keyed::builder("api:").build()?;
    /// assert_eq!(k.len(), 0);
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn len(&self) -> usize {
        self.inner.len.load(Ordering::Acquire)
    }

    /// Whether no key has a breaker.
    ///
    /// ```
    /// let k: fluxgate_core::keyed::Keyed<String> = fluxgate_core::keyed::Keyed::builder("api:").build()?;
    /// assert!(k.is_empty());
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bound on the number of keys.
    ///
    /// ```
    /// let k: fluxgate_core::keyed::Keyed<String> = fluxgate_core::keyed::Keyed::builder("api:").max_keys(5).build()?;
    /// assert_eq!(k.max_keys(), 5);
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn max_keys(&self) -> usize {
        self.inner.max_keys
    }

    /// Breakers evicted so far.
    ///
    /// ```
    /// let k: fluxgate_core::keyed::Keyed<String> = fluxgate_core::keyed::Keyed::builder("api:").build()?;
    /// assert_eq!(k.evicted(), 0);
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn evicted(&self) -> u64 {
        self.inner.evicted.load(Ordering::Relaxed)
    }

    /// Lookups served by the overflow breaker so far.
    ///
    /// ```
    /// let k: fluxgate_core::keyed::Keyed<String> = fluxgate_core::keyed::Keyed::builder("api:").build()?;
    /// assert_eq!(k.overflowed(), 0);
    /// # Ok::<(), fluxgate_core::ConfigError>(())
    /// ```
    pub fn overflowed(&self) -> u64 {
        self.inner.overflowed.load(Ordering::Relaxed)
    }
}

impl<K, F> Inner<K, F> {
    /// Marks `entry` as used in the current era; writes only when the era moved on, so
    /// a hot key does not bounce its cache line between cores on every call.
    #[inline]
    fn touch(&self, entry: &Entry<F>) {
        let era = self.era.load(Ordering::Relaxed);
        if entry.used.load(Ordering::Relaxed) != era {
            entry.used.store(era, Ordering::Relaxed);
        }
    }
}

/// Closed, held by nobody but the map, and with no signal on its way. Called under the
/// shard's write lock, the only place a new handle comes from, so "held by nobody" cannot
/// change before the entry is gone; a handle can only be cloned from one that exists.
fn evictable<F: Face>(breaker: &F) -> bool {
    let core = breaker.core();
    Arc::strong_count(core) == 1 && core.state() == State::Closed && core.pending_signals() == 0
}
