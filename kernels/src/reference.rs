//! CPU references of every kernel: pure functions computing what the device
//! computes, in the same order and with the same rounding steps (fused
//! multiply-adds where the kernels use `fmaf`, half-precision rounding to
//! nearest even). The device checks compare the two.

use half::f16;

use crate::params::{BinaryOp, Conv2dParams, Pool2dParams, PoolMode, Strided, UnaryOp};
use crate::segments::Segment;

/// A floating-point storage type: converted to `f32` for arithmetic.
pub trait Float: Copy + Default + PartialEq + std::fmt::Debug {
    /// The value as `f32`.
    fn to_f32(self) -> f32;
    /// The nearest value to `v` (ties to even).
    fn from_f32(v: f32) -> Self;
}

impl Float for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(v: f32) -> Self {
        v
    }
}

impl Float for f16 {
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
}

/// An integer storage type with wrapping arithmetic.
pub trait Integer: Copy + Default + PartialEq + std::fmt::Debug {
    /// `a op b`, wrapping; division truncates and gives 0 for a zero divisor.
    fn apply(op: BinaryOp, a: Self, b: Self) -> Self;
}

macro_rules! integer {
    ($t:ty) => {
        impl Integer for $t {
            fn apply(op: BinaryOp, a: Self, b: Self) -> Self {
                match op {
                    BinaryOp::Add => a.wrapping_add(b),
                    BinaryOp::Sub => a.wrapping_sub(b),
                    BinaryOp::Mul => a.wrapping_mul(b),
                    BinaryOp::Div if b == 0 => 0,
                    BinaryOp::Div => a.wrapping_div(b),
                }
            }
        }
    };
}
integer!(i32);
integer!(i64);

/// Copies each segment within `memory`, where a segment's `src` and `dst`
/// are byte offsets into it. Segments must not overlap.
pub fn copy_segments(memory: &mut [u8], segments: &[Segment]) {
    for s in segments {
        let (src, dst, len) = (s.src as usize, s.dst as usize, s.bytes as usize);
        memory.copy_within(src..src + len, dst);
    }
}

/// `x * scale + offset` for each byte, as one fused multiply-add.
pub fn u8_to_f32(src: &[u8], scale: f32, offset: f32) -> Vec<f32> {
    src.iter()
        .map(|&v| f32::from(v).mul_add(scale, offset))
        .collect()
}

/// Rounds each value to half precision.
pub fn f32_to_f16(src: &[f32]) -> Vec<f16> {
    src.iter().map(|&v| f16::from_f32(v)).collect()
}

/// Widens each half-precision value.
pub fn f16_to_f32(src: &[f16]) -> Vec<f32> {
    src.iter().map(|&v| v.to_f32()).collect()
}

fn unary_op(op: UnaryOp, x: f32) -> f32 {
    match op {
        UnaryOp::Identity => x,
        UnaryOp::Relu => {
            if x > 0.0 {
                x
            } else {
                0.0
            }
        }
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Tanh => x.tanh(),
    }
}

/// `op(x)` over the output `d` describes, reading `x` through `d.a`.
pub fn unary<T: Float>(x: &[T], d: &Strided, op: UnaryOp) -> Vec<T> {
    (0..d.len())
        .map(|i| T::from_f32(unary_op(op, x[d.offsets(i).0 as usize].to_f32())))
        .collect()
}

fn binary_op(op: BinaryOp, a: f32, b: f32) -> f32 {
    match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
    }
}

/// `a op b` over the output `d` describes, for floating-point storage.
pub fn binary_float<T: Float>(a: &[T], b: &[T], d: &Strided, op: BinaryOp) -> Vec<T> {
    (0..d.len())
        .map(|i| {
            let (oa, ob) = d.offsets(i);
            T::from_f32(binary_op(
                op,
                a[oa as usize].to_f32(),
                b[ob as usize].to_f32(),
            ))
        })
        .collect()
}

/// `a op b` over the output `d` describes, for integer storage.
pub fn binary_integer<I: Integer>(a: &[I], b: &[I], d: &Strided, op: BinaryOp) -> Vec<I> {
    (0..d.len())
        .map(|i| {
            let (oa, ob) = d.offsets(i);
            I::apply(op, a[oa as usize], b[ob as usize])
        })
        .collect()
}

/// Softmax over the middle axis of an `(outer, axis, inner)` view.
pub fn softmax<T: Float>(x: &[T], outer: usize, axis: usize, inner: usize) -> Vec<T> {
    let mut y = vec![T::default(); x.len()];
    for o in 0..outer {
        for j in 0..inner {
            let at = |k: usize| (o * axis + k) * inner + j;
            let mut m = x[at(0)].to_f32();
            for k in 1..axis {
                m = m.max(x[at(k)].to_f32());
            }
            let mut sum = 0.0f32;
            for k in 0..axis {
                sum += (x[at(k)].to_f32() - m).exp();
            }
            for k in 0..axis {
                y[at(k)] = T::from_f32((x[at(k)].to_f32() - m).exp() / sum);
            }
        }
    }
    y
}

/// The input coordinate a window position reads, or `None` in the padding.
fn source(out: u32, stride: u32, k: u32, dilation: u32, pad: u32, extent: u32) -> Option<usize> {
    let at =
        i64::from(out) * i64::from(stride) + i64::from(k) * i64::from(dilation) - i64::from(pad);
    (at >= 0 && at < i64::from(extent)).then_some(at as usize)
}

/// 2-D convolution; see [`Conv2dParams`] for the layouts.
pub fn conv2d<T: Float>(x: &[T], w: &[T], bias: Option<&[T]>, p: &Conv2dParams) -> Vec<T> {
    let (_, _, total) = p.lens();
    let cin_group = (p.c_in / p.groups) as usize;
    let cout_group = (p.c_out / p.groups) as usize;
    let (h, wd, kh, kw) = (p.h as usize, p.w as usize, p.kh as usize, p.kw as usize);
    let mut y = Vec::with_capacity(total);
    for b in 0..p.n as usize {
        for co in 0..p.c_out as usize {
            let g = co / cout_group;
            for oy in 0..p.oh {
                for ox in 0..p.ow {
                    let mut acc = bias.map_or(0.0, |bias| bias[co].to_f32());
                    for ci in 0..cin_group {
                        let plane = (b * p.c_in as usize + g * cin_group + ci) * h * wd;
                        let kernel = (co * cin_group + ci) * kh * kw;
                        for ky in 0..p.kh {
                            let Some(iy) = source(oy, p.stride_h, ky, p.dil_h, p.pad_h, p.h) else {
                                continue;
                            };
                            for kx in 0..p.kw {
                                let Some(ix) = source(ox, p.stride_w, kx, p.dil_w, p.pad_w, p.w)
                                else {
                                    continue;
                                };
                                let weight = w[kernel + ky as usize * kw + kx as usize].to_f32();
                                acc = x[plane + iy * wd + ix].to_f32().mul_add(weight, acc);
                            }
                        }
                    }
                    y.push(T::from_f32(acc));
                }
            }
        }
    }
    y
}

/// 2-D max or average pooling; see [`Pool2dParams`].
pub fn pool2d<T: Float>(x: &[T], p: &Pool2dParams) -> Vec<T> {
    let (_, total) = p.lens();
    let (h, wd) = (p.h as usize, p.w as usize);
    let mut y = Vec::with_capacity(total);
    for plane in 0..(p.n * p.c) as usize {
        for oy in 0..p.oh {
            for ox in 0..p.ow {
                let (mut best, mut sum, mut count) = (0.0f32, 0.0f32, 0u32);
                for ky in 0..p.kh {
                    let Some(iy) = source(oy, p.stride_h, ky, p.dil_h, p.pad_h, p.h) else {
                        continue;
                    };
                    for kx in 0..p.kw {
                        let Some(ix) = source(ox, p.stride_w, kx, p.dil_w, p.pad_w, p.w) else {
                            continue;
                        };
                        let v = x[plane * h * wd + iy * wd + ix].to_f32();
                        if count == 0 || v > best {
                            best = v;
                        }
                        sum += v;
                        count += 1;
                    }
                }
                let out = if p.mode == PoolMode::Max as u32 {
                    best
                } else if p.count_include_pad != 0 {
                    sum / (p.kh * p.kw) as f32
                } else {
                    sum / count as f32
                };
                y.push(T::from_f32(out));
            }
        }
    }
    y
}

/// The mean of each of `planes` contiguous planes of `size` elements.
pub fn global_average_pool<T: Float>(x: &[T], planes: usize, size: usize) -> Vec<T> {
    (0..planes)
        .map(|t| {
            let sum = x[t * size..(t + 1) * size]
                .iter()
                .fold(0.0f32, |acc, v| acc + v.to_f32());
            T::from_f32(sum / size as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_segments() {
        let mut memory: Vec<u8> = (0..16).collect();
        copy_segments(
            &mut memory,
            &[
                Segment {
                    src: 0,
                    dst: 8,
                    bytes: 3,
                },
                Segment {
                    src: 4,
                    dst: 12,
                    bytes: 2,
                },
            ],
        );
        assert_eq!(&memory[8..14], &[0, 1, 2, 11, 4, 5]);
    }

    #[test]
    fn converts() {
        assert_eq!(u8_to_f32(&[0, 255], 2.0, -1.0), vec![-1.0, 509.0]);
        let halves = f32_to_f16(&[1.0, 65504.0, 1e-8, 0.1]);
        assert_eq!(halves[0], f16::ONE);
        assert_eq!(halves[1], f16::MAX);
        assert_eq!(halves[2], f16::ZERO);
        assert_eq!(f16_to_f32(&halves)[3], f16::from_f32(0.1).to_f32());
    }

    #[test]
    fn element_wise_ops_broadcast() {
        let d = Strided::broadcast(&[2, 2], &[2, 2], &[2]).unwrap();
        let y = binary_float(&[1.0f32, 2.0, 3.0, 4.0], &[10.0, 20.0], &d, BinaryOp::Sub);
        assert_eq!(y, vec![-9.0, -18.0, -7.0, -16.0]);
        let y = binary_integer(&[7i32, -7, 1, 2], &[2, 0], &d, BinaryOp::Div);
        assert_eq!(y, vec![3, 0, 0, 0]);
        let y = unary(
            &[-1.0f32, 2.0],
            &Strided::unary(&[2], &[2]).unwrap(),
            UnaryOp::Relu,
        );
        assert_eq!(y, vec![0.0, 2.0]);
        let s = unary(
            &[0.0f32],
            &Strided::unary(&[1], &[1]).unwrap(),
            UnaryOp::Sigmoid,
        );
        assert_eq!(s, vec![0.5]);
    }

    #[test]
    fn softmax_normalises_the_axis() {
        let y = softmax(&[1.0f32, 1.0, 2.0, 0.0], 2, 2, 1);
        assert_eq!(y[0], 0.5);
        assert!((y[2] + y[3] - 1.0).abs() < 1e-6);
        assert!(y[2] > y[3]);
        let y = softmax(&[0.0f32, 5.0, 0.0, 5.0], 1, 2, 2);
        assert_eq!((y[0], y[2]), (0.5, 0.5));
    }

    #[test]
    fn convolution_with_padding_and_groups() {
        let p = Conv2dParams {
            n: 1,
            c_in: 2,
            h: 2,
            w: 2,
            c_out: 2,
            kh: 3,
            kw: 3,
            oh: 2,
            ow: 2,
            stride_h: 1,
            stride_w: 1,
            pad_h: 1,
            pad_w: 1,
            dil_h: 1,
            dil_w: 1,
            groups: 2,
            has_bias: 1,
        };
        let x = [1.0f32, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0];
        let mut w = [0.0f32; 18];
        w[4] = 1.0;
        w[9 + 8] = 1.0;
        let y = conv2d(&x, &w, Some(&[0.5, 0.0]), &p);
        assert_eq!(y, vec![1.5, 2.5, 3.5, 4.5, 40.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn pooling() {
        let p = Pool2dParams {
            n: 1,
            c: 1,
            h: 2,
            w: 3,
            kh: 2,
            kw: 2,
            oh: 1,
            ow: 2,
            stride_h: 2,
            stride_w: 2,
            pad_h: 0,
            pad_w: 1,
            dil_h: 1,
            dil_w: 1,
            mode: PoolMode::Max as u32,
            count_include_pad: 0,
        };
        let x = [1.0f32, 5.0, 2.0, 3.0, -1.0, 4.0];
        assert_eq!(pool2d(&x, &p), vec![3.0, 5.0]);
        let avg = Pool2dParams {
            mode: PoolMode::Average as u32,
            ..p
        };
        assert_eq!(pool2d(&x, &avg), vec![2.0, 2.5]);
        let with_pad = Pool2dParams {
            count_include_pad: 1,
            ..avg
        };
        assert_eq!(pool2d(&x, &with_pad), vec![1.0, 2.5]);
        assert_eq!(global_average_pool(&x, 2, 3), vec![8.0 / 3.0, 2.0]);
    }
}
