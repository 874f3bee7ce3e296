//! Health, metadata, configuration, statistics and repository calls.

use ferrite_proto::health::health_check_response::ServingStatus;
use ferrite_proto::health::HealthCheckRequest;
use ferrite_proto::inference::*;
use serde_json::Value;
use tonic::Code;

use super::{input, le, raw_request, GrpcServer};

#[tokio::test]
async fn health_and_server_metadata() {
    let mut s = GrpcServer::start(&["simple"]).await;
    let live = s.client.server_live(ServerLiveRequest {}).await.unwrap();
    assert!(live.into_inner().live);
    let ready = s.client.server_ready(ServerReadyRequest {}).await.unwrap();
    assert!(ready.into_inner().ready);
    let metadata = s
        .client
        .server_metadata(ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metadata.name, "ferrite");
    assert_eq!(metadata.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(
        metadata.extensions,
        vec![
            "binary_tensor_data",
            "logging",
            "model_configuration",
            "model_repository",
            "schedule_policy",
            "statistics",
            "trace"
        ]
    );
    let http: Value = reqwest::get(format!("{}/v2", s.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(http["extensions"], serde_json::json!(metadata.extensions));

    for service in ["", "inference.GRPCInferenceService"] {
        let status = s
            .health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    let error = s
        .health
        .check(HealthCheckRequest {
            service: "other.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    s.shutdown().await;
}

#[tokio::test]
async fn model_readiness_and_metadata() {
    let mut s = GrpcServer::start(&["simple", "identity_bytes", "cnn"]).await;
    let ready = |name: &str, version: &str| ModelReadyRequest {
        name: name.into(),
        version: version.into(),
    };
    assert!(
        s.client
            .model_ready(ready("simple", ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        s.client
            .model_ready(ready("cnn", "2"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !s.client
            .model_ready(ready("cnn", "3"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(
        !s.client
            .model_ready(ready("nope", ""))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    let error = s
        .client
        .model_ready(ready("simple", "one"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);

    let metadata = |name: &str, version: &str| ModelMetadataRequest {
        name: name.into(),
        version: version.into(),
    };
    let simple = s
        .client
        .model_metadata(metadata("simple", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(simple.name, "simple");
    assert_eq!(simple.versions, vec!["1"]);
    assert_eq!(simple.platform, "onnxruntime_onnx");
    let inputs: Vec<(&str, &str, &[i64])> = simple
        .inputs
        .iter()
        .map(|t| (t.name.as_str(), t.datatype.as_str(), t.shape.as_slice()))
        .collect();
    assert_eq!(
        inputs,
        vec![
            ("INPUT0", "INT32", &[-1, 16][..]),
            ("INPUT1", "INT32", &[-1, 16][..])
        ]
    );
    assert_eq!(simple.outputs.len(), 2);

    let bytes = s
        .client
        .model_metadata(metadata("identity_bytes", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bytes.inputs[0].datatype, "BYTES");
    assert_eq!(bytes.outputs[0].shape, vec![-1, -1]);

    let cnn = s
        .client
        .model_metadata(metadata("cnn", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cnn.versions, vec!["1", "2"]);
    let cnn1 = s
        .client
        .model_metadata(metadata("cnn", "1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cnn1.versions, vec!["1"]);

    // The same document as the HTTP endpoint.
    let http: Value = reqwest::get(format!("{}/v2/models/simple", s.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(http["platform"], simple.platform);
    assert_eq!(http["inputs"][1]["shape"], serde_json::json!([-1, 16]));

    let error = s
        .client
        .model_metadata(metadata("nope", ""))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    assert_eq!(
        error.message(),
        "Request for unknown model: 'nope' is not found"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn model_config_is_the_message() {
    let mut s = GrpcServer::start(&["identity_fp32"]).await;
    let config = s
        .client
        .model_config(ModelConfigRequest {
            name: "identity_fp32".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .expect("a config");
    assert_eq!(config.name, "identity_fp32");
    assert_eq!(config.max_batch_size, 64);
    assert_eq!(config.input[0].name, "INPUT0");
    assert_eq!(config.input[0].data_type, DataType::TypeFp32 as i32);
    assert_eq!(config.input[0].dims, vec![16]);
    let Some(model_config::SchedulingChoice::DynamicBatching(dynamic)) = config.scheduling_choice
    else {
        panic!("dynamic batching is configured");
    };
    assert_eq!(dynamic.max_queue_delay_microseconds, 100);
    let error = s
        .client
        .model_config(ModelConfigRequest {
            name: "identity_fp32".into(),
            version: "9".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    assert_eq!(
        error.message(),
        "Request for unknown model: 'identity_fp32' version 9 is not found"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn statistics_match_http() {
    let mut s = GrpcServer::start(&["simple", "cnn"]).await;
    let ones = le(&[1i32; 32], i32::to_le_bytes);
    for _ in 0..3 {
        let request = raw_request(
            "simple",
            vec![
                (input("INPUT0", "INT32", &[2, 16]), ones.clone()),
                (input("INPUT1", "INT32", &[2, 16]), ones.clone()),
            ],
        );
        s.client.model_infer(request).await.unwrap();
    }
    let bad = raw_request(
        "simple",
        vec![(input("INPUT0", "INT32", &[2, 16]), ones.clone())],
    );
    s.client.model_infer(bad).await.unwrap_err();

    let stats = s
        .client
        .model_statistics(ModelStatisticsRequest {
            name: "simple".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .model_stats;
    assert_eq!(stats.len(), 1);
    let simple = &stats[0];
    assert_eq!(
        (simple.name.as_str(), simple.version.as_str()),
        ("simple", "1")
    );
    assert_eq!(simple.inference_count, 6);
    assert_eq!(simple.execution_count, 3);
    assert!(simple.last_inference > 0);
    let inference = simple.inference_stats.as_ref().unwrap();
    assert_eq!(inference.success.as_ref().unwrap().count, 3);
    assert_eq!(inference.fail.as_ref().unwrap().count, 1);
    assert_eq!(inference.cache_hit.as_ref().unwrap().count, 0);
    assert_eq!(simple.batch_stats.len(), 1);
    assert_eq!(simple.batch_stats[0].batch_size, 2);

    let http: Value = reqwest::get(format!("{}/v2/models/simple/stats", s.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let h = &http["model_stats"][0];
    assert_eq!(h["inference_count"], simple.inference_count);
    assert_eq!(h["execution_count"], simple.execution_count);
    assert_eq!(h["last_inference"], simple.last_inference);
    for (name, grpc) in [
        ("success", &inference.success),
        ("fail", &inference.fail),
        ("queue", &inference.queue),
        ("compute_input", &inference.compute_input),
        ("compute_infer", &inference.compute_infer),
        ("compute_output", &inference.compute_output),
    ] {
        let grpc = grpc.as_ref().unwrap();
        assert_eq!(h["inference_stats"][name]["count"], grpc.count, "{name}");
        assert_eq!(h["inference_stats"][name]["ns"], grpc.ns, "{name}");
    }
    assert_eq!(
        h["batch_stats"][0]["compute_infer"]["ns"],
        simple.batch_stats[0].compute_infer.as_ref().unwrap().ns
    );

    let all = s
        .client
        .model_statistics(ModelStatisticsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .model_stats;
    let names: Vec<(&str, &str)> = all
        .iter()
        .map(|m| (m.name.as_str(), m.version.as_str()))
        .collect();
    assert_eq!(names, vec![("cnn", "1"), ("cnn", "2"), ("simple", "1")]);
    let cnn2 = s
        .client
        .model_statistics(ModelStatisticsRequest {
            name: "cnn".into(),
            version: "2".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .model_stats;
    assert_eq!(cnn2.len(), 1);
    assert_eq!(cnn2[0].inference_count, 0);
    let error = s
        .client
        .model_statistics(ModelStatisticsRequest {
            name: "nope".into(),
            version: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    s.shutdown().await;
}

#[tokio::test]
async fn repository_index_and_model_control() {
    let repository = super::common::repository_with(&["simple"]);
    let broken = repository.path().join("broken");
    std::fs::create_dir_all(broken.join("1")).unwrap();
    std::fs::write(
        broken.join("config.pbtxt"),
        "name: \"broken\"\nbackend: \"onnxruntime\"\nmax_batch_size: 0\n",
    )
    .unwrap();
    let mut s = GrpcServer::start_in(
        repository,
        &["--exit-on-error=false", "--strict-readiness=false"],
    )
    .await;
    let index = s
        .client
        .repository_index(RepositoryIndexRequest::default())
        .await
        .unwrap()
        .into_inner()
        .models;
    let simple = index
        .iter()
        .find(|m| m.name == "simple")
        .expect("simple is listed");
    assert_eq!(
        (simple.version.as_str(), simple.state.as_str()),
        ("1", "READY")
    );
    assert!(simple.reason.is_empty());
    let broken = index
        .iter()
        .find(|m| m.name == "broken")
        .expect("broken is listed");
    assert_eq!(broken.state, "UNAVAILABLE");
    assert!(!broken.reason.is_empty());
    let ready_only = s
        .client
        .repository_index(RepositoryIndexRequest {
            repository_name: String::new(),
            ready: true,
        })
        .await
        .unwrap()
        .into_inner()
        .models;
    assert!(ready_only.iter().all(|m| m.state == "READY"));
    assert!(ready_only.iter().any(|m| m.name == "simple"));

    let error = s
        .client
        .repository_model_load(RepositoryModelLoadRequest {
            model_name: "simple".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    assert_eq!(
        error.message(),
        "explicit model load / unload is not allowed if polling is enabled"
    );
    let error = s
        .client
        .repository_model_unload(RepositoryModelUnloadRequest {
            model_name: "simple".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unavailable);
    let error = s
        .client
        .repository_index(RepositoryIndexRequest {
            repository_name: "models".into(),
            ready: false,
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::Unimplemented);
    s.shutdown().await;
}

#[tokio::test]
async fn shared_memory_is_unimplemented() {
    let mut s = GrpcServer::start(&["simple"]).await;
    let c = &mut s.client;
    let codes = [
        c.system_shared_memory_status(SystemSharedMemoryStatusRequest::default())
            .await
            .map(drop),
        c.system_shared_memory_register(SystemSharedMemoryRegisterRequest::default())
            .await
            .map(drop),
        c.system_shared_memory_unregister(SystemSharedMemoryUnregisterRequest::default())
            .await
            .map(drop),
        c.cuda_shared_memory_status(CudaSharedMemoryStatusRequest::default())
            .await
            .map(drop),
        c.cuda_shared_memory_register(CudaSharedMemoryRegisterRequest::default())
            .await
            .map(drop),
        c.cuda_shared_memory_unregister(CudaSharedMemoryUnregisterRequest::default())
            .await
            .map(drop),
    ];
    for result in codes {
        let error = result.unwrap_err();
        assert_eq!(error.code(), Code::Unimplemented);
        assert!(
            error.message().contains("is not supported by ferrite"),
            "{}",
            error.message()
        );
    }
    s.shutdown().await;
}

#[tokio::test]
async fn log_settings_are_read_and_changed() {
    use log_settings_request::setting_value::ParameterChoice as Given;
    use log_settings_response::setting_value::ParameterChoice as Answer;

    let mut s = GrpcServer::start(&["simple"]).await;
    let c = &mut s.client;
    let setting = |name: &str, choice: Given| {
        let value = log_settings_request::SettingValue {
            parameter_choice: Some(choice),
        };
        LogSettingsRequest {
            settings: [(name.to_string(), value)].into_iter().collect(),
        }
    };
    let before = c
        .log_settings(LogSettingsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .settings;
    let mut names: Vec<&str> = before.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "log_error",
            "log_file",
            "log_format",
            "log_info",
            "log_verbose_level",
            "log_warning"
        ]
    );
    let after = c
        .log_settings(setting("log_verbose_level", Given::Uint32Param(3)))
        .await
        .unwrap()
        .into_inner()
        .settings;
    assert_eq!(
        after["log_verbose_level"].parameter_choice,
        Some(Answer::Uint32Param(3))
    );
    let error = c
        .log_settings(setting("log_info", Given::Uint32Param(1)))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("log_info"), "{}", error.message());
    let Some(Answer::Uint32Param(level)) = before["log_verbose_level"].parameter_choice else {
        panic!("log_verbose_level is no integer: {before:?}");
    };
    c.log_settings(setting("log_verbose_level", Given::Uint32Param(level)))
        .await
        .unwrap();
    s.shutdown().await;
}

#[tokio::test]
async fn explicit_model_control_loads_and_unloads() {
    use model_repository_parameter::ParameterChoice;

    let repository = super::common::repository_with(&["simple"]);
    let onnx = std::fs::read(super::common::examples().join("simple/1/model.onnx")).unwrap();
    let mut s = GrpcServer::start_in(repository, &["--model-control-mode=explicit"]).await;
    let ready = |name: &str| ModelReadyRequest {
        name: name.into(),
        version: String::new(),
    };
    let load = |name: &str, parameters: Vec<(&str, ParameterChoice)>| RepositoryModelLoadRequest {
        model_name: name.into(),
        parameters: parameters
            .into_iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    ModelRepositoryParameter {
                        parameter_choice: Some(v),
                    },
                )
            })
            .collect(),
        ..Default::default()
    };
    let ones = le(&[1i32; 16], i32::to_le_bytes);
    let simple_request = |model: &str| {
        raw_request(
            model,
            vec![
                (input("INPUT0", "INT32", &[1, 16]), ones.clone()),
                (input("INPUT1", "INT32", &[1, 16]), ones.clone()),
            ],
        )
    };
    assert!(
        !s.client
            .model_ready(ready("simple"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );

    s.client
        .repository_model_load(load("simple", vec![]))
        .await
        .unwrap();
    assert!(
        s.client
            .model_ready(ready("simple"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    s.client
        .model_infer(simple_request("simple"))
        .await
        .unwrap();

    // Reload with a config that changes the largest batch.
    let mut config: Value = reqwest::get(format!("{}/v2/models/simple/config", s.http))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    config["max_batch_size"] = serde_json::json!(4);
    config.as_object_mut().unwrap().remove("dynamic_batching");
    let parameters = vec![("config", ParameterChoice::StringParam(config.to_string()))];
    s.client
        .repository_model_load(load("simple", parameters))
        .await
        .unwrap();
    let reloaded = s
        .client
        .model_config(ModelConfigRequest {
            name: "simple".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .config
        .unwrap();
    assert_eq!(reloaded.max_batch_size, 4);

    // A model that exists only in the request: its config and its file.
    config["name"] = serde_json::json!("uploaded");
    let parameters = vec![
        ("config", ParameterChoice::StringParam(config.to_string())),
        ("file:1/model.onnx", ParameterChoice::BytesParam(onnx)),
    ];
    s.client
        .repository_model_load(load("uploaded", parameters))
        .await
        .unwrap();
    let response = s
        .client
        .model_infer(simple_request("uploaded"))
        .await
        .unwrap();
    assert_eq!(response.into_inner().model_name, "uploaded");

    s.client
        .repository_model_unload(RepositoryModelUnloadRequest {
            model_name: "simple".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        !s.client
            .model_ready(ready("simple"))
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    assert!(s
        .client
        .model_infer(simple_request("simple"))
        .await
        .is_err());

    let error = s
        .client
        .repository_model_load(load("nope", vec![]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("'nope'"), "{}", error.message());
    let parameters = vec![("bogus", ParameterChoice::BoolParam(true))];
    let error = s
        .client
        .repository_model_load(load("simple", parameters))
        .await
        .unwrap_err();
    assert_eq!(error.message(), "unrecognized load parameter 'bogus'.");
    s.shutdown().await;
}
