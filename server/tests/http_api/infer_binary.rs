use std::io::Write;

use bytes::Bytes;
use half::f16;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{binary_outputs, le, output, read_binary, read_json, TestServer};

fn bytes_elements(elements: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in elements {
        out.extend_from_slice(&u32::try_from(e.len()).unwrap().to_le_bytes());
        out.extend_from_slice(e);
    }
    out
}

/// Raw little-endian data for each of `all_types`' inputs, shape [2, 4].
/// `any_bytes` puts bytes that are not UTF-8 in the BYTES tensor.
fn all_types_raw(any_bytes: bool) -> Vec<(&'static str, Vec<u8>)> {
    let odd: &[u8] = if any_bytes {
        b"\xff\x00binary"
    } else {
        "\u{2713} utf-8".as_bytes()
    };
    vec![
        ("BOOL", vec![1, 0, 0, 1, 0, 0, 1, 1]),
        ("UINT8", vec![0, 1, 254, 255, 7, 8, 9, 10]),
        (
            "UINT16",
            le(&[0u16, 1, 65534, 65535, 7, 8, 9, 10], u16::to_le_bytes),
        ),
        (
            "UINT32",
            le(
                &[0u32, 1, u32::MAX - 1, u32::MAX, 7, 8, 9, 10],
                u32::to_le_bytes,
            ),
        ),
        (
            "UINT64",
            le(
                &[0u64, 1, u64::MAX - 1, u64::MAX, 7, 8, 9, 10],
                u64::to_le_bytes,
            ),
        ),
        (
            "INT8",
            le(&[-128i8, -1, 0, 127, 7, 8, 9, 10], i8::to_le_bytes),
        ),
        (
            "INT16",
            le(&[i16::MIN, -1, 0, i16::MAX, 7, 8, 9, 10], i16::to_le_bytes),
        ),
        (
            "INT32",
            le(&[i32::MIN, -1, 0, i32::MAX, 7, 8, 9, 10], i32::to_le_bytes),
        ),
        (
            "INT64",
            le(&[i64::MIN, -1, 0, i64::MAX, 7, 8, 9, 10], i64::to_le_bytes),
        ),
        (
            "FP16",
            le(
                &[0.5f32, -1.25, 65504.0, 0.0, 1.0, 2.0, 3.0, f32::INFINITY].map(f16::from_f32),
                f16::to_le_bytes,
            ),
        ),
        (
            "FP32",
            le(
                &[
                    0.1f32,
                    -1.5,
                    f32::MAX,
                    0.0,
                    1.0,
                    f32::NEG_INFINITY,
                    3.0,
                    -4.0,
                ],
                f32::to_le_bytes,
            ),
        ),
        (
            "FP64",
            le(
                &[0.1f64, -1.5, 1e300, 0.0, 1.0, 2.0, f64::NAN, -4.0],
                f64::to_le_bytes,
            ),
        ),
        (
            "BYTES",
            bytes_elements(&[b"a", b"", odd, b"x y", b"1", b"22", b"333", b"4444"]),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_datatype_round_trips_as_binary() {
    let server = TestServer::start(&["all_types"]).await;
    let cases = all_types_raw(server.onnxruntime("all_types"));
    let mut tail = Vec::new();
    let inputs: Vec<Value> = cases
        .iter()
        .map(|(dtype, raw)| {
            tail.extend_from_slice(raw);
            json!({"name": format!("IN_{dtype}"), "shape": [2, 4], "datatype": dtype,
                   "parameters": {"binary_data_size": raw.len()}})
        })
        .collect();
    let header = json!({"inputs": inputs, "parameters": {"binary_data_output": true}});
    let response = server
        .post_binary("/v2/models/all_types/infer", &header, &tail)
        .await;
    let (answer, tail) = read_binary(response).await;
    let outputs = binary_outputs(&answer, &tail);
    assert_eq!(outputs.len(), cases.len());
    for (dtype, raw) in &cases {
        let name = format!("OUT_{dtype}");
        let (_, data) = outputs.iter().find(|(n, _)| *n == name).unwrap();
        assert_eq!(
            data.as_ref(),
            raw.as_slice(),
            "{dtype}: bit-exact, NaN and infinities included"
        );
        assert_eq!(output(&answer, &name)["datatype"], *dtype);
        assert_eq!(output(&answer, &name)["shape"], json!([2, 4]));
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_binary_and_json_tensors() {
    let server = TestServer::start(&["simple"]).await;
    let a: Vec<i32> = (0..16).map(|i| i * 1000).collect();
    let b: Vec<i32> = (0..16).collect();
    let header = json!({
        "id": "mixed",
        "inputs": [
            {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "parameters": {"binary_data_size": 64}},
            {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": b},
        ],
        "outputs": [
            {"name": "OUTPUT0", "parameters": {"binary_data": true}},
            {"name": "OUTPUT1", "parameters": {"binary_data": false}},
        ]
    });
    let response = server
        .post_binary(
            "/v2/models/simple/infer",
            &header,
            &le(&a, i32::to_le_bytes),
        )
        .await;
    let (answer, tail) = read_binary(response).await;
    assert_eq!(answer["id"], "mixed");
    let sum: Vec<i32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    let diff: Vec<i32> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    assert_eq!(tail.as_ref(), le(&sum, i32::to_le_bytes).as_slice());
    assert_eq!(output(&answer, "OUTPUT1")["data"], json!(diff));
    assert!(output(&answer, "OUTPUT0").get("data").is_none());

    // JSON inputs, outputs all binary through the request parameter, but
    // one output asks for JSON.
    let request = json!({
        "inputs": [
            {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": a},
            {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": b},
        ],
        "outputs": [{"name": "OUTPUT0"}, {"name": "OUTPUT1", "parameters": {"binary_data": false}}],
        "parameters": {"binary_data_output": true}
    });
    let response = server
        .client
        .post(server.url("/v2/models/simple/infer"))
        .body(request.to_string())
        .send()
        .await
        .unwrap();
    let (answer, tail) = read_binary(response).await;
    assert_eq!(tail.as_ref(), le(&sum, i32::to_le_bytes).as_slice());
    assert_eq!(output(&answer, "OUTPUT1")["data"], json!(diff));
    server.shutdown().await;
}

/// Strings as binary data both ways, and BYTES output that JSON cannot
/// hold. tract keeps BYTES elements as UTF-8 strings, so the bytes that are
/// not UTF-8 only go through ONNX Runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strings_as_binary_data() {
    let server = TestServer::start(&["identity_bytes"]).await;
    let path = "/v2/models/identity_bytes/infer";
    let utf8 = bytes_elements(&[b"ok", "\u{e9}t\u{e9}".as_bytes(), b""]);
    let header = json!({"inputs": [{"name": "INPUT0", "shape": [1, 3], "datatype": "BYTES", "parameters": {"binary_data_size": utf8.len()}}]});
    let (status, answer) = read_json(server.post_binary(path, &header, &utf8).await).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        output(&answer, "OUTPUT0")["data"],
        json!(["ok", "\u{e9}t\u{e9}", ""])
    );
    if !server.onnxruntime("identity_bytes") {
        server.shutdown().await;
        return;
    }
    let raw = bytes_elements(&[b"ok", b"\xff\xfe"]);
    let mut header = json!({"inputs": [{"name": "INPUT0", "shape": [1, 2], "datatype": "BYTES", "parameters": {"binary_data_size": raw.len()}}]});
    let (status, error) = read_json(server.post_binary(path, &header, &raw).await).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = error["error"].as_str().unwrap();
    assert!(
        message.contains("OUTPUT0") && message.contains("binary_data"),
        "{message}"
    );

    header["outputs"] = json!([{"name": "OUTPUT0", "parameters": {"binary_data": true}}]);
    let (answer, tail) = read_binary(server.post_binary(path, &header, &raw).await).await;
    assert_eq!(output(&answer, "OUTPUT0")["shape"], json!([1, 2]));
    assert_eq!(tail.as_ref(), raw.as_slice());
    server.shutdown().await;
}

fn compress(encoding: &str, data: &[u8]) -> Vec<u8> {
    match encoding {
        "gzip" => {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        }
        _ => {
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_request_bodies() {
    let server = TestServer::start(&["identity_fp32"]).await;
    let values: Vec<f32> = (0..32).map(|i| i as f32 / 8.0).collect();
    let raw = le(&values, f32::to_le_bytes);
    let json = json!({"inputs": [{"name": "INPUT0", "shape": [2, 16], "datatype": "FP32", "parameters": {"binary_data_size": raw.len()}}],
                      "parameters": {"binary_data_output": true}})
    .to_string();
    let mut body = json.clone().into_bytes();
    body.extend_from_slice(&raw);
    for encoding in ["gzip", "deflate"] {
        let response = server
            .client
            .post(server.url("/v2/models/identity_fp32/infer"))
            .header("content-encoding", encoding)
            .header("inference-header-content-length", json.len().to_string())
            .body(compress(encoding, &body))
            .send()
            .await
            .unwrap();
        let (_, tail) = read_binary(response).await;
        assert_eq!(tail, Bytes::from(raw.clone()), "{encoding}");
    }
    let response = server
        .client
        .post(server.url("/v2/models/identity_fp32/infer"))
        .header("content-encoding", "br")
        .body(body)
        .send()
        .await
        .unwrap();
    let (status, error) = read_json(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("Content-Encoding 'br'"),
        "{error}"
    );
    server.shutdown().await;
}
