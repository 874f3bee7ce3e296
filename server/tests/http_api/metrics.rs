use reqwest::StatusCode;
use serde_json::json;

use crate::common::TestServer;

/// The value of `metric` for the labels of `model` version 1.
fn value(text: &str, metric: &str, model: &str) -> u64 {
    let prefix = format!("{metric}{{model=\"{model}\",version=\"1\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_follow_requests() {
    let server = TestServer::start(&["simple", "identity_fp32"]).await;
    let text = server.metrics_text().await;
    assert_eq!(value(&text, "nv_inference_request_success", "simple"), 0);

    let data: Vec<i32> = (0..48).collect();
    let ok = json!({"inputs": [
        {"name": "INPUT0", "shape": [3, 16], "datatype": "INT32", "data": data},
        {"name": "INPUT1", "shape": [3, 16], "datatype": "INT32", "data": data},
    ]});
    for _ in 0..2 {
        let (status, answer) = server.post_json("/v2/models/simple/infer", &ok).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let bad = json!({"inputs": [ok["inputs"][0].clone()]});
    let (status, _) = server.post_json("/v2/models/simple/infer", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let text = server.metrics_text().await;
    for metric in [
        "nv_inference_request_success",
        "nv_inference_request_failure",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_request_duration_us",
        "nv_inference_queue_duration_us",
        "nv_inference_compute_input_duration_us",
        "nv_inference_compute_infer_duration_us",
        "nv_inference_compute_output_duration_us",
    ] {
        assert!(text.contains(&format!("# HELP {metric} ")), "{metric}");
        assert!(
            text.contains(&format!("# TYPE {metric} counter\n")),
            "{metric}"
        );
        value(&text, metric, "identity_fp32");
    }
    assert_eq!(value(&text, "nv_inference_request_success", "simple"), 2);
    assert_eq!(value(&text, "nv_inference_request_failure", "simple"), 1);
    assert_eq!(value(&text, "nv_inference_count", "simple"), 6);
    assert_eq!(value(&text, "nv_inference_exec_count", "simple"), 2);
    assert_eq!(
        value(&text, "nv_inference_request_success", "identity_fp32"),
        0
    );
    let (_, stats) = server.get_json("/v2/models/simple/stats").await;
    let success_ns = stats["model_stats"][0]["inference_stats"]["success"]["ns"]
        .as_u64()
        .unwrap();
    assert_eq!(
        value(&text, "nv_inference_request_duration_us", "simple"),
        success_ns / 1000
    );

    let response = server
        .client
        .get(format!("{}/nothing", server.metrics))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    server.shutdown().await;
}
