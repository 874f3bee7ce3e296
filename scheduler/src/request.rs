//! What a front end hands to a scheduler and what it gets back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrite_backends::NamedTensor;
use tokio::sync::oneshot;

use crate::{BatchLayout, SchedulerError};

/// One validated inference request, owned by the scheduler once enqueued.
#[derive(Debug)]
pub struct InferRequest {
    /// Input tensors with their full shapes (batch dimension first for
    /// batching models).
    pub inputs: Vec<NamedTensor>,
    /// Outputs to compute; empty means every output.
    pub outputs: Vec<String>,
    /// Rows this request contributes to a batch: its first dimension for
    /// batching models, 1 otherwise.
    pub batch_size: usize,
    /// When the front end received the request; queue and request durations
    /// are measured from here.
    pub arrival: Instant,
    /// Triton's request priority: 1 is the highest, 0 means the model's
    /// default level. Ignored by models without priority levels.
    pub priority: u32,
    /// The request's own queue timeout, honoured where the queue policy
    /// allows overrides.
    pub timeout: Option<Duration>,
}

/// The outputs of one request, each a slice of its batch's output buffer.
#[derive(Debug, Clone)]
pub struct InferResponse {
    pub outputs: Vec<NamedTensor>,
    /// When the execution that answered it ran.
    pub compute: ComputeTimes,
}

/// The instants of one batch execution, shared by every request in the
/// batch (Triton's COMPUTE_START, COMPUTE_INPUT_END, COMPUTE_OUTPUT_START
/// and COMPUTE_END).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComputeTimes {
    /// The instance took the batch; queueing ended.
    pub start: Instant,
    /// The inputs were gathered.
    pub input_end: Instant,
    /// The engine returned the outputs.
    pub output_start: Instant,
    /// The outputs were split among the requests.
    pub end: Instant,
}

pub(crate) type ResponseSender = oneshot::Sender<Result<InferResponse, SchedulerError>>;

/// The receiving half a front end awaits.
pub type ResponseReceiver = oneshot::Receiver<Result<InferResponse, SchedulerError>>;

/// A request in a queue together with the channel of its answer.
#[derive(Debug)]
pub(crate) struct Pending {
    pub request: InferRequest,
    pub reply: ResponseSender,
    /// Index of the priority level's queue.
    pub level: usize,
    /// When the queue timeout expires, if the level has one.
    pub deadline: Option<Instant>,
    /// The model's ragged inputs, which need not match in shape.
    pub layout: Arc<BatchLayout>,
}

impl Pending {
    /// Whether the client gave up waiting (connection closed, call cancelled).
    pub fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }
}
