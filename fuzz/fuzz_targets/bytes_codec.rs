//! The BYTES tensor layout: every length-prefixed element the reader yields
//! must re-encode to the same bytes, and the element count must agree.
#![no_main]

use ferrite_backends::bytes_codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let elements: Result<Vec<&[u8]>, String> = bytes_codec::iter(data).collect();
    match (elements, bytes_codec::count_elements(data)) {
        (Ok(elements), Ok(count)) => {
            assert_eq!(elements.len(), count);
            assert_eq!(bytes_codec::encode(elements.iter().copied()).as_ref(), data);
        }
        (Err(_), Err(_)) => {}
        (elements, count) => panic!("iter and count_elements disagree: {elements:?} vs {count:?}"),
    }
});
