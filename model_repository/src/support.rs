//! Which configuration fields ferrite implements.
//!
//! One table, [`FIELDS`], lists every field path ferrite accepts, with how
//! it is treated. A field that is set (has a non-default value) and is not
//! in the table is rejected at load with a message naming it, so fields
//! added to the schema are rejected until someone implements them. Moving
//! a field from "rejected" to "implemented" is adding one line here.

use std::path::Path;

use ferrite_proto::inference::ModelConfig;
use prost_reflect::{DynamicMessage, Value};

use crate::RepositoryError;

/// How ferrite treats a configuration field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Honoured. Sub-fields of a message are checked on their own.
    Implemented,
    /// Honoured, except for the listed enum values, which are rejected.
    ImplementedExcept(&'static [&'static str]),
    /// A hint Triton itself may ignore: accepted with a warning naming it.
    Hint,
}

/// Every accepted field, by dotted path from `ModelConfig` (list indices
/// left out). Any set field missing from this table is rejected.
pub const FIELDS: &[(&str, Support)] = &[
    ("name", Support::Implemented),
    ("platform", Support::Implemented),
    ("backend", Support::Implemented),
    ("version_policy", Support::Implemented),
    ("version_policy.latest", Support::Implemented),
    ("version_policy.latest.num_versions", Support::Implemented),
    ("version_policy.all", Support::Implemented),
    ("version_policy.specific", Support::Implemented),
    ("version_policy.specific.versions", Support::Implemented),
    ("max_batch_size", Support::Implemented),
    ("input", Support::Implemented),
    ("input.name", Support::Implemented),
    ("input.data_type", Support::Implemented),
    ("input.dims", Support::Implemented),
    ("input.allow_ragged_batch", Support::Implemented),
    ("output", Support::Implemented),
    ("output.name", Support::Implemented),
    ("output.data_type", Support::Implemented),
    ("output.dims", Support::Implemented),
    ("instance_group", Support::Implemented),
    ("instance_group.name", Support::Implemented),
    ("instance_group.count", Support::Implemented),
    (
        "instance_group.kind",
        Support::ImplementedExcept(&["KIND_MODEL"]),
    ),
    ("instance_group.gpus", Support::Implemented),
    ("instance_group.profile", Support::Hint),
    ("instance_group.host_policy", Support::Hint),
    ("dynamic_batching", Support::Implemented),
    (
        "dynamic_batching.max_queue_delay_microseconds",
        Support::Implemented,
    ),
    (
        "dynamic_batching.preferred_batch_size",
        Support::Implemented,
    ),
    ("dynamic_batching.preserve_ordering", Support::Implemented),
    (
        "dynamic_batching.default_queue_policy",
        Support::Implemented,
    ),
    (
        "dynamic_batching.default_queue_policy.max_queue_size",
        Support::Implemented,
    ),
    (
        "dynamic_batching.default_queue_policy.timeout_action",
        Support::Implemented,
    ),
    (
        "dynamic_batching.default_queue_policy.default_timeout_microseconds",
        Support::Implemented,
    ),
    (
        "dynamic_batching.default_queue_policy.allow_timeout_override",
        Support::Implemented,
    ),
    ("dynamic_batching.priority_levels", Support::Implemented),
    (
        "dynamic_batching.default_priority_level",
        Support::Implemented,
    ),
    (
        "dynamic_batching.priority_queue_policy",
        Support::Implemented,
    ),
    ("batch_input", Support::Implemented),
    ("batch_input.kind", Support::Implemented),
    ("batch_input.target_name", Support::Implemented),
    ("batch_input.data_type", Support::Implemented),
    ("batch_input.source_input", Support::Implemented),
    ("batch_output", Support::Implemented),
    ("batch_output.target_name", Support::Implemented),
    ("batch_output.kind", Support::Implemented),
    ("batch_output.source_input", Support::Implemented),
    ("default_model_filename", Support::Implemented),
    ("parameters", Support::Implemented),
    ("model_transaction_policy", Support::Implemented),
    ("model_warmup", Support::Implemented),
    ("model_warmup.name", Support::Implemented),
    ("model_warmup.batch_size", Support::Implemented),
    ("model_warmup.inputs", Support::Implemented),
    ("model_warmup.count", Support::Implemented),
    ("optimization", Support::Hint),
    ("model_operations", Support::Hint),
    ("cc_model_filenames", Support::Hint),
    ("metric_tags", Support::Hint),
];

/// How ferrite treats the field at `path`; `None` means rejected.
pub fn support_of(path: &str) -> Option<Support> {
    FIELDS.iter().find(|(p, _)| *p == path).map(|(_, s)| *s)
}

/// Rejects the first set field of `config` that ferrite does not
/// implement, and logs a warning for each hint field. `file` names the
/// configuration in messages and `model` the model in warnings.
pub fn check_supported(
    config: &ModelConfig,
    file: &Path,
    model: &str,
) -> Result<(), RepositoryError> {
    let mut message = DynamicMessage::new(ferrite_proto::model_config_descriptor());
    message.transcode_from(config).map_err(|e| {
        RepositoryError::config(file, "", format!("cannot inspect the configuration: {e}"))
    })?;
    walk(&message, "", "", file, model)
}

fn walk(
    message: &DynamicMessage,
    path: &str,
    display: &str,
    file: &Path,
    model: &str,
) -> Result<(), RepositoryError> {
    for (field, value) in message.fields() {
        let field_path = join(path, field.name());
        let field_display = join(display, field.name());
        let Some(support) = support_of(&field_path) else {
            return Err(RepositoryError::config(
                file,
                field_display,
                "is not supported by ferrite",
            ));
        };
        match support {
            Support::Hint => tracing::warn!(
                model,
                file = %file.display(),
                "field `{field_display}` is an optional hint that ferrite does not use; ignoring it"
            ),
            Support::ImplementedExcept(rejected) => {
                let name = match (value, field.kind().as_enum()) {
                    (Value::EnumNumber(n), Some(e)) => e.get_value(*n).map(|v| v.name().to_owned()),
                    _ => None,
                };
                if let Some(name) = name.filter(|n| rejected.contains(&n.as_str())) {
                    return Err(RepositoryError::config(
                        file,
                        field_display,
                        format!("value {name} is not supported by ferrite"),
                    ));
                }
            }
            Support::Implemented => match value {
                Value::Message(inner) => walk(inner, &field_path, &field_display, file, model)?,
                Value::List(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if let Value::Message(inner) = item {
                            let shown = format!("{field_display}[{i}]");
                            walk(inner, &field_path, &shown, file, model)?;
                        }
                    }
                }
                _ => {}
            },
        }
    }
    Ok(())
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_pbtxt;

    fn check(text: &str) -> Result<(), RepositoryError> {
        let config = parse_pbtxt(text).expect("parses");
        check_supported(&config, Path::new("m/config.pbtxt"), "m")
    }

    fn rejected_field(text: &str) -> String {
        match check(text) {
            Err(RepositoryError::Config { field, message, .. }) => {
                assert!(message.contains("not supported"), "{message}");
                field
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn implemented_fields_pass() {
        check(
            r#"
name: "m" platform: "onnxruntime_onnx" backend: "onnxruntime" max_batch_size: 4
version_policy { latest { num_versions: 2 } }
input [ { name: "x" data_type: TYPE_FP32 dims: [ 3 ] optional: false format: FORMAT_NONE
          allow_ragged_batch: true } ]
output [ { name: "y" data_type: TYPE_FP32 dims: [ 3 ] } ]
batch_input [ { kind: BATCH_ITEM_SHAPE target_name: "s" data_type: TYPE_INT32 source_input: "x" } ]
batch_output [ { kind: BATCH_SCATTER_WITH_INPUT_SHAPE target_name: "y" source_input: "x" } ]
instance_group [ { name: "g" count: 2 kind: KIND_GPU gpus: [ 0 ] }, { kind: KIND_AUTO } ]
dynamic_batching { max_queue_delay_microseconds: 5 preferred_batch_size: [ 2 ]
  preserve_ordering: true priority_levels: 2 default_priority_level: 1
  default_queue_policy { max_queue_size: 8 default_timeout_microseconds: 5
    allow_timeout_override: true timeout_action: DELAY } }
default_model_filename: "net.onnx"
parameters { key: "k" value { string_value: "v" } }
model_transaction_policy { decoupled: false }
model_warmup [ { name: "w" batch_size: 1 count: 2
                 inputs { key: "x" value { data_type: TYPE_FP32 dims: [ 2 ] zero_data: true } } } ]
"#,
        )
        .expect("all implemented");
    }

    #[test]
    fn hints_are_accepted() {
        check(
            r#"
optimization { graph { level: 1 } }
model_operations { op_library_filename: "libcustom.so" }
instance_group [ { kind: KIND_CPU profile: [ "0" ] host_policy: "numa0" } ]
cc_model_filenames { key: "7.5" value: "m.onnx" }
metric_tags { key: "team" value: "a" }
"#,
        )
        .expect("hints pass");
    }

    #[test]
    fn unimplemented_fields_are_rejected_by_name() {
        for (text, field) in [
            ("sequence_batching { }", "sequence_batching"),
            ("ensemble_scheduling { }", "ensemble_scheduling"),
            ("response_cache { enable: true }", "response_cache"),
            ("runtime: \"model.py\"", "runtime"),
            (
                "input [ { name: \"a\" }, { name: \"b\" reshape { shape: [1] } } ]",
                "input[1].reshape",
            ),
            ("input [ { optional: true } ]", "input[0].optional"),
            ("input [ { format: FORMAT_NHWC } ]", "input[0].format"),
            (
                "input [ { is_shape_tensor: true } ]",
                "input[0].is_shape_tensor",
            ),
            ("output [ { reshape { shape: [1] } } ]", "output[0].reshape"),
            (
                "output [ { label_filename: \"l.txt\" } ]",
                "output[0].label_filename",
            ),
            (
                "model_transaction_policy { decoupled: true }",
                "model_transaction_policy.decoupled",
            ),
            (
                "model_transaction_policy { decoupled: true }",
                "model_transaction_policy.decoupled",
            ),
            (
                "instance_group [ { passive: true } ]",
                "instance_group[0].passive",
            ),
            (
                "instance_group [ { rate_limiter { priority: 2 } } ]",
                "instance_group[0].rate_limiter",
            ),
            ("model_repository_agents { }", "model_repository_agents"),
        ] {
            assert_eq!(rejected_field(text), field, "for {text}");
        }
    }

    #[test]
    fn rejected_enum_values() {
        match check("instance_group [ { kind: KIND_MODEL } ]") {
            Err(RepositoryError::Config { field, message, .. }) => {
                assert_eq!(field, "instance_group[0].kind");
                assert!(message.contains("KIND_MODEL"), "{message}");
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
    }

    #[test]
    fn table_paths_exist_in_the_schema() {
        let root = ferrite_proto::model_config_descriptor();
        for (path, _) in FIELDS {
            let mut descriptor = root.clone();
            let mut parts = path.split('.').peekable();
            while let Some(part) = parts.next() {
                let field = descriptor
                    .get_field_by_name(part)
                    .unwrap_or_else(|| panic!("{path}: no field {part}"));
                if parts.peek().is_some() {
                    descriptor = field
                        .kind()
                        .as_message()
                        .cloned()
                        .unwrap_or_else(|| panic!("{path}: {part} is not a message"));
                }
            }
        }
    }
}
