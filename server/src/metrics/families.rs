//! The per-model metric families.

use std::time::Duration;

use ferrite_scheduler::{FailureReason, HistogramSnapshot, StatsSnapshot};

use super::text::{header, sample};

/// What the metrics of one loaded model version are computed from.
#[derive(Debug, Clone)]
pub struct ModelRow {
    pub model: String,
    pub version: i64,
    pub stats: StatsSnapshot,
    /// Requests waiting for an instance.
    pub pending: usize,
    pub load_duration: Duration,
}

/// A counter: name, help text, and its value in a snapshot.
struct Counter {
    name: &'static str,
    help: &'static str,
    value: fn(&StatsSnapshot) -> u64,
}

const fn us(ns: u64) -> u64 {
    ns / 1000
}

const COUNTERS: [Counter; 8] = [
    Counter {
        name: "nv_inference_request_success",
        help: "Number of successful inference requests, all batch sizes",
        value: |s| s.success.count,
    },
    Counter {
        name: "nv_inference_count",
        help: "Number of inferences performed (a batch of n counts n)",
        value: |s| s.inference_count,
    },
    Counter {
        name: "nv_inference_exec_count",
        help: "Number of model executions performed",
        value: |s| s.execution_count,
    },
    Counter {
        name: "nv_inference_request_duration_us",
        help: "Cumulative duration of successful inference requests in microseconds",
        value: |s| us(s.success.ns),
    },
    Counter {
        name: "nv_inference_queue_duration_us",
        help: "Cumulative time requests spent queued in microseconds",
        value: |s| us(s.queue.ns),
    },
    Counter {
        name: "nv_inference_compute_input_duration_us",
        help: "Cumulative time spent preparing inputs in microseconds",
        value: |s| us(s.compute_input.ns),
    },
    Counter {
        name: "nv_inference_compute_infer_duration_us",
        help: "Cumulative time spent executing the model in microseconds",
        value: |s| us(s.compute_infer.ns),
    },
    Counter {
        name: "nv_inference_compute_output_duration_us",
        help: "Cumulative time spent extracting outputs in microseconds",
        value: |s| us(s.compute_output.ns),
    },
];

/// Renders every per-model family; histograms only when `histograms`.
pub fn render(models: &[ModelRow], histograms: bool) -> String {
    let mut out = String::with_capacity(1024 + models.len() * 4096);
    let version_of = |row: &ModelRow| row.version.to_string();
    for counter in &COUNTERS {
        header(&mut out, counter.name, "counter", counter.help);
        for row in models {
            let version = version_of(row);
            let value = (counter.value)(&row.stats);
            sample(&mut out, counter.name, &model_labels(row, &version), value);
        }
    }

    let name = "nv_inference_request_failure";
    header(
        &mut out,
        name,
        "counter",
        "Number of failed inference requests, all batch sizes, by reason",
    );
    for row in models {
        let version = version_of(row);
        for reason in FailureReason::ALL {
            let pairs = [
                ("model", row.model.as_str()),
                ("reason", reason.label()),
                ("version", version.as_str()),
            ];
            sample(&mut out, name, &pairs, row.stats.failures.get(reason));
        }
    }

    let name = "nv_inference_pending_request_count";
    header(
        &mut out,
        name,
        "gauge",
        "Instantaneous number of pending requests awaiting execution per-model",
    );
    for row in models {
        let version = version_of(row);
        sample(&mut out, name, &model_labels(row, &version), row.pending);
    }

    let name = "nv_model_load_duration_secs";
    header(&mut out, name, "gauge", "Model load time in seconds");
    for row in models {
        let version = version_of(row);
        let secs = row.load_duration.as_secs_f64();
        sample(&mut out, name, &model_labels(row, &version), secs);
    }

    if histograms {
        histogram_family(
            &mut out,
            "ferrite_request_duration_us",
            "Latency of successful inference requests in microseconds",
            models,
            |s| &s.request_latency,
        );
        histogram_family(
            &mut out,
            "ferrite_queue_duration_us",
            "Time successful inference requests spent queued in microseconds",
            models,
            |s| &s.queue_latency,
        );
    }
    out
}

fn model_labels<'a>(row: &'a ModelRow, version: &'a str) -> [(&'static str, &'a str); 2] {
    [("model", row.model.as_str()), ("version", version)]
}

fn histogram_family(
    out: &mut String,
    name: &str,
    help: &str,
    models: &[ModelRow],
    histogram: fn(&StatsSnapshot) -> &HistogramSnapshot,
) {
    header(out, name, "histogram", help);
    let bucket = format!("{name}_bucket");
    for row in models {
        let version = row.version.to_string();
        let snapshot = histogram(&row.stats);
        for (bound, count) in snapshot.cumulative() {
            let le = bound.to_string();
            let pairs = [
                ("model", row.model.as_str()),
                ("version", version.as_str()),
                ("le", le.as_str()),
            ];
            sample(out, &bucket, &pairs, count);
        }
        let pairs = [
            ("model", row.model.as_str()),
            ("version", version.as_str()),
            ("le", "+Inf"),
        ];
        sample(out, &bucket, &pairs, snapshot.count);
        let labels = model_labels(row, &version);
        sample(out, &format!("{name}_sum"), &labels, snapshot.sum_us);
        sample(out, &format!("{name}_count"), &labels, snapshot.count);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use ferrite_scheduler::{DurationSnapshot, ModelStats};

    use super::*;

    fn row() -> ModelRow {
        let stats = StatsSnapshot {
            success: DurationSnapshot {
                count: 4,
                ns: 9_000,
            },
            queue: DurationSnapshot {
                count: 4,
                ns: 2_500,
            },
            compute_infer: DurationSnapshot {
                count: 4,
                ns: 4_000,
            },
            inference_count: 6,
            execution_count: 3,
            ..StatsSnapshot::default()
        };
        ModelRow {
            model: "a\"b".into(),
            version: 2,
            stats,
            pending: 3,
            load_duration: Duration::from_millis(1500),
        }
    }

    #[test]
    fn renders_every_family_with_labels() {
        let text = render(&[row()], true);
        for line in [
            "# TYPE nv_inference_request_success counter",
            "nv_inference_request_success{model=\"a\\\"b\",version=\"2\"} 4",
            "nv_inference_request_failure{model=\"a\\\"b\",reason=\"REJECTED\",version=\"2\"} 0",
            "nv_inference_request_failure{model=\"a\\\"b\",reason=\"OTHER\",version=\"2\"} 0",
            "nv_inference_count{model=\"a\\\"b\",version=\"2\"} 6",
            "nv_inference_exec_count{model=\"a\\\"b\",version=\"2\"} 3",
            "nv_inference_request_duration_us{model=\"a\\\"b\",version=\"2\"} 9",
            "nv_inference_queue_duration_us{model=\"a\\\"b\",version=\"2\"} 2",
            "nv_inference_compute_input_duration_us{model=\"a\\\"b\",version=\"2\"} 0",
            "nv_inference_compute_infer_duration_us{model=\"a\\\"b\",version=\"2\"} 4",
            "nv_inference_compute_output_duration_us{model=\"a\\\"b\",version=\"2\"} 0",
            "# TYPE nv_inference_pending_request_count gauge",
            "nv_inference_pending_request_count{model=\"a\\\"b\",version=\"2\"} 3",
            "nv_model_load_duration_secs{model=\"a\\\"b\",version=\"2\"} 1.5",
            "# TYPE ferrite_request_duration_us histogram",
            "ferrite_request_duration_us_bucket{model=\"a\\\"b\",version=\"2\",le=\"+Inf\"} 0",
            "ferrite_queue_duration_us_count{model=\"a\\\"b\",version=\"2\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert_eq!(text.lines().filter(|l| l.starts_with("# HELP")).count(), 13);
        let without = render(&[row()], false);
        assert!(!without.contains("ferrite_request_duration_us"));
        assert_eq!(
            without.lines().filter(|l| l.starts_with("# HELP")).count(),
            11
        );
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let stats = ModelStats::new(1);
        stats.record_failure(FailureReason::Other, Duration::from_micros(1));
        let mut row = row();
        row.stats = stats.snapshot();
        row.stats.request_latency.buckets[0] = 2;
        row.stats.request_latency.buckets[3] = 1;
        row.stats.request_latency.count = 3;
        row.stats.request_latency.sum_us = 700;
        let text = render(&[row], true);
        let bucket = |le: &str| {
            let prefix = format!(
                "ferrite_request_duration_us_bucket{{model=\"a\\\"b\",version=\"2\",le=\"{le}\"}} "
            );
            text.lines()
                .find_map(|l| l.strip_prefix(&prefix))
                .unwrap_or_else(|| panic!("no {prefix}"))
                .to_string()
        };
        assert_eq!(bucket("50"), "2");
        assert_eq!(bucket("250"), "2");
        assert_eq!(bucket("500"), "3");
        assert_eq!(bucket("+Inf"), "3");
        assert!(text
            .lines()
            .any(|l| l == "ferrite_request_duration_us_sum{model=\"a\\\"b\",version=\"2\"} 700"));
        assert!(text.lines().any(|l| l
            == "nv_inference_request_failure{model=\"a\\\"b\",reason=\"OTHER\",version=\"2\"} 1"));
    }
}
