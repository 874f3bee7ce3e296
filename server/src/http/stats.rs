//! The statistics extension's JSON document (`model_stats`), built from
//! each model version's [`StatsSnapshot`]. ferrite has no response cache,
//! so `cache_hit` and `cache_miss` are always zero.

use std::sync::Arc;

use ferrite_scheduler::{BatchSnapshot, DurationSnapshot, StatsSnapshot};
use serde::Serialize;

use crate::model::LoadedModel;

#[derive(Debug, Serialize)]
pub struct Statistics {
    model_stats: Vec<ModelStatistics>,
}

#[derive(Debug, Serialize)]
struct ModelStatistics {
    name: String,
    version: String,
    last_inference: u64,
    inference_count: u64,
    execution_count: u64,
    inference_stats: InferenceStatistics,
    batch_stats: Vec<BatchStatistics>,
}

#[derive(Debug, Serialize)]
struct InferenceStatistics {
    success: Duration,
    fail: Duration,
    queue: Duration,
    compute_input: Duration,
    compute_infer: Duration,
    compute_output: Duration,
    cache_hit: Duration,
    cache_miss: Duration,
}

#[derive(Debug, Serialize)]
struct BatchStatistics {
    batch_size: u64,
    compute_input: Duration,
    compute_infer: Duration,
    compute_output: Duration,
}

#[derive(Debug, Default, Serialize, PartialEq, Eq)]
struct Duration {
    count: u64,
    ns: u64,
}

impl From<DurationSnapshot> for Duration {
    fn from(d: DurationSnapshot) -> Self {
        Self {
            count: d.count,
            ns: d.ns,
        }
    }
}

impl From<&BatchSnapshot> for BatchStatistics {
    fn from(b: &BatchSnapshot) -> Self {
        Self {
            batch_size: b.batch_size,
            compute_input: b.compute_input.into(),
            compute_infer: b.compute_infer.into(),
            compute_output: b.compute_output.into(),
        }
    }
}

fn model_statistics(name: &str, version: i64, s: &StatsSnapshot) -> ModelStatistics {
    ModelStatistics {
        name: name.to_owned(),
        version: version.to_string(),
        last_inference: s.last_inference_ms,
        inference_count: s.inference_count,
        execution_count: s.execution_count,
        inference_stats: InferenceStatistics {
            success: s.success.into(),
            fail: s.fail.into(),
            queue: s.queue.into(),
            compute_input: s.compute_input.into(),
            compute_infer: s.compute_infer.into(),
            compute_output: s.compute_output.into(),
            cache_hit: Duration::default(),
            cache_miss: Duration::default(),
        },
        batch_stats: s.batch_stats.iter().map(BatchStatistics::from).collect(),
    }
}

/// The statistics of `models`, in the given order.
pub fn statistics(models: &[Arc<LoadedModel>]) -> Statistics {
    Statistics {
        model_stats: models
            .iter()
            .map(|m| model_statistics(&m.name, m.version, &m.stats()))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_has_tritons_fields() {
        let snapshot = StatsSnapshot {
            success: DurationSnapshot { count: 3, ns: 300 },
            fail: DurationSnapshot { count: 1, ns: 10 },
            inference_count: 5,
            execution_count: 2,
            last_inference_ms: 1234,
            batch_stats: vec![BatchSnapshot {
                batch_size: 4,
                compute_infer: DurationSnapshot { count: 1, ns: 50 },
                ..BatchSnapshot::default()
            }],
            ..StatsSnapshot::default()
        };
        let json = serde_json::to_value(model_statistics("m", 2, &snapshot)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "m", "version": "2", "last_inference": 1234,
                "inference_count": 5, "execution_count": 2,
                "inference_stats": {
                    "success": {"count": 3, "ns": 300}, "fail": {"count": 1, "ns": 10},
                    "queue": {"count": 0, "ns": 0}, "compute_input": {"count": 0, "ns": 0},
                    "compute_infer": {"count": 0, "ns": 0}, "compute_output": {"count": 0, "ns": 0},
                    "cache_hit": {"count": 0, "ns": 0}, "cache_miss": {"count": 0, "ns": 0}
                },
                "batch_stats": [{
                    "batch_size": 4, "compute_input": {"count": 0, "ns": 0},
                    "compute_infer": {"count": 1, "ns": 50}, "compute_output": {"count": 0, "ns": 0}
                }]
            })
        );
    }
}
