//! Building tensors element by element from typed values, with the range
//! checks the protocol implies, and reading elements back for JSON output.
//!
//! The JSON decoder feeds [`TensorBuilder`] while it parses `data`; a front
//! end with typed contents (gRPC's `InferTensorContents`) can feed it the
//! same way, so both reject the same values with the same messages.

use bytes::{BufMut, Bytes, BytesMut};
use ferrite_backends::{bytes_codec, DataType, Tensor};
use half::{bf16, f16};

use crate::error::ServerError;

/// Accumulates the elements of one tensor in its binary layout.
#[derive(Debug)]
pub struct TensorBuilder {
    dtype: DataType,
    data: BytesMut,
    count: usize,
}

impl TensorBuilder {
    /// A builder for `dtype`, with room for `capacity` elements (a hint
    /// only: the builder grows as needed).
    pub fn new(dtype: DataType, capacity: usize) -> Self {
        let bytes = capacity.saturating_mul(dtype.element_size().unwrap_or(8));
        Self {
            dtype,
            data: BytesMut::with_capacity(bytes),
            count: 0,
        }
    }

    /// The element type being built.
    pub fn dtype(&self) -> DataType {
        self.dtype
    }

    /// Number of elements pushed so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no element was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Appends a boolean; only BOOL tensors take booleans.
    pub fn push_bool(&mut self, value: bool) -> Result<(), ServerError> {
        if self.dtype != DataType::Bool {
            return Err(self.wrong_kind("a boolean"));
        }
        self.data.put_u8(u8::from(value));
        self.count += 1;
        Ok(())
    }

    /// Appends a signed integer, checking that it fits the element type.
    /// Floating-point tensors take integers as numbers.
    pub fn push_i64(&mut self, value: i64) -> Result<(), ServerError> {
        let out = &mut self.data;
        let fits = match self.dtype {
            DataType::Int8 => i8::try_from(value).map(|v| out.put_i8(v)).is_ok(),
            DataType::Int16 => i16::try_from(value).map(|v| out.put_i16_le(v)).is_ok(),
            DataType::Int32 => i32::try_from(value).map(|v| out.put_i32_le(v)).is_ok(),
            DataType::Int64 => {
                out.put_i64_le(value);
                true
            }
            DataType::Uint8 | DataType::Uint16 | DataType::Uint32 | DataType::Uint64 => {
                return match u64::try_from(value) {
                    Ok(unsigned) => self.push_u64(unsigned),
                    Err(_) => Err(self.out_of_range(value)),
                };
            }
            // Integers beyond 2^53 round, as they do in every JSON reader.
            DataType::Fp16 | DataType::Bf16 | DataType::Fp32 | DataType::Fp64 => {
                return self.push_f64(value as f64);
            }
            DataType::Bool | DataType::Bytes => return Err(self.wrong_kind("a number")),
        };
        if !fits {
            return Err(self.out_of_range(value));
        }
        self.count += 1;
        Ok(())
    }

    /// Appends an unsigned integer, checking that it fits the element type.
    pub fn push_u64(&mut self, value: u64) -> Result<(), ServerError> {
        let out = &mut self.data;
        let fits = match self.dtype {
            DataType::Uint8 => u8::try_from(value).map(|v| out.put_u8(v)).is_ok(),
            DataType::Uint16 => u16::try_from(value).map(|v| out.put_u16_le(v)).is_ok(),
            DataType::Uint32 => u32::try_from(value).map(|v| out.put_u32_le(v)).is_ok(),
            DataType::Uint64 => {
                out.put_u64_le(value);
                true
            }
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => {
                return match i64::try_from(value) {
                    Ok(signed) => self.push_i64(signed),
                    Err(_) => Err(self.out_of_range(value)),
                };
            }
            DataType::Fp16 | DataType::Bf16 | DataType::Fp32 | DataType::Fp64 => {
                return self.push_f64(value as f64);
            }
            DataType::Bool | DataType::Bytes => return Err(self.wrong_kind("a number")),
        };
        if !fits {
            return Err(self.out_of_range(value));
        }
        self.count += 1;
        Ok(())
    }

    /// Appends a floating-point value to a floating-point tensor. A finite
    /// value too large for a narrower type is out of range, not infinity.
    pub fn push_f64(&mut self, value: f64) -> Result<(), ServerError> {
        let out = &mut self.data;
        let fits = match self.dtype {
            DataType::Fp64 => {
                out.put_f64_le(value);
                true
            }
            DataType::Fp32 => {
                let narrow = value as f32;
                let fits = narrow.is_finite() || !value.is_finite();
                if fits {
                    out.put_f32_le(narrow);
                }
                fits
            }
            DataType::Fp16 => {
                let narrow = f16::from_f64(value);
                let fits = narrow.is_finite() || !value.is_finite();
                if fits {
                    out.put_u16_le(narrow.to_bits());
                }
                fits
            }
            DataType::Bf16 => {
                let narrow = bf16::from_f64(value);
                let fits = narrow.is_finite() || !value.is_finite();
                if fits {
                    out.put_u16_le(narrow.to_bits());
                }
                fits
            }
            DataType::Bool | DataType::Bytes => return Err(self.wrong_kind("a number")),
            _ => {
                return Err(ServerError::invalid(format!(
                    "expected an integer for {} data, got {value}",
                    self.dtype
                )))
            }
        };
        if !fits {
            return Err(self.out_of_range(value));
        }
        self.count += 1;
        Ok(())
    }

    /// Appends one element of a BYTES tensor.
    pub fn push_bytes(&mut self, value: &[u8]) -> Result<(), ServerError> {
        if self.dtype != DataType::Bytes {
            return Err(self.wrong_kind("a string"));
        }
        if u32::try_from(value.len()).is_err() {
            return Err(ServerError::invalid(format!(
                "a BYTES element of {} bytes is longer than the 4 GiB the protocol allows",
                value.len()
            )));
        }
        bytes_codec::push(&mut self.data, value);
        self.count += 1;
        Ok(())
    }

    /// The finished tensor; `shape` must call for exactly the elements
    /// pushed.
    pub fn finish(self, shape: Vec<i64>) -> Result<Tensor, ServerError> {
        let expected = ferrite_backends::element_count(&shape)
            .map_err(|e| ServerError::invalid(e.to_string()))?;
        if expected != self.count {
            return Err(ServerError::invalid(format!(
                "shape {shape:?} needs {expected} elements, but data holds {}",
                self.count
            )));
        }
        Tensor::new(self.dtype, shape, self.data.freeze())
            .map_err(|e| ServerError::invalid(e.to_string()))
    }

    fn wrong_kind(&self, got: &str) -> ServerError {
        let want = match self.dtype {
            DataType::Bool => "true or false",
            DataType::Bytes => "strings",
            _ => "numbers",
        };
        ServerError::invalid(format!("{} data must be {want}, got {got}", self.dtype))
    }

    fn out_of_range(&self, value: impl std::fmt::Display) -> ServerError {
        ServerError::invalid(format!("value {value} is out of range for {}", self.dtype))
    }
}

/// Builds a tensor from its binary layout (a slice of a request body or a
/// raw contents field), naming `input` in the error.
pub fn tensor_from_raw(
    input: &str,
    dtype: DataType,
    shape: Vec<i64>,
    data: Bytes,
) -> Result<Tensor, ServerError> {
    Tensor::new(dtype, shape, data)
        .map_err(|e| ServerError::invalid(format!("input '{input}': {e}")))
}

/// Parses a protocol datatype name ("FP32", "BYTES", ...), naming `input`
/// in the error.
pub fn parse_datatype(input: &str, datatype: &str) -> Result<DataType, ServerError> {
    DataType::from_kserve(datatype).ok_or_else(|| {
        ServerError::invalid(format!("input '{input}': {}", unknown_datatype(datatype)))
    })
}

/// The message for a datatype name the protocol does not define.
pub(crate) fn unknown_datatype(datatype: &str) -> String {
    format!(
        "unknown datatype '{datatype}'; expected one of {}",
        DataType::ALL.map(DataType::kserve_name).join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(
        dtype: DataType,
        push: impl FnOnce(&mut TensorBuilder) -> Result<(), ServerError>,
    ) -> Result<Tensor, ServerError> {
        let mut builder = TensorBuilder::new(dtype, 4);
        push(&mut builder)?;
        let n = i64::try_from(builder.len()).unwrap();
        builder.finish(vec![n])
    }

    #[test]
    fn integers_are_range_checked() {
        let t = build(DataType::Int8, |b| {
            b.push_i64(-128)?;
            b.push_u64(127)
        })
        .unwrap();
        assert_eq!(t.data().as_ref(), &[0x80, 0x7f]);
        let err = build(DataType::Int8, |b| b.push_i64(128)).unwrap_err();
        assert_eq!(err.message, "value 128 is out of range for INT8");
        let err = build(DataType::Uint16, |b| b.push_i64(-1)).unwrap_err();
        assert_eq!(err.message, "value -1 is out of range for UINT16");
        let err = build(DataType::Uint32, |b| b.push_u64(1 << 32)).unwrap_err();
        assert!(err.message.contains("out of range for UINT32"));
        let err = build(DataType::Int64, |b| b.push_u64(u64::MAX)).unwrap_err();
        assert!(err.message.contains("out of range for INT64"));
        let t = build(DataType::Uint64, |b| b.push_u64(u64::MAX)).unwrap();
        assert_eq!(t.data().as_ref(), &[0xff; 8]);
        let t = build(DataType::Int16, |b| b.push_i64(-2)).unwrap();
        assert_eq!(t.data().as_ref(), &(-2i16).to_le_bytes());
        let t = build(DataType::Int32, |b| b.push_i64(70000)).unwrap();
        assert_eq!(t.data().as_ref(), &70000i32.to_le_bytes());
    }

    #[test]
    fn floats_convert_and_check_range() {
        let t = build(DataType::Fp16, |b| {
            b.push_f64(1.5)?;
            b.push_i64(-2)
        })
        .unwrap();
        let mut want = f16::from_f32(1.5).to_le_bytes().to_vec();
        want.extend_from_slice(&f16::from_f32(-2.0).to_le_bytes());
        assert_eq!(t.data().as_ref(), want.as_slice());
        let t = build(DataType::Bf16, |b| b.push_f64(0.25)).unwrap();
        assert_eq!(t.data().as_ref(), &bf16::from_f32(0.25).to_le_bytes());
        let t = build(DataType::Fp64, |b| b.push_f64(0.1)).unwrap();
        assert_eq!(t.data().as_ref(), &0.1f64.to_le_bytes());
        let t = build(DataType::Fp32, |b| b.push_u64(3)).unwrap();
        assert_eq!(t.data().as_ref(), &3f32.to_le_bytes());
        let err = build(DataType::Fp16, |b| b.push_f64(1e6)).unwrap_err();
        assert_eq!(err.message, "value 1000000 is out of range for FP16");
        let err = build(DataType::Fp32, |b| b.push_f64(1e300)).unwrap_err();
        assert!(err.message.contains("out of range for FP32"));
        let err = build(DataType::Int32, |b| b.push_f64(1.5)).unwrap_err();
        assert_eq!(err.message, "expected an integer for INT32 data, got 1.5");
    }

    #[test]
    fn kinds_must_match() {
        let t = build(DataType::Bool, |b| {
            b.push_bool(true)?;
            b.push_bool(false)
        })
        .unwrap();
        assert_eq!(t.data().as_ref(), &[1, 0]);
        let err = build(DataType::Bool, |b| b.push_i64(1)).unwrap_err();
        assert_eq!(err.message, "BOOL data must be true or false, got a number");
        let err = build(DataType::Fp32, |b| b.push_bool(true)).unwrap_err();
        assert_eq!(err.message, "FP32 data must be numbers, got a boolean");
        let err = build(DataType::Int8, |b| b.push_bytes(b"x")).unwrap_err();
        assert_eq!(err.message, "INT8 data must be numbers, got a string");
        let err = build(DataType::Bytes, |b| b.push_f64(1.0)).unwrap_err();
        assert_eq!(err.message, "BYTES data must be strings, got a number");
    }

    #[test]
    fn bytes_use_the_length_prefixed_layout() {
        let t = build(DataType::Bytes, |b| {
            b.push_bytes(b"ab")?;
            b.push_bytes(b"")
        })
        .unwrap();
        assert_eq!(t.data().as_ref(), &[2, 0, 0, 0, b'a', b'b', 0, 0, 0, 0]);
    }

    #[test]
    fn finish_checks_the_element_count() {
        let mut b = TensorBuilder::new(DataType::Int32, 0);
        b.push_i64(1).unwrap();
        let err = b.finish(vec![1, 2]).unwrap_err();
        assert_eq!(
            err.message,
            "shape [1, 2] needs 2 elements, but data holds 1"
        );
        let err = TensorBuilder::new(DataType::Int32, 0)
            .finish(vec![-1])
            .unwrap_err();
        assert!(
            err.message.contains("negative dimension"),
            "{}",
            err.message
        );
    }

    #[test]
    fn raw_tensors_and_datatypes_name_the_input() {
        let err =
            tensor_from_raw("X", DataType::Fp32, vec![2], Bytes::from_static(&[0; 7])).unwrap_err();
        assert_eq!(
            err.message,
            "input 'X': FP32 tensor of shape [2] needs 8 bytes, got 7"
        );
        assert_eq!(parse_datatype("X", "BF16").unwrap(), DataType::Bf16);
        let err = parse_datatype("X", "FLOAT").unwrap_err();
        assert!(err
            .message
            .starts_with("input 'X': unknown datatype 'FLOAT'; expected one of BOOL, UINT8"));
    }
}
