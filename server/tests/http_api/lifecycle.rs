//! Model life cycle: warmup before readiness, version swaps under load,
//! shutdown of the real binary under load, and the logging extension.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::common::{read_json, repository_with, TestServer};

const CNN_WARMUP: &str = r#"
model_warmup [ { name: "zeros" batch_size: 1 count: 50
  inputs { key: "image" value { data_type: TYPE_FP32 dims: [ 3, 32, 32 ] zero_data: true } } } ]
"#;

fn append_config(repository: &std::path::Path, model: &str, text: &str) {
    let path = repository.join(model).join("config.pbtxt");
    let mut config = std::fs::read_to_string(&path).unwrap();
    config.push_str(text);
    std::fs::write(path, config).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_model_is_ready_only_after_its_warmup() {
    let repository = repository_with(&["cnn"]);
    append_config(repository.path(), "cnn", CNN_WARMUP);
    let flags = ["--model-control-mode=explicit"];
    let server = TestServer::start_with(repository, &flags).await.unwrap();
    let ready_url = server.url("/v2/models/cnn/ready");
    let load = server
        .client
        .post(server.url("/v2/repository/models/cnn/load"))
        .send();
    let load = tokio::spawn(load);
    // While the load runs, every version that answers ready must already
    // have run its 50 warmup requests (the statistics only grow, so reading
    // them after the ready answer cannot see fewer than there were).
    let mut polls = 0;
    while !load.is_finished() {
        polls += 1;
        for version in [1, 2] {
            let url = server.url(&format!("/v2/models/cnn/versions/{version}/ready"));
            let status = server.client.get(&url).send().await.unwrap().status();
            if status != StatusCode::OK {
                continue;
            }
            let (status, stats) = server
                .get_json(&format!("/v2/models/cnn/versions/{version}/stats"))
                .await;
            assert_eq!(status, StatusCode::OK, "{stats}");
            let executions = stats["model_stats"][0]["execution_count"]
                .as_u64()
                .unwrap_or(0);
            assert!(
                executions >= 50,
                "cnn version {version} was ready after {executions} of its 50 warmup runs"
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let loaded = load.await.unwrap().unwrap();
    assert_eq!(loaded.status(), StatusCode::OK);
    assert!(polls > 0, "the load returned before any readiness poll");
    let status = server.client.get(&ready_url).send().await.unwrap().status();
    assert_eq!(status, StatusCode::OK);
    let (status, stats) = server.get_json("/v2/models/cnn/stats").await;
    assert_eq!(status, StatusCode::OK);
    let versions = stats["model_stats"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{stats}");
    for version in versions {
        let executions = version["execution_count"].as_u64().unwrap();
        assert!(executions >= 50, "warmup ran {executions} times: {version}");
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_warmup_fails_the_load_naming_the_sample() {
    let repository = repository_with(&["cnn"]);
    append_config(
        repository.path(),
        "cnn",
        r#"model_warmup [ { name: "from_file" batch_size: 1
  inputs { key: "image" value { data_type: TYPE_FP32 dims: [ 3, 32, 32 ] input_data_file: "image.bin" } } } ]"#,
    );
    let warmup = repository.path().join("cnn/warmup");
    std::fs::create_dir(&warmup).unwrap();
    std::fs::write(warmup.join("image.bin"), [0u8; 100]).unwrap();
    let flags = ["--model-control-mode=explicit"];
    let server = TestServer::start_with(repository, &flags).await.unwrap();
    let response = server
        .client
        .post(server.url("/v2/repository/models/cnn/load"))
        .send()
        .await
        .unwrap();
    let (status, body) = read_json(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("from_file") && error.contains("image.bin"),
        "{error}"
    );
    let status = server
        .client
        .get(server.url("/v2/models/cnn/ready"))
        .send()
        .await
        .unwrap()
        .status();
    assert_ne!(status, StatusCode::OK);
    server.shutdown().await;
}

fn identity_request(seed: f32) -> (Value, Vec<f32>) {
    let data: Vec<f32> = (0..16).map(|i| seed + i as f32).collect();
    let body = json!({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": data}
    ]});
    (body, data)
}

/// Sends one identity request; `Ok(version)` when the answer is right.
async fn identity_call(client: &reqwest::Client, url: &str, seed: f32) -> Result<String, String> {
    let (body, data) = identity_request(seed);
    let response = client
        .post(url)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = response.status();
    let answer: Value = response
        .json()
        .await
        .map_err(|e| format!("bad body: {e}"))?;
    if status != StatusCode::OK {
        return Err(format!("{status}: {answer}"));
    }
    let got: Vec<f32> = answer["outputs"][0]["data"]
        .as_array()
        .ok_or_else(|| format!("no output data: {answer}"))?
        .iter()
        .map(|v| v.as_f64().unwrap_or(f64::NAN) as f32)
        .collect();
    if got != data {
        return Err(format!("wrong output {got:?} for {data:?}"));
    }
    answer["model_version"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no model_version: {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn versions_swap_under_load_without_failures() {
    let repository = repository_with(&["identity_fp32"]);
    let model_dir = repository.path().join("identity_fp32");
    let flags = ["--model-control-mode=poll", "--repository-poll-secs=1"];
    let server = TestServer::start_with(repository, &flags).await.unwrap();
    let url = server.url("/v2/models/identity_fp32/infer");
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..16)
        .map(|client_index| {
            let (client, url) = (server.client.clone(), url.clone());
            let (stop, seen, failures) = (stop.clone(), seen.clone(), failures.clone());
            tokio::spawn(async move {
                let mut calls = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let seed = (client_index * 1000 + calls % 1000) as f32;
                    match identity_call(&client, &url, seed).await {
                        Ok(version) => {
                            let mut seen = seen.lock().unwrap();
                            if seen.last() != Some(&version) {
                                seen.push(version);
                            }
                        }
                        Err(error) => failures.lock().unwrap().push(error),
                    }
                    calls += 1;
                }
                calls
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let staging = tempfile::tempdir().unwrap();
    let staged = staging.path().join("2");
    std::fs::create_dir(&staged).unwrap();
    std::fs::copy(model_dir.join("1/model.onnx"), staged.join("model.onnx")).unwrap();
    std::fs::rename(&staged, model_dir.join("2")).unwrap();
    let serves = |version: &str| seen.lock().unwrap().last().map(String::as_str) == Some(version);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !serves("2") {
        assert!(Instant::now() < deadline, "version 2 was never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::remove_dir_all(model_dir.join("1")).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut calls = 0;
    for client in clients {
        calls += client.await.unwrap();
    }
    let failures = std::mem::take(&mut *failures.lock().unwrap());
    assert!(
        failures.is_empty(),
        "{} of {calls} calls failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(serves("2"), "served versions: {:?}", seen.lock().unwrap());
    assert_eq!(seen.lock().unwrap().first().map(String::as_str), Some("1"));
    server.shutdown().await;
}

/// One request of the shutdown test: when it started and how it ended.
struct Outcome {
    started: Instant,
    ended: Instant,
    result: Result<StatusCode, String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_answers_accepted_requests_and_exits() {
    let repository = repository_with(&["identity_fp32"]);
    // A long batching delay keeps every client's request in flight.
    let config_path = repository.path().join("identity_fp32/config.pbtxt");
    let config = std::fs::read_to_string(&config_path).unwrap();
    let slow = config.replace(
        "max_queue_delay_microseconds: 100",
        "max_queue_delay_microseconds: 200000",
    );
    assert_ne!(config, slow);
    std::fs::write(&config_path, slow).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrite"))
        .arg("--model-repository")
        .arg(repository.path())
        .args(["--http-port=0", "--http-address=127.0.0.1"])
        .args(["--allow-grpc=false", "--allow-metrics=false"])
        .args(["--exit-timeout-secs=20", "--log-info=false"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|line| line.starts_with("ferrite ready"))
    });
    let line = tokio::time::timeout(Duration::from_secs(60), ready)
        .await
        .expect("the server did not start in 60 s")
        .unwrap()
        .expect("the server exited before it was ready");
    let http = line
        .split_whitespace()
        .find_map(|word| word.strip_prefix("http="))
        .unwrap()
        .to_string();
    let url = format!("http://{http}/v2/models/identity_fp32/infer");
    let stop = Arc::new(AtomicBool::new(false));
    let epoch = Instant::now();
    let last_start_ms = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (url, stop, last_start_ms) = (url.clone(), stop.clone(), last_start_ms.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut outcomes = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    last_start_ms.store(
                        started.duration_since(epoch).as_millis() as u64,
                        Ordering::Relaxed,
                    );
                    let (body, _) = identity_request(1.0);
                    let result = client
                        .post(&url)
                        .body(body.to_string())
                        .send()
                        .await
                        .map(|r| r.status())
                        .map_err(|e| e.to_string());
                    let failed = result.is_err();
                    outcomes.push(Outcome {
                        started,
                        ended: Instant::now(),
                        result,
                    });
                    if failed {
                        break;
                    }
                }
                outcomes
            })
        })
        .collect();
    // The batcher answers the clients together every 200 ms; signal
    // 100 ms into a wave so that every client has a request in flight.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let since = epoch.elapsed().as_millis() as u64 - last_start_ms.load(Ordering::Relaxed);
        if (100..150).contains(&since) {
            break;
        }
        assert!(Instant::now() < deadline, "the clients never paused");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let signalled = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let exit = tokio::task::spawn_blocking(move || child.wait());
    let status = tokio::time::timeout(Duration::from_secs(30), exit)
        .await
        .expect("the server did not exit within the exit timeout")
        .unwrap()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    assert!(status.success(), "the server exited with {status}");
    let mut outcomes = Vec::new();
    for client in clients {
        outcomes.extend(client.await.unwrap());
    }
    // Requests sent well before the signal reached the server; each of
    // them must be answered with 200.
    let margin = Duration::from_millis(50);
    let accepted: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.started + margin < signalled)
        .collect();
    let wrong: Vec<String> = accepted
        .iter()
        .filter(|o| o.result != Ok(StatusCode::OK))
        .map(|o| format!("{:?}", o.result))
        .collect();
    assert!(wrong.is_empty(), "accepted requests failed: {wrong:?}");
    let in_flight = accepted.iter().filter(|o| o.ended > signalled).count();
    assert!(in_flight > 0, "no request was in flight at the signal");
    // Later ones may find the port closed; an answer they do get is 200
    // or 503.
    for late in outcomes.iter().filter(|o| o.started + margin >= signalled) {
        if let Ok(status) = late.result {
            assert!(
                [StatusCode::OK, StatusCode::SERVICE_UNAVAILABLE].contains(&status),
                "a request during shutdown got {status}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_settings_are_read_and_changed() {
    let server = TestServer::start(&["simple"]).await;
    let (status, before) = server.get_json("/v2/logging").await;
    assert_eq!(status, StatusCode::OK);
    for key in [
        "log_file",
        "log_info",
        "log_warning",
        "log_error",
        "log_verbose_level",
        "log_format",
    ] {
        assert!(before.get(key).is_some(), "{key} missing from {before}");
    }
    let (status, after) = server
        .post_json(
            "/v2/logging",
            &json!({"log_verbose_level": 2, "log_info": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(
        (
            after["log_verbose_level"].clone(),
            after["log_info"].clone()
        ),
        (json!(2), json!(false))
    );
    assert_eq!(server.get_json("/v2/logging").await.1, after);
    for (body, named) in [
        (json!({"log_file": "/tmp/elsewhere.log"}), "log_file"),
        (json!({"log_format": "json"}), "log_format"),
        (json!({"log_verbose_level": -1}), "log_verbose_level"),
        (json!({"log_warning": "yes"}), "log_warning"),
        (json!({"loudness": 3}), "loudness"),
    ] {
        let (status, error) = server.post_json("/v2/logging", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let message = error["error"].as_str().unwrap();
        assert!(message.contains(named), "{message}");
    }
    assert_eq!(server.get_json("/v2/logging").await.1, after);
    let restore =
        json!({"log_verbose_level": before["log_verbose_level"], "log_info": before["log_info"]});
    let (status, restored) = server.post_json("/v2/logging", &restore).await;
    assert_eq!((status, restored), (StatusCode::OK, before));
    server.shutdown().await;
}
