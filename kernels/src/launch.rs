//! Typed launch wrappers over the compiled kernels.
//!
//! Every wrapper queues one launch on the given stream and returns at once.
//! Tensors are passed as device addresses; the wrappers check what they can
//! (element types, sizes the kernels index with 32 bits), and the caller
//! guarantees the rest, hence `unsafe`.

use std::sync::Arc;

use cudarc::driver::{CudaFunction, CudaModule, CudaStream, LaunchConfig, PushKernelArg};

use crate::params::{BinaryOp, Conv2dParams, ElementType, Pool2dParams, Strided, UnaryOp};
use crate::KernelError;

/// Threads per block.
const BLOCK: u32 = 256;
/// Most blocks per grid row; larger tensors are covered by grid-stride loops.
const MAX_BLOCKS: u64 = 65_535;

/// Names of every kernel of the program.
pub const KERNEL_NAMES: [&str; 18] = [
    "copy_segments",
    "u8_to_f32",
    "f32_to_f16",
    "f16_to_f32",
    "unary_f32",
    "unary_f16",
    "binary_f32",
    "binary_f16",
    "binary_i32",
    "binary_i64",
    "softmax_f32",
    "softmax_f16",
    "conv2d_f32",
    "conv2d_f16",
    "pool2d_f32",
    "pool2d_f16",
    "global_average_pool_f32",
    "global_average_pool_f16",
];

fn config(threads: u64) -> LaunchConfig {
    let blocks = threads.div_ceil(u64::from(BLOCK)).clamp(1, MAX_BLOCKS) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn unsupported(kernel: &str, ty: ElementType) -> KernelError {
    KernelError::InvalidArgument(format!("{kernel} has no {ty:?} variant"))
}

fn launched(
    result: Result<
        Option<(cudarc::driver::CudaEvent, cudarc::driver::CudaEvent)>,
        cudarc::driver::DriverError,
    >,
    kernel: &str,
) -> Result<(), KernelError> {
    result
        .map(|_| ())
        .map_err(|e| KernelError::Driver(format!("launching {kernel}: {e}")))
}

/// The kernels of one device.
#[derive(Debug)]
pub struct Kernels {
    functions: Vec<CudaFunction>,
}

impl Kernels {
    /// Looks up every kernel in the loaded module.
    pub(crate) fn load(module: &Arc<CudaModule>) -> Result<Self, KernelError> {
        let functions = KERNEL_NAMES
            .iter()
            .map(|name| {
                module.load_function(name).map_err(|e| {
                    KernelError::Driver(format!("the compiled kernels lack {name}: {e}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { functions })
    }

    fn function(&self, name: &str) -> Result<&CudaFunction, KernelError> {
        KERNEL_NAMES
            .iter()
            .position(|n| *n == name)
            .and_then(|i| self.functions.get(i))
            .ok_or_else(|| KernelError::InvalidArgument(format!("no kernel named {name}")))
    }

    /// Copies `count` segments described by the [`crate::Segment`] table at
    /// `table` (device memory); `largest` is the largest segment's size in
    /// bytes, which sizes the grid.
    ///
    /// # Safety
    ///
    /// The table and every segment's source and destination must be device
    /// memory valid until the launch has run; segments must not overlap.
    pub unsafe fn copy_segments(
        &self,
        stream: &CudaStream,
        table: u64,
        count: u32,
        largest: u64,
    ) -> Result<(), KernelError> {
        if count == 0 || largest == 0 {
            return Ok(());
        }
        if count > MAX_BLOCKS as u32 {
            return Err(KernelError::InvalidArgument(format!(
                "copy_segments takes at most {MAX_BLOCKS} segments per launch, got {count}"
            )));
        }
        let mut cfg = config(largest.div_ceil(16));
        cfg.grid_dim.0 = cfg.grid_dim.0.min(1024);
        cfg.grid_dim.1 = count;
        let name = "copy_segments";
        let mut launch = stream.launch_builder(self.function(name)?);
        launch.arg(&table).arg(&count);
        launched(launch.launch(cfg), name)
    }

    /// `dst[i] = src[i] * scale + offset` for `n` bytes into `n` floats.
    ///
    /// # Safety
    ///
    /// `src` must hold `n` bytes and `dst` room for `n` floats.
    pub unsafe fn u8_to_f32(
        &self,
        stream: &CudaStream,
        src: u64,
        dst: u64,
        n: u64,
        scale: f32,
        offset: f32,
    ) -> Result<(), KernelError> {
        if n == 0 {
            return Ok(());
        }
        let name = "u8_to_f32";
        let mut launch = stream.launch_builder(self.function(name)?);
        launch.arg(&src).arg(&dst).arg(&n).arg(&scale).arg(&offset);
        launched(launch.launch(config(n)), name)
    }

    /// Converts `n` elements between single and half precision
    /// (`to_half`: F32 to F16, else F16 to F32); rounding to nearest even.
    ///
    /// # Safety
    ///
    /// `src` and `dst` must hold `n` elements of their types.
    pub unsafe fn convert_float(
        &self,
        stream: &CudaStream,
        to_half: bool,
        src: u64,
        dst: u64,
        n: u64,
    ) -> Result<(), KernelError> {
        if n == 0 {
            return Ok(());
        }
        let name = if to_half { "f32_to_f16" } else { "f16_to_f32" };
        let mut launch = stream.launch_builder(self.function(name)?);
        launch.arg(&src).arg(&dst).arg(&n);
        launched(launch.launch(config(n)), name)
    }

    /// `y = op(x)` over the output `d` describes (F32 or F16).
    ///
    /// # Safety
    ///
    /// `x` must hold every element `d.a` reaches, `y` room for `d.len()`.
    pub unsafe fn unary(
        &self,
        stream: &CudaStream,
        ty: ElementType,
        x: u64,
        y: u64,
        d: &Strided,
        op: UnaryOp,
    ) -> Result<(), KernelError> {
        let name = match ty {
            ElementType::F32 => "unary_f32",
            ElementType::F16 => "unary_f16",
            _ => return Err(unsupported("unary", ty)),
        };
        let n = d.len();
        if n == 0 {
            return Ok(());
        }
        let code = op as u32;
        let mut launch = stream.launch_builder(self.function(name)?);
        launch.arg(&x).arg(&y).arg(&n).arg(d).arg(&code);
        launched(launch.launch(config(n)), name)
    }

    /// `y = a op b` over the output `d` describes.
    ///
    /// # Safety
    ///
    /// `a` and `b` must hold every element `d.a` and `d.b` reach, `y` room
    /// for `d.len()`.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn binary(
        &self,
        stream: &CudaStream,
        ty: ElementType,
        a: u64,
        b: u64,
        y: u64,
        d: &Strided,
        op: BinaryOp,
    ) -> Result<(), KernelError> {
        let name = match ty {
            ElementType::F32 => "binary_f32",
            ElementType::F16 => "binary_f16",
            ElementType::I32 => "binary_i32",
            ElementType::I64 => "binary_i64",
        };
        let n = d.len();
        if n == 0 {
            return Ok(());
        }
        let code = op as u32;
        let mut launch = stream.launch_builder(self.function(name)?);
        launch.arg(&a).arg(&b).arg(&y).arg(&n).arg(d).arg(&code);
        launched(launch.launch(config(n)), name)
    }

    /// Softmax over the middle axis of an `(outer, axis, inner)` view.
    ///
    /// # Safety
    ///
    /// `x` and `y` must hold `outer * axis * inner` elements.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn softmax(
        &self,
        stream: &CudaStream,
        ty: ElementType,
        x: u64,
        y: u64,
        outer: u32,
        axis: u32,
        inner: u32,
    ) -> Result<(), KernelError> {
        let name = match ty {
            ElementType::F32 => "softmax_f32",
            ElementType::F16 => "softmax_f16",
            _ => return Err(unsupported("softmax", ty)),
        };
        let rows = u64::from(outer) * u64::from(inner);
        if rows == 0 || axis == 0 {
            return Ok(());
        }
        let mut launch = stream.launch_builder(self.function(name)?);
        launch.arg(&x).arg(&y).arg(&outer).arg(&axis).arg(&inner);
        launched(launch.launch(config(rows)), name)
    }

    /// 2-D convolution; `bias` is a `[c_out]` tensor or `None`.
    ///
    /// # Safety
    ///
    /// The tensors must have the sizes [`Conv2dParams::lens`] gives.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn conv2d(
        &self,
        stream: &CudaStream,
        ty: ElementType,
        x: u64,
        w: u64,
        bias: Option<u64>,
        y: u64,
        params: &Conv2dParams,
    ) -> Result<(), KernelError> {
        let name = match ty {
            ElementType::F32 => "conv2d_f32",
            ElementType::F16 => "conv2d_f16",
            _ => return Err(unsupported("conv2d", ty)),
        };
        params.validate()?;
        let p = Conv2dParams {
            has_bias: u32::from(bias.is_some()),
            ..*params
        };
        let (_, _, n) = p.lens();
        if n == 0 {
            return Ok(());
        }
        let bias = bias.unwrap_or(0);
        let mut launch = stream.launch_builder(self.function(name)?);
        launch.arg(&x).arg(&w).arg(&bias).arg(&y).arg(&p);
        launched(launch.launch(config(n as u64)), name)
    }

    /// 2-D max or average pooling.
    ///
    /// # Safety
    ///
    /// The tensors must have the sizes [`Pool2dParams::lens`] gives.
    pub unsafe fn pool2d(
        &self,
        stream: &CudaStream,
        ty: ElementType,
        x: u64,
        y: u64,
        params: &Pool2dParams,
    ) -> Result<(), KernelError> {
        let name = match ty {
            ElementType::F32 => "pool2d_f32",
            ElementType::F16 => "pool2d_f16",
            _ => return Err(unsupported("pool2d", ty)),
        };
        params.validate()?;
        let (_, n) = params.lens();
        if n == 0 {
            return Ok(());
        }
        let mut launch = stream.launch_builder(self.function(name)?);
        launch.arg(&x).arg(&y).arg(params);
        launched(launch.launch(config(n as u64)), name)
    }

    /// The mean of each of `planes` contiguous planes of `size` elements.
    ///
    /// # Safety
    ///
    /// `x` must hold `planes * size` elements, `y` room for `planes`.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn global_average_pool(
        &self,
        stream: &CudaStream,
        ty: ElementType,
        x: u64,
        y: u64,
        planes: u32,
        size: u32,
    ) -> Result<(), KernelError> {
        let name = match ty {
            ElementType::F32 => "global_average_pool_f32",
            ElementType::F16 => "global_average_pool_f16",
            _ => return Err(unsupported("global_average_pool", ty)),
        };
        if planes == 0 || size == 0 {
            return Ok(());
        }
        let mut launch = stream.launch_builder(self.function(name)?);
        launch.arg(&x).arg(&y).arg(&planes).arg(&size);
        launched(launch.launch(config(u64::from(planes))), name)
    }
}
