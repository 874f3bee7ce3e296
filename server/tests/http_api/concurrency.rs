use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::json;

use crate::common::{binary_outputs, le, output, read_binary, TestServer};

/// 64 concurrent clients, half JSON and half binary, each with its own
/// data: every answer carries its own request's values, and the dynamic
/// batcher accounts for every row.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_requests_get_their_own_answers() {
    let server = Arc::new(TestServer::start(&["identity_fp32"]).await);
    let mut tasks = Vec::new();
    for task in 0..64u16 {
        let server = Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            let rows = 1 + usize::from(task % 3);
            let values: Vec<f32> = (0..rows * 16).map(|i| f32::from(task) * 1000.0 + i as f32).collect();
            let path = "/v2/models/identity_fp32/infer";
            if task % 2 == 0 {
                let request = json!({
                    "id": task.to_string(),
                    "inputs": [{"name": "INPUT0", "shape": [rows, 16], "datatype": "FP32", "data": values}]
                });
                let (status, answer) = server.post_json(path, &request).await;
                assert_eq!(status, StatusCode::OK, "{answer}");
                assert_eq!(answer["id"], task.to_string());
                assert_eq!(output(&answer, "OUTPUT0")["data"], json!(values));
            } else {
                let raw = le(&values, f32::to_le_bytes);
                let header = json!({
                    "inputs": [{"name": "INPUT0", "shape": [rows, 16], "datatype": "FP32", "parameters": {"binary_data_size": raw.len()}}],
                    "parameters": {"binary_data_output": true}
                });
                let response = server.post_binary(path, &header, &raw).await;
                let (answer, tail) = read_binary(response).await;
                let outputs = binary_outputs(&answer, &tail);
                assert_eq!(outputs[0].1.as_ref(), raw.as_slice(), "task {task}");
            }
            rows as u64
        }));
    }
    let mut rows = 0;
    for task in tasks {
        rows += task.await.unwrap();
    }
    let (_, stats) = server.get_json("/v2/models/identity_fp32/stats").await;
    let stats = &stats["model_stats"][0];
    assert_eq!(stats["inference_stats"]["success"]["count"], 64);
    assert_eq!(stats["inference_count"], rows);
    let executions = stats["execution_count"].as_u64().unwrap();
    assert!((1..=64).contains(&executions), "{executions} executions");
    let server = Arc::into_inner(server).expect("every task finished");
    server.shutdown().await;
}
