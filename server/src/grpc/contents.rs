//! Typed tensor contents (`InferTensorContents`) to the raw little-endian
//! layout that tensors carry. Each KServe data type has one typed field, as
//! in Triton: BOOL in `bool_contents`, INT8/INT16/INT32 in `int_contents`,
//! UINT8/UINT16/UINT32 in `uint_contents`, INT64, UINT64, FP32 and FP64 in
//! their own fields and BYTES in `bytes_contents`. FP16 and BF16 have no
//! typed field and must be sent raw. Values that do not fit the narrower
//! types are refused rather than truncated.

use bytes::{BufMut, Bytes, BytesMut};
use ferrite_backends::{bytes_codec, DataType};
use ferrite_proto::inference::InferTensorContents;

use crate::error::ServerError;

/// The typed field that holds elements of a data type (Triton's
/// `TRITONSERVER_DataType` names are the KServe names).
fn field_for(dtype: DataType) -> Option<&'static str> {
    Some(match dtype {
        DataType::Bool => "bool_contents",
        DataType::Int8 | DataType::Int16 | DataType::Int32 => "int_contents",
        DataType::Int64 => "int64_contents",
        DataType::Uint8 | DataType::Uint16 | DataType::Uint32 => "uint_contents",
        DataType::Uint64 => "uint64_contents",
        DataType::Fp32 => "fp32_contents",
        DataType::Fp64 => "fp64_contents",
        DataType::Bytes => "bytes_contents",
        DataType::Fp16 | DataType::Bf16 => return None,
    })
}

/// The field names that hold elements, with the data type each field
/// carries on its own, for error messages.
fn populated(contents: &InferTensorContents) -> Vec<(&'static str, &'static str)> {
    let mut fields = Vec::new();
    let mut note = |present: bool, field: &'static str, kind: &'static str| {
        if present {
            fields.push((field, kind));
        }
    };
    note(!contents.bool_contents.is_empty(), "bool_contents", "BOOL");
    note(!contents.int_contents.is_empty(), "int_contents", "INT32");
    note(
        !contents.int64_contents.is_empty(),
        "int64_contents",
        "INT64",
    );
    note(
        !contents.uint_contents.is_empty(),
        "uint_contents",
        "UINT32",
    );
    note(
        !contents.uint64_contents.is_empty(),
        "uint64_contents",
        "UINT64",
    );
    note(!contents.fp32_contents.is_empty(), "fp32_contents", "FP32");
    note(!contents.fp64_contents.is_empty(), "fp64_contents", "FP64");
    note(
        !contents.bytes_contents.is_empty(),
        "bytes_contents",
        "BYTES",
    );
    fields
}

/// Serializes the typed contents of input `input` of model `model`, declared
/// as `dtype`, into the raw layout of a tensor of that type.
pub(crate) fn to_raw(
    model: &str,
    input: &str,
    dtype: DataType,
    contents: &InferTensorContents,
) -> Result<Bytes, ServerError> {
    let fields = populated(contents);
    let Some(expected) = field_for(dtype) else {
        return Err(ServerError::invalid(format!(
            "input tensor '{input}' for model '{model}' has data type {dtype}, which has no typed contents field; send it in raw_input_contents"
        )));
    };
    if let Some((_, kind)) = fields.iter().find(|(field, _)| *field != expected) {
        return Err(ServerError::invalid(format!(
            "unexpected explicit tensor data for input tensor '{input}' for model '{model}' of type '{kind}', expected datatype '{dtype}'"
        )));
    }
    let narrow = |value: i128, min: i128, max: i128| {
        if (min..=max).contains(&value) {
            Ok(())
        } else {
            Err(ServerError::invalid(format!(
                "value {value} of input tensor '{input}' for model '{model}' is out of range for {dtype}"
            )))
        }
    };
    let mut out = BytesMut::new();
    match dtype {
        DataType::Bool => {
            out.reserve(contents.bool_contents.len());
            for &v in &contents.bool_contents {
                out.put_u8(u8::from(v));
            }
        }
        DataType::Int8 => {
            out.reserve(contents.int_contents.len());
            for &v in &contents.int_contents {
                narrow(v.into(), i8::MIN.into(), i8::MAX.into())?;
                out.put_slice(&v.to_le_bytes()[..1]);
            }
        }
        DataType::Int16 => {
            out.reserve(contents.int_contents.len() * 2);
            for &v in &contents.int_contents {
                narrow(v.into(), i16::MIN.into(), i16::MAX.into())?;
                out.put_slice(&v.to_le_bytes()[..2]);
            }
        }
        DataType::Int32 => put_all(&mut out, &contents.int_contents, |v| v.to_le_bytes()),
        DataType::Int64 => put_all(&mut out, &contents.int64_contents, |v| v.to_le_bytes()),
        DataType::Uint8 => {
            out.reserve(contents.uint_contents.len());
            for &v in &contents.uint_contents {
                narrow(v.into(), 0, u8::MAX.into())?;
                out.put_slice(&v.to_le_bytes()[..1]);
            }
        }
        DataType::Uint16 => {
            out.reserve(contents.uint_contents.len() * 2);
            for &v in &contents.uint_contents {
                narrow(v.into(), 0, u16::MAX.into())?;
                out.put_slice(&v.to_le_bytes()[..2]);
            }
        }
        DataType::Uint32 => put_all(&mut out, &contents.uint_contents, |v| v.to_le_bytes()),
        DataType::Uint64 => put_all(&mut out, &contents.uint64_contents, |v| v.to_le_bytes()),
        DataType::Fp32 => put_all(&mut out, &contents.fp32_contents, |v| v.to_le_bytes()),
        DataType::Fp64 => put_all(&mut out, &contents.fp64_contents, |v| v.to_le_bytes()),
        DataType::Bytes => {
            let total: usize = contents.bytes_contents.iter().map(|e| e.len() + 4).sum();
            out.reserve(total);
            for element in &contents.bytes_contents {
                if u32::try_from(element.len()).is_err() {
                    return Err(ServerError::invalid(format!(
                        "an element of input tensor '{input}' for model '{model}' is longer than 4 GiB"
                    )));
                }
                bytes_codec::push(&mut out, element);
            }
        }
        DataType::Fp16 | DataType::Bf16 => {}
    }
    Ok(out.freeze())
}

fn put_all<T: Copy, const N: usize>(out: &mut BytesMut, values: &[T], le: impl Fn(T) -> [u8; N]) {
    out.reserve(values.len() * N);
    for &v in values {
        out.put_slice(&le(v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(dtype: DataType, contents: InferTensorContents) -> Result<Bytes, ServerError> {
        to_raw("m", "x", dtype, &contents)
    }

    #[test]
    fn every_typed_field_serializes_little_endian() {
        let c = InferTensorContents {
            int_contents: vec![-2, 3],
            ..Default::default()
        };
        assert_eq!(raw(DataType::Int8, c.clone()).unwrap().as_ref(), &[0xfe, 3]);
        assert_eq!(
            raw(DataType::Int16, c.clone()).unwrap().as_ref(),
            &[0xfe, 0xff, 3, 0]
        );
        assert_eq!(raw(DataType::Int32, c).unwrap().len(), 8);
        let c = InferTensorContents {
            uint_contents: vec![255, 1],
            ..Default::default()
        };
        assert_eq!(raw(DataType::Uint8, c.clone()).unwrap().as_ref(), &[255, 1]);
        assert_eq!(raw(DataType::Uint16, c).unwrap().as_ref(), &[255, 0, 1, 0]);
        let c = InferTensorContents {
            bool_contents: vec![true, false],
            ..Default::default()
        };
        assert_eq!(raw(DataType::Bool, c).unwrap().as_ref(), &[1, 0]);
        let c = InferTensorContents {
            fp32_contents: vec![1.5],
            ..Default::default()
        };
        assert_eq!(
            raw(DataType::Fp32, c).unwrap().as_ref(),
            &1.5f32.to_le_bytes()
        );
        let c = InferTensorContents {
            fp64_contents: vec![-0.25],
            ..Default::default()
        };
        assert_eq!(
            raw(DataType::Fp64, c).unwrap().as_ref(),
            &(-0.25f64).to_le_bytes()
        );
        let c = InferTensorContents {
            int64_contents: vec![i64::MIN],
            ..Default::default()
        };
        assert_eq!(
            raw(DataType::Int64, c).unwrap().as_ref(),
            &i64::MIN.to_le_bytes()
        );
        let c = InferTensorContents {
            uint64_contents: vec![u64::MAX],
            ..Default::default()
        };
        assert_eq!(
            raw(DataType::Uint64, c).unwrap().as_ref(),
            &u64::MAX.to_le_bytes()
        );
        let c = InferTensorContents {
            bytes_contents: vec![b"ab".to_vec(), Vec::new()],
            ..Default::default()
        };
        assert_eq!(
            raw(DataType::Bytes, c).unwrap(),
            bytes_codec::encode([b"ab".as_slice(), b"".as_slice()])
        );
    }

    #[test]
    fn refuses_out_of_range_and_wrong_fields() {
        let c = InferTensorContents {
            int_contents: vec![128],
            ..Default::default()
        };
        let error = raw(DataType::Int8, c).unwrap_err();
        assert!(
            error.message.contains("out of range for INT8"),
            "{}",
            error.message
        );
        let c = InferTensorContents {
            uint_contents: vec![70000],
            ..Default::default()
        };
        assert!(raw(DataType::Uint16, c).is_err());
        let c = InferTensorContents {
            int_contents: vec![1],
            ..Default::default()
        };
        let error = raw(DataType::Fp32, c).unwrap_err();
        assert_eq!(
            error.message,
            "unexpected explicit tensor data for input tensor 'x' for model 'm' of type 'INT32', expected datatype 'FP32'"
        );
        let error = raw(DataType::Fp16, InferTensorContents::default()).unwrap_err();
        assert!(
            error.message.contains("raw_input_contents"),
            "{}",
            error.message
        );
    }

    #[test]
    fn empty_contents_are_an_empty_tensor() {
        assert!(raw(DataType::Fp32, InferTensorContents::default())
            .unwrap()
            .is_empty());
    }
}
