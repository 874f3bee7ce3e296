//! The logging extension: `GET /v2/logging` answers the current settings,
//! `POST /v2/logging` changes some of them and answers the result.

use axum::body::Bytes;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::json_response;
use crate::error::ServerError;
use crate::logging::{self, SettingValue};

pub(super) async fn get_settings() -> Response {
    json_response(&logging::settings())
}

pub(super) async fn update_settings(body: Bytes) -> Response {
    match parse(&body).and_then(|changes| logging::update(&changes)) {
        Ok(settings) => json_response(&settings),
        Err(error) => error.into_response(),
    }
}

/// The settings of a JSON object body, each typed by its JSON value.
fn parse(body: &[u8]) -> Result<Vec<(String, SettingValue)>, ServerError> {
    let object: serde_json::Map<String, Value> = serde_json::from_slice(body)
        .map_err(|e| ServerError::invalid(format!("failed to parse the request JSON: {e}")))?;
    object
        .into_iter()
        .map(|(name, value)| {
            let setting = match &value {
                Value::Bool(b) => SettingValue::Bool(*b),
                Value::String(s) => SettingValue::Text(s.clone()),
                Value::Number(n) => match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
                    Some(n) => SettingValue::Uint(n),
                    None => {
                        return Err(ServerError::invalid(format!(
                            "log setting '{name}' must be an unsigned 32-bit integer, got {n}"
                        )))
                    }
                },
                other => {
                    return Err(ServerError::invalid(format!(
                        "log setting '{name}' has an unsupported value {other}"
                    )))
                }
            };
            Ok((name, setting))
        })
        .collect()
}
