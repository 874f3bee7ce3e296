//! JSON form of the model configuration, as Triton prints it on
//! `GET /v2/models/{model}/config`: proto field names, every field present
//! (default values included, unset sub-messages left out), 64-bit integers
//! as JSON numbers, enums by name.

use prost_reflect::{DeserializeOptions, DynamicMessage, SerializeOptions};
use serde_json::Value;

use crate::{inference::ModelConfig, model_config_descriptor};

/// Errors of the protocol helpers.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The JSON document does not describe a valid `ModelConfig`.
    #[error("invalid model configuration JSON: {0}")]
    ConfigJson(#[source] serde_json::Error),
    /// The message could not be converted into the generated Rust type.
    #[error("invalid model configuration: {0}")]
    ConfigDecode(#[source] prost::DecodeError),
}

fn serialize_options() -> SerializeOptions {
    SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false)
        .stringify_64_bit_integers(false)
        .use_enum_numbers(false)
}

/// Prints `config` exactly as Triton's HTTP `GET /v2/models/{m}/config`
/// does: snake_case field names, default values printed, int64 values as
/// JSON numbers and enums by name.
pub fn model_config_to_json(config: &ModelConfig) -> Value {
    let mut message = DynamicMessage::new(model_config_descriptor());
    // The descriptor and the Rust type come from the same schema, so a
    // message encoded by one always decodes with the other.
    message
        .transcode_from(config)
        .expect("ModelConfig transcodes to its own descriptor");
    // Serializing into a `Value` cannot fail: map keys are always printed as
    // strings and non-finite floats as their proto JSON names.
    message
        .serialize_with_options(serde_json::value::Serializer, &serialize_options())
        .expect("a DynamicMessage always serializes to a JSON value")
}

/// Reads a `ModelConfig` from its JSON form (proto or JSON field names,
/// 64-bit integers as numbers or strings, enums by name or number).
/// Unknown fields are an error naming the field.
pub fn model_config_from_json(json: &Value) -> Result<ModelConfig, ProtoError> {
    let message = DynamicMessage::deserialize_with_options(
        model_config_descriptor(),
        json,
        &DeserializeOptions::new().deny_unknown_fields(true),
    )
    .map_err(ProtoError::ConfigJson)?;
    message.transcode_to().map_err(ProtoError::ConfigDecode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::{
        model_config::SchedulingChoice, model_instance_group::Kind, model_version_policy, DataType,
        ModelDynamicBatching, ModelInput, ModelInstanceGroup, ModelOutput, ModelParameter,
        ModelVersionPolicy,
    };
    use serde_json::json;

    fn sample() -> ModelConfig {
        ModelConfig {
            name: "densenet_onnx".into(),
            platform: "onnxruntime_onnx".into(),
            backend: "onnxruntime".into(),
            max_batch_size: 8,
            version_policy: Some(ModelVersionPolicy {
                policy_choice: Some(model_version_policy::PolicyChoice::Specific(
                    model_version_policy::Specific {
                        versions: vec![1, 3],
                    },
                )),
            }),
            input: vec![ModelInput {
                name: "data_0".into(),
                data_type: DataType::TypeFp32 as i32,
                dims: vec![3, 224, -1],
                ..Default::default()
            }],
            output: vec![ModelOutput {
                name: "fc6_1".into(),
                data_type: DataType::TypeFp32 as i32,
                dims: vec![1000],
                ..Default::default()
            }],
            instance_group: vec![ModelInstanceGroup {
                name: "densenet_onnx_0".into(),
                count: 2,
                kind: Kind::Cpu as i32,
                ..Default::default()
            }],
            scheduling_choice: Some(SchedulingChoice::DynamicBatching(ModelDynamicBatching {
                preferred_batch_size: vec![4, 8],
                max_queue_delay_microseconds: 100,
                ..Default::default()
            })),
            parameters: [(
                "intra_op_thread_count".to_owned(),
                ModelParameter {
                    string_value: "2".into(),
                },
            )]
            .into_iter()
            .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn prints_like_triton() {
        let json = model_config_to_json(&sample());
        assert_eq!(json["name"], "densenet_onnx");
        assert_eq!(json["max_batch_size"], 8);
        // int64 values are numbers, not strings.
        assert_eq!(json["input"][0]["dims"], json!([3, 224, -1]));
        assert_eq!(
            json["version_policy"]["specific"]["versions"],
            json!([1, 3])
        );
        assert_eq!(
            json["dynamic_batching"]["max_queue_delay_microseconds"],
            json!(100)
        );
        // Enums by name.
        assert_eq!(json["input"][0]["data_type"], "TYPE_FP32");
        assert_eq!(json["input"][0]["format"], "FORMAT_NONE");
        assert_eq!(json["instance_group"][0]["kind"], "KIND_CPU");
        // Default values are printed.
        assert_eq!(json["input"][0]["is_shape_tensor"], false);
        assert_eq!(json["input"][0]["optional"], false);
        assert_eq!(json["output"][0]["label_filename"], "");
        assert_eq!(json["batch_input"], json!([]));
        assert_eq!(json["default_model_filename"], "");
        assert_eq!(json["metric_tags"], json!({}));
        assert_eq!(json["runtime"], "");
        assert_eq!(json["dynamic_batching"]["preserve_ordering"], false);
        // Maps print as objects.
        assert_eq!(
            json["parameters"]["intra_op_thread_count"]["string_value"],
            "2"
        );
        // Unset sub-messages are left out, as protobuf's JSON printer does.
        assert!(json.get("sequence_batching").is_none());
        assert!(json.get("optimization").is_none());
    }

    #[test]
    fn round_trip() {
        let config = sample();
        let json = model_config_to_json(&config);
        let back = model_config_from_json(&json).expect("round trip");
        assert_eq!(back, config);
    }

    #[test]
    fn reads_strings_for_int64_and_enum_numbers() {
        let json = json!({
            "name": "m",
            "max_batch_size": 2,
            "input": [{"name": "x", "data_type": 11, "dims": ["-1", "4"]}],
            "dynamic_batching": {"max_queue_delay_microseconds": "50"}
        });
        let config = model_config_from_json(&json).expect("valid");
        assert_eq!(config.input[0].dims, vec![-1, 4]);
        assert_eq!(config.input[0].data_type, DataType::TypeFp32 as i32);
        match config.scheduling_choice {
            Some(SchedulingChoice::DynamicBatching(db)) => {
                assert_eq!(db.max_queue_delay_microseconds, 50)
            }
            other => panic!("unexpected scheduling {other:?}"),
        }
    }

    #[test]
    fn rejects_unknown_fields_by_name() {
        let err = model_config_from_json(&json!({"name": "m", "max_batch_sise": 2}))
            .expect_err("unknown field");
        assert!(err.to_string().contains("max_batch_sise"), "{err}");
    }

    #[test]
    fn rejects_bad_enum_name() {
        let err = model_config_from_json(&json!({
            "input": [{"name": "x", "data_type": "TYPE_FLOAT"}]
        }))
        .expect_err("bad enum");
        assert!(err.to_string().contains("TYPE_FLOAT"), "{err}");
    }
}
