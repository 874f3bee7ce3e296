//! The trace extension's settings over HTTP (`/v2/trace/setting`,
//! `/v2/models/{m}/trace/setting`) and gRPC (`TraceSetting`).

use std::collections::HashMap;

use ferrite_proto::inference::{trace_setting_request, TraceSettingRequest};
use reqwest::StatusCode;
use serde_json::json;
use tonic::Code;

use tempfile::TempDir;

use crate::common::{repository_with, TestServer};
use crate::trace::{get_json, Collector, TracedServer};

/// A server in tritonserver's default trace mode (Triton trace files), with
/// a trace file in a temporary folder, which it returns too.
async fn triton_mode_server() -> (TestServer, TempDir, String) {
    let traces = tempfile::tempdir().unwrap();
    let file = traces.path().join("trace.json").display().to_string();
    let server = TestServer::start_with(
        repository_with(&["simple", "identity_fp32"]),
        &["--trace-config", &format!("triton,file={file}")],
    )
    .await
    .unwrap();
    (server, traces, file)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_settings_are_read_changed_and_cleared() {
    let (server, _traces, file) = triton_mode_server().await;
    let defaults = json!({
        "trace_level": ["OFF"],
        "trace_rate": "1000",
        "trace_count": "-1",
        "log_frequency": "0",
        "trace_file": file,
        "trace_mode": "triton"
    });
    let (status, global) = server.get_json("/v2/trace/setting").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(global, defaults);
    let (status, model) = server.get_json("/v2/models/simple/trace/setting").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        model, defaults,
        "a model without overrides shows the global settings"
    );

    let (status, model) = server
        .post_json(
            "/v2/models/simple/trace/setting",
            &json!({"trace_level": ["TIMESTAMPS"], "trace_rate": "5"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{model}");
    assert_eq!(model["trace_level"], json!(["TIMESTAMPS"]));
    assert_eq!(model["trace_rate"], "5");
    let (_, global) = server.get_json("/v2/trace/setting").await;
    assert_eq!(global, defaults, "the global settings are unchanged");
    let (_, other) = server
        .get_json("/v2/models/identity_fp32/trace/setting")
        .await;
    assert_eq!(other, defaults, "other models are unchanged");

    // A global change shows through where the model has no override.
    let (status, global) = server
        .post_json("/v2/trace/setting", &json!({"trace_count": "10"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(global["trace_count"], "10");
    let (_, model) = server.get_json("/v2/models/simple/trace/setting").await;
    assert_eq!(
        (&model["trace_count"], &model["trace_rate"]),
        (&json!("10"), &json!("5"))
    );

    let (status, model) = server
        .post_json(
            "/v2/models/simple/trace/setting",
            &json!({"trace_level": null, "trace_rate": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(model["trace_level"], json!(["OFF"]));
    assert_eq!(model["trace_rate"], "1000");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_refuses_bad_settings_naming_them() {
    let (server, _traces, _) = triton_mode_server().await;
    for (body, named) in [
        (json!({"trace_rate": "often"}), "trace_rate"),
        (json!({"trace_count": "-3"}), "trace_count"),
        (json!({"trace_level": ["LOUD"]}), "LOUD"),
        (json!({"trace_mode": "opentelemetry"}), "trace_mode"),
        (json!({"trace_file": "/tmp/trace.json"}), "trace_file"),
        (json!({"log_frequency": "10"}), "log_frequency"),
        (json!({"trace_speed": "1"}), "trace_speed"),
        (json!({"trace_rate": null}), "trace_rate"),
        (json!({"trace_rate": {"x": 1}}), "trace_rate"),
    ] {
        let (status, answer) = server.post_json("/v2/trace/setting", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let error = answer["error"].as_str().unwrap();
        assert!(error.contains(named), "{body}: {error}");
    }
    let (status, answer) = server
        .post_json("/v2/models/nosuch/trace/setting", &json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    let (status, _) = server.get_json("/v2/models/nosuch/trace/setting").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, global) = server.get_json("/v2/trace/setting").await;
    assert_eq!(global["trace_rate"], "1000", "nothing was changed");
    server.shutdown().await;

    // Triton mode without a trace file cannot trace.
    let server = TestServer::start(&["simple"]).await;
    let (status, answer) = server
        .post_json(
            "/v2/models/simple/trace/setting",
            &json!({"trace_level": ["TIMESTAMPS"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains("triton,file=PATH"), "{error}");
    server.shutdown().await;
}

fn values(settings: &[(&str, &[&str])]) -> HashMap<String, trace_setting_request::SettingValue> {
    settings
        .iter()
        .map(|(name, values)| {
            let value = values.iter().map(|v| v.to_string()).collect();
            (
                name.to_string(),
                trace_setting_request::SettingValue { value },
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_trace_setting_reads_changes_and_clears() {
    let collector = Collector::start().await;
    let mut s = TracedServer::start(&["simple"], &collector, &[]).await;
    let read = s
        .grpc
        .trace_setting(TraceSettingRequest::default())
        .await
        .unwrap()
        .into_inner()
        .settings;
    let value = |settings: &HashMap<String, _>, name: &str| -> Vec<String> {
        let setting: &ferrite_proto::inference::trace_setting_response::SettingValue =
            &settings[name];
        setting.value.clone()
    };
    assert_eq!(value(&read, "trace_level"), ["OFF"]);
    assert_eq!(value(&read, "trace_rate"), ["1000"]);
    assert_eq!(value(&read, "trace_mode"), ["opentelemetry"]);
    assert_eq!(read.len(), 6);

    let changed = s
        .grpc
        .trace_setting(TraceSettingRequest {
            settings: values(&[("trace_level", &["TIMESTAMPS"]), ("trace_count", &["3"])]),
            model_name: "simple".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .settings;
    assert_eq!(value(&changed, "trace_level"), ["TIMESTAMPS"]);
    assert_eq!(value(&changed, "trace_count"), ["3"]);
    let (_, http) = get_json(&s, "/v2/models/simple/trace/setting").await;
    assert_eq!(
        http["trace_level"],
        json!(["TIMESTAMPS"]),
        "both front ends share the settings"
    );

    let cleared = s
        .grpc
        .trace_setting(TraceSettingRequest {
            settings: values(&[("trace_level", &[])]),
            model_name: "simple".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .settings;
    assert_eq!(value(&cleared, "trace_level"), ["OFF"]);
    assert_eq!(
        value(&cleared, "trace_count"),
        ["3"],
        "other overrides stay"
    );

    for (request, code, named) in [
        (
            TraceSettingRequest {
                settings: values(&[("trace_rate", &["x"])]),
                model_name: String::new(),
            },
            Code::InvalidArgument,
            "trace_rate",
        ),
        (
            TraceSettingRequest {
                settings: values(&[("trace_level", &[])]),
                model_name: String::new(),
            },
            Code::InvalidArgument,
            "trace_level",
        ),
        (
            TraceSettingRequest {
                settings: HashMap::new(),
                model_name: "nosuch".into(),
            },
            Code::NotFound,
            "nosuch",
        ),
    ] {
        let error = s.grpc.trace_setting(request).await.unwrap_err();
        assert_eq!(error.code(), code);
        assert!(error.message().contains(named), "{}", error.message());
    }
    s.shutdown().await;
}
