//! The one error type of both front ends, and the one table that maps its
//! kind to an HTTP status and a gRPC code (Triton's mapping).

use ferrite_scheduler::SchedulerError;

/// What went wrong, in the terms both protocols share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Unknown model, version or endpoint.
    NotFound,
    /// Model not ready, queue full, server shutting down.
    Unavailable,
    /// A protocol feature ferrite does not provide.
    Unsupported,
    /// A failure inside the server or an engine.
    Internal,
    /// Anything wrong with the request itself.
    InvalidArgument,
}

impl ErrorKind {
    /// HTTP status and gRPC code of this kind, as Triton answers them.
    pub fn codes(self) -> (u16, tonic::Code) {
        match self {
            ErrorKind::NotFound => (404, tonic::Code::NotFound),
            ErrorKind::Unavailable => (503, tonic::Code::Unavailable),
            ErrorKind::Unsupported => (501, tonic::Code::Unimplemented),
            ErrorKind::Internal => (500, tonic::Code::Internal),
            ErrorKind::InvalidArgument => (400, tonic::Code::InvalidArgument),
        }
    }
}

/// An error answered to a client: its kind and a message that names the
/// offending model, tensor or field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServerError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ServerError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    pub fn http_status(&self) -> u16 {
        self.kind.codes().0
    }

    pub fn grpc_code(&self) -> tonic::Code {
        self.kind.codes().1
    }
}

impl ServerError {
    /// A scheduler's refusal or failure for a request to `model`.
    pub fn from_scheduler(model: &str, error: SchedulerError) -> Self {
        match error {
            SchedulerError::QueueFull { .. }
            | SchedulerError::Stopped
            | SchedulerError::TimedOut => {
                Self::unavailable(format!("inference request for model '{model}' {error}"))
            }
            SchedulerError::Execution(_) | SchedulerError::Internal(_) => {
                Self::internal(format!("model '{model}': {error}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_triton() {
        let cases = [
            (ErrorKind::NotFound, 404, tonic::Code::NotFound),
            (ErrorKind::Unavailable, 503, tonic::Code::Unavailable),
            (ErrorKind::Unsupported, 501, tonic::Code::Unimplemented),
            (ErrorKind::Internal, 500, tonic::Code::Internal),
            (
                ErrorKind::InvalidArgument,
                400,
                tonic::Code::InvalidArgument,
            ),
        ];
        for (kind, http, grpc) in cases {
            let error = ServerError::new(kind, "x");
            assert_eq!(error.http_status(), http);
            assert_eq!(error.grpc_code(), grpc);
        }
    }

    #[test]
    fn queue_full_is_unavailable() {
        let error =
            ServerError::from_scheduler("m", SchedulerError::QueueFull { max_queue_size: 4 });
        assert_eq!(error.kind, ErrorKind::Unavailable);
        assert!(error.message.contains("maximum queue size of 4"));
        let error = ServerError::from_scheduler("m", SchedulerError::Execution("boom".into()));
        assert_eq!(error.kind, ErrorKind::Internal);
    }
}
