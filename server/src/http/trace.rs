//! The trace extension: `GET /v2/trace/setting` and
//! `GET /v2/models/{m}/trace/setting` answer the settings that apply
//! (globally, or to the model's requests); `POST` to the same paths
//! changes some of them and answers the result. A setting set to `null`
//! clears the model's override.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use serde_json::Value;

use super::json_response;
use crate::error::ServerError;
use crate::state::ServerState;
use crate::trace::Given;

type AppState = State<Arc<ServerState>>;

pub(super) async fn get_global(State(state): AppState) -> Response {
    json_response(&state.tracer.settings().view(None))
}

pub(super) async fn update_global(
    State(state): AppState,
    body: Bytes,
) -> Result<Response, ServerError> {
    let changes = parse(&body)?;
    let settings = state.tracer.settings().update(None, &changes)?;
    Ok(json_response(&settings))
}

pub(super) async fn get_model(
    State(state): AppState,
    Path(model): Path<String>,
) -> Result<Response, ServerError> {
    let model = state.manager.get(&model, None)?;
    Ok(json_response(
        &state.tracer.settings().view(Some(&model.name)),
    ))
}

pub(super) async fn update_model(
    State(state): AppState,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<Response, ServerError> {
    let model = state.manager.get(&model, None)?;
    let changes = parse(&body)?;
    let settings = state
        .tracer
        .settings()
        .update(Some(&model.name), &changes)?;
    Ok(json_response(&settings))
}

/// The settings of a JSON object body: a string (or a number), a list of
/// strings, or `null` to clear.
fn parse(body: &[u8]) -> Result<Vec<(String, Given)>, ServerError> {
    let object: serde_json::Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| ServerError::invalid(format!("failed to parse the request JSON: {e}")))?;
    object
        .into_iter()
        .map(|(name, value)| {
            let text = |value: &Value| match value {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            };
            let given = match &value {
                Value::Null => Some(Given::Clear),
                Value::Array(items) => items
                    .iter()
                    .map(text)
                    .collect::<Option<Vec<_>>>()
                    .map(Given::Values),
                single => text(single).map(|s| Given::Values(vec![s])),
            };
            given.map(|given| (name.clone(), given)).ok_or_else(|| {
                ServerError::invalid(format!(
                    "trace setting '{name}' must be a string, a list of strings or null, got {value}"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strings_lists_and_null() {
        let changes = parse(
            br#"{"trace_level":["TIMESTAMPS"],"trace_rate":"5","trace_count":3,"trace_file":null}"#,
        )
        .unwrap();
        assert_eq!(
            changes,
            vec![
                ("trace_count".to_string(), Given::Values(vec!["3".into()])),
                ("trace_file".to_string(), Given::Clear),
                (
                    "trace_level".to_string(),
                    Given::Values(vec!["TIMESTAMPS".into()])
                ),
                ("trace_rate".to_string(), Given::Values(vec!["5".into()])),
            ]
        );
        let error = parse(br#"{"trace_rate":{"a":1}}"#).unwrap_err();
        assert!(error.message.contains("'trace_rate'"), "{}", error.message);
        let error = parse(br#"{"trace_level":[true]}"#).unwrap_err();
        assert!(error.message.contains("'trace_level'"), "{}", error.message);
        assert!(parse(b"[1]").is_err());
    }
}
