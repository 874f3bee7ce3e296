//! Turning a repository's model spec into loaded, scheduled versions:
//! engine choice, instances per instance group, and the scheduling policy.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrite_backends::{
    create_instance, resolve_engine, resolve_gpu_engine, DataType, InstanceSpec,
};
use ferrite_proto::inference::model_config::SchedulingChoice;
use ferrite_proto::inference::model_instance_group::Kind;
use ferrite_proto::inference::{batch_input, model_queue_policy, ModelConfig, ModelQueuePolicy};
use ferrite_repository::{ModelSpec, ModelVersion};
use ferrite_scheduler::{
    BatchInput, BatchInputKind, BatchLayout, BatchPolicy, ModelScheduler, QueuePolicy,
    SchedulerOptions, TimeoutAction,
};

use crate::model::LoadedModel;
use crate::warmup;

/// The versions of one model that loaded, and those that failed with why.
#[derive(Debug, Default)]
pub struct LoadOutcome {
    pub versions: BTreeMap<i64, Arc<LoadedModel>>,
    pub failed: BTreeMap<i64, String>,
}

/// Loads every version the spec lists. Blocks for as long as the engines
/// take; run it off the async runtime.
pub fn load_model(spec: &ModelSpec) -> LoadOutcome {
    let mut versions = BTreeMap::new();
    let mut failed = BTreeMap::new();
    for version in &spec.versions {
        let started = Instant::now();
        match load_version(spec, version) {
            Ok(mut model) => {
                model.load_duration = started.elapsed();
                tracing::info!(
                    model = %spec.name,
                    version = version.version,
                    engine = %model.engine,
                    "loaded in {:.2}s",
                    started.elapsed().as_secs_f64()
                );
                versions.insert(version.version, Arc::new(model));
            }
            Err(reason) => {
                tracing::error!(model = %spec.name, version = version.version, "{reason}");
                failed.insert(version.version, reason);
            }
        }
    }
    LoadOutcome { versions, failed }
}

fn load_version(spec: &ModelSpec, version: &ModelVersion) -> Result<LoadedModel, String> {
    let config = &spec.config;
    let warmup_samples = warmup::build_samples(config, &spec.dir)?;
    let wants_gpu = config
        .instance_group
        .iter()
        .any(|g| matches!(Kind::try_from(g.kind), Ok(Kind::Gpu | Kind::Auto)));
    let gpus = wants_gpu.then(|| ferrite_backends::cuda::available().map(|info| info.device_count));
    let placements = instance_placements(config, gpus.as_ref())?;
    let cpu_engine = if placements.iter().any(|p| p.device.is_none()) {
        Some(resolve_engine(config).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let mut instances = Vec::with_capacity(placements.len());
    let mut first_engine = None;
    for (index, placement) in placements.iter().enumerate() {
        let group = &config.instance_group[placement.group].name;
        let engine = match (placement.device, cpu_engine) {
            (Some(device), _) => resolve_gpu_engine(config, device)
                .map_err(|e| format!("instance_group '{group}' of model '{}': {e}", config.name))?,
            (None, Some(engine)) => engine,
            (None, None) => return Err("no CPU engine was chosen for a CPU instance".into()),
        };
        first_engine.get_or_insert(engine);
        let instance = create_instance(&InstanceSpec {
            model_name: &spec.name,
            model_file: &version.model_file,
            config,
            engine,
            instance_index: index,
        })
        .map_err(|e| match placement.device {
            Some(device) => format!("instance_group '{group}' (GPU {device}): {e}"),
            None => e.to_string(),
        })?;
        instances.push(instance);
    }
    let engine = first_engine.ok_or_else(|| "the model has no instance".to_string())?;
    let (policy, default_level) = scheduler_policy(config)?;
    let options = SchedulerOptions {
        name: format!("{}:{}", spec.name, version.version),
        policy,
        max_queue_size: 0,
        default_level,
        layout: batch_layout(config)?,
    };
    let scheduler = ModelScheduler::start(options, instances).map_err(|e| e.to_string())?;
    if let Err(reason) = warmup::run(config, &scheduler, &warmup_samples) {
        scheduler.shutdown();
        return Err(reason);
    }
    LoadedModel::new(version.version, config.clone(), engine, scheduler)
}

/// Where one instance runs: on the CPU, or on a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Placement {
    /// Index of its instance group in the config.
    group: usize,
    /// The GPU ordinal, `None` for the CPU.
    device: Option<usize>,
}

/// Places the instances of every instance group, as Triton does: KIND_CPU
/// groups on the CPU; KIND_GPU groups `count` times on each GPU of `gpus`
/// (every GPU when the list is empty), failing when no GPU is usable or a
/// listed one does not exist; KIND_AUTO groups like KIND_GPU when a GPU is
/// usable and on the CPU otherwise (logged either way). `gpus` is the
/// number of devices the driver reports, or why none can be used; `None`
/// when no group needs a GPU.
fn instance_placements(
    config: &ModelConfig,
    gpus: Option<&Result<usize, String>>,
) -> Result<Vec<Placement>, String> {
    let mut placements = Vec::new();
    for (index, group) in config.instance_group.iter().enumerate() {
        let count = usize::try_from(group.count.max(1)).unwrap_or(1);
        let on_cpu = |placements: &mut Vec<Placement>| {
            placements.extend((0..count).map(|_| Placement {
                group: index,
                device: None,
            }))
        };
        let kind = Kind::try_from(group.kind);
        let available = match gpus {
            Some(Ok(n)) if *n > 0 => Ok(*n),
            Some(Ok(_)) => Err("the CUDA driver reports no GPU".to_string()),
            Some(Err(reason)) => Err(reason.clone()),
            None => Err("no GPU was probed".to_string()),
        };
        match (kind, available) {
            (Ok(Kind::Cpu), _) => on_cpu(&mut placements),
            (Ok(Kind::Auto), Err(reason)) => {
                tracing::info!(model = %config.name, group = %group.name, "KIND_AUTO instance group runs on the CPU: {reason}");
                on_cpu(&mut placements);
            }
            (Ok(Kind::Gpu), Err(reason)) => {
                return Err(format!(
                    "instance_group '{}' of model '{}' asks for KIND_GPU, but no GPU can be used: {reason}; use KIND_CPU or KIND_AUTO",
                    group.name, config.name
                ));
            }
            (Ok(Kind::Gpu | Kind::Auto), Ok(device_count)) => {
                let devices: Vec<usize> = if group.gpus.is_empty() {
                    (0..device_count).collect()
                } else {
                    group
                        .gpus
                        .iter()
                        .map(|&g| {
                            usize::try_from(g)
                                .ok()
                                .filter(|&g| g < device_count)
                                .ok_or_else(|| {
                                    format!(
                                        "instance_group '{}' of model '{}' asks for GPU {g}, but the CUDA driver reports {device_count} device(s)",
                                        group.name, config.name
                                    )
                                })
                        })
                        .collect::<Result<_, _>>()?
                };
                if kind == Ok(Kind::Auto) {
                    tracing::info!(model = %config.name, group = %group.name, ?devices, "KIND_AUTO instance group runs on the GPU");
                }
                for device in devices {
                    placements.extend((0..count).map(|_| Placement {
                        group: index,
                        device: Some(device),
                    }));
                }
            }
            _ => {
                return Err(format!(
                    "instance_group '{}' of model '{}' has kind {} which ferrite does not support",
                    group.name, config.name, group.kind
                ));
            }
        }
    }
    if placements.is_empty() {
        placements.push(Placement {
            group: 0,
            device: None,
        });
    }
    Ok(placements)
}

/// The scheduling policy of a config: Triton's default scheduler (one
/// request per execution) unless `dynamic_batching` is set, with its
/// preferred sizes, delay, priority levels and queue policies.
fn scheduler_policy(config: &ModelConfig) -> Result<(BatchPolicy, usize), String> {
    let max = usize::try_from(config.max_batch_size).unwrap_or(0);
    let Some(SchedulingChoice::DynamicBatching(dynamic)) = &config.scheduling_choice else {
        return Ok((BatchPolicy::unbatched(max), 0));
    };
    let mut preferred: Vec<usize> = dynamic
        .preferred_batch_size
        .iter()
        .filter_map(|&s| usize::try_from(s).ok())
        .collect();
    preferred.sort_unstable();
    let default_policy = queue_policy(dynamic.default_queue_policy.as_ref());
    let levels = usize::try_from(dynamic.priority_levels)
        .map_err(|_| "dynamic_batching.priority_levels is too large".to_string())?;
    let (levels, default_level) = if levels == 0 {
        (vec![default_policy], 0)
    } else {
        let default_level = usize::try_from(dynamic.default_priority_level)
            .ok()
            .filter(|l| (1..=levels).contains(l))
            .ok_or_else(|| {
                format!(
                    "dynamic_batching.default_priority_level must be between 1 and priority_levels ({levels}), got {}",
                    dynamic.default_priority_level
                )
            })?;
        if let Some(key) = dynamic
            .priority_queue_policy
            .keys()
            .find(|&&k| k == 0 || k > dynamic.priority_levels)
        {
            return Err(format!(
                "dynamic_batching.priority_queue_policy has level {key}, outside 1..={levels}"
            ));
        }
        let policies = (1..=levels as u64)
            .map(|level| match dynamic.priority_queue_policy.get(&level) {
                Some(policy) => queue_policy(Some(policy)),
                None => default_policy.clone(),
            })
            .collect();
        (policies, default_level - 1)
    };
    let policy = BatchPolicy {
        max_batch_size: max,
        dynamic: max > 0,
        preferred_batch_sizes: preferred,
        max_queue_delay: Duration::from_micros(dynamic.max_queue_delay_microseconds),
        levels,
    };
    Ok((policy, default_level))
}

/// The config's ragged inputs, batch inputs and batch outputs (checked by
/// the repository's validation; see `ferrite_scheduler::BatchLayout`).
fn batch_layout(config: &ModelConfig) -> Result<BatchLayout, String> {
    let mut layout = BatchLayout {
        ragged_inputs: config
            .input
            .iter()
            .filter(|i| i.allow_ragged_batch)
            .map(|i| i.name.clone())
            .collect(),
        ..BatchLayout::default()
    };
    for (index, input) in config.batch_input.iter().enumerate() {
        let kind = match batch_input::Kind::try_from(input.kind) {
            Ok(batch_input::Kind::BatchElementCount) => BatchInputKind::ElementCount,
            Ok(batch_input::Kind::BatchAccumulatedElementCount) => {
                BatchInputKind::AccumulatedElementCount
            }
            Ok(batch_input::Kind::BatchAccumulatedElementCountWithZero) => {
                BatchInputKind::AccumulatedElementCountWithZero
            }
            Ok(batch_input::Kind::BatchMaxElementCountAsShape) => {
                BatchInputKind::MaxElementCountAsShape
            }
            Ok(batch_input::Kind::BatchItemShape) => BatchInputKind::ItemShape,
            Ok(batch_input::Kind::BatchItemShapeFlatten) => BatchInputKind::ItemShapeFlatten,
            Err(_) => {
                return Err(format!(
                    "batch_input[{index}].kind: {} is unknown",
                    input.kind
                ))
            }
        };
        let dtype = ferrite_proto::inference::DataType::try_from(input.data_type)
            .ok()
            .and_then(DataType::from_config)
            .ok_or_else(|| format!("batch_input[{index}].data_type is not a data type"))?;
        let [source] = input.source_input.as_slice() else {
            return Err(format!(
                "batch_input[{index}].source_input must name one input"
            ));
        };
        layout
            .batch_inputs
            .extend(input.target_name.iter().map(|target| BatchInput {
                kind,
                target: target.clone(),
                dtype,
                source: source.clone(),
            }));
    }
    for (index, output) in config.batch_output.iter().enumerate() {
        let [source] = output.source_input.as_slice() else {
            return Err(format!(
                "batch_output[{index}].source_input must name one input"
            ));
        };
        layout.scatter_outputs.extend(
            output
                .target_name
                .iter()
                .map(|target| (target.clone(), source.clone())),
        );
    }
    Ok(layout)
}

fn queue_policy(config: Option<&ModelQueuePolicy>) -> QueuePolicy {
    let Some(config) = config else {
        return QueuePolicy::default();
    };
    QueuePolicy {
        max_queue_size: usize::try_from(config.max_queue_size).unwrap_or(0),
        default_timeout: (config.default_timeout_microseconds > 0)
            .then(|| Duration::from_micros(config.default_timeout_microseconds)),
        allow_timeout_override: config.allow_timeout_override,
        timeout_action: match config.timeout_action() {
            model_queue_policy::TimeoutAction::Reject => TimeoutAction::Reject,
            model_queue_policy::TimeoutAction::Delay => TimeoutAction::Delay,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Result<(BatchPolicy, usize), String> {
        scheduler_policy(&ferrite_repository::parse_pbtxt(text).unwrap())
    }

    fn groups(text: &str) -> ModelConfig {
        ferrite_repository::parse_pbtxt(&format!("name: \"m\" {text}")).unwrap()
    }

    fn devices(placements: &[Placement]) -> Vec<Option<usize>> {
        placements.iter().map(|p| p.device).collect()
    }

    #[test]
    fn cpu_groups_stay_on_the_cpu() {
        let config = groups("instance_group [ { name: \"a\" kind: KIND_CPU count: 2 } ]");
        let placed = instance_placements(&config, None).unwrap();
        assert_eq!(devices(&placed), vec![None, None]);
    }

    #[test]
    fn gpu_groups_need_a_gpu_and_name_the_group() {
        let config = groups("instance_group [ { name: \"g\" kind: KIND_GPU } ]");
        let err =
            instance_placements(&config, Some(&Err("no CUDA driver found".into()))).unwrap_err();
        assert!(
            err.contains("instance_group 'g'") && err.contains("no CUDA driver"),
            "{err}"
        );
        let err = instance_placements(&config, Some(&Ok(0))).unwrap_err();
        assert!(err.contains("reports no GPU"), "{err}");
    }

    #[test]
    fn gpu_groups_use_the_listed_or_every_device() {
        let config =
            groups("instance_group [ { name: \"g\" kind: KIND_GPU count: 2 gpus: [ 1 ] } ]");
        let placed = instance_placements(&config, Some(&Ok(2))).unwrap();
        assert_eq!(devices(&placed), vec![Some(1), Some(1)]);
        let err = instance_placements(&config, Some(&Ok(1))).unwrap_err();
        assert!(
            err.contains("asks for GPU 1") && err.contains("1 device(s)"),
            "{err}"
        );
        let config = groups("instance_group [ { name: \"g\" kind: KIND_GPU } ]");
        let placed = instance_placements(&config, Some(&Ok(3))).unwrap();
        assert_eq!(devices(&placed), vec![Some(0), Some(1), Some(2)]);
    }

    #[test]
    fn auto_groups_fall_back_to_the_cpu() {
        let config = groups("instance_group [ { name: \"a\" kind: KIND_AUTO count: 2 } ]");
        let placed = instance_placements(&config, Some(&Err("no driver".into()))).unwrap();
        assert_eq!(devices(&placed), vec![None, None]);
        let placed = instance_placements(&config, Some(&Ok(1))).unwrap();
        assert_eq!(devices(&placed), vec![Some(0), Some(0)]);
    }

    #[test]
    fn default_scheduler_without_dynamic_batching() {
        let (policy, level) = policy("max_batch_size: 8").unwrap();
        assert!(!policy.dynamic);
        assert_eq!((policy.max_batch_size, level), (8, 0));
    }

    #[test]
    fn dynamic_batching_with_priorities_and_queue_policies() {
        let (policy, level) = policy(
            r#"max_batch_size: 16
            dynamic_batching {
              preferred_batch_size: [ 8, 4 ]
              max_queue_delay_microseconds: 300
              priority_levels: 3
              default_priority_level: 2
              default_queue_policy { max_queue_size: 10 timeout_action: DELAY
                                     default_timeout_microseconds: 500 }
              priority_queue_policy { key: 1 value { max_queue_size: 2 allow_timeout_override: true } }
            }"#,
        )
        .unwrap();
        assert!(policy.dynamic);
        assert_eq!(policy.preferred_batch_sizes, vec![4, 8]);
        assert_eq!(policy.max_queue_delay, Duration::from_micros(300));
        assert_eq!(level, 1);
        assert_eq!(policy.levels.len(), 3);
        assert_eq!(policy.levels[0].max_queue_size, 2);
        assert!(policy.levels[0].allow_timeout_override);
        assert_eq!(policy.levels[0].timeout_action, TimeoutAction::Reject);
        assert_eq!(policy.levels[2].max_queue_size, 10);
        assert_eq!(policy.levels[2].timeout_action, TimeoutAction::Delay);
        assert_eq!(
            policy.levels[2].default_timeout,
            Some(Duration::from_micros(500))
        );
    }

    #[test]
    fn priority_settings_out_of_range_name_the_field() {
        let error = policy(
            "max_batch_size: 4 dynamic_batching { priority_levels: 2 default_priority_level: 3 }",
        )
        .unwrap_err();
        assert!(error.contains("default_priority_level"), "{error}");
        let error = policy(
            r#"max_batch_size: 4 dynamic_batching { priority_levels: 2 default_priority_level: 1
               priority_queue_policy { key: 5 value { } } }"#,
        )
        .unwrap_err();
        assert!(error.contains("priority_queue_policy"), "{error}");
    }
}
