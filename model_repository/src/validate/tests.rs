use super::*;
use crate::onnx_model::OnnxModelInfo;
use ferrite_proto::inference::{
    batch_input, BatchInput, BatchOutput, ModelDynamicBatching, ModelInput, ModelInstanceGroup,
    ModelOutput,
};

const FILE: &str = "models/m/config.pbtxt";

fn input(name: &str, data_type: DataType, dims: &[i64]) -> ModelInput {
    ModelInput {
        name: name.into(),
        data_type: data_type as i32,
        dims: dims.to_vec(),
        ..Default::default()
    }
}

fn output(name: &str, data_type: DataType, dims: &[i64]) -> ModelOutput {
    ModelOutput {
        name: name.into(),
        data_type: data_type as i32,
        dims: dims.to_vec(),
        ..Default::default()
    }
}

fn config() -> ModelConfig {
    ModelConfig {
        name: "m".into(),
        max_batch_size: 4,
        input: vec![input("x", DataType::TypeFp32, &[3, -1])],
        output: vec![output("y", DataType::TypeFp32, &[10])],
        ..Default::default()
    }
}

fn field_of(result: Result<(), RepositoryError>) -> (String, String) {
    match result {
        Err(RepositoryError::Config {
            path,
            field,
            message,
        }) => {
            assert_eq!(path, Path::new(FILE));
            (field, message)
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

fn standalone(config: &ModelConfig) -> (String, String) {
    field_of(validate_config(config, Path::new(FILE)))
}

#[test]
fn valid_config_passes() {
    validate_config(&config(), Path::new(FILE)).expect("valid");
}

#[test]
fn standalone_rules() {
    let mut c = config();
    c.max_batch_size = -1;
    assert_eq!(standalone(&c).0, "max_batch_size");

    let mut c = config();
    c.input.push(input("x", DataType::TypeFp32, &[1]));
    let (field, message) = standalone(&c);
    assert_eq!(field, "input[1].name");
    assert!(message.contains("more than once"), "{message}");

    let mut c = config();
    c.output[0].name.clear();
    assert_eq!(standalone(&c).0, "output[0].name");

    let mut c = config();
    c.input[0].data_type = DataType::TypeInvalid as i32;
    assert_eq!(standalone(&c).0, "input[0].data_type");

    let mut c = config();
    c.output[0].data_type = 42;
    let (field, message) = standalone(&c);
    assert_eq!(field, "output[0].data_type");
    assert!(message.contains("42"), "{message}");

    let mut c = config();
    c.input[0].dims = vec![3, -2];
    assert_eq!(standalone(&c).0, "input[0].dims");

    let mut c = config();
    c.instance_group = vec![ModelInstanceGroup {
        count: -2,
        ..Default::default()
    }];
    assert_eq!(standalone(&c).0, "instance_group[0].count");

    let mut c = config();
    c.instance_group = vec![ModelInstanceGroup {
        count: 1,
        kind: Kind::Cpu as i32,
        gpus: vec![0],
        ..Default::default()
    }];
    assert_eq!(standalone(&c).0, "instance_group[0].gpus");

    let mut c = config();
    c.scheduling_choice = Some(SchedulingChoice::DynamicBatching(ModelDynamicBatching {
        preferred_batch_size: vec![2, 8],
        ..Default::default()
    }));
    let (field, message) = standalone(&c);
    assert_eq!(field, "dynamic_batching.preferred_batch_size");
    assert!(message.contains('8'), "{message}");
}

#[test]
fn model_filename_must_stay_in_the_version_folder() {
    for bad in ["../model.onnx", "sub/model.onnx", "..", "a\\b"] {
        let mut c = config();
        c.default_model_filename = bad.into();
        let (field, _) = field_of(validate_model_filename(&c, Path::new(FILE)));
        assert_eq!(field, "default_model_filename");
    }
    let mut c = config();
    c.default_model_filename = "net.onnx".into();
    validate_model_filename(&c, Path::new(FILE)).expect("plain name");
}

fn model(x_dims: &[i64]) -> OnnxModelInfo {
    OnnxModelInfo {
        ir_version: 8,
        opsets: vec![],
        inputs: vec![OnnxTensor {
            name: "x".into(),
            data_type: DataType::TypeFp32,
            dims: Some(x_dims.to_vec()),
        }],
        outputs: vec![OnnxTensor {
            name: "y".into(),
            data_type: DataType::TypeFp32,
            dims: Some(vec![-1, 10]),
        }],
    }
}

fn against(config: &ModelConfig, model: &OnnxModelInfo) -> Result<(), RepositoryError> {
    validate_against_model(
        config,
        model,
        Path::new(FILE),
        Path::new("models/m/1/model.onnx"),
    )
}

#[test]
fn agreeing_model_passes() {
    against(&config(), &model(&[-1, 3, -1])).expect("variable dims");
    let mut c = config();
    c.input[0].dims = vec![3, 224];
    against(&c, &model(&[-1, 3, -1])).expect("-1 in the model matches any dim");
    let mut c = config();
    c.max_batch_size = 0;
    c.input[0].dims = vec![7, 3, 5];
    c.output[0].dims = vec![2, 10];
    against(&c, &model(&[-1, 3, -1])).expect("non-batching full shapes");
}

#[test]
fn model_mismatches() {
    let (field, message) = field_of(against(&config(), &model(&[-1, 4, -1])));
    assert_eq!(field, "input[0].dims");
    assert!(
        message.contains("[3, -1]") && message.contains("[-1, 4, -1]"),
        "{message}"
    );
    assert!(message.contains("models/m/1/model.onnx"), "{message}");

    // A fixed model dim is not matched by a variable config dim.
    let mut c = config();
    c.input[0].dims = vec![-1, -1];
    assert_eq!(
        field_of(against(&c, &model(&[-1, 3, 5]))).0,
        "input[0].dims"
    );

    let mut c = config();
    c.input[0].data_type = DataType::TypeFp16 as i32;
    let (field, message) = field_of(against(&c, &model(&[-1, 3, -1])));
    assert_eq!(field, "input[0].data_type");
    assert!(
        message.contains("TYPE_FP16") && message.contains("TYPE_FP32"),
        "{message}"
    );

    let (field, message) = field_of(against(&config(), &model(&[1, 3, -1])));
    assert_eq!(field, "max_batch_size");
    assert!(message.contains("batch"), "{message}");

    let mut c = config();
    c.input[0].name = "image".into();
    let (field, message) = field_of(against(&c, &model(&[-1, 3, -1])));
    assert_eq!(field, "input[0].name");
    assert!(
        message.contains("image") && message.contains("model inputs: x"),
        "{message}"
    );

    let mut c = config();
    c.output
        .push(output("probabilities", DataType::TypeFp32, &[10]));
    assert_eq!(
        field_of(against(&c, &model(&[-1, 3, -1]))).0,
        "output[1].name"
    );

    let mut c = config();
    c.input.clear();
    let (field, message) = field_of(against(&c, &model(&[-1, 3, -1])));
    assert_eq!(field, "input");
    assert!(message.contains("`x`"), "{message}");
}

#[test]
fn outputs_may_be_a_subset() {
    let mut c = config();
    c.output.clear();
    against(&c, &model(&[-1, 3, -1])).expect("no outputs declared is allowed");
}

fn ragged_config() -> ModelConfig {
    let mut c = config();
    c.input = vec![ModelInput {
        allow_ragged_batch: true,
        ..input("x", DataType::TypeFp32, &[-1])
    }];
    c.output = vec![output("y", DataType::TypeFp32, &[1])];
    c.batch_input = vec![BatchInput {
        kind: batch_input::Kind::BatchAccumulatedElementCount as i32,
        target_name: vec!["INDEX".into()],
        data_type: DataType::TypeInt64 as i32,
        source_input: vec!["x".into()],
    }];
    c
}

fn ragged_model(x_dims: &[i64], index_dims: &[i64]) -> OnnxModelInfo {
    let tensor = |name: &str, data_type, dims: &[i64]| OnnxTensor {
        name: name.into(),
        data_type,
        dims: Some(dims.to_vec()),
    };
    OnnxModelInfo {
        ir_version: 8,
        opsets: vec![],
        inputs: vec![
            tensor("x", DataType::TypeFp32, x_dims),
            tensor("INDEX", DataType::TypeInt64, index_dims),
        ],
        outputs: vec![tensor("y", DataType::TypeFp32, &[-1, 1])],
    }
}

#[test]
fn ragged_configs() {
    validate_config(&ragged_config(), Path::new(FILE)).expect("valid ragged config");
    against(&ragged_config(), &ragged_model(&[-1], &[-1]))
        .expect("flat ragged input and an undeclared batch input target");

    let mut c = ragged_config();
    c.max_batch_size = 0;
    let (field, message) = standalone(&c);
    assert_eq!(field, "input[0].allow_ragged_batch");
    assert!(message.contains("max_batch_size"), "{message}");

    let mut c = ragged_config();
    c.batch_input[0].data_type = DataType::TypeUint8 as i32;
    assert_eq!(standalone(&c).0, "batch_input[0].data_type");

    let mut c = ragged_config();
    c.batch_input[0].source_input = vec!["z".into()];
    let (field, message) = standalone(&c);
    assert_eq!(field, "batch_input[0].source_input");
    assert!(message.contains("`z`"), "{message}");

    let mut c = ragged_config();
    c.batch_input[0].target_name = vec!["x".into()];
    assert_eq!(standalone(&c).0, "batch_input[0].target_name");

    let mut c = ragged_config();
    c.batch_output = vec![BatchOutput {
        target_name: vec!["nope".into()],
        kind: 0,
        source_input: vec!["x".into()],
    }];
    assert_eq!(standalone(&c).0, "batch_output[0].target_name");

    let (field, message) = field_of(against(&ragged_config(), &ragged_model(&[-1, -1], &[-1])));
    assert_eq!(field, "input[0].dims");
    assert!(message.contains("flat"), "{message}");

    let (field, message) = field_of(against(&ragged_config(), &ragged_model(&[-1], &[-1, 1])));
    assert_eq!(field, "batch_input[0].target_name");
    assert!(message.contains("dimension"), "{message}");

    let mut c = ragged_config();
    c.batch_input[0].data_type = DataType::TypeInt32 as i32;
    assert_eq!(
        field_of(against(&c, &ragged_model(&[-1], &[-1]))).0,
        "batch_input[0].target_name"
    );
}
