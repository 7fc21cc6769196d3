//! Model-based property test: random sequences of calls, clock moves (up to days) and
//! manual commands (up to hundreds of thousands of them in a row, R-1) are applied both
//! to a breaker — the sync one and the async one — and to a small reference model written
//! here from SPEC §1–§6; state, reopens, metrics and failure streak must agree after
//! every step.

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use crate::support::Untracked;
use fluxgate::clock::ManualClock;
use fluxgate::retries::Backoff;
use fluxgate::trackers::TypeOf;
use fluxgate::trippers::{FailureRate, FailureStreak, MinRequests, SlowRate};
use fluxgate::windows::CountWindow;
use fluxgate::{AsyncCircuitBreaker, CircuitBreaker, Error, State, permits};
use proptest::prelude::*;

const WINDOW: usize = 5;
const SLOW_MS: u64 = 1000;

#[derive(Debug, Clone)]
enum Op {
    Success(u64),
    Failure(u64),
    Untracked(u64),
    Advance(u64),
    Reset,
    /// This many silent resets in a row (each one a transition).
    Resets(u32),
    Disable,
    MetricsOnly,
    ForceOpen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u64..1500).prop_map(Op::Success),
        6 => (0u64..1500).prop_map(Op::Failure),
        2 => (0u64..1500).prop_map(Op::Untracked),
        3 => (0u64..30_000).prop_map(Op::Advance),
        1 => (0u64..3 * 86_400_000).prop_map(Op::Advance),
        1 => Just(Op::Reset),
        1 => prop_oneof![9 => 1u32..5, 1 => 60_000u32..140_000].prop_map(Op::Resets),
        1 => Just(Op::Disable),
        1 => Just(Op::MetricsOnly),
        1 => Just(Op::ForceOpen),
    ]
}

#[derive(Debug, PartialEq)]
enum Answer {
    Ran,
    Rejected(State),
}

/// The reference model, written from the spec with plain data.
struct Model {
    state: State,
    reopens: u32,
    window: VecDeque<(bool, u64)>,
    streak: u64,
    changed_at: u64,
    now: u64,
}

impl Model {
    fn new() -> Self {
        Model {
            state: State::Closed,
            reopens: 0,
            window: VecDeque::new(),
            streak: 0,
            changed_at: 0,
            now: 0,
        }
    }

    fn transition(&mut self, to: State) {
        if self.state == State::HalfOpen && to == State::Open {
            self.reopens += 1;
        }
        if to == State::Closed {
            self.reopens = 0;
        }
        self.state = to;
        self.window.clear();
        self.streak = 0;
        self.changed_at = self.now;
    }

    fn trips(&self) -> bool {
        let total = self.window.len() as u64;
        let fails = self.window.iter().filter(|r| r.0).count() as u64;
        let slow = self.window.iter().filter(|r| r.1 >= SLOW_MS).count() as u64;
        self.streak >= 3
            || (total >= 4 && fails as f64 >= 0.5 * total as f64)
            || (total >= 4 && slow as f64 >= 0.75 * total as f64)
    }

    /// outcome: Some(true) tracked failure, Some(false) success, None untracked.
    fn call(&mut self, outcome: Option<bool>, ms: u64) -> Answer {
        match self.state {
            State::ForcedOpen => return Answer::Rejected(State::ForcedOpen),
            State::Disabled => {
                self.now += ms;
                return Answer::Ran;
            }
            State::Open => {
                let wait = (10_000u64 << self.reopens.min(10)).min(40_000);
                if self.now - self.changed_at >= wait {
                    self.transition(State::HalfOpen);
                } else {
                    return Answer::Rejected(State::Open);
                }
            }
            _ => {}
        }
        self.now += ms;
        let Some(failure) = outcome else {
            return Answer::Ran;
        };
        if self.window.len() == WINDOW {
            self.window.pop_front();
        }
        self.window.push_back((failure, ms));
        self.streak = if failure { self.streak + 1 } else { 0 };
        let trip = self.trips();
        match (self.state, failure, trip) {
            (State::Closed, _, true) => self.transition(State::Open),
            (State::HalfOpen, false, false) => self.transition(State::Closed),
            (State::HalfOpen, true, true) => self.transition(State::Open),
            _ => {}
        }
        Answer::Ran
    }
}

macro_rules! configured {
    ($builder:expr, $clock:expr) => {
        $builder
            .window(CountWindow::new(WINDOW))
            .tracker(TypeOf::<io::Error>::new())
            .tripper(
                FailureStreak::new(3)
                    | (MinRequests::new(4) & FailureRate::new(0.5))
                    | (MinRequests::new(4) & SlowRate::new(0.75, Duration::from_millis(SLOW_MS))),
            )
            .retry(
                Backoff::new(Duration::from_secs(10))
                    .multiplier(2.0)
                    .max(Duration::from_secs(40)),
            )
            .permit(permits::All)
            .clock($clock.clone())
            .build()
            .unwrap()
    };
}

/// What the test needs of a face: one call that takes `ms` and ends as `result`, and the
/// manual commands.
trait Face {
    fn run<E: std::error::Error + Send + 'static>(
        &self,
        clock: &ManualClock,
        ms: u64,
        result: Result<(), E>,
    ) -> Answer;
    fn command(&self, op: &Op);
    fn info(&self) -> fluxgate::Info;
}

fn answer<E>(r: Result<(), Error<E>>) -> Answer {
    match r {
        Err(Error::Rejected(r)) => Answer::Rejected(r.state()),
        _ => Answer::Ran,
    }
}

macro_rules! commands {
    ($cb:expr, $op:expr) => {
        match *$op {
            Op::Reset => $cb.reset(),
            Op::Resets(n) => (0..n).for_each(|_| $cb.reset_silently()),
            Op::Disable => $cb.disable(),
            Op::MetricsOnly => $cb.metrics_only(),
            Op::ForceOpen => $cb.force_open(),
            _ => unreachable!("not a command"),
        }
    };
}

impl Face for CircuitBreaker {
    fn run<E: std::error::Error + Send + 'static>(
        &self,
        clock: &ManualClock,
        ms: u64,
        result: Result<(), E>,
    ) -> Answer {
        answer(self.call(|| {
            clock.advance(Duration::from_millis(ms));
            result
        }))
    }
    fn command(&self, op: &Op) {
        commands!(self, op)
    }
    fn info(&self) -> fluxgate::Info {
        CircuitBreaker::info(self)
    }
}

/// The async breaker, driven on a current-thread runtime.
struct Async(AsyncCircuitBreaker, tokio::runtime::Runtime);

impl Face for Async {
    fn run<E: std::error::Error + Send + 'static>(
        &self,
        clock: &ManualClock,
        ms: u64,
        result: Result<(), E>,
    ) -> Answer {
        answer(self.1.block_on(self.0.call(|| async move {
            clock.advance(Duration::from_millis(ms));
            result
        })))
    }
    fn command(&self, op: &Op) {
        commands!(self.0, op)
    }
    fn info(&self) -> fluxgate::Info {
        self.0.info()
    }
}

fn agrees_with_model(cb: &impl Face, clock: &ManualClock, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut model = Model::new();
    for (step, op) in ops.iter().enumerate() {
        let (got, want) = match *op {
            Op::Success(ms) => (
                cb.run::<io::Error>(clock, ms, Ok(())),
                model.call(Some(false), ms),
            ),
            Op::Failure(ms) => (
                cb.run(clock, ms, Err(io::Error::other("x"))),
                model.call(Some(true), ms),
            ),
            Op::Untracked(ms) => (cb.run(clock, ms, Err(Untracked)), model.call(None, ms)),
            Op::Advance(ms) => {
                clock.advance(Duration::from_millis(ms));
                model.now += ms;
                (Answer::Ran, Answer::Ran)
            }
            Op::Reset | Op::Resets(_) => {
                cb.command(op);
                model.transition(State::Closed);
                (Answer::Ran, Answer::Ran)
            }
            Op::Disable => {
                cb.command(op);
                model.transition(State::Disabled);
                (Answer::Ran, Answer::Ran)
            }
            Op::MetricsOnly => {
                cb.command(op);
                model.transition(State::MetricsOnly);
                (Answer::Ran, Answer::Ran)
            }
            Op::ForceOpen => {
                cb.command(op);
                model.transition(State::ForcedOpen);
                (Answer::Ran, Answer::Ran)
            }
        };
        prop_assert_eq!(got, want, "answer at step {} ({:?})", step, op);
        let info = cb.info();
        let m = info.metric;
        prop_assert_eq!(info.state, model.state, "state at step {} ({:?})", step, op);
        prop_assert_eq!(info.reopens, model.reopens, "reopens at step {}", step);
        prop_assert_eq!(
            info.consecutive_failures,
            model.streak,
            "streak at step {}",
            step
        );
        prop_assert_eq!(
            m.total_count,
            model.window.len() as u64,
            "total at step {}",
            step
        );
        prop_assert_eq!(
            m.failure_count,
            model.window.iter().filter(|r| r.0).count() as u64
        );
        prop_assert_eq!(
            m.total_duration,
            Duration::from_millis(model.window.iter().map(|r| r.1).sum())
        );
        prop_assert_eq!(
            m.slow_count(Duration::from_millis(SLOW_MS)),
            model.window.iter().filter(|r| r.1 >= SLOW_MS).count() as u64
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn breaker_agrees_with_reference_model(ops in proptest::collection::vec(op(), 1..120)) {
        let clock = ManualClock::new();
        let cb: CircuitBreaker = configured!(CircuitBreaker::builder("model"), clock);
        agrees_with_model(&cb, &clock, &ops)?;
    }

    #[test]
    fn async_breaker_agrees_with_reference_model(ops in proptest::collection::vec(op(), 1..120)) {
        let clock = ManualClock::new();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let cb = Async(configured!(AsyncCircuitBreaker::builder("model"), clock), rt);
        agrees_with_model(&cb, &clock, &ops)?;
    }
}
