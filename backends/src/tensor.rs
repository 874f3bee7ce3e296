//! A tensor as it travels through ferrite: type, shape and the raw bytes.
//!
//! The bytes are a [`Bytes`] so that a request body can be sliced into tensors
//! without copying. Fixed-size types are stored little-endian, row-major.
//! BYTES tensors use the protocol's binary layout: each element is a 4-byte
//! little-endian length followed by that many bytes.

use bytes::Bytes;

use crate::{bytes_codec, DataType};

/// Why a tensor could not be built from its parts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    #[error("shape {shape:?} has a negative dimension")]
    NegativeDim { shape: Vec<i64> },
    #[error("shape {shape:?} has too many elements")]
    TooManyElements { shape: Vec<i64> },
    #[error("{dtype} tensor of shape {shape:?} needs {expected} bytes, got {actual}")]
    ByteSize {
        dtype: DataType,
        shape: Vec<i64>,
        expected: usize,
        actual: usize,
    },
    #[error("BYTES tensor of shape {shape:?}: {reason}")]
    BadBytes { shape: Vec<i64>, reason: String },
}

/// Number of elements of a shape, rejecting negative dimensions and overflow.
pub fn element_count(shape: &[i64]) -> Result<usize, TensorError> {
    let mut count: usize = 1;
    for &d in shape {
        let d = usize::try_from(d).map_err(|_| TensorError::NegativeDim {
            shape: shape.to_vec(),
        })?;
        count = count
            .checked_mul(d)
            .ok_or_else(|| TensorError::TooManyElements {
                shape: shape.to_vec(),
            })?;
    }
    Ok(count)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    dtype: DataType,
    shape: Vec<i64>,
    data: Bytes,
}

impl Tensor {
    /// Builds a tensor after checking that `data` holds exactly the elements
    /// that `shape` calls for.
    pub fn new(dtype: DataType, shape: Vec<i64>, data: Bytes) -> Result<Self, TensorError> {
        let count = element_count(&shape)?;
        match dtype.element_size() {
            Some(size) => {
                let expected =
                    count
                        .checked_mul(size)
                        .ok_or_else(|| TensorError::TooManyElements {
                            shape: shape.clone(),
                        })?;
                if expected != data.len() {
                    return Err(TensorError::ByteSize {
                        dtype,
                        shape,
                        expected,
                        actual: data.len(),
                    });
                }
            }
            None => {
                let found =
                    bytes_codec::count_elements(&data).map_err(|reason| TensorError::BadBytes {
                        shape: shape.clone(),
                        reason,
                    })?;
                if found != count {
                    return Err(TensorError::BadBytes {
                        shape,
                        reason: format!("holds {found} elements, the shape needs {count}"),
                    });
                }
            }
        }
        Ok(Self { dtype, shape, data })
    }

    pub fn dtype(&self) -> DataType {
        self.dtype
    }

    pub fn shape(&self) -> &[i64] {
        &self.shape
    }

    /// The raw bytes (BYTES tensors in the length-prefixed layout).
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    pub fn into_parts(self) -> (DataType, Vec<i64>, Bytes) {
        (self.dtype, self.shape, self.data)
    }

    /// Number of elements; the shape was checked at construction.
    pub fn element_count(&self) -> usize {
        self.shape
            .iter()
            .map(|&d| usize::try_from(d).unwrap_or(0))
            .product()
    }
}

/// A tensor with the input or output name it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub tensor: Tensor,
}

impl NamedTensor {
    pub fn new(name: impl Into<String>, tensor: Tensor) -> Self {
        Self {
            name: name.into(),
            tensor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_byte_size() {
        let ok = Tensor::new(DataType::Fp32, vec![2, 2], Bytes::from(vec![0u8; 16]));
        assert!(ok.is_ok());
        let err = Tensor::new(DataType::Fp32, vec![2, 2], Bytes::from(vec![0u8; 15])).unwrap_err();
        assert!(err.to_string().contains("needs 16 bytes, got 15"), "{err}");
        let err = Tensor::new(DataType::Int8, vec![-1, 2], Bytes::new()).unwrap_err();
        assert!(matches!(err, TensorError::NegativeDim { .. }));
        let err = Tensor::new(DataType::Int8, vec![i64::MAX, 4], Bytes::new()).unwrap_err();
        assert!(matches!(err, TensorError::TooManyElements { .. }));
    }

    #[test]
    fn checks_bytes_elements() {
        let data = bytes_codec::encode([b"ab".as_slice(), b"".as_slice()]);
        let t = Tensor::new(DataType::Bytes, vec![2], data.clone()).unwrap();
        assert_eq!(t.element_count(), 2);
        let err = Tensor::new(DataType::Bytes, vec![3], data).unwrap_err();
        assert!(err.to_string().contains("holds 2 elements"), "{err}");
    }
}
