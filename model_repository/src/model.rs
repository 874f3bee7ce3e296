//! Loading one model folder into a [`ModelSpec`].

use std::path::{Path, PathBuf};

use ferrite_proto::inference::ModelConfig;

use crate::autocomplete::{auto_complete, DEFAULT_MAX_BATCH_SIZE};
use crate::normalize::{
    complete_backend, complete_dynamic_batching, complete_instance_groups, complete_name,
    complete_version_policy, DEFAULT_MODEL_FILENAME,
};
use crate::onnx_model::read_onnx_model;
use crate::pbtxt::parse_config;
use crate::support::check_supported;
use crate::validate::{validate_against_model, validate_config, validate_model_filename};
use crate::version::{select_versions, version_dirs};
use crate::{ModelSpec, ModelVersion, RepositoryError, RepositoryOptions};

/// File name of a model's configuration inside its folder.
pub const CONFIG_FILENAME: &str = "config.pbtxt";

/// The configuration a model starts from, before completion.
pub(crate) struct DeclaredConfig {
    pub config: ModelConfig,
    /// The file it came from (`None`: no `config.pbtxt`, or given directly).
    pub path: Option<PathBuf>,
    /// `max_batch_size` was written explicitly, so auto-complete keeps it.
    pub max_batch_size_declared: bool,
}

/// Reads `<dir>/config.pbtxt`, or starts from an empty configuration when
/// the folder has none.
pub(crate) fn read_declared_config(dir: &Path) -> Result<DeclaredConfig, RepositoryError> {
    let path = dir.join(CONFIG_FILENAME);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(DeclaredConfig {
                config: ModelConfig::default(),
                path: None,
                max_batch_size_declared: false,
            })
        }
        Err(e) => return Err(RepositoryError::io(&path, e)),
    };
    let parsed = parse_config(&text).map_err(|e| e.in_file(&path))?;
    Ok(DeclaredConfig {
        max_batch_size_declared: parsed.explicit_fields.iter().any(|f| f == "max_batch_size"),
        config: parsed.config,
        path: Some(path),
    })
}

/// Completes, validates and resolves the versions of the model `name` in
/// folder `dir`, starting from `declared`.
pub(crate) fn load_model_dir(
    opts: &RepositoryOptions,
    name: &str,
    dir: &Path,
    declared: DeclaredConfig,
) -> Result<ModelSpec, RepositoryError> {
    let DeclaredConfig {
        mut config,
        path: config_path,
        max_batch_size_declared,
    } = declared;
    // Errors name the configuration file, or the folder when there is none.
    let file = config_path.clone().unwrap_or_else(|| dir.to_owned());

    check_supported(&config, &file, name)?;
    complete_name(&mut config, name, &file)?;
    complete_backend(&mut config, &file)?;
    complete_version_policy(&mut config);
    validate_model_filename(&config, &file)?;

    let available = version_dirs(dir)?;
    let numbers: Vec<i64> = available.iter().map(|(v, _)| *v).collect();
    let policy = config.version_policy.clone().unwrap_or_default();
    let selected = select_versions(&policy, &numbers, &file, dir)?;
    let filename = if config.default_model_filename.is_empty() {
        DEFAULT_MODEL_FILENAME
    } else {
        config.default_model_filename.as_str()
    };
    let mut versions = Vec::with_capacity(selected.len());
    for (version, version_dir) in available.iter().filter(|(v, _)| selected.contains(v)) {
        versions.push(ModelVersion {
            version: *version,
            model_file: model_file(version_dir, filename)?,
        });
    }

    let mut models = Vec::with_capacity(versions.len());
    for version in &versions {
        models.push(read_onnx_model(&version.model_file)?);
    }
    if opts.auto_complete {
        // The newest served version describes the model.
        if let Some(latest) = models.last() {
            auto_complete(
                &mut config,
                latest,
                max_batch_size_declared,
                DEFAULT_MAX_BATCH_SIZE,
            );
        }
    }
    complete_instance_groups(&mut config);
    complete_dynamic_batching(&mut config);
    validate_config(&config, &file)?;
    for (version, model) in versions.iter().zip(&models) {
        validate_against_model(&config, model, &file, &version.model_file)?;
    }

    Ok(ModelSpec {
        name: name.to_owned(),
        dir: dir.to_owned(),
        config_path,
        config,
        versions,
    })
}

/// The model file of a version folder. An ONNX model may also be a folder
/// (holding `model.onnx` next to its external data files).
fn model_file(version_dir: &Path, filename: &str) -> Result<PathBuf, RepositoryError> {
    let path = version_dir.join(filename);
    if path.is_file() {
        return Ok(path);
    }
    if path.is_dir() {
        let inner = path.join(DEFAULT_MODEL_FILENAME);
        if inner.is_file() {
            return Ok(inner);
        }
    }
    Err(RepositoryError::Io {
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the model file does not exist",
        ),
        path,
    })
}
