//! Error codes and messages of `ModelInfer`, the same as over HTTP, and
//! messages that are not protobuf at all.

use bytes::{Buf, BufMut, Bytes};
use ferrite_proto::inference::{InferTensorContents, ModelInferRequest};
use serde_json::{json, Value};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};

use super::{input, le, raw_request, requested, GrpcServer};

fn ones(rows: i64) -> Bytes {
    le(
        &vec![1i32; usize::try_from(rows * 16).unwrap()],
        i32::to_le_bytes,
    )
}

async fn infer_error(s: &mut GrpcServer, request: ModelInferRequest) -> Status {
    s.client.model_infer(request).await.unwrap_err()
}

/// The error message HTTP answers for the same request, given as JSON.
async fn http_error(s: &GrpcServer, model: &str, body: Value) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(format!("{}/v2/models/{model}/infer", s.http))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (status, body["error"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn codes_and_messages_match_http() {
    let mut s = GrpcServer::start(&["simple"]).await;
    let data16 = vec![1; 16];

    // Unknown model.
    let error = infer_error(&mut s, raw_request("nope", vec![])).await;
    assert_eq!(error.code(), Code::NotFound);
    let (status, message) = http_error(&s, "nope", json!({"inputs": []})).await;
    assert_eq!((status, message.as_str()), (404, error.message()));

    // Wrong data type for the model.
    let request = raw_request(
        "simple",
        vec![
            (input("INPUT0", "FP32", &[1, 16]), ones(1)),
            (input("INPUT1", "INT32", &[1, 16]), ones(1)),
        ],
    );
    let error = infer_error(&mut s, request).await;
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("INPUT0"), "{}", error.message());
    let (status, message) = http_error(
        &s,
        "simple",
        json!({"inputs": [
            {"name": "INPUT0", "datatype": "FP32", "shape": [1, 16], "data": data16},
            {"name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "data": data16},
        ]}),
    )
    .await;
    assert_eq!((status, message.as_str()), (400, error.message()));

    // Wrong shape.
    let request = raw_request(
        "simple",
        vec![
            (input("INPUT0", "INT32", &[2, 8]), ones(1)),
            (input("INPUT1", "INT32", &[1, 16]), ones(1)),
        ],
    );
    let error = infer_error(&mut s, request).await;
    assert_eq!(error.code(), Code::InvalidArgument);
    let (_, message) = http_error(
        &s,
        "simple",
        json!({"inputs": [
            {"name": "INPUT0", "datatype": "INT32", "shape": [2, 8], "data": data16},
            {"name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "data": data16},
        ]}),
    )
    .await;
    assert_eq!(message, error.message());
    assert!(message.contains("INPUT0"), "{message}");

    // A missing input, an unknown output, a batch too large.
    let request = raw_request(
        "simple",
        vec![(input("INPUT0", "INT32", &[1, 16]), ones(1))],
    );
    let error = infer_error(&mut s, request).await;
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("INPUT1"), "{}", error.message());
    let mut request = raw_request(
        "simple",
        vec![
            (input("INPUT0", "INT32", &[1, 16]), ones(1)),
            (input("INPUT1", "INT32", &[1, 16]), ones(1)),
        ],
    );
    request.outputs = vec![requested("OUTPUT9")];
    let error = infer_error(&mut s, request).await;
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("OUTPUT9"), "{}", error.message());
    let request = raw_request(
        "simple",
        vec![
            (input("INPUT0", "INT32", &[9, 16]), ones(9)),
            (input("INPUT1", "INT32", &[9, 16]), ones(9)),
        ],
    );
    let error = infer_error(&mut s, request).await;
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains("batch-size must be <= 8"),
        "{}",
        error.message()
    );

    // A version that is not a number, and one that is not loaded.
    let mut request = raw_request("simple", vec![]);
    request.model_version = "latest".into();
    assert_eq!(
        infer_error(&mut s, request).await.code(),
        Code::InvalidArgument
    );
    let mut request = raw_request("simple", vec![]);
    request.model_version = "3".into();
    let error = infer_error(&mut s, request).await;
    assert_eq!(error.code(), Code::NotFound);
    let (status, message) = http_error(&s, "simple/versions/3", json!({"inputs": []})).await;
    assert_eq!((status, message.as_str()), (404, error.message()));
    s.shutdown().await;
}

#[tokio::test]
async fn malformed_tensors_name_the_tensor() {
    let mut s = GrpcServer::start(&["simple", "identity_bytes"]).await;
    let short = le(&[1i32; 15], i32::to_le_bytes);
    let cases: Vec<(ModelInferRequest, &str)> = vec![
        (
            raw_request(
                "simple",
                vec![
                    (input("INPUT0", "INT32", &[1, 16]), short),
                    (input("INPUT1", "INT32", &[1, 16]), ones(1)),
                ],
            ),
            "needs 64 bytes, got 60",
        ),
        (
            {
                let mut request = raw_request(
                    "simple",
                    vec![
                        (input("INPUT0", "INT32", &[1, 16]), ones(1)),
                        (input("INPUT1", "INT32", &[1, 16]), ones(1)),
                    ],
                );
                request.inputs[1].contents = Some(InferTensorContents {
                    int_contents: vec![1; 16],
                    ..Default::default()
                });
                request
            },
            "contents field must not be specified when using raw_input_contents for 'INPUT1'",
        ),
        (
            raw_request(
                "simple",
                vec![
                    (input("INPUT0", "INT33", &[1, 16]), ones(1)),
                    (input("INPUT1", "INT32", &[1, 16]), ones(1)),
                ],
            ),
            "input tensor 'INPUT0' for model 'simple' has invalid datatype 'INT33'",
        ),
        (
            raw_request(
                "simple",
                vec![
                    (input("INPUT0", "INT32", &[-1, 16]), ones(1)),
                    (input("INPUT1", "INT32", &[1, 16]), ones(1)),
                ],
            ),
            "input tensor 'INPUT0' for model 'simple': shape [-1, 16] has a negative dimension",
        ),
        (
            ModelInferRequest {
                model_name: "simple".into(),
                inputs: vec![input("INPUT0", "INT32", &[1, 16]), input("INPUT1", "INT32", &[1, 16])],
                ..Default::default()
            },
            "unable to find data for input tensor 'INPUT0'",
        ),
        (
            {
                let mut request = raw_request("simple", vec![]);
                let mut typed = input("INPUT0", "INT32", &[1, 16]);
                typed.contents = Some(InferTensorContents {
                    fp32_contents: vec![1.0; 16],
                    ..Default::default()
                });
                request.inputs = vec![typed];
                request
            },
            "unexpected explicit tensor data for input tensor 'INPUT0' for model 'simple' of type 'FP32', expected datatype 'INT32'",
        ),
        (
            raw_request(
                "identity_bytes",
                vec![(input("INPUT0", "BYTES", &[1, 2]), Bytes::from_static(&[1, 0, 0, 0, b'a', 5, 0]))],
            ),
            "input tensor 'INPUT0' for model 'identity_bytes': BYTES tensor of shape [1, 2]: truncated length prefix",
        ),
    ];
    for (request, expected) in cases {
        let error = infer_error(&mut s, request).await;
        assert_eq!(error.code(), Code::InvalidArgument, "{}", error.message());
        assert!(
            error.message().contains(expected),
            "{} does not contain {expected}",
            error.message()
        );
    }
    s.shutdown().await;
}

/// A codec that sends bytes as they are, to put invalid protobuf on the
/// wire.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

#[tokio::test]
async fn invalid_protobuf_is_refused_and_the_server_goes_on() {
    let mut s = GrpcServer::start(&["simple"]).await;
    let grpc = s.server.grpc.unwrap();
    let channel = tonic::transport::Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = tonic::client::Grpc::new(channel);
    for garbage in [
        Bytes::from_static(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
        Bytes::from_static(&[0x3a, 0x10, 1, 2]),
        Bytes::from_static(&[0xff; 32]),
    ] {
        raw.ready().await.unwrap();
        let path = "/inference.GRPCInferenceService/ModelInfer"
            .parse()
            .unwrap();
        let error = raw
            .unary(tonic::Request::new(garbage), path, RawCodec)
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::Internal, "{}", error.message());
    }
    let request = raw_request(
        "simple",
        vec![
            (input("INPUT0", "INT32", &[1, 16]), ones(1)),
            (input("INPUT1", "INT32", &[1, 16]), ones(1)),
        ],
    );
    s.client.model_infer(request).await.unwrap();
    s.shutdown().await;
}
