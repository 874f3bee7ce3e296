//! Choosing an execution engine for a model and loading its instances.
//!
//! A config selects the engine the way Triton does: `platform:
//! "onnxruntime_onnx"` or `backend: "onnxruntime"` asks for ONNX Runtime,
//! which is loaded from a shared library at run time. Where no usable library
//! is found, tract (compiled in) serves the ONNX file instead and a warning
//! says why. `backend: "tract"` asks for tract explicitly.

pub(crate) mod io;
pub(crate) mod parameters;

use std::fmt;
use std::path::Path;

use ferrite_proto::inference::ModelConfig;

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
}

impl EngineKind {
    /// The engine's name as configs, logs and errors spell it.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::OnnxRuntime => "onnxruntime",
            EngineKind::Tract => "tract",
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
