//! ferrite-scheduler: per-model-version queues, the dynamic batcher and the
//! instance workers.
//!
//! A front end submits a validated [`InferRequest`] to a [`ModelScheduler`]
//! without taking a lock (a crossbeam channel and an atomic queue count) and
//! awaits the returned oneshot. One batcher thread per model version keeps
//! the queue; when an instance worker is idle it forms the next batch under
//! the model's [`BatchPolicy`] (max batch size, preferred sizes, maximum queue
//! delay measured from the oldest request) and hands it over. Each instance
//! worker is an OS thread owning its backend instance; it gathers the batch's
//! inputs into reusable buffers, executes, and answers each request with
//! slices of the output buffers.
//!
//! Inputs with `allow_ragged_batch` may differ in shape within a batch; see
//! [`BatchLayout`] for how such batches are built and split.
//!
//! The queue is always bounded: a full queue answers
//! [`SchedulerError::QueueFull`], which front ends report as UNAVAILABLE.

mod batch;
mod batch_former;
mod histogram;
mod ragged;
mod request;
mod scheduler;
mod stats;
mod worker;

pub use batch_former::{BatchFormer, BatchPolicy, Batchable, Decision, QueuePolicy, TimeoutAction};
pub use histogram::{
    latency_histograms, set_latency_histograms, Histogram, HistogramSnapshot, BUCKET_BOUNDS_US,
};
pub use ragged::{BatchInput, BatchInputKind, BatchLayout};
pub use request::{ComputeTimes, InferRequest, InferResponse, ResponseReceiver};
pub use scheduler::{ModelScheduler, SchedulerOptions, DEFAULT_MAX_QUEUE_SIZE};
pub use stats::{
    BatchSnapshot, DurationSnapshot, DurationStat, ExecutionTimes, FailureCounts, FailureReason,
    ModelStats, StatsSnapshot,
};

/// Why a request was not answered with outputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulerError {
    /// The queue holds `max_queue_size` requests already.
    #[error("exceeds maximum queue size of {max_queue_size}")]
    QueueFull { max_queue_size: usize },
    /// The request waited in the queue past its timeout.
    #[error("request timeout expired")]
    TimedOut,
    /// The model is being unloaded or the server is shutting down.
    #[error("the model is not accepting requests")]
    Stopped,
    /// The engine failed to execute the batch.
    #[error("{0}")]
    Execution(String),
    /// Batch assembly or splitting failed.
    #[error("{0}")]
    Internal(String),
}
