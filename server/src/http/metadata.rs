//! Server and model metadata documents.

use serde::Serialize;

use crate::model::{LoadedModel, TensorSpec};
use crate::state::{SERVER_NAME, SERVER_VERSION};

/// The protocol extensions this server provides, as server metadata lists
/// them.
pub const EXTENSIONS: [&str; 7] = [
    "binary_tensor_data",
    "logging",
    "model_configuration",
    "model_repository",
    "schedule_policy",
    "statistics",
    "trace",
];

/// The platform Triton reports for ONNX models run by ONNX Runtime.
const ONNX_PLATFORM: &str = "onnxruntime_onnx";

#[derive(Debug, Serialize)]
pub struct ServerMetadata {
    name: &'static str,
    version: &'static str,
    extensions: [&'static str; 7],
}

pub fn server() -> ServerMetadata {
    ServerMetadata {
        name: SERVER_NAME,
        version: SERVER_VERSION,
        extensions: EXTENSIONS,
    }
}

#[derive(Debug, Serialize)]
pub struct ModelMetadata<'a> {
    name: &'a str,
    versions: Vec<String>,
    platform: &'a str,
    inputs: Vec<TensorMetadata<'a>>,
    outputs: Vec<TensorMetadata<'a>>,
}

#[derive(Debug, Serialize)]
struct TensorMetadata<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: Vec<i64>,
}

/// Metadata of `model`, listing `versions`: the one asked for, or every
/// loaded version when none was.
pub fn model<'a>(model: &'a LoadedModel, versions: &[i64]) -> ModelMetadata<'a> {
    let batching = model.batching();
    let tensors = |specs: &'a [TensorSpec]| {
        specs
            .iter()
            .map(|spec| TensorMetadata {
                name: &spec.name,
                datatype: spec.dtype.kserve_name(),
                shape: spec.full_shape(batching),
            })
            .collect()
    };
    ModelMetadata {
        name: &model.name,
        versions: versions.iter().map(i64::to_string).collect(),
        platform: platform(&model.config.platform, &model.config.backend),
        inputs: tensors(&model.inputs),
        outputs: tensors(&model.outputs),
    }
}

/// The config's platform; configs that name only the `onnxruntime` backend
/// report the platform Triton gives them, others their backend.
pub(crate) fn platform<'a>(platform: &'a str, backend: &'a str) -> &'a str {
    match (platform, backend) {
        ("", "onnxruntime") => ONNX_PLATFORM,
        ("", backend) => backend,
        (platform, _) => platform,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_names() {
        assert_eq!(platform("onnxruntime_onnx", ""), "onnxruntime_onnx");
        assert_eq!(platform("", "onnxruntime"), "onnxruntime_onnx");
        assert_eq!(platform("", "tract"), "tract");
    }

    #[test]
    fn server_lists_working_extensions() {
        let json = serde_json::to_value(server()).unwrap();
        assert_eq!(json["name"], "ferrite");
        assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(
            json["extensions"],
            serde_json::json!([
                "binary_tensor_data",
                "logging",
                "model_configuration",
                "model_repository",
                "schedule_policy",
                "statistics",
                "trace"
            ])
        );
    }
}
