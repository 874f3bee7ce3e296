//! Overload and disconnects against a slow model, over HTTP and gRPC:
//! at four times the load that saturates it every request is answered or
//! refused with 503 / UNAVAILABLE, memory stays bounded and the server
//! recovers; clients that go away mid-request leave nothing queued.
//!
//! A test binary of its own, so that the process's memory use measures
//! these tests alone; they take turns (`TURN`) for the same reason.

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use ferrite_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use ferrite_proto::inference::model_infer_request::InferInputTensor;
use ferrite_proto::inference::ModelInferRequest;
use ferrite_server::{Options, Server};
use serde_json::json;
use slow_model::slow_model;
use tempfile::TempDir;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::Code;

#[path = "../common/slow_model.rs"]
mod slow_model;

const DIM: i64 = 128;
/// Products per request under overload: about 268 million multiply-adds.
const MATMULS: usize = 128;
/// Products per request when clients go away: eight times longer, so that
/// requests still wait behind the running batch when their clients leave,
/// however fast the machine.
const ABANDONED_MATMULS: usize = 1024;

/// Held by each test for its whole run, so that one test's server does not
/// count in the other's memory use or timing.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// One instance runs a batch of 8 while 8 more wait: 16 requests saturate
/// the model.
const CONFIG: &str = r#"name: "slow"
platform: "onnxruntime_onnx"
max_batch_size: 8
dynamic_batching { default_queue_policy { max_queue_size: 8 } }
input [ { name: "X" data_type: TYPE_FP32 dims: [ 128, 128 ] } ]
output [ { name: "Y" data_type: TYPE_FP32 dims: [ 128, 128 ] } ]
instance_group [ { count: 1 kind: KIND_CPU } ]
"#;

/// A server with HTTP and gRPC over a repository holding the slow model.
struct SlowServer {
    server: Server,
    /// `http://127.0.0.1:<port>` of the HTTP front end.
    http: String,
    grpc: String,
    _repository: TempDir,
}

impl SlowServer {
    /// The slow model with `matmuls` products per request.
    async fn start(matmuls: usize) -> Self {
        let repository = TempDir::new().unwrap();
        let model = repository.path().join("slow");
        std::fs::create_dir_all(model.join("1")).unwrap();
        std::fs::write(model.join("1/model.onnx"), slow_model(DIM, matmuls)).unwrap();
        std::fs::write(model.join("config.pbtxt"), CONFIG).unwrap();
        let root = repository.path().to_str().unwrap().to_owned();
        let args = [
            "ferrite",
            "--model-repository",
            &root,
            "--http-port=0",
            "--http-address=127.0.0.1",
            "--grpc-port=0",
            "--grpc-address=127.0.0.1",
            "--allow-metrics=false",
        ];
        let server = Server::start(Options::try_parse_from(args).unwrap())
            .await
            .unwrap_or_else(|e| panic!("the server did not start: {e:#}"));
        Self {
            http: format!("http://{}", server.http.unwrap()),
            grpc: format!("http://{}", server.grpc.unwrap()),
            server,
            _repository: repository,
        }
    }

    /// A gRPC client on a connection of its own.
    async fn connect(&self) -> GrpcInferenceServiceClient<Channel> {
        let channel = Channel::from_shared(self.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        GrpcInferenceServiceClient::new(channel)
    }
}

/// A matrix whose powers stay near 1 in magnitude, as raw FP32.
fn x() -> Bytes {
    let n = (DIM * DIM) as usize;
    (0..n)
        .flat_map(|i| ((i % 97) as f32 / (48.0 * DIM as f32)).to_le_bytes())
        .collect::<Vec<u8>>()
        .into()
}

fn grpc_request() -> ModelInferRequest {
    ModelInferRequest {
        model_name: "slow".into(),
        inputs: vec![InferInputTensor {
            name: "X".into(),
            datatype: "FP32".into(),
            shape: vec![1, DIM, DIM],
            ..Default::default()
        }],
        raw_input_contents: vec![x()],
        ..Default::default()
    }
}

/// Sends one binary request over HTTP; the status code.
async fn http_infer(client: &reqwest::Client, base: &str) -> u16 {
    let raw = x();
    let header = json!({"inputs": [{"name": "X", "shape": [1, DIM, DIM], "datatype": "FP32",
        "parameters": {"binary_data_size": raw.len()}}],
        "parameters": {"binary_data_output": true}})
    .to_string();
    let mut body = header.clone().into_bytes();
    body.extend_from_slice(&raw);
    let response = client
        .post(format!("{base}/v2/models/slow/infer"))
        .header("inference-header-content-length", header.len().to_string())
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    response.bytes().await.unwrap();
    status
}

/// The resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Waits until the slow model has nothing queued.
async fn drained(s: &SlowServer) {
    let model = s.server.state.manager.get("slow", None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while model.pending() != 0 {
        assert!(
            Instant::now() < deadline,
            "{} still queued",
            model.pending()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn one_request_succeeds(s: &SlowServer) {
    let mut client = s.connect().await;
    client.model_infer(grpc_request()).await.unwrap();
    assert_eq!(http_infer(&reqwest::Client::new(), &s.http).await, 200);
}

/// 64 clients (32 per protocol) sending 8 requests each, one after another,
/// against a model that 16 requests saturate.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_times_the_saturating_load_is_answered_or_refused() {
    const CLIENTS: usize = 32;
    const REQUESTS: usize = 8;
    let _turn = TURN.lock().await;
    let s = SlowServer::start(MATMULS).await;
    one_request_succeeds(&s).await;
    let rss_before = rss_kib();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let http = reqwest::Client::new();
        let base = s.http.clone();
        tasks.push(tokio::spawn(async move {
            let mut counts = (0, 0);
            for _ in 0..REQUESTS {
                match http_infer(&http, &base).await {
                    200 => counts.0 += 1,
                    503 => counts.1 += 1,
                    other => panic!("HTTP answered {other}"),
                }
            }
            counts
        }));
        let mut grpc: GrpcInferenceServiceClient<Channel> = s.connect().await;
        tasks.push(tokio::spawn(async move {
            let mut counts = (0, 0);
            for _ in 0..REQUESTS {
                match grpc.model_infer(grpc_request()).await {
                    Ok(_) => counts.0 += 1,
                    Err(status) if status.code() == Code::Unavailable => counts.1 += 1,
                    Err(status) => panic!("gRPC answered {status:?}"),
                }
            }
            counts
        }));
    }
    let (mut answered, mut refused) = (0, 0);
    for task in tasks {
        let (ok, busy) = tokio::time::timeout(Duration::from_secs(180), task)
            .await
            .expect("every client finishes")
            .unwrap();
        answered += ok;
        refused += busy;
    }
    let elapsed = started.elapsed();
    assert_eq!(answered + refused, 2 * CLIENTS * REQUESTS);
    assert!(
        answered > 0 && refused > 0,
        "{answered} answered, {refused} refused"
    );
    assert!(elapsed < Duration::from_secs(180), "{elapsed:?}");
    drained(&s).await;
    one_request_succeeds(&s).await;
    let growth = rss_kib().saturating_sub(rss_before);
    assert!(growth < 200 * 1024, "RSS grew by {growth} KiB");
    s.server.shutdown().await;
}

/// Clients that go away mid-request: HTTP requests whose futures are
/// dropped, unary gRPC calls cancelled, a stream dropped with requests in
/// flight. The queue drains, the abandoned requests are counted and the
/// server still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abandoned_requests_drain_and_are_counted() {
    let _turn = TURN.lock().await;
    let s = SlowServer::start(ABANDONED_MATMULS).await;
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let base = s.http.clone();
        tasks.push(tokio::spawn(async move {
            http_infer(&reqwest::Client::new(), &base).await;
        }));
        let mut grpc = s.connect().await;
        tasks.push(tokio::spawn(async move {
            let _ = grpc.model_infer(grpc_request()).await;
        }));
    }
    let (sender, receiver) = mpsc::channel(8);
    let mut streaming = s.connect().await;
    for _ in 0..4 {
        sender.send(grpc_request()).await.unwrap();
    }
    let stream = streaming
        .model_stream_infer(ReceiverStream::new(receiver))
        .await
        .unwrap();
    let model = s.server.state.manager.get("slow", None).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while model.pending() == 0 {
        assert!(Instant::now() < deadline, "no request was queued");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for task in &tasks {
        task.abort();
    }
    drop(stream);
    drop(sender);
    drop(streaming);
    for task in tasks {
        let _ = task.await;
    }
    drained(&s).await;
    assert!(model.stats().abandoned > 0, "{:?}", model.stats().abandoned);
    one_request_succeeds(&s).await;
    s.server.shutdown().await;
}
