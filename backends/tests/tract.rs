//! The tract engine's plan cache and its load-time refusal of models it
//! cannot run.

mod common;

use common::*;
use ferrite_backends::tract::{TractBackend, PLAN_CACHE_CAPACITY};
use ferrite_backends::{Backend, BackendError, DataType, EngineKind, InstanceSpec, NamedTensor};
use ferrite_proto::inference::{DataType as ConfigType, ModelConfig};

fn load_tract(cfg: &ModelConfig, file: &std::path::Path) -> Result<TractBackend, BackendError> {
    TractBackend::load(&InstanceSpec {
        model_name: &cfg.name,
        model_file: file,
        config: cfg,
        engine: EngineKind::Tract,
        instance_index: 0,
    })
}

fn run_batch(model: &mut TractBackend, batch: i64) -> Vec<f32> {
    let data = floats(batch as usize * 16, batch as u64);
    let out = model
        .execute(
            &[NamedTensor::new(
                "INPUT0",
                tensor(DataType::Fp32, &[batch, 16], &data),
            )],
            &[],
        )
        .unwrap();
    let returned = values::<f32>(&out[0].tensor);
    assert_eq!(returned, data, "batch {batch}");
    returned
}

#[test]
fn plans_are_built_per_shape_reused_and_bounded() {
    let cfg = example_config("identity_fp32");
    let mut model = load_tract(&cfg, &example_model("identity_fp32", 1)).unwrap();
    let stats = model.plan_stats();
    assert_eq!(
        (stats.cached, stats.built),
        (0, 0),
        "a batching model has no plan before its first request"
    );
    assert_eq!(stats.capacity, PLAN_CACHE_CAPACITY);

    run_batch(&mut model, 2);
    run_batch(&mut model, 2);
    let stats = model.plan_stats();
    assert_eq!(
        (stats.cached, stats.built, stats.hits),
        (1, 1, 1),
        "the same shape reuses its plan"
    );

    run_batch(&mut model, 3);
    let stats = model.plan_stats();
    assert_eq!(
        (stats.cached, stats.built),
        (2, 2),
        "a new batch size builds a new plan"
    );

    let sizes = 1..=(PLAN_CACHE_CAPACITY as i64 + 3);
    for batch in sizes.clone() {
        run_batch(&mut model, batch);
    }
    let stats = model.plan_stats();
    assert_eq!(
        stats.cached, PLAN_CACHE_CAPACITY,
        "the cache stays within its bound"
    );
    // Batch sizes 2 and 3 were cached already; every other size was built.
    assert_eq!(stats.built, 2 + sizes.clone().count() as u64 - 2);

    let built = stats.built;
    run_batch(&mut model, *sizes.end());
    assert_eq!(
        model.plan_stats().built,
        built,
        "the most recent shape is still cached"
    );
    run_batch(&mut model, 1);
    assert_eq!(
        model.plan_stats().built,
        built + 1,
        "the oldest shape was evicted and is rebuilt"
    );
}

#[test]
fn fixed_shapes_get_their_plan_at_load() {
    let cfg = config(
        "identity_fp32",
        0,
        &[("INPUT0", ConfigType::TypeFp32, &[2, 16])],
        &[("OUTPUT0", ConfigType::TypeFp32, &[2, 16])],
    );
    let mut model = load_tract(&cfg, &example_model("identity_fp32", 1)).unwrap();
    assert_eq!(model.plan_stats().built, 1);
    let data = floats(32, 5);
    let out = model
        .execute(
            &[NamedTensor::new(
                "INPUT0",
                tensor(DataType::Fp32, &[2, 16], &data),
            )],
            &[],
        )
        .unwrap();
    assert_eq!(values::<f32>(&out[0].tensor), data);
    let stats = model.plan_stats();
    assert_eq!((stats.built, stats.hits), (1, 1));
}

/// The config of the `If` test models: `width` is INPUT0's second
/// dimension (-1 for dynamic).
fn if_model_config(name: &str, width: i64) -> ModelConfig {
    config(
        name,
        0,
        &[
            ("COND", ConfigType::TypeBool, &[1]),
            ("INPUT0", ConfigType::TypeFp32, &[-1, width]),
        ],
        &[("OUTPUT0", ConfigType::TypeFp32, &[-1, -1])],
    )
}

#[test]
fn tract_refuses_if_branches_that_disagree_at_load() {
    for (name, width) in [("if_shape_mismatch", 4), ("if_squeeze", -1)] {
        let file = test_data(&format!("{name}.onnx"));
        let err = load_tract(&if_model_config(name, width), &file).unwrap_err();
        let BackendError::Load {
            engine,
            path,
            reason,
        } = &err
        else {
            panic!("{name}: expected a load error, got {err:?}");
        };
        assert_eq!(*engine, "tract");
        assert!(path.ends_with(&format!("{name}.onnx")), "{path}");
        assert!(
            reason.contains("\"OUTPUT0\" If"),
            "{name}: tract's reason names the node: {reason}"
        );
        assert!(
            reason.contains("pip install onnxruntime==1.22.1"),
            "{reason}"
        );
        assert!(reason.contains("ORT_DYLIB_PATH"), "{reason}");
        assert!(!reason.contains("Stack backtrace"), "{reason}");
        if name == "if_squeeze" {
            // Only known dimensions reveal this one.
            assert!(reason.contains("not one"), "{reason}");
            assert!(
                reason.contains("analysed with batch size 1 and 64"),
                "{reason}"
            );
        }
    }
}

#[test]
fn tract_runs_if_squeeze_when_the_config_fixes_the_squeezed_axis() {
    let cfg = if_model_config("if_squeeze", 1);
    let mut model = load_tract(&cfg, &test_data("if_squeeze.onnx")).unwrap();
    for cond in [1u8, 0] {
        let out = model
            .execute(
                &[
                    NamedTensor::new("COND", tensor(DataType::Bool, &[1], &[cond])),
                    NamedTensor::new("INPUT0", tensor(DataType::Fp32, &[3, 1], &[1f32, 2., 3.])),
                ],
                &[],
            )
            .unwrap();
        assert_eq!(out[0].tensor.shape(), &[3, 1]);
        assert_eq!(values::<f32>(&out[0].tensor), [1., 2., 3.]);
    }
}

#[test]
fn onnxruntime_runs_the_branch_taken() {
    if !onnxruntime_available("onnxruntime_runs_the_branch_taken") {
        return;
    }
    let data = floats(8, 9);
    // (model, INPUT0 width in the config, COND, input shape, output shape)
    let cases = [
        ("if_shape_mismatch", 4, 1u8, [2, 4], [2, 4]),
        ("if_shape_mismatch", 4, 0, [2, 4], [2, 8]),
        ("if_squeeze", -1, 1, [8, 1], [8, 1]),
        ("if_squeeze", -1, 0, [2, 4], [2, 4]),
    ];
    for (name, width, cond, shape, expected) in cases {
        let cfg = if_model_config(name, width);
        let file = test_data(&format!("{name}.onnx"));
        let mut model = load(&cfg, &file, EngineKind::OnnxRuntime).unwrap();
        let out = model
            .execute(
                &[
                    NamedTensor::new("COND", tensor(DataType::Bool, &[1], &[cond])),
                    NamedTensor::new("INPUT0", tensor(DataType::Fp32, &shape, &data)),
                ],
                &[],
            )
            .unwrap();
        assert_eq!(out[0].tensor.shape(), &expected, "{name} cond {cond}");
        let row = shape[1] as usize;
        let returned = values::<f32>(&out[0].tensor);
        assert_eq!(&returned[..row], &data[..row], "{name} cond {cond}");
    }
}
