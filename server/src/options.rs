//! Command-line options, with tritonserver's flag names and defaults.
//! Boolean flags take `--flag`, `--flag=true` or `--flag=false`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Parser, ValueEnum};

use crate::logging::{LogFormat, LogOptions};

use crate::limits::{self, Limits};
use crate::trace::{self, TraceConfig, TraceOptions};

/// How models are loaded and unloaded (tritonserver's
/// `--model-control-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ControlMode {
    /// Load every model at start-up; the load and unload APIs are refused.
    None,
    /// Like none, and rescan the repository every `--repository-poll-secs`.
    Poll,
    /// Load only `--load-model` models at start-up, then what the API asks.
    Explicit,
}

/// ferrite serves the models of one or more Triton model repositories over
/// the KServe v2 protocol.
#[derive(Debug, Clone, Parser)]
#[command(name = "ferrite", version, about, long_about = None)]
pub struct Options {
    /// A model repository folder (repeatable). `--model-store` is accepted
    /// as tritonserver's older name.
    #[arg(
        long = "model-repository",
        alias = "model-store",
        required = true,
        value_name = "DIR"
    )]
    pub model_repositories: Vec<PathBuf>,

    /// Serve HTTP.
    #[arg(long, default_value = "true", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub allow_http: bool,

    /// HTTP port; 0 picks a free one (logged in the ready line).
    #[arg(long, default_value_t = 8000)]
    pub http_port: u16,

    /// Address the HTTP server binds.
    #[arg(long, default_value = "0.0.0.0")]
    pub http_address: IpAddr,

    /// Largest HTTP request body accepted, in bytes.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    pub http_max_input_size: usize,

    /// Most elements in one input tensor of a request (HTTP and gRPC);
    /// checked from the declared shape before the data is decoded.
    #[arg(long, default_value_t = limits::DEFAULT_MAX_TENSOR_ELEMENTS)]
    pub max_tensor_elements: u64,

    /// Most dimensions of one input tensor of a request.
    #[arg(long, default_value_t = limits::DEFAULT_MAX_TENSOR_RANK)]
    pub max_tensor_rank: usize,

    /// Most tensor bytes in all the inputs of one request.
    #[arg(long, default_value_t = limits::DEFAULT_MAX_BATCH_BYTES)]
    pub max_batch_bytes: u64,

    /// Serve gRPC.
    #[arg(long, default_value = "true", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub allow_grpc: bool,

    /// gRPC port; 0 picks a free one.
    #[arg(long, default_value_t = 8001)]
    pub grpc_port: u16,

    /// Address the gRPC server binds.
    #[arg(long, default_value = "0.0.0.0")]
    pub grpc_address: IpAddr,

    /// Serve Prometheus metrics.
    #[arg(long, default_value = "true", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub allow_metrics: bool,

    /// Export the GPUs' utilisation, memory, power and energy (through
    /// NVML, where an NVIDIA driver is installed).
    #[arg(long, default_value = "true", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub allow_gpu_metrics: bool,

    /// Export the host's CPU utilisation and memory.
    #[arg(long, default_value = "true", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub allow_cpu_metrics: bool,

    /// Metrics port; 0 picks a free one.
    #[arg(long, default_value_t = 8002)]
    pub metrics_port: u16,

    /// Address the metrics server binds.
    #[arg(long, default_value = "0.0.0.0")]
    pub metrics_address: IpAddr,

    /// A metrics setting as `KEY=VALUE` (repeatable). Supported:
    /// `histogram_latencies=true|false` (latency histograms, on by default).
    #[arg(long = "metrics-config", value_name = "KEY=VALUE", value_parser = parse_metrics_setting)]
    pub metrics_config: Vec<MetricsSetting>,

    /// A trace setting (repeatable), in tritonserver's syntax:
    /// `mode=triton|opentelemetry` (default triton), `rate=N`,
    /// `level=OFF|TIMESTAMPS|TENSORS` (repeatable; TENSORS in triton mode),
    /// `count=N` (-1: unlimited),
    /// `triton,file=PATH`, `triton,log-frequency=N`,
    /// `opentelemetry,url=HOST:PORT/PATH`,
    /// `opentelemetry,resource=KEY=VALUE`,
    /// `opentelemetry,bsp_max_queue_size=N`,
    /// `opentelemetry,bsp_schedule_delay=MS`,
    /// `opentelemetry,bsp_max_export_batch_size=N`.
    #[arg(long = "trace-config", value_name = "[MODE,]SETTING=VALUE", value_parser = trace::parse_trace_config)]
    pub trace_config: Vec<TraceConfig>,

    /// Readiness requires every model to be ready (else: the server is up).
    #[arg(long, default_value = "true", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub strict_readiness: bool,

    /// Exit when a model fails to load at start-up.
    #[arg(long, default_value = "true", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub exit_on_error: bool,

    /// Verbose logging level; 0 is off, 1 and more log debug details.
    #[arg(long, default_value_t = 0)]
    pub log_verbose: u32,

    /// Log informational lines.
    #[arg(long, default_value = "true", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub log_info: bool,

    /// Log warnings.
    #[arg(long, default_value = "true", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub log_warning: bool,

    /// Log errors.
    #[arg(long, default_value = "true", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub log_error: bool,

    /// Time stamp format of log lines.
    #[arg(long, value_enum, default_value = "default")]
    pub log_format: LogFormat,

    /// Append logs to this file instead of stderr.
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// Do not complete missing config fields from the model file.
    #[arg(long, default_value = "false", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub disable_auto_complete_config: bool,

    /// Model control mode.
    #[arg(long, value_enum, default_value = "none")]
    pub model_control_mode: ControlMode,

    /// Model to load at start-up in explicit mode (repeatable; `*` loads
    /// every model).
    #[arg(long = "load-model", value_name = "MODEL")]
    pub load_models: Vec<String>,

    /// Seconds between repository scans in poll mode.
    #[arg(long, default_value_t = 15)]
    pub repository_poll_secs: u64,

    /// Models loaded in parallel.
    #[arg(long, default_value_t = 4)]
    pub model_load_thread_count: usize,

    /// Seconds to wait for in-flight requests at shutdown.
    #[arg(long, default_value_t = 30)]
    pub exit_timeout_secs: u64,
}

impl Options {
    /// The per-request limits the flags set.
    pub fn limits(&self) -> Limits {
        Limits {
            max_tensor_elements: self.max_tensor_elements,
            max_tensor_rank: self.max_tensor_rank,
            max_batch_bytes: self.max_batch_bytes,
        }
    }
}

impl Options {
    /// The tracing options the `--trace-config` values give; an error
    /// names the settings that do not fit together.
    pub fn trace_options(&self) -> Result<TraceOptions, String> {
        trace::trace_options(&self.trace_config)
    }

    /// The logging options among these.
    pub fn log_options(&self) -> LogOptions {
        LogOptions {
            info: self.log_info,
            warning: self.log_warning,
            error: self.log_error,
            verbose: self.log_verbose,
            format: self.log_format,
            file: self.log_file.clone(),
        }
    }
}

/// One `--metrics-config` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsSetting {
    /// `histogram_latencies`: record and export latency histograms.
    HistogramLatencies(bool),
}

fn parse_metrics_setting(setting: &str) -> Result<MetricsSetting, String> {
    let (key, value) = setting
        .split_once('=')
        .ok_or_else(|| format!("metrics setting '{setting}' is not KEY=VALUE"))?;
    match key {
        "histogram_latencies" => match value {
            "true" | "1" => Ok(MetricsSetting::HistogramLatencies(true)),
            "false" | "0" => Ok(MetricsSetting::HistogramLatencies(false)),
            _ => Err(format!(
                "metrics setting 'histogram_latencies' takes true or false, got '{value}'"
            )),
        },
        _ => Err(format!(
            "unknown metrics setting '{key}' (supported: histogram_latencies)"
        )),
    }
}

impl Options {
    /// Whether latency histograms are recorded (the last
    /// `histogram_latencies` setting wins; on by default).
    pub fn histogram_latencies(&self) -> bool {
        self.metrics_config
            .iter()
            .rev()
            .map(|MetricsSetting::HistogramLatencies(on)| *on)
            .next()
            .unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Options {
        Options::try_parse_from(std::iter::once("ferrite").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn tritonserver_defaults() {
        let o = parse(&["--model-repository", "/m"]);
        assert_eq!(
            (o.http_port, o.grpc_port, o.metrics_port),
            (8000, 8001, 8002)
        );
        assert!(o.allow_http && o.allow_grpc && o.allow_metrics);
        assert!(o.strict_readiness && o.exit_on_error);
        assert!(!o.disable_auto_complete_config);
        assert_eq!(o.http_max_input_size, 64 * 1024 * 1024);
        assert_eq!(o.limits(), Limits::default());
        assert_eq!(o.model_control_mode, ControlMode::None);
        assert_eq!(o.repository_poll_secs, 15);
    }

    #[test]
    fn control_mode_and_startup_models() {
        let o = parse(&[
            "--model-repository=/m",
            "--model-control-mode=explicit",
            "--load-model=a",
            "--load-model",
            "*",
        ]);
        assert_eq!(o.model_control_mode, ControlMode::Explicit);
        assert_eq!(o.load_models, vec!["a", "*"]);
        let bad = [
            "ferrite",
            "--model-repository=/m",
            "--model-control-mode=sometimes",
        ];
        assert!(Options::try_parse_from(bad).is_err());
    }

    #[test]
    fn boolean_flags_take_values() {
        let o = parse(&[
            "--model-repository=/a",
            "--model-store",
            "/b",
            "--allow-grpc=false",
            "--strict-readiness",
            "false",
            "--disable-auto-complete-config",
            "--exit-on-error=0",
        ]);
        assert_eq!(
            o.model_repositories,
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
        assert!(!o.allow_grpc && !o.strict_readiness && !o.exit_on_error);
        assert!(o.disable_auto_complete_config);
    }

    #[test]
    fn logging_flags() {
        let o = parse(&["--model-repository=/m"]);
        let log = o.log_options();
        assert!(log.info && log.warning && log.error && log.file.is_none());
        assert_eq!((log.verbose, log.format), (0, LogFormat::Default));
        let o = parse(&[
            "--model-repository=/m",
            "--log-info=false",
            "--log-error",
            "false",
            "--log-verbose=2",
            "--log-format=ISO8601",
            "--log-file=/tmp/f.log",
        ]);
        let log = o.log_options();
        assert!(!log.info && log.warning && !log.error);
        assert_eq!((log.verbose, log.format), (2, LogFormat::Iso8601));
        assert_eq!(log.file, Some(PathBuf::from("/tmp/f.log")));
        let bad = ["ferrite", "--model-repository=/m", "--log-format=json"];
        assert!(Options::try_parse_from(bad).is_err());
    }

    #[test]
    fn metrics_config_settings() {
        assert!(parse(&["--model-repository=/m"]).histogram_latencies());
        let o = parse(&[
            "--model-repository=/m",
            "--metrics-config",
            "histogram_latencies=false",
        ]);
        assert_eq!(
            o.metrics_config,
            vec![MetricsSetting::HistogramLatencies(false)]
        );
        assert!(!o.histogram_latencies());
        for (bad, named) in [
            (
                "--metrics-config=summary_latencies=true",
                "summary_latencies",
            ),
            ("--metrics-config=histogram_latencies=maybe", "maybe"),
            ("--metrics-config=histogram_latencies", "KEY=VALUE"),
        ] {
            let error = Options::try_parse_from(["ferrite", "--model-repository=/m", bad])
                .unwrap_err()
                .to_string();
            assert!(error.contains(named), "{error}");
        }
    }

    #[test]
    fn trace_config_settings() {
        let o = parse(&[
            "--model-repository=/m",
            "--trace-config",
            "mode=opentelemetry",
            "--trace-config=level=TIMESTAMPS",
            "--trace-config",
            "opentelemetry,url=127.0.0.1:4318/v1/traces",
        ]);
        let trace = o.trace_options().unwrap();
        assert_eq!(trace.settings.level, trace::TraceLevel::TIMESTAMPS);
        assert_eq!(
            trace.export.endpoint.to_string(),
            "http://127.0.0.1:4318/v1/traces"
        );
        let error = Options::try_parse_from([
            "ferrite",
            "--model-repository=/m",
            "--trace-config=mode=jaeger",
        ])
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("--trace-config") && error.contains("jaeger"),
            "{error}"
        );
    }

    #[test]
    fn rejects_bad_values() {
        let args = ["ferrite", "--model-repository", "/m", "--allow-http=maybe"];
        assert!(Options::try_parse_from(args).is_err());
        assert!(Options::try_parse_from(["ferrite"]).is_err());
    }
}
