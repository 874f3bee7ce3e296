//! Per-request size limits, checked from each input's declared shape before
//! its tensor data is decoded, so that a request cannot make the server
//! allocate more than the limits allow. Both front ends share them; a
//! request over a limit is refused as invalid (HTTP 400, gRPC
//! INVALID_ARGUMENT) with a message naming the limit and its flag.

use ferrite_backends::DataType;

use crate::error::ServerError;

/// Default `--max-tensor-elements`: a 64 MiB tensor of one-byte elements.
pub const DEFAULT_MAX_TENSOR_ELEMENTS: u64 = 64 * 1024 * 1024;

/// Default `--max-tensor-rank`.
pub const DEFAULT_MAX_TENSOR_RANK: usize = 32;

/// Default `--max-batch-bytes`: room for the tensors a 64 MiB JSON body
/// expands to (one-character numbers become 8-byte elements).
pub const DEFAULT_MAX_BATCH_BYTES: u64 = 256 * 1024 * 1024;

/// The limits one inference request's inputs must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most elements in one input tensor (`--max-tensor-elements`).
    pub max_tensor_elements: u64,
    /// Most dimensions of one input tensor (`--max-tensor-rank`).
    pub max_tensor_rank: usize,
    /// Most tensor bytes in all inputs of one request
    /// (`--max-batch-bytes`).
    pub max_batch_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_tensor_elements: DEFAULT_MAX_TENSOR_ELEMENTS,
            max_tensor_rank: DEFAULT_MAX_TENSOR_RANK,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
        }
    }
}

impl Limits {
    /// A budget for the inputs of one request.
    pub fn budget(&self) -> RequestBudget {
        RequestBudget {
            limits: *self,
            bytes: 0,
        }
    }
}

/// The limits of one request and the input bytes it has admitted so far.
#[derive(Debug)]
pub struct RequestBudget {
    limits: Limits,
    bytes: u64,
}

impl RequestBudget {
    /// Admits input `input` of type `dtype` declared with `shape`: checks its
    /// rank and element count and, for fixed-size types, adds its byte size
    /// to the request's total. Negative dimensions are left to the tensor
    /// decoder, which names them.
    pub fn admit(
        &mut self,
        input: &str,
        dtype: DataType,
        shape: &[i64],
    ) -> Result<(), ServerError> {
        let limits = &self.limits;
        if shape.len() > limits.max_tensor_rank {
            return Err(ServerError::invalid(format!(
                "input '{input}' has {} dimensions, more than the limit of {} (--max-tensor-rank)",
                shape.len(),
                limits.max_tensor_rank
            )));
        }
        let mut elements: u64 = 1;
        for &dim in shape {
            let Ok(dim) = u64::try_from(dim) else {
                return Ok(());
            };
            elements = elements.saturating_mul(dim);
        }
        if elements > limits.max_tensor_elements {
            return Err(ServerError::invalid(format!(
                "input '{input}' has shape {shape:?} of {elements} elements, more than the limit of {} (--max-tensor-elements)",
                limits.max_tensor_elements
            )));
        }
        if let Some(size) = dtype.element_size() {
            self.add(input, elements.saturating_mul(size as u64))?;
        }
        Ok(())
    }

    /// Adds the `bytes` of variable-size input `input` (BYTES), known once
    /// its data is decoded, to the request's total.
    pub fn add_variable(&mut self, input: &str, bytes: usize) -> Result<(), ServerError> {
        self.add(input, bytes as u64)
    }

    fn add(&mut self, input: &str, bytes: u64) -> Result<(), ServerError> {
        self.bytes = self.bytes.saturating_add(bytes);
        if self.bytes > self.limits.max_batch_bytes {
            return Err(ServerError::invalid(format!(
                "input '{input}' brings the request's tensors to {} bytes, more than the limit of {} (--max-batch-bytes)",
                self.bytes, self.limits.max_batch_bytes
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Limits {
        Limits {
            max_tensor_elements: 100,
            max_tensor_rank: 3,
            max_batch_bytes: 600,
        }
    }

    #[test]
    fn defaults_admit_a_64_mib_tensor() {
        let mut budget = Limits::default().budget();
        budget
            .admit("x", DataType::Uint8, &[64, 1024, 1024])
            .unwrap();
        budget
            .admit("y", DataType::Fp32, &[16, 1024, 1024])
            .unwrap();
    }

    #[test]
    fn rank_elements_and_bytes_are_checked() {
        let limits = small();
        let message = limits
            .budget()
            .admit("x", DataType::Fp32, &[1, 1, 1, 1])
            .unwrap_err()
            .message;
        assert!(
            message.contains("'x'") && message.contains("--max-tensor-rank"),
            "{message}"
        );
        let message = limits
            .budget()
            .admit("x", DataType::Fp32, &[i64::MAX, 2])
            .unwrap_err()
            .message;
        assert!(message.contains("--max-tensor-elements"), "{message}");
        let mut budget = limits.budget();
        budget.admit("a", DataType::Fp32, &[100]).unwrap();
        let message = budget
            .admit("b", DataType::Fp64, &[100])
            .unwrap_err()
            .message;
        assert!(
            message.contains("'b'")
                && message.contains("1200 bytes")
                && message.contains("--max-batch-bytes"),
            "{message}"
        );
    }

    #[test]
    fn variable_size_inputs_count_their_data() {
        let mut budget = small().budget();
        budget.admit("s", DataType::Bytes, &[100]).unwrap();
        budget.add_variable("s", 600).unwrap();
        let message = budget.add_variable("t", 1).unwrap_err().message;
        assert!(message.contains("--max-batch-bytes"), "{message}");
    }

    #[test]
    fn negative_dimensions_are_left_to_the_decoder() {
        small()
            .budget()
            .admit("x", DataType::Fp32, &[-1, 1000])
            .unwrap();
    }
}
