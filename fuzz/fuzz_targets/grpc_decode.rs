//! The gRPC ModelInfer request path: protobuf decoding of the message, then
//! the server's conversion of its inputs into tensors.
#![no_main]

use ferrite_proto::inference::ModelInferRequest;
use ferrite_server::grpc::decode;
use ferrite_server::limits::Limits;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = ModelInferRequest::decode(data) else {
        return;
    };
    let _ = decode("fuzz", request, &Limits::default());
});
