//! ferrite-kernels: ferrite's own CUDA C kernels, compiled at run time by
//! NVRTC for the device's architecture, with typed launch wrappers and a CPU
//! reference for each.
//!
//! - [`gpu`]: finding the driver, NVRTC and a device ([`gpu::probe`]), and
//!   opening a device for work ([`Gpu::open`]: one context per device per
//!   process, kernels compiled once per compute capability).
//! - [`memory`]: device and pinned host buffers, asynchronous copies.
//! - [`launch`]: the launch wrappers ([`Kernels`]).
//! - [`segments`]: the batch gather and scatter (requests' rows into one
//!   batch buffer and back, one launch each).
//! - [`params`]: element types, operator codes and parameter structs.
//! - [`reference`]: the CPU reference of every kernel.
//! - [`checks`]: every kernel run on a device and compared with its
//!   reference (used by the device tests and by `ferrite selftest gpu`).
//!
//! CUDA is loaded at run time: this crate builds and its CPU parts run on
//! machines without CUDA. Every path that reaches the driver or NVRTC first
//! checks that the library can be loaded and reports its absence as
//! [`KernelError::Unavailable`].
//!
//! Kernels: `copy_segments` (gather/scatter), `u8_to_f32` (with scale and
//! offset), `f32_to_f16`, `f16_to_f32`, broadcasting element-wise `unary`
//! (identity, relu, sigmoid, tanh) and `binary` (add, sub, mul, div),
//! `softmax`, `conv2d`, `pool2d` (max, average) and `global_average_pool`,
//! in single and half precision (binary also for i32 and i64). One thread
//! computes one output element, accumulating in single precision.

pub mod checks;
pub mod compile;
pub mod gpu;
pub mod launch;
pub mod memory;
pub mod params;
pub mod reference;
pub mod segments;

pub use gpu::{DeviceProperties, Gpu};
pub use launch::Kernels;
pub use params::{ElementType, Strided};
pub use segments::Segment;

/// Errors of the kernels and the device layer.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// No CUDA driver, NVRTC library or device (the message says which).
    #[error("{0}")]
    Unavailable(String),
    /// A CUDA driver call failed.
    #[error("CUDA driver: {0}")]
    Driver(String),
    /// NVRTC could not compile the kernels.
    #[error("NVRTC: {0}")]
    Compile(String),
    /// The arguments do not fit the kernel.
    #[error("{0}")]
    InvalidArgument(String),
}
