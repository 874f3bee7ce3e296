//! Model warmup (Triton's `model_warmup`): sample requests a version runs
//! after its instances start and before it is published as ready.
//!
//! Each sample names its inputs with a data type, dims (without the batch
//! dimension) and where the data comes from: `zero_data`, `random_data`, or
//! `input_data_file`, read as raw bytes from `<model dir>/warmup/<file>`
//! (BYTES inputs in the protocol's length-prefixed layout). A batching model
//! runs each sample as one request of `batch_size` rows (the rows repeat the
//! sample data); a model without batching runs it at its own shape and
//! accepts `batch_size` 0 or 1. Every sample runs `count` times (at least
//! once). For BYTES inputs `zero_data` and `random_data` both give empty
//! elements, since random bytes are no valid string.

use std::path::Path;
use std::time::Instant;

use bytes::Bytes;
use ferrite_backends::{DataType, NamedTensor, Tensor};
use ferrite_proto::inference::model_warmup::input::InputDataType;
use ferrite_proto::inference::{DataType as ConfigType, ModelConfig, ModelWarmup};
use ferrite_scheduler::{InferRequest, ModelScheduler};

/// One warmup sample, ready to submit.
#[derive(Debug, Clone)]
pub struct WarmupSample {
    /// The sample's name from the config.
    pub name: String,
    /// Rows of the request (1 for models without batching).
    pub batch_size: usize,
    /// How many times the sample runs.
    pub count: u32,
    /// The request's inputs at their full shapes.
    pub inputs: Vec<NamedTensor>,
}

/// Builds the warmup samples of a config; `model_dir` is the model folder
/// holding `warmup/`. Errors name the sample and the input.
pub fn build_samples(config: &ModelConfig, model_dir: &Path) -> Result<Vec<WarmupSample>, String> {
    let mut rng = Rng::new();
    config
        .model_warmup
        .iter()
        .map(|warmup| build_sample(config, warmup, model_dir, &mut rng))
        .collect()
}

fn build_sample(
    config: &ModelConfig,
    warmup: &ModelWarmup,
    model_dir: &Path,
    rng: &mut Rng,
) -> Result<WarmupSample, String> {
    let sample = &warmup.name;
    let batching = config.max_batch_size > 0;
    let batch_size = usize::try_from(warmup.batch_size).unwrap_or(usize::MAX);
    if batching && (batch_size == 0 || warmup.batch_size > config.max_batch_size.unsigned_abs()) {
        return Err(format!(
            "warmup sample '{sample}': batch_size must be between 1 and max_batch_size ({}), got {}",
            config.max_batch_size, warmup.batch_size
        ));
    }
    if !batching && batch_size > 1 {
        return Err(format!(
            "warmup sample '{sample}': batch_size must be 0 or 1 for a model without batching, got {}",
            warmup.batch_size
        ));
    }
    let batch_size = batch_size.max(1);
    let mut names: Vec<&String> = warmup.inputs.keys().collect();
    names.sort();
    let mut inputs = Vec::with_capacity(names.len());
    for name in names {
        let input = &warmup.inputs[name];
        let context = || format!("warmup sample '{sample}', input '{name}'");
        let dtype = ConfigType::try_from(input.data_type)
            .ok()
            .and_then(DataType::from_config)
            .ok_or_else(|| format!("{}: data_type is not set or not valid", context()))?;
        if input.dims.iter().any(|&d| d < 0) {
            return Err(format!(
                "{}: dims {:?} must not be negative",
                context(),
                input.dims
            ));
        }
        let count = ferrite_backends::element_count(&input.dims)
            .map_err(|e| format!("{}: {e}", context()))?;
        let row = match &input.input_data_type {
            None | Some(InputDataType::ZeroData(_)) => zero_row(dtype, count),
            Some(InputDataType::RandomData(_)) => rng.row(dtype, count),
            Some(InputDataType::InputDataFile(file)) => {
                let path = model_dir.join("warmup").join(file);
                let data = std::fs::read(&path)
                    .map_err(|e| format!("{}: cannot read '{}': {e}", context(), path.display()))?;
                Tensor::new(dtype, input.dims.clone(), Bytes::from(data.clone())).map_err(|e| {
                    format!("{}: file '{}' does not fit: {e}", context(), path.display())
                })?;
                data
            }
        };
        let mut shape = Vec::with_capacity(input.dims.len() + 1);
        if batching {
            shape.push(i64::from(warmup.batch_size));
        }
        shape.extend_from_slice(&input.dims);
        let data = row.repeat(batch_size);
        let tensor = Tensor::new(dtype, shape, Bytes::from(data))
            .map_err(|e| format!("{}: {e}", context()))?;
        inputs.push(NamedTensor::new(name.clone(), tensor));
    }
    Ok(WarmupSample {
        name: sample.clone(),
        batch_size,
        count: warmup.count.max(1),
        inputs,
    })
}

/// The bytes of one row of zeros (empty elements for BYTES).
fn zero_row(dtype: DataType, count: usize) -> Vec<u8> {
    match dtype.element_size() {
        Some(size) => vec![0; size * count],
        None => 0u32.to_le_bytes().repeat(count),
    }
}

/// Checks the samples' inputs against the config, then runs every sample
/// `count` times through the scheduler, waiting for each answer. Blocks;
/// call it from a thread outside the async runtime.
pub fn run(
    config: &ModelConfig,
    scheduler: &ModelScheduler,
    samples: &[WarmupSample],
) -> Result<(), String> {
    for sample in samples {
        check_inputs(config, sample)?;
        for _ in 0..sample.count {
            let request = InferRequest {
                inputs: sample.inputs.clone(),
                outputs: Vec::new(),
                batch_size: sample.batch_size,
                arrival: Instant::now(),
                priority: 0,
                timeout: None,
            };
            let failed =
                |reason: String| format!("warmup sample '{}' failed: {reason}", sample.name);
            let receiver = scheduler
                .submit(request)
                .map_err(|e| failed(e.to_string()))?;
            receiver
                .blocking_recv()
                .map_err(|_| failed("the model dropped the request".to_string()))?
                .map_err(|e| failed(e.to_string()))?;
        }
        tracing::info!(model = %config.name, sample = %sample.name, count = sample.count, "warmup done");
    }
    Ok(())
}

fn check_inputs(config: &ModelConfig, sample: &WarmupSample) -> Result<(), String> {
    for input in &sample.inputs {
        let declared = config
            .input
            .iter()
            .find(|i| i.name == input.name)
            .ok_or_else(|| {
                format!(
                    "warmup sample '{}': model '{}' has no input '{}'",
                    sample.name, config.name, input.name
                )
            })?;
        let dtype = input.tensor.dtype();
        if dtype.to_config() as i32 != declared.data_type {
            return Err(format!(
                "warmup sample '{}', input '{}': data_type is {dtype}, the model declares {}",
                sample.name,
                input.name,
                declared.data_type().as_str_name()
            ));
        }
    }
    if let Some(missing) = config
        .input
        .iter()
        .find(|i| !i.optional && !sample.inputs.iter().any(|s| s.name == i.name))
    {
        return Err(format!(
            "warmup sample '{}' lacks input '{}' of model '{}'",
            sample.name, missing.name, config.name
        ));
    }
    Ok(())
}

/// A small xorshift generator for `random_data`; warmup data need not be
/// unpredictable, only not constant.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9_7f4a_7c15);
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// One row of random values: floats in [0, 1), integers in [0, 128),
    /// booleans either way; empty elements for BYTES.
    fn row(&mut self, dtype: DataType, count: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(count * dtype.element_size().unwrap_or(4));
        for _ in 0..count {
            let small = self.next() % 128;
            match dtype {
                DataType::Bool => out.push((small % 2) as u8),
                DataType::Uint8 | DataType::Int8 => out.push(small as u8),
                DataType::Uint16 | DataType::Int16 => {
                    out.extend_from_slice(&(small as u16).to_le_bytes())
                }
                DataType::Uint32 | DataType::Int32 => {
                    out.extend_from_slice(&(small as u32).to_le_bytes())
                }
                DataType::Uint64 | DataType::Int64 => out.extend_from_slice(&small.to_le_bytes()),
                DataType::Fp16 => {
                    out.extend_from_slice(&half::f16::from_f64(self.unit()).to_bits().to_le_bytes())
                }
                DataType::Bf16 => out
                    .extend_from_slice(&half::bf16::from_f64(self.unit()).to_bits().to_le_bytes()),
                DataType::Fp32 => out.extend_from_slice(&(self.unit() as f32).to_le_bytes()),
                DataType::Fp64 => out.extend_from_slice(&self.unit().to_le_bytes()),
                DataType::Bytes => out.extend_from_slice(&0u32.to_le_bytes()),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(warmup: &str) -> ModelConfig {
        ferrite_repository::parse_pbtxt(&format!(
            r#"name: "m" max_batch_size: 4
            input [ {{ name: "x" data_type: TYPE_FP32 dims: [ 2, 3 ] }},
                    {{ name: "s" data_type: TYPE_STRING dims: [ 2 ] }} ]
            {warmup}"#
        ))
        .unwrap()
    }

    fn floats(tensor: &Tensor) -> Vec<f32> {
        tensor
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    #[test]
    fn zero_random_and_file_samples() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("warmup")).unwrap();
        let values: Vec<u8> = (1..=6u8).flat_map(|v| f32::from(v).to_le_bytes()).collect();
        std::fs::write(dir.path().join("warmup/x.bin"), &values).unwrap();
        let strings = [
            3u32.to_le_bytes().as_slice(),
            b"abc",
            &1u32.to_le_bytes(),
            b"d",
        ]
        .concat();
        std::fs::write(dir.path().join("warmup/s.bin"), strings).unwrap();
        let config = config(
            r#"model_warmup [
              { name: "zeros" batch_size: 2 count: 3
                inputs { key: "x" value { data_type: TYPE_FP32 dims: [ 2, 3 ] zero_data: true } }
                inputs { key: "s" value { data_type: TYPE_STRING dims: [ 2 ] zero_data: true } } },
              { name: "noise" batch_size: 1
                inputs { key: "x" value { data_type: TYPE_FP32 dims: [ 2, 3 ] random_data: true } }
                inputs { key: "s" value { data_type: TYPE_STRING dims: [ 2 ] random_data: true } } },
              { name: "files" batch_size: 3
                inputs { key: "x" value { data_type: TYPE_FP32 dims: [ 2, 3 ] input_data_file: "x.bin" } }
                inputs { key: "s" value { data_type: TYPE_STRING dims: [ 2 ] input_data_file: "s.bin" } } } ]"#,
        );
        let samples = build_samples(&config, dir.path()).unwrap();
        let [zeros, noise, files] = samples.as_slice() else {
            panic!("three samples expected, got {samples:?}");
        };
        let input = |s: &WarmupSample, name: &str| {
            s.inputs
                .iter()
                .find(|i| i.name == name)
                .unwrap()
                .tensor
                .clone()
        };
        assert_eq!((zeros.count, zeros.batch_size), (3, 2));
        assert_eq!(input(zeros, "x").shape(), &[2, 2, 3]);
        assert!(floats(&input(zeros, "x")).iter().all(|&v| v == 0.0));
        assert_eq!(input(zeros, "s").element_count(), 4);
        assert_eq!(noise.count, 1);
        let random = floats(&input(noise, "x"));
        assert!(random.iter().all(|v| (0.0..1.0).contains(v)), "{random:?}");
        assert!(random.iter().any(|&v| v != random[0]), "{random:?}");
        let x = input(files, "x");
        assert_eq!(x.shape(), &[3, 2, 3]);
        assert_eq!(floats(&x)[..6], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(floats(&x)[12..], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let s = input(files, "s");
        assert_eq!(s.shape(), &[3, 2]);
        assert!(s.data().starts_with(&[3, 0, 0, 0, b'a', b'b', b'c']));
        check_inputs(&config, files).unwrap();
    }

    #[test]
    fn bad_samples_are_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("warmup")).unwrap();
        std::fs::write(dir.path().join("warmup/short.bin"), [0u8; 7]).unwrap();
        let error = |warmup: &str| build_samples(&config(warmup), dir.path()).unwrap_err();
        let e = error(
            r#"model_warmup { name: "w1" batch_size: 1
               inputs { key: "x" value { data_type: TYPE_FP32 dims: [ 2, 3 ] input_data_file: "short.bin" } } }"#,
        );
        assert!(
            e.contains("'w1'") && e.contains("short.bin") && e.contains("24 bytes"),
            "{e}"
        );
        let e = error(
            r#"model_warmup { name: "w2" batch_size: 1
               inputs { key: "x" value { data_type: TYPE_FP32 dims: [ 6 ] input_data_file: "none.bin" } } }"#,
        );
        assert!(e.contains("'w2'") && e.contains("none.bin"), "{e}");
        let e = error(r#"model_warmup { name: "w3" batch_size: 5 }"#);
        assert!(e.contains("'w3'") && e.contains("max_batch_size"), "{e}");
        let samples = build_samples(
            &config(
                r#"model_warmup { name: "w4" batch_size: 1
                   inputs { key: "x" value { data_type: TYPE_INT32 dims: [ 2, 3 ] zero_data: true } } }"#,
            ),
            dir.path(),
        )
        .unwrap();
        let e = check_inputs(&config(""), &samples[0]).unwrap_err();
        assert!(e.contains("'w4'") && e.contains("TYPE_FP32"), "{e}");
        let samples = build_samples(
            &config(
                r#"model_warmup { name: "w5" batch_size: 1
                   inputs { key: "x" value { data_type: TYPE_FP32 dims: [ 2, 3 ] zero_data: true } } }"#,
            ),
            dir.path(),
        )
        .unwrap();
        let e = check_inputs(&config(""), &samples[0]).unwrap_err();
        assert!(e.contains("'w5'") && e.contains("lacks input 's'"), "{e}");
    }
}
