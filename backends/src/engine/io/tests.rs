use bytes::Bytes;
use ferrite_proto::inference::{DataType as ConfigType, ModelTensorReshape};

use super::*;

fn tensor(name: &str, dtype: DataType, dims: &[Option<i64>]) -> ModelTensor {
    ModelTensor {
        name: name.into(),
        dtype: Some(Ok(dtype)),
        dims: Some(dims.to_vec()),
    }
}

fn input(name: &str, dtype: ConfigType, dims: &[i64]) -> ModelInput {
    ModelInput {
        name: name.into(),
        data_type: dtype as i32,
        dims: dims.to_vec(),
        ..Default::default()
    }
}

fn output(name: &str, dtype: ConfigType, dims: &[i64]) -> ModelOutput {
    ModelOutput {
        name: name.into(),
        data_type: dtype as i32,
        dims: dims.to_vec(),
        ..Default::default()
    }
}

fn simple() -> (ModelConfig, ModelSignature) {
    let config = ModelConfig {
        max_batch_size: 8,
        input: vec![
            input("B", ConfigType::TypeFp32, &[4]),
            input("A", ConfigType::TypeInt32, &[-1, 2]),
        ],
        output: vec![output("Y", ConfigType::TypeFp32, &[4])],
        ..Default::default()
    };
    let model = ModelSignature {
        inputs: vec![
            tensor("A", DataType::Int32, &[None, None, Some(2)]),
            tensor("B", DataType::Fp32, &[None, Some(4)]),
        ],
        outputs: vec![
            tensor("X", DataType::Fp32, &[None]),
            tensor("Y", DataType::Fp32, &[None, Some(4)]),
        ],
    };
    (config, model)
}

fn named(name: &str, dtype: DataType, shape: &[i64]) -> NamedTensor {
    let size = dtype.element_size().unwrap() * shape.iter().product::<i64>() as usize;
    NamedTensor::new(
        name,
        Tensor::new(dtype, shape.to_vec(), Bytes::from(vec![0u8; size])).unwrap(),
    )
}

#[test]
fn binds_and_orders_inputs_by_model_position() {
    let (config, model) = simple();
    let io = IoMap::new(&config, &model).unwrap();
    assert_eq!(io.model_dims(&io.inputs()[0]), vec![-1, 4]);
    let inputs = [
        named("B", DataType::Fp32, &[3, 4]),
        named("A", DataType::Int32, &[3, 5, 2]),
    ];
    let prepared = io.prepare_inputs(&inputs).unwrap();
    let order: Vec<&str> = prepared.iter().map(|p| p.binding.name.as_str()).collect();
    assert_eq!(order, ["A", "B"]);
    assert_eq!(&*prepared[0].shape, &[3, 5, 2]);
}

#[test]
fn load_errors_name_the_tensor() {
    let (mut config, model) = simple();
    config.input[0].data_type = ConfigType::TypeInt64 as i32;
    let err = IoMap::new(&config, &model).unwrap_err();
    assert!(
        err.contains("input 'B' is INT64 in the config but FP32"),
        "{err}"
    );

    let (mut config, model) = simple();
    config.input[0].dims = vec![5];
    let err = IoMap::new(&config, &model).unwrap_err();
    assert!(err.contains("input 'B'") && err.contains("[5]"), "{err}");

    let (mut config, model) = simple();
    config.input.pop();
    let err = IoMap::new(&config, &model).unwrap_err();
    assert!(
        err.contains("input 'A' that the config does not declare"),
        "{err}"
    );

    let (mut config, model) = simple();
    config.output[0].name = "Z".into();
    let err = IoMap::new(&config, &model).unwrap_err();
    assert!(
        err.contains("output 'Z' but the model has no such output"),
        "{err}"
    );

    let (config, mut model) = simple();
    model.inputs[1].dims = Some(vec![Some(1), Some(4)]);
    let err = IoMap::new(&config, &model).unwrap_err();
    assert!(err.contains("first dimension fixed at 1"), "{err}");
}

#[test]
fn request_errors_name_the_tensor() {
    let (config, model) = simple();
    let io = IoMap::new(&config, &model).unwrap();
    let err = io
        .prepare_inputs(&[named("C", DataType::Fp32, &[1, 4])])
        .unwrap_err();
    assert!(err.to_string().contains("unknown input 'C'"), "{err}");
    let err = io
        .prepare_inputs(&[
            named("B", DataType::Fp64, &[1, 4]),
            named("A", DataType::Int32, &[1, 1, 2]),
        ])
        .unwrap_err();
    assert!(
        err.to_string().contains("input 'B' has data type FP64"),
        "{err}"
    );
    let err = io
        .prepare_inputs(&[named("B", DataType::Fp32, &[1, 4])])
        .unwrap_err();
    assert!(err.to_string().contains("input 'A' is missing"), "{err}");
    let err = io
        .prepare_inputs(&[
            named("B", DataType::Fp32, &[1, 5]),
            named("A", DataType::Int32, &[1, 1, 2]),
        ])
        .unwrap_err();
    assert!(
        err.to_string().contains("input 'B' has shape [1, 5]"),
        "{err}"
    );
    let err = io
        .prepare_inputs(&[
            named("B", DataType::Fp32, &[9, 4]),
            named("A", DataType::Int32, &[9, 1, 2]),
        ])
        .unwrap_err();
    assert!(err.to_string().contains("max_batch_size 8"), "{err}");
}

#[test]
fn selects_outputs() {
    let (config, model) = simple();
    let io = IoMap::new(&config, &model).unwrap();
    assert_eq!(io.select_outputs(&[]).unwrap()[0].name, "Y");
    let err = io.select_outputs(&["X".to_string()]).unwrap_err();
    assert!(err.to_string().contains("unknown output 'X'"), "{err}");
    let err = io.output_shape(&io.outputs()[0], &[2, 5]).unwrap_err();
    assert!(err.contains("output 'Y' has shape [2, 5]"), "{err}");
}

#[test]
fn applies_reshape_both_ways() {
    let config = ModelConfig {
        max_batch_size: 4,
        input: vec![ModelInput {
            reshape: Some(ModelTensorReshape { shape: vec![2, -1] }),
            ..input("IN", ConfigType::TypeFp32, &[-1])
        }],
        output: vec![ModelOutput {
            reshape: Some(ModelTensorReshape { shape: vec![] }),
            ..output("OUT", ConfigType::TypeFp32, &[1])
        }],
        ..Default::default()
    };
    let model = ModelSignature {
        inputs: vec![tensor("IN", DataType::Fp32, &[None, Some(2), None])],
        outputs: vec![tensor("OUT", DataType::Fp32, &[None])],
    };
    let io = IoMap::new(&config, &model).unwrap();
    let inputs = [named("IN", DataType::Fp32, &[3, 6])];
    let prepared = io.prepare_inputs(&inputs).unwrap();
    assert_eq!(&*prepared[0].shape, &[3, 2, 3]);
    assert_eq!(io.output_shape(&io.outputs()[0], &[3]).unwrap(), vec![3, 1]);
    let odd = [named("IN", DataType::Fp32, &[1, 5])];
    let err = io.prepare_inputs(&odd).unwrap_err();
    assert!(
        err.to_string().contains("cannot take the config's reshape"),
        "{err}"
    );
}

#[test]
fn reshape_dims_fills_dynamic_dims() {
    assert_eq!(
        reshape_dims(&[4, 3], &[-1, 3], &[-1, 3]).unwrap(),
        vec![4, 3]
    );
    assert_eq!(reshape_dims(&[4, 3], &[4, 3], &[-1]).unwrap(), vec![12]);
    assert_eq!(reshape_dims(&[1], &[1], &[]).unwrap(), Vec::<i64>::new());
    assert!(reshape_dims(&[5], &[-1], &[2, -1]).is_err());
    assert!(reshape_dims(&[2, 2], &[2, 2], &[-1, -1]).is_err());
    assert_eq!(
        reshape_dims(&[2, 3], &[-1, -1], &[-1, 1, -1]).unwrap(),
        vec![2, 1, 3]
    );
}

fn ragged() -> (ModelConfig, ModelSignature) {
    let config = ModelConfig {
        max_batch_size: 8,
        input: vec![ModelInput {
            allow_ragged_batch: true,
            ..input("X", ConfigType::TypeFp32, &[-1, 3])
        }],
        output: vec![
            output("SUM", ConfigType::TypeFp32, &[1]),
            output("Z", ConfigType::TypeFp32, &[-1, 3]),
        ],
        batch_input: vec![ferrite_proto::inference::BatchInput {
            kind: batch_input::Kind::BatchItemShape as i32,
            target_name: vec!["SHAPES".into()],
            data_type: ConfigType::TypeInt32 as i32,
            source_input: vec!["X".into()],
        }],
        batch_output: vec![ferrite_proto::inference::BatchOutput {
            target_name: vec!["Z".into()],
            kind: 0,
            source_input: vec!["X".into()],
        }],
        ..Default::default()
    };
    let model = ModelSignature {
        inputs: vec![
            tensor("SHAPES", DataType::Int32, &[None, Some(2)]),
            tensor("X", DataType::Fp32, &[None]),
        ],
        outputs: vec![
            tensor("SUM", DataType::Fp32, &[None, Some(1)]),
            tensor("Z", DataType::Fp32, &[None]),
        ],
    };
    (config, model)
}

#[test]
fn ragged_tensors_are_flat() {
    let (config, model) = ragged();
    let io = IoMap::new(&config, &model).unwrap();
    assert!(io.is_ragged());
    let x = io.inputs().iter().find(|b| b.name == "X").unwrap();
    assert!(!x.batched);
    assert_eq!(io.model_dims(x), vec![-1]);
    let shapes = io.inputs().iter().find(|b| b.name == "SHAPES").unwrap();
    assert_eq!(
        (shapes.model_index, io.model_dims(shapes)),
        (0, vec![-1, 2])
    );

    let flat = NamedTensor::new(
        "X",
        Tensor::new(DataType::Fp32, vec![9], Bytes::from(vec![0u8; 36])).unwrap(),
    );
    let items = NamedTensor::new(
        "SHAPES",
        Tensor::new(DataType::Int32, vec![2, 2], Bytes::from(vec![0u8; 16])).unwrap(),
    );
    let batch = [flat.clone(), items];
    let prepared = io.prepare_inputs(&batch).unwrap();
    assert_eq!(prepared[0].binding.name, "SHAPES");
    assert_eq!(&*prepared[1].shape, &[9]);

    let err = io.prepare_inputs(&[flat]).unwrap_err().to_string();
    assert!(err.contains("'SHAPES' is missing"), "{err}");

    let z = io.outputs().iter().find(|b| b.name == "Z").unwrap();
    assert_eq!(io.output_shape(z, &[9]).unwrap(), vec![9]);
    let sum = io.outputs().iter().find(|b| b.name == "SUM").unwrap();
    assert_eq!(io.output_shape(sum, &[2, 1]).unwrap(), vec![2, 1]);
}

#[test]
fn ragged_load_errors() {
    let (config, mut model) = ragged();
    model.inputs[1] = tensor("X", DataType::Fp32, &[None, Some(3)]);
    let err = IoMap::new(&config, &model).unwrap_err();
    assert!(err.contains("input 'X'"), "{err}");

    let (config, mut model) = ragged();
    model.inputs[0] = tensor("SHAPES", DataType::Int64, &[None, Some(2)]);
    let err = IoMap::new(&config, &model).unwrap_err();
    assert!(err.contains("batch input 'SHAPES'"), "{err}");
}
