//! Shared helpers of the engine tests: the example models, their configs,
//! tensors built from typed values, and loading a model with either engine.

#![allow(dead_code)]

use std::path::PathBuf;

use bytes::Bytes;
use ferrite_backends::{
    bytes_codec, create_instance, Backend, BackendError, DataType, EngineKind, InstanceSpec,
    NamedTensor, Tensor,
};
use ferrite_proto::inference::{DataType as ConfigType, ModelConfig, ModelInput, ModelOutput};

/// `examples/models/<name>/<version>/model.onnx`.
pub fn example_model(name: &str, version: u32) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/models")
        .join(name)
        .join(version.to_string())
        .join("model.onnx")
}

/// `backends/tests/data/<file>`.
pub fn test_data(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file)
}

/// A tensor of a config: name, type, dims (batch dimension excluded).
pub type TensorDecl<'a> = (&'a str, ConfigType, &'a [i64]);

/// A config with the given inputs and outputs.
pub fn config(
    name: &str,
    max_batch_size: i32,
    inputs: &[TensorDecl],
    outputs: &[TensorDecl],
) -> ModelConfig {
    ModelConfig {
        name: name.into(),
        platform: "onnxruntime_onnx".into(),
        max_batch_size,
        input: inputs
            .iter()
            .map(|(name, dtype, dims)| ModelInput {
                name: name.to_string(),
                data_type: *dtype as i32,
                dims: dims.to_vec(),
                ..Default::default()
            })
            .collect(),
        output: outputs
            .iter()
            .map(|(name, dtype, dims)| ModelOutput {
                name: name.to_string(),
                data_type: *dtype as i32,
                dims: dims.to_vec(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// The configs of the example models (as their `config.pbtxt` files, or as
/// auto-completion derives them for `mlp`).
pub fn example_config(name: &str) -> ModelConfig {
    use ConfigType::*;
    match name {
        "identity_fp32" => config(
            name,
            64,
            &[("INPUT0", TypeFp32, &[16])],
            &[("OUTPUT0", TypeFp32, &[16])],
        ),
        "simple" => config(
            name,
            8,
            &[("INPUT0", TypeInt32, &[16]), ("INPUT1", TypeInt32, &[16])],
            &[("OUTPUT0", TypeInt32, &[16]), ("OUTPUT1", TypeInt32, &[16])],
        ),
        "identity_bytes" => config(
            name,
            8,
            &[("INPUT0", TypeString, &[-1])],
            &[("OUTPUT0", TypeString, &[-1])],
        ),
        "identity_bf16" => config(
            name,
            8,
            &[("INPUT0", TypeBf16, &[4])],
            &[("OUTPUT0", TypeBf16, &[4])],
        ),
        "mlp" => config(
            name,
            8,
            &[("input", TypeFp32, &[64])],
            &[("probabilities", TypeFp32, &[10])],
        ),
        "cnn" => config(
            name,
            32,
            &[("image", TypeFp32, &[3, 32, 32])],
            &[("logits", TypeFp32, &[10])],
        ),
        "all_types" => {
            let mut cfg = config(name, 8, &[], &[]);
            for dtype in all_types_dtypes() {
                let config_type = dtype.to_config();
                cfg.input.push(ModelInput {
                    name: format!("IN_{dtype}"),
                    data_type: config_type as i32,
                    dims: vec![4],
                    ..Default::default()
                });
                cfg.output.push(ModelOutput {
                    name: format!("OUT_{dtype}"),
                    data_type: config_type as i32,
                    dims: vec![4],
                    ..Default::default()
                });
            }
            cfg
        }
        other => panic!("no config for example model {other}"),
    }
}

/// The types of the `all_types` example (every type but BF16, which has a
/// model of its own).
pub fn all_types_dtypes() -> Vec<DataType> {
    DataType::ALL
        .into_iter()
        .filter(|&t| t != DataType::Bf16)
        .collect()
}

/// Whether ONNX Runtime can be loaded; prints why not when it cannot.
pub fn onnxruntime_available(test: &str) -> bool {
    match ferrite_backends::onnxruntime::library() {
        Ok(_) => true,
        Err(err) => {
            eprintln!("skipping the ONNX Runtime part of {test}: {err}");
            false
        }
    }
}

/// The engines to run a test with: tract always, ONNX Runtime when it can
/// be loaded.
pub fn engines(test: &str) -> Vec<EngineKind> {
    let mut engines = vec![EngineKind::Tract];
    if onnxruntime_available(test) {
        engines.push(EngineKind::OnnxRuntime);
    }
    engines
}

/// Loads an example model with an engine.
pub fn load_example(name: &str, engine: EngineKind) -> Box<dyn Backend> {
    let cfg = example_config(name);
    load(&cfg, &example_model(name, 1), engine).unwrap_or_else(|e| panic!("{engine} {name}: {e}"))
}

/// Loads a model file with a config and an engine.
pub fn load(
    cfg: &ModelConfig,
    file: &std::path::Path,
    engine: EngineKind,
) -> Result<Box<dyn Backend>, BackendError> {
    create_instance(&InstanceSpec {
        model_name: &cfg.name,
        model_file: file,
        config: cfg,
        engine,
        instance_index: 0,
    })
}

/// The error of a load that must fail.
pub fn load_error(cfg: &ModelConfig, file: &std::path::Path, engine: EngineKind) -> BackendError {
    match load(cfg, file, engine) {
        Ok(_) => panic!("{engine} loaded {} although it should not", file.display()),
        Err(err) => err,
    }
}

/// A tensor from plain values.
pub fn tensor<T: bytemuck::Pod>(dtype: DataType, shape: &[i64], values: &[T]) -> Tensor {
    let data = Bytes::copy_from_slice(bytemuck::cast_slice(values));
    Tensor::new(dtype, shape.to_vec(), data).unwrap()
}

/// A BYTES tensor.
pub fn bytes_tensor(shape: &[i64], elements: &[&[u8]]) -> Tensor {
    Tensor::new(
        DataType::Bytes,
        shape.to_vec(),
        bytes_codec::encode(elements.iter().copied()),
    )
    .unwrap()
}

/// The values of a fixed-size tensor.
pub fn values<T: bytemuck::Pod>(tensor: &Tensor) -> Vec<T> {
    let data: &[u8] = tensor.data();
    let mut out = vec![T::zeroed(); data.len() / std::mem::size_of::<T>()];
    bytemuck::cast_slice_mut::<T, u8>(&mut out).copy_from_slice(data);
    out
}

/// Deterministic pseudo-random floats in [-1, 1).
pub fn floats(count: usize, seed: u64) -> Vec<f32> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Finds an output by name.
pub fn output<'a>(outputs: &'a [NamedTensor], name: &str) -> &'a Tensor {
    &outputs
        .iter()
        .find(|o| o.name == name)
        .unwrap_or_else(|| panic!("no output {name}"))
        .tensor
}

/// Asserts two float outputs agree within a tolerance.
pub fn assert_close(what: &str, a: &[f32], b: &[f32], tolerance: f32) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tolerance * (1.0 + x.abs().max(y.abs())),
            "{what}: element {i} differs: {x} vs {y}"
        );
    }
}
