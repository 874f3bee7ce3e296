use super::*;

#[derive(Debug, PartialEq, Eq)]
struct Item {
    id: u32,
    rows: usize,
    shape: u32,
    arrival: Instant,
    gone: bool,
    level: usize,
    deadline: Option<Instant>,
}

impl Batchable for Item {
    fn rows(&self) -> usize {
        self.rows
    }
    fn arrival(&self) -> Instant {
        self.arrival
    }
    fn level(&self) -> usize {
        self.level
    }
    fn deadline(&self) -> Option<Instant> {
        self.deadline
    }
    fn compatible(&self, other: &Self) -> bool {
        self.shape == other.shape
    }
    fn abandoned(&self) -> bool {
        self.gone
    }
}

struct Clock(Instant);

impl Clock {
    fn at(&self, micros: u64) -> Instant {
        self.0 + Duration::from_micros(micros)
    }
}

fn item(clock: &Clock, id: u32, rows: usize, at: u64) -> Item {
    Item {
        id,
        rows,
        shape: 0,
        arrival: clock.at(at),
        gone: false,
        level: 0,
        deadline: None,
    }
}

fn policy(max: usize, preferred: &[usize], delay_us: u64) -> BatchPolicy {
    BatchPolicy {
        max_batch_size: max,
        dynamic: true,
        preferred_batch_sizes: preferred.to_vec(),
        max_queue_delay: Duration::from_micros(delay_us),
        levels: vec![QueuePolicy::default()],
    }
}

fn ids(decision: Decision<Item>) -> Vec<u32> {
    match decision {
        Decision::Dispatch(items) => items.into_iter().map(|i| i.id).collect(),
        other => panic!("expected a dispatch, got {other:?}"),
    }
}

#[test]
fn unbatched_dispatches_one_at_a_time() {
    let clock = Clock(Instant::now());
    let mut former = BatchFormer::new(BatchPolicy::unbatched(8));
    assert_eq!(former.decide(clock.at(0), false), Decision::Empty);
    former.push(item(&clock, 1, 1, 0));
    former.push(item(&clock, 2, 1, 0));
    assert_eq!(ids(former.decide(clock.at(0), false)), vec![1]);
    assert_eq!(ids(former.decide(clock.at(0), false)), vec![2]);
}

#[test]
fn waits_for_the_delay_measured_from_the_oldest() {
    let clock = Clock(Instant::now());
    let mut former = BatchFormer::new(policy(8, &[], 100));
    former.push(item(&clock, 1, 1, 0));
    former.push(item(&clock, 2, 1, 50));
    assert_eq!(
        former.decide(clock.at(60), false),
        Decision::WaitUntil(clock.at(100))
    );
    assert_eq!(ids(former.decide(clock.at(100), false)), vec![1, 2]);
    assert!(former.is_empty());
}

#[test]
fn zero_delay_dispatches_at_once() {
    let clock = Clock(Instant::now());
    let mut former = BatchFormer::new(policy(8, &[], 0));
    former.push(item(&clock, 1, 1, 0));
    former.push(item(&clock, 2, 1, 0));
    assert_eq!(ids(former.decide(clock.at(0), false)), vec![1, 2]);
}

#[test]
fn full_batch_goes_before_the_delay() {
    let clock = Clock(Instant::now());
    let mut former = BatchFormer::new(policy(4, &[], 1_000_000));
    for id in 0..6 {
        former.push(item(&clock, id, 1, 0));
    }
    assert_eq!(ids(former.decide(clock.at(1), false)), vec![0, 1, 2, 3]);
    assert_eq!(
        former.decide(clock.at(1), false),
        Decision::WaitUntil(clock.at(1_000_000))
    );
}

#[test]
fn preferred_size_dispatches_when_reachable() {
    let clock = Clock(Instant::now());
    let mut former = BatchFormer::new(policy(16, &[2, 4], 1_000_000));
    for id in 0..5 {
        former.push(item(&clock, id, 1, 0));
    }
    assert_eq!(ids(former.decide(clock.at(1), false)), vec![0, 1, 2, 3]);
    assert_eq!(
        former.decide(clock.at(1), false),
        Decision::WaitUntil(clock.at(1_000_000))
    );
}

#[test]
fn multi_row_requests_count_by_rows_and_never_overflow() {
    let clock = Clock(Instant::now());
    let mut former = BatchFormer::new(policy(8, &[], 1_000_000));
    former.push(item(&clock, 1, 3, 0));
    former.push(item(&clock, 2, 4, 0));
    former.push(item(&clock, 3, 2, 0));
    assert_eq!(ids(former.decide(clock.at(0), false)), vec![1, 2]);
    assert_eq!(
        former.decide(clock.at(0), false),
        Decision::WaitUntil(clock.at(1_000_000))
    );
}

#[test]
fn incompatible_shapes_close_the_batch() {
    let clock = Clock(Instant::now());
    let mut former = BatchFormer::new(policy(8, &[], 1_000_000));
    former.push(item(&clock, 1, 1, 0));
    former.push(Item {
        shape: 7,
        ..item(&clock, 2, 1, 0)
    });
    former.push(item(&clock, 3, 1, 0));
    assert_eq!(ids(former.decide(clock.at(0), false)), vec![1]);
    assert_eq!(ids(former.decide(clock.at(0), false)), vec![2]);
    assert_eq!(
        former.decide(clock.at(0), false),
        Decision::WaitUntil(clock.at(1_000_000))
    );
}

#[test]
fn flush_dispatches_without_waiting() {
    let clock = Clock(Instant::now());
    let mut former = BatchFormer::new(policy(8, &[], 1_000_000));
    former.push(item(&clock, 1, 1, 0));
    assert_eq!(ids(former.decide(clock.at(0), true)), vec![1]);
}

#[test]
fn abandoned_items_are_taken_out() {
    let clock = Clock(Instant::now());
    let mut former = BatchFormer::new(policy(8, &[], 0));
    former.push(item(&clock, 1, 1, 0));
    former.push(Item {
        gone: true,
        ..item(&clock, 2, 1, 0)
    });
    former.push(item(&clock, 3, 1, 0));
    let gone: Vec<u32> = former.take_abandoned().into_iter().map(|i| i.id).collect();
    assert_eq!(gone, vec![2]);
    assert_eq!(ids(former.decide(clock.at(0), false)), vec![1, 3]);
}

fn prioritized(levels: Vec<QueuePolicy>) -> BatchPolicy {
    BatchPolicy {
        levels,
        ..policy(8, &[], 1_000)
    }
}

#[test]
fn higher_priority_goes_first() {
    let clock = Clock(Instant::now());
    let mut former = BatchFormer::new(BatchPolicy {
        max_batch_size: 2,
        ..prioritized(vec![QueuePolicy::default(), QueuePolicy::default()])
    });
    former.push(Item {
        level: 1,
        ..item(&clock, 1, 1, 0)
    });
    former.push(Item {
        level: 1,
        ..item(&clock, 2, 1, 0)
    });
    former.push(item(&clock, 3, 1, 5));
    assert_eq!(former.len(), 3);
    assert_eq!(ids(former.decide(clock.at(10), false)), vec![3, 1]);
    assert_eq!(ids(former.decide(clock.at(2_000), false)), vec![2]);
}

#[test]
fn levels_beyond_the_policy_use_the_lowest() {
    let clock = Clock(Instant::now());
    let mut former = BatchFormer::new(BatchPolicy {
        max_batch_size: 1,
        ..prioritized(vec![QueuePolicy::default(), QueuePolicy::default()])
    });
    former.push(Item {
        level: 9,
        ..item(&clock, 1, 1, 0)
    });
    former.push(Item {
        level: 1,
        ..item(&clock, 2, 1, 0)
    });
    former.push(item(&clock, 3, 1, 0));
    let order: Vec<u32> = (0..3)
        .flat_map(|_| ids(former.decide(clock.at(0), false)))
        .collect();
    assert_eq!(order, vec![3, 1, 2]);
}

#[test]
fn expired_requests_are_rejected_under_reject() {
    let clock = Clock(Instant::now());
    let mut former = BatchFormer::new(prioritized(vec![QueuePolicy {
        default_timeout: Some(Duration::from_micros(50)),
        ..QueuePolicy::default()
    }]));
    former.push(Item {
        deadline: Some(clock.at(50)),
        ..item(&clock, 1, 1, 0)
    });
    former.push(Item {
        deadline: Some(clock.at(80)),
        ..item(&clock, 2, 1, 30)
    });
    assert_eq!(
        former.decide(clock.at(10), false),
        Decision::WaitUntil(clock.at(50))
    );
    assert!(former.take_expired(clock.at(49)).is_empty());
    let rejected: Vec<u32> = former
        .take_expired(clock.at(60))
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(rejected, vec![1]);
    assert_eq!(former.len(), 1);
}

#[test]
fn expired_requests_wait_behind_the_rest_under_delay() {
    let clock = Clock(Instant::now());
    let mut former = BatchFormer::new(BatchPolicy {
        max_batch_size: 1,
        ..prioritized(vec![QueuePolicy {
            timeout_action: TimeoutAction::Delay,
            ..QueuePolicy::default()
        }])
    });
    former.push(Item {
        deadline: Some(clock.at(5)),
        ..item(&clock, 1, 1, 0)
    });
    former.push(item(&clock, 2, 1, 1));
    assert!(former.take_expired(clock.at(10)).is_empty());
    assert_eq!(ids(former.decide(clock.at(10), false)), vec![2]);
    assert_eq!(ids(former.decide(clock.at(10), false)), vec![1]);
}

#[test]
fn request_timeouts_apply_only_when_overrides_are_allowed() {
    let fixed = QueuePolicy {
        default_timeout: Some(Duration::from_millis(5)),
        ..QueuePolicy::default()
    };
    let asked = Some(Duration::from_millis(1));
    assert_eq!(fixed.timeout(asked), Some(Duration::from_millis(5)));
    let open = QueuePolicy {
        allow_timeout_override: true,
        ..fixed
    };
    assert_eq!(open.timeout(asked), Some(Duration::from_millis(1)));
    assert_eq!(open.timeout(None), Some(Duration::from_millis(5)));
    assert_eq!(QueuePolicy::default().timeout(asked), None);
}
