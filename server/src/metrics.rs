//! Prometheus metrics at `GET /metrics`, with Triton's metric names and
//! its `model` and `version` labels. Every value is a counter computed
//! from the models' statistics at scrape time.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ferrite_scheduler::StatsSnapshot;

use crate::state::ServerState;

/// The content type of the Prometheus text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric: name, help text, and its value in a snapshot.
struct Metric {
    name: &'static str,
    help: &'static str,
    value: fn(&StatsSnapshot) -> u64,
}

const fn us(ns: u64) -> u64 {
    ns / 1000
}

const METRICS: [Metric; 9] = [
    Metric {
        name: "nv_inference_request_success",
        help: "Number of successful inference requests, all batch sizes",
        value: |s| s.success.count,
    },
    Metric {
        name: "nv_inference_request_failure",
        help: "Number of failed inference requests, all batch sizes",
        value: |s| s.fail.count,
    },
    Metric {
        name: "nv_inference_count",
        help: "Number of inferences performed (a batch of n counts n)",
        value: |s| s.inference_count,
    },
    Metric {
        name: "nv_inference_exec_count",
        help: "Number of model executions performed",
        value: |s| s.execution_count,
    },
    Metric {
        name: "nv_inference_request_duration_us",
        help: "Cumulative duration of successful inference requests in microseconds",
        value: |s| us(s.success.ns),
    },
    Metric {
        name: "nv_inference_queue_duration_us",
        help: "Cumulative time requests spent queued in microseconds",
        value: |s| us(s.queue.ns),
    },
    Metric {
        name: "nv_inference_compute_input_duration_us",
        help: "Cumulative time spent preparing inputs in microseconds",
        value: |s| us(s.compute_input.ns),
    },
    Metric {
        name: "nv_inference_compute_infer_duration_us",
        help: "Cumulative time spent executing the model in microseconds",
        value: |s| us(s.compute_infer.ns),
    },
    Metric {
        name: "nv_inference_compute_output_duration_us",
        help: "Cumulative time spent extracting outputs in microseconds",
        value: |s| us(s.compute_output.ns),
    },
];

/// The metrics endpoint's routes.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { (StatusCode::NOT_FOUND, "metrics are served at /metrics\n") })
        .with_state(state)
}

async fn scrape(State(state): State<Arc<ServerState>>) -> Response {
    let models: Vec<(String, i64, StatsSnapshot)> = state
        .manager
        .all_loaded()
        .iter()
        .map(|m| (m.name.clone(), m.version, m.stats()))
        .collect();
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        render(&models),
    )
        .into_response()
}

/// Renders the Prometheus text for `(model, version, statistics)` rows.
fn render(models: &[(String, i64, StatsSnapshot)]) -> String {
    let mut out = String::with_capacity(256 + models.len() * METRICS.len() * 96);
    for metric in &METRICS {
        // Writing to a String cannot fail.
        let _ = writeln!(out, "# HELP {} {}", metric.name, metric.help);
        let _ = writeln!(out, "# TYPE {} counter", metric.name);
        for (model, version, stats) in models {
            let _ = writeln!(
                out,
                "{}{{model=\"{}\",version=\"{version}\"}} {}",
                metric.name,
                escape_label(model),
                (metric.value)(stats)
            );
        }
    }
    out
}

/// Escapes a label value as the text format requires.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use ferrite_scheduler::DurationSnapshot;

    use super::*;

    #[test]
    fn renders_every_counter_with_labels() {
        let stats = StatsSnapshot {
            success: DurationSnapshot {
                count: 4,
                ns: 9_000,
            },
            fail: DurationSnapshot { count: 1, ns: 5 },
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
        let text = render(&[("a\"b".to_string(), 2, stats)]);
        for line in [
            "# TYPE nv_inference_request_success counter",
            "nv_inference_request_success{model=\"a\\\"b\",version=\"2\"} 4",
            "nv_inference_request_failure{model=\"a\\\"b\",version=\"2\"} 1",
            "nv_inference_count{model=\"a\\\"b\",version=\"2\"} 6",
            "nv_inference_exec_count{model=\"a\\\"b\",version=\"2\"} 3",
            "nv_inference_request_duration_us{model=\"a\\\"b\",version=\"2\"} 9",
            "nv_inference_queue_duration_us{model=\"a\\\"b\",version=\"2\"} 2",
            "nv_inference_compute_input_duration_us{model=\"a\\\"b\",version=\"2\"} 0",
            "nv_inference_compute_infer_duration_us{model=\"a\\\"b\",version=\"2\"} 4",
            "nv_inference_compute_output_duration_us{model=\"a\\\"b\",version=\"2\"} 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert_eq!(text.lines().filter(|l| l.starts_with("# HELP")).count(), 9);
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(escape_label("a\\b\n\"c\""), "a\\\\b\\n\\\"c\\\"");
    }
}
