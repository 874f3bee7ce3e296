//! Where each value lives in an instance's device memory, and how it is
//! stored.
//!
//! One arena per instance holds every value's buffer at a 256-byte aligned
//! offset, sized for the largest schedule (`max_batch_size`): constants
//! (uploaded once at load), inputs, intermediates and outputs. Identity,
//! Flatten and Reshape outputs share their input's buffer. Buffers are not
//! reused between values: the arena is the sum of all of them.

use ferrite_kernels::ElementType;

use super::graph::{Graph, ValueId};
use super::schedule::{roots, Schedule};
use crate::DataType;

/// Alignment of every buffer in the arena, in bytes.
pub(crate) const ALIGNMENT: usize = 256;

/// The arithmetic precision of an instance (config parameter `precision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precision {
    /// FP32 values are stored and computed in FP32.
    Fp32,
    /// FP32 values are stored in FP16 (arithmetic in FP32); the model's
    /// inputs and outputs stay FP32, converted on the device.
    Fp16,
}

/// How one value is stored on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Storage {
    /// The kernels' element type; `None` for types only copied (BOOL, UINT8,
    /// FP64, BF16, ...).
    pub element: Option<ElementType>,
    /// Bytes per element on the device.
    pub size: usize,
    /// Whether the value is FP32 on the host but FP16 on the device.
    pub narrowed: bool,
}

impl Storage {
    /// The storage of a value of `dtype` under `precision`; `None` for
    /// BYTES, which has no fixed element size.
    pub fn of(dtype: DataType, precision: Precision) -> Option<Self> {
        let (element, narrowed) = match (dtype, precision) {
            (DataType::Fp32, Precision::Fp16) => (Some(ElementType::F16), true),
            (DataType::Fp32, Precision::Fp32) => (Some(ElementType::F32), false),
            (DataType::Fp16, _) => (Some(ElementType::F16), false),
            (DataType::Int32, _) => (Some(ElementType::I32), false),
            (DataType::Int64, _) => (Some(ElementType::I64), false),
            _ => (None, false),
        };
        let size = match element {
            Some(e) => e.size(),
            None => dtype.element_size()?,
        };
        Some(Self {
            element,
            size,
            narrowed,
        })
    }
}

/// Offsets and sizes of every value's buffer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    /// Byte offset of each value's buffer (its root's) in the arena.
    pub offsets: Vec<usize>,
    /// Bytes available to each value's buffer.
    pub capacity: Vec<usize>,
    pub storage: Vec<Storage>,
    /// Total arena size in bytes.
    pub size: usize,
}

pub(crate) fn align(bytes: usize) -> usize {
    bytes.div_ceil(ALIGNMENT) * ALIGNMENT
}

impl Layout {
    /// Lays out the values for the largest schedule. The error names a
    /// value that cannot be stored.
    pub fn new(graph: &Graph, largest: &Schedule, precision: Precision) -> Result<Self, String> {
        let storage = graph
            .values
            .iter()
            .map(|v| {
                Storage::of(v.dtype, precision).ok_or_else(|| {
                    format!(
                        "value '{}' is {}, which the cuda engine cannot hold on the device",
                        v.name, v.dtype
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let root = roots(graph);
        let mut offsets = vec![0; graph.values.len()];
        let mut capacity = vec![0; graph.values.len()];
        let mut size = 0;
        for id in 0..graph.values.len() {
            if root[id] != id {
                continue;
            }
            let elements: usize = largest.shapes[id].iter().product();
            let bytes = elements
                .checked_mul(storage[id].size)
                .ok_or_else(|| format!("value '{}' is too large", graph.values[id].name))?;
            offsets[id] = size;
            capacity[id] = bytes;
            size += align(bytes.max(1));
        }
        for id in 0..graph.values.len() {
            offsets[id] = offsets[root[id]];
            capacity[id] = capacity[root[id]];
        }
        Ok(Self {
            offsets,
            capacity,
            storage,
            size,
        })
    }

    /// Checks that a schedule's values fit their buffers.
    pub fn fits(&self, graph: &Graph, schedule: &Schedule) -> Result<(), String> {
        for (id, shape) in schedule.shapes.iter().enumerate() {
            let bytes = shape.iter().product::<usize>() * self.storage[id].size;
            if bytes > self.capacity[id] {
                return Err(format!(
                    "value '{}' needs {bytes} bytes for shape {shape:?}, more than the {} \
                     bytes sized for max_batch_size",
                    graph.values[id].name, self.capacity[id]
                ));
            }
        }
        Ok(())
    }

    /// The byte offset of a value.
    pub fn offset(&self, id: ValueId) -> usize {
        self.offsets[id]
    }
}
