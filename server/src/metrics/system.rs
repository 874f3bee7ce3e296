//! Host CPU and memory metrics read from `/proc`, with Triton's names.
//! Where `/proc` cannot be read (not Linux) the families are left out.

use std::sync::Mutex;

use super::text::{header, sample};

/// Busy and total jiffies of all CPUs at the previous scrape, so that
/// utilisation covers the time between scrapes (since boot at the first).
static LAST_CPU: Mutex<Option<CpuTimes>> = Mutex::new(None);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuTimes {
    busy: u64,
    total: u64,
}

/// Appends `nv_cpu_utilization`, `nv_cpu_memory_total_bytes` and
/// `nv_cpu_memory_used_bytes`.
pub fn render(out: &mut String) {
    if let Some(now) = std::fs::read_to_string("/proc/stat")
        .ok()
        .as_deref()
        .and_then(parse_stat)
    {
        let previous = match LAST_CPU.lock() {
            Ok(mut last) => last.replace(now),
            Err(poisoned) => poisoned.into_inner().replace(now),
        };
        let name = "nv_cpu_utilization";
        header(out, name, "gauge", "CPU utilization rate [0.0 - 1.0]");
        sample(out, name, &[], utilization(previous, now));
    }
    if let Some((total, used)) = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .as_deref()
        .and_then(parse_meminfo)
    {
        let name = "nv_cpu_memory_total_bytes";
        header(out, name, "gauge", "CPU total memory (RAM), in bytes");
        sample(out, name, &[], total);
        let name = "nv_cpu_memory_used_bytes";
        header(out, name, "gauge", "CPU used memory (RAM), in bytes");
        sample(out, name, &[], used);
    }
}

/// The aggregate `cpu` line of `/proc/stat`: idle and iowait are idle,
/// the rest (guest time is already part of user time) busy.
fn parse_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if fields.len() < 4 {
        return None;
    }
    let total: u64 = fields.iter().sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        busy: total.saturating_sub(idle),
        total,
    })
}

fn utilization(previous: Option<CpuTimes>, now: CpuTimes) -> f64 {
    let start = previous.unwrap_or(CpuTimes { busy: 0, total: 0 });
    let total = now.total.saturating_sub(start.total);
    if total == 0 {
        return 0.0;
    }
    let busy = now.busy.saturating_sub(start.busy);
    (busy as f64 / total as f64).clamp(0.0, 1.0)
}

/// `(total, used)` bytes from `/proc/meminfo`: used is total less
/// available.
fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let kib = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse::<u64>()
            .ok()
    };
    let total = kib("MemTotal:")?.checked_mul(1024)?;
    let available = kib("MemAvailable:")?.checked_mul(1024)?;
    Some((total, total.saturating_sub(available)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_utilization_between_samples() {
        let first = parse_stat("cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n").unwrap();
        assert_eq!(
            first,
            CpuTimes {
                busy: 200,
                total: 1000
            }
        );
        let second = CpuTimes {
            busy: 500,
            total: 1400,
        };
        assert!((utilization(Some(first), second) - 0.75).abs() < 1e-9);
        assert!((utilization(None, first) - 0.2).abs() < 1e-9);
        assert_eq!(utilization(Some(first), first), 0.0);
        assert_eq!(parse_stat("cpu  x y\n"), None);
    }

    #[test]
    fn memory_from_meminfo() {
        let text = "MemTotal:       2048 kB\nMemFree:  10 kB\nMemAvailable:   512 kB\n";
        assert_eq!(parse_meminfo(text), Some((2048 * 1024, 1536 * 1024)));
        assert_eq!(parse_meminfo("MemTotal: 1 kB\n"), None);
    }
}
