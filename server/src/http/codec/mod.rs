//! The KServe v2 HTTP inference codec, free of any HTTP framework type:
//! request bodies (JSON, optionally followed by binary tensor data) into
//! [`DecodedRequest`]s, and outputs into [`EncodedResponse`]s.
//!
//! Decoding deserializes straight into typed structs and tensor buffers;
//! binary inputs are slices of the body. Encoding writes the JSON header and
//! chains the outputs' own buffers after it for binary outputs.
//!
//! Request parameters: `binary_data_output` is honoured; `priority`,
//! `timeout` and the `sequence_*` parameters are refused unless they hold
//! their neutral value (0, false, ""), since ferrite has no priorities,
//! timeouts or sequence batcher; any other parameter is passed through in
//! [`DecodedRequest::parameters`]. Input parameters: `binary_data_size`;
//! output parameters: `binary_data`. Shared-memory and classification
//! parameters are refused; other input and output parameters are logged at
//! debug level and ignored.

mod binary;
pub mod elements;
mod json_request;
pub mod parameters;
mod response;

use std::time::Duration;

use bytes::Bytes;
use ferrite_backends::NamedTensor;

pub use binary::{parse_header_length, split_body, BinarySection};
pub use elements::{parse_datatype, tensor_from_raw, TensorBuilder};
pub use parameters::{Parameter, Parameters};
pub use response::{elements_text, encode_response, EncodedResponse};

use crate::error::ServerError;
use crate::limits::{Limits, RequestBudget};
use crate::model::Schedule;
use json_request::{RawData, RawInput, RawOutput};

/// Request parameters that ask for features ferrite does not have, with the
/// reason given when one holds anything but its neutral value.
const UNSUPPORTED_REQUEST_PARAMETERS: [(&str, &str); 3] = [
    ("sequence_id", "ferrite has no sequence batcher"),
    ("sequence_start", "ferrite has no sequence batcher"),
    ("sequence_end", "ferrite has no sequence batcher"),
];

/// Input and output parameters of the shared-memory extension.
const SHARED_MEMORY_PARAMETERS: [&str; 3] = [
    "shared_memory_region",
    "shared_memory_byte_size",
    "shared_memory_offset",
];

/// A decoded inference request.
#[derive(Debug)]
pub struct DecodedRequest {
    /// The input tensors, in request order.
    pub inputs: Vec<NamedTensor>,
    /// What the response must hold and how to write it.
    pub response: ResponseSpec,
    /// Request parameters other than those the protocol defines, for the
    /// backend (ferrite's engines take none).
    pub parameters: Parameters,
    /// The request's `priority` and `timeout`.
    pub schedule: Schedule,
}

/// The request-level parameters ferrite acts on, and the others.
#[derive(Debug)]
pub(crate) struct RequestParameters {
    pub binary_data_output: bool,
    pub schedule: Schedule,
    pub rest: Parameters,
}

/// The part of a request that shapes its response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseSpec {
    /// The request `id`, echoed when not empty.
    pub id: Option<String>,
    /// Requested outputs in order; empty means every output.
    pub outputs: Vec<RequestedOutput>,
    /// The request's `binary_data_output` parameter.
    pub binary_data_output: bool,
}

/// One entry of the request's `outputs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestedOutput {
    pub name: String,
    /// The output's `binary_data` parameter, if given.
    pub binary_data: Option<bool>,
}

impl ResponseSpec {
    /// Names of the requested outputs (empty for all), as the model takes
    /// them.
    pub fn output_names(&self) -> Vec<String> {
        self.outputs.iter().map(|o| o.name.clone()).collect()
    }

    /// Whether `output` is answered as binary data: its own `binary_data`
    /// parameter, else the request's `binary_data_output`.
    pub fn binary(&self, output: &str) -> bool {
        self.outputs
            .iter()
            .find(|o| o.name == output)
            .and_then(|o| o.binary_data)
            .unwrap_or(self.binary_data_output)
    }
}

/// Decodes a request body. `header_length` is the value of the
/// `Inference-Header-Content-Length` header, when the body carries binary
/// tensor data after its JSON. Each input's declared shape is checked
/// against `limits` before its tensor is built; JSON `data` is parsed with
/// room for no more elements than the JSON text could hold.
pub fn decode_request(
    body: &Bytes,
    header_length: Option<usize>,
    limits: &Limits,
) -> Result<DecodedRequest, ServerError> {
    let (json, mut binary) = split_body(body, header_length)?;
    let raw = json_request::parse(&json)?;
    let RequestParameters {
        binary_data_output,
        schedule,
        rest: parameters,
    } = request_parameters(raw.parameters)?;
    let mut budget = limits.budget();
    let inputs = raw
        .inputs
        .into_iter()
        .map(|input| decode_input(input, &mut binary, &mut budget))
        .collect::<Result<Vec<_>, _>>()?;
    binary.finish()?;
    let mut outputs: Vec<RequestedOutput> = Vec::with_capacity(raw.outputs.len());
    for output in raw.outputs {
        let output = decode_output(output)?;
        if outputs.iter().any(|o| o.name == output.name) {
            return Err(ServerError::invalid(format!(
                "output '{}' is requested more than once",
                output.name
            )));
        }
        outputs.push(output);
    }
    Ok(DecodedRequest {
        inputs,
        response: ResponseSpec {
            id: raw.id,
            outputs,
            binary_data_output,
        },
        parameters,
        schedule,
    })
}

/// Reads the request-level parameters: `binary_data_output`, `priority`
/// and `timeout` (microseconds; 0 means none), and the parameters to pass
/// through, after refusing the unsupported protocol parameters that hold
/// anything but their neutral value.
pub(crate) fn request_parameters(
    mut parameters: Parameters,
) -> Result<RequestParameters, ServerError> {
    if parameters.is_empty() {
        return Ok(RequestParameters {
            binary_data_output: false,
            schedule: Schedule::default(),
            rest: parameters,
        });
    }
    let binary_data_output = parameters
        .take_bool("binary_data_output", "the request")?
        .unwrap_or(false);
    let priority = match parameters.take_u64("priority", "the request")? {
        Some(priority) => u32::try_from(priority).map_err(|_| {
            ServerError::invalid(format!(
                "parameter 'priority' of the request is too large: {priority}"
            ))
        })?,
        None => 0,
    };
    let timeout = parameters
        .take_u64("timeout", "the request")?
        .filter(|&micros| micros > 0)
        .map(Duration::from_micros);
    for (name, reason) in UNSUPPORTED_REQUEST_PARAMETERS {
        if let Some(value) = parameters.take(name) {
            if !value.is_default() {
                return Err(ServerError::invalid(format!(
                    "request parameter '{name}' is not supported: {reason} (got {value})"
                )));
            }
        }
    }
    Ok(RequestParameters {
        binary_data_output,
        schedule: Schedule { priority, timeout },
        rest: parameters,
    })
}

/// Refuses shared-memory and other unsupported parameters, logs the rest.
pub(crate) fn check_parameters(
    parameters: &Parameters,
    owner: &str,
    unsupported: &[(&str, &str)],
) -> Result<(), ServerError> {
    for (name, value) in parameters.iter() {
        if SHARED_MEMORY_PARAMETERS.contains(&name) {
            return Err(ServerError::invalid(format!(
                "{owner}: parameter '{name}' is not supported: ferrite has no shared-memory extension; send tensor data in the request body"
            )));
        }
        if let Some((_, reason)) = unsupported.iter().find(|(n, _)| *n == name) {
            return Err(ServerError::invalid(format!(
                "{owner}: parameter '{name}' is not supported: {reason}"
            )));
        }
        tracing::debug!("{owner}: ignoring parameter '{name}' = {value}");
    }
    Ok(())
}

fn decode_input(
    input: RawInput<'_>,
    binary: &mut BinarySection,
    budget: &mut RequestBudget,
) -> Result<NamedTensor, ServerError> {
    let RawInput {
        name,
        shape,
        dtype,
        mut parameters,
        data,
    } = input;
    budget.admit(&name, dtype, &shape)?;
    let mut binary_size = None;
    if !parameters.is_empty() {
        let owner = format!("input '{name}'");
        binary_size = parameters.take_u64("binary_data_size", &owner)?;
        check_parameters(&parameters, &owner, &[])?;
    }
    let in_input = |e: ServerError| ServerError::invalid(format!("input '{name}': {}", e.message));
    let tensor = match (binary_size, data) {
        (Some(_), Some(_)) => {
            return Err(ServerError::invalid(format!(
                "input '{name}' has both 'data' and the binary_data_size parameter"
            )))
        }
        (Some(size), None) => {
            let data = binary.take(&name, size)?;
            tensor_from_raw(&name, dtype, shape, data)?
        }
        (None, Some(RawData::Parsed(builder))) => builder.finish(shape).map_err(in_input)?,
        (None, Some(RawData::Deferred(raw))) => json_request::parse_deferred(raw, dtype, &shape)
            .map_err(|e| ServerError::invalid(format!("data: {e}")))
            .and_then(|builder| builder.finish(shape))
            .map_err(in_input)?,
        (None, None) => {
            return Err(ServerError::invalid(format!(
                "input '{name}' has neither 'data' nor the binary_data_size parameter"
            )))
        }
    };
    if dtype.element_size().is_none() {
        budget.add_variable(&name, tensor.data().len())?;
    }
    Ok(NamedTensor { name, tensor })
}

fn decode_output(output: RawOutput) -> Result<RequestedOutput, ServerError> {
    let RawOutput {
        name,
        mut parameters,
    } = output;
    let mut binary_data = None;
    if !parameters.is_empty() {
        let owner = format!("output '{name}'");
        binary_data = parameters.take_bool("binary_data", &owner)?;
        check_parameters(
            &parameters,
            &owner,
            &[("classification", "ferrite has no classification extension")],
        )?;
    }
    Ok(RequestedOutput { name, binary_data })
}

#[cfg(test)]
mod tests;
