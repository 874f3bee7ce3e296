//! GPU metrics with Triton's names and its `gpu_uuid` label, read through
//! NVML (the driver's management library, loaded at run time by
//! `nvml-wrapper`). Where NVML cannot be loaded or initialised (no NVIDIA
//! driver), the reason is logged once and the families are left out.

use std::ffi::OsStr;
use std::sync::OnceLock;

use nvml_wrapper::Nvml;

use super::text::{header, sample};

/// The driver's library names, most specific first: distributions ship the
/// versioned name, the unversioned one comes with development packages.
const LIBRARY_NAMES: [&str; 2] = ["libnvidia-ml.so.1", "libnvidia-ml.so"];

/// NVML and each GPU's energy counter when it was opened, so that
/// `nv_energy_consumption` counts from the server's start as in Triton; the
/// error is why there is no NVML.
static GPUS: OnceLock<Result<Gpus, String>> = OnceLock::new();

struct Gpus {
    nvml: Nvml,
    /// Millijoules per device index at start.
    energy_at_start: Vec<Option<u64>>,
}

/// What one GPU reports; `None` where the device does not support a query.
#[derive(Debug, Clone, PartialEq)]
struct GpuSample {
    uuid: String,
    /// Busy fraction over the driver's last sample period, 0.0 to 1.0.
    utilization: Option<f64>,
    memory_total_bytes: Option<u64>,
    memory_used_bytes: Option<u64>,
    power_watts: Option<f64>,
    power_limit_watts: Option<f64>,
    energy_joules: Option<f64>,
}

/// Opens NVML (once) and notes the energy counters; call it at start-up
/// so that energy counts from then.
pub fn start() {
    gpus();
}

fn gpus() -> Option<&'static Gpus> {
    GPUS.get_or_init(|| {
        let mut reasons = Vec::new();
        for name in LIBRARY_NAMES {
            match Nvml::builder().lib_path(OsStr::new(name)).init() {
                Ok(nvml) => {
                    let count = nvml.device_count().unwrap_or(0);
                    let energy_at_start = (0..count)
                        .map(|i| {
                            let device = nvml.device_by_index(i).ok()?;
                            device.total_energy_consumption().ok()
                        })
                        .collect();
                    tracing::info!(gpus = count, "GPU metrics read through NVML ({name})");
                    return Ok(Gpus {
                        nvml,
                        energy_at_start,
                    });
                }
                Err(e) => reasons.push(format!("{name}: {e}")),
            }
        }
        let reason = reasons.join("; ");
        tracing::info!("GPU metrics are off: NVML is not available ({reason})");
        Err(reason)
    })
    .as_ref()
    .ok()
}

/// Appends `nv_gpu_utilization`, `nv_gpu_memory_total_bytes`,
/// `nv_gpu_memory_used_bytes`, `nv_gpu_power_usage`, `nv_gpu_power_limit`
/// and `nv_energy_consumption` for every GPU NVML reports.
pub fn render(out: &mut String) {
    let Some(Gpus {
        nvml,
        energy_at_start,
    }) = gpus()
    else {
        return;
    };
    let count = match nvml.device_count() {
        Ok(count) => count,
        Err(e) => {
            tracing::warn!("NVML cannot count the GPUs: {e}");
            return;
        }
    };
    let samples: Vec<GpuSample> = (0..count)
        .filter_map(|index| match nvml.device_by_index(index) {
            Ok(device) => {
                let uuid = device.uuid().unwrap_or_else(|_| format!("GPU-{index}"));
                let memory = device.memory_info().ok();
                Some(GpuSample {
                    uuid,
                    utilization: device
                        .utilization_rates()
                        .ok()
                        .map(|u| f64::from(u.gpu) / 100.0),
                    memory_total_bytes: memory.as_ref().map(|m| m.total),
                    memory_used_bytes: memory.as_ref().map(|m| m.used),
                    power_watts: device.power_usage().ok().map(|mw| f64::from(mw) / 1000.0),
                    power_limit_watts: device
                        .enforced_power_limit()
                        .ok()
                        .map(|mw| f64::from(mw) / 1000.0),
                    energy_joules: device.total_energy_consumption().ok().map(|mj| {
                        let start = energy_at_start.get(index as usize).copied().flatten();
                        mj.saturating_sub(start.unwrap_or(0)) as f64 / 1000.0
                    }),
                })
            }
            Err(e) => {
                tracing::warn!("NVML cannot open GPU {index}: {e}");
                None
            }
        })
        .collect();
    render_samples(out, &samples);
}

/// One family per metric, a sample per GPU that reports it; families no GPU
/// reports are left out.
fn render_samples(out: &mut String, samples: &[GpuSample]) {
    type Field = fn(&GpuSample) -> Option<f64>;
    let families: [(&str, &str, &str, Field); 6] = [
        (
            "nv_gpu_utilization",
            "gauge",
            "GPU utilization rate [0.0 - 1.0)",
            |s| s.utilization,
        ),
        (
            "nv_gpu_memory_total_bytes",
            "gauge",
            "GPU total memory, in bytes",
            |s| s.memory_total_bytes.map(|b| b as f64),
        ),
        (
            "nv_gpu_memory_used_bytes",
            "gauge",
            "GPU used memory, in bytes",
            |s| s.memory_used_bytes.map(|b| b as f64),
        ),
        (
            "nv_gpu_power_usage",
            "gauge",
            "GPU power usage in watts",
            |s| s.power_watts,
        ),
        (
            "nv_gpu_power_limit",
            "gauge",
            "GPU power management limit in watts",
            |s| s.power_limit_watts,
        ),
        (
            "nv_energy_consumption",
            "counter",
            "GPU energy consumption in joules since the Triton Server started",
            |s| s.energy_joules,
        ),
    ];
    for (name, kind, help, field) in families {
        let values: Vec<(&str, f64)> = samples
            .iter()
            .filter_map(|s| field(s).map(|v| (s.uuid.as_str(), v)))
            .collect();
        if values.is_empty() {
            continue;
        }
        header(out, name, kind, help);
        for (uuid, value) in values {
            sample(out, name, &[("gpu_uuid", uuid)], value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_per_gpu_and_unsupported_queries_left_out() {
        let gpu = |uuid: &str, power: Option<f64>| GpuSample {
            uuid: uuid.into(),
            utilization: Some(0.25),
            memory_total_bytes: Some(80 << 30),
            memory_used_bytes: Some(1 << 30),
            power_watts: power,
            power_limit_watts: None,
            energy_joules: None,
        };
        let mut out = String::new();
        render_samples(&mut out, &[gpu("GPU-a", Some(120.5)), gpu("GPU-b", None)]);
        assert!(out.contains("# TYPE nv_gpu_utilization gauge\n"), "{out}");
        assert!(out.contains("nv_gpu_utilization{gpu_uuid=\"GPU-a\"} 0.25\n"));
        assert!(out.contains("nv_gpu_utilization{gpu_uuid=\"GPU-b\"} 0.25\n"));
        assert!(out.contains("nv_gpu_memory_total_bytes{gpu_uuid=\"GPU-b\"} 85899345920\n"));
        assert!(out.contains("nv_gpu_power_usage{gpu_uuid=\"GPU-a\"} 120.5\n"));
        assert!(!out.contains("nv_gpu_power_usage{gpu_uuid=\"GPU-b\"}"));
        assert!(!out.contains("nv_gpu_power_limit"), "no GPU reports it");
        assert!(!out.contains("nv_energy_consumption"));
    }

    #[test]
    fn no_gpus_no_families() {
        let mut out = String::new();
        render_samples(&mut out, &[]);
        assert!(out.is_empty());
    }
}
