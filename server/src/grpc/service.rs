//! `inference.GRPCInferenceService`: each RPC answered from the shared
//! server state.

use std::sync::Arc;
use std::time::Instant;

use ferrite_proto::inference::grpc_inference_service_server::GrpcInferenceService;
use ferrite_proto::inference::*;
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{infer, reply, repository, stream};
use crate::error::ServerError;
use crate::http::metadata::EXTENSIONS;
use crate::logging::{self, SettingValue};
use crate::manager::ModelManager;
use crate::state::{ServerState, SERVER_NAME, SERVER_VERSION};
use crate::trace::Given;

/// The inference service over the shared server state.
#[derive(Debug, Clone)]
pub struct InferenceService {
    state: Arc<ServerState>,
    stopped: watch::Receiver<bool>,
}

impl InferenceService {
    /// A service answering from `state`; streams stop taking requests once
    /// `stopped` turns true.
    pub fn new(state: Arc<ServerState>, stopped: watch::Receiver<bool>) -> Self {
        Self { state, stopped }
    }
}

type RpcResult<T> = Result<Response<T>, Status>;

fn repository_name(name: &str) -> Result<(), ServerError> {
    if name.is_empty() {
        Ok(())
    } else {
        Err(ServerError::unsupported(
            "'repository_name' specification is not supported",
        ))
    }
}

/// Runs a model-manager call that blocks (loading, unloading) off the
/// async runtime.
async fn blocking(
    call: impl FnOnce() -> Result<(), ServerError> + Send + 'static,
) -> Result<(), ServerError> {
    tokio::task::spawn_blocking(call)
        .await
        .map_err(|e| ServerError::internal(format!("the model repository call stopped: {e}")))?
}

fn unsupported<T>(feature: &str) -> RpcResult<T> {
    Err(ServerError::unsupported(format!("{feature} is not supported by ferrite")).into())
}

#[tonic::async_trait]
impl GrpcInferenceService for InferenceService {
    async fn server_live(&self, _: Request<ServerLiveRequest>) -> RpcResult<ServerLiveResponse> {
        Ok(Response::new(ServerLiveResponse {
            live: self.state.live(),
        }))
    }

    async fn server_ready(&self, _: Request<ServerReadyRequest>) -> RpcResult<ServerReadyResponse> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.state.ready(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> RpcResult<ModelReadyResponse> {
        let request = request.into_inner();
        let version = ModelManager::parse_version(&request.version)?;
        let ready = self.state.live() && self.state.manager.get(&request.name, version).is_ok();
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> RpcResult<ServerMetadataResponse> {
        Ok(Response::new(ServerMetadataResponse {
            name: SERVER_NAME.to_string(),
            version: SERVER_VERSION.to_string(),
            extensions: EXTENSIONS.iter().map(|e| (*e).to_string()).collect(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> RpcResult<ModelMetadataResponse> {
        let request = request.into_inner();
        let version = ModelManager::parse_version(&request.version)?;
        let model = self.state.manager.get(&request.name, version)?;
        let versions: Vec<i64> = match version {
            Some(version) => vec![version],
            None => self
                .state
                .manager
                .versions(&request.name)
                .iter()
                .map(|m| m.version)
                .collect(),
        };
        Ok(Response::new(reply::metadata(&model, &versions)))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> RpcResult<ModelInferResponse> {
        let arrival = Instant::now();
        let parent = infer::trace_parent(request.metadata());
        let response = infer::infer(&self.state, request.into_inner(), arrival, parent).await?;
        Ok(Response::new(response))
    }

    type ModelStreamInferStream = ReceiverStream<Result<ModelStreamInferResponse, Status>>;

    async fn model_stream_infer(
        &self,
        request: Request<Streaming<ModelInferRequest>>,
    ) -> RpcResult<Self::ModelStreamInferStream> {
        let parent = infer::trace_parent(request.metadata());
        let responses = stream::start(
            Arc::clone(&self.state),
            request.into_inner(),
            self.stopped.clone(),
            parent,
        );
        Ok(Response::new(responses))
    }

    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> RpcResult<ModelConfigResponse> {
        let request = request.into_inner();
        let version = ModelManager::parse_version(&request.version)?;
        let model = self.state.manager.get(&request.name, version)?;
        Ok(Response::new(ModelConfigResponse {
            config: Some(model.config.clone()),
        }))
    }

    async fn model_statistics(
        &self,
        request: Request<ModelStatisticsRequest>,
    ) -> RpcResult<ModelStatisticsResponse> {
        let request = request.into_inner();
        let manager = &self.state.manager;
        let version = ModelManager::parse_version(&request.version)?;
        let models = match (request.name.as_str(), version) {
            ("", None) => manager.all_loaded(),
            ("", Some(_)) => {
                return Err(
                    ServerError::invalid("a model version was given without a model name").into(),
                )
            }
            (name, Some(version)) => vec![manager.get(name, Some(version))?],
            (name, None) => {
                let versions = manager.versions(name);
                if versions.is_empty() {
                    manager.get(name, None)?;
                }
                versions
            }
        };
        Ok(Response::new(ModelStatisticsResponse {
            model_stats: models.iter().map(|m| reply::statistics(m)).collect(),
        }))
    }

    async fn repository_index(
        &self,
        request: Request<RepositoryIndexRequest>,
    ) -> RpcResult<RepositoryIndexResponse> {
        let request = request.into_inner();
        repository_name(&request.repository_name)?;
        let models = self
            .state
            .manager
            .index()
            .into_iter()
            .filter(|entry| !request.ready || entry.state == crate::manager::ModelState::Ready)
            .map(reply::index_entry)
            .collect();
        Ok(Response::new(RepositoryIndexResponse { models }))
    }

    async fn repository_model_load(
        &self,
        request: Request<RepositoryModelLoadRequest>,
    ) -> RpcResult<RepositoryModelLoadResponse> {
        let request = request.into_inner();
        repository_name(&request.repository_name)?;
        let load = repository::load_request(request.parameters)?;
        let manager = Arc::clone(&self.state.manager);
        let name = request.model_name;
        blocking(move || manager.load(&name, load)).await?;
        Ok(Response::new(RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        request: Request<RepositoryModelUnloadRequest>,
    ) -> RpcResult<RepositoryModelUnloadResponse> {
        let request = request.into_inner();
        repository_name(&request.repository_name)?;
        repository::check_unload(&request.parameters)?;
        let manager = Arc::clone(&self.state.manager);
        let name = request.model_name;
        blocking(move || manager.unload(&name)).await?;
        Ok(Response::new(RepositoryModelUnloadResponse {}))
    }

    async fn system_shared_memory_status(
        &self,
        _: Request<SystemSharedMemoryStatusRequest>,
    ) -> RpcResult<SystemSharedMemoryStatusResponse> {
        unsupported("system shared memory")
    }

    async fn system_shared_memory_register(
        &self,
        _: Request<SystemSharedMemoryRegisterRequest>,
    ) -> RpcResult<SystemSharedMemoryRegisterResponse> {
        unsupported("system shared memory")
    }

    async fn system_shared_memory_unregister(
        &self,
        _: Request<SystemSharedMemoryUnregisterRequest>,
    ) -> RpcResult<SystemSharedMemoryUnregisterResponse> {
        unsupported("system shared memory")
    }

    async fn cuda_shared_memory_status(
        &self,
        _: Request<CudaSharedMemoryStatusRequest>,
    ) -> RpcResult<CudaSharedMemoryStatusResponse> {
        unsupported("CUDA shared memory")
    }

    async fn cuda_shared_memory_register(
        &self,
        _: Request<CudaSharedMemoryRegisterRequest>,
    ) -> RpcResult<CudaSharedMemoryRegisterResponse> {
        unsupported("CUDA shared memory")
    }

    async fn cuda_shared_memory_unregister(
        &self,
        _: Request<CudaSharedMemoryUnregisterRequest>,
    ) -> RpcResult<CudaSharedMemoryUnregisterResponse> {
        unsupported("CUDA shared memory")
    }

    async fn trace_setting(
        &self,
        request: Request<TraceSettingRequest>,
    ) -> RpcResult<TraceSettingResponse> {
        let request = request.into_inner();
        let model = match request.model_name.as_str() {
            "" => None,
            name => Some(self.state.manager.get(name, None)?.name.clone()),
        };
        let changes: Vec<(String, Given)> = request
            .settings
            .into_iter()
            .map(|(name, value)| {
                let given = if value.value.is_empty() {
                    Given::Clear
                } else {
                    Given::Values(value.value)
                };
                (name, given)
            })
            .collect();
        let settings = self
            .state
            .tracer
            .settings()
            .update(model.as_deref(), &changes)?;
        let settings = settings
            .entries()
            .into_iter()
            .map(|(name, value)| {
                (
                    name.to_string(),
                    trace_setting_response::SettingValue { value },
                )
            })
            .collect();
        Ok(Response::new(TraceSettingResponse { settings }))
    }

    async fn log_settings(
        &self,
        request: Request<LogSettingsRequest>,
    ) -> RpcResult<LogSettingsResponse> {
        use log_settings_request::setting_value::ParameterChoice as Given;
        use log_settings_response::setting_value::ParameterChoice as Answer;
        use log_settings_response::SettingValue as AnswerValue;
        let mut changes = Vec::new();
        for (name, value) in request.into_inner().settings {
            let value = match value.parameter_choice {
                Some(Given::BoolParam(b)) => SettingValue::Bool(b),
                Some(Given::Uint32Param(n)) => SettingValue::Uint(n),
                Some(Given::StringParam(s)) => SettingValue::Text(s),
                None => {
                    return Err(
                        ServerError::invalid(format!("log setting '{name}' has no value")).into(),
                    )
                }
            };
            changes.push((name, value));
        }
        let settings = logging::update(&changes)?;
        let answer = |choice: Answer| AnswerValue {
            parameter_choice: Some(choice),
        };
        let settings = [
            ("log_file", answer(Answer::StringParam(settings.log_file))),
            ("log_info", answer(Answer::BoolParam(settings.log_info))),
            (
                "log_warning",
                answer(Answer::BoolParam(settings.log_warning)),
            ),
            ("log_error", answer(Answer::BoolParam(settings.log_error))),
            (
                "log_verbose_level",
                answer(Answer::Uint32Param(settings.log_verbose_level)),
            ),
            (
                "log_format",
                answer(Answer::StringParam(settings.log_format)),
            ),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect();
        Ok(Response::new(LogSettingsResponse { settings }))
    }
}
