//! The answers of the metadata, statistics and repository calls, built
//! from the model manager's view. Pure conversions, shared by nothing that
//! awaits.

use ferrite_proto::inference::model_metadata_response::TensorMetadata;
use ferrite_proto::inference::repository_index_response::ModelIndex;
use ferrite_proto::inference::{
    InferBatchStatistics, InferStatistics, ModelMetadataResponse, ModelStatistics,
    StatisticDuration,
};
use ferrite_scheduler::DurationSnapshot;

use crate::http::metadata::platform;
use crate::manager::IndexEntry;
use crate::model::{LoadedModel, TensorSpec};

/// Model metadata as Triton reports it: `versions` (the one asked for, or
/// every ready version), the platform
/// (as the HTTP metadata names it), and tensor shapes with a leading -1 for
/// models that batch.
pub(crate) fn metadata(model: &LoadedModel, versions: &[i64]) -> ModelMetadataResponse {
    let batching = model.batching();
    let tensors = |specs: &[TensorSpec]| {
        specs
            .iter()
            .map(|spec| TensorMetadata {
                name: spec.name.clone(),
                datatype: spec.dtype.kserve_name().to_string(),
                shape: spec.full_shape(batching),
            })
            .collect()
    };
    ModelMetadataResponse {
        name: model.name.clone(),
        versions: versions.iter().map(i64::to_string).collect(),
        platform: platform(&model.config.platform, &model.config.backend).to_string(),
        inputs: tensors(&model.inputs),
        outputs: tensors(&model.outputs),
    }
}

fn duration(snapshot: DurationSnapshot) -> Option<StatisticDuration> {
    Some(StatisticDuration {
        count: snapshot.count,
        ns: snapshot.ns,
    })
}

/// The statistics of one model version, field for field as the HTTP
/// statistics endpoint reports them.
pub(crate) fn statistics(model: &LoadedModel) -> ModelStatistics {
    let stats = model.stats();
    ModelStatistics {
        name: model.name.clone(),
        version: model.version.to_string(),
        last_inference: stats.last_inference_ms,
        inference_count: stats.inference_count,
        execution_count: stats.execution_count,
        inference_stats: Some(InferStatistics {
            success: duration(stats.success),
            fail: duration(stats.fail),
            queue: duration(stats.queue),
            compute_input: duration(stats.compute_input),
            compute_infer: duration(stats.compute_infer),
            compute_output: duration(stats.compute_output),
            cache_hit: duration(DurationSnapshot::default()),
            cache_miss: duration(DurationSnapshot::default()),
        }),
        batch_stats: stats
            .batch_stats
            .iter()
            .map(|batch| InferBatchStatistics {
                batch_size: batch.batch_size,
                compute_input: duration(batch.compute_input),
                compute_infer: duration(batch.compute_infer),
                compute_output: duration(batch.compute_output),
            })
            .collect(),
        ..Default::default()
    }
}

/// One row of the repository index: its state name and, when not ready, why.
pub(crate) fn index_entry(entry: IndexEntry) -> ModelIndex {
    ModelIndex {
        name: entry.name,
        version: entry.version.map(|v| v.to_string()).unwrap_or_default(),
        state: entry.state.name().to_string(),
        reason: entry.state.reason().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manager::ModelState;

    #[test]
    fn index_rows() {
        let row = index_entry(IndexEntry {
            name: "m".into(),
            version: Some(2),
            state: ModelState::Ready,
        });
        assert_eq!(
            (
                row.version.as_str(),
                row.state.as_str(),
                row.reason.as_str()
            ),
            ("2", "READY", "")
        );
        let row = index_entry(IndexEntry {
            name: "m".into(),
            version: None,
            state: ModelState::Unavailable("no model file".into()),
        });
        assert_eq!(
            (
                row.version.as_str(),
                row.state.as_str(),
                row.reason.as_str()
            ),
            ("", "UNAVAILABLE", "no model file")
        );
    }
}
