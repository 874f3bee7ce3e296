//! The batch span processor and the OTLP/HTTP exporter.
//!
//! Ended spans go into a bounded queue (`bsp_max_queue_size`) without
//! waiting: when it is full the span is dropped and counted, so tracing
//! never blocks a request nor grows memory. One background task takes the
//! spans off the queue and POSTs them (`application/x-protobuf`) to the
//! collector when `bsp_max_export_batch_size` spans are waiting or
//! `bsp_schedule_delay` after the first span of a batch, whichever comes
//! first. A failed export is logged and its spans are dropped; the next
//! batch tries again on a new connection. At shutdown the queue is
//! flushed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, Request, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::otlp::{self, SpanData};

/// Time to connect to the collector.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for the collector to answer one export (OTLP's default).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time the shutdown waits for the last exports.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(15);

/// Where the collector listens: an `http://host:port/path` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: String,
    port: u16,
    /// `host:port`, for the Host header.
    authority: String,
    path: String,
}

impl Endpoint {
    /// Triton's default collector URL.
    pub const DEFAULT: &'static str = "http://localhost:4318/v1/traces";

    /// Parses `host:port/path`, with or without `http://`. HTTPS is
    /// refused (ferrite has no TLS client); the port defaults to 80 and
    /// the path to `/`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let full = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        let uri: Uri = full
            .parse()
            .map_err(|e| format!("'{url}' is not a URL: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "'{url}': only http:// collectors are supported (no TLS)"
            ));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("'{url}' has no host"))?;
        let host = authority.host();
        if host.is_empty() {
            return Err(format!("'{url}' has no host"));
        }
        let port = authority.port_u16().unwrap_or(80);
        Ok(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            authority: authority.as_str().to_string(),
            path: uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
        })
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)
    }
}

/// The batch span processor's settings and the collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    pub endpoint: Endpoint,
    /// Resource attributes besides `service.name`'s default.
    pub resource: Vec<(String, String)>,
    pub max_queue_size: usize,
    pub schedule_delay: Duration,
    pub max_export_batch_size: usize,
}

impl Default for ExportOptions {
    /// OpenTelemetry's batch span processor defaults, as tritonserver's.
    fn default() -> Self {
        Self {
            endpoint: Endpoint::parse(Endpoint::DEFAULT).expect("the default URL parses"),
            resource: Vec::new(),
            max_queue_size: 2048,
            schedule_delay: Duration::from_millis(5000),
            max_export_batch_size: 512,
        }
    }
}

/// The queue of ended spans and the task that exports them.
#[derive(Debug)]
pub struct Exporter {
    queue: mpsc::Sender<SpanData>,
    dropped: Arc<AtomicU64>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Exporter {
    /// Starts the export task on the current runtime.
    pub fn start(options: ExportOptions) -> Self {
        let (queue, spans) = mpsc::channel(options.max_queue_size.max(1));
        let (stop, stopped) = watch::channel(false);
        let dropped = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(run(options, spans, stopped, Arc::clone(&dropped)));
        Self {
            queue,
            dropped,
            stop,
            task: Mutex::new(Some(task)),
        }
    }

    /// Queues an ended span; drops (and counts) it when the queue is full.
    pub fn submit(&self, span: SpanData) {
        if self.queue.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Exports what is queued and stops the task.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            if tokio::time::timeout(FLUSH_TIMEOUT, task).await.is_err() {
                tracing::warn!("trace export did not finish within {FLUSH_TIMEOUT:?} of shutdown");
            }
        }
    }
}

async fn run(
    options: ExportOptions,
    mut spans: mpsc::Receiver<SpanData>,
    mut stopped: watch::Receiver<bool>,
    dropped: Arc<AtomicU64>,
) {
    let resource = otlp::resource(&options.resource);
    let mut collector = Collector::new(options.endpoint.clone());
    let limit = options.max_export_batch_size.max(1);
    let mut batch = Vec::with_capacity(limit);
    let mut deadline: Option<Instant> = None;
    loop {
        let due = deadline.unwrap_or_else(Instant::now);
        tokio::select! {
            span = spans.recv() => match span {
                Some(span) => {
                    deadline.get_or_insert_with(|| Instant::now() + options.schedule_delay);
                    batch.push(span);
                    if batch.len() < limit {
                        continue;
                    }
                }
                None => break,
            },
            () = tokio::time::sleep_until(due), if deadline.is_some() => {}
            _ = stopped.wait_for(|stop| *stop) => break,
        }
        deadline = None;
        collector
            .export(&resource, std::mem::take(&mut batch), &dropped)
            .await;
    }
    while let Ok(span) = spans.try_recv() {
        batch.push(span);
        if batch.len() == limit {
            collector
                .export(&resource, std::mem::take(&mut batch), &dropped)
                .await;
        }
    }
    if !batch.is_empty() {
        collector.export(&resource, batch, &dropped).await;
    }
}

/// An HTTP/1.1 connection to the collector, opened when needed.
struct Collector {
    endpoint: Endpoint,
    connection: Option<SendRequest<Full<Bytes>>>,
    /// Dropped spans already reported in the log.
    reported: u64,
}

impl Collector {
    fn new(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            connection: None,
            reported: 0,
        }
    }

    async fn export(
        &mut self,
        resource: &[(String, String)],
        spans: Vec<SpanData>,
        dropped: &AtomicU64,
    ) {
        let count = spans.len() as u64;
        let body = otlp::encode(resource, spans);
        if let Err(error) = self.post(body).await {
            self.connection = None;
            dropped.fetch_add(count, Ordering::Relaxed);
            tracing::warn!(
                "cannot export {count} span(s) to {}: {error}",
                self.endpoint
            );
        }
        let total = dropped.load(Ordering::Relaxed);
        if total > self.reported {
            tracing::warn!(
                "{} span(s) dropped so far ({} since the last report): the trace queue was full or an export failed",
                total,
                total - self.reported
            );
            self.reported = total;
        }
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let address = (self.endpoint.host.as_str(), self.endpoint.port);
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| format!("no connection within {CONNECT_TIMEOUT:?}"))?
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake failed: {e}"))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("trace collector connection closed: {error}");
            }
        });
        Ok(sender)
    }

    async fn post(&mut self, body: Bytes) -> Result<(), String> {
        let mut sender = match self.connection.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.connect().await?,
        };
        let request = Request::post(self.endpoint.path.as_str())
            .header(header::HOST, self.endpoint.authority.as_str())
            .header(header::CONTENT_TYPE, "application/x-protobuf")
            .body(Full::new(body))
            .map_err(|e| format!("cannot build the request: {e}"))?;
        let exchange = async {
            sender
                .ready()
                .await
                .map_err(|e| format!("the connection failed: {e}"))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("the request failed: {e}"))?;
            let status = response.status();
            let answer = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("the answer failed: {e}"))?
                .to_bytes();
            if status.is_success() {
                Ok(())
            } else {
                let text = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
                Err(format!("the collector answered {status}: {text}"))
            }
        };
        tokio::time::timeout(EXPORT_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no answer within {EXPORT_TIMEOUT:?}"))??;
        self.connection = Some(sender);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_collector_urls() {
        let endpoint = Endpoint::parse("localhost:4318/v1/traces").unwrap();
        assert_eq!(endpoint.to_string(), Endpoint::DEFAULT);
        let endpoint = Endpoint::parse("http://[::1]:9000").unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("::1", 9000));
        assert_eq!(endpoint.path, "/");
        assert_eq!(Endpoint::parse("http://collector/x").unwrap().port, 80);
        let error = Endpoint::parse("https://collector:4318/v1/traces").unwrap_err();
        assert!(error.contains("only http://"), "{error}");
        assert!(Endpoint::parse("http://:4318/").is_err());
        assert!(Endpoint::parse("a b").is_err());
    }
}
