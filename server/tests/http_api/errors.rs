use reqwest::StatusCode;
use serde_json::{json, Value};

use std::io::{Read, Write};

use crate::common::{read_json, repository_with, TestServer};

fn simple_inputs() -> Value {
    let data: Vec<i32> = (0..16).collect();
    json!([
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": data},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": data},
    ])
}

/// Sends `body` as the request and checks a 400 whose message holds every
/// fragment.
async fn expect_400(server: &TestServer, body: &str, fragments: &[&str]) {
    let response = server
        .client
        .post(server.url("/v2/models/simple/infer"))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let (status, error) = read_json(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {error}");
    let message = error["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {error}"));
    for fragment in fragments {
        assert!(message.contains(fragment), "{message:?} lacks {fragment:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_are_400_naming_the_problem() {
    let server = TestServer::start(&["simple"]).await;
    let with_input = |index: usize, field: &str, value: Value| {
        let mut inputs = simple_inputs();
        inputs[index][field] = value;
        json!({ "inputs": inputs }).to_string()
    };
    expect_400(
        &server,
        "{\"inputs\": [",
        &["malformed request JSON", "EOF while parsing"],
    )
    .await;
    expect_400(&server, "[]", &["failed to parse the request JSON"]).await;
    expect_400(
        &server,
        &with_input(1, "datatype", json!("INT33")),
        &["input 'INPUT1'", "unknown datatype 'INT33'"],
    )
    .await;
    expect_400(
        &server,
        &with_input(0, "shape", json!([1, 15])),
        &["input 'INPUT0'", "more than the 15 elements"],
    )
    .await;
    expect_400(
        &server,
        &with_input(0, "data", json!([1, 2])),
        &["input 'INPUT0'", "needs 16 elements"],
    )
    .await;
    expect_400(
        &server,
        &with_input(0, "data", json!(vec!["a"; 16])),
        &["input 'INPUT0'", "INT32 data must be numbers, got a string"],
    )
    .await;
    expect_400(
        &server,
        &with_input(0, "data", json!(vec![4294967296u64; 16])),
        &["input 'INPUT0'", "out of range for INT32"],
    )
    .await;
    // Valid tensors that do not fit the model's config.
    let mut fp32 = simple_inputs();
    fp32[0]["datatype"] = json!("FP32");
    expect_400(
        &server,
        &json!({ "inputs": fp32 }).to_string(),
        &["INPUT0", "FP32", "INT32"],
    )
    .await;
    let mut wide = simple_inputs();
    for input in wide.as_array_mut().unwrap() {
        input["shape"] = json!([2, 8]);
    }
    expect_400(
        &server,
        &json!({ "inputs": wide }).to_string(),
        &["unexpected shape for input 'INPUT0'"],
    )
    .await;
    let mut large = simple_inputs();
    for input in large.as_array_mut().unwrap() {
        input["shape"] = json!([9, 16]);
        input["data"] = json!(vec![1; 9 * 16]);
    }
    expect_400(
        &server,
        &json!({ "inputs": large }).to_string(),
        &["batch-size must be <= 8"],
    )
    .await;
    let one = json!({ "inputs": [simple_inputs()[0].clone()] }).to_string();
    expect_400(&server, &one, &["missing required input", "INPUT1"]).await;
    let mut extra = simple_inputs();
    extra
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "INPUT9", "shape": [1, 1], "datatype": "INT32", "data": [1]}));
    expect_400(
        &server,
        &json!({ "inputs": extra }).to_string(),
        &["unexpected inference input 'INPUT9'"],
    )
    .await;
    let unknown_output =
        json!({"inputs": simple_inputs(), "outputs": [{"name": "OUTPUT7"}]}).to_string();
    expect_400(
        &server,
        &unknown_output,
        &["unexpected inference output 'OUTPUT7'"],
    )
    .await;
    let priority =
        json!({"inputs": simple_inputs(), "parameters": {"priority": "high"}}).to_string();
    expect_400(&server, &priority, &["parameter 'priority'"]).await;
    let sequence = json!({"inputs": simple_inputs(), "parameters": {"sequence_id": 12, "sequence_start": true}}).to_string();
    expect_400(
        &server,
        &sequence,
        &["'sequence_id' is not supported", "sequence batcher"],
    )
    .await;
    let shm = with_input(0, "parameters", json!({"shared_memory_region": "r"}));
    expect_400(&server, &shm, &["input 'INPUT0'", "shared_memory_region"]).await;

    // Six requests reached the model and failed its validation.
    let (_, stats) = server.get_json("/v2/models/simple/stats").await;
    let fail = &stats["model_stats"][0]["inference_stats"]["fail"];
    assert_eq!(fail["count"], 6, "{stats}");
    assert_eq!(
        stats["model_stats"][0]["inference_stats"]["success"]["count"],
        0
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_data_errors() {
    let server = TestServer::start(&["simple"]).await;
    let header = |size: usize| {
        json!({"inputs": [
            {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "parameters": {"binary_data_size": size}},
            {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "parameters": {"binary_data_size": size}},
        ]})
    };
    let cases: [(Value, usize, &str); 3] = [
        (
            header(64),
            100,
            "input 'INPUT1': binary_data_size is 64 but only 36 bytes",
        ),
        (
            header(60),
            120,
            "input 'INPUT0': INT32 tensor of shape [1, 16] needs 64 bytes, got 60",
        ),
        (header(64), 130, "2 bytes of binary data that no input"),
    ];
    for (header, tail, message) in cases {
        let response = server
            .post_binary("/v2/models/simple/infer", &header, &vec![0; tail])
            .await;
        let (status, error) = read_json(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            error["error"].as_str().unwrap().contains(message),
            "{error} lacks {message}"
        );
    }
    let response = server
        .client
        .post(server.url("/v2/models/simple/infer"))
        .header("inference-header-content-length", "5000")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, error) = read_json(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("Inference-Header-Content-Length is 5000"),
        "{error}"
    );
    let response = server
        .client
        .post(server.url("/v2/models/simple/infer"))
        .header("inference-header-content-length", "many")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_models_and_versions() {
    let server = TestServer::start(&["simple"]).await;
    let body = json!({ "inputs": simple_inputs() });
    let (status, error) = server.post_json("/v2/models/nope/infer", &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        error["error"].as_str().unwrap().contains("'nope'"),
        "{error}"
    );
    let (status, error) = server
        .post_json("/v2/models/simple/versions/7/infer", &body)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("version 7"),
        "{error}"
    );
    let (status, _) = server
        .post_json("/v2/models/simple/versions/-1/infer", &body)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_refused() {
    let server = TestServer::start_with(
        repository_with(&["simple"]),
        &["--http-max-input-size", "1024"],
    )
    .await
    .unwrap();
    let big = json!({"inputs": simple_inputs(), "padding": "x".repeat(2000)}).to_string();
    expect_400(&server, &big, &["larger than the limit of 1024 bytes"]).await;
    // Without a Content-Length the limit applies while the body streams in.
    let status_line = send_chunked(&server, "/v2/models/simple/infer", 8, 512).await;
    assert!(status_line.starts_with("HTTP/1.1 400"), "{status_line}");
    let small = json!({ "inputs": simple_inputs() });
    let (status, answer) = server.post_json("/v2/models/simple/infer", &small).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    server.shutdown().await;
}

/// Sends `chunks` chunks of `size` spaces with chunked transfer encoding
/// (no Content-Length) over a raw socket; returns the status line.
async fn send_chunked(server: &TestServer, path: &str, chunks: usize, size: usize) -> String {
    let address = server.base.trim_start_matches("http://").to_owned();
    let head = format!("POST {path} HTTP/1.1\r\nHost: {address}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    let mut request = head.into_bytes();
    for _ in 0..chunks {
        request.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        request.extend(std::iter::repeat_n(b' ', size));
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = tokio::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(address).unwrap();
        // The server may answer and close before reading everything.
        let _ = socket.write_all(&request);
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer);
        answer
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.contains("limit of 1024 bytes"), "{text}");
    text.lines().next().unwrap_or_default().to_owned()
}
