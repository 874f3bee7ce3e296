//! `ModelInferRequest` to ferrite's tensors and back: the decoding both the
//! unary and the streaming inference calls share.

use std::collections::HashSet;
use std::time::Instant;

use ferrite_backends::{DataType, NamedTensor, Tensor};
use ferrite_proto::inference::model_infer_response::InferOutputTensor;
use ferrite_proto::inference::{ModelInferRequest, ModelInferResponse};
use ferrite_scheduler::InferResponse;

use super::{contents, parameters};
use crate::error::ServerError;
use crate::limits::Limits;
use crate::manager::ModelManager;
use crate::model::{LoadedModel, Schedule};
use crate::state::ServerState;
use crate::trace::{Protocol, RequestTrace, TraceParent, TRACEPARENT};

/// A request's tensors and requested outputs, ready for
/// [`LoadedModel::infer`].
#[derive(Debug)]
pub struct Decoded {
    /// The input tensors, in request order.
    pub inputs: Vec<NamedTensor>,
    /// The requested outputs; empty means every output.
    pub outputs: Vec<String>,
    /// The request's `priority` and `timeout`.
    pub schedule: Schedule,
}

/// Runs one inference request: finds the model, decodes the tensors, waits
/// for the scheduler's answer and encodes it. `arrival` is when the request
/// was received; `parent` is the client's span, if it propagated one.
pub(crate) async fn infer(
    state: &ServerState,
    mut request: ModelInferRequest,
    arrival: Instant,
    parent: Option<TraceParent>,
) -> Result<ModelInferResponse, ServerError> {
    let version = ModelManager::parse_version(&request.model_version)?;
    let model = state.manager.get(&request.model_name, version)?;
    let id = std::mem::take(&mut request.id);
    let mut trace = state
        .tracer
        .begin(&model.name, model.version, Protocol::Grpc, parent, arrival);
    if let Some(trace) = trace.as_mut() {
        trace.set_request_id(&id);
    }
    let result = run(state, &model, request, arrival, trace.as_mut()).await;
    if let Some(trace) = trace {
        trace.finish(result.as_ref().err().map(|e| e.message.as_str()));
    }
    Ok(encode(&model, id, result?))
}

async fn run(
    state: &ServerState,
    model: &LoadedModel,
    request: ModelInferRequest,
    arrival: Instant,
    trace: Option<&mut RequestTrace>,
) -> Result<InferResponse, ServerError> {
    let decoded = decode(&model.name, request, &state.limits)?;
    model
        .infer(
            decoded.inputs,
            decoded.outputs,
            arrival,
            decoded.schedule,
            trace,
        )
        .await
}

/// The client's span in a call's `traceparent` metadata, if valid.
pub(crate) fn trace_parent(metadata: &tonic::metadata::MetadataMap) -> Option<TraceParent> {
    metadata
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .and_then(TraceParent::parse)
}

/// Decodes the inputs and requested outputs of a request for `model`. Raw
/// input contents are moved into the tensors, not copied. Each input's
/// declared shape is checked against `limits` before its typed contents
/// are converted.
pub fn decode(
    model: &str,
    request: ModelInferRequest,
    limits: &Limits,
) -> Result<Decoded, ServerError> {
    let schedule = parameters::check_request(model, &request.parameters)?;
    let raw_count = request.raw_input_contents.len();
    if raw_count != 0 && raw_count != request.inputs.len() {
        return Err(ServerError::invalid(format!(
            "the request for model '{model}' has {} inputs but {raw_count} raw_input_contents; send one entry per input, in the order of the inputs",
            request.inputs.len()
        )));
    }
    let mut raw = request.raw_input_contents.into_iter();
    let mut budget = limits.budget();
    let mut inputs = Vec::with_capacity(request.inputs.len());
    for input in request.inputs {
        let dtype = DataType::from_kserve(&input.datatype).ok_or_else(|| {
            ServerError::invalid(format!(
                "input tensor '{}' for model '{model}' has invalid datatype '{}'",
                input.name, input.datatype
            ))
        })?;
        parameters::check_input(&input.name, &input.parameters)?;
        budget.admit(&input.name, dtype, &input.shape)?;
        let data = match (&input.contents, raw.next()) {
            (Some(_), Some(_)) => {
                return Err(ServerError::invalid(format!(
                    "contents field must not be specified when using raw_input_contents for '{}' for model '{model}'",
                    input.name
                )))
            }
            (None, Some(data)) => data,
            (Some(typed), None) => contents::to_raw(model, &input.name, dtype, typed)?,
            (None, None) => {
                return Err(ServerError::invalid(format!(
                    "unable to find data for input tensor '{}' for model '{model}' in request",
                    input.name
                )))
            }
        };
        let tensor = Tensor::new(dtype, input.shape, data).map_err(|e| {
            ServerError::invalid(format!(
                "input tensor '{}' for model '{model}': {e}",
                input.name
            ))
        })?;
        if dtype.element_size().is_none() {
            budget.add_variable(&input.name, tensor.data().len())?;
        }
        inputs.push(NamedTensor::new(input.name, tensor));
    }
    let mut seen = HashSet::with_capacity(request.outputs.len());
    let mut outputs = Vec::with_capacity(request.outputs.len());
    for output in request.outputs {
        parameters::check_output(&output.name, &output.parameters)?;
        if !seen.insert(output.name.clone()) {
            return Err(ServerError::invalid(format!(
                "output '{}' is requested more than once in the request for model '{model}'",
                output.name
            )));
        }
        outputs.push(output.name);
    }
    Ok(Decoded {
        inputs,
        outputs,
        schedule,
    })
}

/// The wire response: output metadata in `outputs` and each output's bytes,
/// in the same order, in `raw_output_contents` (shared, not copied).
pub(crate) fn encode(
    model: &LoadedModel,
    id: String,
    response: InferResponse,
) -> ModelInferResponse {
    let mut outputs = Vec::with_capacity(response.outputs.len());
    let mut raw = Vec::with_capacity(response.outputs.len());
    for output in response.outputs {
        let (dtype, shape, data) = output.tensor.into_parts();
        outputs.push(InferOutputTensor {
            name: output.name,
            datatype: dtype.kserve_name().to_string(),
            shape,
            ..Default::default()
        });
        raw.push(data);
    }
    ModelInferResponse {
        model_name: model.name.clone(),
        model_version: model.version.to_string(),
        id,
        outputs,
        raw_output_contents: raw,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use ferrite_proto::inference::model_infer_request::{
        InferInputTensor, InferRequestedOutputTensor,
    };
    use ferrite_proto::inference::InferTensorContents;

    fn input(name: &str, datatype: &str, shape: &[i64]) -> InferInputTensor {
        InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn raw_contents_are_sliced_not_copied() {
        let body = Bytes::from(vec![7u8; 32]);
        let request = ModelInferRequest {
            inputs: vec![input("a", "FP32", &[1, 4]), input("b", "INT8", &[16])],
            raw_input_contents: vec![body.slice(0..16), body.slice(16..32)],
            outputs: vec![InferRequestedOutputTensor {
                name: "y".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let decoded = decode("m", request, &Limits::default()).unwrap();
        assert_eq!(decoded.inputs.len(), 2);
        assert_eq!(decoded.outputs, vec!["y".to_string()]);
        assert_eq!(decoded.inputs[0].tensor.data().as_ptr(), body.as_ptr());
        assert_eq!(
            decoded.inputs[1].tensor.data().as_ptr(),
            body[16..].as_ptr()
        );
    }

    #[test]
    fn typed_contents() {
        let mut x = input("x", "INT32", &[2]);
        x.contents = Some(InferTensorContents {
            int_contents: vec![1, -1],
            ..Default::default()
        });
        let request = ModelInferRequest {
            inputs: vec![x],
            ..Default::default()
        };
        let decoded = decode("m", request, &Limits::default()).unwrap();
        assert_eq!(
            decoded.inputs[0].tensor.data().as_ref(),
            &[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]
        );
    }

    fn error_of(request: ModelInferRequest) -> String {
        decode("m", request, &Limits::default())
            .unwrap_err()
            .message
    }

    #[test]
    fn refuses_malformed_requests() {
        let mut both = input("x", "FP32", &[1]);
        both.contents = Some(InferTensorContents::default());
        let message = error_of(ModelInferRequest {
            inputs: vec![both],
            raw_input_contents: vec![Bytes::from_static(&[0; 4])],
            ..Default::default()
        });
        assert_eq!(
            message,
            "contents field must not be specified when using raw_input_contents for 'x' for model 'm'"
        );
        let message = error_of(ModelInferRequest {
            inputs: vec![input("x", "FP32", &[2])],
            raw_input_contents: vec![Bytes::from_static(&[0; 4])],
            ..Default::default()
        });
        assert!(
            message.contains("'x'") && message.contains("needs 8 bytes, got 4"),
            "{message}"
        );
        let message = error_of(ModelInferRequest {
            inputs: vec![input("x", "FP32", &[1]), input("z", "FP32", &[1])],
            raw_input_contents: vec![Bytes::from_static(&[0; 4])],
            ..Default::default()
        });
        assert!(
            message.contains("2 inputs but 1 raw_input_contents"),
            "{message}"
        );
        let message = error_of(ModelInferRequest {
            inputs: vec![input("x", "FLOAT", &[1])],
            ..Default::default()
        });
        assert!(message.contains("invalid datatype 'FLOAT'"), "{message}");
        let message = error_of(ModelInferRequest {
            inputs: vec![input("x", "FP32", &[1])],
            ..Default::default()
        });
        assert!(
            message.contains("unable to find data for input tensor 'x'"),
            "{message}"
        );
        let message = error_of(ModelInferRequest {
            inputs: vec![input("x", "FP32", &[-1])],
            raw_input_contents: vec![Bytes::new()],
            ..Default::default()
        });
        assert!(message.contains("negative dimension"), "{message}");
        let message = error_of(ModelInferRequest {
            inputs: vec![input("x", "BYTES", &[1])],
            raw_input_contents: vec![Bytes::from_static(&[9, 0, 0, 0, b'a'])],
            ..Default::default()
        });
        assert!(
            message.contains("'x'") && message.contains("claims 9 bytes"),
            "{message}"
        );
        let output = InferRequestedOutputTensor {
            name: "y".into(),
            ..Default::default()
        };
        let message = error_of(ModelInferRequest {
            outputs: vec![output.clone(), output],
            ..Default::default()
        });
        assert!(message.contains("more than once"), "{message}");
    }
}
