//! Describes an ONNX model file (inputs, outputs, opsets) without loading
//! its weights.

use std::collections::HashSet;
use std::path::Path;

use ferrite_proto::inference::DataType;
use ferrite_proto::onnx::{self, tensor_proto, type_proto, ModelProto};
use prost::Message;

use crate::RepositoryError;

/// One graph input or output of an ONNX model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxTensor {
    /// Tensor name.
    pub name: String,
    /// Element type, mapped to the configuration's data type.
    pub data_type: DataType,
    /// Full shape (batch dimension included); -1 for a symbolic or unknown
    /// dimension; `None` when the model does not give the rank.
    pub dims: Option<Vec<i64>>,
}

/// What the configuration needs to know about an ONNX model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxModelInfo {
    /// ONNX IR version of the file.
    pub ir_version: i64,
    /// Operator sets as (domain, version); the empty domain is ONNX itself.
    pub opsets: Vec<(String, i64)>,
    /// Graph inputs that are not initializers, in graph order.
    pub inputs: Vec<OnnxTensor>,
    /// Graph outputs, in graph order.
    pub outputs: Vec<OnnxTensor>,
}

impl OnnxModelInfo {
    /// The input of that name.
    pub fn input(&self, name: &str) -> Option<&OnnxTensor> {
        self.inputs.iter().find(|t| t.name == name)
    }

    /// The output of that name.
    pub fn output(&self, name: &str) -> Option<&OnnxTensor> {
        self.outputs.iter().find(|t| t.name == name)
    }
}

/// Maps an ONNX `TensorProto.DataType` to the configuration's data type;
/// `None` for element types a configuration cannot express (complex,
/// 8-bit and 4-bit floats, 4-bit integers).
pub fn data_type_from_onnx(elem_type: i32) -> Option<DataType> {
    use tensor_proto::DataType as T;
    Some(match T::try_from(elem_type).ok()? {
        T::Float => DataType::TypeFp32,
        T::Uint8 => DataType::TypeUint8,
        T::Int8 => DataType::TypeInt8,
        T::Uint16 => DataType::TypeUint16,
        T::Int16 => DataType::TypeInt16,
        T::Int32 => DataType::TypeInt32,
        T::Int64 => DataType::TypeInt64,
        T::String => DataType::TypeString,
        T::Bool => DataType::TypeBool,
        T::Float16 => DataType::TypeFp16,
        T::Double => DataType::TypeFp64,
        T::Uint32 => DataType::TypeUint32,
        T::Uint64 => DataType::TypeUint64,
        T::Bfloat16 => DataType::TypeBf16,
        _ => return None,
    })
}

/// Reads and describes the ONNX model at `path`.
pub fn read_onnx_model(path: &Path) -> Result<OnnxModelInfo, RepositoryError> {
    let bytes = std::fs::read(path).map_err(|e| RepositoryError::io(path, e))?;
    let model = ModelProto::decode(bytes.as_slice())
        .map_err(|e| RepositoryError::onnx(path, format!("not a valid ONNX model file: {e}")))?;
    describe_onnx_model(&model, path)
}

/// Describes a decoded ONNX model; `path` only names the file in errors.
pub fn describe_onnx_model(
    model: &ModelProto,
    path: &Path,
) -> Result<OnnxModelInfo, RepositoryError> {
    let Some(graph) = &model.graph else {
        return Err(RepositoryError::onnx(path, "the model has no graph"));
    };
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs = graph
        .input
        .iter()
        .filter(|v| !initializers.contains(v.name.as_str()))
        .map(|v| tensor(v, "input", path))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = graph
        .output
        .iter()
        .map(|v| tensor(v, "output", path))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(OnnxModelInfo {
        ir_version: model.ir_version,
        opsets: model
            .opset_import
            .iter()
            .map(|o| (o.domain.clone(), o.version))
            .collect(),
        inputs,
        outputs,
    })
}

fn tensor(
    value: &onnx::ValueInfoProto,
    role: &str,
    path: &Path,
) -> Result<OnnxTensor, RepositoryError> {
    let name = &value.name;
    let tensor_type = match value.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t,
        None => {
            return Err(RepositoryError::onnx(
                path,
                format!("graph {role} `{name}` is not a tensor (sequence, map and optional values are not supported)"),
            ))
        }
    };
    let data_type = data_type_from_onnx(tensor_type.elem_type).ok_or_else(|| {
        let type_name = tensor_proto::DataType::try_from(tensor_type.elem_type)
            .map(|t| t.as_str_name().to_owned())
            .unwrap_or_else(|_| tensor_type.elem_type.to_string());
        RepositoryError::onnx(
            path,
            format!("graph {role} `{name}` has element type {type_name}, which is not supported"),
        )
    })?;
    let dims = tensor_type.shape.as_ref().map(|shape| {
        shape
            .dim
            .iter()
            .map(|d| match d.value {
                Some(onnx::tensor_shape_proto::dimension::Value::DimValue(v)) if v >= 0 => v,
                _ => -1,
            })
            .collect()
    });
    Ok(OnnxTensor {
        name: name.clone(),
        data_type,
        dims,
    })
}
