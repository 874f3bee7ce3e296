//! Triton's trace files (`--trace-config mode=triton`): each sampled
//! request becomes one JSON object, written to a JSON array on disk.
//!
//! An object holds the trace's `id`, `model_name`, `model_version`, the
//! `request_id` when the request had one, and at level TIMESTAMPS
//! `timestamps`, a list of `{"name": ..., "ns": ...}` in time order (the
//! same events as the OpenTelemetry spans: HTTP_RECV_START, REQUEST_START,
//! QUEUE_START, COMPUTE_START, COMPUTE_INPUT_END, COMPUTE_OUTPUT_START,
//! COMPUTE_END, REQUEST_END, HTTP_SEND_START, HTTP_SEND_END, or the gRPC
//! ones; `ns` is Unix time). At level TENSORS, objects of the same `id`
//! follow it, one per tensor, as tritonserver writes them: `activity`
//! TENSOR_QUEUE_INPUT (an input as the request was queued) or
//! TENSOR_BACKEND_OUTPUT (an output of the answer), and `tensor` with its
//! `name`, `data` (the elements as JSON values separated by commas; BOOL
//! as 1 and 0, BYTES elements as JSON strings), `shape` (dimensions
//! separated by commas) and `dtype`.
//!
//! With `triton,log-frequency=0` (the default) every trace goes to
//! `triton,file`, whose array is closed at shutdown. With `N` > 0 the
//! traces go to `FILE.0`, `FILE.1`, ... each closed after `N` traces (the
//! last one at shutdown). The file is written as traces arrive, from one
//! thread behind a bounded queue, so memory stays bounded whatever the
//! file grows to (at most 4096 traces or 256 MiB of text wait, whichever
//! is reached first: TENSORS traces can be large); a trace that finds the
//! queue full is dropped, counted
//! and logged, never holding its request.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use ferrite_backends::{DataType, NamedTensor};
use serde::Serialize;

use crate::http::codec::elements_text;

/// Traces waiting for the writer, at most.
const QUEUE: usize = 4096;
/// Bytes of trace text waiting for the writer, at most.
const QUEUE_BYTES: usize = 256 << 20;

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
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub timestamps: Vec<Timestamp>,
}

/// One tensor of a trace at level TENSORS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorRecord {
    pub id: u64,
    pub activity: &'static str,
    pub tensor: TracedTensor,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TracedTensor {
    pub name: String,
    pub data: String,
    pub shape: String,
    pub dtype: &'static str,
}

impl TensorRecord {
    /// `tensor` as trace `id` records it for `activity`: BOOL elements as 1
    /// and 0, as tritonserver writes them (and Triton's trace summary tool
    /// reads them as numbers); BYTES elements that are not UTF-8 leave
    /// `data` empty.
    pub fn new(id: u64, activity: &'static str, tensor: &NamedTensor) -> Self {
        let shape: Vec<String> = tensor.tensor.shape().iter().map(i64::to_string).collect();
        let data = match tensor.tensor.dtype() {
            DataType::Bool => {
                let bits: Vec<&str> = tensor
                    .tensor
                    .data()
                    .iter()
                    .map(|&b| if b == 0 { "0" } else { "1" })
                    .collect();
                bits.join(",")
            }
            _ => elements_text(&tensor.tensor).unwrap_or_default(),
        };
        Self {
            id,
            activity,
            tensor: TracedTensor {
                name: tensor.name.clone(),
                data,
                shape: shape.join(","),
                dtype: tensor.tensor.dtype().kserve_name(),
            },
        }
    }
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
    /// Bytes queued and not yet written.
    queued_bytes: Arc<AtomicUsize>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl TraceFileWriter {
    /// Starts the writer thread for `path`. Nothing is created on disk
    /// before the first trace.
    pub fn start(path: PathBuf, log_frequency: u32) -> std::io::Result<Self> {
        let (queue, traces) = sync_channel(QUEUE);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let written = Arc::clone(&queued_bytes);
        let thread = std::thread::Builder::new()
            .name("trace-file".into())
            .spawn(move || write_traces(&traces, &written, &path, log_frequency))?;
        Ok(Self {
            queue,
            dropped: AtomicU64::new(0),
            queued_bytes,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues a trace and its tensors without waiting; a full queue drops
    /// them.
    pub fn submit(&self, record: &TraceRecord, tensors: &[TensorRecord]) {
        let Ok(mut text) = serde_json::to_string(record) else {
            return;
        };
        for tensor in tensors {
            let Ok(tensor) = serde_json::to_string(tensor) else {
                return;
            };
            text.push_str(",\n");
            text.push_str(&tensor);
        }
        let size = text.len();
        let admitted = self
            .queued_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued + size <= QUEUE_BYTES).then_some(queued + size)
            })
            .is_ok();
        let queued = admitted && self.queue.try_send(Message::Trace(text)).is_ok();
        if admitted && !queued {
            self.queued_bytes.fetch_sub(size, Ordering::AcqRel);
        }
        if !queued {
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
fn write_traces(
    traces: &Receiver<Message>,
    queued_bytes: &AtomicUsize,
    path: &Path,
    log_frequency: u32,
) {
    let mut open: Option<(BufWriter<File>, PathBuf, u32)> = None;
    let mut index = 0u64;
    let mut failed = false;
    while let Ok(Message::Trace(text)) = traces.recv() {
        queued_bytes.fetch_sub(text.len(), Ordering::AcqRel);
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
            writer.submit(&record(id), &[]);
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
            writer.submit(&record(id), &[]);
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
    fn tensors_follow_their_trace() {
        use ferrite_backends::{bytes_codec, Tensor};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.json");
        let writer = TraceFileWriter::start(path.clone(), 0).unwrap();
        let floats: Vec<u8> = [0.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let fp32 = NamedTensor::new(
            "x",
            Tensor::new(DataType::Fp32, vec![1, 2], floats.into()).unwrap(),
        );
        let strings = bytes_codec::encode([b"a\"b".as_slice(), b"c".as_slice()]);
        let text = NamedTensor::new("s", Tensor::new(DataType::Bytes, vec![2], strings).unwrap());
        let flags = NamedTensor::new(
            "b",
            Tensor::new(DataType::Bool, vec![3], vec![1u8, 0, 1].into()).unwrap(),
        );
        let mut trace = record(7);
        trace.timestamps.clear();
        writer.submit(
            &trace,
            &[
                TensorRecord::new(7, "TENSOR_QUEUE_INPUT", &fp32),
                TensorRecord::new(7, "TENSOR_BACKEND_OUTPUT", &text),
                TensorRecord::new(7, "TENSOR_BACKEND_OUTPUT", &flags),
            ],
        );
        writer.shutdown();
        let traces = read(&path);
        assert!(traces[0].get("timestamps").is_none());
        assert_eq!(traces[1]["id"], 7);
        assert_eq!(traces[1]["activity"], "TENSOR_QUEUE_INPUT");
        assert_eq!(
            traces[1]["tensor"],
            serde_json::json!({"name": "x", "data": "0.5,-2.0", "shape": "1,2", "dtype": "FP32"})
        );
        assert_eq!(traces[2]["tensor"]["data"], "\"a\\\"b\",\"c\"");
        assert_eq!(traces[2]["tensor"]["shape"], "2");
        assert_eq!(traces[3]["tensor"]["data"], "1,0,1");
        assert_eq!(traces[3]["tensor"]["dtype"], "BOOL");
    }

    #[test]
    fn no_traces_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.json");
        TraceFileWriter::start(path.clone(), 0).unwrap().shutdown();
        assert!(!path.exists());
    }
}
