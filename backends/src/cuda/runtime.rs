//! The device side of one instance: its stream, cuBLAS handle, arena and
//! staging buffers, and one execution from host tensors to host tensors.
//!
//! One execution queues, on the instance's stream and without waiting:
//! the inputs' bytes packed into pinned memory, one copy to the device, one
//! gather launch placing each input in its buffer (or a conversion to FP16
//! under `precision: fp16`), the model's launches, one scatter launch
//! packing the wanted outputs (or conversions back to FP32), one copy to
//! pinned memory; then it waits for the stream once and copies the outputs
//! out of pinned memory.

use std::sync::Arc;

use bytes::Bytes;
use cudarc::cublas::CudaBlas;
use cudarc::driver::CudaStream;
use ferrite_kernels::memory::{download, synchronize, upload, DeviceBuffer, PinnedBuffer};
use ferrite_kernels::segments::SegmentTable;
use ferrite_kernels::{ElementType, Gpu, Segment};

use super::gemm;
use super::graph::{Graph, ValueId};
use super::layout::{align, Layout, Storage};
use super::schedule::{Launch, Schedule};

/// A tensor crossing the host/device boundary: its value and host bytes.
pub(crate) struct HostTensor<'a> {
    pub value: ValueId,
    pub bytes: &'a [u8],
}

/// Device resources of one instance.
pub(crate) struct Runtime {
    gpu: Arc<Gpu>,
    stream: Arc<CudaStream>,
    blas: CudaBlas,
    arena: DeviceBuffer,
    upload_host: PinnedBuffer,
    upload_device: DeviceBuffer,
    download_host: PinnedBuffer,
    download_device: DeviceBuffer,
    gather: SegmentTable,
    scatter: SegmentTable,
    segments: Vec<Segment>,
    conversions: Vec<(u64, u64, u64)>,
}

fn kernel_error(e: ferrite_kernels::KernelError) -> String {
    e.to_string()
}

impl Runtime {
    /// Allocates the instance's stream, arena (`layout.size` bytes) and
    /// staging buffers (`input_bytes` and `output_bytes`, as packed by
    /// [`Runtime::execute`]), with segment tables for `inputs` and `outputs`
    /// tensors.
    pub fn new(
        gpu: Arc<Gpu>,
        layout: &Layout,
        (input_bytes, inputs): (usize, usize),
        (output_bytes, outputs): (usize, usize),
    ) -> Result<Self, String> {
        let stream = gpu.new_stream().map_err(kernel_error)?;
        let blas = CudaBlas::new(Arc::clone(&stream))
            .map_err(|e| format!("cuBLAS could not start: {e}"))?;
        Ok(Self {
            arena: DeviceBuffer::zeroed(&stream, layout.size).map_err(kernel_error)?,
            upload_host: PinnedBuffer::for_upload(&gpu, input_bytes).map_err(kernel_error)?,
            upload_device: DeviceBuffer::zeroed(&stream, input_bytes).map_err(kernel_error)?,
            download_host: PinnedBuffer::for_download(&gpu, output_bytes).map_err(kernel_error)?,
            download_device: DeviceBuffer::zeroed(&stream, output_bytes).map_err(kernel_error)?,
            gather: SegmentTable::new(&gpu, &stream, inputs).map_err(kernel_error)?,
            scatter: SegmentTable::new(&gpu, &stream, outputs).map_err(kernel_error)?,
            segments: Vec::with_capacity(inputs.max(outputs)),
            conversions: Vec::with_capacity(inputs.max(outputs)),
            blas,
            stream,
            gpu,
        })
    }

    fn address(&self, layout: &Layout, id: ValueId) -> u64 {
        self.arena.address() + layout.offset(id) as u64
    }

    /// Copies the graph's constants into their buffers (narrowed to FP16
    /// where the layout says so) and waits for the copies.
    pub fn upload_constants(&mut self, graph: &Graph, layout: &Layout) -> Result<(), String> {
        for (id, value) in graph.values.iter().enumerate() {
            let Some(constant) = &value.constant else {
                continue;
            };
            let bytes = if layout.storage[id].narrowed {
                constant
                    .bytes
                    .chunks_exact(4)
                    .flat_map(|b| {
                        half::f16::from_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                            .to_le_bytes()
                    })
                    .collect()
            } else {
                constant.bytes.clone()
            };
            if bytes.len() > layout.capacity[id] {
                return Err(format!("constant '{}' does not fit its buffer", value.name));
            }
            // SAFETY: the destination is this value's buffer in the arena,
            // which holds `capacity[id]` bytes; `bytes` is pageable, so the
            // driver has staged it when `upload` returns.
            unsafe { upload(&self.stream, self.address(layout, id), &bytes) }
                .map_err(kernel_error)?;
        }
        synchronize(&self.stream).map_err(kernel_error)
    }

    /// Queues one launch.
    fn launch(&self, layout: &Layout, launch: &Launch) -> Result<(), String> {
        let kernels = self.gpu.kernels();
        let stream = &self.stream;
        let element = |id: ValueId| -> Result<ElementType, String> {
            layout.storage[id]
                .element
                .ok_or_else(|| "a value without a kernel element type reached a kernel".into())
        };
        let at = |id: ValueId| self.address(layout, id);
        // SAFETY (every call below): the addresses are buffers of the arena
        // sized by the layout for the largest schedule, and the caller has
        // checked that this schedule's values fit them (`Layout::fits`); the
        // kernels read and write only the elements the parameters describe.
        unsafe {
            match launch {
                Launch::Unary { x, y, d, op } => {
                    kernels.unary(stream, element(*x)?, at(*x), at(*y), d, *op)
                }
                Launch::Binary { a, b, y, d, op } => {
                    kernels.binary(stream, element(*a)?, at(*a), at(*b), at(*y), d, *op)
                }
                Launch::Gemm(call) => {
                    return gemm::run(
                        &self.blas,
                        element(call.a)?,
                        call,
                        at(call.a),
                        at(call.b),
                        at(call.y),
                    )
                }
                Launch::Softmax {
                    x,
                    y,
                    outer,
                    axis,
                    inner,
                } => kernels.softmax(stream, element(*x)?, at(*x), at(*y), *outer, *axis, *inner),
                Launch::Conv {
                    x,
                    w,
                    bias,
                    y,
                    params,
                } => kernels.conv2d(
                    stream,
                    element(*x)?,
                    at(*x),
                    at(*w),
                    bias.map(at),
                    at(*y),
                    params,
                ),
                Launch::Pool { x, y, params } => {
                    kernels.pool2d(stream, element(*x)?, at(*x), at(*y), params)
                }
                Launch::GlobalAveragePool { x, y, planes, size } => kernels.global_average_pool(
                    stream,
                    element(*x)?,
                    at(*x),
                    at(*y),
                    *planes,
                    *size,
                ),
            }
        }
        .map_err(kernel_error)
    }

    /// Runs the schedule: `inputs` (every graph input, host bytes) in,
    /// the bytes of each of `outputs` out, in order.
    pub fn execute(
        &mut self,
        layout: &Layout,
        schedule: &Schedule,
        inputs: &[HostTensor],
        outputs: &[ValueId],
    ) -> Result<Vec<Bytes>, String> {
        self.stream
            .context()
            .bind_to_thread()
            .map_err(|e| format!("binding the device: {e}"))?;
        self.stage_inputs(layout, inputs)?;
        for launch in &schedule.launches {
            self.launch(layout, launch)?;
        }
        let spans = self.stage_outputs(layout, schedule, outputs)?;
        synchronize(&self.stream).map_err(kernel_error)?;
        let host = self.download_host.as_slice().map_err(kernel_error)?;
        Ok(spans
            .into_iter()
            .map(|(start, len)| Bytes::copy_from_slice(&host[start..start + len]))
            .collect())
    }

    fn stage_inputs(&mut self, layout: &Layout, inputs: &[HostTensor]) -> Result<(), String> {
        self.segments.clear();
        self.conversions.clear();
        let base = self.upload_device.address();
        let host = self.upload_host.as_mut_slice().map_err(kernel_error)?;
        let mut offset = 0;
        for input in inputs {
            let end = offset + input.bytes.len();
            let narrowed = layout.storage[input.value].narrowed;
            let device_len = if narrowed {
                input.bytes.len() / 2
            } else {
                input.bytes.len()
            };
            if end > host.len() || device_len > layout.capacity[input.value] {
                return Err("an input is larger than the buffers sized for max_batch_size".into());
            }
            host[offset..end].copy_from_slice(input.bytes);
            let (src, dst) = (
                base + offset as u64,
                self.arena.address() + layout.offset(input.value) as u64,
            );
            if narrowed {
                self.conversions
                    .push((src, dst, (input.bytes.len() / 4) as u64));
            } else {
                self.segments.push(Segment {
                    src,
                    dst,
                    bytes: input.bytes.len() as u64,
                });
            }
            offset = align(end);
        }
        // SAFETY: the staging buffers hold `offset` bytes (checked above);
        // the pinned source is not touched again before the stream is
        // synchronised at the end of the execution; the segments and
        // conversions name the staged inputs and their arena buffers.
        unsafe {
            upload(&self.stream, base, &host[..offset.min(host.len())]).map_err(kernel_error)?;
            self.gather
                .copy(&self.gpu, &self.segments)
                .map_err(kernel_error)?;
            for &(src, dst, n) in &self.conversions {
                self.gpu
                    .kernels()
                    .convert_float(&self.stream, true, src, dst, n)
                    .map_err(kernel_error)?;
            }
        }
        Ok(())
    }

    /// Queues the packing of the outputs and their copy to pinned memory;
    /// returns where each lies in it.
    fn stage_outputs(
        &mut self,
        layout: &Layout,
        schedule: &Schedule,
        outputs: &[ValueId],
    ) -> Result<Vec<(usize, usize)>, String> {
        self.segments.clear();
        self.conversions.clear();
        let base = self.download_device.address();
        let mut spans = Vec::with_capacity(outputs.len());
        let mut offset = 0;
        for &value in outputs {
            let elements: usize = schedule.shapes[value].iter().product();
            let Storage { size, narrowed, .. } = layout.storage[value];
            let host_size = if narrowed { 4 } else { size };
            let len = elements * host_size;
            if offset + len > self.download_host.len() {
                return Err(
                    "the outputs are larger than the buffers sized for max_batch_size".into(),
                );
            }
            let (src, dst) = (self.address(layout, value), base + offset as u64);
            if narrowed {
                self.conversions.push((src, dst, elements as u64));
            } else {
                self.segments.push(Segment {
                    src,
                    dst,
                    bytes: len as u64,
                });
            }
            spans.push((offset, len));
            offset = align(offset + len);
        }
        let host = self.download_host.as_mut_slice().map_err(kernel_error)?;
        let used = offset.min(host.len());
        // SAFETY: the segments and conversions read arena buffers holding
        // this schedule's outputs and write inside the download staging
        // buffer (checked above); the pinned destination is read only after
        // the stream is synchronised.
        unsafe {
            self.scatter
                .copy(&self.gpu, &self.segments)
                .map_err(kernel_error)?;
            for &(src, dst, n) in &self.conversions {
                self.gpu
                    .kernels()
                    .convert_float(&self.stream, false, src, dst, n)
                    .map_err(kernel_error)?;
            }
            download(&self.stream, &mut host[..used], base).map_err(kernel_error)?;
        }
        Ok(spans)
    }
}
