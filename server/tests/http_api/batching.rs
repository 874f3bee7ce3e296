//! The dynamic batcher seen over HTTP: batches formed under concurrent
//! load, the queue bound answered with 503, and request priorities.

use std::path::Path;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::slow_model::slow_model;

use crate::common::{
    binary_outputs, le, output, read_binary, read_json, repository_with, TestServer,
};

const MLP_CONFIG: &str = r#"
name: "mlp"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [ { name: "input" data_type: TYPE_FP32 dims: [ 64 ] } ]
output [ { name: "probabilities" data_type: TYPE_FP32 dims: [ 10 ] } ]
dynamic_batching { max_queue_delay_microseconds: 2000 }
"#;

/// The example MLP, served with a batch of up to 64 and a 2 ms queue delay.
async fn mlp_server() -> TestServer {
    let repository = repository_with(&["mlp"]);
    std::fs::write(repository.path().join("mlp/config.pbtxt"), MLP_CONFIG).unwrap();
    TestServer::start_with(repository, &[])
        .await
        .unwrap_or_else(|e| panic!("the server did not start: {e:#}"))
}

/// The MLP input row of `client`'s `step`-th request.
fn mlp_row(client: usize, step: usize) -> Vec<f32> {
    (0..64)
        .map(|i| ((client * 7 + step * 13 + i * 3) % 17) as f32 / 8.0 - 1.0)
        .collect()
}

/// The probabilities the MLP answers for one row, sent as a request of its own.
async fn mlp_probabilities(server: &TestServer, row: &[f32]) -> Vec<f32> {
    let request = json!({
        "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": row}]
    });
    let (status, answer) = server.post_json("/v2/models/mlp/infer", &request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let probabilities = output(&answer, "probabilities");
    assert_eq!(probabilities["shape"], json!([1, 10]));
    probabilities["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tolerance = 1e-4 * w.abs().max(1e-3);
        assert!(
            (g - w).abs() <= tolerance,
            "{what}: element {i} is {g}, alone it is {w}"
        );
    }
}

/// 64 clients sending 3 requests each, one after another: the batcher
/// merges them into batches averaging more than 8 requests, and every
/// answer is the one the same row gets when sent alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_are_batched_and_answered_correctly() {
    const CLIENTS: usize = 64;
    const STEPS: usize = 3;
    let server = Arc::new(mlp_server().await);
    let mut tasks = Vec::new();
    for client in 0..CLIENTS {
        let server = Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            for step in 0..STEPS {
                let probabilities = mlp_probabilities(&server, &mlp_row(client, step)).await;
                let sum: f32 = probabilities.iter().sum();
                assert!(
                    (sum - 1.0).abs() < 1e-4,
                    "client {client} step {step}: sum {sum}"
                );
                answers.push(probabilities);
            }
            answers
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }

    let (status, stats) = server.get_json("/v2/models/mlp/stats").await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    let stats = &stats["model_stats"][0];
    let inferences = stats["inference_count"].as_u64().unwrap();
    let executions = stats["execution_count"].as_u64().unwrap();
    assert_eq!(inferences, (CLIENTS * STEPS) as u64);
    assert!(
        inferences as f64 / executions as f64 > 8.0,
        "{inferences} inferences in {executions} executions"
    );

    for (client, steps) in answers.iter().enumerate() {
        for (step, batched) in steps.iter().enumerate() {
            let alone = mlp_probabilities(&server, &mlp_row(client, step)).await;
            assert_close(batched, &alone, &format!("client {client} step {step}"));
        }
    }
    let server = Arc::into_inner(server).expect("every task finished");
    server.shutdown().await;
}

/// A repository holding the slow model (`dim`, `matmuls` products) as
/// `slow` version 1, with `batching` as the config's batching lines.
fn slow_repository(dim: i64, matmuls: usize, batching: &str) -> TempDir {
    let repository = tempfile::tempdir().unwrap();
    let model = repository.path().join("slow");
    std::fs::create_dir_all(model.join("1")).unwrap();
    std::fs::write(model.join("1/model.onnx"), slow_model(dim, matmuls)).unwrap();
    write_slow_config(&model, dim, batching);
    repository
}

fn write_slow_config(model: &Path, dim: i64, batching: &str) {
    let config = format!(
        r#"name: "slow"
platform: "onnxruntime_onnx"
{batching}
input [ {{ name: "X" data_type: TYPE_FP32 dims: [ {dim}, {dim} ] }} ]
output [ {{ name: "Y" data_type: TYPE_FP32 dims: [ {dim}, {dim} ] }} ]
instance_group [ {{ count: 1 kind: KIND_CPU }} ]
"#
    );
    std::fs::write(model.join("config.pbtxt"), config).unwrap();
}

/// An input matrix whose powers stay near 1 in magnitude.
fn slow_input(dim: usize, seed: usize) -> Vec<f32> {
    (0..dim * dim)
        .map(|i| ((i * 31 + seed * 17) % 97) as f32 / (48.0 * dim as f32))
        .collect()
}

/// Sends `x` to the slow model as binary data: the status, and `Y` when it
/// succeeded or the error message when not.
async fn slow_infer(
    server: &TestServer,
    dim: usize,
    x: &[f32],
) -> (StatusCode, Result<Vec<f32>, String>) {
    let raw = le(x, f32::to_le_bytes);
    let header = json!({
        "inputs": [{"name": "X", "shape": [1, dim, dim], "datatype": "FP32",
                    "parameters": {"binary_data_size": raw.len()}}],
        "parameters": {"binary_data_output": true}
    });
    let response = server
        .post_binary("/v2/models/slow/infer", &header, &raw)
        .await;
    let status = response.status();
    if status != StatusCode::OK {
        let (_, body): (_, Value) = read_json(response).await;
        return (
            status,
            Err(body["error"].as_str().unwrap_or_default().to_owned()),
        );
    }
    let (answer, tail) = read_binary(response).await;
    let outputs = binary_outputs(&answer, &tail);
    assert_eq!(outputs[0].0, "Y");
    let y = outputs[0]
        .1
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (status, Ok(y))
}

/// With at most 4 requests queued behind one slow instance, 32 concurrent
/// requests see some refused with 503 naming the bound, and every accepted
/// one answered correctly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_beyond_the_queue_bound_are_refused() {
    const DIM: usize = 256;
    const MATMULS: usize = 6;
    const REQUESTS: usize = 32;
    let batching = "max_batch_size: 8\n\
                    dynamic_batching { default_queue_policy { max_queue_size: 4 } }";
    let repository = slow_repository(DIM as i64, MATMULS, batching);
    let server = Arc::new(
        TestServer::start_with(repository, &[])
            .await
            .unwrap_or_else(|e| panic!("the server did not start: {e:#}")),
    );
    let mut tasks = Vec::new();
    for seed in 0..REQUESTS {
        let server = Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            let x = slow_input(DIM, seed);
            let (status, answer) = slow_infer(&server, DIM, &x).await;
            (seed, status, answer)
        }));
    }
    let mut accepted = Vec::new();
    let mut rejected = 0;
    for task in tasks {
        let (seed, status, answer) = task.await.unwrap();
        match status {
            StatusCode::OK => accepted.push((seed, answer.unwrap())),
            StatusCode::SERVICE_UNAVAILABLE => {
                let message = answer.unwrap_err();
                assert!(
                    message.contains("maximum queue size of 4"),
                    "request {seed}: {message}"
                );
                rejected += 1;
            }
            other => panic!("request {seed}: {other} {answer:?}"),
        }
    }
    assert_eq!(accepted.len() + rejected, REQUESTS);
    assert!(rejected >= 1, "no request was refused");
    for (seed, batched) in &accepted {
        let (status, alone) = slow_infer(&server, DIM, &slow_input(DIM, *seed)).await;
        assert_eq!(status, StatusCode::OK);
        assert_close(batched, &alone.unwrap(), &format!("request {seed}"));
    }
    let server = Arc::into_inner(server).expect("every task finished");
    server.shutdown().await;
}
