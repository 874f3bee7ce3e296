//! Prometheus metrics at `GET /metrics`, with Triton's metric names and
//! its `model` and `version` labels: the per-model counters, failures by
//! `reason`, the pending-request gauge, load durations, latency histograms
//! (`ferrite_request_duration_us`, `ferrite_queue_duration_us`; off with
//! `--metrics-config histogram_latencies=false`), the host's CPU and memory
//! use (`--allow-cpu-metrics`) and the GPUs' utilisation, memory, power and
//! energy (`--allow-gpu-metrics`). Everything is read at scrape time.

mod families;
mod gpu;
mod system;
mod text;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::state::ServerState;

pub use families::ModelRow;

/// The content type of the Prometheus text format.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Which host-level families the endpoint exports besides the models'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sources {
    pub cpu: bool,
    pub gpu: bool,
}

/// The metrics endpoint's routes. Opens NVML now when GPU metrics are on, so
/// that energy counts from the server's start.
pub fn router(state: Arc<ServerState>, sources: Sources) -> Router {
    if sources.gpu {
        gpu::start();
    }
    Router::new()
        .route(
            "/metrics",
            get(move |state: State<Arc<ServerState>>| scrape(state, sources)),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "metrics are served at /metrics\n") })
        .with_state(state)
}

async fn scrape(State(state): State<Arc<ServerState>>, sources: Sources) -> Response {
    let models: Vec<ModelRow> = state
        .manager
        .all_loaded()
        .iter()
        .map(|m| ModelRow {
            model: m.name.clone(),
            version: m.version,
            stats: m.stats(),
            pending: m.pending(),
            load_duration: m.load_duration,
        })
        .collect();
    let mut out = families::render(&models, ferrite_scheduler::latency_histograms());
    if sources.cpu {
        system::render(&mut out);
    }
    if sources.gpu {
        gpu::render(&mut out);
    }
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        out,
    )
        .into_response()
}
