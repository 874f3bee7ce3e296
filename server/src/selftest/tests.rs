//! The self-test's own tests. With a GPU they run the whole self-test on
//! the example models (the GPU integration test); without one they check
//! that it says so and fails.

use std::path::PathBuf;

use super::*;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/models")
}

fn run(args: &[&str]) -> (bool, String) {
    let mut out = Vec::new();
    let passed = main(args.iter().map(|a| a.to_string()), &mut out).unwrap();
    (passed, String::from_utf8(out).unwrap())
}

#[test]
fn gpu_self_test_on_the_example_models() {
    let repository = examples();
    let (passed, output) = run(&["gpu", "--model-repository", repository.to_str().unwrap()]);
    if let Err(reason) = cuda::available() {
        eprintln!("skipped: no GPU ({reason})");
        assert!(!passed, "without a GPU the self-test fails");
        assert!(
            output.contains("no usable GPU or CUDA driver was found"),
            "{output}"
        );
        return;
    }
    eprintln!("{output}");
    assert!(passed, "{output}");
    for model in ["mlp", "cnn", "simple", "identity_fp32"] {
        assert!(
            output
                .lines()
                .any(|l| l.trim_start().starts_with(model) && l.ends_with("ok")),
            "{model} did not pass on the GPU:\n{output}"
        );
    }
}

#[test]
fn a_missing_device_fails_plainly() {
    let repository = examples();
    let (passed, output) = run(&[
        "gpu",
        "--model-repository",
        repository.to_str().unwrap(),
        "--device",
        "4096",
    ]);
    assert!(!passed);
    assert!(
        output.contains("no usable GPU or CUDA driver was found"),
        "{output}"
    );
}

#[test]
fn options_need_a_repository() {
    let mut out = Vec::new();
    assert!(main(["gpu".to_string()], &mut out).is_err());
    assert!(main(["tpu".to_string()], &mut out).is_err());
}

#[test]
fn outcomes_pass_within_tolerance_or_when_skipped() {
    let mut o = ModelOutcome::new("m", "fp32", FP32_TOLERANCE);
    assert!(!o.passed(), "nothing measured yet");
    o.measured(1e-6, false);
    assert!(o.passed());
    o.measured(1e-3, false);
    assert!(!o.passed());
    let mut exact = ModelOutcome::new("m", "fp32", FP32_TOLERANCE);
    exact.measured(0.0, true);
    assert!(!exact.passed());
    let mut skipped = ModelOutcome::new("m", "fp32", FP32_TOLERANCE);
    skipped.skip("BYTES".into());
    assert!(skipped.passed() && skipped.skipped());
}
