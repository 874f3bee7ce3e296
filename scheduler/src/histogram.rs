//! Lock-free latency histograms: fixed bucket bounds, one relaxed atomic
//! counter per bucket, so recording never takes a lock or allocates.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets in microseconds; a last, unbounded bucket
/// (`+Inf`) follows them.
pub const BUCKET_BOUNDS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000,
];

const BUCKETS: usize = BUCKET_BOUNDS_US.len() + 1;

/// Whether latency histograms are recorded in this process (on unless the
/// server is started with `--metrics-config histogram_latencies=false`).
static ENABLED: AtomicBool = AtomicBool::new(true);

/// Turns recording of latency histograms on or off for the whole process.
pub fn set_latency_histograms(enabled: bool) {
    ENABLED.store(enabled, Ordering::Relaxed);
}

/// Whether latency histograms are being recorded.
pub fn latency_histograms() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Counts of durations by bucket, with their sum.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

impl Histogram {
    /// Counts one duration.
    pub fn record(&self, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let index = BUCKET_BOUNDS_US.partition_point(|&bound| bound < us);
        self.buckets[index].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// Reads the counters.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let buckets = std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed));
        HistogramSnapshot {
            count: buckets.iter().sum(),
            sum_us: self.sum_us.load(Ordering::Relaxed),
            buckets,
        }
    }
}

/// A copy of a [`Histogram`]'s counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Durations counted.
    pub count: u64,
    /// Their sum in microseconds.
    pub sum_us: u64,
    /// Per-bucket (not cumulative) counts; the last is `+Inf`.
    pub buckets: [u64; BUCKETS],
}

impl HistogramSnapshot {
    /// `(upper bound in µs, cumulative count)` per bounded bucket, as
    /// Prometheus' `le` buckets; the `+Inf` bucket is [`Self::count`].
    pub fn cumulative(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        BUCKET_BOUNDS_US
            .iter()
            .zip(&self.buckets)
            .scan(0u64, |total, (&bound, &n)| {
                *total += n;
                Some((bound, *total))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        let h = Histogram::default();
        for us in [0, 50, 51, 1_000, 7_000_000] {
            h.record(Duration::from_micros(us));
        }
        let snap = h.snapshot();
        assert_eq!(snap.count, 5);
        assert_eq!(snap.sum_us, 7_001_101);
        let cumulative: Vec<(u64, u64)> = snap.cumulative().take(5).collect();
        assert_eq!(
            cumulative,
            vec![(50, 2), (100, 3), (250, 3), (500, 3), (1_000, 4)]
        );
        assert_eq!(snap.cumulative().last(), Some((5_000_000, 4)));
        assert_eq!(snap.buckets[BUCKETS - 1], 1);
    }
}
