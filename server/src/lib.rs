//! ferrite-server: the `ferrite` binary's library. It loads a Triton model
//! repository through the model manager and answers the KServe v2 protocol
//! over HTTP and gRPC, with Prometheus metrics beside it.
//!
//! [`Server::start`] runs the whole server in-process (the integration
//! tests use it on port 0); `main` adds the CLI, logging and signals.

pub mod error;
mod fingerprint;
pub mod grpc;
pub mod http;
pub mod limits;
mod loader;
pub mod logging;
pub mod manager;
pub mod metrics;
pub mod model;
pub mod options;
mod override_files;
pub mod selftest;
pub mod server;
pub mod state;
pub mod trace;
mod warmup;

pub use error::{ErrorKind, ServerError};
pub use options::Options;
pub use server::Server;
