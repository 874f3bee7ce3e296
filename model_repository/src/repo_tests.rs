//! Scanning and loading whole repositories built on disk.

use std::path::Path;

use ferrite_proto::inference::model_config::SchedulingChoice;
use ferrite_proto::inference::model_instance_group::Kind;
use ferrite_proto::inference::DataType;
use ferrite_proto::onnx::tensor_proto::DataType as Elem;
use prost::Message;

use crate::test_support::*;
use crate::*;

fn opts(repo: &Repo) -> RepositoryOptions {
    RepositoryOptions::new([repo.path()])
}

fn load(repo: &Repo, name: &str) -> Result<ModelSpec, RepositoryError> {
    load_model(&opts(repo), name)
}

fn config_error(
    result: Result<ModelSpec, RepositoryError>,
) -> (std::path::PathBuf, String, String) {
    match result {
        Err(RepositoryError::Config {
            path,
            field,
            message,
        }) => (path, field, message),
        other => panic!("expected a config error, got {other:?}"),
    }
}

const SIMPLE: &str = r#"
name: "simple"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [
  { name: "INPUT0" data_type: TYPE_INT32 dims: [ 16 ] },
  { name: "INPUT1" data_type: TYPE_INT32 dims: [ 16 ] }
]
output [
  { name: "OUTPUT0" data_type: TYPE_INT32 dims: [ 16 ] },
  { name: "OUTPUT1" data_type: TYPE_INT32 dims: [ 16 ] }
]
"#;

#[test]
fn missing_config_is_completed_from_the_model() {
    let repo = Repo::new();
    repo.add("add_sub", None, &[1, 2], &add_sub());
    let spec = load(&repo, "add_sub").expect("loads");
    let c = &spec.config;
    assert_eq!(spec.config_path, None);
    assert_eq!(c.name, "add_sub");
    assert_eq!(c.platform, "onnxruntime_onnx");
    assert_eq!(c.backend, "onnxruntime");
    assert_eq!(spec.backend(), Some(BackendKind::OnnxRuntime));
    assert_eq!(c.max_batch_size, 4);
    let names: Vec<&str> = c.input.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["INPUT0", "INPUT1"]);
    assert!(c
        .input
        .iter()
        .all(|i| i.dims == [16] && i.data_type == DataType::TypeInt32 as i32));
    assert_eq!(c.output.len(), 2);
    assert!(matches!(
        c.scheduling_choice,
        Some(SchedulingChoice::DynamicBatching(_))
    ));
    assert_eq!(c.instance_group.len(), 1);
    assert_eq!(c.instance_group[0].name, "add_sub_0");
    assert_eq!(c.instance_group[0].kind, Kind::Cpu as i32);
    assert_eq!(c.instance_group[0].count, 1);
    // Default policy: the latest version only.
    assert_eq!(spec.versions.len(), 1);
    assert_eq!(spec.versions[0].version, 2);
    assert_eq!(spec.versions[0].model_file, spec.dir.join("2/model.onnx"));

    let json = ferrite_proto::model_config_to_json(c);
    assert_eq!(json["platform"], "onnxruntime_onnx");
    assert_eq!(json["backend"], "onnxruntime");
    assert_eq!(json["version_policy"]["latest"]["num_versions"], 1);
    assert_eq!(json["input"][0]["dims"], serde_json_dims(&[16]));
}

fn serde_json_dims(dims: &[i64]) -> serde_json::Value {
    serde_json::Value::Array(dims.iter().map(|d| (*d).into()).collect())
}

#[test]
fn triton_simple_config_loads() {
    let repo = Repo::new();
    repo.add("simple", Some(SIMPLE), &[1], &add_sub());
    let spec = load(&repo, "simple").expect("loads");
    assert_eq!(spec.config.max_batch_size, 8);
    assert_eq!(spec.config.backend, "onnxruntime");
    assert_eq!(spec.config_path, Some(spec.dir.join("config.pbtxt")));
    // A declared max_batch_size is not auto-filled, so no scheduler is
    // added: Triton's ONNX Runtime backend turns the dynamic batcher on only
    // when it fills max_batch_size itself.
    assert!(spec.config.scheduling_choice.is_none());
}

#[test]
fn non_batching_classifier_with_initializers() {
    let repo = Repo::new();
    repo.add("densenet", None, &[1], &classifier());
    let spec = load(&repo, "densenet").expect("loads");
    assert_eq!(spec.config.max_batch_size, 0);
    assert_eq!(spec.config.input.len(), 1, "initializers are not inputs");
    assert_eq!(spec.config.input[0].dims, vec![1, 3, 224, 224]);
    assert_eq!(spec.config.output[0].dims, vec![1, 1000, 1, 1]);
    assert!(spec.config.scheduling_choice.is_none());
}

#[test]
fn config_disagreeing_with_the_model() {
    let repo = Repo::new();
    repo.add(
        "m",
        Some(
            &SIMPLE
                .replace("simple", "m")
                .replacen("TYPE_INT32", "TYPE_FP32", 1),
        ),
        &[1],
        &add_sub(),
    );
    let (path, field, message) = config_error(load(&repo, "m"));
    assert_eq!(path, repo.path().join("m/config.pbtxt"));
    assert_eq!(field, "input[0].data_type");
    assert!(
        message.contains("TYPE_FP32") && message.contains("TYPE_INT32"),
        "{message}"
    );

    repo.add(
        "d",
        Some(&SIMPLE.replace("simple", "d").replacen("[ 16 ]", "[ 8 ]", 1)),
        &[1],
        &add_sub(),
    );
    let (_, field, _) = config_error(load(&repo, "d"));
    assert_eq!(field, "input[0].dims");

    repo.add(
        "n",
        Some(&SIMPLE.replace("simple", "n").replace("INPUT1", "INPUT9")),
        &[1],
        &add_sub(),
    );
    let (_, field, message) = config_error(load(&repo, "n"));
    assert_eq!(field, "input[1].name");
    assert!(message.contains("INPUT9"), "{message}");
}

#[test]
fn auto_complete_can_be_disabled() {
    let repo = Repo::new();
    repo.add("bare", None, &[1], &add_sub());
    let mut options = opts(&repo);
    options.auto_complete = false;
    let (path, field, message) = config_error(load_model(&options, "bare"));
    assert_eq!(path, repo.path().join("bare"));
    assert_eq!(field, "input");
    assert!(message.contains("INPUT0"), "{message}");

    repo.add("simple", Some(SIMPLE), &[1], &add_sub());
    let spec = load_model(&options, "simple").expect("a full config needs no completion");
    assert!(spec.config.scheduling_choice.is_none());
    assert_eq!(
        spec.config.instance_group.len(),
        1,
        "instance groups are always completed"
    );
}

#[test]
fn explicit_zero_max_batch_size_is_kept() {
    let repo = Repo::new();
    repo.add("m", Some("max_batch_size: 0"), &[1], &add_sub());
    let spec = load(&repo, "m").expect("loads");
    assert_eq!(spec.config.max_batch_size, 0);
    assert_eq!(spec.config.input[0].dims, vec![-1, 16]);
}

#[test]
fn declared_batching_needs_a_variable_batch_dimension() {
    let repo = Repo::new();
    repo.add("m", Some("max_batch_size: 2"), &[1], &classifier());
    let (_, field, message) = config_error(load(&repo, "m"));
    assert_eq!(field, "max_batch_size");
    assert!(message.contains("data_0"), "{message}");
}

#[test]
fn version_folders_and_policies() {
    let repo = Repo::new();
    let dir = repo.add(
        "m",
        Some("version_policy: { all: {} }"),
        &[1, 3, 10],
        &add_sub(),
    );
    for skipped in ["0", "02", "latest", "4x"] {
        std::fs::create_dir(dir.join(skipped)).expect("mkdir");
    }
    let spec = load(&repo, "m").expect("loads");
    let versions: Vec<i64> = spec.versions.iter().map(|v| v.version).collect();
    assert_eq!(versions, vec![1, 3, 10]);
    assert_eq!(spec.latest_version().map(|v| v.version), Some(10));

    repo.add(
        "two",
        Some("version_policy { latest { num_versions: 2 } }"),
        &[1, 3, 10],
        &add_sub(),
    );
    let versions: Vec<i64> = load(&repo, "two")
        .expect("loads")
        .versions
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(versions, vec![3, 10]);

    repo.add(
        "spec",
        Some("version_policy { specific { versions: [ 1, 7 ] } }"),
        &[1, 3],
        &add_sub(),
    );
    let (_, field, message) = config_error(load(&repo, "spec"));
    assert_eq!(field, "version_policy.specific.versions");
    assert!(message.contains("version 7"), "{message}");

    let empty = repo.path().join("empty");
    std::fs::create_dir_all(empty.join("0")).expect("mkdir");
    let (_, field, _) = config_error(load(&repo, "empty"));
    assert_eq!(field, "version_policy");
}

#[test]
fn every_served_version_is_validated() {
    let repo = Repo::new();
    repo.add("m", Some("version_policy: { all: {} }"), &[2], &add_sub());
    let other = model(
        vec![tensor(
            "INPUT0",
            Elem::Float,
            Some(&[Param("n"), Fixed(16)]),
        )],
        vec![tensor(
            "OUTPUT0",
            Elem::Float,
            Some(&[Param("n"), Fixed(16)]),
        )],
        vec![node("Relu", &["INPUT0"], "OUTPUT0")],
        &[],
    );
    repo.write_file("m", "1/model.onnx", &other.encode_to_vec());
    let (_, field, message) = config_error(load(&repo, "m"));
    assert_eq!(field, "input[0].data_type");
    assert!(message.contains("1/model.onnx"), "{message}");
}

#[test]
fn model_files() {
    let repo = Repo::new();
    repo.add(
        "m",
        Some("default_model_filename: \"net.onnx\""),
        &[],
        &add_sub(),
    );
    repo.write_file("m", "1/model.onnx", &add_sub().encode_to_vec());
    match load(&repo, "m") {
        Err(RepositoryError::Io { path, .. }) => assert_eq!(path, repo.path().join("m/1/net.onnx")),
        other => panic!("expected a missing file, got {other:?}"),
    }
    repo.write_file("m", "1/net.onnx", &add_sub().encode_to_vec());
    let spec = load(&repo, "m").expect("loads");
    assert_eq!(
        spec.versions[0].model_file,
        repo.path().join("m/1/net.onnx")
    );

    // A model.onnx folder holding model.onnx (external-data layout).
    repo.write_file(
        "nested",
        "1/model.onnx/model.onnx",
        &add_sub().encode_to_vec(),
    );
    let spec = load(&repo, "nested").expect("loads");
    assert_eq!(
        spec.versions[0].model_file,
        repo.path().join("nested/1/model.onnx/model.onnx")
    );

    repo.write_file("junk", "1/model.onnx", b"\xff\xff\xff not protobuf");
    match load(&repo, "junk") {
        Err(e @ RepositoryError::Onnx { .. }) => {
            assert!(e.to_string().contains("junk/1/model.onnx"), "{e}")
        }
        other => panic!("expected an ONNX error, got {other:?}"),
    }
}

#[test]
fn unsupported_fields_fail_the_load() {
    let repo = Repo::new();
    repo.add("m", Some("sequence_batching { }"), &[1], &add_sub());
    let (path, field, message) = config_error(load(&repo, "m"));
    assert_eq!(path, repo.path().join("m/config.pbtxt"));
    assert_eq!(field, "sequence_batching");
    assert!(message.contains("not supported"), "{message}");
}

#[test]
fn name_and_backend_checks() {
    let repo = Repo::new();
    repo.add("m", Some("name: \"other\""), &[1], &add_sub());
    assert_eq!(config_error(load(&repo, "m")).1, "name");
    repo.add("py", Some("backend: \"python\""), &[1], &add_sub());
    assert_eq!(config_error(load(&repo, "py")).1, "backend");
    repo.add("t", Some("backend: \"tract\""), &[1], &add_sub());
    let spec = load(&repo, "t").expect("tract");
    assert_eq!(spec.backend(), Some(BackendKind::Tract));
    assert_eq!(spec.config.platform, "");
}

#[test]
fn parse_errors_name_the_file() {
    let repo = Repo::new();
    repo.add(
        "m",
        Some("name: \"m\"\nmax_batch_size: four"),
        &[1],
        &add_sub(),
    );
    let err = load(&repo, "m").expect_err("parse error");
    let text = err.to_string();
    let file = repo.path().join("m/config.pbtxt");
    assert!(
        text.starts_with(&format!("{}:2:17:", file.display())),
        "{text}"
    );
    assert!(text.contains("max_batch_size"), "{text}");
}

#[test]
fn scan_reports_every_model() {
    let repo = Repo::new();
    repo.add("good", None, &[1], &add_sub());
    repo.add("bad", Some("bogus_field: 1"), &[1], &add_sub());
    repo.add("noversion", None, &[], &add_sub());
    std::fs::create_dir(repo.path().join(".hidden")).expect("mkdir");
    std::fs::write(repo.path().join("README.md"), "not a model").expect("write");
    let loads = scan(&opts(&repo)).expect("scan");
    let names: Vec<&str> = loads.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["bad", "good", "noversion"]);
    assert!(matches!(
        loads[0].result,
        Err(RepositoryError::Parse { .. })
    ));
    assert!(loads[1].result.is_ok());
    assert!(loads[2].result.is_err());
}

#[test]
fn duplicate_models_across_roots() {
    let a = Repo::new();
    let b = Repo::new();
    a.add("shared", None, &[1], &add_sub());
    b.add("shared", None, &[1], &add_sub());
    b.add("only_b", None, &[1], &add_sub());
    let options = RepositoryOptions::new([a.path(), b.path()]);
    let loads = scan(&options).expect("scan");
    let shared = loads.iter().find(|l| l.name == "shared").expect("shared");
    match &shared.result {
        Err(e @ RepositoryError::DuplicateModel { first, second, .. }) => {
            assert_eq!(first, &a.path().join("shared"));
            assert_eq!(second, &b.path().join("shared"));
            let text = e.to_string();
            assert!(
                text.contains(&a.path().join("shared").display().to_string()),
                "{text}"
            );
            assert!(
                text.contains(&b.path().join("shared").display().to_string()),
                "{text}"
            );
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
    let only_b = loads.iter().find(|l| l.name == "only_b").expect("only_b");
    assert!(only_b.result.is_ok());
    assert!(matches!(
        load_model(&options, "shared"),
        Err(RepositoryError::DuplicateModel { .. })
    ));
}

#[test]
fn roots_and_names() {
    let repo = Repo::new();
    let missing = repo.path().join("absent");
    assert!(matches!(
        scan(&RepositoryOptions::new([&missing])),
        Err(RepositoryError::Io { .. })
    ));
    let file = repo.path().join("file");
    std::fs::write(&file, "x").expect("write");
    assert!(matches!(
        scan(&RepositoryOptions::new([&file])),
        Err(RepositoryError::NotADirectory { .. })
    ));
    repo.add("m", None, &[1], &add_sub());
    for name in ["absent", "../m", "m/1", "", ".", ".."] {
        assert!(
            matches!(
                load(&repo, name),
                Err(RepositoryError::ModelNotFound { .. })
            ),
            "{name}"
        );
    }
}

#[test]
fn load_time_override() {
    let repo = Repo::new();
    repo.add("m", Some("bogus: 1"), &[1], &add_sub());
    let json = serde_json::json!({
        "max_batch_size": 2,
        "dynamic_batching": { "max_queue_delay_microseconds": 50 }
    });
    let config = ferrite_proto::model_config_from_json(&json).expect("json");
    let spec =
        load_model_with_config(&opts(&repo), "m", config).expect("override ignores the file");
    assert_eq!(spec.config_path, None);
    assert_eq!(spec.config.max_batch_size, 2);
    assert_eq!(spec.config.input.len(), 2);
}

#[test]
fn onnx_description() {
    let repo = Repo::new();
    let onnx = model(
        vec![
            tensor("tokens", Elem::Int64, Some(&[Param("batch"), Unknown])),
            tensor("mask", Elem::Bool, Some(&[Param("batch"), Fixed(8)])),
            tensor("w", Elem::Float, Some(&[Fixed(8)])),
        ],
        vec![
            tensor("text", Elem::String, Some(&[Param("batch")])),
            tensor("half", Elem::Float16, Some(&[Param("batch"), Fixed(2)])),
            tensor("brain", Elem::Bfloat16, None),
        ],
        vec![],
        &["w"],
    );
    let path = repo.path().join("m.onnx");
    std::fs::write(&path, onnx.encode_to_vec()).expect("write");
    let info = onnx_model::read_onnx_model(&path).expect("describes");
    assert_eq!(info.opsets, vec![(String::new(), 17)]);
    assert_eq!(info.inputs.len(), 2);
    assert_eq!(info.inputs[0].dims, Some(vec![-1, -1]));
    assert_eq!(info.inputs[1].data_type, DataType::TypeBool);
    assert_eq!(info.outputs[0].data_type, DataType::TypeString);
    assert_eq!(info.outputs[1].data_type, DataType::TypeFp16);
    assert_eq!(info.outputs[2].data_type, DataType::TypeBf16);
    assert_eq!(info.outputs[2].dims, None);

    let complex = model(
        vec![tensor("c", Elem::Complex64, Some(&[Fixed(1)]))],
        vec![],
        vec![],
        &[],
    );
    let err = onnx_model::describe_onnx_model(&complex, Path::new("c.onnx")).expect_err("complex");
    assert!(
        err.to_string().contains("COMPLEX64") && err.to_string().contains("`c`"),
        "{err}"
    );
}
