//! The `tract` engine: tract, the pure-Rust ONNX engine compiled into
//! ferrite. It serves ONNX models when no ONNX Runtime library is available,
//! or when a config asks for `backend: "tract"`.
//!
//! tract optimizes a model best when every input shape is concrete: with a
//! symbolic batch dimension it rejects some models outright ("shape input is
//! variable") and runs convolution networks 2-4x slower. An instance
//! therefore builds one optimized plan per tuple of concrete input shapes, on
//! the first request with those shapes, and keeps the most recently used
//! [`PLAN_CACHE_CAPACITY`] of them. A model whose shapes are all fixed gets
//! its only plan at load time.
//!
//! At load the model is parsed and analysed with the config's shapes (see
//! `check`), so that a model tract cannot run fails to load, with tract's
//! reason and a pointer to ONNX Runtime, rather than at its first request.
//!
//! Limits: tract has no bfloat16 type, its string tensors hold UTF-8 only,
//! and each instance runs on one thread (ONNX Runtime's thread and memory
//! parameters have no effect here and are logged as such).

mod check;
mod plans;
mod tensors;

use std::time::Instant;

use tract_onnx::prelude::{
    tvec, DatumType, Framework, InferenceFact, InferenceModel, InferenceModelExt, IntoRunnable,
    TValue, TVec, TypedSimpleState,
};
use tract_onnx::tract_hir::infer::Factoid;

use crate::engine::io::{IoMap, ModelSignature, ModelTensor};
use crate::engine::parameters::SessionParameters;
use crate::{Backend, BackendError, InstanceSpec, NamedTensor, Tensor};

pub use plans::PlanStats;

const ENGINE: &str = "tract";

/// How many optimized plans (one per tuple of input shapes) an instance
/// keeps.
pub const PLAN_CACHE_CAPACITY: usize = 8;

/// Appended to load failures.
const ORT_HINT: &str = "tract cannot run this model; install ONNX Runtime to serve it with the \
                        onnxruntime engine (`pip install onnxruntime==1.22.1`, or set \
                        ORT_DYLIB_PATH to libonnxruntime.so.<version>)";

/// Input shapes in the model's input order.
type ShapeKey = Vec<Vec<usize>>;

/// One model instance served by tract.
pub struct TractBackend {
    /// The parsed model, before any shape is fixed.
    model: InferenceModel,
    io: IoMap,
    /// tract types of the model's inputs, in the model's order.
    input_types: Vec<DatumType>,
    plans: plans::PlanCache<ShapeKey, TypedSimpleState>,
}

impl std::fmt::Debug for TractBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TractBackend")
            .field("io", &self.io)
            .field("plans", &self.plans.stats())
            .finish_non_exhaustive()
    }
}

impl TractBackend {
    /// Parses the spec's model file, checks the config against it, and
    /// analyses it with the config's shapes.
    pub fn load(spec: &InstanceSpec) -> Result<Self, BackendError> {
        let path = spec.model_file.display().to_string();
        let load_error = |reason: String| BackendError::Load {
            engine: ENGINE,
            path: path.clone(),
            reason,
        };
        let params = SessionParameters::from_config(spec.config).map_err(load_error)?;
        let without_effect = params.onnxruntime_only();
        if !without_effect.is_empty() {
            tracing::warn!(
                model = spec.model_name,
                "{without_effect:?} only apply to ONNX Runtime and have no effect with tract, \
                 which runs each instance on one thread"
            );
        }
        if !params.unknown.is_empty() {
            tracing::warn!(
                model = spec.model_name,
                "config parameters {:?} are not used by the tract engine",
                params.unknown
            );
        }
        let model = tract_onnx::onnx()
            .model_for_path(spec.model_file)
            .map_err(|e| load_error(format!("{e:#}; {ORT_HINT}")))?;
        let signature = signature(&model).map_err(|e| load_error(format!("{e:#}")))?;
        let io = IoMap::new(spec.config, &signature).map_err(load_error)?;
        let mut input_types = vec![DatumType::F32; signature.inputs.len()];
        for binding in io.inputs() {
            input_types[binding.model_index] =
                tensors::datum_type(binding.dtype).ok_or_else(|| {
                    load_error(format!(
                        "input '{}' is {}, which tract does not support; {ORT_HINT}",
                        binding.name, binding.dtype
                    ))
                })?;
        }
        if let Some(output) = io
            .outputs()
            .iter()
            .find(|b| tensors::datum_type(b.dtype).is_none())
        {
            return Err(load_error(format!(
                "output '{}' is {}, which tract does not support; {ORT_HINT}",
                output.name, output.dtype
            )));
        }
        check::check(&model, &io, &input_types)
            .map_err(|reason| load_error(format!("{reason}; {ORT_HINT}")))?;
        let mut backend = Self {
            model,
            io,
            input_types,
            plans: plans::PlanCache::new(PLAN_CACHE_CAPACITY),
        };
        if let Some(shapes) = backend.fixed_shapes() {
            let Self {
                model,
                input_types,
                plans,
                ..
            } = &mut backend;
            plans
                .get_or_build(&shapes, || build_plan(model, &shapes, input_types))
                .map_err(|e| load_error(format!("{e:#}; {ORT_HINT}")))?;
        }
        Ok(backend)
    }

    /// How the instance's plan cache has been used.
    pub fn plan_stats(&self) -> PlanStats {
        self.plans.stats()
    }

    /// The input shapes, when the config fixes all of them.
    fn fixed_shapes(&self) -> Option<ShapeKey> {
        let mut shapes = vec![Vec::new(); self.input_types.len()];
        for binding in self.io.inputs() {
            shapes[binding.model_index] = self
                .io
                .model_dims(binding)
                .iter()
                .map(|&d| usize::try_from(d).ok())
                .collect::<Option<Vec<usize>>>()?;
        }
        Some(shapes)
    }
}

/// What the parsed model declares about its inputs and outputs.
fn signature(model: &InferenceModel) -> tract_onnx::prelude::TractResult<ModelSignature> {
    let describe = |name: String, fact: &InferenceFact| ModelTensor {
        name,
        dtype: fact
            .datum_type
            .concretize()
            .map(|dt| tensors::data_type(dt).ok_or_else(|| format!("{dt:?}"))),
        dims: (!fact.shape.is_open()).then(|| {
            fact.shape
                .dims()
                .map(|d| d.concretize().and_then(|d| d.as_i64()).filter(|&d| d >= 0))
                .collect()
        }),
    };
    let mut signature = ModelSignature::default();
    for outlet in model.input_outlets()? {
        let name = model.node(outlet.node).name.clone();
        signature
            .inputs
            .push(describe(name, model.outlet_fact(*outlet)?));
    }
    for outlet in model.output_outlets()? {
        let name = model
            .outlet_label(*outlet)
            .map_or_else(|| model.node(outlet.node).name.clone(), str::to_string);
        signature
            .outputs
            .push(describe(name, model.outlet_fact(*outlet)?));
    }
    Ok(signature)
}

/// Fixes the input shapes of a copy of the model, optimizes it and makes a
/// runnable state for it.
fn build_plan(
    model: &InferenceModel,
    shapes: &[Vec<usize>],
    input_types: &[DatumType],
) -> tract_onnx::prelude::TractResult<TypedSimpleState> {
    let started = Instant::now();
    let mut model = model.clone();
    for (index, (shape, &dt)) in shapes.iter().zip(input_types).enumerate() {
        model.set_input_fact(index, InferenceFact::dt_shape(dt, shape.as_slice()))?;
    }
    let plan = model.into_optimized()?.into_runnable()?;
    let state = plan.spawn()?;
    tracing::debug!(
        ?shapes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "built a tract plan"
    );
    Ok(state)
}

impl Backend for TractBackend {
    fn engine(&self) -> &'static str {
        ENGINE
    }

    fn execute(
        &mut self,
        inputs: &[NamedTensor],
        outputs: &[String],
    ) -> Result<Vec<NamedTensor>, BackendError> {
        let Self {
            model,
            io,
            input_types,
            plans,
        } = self;
        let prepared = io.prepare_inputs(inputs)?;
        let selected = io.select_outputs(outputs)?;
        if prepared.len() != input_types.len() {
            let missing: Vec<&str> = io
                .inputs()
                .iter()
                .filter(|b| !prepared.iter().any(|p| p.binding.name == b.name))
                .map(|b| b.name.as_str())
                .collect();
            return Err(BackendError::InvalidInput(format!(
                "tract needs every input of the model; missing {missing:?}"
            )));
        }
        let mut shapes: ShapeKey = Vec::with_capacity(prepared.len());
        let mut values: TVec<TValue> = tvec![];
        for input in &prepared {
            let shape = input
                .shape
                .iter()
                .map(|&d| usize::try_from(d))
                .collect::<Result<Vec<usize>, _>>()
                .map_err(|_| {
                    BackendError::InvalidInput(format!(
                        "input '{}' has a negative dimension",
                        input.binding.name
                    ))
                })?;
            let value = tensors::to_tract(input.tensor, &shape).map_err(|reason| {
                BackendError::InvalidInput(format!("input '{}': {reason}", input.binding.name))
            })?;
            values.push(value);
            shapes.push(shape);
        }
        let state = plans
            .get_or_build(&shapes, || build_plan(model, &shapes, input_types))
            .map_err(|e| {
                BackendError::execution(
                    ENGINE,
                    format!("could not prepare the model for input shapes {shapes:?}: {e:#}"),
                )
            })?;
        let results = state
            .run(values)
            .map_err(|e| BackendError::execution(ENGINE, format!("{e:#}")))?;
        let mut produced = Vec::with_capacity(selected.len());
        for binding in selected {
            let value = results.get(binding.model_index).cloned().ok_or_else(|| {
                BackendError::execution(
                    ENGINE,
                    format!("the plan returned no output '{}'", binding.name),
                )
            })?;
            let (dtype, shape, data) = tensors::from_tract(value).map_err(|reason| {
                BackendError::execution(ENGINE, format!("output '{}' {reason}", binding.name))
            })?;
            if dtype != binding.dtype {
                return Err(BackendError::execution(
                    ENGINE,
                    format!(
                        "output '{}' came back as {dtype}, the config declares {}",
                        binding.name, binding.dtype
                    ),
                ));
            }
            let shape = io
                .output_shape(binding, &shape)
                .map_err(|e| BackendError::execution(ENGINE, e))?;
            let tensor = Tensor::new(dtype, shape, data).map_err(|e| {
                BackendError::execution(ENGINE, format!("output '{}': {e}", binding.name))
            })?;
            produced.push(NamedTensor::new(binding.name.clone(), tensor));
        }
        Ok(produced)
    }
}
