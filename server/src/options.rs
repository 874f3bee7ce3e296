//! Command-line options, with tritonserver's flag names and defaults.
//! Boolean flags take `--flag`, `--flag=true` or `--flag=false`.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{Parser, ValueEnum};

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

    /// Metrics port; 0 picks a free one.
    #[arg(long, default_value_t = 8002)]
    pub metrics_port: u16,

    /// Address the metrics server binds.
    #[arg(long, default_value = "0.0.0.0")]
    pub metrics_address: IpAddr,

    /// Readiness requires every model to be ready (else: the server is up).
    #[arg(long, default_value = "true", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub strict_readiness: bool,

    /// Exit when a model fails to load at start-up.
    #[arg(long, default_value = "true", value_parser = BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true")]
    pub exit_on_error: bool,

    /// Verbose logging level; 0 is off, 1 and more log debug details.
    #[arg(long, default_value_t = 0)]
    pub log_verbose: u32,

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
    fn rejects_bad_values() {
        let args = ["ferrite", "--model-repository", "/m", "--allow-http=maybe"];
        assert!(Options::try_parse_from(args).is_err());
        assert!(Options::try_parse_from(["ferrite"]).is_err());
    }
}
