//! Compiles the protocol definitions in `protos/` with a pure-Rust protobuf
//! compiler (no system `protoc`), generates the Rust types and gRPC stubs,
//! and writes the encoded descriptor set for run-time reflection. The raw
//! tensor fields of the inference messages are `bytes::Bytes`, so a decoded
//! request's tensors are slices of the received buffer. The OpenTelemetry
//! trace messages (OTLP) have no service here: they are sent over HTTP.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "grpc_service.proto",
    "model_config.proto",
    "health.proto",
    "onnx.proto",
    "opentelemetry/proto/common/v1/common.proto",
    "opentelemetry/proto/resource/v1/resource.proto",
    "opentelemetry/proto/trace/v1/trace.proto",
    "opentelemetry/proto/collector/trace/v1/trace_service.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("protos");
    for file in PROTOS {
        println!("cargo:rerun-if-changed={}", proto_dir.join(file).display());
    }

    let descriptor_set = protox::compile(PROTOS, [&proto_dir])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("ferrite_descriptor_set.bin"),
        descriptor_set.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .build_transport(false)
        .bytes(".inference.ModelInferRequest.raw_input_contents")
        .bytes(".inference.ModelInferResponse.raw_output_contents")
        .compile_fds(descriptor_set)?;
    Ok(())
}
