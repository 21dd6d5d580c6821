//! A small bounded cache that computes each value once, even under a burst.
//!
//! Rendered plots and serialised posteriors are pure functions of their key
//! (model, counts, version, configuration, size, mass, format), so a value
//! never goes stale: it only gets evicted. What matters is that a burst of
//! identical requests does the work once: the first caller computes while the
//! others wait on the same cell. Eviction drops the least recently used entry;
//! the caches hold a few hundred entries, so a linear scan for it is cheaper
//! than keeping an ordered structure up to date on every hit.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

/// Whether a lookup found the value or had to compute it (or wait for another
/// caller computing it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss,
}

impl Lookup {
    pub fn as_str(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Miss => "miss",
        }
    }
}

struct Entry<V> {
    cell: Arc<OnceCell<V>>,
    last_used: AtomicU64,
}

/// A bounded map from keys to values computed at most once at a time.
pub struct Cache<K, V> {
    capacity: usize,
    clock: AtomicU64,
    entries: Mutex<HashMap<K, Entry<V>>>,
}

impl<K: Hash + Eq + Clone, V: Clone> std::fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    /// A cache of at most `capacity` entries; 0 disables caching (every lookup computes).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            clock: AtomicU64::new(0),
            entries: Mutex::new(HashMap::with_capacity(capacity.min(4096))),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value for `key`, computed by `compute` if absent. Concurrent callers
    /// with the same key share one computation. A failed computation is not
    /// cached: the next caller tries again.
    pub async fn get_or_try_insert<E, F, Fut>(&self, key: K, compute: F) -> Result<(V, Lookup), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        if self.capacity == 0 {
            return compute().await.map(|v| (v, Lookup::Miss));
        }
        let cell = self.cell(&key);
        if let Some(value) = cell.get() {
            return Ok((value.clone(), Lookup::Hit));
        }
        let value = cell.get_or_try_init(compute).await?.clone();
        Ok((value, Lookup::Miss))
    }

    /// The cell of `key`, created (and the least recently used entry evicted) if absent.
    fn cell(&self, key: &K) -> Arc<OnceCell<V>> {
        let now = self.clock.fetch_add(1, Ordering::Relaxed);
        // A poisoned lock only means another thread panicked while holding
        // it; the map itself is still consistent, so keep using it.
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = entries.get(key) {
            entry.last_used.store(now, Ordering::Relaxed);
            return entry.cell.clone();
        }
        if entries.len() >= self.capacity {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.last_used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        let cell = Arc::new(OnceCell::new());
        entries.insert(
            key.clone(),
            Entry {
                cell: cell.clone(),
                last_used: AtomicU64::new(now),
            },
        );
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn a_burst_of_identical_lookups_computes_once() {
        let cache = Arc::new(Cache::<u32, u32>::new(4));
        let calls = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cache, calls, gate) = (cache.clone(), calls.clone(), gate.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_try_insert(1, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        // Hold the computation open until every task is waiting on it.
                        gate.notified().await;
                        Ok::<_, ()>(42)
                    })
                    .await
            }));
        }
        // Let the spawned tasks reach the cell, then release the computation.
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap().0, 42);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn the_least_recently_used_entry_is_evicted() {
        let cache = Cache::<u32, u32>::new(2);
        let get = |k: u32| cache.get_or_try_insert(k, move || async move { Ok::<_, ()>(k) });
        assert_eq!(get(1).await.unwrap().1, Lookup::Miss);
        assert_eq!(get(2).await.unwrap().1, Lookup::Miss);
        assert_eq!(get(1).await.unwrap().1, Lookup::Hit);
        assert_eq!(get(3).await.unwrap().1, Lookup::Miss); // evicts 2
        assert_eq!(get(1).await.unwrap().1, Lookup::Hit);
        assert_eq!(get(2).await.unwrap().1, Lookup::Miss);
        assert_eq!(cache.len(), 2);
    }

    #[tokio::test]
    async fn a_failure_is_not_cached() {
        let cache = Cache::<u32, u32>::new(2);
        let err = cache
            .get_or_try_insert(1, || async { Err::<u32, _>("boom") })
            .await;
        assert_eq!(err, Err("boom"));
        let ok = cache
            .get_or_try_insert(1, || async { Ok::<_, &str>(7) })
            .await;
        assert_eq!(ok, Ok((7, Lookup::Miss)));
    }
}
