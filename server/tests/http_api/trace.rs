//! Request tracing: spans exported over OTLP/HTTP to a collector run by
//! the test, for HTTP, gRPC and gRPC stream requests.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Router;
use clap::Parser;
use ferrite_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use ferrite_proto::inference::model_infer_request::InferInputTensor;
use ferrite_proto::inference::ModelInferRequest;
use ferrite_proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
use ferrite_proto::opentelemetry::proto::common::v1::{any_value, KeyValue};
use ferrite_proto::opentelemetry::proto::trace::v1::Span;
use ferrite_server::{Options, Server};
use prost::Message;
use serde_json::{json, Value};
use tempfile::TempDir;
use tonic::transport::Channel;

use crate::common::repository_with;

/// What the collector received: resource attributes and spans.
#[derive(Default)]
struct Received {
    resource: Vec<KeyValue>,
    spans: Vec<Span>,
}

/// An OTLP/HTTP collector on a free port that keeps what it is sent.
pub struct Collector {
    pub url: String,
    received: Arc<Mutex<Received>>,
}

async fn accept(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if headers["content-type"] != "application/x-protobuf" {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE;
    }
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut received = received.lock().unwrap();
    for resource_spans in request.resource_spans {
        received.resource = resource_spans.resource.unwrap_or_default().attributes;
        for scope in resource_spans.scope_spans {
            received.spans.extend(scope.spans);
        }
    }
    StatusCode::OK
}

impl Collector {
    pub async fn start() -> Self {
        let received = Arc::new(Mutex::new(Received::default()));
        let router = Router::new()
            .route("/v1/traces", axum::routing::post(accept))
            .with_state(Arc::clone(&received));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { url, received }
    }

    fn spans(&self) -> Vec<Span> {
        self.received.lock().unwrap().spans.clone()
    }

    fn resource(&self) -> Vec<KeyValue> {
        self.received.lock().unwrap().resource.clone()
    }

    /// The spans once at least `count` have arrived (fails after 20 s).
    async fn wait_for(&self, count: usize) -> Vec<Span> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let spans = self.spans();
            if spans.len() >= count {
                return spans;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{} of {count} spans arrived",
                spans.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A server with HTTP and gRPC exporting to `collector`, with extra flags.
pub struct TracedServer {
    pub http: String,
    pub grpc: GrpcInferenceServiceClient<Channel>,
    pub client: reqwest::Client,
    server: Server,
    _repository: TempDir,
}

impl TracedServer {
    pub async fn start(models: &[&str], collector: &Collector, flags: &[&str]) -> Self {
        let repository = repository_with(models);
        let root = repository.path().to_str().unwrap().to_owned();
        let url = format!("opentelemetry,url={}", collector.url);
        let mut args = vec![
            "ferrite",
            "--model-repository",
            &root,
            "--http-port=0",
            "--http-address=127.0.0.1",
            "--grpc-port=0",
            "--grpc-address=127.0.0.1",
            "--allow-metrics=false",
            "--trace-config",
            "mode=opentelemetry",
            "--trace-config",
            &url,
            "--trace-config",
            "opentelemetry,bsp_schedule_delay=20",
        ];
        args.extend_from_slice(flags);
        let server = Server::start(Options::try_parse_from(args).unwrap())
            .await
            .unwrap_or_else(|e| panic!("the server did not start: {e:#}"));
        let channel = Channel::from_shared(format!("http://{}", server.grpc.unwrap()))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let grpc = GrpcInferenceServiceClient::new(channel);
        Self {
            http: format!("http://{}", server.http.unwrap()),
            grpc,
            client: reqwest::Client::new(),
            server,
            _repository: repository,
        }
    }

    /// Infers `simple` over HTTP with request id `id` and optional
    /// `traceparent`; answers the status.
    pub async fn infer_http(&self, model: &str, id: &str, parent: Option<&str>) -> StatusCode {
        let mut request = self
            .client
            .post(format!("{}/v2/models/{model}/infer", self.http))
            .json(&request_json(model, id));
        if let Some(parent) = parent {
            request = request.header("traceparent", parent);
        }
        request.send().await.unwrap().status()
    }

    /// Shuts down, which exports every queued span.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// A valid request body for `simple` or `identity_fp32`.
fn request_json(model: &str, id: &str) -> Value {
    match model {
        "simple" => json!({"id": id, "inputs": [
            {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": vec![1; 16]},
            {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": vec![2; 16]},
        ]}),
        _ => json!({"id": id, "inputs": [
            {"name": "INPUT0", "shape": [1, 16], "datatype": "FP32", "data": vec![1.0; 16]},
        ]}),
    }
}

/// A gRPC request for `simple` with typed contents.
fn grpc_request(id: &str) -> ModelInferRequest {
    let input = |name: &str| InferInputTensor {
        name: name.into(),
        datatype: "INT32".into(),
        shape: vec![1, 16],
        contents: Some(ferrite_proto::inference::InferTensorContents {
            int_contents: vec![3; 16],
            ..Default::default()
        }),
        ..Default::default()
    };
    ModelInferRequest {
        model_name: "simple".into(),
        id: id.into(),
        inputs: vec![input("INPUT0"), input("INPUT1")],
        ..Default::default()
    }
}

fn text(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            any_value::Value::IntValue(i) => Some(i.to_string()),
            _ => None,
        }
    })
}

fn events(span: &Span) -> Vec<&str> {
    span.events.iter().map(|e| e.name.as_str()).collect()
}

/// The spans of one traced request.
struct RequestSpans<'a> {
    root: &'a Span,
    model: &'a Span,
    /// Only a request that was executed has one.
    compute: Option<&'a Span>,
}

/// The root span of request `id`, its model span and its compute span.
fn request_spans<'a>(spans: &'a [Span], id: &str) -> RequestSpans<'a> {
    let of_request: Vec<&Span> = spans
        .iter()
        .filter(|s| text(&s.attributes, "triton.request_id").as_deref() == Some(id))
        .collect();
    let named =
        |wanted: &dyn Fn(&str) -> bool| of_request.iter().copied().find(|s| wanted(&s.name));
    let found = RequestSpans {
        root: named(&|n| n == "InferRequest")
            .unwrap_or_else(|| panic!("no InferRequest span for {id}")),
        model: named(&|n| n != "InferRequest" && n != "compute")
            .unwrap_or_else(|| panic!("no model span for {id}")),
        compute: named(&|n| n == "compute"),
    };
    let expected = 2 + usize::from(found.compute.is_some());
    assert_eq!(of_request.len(), expected, "spans of request {id}");
    found
}

/// Checks the compute span of an executed request: inside its model span,
/// after QUEUE_START, with Triton's four events in order.
fn check_compute(model: &Span, compute: &Span) {
    assert_eq!(compute.trace_id, model.trace_id);
    assert_eq!(
        compute.parent_span_id, model.span_id,
        "the model span's child"
    );
    assert_eq!(
        events(compute),
        [
            "COMPUTE_START",
            "COMPUTE_INPUT_END",
            "COMPUTE_OUTPUT_START",
            "COMPUTE_END"
        ]
    );
    let times: Vec<u64> = compute.events.iter().map(|e| e.time_unix_nano).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(compute.start_time_unix_nano, times[0]);
    assert_eq!(compute.end_time_unix_nano, times[3]);
    let queued = model.events[1].time_unix_nano;
    assert!(
        queued <= compute.start_time_unix_nano,
        "computed after queueing"
    );
    assert!(compute.end_time_unix_nano <= model.end_time_unix_nano);
}

/// Checks the shape of one traced request's spans.
fn check_request(root: &Span, model: &Span, model_name: &str, protocol: &str) {
    assert_eq!(model.name, model_name);
    assert_eq!(model.trace_id, root.trace_id);
    assert_eq!(
        model.parent_span_id, root.span_id,
        "the model span is the root's child"
    );
    assert_eq!(
        text(&root.attributes, "triton.model_name").unwrap(),
        model_name
    );
    assert_eq!(
        text(&model.attributes, "triton.model_name").unwrap(),
        model_name
    );
    assert_eq!(text(&root.attributes, "triton.model_version").unwrap(), "1");
    assert_eq!(text(&root.attributes, "triton.protocol").unwrap(), protocol);
    assert_eq!(
        events(model),
        ["REQUEST_START", "QUEUE_START", "REQUEST_END"]
    );
    let root_events = match protocol {
        "http" => vec![
            "HTTP_RECV_START",
            "HTTP_RECV_END",
            "HTTP_SEND_START",
            "HTTP_SEND_END",
        ],
        _ => vec!["GRPC_WAITREAD_END", "GRPC_SEND_START"],
    };
    assert_eq!(events(root), root_events);
    let times: Vec<u64> = model.events.iter().map(|e| e.time_unix_nano).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "events in order: {times:?}"
    );
    assert!(root.start_time_unix_nano <= model.start_time_unix_nano);
    assert!(model.end_time_unix_nano <= root.end_time_unix_nano);
    assert_eq!(model.start_time_unix_nano, times[0]);
    assert_eq!(model.end_time_unix_nano, times[2]);
    assert_eq!(
        root.status.as_ref().map_or(0, |s| s.code),
        0,
        "not an error"
    );
}

const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_grpc_and_stream_requests_are_traced() {
    let collector = Collector::start().await;
    let mut s = TracedServer::start(
        &["simple"],
        &collector,
        &[
            "--trace-config=rate=1",
            "--trace-config=level=TIMESTAMPS",
            "--trace-config=opentelemetry,resource=deployment.environment=test",
        ],
    )
    .await;
    assert_eq!(s.infer_http("simple", "h1", None).await, StatusCode::OK);
    let parent = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01");
    assert_eq!(
        s.infer_http("simple", "h2", Some(&parent)).await,
        StatusCode::OK
    );
    s.grpc.model_infer(grpc_request("g1")).await.unwrap();
    let mut call = tonic::Request::new(grpc_request("g2"));
    call.metadata_mut()
        .insert("traceparent", parent.parse().unwrap());
    s.grpc.model_infer(call).await.unwrap();
    let stream = tokio_stream::iter(vec![grpc_request("s1"), grpc_request("s2")]);
    let mut answers = s
        .grpc
        .model_stream_infer(stream)
        .await
        .unwrap()
        .into_inner();
    for _ in 0..2 {
        let answer = answers.message().await.unwrap().unwrap();
        assert_eq!(answer.error_message, "");
    }
    // A bad request is traced with an error status.
    let (status, _) = {
        let response = s
            .client
            .post(format!("{}/v2/models/simple/infer", s.http))
            .json(&json!({"id": "bad", "inputs": []}))
            .send()
            .await
            .unwrap();
        (response.status(), ())
    };
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let spans = collector.wait_for(20).await;
    for (id, protocol) in [
        ("h1", "http"),
        ("h2", "http"),
        ("g1", "grpc"),
        ("g2", "grpc"),
        ("s1", "grpc"),
        ("s2", "grpc"),
    ] {
        let RequestSpans {
            root,
            model,
            compute,
        } = request_spans(&spans, id);
        check_request(root, model, "simple", protocol);
        check_compute(
            model,
            compute.unwrap_or_else(|| panic!("{id} was executed")),
        );
        if id.ends_with('2') && id != "s2" {
            assert_eq!(
                hex(&root.trace_id),
                PARENT_TRACE,
                "{id} joins the client's trace"
            );
            assert_eq!(hex(&root.parent_span_id), PARENT_SPAN);
        } else {
            assert!(root.parent_span_id.is_empty(), "{id} starts a trace");
            assert_ne!(hex(&root.trace_id), PARENT_TRACE);
        }
    }
    let h1 = request_spans(&spans, "h1").root;
    let g1 = request_spans(&spans, "g1").root;
    assert_ne!(h1.trace_id, g1.trace_id, "each request has its own trace");
    let bad_spans = request_spans(&spans, "bad");
    let (bad, bad_model) = (bad_spans.root, bad_spans.model);
    assert!(bad_spans.compute.is_none(), "the bad request never ran");
    let status = bad.status.as_ref().unwrap();
    assert_eq!(status.code, 2, "ERROR");
    assert!(
        status.message.contains("expected 2 inputs"),
        "{}",
        status.message
    );
    assert_eq!(bad_model.status.as_ref().unwrap().code, 2);
    assert_eq!(events(bad_model), ["REQUEST_START", "REQUEST_END"]);

    let resource = collector.resource();
    assert_eq!(text(&resource, "service.name").unwrap(), "ferrite");
    assert_eq!(text(&resource, "deployment.environment").unwrap(), "test");
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_count_and_level_decide_what_is_traced() {
    let collector = Collector::start().await;
    let s = TracedServer::start(
        &["simple", "identity_fp32"],
        &collector,
        &[
            "--trace-config=rate=2",
            "--trace-config=count=2",
            "--trace-config=level=TIMESTAMPS",
        ],
    )
    .await;
    // Rate 2: the 1st and 3rd requests; count 2: nothing after them.
    for i in 0..8 {
        assert_eq!(
            s.infer_http("simple", &format!("r{i}"), None).await,
            StatusCode::OK
        );
    }
    let (status, settings) = get_json(&s, "/v2/trace/setting").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(settings["trace_count"], "0", "the count is used up");
    // A sampled parent is traced whatever the count.
    let parent = format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01");
    assert_eq!(
        s.infer_http("simple", "p", Some(&parent)).await,
        StatusCode::OK
    );
    // Level OFF for one model: nothing, even with a sampled parent.
    let (status, _) = post(
        &s,
        "/v2/models/identity_fp32/trace/setting",
        &json!({"trace_level": ["OFF"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s.infer_http("identity_fp32", "off", Some(&parent)).await,
        StatusCode::OK
    );
    s.shutdown().await;

    let spans = collector.spans();
    let ids: Vec<String> = spans
        .iter()
        .filter(|s| s.name == "InferRequest")
        .filter_map(|s| text(&s.attributes, "triton.request_id"))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(sorted, ["p", "r0", "r2"], "spans of {ids:?}");
    assert_eq!(spans.len(), 9, "root, model and compute spans of each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_changed_at_run_time_apply_to_following_requests() {
    let collector = Collector::start().await;
    let s = TracedServer::start(
        &["simple", "identity_fp32"],
        &collector,
        &["--trace-config=rate=1"],
    )
    .await;
    // The level is OFF by default.
    assert_eq!(s.infer_http("simple", "before", None).await, StatusCode::OK);
    // A model override traces that model only.
    let (status, settings) = post(
        &s,
        "/v2/models/identity_fp32/trace/setting",
        &json!({"trace_level": ["TIMESTAMPS"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{settings}");
    assert_eq!(
        s.infer_http("simple", "global-off", None).await,
        StatusCode::OK
    );
    assert_eq!(
        s.infer_http("identity_fp32", "model-on", None).await,
        StatusCode::OK
    );
    let spans = collector.wait_for(3).await;
    let RequestSpans {
        root,
        model,
        compute,
    } = request_spans(&spans, "model-on");
    check_request(root, model, "identity_fp32", "http");
    check_compute(model, compute.expect("model-on was executed"));
    // Clearing the override brings the global OFF back for the model.
    let (status, settings) = post(
        &s,
        "/v2/models/identity_fp32/trace/setting",
        &json!({"trace_level": null}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(settings["trace_level"], json!(["OFF"]));
    assert_eq!(
        s.infer_http("identity_fp32", "cleared", None).await,
        StatusCode::OK
    );
    // Turning the global level on traces every model.
    let (status, _) = post(
        &s,
        "/v2/trace/setting",
        &json!({"trace_level": ["TIMESTAMPS"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s.infer_http("simple", "global-on", None).await,
        StatusCode::OK
    );
    s.shutdown().await;

    let mut ids: Vec<String> = collector
        .spans()
        .iter()
        .filter(|s| s.name == "InferRequest")
        .filter_map(|s| text(&s.attributes, "triton.request_id"))
        .collect();
    ids.sort();
    assert_eq!(ids, ["global-on", "model-on"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_does_not_hold_requests() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let collector = Collector {
        url: format!("http://127.0.0.1:{port}/v1/traces"),
        received: Arc::default(),
    };
    let s = TracedServer::start(
        &["simple"],
        &collector,
        &[
            "--trace-config=rate=1",
            "--trace-config=level=TIMESTAMPS",
            "--trace-config=opentelemetry,bsp_max_queue_size=2",
            "--trace-config=opentelemetry,bsp_max_export_batch_size=2",
        ],
    )
    .await;
    for i in 0..10 {
        assert_eq!(
            s.infer_http("simple", &format!("q{i}"), None).await,
            StatusCode::OK
        );
    }
    s.shutdown().await;
}

/// GETs `path` from the server and reads the JSON answer.
pub async fn get_json(s: &TracedServer, path: &str) -> (StatusCode, Value) {
    let response = s
        .client
        .get(format!("{}{path}", s.http))
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn post(s: &TracedServer, path: &str, body: &Value) -> (StatusCode, Value) {
    let response = s
        .client
        .post(format!("{}{path}", s.http))
        .json(body)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}
