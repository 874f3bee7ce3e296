//! Start-up and shutdown of the whole server: load the models, bind the
//! listeners, serve until told to stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ferrite_repository::RepositoryOptions;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::manager::{ManagerOptions, ModelManager};
use crate::options::{ControlMode, Options};
use crate::state::ServerState;
use crate::trace::Tracer;
use crate::{grpc, http, metrics};

/// A running server and the addresses it listens on.
pub struct Server {
    pub http: Option<SocketAddr>,
    pub grpc: Option<SocketAddr>,
    pub metrics: Option<SocketAddr>,
    pub state: Arc<ServerState>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    exit_timeout: Duration,
}

impl Server {
    /// Loads the repository and starts the enabled front ends.
    pub async fn start(options: Options) -> anyhow::Result<Self> {
        let trace = options
            .trace_options()
            .map_err(|e| anyhow::anyhow!("invalid --trace-config: {e}"))?;
        ferrite_scheduler::set_latency_histograms(options.histogram_latencies());
        let repository = RepositoryOptions {
            roots: options.model_repositories.clone(),
            auto_complete: !options.disable_auto_complete_config,
        };
        let manager = Arc::new(ModelManager::new(ManagerOptions {
            repository,
            mode: options.model_control_mode,
            startup_models: options.load_models.clone(),
            load_threads: options.model_load_thread_count,
        }));
        let loader = Arc::clone(&manager);
        let failures = tokio::task::spawn_blocking(move || loader.load_startup())
            .await
            .context("model loading stopped unexpectedly")??;
        if options.exit_on_error && !failures.is_empty() {
            let names: Vec<&str> = failures.iter().map(|(name, _)| name.as_str()).collect();
            let unloader = Arc::clone(&manager);
            tokio::task::spawn_blocking(move || unloader.unload_all(Duration::ZERO)).await?;
            anyhow::bail!(
                "failed to load {} model(s): {} (start with --exit-on-error=false to serve the others)",
                names.len(),
                names.join(", ")
            );
        }
        let state = Arc::new(ServerState::new(
            Arc::clone(&manager),
            options.http_max_input_size,
            options.limits(),
            options.strict_readiness,
            Tracer::start(trace).map_err(|e| anyhow::anyhow!(e))?,
        ));
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        if options.model_control_mode == ControlMode::Poll {
            let interval = Duration::from_secs(options.repository_poll_secs.max(1));
            tasks.push(poll_repository(
                Arc::clone(&manager),
                interval,
                stopped.clone(),
            ));
        }
        let mut http_addr = None;
        if options.allow_http {
            let listener = bind(options.http_address, options.http_port, "HTTP").await?;
            http_addr = Some(listener.local_addr()?);
            tasks.push(serve(
                listener,
                http::router(Arc::clone(&state)),
                stopped.clone(),
            ));
        }
        let mut metrics_addr = None;
        if options.allow_metrics {
            let listener = bind(options.metrics_address, options.metrics_port, "metrics").await?;
            metrics_addr = Some(listener.local_addr()?);
            tasks.push(serve(
                listener,
                metrics::router(
                    Arc::clone(&state),
                    metrics::Sources {
                        cpu: options.allow_cpu_metrics,
                        gpu: options.allow_gpu_metrics,
                    },
                ),
                stopped.clone(),
            ));
        }
        let mut grpc_addr = None;
        if options.allow_grpc {
            let listener = bind(options.grpc_address, options.grpc_port, "gRPC").await?;
            grpc_addr = Some(listener.local_addr()?);
            tasks.push(grpc::serve(listener, Arc::clone(&state), stopped.clone()));
        }
        Ok(Self {
            http: http_addr,
            grpc: grpc_addr,
            metrics: metrics_addr,
            state,
            stop,
            tasks,
            exit_timeout: Duration::from_secs(options.exit_timeout_secs),
        })
    }

    /// The line scripts read to find the server: only enabled endpoints.
    pub fn ready_line(&self) -> String {
        let mut line = String::from("ferrite ready");
        for (name, addr) in [
            ("http", self.http),
            ("grpc", self.grpc),
            ("metrics", self.metrics),
        ] {
            if let Some(addr) = addr {
                line.push_str(&format!(" {name}={addr}"));
            }
        }
        line
    }

    /// Stops accepting requests, answers those in flight, unloads the models.
    pub async fn shutdown(self) {
        self.state.begin_shutdown();
        let _ = self.stop.send(true);
        let drain = async {
            for task in self.tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(self.exit_timeout, drain)
            .await
            .is_err()
        {
            tracing::warn!(
                "front ends still had requests after {:?}",
                self.exit_timeout
            );
        }
        self.state.tracer.shutdown().await;
        let manager = Arc::clone(&self.state.manager);
        let timeout = self.exit_timeout;
        let _ = tokio::task::spawn_blocking(move || manager.unload_all(timeout)).await;
    }
}

async fn bind(address: std::net::IpAddr, port: u16, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind((address, port))
        .await
        .with_context(|| format!("cannot bind the {what} port {address}:{port}"))
}

fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        if let Err(error) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!("server stopped: {error}");
        }
    })
}

/// Rescans the repository every `interval` until the server stops.
fn poll_repository(
    manager: Arc<ModelManager>,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stopped.wait_for(|stop| *stop) => return,
            }
            let poller = Arc::clone(&manager);
            match tokio::task::spawn_blocking(move || poller.poll()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::error!("repository poll failed: {error}"),
                Err(error) => tracing::error!("repository poll stopped: {error}"),
            }
        }
    })
}
