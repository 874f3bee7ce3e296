//! A loaded model version: its config, its tensor signature, its scheduler,
//! and the validation every request passes before it reaches the queue.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use ferrite_backends::{DataType, EngineKind, NamedTensor};
use ferrite_proto::inference::{DataType as ConfigType, ModelConfig};
use ferrite_scheduler::{
    FailureReason, InferRequest, InferResponse, ModelScheduler, StatsSnapshot,
};

use crate::error::ServerError;
use crate::trace::{Activity, RequestTrace, TensorActivity};

/// One input or output as the config declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DataType,
    /// Dims without the batch dimension; -1 is variable.
    pub dims: Vec<i64>,
    /// Whether a request may leave this input out.
    pub optional: bool,
}

impl TensorSpec {
    fn from_config(
        name: &str,
        data_type: i32,
        dims: &[i64],
        optional: bool,
    ) -> Result<Self, String> {
        let dtype = ConfigType::try_from(data_type)
            .ok()
            .and_then(DataType::from_config)
            .ok_or_else(|| format!("tensor '{name}' has no valid data_type"))?;
        Ok(Self {
            name: name.to_string(),
            dtype,
            dims: dims.to_vec(),
            optional,
        })
    }

    /// The shape clients see in metadata: a leading -1 for batching models.
    pub fn full_shape(&self, batching: bool) -> Vec<i64> {
        let mut shape = Vec::with_capacity(self.dims.len() + 1);
        if batching {
            shape.push(-1);
        }
        shape.extend_from_slice(&self.dims);
        shape
    }
}

/// How a request asks to be scheduled: Triton's `priority` (1 is the
/// highest, 0 the model's default) and `timeout` (queue timeout, honoured
/// where the model's queue policy allows overrides).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schedule {
    pub priority: u32,
    pub timeout: Option<Duration>,
}

/// A model version ready to serve.
#[derive(Debug)]
pub struct LoadedModel {
    pub name: String,
    pub version: i64,
    pub config: ModelConfig,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    pub engine: EngineKind,
    /// How long loading took (reported as `nv_model_load_duration_secs`);
    /// the loader sets it once the model is ready.
    pub load_duration: Duration,
    scheduler: ModelScheduler,
}

impl LoadedModel {
    pub fn new(
        version: i64,
        config: ModelConfig,
        engine: EngineKind,
        scheduler: ModelScheduler,
    ) -> Result<Self, String> {
        let inputs = config
            .input
            .iter()
            .map(|i| TensorSpec::from_config(&i.name, i.data_type, &i.dims, i.optional))
            .collect::<Result<_, _>>()?;
        let outputs = config
            .output
            .iter()
            .map(|o| TensorSpec::from_config(&o.name, o.data_type, &o.dims, false))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: config.name.clone(),
            version,
            inputs,
            outputs,
            engine,
            config,
            load_duration: Duration::ZERO,
            scheduler,
        })
    }

    pub fn max_batch_size(&self) -> usize {
        usize::try_from(self.config.max_batch_size).unwrap_or(0)
    }

    pub fn batching(&self) -> bool {
        self.config.max_batch_size > 0
    }

    pub fn input(&self, name: &str) -> Option<&TensorSpec> {
        self.inputs.iter().find(|i| i.name == name)
    }

    pub fn output(&self, name: &str) -> Option<&TensorSpec> {
        self.outputs.iter().find(|o| o.name == name)
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.scheduler.stats().snapshot()
    }

    /// Requests accepted and waiting for an instance.
    pub fn pending(&self) -> usize {
        self.scheduler.queued()
    }

    /// Checks a request against the config and returns its batch size
    /// (1 for models that do not batch). Messages follow Triton's.
    pub fn validate(
        &self,
        inputs: &[NamedTensor],
        outputs: &[String],
    ) -> Result<usize, ServerError> {
        let mut seen = HashSet::with_capacity(inputs.len());
        let mut batch: Option<i64> = None;
        for input in inputs {
            if !seen.insert(input.name.as_str()) {
                return Err(ServerError::invalid(format!(
                    "input '{}' appears more than once in the request for model '{}'",
                    input.name, self.name
                )));
            }
            let spec = self.input(&input.name).ok_or_else(|| {
                ServerError::invalid(format!(
                    "unexpected inference input '{}' for model '{}'",
                    input.name, self.name
                ))
            })?;
            let dtype = input.tensor.dtype();
            if dtype != spec.dtype {
                return Err(ServerError::invalid(format!(
                    "inference input '{}' data-type is '{dtype}', but model '{}' expects '{}'",
                    input.name, self.name, spec.dtype
                )));
            }
            let shape = input.tensor.shape();
            let dims = if self.batching() {
                let Some((&first, rest)) = shape.split_first() else {
                    return Err(self.shape_error(spec, shape));
                };
                if let Some(previous) = batch.filter(|&b| b != first) {
                    return Err(ServerError::invalid(format!(
                        "input '{}' has batch size {first} but other inputs of the request to model '{}' have {previous}",
                        input.name, self.name
                    )));
                }
                batch = Some(first);
                rest
            } else {
                shape
            };
            let matches = dims.len() == spec.dims.len()
                && dims
                    .iter()
                    .zip(&spec.dims)
                    .all(|(&got, &want)| want == -1 || got == want);
            if !matches {
                return Err(self.shape_error(spec, shape));
            }
        }
        let missing: Vec<&str> = self
            .inputs
            .iter()
            .filter(|s| !s.optional && !seen.contains(s.name.as_str()))
            .map(|s| s.name.as_str())
            .collect();
        if !missing.is_empty() {
            return Err(ServerError::invalid(format!(
                "expected {} inputs but got {} inputs for model '{}'; missing required input(s) {:?}",
                self.inputs.iter().filter(|s| !s.optional).count(),
                inputs.len(),
                self.name,
                missing
            )));
        }
        for output in outputs {
            if self.output(output).is_none() {
                return Err(ServerError::invalid(format!(
                    "unexpected inference output '{output}' for model '{}'",
                    self.name
                )));
            }
        }
        let Some(batch) = batch else {
            return Ok(1);
        };
        if batch < 1 || batch > i64::from(self.config.max_batch_size) {
            return Err(ServerError::invalid(format!(
                "inference request batch-size must be <= {} for '{}', got {batch}",
                self.config.max_batch_size, self.name
            )));
        }
        Ok(usize::try_from(batch).unwrap_or(1))
    }

    fn shape_error(&self, spec: &TensorSpec, shape: &[i64]) -> ServerError {
        ServerError::invalid(format!(
            "unexpected shape for input '{}' for model '{}'. Expected {:?}, got {:?}",
            spec.name,
            self.name,
            spec.full_shape(self.batching()),
            shape
        ))
    }

    /// Validates and runs a request, waiting for its answer. A sampled
    /// request's `trace` records when it starts, is queued and ends.
    pub async fn infer(
        &self,
        inputs: Vec<NamedTensor>,
        outputs: Vec<String>,
        arrival: Instant,
        schedule: Schedule,
        mut trace: Option<&mut RequestTrace>,
    ) -> Result<InferResponse, ServerError> {
        if let Some(trace) = trace.as_deref_mut() {
            trace.mark(Activity::RequestStart);
        }
        let result = self
            .run(inputs, outputs, arrival, schedule, trace.as_deref_mut())
            .await;
        if let Some(trace) = trace {
            trace.mark(Activity::RequestEnd);
            if let Ok(response) = &result {
                trace.set_compute(response.compute);
                trace.record_tensors(TensorActivity::BackendOutput, &response.outputs);
            }
        }
        result
    }

    async fn run(
        &self,
        inputs: Vec<NamedTensor>,
        outputs: Vec<String>,
        arrival: Instant,
        schedule: Schedule,
        trace: Option<&mut RequestTrace>,
    ) -> Result<InferResponse, ServerError> {
        let batch_size = match self.validate(&inputs, &outputs) {
            Ok(batch_size) => batch_size,
            Err(error) => {
                self.scheduler
                    .stats()
                    .record_failure(FailureReason::Other, arrival.elapsed());
                return Err(error);
            }
        };
        let request = InferRequest {
            inputs,
            outputs,
            batch_size,
            arrival,
            priority: schedule.priority,
            timeout: schedule.timeout,
        };
        if let Some(trace) = trace {
            trace.mark(Activity::QueueStart);
            trace.record_tensors(TensorActivity::QueueInput, &request.inputs);
        }
        let receiver = self
            .scheduler
            .submit(request)
            .map_err(|e| ServerError::from_scheduler(&self.name, e))?;
        match receiver.await {
            Ok(result) => result.map_err(|e| ServerError::from_scheduler(&self.name, e)),
            Err(_) => Err(ServerError::internal(format!(
                "model '{}' dropped the request without an answer",
                self.name
            ))),
        }
    }

    /// Stops the scheduler after queued requests are answered. Blocks.
    pub fn shutdown(self) {
        self.scheduler.shutdown();
    }
}
