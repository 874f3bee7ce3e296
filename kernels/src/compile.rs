//! Compiling the CUDA C sources with NVRTC, once per compute capability per
//! process, to a CUBIN for the device's own architecture (no PTX JIT at load,
//! so the driver does not need to know the NVRTC's PTX version).

use std::collections::HashMap;
use std::ffi::{c_char, c_int, CStr, CString};
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::nvrtc::{result, sys};

use crate::KernelError;

/// The sources, in compilation order (definitions first).
const SOURCES: [(&str, &str); 5] = [
    ("common.cuh", include_str!("cu/common.cuh")),
    ("batch.cu", include_str!("cu/batch.cu")),
    ("convert.cu", include_str!("cu/convert.cu")),
    ("elementwise.cu", include_str!("cu/elementwise.cu")),
    ("nn.cu", include_str!("cu/nn.cu")),
];

/// The whole program NVRTC compiles: every source, in order, each preceded
/// by a `#line` directive so that compiler messages name the file.
pub fn program_source() -> String {
    let mut source = String::new();
    for (name, text) in SOURCES {
        source.push_str(&format!("#line 1 \"{name}\"\n"));
        source.push_str(text);
        source.push('\n');
    }
    source
}

/// The NVRTC library's version, (major, minor).
pub fn nvrtc_version() -> Result<(i32, i32), KernelError> {
    crate::gpu::nvrtc_library()?;
    let (mut major, mut minor): (c_int, c_int) = (0, 0);
    // SAFETY: the library is present (checked above); both pointers are
    // valid for writes.
    unsafe { sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| KernelError::Compile(format!("nvrtcVersion failed: {e:?}")))?;
    Ok((major, minor))
}

/// The compiled kernels for a compute capability, compiled on first request
/// and kept for the life of the process.
pub fn cubin(compute_capability: (i32, i32)) -> Result<Arc<Vec<u8>>, KernelError> {
    static CACHE: OnceLock<Mutex<CubinCache>> = OnceLock::new();
    crate::gpu::nvrtc_library()?;
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache
        .lock()
        .map_err(|_| KernelError::Compile("an earlier compilation panicked".into()))?;
    if let Some(cubin) = cache.get(&compute_capability) {
        return Ok(Arc::clone(cubin));
    }
    let cubin = Arc::new(compile(compute_capability)?);
    cache.insert(compute_capability, Arc::clone(&cubin));
    Ok(cubin)
}

/// Compiled programs by compute capability.
type CubinCache = HashMap<(i32, i32), Arc<Vec<u8>>>;

/// An NVRTC program, destroyed on drop.
struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: the program was created by `create_program` and is
        // destroyed once, here. A failure to free it leaves nothing to do.
        let _ = unsafe { result::destroy_program(self.0) };
    }
}

fn compile((major, minor): (i32, i32)) -> Result<Vec<u8>, KernelError> {
    let failed = |what: &str, e: result::NvrtcError| KernelError::Compile(format!("{what}: {e:?}"));
    let source = CString::new(program_source())
        .map_err(|_| KernelError::Compile("the kernel sources contain a NUL byte".into()))?;
    let program = Program(
        result::create_program(&source, Some(PROGRAM_NAME))
            .map_err(|e| failed("nvrtcCreateProgram", e))?,
    );
    let options = [
        format!("--gpu-architecture=sm_{major}{minor}"),
        "--std=c++17".to_string(),
    ];
    // SAFETY: `program` is a live program created above.
    if let Err(e) = unsafe { result::compile_program(program.0, &options) } {
        // SAFETY: as above.
        let log = unsafe { result::get_program_log(program.0) }
            .map(|log| {
                let bytes: Vec<u8> = log
                    .iter()
                    .take_while(|&&c| c != 0)
                    .map(|&c| c as u8)
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            })
            .unwrap_or_default();
        return Err(KernelError::Compile(format!(
            "compiling for sm_{major}{minor} ({e:?}): {log}"
        )));
    }
    let mut size = 0usize;
    // SAFETY: the program compiled; `size` is valid for writes.
    unsafe { sys::nvrtcGetCUBINSize(program.0, &mut size) }
        .result()
        .map_err(|e| failed("nvrtcGetCUBINSize", e))?;
    let mut cubin = vec![0u8; size];
    // SAFETY: `cubin` holds the `size` bytes NVRTC reported.
    unsafe { sys::nvrtcGetCUBIN(program.0, cubin.as_mut_ptr().cast::<c_char>()) }
        .result()
        .map_err(|e| failed("nvrtcGetCUBIN", e))?;
    Ok(cubin)
}

/// The program's name as NVRTC reports it in messages.
pub const PROGRAM_NAME: &CStr = c"ferrite_kernels.cu";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kernel_is_in_the_program() {
        let source = program_source();
        for name in crate::launch::KERNEL_NAMES {
            assert!(
                source.contains(&format!("void {name}(")),
                "{name} is not defined"
            );
        }
        assert!(source.starts_with("#line 1 \"common.cuh\""));
    }

    /// NVRTC needs no GPU: where its library is present, the sources must
    /// compile for Hopper (H100/H200) and Ampere.
    #[test]
    fn compiles_with_nvrtc_where_present() {
        if let Err(reason) = crate::gpu::nvrtc_library() {
            eprintln!("skipped: {reason}");
            return;
        }
        for capability in [(9, 0), (8, 0)] {
            let cubin = cubin(capability).unwrap();
            assert!(cubin.starts_with(b"\x7fELF"), "a CUBIN is an ELF image");
        }
    }
}
