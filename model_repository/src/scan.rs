//! Finding models in the repository roots.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use ferrite_proto::inference::ModelConfig;

use crate::model::{load_model_dir, read_declared_config, DeclaredConfig};
use crate::{ModelLoad, ModelSpec, RepositoryError, RepositoryOptions};

/// Scans every root and loads every model.
///
/// Each sub-folder of a root is a model (folders whose name starts with `.`
/// are skipped). The result has one entry per model name, sorted by name;
/// a model whose name appears in two roots gets an error naming both
/// folders. `Err` only when a root cannot be read.
pub fn scan(opts: &RepositoryOptions) -> Result<Vec<ModelLoad>, RepositoryError> {
    let models = discover(&opts.roots)?;
    Ok(models
        .into_iter()
        .map(|(name, dirs)| {
            let dir = dirs[0].clone();
            let result = match dirs.get(1) {
                Some(second) => Err(RepositoryError::DuplicateModel {
                    name: name.clone(),
                    first: dir.clone(),
                    second: second.clone(),
                }),
                None => read_declared_config(&dir)
                    .and_then(|declared| load_model_dir(opts, &name, &dir, declared)),
            };
            ModelLoad { name, dir, result }
        })
        .collect())
}

/// Loads the single model `name` from its `config.pbtxt`.
pub fn load_model(opts: &RepositoryOptions, name: &str) -> Result<ModelSpec, RepositoryError> {
    let dir = find_model(opts, name)?;
    let declared = read_declared_config(&dir)?;
    load_model_dir(opts, name, &dir, declared)
}

/// Loads the single model `name` with `config` in place of its
/// `config.pbtxt` (a load-time override); the configuration is completed
/// and validated like one read from the file.
pub fn load_model_with_config(
    opts: &RepositoryOptions,
    name: &str,
    config: ModelConfig,
) -> Result<ModelSpec, RepositoryError> {
    let dir = find_model(opts, name)?;
    let declared = DeclaredConfig {
        config,
        path: None,
        max_batch_size_declared: false,
    };
    load_model_dir(opts, name, &dir, declared)
}

/// The folder of model `name`, which must exist in exactly one root.
fn find_model(opts: &RepositoryOptions, name: &str) -> Result<PathBuf, RepositoryError> {
    let not_found = || RepositoryError::ModelNotFound {
        name: name.to_owned(),
        roots: opts.roots.clone(),
    };
    let mut components = Path::new(name).components();
    let plain = matches!(components.next(), Some(Component::Normal(_)))
        && components.next().is_none()
        && !name.starts_with('.');
    if !plain {
        return Err(not_found());
    }
    let mut found = opts
        .roots
        .iter()
        .map(|r| r.join(name))
        .filter(|d| d.is_dir());
    let first = found.next().ok_or_else(not_found)?;
    if let Some(second) = found.next() {
        return Err(RepositoryError::DuplicateModel {
            name: name.to_owned(),
            first,
            second,
        });
    }
    Ok(first)
}

/// Model name -> the folders holding it, across all roots in order.
fn discover(roots: &[PathBuf]) -> Result<BTreeMap<String, Vec<PathBuf>>, RepositoryError> {
    let mut models: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for root in roots {
        let metadata = std::fs::metadata(root).map_err(|e| RepositoryError::io(root, e))?;
        if !metadata.is_dir() {
            return Err(RepositoryError::NotADirectory { path: root.clone() });
        }
        let entries = std::fs::read_dir(root).map_err(|e| RepositoryError::io(root, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| RepositoryError::io(root, e))?;
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                tracing::warn!(folder = %path.display(), "skipping a model folder whose name is not UTF-8");
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            models.entry(name).or_default().push(path);
        }
    }
    Ok(models)
}
