//! ferrite-backends: the [`Tensor`] and [`DataType`] that travel through the
//! server, the synchronous [`Backend`] trait that an instance worker drives,
//! and the execution engines, chosen at run time from the model config:
//!
//! - `onnxruntime` (Triton's name; `platform: "onnxruntime_onnx"` maps here):
//!   ONNX Runtime loaded at run time through the `ort` crate.
//! - `tract`: the pure-Rust fallback, used when no ONNX Runtime library can be
//!   found, or when a config asks for `backend: "tract"`.
//! - `cuda`: the GPU engine for KIND_GPU instance groups (CUDA loaded at run
//!   time; see [`cuda`] for what it runs and how).

pub mod bytes_codec;
pub mod cuda;
mod datatype;
mod engine;
pub mod onnxruntime;
mod tensor;
pub mod tract;

pub use datatype::DataType;
pub use engine::{create_instance, resolve_engine, resolve_gpu_engine, EngineKind, InstanceSpec};
pub use tensor::{element_count, NamedTensor, Tensor, TensorError};

/// Errors of the execution engines.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The model could not be loaded by the chosen engine.
    #[error("{engine} could not load {path}: {reason}")]
    Load {
        engine: &'static str,
        path: String,
        reason: String,
    },
    /// The config asks for an engine or a feature this build cannot provide.
    #[error("{0}")]
    Unsupported(String),
    /// The request's tensors do not fit the model.
    #[error("{0}")]
    InvalidInput(String),
    /// The engine failed while executing.
    #[error("{engine} execution failed: {reason}")]
    Execution {
        engine: &'static str,
        reason: String,
    },
}

impl BackendError {
    /// An execution failure of `engine`, with the engine's own reason.
    pub(crate) fn execution(engine: &'static str, reason: impl std::fmt::Display) -> Self {
        BackendError::Execution {
            engine,
            reason: reason.to_string(),
        }
    }
}

/// One loaded model instance. An instance worker owns it on its own thread and
/// calls it for one request or one batch at a time.
pub trait Backend: Send {
    /// The engine's name as logged and reported ("onnxruntime", "tract",
    /// "cuda").
    fn engine(&self) -> &'static str;

    /// Runs the model. `inputs` carry their full shapes (batch dimension
    /// included for batching models). `outputs` names the outputs wanted; an
    /// empty list means every output of the model, in the model's order.
    fn execute(
        &mut self,
        inputs: &[NamedTensor],
        outputs: &[String],
    ) -> Result<Vec<NamedTensor>, BackendError>;
}
