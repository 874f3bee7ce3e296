//! Batch gather and scatter: moving requests' rows into one batch buffer
//! and back, every row block in one launch of `copy_segments`.
//!
//! [`gather_segments`] and [`scatter_segments`] describe the copies (pure,
//! tested without a GPU); a [`SegmentTable`] uploads such a description and
//! launches the copy.

use std::sync::Arc;

use cudarc::driver::{CudaEvent, CudaStream};

use crate::gpu::Gpu;
use crate::memory::{upload, DeviceBuffer, PinnedBuffer};
use crate::KernelError;

/// One copy of `bytes` bytes from device address `src` to `dst`, as
/// `struct Segment` in `batch.cu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segment {
    pub src: u64,
    pub dst: u64,
    pub bytes: u64,
}

/// Bytes of one [`Segment`] in a table.
pub const SEGMENT_SIZE: usize = std::mem::size_of::<Segment>();

/// `rows` consecutive rows at device address `address`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowBlock {
    pub address: u64,
    pub rows: u64,
}

/// The copies that place each source's rows, in order, into the batch
/// buffer at `dst` (rows of `row_bytes` bytes). Appends to `out`.
pub fn gather_segments(dst: u64, sources: &[RowBlock], row_bytes: u64, out: &mut Vec<Segment>) {
    let mut offset = 0;
    for source in sources {
        let bytes = source.rows * row_bytes;
        out.push(Segment {
            src: source.address,
            dst: dst + offset,
            bytes,
        });
        offset += bytes;
    }
}

/// The copies that hand each destination its rows, in order, from the
/// batch buffer at `src`. Appends to `out`.
pub fn scatter_segments(
    src: u64,
    destinations: &[RowBlock],
    row_bytes: u64,
    out: &mut Vec<Segment>,
) {
    let mut offset = 0;
    for destination in destinations {
        let bytes = destination.rows * row_bytes;
        out.push(Segment {
            src: src + offset,
            dst: destination.address,
            bytes,
        });
        offset += bytes;
    }
}

/// A reusable table of segments in device memory, filled from pinned host
/// memory, for one stream.
#[derive(Debug)]
pub struct SegmentTable {
    host: PinnedBuffer,
    device: DeviceBuffer,
    capacity: usize,
    /// Recorded after each upload of the table: the host copy may be
    /// rewritten once it has completed.
    uploaded: CudaEvent,
    stream: Arc<CudaStream>,
}

impl SegmentTable {
    /// A table of up to `capacity` segments for `stream`.
    pub fn new(gpu: &Gpu, stream: &Arc<CudaStream>, capacity: usize) -> Result<Self, KernelError> {
        let bytes = capacity.max(1) * SEGMENT_SIZE;
        Ok(Self {
            host: PinnedBuffer::for_upload(gpu, bytes)?,
            device: DeviceBuffer::zeroed(stream, bytes)?,
            capacity: capacity.max(1),
            uploaded: gpu
                .context()
                .new_event(None)
                .map_err(|e| KernelError::Driver(format!("creating an event: {e}")))?,
            stream: Arc::clone(stream),
        })
    }

    /// Queues the copies on the table's stream: one upload of the table and
    /// one launch.
    ///
    /// # Safety
    ///
    /// Every segment's source and destination must be device memory valid
    /// until the stream reaches the launch, and segments must not overlap.
    pub unsafe fn copy(&mut self, gpu: &Gpu, segments: &[Segment]) -> Result<(), KernelError> {
        if segments.is_empty() {
            return Ok(());
        }
        if segments.len() > self.capacity {
            return Err(KernelError::InvalidArgument(format!(
                "{} segments do not fit a table of {}",
                segments.len(),
                self.capacity
            )));
        }
        self.uploaded
            .synchronize()
            .map_err(|e| KernelError::Driver(format!("waiting for a table upload: {e}")))?;
        let bytes = segments.len() * SEGMENT_SIZE;
        let host = self.host.as_mut_slice()?;
        for (segment, chunk) in segments.iter().zip(host.chunks_exact_mut(SEGMENT_SIZE)) {
            chunk[..8].copy_from_slice(&segment.src.to_ne_bytes());
            chunk[8..16].copy_from_slice(&segment.dst.to_ne_bytes());
            chunk[16..].copy_from_slice(&segment.bytes.to_ne_bytes());
        }
        upload(&self.stream, self.device.address(), &host[..bytes])?;
        self.uploaded
            .record(&self.stream)
            .map_err(|e| KernelError::Driver(format!("recording a table upload: {e}")))?;
        let largest = segments.iter().map(|s| s.bytes).max().unwrap_or(0);
        gpu.kernels().copy_segments(
            &self.stream,
            self.device.address(),
            segments.len() as u32,
            largest,
        )
    }

    /// The stream the table queues its work on.
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::copy_segments;

    #[test]
    fn gather_then_scatter_round_trips_rows() {
        // Three requests of 2, 1 and 3 rows of 4 bytes in one memory.
        let row = 4;
        let requests = [
            RowBlock {
                address: 0,
                rows: 2,
            },
            RowBlock {
                address: 8,
                rows: 1,
            },
            RowBlock {
                address: 12,
                rows: 3,
            },
        ];
        let mut memory: Vec<u8> = (0..24).chain([0; 48]).collect();
        let mut segments = Vec::new();
        gather_segments(24, &requests, row, &mut segments);
        assert_eq!(segments.len(), 3);
        assert_eq!(
            segments[1],
            Segment {
                src: 8,
                dst: 32,
                bytes: 4
            }
        );
        copy_segments(&mut memory, &segments);
        assert_eq!(&memory[24..48], &memory[..24].to_vec()[..]);

        let back: Vec<RowBlock> = requests
            .iter()
            .map(|r| RowBlock {
                address: r.address + 48,
                rows: r.rows,
            })
            .collect();
        segments.clear();
        scatter_segments(24, &back, row, &mut segments);
        copy_segments(&mut memory, &segments);
        assert_eq!(&memory[48..72], &memory[..24].to_vec()[..]);
    }
}
