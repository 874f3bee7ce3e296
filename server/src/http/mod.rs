//! The KServe v2 HTTP/REST front end with Triton's extensions
//! (binary tensor data, model configuration, statistics).
//!
//! Routes:
//!
//! | method | path | answer |
//! | --- | --- | --- |
//! | GET | `/v2/health/live`, `/v2/health/ready` | 200, or 400 when not live/ready (empty body) |
//! | GET | `/v2` | server metadata |
//! | GET | `/v2/models/stats` | statistics of every loaded model version |
//! | GET | `/v2/models/{m}[/versions/{v}]` | model metadata |
//! | GET | `.../ready` | 200, or 400 when not ready (empty body) |
//! | GET | `.../config` | the model configuration as JSON |
//! | GET | `.../stats` | the model's statistics |
//! | POST | `.../infer` | inference |
//! | POST | `/v2/repository/index` | models and versions with their state |
//! | POST | `/v2/repository/models/{m}/load`, `.../unload` | model control (explicit mode) |
//! | GET, POST | `/v2/logging` | log settings; POST changes them |
//! | GET, POST | `/v2/trace/setting`, `/v2/models/{m}/trace/setting` | trace settings; POST changes them |
//!
//! A `traceparent` header (W3C Trace Context) on an inference request makes
//! the client's span the parent of the request's spans (see
//! [`crate::trace`]).
//!
//! Errors are answered as `{"error": "<message>"}` with the status of the
//! error's kind; unknown paths are 404, known paths with another method 405.

mod body;
pub mod codec;
mod infer;
mod logging;
pub(crate) mod metadata;
mod repository;
mod routes;
mod stats;
mod trace;

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use crate::error::ServerError;
use crate::manager::ModelManager;
use crate::model::LoadedModel;
use crate::state::ServerState;

/// The HTTP front end's routes over the shared server state.
pub fn router(state: Arc<ServerState>) -> Router {
    let model_routes = Router::new()
        .route("/", get(routes::model_metadata))
        .route("/ready", get(routes::model_ready))
        .route("/config", get(routes::model_config))
        .route("/stats", get(routes::model_stats))
        .route("/infer", post(infer::infer));
    Router::new()
        .route("/v2", get(routes::server_metadata))
        .route("/v2/health/live", get(routes::live))
        .route("/v2/health/ready", get(routes::ready))
        .route("/v2/models/stats", get(routes::all_stats))
        .route(
            "/v2/logging",
            get(logging::get_settings).post(logging::update_settings),
        )
        .route(
            "/v2/trace/setting",
            get(trace::get_global).post(trace::update_global),
        )
        .route(
            "/v2/models/{model}/trace/setting",
            get(trace::get_model).post(trace::update_model),
        )
        .route("/v2/repository/index", post(repository::index))
        .route("/v2/repository/models/{model}/load", post(repository::load))
        .route(
            "/v2/repository/models/{model}/unload",
            post(repository::unload),
        )
        .nest("/v2/models/{model}", model_routes.clone())
        .nest("/v2/models/{model}/versions/{version}", model_routes)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// The model and optional version named in a path.
#[derive(Debug, Deserialize)]
struct ModelPath {
    model: String,
    version: Option<String>,
}

impl ModelPath {
    /// The version asked for; `None` means the latest.
    fn version(&self) -> Result<Option<i64>, ServerError> {
        match &self.version {
            Some(version) => ModelManager::parse_version(version),
            None => Ok(None),
        }
    }

    /// The loaded model version the path names.
    fn resolve(&self, manager: &ModelManager) -> Result<Arc<LoadedModel>, ServerError> {
        manager.get(&self.model, self.version()?)
    }
}

impl IntoResponse for ServerError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::json!({ "error": self.message }).to_string();
        (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    }
}

/// A 200 answer with a JSON body.
fn json_response(value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(error) => {
            ServerError::internal(format!("cannot encode the answer: {error}")).into_response()
        }
    }
}

async fn not_found(uri: axum::http::Uri) -> ServerError {
    ServerError::not_found(format!("no endpoint at {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let error = ServerError::invalid(format!("method {method} is not allowed on {}", uri.path()));
    let mut response = error.into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}
