//! The dynamic batcher's decisions as a pure state machine: no channels, no
//! threads, no clock of its own. The batcher thread feeds it requests and the
//! current time; it answers what to dispatch, or until when to wait.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

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
    /// Whether the two may share one execution (same inputs, same non-batch
    /// shapes).
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

/// The queue of one model and the rule that turns it into batches.
#[derive(Debug)]
pub struct BatchFormer<T> {
    policy: BatchPolicy,
    queue: VecDeque<T>,
}

impl<T: Batchable> BatchFormer<T> {
    pub fn new(policy: BatchPolicy) -> Self {
        Self {
            policy,
            queue: VecDeque::new(),
        }
    }

    pub fn push(&mut self, item: T) {
        self.queue.push_back(item);
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Removes and returns every item whose client went away.
    pub fn take_abandoned(&mut self) -> Vec<T> {
        if !self.queue.iter().any(Batchable::abandoned) {
            return Vec::new();
        }
        let (gone, kept): (VecDeque<T>, VecDeque<T>) = std::mem::take(&mut self.queue)
            .into_iter()
            .partition(|item| item.abandoned());
        self.queue = kept;
        gone.into()
    }

    /// Decides what to dispatch at `now`. With `flush` set (shutting down),
    /// whatever can be batched is dispatched without waiting.
    pub fn decide(&mut self, now: Instant, flush: bool) -> Decision<T> {
        let Some(head) = self.queue.front() else {
            return Decision::Empty;
        };
        if !self.policy.batches() {
            return self.dispatch(1);
        }
        let max = self.policy.max_batch_size;
        let mut rows = 0;
        let mut taken = 0;
        let mut preferred_prefix = None;
        let mut closed = false;
        for item in &self.queue {
            if taken > 0 && (!head.compatible(item) || rows + item.rows() > max) {
                closed = true;
                break;
            }
            rows += item.rows();
            taken += 1;
            if self.policy.preferred_batch_sizes.contains(&rows) {
                preferred_prefix = Some(taken);
            }
            if rows >= max {
                closed = true;
                break;
            }
        }
        if closed || flush {
            return self.dispatch(taken);
        }
        if let Some(prefix) = preferred_prefix {
            return self.dispatch(prefix);
        }
        let deadline = head.arrival() + self.policy.max_queue_delay;
        if now >= deadline {
            self.dispatch(taken)
        } else {
            Decision::WaitUntil(deadline)
        }
    }

    fn dispatch(&mut self, count: usize) -> Decision<T> {
        Decision::Dispatch(self.queue.drain(..count).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    struct Item {
        id: u32,
        rows: usize,
        shape: u32,
        arrival: Instant,
        gone: bool,
    }

    impl Batchable for Item {
        fn rows(&self) -> usize {
            self.rows
        }
        fn arrival(&self) -> Instant {
            self.arrival
        }
        fn compatible(&self, other: &Self) -> bool {
            self.shape == other.shape
        }
        fn abandoned(&self) -> bool {
            self.gone
        }
    }

    struct Clock(Instant);

    impl Clock {
        fn at(&self, micros: u64) -> Instant {
            self.0 + Duration::from_micros(micros)
        }
    }

    fn item(clock: &Clock, id: u32, rows: usize, at: u64) -> Item {
        Item {
            id,
            rows,
            shape: 0,
            arrival: clock.at(at),
            gone: false,
        }
    }

    fn policy(max: usize, preferred: &[usize], delay_us: u64) -> BatchPolicy {
        BatchPolicy {
            max_batch_size: max,
            dynamic: true,
            preferred_batch_sizes: preferred.to_vec(),
            max_queue_delay: Duration::from_micros(delay_us),
        }
    }

    fn ids(decision: Decision<Item>) -> Vec<u32> {
        match decision {
            Decision::Dispatch(items) => items.into_iter().map(|i| i.id).collect(),
            other => panic!("expected a dispatch, got {other:?}"),
        }
    }

    #[test]
    fn unbatched_dispatches_one_at_a_time() {
        let clock = Clock(Instant::now());
        let mut former = BatchFormer::new(BatchPolicy::unbatched(8));
        assert_eq!(former.decide(clock.at(0), false), Decision::Empty);
        former.push(item(&clock, 1, 1, 0));
        former.push(item(&clock, 2, 1, 0));
        assert_eq!(ids(former.decide(clock.at(0), false)), vec![1]);
        assert_eq!(ids(former.decide(clock.at(0), false)), vec![2]);
    }

    #[test]
    fn waits_for_the_delay_measured_from_the_oldest() {
        let clock = Clock(Instant::now());
        let mut former = BatchFormer::new(policy(8, &[], 100));
        former.push(item(&clock, 1, 1, 0));
        former.push(item(&clock, 2, 1, 50));
        assert_eq!(
            former.decide(clock.at(60), false),
            Decision::WaitUntil(clock.at(100))
        );
        assert_eq!(ids(former.decide(clock.at(100), false)), vec![1, 2]);
        assert!(former.is_empty());
    }

    #[test]
    fn zero_delay_dispatches_at_once() {
        let clock = Clock(Instant::now());
        let mut former = BatchFormer::new(policy(8, &[], 0));
        former.push(item(&clock, 1, 1, 0));
        former.push(item(&clock, 2, 1, 0));
        assert_eq!(ids(former.decide(clock.at(0), false)), vec![1, 2]);
    }

    #[test]
    fn full_batch_goes_before_the_delay() {
        let clock = Clock(Instant::now());
        let mut former = BatchFormer::new(policy(4, &[], 1_000_000));
        for id in 0..6 {
            former.push(item(&clock, id, 1, 0));
        }
        assert_eq!(ids(former.decide(clock.at(1), false)), vec![0, 1, 2, 3]);
        assert_eq!(
            former.decide(clock.at(1), false),
            Decision::WaitUntil(clock.at(1_000_000))
        );
    }

    #[test]
    fn preferred_size_dispatches_when_reachable() {
        let clock = Clock(Instant::now());
        let mut former = BatchFormer::new(policy(16, &[2, 4], 1_000_000));
        for id in 0..5 {
            former.push(item(&clock, id, 1, 0));
        }
        assert_eq!(ids(former.decide(clock.at(1), false)), vec![0, 1, 2, 3]);
        assert_eq!(
            former.decide(clock.at(1), false),
            Decision::WaitUntil(clock.at(1_000_000))
        );
    }

    #[test]
    fn multi_row_requests_count_by_rows_and_never_overflow() {
        let clock = Clock(Instant::now());
        let mut former = BatchFormer::new(policy(8, &[], 1_000_000));
        former.push(item(&clock, 1, 3, 0));
        former.push(item(&clock, 2, 4, 0));
        former.push(item(&clock, 3, 2, 0));
        assert_eq!(ids(former.decide(clock.at(0), false)), vec![1, 2]);
        assert_eq!(
            former.decide(clock.at(0), false),
            Decision::WaitUntil(clock.at(1_000_000))
        );
    }

    #[test]
    fn incompatible_shapes_close_the_batch() {
        let clock = Clock(Instant::now());
        let mut former = BatchFormer::new(policy(8, &[], 1_000_000));
        former.push(item(&clock, 1, 1, 0));
        former.push(Item {
            shape: 7,
            ..item(&clock, 2, 1, 0)
        });
        former.push(item(&clock, 3, 1, 0));
        assert_eq!(ids(former.decide(clock.at(0), false)), vec![1]);
        assert_eq!(ids(former.decide(clock.at(0), false)), vec![2]);
        assert_eq!(
            former.decide(clock.at(0), false),
            Decision::WaitUntil(clock.at(1_000_000))
        );
    }

    #[test]
    fn flush_dispatches_without_waiting() {
        let clock = Clock(Instant::now());
        let mut former = BatchFormer::new(policy(8, &[], 1_000_000));
        former.push(item(&clock, 1, 1, 0));
        assert_eq!(ids(former.decide(clock.at(0), true)), vec![1]);
    }

    #[test]
    fn abandoned_items_are_taken_out() {
        let clock = Clock(Instant::now());
        let mut former = BatchFormer::new(policy(8, &[], 0));
        former.push(item(&clock, 1, 1, 0));
        former.push(Item {
            gone: true,
            ..item(&clock, 2, 1, 0)
        });
        former.push(item(&clock, 3, 1, 0));
        let gone: Vec<u32> = former.take_abandoned().into_iter().map(|i| i.id).collect();
        assert_eq!(gone, vec![2]);
        assert_eq!(ids(former.decide(clock.at(0), false)), vec![1, 3]);
    }
}
