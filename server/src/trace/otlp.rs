//! Finished spans, and their OTLP encoding: one `ExportTraceServiceRequest`
//! per batch, with the server's resource and one instrumentation scope.

use bytes::Bytes;
use ferrite_proto::opentelemetry::proto::collector::trace::v1::ExportTraceServiceRequest;
use ferrite_proto::opentelemetry::proto::common::v1::{
    any_value, AnyValue, InstrumentationScope, KeyValue,
};
use ferrite_proto::opentelemetry::proto::resource::v1::Resource;
use ferrite_proto::opentelemetry::proto::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;

use super::context::{SpanId, TraceId};
use crate::state::{SERVER_NAME, SERVER_VERSION};

/// An attribute value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Int(i64),
}

/// What a span stands for, in OpenTelemetry's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The server's handling of a client's request.
    Server,
    /// A step inside the server.
    Internal,
}

/// One ended span, waiting for export.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanData {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent: Option<SpanId>,
    pub name: String,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Vec<(&'static str, Value)>,
    /// Named time stamps (Unix nanoseconds).
    pub events: Vec<(&'static str, u64)>,
    /// The request's error, if it failed.
    pub error: Option<String>,
}

/// The span flags OTLP carries: W3C trace flags "sampled", and bit 8 set
/// because whether the parent is remote is known.
fn flags(parent_remote: bool) -> u32 {
    const SAMPLED: u32 = 0x01;
    const HAS_IS_REMOTE: u32 = 0x100;
    const IS_REMOTE: u32 = 0x200;
    SAMPLED | HAS_IS_REMOTE | if parent_remote { IS_REMOTE } else { 0 }
}

fn key_value(key: &str, value: Value) -> KeyValue {
    let value = match value {
        Value::Text(text) => any_value::Value::StringValue(text),
        Value::Int(int) => any_value::Value::IntValue(int),
    };
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
    }
}

impl SpanData {
    /// The OTLP span; `parent_remote` tells whether the parent is the
    /// client's span.
    fn into_proto(self, parent_remote: bool) -> Span {
        let status = match self.error {
            Some(message) => Status {
                message,
                code: status::StatusCode::Error as i32,
            },
            None => Status::default(),
        };
        Span {
            trace_id: self.trace_id.to_vec(),
            span_id: self.span_id.to_vec(),
            parent_span_id: self.parent.map(|p| p.to_vec()).unwrap_or_default(),
            flags: flags(parent_remote),
            name: self.name,
            kind: match self.kind {
                Kind::Server => span::SpanKind::Server,
                Kind::Internal => span::SpanKind::Internal,
            } as i32,
            start_time_unix_nano: self.start_ns,
            end_time_unix_nano: self.end_ns,
            attributes: self
                .attributes
                .into_iter()
                .map(|(key, value)| key_value(key, value))
                .collect(),
            events: self
                .events
                .into_iter()
                .map(|(name, time)| span::Event {
                    time_unix_nano: time,
                    name: name.to_string(),
                    ..Default::default()
                })
                .collect(),
            status: Some(status),
            ..Default::default()
        }
    }
}

/// The resource attributes: `service.name` ("ferrite" unless given) and
/// the ones of the command line, in order (a repeated key keeps its last
/// value).
pub fn resource(given: &[(String, String)]) -> Vec<(String, String)> {
    let mut attributes = vec![("service.name".to_string(), SERVER_NAME.to_string())];
    for (key, value) in given {
        match attributes.iter_mut().find(|(k, _)| k == key) {
            Some(existing) => existing.1.clone_from(value),
            None => attributes.push((key.clone(), value.clone())),
        }
    }
    attributes
}

/// The body of one export: `spans` under `resource`, encoded. A span whose
/// parent is not among the server's own spans has a remote parent.
pub fn encode(resource: &[(String, String)], spans: Vec<SpanData>) -> Bytes {
    let local: Vec<SpanId> = spans.iter().map(|s| s.span_id).collect();
    let spans = spans
        .into_iter()
        .map(|span| {
            let remote = span.parent.is_some_and(|p| !local.contains(&p));
            span.into_proto(remote)
        })
        .collect();
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: resource
                    .iter()
                    .map(|(k, v)| key_value(k, Value::Text(v.clone())))
                    .collect(),
                dropped_attributes_count: 0,
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: SERVER_NAME.to_string(),
                    version: SERVER_VERSION.to_string(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    };
    Bytes::from(request.encode_to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: u8, parent: Option<u8>) -> SpanData {
        SpanData {
            trace_id: [1; 16],
            span_id: [id; 8],
            parent: parent.map(|p| [p; 8]),
            name: format!("s{id}"),
            kind: Kind::Internal,
            start_ns: 10,
            end_ns: 20,
            attributes: vec![("a", Value::Text("x".into())), ("n", Value::Int(-1))],
            events: vec![("QUEUE_START", 15)],
            error: (id == 2).then(|| "failed".to_string()),
        }
    }

    #[test]
    fn encodes_a_batch_that_decodes_back() {
        let resource = resource(&[
            ("service.name".into(), "svc".into()),
            ("deployment.environment".into(), "test".into()),
        ]);
        let body = encode(&resource, vec![span(1, Some(9)), span(2, Some(1))]);
        let decoded = ExportTraceServiceRequest::decode(body).unwrap();
        let resource_spans = &decoded.resource_spans[0];
        let attributes = &resource_spans.resource.as_ref().unwrap().attributes;
        assert_eq!(attributes.len(), 2);
        assert_eq!(attributes[0].key, "service.name");
        assert_eq!(
            attributes[0].value.as_ref().unwrap().value,
            Some(any_value::Value::StringValue("svc".into()))
        );
        let spans = &resource_spans.scope_spans[0].spans;
        assert_eq!(
            resource_spans.scope_spans[0].scope.as_ref().unwrap().name,
            "ferrite"
        );
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[0].parent_span_id, vec![9; 8]);
        assert_eq!(
            spans[0].flags, 0x301,
            "the client's span is a remote parent"
        );
        assert_eq!(spans[1].flags, 0x101);
        assert_eq!(spans[0].events[0].name, "QUEUE_START");
        assert_eq!(spans[0].events[0].time_unix_nano, 15);
        assert_eq!(
            spans[0].attributes[1].value.as_ref().unwrap().value,
            Some(any_value::Value::IntValue(-1))
        );
        let status = spans[1].status.as_ref().unwrap();
        assert_eq!(status.code, status::StatusCode::Error as i32);
        assert_eq!(status.message, "failed");
        assert_eq!(spans[0].status.as_ref().unwrap().code, 0);
    }

    #[test]
    fn service_name_defaults_to_ferrite() {
        assert_eq!(
            resource(&[]),
            vec![("service.name".to_string(), "ferrite".to_string())]
        );
    }
}
