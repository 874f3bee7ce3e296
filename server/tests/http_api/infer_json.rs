use reqwest::StatusCode;
use serde_json::{json, Value};

use half::bf16;

use crate::common::{le, output, read_binary, read_json, repository_with, TestServer};

/// JSON data for each of `all_types`' inputs, shape [2, 4]: values at the
/// edges of each type's range, and floats exact in every float type.
pub fn all_types_data() -> Vec<(&'static str, Value)> {
    vec![
        (
            "BOOL",
            json!([[true, false, false, true], [false, false, true, true]]),
        ),
        ("UINT8", json!([0, 1, 254, 255, 7, 8, 9, 10])),
        ("UINT16", json!([0, 1, 65534, 65535, 7, 8, 9, 10])),
        (
            "UINT32",
            json!([0, 1, 4294967294u64, 4294967295u64, 7, 8, 9, 10]),
        ),
        ("UINT64", json!([0, 1, u64::MAX - 1, u64::MAX, 7, 8, 9, 10])),
        ("INT8", json!([-128, -1, 0, 127, 7, 8, 9, 10])),
        ("INT16", json!([-32768, -1, 0, 32767, 7, 8, 9, 10])),
        ("INT32", json!([i32::MIN, -1, 0, i32::MAX, 7, 8, 9, 10])),
        ("INT64", json!([i64::MIN, -1, 0, i64::MAX, 7, 8, 9, 10])),
        (
            "FP16",
            json!([[0.5, -1.25, 65504.0, 0.0], [1.0, 2.0, 3.0, -4.0]]),
        ),
        (
            "FP32",
            json!([0.1, -1.5, 3.4028235e38, 0.0, 1.0, 2.0, 3.0, -4.0]),
        ),
        ("FP64", json!([0.1, -1.5, 1e300, 0.0, 1.0, 2.0, 3.0, -4.0])),
        (
            "BYTES",
            json!([["a", "", "héllo", "x y"], ["1", "22", "333", "4444"]]),
        ),
    ]
}

/// `data` flattened, as responses give it.
pub fn flat(data: &Value) -> Vec<Value> {
    match data {
        Value::Array(items) => items.iter().flat_map(flat).collect(),
        other => vec![other.clone()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_datatype_round_trips_as_json() {
    let server = TestServer::start(&["all_types"]).await;
    let cases = all_types_data();
    let inputs: Vec<Value> = cases
        .iter()
        .map(|(dtype, data)| json!({"name": format!("IN_{dtype}"), "shape": [2, 4], "datatype": dtype, "data": data}))
        .collect();
    let (status, answer) = server
        .post_json("/v2/models/all_types/infer", &json!({ "inputs": inputs }))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["model_name"], "all_types");
    assert_eq!(answer["model_version"], "1");
    assert_eq!(answer["outputs"].as_array().unwrap().len(), cases.len());
    for (dtype, data) in &cases {
        let out = output(&answer, &format!("OUT_{dtype}"));
        assert_eq!(out["datatype"], *dtype);
        assert_eq!(out["shape"], json!([2, 4]));
        assert_eq!(out["data"], Value::Array(flat(data)), "{dtype}");
    }
    server.shutdown().await;
}

/// BF16 as JSON numbers and as binary data. tract has no BF16: without
/// ONNX Runtime the model does not load, and requests to it are refused
/// as unavailable with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bf16_round_trips_where_the_engine_has_it() {
    let server = TestServer::start_with(
        repository_with(&["identity_bf16", "identity_fp32"]),
        &["--exit-on-error=false"],
    )
    .await
    .unwrap();
    let request = json!({"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "BF16", "data": [[1.0, -0.5, 256.0, 0.0078125]]}]});
    if !server.onnxruntime("identity_fp32") {
        let (status, error) = server
            .post_json("/v2/models/identity_bf16/infer", &request)
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{error}");
        let message = error["error"].as_str().unwrap();
        assert!(
            message.contains("identity_bf16") && message.contains("tract"),
            "{message}"
        );
        server.shutdown().await;
        return;
    }
    let (status, answer) = server
        .post_json("/v2/models/identity_bf16/infer", &request)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let out = output(&answer, "OUTPUT0");
    assert_eq!(out["datatype"], "BF16");
    assert_eq!(out["data"], json!([1.0, -0.5, 256.0, 0.0078125]));

    let raw = le(
        &[1.0f32, -0.5, 3.0, f32::NAN].map(bf16::from_f32),
        bf16::to_le_bytes,
    );
    let header = json!({"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "BF16", "parameters": {"binary_data_size": 8}}],
                        "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": true}}]});
    let response = server
        .post_binary("/v2/models/identity_bf16/infer", &header, &raw)
        .await;
    let (answer, tail) = read_binary(response).await;
    assert_eq!(
        output(&answer, "OUTPUT0")["parameters"]["binary_data_size"],
        8
    );
    assert_eq!(tail.as_ref(), raw.as_slice());
    server.shutdown().await;
}

fn simple_request(rows: i64) -> (Value, Vec<i32>, Vec<i32>) {
    let a: Vec<i32> = (0..rows as i32 * 16).collect();
    let b: Vec<i32> = a.iter().map(|v| 3 * v - 100).collect();
    let request = json!({"inputs": [
        {"name": "INPUT0", "shape": [rows, 16], "datatype": "INT32", "data": a},
        {"name": "INPUT1", "shape": [rows, 16], "datatype": "INT32", "data": b},
    ]});
    (request, a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_sums_and_differences_with_client_batches() {
    let server = TestServer::start(&["simple"]).await;
    for rows in [1, 3, 8] {
        let (request, a, b) = simple_request(rows);
        let (status, answer) = server.post_json("/v2/models/simple/infer", &request).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let sum: Vec<i32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        let diff: Vec<i32> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
        assert_eq!(output(&answer, "OUTPUT0")["data"], json!(sum));
        assert_eq!(output(&answer, "OUTPUT1")["data"], json!(diff));
        assert_eq!(output(&answer, "OUTPUT0")["shape"], json!([rows, 16]));
        assert!(answer.get("id").is_none());
    }
    let (mut request, _, _) = simple_request(1);
    request["inputs"][0]["data"] = json!([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]]);
    let (status, _) = server
        .post_json("/v2/models/simple/versions/1/infer", &request)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "nested data and an explicit version"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_outputs_and_id() {
    let server = TestServer::start(&["simple"]).await;
    let (mut request, a, b) = simple_request(1);
    request["id"] = json!("request-42");
    request["outputs"] = json!([{"name": "OUTPUT1"}]);
    let (status, answer) = server.post_json("/v2/models/simple/infer", &request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["id"], "request-42");
    let outputs = answer["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 1);
    let diff: Vec<i32> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    assert_eq!(outputs[0]["name"], "OUTPUT1");
    assert_eq!(outputs[0]["data"], json!(diff));

    request["outputs"] = json!([{"name": "OUTPUT1"}, {"name": "OUTPUT0"}]);
    let (_, answer) = server.post_json("/v2/models/simple/infer", &request).await;
    let names: Vec<&str> = answer["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["OUTPUT1", "OUTPUT0"]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strings_identity_fp32_and_real_networks() {
    let server = TestServer::start(&["identity_bytes", "identity_fp32", "mlp", "cnn"]).await;
    let request = json!({"inputs": [{"name": "INPUT0", "shape": [2, 3], "datatype": "BYTES", "data": [["a", "bc", ""], ["ünïcode", "x", "{\"json\": 1}"]]}]});
    let (status, answer) = server
        .post_json("/v2/models/identity_bytes/infer", &request)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let out = output(&answer, "OUTPUT0");
    assert_eq!(out["datatype"], "BYTES");
    assert_eq!(out["shape"], json!([2, 3]));
    assert_eq!(
        out["data"],
        json!(["a", "bc", "", "ünïcode", "x", "{\"json\": 1}"])
    );

    let values: Vec<f32> = (0..16).map(|i| i as f32 * 0.25 - 1.0).collect();
    let request = json!({"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": values}]});
    let (status, answer) = server
        .post_json("/v2/models/identity_fp32/infer", &request)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(output(&answer, "OUTPUT0")["data"], json!(values));

    let features: Vec<f32> = (0..128).map(|i| ((i * 37) % 17) as f32 / 17.0).collect();
    let request = json!({"inputs": [{"name": "input", "shape": [2, 64], "datatype": "FP32", "data": features}]});
    let (status, answer) = server.post_json("/v2/models/mlp/infer", &request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let probabilities = output(&answer, "probabilities");
    assert_eq!(probabilities["shape"], json!([2, 10]));
    let p: Vec<f64> = probabilities["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for row in p.chunks(10) {
        let total: f64 = row.iter().sum();
        assert!(
            (total - 1.0).abs() < 1e-4,
            "softmax rows sum to 1, got {total}"
        );
        assert!(row.iter().all(|&v| v > 0.0 && v < 1.0));
    }

    let image: Vec<f32> = (0..3 * 32 * 32)
        .map(|i| ((i % 29) as f32 - 14.0) / 14.0)
        .collect();
    let request = json!({"inputs": [{"name": "image", "shape": [1, 3, 32, 32], "datatype": "FP32", "data": image}]});
    let mut logits = Vec::new();
    for version in [1, 2] {
        let (status, answer) = server
            .post_json(
                &format!("/v2/models/cnn/versions/{version}/infer"),
                &request,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert_eq!(answer["model_version"], version.to_string());
        let out = output(&answer, "logits");
        assert_eq!(out["shape"], json!([1, 10]));
        logits.push(out["data"].clone());
    }
    assert_ne!(
        logits[0], logits[1],
        "the two versions have different weights"
    );
    let (_, latest) = server.post_json("/v2/models/cnn/infer", &request).await;
    assert_eq!(latest["model_version"], "2", "no version means the latest");
    server.shutdown().await;
}

/// Requests and responses whose JSON is large enough to be coded on the
/// blocking pool give the same answers as small and binary ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_json_requests_and_responses() {
    let server = TestServer::start(&["cnn", "identity_bytes"]).await;
    let image: Vec<f32> = (0..8 * 3 * 32 * 32)
        .map(|i| ((i * 7919) % 1000) as f32 / 999.0 - 0.5)
        .collect();
    let request = json!({"inputs": [{"name": "image", "shape": [8, 3, 32, 32], "datatype": "FP32", "data": image}]});
    assert!(request.to_string().len() > 256 * 1024);
    let (status, answer) = server
        .post_json("/v2/models/cnn/versions/1/infer", &request)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let raw = le(&image, f32::to_le_bytes);
    let header = json!({"inputs": [{"name": "image", "shape": [8, 3, 32, 32], "datatype": "FP32", "parameters": {"binary_data_size": raw.len()}}]});
    let (_, binary) = read_json(
        server
            .post_binary("/v2/models/cnn/versions/1/infer", &header, &raw)
            .await,
    )
    .await;
    assert_eq!(output(&answer, "logits")["shape"], json!([8, 10]));
    assert_eq!(
        output(&answer, "logits")["data"],
        output(&binary, "logits")["data"]
    );

    let long = ["é".repeat(100_000), "x".repeat(150_000)];
    let request =
        json!({"inputs": [{"name": "INPUT0", "shape": [1, 2], "datatype": "BYTES", "data": long}]});
    let (status, answer) = server
        .post_json("/v2/models/identity_bytes/infer", &request)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(output(&answer, "OUTPUT0")["data"], json!(long));
    server.shutdown().await;
}
