//! Gathering the inputs of a batch into one buffer per input, and handing
//! each request its rows of the outputs as slices of the output buffers.

use bytes::{Bytes, BytesMut};
use ferrite_backends::{bytes_codec, DataType, NamedTensor, Tensor};

use crate::ragged::{scatter_by_source, BatchLayout};
use crate::request::InferRequest;

/// Reusable gather buffers of one instance, one per model input.
#[derive(Debug, Default)]
pub(crate) struct GatherBuffers {
    buffers: Vec<BytesMut>,
}

impl GatherBuffers {
    /// Builds the batch's input tensors. A lone request's tensors are used as
    /// they are; several requests are concatenated along the first dimension
    /// with one copy of each request's rows. Ragged inputs become one flat
    /// tensor of every request's elements, and the layout's batch inputs are
    /// appended (see [`crate::ragged`]).
    pub fn gather(
        &mut self,
        requests: &[&InferRequest],
        layout: &BatchLayout,
    ) -> Result<Vec<NamedTensor>, String> {
        let [first, rest @ ..] = requests else {
            return Ok(Vec::new());
        };
        if rest.is_empty() && layout.is_empty() {
            return Ok(first.inputs.clone());
        }
        let rows: usize = requests.iter().map(|r| r.batch_size).sum();
        if self.buffers.len() < first.inputs.len() {
            self.buffers.resize_with(first.inputs.len(), BytesMut::new);
        }
        let mut batch = Vec::with_capacity(first.inputs.len() + layout.batch_inputs.len());
        for (index, input) in first.inputs.iter().enumerate() {
            let ragged = layout.is_ragged(&input.name);
            let tensor = if rest.is_empty() {
                let tensor = &input.tensor;
                if ragged {
                    let flat = vec![tensor.element_count() as i64];
                    Tensor::new(tensor.dtype(), flat, tensor.data().clone())
                } else {
                    Ok(tensor.clone())
                }
            } else {
                let data = self.concatenate(index, &input.name, requests)?;
                let shape = if ragged {
                    let parts = requests.iter().filter_map(|r| r.inputs.get(index));
                    vec![parts.map(|t| t.tensor.element_count()).sum::<usize>() as i64]
                } else {
                    let mut shape = input.tensor.shape().to_vec();
                    if let Some(first_dim) = shape.first_mut() {
                        *first_dim = rows as i64;
                    }
                    shape
                };
                Tensor::new(input.tensor.dtype(), shape, data)
            }
            .map_err(|e| format!("batched input '{}': {e}", input.name))?;
            batch.push(NamedTensor::new(input.name.clone(), tensor));
        }
        batch.extend(layout.batch_inputs(requests)?);
        Ok(batch)
    }

    /// One copy of every request's bytes of input `index`, in batch order.
    fn concatenate(
        &mut self,
        index: usize,
        name: &str,
        requests: &[&InferRequest],
    ) -> Result<Bytes, String> {
        let mut buffer = std::mem::take(&mut self.buffers[index]);
        buffer.clear();
        let total: usize = requests
            .iter()
            .map(|r| r.inputs.get(index).map_or(0, |t| t.tensor.data().len()))
            .sum();
        buffer.reserve(total);
        for request in requests {
            let part = request
                .inputs
                .get(index)
                .ok_or_else(|| format!("request lacks input '{name}'"))?;
            buffer.extend_from_slice(part.tensor.data());
        }
        Ok(buffer.freeze())
    }

    /// Takes the batch's input buffers back for reuse where nothing else
    /// holds them any more.
    pub fn reclaim(&mut self, inputs: Vec<NamedTensor>) {
        for (index, input) in inputs.into_iter().enumerate() {
            let (_, _, data) = input.tensor.into_parts();
            if let (Some(slot), Ok(buffer)) = (self.buffers.get_mut(index), data.try_into_mut()) {
                *slot = buffer;
            }
        }
    }
}

/// The union of the outputs the requests of a batch want; empty (all
/// outputs) if any request wants all of them.
pub(crate) fn requested_outputs(requests: &[&InferRequest]) -> Vec<String> {
    if requests.iter().any(|r| r.outputs.is_empty()) {
        return Vec::new();
    }
    let mut names: Vec<String> = Vec::new();
    for request in requests {
        for name in &request.outputs {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names
}

/// Splits batch outputs into per-request outputs: along the rows, each
/// request taking its row count in batch order, except the layout's scattered
/// outputs (see [`crate::ragged`]). `batched` is false for models that do
/// not batch, whose single request gets the outputs whole.
pub(crate) fn scatter(
    outputs: &[NamedTensor],
    requests: &[&InferRequest],
    batched: bool,
    layout: &BatchLayout,
) -> Result<Vec<Vec<NamedTensor>>, String> {
    if !batched || (requests.len() == 1 && layout.scatter_outputs.is_empty()) {
        return Ok(requests
            .iter()
            .map(|r| select(outputs.iter().cloned(), &r.outputs))
            .collect());
    }
    let total: usize = requests.iter().map(|r| r.batch_size).sum();
    let mut result: Vec<Vec<NamedTensor>> = (0..requests.len())
        .map(|_| Vec::with_capacity(outputs.len()))
        .collect();
    for output in outputs {
        let parts = match layout.scatter_source(&output.name) {
            Some(source) => scatter_by_source(output, source, requests)?,
            None if requests.len() == 1 => vec![output.clone()],
            None => split_rows(output, requests, total)?,
        };
        for (slot, part) in result.iter_mut().zip(parts) {
            slot.push(part);
        }
    }
    Ok(result
        .into_iter()
        .zip(requests)
        .map(|(outs, r)| select(outs.into_iter(), &r.outputs))
        .collect())
}

fn select(outputs: impl Iterator<Item = NamedTensor>, wanted: &[String]) -> Vec<NamedTensor> {
    if wanted.is_empty() {
        return outputs.collect();
    }
    let all: Vec<NamedTensor> = outputs.collect();
    wanted
        .iter()
        .filter_map(|name| all.iter().find(|o| &o.name == name).cloned())
        .collect()
}

fn split_rows(
    output: &NamedTensor,
    requests: &[&InferRequest],
    total: usize,
) -> Result<Vec<NamedTensor>, String> {
    let tensor = &output.tensor;
    let first = tensor.shape().first().copied().unwrap_or(0);
    if usize::try_from(first).ok() != Some(total) {
        return Err(format!(
            "output '{}' has first dimension {first}, the batch has {total} rows",
            output.name
        ));
    }
    let data = tensor.data();
    let offsets = row_offsets(tensor.dtype(), data, tensor.element_count(), total)
        .map_err(|e| format!("output '{}': {e}", output.name))?;
    let mut parts = Vec::with_capacity(requests.len());
    let mut row = 0;
    for request in requests {
        let end = row + request.batch_size;
        let slice: Bytes = data.slice(offsets[row]..offsets[end]);
        let mut shape = tensor.shape().to_vec();
        shape[0] = request.batch_size as i64;
        let part = Tensor::new(tensor.dtype(), shape, slice)
            .map_err(|e| format!("output '{}': {e}", output.name))?;
        parts.push(NamedTensor::new(output.name.clone(), part));
        row = end;
    }
    Ok(parts)
}

/// Byte offset of the start of each row, plus the end, for `rows` rows.
fn row_offsets(
    dtype: DataType,
    data: &[u8],
    elements: usize,
    rows: usize,
) -> Result<Vec<usize>, String> {
    if rows == 0 {
        return Ok(vec![0]);
    }
    let per_row = elements / rows;
    if let Some(size) = dtype.element_size() {
        let row_bytes = per_row * size;
        return Ok((0..=rows).map(|r| r * row_bytes).collect());
    }
    let mut offsets = Vec::with_capacity(rows + 1);
    offsets.push(0);
    let mut position = 0;
    for (index, element) in bytes_codec::iter(data).enumerate() {
        position += 4 + element?.len();
        if per_row == 0 || (index + 1) % per_row == 0 {
            offsets.push(position);
        }
    }
    while offsets.len() < rows + 1 {
        offsets.push(position);
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn request(rows: usize, values: &[f32], outputs: &[&str]) -> InferRequest {
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let cols = values.len() / rows;
        let tensor =
            Tensor::new(DataType::Fp32, vec![rows as i64, cols as i64], data.into()).unwrap();
        InferRequest {
            inputs: vec![NamedTensor::new("x", tensor)],
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            batch_size: rows,
            arrival: Instant::now(),
            priority: 0,
            timeout: None,
        }
    }

    fn floats(tensor: &Tensor) -> Vec<f32> {
        tensor
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn gathers_rows_in_order_and_reuses_buffers() {
        let a = request(1, &[1.0, 2.0], &[]);
        let b = request(2, &[3.0, 4.0, 5.0, 6.0], &[]);
        let mut buffers = GatherBuffers::default();
        let batch = buffers.gather(&[&a, &b], &BatchLayout::default()).unwrap();
        assert_eq!(batch[0].tensor.shape(), &[3, 2]);
        assert_eq!(floats(&batch[0].tensor), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let address = batch[0].tensor.data().as_ptr();
        buffers.reclaim(batch);
        let again = buffers.gather(&[&a, &b], &BatchLayout::default()).unwrap();
        assert_eq!(again[0].tensor.data().as_ptr(), address);
    }

    fn ragged_layout() -> BatchLayout {
        BatchLayout {
            ragged_inputs: vec!["x".into()],
            batch_inputs: vec![crate::BatchInput {
                kind: crate::BatchInputKind::AccumulatedElementCount,
                target: "ends".into(),
                dtype: DataType::Int32,
                source: "x".into(),
            }],
            scatter_outputs: vec![("z".into(), "x".into())],
        }
    }

    #[test]
    fn ragged_inputs_are_concatenated_flat() {
        let a = request(1, &[1.0, 2.0], &[]);
        let b = request(1, &[3.0, 4.0, 5.0], &[]);
        let batch = GatherBuffers::default()
            .gather(&[&a, &b], &ragged_layout())
            .unwrap();
        assert_eq!(batch[0].tensor.shape(), &[5]);
        assert_eq!(floats(&batch[0].tensor), vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(batch[1].name, "ends");
        assert_eq!(batch[1].tensor.shape(), &[2]);
        assert_eq!(
            batch[1].tensor.data().as_ref(),
            [2i32, 5]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>()
        );

        let lone = GatherBuffers::default()
            .gather(&[&b], &ragged_layout())
            .unwrap();
        assert_eq!(lone[0].tensor.shape(), &[3]);
        assert_eq!(
            lone[0].tensor.data().as_ptr(),
            b.inputs[0].tensor.data().as_ptr(),
            "a lone ragged request is reshaped, not copied"
        );
    }

    #[test]
    fn scattered_outputs_follow_the_source_shapes() {
        let a = request(1, &[0.0; 2], &[]);
        let b = request(1, &[0.0; 3], &["z"]);
        let values: Vec<u8> = (0..5).flat_map(|v| (v as f32).to_le_bytes()).collect();
        let z = Tensor::new(DataType::Fp32, vec![5], values.into()).unwrap();
        let sums = Tensor::new(DataType::Fp32, vec![2, 1], vec![0u8; 8].into()).unwrap();
        let outputs = vec![NamedTensor::new("z", z), NamedTensor::new("sum", sums)];
        let parts = scatter(&outputs, &[&a, &b], true, &ragged_layout()).unwrap();
        assert_eq!(parts[0][0].tensor.shape(), &[1, 2]);
        assert_eq!(parts[0][1].tensor.shape(), &[1, 1]);
        assert_eq!(parts[1].len(), 1, "b asked for z only");
        assert_eq!(floats(&parts[1][0].tensor), vec![2.0, 3.0, 4.0]);
    }

    #[test]
    fn lone_request_is_not_copied() {
        let a = request(2, &[1.0, 2.0, 3.0, 4.0], &[]);
        let batch = GatherBuffers::default()
            .gather(&[&a], &BatchLayout::default())
            .unwrap();
        assert_eq!(
            batch[0].tensor.data().as_ptr(),
            a.inputs[0].tensor.data().as_ptr()
        );
    }

    #[test]
    fn scatters_slices_and_selects_outputs() {
        let a = request(1, &[0.0, 0.0], &["y"]);
        let b = request(2, &[0.0; 4], &[]);
        let y = Tensor::new(
            DataType::Fp32,
            vec![3, 1],
            [7.0f32, 8.0, 9.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<u8>>()
                .into(),
        )
        .unwrap();
        let words = bytes_codec::encode([b"a".as_slice(), b"bb", b"", b"c", b"dd", b"e"]);
        let z = Tensor::new(DataType::Bytes, vec![3, 2], words).unwrap();
        let outputs = vec![NamedTensor::new("z", z), NamedTensor::new("y", y)];
        let parts = scatter(&outputs, &[&a, &b], true, &BatchLayout::default()).unwrap();
        assert_eq!(parts[0].len(), 1);
        assert_eq!(parts[0][0].name, "y");
        assert_eq!(floats(&parts[0][0].tensor), vec![7.0]);
        assert_eq!(parts[1][0].name, "z");
        let second: Vec<&[u8]> = bytes_codec::iter(parts[1][0].tensor.data())
            .map(Result::unwrap)
            .collect();
        assert_eq!(second, vec![b"".as_slice(), b"c", b"dd", b"e"]);
        assert_eq!(floats(&parts[1][1].tensor), vec![8.0, 9.0]);
    }

    #[test]
    fn rejects_outputs_that_lost_the_batch_dimension() {
        let a = request(1, &[0.0], &[]);
        let b = request(1, &[0.0], &[]);
        let y = Tensor::new(DataType::Fp32, vec![1], vec![0u8; 4].into()).unwrap();
        let err = scatter(
            &[NamedTensor::new("y", y)],
            &[&a, &b],
            true,
            &BatchLayout::default(),
        )
        .unwrap_err();
        assert!(err.contains("first dimension 1"), "{err}");
    }

    #[test]
    fn union_of_requested_outputs() {
        let a = request(1, &[0.0], &["y"]);
        let b = request(1, &[0.0], &["z", "y"]);
        assert_eq!(requested_outputs(&[&a, &b]), vec!["y", "z"]);
        let c = request(1, &[0.0], &[]);
        assert!(requested_outputs(&[&a, &c]).is_empty());
    }
}
