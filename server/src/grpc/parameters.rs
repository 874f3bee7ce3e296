//! The `parameters` maps of an inference request, its inputs and its
//! requested outputs, checked by the same rules and with the same messages
//! as the HTTP front end (see [`crate::http::codec`]): the gRPC values are
//! turned into the HTTP codec's [`Parameters`] and handed to its checks.

use std::collections::HashMap;

use ferrite_proto::inference::infer_parameter::ParameterChoice;
use ferrite_proto::inference::InferParameter;

use crate::error::ServerError;
use crate::http::codec::{self, Parameter, Parameters};
use crate::model::Schedule;

/// Output parameters that ask for a feature ferrite does not have.
const UNSUPPORTED_OUTPUT_PARAMETERS: [(&str, &str); 1] =
    [("classification", "ferrite has no classification extension")];

fn convert(owner: &str, map: &HashMap<String, InferParameter>) -> Result<Parameters, ServerError> {
    let mut parameters = Parameters::default();
    for (name, parameter) in map {
        let value = match &parameter.parameter_choice {
            Some(ParameterChoice::BoolParam(v)) => Parameter::Bool(*v),
            Some(ParameterChoice::Int64Param(v)) => Parameter::Int(*v),
            Some(ParameterChoice::Uint64Param(v)) => Parameter::Uint(*v),
            Some(ParameterChoice::DoubleParam(v)) => Parameter::Double(*v),
            Some(ParameterChoice::StringParam(v)) => Parameter::String(v.clone()),
            None => {
                return Err(ServerError::invalid(format!(
                    "parameter '{name}' of {owner} has no value"
                )))
            }
        };
        parameters.push(name.clone(), value);
    }
    Ok(parameters)
}

/// Checks the request-level parameters of a request for `model` and returns
/// its `priority` and `timeout`. `binary_data_output` is accepted and has no
/// effect: gRPC answers every output as raw bytes. Other parameters are
/// logged, as over HTTP.
pub(crate) fn check_request(
    model: &str,
    map: &HashMap<String, InferParameter>,
) -> Result<Schedule, ServerError> {
    if map.is_empty() {
        return Ok(Schedule::default());
    }
    let parsed = codec::request_parameters(convert("the request", map)?)?;
    let rest = parsed.rest;
    for (name, value) in rest.iter() {
        tracing::debug!(
            model,
            "request parameter '{name}' = {value} is passed to the engine, which does not use it"
        );
    }
    Ok(parsed.schedule)
}

/// Checks the parameters of input tensor `input`.
pub(crate) fn check_input(
    input: &str,
    map: &HashMap<String, InferParameter>,
) -> Result<(), ServerError> {
    if map.is_empty() {
        return Ok(());
    }
    let owner = format!("input '{input}'");
    codec::check_parameters(&convert(&owner, map)?, &owner, &[])
}

/// Checks the parameters of requested output `output`; `binary_data` must
/// be a boolean and has no effect over gRPC.
pub(crate) fn check_output(
    output: &str,
    map: &HashMap<String, InferParameter>,
) -> Result<(), ServerError> {
    if map.is_empty() {
        return Ok(());
    }
    let owner = format!("output '{output}'");
    let mut parameters = convert(&owner, map)?;
    parameters.take_bool("binary_data", &owner)?;
    codec::check_parameters(&parameters, &owner, &UNSUPPORTED_OUTPUT_PARAMETERS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(entries: &[(&str, ParameterChoice)]) -> HashMap<String, InferParameter> {
        entries
            .iter()
            .map(|(k, v)| {
                (
                    (*k).to_string(),
                    InferParameter {
                        parameter_choice: Some(v.clone()),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn neutral_protocol_parameters_pass() {
        let p = params(&[
            ("priority", ParameterChoice::Uint64Param(0)),
            ("sequence_id", ParameterChoice::StringParam(String::new())),
            ("sequence_start", ParameterChoice::BoolParam(false)),
            ("binary_data_output", ParameterChoice::BoolParam(true)),
            ("custom", ParameterChoice::DoubleParam(0.5)),
        ]);
        assert!(check_request("m", &p).is_ok());
    }

    #[test]
    fn refuses_what_http_refuses() {
        let p = params(&[("sequence_id", ParameterChoice::Uint64Param(7))]);
        let error = check_request("m", &p).unwrap_err();
        assert!(
            error.message.contains("'sequence_id' is not supported"),
            "{}",
            error.message
        );
        let p = params(&[("binary_data_output", ParameterChoice::Int64Param(1))]);
        assert!(check_request("m", &p).is_err());
        let p: HashMap<String, InferParameter> =
            [("timeout".to_string(), InferParameter::default())].into();
        let error = check_request("m", &p).unwrap_err();
        assert_eq!(
            error.message,
            "parameter 'timeout' of the request has no value"
        );
        let p = params(&[("classification", ParameterChoice::Int64Param(3))]);
        let error = check_output("y", &p).unwrap_err();
        assert!(
            error
                .message
                .starts_with("output 'y': parameter 'classification'"),
            "{}",
            error.message
        );
        let p = params(&[("binary_data", ParameterChoice::StringParam("yes".into()))]);
        assert!(check_output("y", &p).is_err());
        let p = params(&[(
            "shared_memory_region",
            ParameterChoice::StringParam("r".into()),
        )]);
        let error = check_input("x", &p).unwrap_err();
        assert!(
            error
                .message
                .starts_with("input 'x': parameter 'shared_memory_region'"),
            "{}",
            error.message
        );
    }
}
