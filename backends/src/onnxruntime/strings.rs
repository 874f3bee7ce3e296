//! ONNX string tensors holding arbitrary bytes.
//!
//! BYTES elements may hold any bytes, NULs and invalid UTF-8 included, while
//! the `ort` crate's string helpers go through UTF-8 `String`s and C strings.
//! These two functions use ONNX Runtime's length-aware C API instead
//! (`GetResizedStringTensorElementBuffer`, `GetStringTensorContent`), so
//! every element travels unchanged.

use std::ffi::c_char;
use std::ptr;

use bytes::{Bytes, BytesMut};
use ort::memory::Allocator;
use ort::value::{DynTensor, DynValue, TensorElementType};
use ort::AsPointer;

use crate::bytes_codec;

/// Builds a string tensor from elements in the length-prefixed layout.
pub(super) fn string_tensor(shape: Vec<i64>, data: &[u8]) -> Result<DynTensor, String> {
    let expected = usize::try_from(shape.iter().product::<i64>())
        .map_err(|_| format!("invalid shape {shape:?}"))?;
    let mut tensor = DynTensor::new(&Allocator::default(), TensorElementType::String, shape)
        .map_err(|e| e.to_string())?;
    let value = tensor.ptr_mut();
    let mut count = 0;
    for (index, element) in bytes_codec::iter(data).enumerate() {
        let element = element?;
        if index >= expected {
            return Err(format!(
                "holds more than the {expected} elements of its shape"
            ));
        }
        let mut buffer: *mut c_char = ptr::null_mut();
        // SAFETY: `value` is the live string tensor created above, `index` is
        // within its element count, and ONNX Runtime resizes that element to
        // `element.len()` bytes and returns its buffer, which stays valid
        // until the tensor is changed or released.
        let status = unsafe {
            (ort::api().GetResizedStringTensorElementBuffer)(
                value,
                index,
                element.len(),
                &mut buffer,
            )
        };
        // SAFETY: the status comes straight from the call above.
        unsafe { ort::Error::result_from_status(status) }.map_err(|e| e.to_string())?;
        if !element.is_empty() {
            if buffer.is_null() {
                return Err(format!("ONNX Runtime gave no buffer for element {index}"));
            }
            // SAFETY: `buffer` holds exactly `element.len()` writable bytes and
            // cannot overlap the request's bytes.
            unsafe {
                ptr::copy_nonoverlapping(element.as_ptr(), buffer.cast::<u8>(), element.len())
            };
        }
        count += 1;
    }
    if count != expected {
        return Err(format!(
            "holds {count} elements, its shape needs {expected}"
        ));
    }
    Ok(tensor)
}

/// Reads the `count` elements of a string tensor into the length-prefixed
/// layout.
pub(super) fn read_strings(value: &DynValue, count: usize) -> Result<Bytes, String> {
    if count == 0 {
        return Ok(Bytes::new());
    }
    let mut total = 0usize;
    // SAFETY: `value` is a live string tensor (its element type was checked
    // by the caller) and `total` is a valid place for the result.
    let status = unsafe { (ort::api().GetStringTensorDataLength)(value.ptr(), &mut total) };
    // SAFETY: the status comes straight from the call above.
    unsafe { ort::Error::result_from_status(status) }.map_err(|e| e.to_string())?;
    let mut content = vec![0u8; total];
    let mut offsets = vec![0usize; count];
    // SAFETY: `content` has room for the `total` bytes and `offsets` for the
    // `count` offsets that ONNX Runtime writes.
    let status = unsafe {
        (ort::api().GetStringTensorContent)(
            value.ptr(),
            content.as_mut_ptr().cast(),
            total,
            offsets.as_mut_ptr(),
            count,
        )
    };
    // SAFETY: the status comes straight from the call above.
    unsafe { ort::Error::result_from_status(status) }.map_err(|e| e.to_string())?;
    let mut out = BytesMut::with_capacity(total + 4 * count);
    for (i, &start) in offsets.iter().enumerate() {
        let end = offsets.get(i + 1).copied().unwrap_or(total);
        let element = content
            .get(start..end)
            .ok_or_else(|| format!("ONNX Runtime gave an invalid offset for element {i}"))?;
        bytes_codec::push(&mut out, element);
    }
    Ok(out.freeze())
}
