//! `ModelStreamInfer`: many requests on one stream, answered in order, with
//! per-request errors that leave the stream open.

use std::time::Duration;

use ferrite_proto::inference::ModelInferRequest;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use super::{f32s, i32s, input, le, output, raw_request, GrpcServer};

fn identity_request(i: usize) -> ModelInferRequest {
    let values: Vec<f32> = (0..16).map(|j| (i * 16 + j) as f32).collect();
    let mut request = raw_request(
        "identity_fp32",
        vec![(
            input("INPUT0", "FP32", &[1, 16]),
            le(&values, f32::to_le_bytes),
        )],
    );
    request.id = format!("r{i}");
    request
}

#[tokio::test]
async fn hundred_requests_answered_in_order() {
    let mut s = GrpcServer::start(&["identity_fp32", "simple"]).await;
    let requests: Vec<ModelInferRequest> = (0..100)
        .map(|i| {
            if i % 10 == 3 {
                let mut request = raw_request(
                    "simple",
                    vec![
                        (
                            input("INPUT0", "INT32", &[1, 16]),
                            le(&[i; 16], i32::to_le_bytes),
                        ),
                        (
                            input("INPUT1", "INT32", &[1, 16]),
                            le(&[1; 16], i32::to_le_bytes),
                        ),
                    ],
                );
                request.id = format!("r{i}");
                request
            } else {
                identity_request(usize::try_from(i).unwrap())
            }
        })
        .collect();
    let responses = s
        .client
        .model_stream_infer(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let answers: Vec<_> = responses.collect::<Result<Vec<_>, _>>().await.unwrap();
    assert_eq!(answers.len(), 100);
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer.error_message, "", "request {i}");
        let response = answer.infer_response.as_ref().unwrap();
        assert_eq!(response.id, format!("r{i}"));
        if i % 10 == 3 {
            let i = i32::try_from(i).unwrap();
            assert_eq!(i32s(output(response, "OUTPUT0").2), vec![i + 1; 16]);
        } else {
            let expected: Vec<f32> = (0..16).map(|j| (i * 16 + j) as f32).collect();
            assert_eq!(f32s(output(response, "OUTPUT0").2), expected);
        }
    }
    s.shutdown().await;
}

#[tokio::test]
async fn an_error_is_answered_in_place_and_the_stream_goes_on() {
    let mut s = GrpcServer::start(&["identity_fp32"]).await;
    let (sender, receiver) = mpsc::channel(4);
    let mut answers = s
        .client
        .model_stream_infer(ReceiverStream::new(receiver))
        .await
        .unwrap()
        .into_inner();
    for i in 0..10 {
        let request = match i {
            2 => {
                let mut request = raw_request("nope", vec![]);
                request.id = "r2".into();
                request
            }
            5 => {
                let mut request = identity_request(5);
                request.inputs[0].shape = vec![2, 16];
                request
            }
            _ => identity_request(i),
        };
        sender.send(request).await.unwrap();
        let answer = answers
            .message()
            .await
            .unwrap()
            .expect("an answer per request");
        let response = answer.infer_response.as_ref().unwrap();
        match i {
            2 => {
                assert_eq!(
                    answer.error_message,
                    "Request for unknown model: 'nope' is not found"
                );
                assert_eq!(
                    (response.model_name.as_str(), response.id.as_str()),
                    ("nope", "r2")
                );
            }
            5 => {
                assert!(
                    answer.error_message.contains("INPUT0"),
                    "{}",
                    answer.error_message
                );
                assert_eq!(response.id, "r5");
            }
            _ => {
                assert_eq!(answer.error_message, "");
                assert_eq!(response.id, format!("r{i}"));
                assert_eq!(f32s(output(response, "OUTPUT0").2)[0], (i * 16) as f32);
            }
        }
    }
    drop(sender);
    assert!(
        answers.message().await.unwrap().is_none(),
        "the stream ends after the client's"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_open_streams() {
    let mut s = GrpcServer::start(&["identity_fp32"]).await;
    let (sender, receiver) = mpsc::channel(4);
    let mut answers = s
        .client
        .model_stream_infer(ReceiverStream::new(receiver))
        .await
        .unwrap()
        .into_inner();
    sender.send(identity_request(1)).await.unwrap();
    assert!(answers.message().await.unwrap().is_some());
    // The client keeps its side open; shutdown must not wait for it.
    tokio::time::timeout(Duration::from_secs(10), s.shutdown())
        .await
        .expect("shutdown finishes with a stream open");
    drop(sender);
}
