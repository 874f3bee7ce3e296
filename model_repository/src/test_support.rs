//! Builders of small ONNX models and repositories for tests.

use std::path::{Path, PathBuf};

use ferrite_proto::onnx::{
    tensor_proto::DataType as Elem, tensor_shape_proto::dimension::Value as DimValue,
    tensor_shape_proto::Dimension, type_proto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use prost::Message;

/// One dimension of a test tensor.
#[derive(Clone, Copy)]
pub enum Dim {
    Fixed(i64),
    Param(&'static str),
    Unknown,
}

pub use Dim::{Fixed, Param, Unknown};

/// A graph value of tensor type; `dims: None` leaves the shape out.
pub fn tensor(name: &str, elem: Elem, dims: Option<&[Dim]>) -> ValueInfoProto {
    let shape = dims.map(|dims| TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| Dimension {
                value: match d {
                    Fixed(v) => Some(DimValue::DimValue(*v)),
                    Param(p) => Some(DimValue::DimParam((*p).to_owned())),
                    Unknown => None,
                },
                denotation: String::new(),
            })
            .collect(),
    });
    ValueInfoProto {
        name: name.to_owned(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: elem as i32,
                shape,
            })),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    }
}

/// A model with these graph inputs, outputs, nodes and initializer names.
pub fn model(
    inputs: Vec<ValueInfoProto>,
    outputs: Vec<ValueInfoProto>,
    nodes: Vec<NodeProto>,
    initializers: &[&str],
) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
        }],
        producer_name: "ferrite-tests".into(),
        graph: Some(GraphProto {
            node: nodes,
            name: "graph".into(),
            initializer: initializers
                .iter()
                .map(|n| TensorProto {
                    name: (*n).to_owned(),
                    data_type: Elem::Float as i32,
                })
                .collect(),
            input: inputs,
            output: outputs,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A node `output = op_type(inputs...)`.
pub fn node(op_type: &str, inputs: &[&str], output: &str) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| (*s).to_owned()).collect(),
        output: vec![output.to_owned()],
        name: format!("{op_type}_{output}"),
        op_type: op_type.to_owned(),
        domain: String::new(),
    }
}

/// Triton's `simple` example: OUTPUT0 = INPUT0 + INPUT1 and
/// OUTPUT1 = INPUT0 - INPUT1, INT32 tensors of shape [batch, 16].
pub fn add_sub() -> ModelProto {
    let io = |name| tensor(name, Elem::Int32, Some(&[Param("batch"), Fixed(16)]));
    model(
        vec![io("INPUT0"), io("INPUT1")],
        vec![io("OUTPUT0"), io("OUTPUT1")],
        vec![
            node("Add", &["INPUT0", "INPUT1"], "OUTPUT0"),
            node("Sub", &["INPUT0", "INPUT1"], "OUTPUT1"),
        ],
        &[],
    )
}

/// A densenet-like classifier without a batch dimension:
/// `data_0` FLOAT [1, 3, 224, 224] -> `fc6_1` FLOAT [1, 1000, 1, 1], with
/// its weights listed as initializers (and, as in old IR versions, among
/// the graph inputs).
pub fn classifier() -> ModelProto {
    let weight = tensor(
        "conv1_w",
        Elem::Float,
        Some(&[Fixed(64), Fixed(3), Fixed(7), Fixed(7)]),
    );
    model(
        vec![
            tensor(
                "data_0",
                Elem::Float,
                Some(&[Fixed(1), Fixed(3), Fixed(224), Fixed(224)]),
            ),
            weight,
        ],
        vec![tensor(
            "fc6_1",
            Elem::Float,
            Some(&[Fixed(1), Fixed(1000), Fixed(1), Fixed(1)]),
        )],
        vec![node("Conv", &["data_0", "conv1_w"], "fc6_1")],
        &["conv1_w"],
    )
}

/// A temporary repository root.
pub struct Repo {
    dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Self {
        Repo {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Adds model `name` with an optional `config.pbtxt` and `model.onnx`
    /// in each of `versions`; returns the model folder.
    pub fn add(
        &self,
        name: &str,
        config: Option<&str>,
        versions: &[i64],
        onnx: &ModelProto,
    ) -> PathBuf {
        let dir = self.path().join(name);
        std::fs::create_dir_all(&dir).expect("model dir");
        if let Some(text) = config {
            std::fs::write(dir.join("config.pbtxt"), text).expect("config");
        }
        for version in versions {
            self.write_file(
                name,
                &format!("{version}/model.onnx"),
                &onnx.encode_to_vec(),
            );
        }
        dir
    }

    /// Writes `bytes` at `relative` inside model `name`.
    pub fn write_file(&self, name: &str, relative: &str, bytes: &[u8]) {
        let path = self.path().join(name).join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent dir");
        }
        std::fs::write(path, bytes).expect("write");
    }
}
