//! `ModelInfer`: raw and typed inputs, every data type, requested outputs,
//! parameters, compression and large messages.

use bytes::Bytes;
use ferrite_backends::bytes_codec;
use ferrite_proto::inference::infer_parameter::ParameterChoice;
use ferrite_proto::inference::{InferParameter, InferTensorContents, ModelInferRequest};
use tonic::codec::CompressionEncoding;

use super::{f32s, i32s, input, le, output, raw_request, requested, GrpcServer};

fn simple_request(a: &[i32], b: &[i32]) -> ModelInferRequest {
    let rows = i64::try_from(a.len() / 16).unwrap();
    raw_request(
        "simple",
        vec![
            (
                input("INPUT0", "INT32", &[rows, 16]),
                le(a, i32::to_le_bytes),
            ),
            (
                input("INPUT1", "INT32", &[rows, 16]),
                le(b, i32::to_le_bytes),
            ),
        ],
    )
}

#[tokio::test]
async fn raw_inputs_and_outputs() {
    let mut s = GrpcServer::start(&["simple"]).await;
    let a: Vec<i32> = (0..16).collect();
    let b: Vec<i32> = (0..16).map(|v| 100 - 2 * v).collect();
    let mut request = simple_request(&a, &b);
    request.id = "req-7".into();
    let response = s.client.model_infer(request).await.unwrap().into_inner();
    assert_eq!(response.model_name, "simple");
    assert_eq!(response.model_version, "1");
    assert_eq!(response.id, "req-7");
    let (datatype, shape, sum) = output(&response, "OUTPUT0");
    assert_eq!((datatype, shape), ("INT32", &[1, 16][..]));
    let expected: Vec<i32> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
    assert_eq!(i32s(sum), expected);
    let (_, _, difference) = output(&response, "OUTPUT1");
    let expected: Vec<i32> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
    assert_eq!(i32s(difference), expected);
    s.shutdown().await;
}

#[tokio::test]
async fn typed_contents() {
    let mut s = GrpcServer::start(&["simple", "identity_fp32", "identity_bytes"]).await;
    let typed = |name: &str, datatype: &str, shape: &[i64], contents: InferTensorContents| {
        let mut tensor = input(name, datatype, shape);
        tensor.contents = Some(contents);
        tensor
    };
    let a: Vec<i32> = (0..32).collect();
    let request = ModelInferRequest {
        model_name: "simple".into(),
        inputs: vec![
            typed(
                "INPUT0",
                "INT32",
                &[2, 16],
                InferTensorContents {
                    int_contents: a.clone(),
                    ..Default::default()
                },
            ),
            typed(
                "INPUT1",
                "INT32",
                &[2, 16],
                InferTensorContents {
                    int_contents: vec![5; 32],
                    ..Default::default()
                },
            ),
        ],
        ..Default::default()
    };
    let response = s.client.model_infer(request).await.unwrap().into_inner();
    let (_, shape, sum) = output(&response, "OUTPUT0");
    assert_eq!(shape, &[2, 16]);
    assert_eq!(i32s(sum), a.iter().map(|v| v + 5).collect::<Vec<_>>());

    let values: Vec<f32> = (0..16).map(|v| v as f32 * 0.5 - 3.0).collect();
    let request = ModelInferRequest {
        model_name: "identity_fp32".into(),
        inputs: vec![typed(
            "INPUT0",
            "FP32",
            &[1, 16],
            InferTensorContents {
                fp32_contents: values.clone(),
                ..Default::default()
            },
        )],
        ..Default::default()
    };
    let response = s.client.model_infer(request).await.unwrap().into_inner();
    assert_eq!(f32s(output(&response, "OUTPUT0").2), values);

    let strings = vec![b"hello".to_vec(), Vec::new(), vec![0xff, 0x00, 0x7f]];
    let request = ModelInferRequest {
        model_name: "identity_bytes".into(),
        inputs: vec![typed(
            "INPUT0",
            "BYTES",
            &[1, 3],
            InferTensorContents {
                bytes_contents: strings.clone(),
                ..Default::default()
            },
        )],
        ..Default::default()
    };
    let response = s.client.model_infer(request).await.unwrap().into_inner();
    let (datatype, shape, data) = output(&response, "OUTPUT0");
    assert_eq!((datatype, shape), ("BYTES", &[1, 3][..]));
    let echoed: Vec<Vec<u8>> = bytes_codec::iter(data)
        .map(|e| e.unwrap().to_vec())
        .collect();
    assert_eq!(echoed, strings);
    s.shutdown().await;
}

/// Two rows of four elements of every data type of `all_types`, raw.
fn all_types_inputs() -> Vec<(&'static str, Bytes)> {
    let strings: Vec<Vec<u8>> = (0..8)
        .map(|i| format!("s{i}").repeat(i).into_bytes())
        .collect();
    vec![
        (
            "BOOL",
            Bytes::from((0..8u8).map(|i| i % 3 % 2).collect::<Vec<u8>>()),
        ),
        (
            "UINT8",
            le(&[0u8, 1, 127, 128, 200, 254, 255, 9], u8::to_le_bytes),
        ),
        (
            "UINT16",
            le(&[0u16, 1, 300, 65535, 7, 8, 9, 10], u16::to_le_bytes),
        ),
        (
            "UINT32",
            le(&[0u32, 1, u32::MAX, 70000, 5, 6, 7, 8], u32::to_le_bytes),
        ),
        (
            "UINT64",
            le(&[0u64, u64::MAX, 2, 3, 4, 5, 6, 1 << 40], u64::to_le_bytes),
        ),
        (
            "INT8",
            le(&[-128i8, -1, 0, 1, 127, 5, 6, 7], i8::to_le_bytes),
        ),
        (
            "INT16",
            le(&[-32768i16, -1, 0, 1, 32767, 5, 6, 7], i16::to_le_bytes),
        ),
        (
            "INT32",
            le(&[i32::MIN, -1, 0, 1, i32::MAX, 5, 6, 7], i32::to_le_bytes),
        ),
        (
            "INT64",
            le(&[i64::MIN, -1, 0, 1, i64::MAX, 5, 6, 7], i64::to_le_bytes),
        ),
        (
            "FP16",
            le(
                &[0x3c00u16, 0xc000, 0x0000, 0x7bff, 0x3555, 1, 2, 3],
                u16::to_le_bytes,
            ),
        ),
        (
            "FP32",
            le(
                &[1.5f32, -2.25, 0.0, f32::MAX, 1e-30, 6.0, 7.0, 8.0],
                f32::to_le_bytes,
            ),
        ),
        (
            "FP64",
            le(
                &[1.5f64, -2.25, 0.0, f64::MIN, 1e-300, 6.0, 7.0, 8.0],
                f64::to_le_bytes,
            ),
        ),
        (
            "BYTES",
            bytes_codec::encode(strings.iter().map(Vec::as_slice)),
        ),
    ]
}

#[tokio::test]
async fn every_data_type_round_trips() {
    let mut s = GrpcServer::start(&["all_types"]).await;
    let inputs = all_types_inputs();
    let request = raw_request(
        "all_types",
        inputs
            .iter()
            .map(|(kind, data)| (input(&format!("IN_{kind}"), kind, &[2, 4]), data.clone()))
            .collect(),
    );
    let response = s.client.model_infer(request).await.unwrap().into_inner();
    assert_eq!(response.outputs.len(), inputs.len());
    for (kind, data) in &inputs {
        let (datatype, shape, echoed) = output(&response, &format!("OUT_{kind}"));
        assert_eq!((datatype, shape), (*kind, &[2, 4][..]), "{kind}");
        assert_eq!(echoed, data, "{kind}");
    }
    s.shutdown().await;
}

#[tokio::test]
async fn requested_outputs_in_order() {
    let mut s = GrpcServer::start(&["simple", "all_types"]).await;
    let mut request = simple_request(&[3; 16], &[1; 16]);
    request.outputs = vec![requested("OUTPUT1")];
    let response = s.client.model_infer(request).await.unwrap().into_inner();
    assert_eq!(response.outputs.len(), 1);
    assert_eq!(i32s(output(&response, "OUTPUT1").2), vec![2; 16]);

    let inputs = all_types_inputs();
    let mut request = raw_request(
        "all_types",
        inputs
            .iter()
            .map(|(kind, data)| (input(&format!("IN_{kind}"), kind, &[2, 4]), data.clone()))
            .collect(),
    );
    request.outputs = vec![requested("OUT_BYTES"), requested("OUT_INT8")];
    let response = s.client.model_infer(request).await.unwrap().into_inner();
    let names: Vec<&str> = response.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, vec!["OUT_BYTES", "OUT_INT8"]);
    assert_eq!(&response.raw_output_contents[1], &inputs[5].1);
    s.shutdown().await;
}

#[tokio::test]
async fn protocol_parameters() {
    let mut s = GrpcServer::start(&["simple"]).await;
    let parameter = |choice| InferParameter {
        parameter_choice: Some(choice),
    };
    let mut request = simple_request(&[1; 16], &[1; 16]);
    request.parameters = [
        (
            "priority".to_string(),
            parameter(ParameterChoice::Uint64Param(0)),
        ),
        (
            "sequence_id".to_string(),
            parameter(ParameterChoice::Int64Param(0)),
        ),
        (
            "custom".to_string(),
            parameter(ParameterChoice::StringParam("x".into())),
        ),
    ]
    .into();
    request.outputs = vec![requested("OUTPUT0")];
    request.outputs[0].parameters = [(
        "binary_data".to_string(),
        parameter(ParameterChoice::BoolParam(true)),
    )]
    .into();
    let response = s.client.model_infer(request).await.unwrap().into_inner();
    assert_eq!(i32s(output(&response, "OUTPUT0").2), vec![2; 16]);

    let mut request = simple_request(&[1; 16], &[1; 16]);
    request.parameters = [(
        "sequence_id".to_string(),
        parameter(ParameterChoice::Uint64Param(42)),
    )]
    .into();
    let error = s.client.model_infer(request).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
    assert!(
        error.message().contains("'sequence_id' is not supported"),
        "{}",
        error.message()
    );
    s.shutdown().await;
}

#[tokio::test]
async fn gzip_and_large_messages() {
    let s = GrpcServer::start(&["identity_bytes", "identity_fp32"]).await;
    let mut gzip = s
        .connect()
        .await
        .send_compressed(CompressionEncoding::Gzip)
        .accept_compressed(CompressionEncoding::Gzip);
    let values: Vec<f32> = (0..64 * 16).map(|v| v as f32).collect();
    let request = raw_request(
        "identity_fp32",
        vec![(
            input("INPUT0", "FP32", &[64, 16]),
            le(&values, f32::to_le_bytes),
        )],
    );
    let response = gzip.model_infer(request).await.unwrap().into_inner();
    assert_eq!(f32s(output(&response, "OUTPUT0").2), values);

    // Past tonic's 4 MiB default in both directions.
    let element: Vec<u8> = (0..24 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let data = bytes_codec::encode([element.as_slice()]);
    let request = raw_request(
        "identity_bytes",
        vec![(input("INPUT0", "BYTES", &[1, 1]), data.clone())],
    );
    let mut client = s.connect().await;
    let response = client.model_infer(request).await.unwrap().into_inner();
    assert_eq!(output(&response, "OUTPUT0").2, &data);
    s.shutdown().await;
}
