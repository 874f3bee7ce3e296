//! The binary tensor data extension: the body after the JSON header holds
//! the raw bytes of the inputs that carry `binary_data_size`, in input
//! order. Inputs are slices of the body, never copies.

use bytes::Bytes;

use crate::error::ServerError;

/// Splits a body into its JSON header and its binary part.
///
/// `header_length` is the `Inference-Header-Content-Length` header: absent,
/// the whole body is JSON.
pub fn split_body(
    body: &Bytes,
    header_length: Option<usize>,
) -> Result<(Bytes, BinarySection), ServerError> {
    let Some(length) = header_length else {
        return Ok((body.clone(), BinarySection::new(Bytes::new())));
    };
    if length > body.len() {
        return Err(ServerError::invalid(format!(
            "Inference-Header-Content-Length is {length} but the request body has only {} bytes",
            body.len()
        )));
    }
    Ok((
        body.slice(..length),
        BinarySection::new(body.slice(length..)),
    ))
}

/// Reads the value of the `Inference-Header-Content-Length` header.
pub fn parse_header_length(value: &[u8]) -> Result<usize, ServerError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.trim().parse::<usize>().ok())
        .ok_or_else(|| {
            ServerError::invalid(format!(
                "Inference-Header-Content-Length must be a byte count, got '{}'",
                String::from_utf8_lossy(value)
            ))
        })
}

/// The binary part of a request body, consumed input by input.
#[derive(Debug)]
pub struct BinarySection {
    data: Bytes,
    offset: usize,
}

impl BinarySection {
    fn new(data: Bytes) -> Self {
        Self { data, offset: 0 }
    }

    /// Takes the next `size` bytes for `input`.
    pub fn take(&mut self, input: &str, size: u64) -> Result<Bytes, ServerError> {
        let remaining = self.data.len() - self.offset;
        let size = usize::try_from(size).ok().filter(|&s| s <= remaining).ok_or_else(|| {
            ServerError::invalid(format!(
                "input '{input}': binary_data_size is {size} but only {remaining} bytes of binary data remain in the request body"
            ))
        })?;
        let slice = self.data.slice(self.offset..self.offset + size);
        self.offset += size;
        Ok(slice)
    }

    /// Checks that every byte was used by an input.
    pub fn finish(self) -> Result<(), ServerError> {
        let left = self.data.len() - self.offset;
        if left > 0 {
            return Err(ServerError::invalid(format!(
                "the request body has {left} bytes of binary data that no input's binary_data_size accounts for"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_inputs_in_order_without_copying() {
        let body = Bytes::from_static(b"{}abcdefg");
        let (json, mut binary) = split_body(&body, Some(2)).unwrap();
        assert_eq!(json.as_ref(), b"{}");
        let first = binary.take("A", 3).unwrap();
        let second = binary.take("B", 4).unwrap();
        assert_eq!(
            (first.as_ref(), second.as_ref()),
            (b"abc".as_slice(), b"defg".as_slice())
        );
        assert_eq!(second.as_ptr(), body[5..].as_ptr());
        binary.finish().unwrap();
    }

    #[test]
    fn parses_the_header() {
        assert_eq!(parse_header_length(b" 42 ").unwrap(), 42);
        let err = parse_header_length(b"-1").unwrap_err();
        assert_eq!(
            err.message,
            "Inference-Header-Content-Length must be a byte count, got '-1'"
        );
        assert!(parse_header_length(b"12x").is_err());
    }

    #[test]
    fn reports_truncation_and_leftovers() {
        let body = Bytes::from_static(b"{}abc");
        let err = split_body(&body, Some(9)).unwrap_err();
        assert_eq!(
            err.message,
            "Inference-Header-Content-Length is 9 but the request body has only 5 bytes"
        );
        let (_, mut binary) = split_body(&body, Some(2)).unwrap();
        let err = binary.take("A", 4).unwrap_err();
        assert_eq!(
            err.message,
            "input 'A': binary_data_size is 4 but only 3 bytes of binary data remain in the request body"
        );
        binary.take("A", 1).unwrap();
        let err = binary.finish().unwrap_err();
        assert!(err
            .message
            .starts_with("the request body has 2 bytes of binary data"));
        let (json, binary) = split_body(&body, None).unwrap();
        assert_eq!(json.len(), 5);
        binary.finish().unwrap();
    }
}
