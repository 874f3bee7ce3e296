//! Auto-complete of a configuration from its ONNX model, as Triton's ONNX
//! Runtime backend does it: missing inputs and outputs, their data types and
//! dims, the maximum batch size, and dynamic batching for batchable models.
//! Whatever the configuration declares is kept; only what is missing is
//! filled in.

use ferrite_proto::inference::model_config::SchedulingChoice;
use ferrite_proto::inference::{
    DataType, ModelConfig, ModelDynamicBatching, ModelInput, ModelOutput,
};

use crate::onnx_model::{OnnxModelInfo, OnnxTensor};

/// Triton's default for `max_batch_size` of an auto-completed batchable
/// model (its `default-max-batch-size` backend setting).
pub const DEFAULT_MAX_BATCH_SIZE: i32 = 4;

/// Completes `config` from `model`.
///
/// `max_batch_size_declared` tells whether the configuration text wrote
/// `max_batch_size` (even as 0); a declared value is never changed. A model
/// is batchable when every input and output has a variable first dimension;
/// an undeclared `max_batch_size` of a batchable model becomes
/// `default_max_batch_size`, unless a declared input or output gives the
/// model's full rank in `dims` (a non-batching configuration). As in
/// Triton's ONNX Runtime backend, only a filled-in `max_batch_size` also
/// turns on the dynamic batcher (when no scheduler is set).
pub fn auto_complete(
    config: &mut ModelConfig,
    model: &OnnxModelInfo,
    max_batch_size_declared: bool,
    default_max_batch_size: i32,
) {
    let filled_max_batch_size = config.max_batch_size == 0
        && !max_batch_size_declared
        && default_max_batch_size > 0
        && is_batchable(model)
        && !declares_full_rank(config, model);
    if filled_max_batch_size {
        config.max_batch_size = default_max_batch_size;
    }
    let batching = config.max_batch_size > 0;

    if config.input.is_empty() {
        config.input = model
            .inputs
            .iter()
            .map(|t| ModelInput {
                name: t.name.clone(),
                data_type: t.data_type as i32,
                dims: config_dims(t, batching),
                ..Default::default()
            })
            .collect();
    } else {
        for input in &mut config.input {
            if let Some(tensor) = model.input(&input.name) {
                // A ragged input is flat in the model: its dims say nothing
                // of the request's shape.
                let batching = batching && !input.allow_ragged_batch;
                fill(&mut input.data_type, &mut input.dims, tensor, batching);
            }
        }
    }

    if config.output.is_empty() {
        config.output = model
            .outputs
            .iter()
            .map(|t| ModelOutput {
                name: t.name.clone(),
                data_type: t.data_type as i32,
                dims: config_dims(t, batching),
                ..Default::default()
            })
            .collect();
    } else {
        for output in &mut config.output {
            if let Some(tensor) = model.output(&output.name) {
                fill(&mut output.data_type, &mut output.dims, tensor, batching);
            }
        }
    }

    if filled_max_batch_size && config.scheduling_choice.is_none() {
        config.scheduling_choice = Some(SchedulingChoice::DynamicBatching(
            ModelDynamicBatching::default(),
        ));
    }
}

/// Every input and output has a known, variable first dimension.
fn is_batchable(model: &OnnxModelInfo) -> bool {
    let tensors = || model.inputs.iter().chain(&model.outputs);
    tensors().next().is_some() && tensors().all(|t| matches!(t.dims.as_deref(), Some([-1, ..])))
}

/// Some declared input or output gives as many dims as the model's rank.
fn declares_full_rank(config: &ModelConfig, model: &OnnxModelInfo) -> bool {
    let full = |dims: &[i64], tensor: Option<&OnnxTensor>| {
        !dims.is_empty() && tensor.and_then(|t| t.dims.as_ref()).map(Vec::len) == Some(dims.len())
    };
    config
        .input
        .iter()
        .any(|i| full(&i.dims, model.input(&i.name)))
        || config
            .output
            .iter()
            .any(|o| full(&o.dims, model.output(&o.name)))
}

/// The configuration dims of a model tensor: variable dims are -1 and the
/// batch dimension is left out when batching.
fn config_dims(tensor: &OnnxTensor, batching: bool) -> Vec<i64> {
    match tensor.dims.as_deref() {
        Some([_, rest @ ..]) if batching => rest.to_vec(),
        Some(dims) => dims.to_vec(),
        None => Vec::new(),
    }
}

fn fill(data_type: &mut i32, dims: &mut Vec<i64>, tensor: &OnnxTensor, batching: bool) {
    if *data_type == DataType::TypeInvalid as i32 {
        *data_type = tensor.data_type as i32;
    }
    if dims.is_empty() {
        *dims = config_dims(tensor, batching);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, data_type: DataType, dims: Option<&[i64]>) -> OnnxTensor {
        OnnxTensor {
            name: name.into(),
            data_type,
            dims: dims.map(<[i64]>::to_vec),
        }
    }

    fn model(inputs: Vec<OnnxTensor>, outputs: Vec<OnnxTensor>) -> OnnxModelInfo {
        OnnxModelInfo {
            ir_version: 8,
            opsets: vec![(String::new(), 17)],
            inputs,
            outputs,
        }
    }

    fn batchable() -> OnnxModelInfo {
        model(
            vec![
                tensor("x", DataType::TypeFp32, Some(&[-1, 3, -1])),
                tensor("ids", DataType::TypeInt64, Some(&[-1])),
            ],
            vec![tensor("y", DataType::TypeFp16, Some(&[-1, 10]))],
        )
    }

    #[test]
    fn empty_config_of_batchable_model() {
        let mut config = ModelConfig::default();
        auto_complete(&mut config, &batchable(), false, DEFAULT_MAX_BATCH_SIZE);
        assert_eq!(config.max_batch_size, 4);
        assert_eq!(config.input.len(), 2);
        assert_eq!(config.input[0].name, "x");
        assert_eq!(config.input[0].data_type, DataType::TypeFp32 as i32);
        assert_eq!(config.input[0].dims, vec![3, -1]);
        assert_eq!(config.input[1].dims, Vec::<i64>::new());
        assert_eq!(config.output[0].data_type, DataType::TypeFp16 as i32);
        assert_eq!(config.output[0].dims, vec![10]);
        assert!(matches!(
            config.scheduling_choice,
            Some(SchedulingChoice::DynamicBatching(_))
        ));
    }

    #[test]
    fn fixed_first_dimension_is_not_batchable() {
        let info = model(
            vec![tensor("x", DataType::TypeFp32, Some(&[1, 3]))],
            vec![tensor("y", DataType::TypeFp32, Some(&[-1, 3]))],
        );
        let mut config = ModelConfig::default();
        auto_complete(&mut config, &info, false, DEFAULT_MAX_BATCH_SIZE);
        assert_eq!(config.max_batch_size, 0);
        assert_eq!(config.input[0].dims, vec![1, 3]);
        assert_eq!(config.output[0].dims, vec![-1, 3]);
        assert!(config.scheduling_choice.is_none());
    }

    #[test]
    fn unknown_rank_is_not_batchable() {
        let info = model(
            vec![tensor("x", DataType::TypeFp32, None)],
            vec![tensor("y", DataType::TypeFp32, Some(&[-1]))],
        );
        let mut config = ModelConfig::default();
        auto_complete(&mut config, &info, false, DEFAULT_MAX_BATCH_SIZE);
        assert_eq!(config.max_batch_size, 0);
        assert!(config.input[0].dims.is_empty());
    }

    #[test]
    fn declared_max_batch_size_is_kept() {
        let mut config = ModelConfig::default();
        auto_complete(&mut config, &batchable(), true, DEFAULT_MAX_BATCH_SIZE);
        assert_eq!(config.max_batch_size, 0);
        assert_eq!(config.input[0].dims, vec![-1, 3, -1]);
        assert!(config.scheduling_choice.is_none());

        let mut config = ModelConfig {
            max_batch_size: 16,
            ..Default::default()
        };
        auto_complete(&mut config, &batchable(), true, DEFAULT_MAX_BATCH_SIZE);
        assert_eq!(config.max_batch_size, 16);
        assert_eq!(config.input[0].dims, vec![3, -1]);
        assert!(config.scheduling_choice.is_none());
    }

    #[test]
    fn full_rank_dims_mean_no_batching() {
        let mut config = ModelConfig {
            input: vec![ModelInput {
                name: "x".into(),
                dims: vec![2, 3, 4],
                ..Default::default()
            }],
            ..Default::default()
        };
        auto_complete(&mut config, &batchable(), false, DEFAULT_MAX_BATCH_SIZE);
        assert_eq!(config.max_batch_size, 0);
        assert_eq!(config.input[0].dims, vec![2, 3, 4]);
        assert_eq!(config.input[0].data_type, DataType::TypeFp32 as i32);
    }

    #[test]
    fn partial_config_is_completed_not_overwritten() {
        let mut config = ModelConfig {
            input: vec![ModelInput {
                name: "x".into(),
                data_type: DataType::TypeFp16 as i32,
                ..Default::default()
            }],
            output: vec![ModelOutput {
                name: "y".into(),
                dims: vec![7],
                ..Default::default()
            }],
            scheduling_choice: Some(SchedulingChoice::DynamicBatching(ModelDynamicBatching {
                max_queue_delay_microseconds: 10,
                ..Default::default()
            })),
            ..Default::default()
        };
        auto_complete(&mut config, &batchable(), false, DEFAULT_MAX_BATCH_SIZE);
        assert_eq!(config.max_batch_size, 4);
        // Declared values stay (validation reports any mismatch).
        assert_eq!(config.input.len(), 1);
        assert_eq!(config.input[0].data_type, DataType::TypeFp16 as i32);
        assert_eq!(config.input[0].dims, vec![3, -1]);
        assert_eq!(config.output[0].dims, vec![7]);
        assert_eq!(config.output[0].data_type, DataType::TypeFp16 as i32);
        match config.scheduling_choice {
            Some(SchedulingChoice::DynamicBatching(db)) => {
                assert_eq!(db.max_queue_delay_microseconds, 10)
            }
            other => panic!("scheduler replaced: {other:?}"),
        }
    }

    #[test]
    fn default_max_batch_size_zero_disables_batching() {
        let mut config = ModelConfig::default();
        auto_complete(&mut config, &batchable(), false, 0);
        assert_eq!(config.max_batch_size, 0);
        assert_eq!(config.input[0].dims, vec![-1, 3, -1]);
    }
}
