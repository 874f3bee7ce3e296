//! Validation of a completed configuration, on its own and against the
//! ONNX model of each served version. Errors name the file and the field.

use std::collections::HashSet;
use std::path::Path;

use ferrite_proto::inference::model_config::SchedulingChoice;
use ferrite_proto::inference::model_instance_group::Kind;
use ferrite_proto::inference::{DataType, ModelConfig};

use crate::onnx_model::{OnnxModelInfo, OnnxTensor};
use crate::RepositoryError;

mod ragged;

/// Checks the rules that need no model file.
pub fn validate_config(config: &ModelConfig, file: &Path) -> Result<(), RepositoryError> {
    let err = |field: String, message: String| RepositoryError::config(file, field, message);
    if config.max_batch_size < 0 {
        return Err(err(
            "max_batch_size".into(),
            format!("{} is negative", config.max_batch_size),
        ));
    }
    let tensors = config
        .input
        .iter()
        .map(|i| (&i.name, i.data_type, &i.dims))
        .collect::<Vec<_>>();
    check_tensors("input", &tensors, file)?;
    let tensors = config
        .output
        .iter()
        .map(|o| (&o.name, o.data_type, &o.dims))
        .collect::<Vec<_>>();
    check_tensors("output", &tensors, file)?;

    for (i, group) in config.instance_group.iter().enumerate() {
        if group.count < 0 {
            return Err(err(
                format!("instance_group[{i}].count"),
                format!("{} is negative", group.count),
            ));
        }
        if group.kind == Kind::Cpu as i32 && !group.gpus.is_empty() {
            return Err(err(
                format!("instance_group[{i}].gpus"),
                "a KIND_CPU instance group cannot list GPUs".into(),
            ));
        }
        if let Some(gpu) = group.gpus.iter().find(|g| **g < 0) {
            return Err(err(
                format!("instance_group[{i}].gpus"),
                format!("GPU {gpu} is negative"),
            ));
        }
    }

    if let Some(SchedulingChoice::DynamicBatching(batching)) = &config.scheduling_choice {
        for size in &batching.preferred_batch_size {
            if *size < 1 || *size > config.max_batch_size {
                return Err(err(
                    "dynamic_batching.preferred_batch_size".into(),
                    format!(
                        "{size} is not between 1 and max_batch_size ({})",
                        config.max_batch_size
                    ),
                ));
            }
        }
    }

    ragged::check_batch_io(config, file)
}

/// Checks that `default_model_filename` names a file inside the version
/// folder (no path separators, no `..`).
pub fn validate_model_filename(config: &ModelConfig, file: &Path) -> Result<(), RepositoryError> {
    let filename = &config.default_model_filename;
    if filename.contains(['/', '\\']) || filename == "." || filename == ".." {
        return Err(RepositoryError::config(
            file,
            "default_model_filename",
            format!("`{filename}` must be a file name inside the version folder, not a path"),
        ));
    }
    Ok(())
}

fn check_tensors(
    role: &str,
    tensors: &[(&String, i32, &Vec<i64>)],
    file: &Path,
) -> Result<(), RepositoryError> {
    let mut names = HashSet::new();
    for (i, (name, data_type, dims)) in tensors.iter().enumerate() {
        let field = |f: &str| format!("{role}[{i}].{f}");
        if name.is_empty() {
            return Err(RepositoryError::config(file, field("name"), "is empty"));
        }
        if !names.insert(name.as_str()) {
            return Err(RepositoryError::config(
                file,
                field("name"),
                format!("{role} `{name}` is declared more than once"),
            ));
        }
        match DataType::try_from(*data_type) {
            Ok(DataType::TypeInvalid) => {
                return Err(RepositoryError::config(
                    file,
                    field("data_type"),
                    format!("{role} `{name}` has no data type"),
                ))
            }
            Ok(_) => {}
            Err(_) => {
                return Err(RepositoryError::config(
                    file,
                    field("data_type"),
                    format!("{data_type} is not a data type"),
                ))
            }
        }
        if let Some(dim) = dims.iter().find(|d| **d < -1) {
            return Err(RepositoryError::config(
                file,
                field("dims"),
                format!("dimension {dim} of `{name}` is invalid (use -1 for a variable dimension)"),
            ));
        }
    }
    Ok(())
}

/// Checks that the configuration agrees with the ONNX model at
/// `model_file`: every model input is declared, every declared input and
/// output exists in the model with the same data type, and the dims match
/// (a -1 in the model matches anything; with `max_batch_size` > 0 the
/// model's first dimension is the batch and must be variable).
pub fn validate_against_model(
    config: &ModelConfig,
    model: &OnnxModelInfo,
    file: &Path,
    model_file: &Path,
) -> Result<(), RepositoryError> {
    let batching = config.max_batch_size > 0;
    for (i, input) in config.input.iter().enumerate() {
        let Some(tensor) = model.input(&input.name) else {
            return Err(RepositoryError::config(
                file,
                format!("input[{i}].name"),
                format!(
                    "`{}` is not an input of {} (model inputs: {})",
                    input.name,
                    model_file.display(),
                    names(&model.inputs)
                ),
            ));
        };
        let field = |f: &str| format!("input[{i}].{f}");
        check_tensor(
            tensor,
            input.data_type,
            &input.dims,
            Layout::new(batching, input.allow_ragged_batch),
            field,
            config,
            file,
            model_file,
        )?;
    }
    for (i, output) in config.output.iter().enumerate() {
        let Some(tensor) = model.output(&output.name) else {
            return Err(RepositoryError::config(
                file,
                format!("output[{i}].name"),
                format!(
                    "`{}` is not an output of {} (model outputs: {})",
                    output.name,
                    model_file.display(),
                    names(&model.outputs)
                ),
            ));
        };
        let field = |f: &str| format!("output[{i}].{f}");
        check_tensor(
            tensor,
            output.data_type,
            &output.dims,
            Layout::new(batching, ragged::is_scattered(config, &output.name)),
            field,
            config,
            file,
            model_file,
        )?;
    }
    if let Some(missing) = model.inputs.iter().find(|t| {
        !config.input.iter().any(|i| i.name == t.name) && !ragged::is_batch_input(config, &t.name)
    }) {
        return Err(RepositoryError::config(
            file,
            "input",
            format!(
                "the model input `{}` of {} is not declared",
                missing.name,
                model_file.display()
            ),
        ));
    }
    ragged::check_batch_inputs_against_model(config, model, file, model_file)
}

/// How a config tensor appears in the model.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// As declared: the config's dims, after the batch dimension when
    /// `batching`.
    Dims { batching: bool },
    /// One flat tensor of the whole batch (a ragged input or a scattered
    /// output): one dimension, whatever the config's dims.
    Flat,
}

impl Layout {
    fn new(batching: bool, flat: bool) -> Self {
        if flat {
            Layout::Flat
        } else {
            Layout::Dims { batching }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_tensor(
    tensor: &OnnxTensor,
    data_type: i32,
    dims: &[i64],
    layout: Layout,
    field: impl Fn(&str) -> String,
    config: &ModelConfig,
    file: &Path,
    model_file: &Path,
) -> Result<(), RepositoryError> {
    if data_type != tensor.data_type as i32 {
        let declared = DataType::try_from(data_type)
            .map(|d| d.as_str_name().to_owned())
            .unwrap_or_else(|_| data_type.to_string());
        return Err(RepositoryError::config(
            file,
            field("data_type"),
            format!(
                "{declared} does not match the data type {} of `{}` in {}",
                tensor.data_type.as_str_name(),
                tensor.name,
                model_file.display()
            ),
        ));
    }
    let Some(model_dims) = tensor.dims.as_deref() else {
        return Ok(());
    };
    let batching = match layout {
        Layout::Flat if model_dims.len() == 1 => return Ok(()),
        Layout::Flat => {
            return Err(RepositoryError::config(
                file,
                field("dims"),
                format!(
                    "`{}` reaches the model as one flat tensor of the whole batch \
                     (allow_ragged_batch or batch_output), so it needs 1 dimension, \
                     but has shape {} in {}",
                    tensor.name,
                    shape(model_dims),
                    model_file.display()
                ),
            ))
        }
        Layout::Dims { batching } => batching,
    };
    let compared = if batching {
        match model_dims {
            [-1, rest @ ..] => rest,
            _ => {
                return Err(RepositoryError::config(
                    file,
                    "max_batch_size",
                    format!(
                        "{} needs a variable first (batch) dimension, but `{}` has shape {} in {}",
                        config.max_batch_size,
                        tensor.name,
                        shape(model_dims),
                        model_file.display()
                    ),
                ))
            }
        }
    } else {
        model_dims
    };
    let matches =
        compared.len() == dims.len() && compared.iter().zip(dims).all(|(m, c)| *m == -1 || m == c);
    if !matches {
        return Err(RepositoryError::config(
            file,
            field("dims"),
            format!(
                "{} does not match the shape {} of `{}` in {}{}",
                shape(dims),
                shape(model_dims),
                tensor.name,
                model_file.display(),
                if batching {
                    " (the batch dimension is left out of dims when max_batch_size > 0)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(())
}

fn shape(dims: &[i64]) -> String {
    let parts: Vec<String> = dims.iter().map(i64::to_string).collect();
    format!("[{}]", parts.join(", "))
}

fn names(tensors: &[OnnxTensor]) -> String {
    let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests;
