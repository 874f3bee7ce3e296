//! Protocol types of ferrite.
//!
//! * [`inference`]: the KServe v2 gRPC service with the Triton extensions
//!   (`GRPCInferenceService`, server and client stubs) and the Triton model
//!   configuration (`ModelConfig` and every nested message), wire- and
//!   name-compatible with Triton's public schema.
//! * [`health`]: the standard gRPC health checking service (`grpc.health.v1`).
//! * [`onnx`]: the subset of the ONNX model format needed to describe a
//!   model's inputs, outputs, initializers and opsets without loading its
//!   weights.
//! * [`opentelemetry`]: the OTLP trace messages (`ExportTraceServiceRequest`
//!   and what it holds: resource, scope, span, attribute values), a subset
//!   of OpenTelemetry's protocol with its official field numbers, for
//!   exporting request traces over OTLP/HTTP.
//!
//! The protocol files in `protos/` are compiled at build time by a pure-Rust
//! protobuf compiler; no system `protoc` is needed. The same descriptors are
//! available at run time through [`descriptor_pool`], which the JSON helpers
//! ([`model_config_to_json`], [`model_config_from_json`]) and the
//! `config.pbtxt` parser of the repository crate use.

mod json;

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, MessageDescriptor};

pub use json::{model_config_from_json, model_config_to_json, ProtoError};

/// KServe v2 / Triton inference service and model configuration types
/// (protobuf package `inference`).
#[allow(clippy::all, missing_docs)]
pub mod inference {
    include!(concat!(env!("OUT_DIR"), "/inference.rs"));
}

/// gRPC health checking service (protobuf package `grpc.health.v1`).
#[allow(clippy::all, missing_docs)]
pub mod health {
    include!(concat!(env!("OUT_DIR"), "/grpc.health.v1.rs"));
}

/// Subset of the ONNX model format (protobuf package `onnx`).
#[allow(clippy::all, missing_docs)]
pub mod onnx {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

/// OpenTelemetry protocol (OTLP) trace messages (protobuf packages
/// `opentelemetry.proto.*.v1`).
#[allow(clippy::all, missing_docs)]
pub mod opentelemetry {
    pub mod proto {
        pub mod common {
            pub mod v1 {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.common.v1.rs"
                ));
            }
        }
        pub mod resource {
            pub mod v1 {
                include!(concat!(
                    env!("OUT_DIR"),
                    "/opentelemetry.proto.resource.v1.rs"
                ));
            }
        }
        pub mod trace {
            pub mod v1 {
                include!(concat!(env!("OUT_DIR"), "/opentelemetry.proto.trace.v1.rs"));
            }
        }
        pub mod collector {
            pub mod trace {
                pub mod v1 {
                    include!(concat!(
                        env!("OUT_DIR"),
                        "/opentelemetry.proto.collector.trace.v1.rs"
                    ));
                }
            }
        }
    }
}

/// Encoded `FileDescriptorSet` of every protocol file of this crate, with
/// source information (usable for gRPC server reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ferrite_descriptor_set.bin"));

/// Full protobuf name of the model configuration message.
pub const MODEL_CONFIG_MESSAGE: &str = "inference.ModelConfig";

/// Descriptor pool holding every message, enum and service of this crate.
pub fn descriptor_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // The descriptor set is produced by this crate's build script from the
        // same files the Rust types are generated from; failing to decode it
        // is a build defect, not an input error.
        DescriptorPool::decode(FILE_DESCRIPTOR_SET)
            .expect("the descriptor set written by build.rs is valid")
    })
}

/// Descriptor of `inference.ModelConfig`.
pub fn model_config_descriptor() -> MessageDescriptor {
    descriptor_pool()
        .get_message_by_name(MODEL_CONFIG_MESSAGE)
        .expect("model_config.proto defines inference.ModelConfig")
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn pool_has_every_service_and_message() {
        let pool = descriptor_pool();
        let service = pool
            .get_service_by_name("inference.GRPCInferenceService")
            .expect("inference service");
        let methods: Vec<String> = service.methods().map(|m| m.name().to_owned()).collect();
        for name in [
            "ServerLive",
            "ServerReady",
            "ModelReady",
            "ServerMetadata",
            "ModelMetadata",
            "ModelInfer",
            "ModelStreamInfer",
            "ModelConfig",
            "ModelStatistics",
            "RepositoryIndex",
            "RepositoryModelLoad",
            "RepositoryModelUnload",
            "SystemSharedMemoryStatus",
            "SystemSharedMemoryRegister",
            "SystemSharedMemoryUnregister",
            "CudaSharedMemoryStatus",
            "CudaSharedMemoryRegister",
            "CudaSharedMemoryUnregister",
            "TraceSetting",
            "LogSettings",
        ] {
            assert!(methods.iter().any(|m| m == name), "missing method {name}");
        }
        let stream = service
            .methods()
            .find(|m| m.name() == "ModelStreamInfer")
            .expect("stream method");
        assert!(stream.is_client_streaming() && stream.is_server_streaming());
        assert!(pool.get_service_by_name("grpc.health.v1.Health").is_some());
        assert!(pool.get_message_by_name("onnx.ModelProto").is_some());
    }

    /// Field numbers that Triton's clients put on the wire.
    #[test]
    fn wire_numbers_match_the_public_schema() {
        let pool = descriptor_pool();
        let number = |message: &str, field: &str| {
            pool.get_message_by_name(message)
                .unwrap_or_else(|| panic!("message {message}"))
                .get_field_by_name(field)
                .unwrap_or_else(|| panic!("field {message}.{field}"))
                .number()
        };
        let expected = [
            ("inference.ModelConfig", "backend", 17),
            ("inference.ModelConfig", "dynamic_batching", 11),
            ("inference.ModelConfig", "instance_group", 7),
            ("inference.ModelConfig", "parameters", 14),
            ("inference.ModelConfig", "batch_input", 20),
            ("inference.ModelConfig", "response_cache", 24),
            ("inference.ModelConfig", "runtime", 25),
            ("inference.ModelInstanceGroup", "kind", 4),
            ("inference.ModelInstanceGroup", "host_policy", 9),
            ("inference.ModelInput", "optional", 8),
            ("inference.ModelOutput", "label_filename", 4),
            ("inference.ModelOutput", "reshape", 5),
            ("inference.ModelInferRequest", "raw_input_contents", 7),
            ("inference.ModelInferResponse", "raw_output_contents", 6),
            ("inference.ModelStatistics", "response_stats", 9),
            ("inference.InferParameter", "uint64_param", 5),
            ("inference.CudaSharedMemoryRegisterRequest", "raw_handle", 2),
            ("onnx.ModelProto", "graph", 7),
            ("onnx.ModelProto", "opset_import", 8),
            ("onnx.GraphProto", "initializer", 5),
            ("onnx.GraphProto", "input", 11),
            ("onnx.GraphProto", "output", 12),
            ("onnx.TensorProto", "name", 8),
            ("opentelemetry.proto.trace.v1.Span", "flags", 16),
            ("opentelemetry.proto.trace.v1.Span", "status", 15),
            ("opentelemetry.proto.trace.v1.Span", "events", 11),
            ("opentelemetry.proto.trace.v1.Status", "code", 3),
            ("opentelemetry.proto.trace.v1.ScopeSpans", "spans", 2),
            ("opentelemetry.proto.common.v1.AnyValue", "int_value", 3),
            (
                "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
                "resource_spans",
                1,
            ),
        ];
        for (message, field, want) in expected {
            assert_eq!(number(message, field), want, "{message}.{field}");
        }
    }

    /// Weights of an ONNX initializer are skipped, not rejected, on decode.
    #[test]
    fn onnx_subset_skips_weights() {
        // TensorProto{dims: [2] (1), data_type: FLOAT (2), float_data (4),
        // name: "w" (8), raw_data (9)} hand-encoded with fields the subset lacks.
        let tensor: Vec<u8> = vec![
            0x08, 0x02, // dims = 2
            0x10, 0x01, // data_type = FLOAT
            0x22, 0x08, 0, 0, 0x80, 0x3f, 0, 0, 0, 0x40, // float_data packed [1.0, 2.0]
            0x42, 0x01, b'w', // name = "w"
            0x4a, 0x02, 0xaa, 0xbb, // raw_data
        ];
        let decoded = onnx::TensorProto::decode(tensor.as_slice()).expect("decodes");
        assert_eq!(decoded.name, "w");
        assert_eq!(
            decoded.data_type,
            onnx::tensor_proto::DataType::Float as i32
        );
    }
}
