//! Request size limits over gRPC: the per-tensor and per-request limits are
//! refused with INVALID_ARGUMENT naming their flag, as over HTTP, and a
//! message over the server's maximum message size is refused by the
//! transport before it is decoded.

use ferrite_proto::inference::InferTensorContents;
use ferrite_server::grpc::MAX_MESSAGE_SIZE;
use tonic::Code;

use super::{input, le, raw_request, GrpcServer};

async fn limited() -> GrpcServer {
    GrpcServer::start_in(
        crate::common::repository_with(&["identity_fp32"]),
        &[
            "--max-tensor-elements",
            "64",
            "--max-tensor-rank",
            "3",
            "--max-batch-bytes",
            "512",
        ],
    )
    .await
}

fn ones(count: usize) -> bytes::Bytes {
    le(&vec![1.0f32; count], f32::to_le_bytes)
}

async fn refused(s: &mut GrpcServer, shape: &[i64], count: usize, flag: &str) {
    let request = raw_request(
        "identity_fp32",
        vec![(input("INPUT0", "FP32", shape), ones(count))],
    );
    let status = s.client.model_infer(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains(flag) && status.message().contains("INPUT0"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn each_limit_is_refused_with_its_flag() {
    let mut s = limited().await;
    let request = raw_request(
        "identity_fp32",
        vec![(input("INPUT0", "FP32", &[4, 16]), ones(64))],
    );
    s.client.model_infer(request).await.unwrap();

    refused(&mut s, &[5, 16], 80, "--max-tensor-elements").await;
    refused(&mut s, &[1, 1, 1, 16], 16, "--max-tensor-rank").await;
    // A huge declared shape with little data is refused from the shape.
    refused(&mut s, &[i64::MAX / 2, 16], 16, "--max-tensor-elements").await;

    // Typed contents are checked from the shape before they are converted.
    let mut typed = input("INPUT0", "FP32", &[1_000_000, 16]);
    typed.contents = Some(InferTensorContents {
        fp32_contents: vec![1.0; 16],
        ..Default::default()
    });
    let request = ferrite_proto::inference::ModelInferRequest {
        model_name: "identity_fp32".into(),
        inputs: vec![typed],
        ..Default::default()
    };
    let status = s.client.model_infer(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("--max-tensor-elements"),
        "{}",
        status.message()
    );

    // Three inputs of 256 bytes pass the 512-byte request total.
    let request = raw_request(
        "identity_fp32",
        (0..3)
            .map(|_| (input("INPUT0", "FP32", &[4, 16]), ones(64)))
            .collect(),
    );
    let status = s.client.model_infer(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("--max-batch-bytes"),
        "{}",
        status.message()
    );

    let request = raw_request(
        "identity_fp32",
        vec![(input("INPUT0", "FP32", &[1, 16]), ones(16))],
    );
    s.client.model_infer(request).await.unwrap();
    s.shutdown().await;
}

#[tokio::test]
async fn messages_over_the_maximum_size_are_refused() {
    let s = GrpcServer::start(&["identity_fp32"]).await;
    let mut client = s
        .connect()
        .await
        .max_encoding_message_size(2 * MAX_MESSAGE_SIZE);
    let count = MAX_MESSAGE_SIZE / 4 + 16;
    let request = raw_request(
        "identity_fp32",
        vec![(input("INPUT0", "FP32", &[1, count as i64]), ones(count))],
    );
    let status = client.model_infer(request).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    assert!(
        status.message().contains(&MAX_MESSAGE_SIZE.to_string()),
        "{}",
        status.message()
    );
    // The connection and the server still serve.
    let request = raw_request(
        "identity_fp32",
        vec![(input("INPUT0", "FP32", &[1, 16]), ones(16))],
    );
    client.model_infer(request).await.unwrap();
    s.shutdown().await;
}
