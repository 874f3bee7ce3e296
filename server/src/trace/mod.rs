//! Request tracing, to Triton's trace files or exported with OpenTelemetry,
//! and the settings of Triton's trace extension.
//!
//! When the trace level is not OFF, sampled inference requests (HTTP, gRPC
//! and gRPC streams alike) are traced. In `triton` mode (tritonserver's
//! default) each becomes one JSON object with its time stamps in the trace
//! file, followed at level TENSORS by one object for each input and output
//! tensor (see [`file`]). In `opentelemetry` mode they become spans shaped like
//! tritonserver's OpenTelemetry mode:
//!
//! * `InferRequest` (kind SERVER): the front end's handling, from receiving
//!   the request to sending the response (HTTP: its body handed to the
//!   connection; gRPC: the response handed over for sending). Events
//!   `HTTP_RECV_START`, `HTTP_RECV_END` (body read), `HTTP_SEND_START` and
//!   `HTTP_SEND_END`, or `GRPC_WAITREAD_END` (message decoded) and
//!   `GRPC_SEND_START`.
//! * a child span named after the model: the request inside the model,
//!   with events `REQUEST_START` (validation begins), `QUEUE_START` (handed
//!   to the scheduler) and `REQUEST_END` (its answer is back).
//!
//! Both carry `triton.model_name`, `triton.model_version`,
//! `triton.request_id` (when the request has an id) and `triton.trace_id`
//! (the trace's number in this process); the root also carries
//! `triton.protocol` (`http` or `grpc`). A failed request's spans have
//! status ERROR with the error message.
//!
//! * `compute`, a child of the model span: the execution of the batch that
//!   answered the request, with events `COMPUTE_START` (an instance took
//!   the batch), `COMPUTE_INPUT_END` (inputs gathered),
//!   `COMPUTE_OUTPUT_START` (the engine returned) and `COMPUTE_END`
//!   (outputs split among the batch's requests). Requests batched together
//!   share these instants. A request that failed has no compute span.
//!
//! A W3C `traceparent` header (HTTP) or metadata entry (gRPC, for a stream
//! the stream's own) makes the client's span the parent of `InferRequest`,
//! in the client's trace. As in tritonserver, a request whose parent is
//! sampled is traced whatever the rate and count; other requests are
//! sampled by the settings ([`settings`]).
//!
//! Export: OTLP/HTTP with protobuf bodies, built from the OTLP messages of
//! `ferrite-proto` and POSTed with hyper (see [`export`]). Writing this
//! small exporter rather than depending on the OpenTelemetry SDK keeps the
//! build light and lets the queue be exactly what ferrite needs: bounded,
//! never blocking a request, dropping and counting what does not fit.
//! `service.name` defaults to `ferrite`; `--trace-config
//! opentelemetry,resource=service.name=triton-inference-server` gives
//! Triton's.

pub mod config;
pub mod context;
pub mod export;
pub mod file;
pub mod otlp;
pub mod settings;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ferrite_backends::NamedTensor;
use ferrite_scheduler::ComputeTimes;

pub use config::{parse_trace_config, trace_options, TraceConfig, TraceMode, TraceOptions};
pub use context::{TraceParent, TRACEPARENT};
pub use settings::{Given, Output, SettingsView, TraceLevel, TraceSettings, TraceTable};

use context::{SpanId, TraceId};
use export::Exporter;
use file::{TensorRecord, Timestamp, TraceFileWriter, TraceRecord};
use otlp::{Kind, SpanData, Value};

/// The front end a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Grpc,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Grpc => "grpc",
        }
    }
}

/// A point in a request's life, with Triton's name for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    HttpRecvStart,
    HttpRecvEnd,
    HttpSendStart,
    HttpSendEnd,
    GrpcWaitReadEnd,
    GrpcSendStart,
    RequestStart,
    QueueStart,
    RequestEnd,
}

/// Where a traced tensor was seen (level TENSORS), with Triton's name for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorActivity {
    /// An input, as the request was queued.
    QueueInput,
    /// An output, as the model answered it.
    BackendOutput,
}

impl TensorActivity {
    fn name(self) -> &'static str {
        match self {
            TensorActivity::QueueInput => "TENSOR_QUEUE_INPUT",
            TensorActivity::BackendOutput => "TENSOR_BACKEND_OUTPUT",
        }
    }
}

impl Activity {
    fn name(self) -> &'static str {
        match self {
            Activity::HttpRecvStart => "HTTP_RECV_START",
            Activity::HttpRecvEnd => "HTTP_RECV_END",
            Activity::HttpSendStart => "HTTP_SEND_START",
            Activity::HttpSendEnd => "HTTP_SEND_END",
            Activity::GrpcWaitReadEnd => "GRPC_WAITREAD_END",
            Activity::GrpcSendStart => "GRPC_SEND_START",
            Activity::RequestStart => "REQUEST_START",
            Activity::QueueStart => "QUEUE_START",
            Activity::RequestEnd => "REQUEST_END",
        }
    }

    /// Whether the model span holds this event (else the root does).
    fn in_model(self) -> bool {
        matches!(
            self,
            Activity::RequestStart | Activity::QueueStart | Activity::RequestEnd
        )
    }
}

/// Where finished traces go.
#[derive(Debug, Clone)]
enum Sink {
    /// Triton mode with a trace file.
    File(Arc<TraceFileWriter>),
    /// Triton mode without a file: nothing is traced (the settings refuse
    /// TIMESTAMPS).
    Nowhere,
    OpenTelemetry(Arc<Exporter>),
}

/// The settings, the sampling and where traces go, shared by both front
/// ends.
#[derive(Debug)]
pub struct Tracer {
    settings: TraceTable,
    sink: Sink,
    traces: AtomicU64,
}

impl Tracer {
    /// Starts the trace file writer, or the exporter on the current runtime.
    pub fn start(options: TraceOptions) -> Result<Self, String> {
        let file = options
            .file
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let sink = match (options.mode, &options.file.path) {
            (TraceMode::Triton, Some(path)) => Sink::File(Arc::new(
                TraceFileWriter::start(path.clone(), options.file.log_frequency)
                    .map_err(|e| format!("cannot start the trace file writer: {e}"))?,
            )),
            (TraceMode::Triton, None) => Sink::Nowhere,
            (TraceMode::OpenTelemetry, _) => {
                Sink::OpenTelemetry(Arc::new(Exporter::start(options.export)))
            }
        };
        let output = Output {
            mode: options.mode,
            file,
            log_frequency: options.file.log_frequency,
        };
        Ok(Self {
            settings: TraceTable::new(options.settings, output),
            sink,
            traces: AtomicU64::new(0),
        })
    }

    /// The trace extension's settings.
    pub fn settings(&self) -> &TraceTable {
        &self.settings
    }

    /// Starts the trace of a request for `model` (version `version`) that
    /// the front end began to receive at `received`, if it is sampled.
    pub fn begin(
        &self,
        model: &str,
        version: i64,
        protocol: Protocol,
        parent: Option<TraceParent>,
        received: Instant,
    ) -> Option<RequestTrace> {
        let level = self
            .settings
            .sample(model, parent.is_some_and(|p| p.sampled))?;
        let now = Instant::now();
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let unix_received = unix_now.saturating_sub(nanos(now.saturating_duration_since(received)));
        let first = match protocol {
            Protocol::Http => Activity::HttpRecvStart,
            Protocol::Grpc => Activity::GrpcWaitReadEnd,
        };
        let mut marks = Vec::with_capacity(6);
        marks.push((first, received));
        Some(RequestTrace {
            sink: self.sink.clone(),
            number: self.traces.fetch_add(1, Ordering::Relaxed) + 1,
            trace_id: parent.map_or_else(context::new_trace_id, |p| p.trace_id),
            parent: parent.map(|p| p.span_id),
            root_id: context::new_span_id(),
            model_id: context::new_span_id(),
            protocol,
            model: model.to_string(),
            version,
            request_id: String::new(),
            received,
            unix_received,
            marks,
            compute: None,
            level,
            tensors: Vec::new(),
        })
    }

    /// Writes or exports the traces still queued and stops the writer or
    /// exporter.
    pub async fn shutdown(&self) {
        match &self.sink {
            Sink::OpenTelemetry(exporter) => exporter.shutdown().await,
            Sink::File(writer) => {
                let writer = Arc::clone(writer);
                let _ = tokio::task::spawn_blocking(move || writer.shutdown()).await;
            }
            Sink::Nowhere => {}
        }
    }
}

fn nanos(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// The trace of one sampled request, recorded as it goes and exported by
/// [`RequestTrace::finish`].
#[derive(Debug)]
pub struct RequestTrace {
    sink: Sink,
    number: u64,
    trace_id: TraceId,
    parent: Option<SpanId>,
    root_id: SpanId,
    model_id: SpanId,
    protocol: Protocol,
    model: String,
    version: i64,
    request_id: String,
    received: Instant,
    /// `received` in Unix nanoseconds: span times are monotonic instants
    /// placed on the wall clock once.
    unix_received: u64,
    marks: Vec<(Activity, Instant)>,
    /// The execution that answered the request.
    compute: Option<ComputeTimes>,
    /// What the trace records.
    level: TraceLevel,
    /// The tensors recorded at level TENSORS.
    tensors: Vec<TensorRecord>,
}

impl RequestTrace {
    /// Records the execution that answered the request.
    pub fn set_compute(&mut self, compute: ComputeTimes) {
        self.compute = Some(compute);
    }

    /// Records `tensors` as seen at `activity`, when the trace's level
    /// includes TENSORS.
    pub fn record_tensors(&mut self, activity: TensorActivity, tensors: &[NamedTensor]) {
        if self.level.tensors {
            let (id, name) = (self.number, activity.name());
            self.tensors
                .extend(tensors.iter().map(|t| TensorRecord::new(id, name, t)));
        }
    }

    /// Records `activity` as happening now.
    pub fn mark(&mut self, activity: Activity) {
        self.marks.push((activity, Instant::now()));
    }

    /// The request's `id`, when it has one.
    pub fn set_request_id(&mut self, id: &str) {
        id.clone_into(&mut self.request_id);
    }

    fn unix(&self, at: Instant) -> u64 {
        self.unix_received
            .saturating_add(nanos(at.saturating_duration_since(self.received)))
    }

    fn attributes(&self) -> Vec<(&'static str, Value)> {
        let mut attributes = vec![
            ("triton.model_name", Value::Text(self.model.clone())),
            ("triton.model_version", Value::Int(self.version)),
            (
                "triton.trace_id",
                Value::Int(i64::try_from(self.number).unwrap_or(i64::MAX)),
            ),
        ];
        if !self.request_id.is_empty() {
            attributes.push(("triton.request_id", Value::Text(self.request_id.clone())));
        }
        attributes
    }

    /// Ends the trace as the response is handed over for sending (`error`
    /// when the request failed) and queues its spans for export.
    pub fn finish(mut self, error: Option<&str>) {
        self.mark(match self.protocol {
            Protocol::Http => Activity::HttpSendStart,
            Protocol::Grpc => Activity::GrpcSendStart,
        });
        self.submit(error);
    }

    /// Marks `HTTP_SEND_START` now; the trace ends, with `HTTP_SEND_END`,
    /// when the returned guard is dropped: the HTTP front end keeps it in
    /// the response body, which the connection drops once it sent it.
    pub fn sending(mut self, error: Option<&str>) -> SendingTrace {
        self.mark(Activity::HttpSendStart);
        SendingTrace {
            trace: Some(self),
            error: error.map(str::to_string),
        }
    }

    /// Writes the trace or queues its spans for export.
    fn submit(&self, error: Option<&str>) {
        match &self.sink {
            Sink::OpenTelemetry(exporter) => self.export(exporter, error),
            Sink::File(writer) => writer.submit(&self.record(), &self.tensors),
            Sink::Nowhere => {}
        }
    }
}

/// A trace whose response is being sent; see [`RequestTrace::sending`].
#[derive(Debug)]
pub struct SendingTrace {
    trace: Option<RequestTrace>,
    error: Option<String>,
}

impl Drop for SendingTrace {
    fn drop(&mut self) {
        if let Some(mut trace) = self.trace.take() {
            trace.mark(Activity::HttpSendEnd);
            trace.submit(self.error.as_deref());
        }
    }
}

impl RequestTrace {
    /// The compute events, when the request was executed.
    fn compute_events(&self) -> Vec<(&'static str, u64)> {
        self.compute
            .map(|compute| {
                vec![
                    ("COMPUTE_START", self.unix(compute.start)),
                    ("COMPUTE_INPUT_END", self.unix(compute.input_end)),
                    ("COMPUTE_OUTPUT_START", self.unix(compute.output_start)),
                    ("COMPUTE_END", self.unix(compute.end)),
                ]
            })
            .unwrap_or_default()
    }

    /// The trace as Triton's trace file holds it: every event in time
    /// order, at level TIMESTAMPS.
    fn record(&self) -> TraceRecord {
        let mut timestamps: Vec<Timestamp> = if self.level.timestamps {
            self.marks
                .iter()
                .map(|&(activity, at)| (activity.name(), self.unix(at)))
                .chain(self.compute_events())
                .map(|(name, ns)| Timestamp { name, ns })
                .collect()
        } else {
            Vec::new()
        };
        timestamps.sort_by_key(|t| t.ns);
        TraceRecord {
            id: self.number,
            model_name: self.model.clone(),
            model_version: self.version,
            request_id: self.request_id.clone(),
            timestamps,
        }
    }

    /// Queues the request's spans for export.
    fn export(&self, exporter: &Exporter, error: Option<&str>) {
        let end = self.unix(Instant::now());
        let events = |in_model: bool| -> Vec<(&'static str, u64)> {
            self.marks
                .iter()
                .filter(|(activity, _)| activity.in_model() == in_model)
                .map(|&(activity, at)| (activity.name(), self.unix(at)))
                .collect()
        };
        let model_events = events(true);
        let compute_events = self.compute_events();
        if let (Some(&(_, start)), Some(&(_, end)), false) = (
            compute_events.first(),
            compute_events.last(),
            model_events.is_empty(),
        ) {
            exporter.submit(SpanData {
                trace_id: self.trace_id,
                span_id: context::new_span_id(),
                parent: Some(self.model_id),
                name: "compute".to_string(),
                kind: Kind::Internal,
                start_ns: start,
                end_ns: end,
                attributes: self.attributes(),
                events: compute_events,
                error: None,
            });
        }
        if let Some(&(_, start)) = model_events.first() {
            let end = model_events
                .iter()
                .find(|(name, _)| *name == Activity::RequestEnd.name())
                .map_or(end, |&(_, at)| at);
            exporter.submit(SpanData {
                trace_id: self.trace_id,
                span_id: self.model_id,
                parent: Some(self.root_id),
                name: self.model.clone(),
                kind: Kind::Internal,
                start_ns: start,
                end_ns: end,
                attributes: self.attributes(),
                events: model_events,
                error: error.map(str::to_string),
            });
        }
        let mut attributes = self.attributes();
        attributes.push(("triton.protocol", Value::Text(self.protocol.name().into())));
        exporter.submit(SpanData {
            trace_id: self.trace_id,
            span_id: self.root_id,
            parent: self.parent,
            name: "InferRequest".to_string(),
            kind: Kind::Server,
            start_ns: self.unix_received,
            end_ns: end,
            attributes,
            events: events(false),
            error: error.map(str::to_string),
        });
    }
}
