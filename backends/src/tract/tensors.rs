//! Converting between [`Tensor`]s and tract tensors.
//!
//! tract owns aligned buffers, so each input is copied once into one.
//! Outputs are not copied: the returned bytes keep tract's tensor alive and
//! point into it. BYTES travel as tract `String` tensors, which must hold
//! UTF-8. tract has no bfloat16 type.

use std::sync::Arc;

use bytes::Bytes;
use tract_onnx::prelude::{tract_ndarray, DatumType, IntoArcTensor, TValue};

use crate::{bytes_codec, DataType, Tensor};

/// The tract type for a protocol type; `None` for BF16.
pub(super) fn datum_type(dtype: DataType) -> Option<DatumType> {
    Some(match dtype {
        DataType::Bool => DatumType::Bool,
        DataType::Uint8 => DatumType::U8,
        DataType::Uint16 => DatumType::U16,
        DataType::Uint32 => DatumType::U32,
        DataType::Uint64 => DatumType::U64,
        DataType::Int8 => DatumType::I8,
        DataType::Int16 => DatumType::I16,
        DataType::Int32 => DatumType::I32,
        DataType::Int64 => DatumType::I64,
        DataType::Fp16 => DatumType::F16,
        DataType::Fp32 => DatumType::F32,
        DataType::Fp64 => DatumType::F64,
        DataType::Bytes => DatumType::String,
        DataType::Bf16 => return None,
    })
}

/// The protocol type for a tract type, if it has one.
pub(super) fn data_type(dt: DatumType) -> Option<DataType> {
    DataType::ALL
        .into_iter()
        .find(|&t| datum_type(t) == Some(dt))
}

/// Copies a tensor into a tract tensor of the given shape.
pub(super) fn to_tract(tensor: &Tensor, shape: &[usize]) -> Result<TValue, String> {
    let data: &[u8] = tensor.data();
    let converted = match tensor.dtype() {
        DataType::Bool => {
            let bools: Vec<bool> = data.iter().map(|&b| b != 0).collect();
            tract_onnx::prelude::Tensor::from_shape(shape, &bools)
        }
        DataType::Bytes => {
            let strings = bytes_codec::iter(data)
                .enumerate()
                .map(|(i, element)| {
                    let element = element?;
                    String::from_utf8(element.to_vec()).map_err(|_| {
                        format!("element {i} is not UTF-8, which tract's string tensors require")
                    })
                })
                .collect::<Result<Vec<String>, String>>()?;
            tract_ndarray::ArrayD::from_shape_vec(shape, strings)
                .map(tract_onnx::prelude::Tensor::from)
                .map_err(|e| e.into())
        }
        DataType::Bf16 => return Err("tract has no bfloat16 (BF16) support".to_string()),
        fixed => {
            let dt = datum_type(fixed).ok_or_else(|| format!("tract cannot hold {fixed}"))?;
            // SAFETY: `dt` is a plain numeric type (the match arms above take
            // the others), for which every bit pattern is a valid value, and
            // `from_raw_dt` checks that `data` holds exactly the elements of
            // `shape` before copying it.
            unsafe { tract_onnx::prelude::Tensor::from_raw_dt(dt, shape, data) }
        }
    };
    converted.map(TValue::from).map_err(|e| format!("{e:#}"))
}

/// The bytes of a plain tract tensor, keeping the tensor alive. (A Rust
/// `bool` is one byte holding 0 or 1, as BOOL is on the wire.)
struct TensorBytes(Arc<tract_onnx::prelude::Tensor>);

impl AsRef<[u8]> for TensorBytes {
    fn as_ref(&self) -> &[u8] {
        self.0
            .as_plain_ram_storage()
            .map_or(&[], |storage| storage.as_bytes())
    }
}

/// The type, shape and bytes (BYTES in the length-prefixed layout) of an
/// output.
pub(super) fn from_tract(value: TValue) -> Result<(DataType, Vec<i64>, Bytes), String> {
    let tensor = value.into_arc_tensor();
    let dt = tensor.datum_type();
    let dtype = data_type(dt)
        .ok_or_else(|| format!("has element type {dt:?}, which the protocol cannot carry"))?;
    let shape = tensor
        .shape()
        .iter()
        .map(|&d| i64::try_from(d).map_err(|_| format!("dimension {d} is too large")))
        .collect::<Result<Vec<i64>, String>>()?;
    let plain = tensor
        .try_as_plain_ram()
        .map_err(|e| format!("could not be read: {e:#}"))?;
    let data = match dtype {
        DataType::Bytes => {
            let strings = plain
                .as_slice::<String>()
                .map_err(|e| format!("could not be read: {e:#}"))?;
            bytes_codec::encode(strings.iter().map(|s| s.as_bytes()))
        }
        _ if tensor.as_plain_ram_storage().is_some() => {
            Bytes::from_owner(TensorBytes(Arc::clone(&tensor)))
        }
        _ => Bytes::copy_from_slice(plain.as_bytes()),
    };
    Ok((dtype, shape, data))
}
