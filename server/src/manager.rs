//! The model manager: loads what the repository holds under the model
//! control mode (none, poll, explicit), keeps the table of models and
//! versions the front ends read, and unloads. It knows nothing about HTTP or
//! gRPC.
//!
//! The table sits behind a lock that is only held to read or swap entries,
//! never across an await or an execution: a request clones the version's
//! `Arc` and lets go. A reload swaps the new versions in; requests in flight
//! on the old ones finish on them, and the old schedulers stop once the last
//! request drops its `Arc`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use ferrite_proto::inference::ModelConfig;
use ferrite_repository::{ModelSpec, RepositoryOptions};

use crate::error::ServerError;
use crate::fingerprint::fingerprint;
use crate::loader::{load_model, LoadOutcome};
use crate::model::LoadedModel;
use crate::options::ControlMode;

/// Reason recorded for a model unloaded on request.
pub const UNLOADED: &str = "unloaded";

/// Where a model stands, as the repository index reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelState {
    /// In the repository, never loaded (explicit mode): listed by name only.
    NotLoaded,
    Loading,
    Ready,
    Unavailable(String),
}

impl ModelState {
    /// Triton's state name.
    pub fn name(&self) -> &'static str {
        match self {
            ModelState::NotLoaded => "",
            ModelState::Loading => "LOADING",
            ModelState::Ready => "READY",
            ModelState::Unavailable(_) => "UNAVAILABLE",
        }
    }

    /// Why the model is not ready; empty when it is.
    pub fn reason(&self) -> &str {
        match self {
            ModelState::Unavailable(reason) => reason,
            _ => "",
        }
    }
}

#[derive(Debug)]
struct ModelSlot {
    state: ModelState,
    versions: BTreeMap<i64, Arc<LoadedModel>>,
    /// Versions that failed to load, with the reason.
    failed: BTreeMap<i64, String>,
    /// Fingerprint of the model folder at the last load (poll mode).
    fingerprint: Option<u64>,
}

impl ModelSlot {
    fn empty(state: ModelState) -> Self {
        Self {
            state,
            versions: BTreeMap::new(),
            failed: BTreeMap::new(),
            fingerprint: None,
        }
    }
}

/// One row of the repository index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub name: String,
    pub version: Option<i64>,
    pub state: ModelState,
}

/// How the manager finds and loads models.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    pub repository: RepositoryOptions,
    pub mode: ControlMode,
    /// Models to load at start-up in explicit mode; `*` loads all.
    pub startup_models: Vec<String>,
    /// Models loaded in parallel at most.
    pub load_threads: usize,
}

/// What a load request may replace: the config, and the model's files
/// (paths relative to the model folder, such as `1/model.onnx`).
#[derive(Debug, Default)]
pub struct LoadRequest {
    pub config: Option<ModelConfig>,
    pub files: Vec<(String, Vec<u8>)>,
}

#[derive(Debug)]
pub struct ModelManager {
    options: ManagerOptions,
    models: RwLock<BTreeMap<String, ModelSlot>>,
}

impl ModelManager {
    pub fn new(options: ManagerOptions) -> Self {
        Self {
            options,
            models: RwLock::new(BTreeMap::new()),
        }
    }

    pub fn mode(&self) -> ControlMode {
        self.options.mode
    }

    /// Loads what the mode loads at start-up: every model (none, poll), or
    /// the `--load-model` ones (explicit). Returns the failures. Blocks.
    pub fn load_startup(&self) -> Result<Vec<(String, String)>, ServerError> {
        let found = ferrite_repository::scan(&self.options.repository)
            .map_err(|e| ServerError::internal(e.to_string()))?;
        let wanted = &self.options.startup_models;
        let everything =
            self.options.mode != ControlMode::Explicit || wanted.iter().any(|m| m == "*");
        let mut failures = Vec::new();
        if !everything {
            for name in wanted {
                if !found.iter().any(|f| &f.name == name) {
                    failures.push((
                        name.clone(),
                        format!("model '{name}' is not in the repository"),
                    ));
                }
            }
        }
        let jobs: Vec<_> = found
            .into_iter()
            .filter(|f| everything || wanted.contains(&f.name))
            .collect();
        for job in &jobs {
            self.write()
                .insert(job.name.clone(), ModelSlot::empty(ModelState::Loading));
        }
        let next = AtomicUsize::new(0);
        let results = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for _ in 0..self.options.load_threads.clamp(1, jobs.len().max(1)) {
                scope.spawn(|| loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(index) else { break };
                    let result = match &job.result {
                        Ok(spec) => self.install(spec),
                        Err(error) => {
                            self.mark_failed(&job.name, error.to_string());
                            Err(error.to_string())
                        }
                    };
                    if let Err(reason) = result {
                        results
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .push((job.name.clone(), reason));
                    }
                });
            }
        });
        failures.extend(
            results
                .into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for (name, reason) in &failures {
            tracing::error!(model = %name, "failed to load: {reason}");
        }
        Ok(failures)
    }

    /// Loads or reloads one model on request (explicit mode only). A failed
    /// reload leaves the versions already serving in place. Blocks.
    pub fn load(&self, name: &str, request: LoadRequest) -> Result<(), ServerError> {
        self.require_explicit()?;
        let files_dir;
        let spec = if request.files.is_empty() {
            match request.config {
                Some(config) => ferrite_repository::load_model_with_config(
                    &self.options.repository,
                    name,
                    config,
                ),
                None => ferrite_repository::load_model(&self.options.repository, name),
            }
        } else {
            let config = request.config.ok_or_else(|| {
                ServerError::invalid(format!(
                    "failed to load '{name}': model files given without a config parameter"
                ))
            })?;
            files_dir = crate::override_files::write(name, &request.files)?;
            let repository = RepositoryOptions {
                roots: vec![files_dir.path().to_path_buf()],
                auto_complete: self.options.repository.auto_complete,
            };
            ferrite_repository::load_model_with_config(&repository, name, config)
        };
        let spec = spec.map_err(|e| match e {
            ferrite_repository::RepositoryError::ModelNotFound { .. } => ServerError::invalid(
                format!("failed to load '{name}', failed to poll from model repository: {e}"),
            ),
            other => ServerError::invalid(format!("failed to load '{name}': {other}")),
        })?;
        self.begin(name);
        self.install(&spec)
            .map_err(|reason| ServerError::invalid(format!("failed to load '{name}': {reason}")))
    }

    /// Unloads a model on request (explicit mode only). Requests in flight
    /// finish; new ones are refused.
    pub fn unload(&self, name: &str) -> Result<(), ServerError> {
        self.require_explicit()?;
        self.remove(name);
        Ok(())
    }

    /// Rescans the repository (poll mode): loads new models, reloads changed
    /// ones and unloads removed ones. Blocks.
    pub fn poll(&self) -> Result<(), ServerError> {
        let found = ferrite_repository::scan(&self.options.repository)
            .map_err(|e| ServerError::internal(e.to_string()))?;
        let known: Vec<String> = self.read().keys().cloned().collect();
        for name in known {
            if !found.iter().any(|f| f.name == name) {
                tracing::info!(model = %name, "removed from the repository; unloading");
                self.remove(&name);
            }
        }
        for entry in found {
            let print = fingerprint(&entry.dir);
            let current = self
                .read()
                .get(&entry.name)
                .and_then(|slot| slot.fingerprint);
            if current == Some(print) {
                continue;
            }
            match entry.result {
                Ok(spec) => {
                    tracing::info!(model = %entry.name, "new or changed in the repository; loading");
                    self.begin(&entry.name);
                    if let Err(reason) = self.install(&spec) {
                        tracing::error!(model = %entry.name, "reload failed: {reason}");
                    }
                }
                Err(error) => {
                    tracing::error!(model = %entry.name, "cannot load: {error}");
                    self.mark_failed(&entry.name, error.to_string());
                }
            }
            if let Some(slot) = self.write().get_mut(&entry.name) {
                slot.fingerprint = Some(print);
            }
        }
        Ok(())
    }

    fn require_explicit(&self) -> Result<(), ServerError> {
        if self.options.mode == ControlMode::Explicit {
            Ok(())
        } else {
            Err(ServerError::unavailable(
                "explicit model load / unload is not allowed if polling is enabled",
            ))
        }
    }

    /// Shows a model as loading unless versions of it already serve.
    fn begin(&self, name: &str) {
        let mut models = self.write();
        let slot = models
            .entry(name.to_string())
            .or_insert_with(|| ModelSlot::empty(ModelState::Loading));
        if slot.versions.is_empty() {
            slot.state = ModelState::Loading;
        }
    }

    /// Loads a spec and swaps its versions in; on failure the versions
    /// serving stay and the reason is returned.
    fn install(&self, spec: &ModelSpec) -> Result<(), String> {
        let LoadOutcome { versions, failed } = load_model(spec);
        let mut models = self.write();
        let slot = models
            .entry(spec.name.clone())
            .or_insert_with(|| ModelSlot::empty(ModelState::Loading));
        if versions.is_empty() {
            let reason = failed
                .values()
                .next()
                .cloned()
                .unwrap_or_else(|| "no version to load".to_string());
            if slot.versions.is_empty() {
                slot.state = ModelState::Unavailable(reason.clone());
                slot.failed = failed;
            }
            return Err(reason);
        }
        slot.versions = versions;
        slot.failed = failed;
        slot.state = ModelState::Ready;
        slot.fingerprint = Some(fingerprint(&spec.dir));
        Ok(())
    }

    fn mark_failed(&self, name: &str, reason: String) {
        let mut models = self.write();
        let slot = models
            .entry(name.to_string())
            .or_insert_with(|| ModelSlot::empty(ModelState::Loading));
        if slot.versions.is_empty() {
            slot.state = ModelState::Unavailable(reason);
        }
    }

    fn remove(&self, name: &str) {
        let old = {
            let mut models = self.write();
            let Some(slot) = models.get_mut(name) else {
                return;
            };
            slot.state = ModelState::Unavailable(UNLOADED.to_string());
            slot.failed.clear();
            slot.fingerprint = None;
            std::mem::take(&mut slot.versions)
        };
        for (version, _) in old {
            tracing::info!(model = %name, version, "unloaded");
        }
    }

    /// The version to serve: `version` if given, else the highest loaded.
    pub fn get(&self, name: &str, version: Option<i64>) -> Result<Arc<LoadedModel>, ServerError> {
        let models = self.read();
        let slot = models.get(name).ok_or_else(|| {
            ServerError::not_found(format!("Request for unknown model: '{name}' is not found"))
        })?;
        let found = match version {
            Some(v) => slot.versions.get(&v),
            None => slot.versions.values().next_back(),
        };
        if let Some(model) = found {
            return Ok(Arc::clone(model));
        }
        Err(match (version, &slot.state) {
            (Some(v), ModelState::Ready) if !slot.failed.contains_key(&v) => {
                ServerError::not_found(format!(
                    "Request for unknown model: '{name}' version {v} is not found"
                ))
            }
            (Some(v), _) => ServerError::unavailable(format!(
                "Request for unknown model: '{name}' version {v} is not at ready state"
            )),
            (None, state) => ServerError::unavailable(format!(
                "Request for unknown model: '{name}' has no available versions{}",
                match state.reason() {
                    "" => String::new(),
                    reason => format!(" ({reason})"),
                }
            )),
        })
    }

    /// Parses a version string from a URL or message ("" means latest).
    pub fn parse_version(version: &str) -> Result<Option<i64>, ServerError> {
        if version.is_empty() {
            return Ok(None);
        }
        version
            .parse::<i64>()
            .ok()
            .filter(|v| *v >= 0)
            .map(Some)
            .ok_or_else(|| {
                ServerError::invalid(format!("failed to parse model version '{version}'"))
            })
    }

    /// Loaded versions of a model, ascending.
    pub fn versions(&self, name: &str) -> Vec<Arc<LoadedModel>> {
        self.read()
            .get(name)
            .map(|slot| slot.versions.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every loaded version of every model.
    pub fn all_loaded(&self) -> Vec<Arc<LoadedModel>> {
        self.read()
            .values()
            .flat_map(|slot| slot.versions.values().cloned())
            .collect()
    }

    /// Every model of the repository, and every version that loaded or
    /// failed. Blocks while it lists the repository.
    pub fn index(&self) -> Vec<IndexEntry> {
        let in_repository = ferrite_repository::scan(&self.options.repository)
            .map(|found| found.into_iter().map(|f| f.name).collect::<Vec<_>>())
            .unwrap_or_default();
        let models = self.read();
        let mut entries: Vec<IndexEntry> = in_repository
            .into_iter()
            .filter(|name| !models.contains_key(name))
            .map(|name| IndexEntry {
                name,
                version: None,
                state: ModelState::NotLoaded,
            })
            .collect();
        for (name, slot) in models.iter() {
            let entry = |version, state| IndexEntry {
                name: name.clone(),
                version,
                state,
            };
            if slot.versions.is_empty() && slot.failed.is_empty() {
                entries.push(entry(None, slot.state.clone()));
            }
            for version in slot.versions.keys() {
                entries.push(entry(Some(*version), ModelState::Ready));
            }
            for (version, reason) in &slot.failed {
                entries.push(entry(
                    Some(*version),
                    ModelState::Unavailable(reason.clone()),
                ));
            }
        }
        entries.sort_by(|a, b| (&a.name, a.version).cmp(&(&b.name, b.version)));
        entries
    }

    /// Whether every model that should serve does: models unloaded on
    /// request do not count.
    pub fn all_ready(&self) -> bool {
        self.read().values().all(|slot| match &slot.state {
            ModelState::Ready => slot.failed.is_empty(),
            ModelState::Unavailable(reason) => reason == UNLOADED,
            ModelState::NotLoaded | ModelState::Loading => false,
        })
    }

    /// Removes every model and waits for their queued requests, up to
    /// `timeout`. Blocks: run it off the async runtime.
    pub fn unload_all(&self, timeout: Duration) {
        let models = std::mem::take(&mut *self.write());
        let deadline = Instant::now() + timeout;
        for (name, slot) in models {
            for (version, mut model) in slot.versions {
                loop {
                    match Arc::try_unwrap(model) {
                        Ok(owned) => {
                            owned.shutdown();
                            tracing::info!(model = %name, version, "unloaded");
                            break;
                        }
                        Err(shared) if Instant::now() < deadline => {
                            model = shared;
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        Err(_) => {
                            tracing::warn!(model = %name, version, "requests still in flight at exit");
                            break;
                        }
                    }
                }
            }
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, ModelSlot>> {
        self.models
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, ModelSlot>> {
        self.models
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
