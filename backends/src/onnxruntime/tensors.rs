//! Converting between [`Tensor`]s and ONNX Runtime values.
//!
//! Fixed-size types are little-endian in both, so a request's bytes can be
//! handed to the session as they are: when they are aligned for their
//! element type the session reads them in place, otherwise they are copied
//! once into an aligned buffer.

use std::fmt::Debug;

use bytemuck::Pod;
use bytes::Bytes;
use half::{bf16, f16};
use ort::session::SessionInputValue;
use ort::value::{DynValue, PrimitiveTensorElementType, TensorElementType, TensorRef, ValueType};

use super::strings;
use crate::{DataType, Tensor};

/// The protocol type of an ONNX Runtime element type, if it has one.
pub(super) fn data_type(ty: TensorElementType) -> Option<DataType> {
    Some(match ty {
        TensorElementType::Bool => DataType::Bool,
        TensorElementType::Uint8 => DataType::Uint8,
        TensorElementType::Uint16 => DataType::Uint16,
        TensorElementType::Uint32 => DataType::Uint32,
        TensorElementType::Uint64 => DataType::Uint64,
        TensorElementType::Int8 => DataType::Int8,
        TensorElementType::Int16 => DataType::Int16,
        TensorElementType::Int32 => DataType::Int32,
        TensorElementType::Int64 => DataType::Int64,
        TensorElementType::Float16 => DataType::Fp16,
        TensorElementType::Bfloat16 => DataType::Bf16,
        TensorElementType::Float32 => DataType::Fp32,
        TensorElementType::Float64 => DataType::Fp64,
        TensorElementType::String => DataType::Bytes,
        _ => return None,
    })
}

/// Makes a session input from a tensor, with the shape the model expects.
pub(super) fn input_value(
    tensor: &Tensor,
    shape: Vec<i64>,
) -> Result<SessionInputValue<'_>, String> {
    let data: &[u8] = tensor.data();
    let value = match tensor.dtype() {
        DataType::Bool => {
            let bools: Vec<bool> = data.iter().map(|&b| b != 0).collect();
            ort::value::Tensor::from_array((shape, bools))
                .map(SessionInputValue::from)
                .map_err(|e| e.to_string())
        }
        DataType::Uint8 => view::<u8>(shape, data),
        DataType::Uint16 => view::<u16>(shape, data),
        DataType::Uint32 => view::<u32>(shape, data),
        DataType::Uint64 => view::<u64>(shape, data),
        DataType::Int8 => view::<i8>(shape, data),
        DataType::Int16 => view::<i16>(shape, data),
        DataType::Int32 => view::<i32>(shape, data),
        DataType::Int64 => view::<i64>(shape, data),
        DataType::Fp16 => view::<f16>(shape, data),
        DataType::Bf16 => view::<bf16>(shape, data),
        DataType::Fp32 => view::<f32>(shape, data),
        DataType::Fp64 => view::<f64>(shape, data),
        DataType::Bytes => strings::string_tensor(shape, data).map(SessionInputValue::from),
    }?;
    Ok(value)
}

/// A view over the bytes when they are aligned for `T`, else an aligned copy.
fn view<T>(shape: Vec<i64>, data: &[u8]) -> Result<SessionInputValue<'_>, String>
where
    T: Pod + PrimitiveTensorElementType + Debug,
{
    match bytemuck::try_cast_slice::<u8, T>(data) {
        Ok(elements) => TensorRef::from_array_view((shape, elements))
            .map(SessionInputValue::from)
            .map_err(|e| e.to_string()),
        Err(_) => {
            let mut aligned = vec![T::zeroed(); data.len() / std::mem::size_of::<T>()];
            bytemuck::cast_slice_mut::<T, u8>(&mut aligned).copy_from_slice(data);
            ort::value::Tensor::from_array((shape, aligned))
                .map(SessionInputValue::from)
                .map_err(|e| e.to_string())
        }
    }
}

/// The type, shape and bytes (BYTES in the length-prefixed layout) of an
/// output value.
pub(super) fn output_parts(value: &DynValue) -> Result<(DataType, Vec<i64>, Bytes), String> {
    let ValueType::Tensor { ty, shape, .. } = value.dtype() else {
        return Err(format!("is a {} value, not a tensor", value.dtype()));
    };
    let dtype = data_type(*ty)
        .ok_or_else(|| format!("has element type {ty:?}, which the protocol cannot carry"))?;
    let shape = shape.to_vec();
    let data = match dtype {
        DataType::Bool => {
            let (_, bools) = value
                .try_extract_tensor::<bool>()
                .map_err(|e| e.to_string())?;
            bools
                .iter()
                .map(|&b| u8::from(b))
                .collect::<Vec<u8>>()
                .into()
        }
        DataType::Uint8 => copy::<u8>(value)?,
        DataType::Uint16 => copy::<u16>(value)?,
        DataType::Uint32 => copy::<u32>(value)?,
        DataType::Uint64 => copy::<u64>(value)?,
        DataType::Int8 => copy::<i8>(value)?,
        DataType::Int16 => copy::<i16>(value)?,
        DataType::Int32 => copy::<i32>(value)?,
        DataType::Int64 => copy::<i64>(value)?,
        DataType::Fp16 => copy::<f16>(value)?,
        DataType::Bf16 => copy::<bf16>(value)?,
        DataType::Fp32 => copy::<f32>(value)?,
        DataType::Fp64 => copy::<f64>(value)?,
        DataType::Bytes => {
            let count = usize::try_from(shape.iter().product::<i64>())
                .map_err(|_| format!("has an invalid shape {shape:?}"))?;
            strings::read_strings(value, count)?
        }
    };
    Ok((dtype, shape, data))
}

fn copy<T>(value: &DynValue) -> Result<Bytes, String>
where
    T: Pod + PrimitiveTensorElementType,
{
    let (_, elements) = value.try_extract_tensor::<T>().map_err(|e| e.to_string())?;
    Ok(Bytes::copy_from_slice(bytemuck::cast_slice(elements)))
}
