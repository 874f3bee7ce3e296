//! Deterministic inputs for a model, and the comparison of two engines'
//! outputs.

use bytes::Bytes;
use ferrite_backends::cuda::max_relative_difference;
use ferrite_backends::{DataType, NamedTensor, Tensor};
use ferrite_proto::inference::ModelConfig;

/// Size given to a variable dimension other than the batch dimension.
const VARIABLE_DIMENSION: i64 = 4;

/// Deterministic values in [-1, 1).
fn unit_values(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(1);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The bytes of `n` elements of `dtype` made from values in [-1, 1):
/// floats as they are, integers scaled to [-50, 50) (their absolute value
/// for unsigned types), booleans by sign. `None` for BYTES.
fn element_bytes(dtype: DataType, seed: u64, n: usize) -> Option<Vec<u8>> {
    let values = unit_values(seed, n);
    let int = |v: &f32| (v * 50.0) as i64;
    Some(match dtype {
        DataType::Fp32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DataType::Fp64 => values
            .iter()
            .flat_map(|v| f64::from(*v).to_le_bytes())
            .collect(),
        DataType::Fp16 => values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
        DataType::Bf16 => values
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect(),
        DataType::Bool => values.iter().map(|v| u8::from(*v > 0.0)).collect(),
        DataType::Int8 => values.iter().map(|v| int(v) as i8 as u8).collect(),
        DataType::Uint8 => values.iter().map(|v| int(v).unsigned_abs() as u8).collect(),
        DataType::Int16 => values
            .iter()
            .flat_map(|v| (int(v) as i16).to_le_bytes())
            .collect(),
        DataType::Uint16 => values
            .iter()
            .flat_map(|v| (int(v).unsigned_abs() as u16).to_le_bytes())
            .collect(),
        DataType::Int32 => values
            .iter()
            .flat_map(|v| (int(v) as i32).to_le_bytes())
            .collect(),
        DataType::Uint32 => values
            .iter()
            .flat_map(|v| (int(v).unsigned_abs() as u32).to_le_bytes())
            .collect(),
        DataType::Int64 => values.iter().flat_map(|v| int(v).to_le_bytes()).collect(),
        DataType::Uint64 => values
            .iter()
            .flat_map(|v| int(v).unsigned_abs().to_le_bytes())
            .collect(),
        DataType::Bytes => return None,
    })
}

/// One tensor per config input, for `batch` rows when the model batches.
pub fn inputs(config: &ModelConfig, batch: usize) -> Result<Vec<NamedTensor>, String> {
    let mut tensors = Vec::with_capacity(config.input.len());
    for (index, input) in config.input.iter().enumerate() {
        let dtype = ferrite_proto::inference::DataType::try_from(input.data_type)
            .ok()
            .and_then(DataType::from_config)
            .ok_or_else(|| format!("input '{}' has no valid data type", input.name))?;
        let mut shape: Vec<i64> = if config.max_batch_size > 0 {
            vec![batch as i64]
        } else {
            Vec::new()
        };
        shape.extend(
            input
                .dims
                .iter()
                .map(|&d| if d < 0 { VARIABLE_DIMENSION } else { d }),
        );
        let n = shape.iter().product::<i64>().max(0) as usize;
        let bytes = element_bytes(dtype, 1000 + index as u64, n)
            .ok_or_else(|| format!("input '{}' is BYTES, which the GPU cannot hold", input.name))?;
        let tensor = Tensor::new(dtype, shape, Bytes::from(bytes))
            .map_err(|e| format!("input '{}': {e}", input.name))?;
        tensors.push(NamedTensor::new(input.name.clone(), tensor));
    }
    Ok(tensors)
}

/// Each element as `f64`; `None` for BYTES.
fn widen(tensor: &Tensor) -> Option<Vec<f64>> {
    let data: &[u8] = tensor.data();
    macro_rules! le {
        ($t:ty, $n:expr) => {
            data.chunks_exact($n)
                .map(|c| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    <$t>::from_le_bytes(a) as f64
                })
                .collect()
        };
    }
    Some(match tensor.dtype() {
        DataType::Fp32 => le!(f32, 4),
        DataType::Fp64 => le!(f64, 8),
        DataType::Fp16 => data
            .chunks_exact(2)
            .map(|c| f64::from(half::f16::from_le_bytes([c[0], c[1]]).to_f32()))
            .collect(),
        DataType::Bf16 => data
            .chunks_exact(2)
            .map(|c| f64::from(half::bf16::from_le_bytes([c[0], c[1]]).to_f32()))
            .collect(),
        DataType::Bool | DataType::Uint8 => data.iter().map(|&b| f64::from(b)).collect(),
        DataType::Int8 => data.iter().map(|&b| f64::from(b as i8)).collect(),
        DataType::Int16 => le!(i16, 2),
        DataType::Uint16 => le!(u16, 2),
        DataType::Int32 => le!(i32, 4),
        DataType::Uint32 => le!(u32, 4),
        DataType::Int64 => le!(i64, 8),
        DataType::Uint64 => le!(u64, 8),
        DataType::Bytes => return None,
    })
}

/// Whether outputs of this type must match exactly.
pub fn exact(dtype: DataType) -> bool {
    !matches!(
        dtype,
        DataType::Fp32 | DataType::Fp64 | DataType::Fp16 | DataType::Bf16
    )
}

/// The largest difference (see [`max_relative_difference`]) over every
/// output of `expected`, and whether an exact-typed output differs at all.
/// An output missing from `actual`, or of another type or shape, is an
/// error naming it.
pub fn compare(actual: &[NamedTensor], expected: &[NamedTensor]) -> Result<(f64, bool), String> {
    let mut worst = 0.0f64;
    let mut exact_mismatch = false;
    for want in expected {
        let got = actual
            .iter()
            .find(|t| t.name == want.name)
            .ok_or_else(|| format!("output '{}' is missing", want.name))?;
        if got.tensor.dtype() != want.tensor.dtype() || got.tensor.shape() != want.tensor.shape() {
            return Err(format!(
                "output '{}' is {} {:?}, the CPU gives {} {:?}",
                want.name,
                got.tensor.dtype(),
                got.tensor.shape(),
                want.tensor.dtype(),
                want.tensor.shape()
            ));
        }
        let (Some(a), Some(b)) = (widen(&got.tensor), widen(&want.tensor)) else {
            return Err(format!(
                "output '{}' is BYTES and cannot be compared",
                want.name
            ));
        };
        let difference = max_relative_difference(&a, &b);
        if exact(want.tensor.dtype()) && difference != 0.0 {
            exact_mismatch = true;
        }
        worst = worst.max(difference);
    }
    Ok((worst, exact_mismatch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> ModelConfig {
        ferrite_repository::parse_pbtxt(text).unwrap()
    }

    #[test]
    fn inputs_are_deterministic_and_shaped() {
        let cfg = config(
            r#"name: "m" max_batch_size: 8
               input [ { name: "a" data_type: TYPE_FP32 dims: [ 3, -1 ] },
                       { name: "b" data_type: TYPE_UINT8 dims: [ 2 ] } ]"#,
        );
        let first = inputs(&cfg, 5).unwrap();
        assert_eq!(first[0].tensor.shape(), &[5, 3, 4]);
        assert_eq!(first[1].tensor.shape(), &[5, 2]);
        let again = inputs(&cfg, 5).unwrap();
        assert_eq!(first[0].tensor.data(), again[0].tensor.data());
        assert_ne!(first[0].tensor.data(), first[1].tensor.data());
        let bytes =
            config(r#"name: "m" input [ { name: "s" data_type: TYPE_STRING dims: [ 1 ] } ]"#);
        assert!(inputs(&bytes, 1).unwrap_err().contains("BYTES"));
    }

    #[test]
    fn compares_outputs_by_name_and_type() {
        let t = |name: &str, values: &[f32]| {
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            NamedTensor::new(
                name,
                Tensor::new(DataType::Fp32, vec![values.len() as i64], bytes.into()).unwrap(),
            )
        };
        let (d, exact_mismatch) = compare(&[t("y", &[1.0, 2.1])], &[t("y", &[1.0, 2.0])]).unwrap();
        assert!((d - 0.05).abs() < 1e-6 && !exact_mismatch);
        assert!(compare(&[t("z", &[1.0])], &[t("y", &[1.0])])
            .unwrap_err()
            .contains("'y' is missing"));
        let ints = |v: i32| {
            NamedTensor::new(
                "i",
                Tensor::new(DataType::Int32, vec![1], v.to_le_bytes().to_vec().into()).unwrap(),
            )
        };
        assert!(compare(&[ints(100_001)], &[ints(100_000)]).unwrap().1);
    }
}
