//! Triton's trace files (`--trace-config mode=triton`): each sampled
//! request becomes one JSON object, written to a JSON array on disk.
//!
//! An object holds the trace's `id`, `model_name`, `model_version`, the
//! `request_id` when the request had one, and `timestamps`, a list of
//! `{"name": ..., "ns": ...}` in time order (the same events as the
//! OpenTelemetry spans: HTTP_RECV_START, REQUEST_START, QUEUE_START,
//! COMPUTE_START, COMPUTE_INPUT_END, COMPUTE_OUTPUT_START, COMPUTE_END,
//! REQUEST_END, HTTP_SEND_START, or the gRPC ones; `ns` is Unix time).
//!
//! With `triton,log-frequency=0` (the default) every trace goes to
//! `triton,file`, whose array is closed at shutdown. With `N` > 0 the
//! traces go to `FILE.0`, `FILE.1`, ... each closed after `N` traces (the
//! last one at shutdown). The file is written as traces arrive, from one
//! thread behind a bounded queue, so memory stays bounded whatever the
//! file grows to; a trace that finds the queue full is dropped, counted
//! and logged, never holding its request.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;
use std::thread::JoinHandle;

use serde::Serialize;

/// Traces waiting for the writer, at most.
const QUEUE: usize = 4096;

/// Where the traces go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileOptions {
    /// `triton,file`; `None` until given.
    pub path: Option<PathBuf>,
    /// `triton,log-frequency`: traces per file, 0 for one file.
    pub log_frequency: u32,
}

/// One trace as the file holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TraceRecord {
    pub id: u64,
    pub model_name: String,
    pub model_version: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub request_id: String,
    pub timestamps: Vec<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timestamp {
    pub name: &'static str,
    pub ns: u64,
}

enum Message {
    Trace(String),
    Stop,
}

/// The queue in front of the writer thread.
#[derive(Debug)]
pub struct TraceFileWriter {
    queue: SyncSender<Message>,
    dropped: AtomicU64,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl TraceFileWriter {
    /// Starts the writer thread for `path`. Nothing is created on disk
    /// before the first trace.
    pub fn start(path: PathBuf, log_frequency: u32) -> std::io::Result<Self> {
        let (queue, traces) = sync_channel(QUEUE);
        let thread = std::thread::Builder::new()
            .name("trace-file".into())
            .spawn(move || write_traces(&traces, &path, log_frequency))?;
        Ok(Self {
            queue,
            dropped: AtomicU64::new(0),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues a trace without waiting; a full queue drops it.
    pub fn submit(&self, record: &TraceRecord) {
        let Ok(text) = serde_json::to_string(record) else {
            return;
        };
        if self.queue.try_send(Message::Trace(text)).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "trace file writer is behind: traces dropped");
            }
        }
    }

    /// Writes what is queued, closes the file and stops the thread. Blocks.
    pub fn shutdown(&self) {
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = self.queue.send(Message::Stop);
            if thread.join().is_err() {
                tracing::error!("the trace file writer panicked");
            }
        }
    }
}

/// The writer thread: appends each trace to the open file, opening and
/// closing files as the log frequency says.
fn write_traces(traces: &Receiver<Message>, path: &Path, log_frequency: u32) {
    let mut open: Option<(BufWriter<File>, PathBuf, u32)> = None;
    let mut index = 0u64;
    let mut failed = false;
    while let Ok(Message::Trace(text)) = traces.recv() {
        if open.is_none() {
            let target = if log_frequency == 0 {
                path.to_path_buf()
            } else {
                let mut name = path.as_os_str().to_owned();
                name.push(format!(".{index}"));
                index += 1;
                PathBuf::from(name)
            };
            match File::create(&target) {
                Ok(file) => open = Some((BufWriter::new(file), target, 0)),
                Err(e) => {
                    if !failed {
                        tracing::error!(file = %target.display(), "cannot write traces: {e}");
                        failed = true;
                    }
                    continue;
                }
            }
        }
        let Some((file, target, written)) = open.as_mut() else {
            continue;
        };
        let separator = if *written == 0 { "[\n" } else { ",\n" };
        let result = file
            .write_all(separator.as_bytes())
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.flush());
        if let Err(e) = result {
            tracing::error!(file = %target.display(), "cannot write a trace: {e}");
        }
        *written += 1;
        if log_frequency > 0 && *written >= log_frequency {
            close(open.take());
        }
    }
    close(open.take());
}

fn close(open: Option<(BufWriter<File>, PathBuf, u32)>) {
    if let Some((mut file, target, _)) = open {
        if let Err(e) = file.write_all(b"\n]\n").and_then(|()| file.flush()) {
            tracing::error!(file = %target.display(), "cannot close the trace file: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64) -> TraceRecord {
        TraceRecord {
            id,
            model_name: "simple".into(),
            model_version: 1,
            request_id: if id == 1 {
                "first".into()
            } else {
                String::new()
            },
            timestamps: vec![
                Timestamp {
                    name: "REQUEST_START",
                    ns: 10,
                },
                Timestamp {
                    name: "REQUEST_END",
                    ns: 20,
                },
            ],
        }
    }

    fn read(path: &Path) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn one_file_closed_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.json");
        let writer = TraceFileWriter::start(path.clone(), 0).unwrap();
        for id in 1..=3 {
            writer.submit(&record(id));
        }
        writer.shutdown();
        let traces = read(&path);
        assert_eq!(traces.as_array().unwrap().len(), 3);
        assert_eq!(traces[0]["request_id"], "first");
        assert!(traces[1].get("request_id").is_none());
        assert_eq!(traces[2]["timestamps"][1]["name"], "REQUEST_END");
        assert_eq!(traces[2]["timestamps"][1]["ns"], 20);
    }

    #[test]
    fn log_frequency_splits_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.json");
        let writer = TraceFileWriter::start(path.clone(), 2).unwrap();
        for id in 1..=5 {
            writer.submit(&record(id));
        }
        writer.shutdown();
        let sizes: Vec<usize> = (0..3)
            .map(|i| {
                read(&dir.path().join(format!("trace.json.{i}")))
                    .as_array()
                    .unwrap()
                    .len()
            })
            .collect();
        assert_eq!(sizes, [2, 2, 1]);
        assert!(!path.exists());
        assert!(!dir.path().join("trace.json.3").exists());
    }

    #[test]
    fn no_traces_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.json");
        TraceFileWriter::start(path.clone(), 0).unwrap().shutdown();
        assert!(!path.exists());
    }
}
