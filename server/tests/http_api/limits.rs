//! Request size limits over HTTP: each is refused with 400 and a message
//! naming the limit's flag, checked from the declared shape before any
//! tensor data is decoded, and requests within the limits still succeed.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{le, repository_with, TestServer};

const INFER: &str = "/v2/models/identity_fp32/infer";

async fn limited() -> TestServer {
    TestServer::start_with(
        repository_with(&["identity_fp32"]),
        &[
            "--max-tensor-elements",
            "64",
            "--max-tensor-rank",
            "3",
            "--max-batch-bytes",
            "512",
            "--http-max-input-size",
            "65536",
        ],
    )
    .await
    .unwrap()
}

fn request(shape: Value, data: Value) -> Value {
    json!({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": shape, "data": data}]})
}

async fn refused(s: &TestServer, body: &Value, flag: &str) {
    let (status, reply) = s.post_json(INFER, body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    let message = reply["error"].as_str().unwrap();
    assert!(
        message.contains(flag) && message.contains("INPUT0"),
        "{message}"
    );
}

#[tokio::test]
async fn each_limit_is_refused_with_its_flag() {
    let s = limited().await;

    // Within every limit: 4 x 16 FP32 = 64 elements, 256 bytes.
    let (status, reply) = s
        .post_json(INFER, &request(json!([4, 16]), json!(vec![1.0f32; 64])))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");

    refused(
        &s,
        &request(json!([5, 16]), json!(vec![1.0f32; 80])),
        "--max-tensor-elements",
    )
    .await;
    refused(
        &s,
        &request(json!([1, 1, 1, 16]), json!(vec![1.0f32; 16])),
        "--max-tensor-rank",
    )
    .await;

    // A declared shape far beyond the body is refused before its data is
    // read: the data holds a single element.
    refused(
        &s,
        &request(json!([1_000_000_000_000i64, 16]), json!([1.0])),
        "--max-tensor-elements",
    )
    .await;

    // Inputs of 256 bytes each: two reach the 512-byte total, a third
    // passes it.
    let three = json!({"inputs": [
        {"name": "INPUT0", "datatype": "FP32", "shape": [4, 16], "data": vec![1.0f32; 64]},
        {"name": "INPUT0", "datatype": "FP32", "shape": [4, 16], "data": vec![1.0f32; 64]},
        {"name": "INPUT0", "datatype": "FP32", "shape": [4, 16], "data": vec![1.0f32; 64]},
    ]});
    refused(&s, &three, "--max-batch-bytes").await;

    // The binary extension is checked from the header before its data.
    let header = json!({"inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [8, 16],
        "parameters": {"binary_data_size": 512}}]});
    let response = s
        .post_binary(INFER, &header, &le(&[0.5f32; 128], f32::to_le_bytes))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let reply: Value = response.json().await.unwrap();
    let message = reply["error"].as_str().unwrap();
    assert!(message.contains("--max-tensor-elements"), "{message}");

    // The body size limit.
    let big = request(json!([1, 16]), json!(vec![1.0f32; 16_384]));
    let (status, reply) = s.post_json(INFER, &big).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    let message = reply["error"].as_str().unwrap();
    assert!(message.contains("--http-max-input-size"), "{message}");

    // The server still answers.
    let (status, reply) = s
        .post_json(INFER, &request(json!([1, 16]), json!(vec![2.0f32; 16])))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    s.shutdown().await;
}
