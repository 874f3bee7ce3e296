//! `--trace-config`, in tritonserver's syntax: `SETTING=VALUE` for the
//! global settings (`mode`, `rate`, `level`, `count`),
//! `triton,SETTING=VALUE` for Triton's trace files (`file`,
//! `log-frequency`) and `opentelemetry,SETTING=VALUE` for the OTLP exporter
//! (`url`, `resource`, `bsp_max_queue_size`, `bsp_schedule_delay`,
//! `bsp_max_export_batch_size`). As in tritonserver the mode is `triton`
//! unless `mode=opentelemetry` is given. Settings of the other mode than the
//! one in force, and the TENSORS level in OpenTelemetry mode, are refused
//! with a message naming them rather than ignored.

use std::path::PathBuf;
use std::time::Duration;

use super::export::{Endpoint, ExportOptions};
use super::file::FileOptions;
use super::settings::{parse_count, TraceLevel, TraceSettings, TENSORS_NEED_FILES};

/// Where traces go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TraceMode {
    /// Triton's JSON trace files.
    #[default]
    Triton,
    /// OpenTelemetry spans over OTLP/HTTP.
    OpenTelemetry,
}

impl TraceMode {
    /// The name `--trace-config mode=` and the `trace_mode` setting use.
    pub fn name(self) -> &'static str {
        match self {
            TraceMode::Triton => "triton",
            TraceMode::OpenTelemetry => "opentelemetry",
        }
    }
}

/// One `--trace-config` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceConfig {
    Mode(TraceMode),
    File(PathBuf),
    LogFrequency(u32),
    Rate(u32),
    Level(TraceLevel),
    Count(i64),
    Url(Endpoint),
    Resource(String, String),
    MaxQueueSize(usize),
    ScheduleDelay(Duration),
    MaxExportBatchSize(usize),
}

/// Everything the tracer starts with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceOptions {
    pub settings: TraceSettings,
    pub mode: TraceMode,
    pub file: FileOptions,
    pub export: ExportOptions,
}

/// Parses one `--trace-config` value.
pub fn parse_trace_config(text: &str) -> Result<TraceConfig, String> {
    let (mode, setting) = match text.split_once(',') {
        Some((mode, setting)) => (Some(mode), setting),
        None => (None, text),
    };
    let (key, value) = setting
        .split_once('=')
        .ok_or_else(|| format!("trace setting '{text}' is not [MODE,]SETTING=VALUE"))?;
    let number = |what: &str| -> Result<usize, String> {
        value
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("'{what}' must be a positive integer, got '{value}'"))
    };
    match (mode, key) {
        (None, "mode") => match value {
            "opentelemetry" => Ok(TraceConfig::Mode(TraceMode::OpenTelemetry)),
            "triton" => Ok(TraceConfig::Mode(TraceMode::Triton)),
            other => Err(format!(
                "unknown trace mode '{other}' (supported: triton, opentelemetry)"
            )),
        },
        (Some("triton"), "file") if !value.is_empty() => {
            Ok(TraceConfig::File(PathBuf::from(value)))
        }
        (Some("triton"), "log-frequency") => value
            .parse()
            .map(TraceConfig::LogFrequency)
            .map_err(|_| format!("'triton,log-frequency' must be an unsigned integer, got '{value}'")),
        (None, "rate") => value.parse().map(TraceConfig::Rate).map_err(|_| {
            format!("'rate' must be an unsigned integer, got '{value}'")
        }),
        (None, "level") => TraceLevel::parse(value, "'level'").map(TraceConfig::Level),
        (None, "count") => parse_count(value)
            .map(TraceConfig::Count)
            .map_err(|e| format!("'count' {e}")),
        (Some("opentelemetry"), "url") => Endpoint::parse(value)
            .map(TraceConfig::Url)
            .map_err(|e| format!("'opentelemetry,url': {e}")),
        (Some("opentelemetry"), "resource") => match value.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok(TraceConfig::Resource(k.into(), v.into())),
            _ => Err(format!(
                "'opentelemetry,resource' takes KEY=VALUE, got '{value}'"
            )),
        },
        (Some("opentelemetry"), "bsp_max_queue_size") => {
            number("bsp_max_queue_size").map(TraceConfig::MaxQueueSize)
        }
        (Some("opentelemetry"), "bsp_schedule_delay") => value
            .parse::<u64>()
            .map(|ms| TraceConfig::ScheduleDelay(Duration::from_millis(ms)))
            .map_err(|_| {
                format!("'bsp_schedule_delay' must be milliseconds, got '{value}'")
            }),
        (Some("opentelemetry"), "bsp_max_export_batch_size") => {
            number("bsp_max_export_batch_size").map(TraceConfig::MaxExportBatchSize)
        }
        (Some("triton"), other) => Err(format!(
            "unknown triton trace setting '{other}' in '{text}' (supported: file=PATH, log-frequency)"
        )),
        (Some("opentelemetry"), other) => Err(format!(
            "unknown OpenTelemetry trace setting '{other}' (supported: url, resource, bsp_max_queue_size, bsp_schedule_delay, bsp_max_export_batch_size)"
        )),
        (Some(other), _) => Err(format!(
            "unknown trace mode '{other}' in '{text}' (supported: triton, opentelemetry)"
        )),
        (None, other) => Err(format!(
            "unknown trace setting '{other}' (supported: mode, rate, level, count, triton,<setting> and opentelemetry,<setting>)"
        )),
    }
}

/// The options `configs` give, in order (a later value wins; levels
/// combine as in tritonserver, so TIMESTAMPS with OFF traces). Settings of
/// the mode not in force are refused, Triton's mode needs a file to trace
/// at start, and the export batch may not exceed the queue.
pub fn trace_options(configs: &[TraceConfig]) -> Result<TraceOptions, String> {
    let mut options = TraceOptions::default();
    let mut levels = Vec::new();
    let (mut triton_setting, mut otel_setting) = (None, None);
    for config in configs {
        match config {
            TraceConfig::Mode(mode) => options.mode = *mode,
            TraceConfig::File(path) => {
                options.file.path = Some(path.clone());
                triton_setting = Some("triton,file");
            }
            TraceConfig::LogFrequency(every) => {
                options.file.log_frequency = *every;
                triton_setting = Some("triton,log-frequency");
            }
            TraceConfig::Rate(rate) => options.settings.rate = *rate,
            TraceConfig::Level(level) => levels.push(*level),
            TraceConfig::Count(count) => options.settings.count = *count,
            TraceConfig::Url(endpoint) => options.export.endpoint = endpoint.clone(),
            TraceConfig::Resource(key, value) => {
                options.export.resource.push((key.clone(), value.clone()));
            }
            TraceConfig::MaxQueueSize(size) => options.export.max_queue_size = *size,
            TraceConfig::ScheduleDelay(delay) => options.export.schedule_delay = *delay,
            TraceConfig::MaxExportBatchSize(size) => options.export.max_export_batch_size = *size,
        }
        if matches!(
            config,
            TraceConfig::Url(_)
                | TraceConfig::Resource(..)
                | TraceConfig::MaxQueueSize(_)
                | TraceConfig::ScheduleDelay(_)
                | TraceConfig::MaxExportBatchSize(_)
        ) {
            otel_setting = Some("an opentelemetry,<setting>");
        }
    }
    match (options.mode, triton_setting, otel_setting) {
        (TraceMode::Triton, _, Some(setting)) => {
            return Err(format!(
                "--trace-config {setting} is given but the trace mode is triton (tritonserver's default); add --trace-config mode=opentelemetry"
            ))
        }
        (TraceMode::OpenTelemetry, Some(setting), _) => {
            return Err(format!(
                "--trace-config {setting} is given but the trace mode is opentelemetry; Triton's trace files need mode=triton"
            ))
        }
        _ => {}
    }
    options.settings.level = levels
        .iter()
        .fold(options.settings.level, |all, level| all.with(*level));
    let level = options.settings.level;
    if options.mode == TraceMode::OpenTelemetry && level.tensors {
        return Err(format!(
            "--trace-config level=TENSORS: {TENSORS_NEED_FILES}"
        ));
    }
    if options.mode == TraceMode::Triton && !level.is_off() && options.file.path.is_none() {
        let named = if level.timestamps {
            "TIMESTAMPS"
        } else {
            "TENSORS"
        };
        return Err(format!(
            "--trace-config level={named} in triton mode needs --trace-config triton,file=PATH (or mode=opentelemetry)"
        ));
    }
    let export = &options.export;
    if export.max_export_batch_size > export.max_queue_size {
        return Err(format!(
            "--trace-config opentelemetry,bsp_max_export_batch_size ({}) must not exceed opentelemetry,bsp_max_queue_size ({})",
            export.max_export_batch_size, export.max_queue_size
        ));
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(values: &[&str]) -> Result<TraceOptions, String> {
        let configs = values
            .iter()
            .map(|v| parse_trace_config(v))
            .collect::<Result<Vec<_>, _>>()?;
        trace_options(&configs)
    }

    #[test]
    fn defaults_are_tritons() {
        let o = options(&[]).unwrap();
        assert_eq!(o.settings, TraceSettings::default());
        assert_eq!(o.mode, TraceMode::Triton);
        assert_eq!(o.file, FileOptions::default());
        assert_eq!(o.export.endpoint.to_string(), Endpoint::DEFAULT);
        assert_eq!(
            (
                o.export.max_queue_size,
                o.export.schedule_delay,
                o.export.max_export_batch_size
            ),
            (2048, Duration::from_secs(5), 512)
        );
    }

    #[test]
    fn reads_every_setting() {
        let o = options(&[
            "mode=opentelemetry",
            "rate=1",
            "level=OFF",
            "level=TIMESTAMPS",
            "count=10",
            "opentelemetry,url=127.0.0.1:9/v1/traces",
            "opentelemetry,resource=service.name=svc",
            "opentelemetry,resource=k=a=b",
            "opentelemetry,bsp_max_queue_size=8",
            "opentelemetry,bsp_schedule_delay=20",
            "opentelemetry,bsp_max_export_batch_size=4",
        ])
        .unwrap();
        assert_eq!(
            o.settings,
            TraceSettings {
                level: TraceLevel::TIMESTAMPS,
                rate: 1,
                count: 10
            }
        );
        assert_eq!(
            o.export.endpoint.to_string(),
            "http://127.0.0.1:9/v1/traces"
        );
        assert_eq!(
            o.export.resource,
            vec![
                ("service.name".to_string(), "svc".to_string()),
                ("k".to_string(), "a=b".to_string())
            ]
        );
        assert_eq!(o.export.schedule_delay, Duration::from_millis(20));
        assert_eq!(
            (o.export.max_queue_size, o.export.max_export_batch_size),
            (8, 4)
        );
    }

    #[test]
    fn reads_triton_mode() {
        let o = options(&[
            "triton,file=/tmp/trace.json",
            "triton,log-frequency=50",
            "level=TIMESTAMPS",
            "level=TENSORS",
            "rate=1",
        ])
        .unwrap();
        assert_eq!(o.mode, TraceMode::Triton);
        assert_eq!(
            o.file,
            FileOptions {
                path: Some(PathBuf::from("/tmp/trace.json")),
                log_frequency: 50
            }
        );
        assert_eq!(
            o.settings.level,
            TraceLevel {
                timestamps: true,
                tensors: true
            }
        );
    }

    #[test]
    fn refuses_what_it_does_not_do() {
        for (bad, named) in [
            ("mode=jaeger", "jaeger"),
            ("triton,file=", "triton,file"),
            ("triton,log-frequency=often", "triton,log-frequency"),
            ("triton,url=x", "url"),
            ("level=TIMESTAMPS", "triton,file=PATH"),
            ("level=TENSORS", "TENSORS"),
            ("level=LOUD", "LOUD"),
            ("rate=-1", "'rate'"),
            ("count=-5", "'count'"),
            ("colour=red", "colour"),
            ("rate", "SETTING=VALUE"),
            ("jaeger,url=x", "jaeger"),
            ("opentelemetry,headers=a", "headers"),
            (
                "opentelemetry,url=https://c:4318/v1/traces",
                "opentelemetry,url",
            ),
            ("opentelemetry,resource=novalue", "KEY=VALUE"),
            ("opentelemetry,bsp_max_queue_size=0", "bsp_max_queue_size"),
            (
                "opentelemetry,bsp_schedule_delay=soon",
                "bsp_schedule_delay",
            ),
        ] {
            let error = options(&[bad]).unwrap_err();
            assert!(error.contains(named), "{bad}: {error}");
        }
        for (mixed, named) in [
            (
                ["mode=triton", "opentelemetry,url=c:4318"],
                "mode=opentelemetry",
            ),
            (["mode=opentelemetry", "triton,file=/t.json"], "mode=triton"),
            (["mode=opentelemetry", "level=TENSORS"], "OpenTelemetry"),
        ] {
            let error = options(&mixed).unwrap_err();
            assert!(error.contains(named), "{mixed:?}: {error}");
        }
        let error = options(&[
            "mode=opentelemetry",
            "opentelemetry,bsp_max_export_batch_size=4096",
        ])
        .unwrap_err();
        assert!(
            error.contains("bsp_max_export_batch_size (4096)"),
            "{error}"
        );
    }
}
