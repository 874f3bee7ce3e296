//! `POST /v2/models/{m}[/versions/{v}]/infer`: read the body, decode it,
//! run the model, encode the answer.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::codec::{self, EncodedResponse};
use super::{body, ModelPath};
use crate::error::ServerError;
use crate::model::LoadedModel;
use crate::state::ServerState;
use crate::trace::{Activity, Protocol, RequestTrace, TraceParent, TRACEPARENT};

/// The header that gives the length of the JSON part of a body followed
/// by binary tensor data.
const INFERENCE_HEADER_CONTENT_LENGTH: HeaderName =
    HeaderName::from_static("inference-header-content-length");

pub(super) async fn infer(
    State(state): State<Arc<ServerState>>,
    Path(path): Path<ModelPath>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ServerError> {
    let received = Instant::now();
    let model = path.resolve(&state.manager)?;
    let parent = headers
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .and_then(TraceParent::parse);
    let mut trace =
        state
            .tracer
            .begin(&model.name, model.version, Protocol::Http, parent, received);
    let result = run(&state, &model, &headers, request, trace.as_mut()).await;
    let Some(trace) = trace else {
        return result.map(into_http);
    };
    let trace = trace.sending(result.as_ref().err().map(|e| e.message.as_str()));
    let (parts, body) = match result {
        Ok(encoded) => into_http(encoded),
        Err(error) => error.into_response(),
    }
    .into_parts();
    let body = Body::new(body::TracedBody {
        body,
        _trace: trace,
    });
    Ok(Response::from_parts(parts, body))
}

/// Reads, decodes, runs and encodes one request for `model`.
async fn run(
    state: &ServerState,
    model: &LoadedModel,
    headers: &HeaderMap,
    request: Body,
    mut trace: Option<&mut RequestTrace>,
) -> Result<EncodedResponse, ServerError> {
    let header_length = headers
        .get(&INFERENCE_HEADER_CONTENT_LENGTH)
        .map(|value| codec::parse_header_length(value.as_bytes()))
        .transpose()?;
    let data = body::read(headers, request, state.http_max_input_size).await?;
    // Durations count from a received body, as Triton's do: a slow
    // upload is not inference time.
    let arrival = Instant::now();
    if let Some(trace) = trace.as_deref_mut() {
        trace.mark(Activity::HttpRecvEnd);
    }
    // Only the JSON part costs parsing: binary data is sliced.
    let json_length = header_length.unwrap_or(data.len());
    let limits = state.limits;
    let decoded = off_runtime(json_length, move || {
        codec::decode_request(&data, header_length, &limits)
    })
    .await?;
    if let (Some(trace), Some(id)) = (trace.as_deref_mut(), &decoded.response.id) {
        trace.set_request_id(id);
    }
    for (name, value) in decoded.parameters.iter() {
        tracing::debug!(model = %model.name, "request parameter '{name}' = {value} is passed to the engine, which does not use it");
    }
    let response = model
        .infer(
            decoded.inputs,
            decoded.response.output_names(),
            arrival,
            decoded.schedule,
            trace,
        )
        .await?;
    let spec = decoded.response;
    let json_bytes: usize = response
        .outputs
        .iter()
        .filter(|o| !spec.binary(&o.name))
        .map(|o| o.tensor.data().len())
        .sum();
    let (name, version) = (model.name.clone(), model.version);
    off_runtime(json_bytes, move || {
        codec::encode_response(&name, version, &spec, response.outputs)
    })
    .await
}

/// Tensor data from which JSON work moves to the blocking pool, so that a
/// large request does not stall the other connections of its worker.
const OFFLOAD_BYTES: usize = 256 * 1024;

/// Runs `work` in place when `size` is small, else on the blocking pool.
async fn off_runtime<T: Send + 'static>(
    size: usize,
    work: impl FnOnce() -> Result<T, ServerError> + Send + 'static,
) -> Result<T, ServerError> {
    if size < OFFLOAD_BYTES {
        return work();
    }
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ServerError::internal(format!("request coding stopped: {e}")))?
}

fn into_http(encoded: EncodedResponse) -> Response {
    match encoded.header_length {
        None => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            encoded.json,
        )
            .into_response(),
        Some(length) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                ),
                (INFERENCE_HEADER_CONTENT_LENGTH, HeaderValue::from(length)),
            ],
            Body::new(body::ChainBody::new(encoded.into_chunks())),
        )
            .into_response(),
    }
}
