//! The bounded caches of rendered plots and serialised posteriors: moka's
//! compute-once cache, with each lookup told apart as a hit or a miss for the
//! cache metrics.
//!
//! Both are pure functions of their key (model, counts, version,
//! configuration, size, mass, format), so a value never goes stale: it only
//! gets evicted, least recently used first. What matters is that a burst of
//! identical requests does the work once: moka's `try_get_with` lets the
//! first caller compute while the others wait for its value.

use std::future::Future;
use std::hash::Hash;

use moka::future::Cache as Moka;
use moka::policy::EvictionPolicy;

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

/// A bounded map from keys to values computed at most once at a time.
pub struct Cache<K, V> {
    capacity: usize,
    /// `None` when the capacity is 0: caching is off and every lookup computes.
    entries: Option<Moka<K, V>>,
}

impl<K, V> std::fmt::Debug for Cache<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    // Not moka's own `Debug`, which lists every entry (whole images here).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &self.capacity)
            .field(
                "entries",
                &self.entries.as_ref().map_or(0, Moka::entry_count),
            )
            .finish()
    }
}

impl<K, V> Cache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache of at most `capacity` entries; 0 disables caching (every lookup computes).
    pub fn new(capacity: usize) -> Self {
        let entries = (capacity > 0).then(|| {
            Moka::builder()
                .max_capacity(capacity as u64)
                .eviction_policy(EvictionPolicy::lru())
                .build()
        });
        Self { capacity, entries }
    }

    /// The value for `key`, computed by `compute` if absent. Concurrent callers
    /// with the same key share one computation. A failed computation is not
    /// cached, and its error goes to the caller that computed; a caller that
    /// was waiting for it computes in turn.
    pub async fn get_or_try_insert<E, F, Fut>(&self, key: K, compute: F) -> Result<(V, Lookup), E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        let Some(entries) = &self.entries else {
            return compute().await.map(|v| (v, Lookup::Miss));
        };
        if let Some(value) = entries.get(&key).await {
            return Ok((value, Lookup::Hit));
        }
        loop {
            // moka hands a failure to the waiting callers as a shared
            // `Arc<E>`; the errors here carry causes that cannot be cloned,
            // so each caller keeps its own and moka only learns that it failed.
            let mut failure = None;
            let computed = entries
                .try_get_with(key.clone(), async {
                    compute().await.map_err(|e| failure = Some(e))
                })
                .await;
            match (computed, failure) {
                (Ok(value), _) => return Ok((value, Lookup::Miss)),
                (Err(_), Some(error)) => return Err(error),
                // Another caller's computation failed while this one waited:
                // try again, computing this time unless another caller is.
                (Err(_), None) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

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
                    .get_or_try_insert(1, || {
                        let (calls, gate) = (calls.clone(), gate.clone());
                        async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            // Hold the computation open until every task is waiting on it.
                            gate.notified().await;
                            Ok::<_, ()>(42)
                        }
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
        let entries = cache.entries.clone().unwrap();
        let get = |k: u32| {
            let (cache, entries) = (&cache, entries.clone());
            async move {
                let found = cache
                    .get_or_try_insert(k, || async move { Ok::<_, ()>(k) })
                    .await;
                // moka applies recency and evicts in batches of pending
                // work; apply them now so each step sees the one before.
                entries.run_pending_tasks().await;
                found
            }
        };
        assert_eq!(get(1).await.unwrap().1, Lookup::Miss);
        assert_eq!(get(2).await.unwrap().1, Lookup::Miss);
        assert_eq!(get(1).await.unwrap().1, Lookup::Hit);
        assert_eq!(get(3).await.unwrap().1, Lookup::Miss); // evicts 2
        assert_eq!(get(1).await.unwrap().1, Lookup::Hit);
        assert_eq!(get(2).await.unwrap().1, Lookup::Miss);
        assert_eq!(entries.entry_count(), 2);
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
