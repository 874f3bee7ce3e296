//! Finding, checking and loading the ONNX Runtime shared library, once per
//! process.
//!
//! The library comes from PyPI's `onnxruntime` wheel
//! (`onnxruntime/capi/libonnxruntime.so.<version>`). It is looked for, in
//! order, at `ORT_DYLIB_PATH`, in a `.venv/` of the current directory or one
//! of its parents, and in the package of the `python3` on `PATH`. Its version
//! is read before `ort` touches it: a library older than the API level this
//! build is compiled for would abort the process inside the library instead
//! of returning an error, so it is refused here.

use std::ffi::{c_int, CStr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};

use ort::environment::Environment;
use ort::logging::LogLevel;
use ort::session::builder::SessionBuilder;
use ort::sys::{OrtSessionOptions, OrtStatusPtr};
use ort::AsPointer;

/// The oldest ONNX Runtime release whose C API this build uses (`api-22`).
const MIN_VERSION: Version = Version(1, 22, 0);

/// A library version, `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Version(u32, u32, u32);

impl Version {
    /// Parses "1.22.1" (anything after the numbers, such as "-dev", is
    /// ignored; a missing patch number reads as 0).
    fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split('.').map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = parts.next()??;
        let minor = parts.next()??;
        let patch = parts.next().flatten().unwrap_or(0);
        Some(Self(major, minor, patch))
    }

    /// The version a wheel's file name carries: `libonnxruntime.so.1.22.1`
    /// (Linux) or `libonnxruntime.1.22.1.dylib` (macOS).
    fn from_file_name(name: &str) -> Option<Self> {
        if let Some(rest) = name.strip_prefix("libonnxruntime.so.") {
            return Self::parse(rest);
        }
        name.strip_prefix("libonnxruntime.")?
            .strip_suffix(".dylib")
            .and_then(Self::parse)
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// `OrtSessionOptionsAppendExecutionProvider_CPU`, exported by the library
/// outside the versioned API table.
type AppendCpuProvider = unsafe extern "C" fn(*mut OrtSessionOptions, c_int) -> OrtStatusPtr;

/// The loaded library and the process's ONNX Runtime environment.
pub(super) struct Runtime {
    pub path: PathBuf,
    pub version: String,
    pub environment: Environment,
    append_cpu_provider: AppendCpuProvider,
    /// Our own handle on the library, kept so that it is never unloaded.
    _library: libloading::Library,
}

impl Runtime {
    /// Registers ONNX Runtime's CPU execution provider on a session builder,
    /// with or without its memory arena.
    ///
    /// `ort` sets an automatic execution-provider selection policy on every
    /// session builder, and ONNX Runtime 1.22's environment lists no devices
    /// for such a policy to choose from: session creation then aborts the
    /// process (or fails, depending on the policy). Naming the provider
    /// explicitly turns automatic selection off, which gives the plain CPU
    /// session that ONNX Runtime's Python API and Triton create.
    pub fn register_cpu_provider(
        &self,
        builder: &mut SessionBuilder,
        use_arena: bool,
    ) -> Result<(), String> {
        // SAFETY: the function comes from the library, which stays loaded for
        // the life of the process, and is given the builder's live session
        // options.
        let status =
            unsafe { (self.append_cpu_provider)(builder.ptr_mut(), c_int::from(use_arena)) };
        // SAFETY: the status comes straight from the call above.
        unsafe { ort::Error::result_from_status(status) }.map_err(|e| e.to_string())
    }
}

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The process's ONNX Runtime, found and loaded on first use. A failure is
/// remembered too: the search runs once per process.
pub(super) fn runtime() -> Result<&'static Runtime, &'static str> {
    RUNTIME
        .get_or_init(|| {
            let path = find_library()?;
            load(&path).map_err(|reason| format!("{}: {reason}", path.display()))
        })
        .as_ref()
        .map_err(String::as_str)
}

fn load(path: &Path) -> Result<Runtime, String> {
    if let Some(version) = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(Version::from_file_name)
    {
        check_version(version)?;
    }
    // SAFETY: loading the library runs its initialisers, which only set up
    // ONNX Runtime's own statics. The symbols are looked up with the
    // signatures of ONNX Runtime's C API headers, and the version string is
    // a static, NUL-terminated string owned by the library. The library
    // stays loaded: the handle lives in the returned `Runtime` (or is
    // forgotten on failure), so neither the string nor the function pointer
    // outlives it.
    let (library, reported, append_cpu_provider) = unsafe {
        let library = libloading::Library::new(path).map_err(|e| e.to_string())?;
        let reported = {
            let get_api_base = library
                .get::<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase>(b"OrtGetApiBase\0")
                .map_err(|_| {
                    "does not export OrtGetApiBase, so it is not an ONNX Runtime library"
                        .to_string()
                })?;
            let base = get_api_base();
            if base.is_null() {
                return Err("OrtGetApiBase returned nothing".to_string());
            }
            let version = ((*base).GetVersionString)();
            if version.is_null() {
                return Err("GetVersionString returned nothing".to_string());
            }
            CStr::from_ptr(version).to_string_lossy().into_owned()
        };
        let append_cpu_provider = *library
            .get::<AppendCpuProvider>(b"OrtSessionOptionsAppendExecutionProvider_CPU\0")
            .map_err(|_| {
                "does not export OrtSessionOptionsAppendExecutionProvider_CPU".to_string()
            })?;
        (library, reported, append_cpu_provider)
    };
    let checked = Version::parse(&reported)
        .ok_or_else(|| format!("reports an unreadable version \"{reported}\""))
        .and_then(check_version);
    if let Err(reason) = checked {
        std::mem::forget(library);
        return Err(reason);
    }
    let environment = ort::init_from(path)
        .map_err(|e| e.to_string())?
        .with_name("ferrite")
        .with_telemetry(false)
        .with_logger(Arc::new(log))
        .build()
        .map_err(|e| format!("could not create the ONNX Runtime environment: {e}"))?;
    environment.set_log_level(LogLevel::Warning);
    tracing::info!(path = %path.display(), version = %reported, "loaded ONNX Runtime");
    Ok(Runtime {
        path: path.to_path_buf(),
        version: reported,
        environment,
        append_cpu_provider,
        _library: library,
    })
}

fn check_version(version: Version) -> Result<(), String> {
    if version < MIN_VERSION {
        Err(format!(
            "ONNX Runtime {version} is older than {}.{}, the oldest release this build \
             supports; install `onnxruntime==1.22.1` (pip) or point ORT_DYLIB_PATH at a newer \
             library",
            MIN_VERSION.0, MIN_VERSION.1
        ))
    } else {
        Ok(())
    }
}

/// Routes ONNX Runtime's log lines to `tracing`.
fn log(level: LogLevel, category: &str, _id: &str, location: &str, message: &str) {
    match level {
        LogLevel::Verbose => tracing::trace!(category, location, "onnxruntime: {message}"),
        LogLevel::Info => tracing::debug!(category, location, "onnxruntime: {message}"),
        LogLevel::Warning => tracing::warn!(category, location, "onnxruntime: {message}"),
        LogLevel::Error | LogLevel::Fatal => {
            tracing::error!(category, location, "onnxruntime: {message}")
        }
    }
}

fn find_library() -> Result<PathBuf, String> {
    if let Some(value) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        let path = PathBuf::from(value);
        if path.is_file() {
            return Ok(path);
        }
        if path.is_dir() {
            return newest_library_in(&path).ok_or_else(|| {
                format!(
                    "ORT_DYLIB_PATH names the folder {}, which holds no libonnxruntime library",
                    path.display()
                )
            });
        }
        return Err(format!(
            "ORT_DYLIB_PATH is set to {}, which does not exist",
            path.display()
        ));
    }
    let mut searched = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        for dir in cwd.ancestors() {
            let venv = dir.join(".venv");
            if venv.is_dir() {
                if let Some(found) = find_in_venv(&venv) {
                    return Ok(found);
                }
                searched.push(venv.display().to_string());
            }
        }
    }
    match python_package_dir() {
        Some(package) => {
            if let Some(found) = newest_library_in(&package.join("capi")) {
                return Ok(found);
            }
            searched.push(package.join("capi").display().to_string());
        }
        None => searched.push("python3 (no onnxruntime package)".to_string()),
    }
    Err(format!(
        "no ONNX Runtime library found (searched ORT_DYLIB_PATH, {}); install it with `pip \
         install onnxruntime==1.22.1` into ./.venv or the python3 on PATH, or set \
         ORT_DYLIB_PATH to libonnxruntime.so.<version>",
        searched.join(", ")
    ))
}

/// `<venv>/lib*/python*/site-packages/onnxruntime/capi/libonnxruntime.*`
fn find_in_venv(venv: &Path) -> Option<PathBuf> {
    ["lib", "lib64"]
        .iter()
        .filter_map(|lib| std::fs::read_dir(venv.join(lib)).ok())
        .flatten()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("python"))
        .filter_map(|entry| newest_library_in(&entry.path().join("site-packages/onnxruntime/capi")))
        .max_by_key(|path| library_version(path))
}

/// The library with the highest version in a folder.
fn newest_library_in(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_file() && library_version(path).is_some())
        .max_by_key(|path| library_version(path))
}

fn library_version(path: &Path) -> Option<Version> {
    Version::from_file_name(path.file_name()?.to_str()?)
}

/// The folder of the `onnxruntime` package of the `python3` on `PATH`.
fn python_package_dir() -> Option<PathBuf> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import onnxruntime,os;print(os.path.dirname(onnxruntime.__file__))",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = String::from_utf8(output.stdout).ok()?;
    let dir = PathBuf::from(dir.trim());
    dir.is_dir().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        assert_eq!(Version::parse("1.22.1"), Some(Version(1, 22, 1)));
        assert_eq!(Version::parse("1.23"), Some(Version(1, 23, 0)));
        assert_eq!(Version::parse("1.20.0-dev"), Some(Version(1, 20, 0)));
        assert_eq!(Version::parse("x"), None);
        assert_eq!(
            Version::from_file_name("libonnxruntime.so.1.22.1"),
            Some(Version(1, 22, 1))
        );
        assert_eq!(
            Version::from_file_name("libonnxruntime.1.21.0.dylib"),
            Some(Version(1, 21, 0))
        );
        assert_eq!(
            Version::from_file_name("libonnxruntime_providers_shared.so"),
            None
        );
        assert_eq!(Version::from_file_name("libonnxruntime.so"), None);
    }

    #[test]
    fn refuses_old_versions() {
        let err = check_version(Version(1, 21, 9)).unwrap_err();
        assert!(err.contains("1.21.9 is older than 1.22"), "{err}");
        assert!(check_version(Version(1, 22, 0)).is_ok());
        assert!(check_version(Version(1, 24, 2)).is_ok());
    }

    #[test]
    fn refuses_old_library_files_before_loading_them() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("libonnxruntime.so.1.16.3");
        std::fs::write(&fake, b"not a library").unwrap();
        let err = load(&fake).err().unwrap();
        assert!(err.contains("1.16.3 is older than 1.22"), "{err}");
        assert_eq!(newest_library_in(dir.path()), Some(fake));
    }
}
