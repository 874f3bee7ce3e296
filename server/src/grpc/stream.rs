//! `ModelStreamInfer`: one bidirectional stream, many requests in flight,
//! answers in the client's order.
//!
//! A reader task takes requests off the stream and starts each as its own
//! task, so that the requests of one stream reach the batcher together; it
//! queues the task handles, in arrival order, on a channel of
//! [`MAX_IN_FLIGHT`] places (a full channel stops the reading: back-pressure
//! on the client). A writer task awaits the handles in that order and sends
//! each answer. A failed request is answered with its `error_message` and
//! the stream goes on. When the client goes away the requests still queued
//! are cancelled.

use std::sync::Arc;
use std::time::Instant;

use ferrite_proto::inference::{ModelInferRequest, ModelInferResponse, ModelStreamInferResponse};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

use super::infer;
use crate::state::ServerState;
use crate::trace::TraceParent;

/// Requests of one stream that may be decoded, queued or executing at once.
pub const MAX_IN_FLIGHT: usize = 64;

type Answer = Result<ModelStreamInferResponse, Status>;

/// What the writer sends next: a request's answer once it is ready, or the
/// error that ended the incoming stream.
enum Next {
    Answer(JoinHandle<ModelStreamInferResponse>),
    Broken(Status),
}

/// Starts serving one stream and returns the stream of answers. `parent`,
/// the client's span from the stream's metadata, is the parent of every
/// traced request of the stream.
pub(crate) fn start(
    state: Arc<ServerState>,
    incoming: Streaming<ModelInferRequest>,
    stopped: watch::Receiver<bool>,
    parent: Option<TraceParent>,
) -> ReceiverStream<Answer> {
    let (queue, pending) = mpsc::channel(MAX_IN_FLIGHT);
    let (answers, outgoing) = mpsc::channel(MAX_IN_FLIGHT);
    tokio::spawn(read(state, incoming, stopped, queue, parent));
    tokio::spawn(write(pending, answers));
    ReceiverStream::new(outgoing)
}

async fn read(
    state: Arc<ServerState>,
    mut incoming: Streaming<ModelInferRequest>,
    mut stopped: watch::Receiver<bool>,
    queue: mpsc::Sender<Next>,
    parent: Option<TraceParent>,
) {
    loop {
        let message = tokio::select! {
            message = incoming.message() => message,
            _ = stopped.wait_for(|stop| *stop) => break,
            () = queue.closed() => break,
        };
        let next = match message {
            Ok(Some(request)) => {
                let arrival = Instant::now();
                let state = Arc::clone(&state);
                Next::Answer(tokio::spawn(async move {
                    answer(&state, request, arrival, parent).await
                }))
            }
            Ok(None) => break,
            Err(status) => Next::Broken(status),
        };
        let broken = matches!(next, Next::Broken(_));
        if queue.send(next).await.is_err() || broken {
            break;
        }
    }
}

async fn write(mut pending: mpsc::Receiver<Next>, answers: mpsc::Sender<Answer>) {
    while let Some(next) = pending.recv().await {
        let answer = match next {
            Next::Answer(mut task) => {
                let joined = tokio::select! {
                    joined = &mut task => joined,
                    () = answers.closed() => {
                        task.abort();
                        break;
                    }
                };
                Ok(joined.unwrap_or_else(|error| {
                    failed(format!(
                        "the inference request stopped before it was answered: {error}"
                    ))
                }))
            }
            Next::Broken(status) => Err(status),
        };
        if answers.send(answer).await.is_err() {
            break;
        }
    }
    pending.close();
    while let Some(next) = pending.recv().await {
        if let Next::Answer(task) = next {
            task.abort();
        }
    }
}

/// Runs one request of the stream; an error becomes the answer's
/// `error_message`, with the request's model, version and id beside it.
async fn answer(
    state: &ServerState,
    request: ModelInferRequest,
    arrival: Instant,
    parent: Option<TraceParent>,
) -> ModelStreamInferResponse {
    let header = ModelInferResponse {
        model_name: request.model_name.clone(),
        model_version: request.model_version.clone(),
        id: request.id.clone(),
        ..Default::default()
    };
    match infer::infer(state, request, arrival, parent).await {
        Ok(response) => ModelStreamInferResponse {
            error_message: String::new(),
            infer_response: Some(response),
        },
        Err(error) => ModelStreamInferResponse {
            error_message: error.message,
            infer_response: Some(header),
        },
    }
}

fn failed(message: String) -> ModelStreamInferResponse {
    ModelStreamInferResponse {
        error_message: message,
        infer_response: None,
    }
}
