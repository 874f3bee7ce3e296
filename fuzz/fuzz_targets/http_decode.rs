//! The HTTP inference body decoder, JSON alone and with the binary tensor
//! data extension. The first input byte chooses the form: odd means a binary
//! body whose JSON header length is the next two bytes (little-endian,
//! clamped to the body); even means a plain JSON body.
#![no_main]

use bytes::Bytes;
use ferrite_server::http::codec::decode_request;
use ferrite_server::limits::Limits;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let limits = Limits::default();
    if mode & 1 == 0 {
        let _ = decode_request(&Bytes::copy_from_slice(rest), None, &limits);
        return;
    }
    let Some((length, body)) = rest.split_first_chunk::<2>() else {
        return;
    };
    let length = usize::from(u16::from_le_bytes(*length)).min(body.len());
    let _ = decode_request(&Bytes::copy_from_slice(body), Some(length), &limits);
});
