//! Triton's trace files (`--trace-config triton,file=...`, tritonserver's
//! default trace mode): every sampled request is one JSON object with its
//! time stamps, and `log-frequency` splits the traces across files.

use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::common::{repository_with, TestServer};

fn request(id: &str) -> Value {
    json!({"id": id, "inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": vec![1; 16]},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": vec![2; 16]},
    ]})
}

fn names(trace: &Value) -> Vec<&str> {
    trace["timestamps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

/// A server of the `simple` model writing Triton trace files to
/// `trace.json` in a new folder, with `settings` added; the folder (kept
/// while it lives) and the file's path.
async fn traced_server(settings: &[&str]) -> (TestServer, TempDir, PathBuf) {
    let traces = tempfile::tempdir().unwrap();
    let file = traces.path().join("trace.json");
    let file_setting = format!("--trace-config=triton,file={}", file.display());
    let mut args = vec![file_setting.as_str()];
    args.extend_from_slice(settings);
    let server = TestServer::start_with(repository_with(&["simple"]), &args)
        .await
        .unwrap();
    (server, traces, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_written_to_files_of_log_frequency_traces() {
    let (server, traces, file) = traced_server(&[
        "--trace-config=triton,log-frequency=2",
        "--trace-config=level=TIMESTAMPS",
        "--trace-config=rate=1",
    ])
    .await;
    for id in ["a", "b", "c"] {
        let (status, answer) = server
            .post_json("/v2/models/simple/infer", &request(id))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (status, bad) = server
        .post_json(
            "/v2/models/simple/infer",
            &json!({"id": "bad", "inputs": []}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    server.shutdown().await;

    let read = |index: usize| -> Vec<Value> {
        let path = traces.path().join(format!("trace.json.{index}"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str::<Vec<Value>>(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    let (first, second) = (read(0), read(1));
    assert_eq!((first.len(), second.len()), (2, 2));
    assert!(!file.exists(), "with a log frequency, only numbered files");
    let all: Vec<&Value> = first.iter().chain(&second).collect();
    let ids: Vec<&str> = all
        .iter()
        .map(|t| t["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b", "c", "bad"]);
    for trace in &all {
        assert_eq!(trace["model_name"], "simple");
        assert_eq!(trace["model_version"], 1);
        let stamps: Vec<u64> = trace["timestamps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["ns"].as_u64().unwrap())
            .collect();
        assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{trace}");
    }
    let numbers: Vec<u64> = all.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    assert_eq!(
        names(all[0]),
        [
            "HTTP_RECV_START",
            "HTTP_RECV_END",
            "REQUEST_START",
            "QUEUE_START",
            "COMPUTE_START",
            "COMPUTE_INPUT_END",
            "COMPUTE_OUTPUT_START",
            "COMPUTE_END",
            "REQUEST_END",
            "HTTP_SEND_START",
            "HTTP_SEND_END"
        ]
    );
    assert_eq!(
        names(all[3]),
        [
            "HTTP_RECV_START",
            "HTTP_RECV_END",
            "REQUEST_START",
            "REQUEST_END",
            "HTTP_SEND_START",
            "HTTP_SEND_END"
        ],
        "the bad request never reached a queue"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_file_without_log_frequency_and_level_off_writes_nothing() {
    let (server, _traces, file) = traced_server(&["--trace-config=rate=1"]).await;
    let (status, _) = server
        .post_json("/v2/models/simple/infer", &request("off"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .post_json("/v2/trace/setting", &json!({"trace_level": ["TIMESTAMPS"]}))
        .await;
    assert_eq!(status, StatusCode::OK);
    for id in ["on1", "on2"] {
        let (status, _) = server
            .post_json("/v2/models/simple/infer", &request(id))
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    server.shutdown().await;
    let traces: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let ids: Vec<&str> = traces
        .iter()
        .map(|t| t["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["on1", "on2"], "level OFF traced nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn level_tensors_writes_inputs_and_outputs_after_their_trace() {
    let (server, _traces, file) =
        traced_server(&["--trace-config=level=TENSORS", "--trace-config=rate=1"]).await;
    let (status, answer) = server.get_json("/v2/models/simple/trace/setting").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["trace_level"], json!(["TENSORS"]));
    let body = json!({"id": "t", "inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": (0..16).collect::<Vec<i32>>()},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": vec![1; 16]},
    ], "outputs": [{"name": "OUTPUT1"}]});
    let (status, answer) = server.post_json("/v2/models/simple/infer", &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    server.shutdown().await;

    let traces: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(traces[0]["request_id"], "t");
    assert!(
        traces[0].get("timestamps").is_none(),
        "TENSORS alone records no time stamps: {}",
        traces[0]
    );
    let tensors: Vec<(&str, &str)> = traces[1..]
        .iter()
        .map(|t| {
            assert_eq!(t["id"], traces[0]["id"]);
            assert_eq!(t["tensor"]["shape"], "1,16");
            assert_eq!(t["tensor"]["dtype"], "INT32");
            (
                t["activity"].as_str().unwrap(),
                t["tensor"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tensors,
        [
            ("TENSOR_QUEUE_INPUT", "INPUT0"),
            ("TENSOR_QUEUE_INPUT", "INPUT1"),
            ("TENSOR_BACKEND_OUTPUT", "OUTPUT1"),
        ]
    );
    let data = |i: usize| traces[i]["tensor"]["data"].as_str().unwrap().to_string();
    let counting: Vec<String> = (0..16).map(|v| v.to_string()).collect();
    assert_eq!(data(1), counting.join(","));
    let minus_one: Vec<String> = (-1..15).map(|v| v.to_string()).collect();
    assert_eq!(data(3), minus_one.join(","), "OUTPUT1 = INPUT0 - INPUT1");
}
