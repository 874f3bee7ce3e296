//! The engine's own throughput, with no server around it: one instance of a
//! repository model loaded through `ferrite_backends::create_instance` (the
//! same configuration a server would use), then `execute` timed at a fixed
//! batch size. What it reaches is the ceiling of the served throughput at
//! that batch size on the same core.
//!
//! Usage: `inprocess REPOSITORY MODEL BATCH ITERATIONS`. Every input of the
//! model must be FP32. Prints
//! `model=M batch=B iterations=N seconds=S inferences_per_s=R`.

use std::error::Error;
use std::time::Instant;

use bytes::Bytes;
use ferrite_backends::{
    create_instance, resolve_engine, DataType, InstanceSpec, NamedTensor, Tensor,
};
use ferrite_repository::{load_model, RepositoryOptions};

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [repository, model, batch, iterations] = args.as_slice() else {
        return Err("usage: inprocess REPOSITORY MODEL BATCH ITERATIONS".into());
    };
    let batch: usize = batch.parse().map_err(|e| format!("BATCH '{batch}': {e}"))?;
    let iterations: usize = iterations
        .parse()
        .map_err(|e| format!("ITERATIONS '{iterations}': {e}"))?;
    if batch == 0 || iterations == 0 {
        return Err("BATCH and ITERATIONS must be at least 1".into());
    }

    let spec = load_model(&RepositoryOptions::new([repository.as_str()]), model)?;
    let version = spec
        .latest_version()
        .ok_or_else(|| format!("model '{model}' has no version to load"))?;
    let mut instance = create_instance(&InstanceSpec {
        model_name: &spec.name,
        model_file: &version.model_file,
        config: &spec.config,
        engine: resolve_engine(&spec.config)?,
        instance_index: 0,
    })?;

    let batched = spec.config.max_batch_size > 0;
    let mut inputs = Vec::new();
    for input in &spec.config.input {
        if DataType::from_config(input.data_type()) != Some(DataType::Fp32) {
            return Err(format!("input '{}' is not FP32", input.name).into());
        }
        let mut shape = Vec::new();
        if batched {
            shape.push(i64::try_from(batch)?);
        } else if batch != 1 {
            return Err(format!("model '{model}' does not batch; BATCH must be 1").into());
        }
        shape.extend_from_slice(&input.dims);
        if shape.iter().any(|&d| d < 0) {
            return Err(
                format!("input '{}' has a variable dimension: {shape:?}", input.name).into(),
            );
        }
        let count: i64 = shape.iter().product();
        let data: Vec<u8> = (0..count)
            .flat_map(|i| ((i % 29) as f32 / 14.0 - 1.0).to_le_bytes())
            .collect();
        inputs.push(NamedTensor::new(
            input.name.clone(),
            Tensor::new(DataType::Fp32, shape, Bytes::from(data))?,
        ));
    }

    instance.execute(&inputs, &[])?;
    let start = Instant::now();
    for _ in 0..iterations {
        instance.execute(&inputs, &[])?;
    }
    let seconds = start.elapsed().as_secs_f64();
    let rate = (batch * iterations) as f64 / seconds;
    println!(
        "model={model} batch={batch} iterations={iterations} seconds={seconds:.3} inferences_per_s={rate:.1}"
    );
    Ok(())
}
