//! The slow test model shared by the batching and overload tests, built
//! as ONNX bytes so that no file needs committing.

use ferrite_proto::onnx::tensor_proto::DataType;
use ferrite_proto::onnx::tensor_shape_proto::{dimension, Dimension};
use ferrite_proto::onnx::{
    type_proto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};
use prost::Message;

/// An ONNX model `Y = X^(matmuls + 1)` over FP32 `[-1, dim, dim]`: square
/// matrix products chained `matmuls` times, slow enough to keep requests
/// queued behind it.
pub fn slow_model(dim: i64, matmuls: usize) -> Vec<u8> {
    let value_info = |name: &str| ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::Float as i32,
                shape: Some(TensorShapeProto {
                    dim: [
                        dimension::Value::DimParam("batch".to_owned()),
                        dimension::Value::DimValue(dim),
                        dimension::Value::DimValue(dim),
                    ]
                    .into_iter()
                    .map(|value| Dimension {
                        value: Some(value),
                        ..Default::default()
                    })
                    .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let node = (0..matmuls)
        .map(|i| {
            let left = if i == 0 {
                "X".to_owned()
            } else {
                format!("P{i}")
            };
            let out = if i + 1 == matmuls {
                "Y".to_owned()
            } else {
                format!("P{}", i + 1)
            };
            NodeProto {
                input: vec![left, "X".to_owned()],
                output: vec![out],
                name: format!("matmul{i}"),
                op_type: "MatMul".to_owned(),
                ..Default::default()
            }
        })
        .collect();
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        producer_name: "ferrite-tests".to_owned(),
        graph: Some(GraphProto {
            node,
            name: "slow".to_owned(),
            input: vec![value_info("X")],
            output: vec![value_info("Y")],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}
