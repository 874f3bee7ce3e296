//! Prometheus metrics at `GET /metrics`, with Triton's metric names and
//! its `model` and `version` labels: the per-model counters, failures by
//! `reason`, the pending-request gauge, load durations, latency histograms
//! (`ferrite_request_duration_us`, `ferrite_queue_duration_us`; off with
//! `--metrics-config histogram_latencies=false`) and the host's CPU and
//! memory use. Everything is read at scrape time.

mod families;
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

/// The metrics endpoint's routes.
pub fn router(state: Arc<ServerState>) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { (StatusCode::NOT_FOUND, "metrics are served at /metrics\n") })
        .with_state(state)
}

async fn scrape(State(state): State<Arc<ServerState>>) -> Response {
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
    system::render(&mut out);
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        out,
    )
        .into_response()
}
