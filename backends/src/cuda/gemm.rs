//! Matrix products on cuBLAS.
//!
//! The engine's tensors are row-major, cuBLAS is column-major: a row-major
//! `[r, c]` matrix is, to cuBLAS, its `[c, r]` transpose. So `Y = A·B`
//! (row-major) is computed as `Yᵀ = Bᵀ·Aᵀ` (column-major): the operands are
//! swapped and each keeps its own transpose flag. [`column_major`] does that
//! mapping; it is checked on the CPU against a column-major reference of the
//! BLAS definition, and on the device by the self-test.
//!
//! Every product is one `cublasGemmStridedBatchedEx` call with FP32
//! accumulation (`CUBLAS_COMPUTE_32F`, no TF32), on FP32 or FP16 storage.

use std::ffi::{c_int, c_longlong, c_void};
use std::sync::Arc;

use cudarc::cublas::{result, sys, CudaBlas};
use ferrite_kernels::checks::{
    max_relative_difference, sample_values, CheckResult, F16_TOLERANCE, F32_TOLERANCE,
};
use ferrite_kernels::memory::{download, synchronize, upload, DeviceBuffer};
use ferrite_kernels::{ElementType, Gpu};

use super::schedule::GemmCall;

/// The arguments of the column-major call for a row-major [`GemmCall`]
/// (`first` is the row-major `b`, `second` the row-major `a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ColumnMajor {
    pub transpose_first: bool,
    pub transpose_second: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub ld_first: usize,
    pub ld_second: usize,
    pub ld_out: usize,
}

/// Maps a row-major product onto the column-major BLAS call.
pub(crate) fn column_major(call: &GemmCall) -> ColumnMajor {
    ColumnMajor {
        transpose_first: call.trans_b,
        transpose_second: call.trans_a,
        m: call.n,
        n: call.m,
        k: call.k,
        ld_first: if call.trans_b { call.k } else { call.n },
        ld_second: if call.trans_a { call.m } else { call.k },
        ld_out: call.n,
    }
}

/// Runs `call` on `blas`'s stream; `a`, `b` and `y` are device addresses.
///
/// # Safety
///
/// The addresses must hold the matrices `call` describes, in `element`
/// storage, until the stream reaches the call.
pub(crate) unsafe fn run(
    blas: &CudaBlas,
    element: ElementType,
    call: &GemmCall,
    a: u64,
    b: u64,
    y: u64,
) -> Result<(), String> {
    let data_type = match element {
        ElementType::F32 => sys::cudaDataType_t::CUDA_R_32F,
        ElementType::F16 => sys::cudaDataType_t::CUDA_R_16F,
        other => return Err(format!("matrix products on {other:?} are not supported")),
    };
    let cm = column_major(call);
    let int = |v: usize| c_int::try_from(v).map_err(|_| format!("matrix size {v} is too large"));
    let long =
        |v: usize| c_longlong::try_from(v).map_err(|_| format!("matrix stride {v} is too large"));
    let op = |t: bool| {
        if t {
            sys::cublasOperation_t::CUBLAS_OP_T
        } else {
            sys::cublasOperation_t::CUBLAS_OP_N
        }
    };
    let (alpha, beta) = (call.alpha, call.beta);
    result::gemm_strided_batched_ex(
        *blas.handle(),
        op(cm.transpose_first),
        op(cm.transpose_second),
        int(cm.m)?,
        int(cm.n)?,
        int(cm.k)?,
        (&alpha as *const f32).cast::<c_void>(),
        b as *const c_void,
        data_type,
        int(cm.ld_first)?,
        long(call.stride_b)?,
        a as *const c_void,
        data_type,
        int(cm.ld_second)?,
        long(call.stride_a)?,
        (&beta as *const f32).cast::<c_void>(),
        y as *mut c_void,
        data_type,
        int(cm.ld_out)?,
        long(call.stride_y)?,
        int(call.batch)?,
        sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
        sys::cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
    )
    .map_err(|e| format!("cublasGemmStridedBatchedEx: {e}"))
}

/// The row-major product on the CPU (the reference the engine's results
/// are held to), accumulating in `f32` in `k` order.
pub(crate) fn reference(call: &GemmCall, a: &[f32], b: &[f32], y: &mut [f32]) {
    for batch in 0..call.batch {
        let (a, b) = (&a[batch * call.stride_a..], &b[batch * call.stride_b..]);
        let y = &mut y[batch * call.stride_y..];
        for i in 0..call.m {
            for j in 0..call.n {
                let mut acc = 0.0f32;
                for p in 0..call.k {
                    let av = if call.trans_a {
                        a[p * call.m + i]
                    } else {
                        a[i * call.k + p]
                    };
                    let bv = if call.trans_b {
                        b[j * call.k + p]
                    } else {
                        b[p * call.n + j]
                    };
                    acc += av * bv;
                }
                let prior = if call.beta == 0.0 {
                    0.0
                } else {
                    call.beta * y[i * call.n + j]
                };
                y[i * call.n + j] = call.alpha * acc + prior;
            }
        }
    }
}

/// Checks [`run`] on the device against [`reference`]: every transpose
/// combination, two batched products, in FP32 and FP16 storage.
pub(crate) fn device_checks(gpu: &Arc<Gpu>) -> Vec<CheckResult> {
    let mut results = Vec::new();
    for (element, tolerance) in [
        (ElementType::F32, F32_TOLERANCE),
        (ElementType::F16, F16_TOLERANCE),
    ] {
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            let name = format!("cublas_gemm {element:?} transA={trans_a} transB={trans_b}");
            let outcome = device_check(gpu, element, trans_a, trans_b);
            results.push(match outcome {
                Ok(max_difference) => CheckResult {
                    name,
                    max_difference,
                    tolerance,
                    error: None,
                },
                Err(error) => CheckResult {
                    name,
                    max_difference: f64::INFINITY,
                    tolerance,
                    error: Some(error),
                },
            });
        }
    }
    results
}

fn device_check(
    gpu: &Arc<Gpu>,
    element: ElementType,
    trans_a: bool,
    trans_b: bool,
) -> Result<f64, String> {
    let (batch, m, n, k) = (2, 5, 3, 7);
    let call = GemmCall {
        a: 0,
        b: 1,
        y: 2,
        batch,
        m,
        n,
        k,
        trans_a,
        trans_b,
        alpha: 0.75,
        beta: 0.5,
        stride_a: m * k,
        stride_b: k * n,
        stride_y: m * n,
    };
    let narrow = |v: Vec<f32>| -> Vec<f32> {
        match element {
            ElementType::F16 => v
                .into_iter()
                .map(|x| half::f16::from_f32(x).to_f32())
                .collect(),
            _ => v,
        }
    };
    let a = narrow(sample_values(91, batch * m * k, -1.0, 1.0));
    let b = narrow(sample_values(92, batch * k * n, -1.0, 1.0));
    let y0 = narrow(sample_values(93, batch * m * n, -1.0, 1.0));
    let mut expected = y0.clone();
    reference(&call, &a, &b, &mut expected);
    let encode = |v: &[f32]| -> Vec<u8> {
        match element {
            ElementType::F16 => v
                .iter()
                .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
                .collect(),
            _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    };
    let e = |e: ferrite_kernels::KernelError| e.to_string();
    let stream = gpu.new_stream().map_err(e)?;
    let blas = CudaBlas::new(Arc::clone(&stream)).map_err(|e| e.to_string())?;
    let mut buffers = Vec::new();
    for data in [encode(&a), encode(&b), encode(&y0)] {
        let buffer = DeviceBuffer::zeroed(&stream, data.len()).map_err(e)?;
        // SAFETY: the buffer holds `data.len()` bytes; `data` is pageable.
        unsafe { upload(&stream, buffer.address(), &data) }.map_err(e)?;
        buffers.push(buffer);
    }
    // SAFETY: the buffers hold the matrices `call` describes.
    unsafe {
        run(
            &blas,
            element,
            &call,
            buffers[0].address(),
            buffers[1].address(),
            buffers[2].address(),
        )?
    };
    synchronize(&stream).map_err(e)?;
    let mut out = vec![0u8; buffers[2].len()];
    // SAFETY: the stream is idle; the destination is pageable, so the copy
    // completes before `download` returns.
    unsafe { download(&stream, &mut out, buffers[2].address()) }.map_err(e)?;
    synchronize(&stream).map_err(e)?;
    let actual: Vec<f64> = match element {
        ElementType::F16 => out
            .chunks_exact(2)
            .map(|c| f64::from(half::f16::from_le_bytes([c[0], c[1]]).to_f32()))
            .collect(),
        _ => out
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
    };
    let expected: Vec<f64> = expected.into_iter().map(f64::from).collect();
    Ok(max_relative_difference(&actual, &expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The BLAS definition, column-major: C = op(A)·op(B) with C m×n.
    #[allow(clippy::too_many_arguments)]
    fn blas(cm: &ColumnMajor, first: &[f32], second: &[f32], out: &mut [f32]) {
        for i in 0..cm.m {
            for j in 0..cm.n {
                let mut acc = 0.0;
                for p in 0..cm.k {
                    let f = if cm.transpose_first {
                        first[i * cm.ld_first + p]
                    } else {
                        first[p * cm.ld_first + i]
                    };
                    let s = if cm.transpose_second {
                        second[p * cm.ld_second + j]
                    } else {
                        second[j * cm.ld_second + p]
                    };
                    acc += f * s;
                }
                out[j * cm.ld_out + i] = acc;
            }
        }
    }

    #[test]
    fn column_major_call_computes_the_row_major_product() {
        let (m, n, k) = (3, 5, 4);
        let a: Vec<f32> = (0..m * k).map(|v| v as f32 * 0.5 - 2.0).collect();
        let b: Vec<f32> = (0..k * n).map(|v| (v % 7) as f32 - 3.0).collect();
        for (trans_a, trans_b) in [(false, false), (true, false), (false, true), (true, true)] {
            let call = GemmCall {
                a: 0,
                b: 1,
                y: 2,
                batch: 1,
                m,
                n,
                k,
                trans_a,
                trans_b,
                alpha: 1.0,
                beta: 0.0,
                stride_a: m * k,
                stride_b: k * n,
                stride_y: m * n,
            };
            let mut expected = vec![0.0; m * n];
            reference(&call, &a, &b, &mut expected);
            let mut actual = vec![0.0; m * n];
            blas(&column_major(&call), &b, &a, &mut actual);
            assert_eq!(actual, expected, "transA {trans_a} transB {trans_b}");
        }
    }

    #[test]
    fn reference_transposes_and_scales() {
        // A = [[1, 2], [3, 4]] stored transposed; B = identity; C = 1.
        let call = GemmCall {
            a: 0,
            b: 1,
            y: 2,
            batch: 1,
            m: 2,
            n: 2,
            k: 2,
            trans_a: true,
            trans_b: false,
            alpha: 2.0,
            beta: 1.0,
            stride_a: 4,
            stride_b: 4,
            stride_y: 4,
        };
        let mut y = vec![1.0; 4];
        reference(&call, &[1.0, 3.0, 2.0, 4.0], &[1.0, 0.0, 0.0, 1.0], &mut y);
        assert_eq!(y, vec![3.0, 5.0, 7.0, 9.0]);
    }
}
