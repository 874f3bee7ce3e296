//! Model repository of ferrite.
//!
//! A model repository is one or more root folders; each model is a
//! sub-folder holding an optional `config.pbtxt` and numeric version
//! folders (`1/`, `2/`, ...) with the model file (`model.onnx` unless
//! `default_model_filename` says otherwise). This crate finds the models,
//! parses and completes their configurations, selects the versions to
//! serve and validates everything against the ONNX files, so that later
//! stages get a complete [`ModelSpec`] or an error naming the file and the
//! field. It knows nothing about how models are executed.
//!
//! Loading a model follows Triton's rules:
//!
//! 1. Parse `config.pbtxt` (protobuf text format, see [`pbtxt`]); a model
//!    without one starts from an empty configuration.
//! 2. Reject any set field ferrite does not implement, and warn about hint
//!    fields it ignores (see [`support`]).
//! 3. Fill an empty `name` with the folder name (any other name must equal
//!    it); check `platform`/`backend` (`onnxruntime_onnx`/`onnxruntime`
//!    for ONNX Runtime, `tract` for tract) and fill the missing one; set
//!    the default version policy (latest 1).
//! 4. Select the versions: folders named with a positive number without a
//!    leading `0` (others are skipped), filtered by the version policy; a
//!    selected version must hold the model file.
//! 5. With auto-complete on (the default), complete the configuration from
//!    the newest selected ONNX model as Triton's ONNX Runtime backend does
//!    (see [`autocomplete`]).
//! 6. Give a configuration without instance groups one `KIND_CPU` group of
//!    one instance, and name unnamed groups `<model>_<index>`; give a
//!    dynamic batcher without preferred sizes `[max_batch_size]`.
//! 7. Validate the configuration, and against every selected version's
//!    ONNX model (names, data types, dims).
//!
//! One bad model never stops the others: [`scan`] returns one result per
//! model.

pub mod autocomplete;
mod error;
mod model;
pub mod normalize;
pub mod onnx_model;
pub mod pbtxt;
mod scan;
pub mod support;
pub mod validate;
pub mod version;

#[cfg(test)]
mod repo_tests;
#[cfg(test)]
mod test_support;

use std::path::PathBuf;

use ferrite_proto::inference::ModelConfig;

pub use autocomplete::DEFAULT_MAX_BATCH_SIZE;
pub use error::RepositoryError;
pub use model::CONFIG_FILENAME;
pub use normalize::BackendKind;
pub use pbtxt::{parse_pbtxt, parse_text_format};
pub use scan::{load_model, load_model_with_config, scan};

/// Where the repositories are and how to complete configurations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryOptions {
    /// Repository root folders; model names must be unique across them.
    pub roots: Vec<PathBuf>,
    /// Complete missing configuration from the model file (Triton's
    /// default; off is Triton's `--disable-auto-complete-config`). A
    /// batchable model gets [`DEFAULT_MAX_BATCH_SIZE`].
    pub auto_complete: bool,
}

impl RepositoryOptions {
    /// Options for these roots, with auto-complete on.
    pub fn new<P: Into<PathBuf>>(roots: impl IntoIterator<Item = P>) -> Self {
        RepositoryOptions {
            roots: roots.into_iter().map(Into::into).collect(),
            auto_complete: true,
        }
    }
}

/// A model ready to be loaded: its completed configuration and the versions
/// to serve.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// Model name (the folder name).
    pub name: String,
    /// The model folder.
    pub dir: PathBuf,
    /// The `config.pbtxt` it was read from, if any.
    pub config_path: Option<PathBuf>,
    /// The completed, validated configuration.
    pub config: ModelConfig,
    /// The versions to serve, ascending.
    pub versions: Vec<ModelVersion>,
}

impl ModelSpec {
    /// The execution engine the configuration selects.
    pub fn backend(&self) -> Option<BackendKind> {
        BackendKind::of(&self.config)
    }

    /// The highest version served.
    pub fn latest_version(&self) -> Option<&ModelVersion> {
        self.versions.last()
    }
}

/// One version of a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelVersion {
    /// Version number (the folder name).
    pub version: i64,
    /// The model file inside the version folder.
    pub model_file: PathBuf,
}

/// The outcome of loading one model of a repository scan.
#[derive(Debug)]
pub struct ModelLoad {
    /// Model name (the folder name).
    pub name: String,
    /// The model folder (the first one found when the name is duplicated).
    pub dir: PathBuf,
    /// The model, or why it cannot be loaded.
    pub result: Result<ModelSpec, RepositoryError>,
}
