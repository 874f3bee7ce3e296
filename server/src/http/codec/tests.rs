use bytes::Bytes;
use ferrite_backends::{bytes_codec, DataType, NamedTensor, Tensor};
use half::{bf16, f16};
use serde_json::{json, Value};

use super::*;
use crate::error::ErrorKind;

fn decode_json(body: &str) -> Result<DecodedRequest, ServerError> {
    decode_request(
        &Bytes::copy_from_slice(body.as_bytes()),
        None,
        &Limits::default(),
    )
}

fn decode_value(value: &Value) -> DecodedRequest {
    decode_ok(&value.to_string())
}

fn decode_ok(body: &str) -> DecodedRequest {
    decode_json(body).unwrap_or_else(|e| panic!("{}", e.message))
}

fn error_of(body: &str) -> String {
    let error = decode_json(body).unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidArgument);
    error.message
}

/// A request with one input "X", written with `datatype` before `data` as
/// clients write it (`json!` would sort the keys).
fn input(dtype: &str, shape: Value, data: Value) -> String {
    format!(r#"{{"inputs":[{{"name":"X","shape":{shape},"datatype":"{dtype}","data":{data}}}]}}"#)
}

fn only_tensor(request: &DecodedRequest) -> &Tensor {
    assert_eq!(request.inputs.len(), 1);
    &request.inputs[0].tensor
}

fn le<const N: usize, T: Copy>(values: &[T], to: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to(v)).collect()
}

#[test]
fn json_data_of_every_type() {
    let cases: Vec<(&str, Value, Vec<u8>)> = vec![
        ("BOOL", json!([true, false]), vec![1, 0]),
        ("UINT8", json!([0, 255]), vec![0, 255]),
        (
            "UINT16",
            json!([1, 65535]),
            le(&[1u16, 65535], u16::to_le_bytes),
        ),
        (
            "UINT32",
            json!([7, 4294967295u64]),
            le(&[7u32, u32::MAX], u32::to_le_bytes),
        ),
        (
            "UINT64",
            json!([0, u64::MAX]),
            le(&[0u64, u64::MAX], u64::to_le_bytes),
        ),
        (
            "INT8",
            json!([-128, 127]),
            le(&[-128i8, 127], i8::to_le_bytes),
        ),
        (
            "INT16",
            json!([-32768, 5]),
            le(&[i16::MIN, 5], i16::to_le_bytes),
        ),
        (
            "INT32",
            json!([-1, 2147483647]),
            le(&[-1i32, i32::MAX], i32::to_le_bytes),
        ),
        (
            "INT64",
            json!([i64::MIN, 3]),
            le(&[i64::MIN, 3], i64::to_le_bytes),
        ),
        (
            "FP16",
            json!([1.5, -2]),
            le(&[f16::from_f32(1.5), f16::from_f32(-2.0)], f16::to_le_bytes),
        ),
        (
            "BF16",
            json!([0.25, 3]),
            le(
                &[bf16::from_f32(0.25), bf16::from_f32(3.0)],
                bf16::to_le_bytes,
            ),
        ),
        (
            "FP32",
            json!([0.1, 2]),
            le(&[0.1f32, 2.0], f32::to_le_bytes),
        ),
        (
            "FP64",
            json!([0.1, -7]),
            le(&[0.1f64, -7.0], f64::to_le_bytes),
        ),
        (
            "BYTES",
            json!(["ab", ""]),
            bytes_codec::encode([b"ab".as_slice(), b""]).to_vec(),
        ),
    ];
    for (dtype, data, bytes) in cases {
        let request = decode_ok(&input(dtype, json!([2]), data));
        let tensor = only_tensor(&request);
        assert_eq!(tensor.dtype().kserve_name(), dtype);
        assert_eq!(tensor.shape(), &[2]);
        assert_eq!(tensor.data().as_ref(), bytes.as_slice(), "{dtype}");
    }
}

#[test]
fn nested_and_flat_data_agree() {
    let flat = decode_ok(&input("INT32", json!([2, 3]), json!([1, 2, 3, 4, 5, 6])));
    let nested = decode_ok(&input(
        "INT32",
        json!([2, 3]),
        json!([[1, 2, 3], [4, 5, 6]]),
    ));
    assert_eq!(only_tensor(&flat), only_tensor(&nested));
    let scalar = decode_ok(&input("FP32", json!([]), json!(2.5)));
    assert_eq!(only_tensor(&scalar).data().as_ref(), &2.5f32.to_le_bytes());
}

#[test]
fn data_before_datatype_is_parsed_after_it() {
    let body = r#"{"inputs":[{"data":[[1,2],[3,4]],"name":"X","shape":[2,2],"datatype":"UINT8"}]}"#;
    let request = decode_json(body).unwrap();
    assert_eq!(only_tensor(&request).data().as_ref(), &[1, 2, 3, 4]);
    let body = r#"{"inputs":[{"data":[1,300],"name":"X","shape":[2],"datatype":"UINT8"}]}"#;
    let message = error_of(body);
    assert!(
        message.starts_with("input 'X': data: value 300 is out of range for UINT8"),
        "{message}"
    );
}

#[test]
fn element_errors_name_the_input() {
    let message = error_of(&input("INT8", json!([2]), json!([1, 128])));
    assert!(
        message.starts_with("input 'X': value 128 is out of range for INT8 at line 1"),
        "{message}"
    );
    let message = error_of(&input("INT32", json!([1]), json!([1.5])));
    assert!(
        message.starts_with("input 'X': expected an integer for INT32 data, got 1.5"),
        "{message}"
    );
    let message = error_of(&input("BOOL", json!([1]), json!([1])));
    assert!(
        message.starts_with("input 'X': BOOL data must be true or false"),
        "{message}"
    );
    let message = error_of(&input("FP16", json!([1]), json!([70000])));
    assert!(
        message.starts_with("input 'X': value 70000 is out of range for FP16"),
        "{message}"
    );
    let message = error_of(&input("FP32", json!([1]), json!([null])));
    assert!(
        message.starts_with("input 'X': null is not a FP32 value"),
        "{message}"
    );
    let message = error_of(&input("FP32", json!([1]), json!({"a": 1})));
    assert!(
        message.starts_with("input 'X': invalid type: map, expected FP32 tensor data"),
        "{message}"
    );
}

#[test]
fn element_count_must_match_the_shape() {
    let message = error_of(&input("FP32", json!([1, 3]), json!([1, 2])));
    assert_eq!(
        message,
        "input 'X': shape [1, 3] needs 3 elements, but data holds 2"
    );
    let message = error_of(&input("FP32", json!([2]), json!([1, 2, 3])));
    assert!(
        message.starts_with("input 'X': data holds more than the 2 elements of the shape"),
        "{message}"
    );
    let message = error_of(&input("FP32", json!([-1, 2]), json!([1, 2])));
    assert!(
        message.starts_with("input 'X': ") && message.contains("negative dimension"),
        "{message}"
    );
}

#[test]
fn malformed_requests_are_named() {
    let message = error_of("{\"inputs\": [");
    assert!(
        message.starts_with("malformed request JSON in inputs[0]: EOF while parsing"),
        "{message}"
    );
    let message = error_of(r#"{"inputs": [{"name": "INPUT0","#);
    assert!(
        message.starts_with("malformed request JSON in input 'INPUT0': EOF while parsing"),
        "{message}"
    );
    let message = error_of("]");
    assert!(
        message.starts_with("failed to parse the request JSON: expected value"),
        "{message}"
    );
    let message = error_of("{}");
    assert!(
        message.starts_with("failed to parse the request JSON: missing field `inputs`"),
        "{message}"
    );
    let message = error_of(
        r#"{"inputs":[{"name":"A","shape":[1],"datatype":"FP32","data":[1]},{"name":"B","shape":[1]}]}"#,
    );
    assert!(
        message.starts_with("input 'B': missing field `datatype`"),
        "{message}"
    );
    let message = error_of(r#"{"inputs":[{"shape":[1],"datatype":"FP32","data":[1]}]}"#);
    assert!(
        message.starts_with("inputs[0]: missing field `name`"),
        "{message}"
    );
    let sorted = json!({"inputs": [{"name": "X", "shape": [1], "datatype": "INT33", "data": [1]}]});
    let message = error_of(&sorted.to_string());
    assert!(
        message.starts_with("input 'X': unknown datatype 'INT33'"),
        "name found after the error: {message}"
    );
    let message = error_of(&input("FLOAT", json!([1]), json!([1])));
    assert!(
        message.starts_with("input 'X': unknown datatype 'FLOAT'; expected one of BOOL"),
        "{message}"
    );
    let message =
        error_of(r#"{"inputs":[{"name":"X","shape":["a"],"datatype":"FP32","data":[1]}]}"#);
    assert!(
        message.starts_with("input 'X': invalid type: string \"a\", expected i64"),
        "{message}"
    );
    let message = error_of(
        r#"{"inputs":[{"name":"X","name":"Y","shape":[1],"datatype":"FP32","data":[1]}]}"#,
    );
    assert!(message.contains("duplicate field `name`"), "{message}");
    let message = error_of(r#"{"inputs":[],"outputs":[{"parameters":{"binary_data":true}}]}"#);
    assert!(
        message.starts_with("outputs[0]: missing field `name`"),
        "{message}"
    );
    let message = error_of(r#"{"inputs":[]} trailing"#);
    assert!(
        message.starts_with("failed to parse the request JSON: trailing characters"),
        "{message}"
    );
    let message = error_of(r#"{"inputs":[{"name":"X","shape":[1],"datatype":"FP32"}]}"#);
    assert_eq!(
        message,
        "input 'X' has neither 'data' nor the binary_data_size parameter"
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let body = json!({"model_name": "m", "inputs": [{"name": "X", "shape": [1], "datatype": "INT64", "data": [9], "extra": {"a": [1]}}]});
    let request = decode_value(&body);
    assert_eq!(only_tensor(&request).data().as_ref(), &9i64.to_le_bytes());
}

fn binary_body(header: &Value, tail: &[u8]) -> (Bytes, usize) {
    let json = header.to_string();
    let mut body = json.clone().into_bytes();
    body.extend_from_slice(tail);
    (Bytes::from(body), json.len())
}

#[test]
fn binary_inputs_are_slices_of_the_body_in_input_order() {
    let strings = bytes_codec::encode([b"hi".as_slice(), b"\xff".as_slice()]);
    let mut tail = le(&[1.0f32, 2.0], f32::to_le_bytes);
    tail.extend_from_slice(&strings);
    let header = json!({"inputs": [
        {"name": "A", "shape": [1, 2], "datatype": "FP32", "parameters": {"binary_data_size": 8}},
        {"name": "J", "shape": [1], "datatype": "INT8", "data": [3]},
        {"name": "S", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": strings.len()}},
    ]});
    let (body, length) = binary_body(&header, &tail);
    let request = decode_request(&body, Some(length), &Limits::default()).unwrap();
    let [a, j, s] = &request.inputs[..] else {
        panic!("three inputs")
    };
    assert_eq!(a.tensor.data().as_ref(), &tail[..8]);
    assert_eq!(
        a.tensor.data().as_ptr(),
        body[length..].as_ptr(),
        "sliced, not copied"
    );
    assert_eq!(j.tensor.data().as_ref(), &[3]);
    assert_eq!(s.tensor.data().as_ref(), strings.as_ref());
    assert_eq!(s.tensor.data().as_ptr(), body[length + 8..].as_ptr());
}

#[test]
fn binary_size_errors() {
    let header = json!({"inputs": [{"name": "A", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]});
    let (body, length) = binary_body(&header, &[0; 6]);
    let message = decode_request(&body, Some(length), &Limits::default())
        .unwrap_err()
        .message;
    assert_eq!(message, "input 'A': binary_data_size is 8 but only 6 bytes of binary data remain in the request body");
    let header = json!({"inputs": [{"name": "A", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 4}}]});
    let (body, length) = binary_body(&header, &[0; 4]);
    let message = decode_request(&body, Some(length), &Limits::default())
        .unwrap_err()
        .message;
    assert_eq!(
        message,
        "input 'A': FP32 tensor of shape [2] needs 8 bytes, got 4"
    );
    let header = json!({"inputs": [{"name": "A", "shape": [2], "datatype": "FP32", "parameters": {"binary_data_size": 8}}]});
    let (body, length) = binary_body(&header, &[0; 13]);
    let message = decode_request(&body, Some(length), &Limits::default())
        .unwrap_err()
        .message;
    assert!(
        message.starts_with("the request body has 5 bytes of binary data"),
        "{message}"
    );
    let header = json!({"inputs": [{"name": "S", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 5}}]});
    let (body, length) = binary_body(&header, &[9, 0, 0, 0, b'a']);
    let message = decode_request(&body, Some(length), &Limits::default())
        .unwrap_err()
        .message;
    assert!(
        message
            .starts_with("input 'S': BYTES tensor of shape [1]: element at byte 0 claims 9 bytes"),
        "{message}"
    );
    let header = json!({"inputs": [{"name": "A", "shape": [1], "datatype": "INT8", "data": [1], "parameters": {"binary_data_size": 1}}]});
    let (body, length) = binary_body(&header, &[0]);
    let message = decode_request(&body, Some(length), &Limits::default())
        .unwrap_err()
        .message;
    assert_eq!(
        message,
        "input 'A' has both 'data' and the binary_data_size parameter"
    );
    let header = json!({"inputs": [{"name": "A", "shape": [1], "datatype": "INT8", "parameters": {"binary_data_size": -1}}]});
    let (body, length) = binary_body(&header, &[]);
    let message = decode_request(&body, Some(length), &Limits::default())
        .unwrap_err()
        .message;
    assert_eq!(
        message,
        "parameter 'binary_data_size' of input 'A' must be a non-negative integer, got -1"
    );
}

#[test]
fn request_parameters() {
    let mut body =
        json!({"inputs": [{"name": "X", "shape": [1], "datatype": "INT8", "data": [1]}]});
    body["parameters"] =
        json!({"binary_data_output": true, "priority": 0, "sequence_id": 0, "custom": "x"});
    body["id"] = json!("req-7");
    let request = decode_value(&body);
    assert!(request.response.binary_data_output);
    assert_eq!(request.response.id.as_deref(), Some("req-7"));
    let passed: Vec<(&str, &Parameter)> = request.parameters.iter().collect();
    assert_eq!(passed, vec![("custom", &Parameter::String("x".into()))]);
    assert_eq!(request.schedule, Schedule::default());
    body["parameters"] = json!({"priority": 2, "timeout": 1500});
    let request = decode_value(&body);
    assert_eq!(
        request.schedule,
        Schedule {
            priority: 2,
            timeout: Some(std::time::Duration::from_micros(1500)),
        }
    );
    for (name, value) in [("priority", json!(-1)), ("timeout", json!("soon"))] {
        body["parameters"] = json!({ name: value });
        let message = error_of(&body.to_string());
        assert!(
            message.contains(&format!("parameter '{name}'")),
            "{message}"
        );
    }
    body["parameters"] = json!({"priority": 1u64 << 40});
    assert!(error_of(&body.to_string()).contains("too large"));
    for (name, value, reason) in [
        ("sequence_id", json!(5), "no sequence batcher"),
        ("sequence_start", json!(true), "no sequence batcher"),
    ] {
        body["parameters"] = json!({ name: value });
        let message = error_of(&body.to_string());
        assert!(
            message.starts_with(&format!("request parameter '{name}' is not supported: ")),
            "{message}"
        );
        assert!(message.contains(reason), "{message}");
    }
    body["parameters"] = json!({"binary_data_output": "yes"});
    let message = error_of(&body.to_string());
    assert_eq!(
        message,
        "parameter 'binary_data_output' of the request must be a boolean, got \"yes\""
    );
}

#[test]
fn output_and_input_parameters() {
    let mut body =
        json!({"inputs": [{"name": "X", "shape": [1], "datatype": "INT8", "data": [1]}]});
    body["outputs"] = json!([{"name": "B", "parameters": {"binary_data": true}}, {"name": "A", "parameters": {"other": 1}}]);
    let request = decode_value(&body);
    assert_eq!(request.response.output_names(), vec!["B", "A"]);
    assert!(request.response.binary("B"));
    assert!(!request.response.binary("A"));
    body["outputs"] = json!([{"name": "A", "parameters": {"classification": 3}}]);
    let message = error_of(&body.to_string());
    assert_eq!(message, "output 'A': parameter 'classification' is not supported: ferrite has no classification extension");
    body["outputs"] = json!([{"name": "A"}, {"name": "A"}]);
    assert_eq!(
        error_of(&body.to_string()),
        "output 'A' is requested more than once"
    );
    body["outputs"] = json!([]);
    body["inputs"][0]["parameters"] = json!({"shared_memory_region": "r"});
    let message = error_of(&body.to_string());
    assert!(
        message.starts_with("input 'X': parameter 'shared_memory_region' is not supported"),
        "{message}"
    );
}

#[test]
fn binary_choice_per_output() {
    let spec = ResponseSpec {
        id: None,
        outputs: vec![
            RequestedOutput {
                name: "A".into(),
                binary_data: Some(false),
            },
            RequestedOutput {
                name: "B".into(),
                binary_data: None,
            },
        ],
        binary_data_output: true,
    };
    assert!(!spec.binary("A"));
    assert!(spec.binary("B"));
    let all = ResponseSpec {
        binary_data_output: false,
        ..ResponseSpec::default()
    };
    assert!(!all.binary("anything"));
}

fn tensor(name: &str, dtype: DataType, shape: Vec<i64>, data: Vec<u8>) -> NamedTensor {
    NamedTensor::new(name, Tensor::new(dtype, shape, Bytes::from(data)).unwrap())
}

fn response_json(encoded: &EncodedResponse) -> Value {
    serde_json::from_slice(&encoded.json).unwrap()
}

#[test]
fn json_response_of_every_type() {
    let outputs = vec![
        tensor("BOOL", DataType::Bool, vec![2], vec![1, 0]),
        tensor("U8", DataType::Uint8, vec![1], vec![200]),
        tensor(
            "U16",
            DataType::Uint16,
            vec![1],
            le(&[65535u16], u16::to_le_bytes),
        ),
        tensor(
            "U32",
            DataType::Uint32,
            vec![1],
            le(&[7u32], u32::to_le_bytes),
        ),
        tensor(
            "U64",
            DataType::Uint64,
            vec![1],
            le(&[u64::MAX], u64::to_le_bytes),
        ),
        tensor("I8", DataType::Int8, vec![1], vec![0xff]),
        tensor(
            "I16",
            DataType::Int16,
            vec![1],
            le(&[-300i16], i16::to_le_bytes),
        ),
        tensor(
            "I32",
            DataType::Int32,
            vec![2],
            le(&[-1i32, 5], i32::to_le_bytes),
        ),
        tensor(
            "I64",
            DataType::Int64,
            vec![1],
            le(&[i64::MIN], i64::to_le_bytes),
        ),
        tensor(
            "F16",
            DataType::Fp16,
            vec![1],
            le(&[f16::from_f32(0.5)], f16::to_le_bytes),
        ),
        tensor(
            "BF16",
            DataType::Bf16,
            vec![1],
            le(&[bf16::from_f32(-2.0)], bf16::to_le_bytes),
        ),
        tensor(
            "F32",
            DataType::Fp32,
            vec![1, 2],
            le(&[0.1f32, 3.0], f32::to_le_bytes),
        ),
        tensor(
            "F64",
            DataType::Fp64,
            vec![1],
            le(&[0.1f64], f64::to_le_bytes),
        ),
        tensor(
            "S",
            DataType::Bytes,
            vec![2],
            bytes_codec::encode([b"hi".as_slice(), "é".as_bytes()]).to_vec(),
        ),
    ];
    let spec = ResponseSpec {
        id: Some("abc".into()),
        ..ResponseSpec::default()
    };
    let encoded = encode_response("m", 3, &spec, outputs).unwrap();
    assert_eq!(encoded.header_length, None);
    assert!(encoded.binary.is_empty());
    let value = response_json(&encoded);
    assert_eq!(value["model_name"], "m");
    assert_eq!(value["model_version"], "3");
    assert_eq!(value["id"], "abc");
    let data: Vec<(String, Value)> = value["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["name"].as_str().unwrap().to_string(), o["data"].clone()))
        .collect();
    let expected = [
        ("BOOL", json!([true, false])),
        ("U8", json!([200])),
        ("U16", json!([65535])),
        ("U32", json!([7])),
        ("U64", json!([u64::MAX])),
        ("I8", json!([-1])),
        ("I16", json!([-300])),
        ("I32", json!([-1, 5])),
        ("I64", json!([i64::MIN])),
        ("F16", json!([0.5])),
        ("BF16", json!([-2.0])),
        ("F32", json!([0.1, 3.0])),
        ("F64", json!([0.1])),
        ("S", json!(["hi", "é"])),
    ];
    assert_eq!(data.len(), expected.len());
    for ((name, got), (want_name, want)) in data.iter().zip(expected) {
        assert_eq!((name.as_str(), got), (want_name, &want));
    }
    assert_eq!(value["outputs"][11]["datatype"], "FP32");
    assert_eq!(value["outputs"][11]["shape"], json!([1, 2]));
    assert!(value["outputs"][0].get("parameters").is_none());
}

#[test]
fn binary_response_chains_the_output_buffers() {
    let a = tensor(
        "A",
        DataType::Fp32,
        vec![1, 2],
        le(&[1.0f32, 2.0], f32::to_le_bytes),
    );
    let b = tensor("B", DataType::Int8, vec![3], vec![1, 2, 3]);
    let a_ptr = a.tensor.data().as_ptr();
    let spec = ResponseSpec {
        id: Some(String::new()),
        outputs: vec![
            RequestedOutput {
                name: "B".into(),
                binary_data: Some(false),
            },
            RequestedOutput {
                name: "A".into(),
                binary_data: Some(true),
            },
        ],
        binary_data_output: false,
    };
    let encoded = encode_response("m", 1, &spec, vec![a, b]).unwrap();
    assert_eq!(encoded.header_length, Some(encoded.json.len()));
    assert_eq!(encoded.content_length(), encoded.json.len() + 8);
    let value = response_json(&encoded);
    assert!(value.get("id").is_none(), "an empty id is not echoed");
    assert_eq!(value["outputs"][0]["name"], "B");
    assert_eq!(value["outputs"][0]["data"], json!([1, 2, 3]));
    assert_eq!(value["outputs"][1]["name"], "A");
    assert_eq!(
        value["outputs"][1]["parameters"],
        json!({"binary_data_size": 8})
    );
    assert!(value["outputs"][1].get("data").is_none());
    let chunks = encoded.into_chunks();
    assert_eq!(chunks.len(), 2);
    assert_eq!(
        chunks[1].as_ptr(),
        a_ptr,
        "the output buffer is sent, not copied"
    );
}

#[test]
fn response_errors() {
    let s = tensor(
        "S",
        DataType::Bytes,
        vec![1],
        bytes_codec::encode([b"\xff\xfe".as_slice()]).to_vec(),
    );
    let error = encode_response("m", 1, &ResponseSpec::default(), vec![s.clone()]).unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidArgument);
    assert!(
        error
            .message
            .starts_with("output 'S' element 0 is not valid UTF-8"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("binary_data: true"),
        "{}",
        error.message
    );
    let spec = ResponseSpec {
        binary_data_output: true,
        ..ResponseSpec::default()
    };
    let encoded = encode_response("m", 1, &spec, vec![s]).unwrap();
    assert_eq!(encoded.binary.len(), 1);
    let spec = ResponseSpec {
        outputs: vec![RequestedOutput {
            name: "Z".into(),
            binary_data: None,
        }],
        ..ResponseSpec::default()
    };
    let error = encode_response("m", 1, &spec, Vec::new()).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Internal);
}
