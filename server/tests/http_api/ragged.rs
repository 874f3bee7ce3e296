//! Ragged batching over HTTP: requests whose `allow_ragged_batch` input
//! differs in length share one execution of the example `ragged_sum` model,
//! which learns each request's extent from its BATCH_ACCUMULATED_ELEMENT_COUNT
//! _WITH_ZERO batch input, and each request gets its own sum and its own
//! slice of the scattered output.

use ferrite_backends::EngineKind;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{output, read_json, repository_with, TestServer};

/// `ragged_sum` on `backend`, dispatching as soon as four requests wait (and
/// otherwise after 5 s, far beyond the test), so that the four concurrent
/// requests below form one batch.
async fn ragged_server(backend: &str) -> TestServer {
    let repository = repository_with(&["ragged_sum"]);
    let path = repository.path().join("ragged_sum/config.pbtxt");
    let config = std::fs::read_to_string(&path)
        .unwrap()
        .replace(
            "backend: \"onnxruntime\"",
            &format!("backend: \"{backend}\""),
        )
        .replace(
            "max_queue_delay_microseconds: 2000",
            "max_queue_delay_microseconds: 5000000\n  preferred_batch_size: [ 4 ]",
        );
    std::fs::write(&path, config).unwrap();
    TestServer::start_with(repository, &[])
        .await
        .unwrap_or_else(|e| panic!("the server did not start: {e:#}"))
}

fn floats(tensor: &Value) -> Vec<f64> {
    tensor["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

async fn four_ragged_requests_share_one_execution(backend: &str, engine: EngineKind) {
    let server = ragged_server(backend).await;
    assert_eq!(server.engine("ragged_sum"), Some(engine));
    let rows: Vec<Vec<f64>> = (1..=4)
        .map(|n| (0..n * 2 - 1).map(|i| (n * 10 + i) as f64).collect())
        .collect();
    let url = server.url("/v2/models/ragged_sum/infer");
    let tasks: Vec<_> = rows
        .iter()
        .map(|row| {
            let request = json!({
                "inputs": [{"name": "INPUT", "datatype": "FP32", "shape": [1, row.len()], "data": row}]
            });
            let (client, url) = (server.client.clone(), url.clone());
            tokio::spawn(async move { read_json(client.post(url).json(&request).send().await.unwrap()).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    for (row, (status, answer)) in rows.iter().zip(&answers) {
        assert_eq!(*status, StatusCode::OK, "{backend}: {answer}");
        let sum = output(answer, "SUM");
        assert_eq!(sum["shape"], json!([1, 1]), "{backend}");
        assert_eq!(floats(sum), vec![row.iter().sum::<f64>()], "{backend}");
        let doubled = output(answer, "DOUBLED");
        assert_eq!(doubled["shape"], json!([1, row.len()]), "{backend}");
        let want: Vec<f64> = row.iter().map(|v| v * 2.0).collect();
        assert_eq!(floats(doubled), want, "{backend}");
    }
    let (status, stats) = server.get_json("/v2/models/ragged_sum/stats").await;
    assert_eq!(status, StatusCode::OK);
    let model = &stats["model_stats"][0];
    assert_eq!(model["inference_count"], 4, "{backend}: {stats}");
    assert_eq!(model["execution_count"], 1, "{backend}: {stats}");
    assert_eq!(
        model["batch_stats"][0]["batch_size"], 4,
        "{backend}: {stats}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn ragged_requests_share_one_execution_on_onnxruntime() {
    // Without an ONNX Runtime library the config's backend falls back to tract.
    let engine = match ferrite_backends::onnxruntime::library() {
        Ok(_) => EngineKind::OnnxRuntime,
        Err(_) => EngineKind::Tract,
    };
    four_ragged_requests_share_one_execution("onnxruntime", engine).await;
}

#[tokio::test]
async fn ragged_requests_share_one_execution_on_tract() {
    four_ragged_requests_share_one_execution("tract", EngineKind::Tract).await;
}

#[tokio::test]
async fn a_lone_ragged_request_and_a_bad_one() {
    let server = TestServer::start(&["ragged_sum"]).await;
    let request = json!({
        "inputs": [{"name": "INPUT", "datatype": "FP32", "shape": [1, 3], "data": [1.5, 2.5, 3.0]}]
    });
    let (status, answer) = server
        .post_json("/v2/models/ragged_sum/infer", &request)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(floats(output(&answer, "SUM")), vec![7.0]);
    assert_eq!(output(&answer, "DOUBLED")["shape"], json!([1, 3]));

    let request = json!({
        "inputs": [{"name": "BOUNDS", "datatype": "INT64", "shape": [2], "data": [0, 3]}]
    });
    let (status, answer) = server
        .post_json("/v2/models/ragged_sum/infer", &request)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("BOUNDS"),
        "the batch input is the server's, not the client's: {answer}"
    );
    server.shutdown().await;
}
