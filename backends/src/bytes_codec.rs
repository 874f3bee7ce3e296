//! The BYTES tensor layout shared by the binary protocol and the engines:
//! each element is a 4-byte little-endian length followed by its bytes.

use bytes::{BufMut, Bytes, BytesMut};

/// Counts the elements of a serialized BYTES tensor, checking every length.
pub fn count_elements(data: &[u8]) -> Result<usize, String> {
    let mut count = 0;
    for element in iter(data) {
        element?;
        count += 1;
    }
    Ok(count)
}

/// Iterates the elements of a serialized BYTES tensor.
pub fn iter(data: &[u8]) -> impl Iterator<Item = Result<&[u8], String>> {
    let mut rest = data;
    let mut failed = false;
    std::iter::from_fn(move || {
        if rest.is_empty() || failed {
            return None;
        }
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            failed = true;
            return Some(Err(format!(
                "truncated length prefix at byte {}",
                data.len() - rest.len()
            )));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            failed = true;
            return Some(Err(format!(
                "element at byte {} claims {len} bytes, {} remain",
                data.len() - rest.len(),
                tail.len()
            )));
        }
        let (element, tail) = tail.split_at(len);
        rest = tail;
        Some(Ok(element))
    })
}

/// Serializes elements into the length-prefixed layout.
pub fn encode<'a>(elements: impl IntoIterator<Item = &'a [u8]>) -> Bytes {
    let mut out = BytesMut::new();
    for element in elements {
        push(&mut out, element);
    }
    out.freeze()
}

/// Appends one element to a buffer in the length-prefixed layout. Request
/// size limits keep elements far below the 4 GiB that a length can express;
/// a longer element would be cut at that length.
pub fn push(out: &mut BytesMut, element: &[u8]) {
    let len = u32::try_from(element.len()).unwrap_or(u32::MAX);
    out.put_u32_le(len);
    out.put_slice(&element[..len as usize]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let data = encode([b"hello".as_slice(), b"".as_slice(), b"\xff\x00".as_slice()]);
        let elements: Vec<&[u8]> = iter(&data).map(Result::unwrap).collect();
        assert_eq!(elements, vec![b"hello".as_slice(), b"", b"\xff\x00"]);
        assert_eq!(count_elements(&data), Ok(3));
        assert_eq!(count_elements(&[]), Ok(0));
    }

    #[test]
    fn rejects_truncation() {
        assert!(count_elements(&[1, 0]).unwrap_err().contains("truncated"));
        assert!(count_elements(&[5, 0, 0, 0, b'a'])
            .unwrap_err()
            .contains("claims 5 bytes"));
    }
}
