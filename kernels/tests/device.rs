//! The kernels on a real device, compared with their CPU references. Where
//! no GPU (or no CUDA driver, or no NVRTC) is available the test says why
//! and passes without checking anything.

use ferrite_kernels::{checks, gpu, Gpu, KernelError};

#[test]
fn kernels_match_their_cpu_references_on_the_device() {
    let gpu = match Gpu::open(0) {
        Ok(gpu) => gpu,
        Err(KernelError::Unavailable(reason)) => {
            eprintln!("skipped: no GPU to run the kernels on: {reason}");
            return;
        }
        Err(other) => panic!("a GPU is present but could not be opened: {other}"),
    };
    let results = checks::run_all(&gpu);
    let failed: Vec<_> = results.iter().filter(|r| !r.passed()).collect();
    for r in &results {
        eprintln!(
            "{:<28} max difference {:.3e} (tolerance {:.0e}) {}",
            r.name,
            r.max_difference,
            r.tolerance,
            r.error.as_deref().unwrap_or("")
        );
    }
    assert!(
        failed.is_empty(),
        "kernels differ from their references: {failed:#?}"
    );
}

#[test]
fn a_missing_device_is_reported_not_panicked() {
    match gpu::probe(4096) {
        Err(KernelError::Unavailable(reason)) => assert!(!reason.is_empty()),
        other => panic!("expected the device to be unavailable, got {other:?}"),
    }
}
