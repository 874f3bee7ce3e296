//! The trace settings of Triton's trace extension, global and per model,
//! and the sampling decision they drive.
//!
//! Settings are strings or string lists, as the extension shows them:
//! `trace_level` (`["OFF"]`, or `TIMESTAMPS`, `TENSORS` or both; TENSORS
//! only in triton mode), `trace_rate` (one of every
//! N requests is traced; 0 traces only requests whose client propagated a
//! sampled parent), `trace_count` (traces left to collect; -1 is
//! unlimited; it counts down as traces are collected), and where traces go:
//! `trace_mode` (`triton` or `opentelemetry`), `trace_file` and
//! `log_frequency` (Triton's trace files). Those three are fixed at start-up
//! (`--trace-config`): an update may repeat their value, anything else is
//! refused. In triton mode, turning TIMESTAMPS on needs a trace file.
//!
//! A model's settings are the global ones except where an update for that
//! model overrode them; such an override has its own sampling counter (a
//! `trace_rate`) or its own countdown (a `trace_count`). An update with a
//! setting cleared (JSON `null`, a gRPC setting without values) drops the
//! model's override, so the global value applies again. An update is
//! checked whole before any of it is applied.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use serde::Serialize;

use super::config::TraceMode;
use crate::error::ServerError;

/// What is traced: any of the request's time stamps (TIMESTAMPS) and its
/// input and output tensors (TENSORS); neither is OFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceLevel {
    pub timestamps: bool,
    pub tensors: bool,
}

impl TraceLevel {
    pub const OFF: Self = Self {
        timestamps: false,
        tensors: false,
    };
    pub const TIMESTAMPS: Self = Self {
        timestamps: true,
        tensors: false,
    };
    pub const TENSORS: Self = Self {
        timestamps: false,
        tensors: true,
    };

    /// Parses one level name; `what` names the setting in errors.
    pub fn parse(name: &str, what: &str) -> Result<Self, String> {
        match name {
            "OFF" => Ok(Self::OFF),
            "TIMESTAMPS" => Ok(Self::TIMESTAMPS),
            "TENSORS" => Ok(Self::TENSORS),
            other => Err(format!(
                "{what}: unknown trace level '{other}' (supported: OFF, TIMESTAMPS, TENSORS)"
            )),
        }
    }

    /// Several levels together: traced as much as any of them traces (OFF
    /// adds nothing), as tritonserver combines repeated levels.
    pub fn parse_all<'a>(
        names: impl IntoIterator<Item = &'a str>,
        what: &str,
    ) -> Result<Self, String> {
        let mut level = None;
        for name in names {
            let parsed = Self::parse(name, what)?;
            level = Some(level.unwrap_or(Self::OFF).with(parsed));
        }
        level.ok_or_else(|| format!("{what} needs at least one level (OFF, TIMESTAMPS or TENSORS)"))
    }

    /// What either level traces.
    pub fn with(self, other: Self) -> Self {
        Self {
            timestamps: self.timestamps || other.timestamps,
            tensors: self.tensors || other.tensors,
        }
    }

    pub fn is_off(self) -> bool {
        self == Self::OFF
    }

    /// The level as the trace extension lists it.
    fn names(self) -> Vec<String> {
        let mut names = Vec::with_capacity(2);
        if self.timestamps {
            names.push("TIMESTAMPS".to_string());
        }
        if self.tensors {
            names.push("TENSORS".to_string());
        }
        if names.is_empty() {
            names.push("OFF".to_string());
        }
        names
    }
}

/// The global settings the server starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceSettings {
    pub level: TraceLevel,
    pub rate: u32,
    /// Traces to collect; -1 is unlimited.
    pub count: i64,
}

impl Default for TraceSettings {
    /// tritonserver's defaults: off, one of every 1000 requests, unlimited.
    fn default() -> Self {
        Self {
            level: TraceLevel::OFF,
            rate: 1000,
            count: -1,
        }
    }
}

/// The value an update gives one setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Given {
    /// Drop the model's override of this setting.
    Clear,
    /// The new value: one string, or several for `trace_level`.
    Values(Vec<String>),
}

/// The settings as the trace extension answers them (HTTP JSON; gRPC
/// turns each into a list of strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SettingsView {
    pub trace_level: Vec<String>,
    pub trace_rate: String,
    pub trace_count: String,
    pub log_frequency: String,
    pub trace_file: String,
    pub trace_mode: String,
}

impl SettingsView {
    /// Each setting with its values, in the extension's order.
    pub fn entries(self) -> [(&'static str, Vec<String>); 6] {
        [
            ("trace_level", self.trace_level),
            ("trace_rate", vec![self.trace_rate]),
            ("trace_count", vec![self.trace_count]),
            ("log_frequency", vec![self.log_frequency]),
            ("trace_file", vec![self.trace_file]),
            ("trace_mode", vec![self.trace_mode]),
        ]
    }
}

/// Where traces go, as the settings show it; fixed at start-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    pub mode: TraceMode,
    /// `trace_file`: Triton mode's file, `""` when none.
    pub file: String,
    pub log_frequency: u32,
}

/// A sampling rate and the counter it divides.
#[derive(Debug, Clone)]
struct Rate {
    every: u32,
    seen: Arc<AtomicU64>,
}

impl Rate {
    fn new(every: u32) -> Self {
        Self {
            every,
            seen: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Whether this request is the one of its `every` that is traced (the
    /// first request is).
    fn hit(&self) -> bool {
        self.every != 0
            && self
                .seen
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(u64::from(self.every))
    }
}

/// A model's overrides of the global settings.
#[derive(Debug, Clone, Default)]
struct Overrides {
    level: Option<TraceLevel>,
    rate: Option<Rate>,
    count: Option<Arc<AtomicI64>>,
}

#[derive(Debug)]
struct Table {
    level: TraceLevel,
    rate: Rate,
    count: Arc<AtomicI64>,
    models: HashMap<String, Overrides>,
}

impl Table {
    fn effective(&self, model: Option<&str>) -> (TraceLevel, &Rate, &AtomicI64) {
        let overrides = model.and_then(|m| self.models.get(m));
        let level = overrides.and_then(|o| o.level).unwrap_or(self.level);
        let rate = overrides
            .and_then(|o| o.rate.as_ref())
            .unwrap_or(&self.rate);
        let count = overrides
            .and_then(|o| o.count.as_deref())
            .unwrap_or(&self.count);
        (level, rate, count)
    }

    fn any_enabled(&self) -> bool {
        !self.level.is_off()
            || self
                .models
                .values()
                .any(|o| o.level.is_some_and(|l| !l.is_off()))
    }
}

/// One checked change.
#[derive(Debug, Clone, Copy)]
enum Change {
    Level(Option<TraceLevel>),
    Rate(Option<u32>),
    Count(Option<i64>),
    /// A Triton-mode setting at its only accepted value.
    Fixed,
}

/// The global and per-model settings, and the sampling state.
#[derive(Debug)]
pub struct TraceTable {
    table: RwLock<Table>,
    output: Output,
    /// Whether any setting traces at all; requests skip the lock when not.
    enabled: AtomicBool,
}

impl TraceTable {
    pub fn new(settings: TraceSettings, output: Output) -> Self {
        Self {
            output,
            table: RwLock::new(Table {
                level: settings.level,
                rate: Rate::new(settings.rate),
                count: Arc::new(AtomicI64::new(settings.count)),
                models: HashMap::new(),
            }),
            enabled: AtomicBool::new(!settings.level.is_off()),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        // The table holds plain values; a writer that panicked left it
        // consistent, so a poisoned lock is still usable.
        self.table.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The settings that apply to `model`'s requests, or the global ones.
    pub fn view(&self, model: Option<&str>) -> SettingsView {
        let table = self.read();
        let (level, rate, count) = table.effective(model);
        SettingsView {
            trace_level: level.names(),
            trace_rate: rate.every.to_string(),
            trace_count: count.load(Ordering::Relaxed).to_string(),
            log_frequency: self.output.log_frequency.to_string(),
            trace_file: self.output.file.clone(),
            trace_mode: self.output.mode.name().to_string(),
        }
    }

    /// Applies `changes` to `model`'s overrides, or to the global settings,
    /// and answers the settings that now apply. Nothing changes when any
    /// setting is refused; the error names it.
    pub fn update(
        &self,
        model: Option<&str>,
        changes: &[(String, Given)],
    ) -> Result<SettingsView, ServerError> {
        let checked = changes
            .iter()
            .map(|(name, given)| check(name, given, model.is_some(), &self.output))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ServerError::invalid)?;
        let turns_on = checked
            .iter()
            .any(|c| matches!(c, Change::Level(Some(level)) if !level.is_off()));
        if turns_on && self.output.mode == TraceMode::Triton && self.output.file.is_empty() {
            return Err(ServerError::invalid(
                "trace_level TIMESTAMPS or TENSORS in triton mode needs a trace file: start \
                 ferrite with --trace-config triton,file=PATH (or --trace-config \
                 mode=opentelemetry)",
            ));
        }
        {
            let mut table = self.table.write().unwrap_or_else(|e| e.into_inner());
            match model {
                Some(model) => {
                    let overrides = table.models.entry(model.to_string()).or_default();
                    for change in checked {
                        match change {
                            Change::Level(level) => overrides.level = level,
                            Change::Rate(rate) => overrides.rate = rate.map(Rate::new),
                            Change::Count(count) => {
                                overrides.count = count.map(|c| Arc::new(AtomicI64::new(c)));
                            }
                            Change::Fixed => {}
                        }
                    }
                }
                None => {
                    for change in checked {
                        match change {
                            Change::Level(Some(level)) => table.level = level,
                            Change::Rate(Some(rate)) => table.rate.every = rate,
                            Change::Count(Some(count)) => {
                                table.count.store(count, Ordering::Relaxed);
                            }
                            Change::Level(None)
                            | Change::Rate(None)
                            | Change::Count(None)
                            | Change::Fixed => {}
                        }
                    }
                }
            }
            self.enabled.store(table.any_enabled(), Ordering::Relaxed);
        }
        Ok(self.view(model))
    }

    /// The level a request for `model` is traced at, `None` when it is not
    /// traced. A request whose client propagated a sampled parent is traced
    /// whenever the level is not OFF, regardless of rate and count (as
    /// tritonserver does); others are sampled by the rate and take one of
    /// the count.
    pub fn sample(&self, model: &str, parent_sampled: bool) -> Option<TraceLevel> {
        if !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        let table = self.read();
        let (level, rate, count) = table.effective(Some(model));
        if level.is_off() {
            return None;
        }
        if parent_sampled {
            return Some(level);
        }
        let sampled = rate.hit()
            && count
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| match left {
                    -1 => Some(-1),
                    left if left > 0 => Some(left - 1),
                    _ => None,
                })
                .is_ok();
        sampled.then_some(level)
    }
}

/// Checks one setting of an update; `for_model` allows clearing. The
/// output settings may only repeat `output`'s values.
fn check(name: &str, given: &Given, for_model: bool, output: &Output) -> Result<Change, String> {
    let values = match given {
        Given::Clear if for_model => None,
        Given::Clear => {
            return Err(format!(
                "trace setting '{name}' can only be cleared for a model; give the global setting a value"
            ))
        }
        Given::Values(values) => Some(values.as_slice()),
    };
    let single = |values: &[String]| match values {
        [value] => Ok(value.trim().to_string()),
        _ => Err(format!(
            "trace setting '{name}' takes one value, got {}",
            values.len()
        )),
    };
    match name {
        "trace_level" => values
            .map(|v| {
                let level = TraceLevel::parse_all(v.iter().map(String::as_str), "trace_level")?;
                if level.tensors && output.mode == TraceMode::OpenTelemetry {
                    return Err(TENSORS_NEED_FILES.to_string());
                }
                Ok(level)
            })
            .transpose()
            .map(Change::Level),
        "trace_rate" => values
            .map(|v| {
                let value = single(v)?;
                value.parse::<u32>().map_err(|_| {
                    format!("trace setting 'trace_rate' must be an unsigned integer, got '{value}'")
                })
            })
            .transpose()
            .map(Change::Rate),
        "trace_count" => values
            .map(|v| {
                let value = single(v)?;
                parse_count(&value).map_err(|e| format!("trace setting 'trace_count' {e}"))
            })
            .transpose()
            .map(Change::Count),
        "trace_mode" | "trace_file" | "log_frequency" => {
            let fixed = match name {
                "trace_mode" => output.mode.name().to_string(),
                "trace_file" => output.file.clone(),
                _ => output.log_frequency.to_string(),
            };
            match values.map(single).transpose()? {
                Some(value) if value != fixed => Err(format!(
                    "trace setting '{name}' is '{fixed}' and is set at start-up only (--trace-config); it cannot change at run time"
                )),
                _ => Ok(Change::Fixed),
            }
        }
        _ => Err(format!(
            "unknown trace setting '{name}' (supported: trace_level, trace_rate, trace_count, log_frequency, trace_file, trace_mode)"
        )),
    }
}

/// Why TENSORS is refused in OpenTelemetry mode.
pub const TENSORS_NEED_FILES: &str = "trace_level TENSORS writes tensors to Triton's trace files \
     (mode triton); OpenTelemetry spans carry TIMESTAMPS only";

/// A trace count: -1 (unlimited) or more.
pub fn parse_count(value: &str) -> Result<i64, String> {
    match value.parse::<i64>() {
        Ok(count) if count >= -1 => Ok(count),
        _ => Err(format!(
            "must be -1 (unlimited) or a count of traces, got '{value}'"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the tests' traces go: OpenTelemetry, which needs no file.
    fn otel() -> Output {
        Output {
            mode: TraceMode::OpenTelemetry,
            ..Output::default()
        }
    }

    fn values(v: &[&str]) -> Given {
        Given::Values(v.iter().map(|s| s.to_string()).collect())
    }

    fn change(name: &str, given: Given) -> Vec<(String, Given)> {
        vec![(name.to_string(), given)]
    }

    fn on(rate: u32, count: i64) -> TraceTable {
        TraceTable::new(
            TraceSettings {
                level: TraceLevel::TIMESTAMPS,
                rate,
                count,
            },
            otel(),
        )
    }

    #[test]
    fn defaults_are_tritons() {
        let table = TraceTable::new(TraceSettings::default(), otel());
        let view = table.view(None);
        assert_eq!(view.trace_level, vec!["OFF"]);
        assert_eq!(
            (view.trace_rate.as_str(), view.trace_count.as_str()),
            ("1000", "-1")
        );
        assert_eq!(view.trace_mode, "opentelemetry");
        assert!(table.sample("m", true).is_none());
    }

    #[test]
    fn rate_samples_one_of_n_and_count_counts_down() {
        let table = on(3, 2);
        let sampled: Vec<bool> = (0..9).map(|_| table.sample("m", false).is_some()).collect();
        assert_eq!(
            sampled,
            [true, false, false, true, false, false, false, false, false]
        );
        assert_eq!(table.view(None).trace_count, "0");
        assert!(
            table.sample("m", true).is_some(),
            "a sampled parent is always traced"
        );
        let unlimited = on(1, -1);
        assert!((0..5).all(|_| unlimited.sample("m", false).is_some()));
        assert_eq!(unlimited.view(None).trace_count, "-1");
        let parents_only = on(0, -1);
        assert!(parents_only.sample("m", false).is_none());
        assert!(parents_only.sample("m", true).is_some());
    }

    #[test]
    fn model_overrides_and_clearing() {
        let table = TraceTable::new(TraceSettings::default(), otel());
        let view = table
            .update(Some("a"), &change("trace_level", values(&["TIMESTAMPS"])))
            .unwrap();
        assert_eq!(view.trace_level, vec!["TIMESTAMPS"]);
        assert_eq!(table.view(None).trace_level, vec!["OFF"]);
        table
            .update(Some("a"), &change("trace_rate", values(&["1"])))
            .unwrap();
        assert!(table.sample("a", false).is_some());
        assert!(table.sample("b", false).is_none());
        // A global change shows through where the model has no override.
        table
            .update(None, &change("trace_count", values(&["7"])))
            .unwrap();
        assert!(table.sample("a", false).is_some());
        assert_eq!(table.view(Some("a")).trace_count, "6");
        let view = table
            .update(Some("a"), &change("trace_level", Given::Clear))
            .unwrap();
        assert_eq!(view.trace_level, vec!["OFF"]);
        assert_eq!(view.trace_rate, "1");
        assert!(table.sample("a", false).is_none());
    }

    #[test]
    fn refuses_bad_updates_whole() {
        let table = TraceTable::new(TraceSettings::default(), otel());
        for (name, given, named) in [
            ("trace_rate", values(&["fast"]), "trace_rate"),
            ("trace_rate", values(&["1", "2"]), "one value"),
            ("trace_count", values(&["-2"]), "trace_count"),
            ("trace_level", values(&["TENSORS"]), "TENSORS"),
            ("trace_level", values(&["LOUD"]), "LOUD"),
            ("trace_level", values(&[]), "at least one"),
            ("trace_mode", values(&["triton"]), "trace_mode"),
            ("trace_file", values(&["/tmp/t.json"]), "trace_file"),
            ("log_frequency", values(&["5"]), "log_frequency"),
            ("trace_colour", values(&["1"]), "trace_colour"),
            ("trace_rate", Given::Clear, "only be cleared for a model"),
        ] {
            let changes = vec![
                ("trace_level".to_string(), values(&["TIMESTAMPS"])),
                (name.to_string(), given),
            ];
            let error = table.update(None, &changes).unwrap_err();
            assert_eq!(error.http_status(), 400);
            assert!(error.message.contains(named), "{}", error.message);
        }
        assert_eq!(table.view(None).trace_level, vec!["OFF"], "nothing applied");
        let view = table
            .update(
                None,
                &[
                    ("trace_level".into(), values(&["OFF", "TIMESTAMPS"])),
                    ("trace_mode".into(), values(&["opentelemetry"])),
                    ("log_frequency".into(), values(&["0"])),
                ],
            )
            .unwrap();
        assert_eq!(view.trace_level, vec!["TIMESTAMPS"]);
    }

    #[test]
    fn tensors_level_in_triton_mode() {
        let files = Output {
            mode: TraceMode::Triton,
            file: "/tmp/trace.json".into(),
            log_frequency: 0,
        };
        let table = TraceTable::new(TraceSettings::default(), files);
        let view = table
            .update(
                None,
                &[
                    ("trace_level".into(), values(&["TENSORS", "TIMESTAMPS"])),
                    ("trace_rate".into(), values(&["1"])),
                ],
            )
            .unwrap();
        assert_eq!(view.trace_level, vec!["TIMESTAMPS", "TENSORS"]);
        assert_eq!(
            table.sample("m", false),
            Some(TraceLevel {
                timestamps: true,
                tensors: true
            })
        );
        table
            .update(Some("m"), &change("trace_level", values(&["TENSORS"])))
            .unwrap();
        assert_eq!(table.sample("m", false), Some(TraceLevel::TENSORS));
        assert_eq!(table.view(Some("m")).trace_level, vec!["TENSORS"]);
        let error = on(1, -1)
            .update(None, &change("trace_level", values(&["TENSORS"])))
            .unwrap_err();
        assert!(error.message.contains("OpenTelemetry"), "{}", error.message);
    }
}
