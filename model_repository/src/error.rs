//! The error type of the repository crate.

use std::path::{Path, PathBuf};

/// Everything that can go wrong while reading a model repository.
///
/// Every message names the file (or folder) and, where one is involved, the
/// configuration field.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// A file or folder could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        /// The path that could not be read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A repository root is not a folder.
    #[error("model repository {} is not a directory", .path.display())]
    NotADirectory {
        /// The root that was given.
        path: PathBuf,
    },
    /// Protobuf text format that does not parse or does not fit the schema.
    #[error("{}:{line}:{column}: {message}", display_source(.path.as_deref()))]
    Parse {
        /// The configuration file, when the text came from one.
        path: Option<PathBuf>,
        /// 1-based line of the offending token.
        line: usize,
        /// 1-based column (in characters) of the offending token.
        column: usize,
        /// What is wrong, naming the field.
        message: String,
    },
    /// A configuration field that is invalid, inconsistent with the model
    /// file, or not supported.
    #[error("{}: field `{field}`: {message}", .path.display())]
    Config {
        /// The configuration file (or the model folder when it has none).
        path: PathBuf,
        /// Dotted path of the field, with list indices (`input[0].dims`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// An ONNX model file that cannot be read or described.
    #[error("ONNX model {}: {message}", .path.display())]
    Onnx {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The same model name exists in two repositories.
    #[error(
        "model `{name}` appears in more than one repository: {} and {}",
        .first.display(),
        .second.display()
    )]
    DuplicateModel {
        /// The model name.
        name: String,
        /// The first folder holding it.
        first: PathBuf,
        /// The second folder holding it.
        second: PathBuf,
    },
    /// No repository holds a model of that name.
    #[error("model `{name}` is not in any model repository ({})", display_roots(.roots))]
    ModelNotFound {
        /// The model name that was asked for.
        name: String,
        /// The repositories searched.
        roots: Vec<PathBuf>,
    },
}

impl RepositoryError {
    pub(crate) fn config(
        path: &Path,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        RepositoryError::Config {
            path: path.to_owned(),
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        RepositoryError::Io {
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn onnx(path: &Path, message: impl Into<String>) -> Self {
        RepositoryError::Onnx {
            path: path.to_owned(),
            message: message.into(),
        }
    }

    /// Attaches the file a text-format error came from.
    pub(crate) fn in_file(self, file: &Path) -> Self {
        match self {
            RepositoryError::Parse {
                path: None,
                line,
                column,
                message,
            } => RepositoryError::Parse {
                path: Some(file.to_owned()),
                line,
                column,
                message,
            },
            other => other,
        }
    }
}

fn display_source(path: Option<&Path>) -> String {
    path.map_or_else(|| "<config>".to_owned(), |p| p.display().to_string())
}

fn display_roots(roots: &[PathBuf]) -> String {
    roots
        .iter()
        .map(|r| r.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
