//! The parameters of `RepositoryModelLoad` and `RepositoryModelUnload`, as
//! tritonserver reads them: a load may carry `config` (the model
//! configuration as JSON, a string) and `file:<path>` entries (the bytes of
//! a model file, the path relative to the model folder); an unload may
//! carry `unload_dependents` (a boolean; ferrite's models have none).

use std::collections::HashMap;

use ferrite_proto::inference::model_repository_parameter::ParameterChoice;
use ferrite_proto::inference::ModelRepositoryParameter;

use crate::error::ServerError;
use crate::manager::LoadRequest;

/// Prefix of the load parameters that carry model files.
const FILE_PREFIX: &str = "file:";

/// The manager's load request from the parameters of a load call.
pub(crate) fn load_request(
    parameters: HashMap<String, ModelRepositoryParameter>,
) -> Result<LoadRequest, ServerError> {
    let mut request = LoadRequest::default();
    for (key, parameter) in parameters {
        match (key.as_str(), parameter.parameter_choice) {
            ("config", Some(ParameterChoice::StringParam(json))) => {
                let value: serde_json::Value = serde_json::from_str(&json).map_err(|e| {
                    ServerError::invalid(format!(
                        "the 'config' load parameter is not valid JSON: {e}"
                    ))
                })?;
                let config = ferrite_proto::model_config_from_json(&value).map_err(|e| {
                    ServerError::invalid(format!(
                        "the 'config' load parameter is not a model configuration: {e}"
                    ))
                })?;
                request.config = Some(config);
            }
            ("config", _) => {
                return Err(ServerError::invalid(
                    "invalid value type for load parameter 'config', expected string_param.",
                ))
            }
            (key, choice) if key.starts_with(FILE_PREFIX) => {
                let Some(ParameterChoice::BytesParam(bytes)) = choice else {
                    return Err(ServerError::invalid(format!(
                        "invalid value type for load parameter '{key}', expected bytes_param."
                    )));
                };
                request
                    .files
                    .push((key[FILE_PREFIX.len()..].to_string(), bytes));
            }
            (key, _) => {
                return Err(ServerError::invalid(format!(
                    "unrecognized load parameter '{key}'."
                )))
            }
        }
    }
    request.files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(request)
}

/// Checks the parameters of an unload call.
pub(crate) fn check_unload(
    parameters: &HashMap<String, ModelRepositoryParameter>,
) -> Result<(), ServerError> {
    match parameters
        .get("unload_dependents")
        .map(|p| &p.parameter_choice)
    {
        None | Some(Some(ParameterChoice::BoolParam(_))) => Ok(()),
        Some(_) => Err(ServerError::invalid(
            "invalid value type for 'unload_dependents' parameter, expected bool_param.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameter(choice: ParameterChoice) -> ModelRepositoryParameter {
        ModelRepositoryParameter {
            parameter_choice: Some(choice),
        }
    }

    #[test]
    fn reads_config_and_files() {
        let parameters = [
            (
                "config".to_string(),
                parameter(ParameterChoice::StringParam(
                    r#"{"name": "m", "max_batch_size": 4}"#.into(),
                )),
            ),
            (
                "file:1/model.onnx".to_string(),
                parameter(ParameterChoice::BytesParam(vec![1, 2, 3])),
            ),
        ]
        .into();
        let request = load_request(parameters).unwrap();
        let config = request.config.unwrap();
        assert_eq!((config.name.as_str(), config.max_batch_size), ("m", 4));
        assert_eq!(
            request.files,
            vec![("1/model.onnx".to_string(), vec![1, 2, 3])]
        );
    }

    #[test]
    fn refuses_bad_parameters() {
        let bad = |key: &str, choice| {
            load_request([(key.to_string(), parameter(choice))].into())
                .unwrap_err()
                .message
        };
        assert!(bad("config", ParameterChoice::BoolParam(true)).contains("expected string_param"));
        assert!(bad("config", ParameterChoice::StringParam("{".into())).contains("not valid JSON"));
        assert!(bad(
            "file:1/model.onnx",
            ParameterChoice::StringParam("x".into())
        )
        .contains("expected bytes_param"));
        assert_eq!(
            bad("other", ParameterChoice::BoolParam(true)),
            "unrecognized load parameter 'other'."
        );
        let unload = [(
            "unload_dependents".to_string(),
            parameter(ParameterChoice::Int64Param(1)),
        )]
        .into();
        assert!(check_unload(&unload).is_err());
        assert!(check_unload(&HashMap::new()).is_ok());
    }
}
