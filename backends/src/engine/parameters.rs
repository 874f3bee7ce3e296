//! The ONNX Runtime settings a config can carry, with Triton's names.
//!
//! Triton's ONNX Runtime backend reads them from the config's `parameters`
//! map and from `optimization { graph { level } }`. Each one it documents is
//! either honoured by the `onnxruntime` engine or rejected with a message
//! naming it; the `tract` engine, which has no such knobs, logs the ones that
//! are set and have no effect there.

use ferrite_proto::inference::ModelConfig;

/// Parameters that configure ONNX Runtime's CUDA execution provider, which
/// these CPU engines do not use.
const CUDA_ONLY: [&str; 4] = [
    "cudnn_conv_algo_search",
    "gpu_mem_limit",
    "arena_extend_strategy",
    "do_copy_in_default_stream",
];

/// Graph optimization level, from `optimization { graph { level } }`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GraphLevel {
    /// Level 0 (the default): every optimization.
    All,
    /// Level -1: basic optimizations only.
    Basic,
    /// Level 1: basic and extended optimizations.
    Extended,
    /// Level 2: no optimization.
    Disabled,
}

/// The ONNX Runtime session settings of a config.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SessionParameters {
    /// `intra_op_thread_count`; 1 unless set, so that instances do not
    /// oversubscribe the cores (0 lets ONNX Runtime use every core).
    pub intra_op_threads: usize,
    /// `inter_op_thread_count`.
    pub inter_op_threads: Option<usize>,
    /// `execution_mode`: 0 sequential, 1 parallel.
    pub parallel_execution: Option<bool>,
    /// `enable_mem_arena`.
    pub mem_arena: Option<bool>,
    /// `enable_mem_pattern`.
    pub mem_pattern: Option<bool>,
    /// `session.use_device_allocator_for_initializers`.
    pub device_allocator_for_initializers: Option<bool>,
    /// `memory.enable_memory_arena_shrinkage`, a run option (e.g. "cpu:0").
    pub arena_shrinkage: Option<String>,
    pub graph_level: GraphLevel,
    /// Parameters that no engine reads, reported at load.
    pub unknown: Vec<String>,
}

impl SessionParameters {
    /// Reads the settings from a config. Errors name the parameter.
    pub fn from_config(config: &ModelConfig) -> Result<Self, String> {
        let mut params = Self {
            intra_op_threads: 1,
            inter_op_threads: None,
            parallel_execution: None,
            mem_arena: None,
            mem_pattern: None,
            device_allocator_for_initializers: None,
            arena_shrinkage: None,
            graph_level: graph_level(config)?,
            unknown: Vec::new(),
        };
        if let Some(accelerators) = config
            .optimization
            .as_ref()
            .and_then(|o| o.execution_accelerators.as_ref())
        {
            let named = accelerators
                .cpu_execution_accelerator
                .iter()
                .chain(&accelerators.gpu_execution_accelerator)
                .map(|a| a.name.as_str())
                .next();
            if let Some(name) = named {
                return Err(format!(
                    "optimization.execution_accelerators ('{name}') is not supported; the ONNX \
                     engines run on the default CPU execution provider"
                ));
            }
        }
        let mut keys: Vec<&String> = config.parameters.keys().collect();
        keys.sort();
        for key in keys {
            let value = config.parameters[key].string_value.trim();
            match key.as_str() {
                "intra_op_thread_count" => params.intra_op_threads = count(key, value)?,
                "inter_op_thread_count" => params.inter_op_threads = Some(count(key, value)?),
                "execution_mode" => {
                    params.parallel_execution = Some(match value {
                        "0" => false,
                        "1" => true,
                        _ => return Err(invalid(key, value, "0 (sequential) or 1 (parallel)")),
                    })
                }
                "enable_mem_arena" => params.mem_arena = Some(flag(key, value)?),
                "enable_mem_pattern" => params.mem_pattern = Some(flag(key, value)?),
                "session.use_device_allocator_for_initializers" => {
                    params.device_allocator_for_initializers = Some(flag(key, value)?)
                }
                "memory.enable_memory_arena_shrinkage" => {
                    if value.is_empty() {
                        return Err(invalid(key, value, "a device list such as \"cpu:0\""));
                    }
                    params.arena_shrinkage = Some(value.to_string());
                }
                cuda if CUDA_ONLY.contains(&cuda) => {
                    return Err(format!(
                        "parameter '{cuda}' configures ONNX Runtime's CUDA execution provider, \
                         which ferrite's ONNX engines do not use; remove it"
                    ))
                }
                _ => params.unknown.push(key.clone()),
            }
        }
        Ok(params)
    }

    /// The settings a config gives that only ONNX Runtime honours, as
    /// `name=value` for the tract engine to report.
    pub fn onnxruntime_only(&self) -> Vec<String> {
        let mut set = Vec::new();
        if self.intra_op_threads != 1 {
            set.push(format!("intra_op_thread_count={}", self.intra_op_threads));
        }
        if let Some(n) = self.inter_op_threads {
            set.push(format!("inter_op_thread_count={n}"));
        }
        if let Some(parallel) = self.parallel_execution {
            set.push(format!("execution_mode={}", u8::from(parallel)));
        }
        if let Some(on) = self.mem_arena {
            set.push(format!("enable_mem_arena={}", u8::from(on)));
        }
        if let Some(on) = self.mem_pattern {
            set.push(format!("enable_mem_pattern={}", u8::from(on)));
        }
        if let Some(on) = self.device_allocator_for_initializers {
            set.push(format!(
                "session.use_device_allocator_for_initializers={}",
                u8::from(on)
            ));
        }
        if let Some(devices) = &self.arena_shrinkage {
            set.push(format!("memory.enable_memory_arena_shrinkage={devices}"));
        }
        if self.graph_level != GraphLevel::All {
            set.push(format!("optimization.graph.level={:?}", self.graph_level));
        }
        set
    }
}

fn graph_level(config: &ModelConfig) -> Result<GraphLevel, String> {
    let level = config
        .optimization
        .as_ref()
        .and_then(|o| o.graph.as_ref())
        .map_or(0, |g| g.level);
    match level {
        0 => Ok(GraphLevel::All),
        -1 => Ok(GraphLevel::Basic),
        1 => Ok(GraphLevel::Extended),
        2 => Ok(GraphLevel::Disabled),
        other => Err(format!(
            "optimization.graph.level {other} is not one of -1 (basic), 0 (all, the default), \
             1 (extended) or 2 (disabled)"
        )),
    }
}

fn count(key: &str, value: &str) -> Result<usize, String> {
    value
        .parse()
        .map_err(|_| invalid(key, value, "a thread count (0 or more)"))
}

fn flag(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "true" => Ok(true),
        "0" | "false" => Ok(false),
        _ => Err(invalid(key, value, "1/true or 0/false")),
    }
}

fn invalid(key: &str, value: &str, expected: &str) -> String {
    format!("parameter '{key}' is \"{value}\"; expected {expected}")
}

#[cfg(test)]
mod tests {
    use ferrite_proto::inference::{
        model_optimization_policy, ModelOptimizationPolicy, ModelParameter,
    };

    use super::*;

    fn config(params: &[(&str, &str)]) -> ModelConfig {
        ModelConfig {
            parameters: params
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        ModelParameter {
                            string_value: v.to_string(),
                        },
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_to_one_intra_op_thread() {
        let params = SessionParameters::from_config(&config(&[])).unwrap();
        assert_eq!(params.intra_op_threads, 1);
        assert_eq!(params.graph_level, GraphLevel::All);
        assert!(params.onnxruntime_only().is_empty());
    }

    #[test]
    fn reads_documented_parameters() {
        let params = SessionParameters::from_config(&config(&[
            ("intra_op_thread_count", "4"),
            ("inter_op_thread_count", "2"),
            ("execution_mode", "1"),
            ("enable_mem_arena", "0"),
            ("enable_mem_pattern", "true"),
            ("session.use_device_allocator_for_initializers", "1"),
            ("memory.enable_memory_arena_shrinkage", "cpu:0"),
            ("my_own_key", "x"),
        ]))
        .unwrap();
        assert_eq!(params.intra_op_threads, 4);
        assert_eq!(params.inter_op_threads, Some(2));
        assert_eq!(params.parallel_execution, Some(true));
        assert_eq!(params.mem_arena, Some(false));
        assert_eq!(params.mem_pattern, Some(true));
        assert_eq!(params.device_allocator_for_initializers, Some(true));
        assert_eq!(params.arena_shrinkage.as_deref(), Some("cpu:0"));
        assert_eq!(params.unknown, vec!["my_own_key".to_string()]);
        assert_eq!(params.onnxruntime_only().len(), 7);
    }

    #[test]
    fn rejects_bad_values_and_cuda_parameters() {
        let err = SessionParameters::from_config(&config(&[("intra_op_thread_count", "many")]))
            .unwrap_err();
        assert!(err.contains("'intra_op_thread_count'"), "{err}");
        let err = SessionParameters::from_config(&config(&[("execution_mode", "2")])).unwrap_err();
        assert!(err.contains("'execution_mode'"), "{err}");
        let err = SessionParameters::from_config(&config(&[("gpu_mem_limit", "1")])).unwrap_err();
        assert!(
            err.contains("'gpu_mem_limit'") && err.contains("CUDA"),
            "{err}"
        );
    }

    #[test]
    fn reads_graph_level() {
        let mut cfg = config(&[]);
        cfg.optimization = Some(ModelOptimizationPolicy {
            graph: Some(model_optimization_policy::Graph { level: 2 }),
            ..Default::default()
        });
        let params = SessionParameters::from_config(&cfg).unwrap();
        assert_eq!(params.graph_level, GraphLevel::Disabled);
        cfg.optimization = Some(ModelOptimizationPolicy {
            graph: Some(model_optimization_policy::Graph { level: 7 }),
            ..Default::default()
        });
        let err = SessionParameters::from_config(&cfg).unwrap_err();
        assert!(err.contains("optimization.graph.level 7"), "{err}");
    }
}
