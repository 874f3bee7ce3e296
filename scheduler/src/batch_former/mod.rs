//! The dynamic batcher's decisions as a pure state machine: no channels, no
//! threads, no clock of its own. The batcher thread feeds it requests and the
//! current time; it answers what to dispatch, or until when to wait.
//!
//! Requests wait in one queue per priority level (level 0 is the highest,
//! Triton's priority 1). A batch is formed from the highest level first, then
//! lower ones, then requests whose queue timeout expired under the DELAY
//! action. Requests whose timeout expired under REJECT are taken out and
//! answered with an error by the caller.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What happens to a request whose queue timeout expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeoutAction {
    /// Answer it with a timeout error.
    #[default]
    Reject,
    /// Keep it, behind every request that has not timed out.
    Delay,
}

/// The queue policy of one priority level (Triton's `ModelQueuePolicy`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct QueuePolicy {
    /// Requests of this level queued at most; 0 means no per-level bound
    /// (the scheduler's overall bound still applies).
    pub max_queue_size: usize,
    /// Queue timeout of requests that do not set their own; `None` waits
    /// forever.
    pub default_timeout: Option<Duration>,
    /// Whether a request's own `timeout` parameter replaces the default.
    pub allow_timeout_override: bool,
    pub timeout_action: TimeoutAction,
}

impl QueuePolicy {
    /// The queue timeout of a request that asked for `requested`.
    pub fn timeout(&self, requested: Option<Duration>) -> Option<Duration> {
        match requested {
            Some(timeout) if self.allow_timeout_override && !timeout.is_zero() => Some(timeout),
            _ => self.default_timeout,
        }
    }
}

/// How a model's requests are grouped into executions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Largest number of rows in one execution (the config's
    /// `max_batch_size`); 0 for models without a batch dimension.
    pub max_batch_size: usize,
    /// Whether requests are combined (`dynamic_batching`); without it every
    /// request, whatever its own batch size, executes on its own.
    pub dynamic: bool,
    /// Batch sizes to dispatch as soon as they can be formed, ascending.
    pub preferred_batch_sizes: Vec<usize>,
    /// How long the oldest queued request may wait for a batch to fill.
    pub max_queue_delay: Duration,
    /// One queue policy per priority level, highest first; never empty.
    pub levels: Vec<QueuePolicy>,
}

impl BatchPolicy {
    /// One request per execution, dispatched at once (Triton's default
    /// scheduler).
    pub fn unbatched(max_batch_size: usize) -> Self {
        Self {
            max_batch_size,
            dynamic: false,
            preferred_batch_sizes: Vec::new(),
            max_queue_delay: Duration::ZERO,
            levels: vec![QueuePolicy::default()],
        }
    }

    fn batches(&self) -> bool {
        self.dynamic && self.max_batch_size > 0
    }
}

/// What the batcher needs to know about a queued item.
pub trait Batchable {
    /// Rows the item adds to a batch.
    fn rows(&self) -> usize;
    /// When it arrived; the queue delay runs from the oldest item.
    fn arrival(&self) -> Instant;
    /// Its priority level: an index into [`BatchPolicy::levels`].
    fn level(&self) -> usize;
    /// When its queue timeout expires, if it has one.
    fn deadline(&self) -> Option<Instant>;
    /// Whether the two may share one execution (same inputs, same non-batch
    /// shapes but for ragged inputs).
    fn compatible(&self, other: &Self) -> bool;
    /// Whether its client went away and it should not run.
    fn abandoned(&self) -> bool;
}

/// The next step for the batcher.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision<T> {
    /// Execute these items together now.
    Dispatch(Vec<T>),
    /// Nothing to dispatch before this instant unless more items arrive.
    WaitUntil(Instant),
    /// The queue is empty.
    Empty,
}

/// The queues of one model and the rule that turns them into batches.
#[derive(Debug)]
pub struct BatchFormer<T> {
    policy: BatchPolicy,
    /// One queue per priority level, then the delayed queue last.
    queues: Vec<VecDeque<T>>,
}

impl<T: Batchable> BatchFormer<T> {
    pub fn new(policy: BatchPolicy) -> Self {
        let queues = (0..=policy.levels.len().max(1))
            .map(|_| VecDeque::new())
            .collect();
        Self { policy, queues }
    }

    pub fn push(&mut self, item: T) {
        let last_level = self.queues.len() - 2;
        self.queues[item.level().min(last_level)].push_back(item);
    }

    pub fn len(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.queues.iter().all(VecDeque::is_empty)
    }

    /// Removes and returns every item whose client went away.
    pub fn take_abandoned(&mut self) -> Vec<T> {
        self.take_where(|item| item.abandoned())
    }

    /// Applies queue timeouts at `now`: items of REJECT levels whose deadline
    /// passed are removed and returned; those of DELAY levels move behind
    /// every item that has not timed out.
    pub fn take_expired(&mut self, now: Instant) -> Vec<T> {
        let expired = |item: &T| item.deadline().is_some_and(|d| d <= now);
        let delayed_index = self.queues.len() - 1;
        let mut rejected = Vec::new();
        for level in 0..delayed_index {
            if !self.queues[level].iter().any(expired) {
                continue;
            }
            let action = self
                .policy
                .levels
                .get(level)
                .map_or(TimeoutAction::Reject, |p| p.timeout_action);
            let (gone, kept): (VecDeque<T>, VecDeque<T>) = std::mem::take(&mut self.queues[level])
                .into_iter()
                .partition(expired);
            self.queues[level] = kept;
            match action {
                TimeoutAction::Reject => rejected.extend(gone),
                TimeoutAction::Delay => self.queues[delayed_index].extend(gone),
            }
        }
        rejected
    }

    /// Decides what to dispatch at `now`. With `flush` set (shutting down),
    /// whatever can be batched is dispatched without waiting.
    pub fn decide(&mut self, now: Instant, flush: bool) -> Decision<T> {
        let mut ordered = self.queues.iter().flatten();
        let Some(head) = ordered.next() else {
            return Decision::Empty;
        };
        if !self.policy.batches() {
            return self.dispatch(1);
        }
        let max = self.policy.max_batch_size;
        let mut rows = head.rows();
        let mut taken = 1;
        let mut oldest = head.arrival();
        let mut preferred_prefix = self.preferred(rows).then_some(1);
        let mut closed = rows >= max;
        if !closed {
            for item in ordered {
                if !head.compatible(item) || rows + item.rows() > max {
                    closed = true;
                    break;
                }
                rows += item.rows();
                taken += 1;
                oldest = oldest.min(item.arrival());
                if self.preferred(rows) {
                    preferred_prefix = Some(taken);
                }
                if rows >= max {
                    closed = true;
                    break;
                }
            }
        }
        if closed || flush {
            return self.dispatch(taken);
        }
        if let Some(prefix) = preferred_prefix {
            return self.dispatch(prefix);
        }
        let deadline = oldest + self.policy.max_queue_delay;
        if now >= deadline {
            return self.dispatch(taken);
        }
        let wake = self.next_timeout().map_or(deadline, |t| t.min(deadline));
        Decision::WaitUntil(wake)
    }

    /// The earliest queue timeout among items that have not timed out yet.
    pub fn next_timeout(&self) -> Option<Instant> {
        self.queues
            .iter()
            .take(self.queues.len() - 1)
            .flatten()
            .filter_map(Batchable::deadline)
            .min()
    }

    fn preferred(&self, rows: usize) -> bool {
        self.policy.preferred_batch_sizes.contains(&rows)
    }

    fn take_where(&mut self, condition: impl Fn(&T) -> bool) -> Vec<T> {
        let mut taken = Vec::new();
        for queue in &mut self.queues {
            if !queue.iter().any(&condition) {
                continue;
            }
            let (gone, kept): (VecDeque<T>, VecDeque<T>) =
                std::mem::take(queue).into_iter().partition(&condition);
            *queue = kept;
            taken.extend(gone);
        }
        taken
    }

    /// Removes the first `count` items in priority order.
    fn dispatch(&mut self, mut count: usize) -> Decision<T> {
        let mut batch = Vec::with_capacity(count);
        for queue in &mut self.queues {
            let n = count.min(queue.len());
            batch.extend(queue.drain(..n));
            count -= n;
            if count == 0 {
                break;
            }
        }
        Decision::Dispatch(batch)
    }
}

#[cfg(test)]
mod tests;
