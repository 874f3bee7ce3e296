//! The gRPC front end: Triton's `inference.GRPCInferenceService` (the KServe
//! v2 gRPC protocol with Triton's extensions) and the standard
//! `grpc.health.v1.Health` service, on one listener.
//!
//! Wire behaviour follows tritonserver so that `tritonclient.grpc` and
//! `perf_analyzer -i grpc` work unchanged:
//!
//! * Inputs come from `raw_input_contents` (one entry per input, in order)
//!   or from each input's typed `contents`, never both. Raw entries are
//!   slices of the received message buffer; they are not copied. Outputs are
//!   answered in `raw_output_contents`, where Triton's clients read them.
//! * `ModelStreamInfer` answers every request of a stream in the client's
//!   order while up to [`stream::MAX_IN_FLIGHT`] of them run at once. A failed
//!   request is answered with `error_message` and the stream stays open.
//! * Errors carry the code of the one error table in [`crate::error`] and the
//!   same messages as the HTTP front end. A message that is not valid
//!   protobuf is answered INTERNAL, as the gRPC status-code guide asks.
//! * Messages up to [`MAX_MESSAGE_SIZE`] bytes are accepted and sent, gzip
//!   compressed requests are accepted, and HTTP/2 keepalive uses
//!   tritonserver's defaults (a ping every 2 hours, 20 s to answer it);
//!   client pings are always answered.
//! * `RepositoryModelLoad` and `RepositoryModelUnload` go to the model
//!   manager, which honours them in the `explicit` model control mode and
//!   answers UNAVAILABLE in the others, as tritonserver does. Shared memory
//!   answers UNIMPLEMENTED.
//! * `TraceSetting` reads and changes the trace settings (see
//!   [`crate::trace`]): an empty model name is the global settings, a
//!   setting without values clears a model's override, a call without
//!   settings only reads. `LogSettings` reads and changes the log settings.
//! * A `traceparent` metadata entry (W3C Trace Context) on `ModelInfer` or
//!   on a `ModelStreamInfer` stream makes the client's span the parent of
//!   the requests' spans.
//!
//! Request, input and output parameters follow the HTTP front end's rules
//! (see [`crate::http::codec`]).

mod contents;
mod health;
mod infer;
mod parameters;
mod reply;
mod repository;
mod service;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use ferrite_proto::health::health_server::HealthServer;
use ferrite_proto::inference::grpc_inference_service_server::GrpcInferenceServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;

use crate::error::ServerError;
use crate::state::ServerState;

pub use health::HealthService;
pub use infer::{decode, Decoded};
pub use service::InferenceService;

/// Largest message accepted or sent, in bytes: a 64 MiB tensor (the HTTP
/// front end's default body limit) with room for the rest of the message.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024 + 16 * 1024 * 1024;

/// Interval of the server's HTTP/2 keepalive pings (tritonserver's
/// `--grpc-keepalive-time` default).
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2 * 60 * 60);

/// Time a client has to answer a keepalive ping (tritonserver's
/// `--grpc-keepalive-timeout` default).
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

impl From<ServerError> for tonic::Status {
    fn from(error: ServerError) -> Self {
        tonic::Status::new(error.grpc_code(), error.message)
    }
}

/// Serves the inference and health services on `listener` until `stopped`
/// turns true, then lets open calls finish. Streams stop reading new
/// requests once `stopped` turns true.
pub fn serve(
    listener: TcpListener,
    state: Arc<ServerState>,
    stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    let inference =
        GrpcInferenceServiceServer::new(InferenceService::new(Arc::clone(&state), stopped.clone()))
            .max_decoding_message_size(MAX_MESSAGE_SIZE)
            .max_encoding_message_size(MAX_MESSAGE_SIZE)
            .accept_compressed(CompressionEncoding::Gzip);
    let health =
        HealthServer::new(HealthService::new(state)).accept_compressed(CompressionEncoding::Gzip);
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut shutdown = stopped;
    tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE_INTERVAL))
            .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT))
            .add_service(inference)
            .add_service(health)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await;
        if let Err(error) = result {
            tracing::error!("gRPC server stopped: {error}");
        }
    })
}
