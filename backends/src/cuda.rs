//! The `cuda` engine: ONNX models on an NVIDIA GPU, for instance groups of
//! kind KIND_GPU (and KIND_AUTO where a GPU is present).
//!
//! # Choice of executor
//!
//! The engine runs the model with its own small executor: the ONNX graph is
//! read (`graph`), shapes are inferred and each node becomes a cuBLAS call
//! (Gemm, MatMul) or a launch of ferrite's NVRTC-compiled kernels
//! (`ferrite-kernels`: element-wise ops, Softmax, Conv, pooling), scheduled
//! once per batch size (`schedule`). tract's own CUDA runtime (`tract-cuda`
//! 0.23) was not used: it compiles its kernels against the CUDA toolkit's
//! headers (cuda_fp16.h, CCCL), which a machine with only the driver and
//! the pip CUDA libraries lacks; it also needs cuDNN, runs on device 0 only
//! (so `gpus: [N]` could not be honoured), keeps one process-wide context
//! created with a panic on failure, and adds tract-transformers to the
//! build. The executor here needs libcuda, libnvrtc and libcublas only, all
//! loaded at run time.
//!
//! # Limits
//!
//! - Operators: Add, Sub, Mul, Div (FP32, FP16, INT32, INT64, with
//!   broadcasting up to rank 6), Relu, Sigmoid, Tanh, Gemm, MatMul (a 2-D
//!   right operand, or equal leading dimensions), Softmax, Conv (2-D,
//!   groups, dilations, pads, auto_pad), MaxPool and AveragePool (2-D,
//!   ceil_mode 0), GlobalAveragePool, Flatten, Reshape (constant shape),
//!   Identity (any fixed-size type) and Constant. Anything else, attributes
//!   included, fails the load naming the node; such models run on the CPU.
//! - Every dimension except the batch dimension must be fixed in the
//!   config; BYTES tensors cannot be held; external weight files are not
//!   read; every input must be given.
//! - One thread computes one output element of a kernel; convolutions are
//!   direct (no implicit GEMM, no cuDNN), which suits small models.
//!
//! # Instances, memory and overlap
//!
//! Each instance opens its device (`instance_group { gpus: [N] }` names it;
//! a device that does not exist fails the load, nothing runs elsewhere),
//! and owns a CUDA stream, a cuBLAS handle, one device arena holding every
//! value sized for `max_batch_size` (constants uploaded at load), and
//! pinned host staging buffers for inputs and outputs. An execution queues
//! all its copies and launches on the instance's stream and waits once at
//! the end, so the copies of one instance overlap the kernels of the others
//! on the same GPU (separate streams, separate copy engines); within one
//! instance the steps are ordered. Kernels are compiled once per compute
//! capability per process and shared by the instances of a device.
//!
//! # Precision
//!
//! FP32 models run in FP32 (cuBLAS with FP32 accumulation, no TF32). The
//! config parameter `precision` set to `"fp16"` stores FP32 values in FP16
//! on the device (arithmetic still in FP32 inside each kernel); inputs and
//! outputs stay FP32 and are converted on the device. Any other value than
//! `"fp32"` or `"fp16"` fails the load naming the parameter.

mod gemm;
mod graph;
mod layout;
mod runtime;
mod schedule;
#[cfg(test)]
mod tests;

use ferrite_kernels::{gpu as kgpu, Gpu, KernelError};
use ferrite_proto::inference::ModelConfig;

use crate::engine::io::{Binding, IoMap};
use crate::engine::parameters::SessionParameters;
use crate::{Backend, BackendError, InstanceSpec, NamedTensor, Tensor};

use graph::{Graph, ImportError};
use layout::{align, Layout, Precision};
use runtime::{HostTensor, Runtime};
use schedule::Schedule;

pub use ferrite_kernels::checks::{max_relative_difference, CheckResult};
pub use ferrite_kernels::DeviceProperties as DeviceInfo;

const ENGINE: &str = "cuda";

/// The config parameter choosing the precision.
pub const PRECISION_PARAMETER: &str = "precision";

/// Checks that the CUDA libraries the engine needs can be loaded. cudarc
/// panics on a missing library, so this runs before any CUDA call.
fn libraries() -> Result<(), String> {
    kgpu::driver_library().map_err(|e| e.to_string())?;
    kgpu::nvrtc_library().map_err(|e| e.to_string())?;
    // SAFETY: only tries to load the library by its known names.
    if unsafe { cudarc::cublas::sys::is_culib_present() } {
        Ok(())
    } else {
        Err(
            "cuBLAS (libcublas.so.12) could not be loaded; install it (pip: nvidia-cublas-cu12) \
             and add its lib folder to LD_LIBRARY_PATH"
                .into(),
        )
    }
}

/// Whether a GPU is usable: the driver, NVRTC and cuBLAS libraries load
/// and the driver sees at least one device. Gives device 0's properties, or
/// says plainly what is missing. Every GPU decision goes through this probe
/// or [`device`].
pub fn available() -> Result<DeviceInfo, String> {
    device(0)
}

/// Like [`available`], for device `ordinal`.
pub fn device(ordinal: usize) -> Result<DeviceInfo, String> {
    libraries()?;
    kgpu::probe(ordinal).map_err(|e| e.to_string())
}

/// The NVRTC version, (major, minor), once the libraries are known present.
pub fn nvrtc_version() -> Result<(i32, i32), String> {
    libraries()?;
    ferrite_kernels::compile::nvrtc_version().map_err(|e| e.to_string())
}

/// Runs every kernel and the cuBLAS products on device `ordinal` against
/// their CPU references.
pub fn kernel_checks(ordinal: usize) -> Result<Vec<CheckResult>, String> {
    device(ordinal)?;
    let gpu = Gpu::open(ordinal).map_err(|e| e.to_string())?;
    let mut results = ferrite_kernels::checks::run_all(&gpu);
    results.extend(gemm::device_checks(&gpu));
    Ok(results)
}

/// Reads the `precision` parameter.
fn precision(config: &ModelConfig) -> Result<Precision, String> {
    match config
        .parameters
        .get(PRECISION_PARAMETER)
        .map(|p| p.string_value.trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("fp32") => Ok(Precision::Fp32),
        Some("fp16") => Ok(Precision::Fp16),
        Some(other) => Err(format!(
            "parameter '{PRECISION_PARAMETER}' is \"{other}\"; expected \"fp32\" or \"fp16\""
        )),
    }
}

/// One model instance on a GPU.
pub struct CudaBackend {
    graph: Graph,
    io: IoMap,
    layout: Layout,
    batching: bool,
    /// Each graph input's dimensions after the batch dimension (all of them
    /// for a model that does not batch).
    input_dims: Vec<Vec<usize>>,
    /// Schedules by batch size (index 0 for a model that does not batch).
    schedules: Vec<Option<Schedule>>,
    runtime: Runtime,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("io", &self.io)
            .field("arena_bytes", &self.layout.size)
            .finish_non_exhaustive()
    }
}

impl CudaBackend {
    /// Loads the spec's model onto GPU `device`.
    pub fn load(spec: &InstanceSpec, device: usize) -> Result<Self, BackendError> {
        let path = spec.model_file.display().to_string();
        let load_error = |reason: String| BackendError::Load {
            engine: ENGINE,
            path: path.clone(),
            reason,
        };
        let config = spec.config;
        let precision = precision(config).map_err(load_error)?;
        let mut params = SessionParameters::from_config(config).map_err(load_error)?;
        params.unknown.retain(|p| p != PRECISION_PARAMETER);
        let without_effect = params.onnxruntime_only();
        if !without_effect.is_empty() {
            tracing::warn!(
                model = spec.model_name,
                "{without_effect:?} only apply to ONNX Runtime and have no effect with the cuda \
                 engine"
            );
        }
        if !params.unknown.is_empty() {
            tracing::warn!(
                model = spec.model_name,
                "config parameters {:?} are not used by the cuda engine",
                params.unknown
            );
        }
        let graph = graph::import(spec.model_file).map_err(|e| match e {
            ImportError::Unsupported(reason) => BackendError::Unsupported(format!(
                "model '{}' cannot run on the GPU: {reason}; serve it with KIND_CPU",
                spec.model_name
            )),
            ImportError::Invalid(reason) => load_error(reason),
        })?;
        let io = IoMap::new(config, &graph.signature).map_err(load_error)?;
        if io.is_ragged() {
            return Err(BackendError::Unsupported(format!(
                "model '{}' uses ragged batching (allow_ragged_batch, batch_input or \
                 batch_output), which the cuda engine does not support; serve it with KIND_CPU",
                spec.model_name
            )));
        }
        let batching = io.is_batching();
        let max_batch = usize::try_from(config.max_batch_size).unwrap_or(0);
        let mut input_dims = vec![Vec::new(); graph.inputs.len()];
        for binding in io.inputs() {
            let dims = io.model_dims(binding);
            let rest = if batching { &dims[1..] } else { &dims[..] };
            let fixed = rest
                .iter()
                .map(|&d| usize::try_from(d).ok())
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| {
                    BackendError::Unsupported(format!(
                        "model '{}': input '{}' has dims {dims:?}; the cuda engine needs every \
                         dimension but the batch dimension fixed",
                        spec.model_name, binding.name
                    ))
                })?;
            input_dims[binding.model_index] = fixed;
        }
        let largest = schedule::schedule(&graph, &shapes(&input_dims, batching, max_batch))
            .map_err(load_error)?;
        let layout = Layout::new(&graph, &largest, precision).map_err(|reason| {
            BackendError::Unsupported(format!("model '{}': {reason}", spec.model_name))
        })?;
        layout.fits(&graph, &largest).map_err(load_error)?;
        let host_bytes = |values: &[usize]| -> usize {
            values
                .iter()
                .map(|&v| {
                    let elements: usize = largest.shapes[v].iter().product();
                    let s = layout.storage[v];
                    align(elements * if s.narrowed { 4 } else { s.size })
                })
                .sum()
        };
        self::device(device)
            .map_err(|reason| load_error(format!("no usable GPU {device}: {reason}")))?;
        let gpu = Gpu::open(device).map_err(|e| match e {
            KernelError::Unavailable(reason) => {
                load_error(format!("no usable GPU {device}: {reason}"))
            }
            other => load_error(other.to_string()),
        })?;
        let properties = gpu.properties().clone();
        let mut runtime = Runtime::new(
            gpu,
            &layout,
            (host_bytes(&graph.inputs), graph.inputs.len()),
            (host_bytes(&graph.outputs), graph.outputs.len()),
        )
        .map_err(load_error)?;
        runtime
            .upload_constants(&graph, &layout)
            .map_err(load_error)?;
        let mut schedules = vec![None; if batching { max_batch + 1 } else { 1 }];
        let index = if batching { max_batch } else { 0 };
        schedules[index] = Some(largest);
        tracing::info!(
            model = spec.model_name,
            instance = spec.instance_index,
            gpu = device,
            device = %properties.name,
            ?precision,
            arena_mib = layout.size as f64 / (1024.0 * 1024.0),
            "model instance loaded on the GPU"
        );
        Ok(Self {
            graph,
            io,
            layout,
            batching,
            input_dims,
            schedules,
            runtime,
        })
    }
}

/// The schedule for a batch size, built (and checked against the layout)
/// the first time that size is seen.
fn schedule_for<'s>(
    graph: &Graph,
    layout: &Layout,
    input_dims: &[Vec<usize>],
    schedules: &'s mut [Option<Schedule>],
    batching: bool,
    batch: usize,
) -> Result<&'s Schedule, BackendError> {
    let index = if batching { batch } else { 0 };
    let slot = schedules.get_mut(index).ok_or_else(|| {
        BackendError::InvalidInput(format!("batch size {batch} exceeds max_batch_size"))
    })?;
    if slot.is_none() {
        let built = schedule::schedule(graph, &shapes(input_dims, batching, batch))
            .map_err(|e| BackendError::execution(ENGINE, e))?;
        layout
            .fits(graph, &built)
            .map_err(|e| BackendError::execution(ENGINE, e))?;
        *slot = Some(built);
    }
    slot.as_ref()
        .ok_or_else(|| BackendError::execution(ENGINE, "no schedule was built"))
}

/// The input shapes for a batch size.
fn shapes(dims: &[Vec<usize>], batching: bool, batch: usize) -> Vec<Vec<usize>> {
    dims.iter()
        .map(|d| {
            if batching {
                std::iter::once(batch).chain(d.iter().copied()).collect()
            } else {
                d.clone()
            }
        })
        .collect()
}

impl Backend for CudaBackend {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn execute(
        &mut self,
        inputs: &[NamedTensor],
        outputs: &[String],
    ) -> Result<Vec<NamedTensor>, BackendError> {
        let Self {
            graph,
            io,
            layout,
            batching,
            input_dims,
            schedules,
            runtime,
        } = self;
        let prepared = io.prepare_inputs(inputs)?;
        if prepared.len() != graph.inputs.len() {
            return Err(BackendError::InvalidInput(format!(
                "the cuda engine needs every input of the model; the model has {}, the request \
                 gives {}",
                graph.inputs.len(),
                prepared.len()
            )));
        }
        let batch = if *batching {
            let batch = prepared[0].shape.first().copied().unwrap_or(0);
            if let Some(other) = prepared
                .iter()
                .find(|p| p.shape.first().copied() != Some(batch))
            {
                return Err(BackendError::InvalidInput(format!(
                    "input '{}' has batch size {:?}, input '{}' has {batch}",
                    other.binding.name,
                    other.shape.first(),
                    prepared[0].binding.name
                )));
            }
            usize::try_from(batch)
                .ok()
                .filter(|&b| b > 0)
                .ok_or_else(|| {
                    BackendError::InvalidInput(format!("batch size {batch} is not positive"))
                })?
        } else {
            0
        };
        let host: Vec<HostTensor> = prepared
            .iter()
            .map(|p| HostTensor {
                value: graph.inputs[p.binding.model_index],
                bytes: p.tensor.data(),
            })
            .collect();
        let selected: Vec<Binding> = io.select_outputs(outputs)?.into_iter().cloned().collect();
        let wanted: Vec<usize> = selected
            .iter()
            .map(|b| graph.outputs[b.model_index])
            .collect();
        let schedule = schedule_for(graph, layout, input_dims, schedules, *batching, batch)?;
        let data = runtime
            .execute(layout, schedule, &host, &wanted)
            .map_err(|e| BackendError::execution(ENGINE, e))?;
        let mut produced = Vec::with_capacity(selected.len());
        for (binding, bytes) in selected.into_iter().zip(data) {
            let value = graph.outputs[binding.model_index];
            let shape: Vec<i64> = schedule.shapes[value].iter().map(|&d| d as i64).collect();
            let shape = io
                .output_shape(&binding, &shape)
                .map_err(|e| BackendError::execution(ENGINE, e))?;
            let tensor = Tensor::new(binding.dtype, shape, bytes).map_err(|e| {
                BackendError::execution(ENGINE, format!("output '{}': {e}", binding.name))
            })?;
            produced.push(NamedTensor::new(binding.name, tensor));
        }
        Ok(produced)
    }
}
