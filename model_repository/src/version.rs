//! Version folders and the version policy.

use std::path::{Path, PathBuf};

use ferrite_proto::inference::model_version_policy::{Latest, PolicyChoice};
use ferrite_proto::inference::ModelVersionPolicy;

use crate::RepositoryError;

/// The numeric version folders of a model folder, ascending.
///
/// As Triton does, only folders whose name is a positive decimal number
/// without a leading `0` are versions; other entries are skipped (with a
/// debug log).
pub fn version_dirs(model_dir: &Path) -> Result<Vec<(i64, PathBuf)>, RepositoryError> {
    let entries = std::fs::read_dir(model_dir).map_err(|e| RepositoryError::io(model_dir, e))?;
    let mut versions = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| RepositoryError::io(model_dir, e))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let name = entry.file_name();
        match name.to_str().and_then(parse_version) {
            Some(version) => versions.push((version, path)),
            None => tracing::debug!(
                folder = %path.display(),
                "skipping a folder that is not a version (not a number, or starting with 0)"
            ),
        }
    }
    versions.sort_by_key(|(v, _)| *v);
    Ok(versions)
}

fn parse_version(name: &str) -> Option<i64> {
    if name.is_empty() || name.starts_with('0') || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// The default policy: serve the single latest version.
pub fn default_policy() -> ModelVersionPolicy {
    ModelVersionPolicy {
        policy_choice: Some(PolicyChoice::Latest(Latest { num_versions: 1 })),
    }
}

/// The versions `policy` selects among `available` (ascending), ascending.
/// `file` and `model_dir` name the configuration and the folder in errors.
pub fn select_versions(
    policy: &ModelVersionPolicy,
    available: &[i64],
    file: &Path,
    model_dir: &Path,
) -> Result<Vec<i64>, RepositoryError> {
    if available.is_empty() {
        return Err(RepositoryError::config(
            file,
            "version_policy",
            format!(
                "{} has no version folder (a folder named with a positive number, such as `1`)",
                model_dir.display()
            ),
        ));
    }
    let selected = match &policy.policy_choice {
        None => vec![available[available.len() - 1]],
        Some(PolicyChoice::All(_)) => available.to_vec(),
        Some(PolicyChoice::Latest(latest)) => {
            let n = usize::try_from(latest.num_versions).unwrap_or(usize::MAX);
            if n == 0 {
                return Err(RepositoryError::config(
                    file,
                    "version_policy.latest.num_versions",
                    "must be at least 1",
                ));
            }
            available[available.len().saturating_sub(n)..].to_vec()
        }
        Some(PolicyChoice::Specific(specific)) => {
            if specific.versions.is_empty() {
                return Err(RepositoryError::config(
                    file,
                    "version_policy.specific.versions",
                    "lists no version",
                ));
            }
            let mut versions = specific.versions.clone();
            versions.sort_unstable();
            versions.dedup();
            if let Some(missing) = versions.iter().find(|v| !available.contains(v)) {
                return Err(RepositoryError::config(
                    file,
                    "version_policy.specific.versions",
                    format!(
                        "version {missing} does not exist in {} (available: {})",
                        model_dir.display(),
                        list(available)
                    ),
                ));
            }
            versions
        }
    };
    Ok(selected)
}

fn list(versions: &[i64]) -> String {
    versions
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrite_proto::inference::model_version_policy::{All, Specific};

    fn policy(choice: PolicyChoice) -> ModelVersionPolicy {
        ModelVersionPolicy {
            policy_choice: Some(choice),
        }
    }

    fn select(p: &ModelVersionPolicy, available: &[i64]) -> Result<Vec<i64>, RepositoryError> {
        select_versions(p, available, Path::new("m/config.pbtxt"), Path::new("m"))
    }

    #[test]
    fn folder_names() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [
            "1",
            "2",
            "10",
            "007",
            "0",
            "v3",
            "-1",
            "1a",
            "99999999999999999999",
        ] {
            std::fs::create_dir(dir.path().join(name)).expect("mkdir");
        }
        std::fs::write(dir.path().join("5"), b"a file, not a folder").expect("write");
        let found: Vec<i64> = version_dirs(dir.path())
            .expect("reads")
            .into_iter()
            .map(|(v, _)| v)
            .collect();
        assert_eq!(found, vec![1, 2, 10]);
    }

    #[test]
    fn latest() {
        let available = [1, 2, 5, 9];
        let one = policy(PolicyChoice::Latest(Latest { num_versions: 1 }));
        assert_eq!(select(&one, &available).expect("ok"), vec![9]);
        let two = policy(PolicyChoice::Latest(Latest { num_versions: 2 }));
        assert_eq!(select(&two, &available).expect("ok"), vec![5, 9]);
        let many = policy(PolicyChoice::Latest(Latest { num_versions: 10 }));
        assert_eq!(select(&many, &available).expect("ok"), vec![1, 2, 5, 9]);
        let zero = policy(PolicyChoice::Latest(Latest { num_versions: 0 }));
        let err = select(&zero, &available).expect_err("zero");
        assert!(err.to_string().contains("num_versions"), "{err}");
        let unset = ModelVersionPolicy::default();
        assert_eq!(select(&unset, &available).expect("ok"), vec![9]);
    }

    #[test]
    fn all_and_specific() {
        let available = [1, 2, 3];
        assert_eq!(
            select(&policy(PolicyChoice::All(All {})), &available).expect("ok"),
            vec![1, 2, 3]
        );
        let specific = policy(PolicyChoice::Specific(Specific {
            versions: vec![3, 1, 3],
        }));
        assert_eq!(select(&specific, &available).expect("ok"), vec![1, 3]);
        let missing = policy(PolicyChoice::Specific(Specific {
            versions: vec![1, 4],
        }));
        let err = select(&missing, &available).expect_err("missing");
        let text = err.to_string();
        assert!(
            text.contains("version 4") && text.contains("version_policy.specific.versions"),
            "{text}"
        );
    }

    #[test]
    fn no_versions() {
        let err = select(&default_policy(), &[]).expect_err("none");
        assert!(err.to_string().contains("no version folder"), "{err}");
    }
}
