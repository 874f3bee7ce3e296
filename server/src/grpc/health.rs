//! The standard gRPC health service (`grpc.health.v1.Health/Check`): the
//! server, or the inference service by name, is SERVING while the server is
//! ready and NOT_SERVING otherwise; any other service name is NOT_FOUND, as
//! the health-checking protocol asks.

use std::sync::Arc;

use ferrite_proto::health::health_check_response::ServingStatus;
use ferrite_proto::health::health_server::Health;
use ferrite_proto::health::{HealthCheckRequest, HealthCheckResponse};
use tonic::{Request, Response, Status};

use crate::state::ServerState;

/// Full name of the inference service, as health checks may name it.
pub const INFERENCE_SERVICE: &str = "inference.GRPCInferenceService";

/// The health service over the shared server state.
#[derive(Debug, Clone)]
pub struct HealthService {
    state: Arc<ServerState>,
}

impl HealthService {
    /// A health service reporting the readiness of `state`.
    pub fn new(state: Arc<ServerState>) -> Self {
        Self { state }
    }
}

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = request.into_inner().service;
        if !service.is_empty() && service != INFERENCE_SERVICE {
            return Err(Status::not_found(format!("unknown service '{service}'")));
        }
        let status = if self.state.ready() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        Ok(Response::new(HealthCheckResponse {
            status: status.into(),
        }))
    }
}
