//! A model version's scheduler: the lock-free queue front ends enqueue into,
//! the batcher thread that forms batches, and the instance workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use ferrite_backends::Backend;
use tokio::sync::oneshot;

use crate::batch_former::{BatchFormer, BatchPolicy, Batchable, Decision, QueuePolicy};
use crate::ragged::BatchLayout;
use crate::request::{InferRequest, Pending, ResponseReceiver};
use crate::stats::{FailureReason, ModelStats};
use crate::worker::Worker;
use crate::SchedulerError;

/// Queue bound used when the config leaves `max_queue_size` at 0 (Triton's
/// "unbounded"): ferrite never queues without a bound, so that overload is
/// answered with UNAVAILABLE instead of growing memory.
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 16_384;

/// Longest the batcher sleeps waiting for an instance when no queue timeout
/// is pending; any arrival or finished execution wakes it earlier.
const IDLE_WAIT: Duration = Duration::from_secs(60);

/// How one model version is scheduled.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// "model:version", used in thread names, logs and errors.
    pub name: String,
    pub policy: BatchPolicy,
    /// Requests accepted but not yet dispatched, at most, over all priority
    /// levels; 0 picks [`DEFAULT_MAX_QUEUE_SIZE`].
    pub max_queue_size: usize,
    /// Level (an index into the policy's levels) of requests that give no
    /// priority or one outside the model's range, as Triton does.
    pub default_level: usize,
    /// Ragged inputs, batch inputs and scattered outputs.
    pub layout: BatchLayout,
}

/// Queued-request counts, overall and per priority level, shared by the
/// submitting front ends and the batcher.
#[derive(Debug)]
struct QueueCounts {
    total: AtomicUsize,
    levels: Vec<AtomicUsize>,
}

impl QueueCounts {
    fn release(&self, level: usize) {
        self.total.fetch_sub(1, Ordering::AcqRel);
        if let Some(count) = self.levels.get(level) {
            count.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// The handle front ends submit requests to. Dropping it stops accepting
/// requests; queued ones are still executed and answered.
pub struct ModelScheduler {
    name: String,
    sender: Option<Sender<Pending>>,
    counts: Arc<QueueCounts>,
    max_queue_size: usize,
    levels: Vec<QueuePolicy>,
    default_level: usize,
    layout: Arc<BatchLayout>,
    stats: Arc<ModelStats>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ModelScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelScheduler")
            .field("name", &self.name)
            .field("queued", &self.queued())
            .finish_non_exhaustive()
    }
}

impl ModelScheduler {
    /// Starts one worker thread per backend instance and the batcher thread.
    pub fn start(
        options: SchedulerOptions,
        instances: Vec<Box<dyn Backend>>,
    ) -> Result<Self, SchedulerError> {
        if instances.is_empty() {
            return Err(SchedulerError::Internal(format!(
                "{}: no instances to schedule on",
                options.name
            )));
        }
        let stats = Arc::new(ModelStats::new(options.policy.max_batch_size));
        let counts = Arc::new(QueueCounts {
            total: AtomicUsize::new(0),
            levels: options
                .policy
                .levels
                .iter()
                .map(|_| AtomicUsize::new(0))
                .collect(),
        });
        let (sender, receiver) = crossbeam_channel::unbounded();
        let (idle_tx, idle_rx) = crossbeam_channel::bounded(instances.len());
        let batched = options.policy.max_batch_size > 0;
        let layout = Arc::new(options.layout);
        let mut threads = Vec::with_capacity(instances.len() + 1);
        let mut worker_senders = Vec::with_capacity(instances.len());
        for (index, backend) in instances.into_iter().enumerate() {
            let (batch_tx, batch_rx) = crossbeam_channel::bounded(1);
            worker_senders.push(batch_tx);
            let worker = Worker {
                index,
                backend,
                batches: batch_rx,
                idle: idle_tx.clone(),
                stats: Arc::clone(&stats),
                batched,
                layout: Arc::clone(&layout),
            };
            threads.push(spawn(format!("{}#{index}", options.name), move || {
                worker.run()
            })?);
        }
        let batcher = Batcher {
            requests: receiver,
            idle: idle_rx,
            workers: worker_senders,
            former: BatchFormer::new(options.policy.clone()),
            counts: Arc::clone(&counts),
            stats: Arc::clone(&stats),
        };
        threads.push(spawn(format!("{}/batcher", options.name), move || {
            batcher.run()
        })?);
        let max_queue_size = match options.max_queue_size {
            0 => DEFAULT_MAX_QUEUE_SIZE,
            n => n,
        };
        let default_level = options
            .default_level
            .min(options.policy.levels.len().saturating_sub(1));
        Ok(Self {
            name: options.name,
            sender: Some(sender),
            counts,
            max_queue_size,
            levels: options.policy.levels,
            default_level,
            layout,
            stats,
            threads,
        })
    }

    /// Enqueues a request without taking a lock. A full queue (overall or
    /// for the request's priority level) answers
    /// [`SchedulerError::QueueFull`] at once.
    pub fn submit(&self, request: InferRequest) -> Result<ResponseReceiver, SchedulerError> {
        let sender = self.sender.as_ref().ok_or(SchedulerError::Stopped)?;
        let level = self.level_of(request.priority);
        let policy = self.levels.get(level).cloned().unwrap_or_default();
        self.reserve(level, policy.max_queue_size)?;
        let deadline = policy
            .timeout(request.timeout)
            .map(|timeout| request.arrival + timeout);
        let (reply, receiver) = oneshot::channel();
        let pending = Pending {
            request,
            reply,
            level,
            deadline,
            layout: Arc::clone(&self.layout),
        };
        if sender.send(pending).is_err() {
            self.counts.release(level);
            return Err(SchedulerError::Stopped);
        }
        Ok(receiver)
    }

    /// The queue level of a request priority (1 is the highest; 0 or one
    /// beyond the model's levels means the default level).
    fn level_of(&self, priority: u32) -> usize {
        let levels = self.levels.len();
        match usize::try_from(priority) {
            Ok(p) if p >= 1 && p <= levels => p - 1,
            _ => self.default_level,
        }
    }

    fn reserve(&self, level: usize, level_max: usize) -> Result<(), SchedulerError> {
        let full = |max_queue_size| {
            self.stats.record_rejected();
            Err(SchedulerError::QueueFull { max_queue_size })
        };
        if self.counts.total.fetch_add(1, Ordering::AcqRel) >= self.max_queue_size {
            self.counts.total.fetch_sub(1, Ordering::AcqRel);
            return full(self.max_queue_size);
        }
        if let Some(count) = self.counts.levels.get(level) {
            if count.fetch_add(1, Ordering::AcqRel) >= level_max && level_max > 0 {
                count.fetch_sub(1, Ordering::AcqRel);
                self.counts.total.fetch_sub(1, Ordering::AcqRel);
                return full(level_max);
            }
        }
        Ok(())
    }

    pub fn stats(&self) -> &ModelStats {
        &self.stats
    }

    /// Requests accepted and not yet handed to an instance.
    pub fn queued(&self) -> usize {
        self.counts.total.load(Ordering::Relaxed)
    }

    /// Stops accepting requests, lets queued and running ones finish, and
    /// waits for the threads. Blocks: call it off the async runtime.
    pub fn shutdown(mut self) {
        self.sender = None;
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!(model = %self.name, "a scheduler thread panicked");
            }
        }
    }
}

fn spawn(
    name: String,
    body: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>, SchedulerError> {
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(body)
        .map_err(|e| SchedulerError::Internal(format!("cannot start thread {name}: {e}")))
}

impl Batchable for Pending {
    fn rows(&self) -> usize {
        self.request.batch_size
    }

    fn arrival(&self) -> Instant {
        self.request.arrival
    }

    fn level(&self) -> usize {
        self.level
    }

    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    fn compatible(&self, other: &Self) -> bool {
        let (a, b) = (&self.request.inputs, &other.request.inputs);
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.name == y.name
                    && x.tensor.dtype() == y.tensor.dtype()
                    && (x.tensor.shape().get(1..) == y.tensor.shape().get(1..)
                        || self.layout.is_ragged(&x.name))
            })
    }

    fn abandoned(&self) -> bool {
        Pending::abandoned(self)
    }
}

/// The thread that turns the queue into batches for idle instances.
struct Batcher {
    requests: Receiver<Pending>,
    idle: Receiver<usize>,
    workers: Vec<Sender<Vec<Pending>>>,
    former: BatchFormer<Pending>,
    counts: Arc<QueueCounts>,
    stats: Arc<ModelStats>,
}

impl Batcher {
    fn run(mut self) {
        let mut open = true;
        let mut worker: Option<usize> = None;
        loop {
            self.admit(&mut open);
            if self.former.is_empty() {
                if !open {
                    return;
                }
                match self.requests.recv() {
                    Ok(pending) => self.former.push(pending),
                    Err(_) => open = false,
                }
                continue;
            }
            let Some(idle) = worker.or_else(|| self.idle.try_recv().ok()) else {
                if !self.wait_for_worker(&mut worker, &mut open) {
                    return;
                }
                continue;
            };
            worker = Some(idle);
            match self.former.decide(Instant::now(), !open) {
                Decision::Dispatch(batch) => {
                    for pending in &batch {
                        self.counts.release(pending.level);
                    }
                    if self.workers[idle].send(batch).is_err() {
                        tracing::error!("instance worker {idle} stopped unexpectedly");
                        return;
                    }
                    worker = None;
                }
                Decision::Empty => {}
                Decision::WaitUntil(deadline) => match self.requests.recv_deadline(deadline) {
                    Ok(pending) => self.former.push(pending),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => open = false,
                },
            }
        }
    }

    /// Takes in what arrived, drops requests whose client went away and
    /// answers those whose queue timeout expired under REJECT.
    fn admit(&mut self, open: &mut bool) {
        loop {
            match self.requests.try_recv() {
                Ok(pending) => self.former.push(pending),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    *open = false;
                    break;
                }
            }
        }
        for pending in self.former.take_abandoned() {
            self.counts.release(pending.level);
            self.stats.record_abandoned();
        }
        let now = Instant::now();
        for pending in self.former.take_expired(now) {
            self.counts.release(pending.level);
            self.stats.record_failure(
                FailureReason::Rejected,
                now.saturating_duration_since(pending.request.arrival),
            );
            let _ = pending.reply.send(Err(SchedulerError::TimedOut));
        }
    }

    /// Waits for an idle instance, a new request or the next queue timeout,
    /// whichever comes first. False when the instances are gone.
    fn wait_for_worker(&mut self, worker: &mut Option<usize>, open: &mut bool) -> bool {
        let requests = if *open {
            self.requests.clone()
        } else {
            crossbeam_channel::never()
        };
        let timeout = self
            .former
            .next_timeout()
            .map_or(IDLE_WAIT, |t| t.saturating_duration_since(Instant::now()));
        crossbeam_channel::select! {
            recv(self.idle) -> idle => match idle {
                Ok(idle) => *worker = Some(idle),
                Err(_) => return false,
            },
            recv(requests) -> pending => match pending {
                Ok(pending) => self.former.push(pending),
                Err(_) => *open = false,
            },
            default(timeout) => {}
        }
        true
    }
}
