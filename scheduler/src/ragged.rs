//! Ragged batching, as Triton does it.
//!
//! An input with `allow_ragged_batch` may differ in shape between the
//! requests of one batch. The batch gives the model such an input as one
//! 1-dimensional tensor, the concatenation of every request's elements, and
//! the model learns where each request's part ends from the config's
//! `batch_input` tensors, which the batcher computes from the requests' shapes
//! once the batch is formed ([`BatchInputKind`] lists them). A `batch_output`
//! of kind BATCH_SCATTER_WITH_INPUT_SHAPE is split the same way back: each
//! request gets as many elements as its source input has, in its source
//! input's shape.

use bytes::Bytes;
use ferrite_backends::{bytes_codec, element_count, DataType, NamedTensor, Tensor};

use crate::request::InferRequest;

/// What a batch input holds, for the requests of one batch in order
/// (Triton's `BatchInput.Kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchInputKind {
    /// Each request's element count of the source input: shape
    /// `[requests]`.
    ElementCount,
    /// The running total of those counts: where each request ends.
    AccumulatedElementCount,
    /// The running total with a leading 0: shape `[requests + 1]`.
    AccumulatedElementCountWithZero,
    /// A tensor shaped `[largest element count]`, whose contents are
    /// meaningless (zeros): only its shape tells the model something.
    MaxElementCountAsShape,
    /// The source input's shape (batch dimension excluded) once per batch
    /// row: shape `[rows, rank]`.
    ItemShape,
    /// The same values as [`BatchInputKind::ItemShape`], flattened.
    ItemShapeFlatten,
}

/// One model input the batcher builds from the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchInput {
    pub kind: BatchInputKind,
    /// The model input it is given as.
    pub target: String,
    /// INT32, INT64 or FP32.
    pub dtype: DataType,
    /// The request input it describes.
    pub source: String,
}

/// The ragged-batching part of a model's config. The default (nothing
/// ragged) batches by rows only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchLayout {
    /// Inputs with `allow_ragged_batch`.
    pub ragged_inputs: Vec<String>,
    pub batch_inputs: Vec<BatchInput>,
    /// Outputs scattered with their source input's shape, as
    /// `(output, source input)`.
    pub scatter_outputs: Vec<(String, String)>,
}

impl BatchLayout {
    pub fn is_empty(&self) -> bool {
        self.ragged_inputs.is_empty()
            && self.batch_inputs.is_empty()
            && self.scatter_outputs.is_empty()
    }

    pub fn is_ragged(&self, input: &str) -> bool {
        self.ragged_inputs.iter().any(|name| name == input)
    }

    /// The source input of a scattered output, if `output` is one.
    pub(crate) fn scatter_source(&self, output: &str) -> Option<&str> {
        self.scatter_outputs
            .iter()
            .find(|(name, _)| name == output)
            .map(|(_, source)| source.as_str())
    }

    /// The batch input tensors for `requests`, in config order.
    pub(crate) fn batch_inputs(
        &self,
        requests: &[&InferRequest],
    ) -> Result<Vec<NamedTensor>, String> {
        self.batch_inputs
            .iter()
            .map(|input| {
                build_batch_input(input, requests)
                    .map(|tensor| NamedTensor::new(input.target.clone(), tensor))
                    .map_err(|e| format!("batch input '{}': {e}", input.target))
            })
            .collect()
    }
}

/// The shape of `request`'s input `name`, batch dimension included.
pub(crate) fn source_shape<'r>(request: &'r InferRequest, name: &str) -> Result<&'r [i64], String> {
    request
        .inputs
        .iter()
        .find(|input| input.name == name)
        .map(|input| input.tensor.shape())
        .ok_or_else(|| format!("a request lacks its source input '{name}'"))
}

/// Each request's shape of its input `source` and that shape's element
/// count, in batch order.
fn source_extents<'r>(
    requests: &[&'r InferRequest],
    source: &str,
) -> Result<(Vec<&'r [i64]>, Vec<usize>), String> {
    let shapes = requests
        .iter()
        .map(|r| source_shape(r, source))
        .collect::<Result<Vec<_>, _>>()?;
    let counts = shapes
        .iter()
        .map(|shape| element_count(shape))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|e| e.to_string())?;
    Ok((shapes, counts))
}

fn build_batch_input(input: &BatchInput, requests: &[&InferRequest]) -> Result<Tensor, String> {
    let (shapes, counts) = source_extents(requests, &input.source)?;
    let counts: Vec<i64> = counts.into_iter().map(|n| n as i64).collect();
    let running = || {
        counts.iter().scan(0i64, |total, count| {
            *total += count;
            Some(*total)
        })
    };
    let (shape, values): (Vec<i64>, Vec<i64>) = match input.kind {
        BatchInputKind::ElementCount => (vec![counts.len() as i64], counts.clone()),
        BatchInputKind::AccumulatedElementCount => (vec![counts.len() as i64], running().collect()),
        BatchInputKind::AccumulatedElementCountWithZero => (
            vec![counts.len() as i64 + 1],
            std::iter::once(0).chain(running()).collect(),
        ),
        BatchInputKind::MaxElementCountAsShape => {
            let largest = counts.iter().copied().max().unwrap_or(0);
            (vec![largest], vec![0; largest as usize])
        }
        BatchInputKind::ItemShape | BatchInputKind::ItemShapeFlatten => {
            let rank = shapes.first().map_or(0, |s| s.len().saturating_sub(1));
            let mut values = Vec::new();
            for (shape, request) in shapes.iter().zip(requests) {
                let item = shape.get(1..).unwrap_or_default();
                if item.len() != rank {
                    return Err(format!(
                        "the requests give '{}' different ranks",
                        input.source
                    ));
                }
                for _ in 0..request.batch_size {
                    values.extend_from_slice(item);
                }
            }
            let rows = (values.len() / rank.max(1)) as i64;
            let shape = if input.kind == BatchInputKind::ItemShape {
                vec![rows, rank as i64]
            } else {
                vec![values.len() as i64]
            };
            (shape, values)
        }
    };
    Tensor::new(input.dtype, shape, encode(input.dtype, &values)?).map_err(|e| e.to_string())
}

/// The values as little-endian elements of `dtype`.
fn encode(dtype: DataType, values: &[i64]) -> Result<Bytes, String> {
    let bytes: Vec<u8> = match dtype {
        DataType::Int32 => values
            .iter()
            .map(|&v| {
                i32::try_from(v)
                    .map(i32::to_le_bytes)
                    .map_err(|_| format!("{v} does not fit INT32"))
            })
            .collect::<Result<Vec<_>, _>>()?
            .concat(),
        DataType::Int64 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DataType::Fp32 => values
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect(),
        other => return Err(format!("data type {other} is not INT32, INT64 or FP32")),
    };
    Ok(bytes.into())
}

/// Splits a scattered output: each request gets as many elements as its
/// `source` input has, shaped like that input.
pub(crate) fn scatter_by_source(
    output: &NamedTensor,
    source: &str,
    requests: &[&InferRequest],
) -> Result<Vec<NamedTensor>, String> {
    let tensor = &output.tensor;
    let (shapes, counts) = source_extents(requests, source)?;
    let needed: usize = counts.iter().sum();
    if tensor.element_count() != needed {
        return Err(format!(
            "output '{}' has {} elements, its source input '{source}' has {needed} in the batch",
            output.name,
            tensor.element_count()
        ));
    }
    let data = tensor.data();
    let mut parts = Vec::with_capacity(requests.len());
    let mut start = 0;
    let mut words = bytes_codec::iter(data);
    for (shape, count) in shapes.into_iter().zip(counts) {
        let end = match tensor.dtype().element_size() {
            Some(size) => start + count * size,
            None => {
                let mut end = start;
                for word in words.by_ref().take(count) {
                    end += 4 + word?.len();
                }
                end
            }
        };
        let part = Tensor::new(tensor.dtype(), shape.to_vec(), data.slice(start..end))
            .map_err(|e| format!("output '{}': {e}", output.name))?;
        parts.push(NamedTensor::new(output.name.clone(), part));
        start = end;
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn request(shape: Vec<i64>) -> InferRequest {
        let elements = element_count(&shape).unwrap();
        let data: Vec<u8> = (0..elements)
            .flat_map(|v| (v as f32).to_le_bytes())
            .collect();
        InferRequest {
            inputs: vec![NamedTensor::new(
                "x",
                Tensor::new(DataType::Fp32, shape.clone(), data.into()).unwrap(),
            )],
            outputs: Vec::new(),
            batch_size: shape[0] as usize,
            arrival: Instant::now(),
            priority: 0,
            timeout: None,
        }
    }

    fn values(tensor: &Tensor) -> Vec<i64> {
        match tensor.dtype() {
            DataType::Int32 => tensor
                .data()
                .chunks_exact(4)
                .map(|c| i64::from(i32::from_le_bytes(c.try_into().unwrap())))
                .collect(),
            DataType::Int64 => tensor
                .data()
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            DataType::Fp32 => tensor
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
            other => panic!("unexpected {other}"),
        }
    }

    fn built(kind: BatchInputKind, dtype: DataType, shapes: &[Vec<i64>]) -> Tensor {
        let requests: Vec<InferRequest> = shapes.iter().cloned().map(request).collect();
        let refs: Vec<&InferRequest> = requests.iter().collect();
        let layout = BatchLayout {
            batch_inputs: vec![BatchInput {
                kind,
                target: "INDEX".into(),
                dtype,
                source: "x".into(),
            }],
            ..BatchLayout::default()
        };
        let mut tensors = layout.batch_inputs(&refs).unwrap();
        assert_eq!(tensors[0].name, "INDEX");
        tensors.remove(0).tensor
    }

    #[test]
    fn element_counts_follow_triton() {
        let shapes = [vec![1, 3], vec![1, 4], vec![1, 5]];
        let counts = built(BatchInputKind::ElementCount, DataType::Int32, &shapes);
        assert_eq!(counts.shape(), &[3]);
        assert_eq!(values(&counts), vec![3, 4, 5]);
        let ends = built(
            BatchInputKind::AccumulatedElementCount,
            DataType::Fp32,
            &shapes,
        );
        assert_eq!(values(&ends), vec![3, 7, 12]);
        let bounds = built(
            BatchInputKind::AccumulatedElementCountWithZero,
            DataType::Int64,
            &shapes,
        );
        assert_eq!(bounds.shape(), &[4]);
        assert_eq!(values(&bounds), vec![0, 3, 7, 12]);
        let widest = built(
            BatchInputKind::MaxElementCountAsShape,
            DataType::Int32,
            &shapes,
        );
        assert_eq!(widest.shape(), &[5]);
    }

    #[test]
    fn item_shapes_repeat_per_row() {
        let shapes = [vec![2, 3, 1], vec![1, 2, 2]];
        let items = built(BatchInputKind::ItemShape, DataType::Int32, &shapes);
        assert_eq!(items.shape(), &[3, 2]);
        assert_eq!(values(&items), vec![3, 1, 3, 1, 2, 2]);
        let flat = built(BatchInputKind::ItemShapeFlatten, DataType::Int32, &shapes);
        assert_eq!(flat.shape(), &[6]);
    }

    #[test]
    fn counts_too_large_for_int32_are_an_error() {
        assert!(encode(DataType::Int32, &[i64::from(i32::MAX) + 1]).is_err());
        assert!(encode(DataType::Uint8, &[1]).is_err());
    }

    #[test]
    fn scatter_gives_each_request_its_source_shape() {
        let requests = [request(vec![1, 2]), request(vec![1, 3])];
        let refs: Vec<&InferRequest> = requests.iter().collect();
        let data: Vec<u8> = (0..5).flat_map(|v| (v as f32).to_le_bytes()).collect();
        let y = NamedTensor::new(
            "y",
            Tensor::new(DataType::Fp32, vec![5], data.into()).unwrap(),
        );
        let parts = scatter_by_source(&y, "x", &refs).unwrap();
        assert_eq!(parts[0].tensor.shape(), &[1, 2]);
        assert_eq!(parts[1].tensor.shape(), &[1, 3]);
        assert_eq!(parts[1].tensor.data().len(), 12);
        let short = NamedTensor::new(
            "y",
            Tensor::new(DataType::Fp32, vec![4], vec![0u8; 16].into()).unwrap(),
        );
        let err = scatter_by_source(&short, "x", &refs).unwrap_err();
        assert!(err.contains("4 elements"), "{err}");
    }

    #[test]
    fn scatter_splits_bytes_outputs() {
        let requests = [request(vec![1, 1]), request(vec![1, 2])];
        let refs: Vec<&InferRequest> = requests.iter().collect();
        let words = bytes_codec::encode([b"a".as_slice(), b"bc", b""]);
        let y = NamedTensor::new("y", Tensor::new(DataType::Bytes, vec![3], words).unwrap());
        let parts = scatter_by_source(&y, "x", &refs).unwrap();
        let second: Vec<&[u8]> = bytes_codec::iter(parts[1].tensor.data())
            .map(Result::unwrap)
            .collect();
        assert_eq!(second, vec![b"bc".as_slice(), b""]);
    }
}
