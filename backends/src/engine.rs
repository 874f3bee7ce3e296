//! Choosing an execution engine for a model and loading its instances.
//!
//! A config selects the engine the way Triton does: `platform:
//! "onnxruntime_onnx"` or `backend: "onnxruntime"` asks for ONNX Runtime,
//! which is loaded from a shared library at run time. Where no usable library
//! is found, tract (compiled in) serves the ONNX file instead and a warning
//! says why. `backend: "tract"` asks for tract explicitly. Instance groups
//! placed on a GPU ask for the `cuda` engine ([`resolve_gpu_engine`]).

pub(crate) mod io;
pub(crate) mod parameters;

use std::fmt;
use std::path::Path;

use ferrite_proto::inference::ModelConfig;

use crate::cuda::CudaBackend;
use crate::onnxruntime::OnnxRuntimeBackend;
use crate::tract::TractBackend;
use crate::{Backend, BackendError};

/// The platform name Triton gives ONNX models.
const ONNX_PLATFORM: &str = "onnxruntime_onnx";

/// The engines this build can run a model with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineKind {
    /// ONNX Runtime, loaded at run time through the `ort` crate.
    OnnxRuntime,
    /// tract, the pure-Rust ONNX engine compiled into ferrite.
    Tract,
    /// ferrite's CUDA engine, on GPU `device`.
    Cuda {
        /// The device ordinal the instance runs on.
        device: usize,
    },
}

impl EngineKind {
    /// The engine's name as configs, logs and errors spell it.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::OnnxRuntime => "onnxruntime",
            EngineKind::Tract => "tract",
            EngineKind::Cuda { .. } => "cuda",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything needed to load one instance of a model.
#[derive(Debug, Clone, Copy)]
pub struct InstanceSpec<'a> {
    /// The model's name, for logs and errors.
    pub model_name: &'a str,
    /// The ONNX file of the version being loaded.
    pub model_file: &'a Path,
    /// The model's config, validated and auto-completed already.
    pub config: &'a ModelConfig,
    /// The engine chosen by [`resolve_engine`].
    pub engine: EngineKind,
    /// Which instance of the model this is (0-based), for logs.
    pub instance_index: usize,
}

/// Chooses the engine for a config.
///
/// `backend: "tract"` selects tract. `platform: "onnxruntime_onnx"` or
/// `backend: "onnxruntime"` selects ONNX Runtime when its library can be
/// loaded (see [`crate::onnxruntime::library`]), and tract otherwise, with a
/// warning giving the reason. Any other platform or backend is
/// [`BackendError::Unsupported`].
pub fn resolve_engine(config: &ModelConfig) -> Result<EngineKind, BackendError> {
    let backend = config.backend.as_str();
    let platform = config.platform.as_str();
    if !platform.is_empty() && platform != ONNX_PLATFORM {
        return Err(BackendError::Unsupported(format!(
            "model '{}': platform '{platform}' is not supported; ferrite serves ONNX models \
             (platform '{ONNX_PLATFORM}', backend 'onnxruntime' or 'tract')",
            config.name
        )));
    }
    if backend == "tract" {
        return Ok(EngineKind::Tract);
    }
    if backend == "onnxruntime" || (backend.is_empty() && platform == ONNX_PLATFORM) {
        return match crate::onnxruntime::library() {
            Ok(_) => Ok(EngineKind::OnnxRuntime),
            Err(err) => {
                tracing::warn!(
                    model = %config.name,
                    "ONNX Runtime is not available ({err}); serving the model with tract, \
                     the embedded ONNX engine"
                );
                Ok(EngineKind::Tract)
            }
        };
    }
    if backend.is_empty() {
        return Err(BackendError::Unsupported(format!(
            "model '{}': the config names neither a platform nor a backend; set \
             platform: \"{ONNX_PLATFORM}\" or backend: \"onnxruntime\" or \"tract\"",
            config.name
        )));
    }
    Err(BackendError::Unsupported(format!(
        "model '{}': backend '{backend}' is not supported; ferrite provides the \
         'onnxruntime' and 'tract' backends",
        config.name
    )))
}

/// Chooses the engine for instances of a config placed on GPU `device`:
/// the `cuda` engine, when the config names an ONNX platform or the
/// `onnxruntime` backend (the CPU-only `tract` backend is refused) and the
/// device is usable. The error says why not (no driver, no such device).
pub fn resolve_gpu_engine(config: &ModelConfig, device: usize) -> Result<EngineKind, BackendError> {
    let backend = config.backend.as_str();
    if backend == "tract" {
        return Err(BackendError::Unsupported(format!(
            "model '{}': backend 'tract' runs on the CPU only; use KIND_CPU or another backend",
            config.name
        )));
    }
    if !names_onnx(config)? {
        return Err(BackendError::Unsupported(format!(
            "model '{}': the config names neither a platform nor a backend; set \
             platform: \"{ONNX_PLATFORM}\" or backend: \"onnxruntime\"",
            config.name
        )));
    }
    crate::cuda::device(device)
        .map(|_| EngineKind::Cuda { device })
        .map_err(|reason| BackendError::Unsupported(format!("no usable GPU {device}: {reason}")))
}

/// Checks the platform and backend names of a config: `true` for an ONNX
/// model, `false` when it names neither, an error for anything else.
fn names_onnx(config: &ModelConfig) -> Result<bool, BackendError> {
    let backend = config.backend.as_str();
    let platform = config.platform.as_str();
    if !platform.is_empty() && platform != ONNX_PLATFORM {
        return Err(BackendError::Unsupported(format!(
            "model '{}': platform '{platform}' is not supported; ferrite serves ONNX models \
             (platform '{ONNX_PLATFORM}', backend 'onnxruntime' or 'tract')",
            config.name
        )));
    }
    match backend {
        "" if platform.is_empty() => Ok(false),
        "" | "onnxruntime" | "tract" => Ok(true),
        other => Err(BackendError::Unsupported(format!(
            "model '{}': backend '{other}' is not supported; ferrite provides the \
             'onnxruntime' and 'tract' backends",
            config.name
        ))),
    }
}

/// Loads one instance of a model with the engine named in the spec. Called
/// once per instance, on or before the thread that will run it.
pub fn create_instance(spec: &InstanceSpec) -> Result<Box<dyn Backend>, BackendError> {
    tracing::debug!(
        model = spec.model_name,
        instance = spec.instance_index,
        engine = %spec.engine,
        file = %spec.model_file.display(),
        "loading model instance"
    );
    Ok(match spec.engine {
        EngineKind::OnnxRuntime => Box::new(OnnxRuntimeBackend::load(spec)?),
        EngineKind::Tract => Box::new(TractBackend::load(spec)?),
        EngineKind::Cuda { device } => Box::new(CudaBackend::load(spec, device)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(platform: &str, backend: &str) -> ModelConfig {
        ModelConfig {
            name: "m".into(),
            platform: platform.into(),
            backend: backend.into(),
            ..Default::default()
        }
    }

    #[test]
    fn names() {
        assert_eq!(EngineKind::OnnxRuntime.to_string(), "onnxruntime");
        assert_eq!(EngineKind::Tract.to_string(), "tract");
        assert_eq!(EngineKind::Cuda { device: 1 }.to_string(), "cuda");
    }

    #[test]
    fn gpu_engine_checks_the_config_then_the_device() {
        let err = resolve_gpu_engine(&config("", "tract"), 0).unwrap_err();
        assert!(err.to_string().contains("CPU only"), "{err}");
        let err = resolve_gpu_engine(&config("tensorflow_savedmodel", ""), 0).unwrap_err();
        assert!(err.to_string().contains("tensorflow_savedmodel"), "{err}");
        let err = resolve_gpu_engine(&config("", "python"), 0).unwrap_err();
        assert!(err.to_string().contains("backend 'python'"), "{err}");
        match resolve_gpu_engine(&config(ONNX_PLATFORM, ""), 4096) {
            Err(BackendError::Unsupported(reason)) => {
                assert!(reason.contains("no usable GPU 4096"), "{reason}")
            }
            other => panic!("device 4096 cannot exist: {other:?}"),
        }
    }

    #[test]
    fn tract_is_chosen_explicitly() {
        assert_eq!(
            resolve_engine(&config("", "tract")).unwrap(),
            EngineKind::Tract
        );
        assert_eq!(
            resolve_engine(&config(ONNX_PLATFORM, "tract")).unwrap(),
            EngineKind::Tract
        );
    }

    #[test]
    fn onnx_configs_get_an_onnx_engine() {
        for cfg in [config(ONNX_PLATFORM, ""), config("", "onnxruntime")] {
            let expected = if crate::onnxruntime::library().is_ok() {
                EngineKind::OnnxRuntime
            } else {
                EngineKind::Tract
            };
            assert_eq!(resolve_engine(&cfg).unwrap(), expected);
        }
    }

    #[test]
    fn other_platforms_are_unsupported() {
        let err = resolve_engine(&config("tensorflow_savedmodel", "")).unwrap_err();
        assert!(matches!(err, BackendError::Unsupported(_)));
        assert!(err.to_string().contains("tensorflow_savedmodel"), "{err}");
        let err = resolve_engine(&config("", "python")).unwrap_err();
        assert!(err.to_string().contains("backend 'python'"), "{err}");
        let err = resolve_engine(&config("", "")).unwrap_err();
        assert!(
            err.to_string().contains("neither a platform nor a backend"),
            "{err}"
        );
    }
}
