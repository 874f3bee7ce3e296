//! Device checks: every kernel run on the GPU with deterministic inputs and
//! compared with its CPU reference. The device tests and `ferrite selftest
//! gpu` run the same checks.
//!
//! Differences are measured per output as the largest absolute difference
//! divided by the largest magnitude of the reference output (see
//! [`max_relative_difference`]). Copies, conversions and integer
//! arithmetic must match exactly; single-precision kernels within
//! [`F32_TOLERANCE`] (the device's `expf`/`tanhf` differ from the host's by
//! a few units in the last place); half-precision ones within
//! [`F16_TOLERANCE`] (one half-precision rounding step).

use std::sync::Arc;

use bytemuck::Pod;
use cudarc::driver::CudaStream;
use half::f16;

use crate::gpu::Gpu;
use crate::memory::{download, synchronize, upload, DeviceBuffer};
use crate::params::{
    BinaryOp, Conv2dParams, ElementType, Pool2dParams, PoolMode, Strided, UnaryOp,
};
use crate::reference::{self, Float};
use crate::segments::{gather_segments, scatter_segments, RowBlock, SegmentTable};
use crate::KernelError;

/// Allowed difference for single-precision kernels.
pub const F32_TOLERANCE: f64 = 1e-5;
/// Allowed difference for half-precision kernels.
pub const F16_TOLERANCE: f64 = 2e-3;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// What was checked, e.g. "softmax_f32".
    pub name: String,
    /// The measured difference (see [`max_relative_difference`]).
    pub max_difference: f64,
    /// The largest difference that passes.
    pub tolerance: f64,
    /// Why the check could not run, if it could not.
    pub error: Option<String>,
}

impl CheckResult {
    /// Whether the check ran and stayed within its tolerance.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.max_difference <= self.tolerance
    }
}

/// The largest absolute difference between `actual` and `expected`,
/// divided by the largest finite magnitude in `expected` (or by 1 when that
/// is below 1e-30). Non-finite values must match exactly (NaN matches NaN);
/// otherwise, and when the lengths differ, the difference is infinite.
pub fn max_relative_difference(actual: &[f64], expected: &[f64]) -> f64 {
    if actual.len() != expected.len() {
        return f64::INFINITY;
    }
    let scale = expected
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let scale = if scale < 1e-30 { 1.0 } else { scale };
    actual
        .iter()
        .zip(expected)
        .map(|(a, e)| {
            if a == e || (a.is_nan() && e.is_nan()) {
                0.0
            } else if a.is_finite() && e.is_finite() {
                (a - e).abs() / scale
            } else {
                f64::INFINITY
            }
        })
        .fold(0.0, f64::max)
}

/// Deterministic values in `[low, high)` (a linear congruential sequence).
pub fn sample_values(seed: u64, n: usize, low: f32, high: f32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let unit = (state >> 40) as f32 / (1u64 << 24) as f32;
            low + unit * (high - low)
        })
        .collect()
}

/// Device memory for one check, on its own stream.
struct Scratch {
    stream: Arc<CudaStream>,
    buffers: Vec<DeviceBuffer>,
}

impl Scratch {
    fn new(gpu: &Gpu) -> Result<Self, KernelError> {
        Ok(Self {
            stream: gpu.new_stream()?,
            buffers: Vec::new(),
        })
    }

    fn space(&mut self, bytes: usize) -> Result<u64, KernelError> {
        let buffer = DeviceBuffer::zeroed(&self.stream, bytes)?;
        let address = buffer.address();
        self.buffers.push(buffer);
        Ok(address)
    }

    fn put<T: Pod>(&mut self, data: &[T]) -> Result<u64, KernelError> {
        let bytes: &[u8] = bytemuck::cast_slice(data);
        let address = self.space(bytes.len())?;
        // SAFETY: the buffer was just allocated with `bytes.len()` bytes;
        // `bytes` is pageable, so the driver stages it before returning.
        unsafe { upload(&self.stream, address, bytes)? };
        Ok(address)
    }

    fn get<T: Pod>(&self, address: u64, n: usize) -> Result<Vec<T>, KernelError> {
        synchronize(&self.stream)?;
        let mut out = vec![T::zeroed(); n];
        // SAFETY: `address` is one of this scratch's buffers holding `n`
        // elements; the stream is idle and the destination is pageable, so
        // the copy has completed when `download` returns.
        unsafe { download(&self.stream, bytemuck::cast_slice_mut(&mut out), address)? };
        synchronize(&self.stream)?;
        Ok(out)
    }
}

fn widen<T: Float>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| f64::from(x.to_f32())).collect()
}

fn result(
    name: String,
    tolerance: f64,
    run: impl FnOnce() -> Result<f64, KernelError>,
) -> CheckResult {
    match run() {
        Ok(max_difference) => CheckResult {
            name,
            max_difference,
            tolerance,
            error: None,
        },
        Err(e) => CheckResult {
            name,
            max_difference: f64::INFINITY,
            tolerance,
            error: Some(e.to_string()),
        },
    }
}

/// Runs every kernel check on `gpu`.
pub fn run_all(gpu: &Gpu) -> Vec<CheckResult> {
    let mut results = vec![
        result("gather_scatter".into(), 0.0, || gather_scatter(gpu)),
        result("u8_to_f32".into(), 0.0, || u8_to_f32(gpu)),
        result("f32_f16_round_trip".into(), 0.0, || f16_round_trip(gpu)),
    ];
    for op in [
        UnaryOp::Identity,
        UnaryOp::Relu,
        UnaryOp::Sigmoid,
        UnaryOp::Tanh,
    ] {
        results.push(result(format!("unary_f32 {op:?}"), F32_TOLERANCE, || {
            unary::<f32>(gpu, ElementType::F32, op)
        }));
        results.push(result(format!("unary_f16 {op:?}"), F16_TOLERANCE, || {
            unary::<f16>(gpu, ElementType::F16, op)
        }));
    }
    for op in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div] {
        results.push(result(format!("binary_f32 {op:?}"), F32_TOLERANCE, || {
            binary_float::<f32>(gpu, ElementType::F32, op)
        }));
        results.push(result(format!("binary_f16 {op:?}"), F16_TOLERANCE, || {
            binary_float::<f16>(gpu, ElementType::F16, op)
        }));
        results.push(result(format!("binary_i32 {op:?}"), 0.0, || {
            binary_integer::<i32>(gpu, ElementType::I32, op)
        }));
        results.push(result(format!("binary_i64 {op:?}"), 0.0, || {
            binary_integer::<i64>(gpu, ElementType::I64, op)
        }));
    }
    results.push(result("softmax_f32".into(), F32_TOLERANCE, || {
        softmax::<f32>(gpu, ElementType::F32)
    }));
    results.push(result("softmax_f16".into(), F16_TOLERANCE, || {
        softmax::<f16>(gpu, ElementType::F16)
    }));
    results.push(result("conv2d_f32".into(), F32_TOLERANCE, || {
        conv2d::<f32>(gpu, ElementType::F32)
    }));
    results.push(result("conv2d_f16".into(), F16_TOLERANCE, || {
        conv2d::<f16>(gpu, ElementType::F16)
    }));
    for mode in [PoolMode::Max, PoolMode::Average] {
        results.push(result(
            format!("pool2d_f32 {mode:?}"),
            F32_TOLERANCE,
            || pool2d::<f32>(gpu, ElementType::F32, mode),
        ));
        results.push(result(
            format!("pool2d_f16 {mode:?}"),
            F16_TOLERANCE,
            || pool2d::<f16>(gpu, ElementType::F16, mode),
        ));
    }
    results.push(result(
        "global_average_pool_f32".into(),
        F32_TOLERANCE,
        || global_average_pool::<f32>(gpu, ElementType::F32),
    ));
    results.push(result(
        "global_average_pool_f16".into(),
        F16_TOLERANCE,
        || global_average_pool::<f16>(gpu, ElementType::F16),
    ));
    results
}

fn floats<T: Float>(seed: u64, n: usize, low: f32, high: f32) -> Vec<T> {
    sample_values(seed, n, low, high)
        .into_iter()
        .map(T::from_f32)
        .collect()
}

fn bytes_differ(actual: &[u8], expected: &[u8]) -> f64 {
    if actual == expected {
        0.0
    } else {
        f64::INFINITY
    }
}

fn gather_scatter(gpu: &Gpu) -> Result<f64, KernelError> {
    let mut s = Scratch::new(gpu)?;
    let row_bytes = 12u64;
    let rows = [3u64, 1, 5, 2];
    let total_rows: u64 = rows.iter().sum();
    let data: Vec<u8> = (0..total_rows * row_bytes)
        .map(|i| (i * 7 + 3) as u8)
        .collect();
    let mut sources = Vec::new();
    let mut at = 0usize;
    for &r in &rows {
        let len = (r * row_bytes) as usize;
        sources.push(RowBlock {
            address: s.put(&data[at..at + len])?,
            rows: r,
        });
        at += len;
    }
    let batch = s.space(data.len())?;
    let mut destinations = Vec::new();
    for &r in &rows {
        destinations.push(RowBlock {
            address: s.space((r * row_bytes) as usize)?,
            rows: r,
        });
    }
    let mut table = SegmentTable::new(gpu, &s.stream, rows.len())?;
    let mut segments = Vec::new();
    gather_segments(batch, &sources, row_bytes, &mut segments);
    // SAFETY: every address is a live buffer of this scratch with room for
    // the rows described; the segments do not overlap.
    unsafe { table.copy(gpu, &segments)? };
    let gathered: Vec<u8> = s.get(batch, data.len())?;
    segments.clear();
    scatter_segments(batch, &destinations, row_bytes, &mut segments);
    // SAFETY: as above.
    unsafe { table.copy(gpu, &segments)? };
    let mut scattered = Vec::new();
    for d in &destinations {
        scattered.extend(s.get::<u8>(d.address, (d.rows * row_bytes) as usize)?);
    }
    Ok(bytes_differ(&gathered, &data).max(bytes_differ(&scattered, &data)))
}

fn u8_to_f32(gpu: &Gpu) -> Result<f64, KernelError> {
    let mut s = Scratch::new(gpu)?;
    let src: Vec<u8> = (0..1000u32).map(|i| (i * 31 % 256) as u8).collect();
    let (scale, offset) = (1.0 / 255.0, -0.5);
    let x = s.put(&src)?;
    let y = s.space(src.len() * 4)?;
    // SAFETY: `x` holds the bytes, `y` room for as many floats.
    unsafe {
        gpu.kernels()
            .u8_to_f32(&s.stream, x, y, src.len() as u64, scale, offset)?
    };
    let actual: Vec<f32> = s.get(y, src.len())?;
    let expected = reference::u8_to_f32(&src, scale, offset);
    Ok(max_relative_difference(&widen(&actual), &widen(&expected)))
}

fn f16_round_trip(gpu: &Gpu) -> Result<f64, KernelError> {
    let mut s = Scratch::new(gpu)?;
    let mut src = sample_values(11, 4096, -70000.0, 70000.0);
    src.extend(sample_values(12, 4096, -1.0, 1.0));
    src.extend([0.0, -0.0, 1e-8, 65504.0, 65520.0, 6.1e-5, 5.96e-8]);
    let n = src.len();
    let x = s.put(&src)?;
    let halves = s.space(n * 2)?;
    let back = s.space(n * 4)?;
    // SAFETY: the buffers hold `n` elements of their types.
    unsafe {
        gpu.kernels()
            .convert_float(&s.stream, true, x, halves, n as u64)?;
        gpu.kernels()
            .convert_float(&s.stream, false, halves, back, n as u64)?;
    }
    let actual_halves: Vec<u16> = s.get(halves, n)?;
    let actual_back: Vec<f32> = s.get(back, n)?;
    let expected_halves = reference::f32_to_f16(&src);
    let expected_bits: Vec<u16> = expected_halves.iter().map(|h| h.to_bits()).collect();
    let expected_back = reference::f16_to_f32(&expected_halves);
    let halves_differ = if actual_halves == expected_bits {
        0.0
    } else {
        f64::INFINITY
    };
    Ok(halves_differ.max(max_relative_difference(
        &widen(&actual_back),
        &widen(&expected_back),
    )))
}

fn unary<T: Float + Pod>(gpu: &Gpu, ty: ElementType, op: UnaryOp) -> Result<f64, KernelError> {
    let mut s = Scratch::new(gpu)?;
    // A [5, 1, 7] input broadcast to [5, 3, 7].
    let input: Vec<T> = floats(21, 35, -4.0, 4.0);
    let d = Strided::unary(&[5, 3, 7], &[5, 1, 7])?;
    let x = s.put(&input)?;
    let y = s.space(d.len() as usize * ty.size())?;
    // SAFETY: `x` holds the [5, 1, 7] input, `y` room for the output.
    unsafe { gpu.kernels().unary(&s.stream, ty, x, y, &d, op)? };
    let actual: Vec<T> = s.get(y, d.len() as usize)?;
    let expected = reference::unary(&input, &d, op);
    Ok(max_relative_difference(&widen(&actual), &widen(&expected)))
}

fn binary_float<T: Float + Pod>(
    gpu: &Gpu,
    ty: ElementType,
    op: BinaryOp,
) -> Result<f64, KernelError> {
    let mut s = Scratch::new(gpu)?;
    let a_values: Vec<T> = floats(31, 4 * 6, -3.0, 3.0);
    let b_values: Vec<T> = floats(32, 6, 0.5, 2.0);
    let d = Strided::broadcast(&[4, 6], &[4, 6], &[6])?;
    let (a, b) = (s.put(&a_values)?, s.put(&b_values)?);
    let y = s.space(24 * ty.size())?;
    // SAFETY: the inputs hold [4, 6] and [6] elements, `y` room for 24.
    unsafe { gpu.kernels().binary(&s.stream, ty, a, b, y, &d, op)? };
    let actual: Vec<T> = s.get(y, 24)?;
    let expected = reference::binary_float(&a_values, &b_values, &d, op);
    Ok(max_relative_difference(&widen(&actual), &widen(&expected)))
}

fn binary_integer<I: reference::Integer + Pod + TryFrom<i32> + Into<i64>>(
    gpu: &Gpu,
    ty: ElementType,
    op: BinaryOp,
) -> Result<f64, KernelError> {
    let mut s = Scratch::new(gpu)?;
    let make = |seed, n| -> Vec<I> {
        sample_values(seed, n, -50.0, 50.0)
            .into_iter()
            .map(|v| I::try_from(v as i32).unwrap_or_default())
            .collect()
    };
    let a_values = make(41, 3 * 5);
    let b_values = make(42, 3);
    let d = Strided::broadcast(&[3, 5], &[3, 5], &[3, 1])?;
    let (a, b) = (s.put(&a_values)?, s.put(&b_values)?);
    let y = s.space(15 * ty.size())?;
    // SAFETY: the inputs hold [3, 5] and [3, 1] elements, `y` room for 15.
    unsafe { gpu.kernels().binary(&s.stream, ty, a, b, y, &d, op)? };
    let actual: Vec<I> = s.get(y, 15)?;
    let expected = reference::binary_integer(&a_values, &b_values, &d, op);
    let widen = |v: &[I]| v.iter().map(|&x| x.into() as f64).collect::<Vec<f64>>();
    Ok(max_relative_difference(&widen(&actual), &widen(&expected)))
}

fn softmax<T: Float + Pod>(gpu: &Gpu, ty: ElementType) -> Result<f64, KernelError> {
    let mut s = Scratch::new(gpu)?;
    let (outer, axis, inner) = (6usize, 10usize, 3usize);
    let input: Vec<T> = floats(51, outer * axis * inner, -6.0, 6.0);
    let x = s.put(&input)?;
    let y = s.space(input.len() * ty.size())?;
    // SAFETY: both buffers hold outer * axis * inner elements.
    unsafe {
        gpu.kernels()
            .softmax(&s.stream, ty, x, y, outer as u32, axis as u32, inner as u32)?
    };
    let actual: Vec<T> = s.get(y, input.len())?;
    let expected = reference::softmax(&input, outer, axis, inner);
    Ok(max_relative_difference(&widen(&actual), &widen(&expected)))
}

fn conv2d<T: Float + Pod>(gpu: &Gpu, ty: ElementType) -> Result<f64, KernelError> {
    let mut s = Scratch::new(gpu)?;
    let p = Conv2dParams {
        n: 2,
        c_in: 4,
        h: 9,
        w: 7,
        c_out: 6,
        kh: 3,
        kw: 2,
        oh: 5,
        ow: 4,
        stride_h: 2,
        stride_w: 2,
        pad_h: 1,
        pad_w: 1,
        dil_h: 1,
        dil_w: 1,
        groups: 2,
        has_bias: 1,
    };
    let (nx, nw, ny) = p.lens();
    let input: Vec<T> = floats(61, nx, -1.0, 1.0);
    let weights: Vec<T> = floats(62, nw, -0.5, 0.5);
    let bias_values: Vec<T> = floats(63, p.c_out as usize, -0.1, 0.1);
    let (x, w, b) = (s.put(&input)?, s.put(&weights)?, s.put(&bias_values)?);
    let y = s.space(ny * ty.size())?;
    // SAFETY: the buffers have the sizes `p.lens()` gives.
    unsafe { gpu.kernels().conv2d(&s.stream, ty, x, w, Some(b), y, &p)? };
    let actual: Vec<T> = s.get(y, ny)?;
    let expected = reference::conv2d(&input, &weights, Some(&bias_values), &p);
    Ok(max_relative_difference(&widen(&actual), &widen(&expected)))
}

fn pool2d<T: Float + Pod>(gpu: &Gpu, ty: ElementType, mode: PoolMode) -> Result<f64, KernelError> {
    let mut s = Scratch::new(gpu)?;
    let p = Pool2dParams {
        n: 2,
        c: 3,
        h: 8,
        w: 7,
        kh: 3,
        kw: 3,
        oh: 4,
        ow: 4,
        stride_h: 2,
        stride_w: 2,
        pad_h: 1,
        pad_w: 1,
        dil_h: 1,
        dil_w: 1,
        mode: mode as u32,
        count_include_pad: 0,
    };
    let (nx, ny) = p.lens();
    let input: Vec<T> = floats(71, nx, -5.0, 5.0);
    let x = s.put(&input)?;
    let y = s.space(ny * ty.size())?;
    // SAFETY: the buffers have the sizes `p.lens()` gives.
    unsafe { gpu.kernels().pool2d(&s.stream, ty, x, y, &p)? };
    let actual: Vec<T> = s.get(y, ny)?;
    let expected = reference::pool2d(&input, &p);
    Ok(max_relative_difference(&widen(&actual), &widen(&expected)))
}

fn global_average_pool<T: Float + Pod>(gpu: &Gpu, ty: ElementType) -> Result<f64, KernelError> {
    let mut s = Scratch::new(gpu)?;
    let (planes, size) = (12usize, 49usize);
    let input: Vec<T> = floats(81, planes * size, -2.0, 2.0);
    let x = s.put(&input)?;
    let y = s.space(planes * ty.size())?;
    // SAFETY: `x` holds planes * size elements, `y` room for `planes`.
    unsafe {
        gpu.kernels()
            .global_average_pool(&s.stream, ty, x, y, planes as u32, size as u32)?
    };
    let actual: Vec<T> = s.get(y, planes)?;
    let expected = reference::global_average_pool(&input, planes, size);
    Ok(max_relative_difference(&widen(&actual), &widen(&expected)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_difference_is_scaled_by_the_reference() {
        assert_eq!(max_relative_difference(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert_eq!(max_relative_difference(&[1.0, 2.5], &[1.0, 2.0]), 0.25);
        assert_eq!(max_relative_difference(&[1e-40], &[0.0]), 1e-40);
        assert!(max_relative_difference(&[f64::NAN], &[1.0]).is_infinite());
        assert!(max_relative_difference(&[1.0], &[1.0, 2.0]).is_infinite());
        assert_eq!(max_relative_difference(&[f64::NAN], &[f64::NAN]), 0.0);
        assert_eq!(
            max_relative_difference(&[f64::INFINITY, 1.0], &[f64::INFINITY, 2.0]),
            0.5
        );
        assert!(max_relative_difference(&[1.0], &[f64::INFINITY]).is_infinite());
    }

    #[test]
    fn samples_are_deterministic_and_in_range() {
        let a = sample_values(7, 100, -2.0, 3.0);
        assert_eq!(a, sample_values(7, 100, -2.0, 3.0));
        assert_ne!(a, sample_values(8, 100, -2.0, 3.0));
        assert!(a.iter().all(|v| (-2.0..3.0).contains(v)));
    }

    #[test]
    fn check_results_pass_within_tolerance_only() {
        let ok = CheckResult {
            name: "x".into(),
            max_difference: 1e-6,
            tolerance: F32_TOLERANCE,
            error: None,
        };
        assert!(ok.passed());
        assert!(!CheckResult {
            max_difference: 1.0,
            ..ok.clone()
        }
        .passed());
        assert!(!CheckResult {
            error: Some("no".into()),
            ..ok
        }
        .passed());
    }
}
