//! Logging with tritonserver's controls: `--log-info`, `--log-warning`,
//! `--log-error` switch each severity on or off, `--log-verbose N` adds
//! debug lines (N >= 1: ferrite's own debug lines; N >= 2: trace lines of
//! ferrite and debug lines of the libraries beneath it), `--log-format`
//! picks tritonserver's default time stamp (`MMDD hh:mm:ss.uuuuuu`) or
//! ISO 8601, and `--log-file` appends to a file instead of stderr.
//!
//! The settings are process-wide, like the logger: the logging extension
//! (`GET`/`POST /v2/logging`, gRPC `LogSettings`) reads and changes them at
//! run time; the file is fixed at start-up, and a request to change it is
//! refused.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::Serialize;
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{filter, Layer};

use crate::error::ServerError;

/// Time stamp format of log lines (tritonserver's `--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// `MMDD hh:mm:ss.uuuuuu` (UTC).
    #[value(name = "default")]
    Default,
    /// `YYYY-MM-DDThh:mm:ss.uuuuuuZ`.
    #[value(name = "ISO8601")]
    Iso8601,
}

impl LogFormat {
    fn name(self) -> &'static str {
        match self {
            LogFormat::Default => "default",
            LogFormat::Iso8601 => "ISO8601",
        }
    }
}

/// The logging settings, as the logging extension shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogSettings {
    /// The file logs go to; empty for stderr.
    pub log_file: String,
    pub log_info: bool,
    pub log_warning: bool,
    pub log_error: bool,
    pub log_verbose_level: u32,
    /// `default` or `ISO8601`.
    pub log_format: String,
}

/// One value of a settings update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingValue {
    Bool(bool),
    Uint(u32),
    Text(String),
}

struct Controls {
    info: AtomicBool,
    warning: AtomicBool,
    error: AtomicBool,
    verbose: AtomicU32,
    iso8601: AtomicBool,
    file: Mutex<String>,
}

fn controls() -> &'static Controls {
    static CONTROLS: OnceLock<Controls> = OnceLock::new();
    CONTROLS.get_or_init(|| Controls {
        info: AtomicBool::new(true),
        warning: AtomicBool::new(true),
        error: AtomicBool::new(true),
        verbose: AtomicU32::new(0),
        iso8601: AtomicBool::new(false),
        file: Mutex::new(String::new()),
    })
}

/// The logging options of the command line.
#[derive(Debug, Clone)]
pub struct LogOptions {
    pub info: bool,
    pub warning: bool,
    pub error: bool,
    pub verbose: u32,
    pub format: LogFormat,
    pub file: Option<PathBuf>,
}

/// Installs the process's logger with `options`. Fails when the log file
/// cannot be opened.
pub fn init(options: &LogOptions) -> Result<(), ServerError> {
    let c = controls();
    c.info.store(options.info, Ordering::Relaxed);
    c.warning.store(options.warning, Ordering::Relaxed);
    c.error.store(options.error, Ordering::Relaxed);
    c.verbose.store(options.verbose, Ordering::Relaxed);
    c.iso8601
        .store(options.format == LogFormat::Iso8601, Ordering::Relaxed);
    let writer = match &options.file {
        Some(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| {
                    ServerError::invalid(format!(
                        "--log-file: cannot open '{}': {e}",
                        path.display()
                    ))
                })?;
            *c.file.lock().unwrap_or_else(|e| e.into_inner()) = path.display().to_string();
            BoxMakeWriter::new(Mutex::new(file))
        }
        None => BoxMakeWriter::new(std::io::stderr),
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(options.file.is_none() && std::io::stderr().is_terminal())
        .with_timer(Timestamp)
        .with_filter(filter::filter_fn(enabled));
    tracing_subscriber::registry()
        .with(layer)
        .try_init()
        .map_err(|e| ServerError::internal(format!("cannot install the logger: {e}")))
}

/// Whether a log line passes the current settings.
fn enabled(metadata: &Metadata<'_>) -> bool {
    let c = controls();
    let ours = metadata.target().starts_with("ferrite");
    match *metadata.level() {
        Level::ERROR => c.error.load(Ordering::Relaxed),
        Level::WARN => c.warning.load(Ordering::Relaxed),
        Level::INFO => c.info.load(Ordering::Relaxed),
        Level::DEBUG => {
            let verbose = c.verbose.load(Ordering::Relaxed);
            verbose >= 2 || (ours && verbose >= 1)
        }
        _ => ours && c.verbose.load(Ordering::Relaxed) >= 2,
    }
}

/// The current settings.
pub fn settings() -> LogSettings {
    let c = controls();
    LogSettings {
        log_file: c.file.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        log_info: c.info.load(Ordering::Relaxed),
        log_warning: c.warning.load(Ordering::Relaxed),
        log_error: c.error.load(Ordering::Relaxed),
        log_verbose_level: c.verbose.load(Ordering::Relaxed),
        log_format: if c.iso8601.load(Ordering::Relaxed) {
            LogFormat::Iso8601.name()
        } else {
            LogFormat::Default.name()
        }
        .to_string(),
    }
}

/// Applies an update and returns the settings after it. Every change is
/// checked before any is applied; errors name the setting.
pub fn update(changes: &[(String, SettingValue)]) -> Result<LogSettings, ServerError> {
    let current = settings();
    let mut next = current.clone();
    for (name, value) in changes {
        let wrong = |want: &str| {
            ServerError::invalid(format!(
                "log setting '{name}' must be {want}, got {value:?}"
            ))
        };
        match (name.as_str(), value) {
            ("log_info", SettingValue::Bool(b)) => next.log_info = *b,
            ("log_warning", SettingValue::Bool(b)) => next.log_warning = *b,
            ("log_error", SettingValue::Bool(b)) => next.log_error = *b,
            ("log_info" | "log_warning" | "log_error", _) => return Err(wrong("a boolean")),
            ("log_verbose_level", SettingValue::Uint(n)) => next.log_verbose_level = *n,
            ("log_verbose_level", _) => return Err(wrong("an unsigned integer")),
            ("log_format", SettingValue::Text(text)) => {
                next.log_format = match text.as_str() {
                    "default" => LogFormat::Default.name().to_string(),
                    "ISO8601" => LogFormat::Iso8601.name().to_string(),
                    other => {
                        return Err(ServerError::invalid(format!(
                            "log setting 'log_format' must be 'default' or 'ISO8601', got '{other}'"
                        )))
                    }
                }
            }
            ("log_format", _) => return Err(wrong("a string")),
            ("log_file", SettingValue::Text(path)) => {
                if *path != current.log_file {
                    return Err(ServerError::invalid(format!(
                        "log setting 'log_file' cannot change while the server runs (it is '{}'); set --log-file at start-up",
                        current.log_file
                    )));
                }
            }
            ("log_file", _) => return Err(wrong("a string")),
            _ => {
                return Err(ServerError::invalid(format!(
                    "unknown log setting '{name}'"
                )))
            }
        }
    }
    let c = controls();
    c.info.store(next.log_info, Ordering::Relaxed);
    c.warning.store(next.log_warning, Ordering::Relaxed);
    c.error.store(next.log_error, Ordering::Relaxed);
    c.verbose.store(next.log_verbose_level, Ordering::Relaxed);
    c.iso8601.store(
        next.log_format == LogFormat::Iso8601.name(),
        Ordering::Relaxed,
    );
    Ok(next)
}

/// The time stamp of a log line in the current format.
struct Timestamp;

impl FormatTime for Timestamp {
    fn format_time(&self, w: &mut Writer<'_>) -> std::fmt::Result {
        if controls().iso8601.load(Ordering::Relaxed) {
            return SystemTime.format_time(w);
        }
        let since = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = since.as_secs();
        let (_, month, day) = civil_date(secs / 86_400);
        let of_day = secs % 86_400;
        write!(
            w,
            "{month:02}{day:02} {:02}:{:02}:{:02}.{:06}",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60,
            since.subsec_micros()
        )
    }
}

/// Year, month and day of a day count since 1970-01-01 (proleptic
/// Gregorian calendar).
fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(19_782), (2024, 2, 29));
        assert_eq!(civil_date(20_454), (2026, 1, 1));
    }

    #[test]
    fn updates_are_checked_before_they_apply() {
        let before = settings();
        let err = update(&[
            ("log_info".into(), SettingValue::Bool(!before.log_info)),
            ("log_verbose_level".into(), SettingValue::Text("x".into())),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("log_verbose_level"), "{err}");
        assert_eq!(settings(), before);
        let err =
            update(&[("log_file".into(), SettingValue::Text("/tmp/x.log".into()))]).unwrap_err();
        assert!(err.to_string().contains("log_file"), "{err}");
        let err = update(&[("colour".into(), SettingValue::Bool(true))]).unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
        let after = update(&[("log_format".into(), SettingValue::Text("ISO8601".into()))]).unwrap();
        assert_eq!(after.log_format, "ISO8601");
        assert_eq!(settings(), after);
        update(&[("log_format".into(), SettingValue::Text(before.log_format))]).unwrap();
    }
}
