//! Device buffers, pinned host buffers and the copies between them.
//!
//! Kernels take raw device addresses (`u64`), so that one buffer can hold
//! many tensors at offsets. A [`DeviceBuffer`] owns its memory and frees it
//! when dropped, after the work queued on its stream.

use std::sync::Arc;

use cudarc::driver::{result, sys, CudaSlice, CudaStream, DevicePtr, PinnedHostSlice};

use crate::gpu::Gpu;
use crate::KernelError;

fn driver(what: &'static str) -> impl Fn(result::DriverError) -> KernelError {
    move |e| KernelError::Driver(format!("{what}: {e}"))
}

/// Device memory owned by one stream, zeroed when allocated.
#[derive(Debug)]
pub struct DeviceBuffer {
    slice: CudaSlice<u8>,
    address: u64,
    len: usize,
}

impl DeviceBuffer {
    /// Allocates `len` bytes (at least one) on `stream`'s device. The
    /// allocation is at least 256-byte aligned.
    pub fn zeroed(stream: &Arc<CudaStream>, len: usize) -> Result<Self, KernelError> {
        let slice = stream
            .alloc_zeros::<u8>(len.max(1))
            .map_err(driver("allocating device memory"))?;
        let address = {
            let (address, _record) = slice.device_ptr(stream);
            address
        };
        Ok(Self {
            address,
            slice,
            len,
        })
    }

    /// The device address of the first byte.
    pub fn address(&self) -> u64 {
        self.address
    }

    /// The size asked for, in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer was asked to hold nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The stream the buffer belongs to.
    pub fn stream(&self) -> &Arc<CudaStream> {
        self.slice.stream()
    }
}

/// Page-locked host memory, the source or destination of asynchronous
/// copies.
#[derive(Debug)]
pub struct PinnedBuffer {
    slice: PinnedHostSlice<u8>,
    len: usize,
}

impl PinnedBuffer {
    /// Pinned memory the host only writes and the device reads
    /// (write-combined: fast to fill and to copy from, slow to read back).
    pub fn for_upload(gpu: &Gpu, len: usize) -> Result<Self, KernelError> {
        Self::allocate(gpu, len, sys::CU_MEMHOSTALLOC_WRITECOMBINED)
    }

    /// Pinned memory the device writes and the host reads.
    pub fn for_download(gpu: &Gpu, len: usize) -> Result<Self, KernelError> {
        Self::allocate(gpu, len, 0)
    }

    fn allocate(gpu: &Gpu, len: usize, flags: u32) -> Result<Self, KernelError> {
        // SAFETY: the memory is uninitialised; it is zeroed below before any
        // read.
        let mut slice = unsafe {
            gpu.context()
                .alloc_pinned_with_flags::<u8>(len.max(1), flags)
        }
        .map_err(driver("allocating pinned host memory"))?;
        slice
            .as_mut_slice()
            .map_err(driver("mapping pinned host memory"))?
            .fill(0);
        Ok(Self { slice, len })
    }

    /// The bytes, for reading. Copies into this buffer must have completed
    /// (synchronise their stream first).
    pub fn as_slice(&self) -> Result<&[u8], KernelError> {
        let all = self
            .slice
            .as_slice()
            .map_err(driver("mapping pinned host memory"))?;
        Ok(&all[..self.len])
    }

    /// The bytes, for writing. Copies from this buffer must have completed.
    pub fn as_mut_slice(&mut self) -> Result<&mut [u8], KernelError> {
        let len = self.len;
        let all = self
            .slice
            .as_mut_slice()
            .map_err(driver("mapping pinned host memory"))?;
        Ok(&mut all[..len])
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Queues a copy of `src` to device address `dst` on `stream`.
///
/// # Safety
///
/// `dst..dst + src.len()` must be device memory valid until the copy has
/// run. When `src` is pinned memory the copy is asynchronous: `src` must
/// stay alive and unchanged until the stream has been synchronised. (From
/// pageable memory the driver stages the bytes before returning.)
pub unsafe fn upload(stream: &CudaStream, dst: u64, src: &[u8]) -> Result<(), KernelError> {
    if src.is_empty() {
        return Ok(());
    }
    stream
        .context()
        .bind_to_thread()
        .map_err(driver("binding the context"))?;
    result::memcpy_htod_async(dst, src, stream.cu_stream()).map_err(driver("copy to the device"))
}

/// Queues a copy of device address `src` into `dst` on `stream`.
///
/// # Safety
///
/// `src..src + dst.len()` must be device memory holding the wanted bytes
/// once the stream reaches the copy; `dst` must be pinned memory that stays
/// alive and unread until the stream has been synchronised.
pub unsafe fn download(stream: &CudaStream, dst: &mut [u8], src: u64) -> Result<(), KernelError> {
    if dst.is_empty() {
        return Ok(());
    }
    stream
        .context()
        .bind_to_thread()
        .map_err(driver("binding the context"))?;
    result::memcpy_dtoh_async(dst, src, stream.cu_stream()).map_err(driver("copy from the device"))
}

/// Queues a device-to-device copy of `len` bytes on `stream`.
///
/// # Safety
///
/// Both ranges must be device memory valid until the copy has run.
pub unsafe fn copy_on_device(
    stream: &CudaStream,
    dst: u64,
    src: u64,
    len: usize,
) -> Result<(), KernelError> {
    if len == 0 {
        return Ok(());
    }
    stream
        .context()
        .bind_to_thread()
        .map_err(driver("binding the context"))?;
    result::memcpy_dtod_async(dst, src, len, stream.cu_stream())
        .map_err(driver("copy on the device"))
}

/// Waits for everything queued on `stream`.
pub fn synchronize(stream: &CudaStream) -> Result<(), KernelError> {
    stream
        .synchronize()
        .map_err(driver("synchronising a stream"))
}
