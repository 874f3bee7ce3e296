use super::*;
use ferrite_proto::inference::{
    model_config::SchedulingChoice, model_input::Format, model_instance_group::Kind,
    model_version_policy::PolicyChoice, DataType,
};

fn parse(text: &str) -> ModelConfig {
    parse_pbtxt(text).unwrap_or_else(|e| panic!("parse failed: {e}"))
}

fn parse_err(text: &str) -> (usize, usize, String) {
    match parse_pbtxt(text) {
        Err(RepositoryError::Parse {
            line,
            column,
            message,
            ..
        }) => (line, column, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

/// The `simple` add/sub example model of Triton's documentation.
#[test]
fn simple_add_sub() {
    let config = parse(
        r#"
name: "simple"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [
  {
    name: "INPUT0"
    data_type: TYPE_INT32
    dims: [ 16 ]
  },
  {
    name: "INPUT1"
    data_type: TYPE_INT32
    dims: [ 16 ]
  }
]
output [
  {
    name: "OUTPUT0"
    data_type: TYPE_INT32
    dims: [ 16 ]
  },
  {
    name: "OUTPUT1"
    data_type: TYPE_INT32
    dims: [ 16 ]
  }
]
"#,
    );
    assert_eq!(config.name, "simple");
    assert_eq!(config.platform, "onnxruntime_onnx");
    assert_eq!(config.max_batch_size, 8);
    assert_eq!(config.input.len(), 2);
    assert_eq!(config.input[1].name, "INPUT1");
    assert_eq!(config.input[1].data_type, DataType::TypeInt32 as i32);
    assert_eq!(config.input[1].dims, vec![16]);
    assert_eq!(config.output[0].name, "OUTPUT0");
    assert_eq!(config.output.len(), 2);
}

/// A densenet-style ONNX image classifier config.
#[test]
fn densenet_onnx() {
    let config = parse(
        r#"
# DenseNet-121 exported to ONNX
name: "densenet_onnx"
platform: "onnxruntime_onnx"
max_batch_size : 0
input [
  {
    name: "data_0"
    data_type: TYPE_FP32
    format: FORMAT_NCHW
    dims: [ 3, 224, 224 ]
    reshape { shape: [ 1, 3, 224, 224 ] }
  }
]
output [
  {
    name: "fc6_1"
    data_type: TYPE_FP32
    dims: [ 1000 ]
    reshape { shape: [ 1, 1000, 1, 1 ] }
    label_filename: "densenet_labels.txt"
  }
]
"#,
    );
    assert_eq!(config.input[0].format, Format::Nchw as i32);
    assert_eq!(config.input[0].dims, vec![3, 224, 224]);
    assert_eq!(
        config.input[0].reshape.as_ref().map(|r| r.shape.clone()),
        Some(vec![1, 3, 224, 224])
    );
    assert_eq!(config.output[0].label_filename, "densenet_labels.txt");
}

/// Scheduling, instances, version policy and parameters together.
#[test]
fn batching_instances_policy_parameters() {
    let config = parse(
        r#"
name: "resnet"
backend: "onnxruntime"
max_batch_size: 32
version_policy: { specific: { versions: [1, 3] } }
input { name: "x" data_type: TYPE_FP16 dims: [ -1, 3 ] }
output { name: "y" data_type: TYPE_FP16 dims: -1 dims: 1000 }
dynamic_batching {
  preferred_batch_size: [ 4, 8 ]
  max_queue_delay_microseconds: 100
  preserve_ordering: true
  default_queue_policy { max_queue_size: 64 }
}
instance_group [
  { name: "cpu_group" count: 2 kind: KIND_CPU },
  { count: 1, kind: KIND_GPU, gpus: [ 0, 1 ] }
]
parameters { key: "intra_op_thread_count" value: { string_value: "4" } }
parameters: { key: 'execution_mode' value { string_value: '1' } }
"#,
    );
    assert_eq!(config.backend, "onnxruntime");
    match config.version_policy.and_then(|p| p.policy_choice) {
        Some(PolicyChoice::Specific(s)) => assert_eq!(s.versions, vec![1, 3]),
        other => panic!("unexpected policy {other:?}"),
    }
    assert_eq!(config.input[0].dims, vec![-1, 3]);
    assert_eq!(config.output[0].dims, vec![-1, 1000]);
    match config.scheduling_choice {
        Some(SchedulingChoice::DynamicBatching(db)) => {
            assert_eq!(db.preferred_batch_size, vec![4, 8]);
            assert_eq!(db.max_queue_delay_microseconds, 100);
            assert!(db.preserve_ordering);
            assert_eq!(db.default_queue_policy.map(|q| q.max_queue_size), Some(64));
        }
        other => panic!("unexpected scheduling {other:?}"),
    }
    assert_eq!(config.instance_group.len(), 2);
    assert_eq!(config.instance_group[0].kind, Kind::Cpu as i32);
    assert_eq!(config.instance_group[0].count, 2);
    assert_eq!(config.instance_group[1].gpus, vec![0, 1]);
    assert_eq!(config.parameters["intra_op_thread_count"].string_value, "4");
    assert_eq!(config.parameters["execution_mode"].string_value, "1");
}

#[test]
fn syntax_variants() {
    let config = parse(
        "name: 'a' \"b\"\n'c';\
         max_batch_size: 0x10,\
         input < name: \"x[{<>}]\" data_type: 11 dims: [] dims: -0 >\
         version_policy < latest < num_versions: 017 > >\
         instance_group [ ] \
         input: [ < name: \"\\x41\\101\" is_shape_tensor: t optional: True allow_ragged_batch: 1 > ]",
    );
    assert_eq!(config.name, "abc");
    assert_eq!(config.max_batch_size, 16);
    assert_eq!(config.input[0].name, "x[{<>}]");
    assert_eq!(config.input[0].data_type, DataType::TypeFp32 as i32);
    assert_eq!(config.input[0].dims, vec![0]);
    assert_eq!(config.input[1].name, "AA");
    assert!(config.input[1].is_shape_tensor && config.input[1].optional);
    assert!(config.input[1].allow_ragged_batch);
    match config.version_policy.and_then(|p| p.policy_choice) {
        Some(PolicyChoice::Latest(l)) => assert_eq!(l.num_versions, 15),
        other => panic!("unexpected policy {other:?}"),
    }
}

#[test]
fn floats_and_negative_numbers() {
    let config = parse(
        "sequence_batching { direct { minimum_slot_utilization: 0.5 } \
         control_input [ { name: \"S\" control [ { kind: CONTROL_SEQUENCE_START \
         fp32_false_true: [ -1.5e1, 2f, inf, -.25 ] int32_false_true: [ -7, 0x7fffffff ] } ] } ] }",
    );
    let Some(SchedulingChoice::SequenceBatching(sb)) = config.scheduling_choice else {
        panic!("sequence batching expected");
    };
    let control = &sb.control_input[0].control[0];
    assert_eq!(control.fp32_false_true[..2], [-15.0, 2.0]);
    assert!(control.fp32_false_true[2].is_infinite());
    assert_eq!(control.fp32_false_true[3], -0.25);
    assert_eq!(control.int32_false_true, vec![-7, i32::MAX]);
    let direct = match sb.strategy_choice {
        Some(ferrite_proto::inference::model_sequence_batching::StrategyChoice::Direct(d)) => d,
        other => panic!("unexpected strategy {other:?}"),
    };
    assert_eq!(direct.minimum_slot_utilization, 0.5);
}

#[test]
fn explicit_fields_are_reported() {
    let parsed = parse_config("name: \"m\" max_batch_size: 0 input [ ]").expect("parses");
    assert_eq!(
        parsed.explicit_fields,
        vec!["name", "max_batch_size", "input"]
    );
}

#[test]
fn generic_over_descriptors() {
    let descriptor = ferrite_proto::descriptor_pool()
        .get_message_by_name("inference.ModelInput")
        .expect("descriptor");
    let message = parse_text_format(descriptor, "name: \"in\" dims: [2]").expect("parses");
    assert_eq!(
        message.get_field_by_name("name").map(|v| v.into_owned()),
        Some(prost_reflect::Value::String("in".into()))
    );
}

#[test]
fn unknown_field_is_named_with_position() {
    let (line, column, message) = parse_err("name: \"m\"\n  max_batch_sise: 4");
    assert_eq!((line, column), (2, 3));
    assert!(message.contains("max_batch_sise"), "{message}");
    assert!(message.contains("inference.ModelConfig"), "{message}");
    let (line, column, message) = parse_err("input [ { name: \"x\" dimz: [1] } ]");
    assert_eq!((line, column), (1, 21));
    assert!(message.contains("`dimz`") && message.contains("inference.ModelInput"));
}

#[test]
fn type_errors_name_the_field() {
    let (_, _, message) = parse_err("max_batch_size: \"eight\"");
    assert!(
        message.contains("max_batch_size") && message.contains("int32"),
        "{message}"
    );
    let (_, _, message) = parse_err("name: 5");
    assert!(
        message.contains("`name`") && message.contains("string"),
        "{message}"
    );
    let (_, column, message) = parse_err("input { data_type: TYPE_FLOAT32 }");
    assert_eq!(column, 20);
    assert!(
        message.contains("TYPE_FLOAT32") && message.contains("data_type"),
        "{message}"
    );
    let (_, _, message) = parse_err("input { data_type: 99 }");
    assert!(message.contains("99"), "{message}");
    let (_, _, message) = parse_err("max_batch_size: 4294967296");
    assert!(message.contains("out of range"), "{message}");
    let (_, _, message) = parse_err("dynamic_batching { max_queue_delay_microseconds: -1 }");
    assert!(
        message.contains("max_queue_delay_microseconds"),
        "{message}"
    );
    let (_, _, message) = parse_err("max_batch_size: 1.5");
    assert!(message.contains("max_batch_size"), "{message}");
    let (_, _, message) = parse_err("input { optional: maybe }");
    assert!(
        message.contains("optional") && message.contains("boolean"),
        "{message}"
    );
}

#[test]
fn structural_errors() {
    let (line, column, message) = parse_err("max_batch_size 4");
    assert_eq!((line, column), (1, 16));
    assert!(message.contains("expected `:`") && message.contains("max_batch_size"));
    let (_, _, message) = parse_err("input { name: \"x\"");
    assert!(message.contains("end of text"), "{message}");
    let (_, _, message) = parse_err("name: \"a\" name: \"b\"");
    assert!(message.contains("more than once"), "{message}");
    let (_, _, message) = parse_err("max_batch_size: [1, 2]");
    assert!(message.contains("not repeated"), "{message}");
    let (_, _, message) = parse_err("dynamic_batching { } sequence_batching { }");
    assert!(message.contains("oneof"), "{message}");
    let (_, _, message) = parse_err("input [ { name: \"x\" } { name: \"y\" } ]");
    assert!(message.contains("expected `,` or `]`"), "{message}");
    let (_, _, message) = parse_err("version_policy: 3");
    assert!(message.contains("version_policy"), "{message}");
    let (_, _, message) = parse_err("[ext.field]: 1");
    assert!(message.contains("not supported"), "{message}");
    let (line, column, _) = parse_err("name: \"x\"\n\n   }");
    assert_eq!((line, column), (3, 4));
}

#[test]
fn error_display_names_the_file() {
    let err = parse_pbtxt("bogus: 1")
        .map_err(|e| e.in_file(std::path::Path::new("/models/m/config.pbtxt")))
        .expect_err("unknown field");
    assert_eq!(
        err.to_string(),
        "/models/m/config.pbtxt:1:1: unknown field `bogus` in message `inference.ModelConfig`"
    );
}
