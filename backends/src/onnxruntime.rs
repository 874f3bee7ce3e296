//! The `onnxruntime` engine: ONNX Runtime, loaded at run time through the
//! `ort` crate (see [`library`] for where the shared library comes from).
//!
//! Each instance owns one ONNX Runtime session. Fixed-size inputs are handed
//! to the session as views over the request's bytes (copied only when the
//! bytes are not aligned for their element type, or for BOOL, whose bytes are
//! normalised to 0/1); BYTES inputs become ONNX string tensors. Outputs are
//! copied once into [`Tensor`]s, BYTES outputs into the length-prefixed
//! layout.
//!
//! Session settings come from the config with the names of Triton's ONNX
//! Runtime backend: `intra_op_thread_count` (default 1 here, so that
//! instances do not oversubscribe the cores), `inter_op_thread_count`,
//! `execution_mode`, `enable_mem_arena`, `enable_mem_pattern`,
//! `session.use_device_allocator_for_initializers`,
//! `memory.enable_memory_arena_shrinkage` and `optimization { graph { level
//! } }`. The parameters Triton documents for the CUDA execution provider
//! (`cudnn_conv_algo_search`, `gpu_mem_limit`, `arena_extend_strategy`,
//! `do_copy_in_default_stream`) and `optimization.execution_accelerators`
//! are refused at load; parameters no engine reads are logged as unused.

mod library;
mod strings;
mod tensors;

use std::borrow::Cow;
use std::path::Path;

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{OutputSelector, RunOptions, Session, SessionInputValue};
use ort::value::ValueType;

use crate::engine::io::{IoMap, ModelSignature, ModelTensor};
use crate::engine::parameters::{GraphLevel, SessionParameters};
use crate::{Backend, BackendError, InstanceSpec, NamedTensor, Tensor};

const ENGINE: &str = "onnxruntime";

/// The ONNX Runtime shared library this process uses, found and loaded on
/// the first call (see the module documentation for the search order).
/// Libraries older than ONNX Runtime 1.22 are refused.
pub fn library() -> Result<&'static Path, BackendError> {
    library::runtime()
        .map(|runtime| runtime.path.as_path())
        .map_err(|reason| BackendError::Unsupported(format!("ONNX Runtime: {reason}")))
}

/// The version string the loaded library reports (e.g. "1.22.1").
pub fn library_version() -> Result<&'static str, BackendError> {
    library::runtime()
        .map(|runtime| runtime.version.as_str())
        .map_err(|reason| BackendError::Unsupported(format!("ONNX Runtime: {reason}")))
}

/// One model instance served by ONNX Runtime.
pub struct OnnxRuntimeBackend {
    session: Session,
    io: IoMap,
    arena_shrinkage: Option<String>,
}

impl std::fmt::Debug for OnnxRuntimeBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxRuntimeBackend")
            .field("io", &self.io)
            .finish_non_exhaustive()
    }
}

impl OnnxRuntimeBackend {
    /// Creates a session for the spec's model file, with the config's
    /// session settings, and checks the config against the model.
    pub fn load(spec: &InstanceSpec) -> Result<Self, BackendError> {
        let load_error = |reason: String| BackendError::Load {
            engine: ENGINE,
            path: spec.model_file.display().to_string(),
            reason,
        };
        let runtime = library::runtime()
            .map_err(|reason| BackendError::Unsupported(format!("ONNX Runtime: {reason}")))?;
        let params = SessionParameters::from_config(spec.config).map_err(load_error)?;
        if !params.unknown.is_empty() {
            tracing::warn!(
                model = spec.model_name,
                "config parameters {:?} are not used by the onnxruntime engine",
                params.unknown
            );
        }
        let session = build_session(runtime, spec.model_file, &params).map_err(load_error)?;
        let signature = signature(&session).map_err(load_error)?;
        let io = IoMap::new(spec.config, &signature).map_err(load_error)?;
        tracing::debug!(
            model = spec.model_name,
            instance = spec.instance_index,
            intra_op_threads = params.intra_op_threads,
            "ONNX Runtime session ready"
        );
        Ok(Self {
            session,
            io,
            arena_shrinkage: params.arena_shrinkage,
        })
    }
}

fn build_session(
    runtime: &library::Runtime,
    path: &Path,
    params: &SessionParameters,
) -> Result<Session, String> {
    let text = |e: ort::Error<ort::session::builder::SessionBuilder>| e.to_string();
    let mut builder = Session::builder(&runtime.environment)
        .map_err(|e| e.to_string())?
        .with_intra_threads(params.intra_op_threads)
        .map_err(text)?
        .with_optimization_level(match params.graph_level {
            GraphLevel::All => GraphOptimizationLevel::All,
            GraphLevel::Basic => GraphOptimizationLevel::Level1,
            GraphLevel::Extended => GraphOptimizationLevel::Level2,
            GraphLevel::Disabled => GraphOptimizationLevel::Disable,
        })
        .map_err(text)?;
    if let Some(threads) = params.inter_op_threads {
        builder = builder.with_inter_threads(threads).map_err(text)?;
    }
    if let Some(parallel) = params.parallel_execution {
        builder = builder.with_parallel_execution(parallel).map_err(text)?;
    }
    if let Some(enable) = params.mem_pattern {
        builder = builder.with_memory_pattern(enable).map_err(text)?;
    }
    if let Some(enable) = params.device_allocator_for_initializers {
        builder = builder
            .with_config_entry(
                "session.use_device_allocator_for_initializers",
                if enable { "1" } else { "0" },
            )
            .map_err(text)?;
    }
    runtime.register_cpu_provider(&mut builder, params.mem_arena.unwrap_or(true))?;
    builder.commit_from_file(path).map_err(|e| e.to_string())
}

fn signature(session: &Session) -> Result<ModelSignature, String> {
    let describe = |outlet: &ort::value::Outlet| -> Result<ModelTensor, String> {
        let ValueType::Tensor { ty, shape, .. } = outlet.dtype() else {
            return Err(format!(
                "'{}' is a {} value; only tensors can be served",
                outlet.name(),
                outlet.dtype()
            ));
        };
        Ok(ModelTensor {
            name: outlet.name().to_string(),
            dtype: Some(tensors::data_type(*ty).ok_or_else(|| format!("{ty:?}"))),
            dims: Some(shape.iter().map(|&d| (d >= 0).then_some(d)).collect()),
        })
    };
    Ok(ModelSignature {
        inputs: session
            .inputs()
            .iter()
            .map(describe)
            .collect::<Result<_, _>>()?,
        outputs: session
            .outputs()
            .iter()
            .map(describe)
            .collect::<Result<_, _>>()?,
    })
}

impl Backend for OnnxRuntimeBackend {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn execute(
        &mut self,
        inputs: &[NamedTensor],
        outputs: &[String],
    ) -> Result<Vec<NamedTensor>, BackendError> {
        let prepared = self.io.prepare_inputs(inputs)?;
        let selected = self.io.select_outputs(outputs)?;
        let mut values: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            Vec::with_capacity(prepared.len());
        for input in &prepared {
            let value =
                tensors::input_value(input.tensor, input.shape.to_vec()).map_err(|reason| {
                    BackendError::InvalidInput(format!("input '{}': {reason}", input.binding.name))
                })?;
            values.push((Cow::Borrowed(input.binding.name.as_str()), value));
        }
        let mut selector = OutputSelector::no_default();
        for binding in &selected {
            selector = selector.with(binding.name.as_str());
        }
        let mut options = RunOptions::new().map_err(|e| BackendError::execution(ENGINE, e))?;
        if let Some(devices) = &self.arena_shrinkage {
            options
                .set("memory.enable_memory_arena_shrinkage", devices)
                .map_err(|e| BackendError::execution(ENGINE, e))?;
        }
        let options = options.with_outputs(selector);
        let mut results = self
            .session
            .run_with_options(values, &options)
            .map_err(|e| BackendError::execution(ENGINE, e))?;
        let mut produced = Vec::with_capacity(selected.len());
        for binding in selected {
            let value = results.remove(binding.name.as_str()).ok_or_else(|| {
                BackendError::execution(
                    ENGINE,
                    format!("the session returned no output '{}'", binding.name),
                )
            })?;
            let (dtype, shape, data) = tensors::output_parts(&value).map_err(|reason| {
                BackendError::execution(ENGINE, format!("output '{}': {reason}", binding.name))
            })?;
            if dtype != binding.dtype {
                return Err(BackendError::execution(
                    ENGINE,
                    format!(
                        "output '{}' came back as {dtype}, the config declares {}",
                        binding.name, binding.dtype
                    ),
                ));
            }
            let shape = self
                .io
                .output_shape(binding, &shape)
                .map_err(|e| BackendError::execution(ENGINE, e))?;
            let tensor = Tensor::new(dtype, shape, data).map_err(|e| {
                BackendError::execution(ENGINE, format!("output '{}': {e}", binding.name))
            })?;
            produced.push(NamedTensor::new(binding.name.clone(), tensor));
        }
        Ok(produced)
    }
}
