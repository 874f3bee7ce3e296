//! Reading an ONNX file into the graph the cuda engine executes: values
//! (inputs, constants, intermediates), and nodes in execution order, each an
//! operator the engine supports with its attributes checked.
//!
//! Anything outside the supported subset (an operator, an attribute, a data
//! type, external weights) is refused here, naming the node, so that such a
//! model fails at load rather than at its first request.

use std::path::Path;

use ferrite_kernels::params::{BinaryOp, PoolMode, UnaryOp};
use tract_onnx::pb::{self, attribute_proto::AttributeType, tensor_proto::DataType as PbType};
use tract_onnx::prelude::Framework;

use crate::engine::io::{ModelSignature, ModelTensor};
use crate::DataType;

/// Index of a value in [`Graph::values`].
pub(crate) type ValueId = usize;

/// The operators the engine runs.
pub(crate) const SUPPORTED_OPS: [&str; 18] = [
    "Add",
    "AveragePool",
    "Constant",
    "Conv",
    "Div",
    "Flatten",
    "Gemm",
    "GlobalAveragePool",
    "Identity",
    "MatMul",
    "MaxPool",
    "Mul",
    "Relu",
    "Reshape",
    "Sigmoid",
    "Softmax",
    "Sub",
    "Tanh",
];

/// A constant tensor (an initializer or a `Constant` node's value).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Constant {
    pub shape: Vec<usize>,
    /// Little-endian element bytes.
    pub bytes: Vec<u8>,
}

/// One value of the graph.
#[derive(Debug, Clone)]
pub(crate) struct Value {
    pub name: String,
    pub dtype: DataType,
    pub constant: Option<Constant>,
}

/// Convolution and pooling windows over the two spatial dimensions.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Window {
    /// The window size; for a convolution `None` means "from the weights".
    pub kernel: Option<[usize; 2]>,
    pub strides: [usize; 2],
    pub dilations: [usize; 2],
    /// ONNX order: begin of each axis, then end of each axis.
    pub pads: [usize; 4],
    pub auto_pad: AutoPad,
}

/// ONNX `auto_pad`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AutoPad {
    /// Explicit `pads`.
    NotSet,
    Valid,
    SameUpper,
    SameLower,
}

/// An operator with its attributes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    /// `Identity`: the output is the input's buffer.
    Alias,
    Flatten {
        axis: i64,
    },
    Reshape {
        shape: Vec<i64>,
        allow_zero: bool,
    },
    Unary(UnaryOp),
    Binary(BinaryOp),
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    MatMul,
    Softmax {
        axis: i64,
        /// Opset < 13: softmax over the flattened dimensions from `axis`.
        flatten: bool,
    },
    Conv {
        window: Window,
        groups: usize,
    },
    Pool {
        mode: PoolMode,
        window: Window,
        count_include_pad: bool,
    },
    GlobalAveragePool,
}

/// One node: an operator applied to values, giving one value.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    /// The node's name (or its op type and output, when unnamed).
    pub name: String,
    pub op: Op,
    pub inputs: Vec<ValueId>,
    pub output: ValueId,
}

/// A model as the engine runs it.
#[derive(Debug, Clone)]
pub(crate) struct Graph {
    pub values: Vec<Value>,
    pub nodes: Vec<Node>,
    /// The model's inputs, in the model's order.
    pub inputs: Vec<ValueId>,
    /// The model's outputs, in the model's order.
    pub outputs: Vec<ValueId>,
    /// What the file declares about its inputs and outputs.
    pub signature: ModelSignature,
}

/// Why a model cannot be served by the engine: `Unsupported` when it uses
/// something outside the engine's subset, `Invalid` when the file is bad.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ImportError {
    Unsupported(String),
    Invalid(String),
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::Unsupported(m) | ImportError::Invalid(m) => f.write_str(m),
        }
    }
}

fn unsupported(message: String) -> ImportError {
    ImportError::Unsupported(message)
}

fn invalid(message: String) -> ImportError {
    ImportError::Invalid(message)
}

/// The protocol type of an ONNX element type.
fn data_type(code: i32) -> Option<DataType> {
    Some(match PbType::try_from(code).ok()? {
        PbType::Float => DataType::Fp32,
        PbType::Uint8 => DataType::Uint8,
        PbType::Int8 => DataType::Int8,
        PbType::Uint16 => DataType::Uint16,
        PbType::Int16 => DataType::Int16,
        PbType::Int32 => DataType::Int32,
        PbType::Int64 => DataType::Int64,
        PbType::String => DataType::Bytes,
        PbType::Bool => DataType::Bool,
        PbType::Float16 => DataType::Fp16,
        PbType::Double => DataType::Fp64,
        PbType::Uint32 => DataType::Uint32,
        PbType::Uint64 => DataType::Uint64,
        PbType::Bfloat16 => DataType::Bf16,
        _ => return None,
    })
}

/// Reads and checks the model file.
pub(crate) fn import(path: &Path) -> Result<Graph, ImportError> {
    let model = tract_onnx::onnx()
        .proto_model_for_path(path)
        .map_err(|e| invalid(format!("cannot read the ONNX file: {e:#}")))?;
    import_model(&model)
}

pub(crate) fn import_model(model: &pb::ModelProto) -> Result<Graph, ImportError> {
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map_or(0, |o| o.version);
    if let Some(other) = model
        .opset_import
        .iter()
        .find(|o| !(o.domain.is_empty() || o.domain == "ai.onnx"))
    {
        return Err(unsupported(format!(
            "the model imports operator set '{}', which the cuda engine does not run",
            other.domain
        )));
    }
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| invalid("the model has no graph".into()))?;
    let mut builder = Builder::default();
    for init in &graph.initializer {
        let (dtype, constant) = constant(init)?;
        builder.add(&init.name, dtype, Some(constant))?;
    }
    let mut signature = ModelSignature::default();
    let mut inputs = Vec::new();
    for input in &graph.input {
        if builder.find(&input.name).is_some() {
            continue;
        }
        let described = describe(input);
        let dtype = match &described.dtype {
            Some(Ok(DataType::Bytes)) => {
                return Err(unsupported(format!(
                    "input '{}' is BYTES (strings), which the cuda engine cannot hold on the \
                     device",
                    input.name
                )))
            }
            Some(Ok(dtype)) => *dtype,
            _ => {
                return Err(unsupported(format!(
                    "input '{}' has no element type the cuda engine supports",
                    input.name
                )))
            }
        };
        inputs.push(builder.add(&input.name, dtype, None)?);
        signature.inputs.push(described);
    }
    for node in &graph.node {
        builder.node(node, opset)?;
    }
    let mut outputs = Vec::new();
    for output in &graph.output {
        let id = builder.find(&output.name).ok_or_else(|| {
            invalid(format!(
                "output '{}' is not produced by any node",
                output.name
            ))
        })?;
        outputs.push(id);
        signature.outputs.push(describe(output));
    }
    Ok(Graph {
        values: builder.values,
        nodes: builder.nodes,
        inputs,
        outputs,
        signature,
    })
}

fn describe(info: &pb::ValueInfoProto) -> ModelTensor {
    let tensor = info.r#type.as_ref().and_then(|t| match &t.value {
        Some(pb::type_proto::Value::TensorType(tensor)) => Some(tensor),
        _ => None,
    });
    ModelTensor {
        name: info.name.clone(),
        dtype: tensor.map(|t| data_type(t.elem_type).ok_or_else(|| format!("{}", t.elem_type))),
        dims: tensor.and_then(|t| t.shape.as_ref()).map(|shape| {
            shape
                .dim
                .iter()
                .map(|d| match d.value {
                    Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v >= 0 => {
                        Some(v)
                    }
                    _ => None,
                })
                .collect()
        }),
    }
}

/// The element type and bytes of a constant tensor.
fn constant(t: &pb::TensorProto) -> Result<(DataType, Constant), ImportError> {
    let name = &t.name;
    let dtype = data_type(t.data_type)
        .filter(|d| *d != DataType::Bytes)
        .ok_or_else(|| {
            unsupported(format!(
                "constant '{name}' has element type {}, which the cuda engine does not support",
                t.data_type
            ))
        })?;
    if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        return Err(unsupported(format!(
            "constant '{name}' keeps its data in an external file, which the cuda engine \
             does not read"
        )));
    }
    let shape = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<usize>, _>>()
        .map_err(|_| invalid(format!("constant '{name}' has a negative dimension")))?;
    let count: usize = shape.iter().product();
    let size = dtype.element_size().unwrap_or(1);
    let bytes: Vec<u8> = if !t.raw_data.is_empty() {
        t.raw_data.clone()
    } else {
        match dtype {
            DataType::Fp32 => t.float_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DataType::Fp64 => t.double_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DataType::Int64 => t.int64_data.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DataType::Uint32 | DataType::Uint64 => t
                .uint64_data
                .iter()
                .flat_map(|&v| v.to_le_bytes()[..size].to_vec())
                .collect(),
            _ => t
                .int32_data
                .iter()
                .flat_map(|&v| v.to_le_bytes()[..size].to_vec())
                .collect(),
        }
    };
    if bytes.len() != count * size {
        return Err(invalid(format!(
            "constant '{name}' holds {} bytes, its shape {shape:?} needs {}",
            bytes.len(),
            count * size
        )));
    }
    Ok((dtype, Constant { shape, bytes }))
}

/// Reads a node's attributes, remembering which were read so that the rest
/// can be refused.
struct Attributes<'a> {
    node: &'a pb::NodeProto,
    label: &'a str,
    read: Vec<&'a str>,
}

impl<'a> Attributes<'a> {
    fn get(
        &mut self,
        name: &'a str,
        kind: AttributeType,
    ) -> Result<Option<&'a pb::AttributeProto>, ImportError> {
        let Some(attribute) = self.node.attribute.iter().find(|a| a.name == name) else {
            return Ok(None);
        };
        self.read.push(name);
        if attribute.r#type != kind as i32 {
            return Err(invalid(format!(
                "{}: attribute '{name}' should be {kind:?}",
                self.label
            )));
        }
        Ok(Some(attribute))
    }

    fn int(&mut self, name: &'a str, default: i64) -> Result<i64, ImportError> {
        Ok(self.get(name, AttributeType::Int)?.map_or(default, |a| a.i))
    }

    fn float(&mut self, name: &'a str, default: f32) -> Result<f32, ImportError> {
        Ok(self
            .get(name, AttributeType::Float)?
            .map_or(default, |a| a.f))
    }

    fn ints(&mut self, name: &'a str) -> Result<Option<Vec<i64>>, ImportError> {
        Ok(self.get(name, AttributeType::Ints)?.map(|a| a.ints.clone()))
    }

    fn string(&mut self, name: &'a str) -> Result<Option<String>, ImportError> {
        Ok(self
            .get(name, AttributeType::String)?
            .map(|a| String::from_utf8_lossy(&a.s).into_owned()))
    }

    fn flag(&mut self, name: &'a str) -> Result<bool, ImportError> {
        match self.int(name, 0)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(invalid(format!(
                "{}: attribute '{name}' is {other}, expected 0 or 1",
                self.label
            ))),
        }
    }

    /// Refuses the attributes nobody read.
    fn finish(self) -> Result<(), ImportError> {
        match self
            .node
            .attribute
            .iter()
            .find(|a| !self.read.contains(&a.name.as_str()))
        {
            Some(extra) => Err(unsupported(format!(
                "{}: attribute '{}' is not supported by the cuda engine",
                self.label, extra.name
            ))),
            None => Ok(()),
        }
    }
}

fn pair(
    label: &str,
    name: &str,
    values: Option<Vec<i64>>,
    default: usize,
) -> Result<[usize; 2], ImportError> {
    let Some(values) = values else {
        return Ok([default; 2]);
    };
    match values.as_slice() {
        &[a, b] if a > 0 && b > 0 => Ok([a as usize, b as usize]),
        _ => Err(unsupported(format!(
            "{label}: {name} {values:?} is not two positive values (the cuda engine runs 2-D \
             windows only)"
        ))),
    }
}

fn window(
    label: &str,
    attributes: &mut Attributes,
    kernel_required: bool,
) -> Result<Window, ImportError> {
    let kernel = attributes.ints("kernel_shape")?;
    if kernel.is_none() && kernel_required {
        return Err(invalid(format!("{label}: kernel_shape is required")));
    }
    let kernel = kernel
        .map(|k| pair(label, "kernel_shape", Some(k), 1))
        .transpose()?;
    let strides = pair(label, "strides", attributes.ints("strides")?, 1)?;
    let dilations = pair(label, "dilations", attributes.ints("dilations")?, 1)?;
    let pads = match attributes.ints("pads")? {
        None => [0; 4],
        Some(p) if p.len() == 4 && p.iter().all(|&v| v >= 0) => {
            [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize]
        }
        Some(p) => {
            return Err(unsupported(format!(
                "{label}: pads {p:?} are not four non-negative values (2-D windows only)"
            )))
        }
    };
    let auto_pad = match attributes.string("auto_pad")?.as_deref() {
        None | Some("NOTSET") => AutoPad::NotSet,
        Some("VALID") => AutoPad::Valid,
        Some("SAME_UPPER") => AutoPad::SameUpper,
        Some("SAME_LOWER") => AutoPad::SameLower,
        Some(other) => return Err(invalid(format!("{label}: auto_pad '{other}' is unknown"))),
    };
    Ok(Window {
        kernel,
        strides,
        dilations,
        pads,
        auto_pad,
    })
}

#[derive(Default)]
struct Builder {
    values: Vec<Value>,
    nodes: Vec<Node>,
}

impl Builder {
    fn find(&self, name: &str) -> Option<ValueId> {
        self.values.iter().rposition(|v| v.name == name)
    }

    fn add(
        &mut self,
        name: &str,
        dtype: DataType,
        constant: Option<Constant>,
    ) -> Result<ValueId, ImportError> {
        if self.find(name).is_some() {
            return Err(invalid(format!("value '{name}' is defined twice")));
        }
        self.values.push(Value {
            name: name.to_string(),
            dtype,
            constant,
        });
        Ok(self.values.len() - 1)
    }

    fn node(&mut self, node: &pb::NodeProto, opset: i64) -> Result<(), ImportError> {
        let op_type = node.op_type.as_str();
        let output_name = node.output.first().cloned().unwrap_or_default();
        let label = if node.name.is_empty() {
            format!("node {op_type} -> '{output_name}'")
        } else {
            format!("node '{}' ({op_type})", node.name)
        };
        if !node.domain.is_empty() && node.domain != "ai.onnx" {
            return Err(unsupported(format!(
                "{label} is in domain '{}', which the cuda engine does not run",
                node.domain
            )));
        }
        if !SUPPORTED_OPS.contains(&op_type) {
            return Err(unsupported(format!(
                "{label}: operator {op_type} is not supported by the cuda engine (it runs {})",
                SUPPORTED_OPS.join(", ")
            )));
        }
        if node.output.len() != 1 || output_name.is_empty() {
            return Err(unsupported(format!(
                "{label}: the cuda engine runs nodes with exactly one output"
            )));
        }
        let mut attributes = Attributes {
            node,
            label: &label,
            read: Vec::new(),
        };
        if op_type == "Constant" {
            let value = attributes.get("value", AttributeType::Tensor)?;
            attributes.finish()?;
            let tensor = value.and_then(|a| a.t.as_ref()).ok_or_else(|| {
                unsupported(format!(
                    "{label}: only a Constant with a 'value' tensor is supported"
                ))
            })?;
            let (dtype, constant) = constant(tensor)?;
            self.add(&output_name, dtype, Some(constant))?;
            return Ok(());
        }
        let mut inputs = Vec::new();
        for name in &node.input {
            if name.is_empty() {
                inputs.push(None);
                continue;
            }
            let id = self.find(name).ok_or_else(|| {
                invalid(format!(
                    "{label} reads '{name}', which no earlier node produces"
                ))
            })?;
            inputs.push(Some(id));
        }
        let required = |index: usize| -> Result<ValueId, ImportError> {
            inputs
                .get(index)
                .copied()
                .flatten()
                .ok_or_else(|| invalid(format!("{label} lacks its input {index}")))
        };
        let arity = |min: usize, max: usize| -> Result<(), ImportError> {
            if inputs.len() < min || inputs.len() > max {
                return Err(invalid(format!(
                    "{label} has {} inputs, expected {min} to {max}",
                    inputs.len()
                )));
            }
            Ok(())
        };
        let x = required(0)?;
        let dtype = self.values[x].dtype;
        let float = matches!(dtype, DataType::Fp32 | DataType::Fp16);
        let needs_float = || -> Result<(), ImportError> {
            if float {
                Ok(())
            } else {
                Err(unsupported(format!(
                    "{label} reads {dtype}; the cuda engine runs it on FP32 and FP16 only"
                )))
            }
        };
        let (op, operands) = match op_type {
            "Identity" => {
                arity(1, 1)?;
                (Op::Alias, vec![x])
            }
            "Flatten" => {
                arity(1, 1)?;
                (
                    Op::Flatten {
                        axis: attributes.int("axis", 1)?,
                    },
                    vec![x],
                )
            }
            "Reshape" => {
                arity(2, 2)?;
                let shape_value = &self.values[required(1)?];
                let shape = match (&shape_value.constant, shape_value.dtype) {
                    (Some(c), DataType::Int64) => c
                        .bytes
                        .chunks_exact(8)
                        .map(|b| {
                            i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
                        })
                        .collect(),
                    _ => {
                        return Err(unsupported(format!(
                            "{label}: the target shape must be a constant INT64 tensor"
                        )))
                    }
                };
                (
                    Op::Reshape {
                        shape,
                        allow_zero: attributes.flag("allowzero")?,
                    },
                    vec![x],
                )
            }
            "Relu" | "Sigmoid" | "Tanh" => {
                arity(1, 1)?;
                needs_float()?;
                let op = match op_type {
                    "Relu" => UnaryOp::Relu,
                    "Sigmoid" => UnaryOp::Sigmoid,
                    _ => UnaryOp::Tanh,
                };
                (Op::Unary(op), vec![x])
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                arity(2, 2)?;
                let y = required(1)?;
                if !matches!(
                    dtype,
                    DataType::Fp32 | DataType::Fp16 | DataType::Int32 | DataType::Int64
                ) {
                    return Err(unsupported(format!(
                        "{label} reads {dtype}; the cuda engine runs it on FP32, FP16, INT32 \
                         and INT64"
                    )));
                }
                if self.values[y].dtype != dtype {
                    return Err(invalid(format!(
                        "{label} mixes {dtype} and {}",
                        self.values[y].dtype
                    )));
                }
                let op = match op_type {
                    "Add" => BinaryOp::Add,
                    "Sub" => BinaryOp::Sub,
                    "Mul" => BinaryOp::Mul,
                    _ => BinaryOp::Div,
                };
                (Op::Binary(op), vec![x, y])
            }
            "Gemm" => {
                arity(2, 3)?;
                needs_float()?;
                let mut operands = vec![x, required(1)?];
                if let Some(Some(c)) = inputs.get(2) {
                    operands.push(*c);
                }
                (
                    Op::Gemm {
                        alpha: attributes.float("alpha", 1.0)?,
                        beta: attributes.float("beta", 1.0)?,
                        trans_a: attributes.flag("transA")?,
                        trans_b: attributes.flag("transB")?,
                    },
                    operands,
                )
            }
            "MatMul" => {
                arity(2, 2)?;
                needs_float()?;
                (Op::MatMul, vec![x, required(1)?])
            }
            "Softmax" => {
                arity(1, 1)?;
                needs_float()?;
                let legacy = opset < 13;
                (
                    Op::Softmax {
                        axis: attributes.int("axis", if legacy { 1 } else { -1 })?,
                        flatten: legacy,
                    },
                    vec![x],
                )
            }
            "Conv" => {
                arity(2, 3)?;
                needs_float()?;
                let window = window(&label, &mut attributes, false)?;
                let groups = attributes.int("group", 1)?;
                let groups = usize::try_from(groups)
                    .ok()
                    .filter(|&g| g > 0)
                    .ok_or_else(|| invalid(format!("{label}: group {groups} is not positive")))?;
                let mut operands = vec![x, required(1)?];
                if let Some(Some(bias)) = inputs.get(2) {
                    operands.push(*bias);
                }
                (Op::Conv { window, groups }, operands)
            }
            "MaxPool" | "AveragePool" => {
                arity(1, 1)?;
                needs_float()?;
                let window = window(&label, &mut attributes, true)?;
                if attributes.flag("ceil_mode")? {
                    return Err(unsupported(format!(
                        "{label}: ceil_mode 1 is not supported by the cuda engine"
                    )));
                }
                let (mode, count_include_pad) = if op_type == "MaxPool" {
                    if attributes.int("storage_order", 0)? != 0 {
                        return Err(unsupported(format!(
                            "{label}: storage_order 1 is not supported by the cuda engine"
                        )));
                    }
                    (PoolMode::Max, false)
                } else {
                    (PoolMode::Average, attributes.flag("count_include_pad")?)
                };
                (
                    Op::Pool {
                        mode,
                        window,
                        count_include_pad,
                    },
                    vec![x],
                )
            }
            _ => {
                arity(1, 1)?;
                needs_float()?;
                (Op::GlobalAveragePool, vec![x])
            }
        };
        attributes.finish()?;
        for &operand in &operands[1..] {
            if matches!(op, Op::Gemm { .. } | Op::MatMul | Op::Conv { .. })
                && self.values[operand].dtype != dtype
            {
                return Err(invalid(format!(
                    "{label} mixes {dtype} and {}",
                    self.values[operand].dtype
                )));
            }
        }
        let output = self.add(&output_name, dtype, None)?;
        self.nodes.push(Node {
            name: label,
            op,
            inputs: operands,
            output,
        });
        Ok(())
    }
}
