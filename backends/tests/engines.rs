//! Both engines run the example models, give the exact results where they
//! are known, and agree with each other where they are not.

mod common;

use bytes::Bytes;
use common::*;
use ferrite_backends::{BackendError, DataType, EngineKind, NamedTensor, Tensor};
use half::{bf16, f16};

#[test]
fn identity_fp32_returns_its_input() {
    for engine in engines("identity_fp32_returns_its_input") {
        let mut model = load_example("identity_fp32", engine);
        let data = floats(3 * 16, 1);
        let out = model
            .execute(
                &[NamedTensor::new(
                    "INPUT0",
                    tensor(DataType::Fp32, &[3, 16], &data),
                )],
                &[],
            )
            .unwrap();
        assert_eq!(out.len(), 1, "{engine}");
        assert_eq!(out[0].name, "OUTPUT0");
        assert_eq!(out[0].tensor.shape(), &[3, 16]);
        assert_eq!(values::<f32>(&out[0].tensor), data, "{engine}");
    }
}

#[test]
fn unaligned_input_bytes_are_read_correctly() {
    for engine in engines("unaligned_input_bytes_are_read_correctly") {
        let mut model = load_example("identity_fp32", engine);
        let data = floats(16, 2);
        let mut raw = vec![0u8];
        raw.extend_from_slice(bytemuck::cast_slice(&data));
        let unaligned = Bytes::from(raw).slice(1..);
        let input = Tensor::new(DataType::Fp32, vec![1, 16], unaligned).unwrap();
        let out = model
            .execute(&[NamedTensor::new("INPUT0", input)], &[])
            .unwrap();
        assert_eq!(values::<f32>(&out[0].tensor), data, "{engine}");
    }
}

#[test]
fn simple_adds_and_subtracts() {
    for engine in engines("simple_adds_and_subtracts") {
        let mut model = load_example("simple", engine);
        let a: Vec<i32> = (0..32).map(|i| i * 3 - 40).collect();
        let b: Vec<i32> = (0..32).map(|i| 7 - i * i).collect();
        let inputs = [
            NamedTensor::new("INPUT1", tensor(DataType::Int32, &[2, 16], &b)),
            NamedTensor::new("INPUT0", tensor(DataType::Int32, &[2, 16], &a)),
        ];
        let out = model.execute(&inputs, &[]).unwrap();
        let names: Vec<&str> = out.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["OUTPUT0", "OUTPUT1"], "{engine}");
        let sum: Vec<i32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        let diff: Vec<i32> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
        assert_eq!(values::<i32>(output(&out, "OUTPUT0")), sum, "{engine}");
        assert_eq!(values::<i32>(output(&out, "OUTPUT1")), diff, "{engine}");

        let only = model.execute(&inputs, &["OUTPUT1".to_string()]).unwrap();
        assert_eq!(only.len(), 1, "{engine}");
        assert_eq!(only[0].name, "OUTPUT1");
        assert_eq!(values::<i32>(&only[0].tensor), diff, "{engine}");
    }
}

#[test]
fn identity_bytes_keeps_every_element() {
    let elements: [&[u8]; 6] = [
        b"hello",
        b"",
        b"a longer element",
        b"x",
        b"tab\tsep",
        b"\xc3\xa9t\xc3\xa9",
    ];
    for engine in engines("identity_bytes_keeps_every_element") {
        let mut model = load_example("identity_bytes", engine);
        let input = bytes_tensor(&[2, 3], &elements);
        let out = model
            .execute(&[NamedTensor::new("INPUT0", input.clone())], &[])
            .unwrap();
        assert_eq!(out[0].tensor, input, "{engine}");
    }
}

#[test]
fn onnxruntime_bytes_may_hold_any_bytes() {
    if !onnxruntime_available("onnxruntime_bytes_may_hold_any_bytes") {
        return;
    }
    let mut model = load_example("identity_bytes", EngineKind::OnnxRuntime);
    let input = bytes_tensor(&[1, 3], &[b"\x00\xff\x00", b"nul\x00inside", b"\x80"]);
    let out = model
        .execute(&[NamedTensor::new("INPUT0", input.clone())], &[])
        .unwrap();
    assert_eq!(out[0].tensor, input);
}

#[test]
fn tract_rejects_bytes_that_are_not_utf8() {
    let mut model = load_example("identity_bytes", EngineKind::Tract);
    let input = bytes_tensor(&[1, 1], &[b"\xff\xfe"]);
    let err = model
        .execute(&[NamedTensor::new("INPUT0", input)], &[])
        .unwrap_err();
    assert!(matches!(err, BackendError::InvalidInput(_)), "{err:?}");
    assert!(
        err.to_string().contains("input 'INPUT0'") && err.to_string().contains("UTF-8"),
        "{err}"
    );
}

/// Runs a float model on both engines and checks that they agree.
fn engines_agree(name: &str, input: &str, output_name: &str, row: usize, batches: &[i64]) {
    let test = format!("engines_agree({name})");
    let available = engines(&test);
    let mut models: Vec<_> = available
        .iter()
        .map(|&e| (e, load_example(name, e)))
        .collect();
    for (seed, &batch) in batches.iter().enumerate() {
        let data = floats(batch as usize * row, seed as u64 + 10);
        let mut shape = vec![batch];
        shape.extend(example_config(name).input[0].dims.iter());
        let mut results = Vec::new();
        for (engine, model) in &mut models {
            let out = model
                .execute(
                    &[NamedTensor::new(
                        input,
                        tensor(DataType::Fp32, &shape, &data),
                    )],
                    &[],
                )
                .unwrap_or_else(|e| panic!("{engine} {name}: {e}"));
            let logits = output(&out, output_name);
            assert_eq!(logits.shape(), &[batch, 10], "{engine} {name}");
            results.push((*engine, values::<f32>(logits)));
        }
        let (first_engine, first) = &results[0];
        assert!(first.iter().all(|v| v.is_finite()), "{first_engine} {name}");
        for (engine, other) in &results[1..] {
            assert_close(
                &format!("{name} batch {batch}: {first_engine} vs {engine}"),
                first,
                other,
                1e-4,
            );
        }
    }
}

#[test]
fn mlp_engines_agree_and_give_probabilities() {
    engines_agree("mlp", "input", "probabilities", 64, &[1, 4, 8]);
    let mut model = load_example("mlp", EngineKind::Tract);
    let out = model
        .execute(
            &[NamedTensor::new(
                "input",
                tensor(DataType::Fp32, &[2, 64], &floats(128, 3)),
            )],
            &[],
        )
        .unwrap();
    for row in values::<f32>(&out[0].tensor).chunks(10) {
        let total: f32 = row.iter().sum();
        assert!((total - 1.0).abs() < 1e-5, "softmax row sums to {total}");
        assert!(row.iter().all(|&p| (0.0..=1.0).contains(&p)));
    }
}

#[test]
fn cnn_engines_agree() {
    engines_agree("cnn", "image", "logits", 3 * 32 * 32, &[1, 5]);
}

/// Two rows of four distinctive values of a type, as raw bytes.
fn sample(dtype: DataType) -> Tensor {
    let shape = [2, 4];
    match dtype {
        DataType::Bool => tensor(dtype, &shape, &[1u8, 0, 0, 1, 1, 1, 0, 0]),
        DataType::Uint8 => tensor(dtype, &shape, &[0u8, 1, 127, 128, 200, 254, 255, 9]),
        DataType::Uint16 => tensor(dtype, &shape, &[0u16, 1, 300, 65535, 2, 3, 40000, 9]),
        DataType::Uint32 => tensor(dtype, &shape, &[0u32, 1, u32::MAX, 70000, 2, 3, 4, 5]),
        DataType::Uint64 => tensor(dtype, &shape, &[0u64, 1, u64::MAX, 1 << 40, 2, 3, 4, 5]),
        DataType::Int8 => tensor(dtype, &shape, &[0i8, -1, 127, -128, 5, -6, 7, -8]),
        DataType::Int16 => tensor(dtype, &shape, &[0i16, -1, i16::MAX, i16::MIN, 5, -6, 7, -8]),
        DataType::Int32 => tensor(dtype, &shape, &[0i32, -1, i32::MAX, i32::MIN, 5, -6, 7, -8]),
        DataType::Int64 => tensor(dtype, &shape, &[0i64, -1, i64::MAX, i64::MIN, 5, -6, 7, -8]),
        DataType::Fp16 => {
            let v: Vec<f16> = [0.0f32, -1.5, 65504.0, 0.000061, 3.25, -7.0, 1e-3, 2.0]
                .iter()
                .map(|&x| f16::from_f32(x))
                .collect();
            tensor(dtype, &shape, &v)
        }
        DataType::Bf16 => {
            let v: Vec<bf16> = [0.0f32, -1.5, 3.0e38, 1e-30, 3.25, -7.0, 1e-3, 2.0]
                .iter()
                .map(|&x| bf16::from_f32(x))
                .collect();
            tensor(dtype, &shape, &v)
        }
        DataType::Fp32 => tensor(
            dtype,
            &shape,
            &[
                0.0f32,
                -1.5,
                f32::MAX,
                f32::MIN_POSITIVE,
                3.25,
                -7.0,
                1e-3,
                2.0,
            ],
        ),
        DataType::Fp64 => tensor(
            dtype,
            &shape,
            &[
                0.0f64,
                -1.5,
                f64::MAX,
                f64::MIN_POSITIVE,
                3.25,
                -7.0,
                1e-3,
                2.0,
            ],
        ),
        DataType::Bytes => bytes_tensor(
            &shape,
            &[b"a", b"", b"bc", b"def", b"g", b"hi", b"jkl", b"m"],
        ),
    }
}

#[test]
fn all_types_round_trip_every_type() {
    for engine in engines("all_types_round_trip_every_type") {
        let mut model = load_example("all_types", engine);
        let inputs: Vec<NamedTensor> = all_types_dtypes()
            .into_iter()
            .map(|t| NamedTensor::new(format!("IN_{t}"), sample(t)))
            .collect();
        let out = model.execute(&inputs, &[]).unwrap();
        assert_eq!(out.len(), inputs.len(), "{engine}");
        for input in &inputs {
            let dtype = input.tensor.dtype();
            let returned = output(&out, &format!("OUT_{dtype}"));
            assert_eq!(returned, &input.tensor, "{engine} {dtype}");
        }
        let one = model.execute(&inputs, &["OUT_FP16".to_string()]).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].tensor, sample(DataType::Fp16), "{engine}");
    }
}

#[test]
fn bf16_runs_on_onnxruntime_and_is_refused_by_tract() {
    let err = load_error(
        &example_config("identity_bf16"),
        &example_model("identity_bf16", 1),
        EngineKind::Tract,
    );
    assert!(
        matches!(
            err,
            BackendError::Load {
                engine: "tract",
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("onnxruntime==1.22.1"), "{text}");
    assert!(
        text.to_lowercase().contains("bfloat16") || text.contains("BF16"),
        "{text}"
    );

    if !onnxruntime_available("bf16_runs_on_onnxruntime_and_is_refused_by_tract") {
        return;
    }
    let mut model = load_example("identity_bf16", EngineKind::OnnxRuntime);
    let input = sample(DataType::Bf16);
    let out = model
        .execute(&[NamedTensor::new("INPUT0", input.clone())], &[])
        .unwrap();
    assert_eq!(out[0].tensor, input);
}

#[test]
fn request_errors_name_the_tensor() {
    for engine in engines("request_errors_name_the_tensor") {
        let mut model = load_example("simple", engine);
        let ints = vec![1i32; 16];
        let good = |name: &str| NamedTensor::new(name, tensor(DataType::Int32, &[1, 16], &ints));
        let cases: Vec<(Vec<NamedTensor>, Vec<String>, &str)> = vec![
            (
                vec![good("INPUT0"), good("INPUT9")],
                vec![],
                "unknown input 'INPUT9'",
            ),
            (
                vec![
                    good("INPUT0"),
                    NamedTensor::new("INPUT1", tensor(DataType::Fp32, &[1, 16], &[0f32; 16])),
                ],
                vec![],
                "input 'INPUT1' has data type FP32, the model expects INT32",
            ),
            (
                vec![
                    good("INPUT0"),
                    NamedTensor::new("INPUT1", tensor(DataType::Int32, &[1, 8], &[0i32; 8])),
                ],
                vec![],
                "input 'INPUT1' has shape [1, 8]",
            ),
            (vec![good("INPUT0")], vec![], "input 'INPUT1' is missing"),
            (
                vec![good("INPUT0"), good("INPUT1")],
                vec!["OUTPUT7".to_string()],
                "unknown output 'OUTPUT7'",
            ),
        ];
        for (inputs, outputs, expected) in cases {
            let err = model.execute(&inputs, &outputs).unwrap_err();
            assert!(
                matches!(err, BackendError::InvalidInput(_)),
                "{engine}: {err:?}"
            );
            assert!(err.to_string().contains(expected), "{engine}: {err}");
        }
        assert!(model
            .execute(&[good("INPUT0"), good("INPUT1")], &[])
            .is_ok());
    }
}

#[test]
fn load_errors_name_the_tensor() {
    use ferrite_proto::inference::DataType as ConfigType;
    for engine in engines("load_errors_name_the_tensor") {
        let file = example_model("identity_fp32", 1);
        let wrong_type = config(
            "identity_fp32",
            8,
            &[("INPUT0", ConfigType::TypeFp64, &[16])],
            &[("OUTPUT0", ConfigType::TypeFp64, &[16])],
        );
        let err = load_error(&wrong_type, &file, engine);
        assert!(
            matches!(err, BackendError::Load { .. }),
            "{engine}: {err:?}"
        );
        assert!(
            err.to_string()
                .contains("input 'INPUT0' is FP64 in the config but FP32 in the model"),
            "{engine}: {err}"
        );

        let wrong_dims = config(
            "identity_fp32",
            8,
            &[("INPUT0", ConfigType::TypeFp32, &[8])],
            &[("OUTPUT0", ConfigType::TypeFp32, &[16])],
        );
        let err = load_error(&wrong_dims, &file, engine);
        assert!(
            err.to_string().contains("input 'INPUT0'") && err.to_string().contains("[8]"),
            "{engine}: {err}"
        );

        let wrong_output = config(
            "identity_fp32",
            8,
            &[("INPUT0", ConfigType::TypeFp32, &[16])],
            &[("SCORES", ConfigType::TypeFp32, &[16])],
        );
        let err = load_error(&wrong_output, &file, engine);
        assert!(
            err.to_string().contains("output 'SCORES'"),
            "{engine}: {err}"
        );

        let missing = std::path::Path::new("/nonexistent/model.onnx");
        let err = load_error(&example_config("identity_fp32"), missing, engine);
        assert!(
            err.to_string().contains("/nonexistent/model.onnx"),
            "{engine}: {err}"
        );
    }
}
