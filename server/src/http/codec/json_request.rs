//! The JSON part of an inference request, deserialized in one pass into
//! typed structs (no `serde_json::Value` tree).
//!
//! Input `data` is parsed straight into a [`TensorBuilder`] when the input's
//! `datatype` precedes it (as every client writes it); otherwise it is kept
//! as a borrowed raw slice and parsed once the datatype is known. A
//! [`Context`] follows the parser so that an error names the input or
//! output it happened in.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;

use ferrite_backends::DataType;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::error::Category;
use serde_json::value::RawValue;

use super::elements::{unknown_datatype, TensorBuilder};
use super::parameters::Parameters;
use crate::error::ServerError;

/// The request as written, before binary data and parameters are applied.
#[derive(Debug)]
pub(super) struct RawRequest<'de> {
    pub id: Option<String>,
    pub parameters: Parameters,
    pub inputs: Vec<RawInput<'de>>,
    pub outputs: Vec<RawOutput>,
}

#[derive(Debug)]
pub(super) struct RawInput<'de> {
    pub name: String,
    pub shape: Vec<i64>,
    pub dtype: DataType,
    pub parameters: Parameters,
    pub data: Option<RawData<'de>>,
}

/// An input's `data`: parsed already, or kept for later.
#[derive(Debug)]
pub(super) enum RawData<'de> {
    Parsed(TensorBuilder),
    Deferred(&'de RawValue),
}

#[derive(Debug)]
pub(super) struct RawOutput {
    pub name: String,
    pub parameters: Parameters,
}

/// Where the parser is, for error messages.
#[derive(Debug, Clone, Copy)]
enum Place {
    Request,
    Input(usize),
    Output(usize),
}

/// Follows the parser through inputs and outputs.
#[derive(Debug)]
struct Context {
    place: Cell<Place>,
    name: RefCell<Option<String>>,
    /// Length of the JSON text: no `data` array holds more elements.
    json_len: usize,
}

impl Context {
    fn enter(&self, place: Place) {
        self.place.set(place);
        self.name.replace(None);
    }

    fn named(&self, name: &str) {
        self.name.replace(Some(name.to_owned()));
    }

    /// Wraps a parse error with the input or output it happened in. When
    /// the error came before the tensor's `name`, the name is looked up in
    /// a second, lenient pass (which fails only on broken JSON).
    fn error(&self, json: &[u8], error: &serde_json::Error) -> ServerError {
        let mut name = self.name.borrow().clone();
        if name.is_none() {
            name = match self.place.get() {
                Place::Input(i) => names(json).and_then(|n| n.inputs.into_iter().nth(i)?.name),
                Place::Output(i) => names(json).and_then(|n| n.outputs.into_iter().nth(i)?.name),
                Place::Request => None,
            };
        }
        let place = match (self.place.get(), name.as_deref()) {
            (Place::Input(_), Some(name)) => Some(format!("input '{name}'")),
            (Place::Output(_), Some(name)) => Some(format!("output '{name}'")),
            (Place::Input(i), None) => Some(format!("inputs[{i}]")),
            (Place::Output(i), None) => Some(format!("outputs[{i}]")),
            (Place::Request, _) => None,
        };
        let message = match (error.classify(), place) {
            (Category::Data, Some(place)) => format!("{place}: {error}"),
            (_, Some(place)) => format!("malformed request JSON in {place}: {error}"),
            (_, None) => format!("failed to parse the request JSON: {error}"),
        };
        ServerError::invalid(message)
    }
}

/// Parses the JSON header of an inference request.
pub(super) fn parse(json: &[u8]) -> Result<RawRequest<'_>, ServerError> {
    let context = Context {
        place: Cell::new(Place::Request),
        name: RefCell::new(None),
        json_len: json.len(),
    };
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let request = RequestSeed(&context)
        .deserialize(&mut deserializer)
        .and_then(|request| deserializer.end().map(|()| request))
        .map_err(|e| context.error(json, &e))?;
    Ok(request)
}

/// Only the tensor names of a request.
#[derive(Debug, Default, Deserialize)]
struct Names {
    #[serde(default)]
    inputs: Vec<Named>,
    #[serde(default)]
    outputs: Vec<Named>,
}

#[derive(Debug, Deserialize)]
struct Named {
    name: Option<String>,
}

fn names(json: &[u8]) -> Option<Names> {
    serde_json::from_slice(json).ok()
}

/// Parses deferred `data` now that its input's datatype is known.
pub(super) fn parse_deferred(
    raw: &RawValue,
    dtype: DataType,
    shape: &[i64],
) -> Result<TensorBuilder, serde_json::Error> {
    let text = raw.get();
    let limit = ferrite_backends::element_count(shape).unwrap_or(usize::MAX);
    let mut builder = TensorBuilder::new(dtype, limit.min(text.len()));
    DataSeed {
        builder: &mut builder,
        limit,
    }
    .deserialize(&mut serde_json::Deserializer::from_str(text))?;
    Ok(builder)
}

/// An object key, borrowed from the body unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Stores a field's value, rejecting a second occurrence.
fn set_once<T, E: de::Error>(slot: &mut Option<T>, field: &'static str, value: T) -> Result<(), E> {
    if slot.is_some() {
        return Err(E::duplicate_field(field));
    }
    *slot = Some(value);
    Ok(())
}

fn ignore_field<'de, A: MapAccess<'de>>(
    map: &mut A,
    owner: &str,
    key: &str,
) -> Result<(), A::Error> {
    tracing::debug!("ignoring unknown field '{key}' of {owner}");
    map.next_value::<IgnoredAny>()?;
    Ok(())
}

struct RequestSeed<'c>(&'c Context);

impl<'de> DeserializeSeed<'de> for RequestSeed<'_> {
    type Value = RawRequest<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RequestSeed<'_> {
    type Value = RawRequest<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an inference request object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let context = self.0;
        let (mut id, mut parameters, mut inputs, mut outputs) = (None, None, None, None);
        while let Some(key) = map.next_key::<Key>()? {
            match key.0.as_ref() {
                "id" => set_once(&mut id, "id", map.next_value::<String>()?)?,
                "parameters" => set_once(&mut parameters, "parameters", map.next_value()?)?,
                "inputs" => {
                    let value = map.next_value_seed(InputsSeed(context))?;
                    context.enter(Place::Request);
                    set_once(&mut inputs, "inputs", value)?;
                }
                "outputs" => {
                    let value = map.next_value_seed(OutputsSeed(context))?;
                    context.enter(Place::Request);
                    set_once(&mut outputs, "outputs", value)?;
                }
                other => ignore_field(&mut map, "the request", other)?,
            }
        }
        Ok(RawRequest {
            id,
            parameters: parameters.unwrap_or_default(),
            inputs: inputs.ok_or_else(|| de::Error::missing_field("inputs"))?,
            outputs: outputs.unwrap_or_default(),
        })
    }
}

struct InputsSeed<'c>(&'c Context);

impl<'de> DeserializeSeed<'de> for InputsSeed<'_> {
    type Value = Vec<RawInput<'de>>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for InputsSeed<'_> {
    type Value = Vec<RawInput<'de>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of input tensors")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut inputs = Vec::with_capacity(seq.size_hint().unwrap_or(1));
        loop {
            self.0.enter(Place::Input(inputs.len()));
            match seq.next_element_seed(InputSeed(self.0))? {
                Some(input) => inputs.push(input),
                None => return Ok(inputs),
            }
        }
    }
}

struct InputSeed<'c>(&'c Context);

impl<'de> DeserializeSeed<'de> for InputSeed<'_> {
    type Value = RawInput<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for InputSeed<'_> {
    type Value = RawInput<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an input tensor object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let context = self.0;
        let mut name: Option<String> = None;
        let mut shape: Option<Vec<i64>> = None;
        let mut dtype: Option<DataType> = None;
        let mut parameters = None;
        let mut data = None;
        while let Some(key) = map.next_key::<Key>()? {
            match key.0.as_ref() {
                "name" => {
                    let value: String = map.next_value()?;
                    context.named(&value);
                    set_once(&mut name, "name", value)?;
                }
                "shape" => set_once(&mut shape, "shape", map.next_value()?)?,
                "datatype" => {
                    set_once(&mut dtype, "datatype", map.next_value::<DataTypeName>()?.0)?
                }
                "parameters" => set_once(&mut parameters, "parameters", map.next_value()?)?,
                "data" => {
                    let value = match dtype {
                        Some(dtype) => {
                            let limit = shape
                                .as_deref()
                                .and_then(|s| ferrite_backends::element_count(s).ok())
                                .unwrap_or(usize::MAX);
                            let mut builder =
                                TensorBuilder::new(dtype, limit.min(context.json_len));
                            map.next_value_seed(DataSeed {
                                builder: &mut builder,
                                limit,
                            })?;
                            RawData::Parsed(builder)
                        }
                        None => RawData::Deferred(map.next_value()?),
                    };
                    set_once(&mut data, "data", value)?;
                }
                other => ignore_field(&mut map, "an input", other)?,
            }
        }
        Ok(RawInput {
            name: name.ok_or_else(|| de::Error::missing_field("name"))?,
            shape: shape.ok_or_else(|| de::Error::missing_field("shape"))?,
            dtype: dtype.ok_or_else(|| de::Error::missing_field("datatype"))?,
            parameters: parameters.unwrap_or_default(),
            data,
        })
    }
}

struct OutputsSeed<'c>(&'c Context);

impl<'de> DeserializeSeed<'de> for OutputsSeed<'_> {
    type Value = Vec<RawOutput>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for OutputsSeed<'_> {
    type Value = Vec<RawOutput>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of requested outputs")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut outputs = Vec::with_capacity(seq.size_hint().unwrap_or(1));
        loop {
            self.0.enter(Place::Output(outputs.len()));
            match seq.next_element_seed(OutputSeed(self.0))? {
                Some(output) => outputs.push(output),
                None => return Ok(outputs),
            }
        }
    }
}

struct OutputSeed<'c>(&'c Context);

impl<'de> DeserializeSeed<'de> for OutputSeed<'_> {
    type Value = RawOutput;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for OutputSeed<'_> {
    type Value = RawOutput;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a requested output object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (mut name, mut parameters) = (None, None);
        while let Some(key) = map.next_key::<Key>()? {
            match key.0.as_ref() {
                "name" => {
                    let value: String = map.next_value()?;
                    self.0.named(&value);
                    set_once(&mut name, "name", value)?;
                }
                "parameters" => set_once(&mut parameters, "parameters", map.next_value()?)?,
                other => ignore_field(&mut map, "a requested output", other)?,
            }
        }
        Ok(RawOutput {
            name: name.ok_or_else(|| de::Error::missing_field("name"))?,
            parameters: parameters.unwrap_or_default(),
        })
    }
}

/// A `datatype` value.
struct DataTypeName(DataType);

impl<'de> Deserialize<'de> for DataTypeName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;

        impl Visitor<'_> for NameVisitor {
            type Value = DataTypeName;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a datatype name such as \"FP32\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<DataTypeName, E> {
                DataType::from_kserve(v)
                    .map(DataTypeName)
                    .ok_or_else(|| E::custom(unknown_datatype(v)))
            }
        }

        deserializer.deserialize_str(NameVisitor)
    }
}

/// Parses `data` (nested arrays or one scalar) into a builder, stopping at
/// `limit` elements.
struct DataSeed<'b> {
    builder: &'b mut TensorBuilder,
    limit: usize,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl DataSeed<'_> {
    fn room<E: de::Error>(&self) -> Result<(), E> {
        if self.builder.len() >= self.limit {
            return Err(E::custom(format!(
                "data holds more than the {} elements of the shape",
                self.limit
            )));
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} tensor data", self.builder.dtype())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let limit = self.limit;
        while seq
            .next_element_seed(DataSeed {
                builder: &mut *self.builder,
                limit,
            })?
            .is_some()
        {}
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<(), E> {
        self.room()?;
        self.builder.push_bool(v).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        self.room()?;
        self.builder.push_i64(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        self.room()?;
        self.builder.push_u64(v).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        self.room()?;
        self.builder.push_f64(v).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.room()?;
        self.builder.push_bytes(v.as_bytes()).map_err(E::custom)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(format!(
            "null is not a {} value",
            self.builder.dtype()
        )))
    }
}
