//! The rules of ragged batching: `allow_ragged_batch` inputs, `batch_input`
//! and `batch_output`, checked as Triton does, on the configuration alone and
//! against the ONNX model, whose ragged inputs and batch inputs are flat
//! (1-dimensional; BATCH_ITEM_SHAPE is `[rows, rank]`).

use std::collections::HashSet;
use std::path::Path;

use ferrite_proto::inference::batch_input::Kind;
use ferrite_proto::inference::{DataType, ModelConfig};

use crate::onnx_model::OnnxModelInfo;
use crate::RepositoryError;

/// Checks `allow_ragged_batch`, `batch_input` and `batch_output` against the
/// rest of the configuration.
pub(super) fn check_batch_io(config: &ModelConfig, file: &Path) -> Result<(), RepositoryError> {
    let err = |field: String, message: String| RepositoryError::config(file, field, message);
    let ragged = config.input.iter().position(|i| i.allow_ragged_batch);
    if config.max_batch_size == 0 {
        let field = match ragged {
            Some(i) => Some(format!("input[{i}].allow_ragged_batch")),
            None if !config.batch_input.is_empty() => Some("batch_input".to_string()),
            None if !config.batch_output.is_empty() => Some("batch_output".to_string()),
            None => None,
        };
        if let Some(field) = field {
            return Err(err(
                field,
                "ragged batching needs a batching model (max_batch_size > 0)".into(),
            ));
        }
    }
    let inputs: HashSet<&str> = config.input.iter().map(|i| i.name.as_str()).collect();
    let mut targets = HashSet::new();
    for (i, batch_input) in config.batch_input.iter().enumerate() {
        let field = |f: &str| format!("batch_input[{i}].{f}");
        if Kind::try_from(batch_input.kind).is_err() {
            return Err(err(
                field("kind"),
                format!("{} is not a batch input kind", batch_input.kind),
            ));
        }
        let data_type = DataType::try_from(batch_input.data_type);
        if !matches!(
            data_type,
            Ok(DataType::TypeInt32 | DataType::TypeInt64 | DataType::TypeFp32)
        ) {
            return Err(err(
                field("data_type"),
                "must be TYPE_INT32, TYPE_INT64 or TYPE_FP32".into(),
            ));
        }
        check_source(
            &batch_input.source_input,
            &inputs,
            field("source_input"),
            file,
        )?;
        if batch_input.target_name.is_empty() {
            return Err(err(field("target_name"), "names no model input".into()));
        }
        for target in &batch_input.target_name {
            if inputs.contains(target.as_str()) {
                return Err(err(
                    field("target_name"),
                    format!(
                        "`{target}` is also a request input; a batch input is built by the server"
                    ),
                ));
            }
            if !targets.insert(target.as_str()) {
                return Err(err(
                    field("target_name"),
                    format!("`{target}` is the target of more than one batch input"),
                ));
            }
        }
    }
    let outputs: HashSet<&str> = config.output.iter().map(|o| o.name.as_str()).collect();
    let mut scattered = HashSet::new();
    for (i, batch_output) in config.batch_output.iter().enumerate() {
        let field = |f: &str| format!("batch_output[{i}].{f}");
        check_source(
            &batch_output.source_input,
            &inputs,
            field("source_input"),
            file,
        )?;
        if batch_output.target_name.is_empty() {
            return Err(err(field("target_name"), "names no output".into()));
        }
        for target in &batch_output.target_name {
            if !outputs.contains(target.as_str()) {
                return Err(err(
                    field("target_name"),
                    format!("`{target}` is not an output of the configuration"),
                ));
            }
            if !scattered.insert(target.as_str()) {
                return Err(err(
                    field("target_name"),
                    format!("output `{target}` is the target of more than one batch output"),
                ));
            }
        }
    }
    Ok(())
}

fn check_source(
    sources: &[String],
    inputs: &HashSet<&str>,
    field: String,
    file: &Path,
) -> Result<(), RepositoryError> {
    match sources {
        [source] if inputs.contains(source.as_str()) => Ok(()),
        [source] => Err(RepositoryError::config(
            file,
            field,
            format!("`{source}` is not an input of the configuration"),
        )),
        _ => Err(RepositoryError::config(
            file,
            field,
            format!("expects 1 source input, got {}", sources.len()),
        )),
    }
}

/// Checks the model's side: each batch input target is a model input of the
/// batch input's data type, with one dimension (two for BATCH_ITEM_SHAPE).
pub(super) fn check_batch_inputs_against_model(
    config: &ModelConfig,
    model: &OnnxModelInfo,
    file: &Path,
    model_file: &Path,
) -> Result<(), RepositoryError> {
    for (i, batch_input) in config.batch_input.iter().enumerate() {
        let rank = if batch_input.kind == Kind::BatchItemShape as i32 {
            2
        } else {
            1
        };
        for target in &batch_input.target_name {
            let err = |message: String| {
                RepositoryError::config(file, format!("batch_input[{i}].target_name"), message)
            };
            let Some(tensor) = model.input(target) else {
                return Err(err(format!(
                    "`{target}` is not an input of {}",
                    model_file.display()
                )));
            };
            if tensor.data_type as i32 != batch_input.data_type {
                return Err(err(format!(
                    "`{target}` is {} in {}, the batch input's data_type differs",
                    tensor.data_type.as_str_name(),
                    model_file.display()
                )));
            }
            if let Some(dims) = tensor.dims.as_deref().filter(|d| d.len() != rank) {
                return Err(err(format!(
                    "`{target}` has {} dimension(s) in {}; this batch input kind gives {rank}",
                    dims.len(),
                    model_file.display()
                )));
            }
        }
    }
    Ok(())
}

/// Whether `name` is a batch input target, which the configuration need not
/// declare among its inputs.
pub(super) fn is_batch_input(config: &ModelConfig, name: &str) -> bool {
    config
        .batch_input
        .iter()
        .any(|b| b.target_name.iter().any(|t| t == name))
}

/// Whether `name` is the target of a batch output.
pub(super) fn is_scattered(config: &ModelConfig, name: &str) -> bool {
    config
        .batch_output
        .iter()
        .any(|b| b.target_name.iter().any(|t| t == name))
}
