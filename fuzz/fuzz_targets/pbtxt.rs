//! The model configuration text parser, then auto-completion and validation
//! of what it parsed against a model description taken from the parsed
//! configuration's own inputs and outputs.
#![no_main]

use std::path::Path;

use ferrite_proto::inference::{DataType, ModelConfig};
use ferrite_repository::autocomplete::auto_complete;
use ferrite_repository::onnx_model::{OnnxModelInfo, OnnxTensor};
use ferrite_repository::parse_pbtxt;
use ferrite_repository::validate::{validate_against_model, validate_config};
use libfuzzer_sys::fuzz_target;

fn tensor(name: &str, data_type: i32, dims: &[i64]) -> OnnxTensor {
    OnnxTensor {
        name: name.to_string(),
        data_type: DataType::try_from(data_type).unwrap_or(DataType::TypeFp32),
        dims: Some(dims.to_vec()),
    }
}

fn described(config: &ModelConfig) -> OnnxModelInfo {
    OnnxModelInfo {
        ir_version: 8,
        opsets: vec![(String::new(), 17)],
        inputs: config
            .input
            .iter()
            .map(|i| tensor(&i.name, i.data_type, &i.dims))
            .collect(),
        outputs: config
            .output
            .iter()
            .map(|o| tensor(&o.name, o.data_type, &o.dims))
            .collect(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = parse_pbtxt(text) else {
        return;
    };
    let model = described(&config);
    let file = Path::new("config.pbtxt");
    let _ = validate_config(&config, file);
    let _ = validate_against_model(&config, &model, file, Path::new("1/model.onnx"));
    let mut completed = ModelConfig {
        name: config.name.clone(),
        ..Default::default()
    };
    auto_complete(&mut completed, &model, config.max_batch_size != 0, 8);
    let _ = validate_against_model(&completed, &model, file, Path::new("1/model.onnx"));
    let mut partial = config;
    auto_complete(&mut partial, &model, false, 8);
    let _ = validate_config(&partial, file);
});
