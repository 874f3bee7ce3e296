//! Model files given with a load request (`file:<version>/<name>`), written
//! into a private temporary repository that the load reads from.

use std::path::{Component, Path};

use tempfile::TempDir;

use crate::error::ServerError;

/// Writes `files` under `<tmp>/<model>/` and returns the temporary root,
/// which lives as long as the returned value. Paths must stay inside the
/// model folder.
pub fn write(model: &str, files: &[(String, Vec<u8>)]) -> Result<TempDir, ServerError> {
    let root = tempfile::Builder::new()
        .prefix("ferrite-load-")
        .tempdir()
        .map_err(|e| {
            ServerError::internal(format!("cannot create a folder for model files: {e}"))
        })?;
    let model_dir = root.path().join(model);
    for (name, contents) in files {
        let relative = Path::new(name);
        let safe = !name.is_empty()
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            return Err(ServerError::invalid(format!(
                "failed to load '{model}': file parameter 'file:{name}' must be a relative path inside the model folder"
            )));
        }
        let path = model_dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                ServerError::internal(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        std::fs::write(&path, contents)
            .map_err(|e| ServerError::internal(format!("cannot write {}: {e}", path.display())))?;
    }
    std::fs::create_dir_all(&model_dir).map_err(|e| {
        ServerError::internal(format!("cannot create {}: {e}", model_dir.display()))
    })?;
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_inside_the_model_folder_only() {
        let files = vec![("1/model.onnx".to_string(), b"bytes".to_vec())];
        let root = write("m", &files).unwrap();
        assert_eq!(
            std::fs::read(root.path().join("m/1/model.onnx")).unwrap(),
            b"bytes"
        );
        for bad in ["../x", "/etc/passwd", "1/../../x", ""] {
            let files = vec![(bad.to_string(), Vec::new())];
            let error = write("m", &files).unwrap_err();
            assert!(error.message.contains("relative path"), "{bad}: {error}");
        }
    }
}
