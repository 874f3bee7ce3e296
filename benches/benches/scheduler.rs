//! Enqueue-to-answer overhead of the scheduler per request, with 1, 4 and 16
//! producer threads, against a `Mutex<VecDeque>` + `Condvar` queue measured
//! in the same run. Both run an engine that does no work (it returns its
//! input), so the figures are the queueing, batching and hand-back cost.
//! The scheduler's figure also includes gathering each batch into one
//! buffer and slicing the outputs back, which the baseline skips.
//!
//! `latency_histograms` measures what the request and queue latency
//! histograms cost: one `Histogram::record` alone, and the same
//! enqueue-to-answer run (4 producers) with histograms on and off, in the
//! same run.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ferrite_backends::{Backend, BackendError, DataType, NamedTensor, Tensor};
use ferrite_scheduler::{
    set_latency_histograms, BatchLayout, BatchPolicy, Histogram, InferRequest, ModelScheduler,
    QueuePolicy, SchedulerOptions,
};
use tokio::sync::oneshot;

const REQUESTS_PER_PRODUCER: usize = 256;
const MAX_BATCH: usize = 64;

struct Echo;

impl Backend for Echo {
    fn engine(&self) -> &'static str {
        "echo"
    }

    fn execute(
        &mut self,
        inputs: &[NamedTensor],
        _outputs: &[String],
    ) -> Result<Vec<NamedTensor>, BackendError> {
        Ok(inputs.to_vec())
    }
}

fn request() -> InferRequest {
    let tensor =
        Tensor::new(DataType::Fp32, vec![1, 16], vec![0u8; 64].into()).expect("a valid tensor");
    InferRequest {
        inputs: vec![NamedTensor::new("x", tensor)],
        outputs: Vec::new(),
        batch_size: 1,
        arrival: Instant::now(),
        priority: 0,
        timeout: None,
    }
}

fn scheduler() -> ModelScheduler {
    let options = SchedulerOptions {
        name: "bench:1".into(),
        policy: BatchPolicy {
            max_batch_size: MAX_BATCH,
            dynamic: true,
            preferred_batch_sizes: Vec::new(),
            max_queue_delay: Duration::ZERO,
            levels: vec![QueuePolicy::default()],
        },
        max_queue_size: 0,
        default_level: 0,
        layout: BatchLayout::default(),
    };
    ModelScheduler::start(options, vec![Box::new(Echo)]).expect("scheduler starts")
}

/// Runs `producers` threads that each submit and await their requests in
/// windows of 8 in flight; returns the elapsed time.
fn drive<R, S, W>(producers: usize, submit: S, wait: W) -> Duration
where
    S: Fn(InferRequest) -> R + Sync,
    W: Fn(R) + Sync,
{
    let start = Instant::now();
    thread::scope(|scope| {
        for _ in 0..producers {
            scope.spawn(|| {
                for _ in 0..REQUESTS_PER_PRODUCER / 8 {
                    let pending: Vec<R> = (0..8).map(|_| submit(request())).collect();
                    pending.into_iter().for_each(&wait);
                }
            });
        }
    });
    start.elapsed()
}

type Queued = (InferRequest, oneshot::Sender<InferRequest>);

/// The baseline: one consumer thread draining a locked deque in batches.
struct LockedQueue {
    state: Mutex<(VecDeque<Queued>, bool)>,
    ready: Condvar,
}

impl LockedQueue {
    fn start() -> (Arc<Self>, thread::JoinHandle<()>) {
        let queue = Arc::new(Self {
            state: Mutex::new((VecDeque::new(), false)),
            ready: Condvar::new(),
        });
        let consumer = Arc::clone(&queue);
        let handle = thread::spawn(move || loop {
            let batch: Vec<_> = {
                let mut state = consumer.state.lock().expect("lock");
                while state.0.is_empty() && !state.1 {
                    state = consumer.ready.wait(state).expect("lock");
                }
                if state.0.is_empty() {
                    return;
                }
                let n = state.0.len().min(MAX_BATCH);
                state.0.drain(..n).collect()
            };
            for (request, reply) in batch {
                let _ = reply.send(request);
            }
        });
        (queue, handle)
    }

    fn submit(&self, request: InferRequest) -> oneshot::Receiver<InferRequest> {
        let (reply, receiver) = oneshot::channel();
        self.state
            .lock()
            .expect("lock")
            .0
            .push_back((request, reply));
        self.ready.notify_one();
        receiver
    }

    fn stop(&self) {
        self.state.lock().expect("lock").1 = true;
        self.ready.notify_all();
    }
}

fn enqueue_to_answer(c: &mut Criterion) {
    let mut group = c.benchmark_group("enqueue_to_answer");
    for producers in [1usize, 4, 16] {
        group.throughput(Throughput::Elements(
            (producers * REQUESTS_PER_PRODUCER) as u64,
        ));
        group.bench_with_input(
            BenchmarkId::new("scheduler", producers),
            &producers,
            |b, &n| {
                let scheduler = scheduler();
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            drive(
                                n,
                                |r| scheduler.submit(r).expect("accepted"),
                                |rx| {
                                    rx.blocking_recv().expect("answered").expect("executed");
                                },
                            )
                        })
                        .sum()
                });
                scheduler.shutdown();
            },
        );
        group.bench_with_input(
            BenchmarkId::new("mutex_vecdeque", producers),
            &producers,
            |b, &n| {
                let (queue, handle) = LockedQueue::start();
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| {
                            drive(
                                n,
                                |r| queue.submit(r),
                                |rx| {
                                    rx.blocking_recv().expect("answered");
                                },
                            )
                        })
                        .sum()
                });
                queue.stop();
                handle.join().expect("consumer stops");
            },
        );
    }
    group.finish();
}

fn latency_histograms(c: &mut Criterion) {
    let mut group = c.benchmark_group("latency_histograms");
    let histogram = Histogram::default();
    let mut micros = 0u64;
    group.bench_function("record", |b| {
        b.iter(|| {
            micros = (micros + 37) % 20_000;
            histogram.record(std::hint::black_box(Duration::from_micros(micros)));
        })
    });
    let producers = 4;
    group.throughput(Throughput::Elements(
        (producers * REQUESTS_PER_PRODUCER) as u64,
    ));
    for (name, enabled) in [("on", true), ("off", false)] {
        group.bench_function(BenchmarkId::new("enqueue_to_answer", name), |b| {
            set_latency_histograms(enabled);
            let scheduler = scheduler();
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        drive(
                            producers,
                            |r| scheduler.submit(r).expect("accepted"),
                            |rx| {
                                rx.blocking_recv().expect("answered").expect("executed");
                            },
                        )
                    })
                    .sum()
            });
            scheduler.shutdown();
        });
    }
    set_latency_histograms(true);
    group.finish();
}

criterion_group!(benches, enqueue_to_answer, latency_histograms);
criterion_main!(benches);
