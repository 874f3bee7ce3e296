//! Request bodies (size limit, `Content-Encoding`) and the response body
//! made of a chain of buffers.

use std::collections::VecDeque;
use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{header, HeaderMap};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::ServerError;
use crate::trace::SendingTrace;

/// Reads a whole request body of at most `limit` bytes, refusing a larger
/// one as soon as its `Content-Length` or its data passes the limit, and
/// decompresses a gzip or deflate `Content-Encoding` (the limit applies to
/// the decompressed size too).
pub(super) async fn read(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ServerError> {
    let too_large = || {
        ServerError::invalid(format!(
            "the request body is larger than the limit of {limit} bytes (--http-max-input-size)"
        ))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let compression = Compression::of(headers)?;
    let collected = Limited::new(body, limit).collect().await.map_err(|error| {
        if error.downcast_ref::<LengthLimitError>().is_some() {
            too_large()
        } else {
            ServerError::invalid(format!("cannot read the request body: {error}"))
        }
    })?;
    let data = collected.to_bytes();
    match compression {
        None => Ok(data),
        Some(compression) => tokio::task::spawn_blocking(move || compression.decode(&data, limit))
            .await
            .map_err(|e| ServerError::internal(format!("request decompression stopped: {e}")))?,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Gzip,
    Deflate,
}

impl Compression {
    /// The request's `Content-Encoding`; `None` for identity.
    fn of(headers: &HeaderMap) -> Result<Option<Self>, ServerError> {
        let Some(value) = headers.get(header::CONTENT_ENCODING) else {
            return Ok(None);
        };
        let text = value
            .to_str()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        match text.as_str() {
            "" | "identity" => Ok(None),
            "gzip" | "x-gzip" => Ok(Some(Self::Gzip)),
            "deflate" => Ok(Some(Self::Deflate)),
            _ => Err(ServerError::invalid(format!(
                "unsupported Content-Encoding '{}'; ferrite accepts gzip, deflate and identity",
                String::from_utf8_lossy(value.as_bytes())
            ))),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Gzip => "gzip",
            Self::Deflate => "deflate",
        }
    }

    /// Decompresses `data`, refusing output beyond `limit` bytes. Deflate
    /// is the zlib format, as HTTP defines it.
    fn decode(self, data: &[u8], limit: usize) -> Result<Bytes, ServerError> {
        let reader: Box<dyn Read + '_> = match self {
            Self::Gzip => Box::new(flate2::read::GzDecoder::new(data)),
            Self::Deflate => Box::new(flate2::read::ZlibDecoder::new(data)),
        };
        let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(limit));
        reader
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| {
                ServerError::invalid(format!(
                    "cannot decompress the {} request body: {e}",
                    self.name()
                ))
            })?;
        if out.len() > limit {
            return Err(ServerError::invalid(format!(
                "the decompressed request body is larger than the limit of {limit} bytes (--http-max-input-size)"
            )));
        }
        Ok(Bytes::from(out))
    }
}

/// A response body sent as a sequence of buffers, each written as is.
#[derive(Debug)]
pub(super) struct ChainBody {
    chunks: VecDeque<Bytes>,
    remaining: u64,
}

impl ChainBody {
    pub(super) fn new(chunks: Vec<Bytes>) -> Self {
        let remaining = chunks.iter().map(|c| c.len() as u64).sum();
        Self {
            chunks: chunks.into_iter().filter(|c| !c.is_empty()).collect(),
            remaining,
        }
    }
}

impl http_body::Body for ChainBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let next = self.chunks.pop_front();
        if let Some(chunk) = &next {
            self.remaining -= chunk.len() as u64;
        }
        Poll::Ready(next.map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// A response body that holds a request's trace until the connection has
/// sent it (or dropped it), so that the trace ends with `HTTP_SEND_END`.
pub(super) struct TracedBody {
    pub body: Body,
    /// Held only to be dropped with the body.
    pub _trace: SendingTrace,
}

impl http_body::Body for TracedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn decompresses_within_the_limit() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&[7u8; 1000]).unwrap();
        let packed = gz.finish().unwrap();
        assert_eq!(Compression::Gzip.decode(&packed, 1000).unwrap().len(), 1000);
        let err = Compression::Gzip.decode(&packed, 999).unwrap_err();
        assert!(
            err.message.contains("larger than the limit of 999 bytes"),
            "{}",
            err.message
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(b"hello").unwrap();
        assert_eq!(
            Compression::Deflate
                .decode(&z.finish().unwrap(), 10)
                .unwrap()
                .as_ref(),
            b"hello"
        );
        let err = Compression::Deflate.decode(b"not zlib", 10).unwrap_err();
        assert!(
            err.message
                .starts_with("cannot decompress the deflate request body"),
            "{}",
            err.message
        );
    }

    #[test]
    fn reads_the_encoding_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(Compression::of(&headers).unwrap(), None);
        headers.insert(header::CONTENT_ENCODING, "identity".parse().unwrap());
        assert_eq!(Compression::of(&headers).unwrap(), None);
        headers.insert(header::CONTENT_ENCODING, "GZIP".parse().unwrap());
        assert_eq!(Compression::of(&headers).unwrap(), Some(Compression::Gzip));
        headers.insert(header::CONTENT_ENCODING, "br".parse().unwrap());
        let err = Compression::of(&headers).unwrap_err();
        assert_eq!(
            err.message,
            "unsupported Content-Encoding 'br'; ferrite accepts gzip, deflate and identity"
        );
    }

    #[test]
    fn chain_reports_its_exact_size() {
        let body = ChainBody::new(vec![
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cde"),
        ]);
        assert_eq!(http_body::Body::size_hint(&body).exact(), Some(5));
    }
}
