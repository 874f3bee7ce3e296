//! Completion that applies to every configuration, with or without
//! auto-complete: the model name, the backend/platform pair, the default
//! version policy and the instance groups.

use std::path::Path;

use ferrite_proto::inference::model_config::SchedulingChoice;
use ferrite_proto::inference::model_instance_group::Kind;
use ferrite_proto::inference::{ModelConfig, ModelInstanceGroup};

use crate::version::default_policy;
use crate::RepositoryError;

/// Backend name of ONNX Runtime models.
pub const ONNXRUNTIME_BACKEND: &str = "onnxruntime";
/// Platform name of ONNX Runtime models.
pub const ONNXRUNTIME_PLATFORM: &str = "onnxruntime_onnx";
/// Backend name of tract (pure-Rust ONNX) models.
pub const TRACT_BACKEND: &str = "tract";
/// Model file used when `default_model_filename` is not set.
pub const DEFAULT_MODEL_FILENAME: &str = "model.onnx";

/// The execution engine a configuration selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// ONNX Runtime (`backend: "onnxruntime"`, `platform: "onnxruntime_onnx"`).
    OnnxRuntime,
    /// tract (`backend: "tract"`, no platform).
    Tract,
}

impl BackendKind {
    /// The `backend` value of this kind.
    pub fn backend_name(self) -> &'static str {
        match self {
            BackendKind::OnnxRuntime => ONNXRUNTIME_BACKEND,
            BackendKind::Tract => TRACT_BACKEND,
        }
    }

    /// The `platform` value of this kind (empty for tract).
    pub fn platform_name(self) -> &'static str {
        match self {
            BackendKind::OnnxRuntime => ONNXRUNTIME_PLATFORM,
            BackendKind::Tract => "",
        }
    }

    /// The kind a completed configuration selects, if it is a known one.
    pub fn of(config: &ModelConfig) -> Option<BackendKind> {
        match config.backend.as_str() {
            ONNXRUNTIME_BACKEND => Some(BackendKind::OnnxRuntime),
            TRACT_BACKEND => Some(BackendKind::Tract),
            _ => None,
        }
    }
}

/// Fills an empty `name` with the folder name; any other name must equal it.
pub fn complete_name(
    config: &mut ModelConfig,
    folder_name: &str,
    file: &Path,
) -> Result<(), RepositoryError> {
    if config.name.is_empty() {
        config.name = folder_name.to_owned();
    } else if config.name != folder_name {
        return Err(RepositoryError::config(
            file,
            "name",
            format!(
                "`{}` does not match the model folder name `{folder_name}`",
                config.name
            ),
        ));
    }
    Ok(())
}

/// Checks that `platform` and `backend` name a known engine and agree, and
/// fills the missing one as Triton prints them. When both are empty an ONNX
/// model file (`model.onnx`, or a `default_model_filename` ending in
/// `.onnx`) selects ONNX Runtime.
pub fn complete_backend(
    config: &mut ModelConfig,
    file: &Path,
) -> Result<BackendKind, RepositoryError> {
    let kind = match (config.platform.as_str(), config.backend.as_str()) {
        ("", "") => {
            let filename = config.default_model_filename.to_ascii_lowercase();
            if filename.is_empty() || filename.ends_with(".onnx") {
                BackendKind::OnnxRuntime
            } else {
                return Err(RepositoryError::config(
                    file,
                    "backend",
                    format!(
                        "neither `backend` nor `platform` is set, and the model file `{}` is \
                         not an ONNX file to infer them from",
                        config.default_model_filename
                    ),
                ));
            }
        }
        (ONNXRUNTIME_PLATFORM, "" | ONNXRUNTIME_BACKEND) | ("", ONNXRUNTIME_BACKEND) => {
            BackendKind::OnnxRuntime
        }
        ("", TRACT_BACKEND) => BackendKind::Tract,
        (platform, TRACT_BACKEND) => {
            return Err(RepositoryError::config(
                file,
                "platform",
                format!("`{platform}` does not agree with backend `tract`; leave `platform` empty for tract"),
            ))
        }
        (ONNXRUNTIME_PLATFORM, backend) | ("", backend) => {
            return Err(RepositoryError::config(
                file,
                "backend",
                format!(
                    "`{backend}` is not supported (supported backends: {ONNXRUNTIME_BACKEND}, {TRACT_BACKEND})"
                ),
            ))
        }
        (platform, _) => {
            return Err(RepositoryError::config(
                file,
                "platform",
                format!("`{platform}` is not supported (supported platform: {ONNXRUNTIME_PLATFORM})"),
            ))
        }
    };
    config.backend = kind.backend_name().to_owned();
    config.platform = kind.platform_name().to_owned();
    Ok(kind)
}

/// Sets the default version policy (latest 1) when none is given.
pub fn complete_version_policy(config: &mut ModelConfig) {
    if config.version_policy.is_none() {
        config.version_policy = Some(default_policy());
    }
}

/// Gives a configuration without instance groups one CPU group with one
/// instance, names unnamed groups `<model>_<index>`, and sets a `count` of
/// 0 (unset) to 1.
pub fn complete_instance_groups(config: &mut ModelConfig) {
    if config.instance_group.is_empty() {
        config.instance_group.push(ModelInstanceGroup {
            kind: Kind::Cpu as i32,
            ..Default::default()
        });
    }
    for (index, group) in config.instance_group.iter_mut().enumerate() {
        if group.name.is_empty() {
            group.name = format!("{}_{index}", config.name);
        }
        if group.count == 0 {
            group.count = 1;
        }
    }
}

/// As Triton does, gives a dynamic batcher without preferred batch sizes
/// the single preferred size `max_batch_size` (which forms the same batches
/// as having none).
pub fn complete_dynamic_batching(config: &mut ModelConfig) {
    if let Some(SchedulingChoice::DynamicBatching(batching)) = &mut config.scheduling_choice {
        if batching.preferred_batch_size.is_empty() && config.max_batch_size > 0 {
            batching.preferred_batch_size.push(config.max_batch_size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(platform: &str, backend: &str) -> Result<(String, String), String> {
        let mut config = ModelConfig {
            platform: platform.into(),
            backend: backend.into(),
            ..Default::default()
        };
        complete_backend(&mut config, Path::new("m/config.pbtxt"))
            .map(|_| (config.platform, config.backend))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn backend_and_platform_agree() {
        let ort = Ok(("onnxruntime_onnx".to_owned(), "onnxruntime".to_owned()));
        assert_eq!(backend("", ""), ort);
        assert_eq!(backend("onnxruntime_onnx", ""), ort);
        assert_eq!(backend("", "onnxruntime"), ort);
        assert_eq!(backend("onnxruntime_onnx", "onnxruntime"), ort);
        assert_eq!(
            backend("", "tract"),
            Ok((String::new(), "tract".to_owned()))
        );
        let err = backend("onnxruntime_onnx", "tract").expect_err("disagree");
        assert!(err.contains("`platform`") && err.contains("tract"), "{err}");
        let err = backend("", "python").expect_err("unknown backend");
        assert!(err.contains("`backend`") && err.contains("python"), "{err}");
        let err = backend("onnxruntime_onnx", "pytorch").expect_err("disagree");
        assert!(err.contains("pytorch"), "{err}");
        let err = backend("tensorrt_plan", "").expect_err("unknown platform");
        assert!(
            err.contains("`platform`") && err.contains("tensorrt_plan"),
            "{err}"
        );
        let err = backend("tensorflow_savedmodel", "onnxruntime").expect_err("unknown platform");
        assert!(err.contains("tensorflow_savedmodel"), "{err}");
    }

    #[test]
    fn backend_inferred_from_file_name() {
        let mut config = ModelConfig {
            default_model_filename: "net.ONNX".into(),
            ..Default::default()
        };
        let kind = complete_backend(&mut config, Path::new("c")).expect("onnx file");
        assert_eq!(kind, BackendKind::OnnxRuntime);
        let mut config = ModelConfig {
            default_model_filename: "model.plan".into(),
            ..Default::default()
        };
        let err = complete_backend(&mut config, Path::new("c")).expect_err("plan file");
        assert!(err.to_string().contains("model.plan"), "{err}");
    }

    #[test]
    fn name_is_filled_or_checked() {
        let mut config = ModelConfig::default();
        complete_name(&mut config, "dense", Path::new("c")).expect("filled");
        assert_eq!(config.name, "dense");
        let mut config = ModelConfig {
            name: "other".into(),
            ..Default::default()
        };
        let err = complete_name(&mut config, "dense", Path::new("c")).expect_err("mismatch");
        assert!(err.to_string().contains("`name`") && err.to_string().contains("other"));
    }

    #[test]
    fn preferred_batch_size_defaults_to_max() {
        use ferrite_proto::inference::ModelDynamicBatching;
        let batching = |preferred: Vec<i32>, max_batch_size| {
            let mut config = ModelConfig {
                max_batch_size,
                scheduling_choice: Some(SchedulingChoice::DynamicBatching(ModelDynamicBatching {
                    preferred_batch_size: preferred,
                    ..Default::default()
                })),
                ..Default::default()
            };
            complete_dynamic_batching(&mut config);
            match config.scheduling_choice {
                Some(SchedulingChoice::DynamicBatching(b)) => b.preferred_batch_size,
                other => panic!("scheduler changed: {other:?}"),
            }
        };
        assert_eq!(batching(vec![], 8), vec![8]);
        assert_eq!(batching(vec![2, 4], 8), vec![2, 4]);
        assert_eq!(batching(vec![], 0), Vec::<i32>::new());
    }

    #[test]
    fn instance_groups() {
        let mut config = ModelConfig {
            name: "m".into(),
            ..Default::default()
        };
        complete_instance_groups(&mut config);
        assert_eq!(
            config.instance_group,
            vec![ModelInstanceGroup {
                name: "m_0".into(),
                count: 1,
                kind: Kind::Cpu as i32,
                ..Default::default()
            }]
        );
        let mut config = ModelConfig {
            name: "m".into(),
            instance_group: vec![
                ModelInstanceGroup {
                    name: "fast".into(),
                    count: 3,
                    ..Default::default()
                },
                ModelInstanceGroup::default(),
            ],
            ..Default::default()
        };
        complete_instance_groups(&mut config);
        assert_eq!(config.instance_group[0].name, "fast");
        assert_eq!(config.instance_group[0].count, 3);
        assert_eq!(config.instance_group[1].name, "m_1");
        assert_eq!(config.instance_group[1].count, 1);
        assert_eq!(config.instance_group[1].kind, Kind::Auto as i32);
    }
}
