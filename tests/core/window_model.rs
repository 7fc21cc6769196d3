//! Property tests of both windows against a naive reference (W-1, W-2, SM-17, R-1):
//! random records (some from callers whose clock read is late, some from late writers of
//! earlier generations), runs of up to hundreds of thousands of generations, idle gaps of
//! up to days; after every step the window's aggregate must equal a plain list's.
//! Failing cases are kept in `tests/window_model.proptest-regressions`.

use std::collections::VecDeque;
use std::time::Duration;

use fluxgate::windows::{CountWindow, TimeWindow, Window};
use fluxgate::{Metric, Record};
use proptest::prelude::*;

const SEC: u64 = 1_000_000_000;
const SLOW: [Duration; 2] = [Duration::from_millis(5), Duration::from_millis(50)];

#[derive(Debug, Clone)]
enum Op {
    /// A call: failure, duration in ms, how far behind `now` its clock read is (ns).
    Record(bool, u64, u64),
    /// A late writer of a generation this far back.
    Late(u64),
    /// This many new generations (each told to the window, as the breaker does).
    Generations(u64),
    /// Time passes (ns).
    Idle(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (any::<bool>(), 0u64..80, prop_oneof![4 => Just(0u64), 1 => 0..2 * SEC])
            .prop_map(|(f, ms, behind)| Op::Record(f, ms, behind)),
        2 => prop_oneof![1u64..4, Just(1 << 12), Just(1 << 16), 1u64..100_000].prop_map(Op::Late),
        3 => prop_oneof![
            6 => 1u64..3,
            1 => 1u64..40_000,
            1 => Just(1 << 16),
            1 => 60_000u64..300_000,
        ].prop_map(Op::Generations),
        4 => prop_oneof![
            6 => 0..3 * SEC,
            1 => 0..600 * SEC,
            1 => 0..3 * 86_400 * SEC,
            1 => (1u64..70_000).prop_map(|laps| laps * 2 * SEC),
        ].prop_map(Op::Idle),
    ]
}

fn aggregate<'a>(records: impl Iterator<Item = &'a Record>) -> Metric {
    let (mut total, mut fail, mut nanos) = (0, 0, 0u128);
    let mut slow = [0u64; SLOW.len()];
    for r in records {
        total += 1;
        fail += u64::from(r.failure);
        nanos += r.duration.as_nanos();
        for (c, t) in slow.iter_mut().zip(SLOW) {
            *c += u64::from(r.duration >= t);
        }
    }
    let pairs: Vec<_> = SLOW.iter().copied().zip(slow).collect();
    Metric::new(total, fail, Duration::from_nanos(nanos as u64), &pairs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn w1_r1_count_window_agrees_with_a_list(
        size in 1usize..6,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut w = CountWindow::new(size);
        w.set_slow_thresholds(&SLOW);
        let mut list: VecDeque<Record> = VecDeque::new();
        let mut generation = 0u64;
        for (step, op) in ops.iter().enumerate() {
            match *op {
                Op::Record(failure, ms, _) => {
                    let r = Record { failure, duration: Duration::from_millis(ms) };
                    let before = w.metric(generation, 0);
                    // `record_changed` may say "unchanged" only when the aggregate is.
                    let changed = w.record_changed(generation, 0, r);
                    if !changed {
                        prop_assert_eq!(w.metric(generation, 0), before, "step {} claimed unchanged", step);
                    }
                    if list.len() == size {
                        list.pop_front();
                    }
                    list.push_back(r);
                }
                Op::Late(back) => {
                    w.record(generation.saturating_sub(back), 0, Record::failure(Duration::from_secs(1)));
                    if generation == 0 {
                        // nothing is older than generation 0: it is the current one
                        if list.len() == size {
                            list.pop_front();
                        }
                        list.push_back(Record::failure(Duration::from_secs(1)));
                    }
                }
                Op::Generations(n) => {
                    for _ in 0..n {
                        generation += 1;
                        w.advance(generation);
                    }
                    list.clear();
                }
                Op::Idle(_) => {}
            }
            prop_assert_eq!(w.metric(generation, 0), aggregate(list.iter()), "step {} {:?}", step, op);
        }
    }

    #[test]
    fn w2_r1_time_window_agrees_with_a_list(
        span in 1u64..5,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut w = TimeWindow::new(Duration::from_secs(span));
        w.set_slow_thresholds(&SLOW);
        // (generation, second, record)
        let mut list: Vec<(u64, u64, Record)> = Vec::new();
        let (mut generation, mut now) = (0u64, 5 * SEC);
        let mut latest_lap = 0u64;
        for (step, op) in ops.iter().enumerate() {
            match *op {
                Op::Record(failure, ms, behind) => {
                    let r = Record { failure, duration: Duration::from_millis(ms) };
                    let at = now - behind;
                    w.record(generation, at, r);
                    let (sec, lap) = (at / SEC, at / SEC / span);
                    // A record of a second whose bucket already moved on to a later lap
                    // (or two laps behind the latest) has left every window: dropped.
                    if lap + 2 > latest_lap && !list.iter().any(|&(g, s, _)| {
                        g == generation && s % span == sec % span && s / span > lap
                    }) {
                        list.push((generation, sec, r));
                    }
                    latest_lap = latest_lap.max(lap);
                }
                Op::Late(back) => {
                    let old = generation.saturating_sub(back);
                    w.record(old, now, Record::failure(Duration::from_secs(1)));
                    if old == generation {
                        list.push((generation, now / SEC, Record::failure(Duration::from_secs(1))));
                        latest_lap = latest_lap.max(now / SEC / span);
                    }
                }
                Op::Generations(n) => {
                    for _ in 0..n {
                        generation += 1;
                        w.advance(generation);
                    }
                }
                Op::Idle(ns) => now += ns,
            }
            let sec = now / SEC;
            let live = list.iter().filter(|&&(g, s, _)| g == generation && s <= sec && s + span > sec);
            prop_assert_eq!(
                w.metric(generation, now),
                aggregate(live.map(|(_, _, r)| r)),
                "step {} {:?}, now {}s, generation {}", step, op, sec, generation
            );
        }
    }
}
