//! A map split into independently locked shards, shared by the registry and keyed
//! breakers: a lookup takes one shard's read lock, never a lock over the whole map, so
//! threads working on different names do not queue behind each other, and an insertion
//! or an eviction blocks one shard at a time.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hash};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Shards per map: a power of two, several per core of a large machine.
const SHARDS: usize = 64;

pub(crate) struct Sharded<K, V> {
    hasher: RandomState,
    shards: Box<[RwLock<HashMap<K, V, RandomState>>]>,
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    pub(crate) fn new() -> Self {
        let hasher = RandomState::new();
        Sharded {
            shards: (0..SHARDS)
                .map(|_| RwLock::new(HashMap::with_hasher(hasher.clone())))
                .collect(),
            hasher,
        }
    }

    /// The shard that holds `key`.
    #[inline]
    pub(crate) fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        (self.hasher.hash_one(key) as usize) & (SHARDS - 1)
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
