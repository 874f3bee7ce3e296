//! The ONNX Runtime engine: the library it loads and the session settings a
//! config can give it. Skipped, with the reason printed, where no ONNX
//! Runtime library can be found.

mod common;

use common::*;
use ferrite_backends::{resolve_engine, BackendError, DataType, EngineKind, NamedTensor};
use ferrite_proto::inference::{
    model_optimization_policy, ModelConfig, ModelOptimizationPolicy, ModelParameter,
};

fn with_parameters(mut cfg: ModelConfig, params: &[(&str, &str)]) -> ModelConfig {
    for (key, value) in params {
        cfg.parameters.insert(
            key.to_string(),
            ModelParameter {
                string_value: value.to_string(),
            },
        );
    }
    cfg
}

#[test]
fn loads_a_supported_library() {
    if !onnxruntime_available("loads_a_supported_library") {
        let cfg = example_config("simple");
        assert_eq!(
            resolve_engine(&cfg).unwrap(),
            EngineKind::Tract,
            "falls back to tract"
        );
        return;
    }
    let path = ferrite_backends::onnxruntime::library().unwrap();
    assert!(path.is_file(), "{}", path.display());
    let version = ferrite_backends::onnxruntime::library_version().unwrap();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    assert!((major, minor) >= (1, 22), "version {version}");
    assert_eq!(
        resolve_engine(&example_config("simple")).unwrap(),
        EngineKind::OnnxRuntime
    );
}

#[test]
fn honours_session_parameters() {
    if !onnxruntime_available("honours_session_parameters") {
        return;
    }
    let mut cfg = with_parameters(
        example_config("cnn"),
        &[
            ("intra_op_thread_count", "2"),
            ("inter_op_thread_count", "2"),
            ("execution_mode", "1"),
            ("enable_mem_arena", "0"),
            ("enable_mem_pattern", "0"),
            ("session.use_device_allocator_for_initializers", "1"),
            ("memory.enable_memory_arena_shrinkage", "cpu:0"),
        ],
    );
    cfg.optimization = Some(ModelOptimizationPolicy {
        graph: Some(model_optimization_policy::Graph { level: 2 }),
        ..Default::default()
    });
    let mut tuned = load(&cfg, &example_model("cnn", 1), EngineKind::OnnxRuntime).unwrap();
    let mut plain = load_example("cnn", EngineKind::OnnxRuntime);
    let image = tensor(DataType::Fp32, &[2, 3, 32, 32], &floats(2 * 3 * 32 * 32, 4));
    let a = tuned
        .execute(&[NamedTensor::new("image", image.clone())], &[])
        .unwrap();
    let b = plain
        .execute(&[NamedTensor::new("image", image)], &[])
        .unwrap();
    assert_close(
        "tuned vs default session",
        &values::<f32>(&a[0].tensor),
        &values::<f32>(&b[0].tensor),
        1e-4,
    );
}

#[test]
fn rejects_bad_and_unsupported_parameters() {
    if !onnxruntime_available("rejects_bad_and_unsupported_parameters") {
        return;
    }
    for (key, value, expected) in [
        ("intra_op_thread_count", "lots", "'intra_op_thread_count'"),
        ("enable_mem_arena", "maybe", "'enable_mem_arena'"),
        ("gpu_mem_limit", "1000", "'gpu_mem_limit'"),
        ("cudnn_conv_algo_search", "1", "'cudnn_conv_algo_search'"),
    ] {
        let cfg = with_parameters(example_config("identity_fp32"), &[(key, value)]);
        let err = load_error(
            &cfg,
            &example_model("identity_fp32", 1),
            EngineKind::OnnxRuntime,
        );
        assert!(
            matches!(
                err,
                BackendError::Load {
                    engine: "onnxruntime",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[test]
fn tract_accepts_onnxruntime_parameters_without_effect() {
    let cfg = with_parameters(
        example_config("identity_fp32"),
        &[("intra_op_thread_count", "4"), ("enable_mem_pattern", "0")],
    );
    let mut model = load(&cfg, &example_model("identity_fp32", 1), EngineKind::Tract).unwrap();
    let data = floats(16, 8);
    let out = model
        .execute(
            &[NamedTensor::new(
                "INPUT0",
                tensor(DataType::Fp32, &[1, 16], &data),
            )],
            &[],
        )
        .unwrap();
    assert_eq!(values::<f32>(&out[0].tensor), data);
    let cfg = with_parameters(example_config("identity_fp32"), &[("gpu_mem_limit", "1")]);
    let err = load_error(&cfg, &example_model("identity_fp32", 1), EngineKind::Tract);
    assert!(err.to_string().contains("'gpu_mem_limit'"), "{err}");
}
