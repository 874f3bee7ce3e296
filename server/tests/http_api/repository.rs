//! The model repository extension and the model control modes.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{copy_model, read_json, repository_with, TestServer};

async fn post(server: &TestServer, path: &str, body: Value) -> (StatusCode, Value) {
    let response = server
        .client
        .post(server.url(path))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    read_json(response).await
}

async fn ready(server: &TestServer, model: &str) -> bool {
    let url = server.url(&format!("/v2/models/{model}/ready"));
    server.client.get(url).send().await.unwrap().status() == StatusCode::OK
}

async fn index_row(server: &TestServer, model: &str) -> Value {
    let (status, index) = post(server, "/v2/repository/index", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    index
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["name"] == model)
        .cloned()
        .unwrap_or(Value::Null)
}

/// Waits, polling every 100 ms for at most 30 s, until `check` holds.
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn simple_request(rows: usize) -> Value {
    let data: Vec<i32> = (0..16 * rows as i32).collect();
    json!({"inputs": [
        {"name": "INPUT0", "shape": [rows, 16], "datatype": "INT32", "data": data},
        {"name": "INPUT1", "shape": [rows, 16], "datatype": "INT32", "data": data},
    ]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_mode_loads_reloads_and_unloads() {
    let repository = repository_with(&["simple", "identity_fp32"]);
    let flags = ["--model-control-mode=explicit", "--load-model=simple"];
    let server = TestServer::start_with(repository, &flags).await.unwrap();
    assert!(ready(&server, "simple").await);
    assert!(!ready(&server, "identity_fp32").await);
    assert_eq!(
        index_row(&server, "identity_fp32").await,
        json!({"name": "identity_fp32"})
    );
    assert_eq!(
        index_row(&server, "simple").await,
        json!({"name": "simple", "version": "1", "state": "READY"})
    );

    let (status, _) = post(
        &server,
        "/v2/repository/models/identity_fp32/load",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(ready(&server, "identity_fp32").await);

    let config = json!({"name": "simple", "backend": "onnxruntime", "max_batch_size": 2});
    let body = json!({"parameters": {"config": config.to_string()}});
    let (status, _) = post(&server, "/v2/repository/models/simple/load", body).await;
    assert_eq!(status, StatusCode::OK);
    let (_, loaded) = server.get_json("/v2/models/simple/config").await;
    assert_eq!(loaded["max_batch_size"], 2);
    let (status, error) = server
        .post_json("/v2/models/simple/infer", &simple_request(4))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    let (status, _) = server
        .post_json("/v2/models/simple/infer", &simple_request(2))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = post(
        &server,
        "/v2/repository/models/identity_fp32/unload",
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(!ready(&server, "identity_fp32").await);
    assert_eq!(
        index_row(&server, "identity_fp32").await,
        json!({"name": "identity_fp32", "state": "UNAVAILABLE", "reason": "unloaded"})
    );
    let (status, _) = server.get_json("/v2/health/ready").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an unloaded model does not make the server unready"
    );

    let (status, error) = post(&server, "/v2/repository/models/nothing/load", json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["error"].as_str().unwrap().contains("nothing"),
        "{error}"
    );
    let bad = json!({"parameters": {"config": "{not json"}});
    let (status, error) = post(&server, "/v2/repository/models/simple/load", bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["error"].as_str().unwrap().contains("'config'"),
        "{error}"
    );
    assert!(
        ready(&server, "simple").await,
        "a failed load keeps the model serving"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_mode_refuses_load_and_unload() {
    let server = TestServer::start(&["simple"]).await;
    for action in ["load", "unload"] {
        let path = format!("/v2/repository/models/simple/{action}");
        let (status, error) = post(&server, &path, json!({})).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{action}");
        assert_eq!(
            error["error"],
            "explicit model load / unload is not allowed if polling is enabled"
        );
    }
    assert!(ready(&server, "simple").await);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_mode_follows_the_repository() {
    let repository = repository_with(&["simple"]);
    let root = repository.path().to_path_buf();
    let flags = ["--model-control-mode=poll", "--repository-poll-secs=1"];
    let server = TestServer::start_with(repository, &flags).await.unwrap();
    assert!(ready(&server, "simple").await);

    copy_model("identity_fp32", &root);
    eventually("the added model is ready", || {
        ready(&server, "identity_fp32")
    })
    .await;

    std::fs::write(root.join("simple/config.pbtxt"), "max_batch_size: [ broken").unwrap();
    copy_model("mlp", &root);
    eventually("a later poll loaded mlp", || ready(&server, "mlp")).await;
    let (status, _) = server
        .post_json("/v2/models/simple/infer", &simple_request(1))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a broken config keeps the old model serving"
    );

    std::fs::remove_dir_all(root.join("identity_fp32")).unwrap();
    eventually("the removed model is unloaded", || async {
        !ready(&server, "identity_fp32").await
    })
    .await;
    server.shutdown().await;
}
