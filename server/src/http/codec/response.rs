//! Inference responses: a JSON object naming the model and its outputs,
//! with each output's data in the JSON or, for binary outputs, appended
//! after it as the output's own buffer.

use bytes::Bytes;
use ferrite_backends::{bytes_codec, DataType, NamedTensor, Tensor};
use half::{bf16, f16};
use serde::ser::{Error as _, Serializer};
use serde::Serialize;

use super::ResponseSpec;
use crate::error::ServerError;

/// An encoded response: the JSON header, then the binary outputs' bytes.
#[derive(Debug, Clone)]
pub struct EncodedResponse {
    /// The JSON object.
    pub json: Bytes,
    /// The binary outputs' data, in the order the JSON lists them.
    pub binary: Vec<Bytes>,
    /// The `Inference-Header-Content-Length` to send: the JSON's length
    /// when at least one output is binary.
    pub header_length: Option<usize>,
}

impl EncodedResponse {
    /// Total body length.
    pub fn content_length(&self) -> usize {
        self.json.len() + self.binary.iter().map(Bytes::len).sum::<usize>()
    }

    /// The body as a list of buffers: the JSON, then each binary output.
    pub fn into_chunks(self) -> Vec<Bytes> {
        let mut chunks = Vec::with_capacity(1 + self.binary.len());
        chunks.push(self.json);
        chunks.extend(self.binary);
        chunks
    }
}

#[derive(Serialize)]
struct Header<'a> {
    model_name: &'a str,
    model_version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<OutputEntry<'a>>,
}

#[derive(Serialize)]
struct OutputEntry<'a> {
    name: &'a str,
    datatype: &'static str,
    shape: &'a [i64],
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinarySize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<TensorData<'a>>,
}

#[derive(Serialize)]
struct BinarySize {
    binary_data_size: usize,
}

/// A tensor's elements as a flat JSON array.
struct TensorData<'a>(&'a Tensor);

impl Serialize for TensorData<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let data = self.0.data().as_ref();
        match self.0.dtype() {
            DataType::Bool => serializer.collect_seq(data.iter().map(|&b| b != 0)),
            DataType::Uint8 => serializer.collect_seq(data),
            DataType::Int8 => serializer.collect_seq(fixed(data, i8::from_le_bytes)),
            DataType::Uint16 => serializer.collect_seq(fixed(data, u16::from_le_bytes)),
            DataType::Int16 => serializer.collect_seq(fixed(data, i16::from_le_bytes)),
            DataType::Uint32 => serializer.collect_seq(fixed(data, u32::from_le_bytes)),
            DataType::Int32 => serializer.collect_seq(fixed(data, i32::from_le_bytes)),
            DataType::Uint64 => serializer.collect_seq(fixed(data, u64::from_le_bytes)),
            DataType::Int64 => serializer.collect_seq(fixed(data, i64::from_le_bytes)),
            DataType::Fp16 => {
                serializer.collect_seq(fixed(data, |b| f16::from_le_bytes(b).to_f32()))
            }
            DataType::Bf16 => {
                serializer.collect_seq(fixed(data, |b| bf16::from_le_bytes(b).to_f32()))
            }
            DataType::Fp32 => serializer.collect_seq(fixed(data, f32::from_le_bytes)),
            DataType::Fp64 => serializer.collect_seq(fixed(data, f64::from_le_bytes)),
            DataType::Bytes => {
                let strings = bytes_codec::iter(data)
                    .map(|element| {
                        element.and_then(|e| std::str::from_utf8(e).map_err(|u| u.to_string()))
                    })
                    .collect::<Result<Vec<&str>, String>>()
                    .map_err(S::Error::custom)?;
                serializer.collect_seq(strings)
            }
        }
    }
}

/// A tensor's elements as JSON values separated by commas (its JSON array
/// without the brackets), the form Triton's trace files give tensor data.
pub fn elements_text(tensor: &Tensor) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(&TensorData(tensor))?;
    Ok(json
        .strip_prefix('[')
        .and_then(|j| j.strip_suffix(']'))
        .unwrap_or_default()
        .to_string())
}

/// Reads little-endian fixed-size elements.
fn fixed<'a, const N: usize, T>(
    data: &'a [u8],
    read: impl Fn([u8; N]) -> T + 'a,
) -> impl Iterator<Item = T> + 'a {
    data.as_chunks::<N>()
        .0
        .iter()
        .map(move |chunk| read(*chunk))
}

/// Encodes the response to a request shaped by `spec`. `outputs` are the
/// model's outputs: the requested ones are answered in the requested
/// order, or all of them when the request named none.
pub fn encode_response(
    model_name: &str,
    model_version: i64,
    spec: &ResponseSpec,
    outputs: Vec<NamedTensor>,
) -> Result<EncodedResponse, ServerError> {
    let outputs = select(spec, outputs)?;
    let mut entries = Vec::with_capacity(outputs.len());
    let mut binary = Vec::new();
    for output in &outputs {
        let tensor = &output.tensor;
        let as_binary = spec.binary(&output.name);
        if !as_binary && tensor.dtype() == DataType::Bytes {
            check_utf8(&output.name, tensor)?;
        }
        entries.push(OutputEntry {
            name: &output.name,
            datatype: tensor.dtype().kserve_name(),
            shape: tensor.shape(),
            parameters: as_binary.then(|| BinarySize {
                binary_data_size: tensor.data().len(),
            }),
            data: (!as_binary).then_some(TensorData(tensor)),
        });
        if as_binary {
            binary.push(tensor.data().clone());
        }
    }
    let has_binary = entries.iter().any(|e| e.parameters.is_some());
    let header = Header {
        model_name,
        model_version: model_version.to_string(),
        id: spec.id.as_deref().filter(|id| !id.is_empty()),
        outputs: entries,
    };
    let json = serde_json::to_vec(&header).map_err(|e| {
        ServerError::internal(format!(
            "cannot encode the response of model '{model_name}': {e}"
        ))
    })?;
    let header_length = has_binary.then_some(json.len());
    Ok(EncodedResponse {
        json: Bytes::from(json),
        binary,
        header_length,
    })
}

/// The outputs to answer, in answer order.
fn select(spec: &ResponseSpec, outputs: Vec<NamedTensor>) -> Result<Vec<NamedTensor>, ServerError> {
    if spec.outputs.is_empty() {
        return Ok(outputs);
    }
    let mut outputs: Vec<Option<NamedTensor>> = outputs.into_iter().map(Some).collect();
    spec.outputs
        .iter()
        .map(|wanted| {
            outputs
                .iter_mut()
                .find(|o| o.as_ref().is_some_and(|o| o.name == wanted.name))
                .and_then(Option::take)
                .ok_or_else(|| {
                    ServerError::internal(format!(
                        "the model did not produce the requested output '{}'",
                        wanted.name
                    ))
                })
        })
        .collect()
}

fn check_utf8(name: &str, tensor: &Tensor) -> Result<(), ServerError> {
    for (index, element) in bytes_codec::iter(tensor.data()).enumerate() {
        let element =
            element.map_err(|e| ServerError::internal(format!("output '{name}': {e}")))?;
        if std::str::from_utf8(element).is_err() {
            return Err(ServerError::invalid(format!(
                "output '{name}' element {index} is not valid UTF-8 and cannot be written as a JSON string; \
                 request the output as binary data (parameter binary_data: true)"
            )));
        }
    }
    Ok(())
}
