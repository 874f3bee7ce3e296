//! The baseline of the load suite: a bare hyper HTTP/1.1 server that
//! answers KServe v2 requests with fixed bodies, doing no inference at all.
//! What it sustains is the ceiling of an HTTP front end on the same core.
//!
//! Usage: `bare_hyper ADDR DIR`. DIR holds the answers, captured from a
//! real server by `benches/load/grpc_vs_http.sh`: `server.json` (GET /v2),
//! `metadata.json` (GET /v2/models/M), `config.json` (GET .../config), and
//! `infer_header.json` + `infer_tail.bin` (the JSON header and binary tail
//! answered to every POST .../infer, with the request's `id` added, as
//! perf_analyzer's asynchronous mode matches answers by id). Statistics
//! (GET .../stats) count the infer requests answered, as perf_analyzer
//! expects them to grow. It prints `bare ready http=ADDR` once listening.

use std::error::Error;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The fixed answers, and the count of infer requests answered.
struct Answers {
    server: Bytes,
    metadata: Bytes,
    config: Bytes,
    infer_header: Bytes,
    infer_tail: Bytes,
    model: String,
    version: String,
    answered: AtomicU64,
}

impl Answers {
    fn load(dir: &Path) -> Result<Self, Box<dyn Error>> {
        let read = |name: &str| -> Result<Bytes, Box<dyn Error>> {
            let path = dir.join(name);
            std::fs::read(&path)
                .map(Bytes::from)
                .map_err(|e| format!("{}: {e}", path.display()).into())
        };
        let header = read("infer_header.json")?;
        let tail = read("infer_tail.bin")?;
        if !header.starts_with(b"{") {
            return Err("infer_header.json is not a JSON object".into());
        }
        let metadata = read("metadata.json")?;
        let parsed: serde_json::Value = serde_json::from_slice(&metadata)?;
        let model = parsed["name"].as_str().ok_or("metadata.json has no name")?;
        let version = parsed["versions"][0]
            .as_str()
            .ok_or("metadata.json lists no version")?;
        Ok(Self {
            server: read("server.json")?,
            model: model.to_owned(),
            version: version.to_owned(),
            metadata,
            config: read("config.json")?,
            infer_header: header,
            infer_tail: tail,
            answered: AtomicU64::new(0),
        })
    }

    /// The statistics document, in the order a server writes its fields:
    /// every answered request a successful inference of its own execution,
    /// taking no time.
    fn stats(&self) -> Bytes {
        let count = self.answered.load(Ordering::Relaxed);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let zero = r#"{"count":0,"ns":0}"#;
        let name = serde_json::Value::String(self.model.clone());
        let version = serde_json::Value::String(self.version.clone());
        Bytes::from(format!(
            concat!(
                r#"{{"model_stats":[{{"name":{name},"version":{version},"last_inference":{now_ms},"#,
                r#""inference_count":{count},"execution_count":{count},"inference_stats":{{"#,
                r#""success":{{"count":{count},"ns":0}},"fail":{zero},"queue":{zero},"#,
                r#""compute_input":{zero},"compute_infer":{zero},"compute_output":{zero},"#,
                r#""cache_hit":{zero},"cache_miss":{zero}}},"batch_stats":[]}}]}}"#
            ),
            name = name,
            version = version,
            now_ms = now_ms,
            count = count,
            zero = zero,
        ))
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if !content_type.is_empty() {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

/// The `id` of a request's JSON header, if it has one.
fn request_id(json: &[u8]) -> Option<String> {
    let header: serde_json::Value = serde_json::from_slice(json).ok()?;
    header.get("id")?.as_str().map(str::to_owned)
}

/// The fixed infer answer, with `id` as the first field when given.
fn infer_reply(answers: &Answers, id: Option<String>) -> Response<Full<Bytes>> {
    let mut body =
        BytesMut::with_capacity(answers.infer_header.len() + answers.infer_tail.len() + 64);
    body.extend_from_slice(b"{");
    if let Some(id) = id {
        body.extend_from_slice(b"\"id\":");
        body.extend_from_slice(serde_json::Value::String(id).to_string().as_bytes());
        body.extend_from_slice(b",");
    }
    body.extend_from_slice(&answers.infer_header[1..]);
    let header_length = body.len();
    body.extend_from_slice(&answers.infer_tail);
    let mut response = reply(StatusCode::OK, "application/octet-stream", body.freeze());
    response.headers_mut().insert(
        "inference-header-content-length",
        HeaderValue::from(header_length),
    );
    response
}

async fn answer(
    answers: Arc<Answers>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let json_length = request
        .headers()
        .get("inference-header-content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    // Read the whole body, as a server must before answering.
    let body = request.into_body().collect().await?.to_bytes();
    let json = |body: &Bytes| reply(StatusCode::OK, "application/json", body.clone());
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let response = match (method, segments.as_slice()) {
        (Method::GET, ["v2"]) => json(&answers.server),
        (Method::GET, ["v2", "health", _]) => reply(StatusCode::OK, "", Bytes::new()),
        (Method::GET, [.., "stats"]) => json(&answers.stats()),
        (Method::GET, [.., "config"]) => json(&answers.config),
        (Method::GET, [.., "ready"]) => reply(StatusCode::OK, "", Bytes::new()),
        (Method::GET, ["v2", "models", ..]) => json(&answers.metadata),
        (Method::POST, [.., "infer"]) => {
            answers.answered.fetch_add(1, Ordering::Relaxed);
            let json = &body[..json_length.unwrap_or(body.len()).min(body.len())];
            infer_reply(&answers, request_id(json))
        }
        _ => reply(StatusCode::NOT_FOUND, "", Bytes::new()),
    };
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(dir)) = (args.next(), args.next()) else {
        return Err("usage: bare_hyper ADDR DIR".into());
    };
    let addr: SocketAddr = addr.parse().map_err(|e| format!("address '{addr}': {e}"))?;
    let answers = Arc::new(Answers::load(Path::new(&dir))?);
    let listener = TcpListener::bind(addr).await?;
    println!("bare ready http={}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let answers = Arc::clone(&answers);
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(Arc::clone(&answers), request));
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection: {error}");
            }
        });
    }
}
