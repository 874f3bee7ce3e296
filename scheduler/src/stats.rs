//! Per-model statistics, updated with atomics by the instance workers and
//! read by the statistics endpoints. Field names follow Triton's
//! `ModelStatistics`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::histogram::{Histogram, HistogramSnapshot};

/// Why a request failed, with Triton's `reason` label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    /// Refused by the scheduler: queue full or queue timeout.
    Rejected,
    /// The client went away before the request ran.
    Canceled,
    /// The model's execution failed.
    Backend,
    /// Anything else, such as a request that failed validation.
    Other,
}

impl FailureReason {
    /// Every reason, in the order of [`FailureCounts`].
    pub const ALL: [FailureReason; 4] = [
        FailureReason::Rejected,
        FailureReason::Canceled,
        FailureReason::Backend,
        FailureReason::Other,
    ];

    /// Triton's label value for the reason.
    pub fn label(self) -> &'static str {
        match self {
            FailureReason::Rejected => "REJECTED",
            FailureReason::Canceled => "CANCELED",
            FailureReason::Backend => "BACKEND",
            FailureReason::Other => "OTHER",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Failed requests counted by [`FailureReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureCounts([u64; 4]);

impl FailureCounts {
    /// The count of one reason.
    pub fn get(&self, reason: FailureReason) -> u64 {
        self.0[reason.index()]
    }
}

/// A count and the total time it accumulated.
#[derive(Debug, Default)]
pub struct DurationStat {
    count: AtomicU64,
    ns: AtomicU64,
}

impl DurationStat {
    pub fn record(&self, elapsed: Duration) {
        self.record_many(1, elapsed);
    }

    fn record_many(&self, count: u64, elapsed: Duration) {
        self.count.fetch_add(count, Ordering::Relaxed);
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.ns.fetch_add(ns, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> DurationSnapshot {
        DurationSnapshot {
            count: self.count.load(Ordering::Relaxed),
            ns: self.ns.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DurationSnapshot {
    pub count: u64,
    pub ns: u64,
}

/// Time spent on one execution, split as Triton splits it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecutionTimes {
    pub compute_input: Duration,
    pub compute_infer: Duration,
    pub compute_output: Duration,
}

#[derive(Debug, Default)]
struct BatchStat {
    compute_input: DurationStat,
    compute_infer: DurationStat,
    compute_output: DurationStat,
}

/// Statistics of one model version.
#[derive(Debug)]
pub struct ModelStats {
    success: DurationStat,
    fail: DurationStat,
    queue: DurationStat,
    compute_input: DurationStat,
    compute_infer: DurationStat,
    compute_output: DurationStat,
    inference_count: AtomicU64,
    execution_count: AtomicU64,
    last_inference_ms: AtomicU64,
    abandoned: AtomicU64,
    rejected: AtomicU64,
    failures: [AtomicU64; 4],
    request_latency: Histogram,
    queue_latency: Histogram,
    /// Indexed by batch size; entry 0 is unused.
    batches: Vec<BatchStat>,
}

/// A consistent-enough copy of [`ModelStats`] for reporting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub success: DurationSnapshot,
    pub fail: DurationSnapshot,
    pub queue: DurationSnapshot,
    pub compute_input: DurationSnapshot,
    pub compute_infer: DurationSnapshot,
    pub compute_output: DurationSnapshot,
    pub inference_count: u64,
    pub execution_count: u64,
    /// Milliseconds since the epoch of the last inference; 0 if none yet.
    pub last_inference_ms: u64,
    /// Requests dropped before execution because their client went away.
    pub abandoned: u64,
    /// Requests refused because the queue was full.
    pub rejected: u64,
    /// Failures by reason; refusals and cancellations count here too.
    pub failures: FailureCounts,
    /// Latency of successful requests, arrival to answer.
    pub request_latency: HistogramSnapshot,
    /// Time successful requests spent queued.
    pub queue_latency: HistogramSnapshot,
    pub batch_stats: Vec<BatchSnapshot>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchSnapshot {
    pub batch_size: u64,
    pub compute_input: DurationSnapshot,
    pub compute_infer: DurationSnapshot,
    pub compute_output: DurationSnapshot,
}

impl ModelStats {
    /// Statistics for a model whose executions hold at most
    /// `max_batch_size` rows (use 1 for models that do not batch).
    pub fn new(max_batch_size: usize) -> Self {
        Self {
            success: DurationStat::default(),
            fail: DurationStat::default(),
            queue: DurationStat::default(),
            compute_input: DurationStat::default(),
            compute_infer: DurationStat::default(),
            compute_output: DurationStat::default(),
            inference_count: AtomicU64::new(0),
            execution_count: AtomicU64::new(0),
            last_inference_ms: AtomicU64::new(0),
            abandoned: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            failures: Default::default(),
            request_latency: Histogram::default(),
            queue_latency: Histogram::default(),
            batches: (0..=max_batch_size.max(1))
                .map(|_| BatchStat::default())
                .collect(),
        }
    }

    /// A request that failed after `elapsed` (at validation or execution).
    pub fn record_failure(&self, reason: FailureReason, elapsed: Duration) {
        self.fail.record(elapsed);
        self.count_failure(reason);
    }

    fn count_failure(&self, reason: FailureReason) {
        self.failures[reason.index()].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_abandoned(&self) {
        self.abandoned.fetch_add(1, Ordering::Relaxed);
        self.count_failure(FailureReason::Canceled);
    }

    pub(crate) fn record_rejected(&self) {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        self.count_failure(FailureReason::Rejected);
    }

    /// One successful request: its total and queue time, and the times of
    /// the execution it was part of (as Triton, every request of a batch is
    /// charged the batch's compute times).
    pub(crate) fn record_success(&self, total: Duration, queue: Duration, times: ExecutionTimes) {
        self.success.record(total);
        self.queue.record(queue);
        if crate::histogram::latency_histograms() {
            self.request_latency.record(total);
            self.queue_latency.record(queue);
        }
        self.compute_input.record(times.compute_input);
        self.compute_infer.record(times.compute_infer);
        self.compute_output.record(times.compute_output);
    }

    /// One execution of `rows` rows (the inference count grows by the rows).
    pub(crate) fn record_execution(&self, rows: usize, times: ExecutionTimes) {
        self.execution_count.fetch_add(1, Ordering::Relaxed);
        self.inference_count
            .fetch_add(rows as u64, Ordering::Relaxed);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_inference_ms.store(now_ms, Ordering::Relaxed);
        if let Some(batch) = self.batches.get(rows) {
            batch.compute_input.record(times.compute_input);
            batch.compute_infer.record(times.compute_infer);
            batch.compute_output.record(times.compute_output);
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            success: self.success.snapshot(),
            fail: self.fail.snapshot(),
            queue: self.queue.snapshot(),
            compute_input: self.compute_input.snapshot(),
            compute_infer: self.compute_infer.snapshot(),
            compute_output: self.compute_output.snapshot(),
            inference_count: self.inference_count.load(Ordering::Relaxed),
            execution_count: self.execution_count.load(Ordering::Relaxed),
            last_inference_ms: self.last_inference_ms.load(Ordering::Relaxed),
            abandoned: self.abandoned.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            failures: FailureCounts(
                FailureReason::ALL.map(|r| self.failures[r.index()].load(Ordering::Relaxed)),
            ),
            request_latency: self.request_latency.snapshot(),
            queue_latency: self.queue_latency.snapshot(),
            batch_stats: self
                .batches
                .iter()
                .enumerate()
                .skip(1)
                .filter(|(_, b)| b.compute_infer.snapshot().count > 0)
                .map(|(size, b)| BatchSnapshot {
                    batch_size: size as u64,
                    compute_input: b.compute_input.snapshot(),
                    compute_infer: b.compute_infer.snapshot(),
                    compute_output: b.compute_output.snapshot(),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executions_count_rows_and_batches() {
        let stats = ModelStats::new(8);
        let times = ExecutionTimes {
            compute_input: Duration::from_nanos(10),
            compute_infer: Duration::from_nanos(100),
            compute_output: Duration::from_nanos(5),
        };
        stats.record_execution(4, times);
        stats.record_execution(4, times);
        stats.record_execution(1, times);
        let snap = stats.snapshot();
        assert_eq!(snap.execution_count, 3);
        assert_eq!(snap.inference_count, 9);
        assert!(snap.last_inference_ms > 0);
        let sizes: Vec<(u64, u64, u64)> = snap
            .batch_stats
            .iter()
            .map(|b| (b.batch_size, b.compute_infer.count, b.compute_infer.ns))
            .collect();
        assert_eq!(sizes, vec![(1, 1, 100), (4, 2, 200)]);
    }

    #[test]
    fn successes_and_failures() {
        let stats = ModelStats::new(0);
        stats.record_success(
            Duration::from_nanos(50),
            Duration::from_nanos(7),
            ExecutionTimes::default(),
        );
        stats.record_failure(FailureReason::Backend, Duration::from_nanos(3));
        stats.record_rejected();
        stats.record_abandoned();
        let snap = stats.snapshot();
        assert_eq!(snap.success, DurationSnapshot { count: 1, ns: 50 });
        assert_eq!(snap.queue, DurationSnapshot { count: 1, ns: 7 });
        assert_eq!(snap.fail, DurationSnapshot { count: 1, ns: 3 });
        let by_reason = FailureReason::ALL.map(|r| snap.failures.get(r));
        assert_eq!(by_reason, [1, 1, 1, 0]);
        assert_eq!(snap.request_latency.count, 1);
        assert_eq!(snap.queue_latency.sum_us, 0);
    }
}
