//! Handlers of the health, metadata, configuration and statistics
//! endpoints.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{json_response, metadata, stats, ModelPath};
use crate::error::ServerError;
use crate::state::ServerState;

type AppState = State<Arc<ServerState>>;

/// 200 when `yes`, else 400; both with an empty body, as Triton answers.
fn health(yes: bool) -> StatusCode {
    if yes {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    }
}

pub(super) async fn live(State(state): AppState) -> StatusCode {
    health(state.live())
}

pub(super) async fn ready(State(state): AppState) -> StatusCode {
    health(state.ready())
}

pub(super) async fn server_metadata() -> Response {
    json_response(&metadata::server())
}

pub(super) async fn model_ready(State(state): AppState, Path(path): Path<ModelPath>) -> StatusCode {
    health(state.live() && path.resolve(&state.manager).is_ok())
}

pub(super) async fn model_metadata(
    State(state): AppState,
    Path(path): Path<ModelPath>,
) -> Result<Response, ServerError> {
    let model = path.resolve(&state.manager)?;
    let versions = match path.version()? {
        Some(version) => vec![version],
        None => state
            .manager
            .versions(&path.model)
            .iter()
            .map(|m| m.version)
            .collect(),
    };
    Ok(json_response(&metadata::model(&model, &versions)))
}

pub(super) async fn model_config(
    State(state): AppState,
    Path(path): Path<ModelPath>,
) -> Result<Response, ServerError> {
    let model = path.resolve(&state.manager)?;
    Ok(json_response(&ferrite_proto::model_config_to_json(
        &model.config,
    )))
}

pub(super) async fn model_stats(
    State(state): AppState,
    Path(path): Path<ModelPath>,
) -> Result<Response, ServerError> {
    let models = match path.version()? {
        Some(_) => vec![path.resolve(&state.manager)?],
        None => {
            let versions = state.manager.versions(&path.model);
            if versions.is_empty() {
                // Answers with the reason: unknown, or not ready.
                path.resolve(&state.manager)?;
            }
            versions
        }
    };
    Ok(json_response(&stats::statistics(&models)))
}

pub(super) async fn all_stats(State(state): AppState) -> impl IntoResponse {
    json_response(&stats::statistics(&state.manager.all_loaded()))
}
