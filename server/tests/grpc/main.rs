//! The gRPC front end, driven with the generated tonic client over real
//! sockets against a whole server loading the example models. HTTP is
//! served beside it so that answers can be compared across protocols.

#[allow(dead_code)]
#[path = "../common/mod.rs"]
mod common;

mod errors;
mod infer;
mod limits;
mod service;
mod stream;

use bytes::Bytes;
use clap::Parser;
use ferrite_proto::health::health_client::HealthClient;
use ferrite_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use ferrite_proto::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use ferrite_proto::inference::{ModelInferRequest, ModelInferResponse};
use ferrite_server::{Options, Server};
use tempfile::TempDir;
use tonic::transport::Channel;

/// Message size the test clients accept and send (the server's limit).
const CLIENT_MESSAGE_LIMIT: usize = ferrite_server::grpc::MAX_MESSAGE_SIZE;

/// A running server with gRPC and HTTP, and clients for both.
pub struct GrpcServer {
    pub client: GrpcInferenceServiceClient<Channel>,
    pub health: HealthClient<Channel>,
    /// `http://127.0.0.1:<port>` of the HTTP front end.
    pub http: String,
    pub server: Server,
    _repository: TempDir,
}

impl GrpcServer {
    /// Starts a server over copies of the named example models.
    pub async fn start(models: &[&str]) -> Self {
        Self::start_in(common::repository_with(models), &[]).await
    }

    /// Starts a server over `repository` with extra command-line flags.
    pub async fn start_in(repository: TempDir, flags: &[&str]) -> Self {
        let root = repository.path().to_str().unwrap().to_owned();
        let mut args = vec![
            "ferrite",
            "--model-repository",
            &root,
            "--http-port",
            "0",
            "--http-address",
            "127.0.0.1",
            "--grpc-port",
            "0",
            "--grpc-address",
            "127.0.0.1",
            "--allow-metrics=false",
        ];
        args.extend_from_slice(flags);
        let server = Server::start(Options::try_parse_from(args).unwrap())
            .await
            .unwrap_or_else(|e| panic!("the server did not start: {e:#}"));
        let grpc = server.grpc.expect("gRPC is enabled");
        let http = server.http.expect("HTTP is enabled");
        assert_eq!(
            server.ready_line(),
            format!("ferrite ready http={http} grpc={grpc}")
        );
        let channel = Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            client: GrpcInferenceServiceClient::new(channel.clone())
                .max_decoding_message_size(CLIENT_MESSAGE_LIMIT)
                .max_encoding_message_size(CLIENT_MESSAGE_LIMIT),
            health: HealthClient::new(channel),
            http: format!("http://{http}"),
            server,
            _repository: repository,
        }
    }

    /// A fresh client on its own connection.
    pub async fn connect(&self) -> GrpcInferenceServiceClient<Channel> {
        let grpc = self.server.grpc.expect("gRPC is enabled");
        let channel = Channel::from_shared(format!("http://{grpc}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        GrpcInferenceServiceClient::new(channel)
            .max_decoding_message_size(CLIENT_MESSAGE_LIMIT)
            .max_encoding_message_size(CLIENT_MESSAGE_LIMIT)
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// An input tensor description without data.
pub fn input(name: &str, datatype: &str, shape: &[i64]) -> InferInputTensor {
    InferInputTensor {
        name: name.into(),
        datatype: datatype.into(),
        shape: shape.to_vec(),
        ..Default::default()
    }
}

/// A request whose inputs are given as `(tensor, raw bytes)` pairs.
pub fn raw_request(model: &str, inputs: Vec<(InferInputTensor, Bytes)>) -> ModelInferRequest {
    let (inputs, raw): (Vec<_>, Vec<_>) = inputs.into_iter().unzip();
    ModelInferRequest {
        model_name: model.into(),
        inputs,
        raw_input_contents: raw,
        ..Default::default()
    }
}

/// A requested output without parameters.
pub fn requested(name: &str) -> InferRequestedOutputTensor {
    InferRequestedOutputTensor {
        name: name.into(),
        ..Default::default()
    }
}

/// Little-endian bytes of a slice of numbers.
pub fn le<const N: usize, T: Copy>(values: &[T], to: fn(T) -> [u8; N]) -> Bytes {
    Bytes::from(values.iter().flat_map(|&v| to(v)).collect::<Vec<u8>>())
}

/// The datatype, shape and raw bytes of output `name` of a response.
pub fn output<'a>(response: &'a ModelInferResponse, name: &str) -> (&'a str, &'a [i64], &'a Bytes) {
    assert_eq!(
        response.outputs.len(),
        response.raw_output_contents.len(),
        "one raw entry per output"
    );
    let index = response
        .outputs
        .iter()
        .position(|o| o.name == name)
        .unwrap_or_else(|| panic!("no output {name} in {:?}", response.outputs));
    let tensor = &response.outputs[index];
    assert!(tensor.contents.is_none(), "outputs are answered raw");
    (
        &tensor.datatype,
        &tensor.shape,
        &response.raw_output_contents[index],
    )
}

/// Decodes little-endian INT32 bytes.
pub fn i32s(data: &[u8]) -> Vec<i32> {
    data.chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Decodes little-endian FP32 bytes.
pub fn f32s(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
