//! The state both front ends share: the model manager and server-wide
//! settings. One `Arc<ServerState>` is the `Infer` handle of DESIGN.md.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::limits::Limits;
use crate::manager::ModelManager;
use crate::trace::Tracer;

/// Server name and version reported by the metadata endpoints.
pub const SERVER_NAME: &str = "ferrite";
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug)]
pub struct ServerState {
    pub manager: Arc<ModelManager>,
    /// Largest HTTP request body accepted, in bytes.
    pub http_max_input_size: usize,
    /// Per-request tensor limits, for both front ends.
    pub limits: Limits,
    /// Whether readiness requires every model to be ready.
    pub strict_readiness: bool,
    /// Request tracing and the trace extension's settings.
    pub tracer: Tracer,
    shutting_down: AtomicBool,
}

impl ServerState {
    pub fn new(
        manager: Arc<ModelManager>,
        http_max_input_size: usize,
        limits: Limits,
        strict_readiness: bool,
        tracer: Tracer,
    ) -> Self {
        Self {
            manager,
            http_max_input_size,
            limits,
            strict_readiness,
            tracer,
            shutting_down: AtomicBool::new(false),
        }
    }

    /// The server answers requests (false once shutdown began).
    pub fn live(&self) -> bool {
        !self.shutting_down.load(Ordering::Acquire)
    }

    /// The server is live and, with strict readiness, every model loaded.
    pub fn ready(&self) -> bool {
        self.live() && (!self.strict_readiness || self.manager.all_ready())
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
    }
}
