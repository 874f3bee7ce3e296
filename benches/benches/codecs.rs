//! The HTTP inference codec: request decoding (JSON data and binary tensor
//! data) and response encoding, for an FP32 [1, 16] identity-sized tensor
//! and an FP32 [64, 1024] one.
//!
//! Each group holds a baseline measured in the same run, so results read
//! as ratios: for requests, `serde_json::from_slice` of the same JSON body
//! into a `serde_json::Value`; for responses, `serde_json::to_vec` of the
//! same JSON response held as a `serde_json::Value`. Every function of a
//! group reports its throughput over the same byte count (the size of the
//! JSON form), so throughputs compare as directly as times.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ferrite_backends::{DataType, NamedTensor, Tensor};
use ferrite_server::http::codec::{decode_request, encode_response, ResponseSpec};
use ferrite_server::limits::Limits;
use serde_json::{json, Value};

/// Deterministic FP32 values of every magnitude a model would produce.
fn values(count: usize) -> Vec<f32> {
    (0..count)
        .map(|i| {
            let x = i as f32;
            (x * 0.37).sin() * (1.0 + x % 7.0)
        })
        .collect()
}

fn raw(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

struct Case {
    label: &'static str,
    rows: usize,
    columns: usize,
}

const CASES: [Case; 2] = [
    Case {
        label: "fp32_1x16",
        rows: 1,
        columns: 16,
    },
    Case {
        label: "fp32_64x1024",
        rows: 64,
        columns: 1024,
    },
];

fn requests(c: &mut Criterion) {
    let limits = Limits::default();
    for case in &CASES {
        let data = values(case.rows * case.columns);
        let shape = [case.rows, case.columns];
        // Clients write `datatype` before `data` (decoded in one pass);
        // `json!` sorts keys, which puts `data` first (kept raw, then parsed).
        let data_json = serde_json::to_string(&data).expect("floats serialize");
        let json_body = Bytes::from(format!(
            r#"{{"inputs":[{{"name":"INPUT0","shape":[{},{}],"datatype":"FP32","data":{data_json}}}]}}"#,
            case.rows, case.columns
        ));
        let data_first_body = Bytes::from(
            json!({"inputs": [{"name": "INPUT0", "shape": shape, "datatype": "FP32", "data": data}]})
                .to_string(),
        );
        let tensor = raw(&data);
        let header = json!({"inputs": [{"name": "INPUT0", "shape": shape, "datatype": "FP32",
                                        "parameters": {"binary_data_size": tensor.len()}}],
                            "parameters": {"binary_data_output": true}})
        .to_string();
        let mut binary = header.clone().into_bytes();
        binary.extend_from_slice(&tensor);
        let binary_body = Bytes::from(binary);

        let mut group = c.benchmark_group(format!("request_{}", case.label));
        group.throughput(Throughput::Bytes(json_body.len() as u64));
        group.bench_function("baseline_serde_json_value", |b| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(&json_body)).map(black_box))
        });
        group.bench_function("json_decode", |b| {
            b.iter(|| decode_request(black_box(&json_body), None, &limits).map(black_box))
        });
        group.bench_function("json_decode_data_first", |b| {
            b.iter(|| decode_request(black_box(&data_first_body), None, &limits).map(black_box))
        });
        group.bench_function("binary_decode", |b| {
            b.iter(|| {
                decode_request(black_box(&binary_body), Some(header.len()), &limits).map(black_box)
            })
        });
        group.finish();
    }
}

fn responses(c: &mut Criterion) {
    for case in &CASES {
        let data = values(case.rows * case.columns);
        let shape = vec![case.rows as i64, case.columns as i64];
        let tensor = Tensor::new(DataType::Fp32, shape.clone(), Bytes::from(raw(&data)))
            .expect("the shape matches the data");
        let outputs = vec![NamedTensor::new("OUTPUT0", tensor)];
        let json_spec = ResponseSpec::default();
        let binary_spec = ResponseSpec {
            binary_data_output: true,
            ..ResponseSpec::default()
        };
        let as_value = json!({"model_name": "identity_fp32", "model_version": "1",
            "outputs": [{"name": "OUTPUT0", "datatype": "FP32", "shape": shape, "data": data}]});
        let json_length = serde_json::to_vec(&as_value).map_or(0, |v| v.len());

        let mut group = c.benchmark_group(format!("response_{}", case.label));
        group.throughput(Throughput::Bytes(json_length as u64));
        group.bench_function("baseline_serde_json_value", |b| {
            b.iter(|| serde_json::to_vec(black_box(&as_value)).map(black_box))
        });
        group.bench_function("json_encode", |b| {
            b.iter(|| {
                encode_response("identity_fp32", 1, &json_spec, black_box(outputs.clone()))
                    .map(black_box)
            })
        });
        group.bench_function("binary_encode", |b| {
            b.iter(|| {
                encode_response("identity_fp32", 1, &binary_spec, black_box(outputs.clone()))
                    .map(|encoded| black_box(encoded.into_chunks()))
            })
        });
        group.finish();
    }
}

criterion_group!(codecs, requests, responses);
criterion_main!(codecs);
