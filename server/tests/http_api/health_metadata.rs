use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_server_metadata() {
    let server = TestServer::start(&["simple"]).await;
    for path in ["/v2/health/live", "/v2/health/ready"] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert!(response.bytes().await.unwrap().is_empty());
    }
    let (status, metadata) = server.get_json("/v2").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        metadata,
        json!({
            "name": "ferrite",
            "version": env!("CARGO_PKG_VERSION"),
            "extensions": ["binary_tensor_data", "logging", "model_configuration", "model_repository", "schedule_policy", "statistics", "trace"]
        })
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_metadata_matches_the_configs() {
    let server = TestServer::start(&["simple", "identity_bytes", "cnn", "mlp"]).await;
    let (status, simple) = server.get_json("/v2/models/simple").await;
    assert_eq!(status, StatusCode::OK);
    let int32 = |name: &str| json!({"name": name, "datatype": "INT32", "shape": [-1, 16]});
    assert_eq!(
        simple,
        json!({
            "name": "simple",
            "versions": ["1"],
            "platform": "onnxruntime_onnx",
            "inputs": [int32("INPUT0"), int32("INPUT1")],
            "outputs": [int32("OUTPUT0"), int32("OUTPUT1")],
        })
    );
    let (_, bytes) = server.get_json("/v2/models/identity_bytes").await;
    assert_eq!(bytes["platform"], "onnxruntime_onnx");
    assert_eq!(
        bytes["inputs"],
        json!([{"name": "INPUT0", "datatype": "BYTES", "shape": [-1, -1]}])
    );
    let (_, cnn) = server.get_json("/v2/models/cnn").await;
    assert_eq!(cnn["versions"], json!(["1", "2"]));
    assert_eq!(cnn["inputs"][0]["shape"], json!([-1, 3, 32, 32]));
    let (status, cnn1) = server.get_json("/v2/models/cnn/versions/1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cnn1["versions"], json!(["1"]));
    // mlp has no config.pbtxt: its signature comes from the ONNX file.
    let (status, mlp) = server.get_json("/v2/models/mlp").await;
    assert_eq!(status, StatusCode::OK, "{mlp}");
    assert_eq!(mlp["inputs"][0]["name"], "input");
    assert_eq!(mlp["inputs"][0]["datatype"], "FP32");
    assert_eq!(
        mlp["inputs"][0]["shape"].as_array().unwrap().last(),
        Some(&json!(64))
    );
    assert_eq!(mlp["outputs"][0]["name"], "probabilities");
    assert_eq!(
        mlp["outputs"][0]["shape"].as_array().unwrap().last(),
        Some(&json!(10))
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_config_and_unknown_models() {
    let server = TestServer::start(&["simple", "cnn"]).await;
    for (path, status) in [
        ("/v2/models/simple/ready", StatusCode::OK),
        ("/v2/models/cnn/versions/2/ready", StatusCode::OK),
        ("/v2/models/cnn/versions/3/ready", StatusCode::BAD_REQUEST),
        ("/v2/models/nope/ready", StatusCode::BAD_REQUEST),
    ] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert!(response.bytes().await.unwrap().is_empty(), "{path}");
    }
    let (status, config) = server.get_json("/v2/models/simple/config").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(config["name"], "simple");
    assert_eq!(config["platform"], "onnxruntime_onnx");
    assert_eq!(config["max_batch_size"], 8);
    assert_eq!(config["input"][0]["name"], "INPUT0");
    assert_eq!(config["input"][0]["data_type"], "TYPE_INT32");
    assert_eq!(config["input"][0]["dims"], json!([16]));
    assert_eq!(config["output"][1]["name"], "OUTPUT1");
    let (status, config) = server.get_json("/v2/models/cnn/versions/1/config").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(config["max_batch_size"], 32);

    let (status, error) = server.get_json("/v2/models/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        error["error"].as_str().unwrap().contains("'nope'"),
        "{error}"
    );
    let (status, error) = server.get_json("/v2/models/nope/config").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    let (status, error) = server.get_json("/v2/models/simple/versions/x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error["error"].as_str().unwrap().contains("'x'"), "{error}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_and_methods() {
    let server = TestServer::start(&["simple"]).await;
    let (status, error) = server.get_json("/v2/nothing/here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error, json!({"error": "no endpoint at /v2/nothing/here"}));
    let (status, error) = server.get_json("/v2/models/simple/infer").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(error["error"].as_str().unwrap().contains("GET"), "{error}");
    let (status, _) = server.post_json("/v2/models/simple", &json!({})).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    server.shutdown().await;
}

fn zero() -> Value {
    json!({"count": 0, "ns": 0})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_follow_inferences() {
    let server = TestServer::start(&["simple", "cnn"]).await;
    let (status, before) = server.get_json("/v2/models/simple/stats").await;
    assert_eq!(status, StatusCode::OK);
    let stats = &before["model_stats"][0];
    assert_eq!(
        (stats["name"].clone(), stats["version"].clone()),
        (json!("simple"), json!("1"))
    );
    assert_eq!(stats["inference_count"], 0);
    assert_eq!(stats["last_inference"], 0);
    assert_eq!(stats["batch_stats"], json!([]));

    let data: Vec<i32> = (0..32).collect();
    let request = json!({"inputs": [
        {"name": "INPUT0", "shape": [2, 16], "datatype": "INT32", "data": data},
        {"name": "INPUT1", "shape": [2, 16], "datatype": "INT32", "data": data},
    ]});
    let (status, answer) = server.post_json("/v2/models/simple/infer", &request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let (_, after) = server.get_json("/v2/models/simple/stats").await;
    let stats = &after["model_stats"][0];
    assert_eq!(stats["inference_count"], 2, "{stats}");
    assert_eq!(stats["execution_count"], 1);
    assert!(stats["last_inference"].as_u64().unwrap() > 0);
    let inference = &stats["inference_stats"];
    for key in [
        "success",
        "queue",
        "compute_input",
        "compute_infer",
        "compute_output",
    ] {
        assert_eq!(inference[key]["count"], 1, "{key}: {inference}");
        assert!(inference[key]["ns"].is_u64(), "{key}");
    }
    assert!(inference["success"]["ns"].as_u64().unwrap() > 0);
    assert_eq!(inference["fail"], zero());
    assert_eq!(inference["cache_hit"], zero());
    assert_eq!(inference["cache_miss"], zero());
    let batches = stats["batch_stats"].as_array().unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0]["batch_size"], 2);
    assert_eq!(batches[0]["compute_infer"]["count"], 1);

    let (_, all) = server.get_json("/v2/models/stats").await;
    let rows: Vec<(String, String)> = all["model_stats"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().into(),
                s["version"].as_str().unwrap().into(),
            )
        })
        .collect();
    let expected =
        [("cnn", "1"), ("cnn", "2"), ("simple", "1")].map(|(n, v)| (n.to_string(), v.to_string()));
    assert_eq!(rows, expected);
    let (_, cnn) = server.get_json("/v2/models/cnn/stats").await;
    assert_eq!(cnn["model_stats"].as_array().unwrap().len(), 2);
    let (_, cnn2) = server.get_json("/v2/models/cnn/versions/2/stats").await;
    assert_eq!(cnn2["model_stats"].as_array().unwrap().len(), 1);
    assert_eq!(cnn2["model_stats"][0]["version"], "2");
    let (status, _) = server.get_json("/v2/models/nope/stats").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.shutdown().await;
}
