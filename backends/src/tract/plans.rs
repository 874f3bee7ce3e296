//! A small least-recently-used cache of execution plans, one per tuple of
//! concrete input shapes.
//!
//! tract runs a model fastest, and runs more models at all, when every input
//! shape is known before the model is optimized. Each distinct shape tuple
//! therefore gets its own plan, built on first use; the cache keeps the most
//! recently used ones and drops the oldest beyond its capacity.

/// Counters describing how a cache has been used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PlanStats {
    /// Plans held now.
    pub cached: usize,
    /// Plans built since the instance was loaded (evicted ones included).
    pub built: u64,
    /// Requests served by a plan that was already built.
    pub hits: u64,
    /// The most plans held at once.
    pub capacity: usize,
}

struct Entry<K, V> {
    key: K,
    value: V,
    last_used: u64,
}

/// Least-recently-used map with a fixed capacity.
pub(super) struct PlanCache<K, V> {
    entries: Vec<Entry<K, V>>,
    capacity: usize,
    clock: u64,
    built: u64,
    hits: u64,
}

impl<K: PartialEq, V> PlanCache<K, V> {
    /// An empty cache holding at most `capacity` plans (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Vec::new(),
            capacity: capacity.max(1),
            clock: 0,
            built: 0,
            hits: 0,
        }
    }

    /// The plan for `key`, built with `build` when there is none; building
    /// may evict the least recently used plan. A failed build caches nothing.
    pub fn get_or_build<E>(
        &mut self,
        key: &K,
        build: impl FnOnce() -> Result<V, E>,
    ) -> Result<&mut V, E>
    where
        K: Clone,
    {
        self.clock += 1;
        let index = match self.entries.iter().position(|e| &e.key == key) {
            Some(index) => {
                self.hits += 1;
                index
            }
            None => {
                let value = build()?;
                self.built += 1;
                let entry = Entry {
                    key: key.clone(),
                    value,
                    last_used: self.clock,
                };
                if self.entries.len() < self.capacity {
                    self.entries.push(entry);
                    self.entries.len() - 1
                } else {
                    let oldest = self
                        .entries
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, e)| e.last_used)
                        .map_or(0, |(i, _)| i);
                    self.entries[oldest] = entry;
                    oldest
                }
            }
        };
        let entry = &mut self.entries[index];
        entry.last_used = self.clock;
        Ok(&mut entry.value)
    }

    /// Whether a plan for `key` is held.
    #[cfg(test)]
    pub fn contains(&self, key: &K) -> bool {
        self.entries.iter().any(|e| &e.key == key)
    }

    pub fn stats(&self) -> PlanStats {
        PlanStats {
            cached: self.entries.len(),
            built: self.built,
            hits: self.hits,
            capacity: self.capacity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(cache: &mut PlanCache<u32, String>, key: u32) -> String {
        cache
            .get_or_build(&key, || Ok::<_, ()>(format!("plan {key}")))
            .unwrap()
            .clone()
    }

    #[test]
    fn reuses_and_evicts_the_least_recently_used() {
        let mut cache = PlanCache::new(2);
        assert_eq!(get(&mut cache, 1), "plan 1");
        assert_eq!(get(&mut cache, 2), "plan 2");
        assert_eq!(get(&mut cache, 1), "plan 1");
        assert_eq!(cache.stats().hits, 1);
        get(&mut cache, 3);
        assert!(cache.contains(&1));
        assert!(!cache.contains(&2), "2 was the least recently used");
        assert!(cache.contains(&3));
        let stats = cache.stats();
        assert_eq!(
            (stats.cached, stats.built, stats.hits, stats.capacity),
            (2, 3, 1, 2)
        );
    }

    #[test]
    fn failed_builds_cache_nothing() {
        let mut cache: PlanCache<u32, String> = PlanCache::new(4);
        let err = cache.get_or_build(&7, || Err("no")).unwrap_err();
        assert_eq!(err, "no");
        assert_eq!(cache.stats().cached, 0);
        assert_eq!(cache.stats().built, 0);
    }
}
