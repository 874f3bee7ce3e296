//! The engine's graph import, schedules and layout, executed on the CPU
//! with the kernels' references (and the row-major GEMM reference) in place
//! of the device, and compared with tract on the example models. This is
//! everything the engine does except the device calls themselves, which the
//! device checks cover.

use std::path::PathBuf;

use ferrite_kernels::params::ElementType;
use ferrite_kernels::reference::{self, Float};
use ferrite_proto::inference::{
    DataType as ConfigType, ModelConfig, ModelInput, ModelOutput, ModelParameter,
};
use half::f16;

use super::graph::{import, Graph, ImportError, ValueId};
use super::layout::{Layout, Precision};
use super::schedule::{schedule, Launch, Schedule};
use super::{gemm, precision};
use crate::tract::TractBackend;
use crate::{Backend, DataType, EngineKind, InstanceSpec, NamedTensor, Tensor};

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/models")
        .join(name)
        .join("1/model.onnx")
}

/// Copies bytes into a vector of `T`.
fn pod_vec<T: bytemuck::Pod>(bytes: &[u8]) -> Vec<T> {
    let mut out = vec![T::zeroed(); bytes.len() / std::mem::size_of::<T>()];
    bytemuck::cast_slice_mut(&mut out).copy_from_slice(bytes);
    out
}

/// The device arena, in host memory.
struct HostArena<'a> {
    memory: Vec<u8>,
    layout: &'a Layout,
}

impl HostArena<'_> {
    fn read<T: bytemuck::Pod>(&self, id: ValueId, n: usize) -> Vec<T> {
        let start = self.layout.offset(id);
        let size = std::mem::size_of::<T>();
        pod_vec(&self.memory[start..start + n * size])
    }

    fn write<T: bytemuck::Pod>(&mut self, id: ValueId, values: &[T]) {
        let start = self.layout.offset(id);
        let bytes: &[u8] = bytemuck::cast_slice(values);
        self.memory[start..start + bytes.len()].copy_from_slice(bytes);
    }

    fn element(&self, id: ValueId) -> ElementType {
        self.layout.storage[id].element.unwrap()
    }

    fn float<T: Float + bytemuck::Pod>(&mut self, launch: &Launch, shapes: &[Vec<usize>]) {
        let n = |id: ValueId| shapes[id].iter().product::<usize>();
        match launch {
            Launch::Unary { x, y, d, op } => {
                let out = reference::unary(&self.read::<T>(*x, n(*x)), d, *op);
                self.write(*y, &out);
            }
            Launch::Binary { a, b, y, d, op } => {
                let out = reference::binary_float(
                    &self.read::<T>(*a, n(*a)),
                    &self.read::<T>(*b, n(*b)),
                    d,
                    *op,
                );
                self.write(*y, &out);
            }
            Launch::Gemm(call) => {
                let widen = |v: Vec<T>| v.into_iter().map(|x| x.to_f32()).collect::<Vec<f32>>();
                let a = widen(self.read::<T>(call.a, n(call.a)));
                let b = widen(self.read::<T>(call.b, n(call.b)));
                let mut y = widen(self.read::<T>(call.y, n(call.y)));
                gemm::reference(call, &a, &b, &mut y);
                let out: Vec<T> = y.into_iter().map(T::from_f32).collect();
                self.write(call.y, &out);
            }
            Launch::Softmax {
                x,
                y,
                outer,
                axis,
                inner,
            } => {
                let out = reference::softmax(
                    &self.read::<T>(*x, n(*x)),
                    *outer as usize,
                    *axis as usize,
                    *inner as usize,
                );
                self.write(*y, &out);
            }
            Launch::Conv {
                x,
                w,
                bias,
                y,
                params,
            } => {
                let bias = bias.map(|b| self.read::<T>(b, n(b)));
                let out = reference::conv2d(
                    &self.read::<T>(*x, n(*x)),
                    &self.read::<T>(*w, n(*w)),
                    bias.as_deref(),
                    params,
                );
                self.write(*y, &out);
            }
            Launch::Pool { x, y, params } => {
                let out = reference::pool2d(&self.read::<T>(*x, n(*x)), params);
                self.write(*y, &out);
            }
            Launch::GlobalAveragePool { x, y, planes, size } => {
                let out = reference::global_average_pool(
                    &self.read::<T>(*x, n(*x)),
                    *planes as usize,
                    *size as usize,
                );
                self.write(*y, &out);
            }
        }
    }

    fn integer<I: reference::Integer + bytemuck::Pod>(
        &mut self,
        launch: &Launch,
        shapes: &[Vec<usize>],
    ) {
        let n = |id: ValueId| shapes[id].iter().product::<usize>();
        let Launch::Binary { a, b, y, d, op } = launch else {
            panic!("only binary launches take integers");
        };
        let out = reference::binary_integer(
            &self.read::<I>(*a, n(*a)),
            &self.read::<I>(*b, n(*b)),
            d,
            *op,
        );
        self.write(*y, &out);
    }
}

fn first_operand(launch: &Launch) -> ValueId {
    match launch {
        Launch::Unary { x, .. }
        | Launch::Softmax { x, .. }
        | Launch::Conv { x, .. }
        | Launch::Pool { x, .. }
        | Launch::GlobalAveragePool { x, .. } => *x,
        Launch::Binary { a, .. } => *a,
        Launch::Gemm(call) => call.a,
    }
}

/// Runs a schedule on the host: FP32 input bytes in, FP32 (or the output's
/// own type) bytes out, converting where the layout narrows.
fn run_on_host(
    graph: &Graph,
    layout: &Layout,
    schedule: &Schedule,
    inputs: &[Vec<u8>],
    outputs: &[ValueId],
) -> Vec<Vec<u8>> {
    let mut arena = HostArena {
        memory: vec![0; layout.size],
        layout,
    };
    let narrow = |bytes: &[u8]| -> Vec<f16> { reference::f32_to_f16(&pod_vec::<f32>(bytes)) };
    for (id, value) in graph.values.iter().enumerate() {
        if let Some(c) = &value.constant {
            if layout.storage[id].narrowed {
                arena.write(id, &narrow(&c.bytes));
            } else {
                arena.write(id, &c.bytes);
            }
        }
    }
    for (&id, bytes) in graph.inputs.iter().zip(inputs) {
        if layout.storage[id].narrowed {
            arena.write(id, &narrow(bytes));
        } else {
            arena.write(id, bytes);
        }
    }
    for launch in &schedule.launches {
        match arena.element(first_operand(launch)) {
            ElementType::F32 => arena.float::<f32>(launch, &schedule.shapes),
            ElementType::F16 => arena.float::<f16>(launch, &schedule.shapes),
            ElementType::I32 => arena.integer::<i32>(launch, &schedule.shapes),
            ElementType::I64 => arena.integer::<i64>(launch, &schedule.shapes),
        }
    }
    outputs
        .iter()
        .map(|&id| {
            let n: usize = schedule.shapes[id].iter().product();
            let storage = layout.storage[id];
            if storage.narrowed {
                bytemuck::cast_slice(&reference::f16_to_f32(&arena.read::<f16>(id, n))).to_vec()
            } else {
                arena.read::<u8>(id, n * storage.size)
            }
        })
        .collect()
}

fn tensor(name: &str, dtype: ConfigType, dims: &[i64]) -> (String, i32, Vec<i64>) {
    (name.to_string(), dtype as i32, dims.to_vec())
}

fn config(
    max_batch_size: i32,
    inputs: &[(String, i32, Vec<i64>)],
    outputs: &[(String, i32, Vec<i64>)],
) -> ModelConfig {
    ModelConfig {
        name: "m".into(),
        platform: "onnxruntime_onnx".into(),
        max_batch_size,
        input: inputs
            .iter()
            .map(|(name, data_type, dims)| ModelInput {
                name: name.clone(),
                data_type: *data_type,
                dims: dims.clone(),
                ..Default::default()
            })
            .collect(),
        output: outputs
            .iter()
            .map(|(name, data_type, dims)| ModelOutput {
                name: name.clone(),
                data_type: *data_type,
                dims: dims.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn sample_bytes(dtype: DataType, n: usize, seed: u64) -> Vec<u8> {
    let values = ferrite_kernels::checks::sample_values(seed, n, -2.0, 2.0);
    match dtype {
        DataType::Int32 => values
            .iter()
            .flat_map(|v| ((v * 1000.0) as i32).to_le_bytes())
            .collect(),
        _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// Runs a model on the host schedule and with tract, at `batch`, and
/// returns the largest relative difference over its outputs.
fn compare_with_tract(model: &str, cfg: &ModelConfig, batch: usize, precision: Precision) -> f64 {
    let path = example(model);
    let graph = import(&path).unwrap();
    let input_shapes: Vec<Vec<usize>> = graph
        .inputs
        .iter()
        .map(|&id| {
            let decl = cfg
                .input
                .iter()
                .find(|i| i.name == graph.values[id].name)
                .unwrap();
            std::iter::once(batch)
                .chain(decl.dims.iter().map(|&d| d as usize))
                .collect()
        })
        .collect();
    let max: Vec<Vec<usize>> = input_shapes
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s[0] = cfg.max_batch_size as usize;
            s
        })
        .collect();
    let layout = Layout::new(&graph, &schedule(&graph, &max).unwrap(), precision).unwrap();
    let plan = schedule(&graph, &input_shapes).unwrap();
    layout.fits(&graph, &plan).unwrap();
    let mut named = Vec::new();
    let mut inputs = Vec::new();
    for (i, (&id, shape)) in graph.inputs.iter().zip(&input_shapes).enumerate() {
        let dtype = graph.values[id].dtype;
        let bytes = sample_bytes(dtype, shape.iter().product(), 100 + i as u64);
        let shape_i64: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        named.push(NamedTensor::new(
            graph.values[id].name.clone(),
            Tensor::new(dtype, shape_i64, bytes.clone().into()).unwrap(),
        ));
        inputs.push(bytes);
    }
    let ours = run_on_host(&graph, &layout, &plan, &inputs, &graph.outputs);
    let mut tract = TractBackend::load(&InstanceSpec {
        model_name: model,
        model_file: &path,
        config: cfg,
        engine: EngineKind::Tract,
        instance_index: 0,
    })
    .unwrap();
    let expected = tract.execute(&named, &[]).unwrap();
    let mut worst = 0.0f64;
    for (&id, bytes) in graph.outputs.iter().zip(&ours) {
        let name = &graph.values[id].name;
        let theirs = expected.iter().find(|t| &t.name == name).unwrap();
        let widen = |b: &[u8], dtype: DataType| -> Vec<f64> {
            match dtype {
                DataType::Int32 => pod_vec::<i32>(b).into_iter().map(f64::from).collect(),
                _ => pod_vec::<f32>(b).into_iter().map(f64::from).collect(),
            }
        };
        let dtype = theirs.tensor.dtype();
        let diff = super::max_relative_difference(
            &widen(bytes, dtype),
            &widen(theirs.tensor.data(), dtype),
        );
        worst = worst.max(diff);
    }
    worst
}

#[test]
fn mlp_matches_tract() {
    let cfg = config(
        8,
        &[tensor("input", ConfigType::TypeFp32, &[64])],
        &[tensor("probabilities", ConfigType::TypeFp32, &[10])],
    );
    for batch in [1, 3, 8] {
        let diff = compare_with_tract("mlp", &cfg, batch, Precision::Fp32);
        assert!(diff < 1e-5, "batch {batch}: {diff}");
    }
    let diff = compare_with_tract("mlp", &cfg, 5, Precision::Fp16);
    assert!(diff < 1e-2, "fp16: {diff}");
    assert!(diff > 0.0, "fp16 storage rounds");
}

#[test]
fn cnn_matches_tract() {
    let cfg = config(
        4,
        &[tensor("image", ConfigType::TypeFp32, &[3, 32, 32])],
        &[tensor("logits", ConfigType::TypeFp32, &[10])],
    );
    for batch in [1, 4] {
        let diff = compare_with_tract("cnn", &cfg, batch, Precision::Fp32);
        assert!(diff < 1e-5, "batch {batch}: {diff}");
    }
    let diff = compare_with_tract("cnn", &cfg, 2, Precision::Fp16);
    assert!(diff < 1e-2, "fp16: {diff}");
}

#[test]
fn simple_and_identity_match_tract() {
    let cfg = config(
        8,
        &[
            tensor("INPUT0", ConfigType::TypeInt32, &[16]),
            tensor("INPUT1", ConfigType::TypeInt32, &[16]),
        ],
        &[
            tensor("OUTPUT0", ConfigType::TypeInt32, &[16]),
            tensor("OUTPUT1", ConfigType::TypeInt32, &[16]),
        ],
    );
    assert_eq!(compare_with_tract("simple", &cfg, 3, Precision::Fp32), 0.0);
    assert_eq!(compare_with_tract("simple", &cfg, 3, Precision::Fp16), 0.0);
    let cfg = config(
        64,
        &[tensor("INPUT0", ConfigType::TypeFp32, &[16])],
        &[tensor("OUTPUT0", ConfigType::TypeFp32, &[16])],
    );
    assert_eq!(
        compare_with_tract("identity_fp32", &cfg, 7, Precision::Fp32),
        0.0
    );
}

#[test]
fn cnn_schedule_lowers_each_node() {
    let graph = import(&example("cnn")).unwrap();
    let plan = schedule(&graph, &[vec![2, 3, 32, 32]]).unwrap();
    let kinds: Vec<&str> = plan
        .launches
        .iter()
        .map(|l| match l {
            Launch::Unary { .. } => "unary",
            Launch::Binary { .. } => "binary",
            Launch::Gemm(_) => "gemm",
            Launch::Softmax { .. } => "softmax",
            Launch::Conv { .. } => "conv",
            Launch::Pool { .. } => "pool",
            Launch::GlobalAveragePool { .. } => "gap",
        })
        .collect();
    // Conv, Relu, MaxPool, Conv, Relu, GAP, (Flatten: none), bias copy + Gemm.
    assert_eq!(
        kinds,
        ["conv", "unary", "pool", "conv", "unary", "gap", "unary", "gemm"]
    );
    let logits = *graph.outputs.first().unwrap();
    assert_eq!(plan.shapes[logits], vec![2, 10]);
}

#[test]
fn unsupported_models_are_refused_at_import() {
    let err = import(&example("identity_bytes")).unwrap_err();
    assert!(matches!(err, ImportError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("input 'INPUT0'"), "{err}");
}

#[test]
fn precision_parameter_is_read_or_refused() {
    let mut cfg = ModelConfig::default();
    assert_eq!(precision(&cfg).unwrap(), Precision::Fp32);
    let set = |cfg: &mut ModelConfig, v: &str| {
        cfg.parameters.insert(
            "precision".into(),
            ModelParameter {
                string_value: v.into(),
            },
        );
    };
    set(&mut cfg, "FP16");
    assert_eq!(precision(&cfg).unwrap(), Precision::Fp16);
    set(&mut cfg, "int8");
    let err = precision(&cfg).unwrap_err();
    assert!(err.contains("parameter 'precision'"), "{err}");
}

#[test]
fn loading_without_a_gpu_fails_with_the_reason() {
    let path = example("mlp");
    let cfg = config(
        8,
        &[tensor("input", ConfigType::TypeFp32, &[64])],
        &[tensor("probabilities", ConfigType::TypeFp32, &[10])],
    );
    let spec = InstanceSpec {
        model_name: "mlp",
        model_file: &path,
        config: &cfg,
        engine: EngineKind::Cuda { device: 4096 },
        instance_index: 0,
    };
    let Err(err) = crate::create_instance(&spec) else {
        panic!("device 4096 cannot exist");
    };
    assert!(err.to_string().contains("no usable GPU 4096"), "{err}");
}
