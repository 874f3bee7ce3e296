//! The scheduler driven through its public API with an in-process engine
//! whose executions the test releases one at a time, so batch formation and
//! back-pressure are observed without sleeps.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use ferrite_backends::{Backend, BackendError, DataType, NamedTensor, Tensor};
use ferrite_scheduler::{
    BatchLayout, BatchPolicy, InferRequest, ModelScheduler, QueuePolicy, ResponseReceiver,
    SchedulerError, SchedulerOptions,
};

/// Adds one to every FP32 element of input "x", answering as "y". Each
/// execution reports its row count on `started` and waits for a permit.
struct GatedAddOne {
    started: Sender<usize>,
    permits: Receiver<()>,
}

impl Backend for GatedAddOne {
    fn engine(&self) -> &'static str {
        "test"
    }

    fn execute(
        &mut self,
        inputs: &[NamedTensor],
        _outputs: &[String],
    ) -> Result<Vec<NamedTensor>, BackendError> {
        let x = &inputs[0].tensor;
        let rows = x.shape()[0] as usize;
        let _ = self.started.send(rows);
        self.permits
            .recv()
            .map_err(|_| BackendError::InvalidInput("gate closed".into()))?;
        let data: Vec<u8> = x
            .data()
            .chunks_exact(4)
            .flat_map(|c| (f32::from_le_bytes(c.try_into().unwrap()) + 1.0).to_le_bytes())
            .collect();
        let y = Tensor::new(DataType::Fp32, x.shape().to_vec(), data.into())
            .map_err(|e| BackendError::InvalidInput(e.to_string()))?;
        Ok(vec![NamedTensor::new("y", y)])
    }
}

struct Harness {
    scheduler: ModelScheduler,
    started: Receiver<usize>,
    permits: Sender<()>,
}

fn harness(max_batch_size: usize, max_queue_size: usize, instances: usize) -> Harness {
    harness_with(
        max_batch_size,
        max_queue_size,
        instances,
        vec![QueuePolicy::default()],
    )
}

fn harness_with(
    max_batch_size: usize,
    max_queue_size: usize,
    instances: usize,
    levels: Vec<QueuePolicy>,
) -> Harness {
    let (started_tx, started) = crossbeam_channel::unbounded();
    let (permits, permits_rx) = crossbeam_channel::unbounded();
    let backends: Vec<Box<dyn Backend>> = (0..instances)
        .map(|_| {
            Box::new(GatedAddOne {
                started: started_tx.clone(),
                permits: permits_rx.clone(),
            }) as Box<dyn Backend>
        })
        .collect();
    let options = SchedulerOptions {
        name: "test:1".into(),
        policy: BatchPolicy {
            max_batch_size,
            dynamic: true,
            preferred_batch_sizes: Vec::new(),
            max_queue_delay: Duration::ZERO,
            levels,
        },
        max_queue_size,
        default_level: 1,
        layout: BatchLayout::default(),
    };
    Harness {
        scheduler: ModelScheduler::start(options, backends).unwrap(),
        started,
        permits,
    }
}

fn request(values: &[f32]) -> InferRequest {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let tensor = Tensor::new(DataType::Fp32, vec![1, values.len() as i64], data.into()).unwrap();
    InferRequest {
        inputs: vec![NamedTensor::new("x", tensor)],
        outputs: Vec::new(),
        batch_size: 1,
        arrival: Instant::now(),
        priority: 0,
        timeout: None,
    }
}

fn answer(receiver: ResponseReceiver) -> Result<Vec<f32>, SchedulerError> {
    let response = receiver
        .blocking_recv()
        .expect("the scheduler dropped a request")?;
    assert_eq!(response.outputs[0].name, "y");
    Ok(response.outputs[0]
        .tensor
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect())
}

fn wait_started(h: &Harness) -> usize {
    h.started
        .recv_timeout(Duration::from_secs(10))
        .expect("no execution started")
}

#[test]
fn requests_queued_behind_a_busy_instance_form_one_batch() {
    let h = harness(16, 0, 1);
    let first = h.scheduler.submit(request(&[0.0, 0.0])).unwrap();
    assert_eq!(wait_started(&h), 1);
    let queued: Vec<_> = (0..10)
        .map(|i| h.scheduler.submit(request(&[i as f32, 10.0])).unwrap())
        .collect();
    h.permits.send(()).unwrap();
    assert_eq!(answer(first).unwrap(), vec![1.0, 1.0]);
    assert_eq!(wait_started(&h), 10);
    h.permits.send(()).unwrap();
    for (i, receiver) in queued.into_iter().enumerate() {
        assert_eq!(answer(receiver).unwrap(), vec![i as f32 + 1.0, 11.0]);
    }
    let stats = h.scheduler.stats().snapshot();
    assert_eq!(stats.execution_count, 2);
    assert_eq!(stats.inference_count, 11);
    assert_eq!(stats.success.count, 11);
    let sizes: Vec<u64> = stats.batch_stats.iter().map(|b| b.batch_size).collect();
    assert_eq!(sizes, vec![1, 10]);
}

#[test]
fn batches_never_exceed_max_batch_size() {
    let h = harness(4, 0, 1);
    let first = h.scheduler.submit(request(&[0.0])).unwrap();
    wait_started(&h);
    let rest: Vec<_> = (0..9)
        .map(|_| h.scheduler.submit(request(&[1.0])).unwrap())
        .collect();
    for _ in 0..4 {
        h.permits.send(()).unwrap();
    }
    answer(first).unwrap();
    let sizes: Vec<usize> = (0..3).map(|_| wait_started(&h)).collect();
    assert_eq!(sizes, vec![4, 4, 1]);
    for receiver in rest {
        assert_eq!(answer(receiver).unwrap(), vec![2.0]);
    }
}

#[test]
fn full_queue_is_refused_at_once_and_accepted_requests_finish() {
    let h = harness(8, 4, 1);
    let first = h.scheduler.submit(request(&[0.0])).unwrap();
    wait_started(&h);
    let accepted: Vec<_> = (0..4)
        .map(|_| h.scheduler.submit(request(&[1.0])).unwrap())
        .collect();
    let refused = h.scheduler.submit(request(&[1.0])).unwrap_err();
    assert_eq!(refused, SchedulerError::QueueFull { max_queue_size: 4 });
    assert_eq!(h.scheduler.stats().snapshot().rejected, 1);
    h.permits.send(()).unwrap();
    h.permits.send(()).unwrap();
    answer(first).unwrap();
    for receiver in accepted {
        assert_eq!(answer(receiver).unwrap(), vec![2.0]);
    }
}

#[test]
fn abandoned_requests_do_not_execute() {
    let h = harness(8, 0, 1);
    let first = h.scheduler.submit(request(&[0.0])).unwrap();
    wait_started(&h);
    let kept = h.scheduler.submit(request(&[1.0])).unwrap();
    drop(h.scheduler.submit(request(&[2.0])).unwrap());
    let also_kept = h.scheduler.submit(request(&[3.0])).unwrap();
    h.permits.send(()).unwrap();
    answer(first).unwrap();
    assert_eq!(wait_started(&h), 2);
    h.permits.send(()).unwrap();
    assert_eq!(answer(kept).unwrap(), vec![2.0]);
    assert_eq!(answer(also_kept).unwrap(), vec![4.0]);
    assert_eq!(h.scheduler.stats().snapshot().abandoned, 1);
}

#[test]
fn shutdown_answers_queued_requests() {
    let h = harness(2, 0, 2);
    let receivers: Vec<_> = (0..6)
        .map(|i| h.scheduler.submit(request(&[i as f32])).unwrap())
        .collect();
    for _ in 0..6 {
        h.permits.send(()).unwrap();
    }
    h.scheduler.shutdown();
    for (i, receiver) in receivers.into_iter().enumerate() {
        assert_eq!(answer(receiver).unwrap(), vec![i as f32 + 1.0]);
    }
}

fn with_priority(values: &[f32], priority: u32, timeout: Option<Duration>) -> InferRequest {
    InferRequest {
        priority,
        timeout,
        ..request(values)
    }
}

#[test]
fn high_priority_requests_overtake_queued_ones() {
    let h = harness_with(
        1,
        0,
        1,
        vec![QueuePolicy::default(), QueuePolicy::default()],
    );
    let first = h.scheduler.submit(request(&[0.0])).unwrap();
    wait_started(&h);
    let low = h.scheduler.submit(with_priority(&[10.0], 2, None)).unwrap();
    let default = h.scheduler.submit(request(&[20.0])).unwrap();
    let high = h.scheduler.submit(with_priority(&[30.0], 1, None)).unwrap();
    for _ in 0..4 {
        h.permits.send(()).unwrap();
    }
    answer(first).unwrap();
    assert_eq!(answer(high).unwrap(), vec![31.0]);
    assert_eq!(answer(low).unwrap(), vec![11.0]);
    assert_eq!(answer(default).unwrap(), vec![21.0]);
}

#[test]
fn queue_timeout_rejects_while_every_instance_is_busy() {
    let policy = QueuePolicy {
        default_timeout: Some(Duration::from_millis(1)),
        ..QueuePolicy::default()
    };
    let h = harness_with(8, 0, 1, vec![policy]);
    let first = h.scheduler.submit(request(&[0.0])).unwrap();
    wait_started(&h);
    let late = h.scheduler.submit(request(&[1.0])).unwrap();
    assert_eq!(answer(late), Err(SchedulerError::TimedOut));
    h.permits.send(()).unwrap();
    answer(first).unwrap();
    assert_eq!(h.scheduler.stats().snapshot().fail.count, 1);
    assert_eq!(h.scheduler.queued(), 0);
}

#[test]
fn per_level_queue_bound() {
    let bounded = QueuePolicy {
        max_queue_size: 1,
        ..QueuePolicy::default()
    };
    let h = harness_with(8, 0, 1, vec![QueuePolicy::default(), bounded]);
    let first = h.scheduler.submit(request(&[0.0])).unwrap();
    wait_started(&h);
    let queued = h.scheduler.submit(with_priority(&[1.0], 2, None)).unwrap();
    let refused = h
        .scheduler
        .submit(with_priority(&[1.0], 2, None))
        .unwrap_err();
    assert_eq!(refused, SchedulerError::QueueFull { max_queue_size: 1 });
    let other_level = h.scheduler.submit(with_priority(&[1.0], 1, None)).unwrap();
    h.permits.send(()).unwrap();
    h.permits.send(()).unwrap();
    answer(first).unwrap();
    answer(queued).unwrap();
    answer(other_level).unwrap();
}
