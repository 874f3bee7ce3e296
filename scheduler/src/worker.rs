//! An instance worker: one OS thread that owns one backend instance and
//! executes the batches the batcher hands it.

use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use ferrite_backends::Backend;

use crate::batch::{requested_outputs, scatter, GatherBuffers};
use crate::ragged::BatchLayout;
use crate::request::{ComputeTimes, InferRequest, InferResponse, Pending};
use crate::stats::{ExecutionTimes, FailureReason, ModelStats};
use crate::SchedulerError;

pub(crate) struct Worker {
    pub index: usize,
    pub backend: Box<dyn Backend>,
    pub batches: Receiver<Vec<Pending>>,
    pub idle: Sender<usize>,
    pub stats: Arc<ModelStats>,
    pub batched: bool,
    pub layout: Arc<BatchLayout>,
}

impl Worker {
    /// Runs until the batcher closes this worker's channel.
    pub fn run(mut self) {
        let mut buffers = GatherBuffers::default();
        if self.idle.send(self.index).is_err() {
            return;
        }
        while let Ok(batch) = self.batches.recv() {
            self.execute(batch, &mut buffers);
            if self.idle.send(self.index).is_err() {
                break;
            }
        }
    }

    fn execute(&mut self, batch: Vec<Pending>, buffers: &mut GatherBuffers) {
        let (live, gone): (Vec<Pending>, Vec<Pending>) =
            batch.into_iter().partition(|p| !p.abandoned());
        for _ in &gone {
            self.stats.record_abandoned();
        }
        if live.is_empty() {
            return;
        }
        let start = Instant::now();
        let requests: Vec<&InferRequest> = live.iter().map(|p| &p.request).collect();
        let result = self.run_batch(&requests, buffers, start);
        let rows: usize = requests.iter().map(|r| r.batch_size).sum();
        match result {
            Ok((outputs, compute)) => {
                let times = ExecutionTimes {
                    compute_input: compute.input_end - compute.start,
                    compute_infer: compute.output_start - compute.input_end,
                    compute_output: compute.end - compute.output_start,
                };
                self.stats.record_execution(rows, times);
                let done = Instant::now();
                for (pending, outputs) in live.into_iter().zip(outputs) {
                    let queue = start.saturating_duration_since(pending.request.arrival);
                    let total = done.saturating_duration_since(pending.request.arrival);
                    self.stats.record_success(total, queue, times);
                    let _ = pending.reply.send(Ok(InferResponse { outputs, compute }));
                }
            }
            Err(error) => {
                let done = Instant::now();
                for pending in live {
                    self.stats.record_failure(
                        FailureReason::Backend,
                        done.saturating_duration_since(pending.request.arrival),
                    );
                    let _ = pending.reply.send(Err(error.clone()));
                }
            }
        }
    }

    fn run_batch(
        &mut self,
        requests: &[&InferRequest],
        buffers: &mut GatherBuffers,
        start: Instant,
    ) -> Result<(Vec<Vec<ferrite_backends::NamedTensor>>, ComputeTimes), SchedulerError> {
        let inputs = buffers
            .gather(requests, &self.layout)
            .map_err(SchedulerError::Internal)?;
        let wanted = requested_outputs(requests);
        let gathered = Instant::now();
        let outputs = self
            .backend
            .execute(&inputs, &wanted)
            .map_err(|e| SchedulerError::Execution(e.to_string()))?;
        let executed = Instant::now();
        buffers.reclaim(inputs);
        let per_request = scatter(&outputs, requests, self.batched, &self.layout)
            .map_err(SchedulerError::Internal)?;
        let compute = ComputeTimes {
            start,
            input_end: gathered,
            output_start: executed,
            end: Instant::now(),
        };
        Ok((per_request, compute))
    }
}
