//! Finding the CUDA driver, NVRTC and a device, and opening a device for
//! work.
//!
//! cudarc loads the CUDA libraries on first use and panics when one is
//! missing, so every entry point here first checks that the libraries can
//! be loaded ([`driver_library`], [`nvrtc_library`]) and turns their absence
//! into an error that says what is missing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{result, sys, CudaContext, CudaStream};
use cudarc::nvrtc::Ptx;

use crate::launch::Kernels;
use crate::KernelError;

/// What the driver reports about one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceProperties {
    /// The device's ordinal (as in `CUDA_VISIBLE_DEVICES` order).
    pub ordinal: usize,
    /// Marketing name, e.g. "NVIDIA H100 80GB HBM3".
    pub name: String,
    /// (major, minor), e.g. (9, 0) for Hopper.
    pub compute_capability: (i32, i32),
    /// Device memory in bytes.
    pub total_memory: usize,
    /// Streaming multiprocessors.
    pub multiprocessors: i32,
    /// The newest CUDA version the installed driver supports, (major, minor).
    pub driver_version: (i32, i32),
    /// How many devices the driver sees.
    pub device_count: usize,
}

/// Whether the CUDA driver library (libcuda) can be loaded; the error says
/// what is missing. Checked once per process.
pub fn driver_library() -> Result<(), KernelError> {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only tries to load the library by its known names.
    if *PRESENT.get_or_init(|| unsafe { sys::is_culib_present() }) {
        Ok(())
    } else {
        Err(KernelError::Unavailable(
            "no CUDA driver found: libcuda.so.1 could not be loaded (is the NVIDIA driver \
             installed, and visible to this process?)"
                .into(),
        ))
    }
}

/// Whether the NVRTC library can be loaded; the error says how to provide
/// it. Checked once per process. NVRTC compiles; it needs no GPU.
pub fn nvrtc_library() -> Result<(), KernelError> {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    // SAFETY: only tries to load the library by its known names.
    if *PRESENT.get_or_init(|| unsafe { cudarc::nvrtc::sys::is_culib_present() }) {
        Ok(())
    } else {
        Err(KernelError::Unavailable(
            "NVRTC (libnvrtc.so.12) could not be loaded; install the CUDA 12 runtime \
             compiler (pip: nvidia-cuda-nvrtc-cu12) and add its lib folder to \
             LD_LIBRARY_PATH"
                .into(),
        ))
    }
}

fn driver_error(what: &'static str) -> impl Fn(result::DriverError) -> KernelError {
    move |e| KernelError::Driver(format!("{what}: {e}"))
}

/// Number of devices the driver sees (0 when there is no driver).
pub fn device_count() -> Result<usize, KernelError> {
    driver_library()?;
    result::init().map_err(|e| {
        KernelError::Unavailable(format!("the CUDA driver found no usable GPU ({e})"))
    })?;
    let count = result::device::get_count().map_err(driver_error("cuDeviceGetCount"))?;
    Ok(usize::try_from(count).unwrap_or(0))
}

/// The properties of device `ordinal`, without creating a context on it.
/// The error says plainly when there is no driver, no device, or no device
/// with that ordinal.
pub fn probe(ordinal: usize) -> Result<DeviceProperties, KernelError> {
    let device_count = device_count()?;
    if ordinal >= device_count {
        return Err(KernelError::Unavailable(if device_count == 0 {
            "the CUDA driver reports no GPU".to_string()
        } else {
            format!("there is no GPU {ordinal}: the CUDA driver reports {device_count} device(s)")
        }));
    }
    let index = i32::try_from(ordinal).map_err(|_| {
        KernelError::InvalidArgument(format!("device ordinal {ordinal} is too large"))
    })?;
    let device = result::device::get(index).map_err(driver_error("cuDeviceGet"))?;
    let attribute = |attribute| {
        // SAFETY: `device` is a valid device handle from cuDeviceGet.
        unsafe { result::device::get_attribute(device, attribute) }
            .map_err(driver_error("cuDeviceGetAttribute"))
    };
    use sys::CUdevice_attribute::*;
    let major = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
    let minor = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
    let multiprocessors = attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
    // SAFETY: as above.
    let total_memory =
        unsafe { result::device::total_mem(device) }.map_err(driver_error("cuDeviceTotalMem"))?;
    let mut version = 0;
    // SAFETY: the driver is loaded and initialised; `version` is writable.
    unsafe { sys::cuDriverGetVersion(&mut version) }
        .result()
        .map_err(driver_error("cuDriverGetVersion"))?;
    Ok(DeviceProperties {
        ordinal,
        name: result::device::get_name(device).map_err(driver_error("cuDeviceGetName"))?,
        compute_capability: (major, minor),
        total_memory,
        multiprocessors,
        driver_version: (version / 1000, (version % 1000) / 10),
        device_count,
    })
}

/// An open device: its context, its properties and the compiled kernels.
/// One per device per process, shared by every stream on it.
///
/// Contexts are opened with cudarc's per-buffer event tracking off: every
/// buffer of ferrite belongs to one stream (its instance's) and the host
/// reads results only after synchronising that stream, so the events would
/// only add work to each launch.
pub struct Gpu {
    context: Arc<CudaContext>,
    properties: DeviceProperties,
    kernels: Kernels,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("properties", &self.properties)
            .finish_non_exhaustive()
    }
}

impl Gpu {
    /// Opens device `ordinal` (once per process; later calls share it),
    /// compiling the kernels for its architecture on first use.
    pub fn open(ordinal: usize) -> Result<Arc<Gpu>, KernelError> {
        static OPEN: OnceLock<Mutex<HashMap<usize, Arc<Gpu>>>> = OnceLock::new();
        let properties = probe(ordinal)?;
        nvrtc_library()?;
        let open = OPEN.get_or_init(Default::default);
        let mut open = open
            .lock()
            .map_err(|_| KernelError::Driver("an earlier device open panicked".into()))?;
        if let Some(gpu) = open.get(&ordinal) {
            return Ok(Arc::clone(gpu));
        }
        let context = CudaContext::new(ordinal).map_err(driver_error("creating a context"))?;
        // SAFETY: no buffer exists on this context yet, and ferrite uses
        // each buffer on one stream only (see the type's docs).
        unsafe { context.disable_event_tracking() };
        let cubin = crate::compile::cubin(properties.compute_capability)?;
        let module = context
            .load_module(Ptx::from_binary(cubin.to_vec()))
            .map_err(driver_error("loading the compiled kernels"))?;
        let kernels = Kernels::load(&module)?;
        let gpu = Arc::new(Gpu {
            context,
            properties,
            kernels,
        });
        open.insert(ordinal, Arc::clone(&gpu));
        Ok(gpu)
    }

    /// What the driver reports about the device.
    pub fn properties(&self) -> &DeviceProperties {
        &self.properties
    }

    /// The device's (primary) context.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.context
    }

    /// The compiled kernels.
    pub fn kernels(&self) -> &Kernels {
        &self.kernels
    }

    /// A new non-blocking stream on the device.
    pub fn new_stream(&self) -> Result<Arc<CudaStream>, KernelError> {
        self.context
            .new_stream()
            .map_err(driver_error("creating a stream"))
    }
}
