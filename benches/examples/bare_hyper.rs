//! The baseline of the load suite: a bare hyper HTTP/1.1 server that
//! answers KServe v2 requests with fixed bodies, doing no inference at all.
//! What it sustains is the ceiling of an HTTP front end on the same core.
//!
//! Usage: `bare_hyper ADDR DIR`. DIR holds the answers, captured from a
//! real server by `benches/load/grpc_vs_http.sh`: `server.json` (GET /v2),
//! `metadata.json` (GET /v2/models/M), `config.json` (GET .../config),
//! `stats.json` (GET .../stats), and `infer_header.json` + `infer_tail.bin`
//! (the JSON header and binary tail answered to every POST .../infer). It
//! prints `bare ready http=ADDR` once listening.

use std::error::Error;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The fixed answers.
struct Answers {
    server: Bytes,
    metadata: Bytes,
    config: Bytes,
    stats: Bytes,
    infer: Bytes,
    infer_header_length: HeaderValue,
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
        let mut infer = BytesMut::with_capacity(header.len() + tail.len());
        infer.extend_from_slice(&header);
        infer.extend_from_slice(&tail);
        Ok(Self {
            server: read("server.json")?,
            metadata: read("metadata.json")?,
            config: read("config.json")?,
            stats: read("stats.json")?,
            infer: infer.freeze(),
            infer_header_length: HeaderValue::from(header.len()),
        })
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

async fn answer(
    answers: Arc<Answers>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    // Read the whole body, as a server must before answering.
    request.into_body().collect().await?;
    let json = |body: &Bytes| reply(StatusCode::OK, "application/json", body.clone());
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let response = match (method, segments.as_slice()) {
        (Method::GET, ["v2"]) => json(&answers.server),
        (Method::GET, ["v2", "health", _]) => reply(StatusCode::OK, "", Bytes::new()),
        (Method::GET, [.., "stats"]) => json(&answers.stats),
        (Method::GET, [.., "config"]) => json(&answers.config),
        (Method::GET, [.., "ready"]) => reply(StatusCode::OK, "", Bytes::new()),
        (Method::GET, ["v2", "models", ..]) => json(&answers.metadata),
        (Method::POST, [.., "infer"]) => {
            let mut response = reply(
                StatusCode::OK,
                "application/octet-stream",
                answers.infer.clone(),
            );
            response.headers_mut().insert(
                "inference-header-content-length",
                answers.infer_header_length.clone(),
            );
            response
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
