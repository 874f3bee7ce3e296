//! Integration harness: a whole ferrite server started in-process on port
//! 0 over a temporary model repository, and a client to drive it.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use clap::Parser;
use ferrite_backends::EngineKind;
use ferrite_server::{Options, Server};
use reqwest::StatusCode;
use serde_json::Value;
use tempfile::TempDir;

/// The example model repository of the workspace.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/models")
}

/// Copies the example model `name` (config and versions) into `repository`.
pub fn copy_model(name: &str, repository: &Path) {
    copy_dir(&examples().join(name), &repository.join(name));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A temporary repository holding copies of the named example models.
pub fn repository_with(models: &[&str]) -> TempDir {
    let repository = tempfile::tempdir().unwrap();
    for name in models {
        copy_model(name, repository.path());
    }
    repository
}

/// A running server, its base URLs and a client.
pub struct TestServer {
    /// `http://127.0.0.1:<port>` of the HTTP front end.
    pub base: String,
    /// `http://127.0.0.1:<port>` of the metrics endpoint.
    pub metrics: String,
    pub client: reqwest::Client,
    server: Server,
    _repository: TempDir,
}

impl TestServer {
    /// Starts a server over copies of the named example models.
    pub async fn start(models: &[&str]) -> Self {
        Self::start_with(repository_with(models), &[])
            .await
            .unwrap_or_else(|e| panic!("the server did not start: {e:#}"))
    }

    /// Starts a server over `repository` with extra command-line flags.
    pub async fn start_with(repository: TempDir, flags: &[&str]) -> anyhow::Result<Self> {
        let root = repository.path().to_str().unwrap().to_owned();
        let mut args = vec![
            "ferrite",
            "--model-repository",
            &root,
            "--http-port",
            "0",
            "--http-address",
            "127.0.0.1",
            "--metrics-port",
            "0",
            "--metrics-address",
            "127.0.0.1",
            "--allow-grpc=false",
        ];
        args.extend_from_slice(flags);
        let server = Server::start(Options::try_parse_from(args)?).await?;
        let http = server.http.expect("HTTP is enabled");
        let metrics = server.metrics.expect("metrics are enabled");
        Ok(Self {
            base: format!("http://{http}"),
            metrics: format!("http://{metrics}"),
            client: reqwest::Client::new(),
            server,
            _repository: repository,
        })
    }

    /// The engine serving `model`, `None` if it is not loaded.
    pub fn engine(&self, model: &str) -> Option<EngineKind> {
        self.server
            .state
            .manager
            .get(model, None)
            .ok()
            .map(|m| m.engine)
    }

    /// Whether ONNX Runtime serves the models (else tract does, which has
    /// no BF16 and keeps BYTES elements as UTF-8 strings).
    pub fn onnxruntime(&self, model: &str) -> bool {
        self.engine(model) == Some(EngineKind::OnnxRuntime)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path`; the status and the body parsed as JSON (`Null` if empty).
    pub async fn get_json(&self, path: &str) -> (StatusCode, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        read_json(response).await
    }

    /// POST a JSON body to `path`.
    pub async fn post_json(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        read_json(response).await
    }

    /// POST a JSON header followed by binary tensor data to `path`.
    pub async fn post_binary(&self, path: &str, header: &Value, tail: &[u8]) -> reqwest::Response {
        let json = header.to_string();
        let mut body = json.clone().into_bytes();
        body.extend_from_slice(tail);
        self.client
            .post(self.url(path))
            .header("inference-header-content-length", json.len().to_string())
            .header("content-type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// The text of the metrics endpoint.
    pub async fn metrics_text(&self) -> String {
        let response = self
            .client
            .get(format!("{}/metrics", self.metrics))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// The status and JSON body of a response (`Null` for an empty body).
pub async fn read_json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.bytes().await.unwrap();
    if body.is_empty() {
        return (status, Value::Null);
    }
    let value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&body)));
    (status, value)
}

/// Splits a response that carries binary outputs into its JSON header and
/// binary tail, checking the headers that announce them.
pub async fn read_binary(response: reqwest::Response) -> (Value, Bytes) {
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/octet-stream");
    let length: usize = headers["inference-header-content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = response.bytes().await.unwrap();
    let header = serde_json::from_slice(&body[..length]).unwrap();
    (header, body.slice(length..))
}

/// The output called `name` in a response's JSON.
pub fn output<'a>(response: &'a Value, name: &str) -> &'a Value {
    response["outputs"]
        .as_array()
        .and_then(|outputs| outputs.iter().find(|o| o["name"] == name))
        .unwrap_or_else(|| panic!("no output {name} in {response}"))
}

/// Little-endian bytes of a slice of numbers.
pub fn le<const N: usize, T: Copy>(values: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to(v)).collect()
}

/// The binary outputs of a response, by name, cut from its tail in order.
pub fn binary_outputs(header: &Value, tail: &Bytes) -> Vec<(String, Bytes)> {
    let mut offset = 0;
    let mut found = Vec::new();
    for output in header["outputs"].as_array().unwrap() {
        if let Some(size) = output["parameters"]["binary_data_size"].as_u64() {
            let size = usize::try_from(size).unwrap();
            found.push((
                output["name"].as_str().unwrap().to_owned(),
                tail.slice(offset..offset + size),
            ));
            offset += size;
        }
    }
    assert_eq!(
        offset,
        tail.len(),
        "binary sizes account for the whole tail"
    );
    found
}
