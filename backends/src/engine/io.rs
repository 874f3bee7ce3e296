//! The contract between a model's config and the tensors its engine sees.
//!
//! At load time [`IoMap::new`] checks the config's inputs and outputs against
//! what the ONNX file declares (names, data types, dimensions), as Triton's
//! ONNX Runtime backend does. At request time it checks the request's tensors
//! against the config, maps each to the model's input position and applies
//! the config's `reshape` (request shape to model shape for inputs, model
//! shape to config shape for outputs). Only shapes change: the bytes of a
//! row-major tensor are the same under any reshape.
//!
//! Ragged batching (Triton's `allow_ragged_batch`, `batch_input`,
//! `batch_output`): the scheduler gives a ragged input as one flat tensor of
//! the whole batch and adds the batch inputs, and a scattered output comes
//! back flat. Those tensors are bound without a batch dimension: one
//! dimension each (BATCH_ITEM_SHAPE: two), whatever the config's dims say of
//! one request.

use std::borrow::Cow;

use ferrite_proto::inference::{batch_input, ModelConfig, ModelInput, ModelOutput};

use crate::{BackendError, DataType, NamedTensor, Tensor};

/// One input or output as the model file declares it.
#[derive(Debug, Clone)]
pub(crate) struct ModelTensor {
    pub name: String,
    /// The element type, or the engine's name for a type that has no
    /// protocol equivalent; `None` when the model does not declare it.
    pub dtype: Option<Result<DataType, String>>,
    /// Declared dimensions (`None` entries are dynamic); `None` when even the
    /// rank is unknown.
    pub dims: Option<Vec<Option<i64>>>,
}

/// The inputs and outputs of a model file, in the model's order.
#[derive(Debug, Clone, Default)]
pub(crate) struct ModelSignature {
    pub inputs: Vec<ModelTensor>,
    pub outputs: Vec<ModelTensor>,
}

/// A config tensor bound to its position in the model.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    pub name: String,
    pub dtype: DataType,
    /// Position among the model's inputs (or outputs).
    pub model_index: usize,
    /// The config's dims, batch dimension excluded.
    dims: Vec<i64>,
    /// Whether the tensor starts with the batch dimension: the model batches
    /// and the tensor is neither ragged nor a batch input or scattered output.
    pub batched: bool,
    /// The model's dims when the config reshapes the tensor.
    reshape: Option<Vec<i64>>,
    optional: bool,
}

/// A request input checked against the config and ready for the engine.
#[derive(Debug)]
pub(crate) struct PreparedInput<'a> {
    pub binding: &'a Binding,
    pub tensor: &'a Tensor,
    /// The shape to give the model (the request's, after any reshape).
    pub shape: Cow<'a, [i64]>,
}

/// The checked mapping between a config and a model file.
#[derive(Debug, Clone)]
pub(crate) struct IoMap {
    max_batch_size: i64,
    inputs: Vec<Binding>,
    outputs: Vec<Binding>,
}

impl IoMap {
    /// Binds the config's inputs and outputs to the model's. The error is the
    /// reason, naming the tensor, for the caller to wrap in a load error.
    pub fn new(config: &ModelConfig, model: &ModelSignature) -> Result<Self, String> {
        if config.max_batch_size < 0 {
            return Err(format!(
                "max_batch_size must be 0 or more, got {}",
                config.max_batch_size
            ));
        }
        let batching = config.max_batch_size > 0;
        let mut inputs = config
            .input
            .iter()
            .map(|input| bind_input(input, model, batching))
            .collect::<Result<Vec<_>, _>>()?;
        for batch_input in &config.batch_input {
            let rank = if batch_input.kind == batch_input::Kind::BatchItemShape as i32 {
                2
            } else {
                1
            };
            for target in &batch_input.target_name {
                // The model may fix the sizes it knows (BATCH_ITEM_SHAPE's
                // rank); only the number of dimensions is the kind's.
                let dims = model
                    .inputs
                    .iter()
                    .find(|m| &m.name == target)
                    .and_then(|m| m.dims.as_ref())
                    .filter(|dims| dims.len() == rank)
                    .map_or_else(
                        || vec![-1; rank],
                        |dims| dims.iter().map(|d| d.unwrap_or(-1)).collect(),
                    );
                inputs.push(bind(
                    "batch input",
                    target,
                    batch_input.data_type,
                    &dims,
                    None,
                    false,
                    &model.inputs,
                    false,
                )?);
            }
        }
        check_unique("input", &inputs)?;
        if let Some(missing) = model
            .inputs
            .iter()
            .find(|m| !inputs.iter().any(|b| b.name == m.name))
        {
            return Err(format!(
                "the model has an input '{}' that the config does not declare",
                missing.name
            ));
        }
        let outputs = config
            .output
            .iter()
            .map(|output| {
                let scattered = config
                    .batch_output
                    .iter()
                    .any(|b| b.target_name.contains(&output.name));
                bind_output(output, model, batching, scattered)
            })
            .collect::<Result<Vec<_>, _>>()?;
        check_unique("output", &outputs)?;
        Ok(Self {
            max_batch_size: i64::from(config.max_batch_size),
            inputs,
            outputs,
        })
    }

    /// Whether the model batches requests (`max_batch_size > 0`), so that
    /// every tensor but the ragged ones starts with the batch dimension.
    pub fn is_batching(&self) -> bool {
        self.max_batch_size > 0
    }

    /// Whether some tensor is ragged, a batch input or a scattered output.
    pub fn is_ragged(&self) -> bool {
        self.is_batching() && self.inputs.iter().chain(&self.outputs).any(|b| !b.batched)
    }

    /// The config's inputs, in config order.
    pub fn inputs(&self) -> &[Binding] {
        &self.inputs
    }

    /// The config's outputs, in config order.
    pub fn outputs(&self) -> &[Binding] {
        &self.outputs
    }

    /// The full shape (batch dimension included, `-1` where dynamic) that the
    /// model sees for a config tensor.
    pub fn model_dims(&self, binding: &Binding) -> Vec<i64> {
        let dims = binding.reshape.as_ref().unwrap_or(&binding.dims);
        with_batch(binding, -1, dims)
    }
}

fn with_batch(binding: &Binding, batch: i64, dims: &[i64]) -> Vec<i64> {
    if binding.batched {
        std::iter::once(batch).chain(dims.iter().copied()).collect()
    } else {
        dims.to_vec()
    }
}

/// Splits off the batch dimension of a batched tensor.
fn split_batch<'s>(binding: &Binding, shape: &'s [i64]) -> Option<(Option<i64>, &'s [i64])> {
    if binding.batched {
        let (batch, rest) = shape.split_first()?;
        Some((Some(*batch), rest))
    } else {
        Some((None, shape))
    }
}

impl IoMap {
    /// Checks a request's inputs against the config and returns them in the
    /// model's input order, with the shapes the model expects.
    pub fn prepare_inputs<'a>(
        &'a self,
        inputs: &'a [NamedTensor],
    ) -> Result<Vec<PreparedInput<'a>>, BackendError> {
        let mut prepared: Vec<PreparedInput<'a>> = Vec::with_capacity(inputs.len());
        for input in inputs {
            let Some(binding) = self.inputs.iter().find(|b| b.name == input.name) else {
                return Err(BackendError::InvalidInput(format!(
                    "unknown input '{}'; the model's inputs are {}",
                    input.name,
                    names(&self.inputs)
                )));
            };
            if prepared.iter().any(|p| p.binding.name == input.name) {
                return Err(BackendError::InvalidInput(format!(
                    "input '{}' is given more than once",
                    input.name
                )));
            }
            let tensor = &input.tensor;
            if tensor.dtype() != binding.dtype {
                return Err(BackendError::InvalidInput(format!(
                    "input '{}' has data type {}, the model expects {}",
                    input.name,
                    tensor.dtype(),
                    binding.dtype
                )));
            }
            let shape = self.input_shape(binding, tensor.shape())?;
            prepared.push(PreparedInput {
                binding,
                tensor,
                shape,
            });
        }
        if let Some(missing) = self
            .inputs
            .iter()
            .find(|b| !b.optional && !prepared.iter().any(|p| p.binding.name == b.name))
        {
            return Err(BackendError::InvalidInput(format!(
                "input '{}' is missing",
                missing.name
            )));
        }
        prepared.sort_by_key(|p| p.binding.model_index);
        Ok(prepared)
    }

    fn input_shape<'a>(
        &self,
        binding: &Binding,
        shape: &'a [i64],
    ) -> Result<Cow<'a, [i64]>, BackendError> {
        let mismatch = || {
            BackendError::InvalidInput(format!(
                "input '{}' has shape {shape:?}, the model expects {:?}",
                binding.name,
                with_batch(binding, -1, &binding.dims)
            ))
        };
        let (batch, rest) = split_batch(binding, shape).ok_or_else(mismatch)?;
        if !dims_match(&binding.dims, rest) {
            return Err(mismatch());
        }
        if let Some(batch) = batch {
            if batch > self.max_batch_size {
                return Err(BackendError::InvalidInput(format!(
                    "input '{}' has batch size {batch}, more than the model's max_batch_size {}",
                    binding.name, self.max_batch_size
                )));
            }
        }
        match &binding.reshape {
            None => Ok(Cow::Borrowed(shape)),
            Some(reshape) => {
                let model = reshape_dims(rest, &binding.dims, reshape).map_err(|reason| {
                    BackendError::InvalidInput(format!(
                        "input '{}' of shape {shape:?} cannot take the config's reshape \
                         {reshape:?}: {reason}",
                        binding.name
                    ))
                })?;
                Ok(Cow::Owned(with_batch(binding, batch.unwrap_or(0), &model)))
            }
        }
    }

    /// The outputs to return for a request: the named ones, or every config
    /// output in the model's order when none is named.
    pub fn select_outputs(&self, requested: &[String]) -> Result<Vec<&Binding>, BackendError> {
        if requested.is_empty() {
            let mut all: Vec<&Binding> = self.outputs.iter().collect();
            all.sort_by_key(|b| b.model_index);
            return Ok(all);
        }
        let mut selected: Vec<&Binding> = Vec::with_capacity(requested.len());
        for name in requested {
            let Some(binding) = self.outputs.iter().find(|b| &b.name == name) else {
                return Err(BackendError::InvalidInput(format!(
                    "unknown output '{name}'; the model's outputs are {}",
                    names(&self.outputs)
                )));
            };
            if selected.iter().any(|b| &b.name == name) {
                return Err(BackendError::InvalidInput(format!(
                    "output '{name}' is requested more than once"
                )));
            }
            selected.push(binding);
        }
        Ok(selected)
    }

    /// Turns the shape an engine produced for an output into the shape the
    /// config declares, checking it on the way. The error is the reason.
    pub fn output_shape(&self, binding: &Binding, produced: &[i64]) -> Result<Vec<i64>, String> {
        let declared = binding.reshape.as_ref().unwrap_or(&binding.dims);
        let mismatch = || {
            format!(
                "output '{}' has shape {produced:?}, the model config declares {:?}",
                binding.name,
                with_batch(binding, -1, declared)
            )
        };
        let (batch, rest) = split_batch(binding, produced).ok_or_else(mismatch)?;
        if !dims_match(declared, rest) {
            return Err(mismatch());
        }
        match &binding.reshape {
            None => Ok(produced.to_vec()),
            Some(reshape) => {
                let dims = reshape_dims(rest, reshape, &binding.dims)
                    .map_err(|reason| format!("output '{}': {reason}", binding.name))?;
                Ok(with_batch(binding, batch.unwrap_or(0), &dims))
            }
        }
    }
}

fn bind_input(
    input: &ModelInput,
    model: &ModelSignature,
    batching: bool,
) -> Result<Binding, String> {
    if input.is_shape_tensor {
        return Err(format!(
            "input '{}': is_shape_tensor is only supported by TensorRT",
            input.name
        ));
    }
    let flat = batching && input.allow_ragged_batch;
    if flat && input.reshape.is_some() {
        return Err(format!(
            "input '{}': reshape cannot be combined with allow_ragged_batch",
            input.name
        ));
    }
    bind(
        "input",
        &input.name,
        input.data_type,
        if flat { &[-1] } else { &input.dims },
        input.reshape.as_ref().map(|r| r.shape.clone()),
        input.optional,
        &model.inputs,
        batching && !flat,
    )
}

/// Binds a config output; a `scattered` one (a batch output target) is flat
/// in the model.
fn bind_output(
    output: &ModelOutput,
    model: &ModelSignature,
    batching: bool,
    scattered: bool,
) -> Result<Binding, String> {
    if output.is_shape_tensor {
        return Err(format!(
            "output '{}': is_shape_tensor is only supported by TensorRT",
            output.name
        ));
    }
    let flat = batching && scattered;
    if flat && output.reshape.is_some() {
        return Err(format!(
            "output '{}': reshape cannot be combined with batch_output",
            output.name
        ));
    }
    bind(
        "output",
        &output.name,
        output.data_type,
        if flat { &[-1] } else { &output.dims },
        output.reshape.as_ref().map(|r| r.shape.clone()),
        false,
        &model.outputs,
        batching && !flat,
    )
}

#[allow(clippy::too_many_arguments)]
fn bind(
    kind: &str,
    name: &str,
    data_type: i32,
    dims: &[i64],
    reshape: Option<Vec<i64>>,
    optional: bool,
    model: &[ModelTensor],
    batched: bool,
) -> Result<Binding, String> {
    let dtype = ferrite_proto::inference::DataType::try_from(data_type)
        .ok()
        .and_then(DataType::from_config)
        .ok_or_else(|| format!("{kind} '{name}' has no valid data_type ({data_type})"))?;
    let Some((model_index, declared)) = model.iter().enumerate().find(|(_, m)| m.name == name)
    else {
        let known: Vec<&str> = model.iter().map(|m| m.name.as_str()).collect();
        return Err(format!(
            "the config declares {kind} '{name}' but the model has no such {kind}; its {kind}s \
             are {known:?}"
        ));
    };
    match &declared.dtype {
        None => {}
        Some(Ok(model_dtype)) if *model_dtype == dtype => {}
        Some(Ok(model_dtype)) => {
            return Err(format!(
                "{kind} '{name}' is {dtype} in the config but {model_dtype} in the model"
            ))
        }
        Some(Err(engine_type)) => {
            return Err(format!(
                "{kind} '{name}' has element type {engine_type} in the model, which the \
                 protocol cannot carry"
            ))
        }
    }
    if let Some(bad) = dims
        .iter()
        .chain(reshape.iter().flatten())
        .find(|&&d| d < -1)
    {
        return Err(format!("{kind} '{name}' has an invalid dimension {bad}"));
    }
    let model_view = reshape.as_deref().unwrap_or(dims);
    if let Some(declared_dims) = &declared.dims {
        check_declared_dims(kind, name, batched, model_view, declared_dims)?;
    }
    Ok(Binding {
        name: name.to_string(),
        dtype,
        model_index,
        dims: dims.to_vec(),
        batched,
        reshape,
        optional,
    })
}

/// Checks the config's view of a tensor (batch excluded) against the dims
/// the model declares (batch included for batching models).
fn check_declared_dims(
    kind: &str,
    name: &str,
    batching: bool,
    config: &[i64],
    declared: &[Option<i64>],
) -> Result<(), String> {
    let shown: Vec<i64> = declared.iter().map(|d| d.unwrap_or(-1)).collect();
    let rest = if batching {
        match declared.split_first() {
            Some((None, rest)) => rest,
            Some((Some(fixed), _)) => {
                return Err(format!(
                    "{kind} '{name}': max_batch_size > 0 needs a dynamic first dimension, but \
                     the model declares {shown:?} (first dimension fixed at {fixed}); set \
                     max_batch_size: 0 or export the model with a dynamic batch dimension"
                ))
            }
            None => {
                return Err(format!(
                    "{kind} '{name}': max_batch_size > 0 needs a batch dimension, but the \
                     model declares a scalar"
                ))
            }
        }
    } else {
        declared
    };
    let compatible = rest.len() == config.len()
        && rest
            .iter()
            .zip(config)
            .all(|(m, c)| m.is_none_or(|m| m == *c));
    if compatible {
        Ok(())
    } else {
        let batch_note = if batching {
            " after the batch dimension"
        } else {
            ""
        };
        Err(format!(
            "{kind} '{name}': the config gives dims {config:?}{batch_note}, the model declares \
             {shown:?}"
        ))
    }
}

fn check_unique(kind: &str, bindings: &[Binding]) -> Result<(), String> {
    for (i, b) in bindings.iter().enumerate() {
        if bindings[..i].iter().any(|other| other.name == b.name) {
            return Err(format!("{kind} '{}' is declared twice", b.name));
        }
    }
    Ok(())
}

fn names(bindings: &[Binding]) -> String {
    let names: Vec<&str> = bindings.iter().map(|b| b.name.as_str()).collect();
    format!("{names:?}")
}

/// Whether actual dims fit declared ones (`-1` matches any size).
fn dims_match(declared: &[i64], actual: &[i64]) -> bool {
    declared.len() == actual.len()
        && declared
            .iter()
            .zip(actual)
            .all(|(&d, &a)| d == -1 || d == a)
}

/// Maps concrete dims (matching the `from` template) onto the `to`
/// template: a single dynamic dim of `to` takes whatever the element count
/// leaves; several take the dynamic values of `from` in order.
fn reshape_dims(actual: &[i64], from: &[i64], to: &[i64]) -> Result<Vec<i64>, String> {
    let count: i64 = actual.iter().product();
    let dynamic: Vec<i64> = from
        .iter()
        .zip(actual)
        .filter(|(&f, _)| f == -1)
        .map(|(_, &a)| a)
        .collect();
    let holes = to.iter().filter(|&&d| d == -1).count();
    let mut result = to.to_vec();
    if holes == 1 {
        let fixed: i64 = to.iter().filter(|&&d| d != -1).product();
        let fill = match (fixed, count) {
            (0, 0) => 0,
            (f, c) if f != 0 && c % f == 0 => c / f,
            _ => return Err(format!("{count} elements cannot fill {to:?}")),
        };
        for d in result.iter_mut().filter(|d| **d == -1) {
            *d = fill;
        }
    } else if holes > 1 && holes == dynamic.len() {
        for (d, value) in result.iter_mut().filter(|d| **d == -1).zip(dynamic) {
            *d = value;
        }
    } else if holes > 1 {
        return Err(format!(
            "the dynamic dimensions of {from:?} cannot be mapped onto {to:?}"
        ));
    }
    if result.iter().product::<i64>() != count {
        return Err(format!(
            "{actual:?} and {result:?} hold different element counts"
        ));
    }
    Ok(result)
}

#[cfg(test)]
mod tests;
