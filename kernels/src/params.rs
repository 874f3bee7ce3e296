//! Kernel parameters shared by the device launches and the CPU references:
//! element types, operator codes, and the `#[repr(C)]` structs passed to the
//! kernels by value (their layouts match the structs in `cu/`).

use cudarc::driver::DeviceRepr;

use crate::KernelError;

/// Most dimensions an element-wise kernel handles.
pub const MAX_RANK: usize = 6;

/// How the kernels store a tensor's elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ElementType {
    /// IEEE single precision.
    F32,
    /// IEEE half precision (arithmetic happens in single precision).
    F16,
    /// 32-bit signed integer.
    I32,
    /// 64-bit signed integer.
    I64,
}

impl ElementType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            ElementType::F16 => 2,
            ElementType::F32 | ElementType::I32 => 4,
            ElementType::I64 => 8,
        }
    }

    /// Whether the type is floating point.
    pub fn is_float(self) -> bool {
        matches!(self, ElementType::F32 | ElementType::F16)
    }
}

/// Element-wise functions of one input (codes as in `elementwise.cu`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum UnaryOp {
    /// `y = x` (a broadcasting copy).
    Identity = 0,
    /// `y = max(x, 0)`.
    Relu = 1,
    /// `y = 1 / (1 + e^-x)`.
    Sigmoid = 2,
    /// `y = tanh(x)`.
    Tanh = 3,
}

/// Element-wise functions of two inputs (codes as in `elementwise.cu`).
/// Integer division truncates and gives 0 for a zero divisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum BinaryOp {
    /// `a + b`.
    Add = 0,
    /// `a - b`.
    Sub = 1,
    /// `a * b`.
    Mul = 2,
    /// `a / b`.
    Div = 3,
}

/// A contiguous output of up to [`MAX_RANK`] dimensions and the element
/// strides through which each of (up to) two inputs is read; a stride is 0
/// on a dimension the input broadcasts.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Strided {
    /// Number of dimensions in use.
    pub rank: u32,
    /// The output's dimensions.
    pub shape: [u32; MAX_RANK],
    /// Strides of the first input.
    pub a: [u32; MAX_RANK],
    /// Strides of the second input.
    pub b: [u32; MAX_RANK],
}

// SAFETY: plain `#[repr(C)]` struct of `u32`s, laid out as `struct Strided`
// in `common.cuh`.
unsafe impl DeviceRepr for Strided {}

/// The shape two inputs broadcast to (numpy rules), or `None` when they do
/// not broadcast.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let dim = |shape: &[usize], k: usize| {
        (k + shape.len())
            .checked_sub(rank)
            .map_or(1, |index| shape[index])
    };
    (0..rank)
        .map(|k| match (dim(a, k), dim(b, k)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

fn to_u32(value: usize, what: &str) -> Result<u32, KernelError> {
    u32::try_from(value).map_err(|_| {
        KernelError::InvalidArgument(format!("{what} {value} exceeds the kernels' 32-bit limit"))
    })
}

/// Contiguous strides of `input` read as `out` (right-aligned), 0 where it
/// broadcasts.
fn input_strides(out: &[usize], input: &[usize]) -> Result<[u32; MAX_RANK], KernelError> {
    let mut strides = [0u32; MAX_RANK];
    if input.len() > out.len() {
        return Err(KernelError::InvalidArgument(format!(
            "shape {input:?} has more dimensions than the output {out:?}"
        )));
    }
    let offset = out.len() - input.len();
    let mut stride = 1usize;
    for (k, &d) in input.iter().enumerate().rev() {
        let target = out[offset + k];
        if d == target {
            strides[offset + k] = to_u32(stride, "stride")?;
        } else if d != 1 {
            return Err(KernelError::InvalidArgument(format!(
                "shape {input:?} does not broadcast to {out:?}"
            )));
        }
        stride = stride.saturating_mul(d);
    }
    Ok(strides)
}

impl Strided {
    /// An output of shape `out` reading inputs of shapes `a` and `b`.
    pub fn broadcast(out: &[usize], a: &[usize], b: &[usize]) -> Result<Self, KernelError> {
        if out.len() > MAX_RANK {
            return Err(KernelError::InvalidArgument(format!(
                "shape {out:?} has more than {MAX_RANK} dimensions"
            )));
        }
        to_u32(out.iter().product(), "element count")?;
        let mut shape = [1u32; MAX_RANK];
        for (k, &d) in out.iter().enumerate() {
            shape[k] = to_u32(d, "dimension")?;
        }
        Ok(Self {
            rank: out.len() as u32,
            shape,
            a: input_strides(out, a)?,
            b: input_strides(out, b)?,
        })
    }

    /// An output of shape `out` reading one input of shape `a`.
    pub fn unary(out: &[usize], a: &[usize]) -> Result<Self, KernelError> {
        Self::broadcast(out, a, &[])
    }

    /// Number of output elements.
    pub fn len(&self) -> u64 {
        self.shape[..self.rank as usize]
            .iter()
            .map(|&d| u64::from(d))
            .product()
    }

    /// Whether the output has no element.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element offsets into the two inputs of output element `i`, as the
    /// kernels compute them.
    pub fn offsets(&self, mut i: u64) -> (u64, u64) {
        let (mut oa, mut ob) = (0, 0);
        for k in (0..self.rank as usize).rev() {
            let extent = u64::from(self.shape[k]);
            let c = i % extent;
            i /= extent;
            oa += c * u64::from(self.a[k]);
            ob += c * u64::from(self.b[k]);
        }
        (oa, ob)
    }
}

/// A 2-D convolution over NCHW data, as `struct Conv2d` in `nn.cu`.
/// Weights are `[c_out, c_in / groups, kh, kw]`, the bias `[c_out]`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Conv2dParams {
    pub n: u32,
    pub c_in: u32,
    pub h: u32,
    pub w: u32,
    pub c_out: u32,
    pub kh: u32,
    pub kw: u32,
    pub oh: u32,
    pub ow: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    /// Padding before the first row.
    pub pad_h: u32,
    /// Padding before the first column.
    pub pad_w: u32,
    pub dil_h: u32,
    pub dil_w: u32,
    pub groups: u32,
    /// 1 when a bias is given.
    pub has_bias: u32,
}

// SAFETY: plain `#[repr(C)]` struct of `u32`s, laid out as `struct Conv2d`.
unsafe impl DeviceRepr for Conv2dParams {}

impl Conv2dParams {
    /// Elements of the input, weights and output.
    pub fn lens(&self) -> (usize, usize, usize) {
        let p = |v: &[u32]| v.iter().map(|&d| d as usize).product::<usize>();
        let groups = self.groups.max(1);
        (
            p(&[self.n, self.c_in, self.h, self.w]),
            p(&[self.c_out, self.c_in / groups, self.kh, self.kw]),
            p(&[self.n, self.c_out, self.oh, self.ow]),
        )
    }

    /// Checks the parameters the kernel relies on.
    pub fn validate(&self) -> Result<(), KernelError> {
        let bad = |why: &str| Err(KernelError::InvalidArgument(format!("conv2d: {why}")));
        if self.groups == 0
            || !self.c_in.is_multiple_of(self.groups)
            || !self.c_out.is_multiple_of(self.groups)
        {
            return bad("channels must divide into the groups");
        }
        if self.stride_h == 0 || self.stride_w == 0 || self.dil_h == 0 || self.dil_w == 0 {
            return bad("strides and dilations must be positive");
        }
        let (_, _, out) = self.lens();
        to_u32(out, "output element count").map(|_| ())
    }
}

/// How [`Pool2dParams`] reduces a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum PoolMode {
    /// The largest element.
    Max = 0,
    /// The mean.
    Average = 1,
}

/// A 2-D pooling over NCHW data, as `struct Pool2d` in `nn.cu`. Pads must
/// be smaller than the (dilated) window so that no window is all padding.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pool2dParams {
    pub n: u32,
    pub c: u32,
    pub h: u32,
    pub w: u32,
    pub kh: u32,
    pub kw: u32,
    pub oh: u32,
    pub ow: u32,
    pub stride_h: u32,
    pub stride_w: u32,
    pub pad_h: u32,
    pub pad_w: u32,
    pub dil_h: u32,
    pub dil_w: u32,
    /// A [`PoolMode`] code.
    pub mode: u32,
    /// 1: averages divide by the window size, padding included.
    pub count_include_pad: u32,
}

// SAFETY: plain `#[repr(C)]` struct of `u32`s, laid out as `struct Pool2d`.
unsafe impl DeviceRepr for Pool2dParams {}

impl Pool2dParams {
    /// Elements of the input and output.
    pub fn lens(&self) -> (usize, usize) {
        let p = |v: &[u32]| v.iter().map(|&d| d as usize).product::<usize>();
        (
            p(&[self.n, self.c, self.h, self.w]),
            p(&[self.n, self.c, self.oh, self.ow]),
        )
    }

    /// Checks the parameters the kernel relies on.
    pub fn validate(&self) -> Result<(), KernelError> {
        let bad = |why: &str| Err(KernelError::InvalidArgument(format!("pool2d: {why}")));
        if self.stride_h == 0 || self.stride_w == 0 || self.dil_h == 0 || self.dil_w == 0 {
            return bad("strides and dilations must be positive");
        }
        if self.kh == 0 || self.kw == 0 {
            return bad("the window must not be empty");
        }
        if self.pad_h > (self.kh - 1) * self.dil_h || self.pad_w > (self.kw - 1) * self.dil_w {
            return bad("pads must be smaller than the window");
        }
        if self.mode > PoolMode::Average as u32 {
            return bad("unknown mode");
        }
        let (_, out) = self.lens();
        to_u32(out, "output element count").map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_shapes_follow_numpy() {
        assert_eq!(broadcast_shape(&[2, 3], &[3]), Some(vec![2, 3]));
        assert_eq!(broadcast_shape(&[2, 1], &[1, 4]), Some(vec![2, 4]));
        assert_eq!(broadcast_shape(&[], &[5]), Some(vec![5]));
        assert_eq!(broadcast_shape(&[2, 3], &[2]), None);
    }

    #[test]
    fn strides_broadcast_and_offsets_follow_them() {
        let d = Strided::broadcast(&[2, 3], &[2, 3], &[3]).unwrap();
        assert_eq!(d.rank, 2);
        assert_eq!(&d.a[..2], &[3, 1]);
        assert_eq!(&d.b[..2], &[0, 1]);
        assert_eq!(d.len(), 6);
        assert_eq!(d.offsets(4), (4, 1));
        let column = Strided::unary(&[2, 3], &[2, 1]).unwrap();
        assert_eq!(&column.a[..2], &[1, 0]);
        assert_eq!(column.offsets(5), (1, 0));
        let scalar = Strided::unary(&[], &[]).unwrap();
        assert_eq!((scalar.len(), scalar.offsets(0)), (1, (0, 0)));
    }

    #[test]
    fn rejects_what_the_kernels_cannot_take() {
        assert!(Strided::unary(&[2, 3], &[4]).is_err());
        assert!(Strided::unary(&[1; 7], &[1]).is_err());
        assert!(Strided::unary(&[3], &[1, 3]).is_err());
        let conv = Conv2dParams {
            c_in: 3,
            c_out: 4,
            groups: 2,
            stride_h: 1,
            stride_w: 1,
            dil_h: 1,
            dil_w: 1,
            ..Default::default()
        };
        assert!(conv.validate().is_err());
        let pool = Pool2dParams {
            kh: 2,
            kw: 2,
            pad_h: 2,
            stride_h: 1,
            stride_w: 1,
            dil_h: 1,
            dil_w: 1,
            ..Default::default()
        };
        assert!(pool.validate().is_err());
    }

    #[test]
    fn struct_layouts_match_the_cuda_structs() {
        assert_eq!(std::mem::size_of::<Strided>(), 4 * (1 + 3 * MAX_RANK));
        assert_eq!(std::mem::size_of::<Conv2dParams>(), 4 * 17);
        assert_eq!(std::mem::size_of::<Pool2dParams>(), 4 * 16);
    }
}
