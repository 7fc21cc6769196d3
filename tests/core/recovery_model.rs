//! Model-based property test of the recovery rules and the probe timeout: random
//! sequences of admissions, outcomes recorded on time or late, dropped tickets, clock moves
//! and resets are applied both to a breaker and to a naive reference written here from
//! SPEC SM-8, SM-9, SM-14, SM-17 and the rules of `fluxgate::recovery` (a plain list of
//! slots with deadlines); admission results, state, reopens, window totals, failure streak
//! and slots in flight must agree after every step.

use std::time::Duration;

use fluxgate::clock::ManualClock;
use fluxgate::permits;
use fluxgate::recovery::{ByTripper, Probes, Recovery, Successes};
use fluxgate::retries::Always;
use fluxgate::trippers::{Closed, FailureRate, FailureStreak, HalfOpened};
use fluxgate::windows::CountWindow;
use fluxgate::{CircuitBreaker, State, Ticket};
use proptest::prelude::*;

/// Failures in a row that reopen a half-open circuit (the tripper's half-open rule).
const REOPEN_STREAK: u64 = 3;

#[derive(Debug, Clone, Copy)]
enum Rule {
    ByTripper,
    Successes(u64),
    /// `Probes(n, FailureRate(0.5))`.
    Probes(u64),
}

#[derive(Debug, Clone)]
enum Op {
    Admit,
    /// Records on the ticket at this position (modulo the live ones): success or failure.
    Record(usize, bool),
    Ignore(usize),
    Drop(usize),
    Advance(u64),
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Admit),
        5 => (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| Op::Record(i, ok)),
        1 => any::<usize>().prop_map(Op::Ignore),
        1 => any::<usize>().prop_map(Op::Drop),
        3 => (1u64..1500).prop_map(Op::Advance),
        1 => Just(Op::Reset),
    ]
}

fn rule() -> impl Strategy<Value = Rule> {
    prop_oneof![
        Just(Rule::ByTripper),
        (1u64..4).prop_map(Rule::Successes),
        (1u64..5).prop_map(Rule::Probes),
    ]
}

/// The reference: one struct, no atomics, the rules as the docs state them.
#[derive(Debug)]
struct Model {
    state: State,
    epoch: u64,
    reopens: u32,
    streak: u64,
    /// The window: the current state's records (true = failed); it is large enough.
    records: Vec<bool>,
    probes: u64,
    successes: u64,
    /// Slots: (ticket id, deadline in ms).
    slots: Vec<Option<(u64, u64)>>,
    timeout: Option<u64>,
    rule: Rule,
    now: u64,
}

/// A ticket of the reference: id, epoch, state it was admitted in.
#[derive(Debug, Clone, Copy)]
struct MTicket {
    id: u64,
    epoch: u64,
    state: State,
}

impl Model {
    fn transition(&mut self, to: State) {
        if (self.state, to) == (State::HalfOpen, State::Open) {
            self.reopens += 1;
        }
        if to == State::Closed {
            self.reopens = 0;
        }
        self.state = to;
        self.epoch += 1;
        self.streak = 0;
        self.records.clear();
        self.probes = 0;
        self.successes = 0;
        for s in &mut self.slots {
            *s = None;
        }
    }

    fn tripped(&self) -> bool {
        match self.state {
            State::Closed => self.streak >= 1,
            State::HalfOpen => self.streak >= REOPEN_STREAK,
            _ => false,
        }
    }

    /// An outcome that counts, in the state it was admitted in (the current one).
    fn count(&mut self, failed: bool) {
        self.records.push(failed);
        self.streak = if failed { self.streak + 1 } else { 0 };
        let tripped = self.tripped();
        match self.state {
            State::Closed if tripped => self.transition(State::Open),
            State::HalfOpen => {
                self.probes += 1;
                self.successes += u64::from(!failed);
                let by_tripper = match (failed, tripped) {
                    (false, false) => Some(State::Closed),
                    (true, true) => Some(State::Open),
                    _ => None,
                };
                let verdict = match self.rule {
                    Rule::ByTripper => by_tripper,
                    Rule::Successes(n) => match by_tripper {
                        Some(State::Closed) if self.successes < n => None,
                        v => v,
                    },
                    Rule::Probes(n) if self.probes >= n => {
                        let failures = self.records.iter().filter(|&&f| f).count() as f64;
                        if failures / self.records.len() as f64 >= 0.5 {
                            Some(State::Open)
                        } else {
                            Some(State::Closed)
                        }
                    }
                    Rule::Probes(_) => None,
                };
                if let Some(to) = verdict {
                    self.transition(to);
                }
            }
            _ => {}
        }
    }

    fn admit(&mut self, id: u64) -> Option<MTicket> {
        loop {
            match self.state {
                State::Closed => {
                    return Some(MTicket {
                        id,
                        epoch: self.epoch,
                        state: State::Closed,
                    });
                }
                State::Open => self.transition(State::HalfOpen), // retry: Always
                State::HalfOpen => {
                    let epoch = self.epoch;
                    if self.timeout.is_some() {
                        // Every probe past its deadline: a failure (until one ends the period).
                        for i in 0..self.slots.len() {
                            if let Some((_, deadline)) = self.slots[i]
                                && self.now >= deadline
                            {
                                self.slots[i] = None;
                                if self.epoch == epoch {
                                    self.count(true);
                                }
                            }
                        }
                        if self.epoch != epoch {
                            continue;
                        }
                    }
                    let free = self.slots.iter().position(Option::is_none)?;
                    self.slots[free] = Some((id, self.now + self.timeout.unwrap_or(u64::MAX / 2)));
                    return Some(MTicket {
                        id,
                        epoch,
                        state: State::HalfOpen,
                    });
                }
                _ => unreachable!(),
            }
        }
    }

    /// Gives back the ticket's slot; false when it no longer held one (timed out).
    fn release(&mut self, t: MTicket) -> bool {
        if t.state != State::HalfOpen {
            return true;
        }
        match self
            .slots
            .iter()
            .position(|s| s.is_some_and(|(id, _)| id == t.id))
        {
            Some(i) => {
                self.slots[i] = None;
                true
            }
            None => false,
        }
    }

    fn record(&mut self, t: MTicket, failed: bool) {
        let held = self.release(t);
        if t.state == State::HalfOpen && self.timeout.is_some() && !held {
            return;
        }
        if t.epoch == self.epoch {
            self.count(failed);
        }
    }

    fn in_flight(&self) -> u32 {
        if self.state != State::HalfOpen {
            return 0;
        }
        self.slots
            .iter()
            .filter(|s| s.is_some_and(|(_, d)| self.now < d))
            .count() as u32
    }
}

fn recovery(rule: Rule) -> Box<dyn Recovery> {
    match rule {
        Rule::ByTripper => Box::new(ByTripper),
        Rule::Successes(n) => Box::new(Successes::new(n)),
        Rule::Probes(n) => Box::new(Probes::new(n, FailureRate::new(0.5))),
    }
}

fn run(rule: Rule, slots: u32, timeout: Option<u64>, ops: &[Op]) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let mut b = CircuitBreaker::builder("model")
        .window(CountWindow::new(10_000))
        .tripper(
            (Closed & FailureStreak::new(1)) | (HalfOpened & FailureStreak::new(REOPEN_STREAK)),
        )
        .retry(Always)
        .permit(permits::All)
        .max_half_open_calls(slots as usize)
        .recovery(recovery(rule))
        .clock(clock.clone());
    if let Some(ms) = timeout {
        b = b.probe_timeout(Duration::from_millis(ms));
    }
    let cb = b.build().unwrap();
    let mut model = Model {
        state: State::Closed,
        epoch: 0,
        reopens: 0,
        streak: 0,
        records: Vec::new(),
        probes: 0,
        successes: 0,
        slots: vec![None; slots as usize],
        timeout,
        rule,
        now: 0,
    };
    let mut live: Vec<(Ticket<'_>, MTicket)> = Vec::new();
    let mut next_id = 0;
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Admit => {
                next_id += 1;
                let real = cb.admit();
                let expected = model.admit(next_id);
                prop_assert_eq!(real.is_ok(), expected.is_some(), "step {} {:?}", step, op);
                if let (Ok(t), Some(m)) = (real, expected) {
                    live.push((t, m));
                }
            }
            Op::Record(i, _) | Op::Ignore(i) | Op::Drop(i) if !live.is_empty() => {
                let (t, m) = live.remove(i % live.len());
                match op {
                    Op::Record(_, ok) => {
                        if *ok {
                            t.success();
                        } else {
                            t.failure();
                        }
                        model.record(m, !ok);
                    }
                    Op::Ignore(_) => {
                        t.record(fluxgate::Outcome::Ignored);
                        model.release(m);
                    }
                    _ => {
                        drop(t);
                        model.release(m);
                    }
                }
            }
            Op::Record(..) | Op::Ignore(_) | Op::Drop(_) => {}
            Op::Advance(ms) => {
                clock.advance(Duration::from_millis(*ms));
                model.now += ms;
            }
            Op::Reset => {
                cb.reset();
                model.transition(State::Closed);
            }
        }
        let info = cb.info();
        prop_assert_eq!(
            info.state,
            model.state,
            "step {} {:?}\n{:?}",
            step,
            op,
            model
        );
        prop_assert_eq!(info.reopens, model.reopens, "step {}", step);
        prop_assert_eq!(
            info.metric.total_count,
            model.records.len() as u64,
            "step {}",
            step
        );
        prop_assert_eq!(
            info.metric.failure_count,
            model.records.iter().filter(|&&f| f).count() as u64,
            "step {}",
            step
        );
        prop_assert_eq!(info.consecutive_failures, model.streak, "step {}", step);
        prop_assert_eq!(cb.half_open_in_flight(), model.in_flight(), "step {}", step);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn recovery_rules_and_probe_timeout_match_the_reference(
        rule in rule(),
        slots in 1u32..4,
        timeout in prop_oneof![1 => Just(None), 3 => (1u64..2000).prop_map(Some)],
        ops in prop::collection::vec(op(), 1..120),
    ) {
        run(rule, slots, timeout, &ops)?;
    }
}
