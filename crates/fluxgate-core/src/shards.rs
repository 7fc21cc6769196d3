//! A map split into independently locked shards, shared by the registry and keyed
//! breakers: a lookup takes one shard's read lock, never a lock over the whole map, so
//! threads working on different names do not queue behind each other, and an insertion
//! or an eviction blocks one shard at a time. Keys are hashed with foldhash, seeded at
//! random per map (keys may come from outside, e.g. a request's authority).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

use foldhash::quality::RandomState;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Shards per map: a power of two, several per core of a large machine.
const SHARD_BITS: u32 = 6;
const SHARDS: usize = 1 << SHARD_BITS;

pub(crate) struct Sharded<K, V> {
    hasher: RandomState,
    shards: Box<[RwLock<HashMap<K, V, RandomState>>]>,
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    pub(crate) fn new() -> Self {
        let hasher = RandomState::default();
        Sharded {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(HashMap::with_hasher(hasher.clone())))
                .collect(),
            hasher,
        }
    }

    /// The shard that holds `key`. The shard's own map hashes the key with the same
    /// hasher, so the shard is taken from a remix of the hash: taking its low bits would
    /// leave every key of a shard with the same low bits, the bits a hash table uses to
    /// place its entries.
    #[inline]
    pub(crate) fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        let h = self.hasher.hash_one(key);
        let mixed = (h ^ (h >> 31)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        (mixed >> (64 - SHARD_BITS)) as usize
    }

    /// Reads one shard (a poisoned lock still guards a consistent map: no code that
    /// runs under it can leave a map half-written).
    #[inline]
    pub(crate) fn read(&self, shard: usize) -> RwLockReadGuard<'_, HashMap<K, V, RandomState>> {
        self.shards[shard]
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn write(&self, shard: usize) -> RwLockWriteGuard<'_, HashMap<K, V, RandomState>> {
        self.shards[shard]
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn shards(&self) -> usize {
        SHARDS
    }

    /// A clone of the value of `key`, if present.
    #[inline]
    pub(crate) fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        self.read(self.shard_of(key)).get(key).cloned()
    }

    /// Every entry, shard by shard (not one atomic snapshot of the whole map).
    pub(crate) fn collect<T>(&self, mut f: impl FnMut(&K, &V) -> T) -> Vec<T> {
        let mut out = Vec::new();
        for i in 0..SHARDS {
            out.extend(self.read(i).iter().map(|(k, v)| f(k, v)));
        }
        out
    }
}
