//! The model repository extension: `POST /v2/repository/index`,
//! `POST /v2/repository/models/{m}/load` and `.../unload`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::json_response;
use crate::error::ServerError;
use crate::manager::{LoadRequest, ModelState};
use crate::state::ServerState;

type AppState = State<Arc<ServerState>>;

#[derive(Debug, Default, Deserialize)]
struct IndexRequest {
    #[serde(default)]
    ready: bool,
}

#[derive(Debug, Serialize)]
struct IndexRow {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(skip_serializing_if = "str::is_empty")]
    state: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: String,
}

#[derive(Debug, Default, Deserialize)]
struct ControlRequest {
    #[serde(default)]
    parameters: HashMap<String, Value>,
}

/// Parses an optional JSON body; an empty body means the defaults.
fn parse_body<T: Default + serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ServerError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ServerError::invalid(format!("failed to parse the request JSON: {e}")))
}

pub(super) async fn index(State(state): AppState, body: Bytes) -> Response {
    let request: IndexRequest = match parse_body(&body) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let manager = Arc::clone(&state.manager);
    let index = match tokio::task::spawn_blocking(move || manager.index()).await {
        Ok(index) => index,
        Err(error) => {
            return ServerError::internal(format!("repository index stopped: {error}"))
                .into_response()
        }
    };
    let rows: Vec<IndexRow> = index
        .into_iter()
        .filter(|entry| !request.ready || entry.state == ModelState::Ready)
        .map(|entry| IndexRow {
            version: entry.version.map(|v| v.to_string()),
            state: entry.state.name(),
            reason: entry.state.reason().to_string(),
            name: entry.name,
        })
        .collect();
    json_response(&rows)
}

pub(super) async fn load(
    State(state): AppState,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<Response, ServerError> {
    let request: ControlRequest = parse_body(&body)?;
    let load = load_request(&model, request.parameters)?;
    let manager = Arc::clone(&state.manager);
    tokio::task::spawn_blocking(move || manager.load(&model, load))
        .await
        .map_err(|e| ServerError::internal(format!("model load stopped: {e}")))??;
    Ok(().into_response())
}

pub(super) async fn unload(
    State(state): AppState,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<Response, ServerError> {
    let request: ControlRequest = parse_body(&body)?;
    for (key, value) in &request.parameters {
        if key != "unload_dependents" || !value.is_boolean() {
            return Err(ServerError::invalid(format!(
                "unexpected unload parameter '{key}' for model '{model}'"
            )));
        }
    }
    let manager = Arc::clone(&state.manager);
    tokio::task::spawn_blocking(move || manager.unload(&model))
        .await
        .map_err(|e| ServerError::internal(format!("model unload stopped: {e}")))??;
    Ok(().into_response())
}

/// Reads the `config` and `file:<path>` load parameters, as Triton accepts
/// them: the config as a JSON string, files as base64.
pub(crate) fn load_request(
    model: &str,
    parameters: HashMap<String, Value>,
) -> Result<LoadRequest, ServerError> {
    let mut request = LoadRequest::default();
    for (key, value) in parameters {
        if key == "config" {
            let text = value.as_str().ok_or_else(|| {
                ServerError::invalid(format!(
                    "load parameter 'config' for model '{model}' must be a JSON string"
                ))
            })?;
            request.config = Some(parse_config(model, text)?);
        } else if let Some(path) = key.strip_prefix("file:") {
            let encoded = value.as_str().ok_or_else(|| {
                ServerError::invalid(format!(
                    "load parameter '{key}' for model '{model}' must be a base64 string"
                ))
            })?;
            let contents = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| {
                    ServerError::invalid(format!(
                        "load parameter '{key}' for model '{model}' is not base64: {e}"
                    ))
                })?;
            request.files.push((path.to_string(), contents));
        } else {
            return Err(ServerError::invalid(format!(
                "unexpected load parameter '{key}' for model '{model}'"
            )));
        }
    }
    Ok(request)
}

/// A load-time config override, given as Triton's JSON form of the config.
pub(crate) fn parse_config(
    model: &str,
    text: &str,
) -> Result<ferrite_proto::inference::ModelConfig, ServerError> {
    let json: Value = serde_json::from_str(text).map_err(|e| {
        ServerError::invalid(format!(
            "load parameter 'config' for model '{model}' is not JSON: {e}"
        ))
    })?;
    ferrite_proto::model_config_from_json(&json).map_err(|e| {
        ServerError::invalid(format!("load parameter 'config' for model '{model}': {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_config_and_files() {
        let parameters = HashMap::from([
            (
                "config".to_string(),
                Value::String(r#"{"name":"m","max_batch_size":4}"#.into()),
            ),
            (
                "file:1/model.onnx".to_string(),
                Value::String("AAEC".into()),
            ),
        ]);
        let request = load_request("m", parameters).unwrap();
        assert_eq!(request.config.unwrap().max_batch_size, 4);
        assert_eq!(
            request.files,
            vec![("1/model.onnx".to_string(), vec![0, 1, 2])]
        );
    }

    #[test]
    fn names_bad_parameters() {
        let bad = [
            ("config", Value::Bool(true), "must be a JSON string"),
            ("config", Value::String("{".into()), "is not JSON"),
            ("config", Value::String(r#"{"nope":1}"#.into()), "config"),
            (
                "file:1/model.onnx",
                Value::String("!!".into()),
                "is not base64",
            ),
            (
                "speed",
                Value::Bool(true),
                "unexpected load parameter 'speed'",
            ),
        ];
        for (key, value, expected) in bad {
            let parameters = HashMap::from([(key.to_string(), value)]);
            let error = load_request("m", parameters).unwrap_err();
            assert!(error.message.contains(expected), "{key}: {error}");
        }
    }
}
