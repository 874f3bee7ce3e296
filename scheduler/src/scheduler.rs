//! A model version's scheduler: the lock-free queue front ends enqueue into,
//! the batcher thread that forms batches, and the instance workers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use ferrite_backends::Backend;
use tokio::sync::oneshot;

use crate::batch_former::{BatchFormer, BatchPolicy, Batchable, Decision};
use crate::request::{InferRequest, Pending, ResponseReceiver};
use crate::stats::ModelStats;
use crate::worker::Worker;
use crate::SchedulerError;

/// Queue bound used when the config leaves `max_queue_size` at 0 (Triton's
/// "unbounded"): ferrite never queues without a bound, so that overload is
/// answered with UNAVAILABLE instead of growing memory.
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 16_384;

/// How one model version is scheduled.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// "model:version", used in thread names, logs and errors.
    pub name: String,
    pub policy: BatchPolicy,
    /// Requests accepted but not yet dispatched, at most; 0 picks
    /// [`DEFAULT_MAX_QUEUE_SIZE`].
    pub max_queue_size: usize,
}

/// The handle front ends submit requests to. Dropping it stops accepting
/// requests; queued ones are still executed and answered.
pub struct ModelScheduler {
    name: String,
    sender: Option<Sender<Pending>>,
    queued: Arc<AtomicUsize>,
    max_queue_size: usize,
    stats: Arc<ModelStats>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for ModelScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelScheduler")
            .field("name", &self.name)
            .field("queued", &self.queued.load(Ordering::Relaxed))
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
        let queued = Arc::new(AtomicUsize::new(0));
        let (sender, receiver) = crossbeam_channel::unbounded();
        let (idle_tx, idle_rx) = crossbeam_channel::bounded(instances.len());
        let batched = options.policy.max_batch_size > 0;
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
            queued: Arc::clone(&queued),
            stats: Arc::clone(&stats),
        };
        threads.push(spawn(format!("{}/batcher", options.name), move || {
            batcher.run()
        })?);
        let max_queue_size = match options.max_queue_size {
            0 => DEFAULT_MAX_QUEUE_SIZE,
            n => n,
        };
        Ok(Self {
            name: options.name,
            sender: Some(sender),
            queued,
            max_queue_size,
            stats,
            threads,
        })
    }

    /// Enqueues a request without taking a lock. A full queue answers
    /// [`SchedulerError::QueueFull`] at once.
    pub fn submit(&self, request: InferRequest) -> Result<ResponseReceiver, SchedulerError> {
        let sender = self.sender.as_ref().ok_or(SchedulerError::Stopped)?;
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queue_size {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.stats.record_rejected();
            return Err(SchedulerError::QueueFull {
                max_queue_size: self.max_queue_size,
            });
        }
        let (reply, receiver) = oneshot::channel();
        if sender.send(Pending { request, reply }).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(SchedulerError::Stopped);
        }
        Ok(receiver)
    }

    pub fn stats(&self) -> &ModelStats {
        &self.stats
    }

    /// Requests accepted and not yet handed to an instance.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
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

    fn compatible(&self, other: &Self) -> bool {
        let (a, b) = (&self.request.inputs, &other.request.inputs);
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| {
                x.name == y.name
                    && x.tensor.dtype() == y.tensor.dtype()
                    && x.tensor.shape().get(1..) == y.tensor.shape().get(1..)
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
    queued: Arc<AtomicUsize>,
    stats: Arc<ModelStats>,
}

impl Batcher {
    fn run(mut self) {
        let mut open = true;
        loop {
            if self.former.is_empty() {
                match self.requests.recv() {
                    Ok(pending) => self.former.push(pending),
                    Err(_) => return,
                }
            }
            let Ok(worker) = self.idle.recv() else {
                return;
            };
            let Some(batch) = self.next_batch(&mut open) else {
                return;
            };
            self.queued.fetch_sub(batch.len(), Ordering::AcqRel);
            if self.workers[worker].send(batch).is_err() {
                tracing::error!("instance worker {worker} stopped unexpectedly");
                return;
            }
        }
    }

    /// Forms the next batch, waiting for more requests while the policy
    /// allows. `None` once the queue is closed and empty.
    fn next_batch(&mut self, open: &mut bool) -> Option<Vec<Pending>> {
        loop {
            while let Ok(pending) = self.requests.try_recv() {
                self.former.push(pending);
            }
            for _ in self.former.take_abandoned() {
                self.queued.fetch_sub(1, Ordering::AcqRel);
                self.stats.record_abandoned();
            }
            match self.former.decide(Instant::now(), !*open) {
                Decision::Dispatch(batch) => return Some(batch),
                Decision::Empty if !*open => return None,
                Decision::Empty => match self.requests.recv() {
                    Ok(pending) => self.former.push(pending),
                    Err(_) => *open = false,
                },
                Decision::WaitUntil(deadline) => match self.requests.recv_deadline(deadline) {
                    Ok(pending) => self.former.push(pending),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => *open = false,
                },
            }
        }
    }
}
