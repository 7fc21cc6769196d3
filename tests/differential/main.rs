//! Differential test against the Python library this crate rebuilds: fluxgate 0.9.4.
//!
//! Thousands of random scenarios (a breaker configuration and a sequence of calls, clock
//! moves and manual commands) run through our `CircuitBreaker` on a `ManualClock` and,
//! in one batch, through Python fluxgate's synchronous `CircuitBreaker` driven by
//! `tests/differential/driver.py` on an injected clock. After every step both sides
//! report what a caller can observe: the call's outcome (value, own error, or rejection
//! and the state that rejected), state, reopens, `changed_at`, the window's totals
//! (calls, failures, durations, slow counts per threshold), the failure streak and the
//! signals emitted (old state, new state, timestamp). They must agree (SM-*, W-*, TR-*,
//! RT-*, P-*).
//!
//! Where the crate differs from the library on purpose, the difference is normalised
//! and each normalisation names the paragraph of docs/design-decisions.md it relies on
//! (see `normalise` here and the adapters in driver.py). Nothing else is forgiven.
//!
//! Environment:
//! - `FLUXGATE_PY`: a Python interpreter with `fluxgate==0.9.4` (`.ci/run` makes one).
//!   Without it the test is skipped with a message, unless `CI=true`: then it fails.
//! - `FLUXGATE_DIFF_SCENARIOS` (default 2000): how many scenarios (soak runs: more).
//! - `FLUXGATE_DIFF_SEED` (default fixed): the generator's seed.
//! - `FLUXGATE_DIFF_ONLY`: run only this scenario id (with the same seed).
//! - `FLUXGATE_DIFF_SHOW` (default 3): how many diverging scenarios to shrink and print.
//!
//! Time is counted in ticks of 1/64 s. Both sides then compute with exact numbers: a
//! tick is a whole number of microseconds (15 625) and a dyadic fraction of a second,
//! so Python's float seconds and our integer nanoseconds agree to the last bit and
//! `elapsed >= cooldown` never flips on rounding noise.
//!
//! Randomness is shared: before each call the thread-local `fastrand` generator (the one
//! `permits::Random` and `permits::RampUp` draw from) is seeded, and the driver's
//! `random()` returns the numbers that seed yields. So `Random(r)` and `RampUp` admit
//! the same calls on both sides. Retry jitter is random by design and is not
//! configured here.

use std::error::Error as StdError;
use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fluxgate::clock::ManualClock;
use fluxgate::retries::{Always, Backoff, Cooldown, Never};
use fluxgate::trackers::TypeOf;
use fluxgate::trippers::{
    AvgLatency, Closed, FailureRate, FailureStreak, HalfOpened, MinRequests, SlowRate, TripContext,
    Tripper,
};
use fluxgate::windows::{CountWindow, TimeWindow};
use fluxgate::{CircuitBreaker, ConfigError, Error, Signal, State, permits, trackers};
use serde_json::{Value, json};

/// One tick of the scenarios' clock: 1/64 s.
const TICK_NANOS: u64 = 15_625_000;
/// Wall-clock origin of both sides (the driver's `T0`).
const T0_SECS: u64 = 1_700_000_000;
const DEFAULT_SCENARIOS: usize = 2000;
const DEFAULT_SEED: u64 = 0x00F1_0C5A_7E00_0001;
/// How many diverging scenarios are shrunk and printed in full (`FLUXGATE_DIFF_SHOW`).
const SHOWN: usize = 3;

fn secs(ticks: u64) -> f64 {
    ticks as f64 / 64.0
}

fn ticks(t: u64) -> Duration {
    Duration::from_nanos(t * TICK_NANOS)
}

// ------------------------------------------------------------------ scenarios

#[derive(Debug, Clone)]
enum Trip {
    And(Box<Trip>, Box<Trip>),
    Or(Box<Trip>, Box<Trip>),
    Min(u64),
    Rate(f64),
    /// ratio, threshold in ticks
    Slow(f64, u64),
    /// threshold in ticks
    Avg(u64),
    Streak(u64),
    Closed,
    HalfOpen,
}

#[derive(Debug, Clone)]
enum WindowCfg {
    Count(usize),
    /// seconds
    Time(u64),
}

#[derive(Debug, Clone)]
enum RetryCfg {
    Always,
    Never,
    Cooldown(u64),
    /// initial ticks, multiplier, max ticks
    Backoff(u64, f64, u64),
}

#[derive(Debug, Clone)]
enum PermitCfg {
    All,
    Random(f64),
    /// initial, final, duration ticks
    RampUp(f64, f64, u64),
}

#[derive(Debug, Clone)]
struct Config {
    window: WindowCfg,
    typeof_tracker: bool,
    tripper: Trip,
    retry: RetryCfg,
    permit: PermitCfg,
    max_half_open: usize,
    measure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Ok,
    Fail,
    Untracked,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmd {
    Reset,
    Disable,
    MetricsOnly,
    ForceOpen,
}

impl Cmd {
    fn name(self) -> &'static str {
        match self {
            Cmd::Reset => "reset",
            Cmd::Disable => "disable",
            Cmd::MetricsOnly => "metrics_only",
            Cmd::ForceOpen => "force_open",
        }
    }
    fn apply(self, cb: &CircuitBreaker) {
        match self {
            Cmd::Reset => cb.reset(),
            Cmd::Disable => cb.disable(),
            Cmd::MetricsOnly => cb.metrics_only(),
            Cmd::ForceOpen => cb.force_open(),
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// kind, duration in ticks, seed of the call's random draws
    Call(Kind, u64, u64),
    Advance(u64),
    Cmd(Cmd),
    /// `n` commands, cycling through the list (many transitions in one step: R-1)
    Spin(u64, Vec<Cmd>),
}

#[derive(Debug, Clone)]
struct Scenario {
    id: usize,
    cfg: Config,
    steps: Vec<Step>,
}

// ------------------------------------------------------------------ JSON for the driver

fn trip_json(t: &Trip) -> Value {
    match t {
        Trip::And(a, b) => json!(["and", trip_json(a), trip_json(b)]),
        Trip::Or(a, b) => json!(["or", trip_json(a), trip_json(b)]),
        Trip::Min(n) => json!(["min", n]),
        Trip::Rate(r) => json!(["rate", r]),
        Trip::Slow(r, t) => json!(["slow", r, secs(*t)]),
        Trip::Avg(t) => json!(["avg", secs(*t)]),
        Trip::Streak(n) => json!(["streak", n]),
        Trip::Closed => json!(["closed"]),
        Trip::HalfOpen => json!(["half_open"]),
    }
}

fn cfg_json(c: &Config) -> Value {
    json!({
        "window": match c.window {
            WindowCfg::Count(n) => json!(["count", n]),
            WindowCfg::Time(s) => json!(["time", s]),
        },
        "tracker": if c.typeof_tracker { "typeof" } else { "all" },
        "tripper": trip_json(&c.tripper),
        "retry": match c.retry {
            RetryCfg::Always => json!(["always"]),
            RetryCfg::Never => json!(["never"]),
            RetryCfg::Cooldown(d) => json!(["cooldown", secs(d)]),
            RetryCfg::Backoff(i, m, x) => json!(["backoff", secs(i), m, secs(x)]),
        },
        "permit": match c.permit {
            PermitCfg::All => json!(["all"]),
            PermitCfg::Random(r) => json!(["random", r]),
            PermitCfg::RampUp(i, f, d) => json!(["rampup", i, f, secs(d)]),
        },
        "max_half_open": c.max_half_open,
        "measure": c.measure,
    })
}

/// The numbers `fastrand` yields after `fastrand::seed(seed)`: what the permit draws.
fn draws(seed: u64) -> [f64; 2] {
    let mut rng = fastrand::Rng::with_seed(seed);
    [rng.f64(), rng.f64()]
}

fn step_json(s: &Step) -> Value {
    match s {
        Step::Call(k, d, seed) => {
            let kind = match k {
                Kind::Ok => "ok",
                Kind::Fail => "fail",
                Kind::Untracked => "untracked",
            };
            json!(["call", kind, secs(*d), draws(*seed)])
        }
        Step::Advance(d) => json!(["advance", secs(*d)]),
        Step::Cmd(c) => json!(["cmd", c.name()]),
        Step::Spin(n, cycle) => {
            json!([
                "spin",
                n,
                cycle.iter().map(|c| c.name()).collect::<Vec<_>>()
            ])
        }
    }
}

fn scenario_json(s: &Scenario) -> Value {
    json!({
        "id": s.id,
        "cfg": cfg_json(&s.cfg),
        "steps": s.steps.iter().map(step_json).collect::<Vec<_>>(),
    })
}

// ------------------------------------------------------------------ the Rust side

#[derive(Debug)]
struct Tracked;
#[derive(Debug)]
struct Untracked;
impl fmt::Display for Tracked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tracked")
    }
}
impl fmt::Display for Untracked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("untracked")
    }
}
impl StdError for Tracked {}
impl StdError for Untracked {}

/// A tripper tree built at run time.
struct DynTripper(Box<dyn Tripper>);

impl Tripper for DynTripper {
    fn trip(&self, ctx: &TripContext<'_>) -> bool {
        self.0.trip(ctx)
    }
    fn validate(&self) -> Result<(), ConfigError> {
        self.0.validate()
    }
    fn slow_thresholds(&self, out: &mut Vec<Duration>) {
        self.0.slow_thresholds(out)
    }
    fn needs_durations(&self) -> bool {
        self.0.needs_durations()
    }
}

fn build_tripper(t: &Trip) -> DynTripper {
    use fluxgate::trippers::{And, Or};
    DynTripper(match t {
        Trip::And(a, b) => Box::new(And(build_tripper(a), build_tripper(b))),
        Trip::Or(a, b) => Box::new(Or(build_tripper(a), build_tripper(b))),
        Trip::Min(n) => Box::new(MinRequests::new(*n)),
        Trip::Rate(r) => Box::new(FailureRate::new(*r)),
        Trip::Slow(r, t) => Box::new(SlowRate::new(*r, ticks(*t))),
        Trip::Avg(t) => Box::new(AvgLatency::new(ticks(*t))),
        Trip::Streak(n) => Box::new(FailureStreak::new(*n)),
        Trip::Closed => Box::new(Closed),
        Trip::HalfOpen => Box::new(HalfOpened),
    })
}

fn has_latency_rule(t: &Trip) -> bool {
    match t {
        Trip::And(a, b) | Trip::Or(a, b) => has_latency_rule(a) || has_latency_rule(b),
        Trip::Slow(..) | Trip::Avg(_) => true,
        _ => false,
    }
}

type Seen = Arc<Mutex<Vec<(State, State, SystemTime)>>>;

fn build_rust(cfg: &Config, clock: &ManualClock, seen: &Seen) -> CircuitBreaker {
    let seen = seen.clone();
    let mut b = CircuitBreaker::builder("diff")
        .tripper(build_tripper(&cfg.tripper))
        .max_half_open_calls(cfg.max_half_open)
        .measure_durations(cfg.measure)
        .clock(clock.clone())
        .listener(move |s: &Signal| {
            seen.lock()
                .unwrap()
                .push((s.old_state, s.new_state, s.timestamp))
        });
    b = match cfg.window {
        WindowCfg::Count(n) => b.window(CountWindow::new(n)),
        WindowCfg::Time(s) => b.window(TimeWindow::new(Duration::from_secs(s))),
    };
    b = if cfg.typeof_tracker {
        b.tracker(TypeOf::<Tracked>::new())
    } else {
        b.tracker(trackers::All)
    };
    b = match cfg.retry {
        RetryCfg::Always => b.retry(Always),
        RetryCfg::Never => b.retry(Never),
        RetryCfg::Cooldown(d) => b.retry(Cooldown::new(ticks(d))),
        RetryCfg::Backoff(i, m, x) => b.retry(Backoff::new(ticks(i)).multiplier(m).max(ticks(x))),
    };
    b = match cfg.permit {
        PermitCfg::All => b.permit(permits::All),
        PermitCfg::Random(r) => b.permit(permits::Random::new(r)),
        PermitCfg::RampUp(i, f, d) => b.permit(permits::RampUp::new(i, f, ticks(d))),
    };
    b.build().expect("generated configurations are valid")
}

fn outcome<E>(r: Result<(), Error<E>>) -> String {
    match r {
        Ok(()) => "ok".into(),
        Err(Error::Rejected(c)) => format!("rejected:{}", c.state().as_str()),
        Err(Error::Inner(_)) => "err".into(),
    }
}

fn since_t0(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH + Duration::from_secs(T0_SECS))
        .expect("after the origin")
        .as_secs_f64()
}

fn signal_json(s: &(State, State, SystemTime)) -> Value {
    json!([s.0.as_str(), s.1.as_str(), since_t0(s.2)])
}

fn run_rust(s: &Scenario) -> Vec<Value> {
    let clock = ManualClock::starting_at(UNIX_EPOCH + Duration::from_secs(T0_SECS));
    let seen: Seen = Arc::default();
    let cb = build_rust(&s.cfg, &clock, &seen);
    let mut trace = Vec::with_capacity(s.steps.len());
    for step in &s.steps {
        let out = match step {
            Step::Call(kind, d, seed) => {
                fastrand::seed(*seed);
                let d = ticks(*d);
                Some(match kind {
                    Kind::Ok => outcome(cb.call(|| {
                        clock.advance(d);
                        Ok::<(), Tracked>(())
                    })),
                    Kind::Fail => outcome(cb.call(|| {
                        clock.advance(d);
                        Err::<(), _>(Tracked)
                    })),
                    Kind::Untracked => outcome(cb.call(|| {
                        clock.advance(d);
                        Err::<(), _>(Untracked)
                    })),
                })
            }
            Step::Advance(d) => {
                clock.advance(ticks(*d));
                None
            }
            Step::Cmd(c) => {
                c.apply(&cb);
                None
            }
            Step::Spin(n, cycle) => {
                for i in 0..*n {
                    cycle[(i % cycle.len() as u64) as usize].apply(&cb);
                }
                None
            }
        };
        let signals: Vec<_> = std::mem::take(&mut *seen.lock().unwrap());
        let signals = if matches!(step, Step::Spin(..)) {
            json!({"n": signals.len(), "last": signals.last().map(signal_json)})
        } else {
            Value::Array(signals.iter().map(signal_json).collect())
        };
        let info = cb.info();
        let m = &info.metric;
        let mut slow: Vec<(f64, u64)> = m
            .slow_counts()
            .filter(|&(_, c)| c > 0)
            .map(|(t, c)| (t.as_secs_f64(), c))
            .collect();
        slow.sort_by(|a, b| a.0.total_cmp(&b.0));
        trace.push(json!({
            "out": out,
            "state": info.state.as_str(),
            "reopens": info.reopens,
            "changed_at": since_t0(info.changed_at),
            "total": m.total_count,
            "failures": m.failure_count,
            "duration": m.total_duration.as_secs_f64(),
            "slow": slow.iter().map(|&(t, c)| json!([t, c])).collect::<Vec<_>>(),
            "streak": info.consecutive_failures,
            "signals": signals,
        }));
    }
    trace
}

// ------------------------------------------------------------------ normalisation

/// Removes from one step's observation (either side's) what the crate reports
/// differently on purpose. Each rule cites docs/design-decisions.md.
fn normalise(cfg: &Config, obs: &mut Value) {
    let obj = obs.as_object_mut().expect("an observation is an object");
    // "Calls are timed only when something needs it": without a latency rule or
    // `measure_durations(true)` our durations are 0, Python's are measured. Nothing
    // decides on them then (no rule reads them), so only the reported sum differs.
    if !(cfg.measure || has_latency_rule(&cfg.tripper)) {
        obj.remove("duration");
    }
    // "The failure streak starts over at every transition (SM-14, SM-15)": Python keeps
    // counting across transitions into `open`, `forced_open`, `disabled` and
    // `metrics_only` (its streak is private and read by no rule there). In `closed` and
    // `half_open`, where FailureStreak reads it, both start at 0 and must agree.
    let state = obj.get("state").and_then(Value::as_str).unwrap_or_default();
    if !matches!(state, "closed" | "half_open") {
        obj.remove("streak");
    }
}

// ------------------------------------------------------------------ the generator

fn pick<T: Copy>(rng: &mut fastrand::Rng, items: &[T]) -> T {
    items[rng.usize(..items.len())]
}

/// Ratios as users write them: k/100, and k/n (the value a window of n calls with k
/// failures has, so boundaries such as 7/25 = 0.28 are hit exactly: TR-4, TR-6).
fn ratio(rng: &mut fastrand::Rng) -> f64 {
    if rng.bool() {
        rng.u32(1..=100) as f64 / 100.0
    } else {
        let n = rng.u32(1..=40);
        rng.u32(1..=n) as f64 / n as f64
    }
}

fn gen_trip(rng: &mut fastrand::Rng, depth: u32) -> Trip {
    if depth < 3 && rng.u32(0..10) < 5 - depth {
        let a = Box::new(gen_trip(rng, depth + 1));
        let b = Box::new(gen_trip(rng, depth + 1));
        return if rng.bool() {
            Trip::And(a, b)
        } else {
            Trip::Or(a, b)
        };
    }
    match rng.u32(0..16) {
        0..=2 => Trip::Min(rng.u64(1..=30)),
        3..=6 => Trip::Rate(ratio(rng)),
        7..=9 => Trip::Streak(rng.u64(1..=8)),
        10..=11 => Trip::Slow(ratio(rng), rng.u64(1..=128)),
        12..=13 => Trip::Avg(rng.u64(1..=128)),
        14 => Trip::Closed,
        _ => Trip::HalfOpen,
    }
}

fn gen_config(rng: &mut fastrand::Rng, small_window: bool) -> Config {
    let window = if small_window {
        if rng.bool() {
            WindowCfg::Count(rng.usize(1..=20))
        } else {
            WindowCfg::Time(rng.u64(1..=4))
        }
    } else {
        // Large time windows are rare: the library rebuilds every bucket on each
        // transition, which makes them slow on the Python side.
        match rng.u32(0..30) {
            0..=17 => WindowCfg::Count(rng.usize(1..=30)),
            18..=20 => WindowCfg::Count(rng.usize(1..=200)),
            21..=28 => WindowCfg::Time(rng.u64(1..=30)),
            _ => WindowCfg::Time(rng.u64(1..=300)),
        }
    };
    let retry = match rng.u32(0..10) {
        0..=1 => RetryCfg::Always,
        2 => RetryCfg::Never,
        3..=6 => RetryCfg::Cooldown(rng.u64(1..=640)),
        _ => {
            let initial = rng.u64(1..=320);
            RetryCfg::Backoff(
                initial,
                pick(rng, &[1.5, 2.0, 3.0, 4.0]),
                initial * rng.u64(1..=50),
            )
        }
    };
    let permit = match rng.u32(0..10) {
        0..=4 => PermitCfg::All,
        5..=6 => PermitCfg::Random(pick(rng, &[0.0, 0.25, 0.5, 0.75, 1.0])),
        _ => {
            let initial: f64 = pick(rng, &[0.1, 0.25, 0.5, 1.0]);
            let last = pick(rng, &[0.5f64, 0.75, 1.0]).max(initial);
            PermitCfg::RampUp(initial, last, rng.u64(1..=640))
        }
    };
    Config {
        window,
        typeof_tracker: rng.u32(0..5) == 0,
        tripper: gen_trip(rng, 0),
        retry,
        permit,
        max_half_open: pick(rng, &[1, 1, 2, 3, 10]),
        measure: rng.u32(0..10) < 3,
    }
}

/// A call's duration; with `hung`, a dependency without timeouts: calls that hang for
/// hours, over a day (M-2: they count with their real duration).
fn gen_duration(rng: &mut fastrand::Rng, hung: bool) -> u64 {
    if hung && rng.u32(0..3) == 0 {
        return rng.u64(64 * 3600..=64 * 3600 * 30);
    }
    match rng.u32(0..1000) {
        0..=99 => 0,
        100..=699 => rng.u64(0..=64),
        700..=949 => rng.u64(0..=640),
        950..=996 => rng.u64(0..=64 * 600),
        // A call that hung for hours (a missing timeout).
        _ => rng.u64(0..=64 * 3600 * 6),
    }
}

fn gen_advance(rng: &mut fastrand::Rng, window: &WindowCfg) -> u64 {
    match rng.u32(0..100) {
        0..=59 => rng.u64(1..=128),
        60..=89 => rng.u64(1..=64 * 120),
        90..=97 => rng.u64(1..=64 * 3600),
        _ => {
            // Long idle periods, some exactly 2^k window lengths long (tags that wrap).
            let span = match window {
                WindowCfg::Time(s) => *s,
                WindowCfg::Count(_) => 1,
            };
            let laps = 1u64 << rng.u32(8..=17);
            (span * laps).saturating_add_signed(rng.i64(-2..=2)).max(1) * 64
        }
    }
}

fn gen_cmd(rng: &mut fastrand::Rng) -> Cmd {
    match rng.u32(0..6) {
        0..=2 => Cmd::Reset,
        3 => Cmd::Disable,
        4 => Cmd::MetricsOnly,
        _ => Cmd::ForceOpen,
    }
}

fn gen_cycle(rng: &mut fastrand::Rng) -> Vec<Cmd> {
    let mut cycle: Vec<Cmd> = (0..rng.usize(1..=3)).map(|_| gen_cmd(rng)).collect();
    // End most spins in `closed`, where the stale words would be read.
    if rng.u32(0..3) > 0 {
        cycle.push(Cmd::Reset);
    }
    cycle
}

/// A call that fails (tracked) with probability `fail`.
fn gen_call(rng: &mut fastrand::Rng, fail: f64, hung: bool) -> Step {
    let kind = if rng.u32(0..14) == 0 {
        Kind::Untracked
    } else if rng.f64() < fail {
        Kind::Fail
    } else {
        Kind::Ok
    };
    Step::Call(kind, gen_duration(rng, hung), rng.u64(..))
}

fn gen_steps(rng: &mut fastrand::Rng, cfg: &Config, fail: f64, long: bool) -> Vec<Step> {
    let hung = rng.u32(0..30) == 0;
    let len = if long {
        rng.usize(150..=400)
    } else if rng.u32(0..10) == 0 {
        rng.usize(100..=400)
    } else {
        rng.usize(1..=100)
    };
    // Long runs are mostly traffic, so that large windows fill up.
    let calls = if long { 97 } else { 74 };
    (0..len)
        .map(|_| match rng.u32(0..100) {
            x if x <= calls => gen_call(rng, fail, hung),
            _ if long => Step::Advance(rng.u64(1..=128)),
            75..=91 => Step::Advance(gen_advance(rng, &cfg.window)),
            92..=98 => Step::Cmd(gen_cmd(rng)),
            _ => Step::Spin(rng.u64(1..=400), gen_cycle(rng)),
        })
        .collect()
}

/// A scenario with many transitions: long spins of commands between traffic, and
/// sometimes over a thousand reopens (RT-3).
fn gen_marathon(rng: &mut fastrand::Rng, id: usize) -> Scenario {
    let mut cfg = gen_config(rng, true);
    let mut steps = Vec::new();
    if id % 2 == 1 {
        // Reopen storm: trip, then over and over wait out the backoff and fail the probe.
        let initial = rng.u64(1..=4);
        let max = initial * rng.u64(1..=8);
        cfg.tripper = Trip::Streak(1);
        cfg.retry = RetryCfg::Backoff(initial, pick(rng, &[1.5, 2.0]), max);
        cfg.permit = PermitCfg::All;
        steps.push(Step::Call(Kind::Fail, 0, 0));
        for _ in 0..rng.usize(1100..=1900) {
            steps.push(Step::Advance(max));
            steps.push(Step::Call(Kind::Fail, rng.u64(0..=2), 0));
        }
        steps.push(Step::Cmd(Cmd::Reset));
        steps.extend((0..10).map(|_| gen_call(rng, 0.5, false)));
        return Scenario { id, cfg, steps };
    }
    cfg.window = match (id / 2) % 2 {
        0 => WindowCfg::Count(rng.usize(1..=20)),
        _ => WindowCfg::Time(rng.u64(1..=4)),
    };
    for _ in 0..rng.usize(1..=2) {
        steps.extend((0..rng.usize(0..=20)).map(|_| gen_call(rng, 0.5, false)));
        // Around the widths of the tags a word carries: 2^16 and 2^15 transitions.
        let n = match rng.u32(0..3) {
            0 => 65_536 - rng.u64(0..=2),
            1 => 65_536 + rng.u64(0..=2),
            _ => rng.u64(32_768..65_536),
        };
        steps.push(Step::Spin(n, gen_cycle(rng)));
        steps.extend((0..rng.usize(5..=40)).map(|_| {
            if rng.u32(0..5) == 0 {
                Step::Advance(rng.u64(1..=128))
            } else {
                gen_call(rng, 0.5, false)
            }
        }));
    }
    Scenario { id, cfg, steps }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn generate(seed: u64, id: usize, marathons: usize) -> Scenario {
    let mut rng = fastrand::Rng::with_seed(seed ^ (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    if id < marathons {
        return gen_marathon(&mut rng, id);
    }
    let mut cfg = gen_config(&mut rng, false);
    // How unhealthy the dependency is, per scenario.
    let mut fail = rng.f64();
    let aligned = rng.u32(0..4) == 0;
    if aligned {
        // Rate rules on a window of exactly n calls with a ratio k/n: the window reaches
        // the boundary failures/total == ratio often (TR-4, TR-6 say ">=": it trips).
        // Half of them on boundaries where `ratio * n` is not exact in floating point
        // (0.28 * 25 = 7.000000000000001): a rule must not depend on that rounding.
        let sensitive = rng.bool();
        let (n, r) = loop {
            let (n, k, r) = if rng.bool() {
                // A percentage, on a window where it is a whole number of calls.
                let p = rng.u64(1..=100);
                let step = 100 / gcd(p, 100);
                let n = step * rng.u64(1..=100 / step);
                (n, p * n / 100, p as f64 / 100.0)
            } else {
                let n = rng.u64(2..=40);
                let k = rng.u64(1..=n);
                (n, k, k as f64 / n as f64)
            };
            if !sensitive || r * n as f64 != k as f64 {
                break (n, r);
            }
        };
        let rule = if rng.u32(0..3) == 0 {
            Trip::Slow(r, rng.u64(1..=64))
        } else {
            Trip::Rate(r)
        };
        cfg.window = WindowCfg::Count(n as usize);
        // Failing about as often as the ratio: the window's count walks around the
        // boundary and, moving by one call at a time, lands on it.
        fail = (r - rng.f64() / 12.0).clamp(0.0, 1.0);
        cfg.tripper = Trip::And(Box::new(Trip::Min(n)), Box::new(rule));
        if rng.bool() {
            cfg.tripper = Trip::Or(Box::new(cfg.tripper), Box::new(gen_trip(&mut rng, 2)));
        }
    }
    let steps = gen_steps(&mut rng, &cfg, fail, aligned);
    Scenario { id, cfg, steps }
}

// ------------------------------------------------------------------ the Python side

struct Python {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Python {
    fn start(python: &str) -> Python {
        let driver: PathBuf = [
            env!("CARGO_MANIFEST_DIR"),
            "tests",
            "differential",
            "driver.py",
        ]
        .iter()
        .collect();
        let mut child = Command::new(python)
            .arg(&driver)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start FLUXGATE_PY={python}: {e}"));
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut hello = String::new();
        stdout.read_line(&mut hello).expect("driver greeting");
        let hello: Value = serde_json::from_str(&hello).unwrap_or_else(|e| {
            panic!("FLUXGATE_PY={python} cannot run the driver (is fluxgate installed?): {e}")
        });
        assert_eq!(
            hello["fluxgate"], "0.9.4",
            "the differential test is pinned to fluxgate 0.9.4; FLUXGATE_PY has {hello}"
        );
        Python {
            child,
            stdin,
            stdout,
        }
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).expect("driver output");
        assert!(n > 0, "the driver exited early (see its stderr above)");
        let v: Value = serde_json::from_str(&line).expect("driver output is JSON");
        assert!(
            v.get("harness_error").is_none(),
            "driver harness error: {v}"
        );
        v
    }

    /// All scenarios in one batch: a thread writes them while this one reads.
    fn run_batch(&mut self, scenarios: &[Scenario]) -> Vec<Vec<Value>> {
        let lines: Vec<String> = scenarios
            .iter()
            .map(|s| scenario_json(s).to_string())
            .collect();
        let mut stdin = self.stdin.take().expect("driver stdin");
        let writer = std::thread::spawn(move || {
            for l in lines {
                stdin.write_all(l.as_bytes()).expect("write to driver");
                stdin.write_all(b"\n").expect("write to driver");
            }
            stdin.flush().expect("flush driver input");
            stdin
        });
        let out = scenarios
            .iter()
            .map(|s| {
                let v = self.read();
                assert_eq!(v["id"], s.id, "driver answers in order");
                trace_of(v)
            })
            .collect();
        self.stdin = Some(writer.join().expect("writer thread"));
        out
    }

    fn run_one(&mut self, s: &Scenario) -> Vec<Value> {
        let stdin = self.stdin.as_mut().expect("driver stdin");
        writeln!(stdin, "{}", scenario_json(s)).expect("write to driver");
        stdin.flush().expect("flush driver input");
        let v = self.read();
        trace_of(v)
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

fn trace_of(v: Value) -> Vec<Value> {
    match v {
        Value::Object(mut o) => match o.remove("trace") {
            Some(Value::Array(t)) => t,
            other => panic!("driver answer without a trace: {other:?}"),
        },
        other => panic!("driver answer is not an object: {other}"),
    }
}

// ------------------------------------------------------------------ comparison

/// The first step at which the normalised observations differ.
fn first_divergence(s: &Scenario, rust: &[Value], py: &[Value]) -> Option<usize> {
    assert_eq!(rust.len(), py.len(), "one observation per step");
    (0..rust.len()).find(|&i| {
        let (mut r, mut p) = (rust[i].clone(), py[i].clone());
        normalise(&s.cfg, &mut r);
        normalise(&s.cfg, &mut p);
        r != p
    })
}

fn diverges(py: &mut Python, s: &Scenario) -> Option<usize> {
    let rust = run_rust(s);
    let p = py.run_one(s);
    first_divergence(s, &rust, &p)
}

/// Simpler versions of a tripper tree: each side of a combinator.
fn simpler_trips(t: &Trip) -> Vec<Trip> {
    match t {
        Trip::And(a, b) | Trip::Or(a, b) => {
            let mut v = vec![(**a).clone(), (**b).clone()];
            let rebuild = |a: Trip, b: Trip| match t {
                Trip::And(..) => Trip::And(Box::new(a), Box::new(b)),
                _ => Trip::Or(Box::new(a), Box::new(b)),
            };
            v.extend(
                simpler_trips(a)
                    .into_iter()
                    .map(|x| rebuild(x, (**b).clone())),
            );
            v.extend(
                simpler_trips(b)
                    .into_iter()
                    .map(|x| rebuild((**a).clone(), x)),
            );
            v
        }
        _ => Vec::new(),
    }
}

/// Greedy shrinking, bounded in time: cut after the divergence, drop steps, simplify
/// the tripper, zero durations, halve spins.
fn shrink(py: &mut Python, mut s: Scenario, deadline: Instant) -> Scenario {
    let Some(at) = diverges(py, &s) else {
        return s;
    };
    s.steps.truncate(at + 1);
    let mut progress = true;
    while progress && Instant::now() < deadline {
        progress = false;
        let mut candidates: Vec<Scenario> = Vec::new();
        for t in simpler_trips(&s.cfg.tripper) {
            let mut c = s.clone();
            c.cfg.tripper = t;
            candidates.push(c);
        }
        for i in (0..s.steps.len()).rev() {
            let mut c = s.clone();
            c.steps.remove(i);
            candidates.push(c);
            let mut c = s.clone();
            match &mut c.steps[i] {
                Step::Call(_, d, _) | Step::Advance(d) if *d > 1 => *d /= 2,
                Step::Spin(n, _) if *n > 1 => *n /= 2,
                _ => continue,
            }
            candidates.push(c);
        }
        for c in candidates {
            if Instant::now() >= deadline {
                break;
            }
            if let Some(at) = diverges(py, &c) {
                s = c;
                s.steps.truncate(at + 1);
                progress = true;
                break;
            }
        }
    }
    s
}

fn describe(step: &Step) -> String {
    match step {
        Step::Call(k, d, seed) => {
            let [u, _] = draws(*seed);
            format!("call {k:?} taking {}s (draw {u:.3})", secs(*d))
        }
        Step::Advance(d) => format!("advance {}s", secs(*d)),
        Step::Cmd(c) => c.name().to_string(),
        Step::Spin(n, cycle) => format!(
            "{n} x [{}]",
            cycle
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn report(s: &Scenario, rust: &[Value], py: &[Value]) -> String {
    let at = first_divergence(s, rust, py);
    let mut out = format!(
        "scenario {} (seed-reproducible)\n  config: {}\n",
        s.id,
        cfg_json(&s.cfg)
    );
    for (i, step) in s.steps.iter().enumerate() {
        let mark = if Some(i) == at { ">>" } else { "  " };
        out += &format!("{mark} #{i:<4} {}\n", describe(step));
        let (mut r, mut p) = (rust[i].clone(), py[i].clone());
        normalise(&s.cfg, &mut r);
        normalise(&s.cfg, &mut p);
        if r == p {
            out += &format!("         both:   {r}\n");
        } else {
            out += &format!("         rust:   {r}\n         python: {p}\n");
        }
    }
    out
}

/// Which fields differ first (a rough class, to count divergences by kind).
fn class_of(s: &Scenario, rust: &[Value], py: &[Value]) -> String {
    let Some(i) = first_divergence(s, rust, py) else {
        return "none".into();
    };
    let (mut r, mut p) = (rust[i].clone(), py[i].clone());
    normalise(&s.cfg, &mut r);
    normalise(&s.cfg, &mut p);
    let keys: Vec<&str> = r
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, v)| p.get(k.as_str()) != Some(v))
        .map(|(k, _)| k.as_str())
        .collect();
    let transitions: usize = py[..i]
        .iter()
        .map(|o| match &o["signals"] {
            Value::Array(a) => a.len(),
            other => other["n"].as_u64().unwrap_or(0) as usize,
        })
        .sum();
    let window = match s.cfg.window {
        WindowCfg::Count(_) => "count",
        WindowCfg::Time(_) => "time",
    };
    format!(
        "{} after {} (python state {}, {window} window, {})",
        keys.join("+"),
        match &s.steps[i] {
            Step::Call(k, ..) => format!("call {k:?}"),
            other => describe(other).split(' ').next().unwrap_or("").to_string(),
        },
        p["state"],
        match transitions {
            0..=127 => "< 128 transitions before",
            128..=255 => "128..256 transitions before",
            256..=32767 => "256..32768 transitions before",
            _ => ">= 32768 transitions before",
        }
    )
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => {
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number"))
        }
        Err(_) => default,
    }
}

#[test]
fn differential_against_python_fluxgate_0_9_4() {
    let Some(python) = std::env::var("FLUXGATE_PY").ok().filter(|p| !p.is_empty()) else {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        assert!(
            !ci,
            "CI=true but FLUXGATE_PY is not set: the differential test needs a Python with \
             fluxgate==0.9.4 (.ci/run creates one)"
        );
        println!(
            "skipped: set FLUXGATE_PY to a Python interpreter with fluxgate==0.9.4 installed \
             (.ci/run does) to run the differential test against the Python library"
        );
        return;
    };
    let started = Instant::now();
    let count = env_number("FLUXGATE_DIFF_SCENARIOS", DEFAULT_SCENARIOS as u64) as usize;
    let seed = env_number("FLUXGATE_DIFF_SEED", DEFAULT_SEED);
    let marathons = count.min(4);
    let scenarios: Vec<Scenario> = match std::env::var("FLUXGATE_DIFF_ONLY") {
        Ok(id) => vec![generate(
            seed,
            id.parse().expect("a scenario id"),
            marathons,
        )],
        Err(_) => (0..count).map(|id| generate(seed, id, marathons)).collect(),
    };

    let mut py = Python::start(&python);
    // Python runs the batch in its own process while we run ours.
    let (py_traces, rust_traces) = std::thread::scope(|scope| {
        let rust = scope.spawn(|| scenarios.iter().map(run_rust).collect::<Vec<_>>());
        let p = py.run_batch(&scenarios);
        (p, rust.join().expect("rust side"))
    });
    let steps: usize = scenarios.iter().map(|s| s.steps.len()).sum();

    let mut failing: Vec<usize> = (0..scenarios.len())
        .filter(|&i| first_divergence(&scenarios[i], &rust_traces[i], &py_traces[i]).is_some())
        .collect();
    println!(
        "differential: {} scenarios, {steps} steps, seed {seed:#x}, {} diverging, {:.1?}",
        scenarios.len(),
        failing.len(),
        started.elapsed()
    );
    if failing.is_empty() {
        return;
    }

    let mut classes: std::collections::BTreeMap<String, usize> = Default::default();
    for &i in &failing {
        *classes
            .entry(class_of(&scenarios[i], &rust_traces[i], &py_traces[i]))
            .or_default() += 1;
    }
    let mut msg = format!(
        "{} of {} scenarios diverge from Python fluxgate 0.9.4 (seed {seed:#x}).\n\
         First diverging fields, by count:\n",
        failing.len(),
        scenarios.len()
    );
    for (class, n) in &classes {
        msg += &format!("  {n:>5}  {class}\n");
    }
    // Shrink the shortest few and show them step by step.
    failing.sort_by_key(|&i| scenarios[i].steps.len());
    let shown = env_number("FLUXGATE_DIFF_SHOW", SHOWN as u64) as usize;
    let deadline = Instant::now() + Duration::from_secs(10 * shown.div_ceil(SHOWN) as u64);
    for &i in failing.iter().take(shown) {
        let small = shrink(&mut py, scenarios[i].clone(), deadline);
        let rust = run_rust(&small);
        let p = py.run_one(&small);
        msg += &format!(
            "\n{}(reproduce the original with FLUXGATE_DIFF_SEED={seed:#x} FLUXGATE_DIFF_ONLY={})\n",
            report(&small, &rust, &p),
            small.id
        );
    }
    panic!("{msg}");
}
