//! The `parameters` objects of requests, inputs and outputs: a name and a
//! boolean, number or string value each.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

use crate::error::ServerError;

/// One parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum Parameter {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    String(String),
}

impl Parameter {
    /// The value as a boolean, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Parameter::Bool(value) => Some(*value),
            _ => None,
        }
    }

    /// The value as an unsigned integer, if it is a non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Parameter::Uint(value) => Some(*value),
            Parameter::Int(value) => u64::try_from(*value).ok(),
            _ => None,
        }
    }

    /// Whether the value is its type's zero: false, 0 or "". Protocol
    /// parameters with such a value ask for the default behaviour.
    pub fn is_default(&self) -> bool {
        match self {
            Parameter::Bool(value) => !value,
            Parameter::Int(value) => *value == 0,
            Parameter::Uint(value) => *value == 0,
            Parameter::Double(value) => *value == 0.0,
            Parameter::String(value) => value.is_empty(),
        }
    }
}

impl fmt::Display for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Parameter::Bool(value) => write!(f, "{value}"),
            Parameter::Int(value) => write!(f, "{value}"),
            Parameter::Uint(value) => write!(f, "{value}"),
            Parameter::Double(value) => write!(f, "{value}"),
            Parameter::String(value) => write!(f, "{value:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for Parameter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;

        impl Visitor<'_> for ValueVisitor {
            type Value = Parameter;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean, number or string parameter value")
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Parameter, E> {
                Ok(Parameter::Bool(v))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Parameter, E> {
                Ok(Parameter::Int(v))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Parameter, E> {
                Ok(match i64::try_from(v) {
                    Ok(signed) => Parameter::Int(signed),
                    Err(_) => Parameter::Uint(v),
                })
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Parameter, E> {
                Ok(Parameter::Double(v))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Parameter, E> {
                Ok(Parameter::String(v.to_owned()))
            }

            fn visit_string<E: de::Error>(self, v: String) -> Result<Parameter, E> {
                Ok(Parameter::String(v))
            }
        }

        deserializer.deserialize_any(ValueVisitor)
    }
}

/// A `parameters` object, in the order the client wrote it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parameters(Vec<(String, Parameter)>);

impl Parameters {
    /// Whether there is no parameter.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&Parameter> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// Every parameter, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Parameter)> {
        self.0.iter().map(|(key, value)| (key.as_str(), value))
    }

    /// Removes and returns `name`.
    pub fn take(&mut self, name: &str) -> Option<Parameter> {
        let index = self.0.iter().position(|(key, _)| key == name)?;
        Some(self.0.remove(index).1)
    }

    /// Adds a parameter (the gRPC front end builds them from its map).
    pub fn push(&mut self, name: impl Into<String>, value: Parameter) {
        self.0.push((name.into(), value));
    }

    /// Removes `name` and reads it as a boolean; `what` names the owner in
    /// the error ("input 'X'", "the request").
    pub fn take_bool(&mut self, name: &str, what: &str) -> Result<Option<bool>, ServerError> {
        self.take(name)
            .map(|value| {
                value.as_bool().ok_or_else(|| {
                    ServerError::invalid(format!(
                        "parameter '{name}' of {what} must be a boolean, got {value}"
                    ))
                })
            })
            .transpose()
    }

    /// Removes `name` and reads it as a non-negative integer.
    pub fn take_u64(&mut self, name: &str, what: &str) -> Result<Option<u64>, ServerError> {
        self.take(name)
            .map(|value| {
                value.as_u64().ok_or_else(|| {
                    ServerError::invalid(format!(
                        "parameter '{name}' of {what} must be a non-negative integer, got {value}"
                    ))
                })
            })
            .transpose()
    }
}

impl<'de> Deserialize<'de> for Parameters {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor;

        impl<'de> Visitor<'de> for MapVisitor {
            type Value = Parameters;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a parameters object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parameters, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value::<Parameter>()?;
                    entries.push((key, value));
                }
                Ok(Parameters(entries))
            }
        }

        deserializer.deserialize_map(MapVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_value_kind() {
        let json = r#"{"a": true, "b": -3, "c": 18446744073709551615, "d": 0.5, "e": "x", "f": 7}"#;
        let mut p: Parameters = serde_json::from_str(json).unwrap();
        assert_eq!(p.get("a"), Some(&Parameter::Bool(true)));
        assert_eq!(p.get("b"), Some(&Parameter::Int(-3)));
        assert_eq!(p.get("c"), Some(&Parameter::Uint(u64::MAX)));
        assert_eq!(p.get("d"), Some(&Parameter::Double(0.5)));
        assert_eq!(p.get("e"), Some(&Parameter::String("x".into())));
        assert_eq!(p.take_u64("f", "the request").unwrap(), Some(7));
        assert_eq!(p.take_bool("a", "the request").unwrap(), Some(true));
        assert_eq!(p.take_bool("zz", "the request").unwrap(), None);
        let err = p.take_bool("e", "input 'X'").unwrap_err();
        assert_eq!(
            err.message,
            "parameter 'e' of input 'X' must be a boolean, got \"x\""
        );
        let err = p.take_u64("b", "input 'X'").unwrap_err();
        assert_eq!(
            err.message,
            "parameter 'b' of input 'X' must be a non-negative integer, got -3"
        );
        let names: Vec<&str> = p.iter().map(|(k, _)| k).collect();
        assert_eq!(names, vec!["c", "d"]);
    }

    #[test]
    fn rejects_nested_values() {
        let err = serde_json::from_str::<Parameters>(r#"{"a": [1]}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("a boolean, number or string parameter value"),
            "{err}"
        );
        let err = serde_json::from_str::<Parameters>(r#"{"a": null}"#).unwrap_err();
        assert!(err.to_string().contains("parameter value"), "{err}");
    }

    #[test]
    fn default_values() {
        assert!(Parameter::Bool(false).is_default());
        assert!(Parameter::Int(0).is_default());
        assert!(Parameter::String(String::new()).is_default());
        assert!(!Parameter::Uint(3).is_default());
        assert!(!Parameter::Bool(true).is_default());
    }
}
