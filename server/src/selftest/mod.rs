//! `ferrite selftest gpu --model-repository DIR`: checks a GPU end to end
//! with nothing but the binary and the driver (plus the CUDA libraries
//! NVRTC and cuBLAS on the library path).
//!
//! 1. Reports the device (name, compute capability, memory, the CUDA
//!    version of the driver, NVRTC's version), or says plainly that no
//!    GPU or CUDA driver was found, and fails.
//! 2. Runs every kernel, and cuBLAS through the engine's matrix products,
//!    against its CPU reference (tolerances in `ferrite_kernels::checks`).
//! 3. Runs every model of the repository (its latest version) on the GPU
//!    and on the CPU (ONNX Runtime when found, else tract) with the same
//!    deterministic inputs, and prints the largest relative difference per
//!    model: the largest absolute difference over the outputs divided by
//!    the largest magnitude of the CPU's output. FP32 must be within
//!    [`FP32_TOLERANCE`], the `precision: fp16` run of the same model
//!    within [`FP16_TOLERANCE`]; integer and boolean outputs must match
//!    exactly. A model the GPU engine does not support, or the CPU engine
//!    cannot run for reference, is listed as skipped, with the reason.
//! 4. Times the GPU engine at batch 1, 8, 32 and 64 (up to the model's
//!    max_batch_size) for batching models: each timing is whole
//!    executions (host tensors in, host tensors out: staging, copies,
//!    launches), without the server's scheduler or network.
//!
//! The exit status is non-zero when there is no GPU, when a kernel or a
//! model differs beyond its tolerance or fails, or when no model ran on
//! the GPU.

mod data;
mod report;
#[cfg(test)]
mod tests;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use ferrite_backends::cuda::{self, PRECISION_PARAMETER};
use ferrite_backends::{
    create_instance, resolve_engine, Backend, BackendError, EngineKind, InstanceSpec,
};
use ferrite_proto::inference::{ModelConfig, ModelParameter};
use ferrite_repository::{ModelSpec, RepositoryOptions};

pub use report::{ModelOutcome, Timing};

/// Largest relative difference allowed between the GPU (FP32) and the CPU.
pub const FP32_TOLERANCE: f64 = 1e-4;
/// Largest relative difference allowed for `precision: fp16`.
pub const FP16_TOLERANCE: f64 = 1e-2;
/// Batch sizes timed.
pub const BATCH_SIZES: [usize; 4] = [1, 8, 32, 64];
/// Least time spent timing one batch size.
const TIMING: Duration = Duration::from_millis(500);

/// `ferrite selftest ...`
#[derive(Debug, Parser)]
#[command(name = "ferrite selftest", about = "Checks a device end to end")]
pub struct SelftestOptions {
    #[command(subcommand)]
    pub target: Target,
}

/// What to check.
#[derive(Debug, Subcommand)]
pub enum Target {
    /// Kernels, example models (GPU against CPU) and throughput on a GPU.
    Gpu(GpuOptions),
}

/// `ferrite selftest gpu` options.
#[derive(Debug, Clone, clap::Args)]
pub struct GpuOptions {
    /// The model repository whose models are run.
    #[arg(long = "model-repository", value_name = "DIR")]
    pub model_repository: PathBuf,
    /// The GPU to check.
    #[arg(long, default_value_t = 0)]
    pub device: usize,
}

/// Runs `ferrite selftest` with the arguments after `selftest`; returns
/// whether everything passed. Output goes to `out`.
pub fn main(args: impl IntoIterator<Item = String>, out: &mut dyn Write) -> anyhow::Result<bool> {
    let options = SelftestOptions::try_parse_from(
        std::iter::once("ferrite selftest".to_string()).chain(args),
    )?;
    match options.target {
        Target::Gpu(gpu) => run_gpu(&gpu, out),
    }
}

/// The GPU self-test.
pub fn run_gpu(options: &GpuOptions, out: &mut dyn Write) -> anyhow::Result<bool> {
    writeln!(out, "ferrite GPU self-test")?;
    let info = match cuda::device(options.device) {
        Ok(info) => info,
        Err(reason) => {
            writeln!(out, "no usable GPU or CUDA driver was found: {reason}")?;
            writeln!(out, "result: FAILED (no GPU)")?;
            return Ok(false);
        }
    };
    let nvrtc = cuda::nvrtc_version()
        .map(|(major, minor)| format!("{major}.{minor}"))
        .unwrap_or_else(|e| format!("unknown ({e})"));
    report::device(out, &info, &nvrtc)?;

    let checks = cuda::kernel_checks(options.device).map_err(anyhow::Error::msg)?;
    report::checks(out, &checks)?;
    let checks_passed = checks.iter().all(|c| c.passed());

    let specs = repository_models(options)?;
    let mut outcomes = Vec::new();
    let mut timings = Vec::new();
    for spec in &specs {
        let (outcome, gpu) = compare_model(spec, options.device, false);
        outcomes.push(outcome);
        if gpu.is_some() {
            outcomes.push(compare_model(spec, options.device, true).0);
        }
        if let Some(mut backend) = gpu {
            if spec.config.max_batch_size > 0 {
                timings.extend(time_model(spec, backend.as_mut()));
            }
        }
    }
    report::models(out, &outcomes)?;
    report::timings(out, &timings)?;

    let ran = outcomes.iter().any(|o| o.passed() && !o.skipped());
    let models_passed = outcomes.iter().all(|o| o.passed());
    let passed = checks_passed && models_passed && ran;
    let verdict = match (checks_passed, models_passed, ran) {
        (true, true, true) => "PASSED".to_string(),
        (_, _, false) => "FAILED (no model ran on the GPU)".to_string(),
        _ => "FAILED (see the rows marked FAIL)".to_string(),
    };
    writeln!(out, "result: {verdict}")?;
    Ok(passed)
}

/// The models of the repository, each with its latest version; models the
/// repository cannot load are skipped with a note.
fn repository_models(options: &GpuOptions) -> anyhow::Result<Vec<ModelSpec>> {
    let repository = RepositoryOptions::new([options.model_repository.clone()]);
    let found = ferrite_repository::scan(&repository).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the model repository {}: {e}",
            options.model_repository.display()
        )
    })?;
    let mut specs = Vec::new();
    for model in found {
        match model.result {
            Ok(spec) if spec.latest_version().is_some() => specs.push(spec),
            Ok(spec) => tracing::warn!(model = %spec.name, "no version to run"),
            Err(e) => tracing::warn!(model = %model.name, "skipped: {e}"),
        }
    }
    Ok(specs)
}

/// The config run on the GPU: the model's, with `precision: fp16` when
/// asked.
fn gpu_config(config: &ModelConfig, fp16: bool) -> ModelConfig {
    let mut config = config.clone();
    if fp16 {
        config.parameters.insert(
            PRECISION_PARAMETER.to_string(),
            ModelParameter {
                string_value: "fp16".to_string(),
            },
        );
    }
    config
}

fn load(
    spec: &ModelSpec,
    config: &ModelConfig,
    engine: EngineKind,
) -> Result<Box<dyn Backend>, BackendError> {
    let version = spec
        .latest_version()
        .ok_or_else(|| BackendError::Unsupported("the model has no version".into()))?;
    create_instance(&InstanceSpec {
        model_name: &spec.name,
        model_file: &version.model_file,
        config,
        engine,
        instance_index: 0,
    })
}

/// The batch size models are compared at.
fn comparison_batch(config: &ModelConfig) -> usize {
    usize::try_from(config.max_batch_size)
        .unwrap_or(0)
        .clamp(1, 4)
}

/// Runs one model on the GPU and on the CPU and compares; gives the GPU
/// instance back (FP32 runs only) for timing.
fn compare_model(
    spec: &ModelSpec,
    device: usize,
    fp16: bool,
) -> (ModelOutcome, Option<Box<dyn Backend>>) {
    let precision = if fp16 { "fp16" } else { "fp32" };
    let tolerance = if fp16 { FP16_TOLERANCE } else { FP32_TOLERANCE };
    let mut outcome = ModelOutcome::new(&spec.name, precision, tolerance);
    let config = gpu_config(&spec.config, fp16);
    let mut gpu = match load(spec, &config, EngineKind::Cuda { device }) {
        Ok(backend) => backend,
        Err(BackendError::Unsupported(reason)) => {
            outcome.skip(reason);
            return (outcome, None);
        }
        Err(e) => {
            outcome.fail(format!("GPU load: {e}"));
            return (outcome, None);
        }
    };
    let cpu_engine = match resolve_engine(&spec.config) {
        Ok(engine) => engine,
        Err(e) => {
            outcome.fail(format!("no CPU engine: {e}"));
            return (outcome, None);
        }
    };
    outcome.reference = cpu_engine.name().to_string();
    let mut cpu = match load(spec, &spec.config, cpu_engine) {
        Ok(cpu) => cpu,
        Err(e) => {
            outcome.skip(format!("the CPU engine cannot run it for reference: {e}"));
            return (outcome, None);
        }
    };
    let mut run = || -> Result<(f64, bool), String> {
        let inputs = data::inputs(&spec.config, comparison_batch(&spec.config))?;
        let expected = cpu
            .execute(&inputs, &[])
            .map_err(|e| format!("CPU run: {e}"))?;
        let actual = gpu
            .execute(&inputs, &[])
            .map_err(|e| format!("GPU run: {e}"))?;
        data::compare(&actual, &expected)
    };
    match run() {
        Ok((difference, exact_mismatch)) => outcome.measured(difference, exact_mismatch),
        Err(e) => outcome.fail(e),
    }
    (outcome, (!fp16).then_some(gpu))
}

/// Times whole executions at each batch size the model allows.
fn time_model(spec: &ModelSpec, backend: &mut dyn Backend) -> Vec<Timing> {
    let max = usize::try_from(spec.config.max_batch_size).unwrap_or(0);
    let mut timings = Vec::new();
    for batch in BATCH_SIZES.into_iter().filter(|&b| b <= max) {
        let result = data::inputs(&spec.config, batch).and_then(|inputs| {
            for _ in 0..3 {
                backend.execute(&inputs, &[]).map_err(|e| e.to_string())?;
            }
            let started = Instant::now();
            let mut iterations = 0u64;
            while (started.elapsed() < TIMING || iterations < 10) && iterations < 100_000 {
                backend.execute(&inputs, &[]).map_err(|e| e.to_string())?;
                iterations += 1;
            }
            Ok((iterations, started.elapsed()))
        });
        timings.push(Timing {
            model: spec.name.clone(),
            batch,
            result,
        });
    }
    timings
}
