//! The self-test's results and their tables.

use std::io::{self, Write};
use std::time::Duration;

use ferrite_backends::cuda::{CheckResult, DeviceInfo};

/// How one model fared.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOutcome {
    pub model: String,
    /// "fp32" or "fp16".
    pub precision: String,
    /// The CPU engine compared with.
    pub reference: String,
    pub tolerance: f64,
    /// The largest relative difference, once measured.
    pub difference: Option<f64>,
    /// Why the model did not run on the GPU (not a failure).
    pub skipped: Option<String>,
    /// What went wrong (a failure).
    pub error: Option<String>,
}

impl ModelOutcome {
    /// An outcome not yet measured.
    pub fn new(model: &str, precision: &str, tolerance: f64) -> Self {
        Self {
            model: model.to_string(),
            precision: precision.to_string(),
            reference: String::new(),
            tolerance,
            difference: None,
            skipped: None,
            error: None,
        }
    }

    /// The GPU engine does not support the model.
    pub fn skip(&mut self, reason: String) {
        self.skipped = Some(reason);
    }

    /// Something failed.
    pub fn fail(&mut self, reason: String) {
        self.error = Some(reason);
    }

    /// Records the measured difference; integer or boolean outputs that
    /// differ at all fail.
    pub fn measured(&mut self, difference: f64, exact_mismatch: bool) {
        self.difference = Some(difference);
        if exact_mismatch {
            self.error = Some("integer or boolean outputs differ".into());
        }
    }

    /// Whether the model was skipped.
    pub fn skipped(&self) -> bool {
        self.skipped.is_some()
    }

    /// Skipped, or measured within tolerance without error.
    pub fn passed(&self) -> bool {
        self.error.is_none()
            && (self.skipped() || self.difference.is_some_and(|d| d <= self.tolerance))
    }
}

/// One timed batch size.
#[derive(Debug, Clone)]
pub struct Timing {
    pub model: String,
    pub batch: usize,
    /// Executions and the time they took, or why they failed.
    pub result: Result<(u64, Duration), String>,
}

pub fn device(out: &mut dyn Write, info: &DeviceInfo, nvrtc: &str) -> io::Result<()> {
    writeln!(out)?;
    writeln!(
        out,
        "device {} of {}: {}",
        info.ordinal, info.device_count, info.name
    )?;
    writeln!(
        out,
        "  compute capability {}.{}, {} multiprocessors, {:.1} GiB",
        info.compute_capability.0,
        info.compute_capability.1,
        info.multiprocessors,
        info.total_memory as f64 / (1024.0 * 1024.0 * 1024.0)
    )?;
    writeln!(
        out,
        "  driver supports CUDA {}.{}, NVRTC {nvrtc}",
        info.driver_version.0, info.driver_version.1
    )
}

fn verdict(passed: bool) -> &'static str {
    if passed {
        "ok"
    } else {
        "FAIL"
    }
}

pub fn checks(out: &mut dyn Write, checks: &[CheckResult]) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "kernels against their CPU references")?;
    writeln!(
        out,
        "  {:<40} {:>12} {:>10}  result",
        "check", "max diff", "tolerance"
    )?;
    for c in checks {
        writeln!(
            out,
            "  {:<40} {:>12.3e} {:>10.0e}  {}{}",
            c.name,
            c.max_difference,
            c.tolerance,
            verdict(c.passed()),
            c.error
                .as_deref()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        )?;
    }
    Ok(())
}

pub fn models(out: &mut dyn Write, outcomes: &[ModelOutcome]) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "models: GPU against CPU (max relative difference)")?;
    writeln!(
        out,
        "  {:<20} {:<9} {:<12} {:>12} {:>10}  result",
        "model", "precision", "cpu engine", "max diff", "tolerance"
    )?;
    for o in outcomes {
        let difference = o
            .difference
            .map_or_else(|| "-".to_string(), |d| format!("{d:.3e}"));
        let result = match (&o.skipped, &o.error) {
            (_, Some(e)) => format!("FAIL ({e})"),
            (Some(reason), None) => format!("skipped ({reason})"),
            (None, None) => verdict(o.passed()).to_string(),
        };
        writeln!(
            out,
            "  {:<20} {:<9} {:<12} {:>12} {:>10.0e}  {result}",
            o.model, o.precision, o.reference, difference, o.tolerance
        )?;
    }
    Ok(())
}

pub fn timings(out: &mut dyn Write, timings: &[Timing]) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "GPU throughput (whole executions, FP32)")?;
    writeln!(
        out,
        "  {:<20} {:>6} {:>11} {:>14} {:>16}",
        "model", "batch", "executions", "ms/execution", "inferences/s"
    )?;
    if timings.is_empty() {
        writeln!(out, "  (no batching model ran on the GPU)")?;
    }
    for t in timings {
        match &t.result {
            Ok((iterations, elapsed)) => {
                let seconds = elapsed.as_secs_f64();
                writeln!(
                    out,
                    "  {:<20} {:>6} {:>11} {:>14.3} {:>16.0}",
                    t.model,
                    t.batch,
                    iterations,
                    seconds * 1000.0 / *iterations as f64,
                    (*iterations as f64 * t.batch as f64) / seconds
                )?;
            }
            Err(e) => writeln!(out, "  {:<20} {:>6}  FAIL ({e})", t.model, t.batch)?,
        }
    }
    Ok(())
}
