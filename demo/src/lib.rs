//! The whole system in one command: three breakers with different policies protect a
//! simulated upstream that goes healthy → outage → slow → recovering.
//!
//! ```text
//! cargo run --release -p fluxgate-demo
//! cargo run --release -p fluxgate-demo -- --seconds 10 --addr 127.0.0.1:0 --svg timeline.svg
//! cargo run --release -p fluxgate-demo -- --config my-breakers.yaml
//! cargo run --release -p fluxgate-demo -- --circuits 10000   # then: curl -o /dev/null -w '%{time_total}\n' localhost:8000/metrics
//! ```
//!
//! Worker threads call the upstream through the breakers. Every transition is printed the
//! moment it happens (a closure listener), every breaker prints a status line once a
//! second, `/status` shows the breakers as a page of tiles that refreshes itself,
//! `/metrics` is served for Prometheus (`PrometheusListener` on the default registry,
//! `MetricsServer`), and at the end a timeline picture is written (SVG):
//! state bands, the window's failure (and slow) rate and the share of calls each breaker
//! admitted, sampled every 100 ms.
//!
//! The breakers come from a configuration file, `demo/breakers.toml` (built into the
//! binary; `--config PATH` reads another), written for a one-minute run. The phases are
//! fractions of the run (`--seconds`, default 60), and every duration of the file
//! (windows, cooldowns, ramps) is scaled by the run's length over 60 s, so a 6-second run
//! shows the same story as a one-minute run.
//! Ctrl-C ends the run early and still writes the picture.
#![forbid(unsafe_code)]

use std::error::Error;
use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use fluxgate::config::rules::build_tripper;
use fluxgate::config::{
    Breaker, BreakerConfig, Config, PermitConfig, RecoveryConfig, RetryConfig, Trackers,
    WindowConfig, format_duration,
};
use fluxgate::listeners::prometheus::{BreakerStatus, MetricsServer, PrometheusListener};
use fluxgate::{CircuitBreaker, Signal, State};

/// Each worker offers one call per tick (100 calls per second per worker).
const TICK: Duration = Duration::from_millis(10);
/// The picture's sampling period.
const SAMPLE: Duration = Duration::from_millis(100);
/// The admitted share is drawn over this many samples (300 ms), to tame the noise of
/// random admission.
const SMOOTH: usize = 3;

/// How a run is configured; `main` fills it from the command line, tests build it.
pub struct Options {
    /// Length of the run; phases, cooldowns and ramps scale with it.
    pub duration: Duration,
    /// Where `/metrics`, `/status` and `/status.json` are served (`127.0.0.1:0` picks a
    /// free port).
    pub addr: String,
    /// Extra idle circuits on the same listener (`idle_00000` …), to time a large scrape.
    pub circuits: usize,
    /// The breakers' configuration file (`None`: the shipped [`BREAKERS_TOML`]); its
    /// durations are for a one-minute run and are scaled to `duration`.
    pub config: Option<PathBuf>,
    /// Where the timeline picture is written.
    pub svg: PathBuf,
    /// Where the transitions and status lines go.
    pub out: Box<dyn Write + Send>,
    /// Set it to end the run early (Ctrl-C does).
    pub stop: Arc<AtomicBool>,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("duration", &self.duration)
            .field("addr", &self.addr)
            .field("circuits", &self.circuits)
            .field("config", &self.config)
            .field("svg", &self.svg)
            .field("stop", &self.stop)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// The defaults: 60 s, `127.0.0.1:8000`, no idle circuits, `demo-timeline.svg`, stdout.
    pub fn new() -> Options {
        Options {
            duration: Duration::from_secs(60),
            addr: "127.0.0.1:8000".into(),
            circuits: 0,
            config: None,
            svg: PathBuf::from("demo-timeline.svg"),
            out: Box::new(std::io::stdout()),
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Reads `--seconds N`, `--addr HOST:PORT`, `--circuits N`, `--config PATH` and
    /// `--svg PATH`.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut opts = Options::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--seconds" => {
                    let v = value("--seconds")?;
                    let secs: f64 = v
                        .parse()
                        .map_err(|_| format!("--seconds: not a number: {v}"))?;
                    if !(1.0..=86_400.0).contains(&secs) {
                        return Err(format!("--seconds must be between 1 and 86400, got {v}"));
                    }
                    opts.duration = Duration::from_secs_f64(secs);
                }
                "--addr" => opts.addr = value("--addr")?,
                "--circuits" => {
                    let v = value("--circuits")?;
                    opts.circuits =
                        v.parse()
                            .ok()
                            .filter(|n| *n <= MAX_IDLE_CIRCUITS)
                            .ok_or(format!(
                                "--circuits must be a number from 0 to {MAX_IDLE_CIRCUITS}, got {v}"
                            ))?;
                }
                "--svg" => opts.svg = PathBuf::from(value("--svg")?),
                "--config" => opts.config = Some(PathBuf::from(value("--config")?)),
                "-h" | "--help" => return Err(USAGE.into()),
                other => return Err(format!("unknown argument {other}\n{USAGE}")),
            }
        }
        Ok(opts)
    }
}

impl Default for Options {
    fn default() -> Self {
        Options::new()
    }
}

/// The most idle circuits `--circuits` adds.
pub const MAX_IDLE_CIRCUITS: usize = 1_000_000;

/// The command line's help text; `Options::from_args` returns it for `--help`.
pub const USAGE: &str = "usage: demo [--seconds N] [--addr HOST:PORT] [--circuits N] [--config PATH] [--svg PATH]
  --seconds N       length of the run, default 60 (phases and the breakers' durations scale with it)
  --addr HOST:PORT  where /status and /metrics are served, default 127.0.0.1:8000 (port 0: a free one)
  --circuits N      N extra idle circuits on the same listener (time a large scrape), default 0
  --config PATH     the breakers (payment_api, inventory_api, search_api) from this TOML/YAML file,
                    its durations written for 60 s; default: the demo's own breakers.toml
  --svg PATH        the timeline picture written at the end, default demo-timeline.svg";

/// What a run did.
#[derive(Debug)]
pub struct Report {
    /// Where `/metrics` was served.
    pub metrics_addr: SocketAddr,
    /// Every transition of the three breakers, in order.
    pub transitions: Vec<Transition>,
    /// Calls offered to the breakers (admitted or rejected).
    pub calls: u64,
    /// Where the picture was written.
    pub svg: PathBuf,
}

/// One transition as the demo saw it.
#[derive(Debug, Clone)]
pub struct Transition {
    /// Time since the start of the run.
    pub at: Duration,
    /// Which breaker.
    pub circuit: String,
    /// The state it left.
    pub from: State,
    /// The state it entered.
    pub to: State,
}

// ---------------------------------------------------------------------------------------
// The scenario: one upstream, four phases.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Healthy,
    Outage,
    Slow,
    Recovering,
}

impl Phase {
    /// Each phase and the fraction of the run at which it ends.
    const ALL: [(Phase, f64); 4] = [
        (Phase::Healthy, 0.20),
        (Phase::Outage, 0.45),
        (Phase::Slow, 0.65),
        (Phase::Recovering, 1.00),
    ];

    fn name(self) -> &'static str {
        match self {
            Phase::Healthy => "healthy",
            Phase::Outage => "outage",
            Phase::Slow => "slow",
            Phase::Recovering => "recovering",
        }
    }

    fn story(self) -> &'static str {
        match self {
            Phase::Healthy => "the upstream answers fast, almost never fails",
            Phase::Outage => "the upstream refuses 95% of calls",
            Phase::Slow => "search answers in 50-90 ms, the others a little slower",
            Phase::Recovering => "failures fade from 25% to none",
        }
    }

    /// The phase at `frac` (0..1) of the run, and how far into it (0..1).
    fn at(frac: f64) -> (Phase, f64) {
        let mut start = 0.0;
        for (phase, end) in Phase::ALL {
            if frac < end {
                return (phase, (frac - start) / (end - start));
            }
            start = end;
        }
        (Phase::Recovering, 1.0)
    }
}

/// What the upstream does wrong.
#[derive(Debug)]
enum UpstreamError {
    Unavailable,
    Internal,
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Unavailable => f.write_str("503 service unavailable"),
            UpstreamError::Internal => f.write_str("500 internal error"),
        }
    }
}

impl Error for UpstreamError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    Payment,
    Inventory,
    Search,
}

/// The simulated upstream: behaviour depends on the phase of the run.
struct Upstream {
    start: Instant,
    total: Duration,
}

impl Upstream {
    fn phase(&self) -> (Phase, f64) {
        Phase::at(self.start.elapsed().as_secs_f64() / self.total.as_secs_f64())
    }

    /// One call: sleeps for its latency, then succeeds or fails.
    fn call(&self, api: Api) -> Result<u32, UpstreamError> {
        let (phase, progress) = self.phase();
        let ms = |r: Range<u64>| Duration::from_micros(fastrand::u64(r.start * 1000..r.end * 1000));
        let (fail, latency) = match (phase, api) {
            (Phase::Healthy, Api::Search) => (0.005, ms(2..6)),
            (Phase::Healthy, _) => (0.005, ms(1..3)),
            // Refused connections fail fast.
            (Phase::Outage, _) => (0.95, ms(0..2)),
            (Phase::Slow, Api::Search) => (0.02, ms(50..90)),
            (Phase::Slow, _) => (0.01, ms(4..12)),
            // Failures fade out over the first half of the phase.
            (Phase::Recovering, _) => ((0.25 * (1.0 - 2.0 * progress)).max(0.0), ms(1..4)),
        };
        thread::sleep(latency);
        if fastrand::f64() >= fail {
            Ok(42)
        } else if phase == Phase::Outage {
            Err(UpstreamError::Unavailable)
        } else {
            Err(UpstreamError::Internal)
        }
    }
}

// ---------------------------------------------------------------------------------------
// The breakers.

/// A breaker and its call counters.
struct Guarded {
    api: Api,
    workers: usize,
    cb: CircuitBreaker,
    /// What its configuration says, one line.
    policy: String,
    /// The latency its tripper counts as slow (the least, if several), for the picture.
    slow: Option<Duration>,
    ok: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
}

impl Guarded {
    fn new(
        api: Api,
        workers: usize,
        cb: CircuitBreaker,
        policy: String,
        slow: Option<Duration>,
    ) -> Guarded {
        Guarded {
            api,
            workers,
            cb,
            policy,
            slow,
            ok: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        }
    }

    fn counts(&self) -> Counts {
        Counts {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    ok: u64,
    failed: u64,
    rejected: u64,
}

impl Counts {
    fn since(self, before: Counts) -> Counts {
        Counts {
            ok: self.ok - before.ok,
            failed: self.failed - before.failed,
            rejected: self.rejected - before.rejected,
        }
    }

    fn offered(self) -> u64 {
        self.ok + self.failed + self.rejected
    }

    /// Admitted calls / offered calls, `None` without calls.
    fn admitted_share(self) -> Option<f64> {
        (self.offered() > 0).then(|| (self.ok + self.failed) as f64 / self.offered() as f64)
    }
}

/// The demo's three breakers as a configuration file (`demo/breakers.toml`), for a run
/// of one minute; shipped inside the binary, so the demo runs from any directory.
pub const BREAKERS_TOML: &str = include_str!("../breakers.toml");

/// The run length `BREAKERS_TOML`'s durations are written for.
pub const CONFIG_RUN: Duration = Duration::from_secs(60);

/// The breakers' configuration for a run of `duration`: `path` (or the shipped
/// [`BREAKERS_TOML`]) with every duration scaled by `duration / 60 s`, so a six-second
/// run shows the one-minute story (`Config::scale_durations`; latency thresholds and
/// counts are not scaled).
pub fn load_config(
    path: Option<&Path>,
    duration: Duration,
) -> Result<Config, Box<dyn Error + Send + Sync>> {
    let config = match path {
        Some(path) => Config::from_path(path)?,
        None => Config::from_toml_str(BREAKERS_TOML)?,
    };
    let factor = duration.as_secs_f64() / CONFIG_RUN.as_secs_f64();
    Ok(config.scale_durations(factor)?)
}

/// The three breakers, each built from its section of `config` (or its defaults).
fn breakers(
    config: &Config,
    listener: impl Fn(&Signal) + Send + Sync + 'static,
) -> Result<Vec<Guarded>, Box<dyn Error + Send + Sync>> {
    let prometheus = PrometheusListener::new();
    let listener: Arc<dyn fluxgate::listeners::Listener> = Arc::new(listener);
    let trackers = Trackers::new();
    [
        ("payment_api", Api::Payment, 2),
        ("inventory_api", Api::Inventory, 2),
        ("search_api", Api::Search, 3),
    ]
    .into_iter()
    .map(|(name, api, workers)| {
        let c = config.get(name);
        let cb: CircuitBreaker = config
            .builder(name, &trackers)?
            .listener(prometheus.clone())
            .listener(listener.clone())
            .build()?;
        cb.enter_silently(c.state);
        let mut thresholds = Vec::new();
        build_tripper(&c.tripper).slow_thresholds(&mut thresholds);
        thresholds.sort();
        Ok(Guarded::new(
            api,
            workers,
            cb,
            describe(c),
            thresholds.first().copied(),
        ))
    })
    .collect()
}

/// One line: what a breaker's configuration says.
fn describe(c: &BreakerConfig) -> String {
    // Scaled durations are rarely round: seconds with two decimals.
    let d = |d: Duration| format!("{:.2}s", d.as_secs_f64());
    let pct = |r: f64| format!("{:.0}%", r * 100.0);
    let window = match c.window {
        WindowConfig::Count(n) => format!("CountWindow({n})"),
        WindowConfig::Time(span) => format!("TimeWindow({})", format_duration(span)),
    };
    let retry = match c.retry {
        RetryConfig::Always => "Always".to_owned(),
        RetryConfig::Never => "Never".to_owned(),
        RetryConfig::Cooldown { duration, jitter } if jitter > 0.0 => {
            format!("Cooldown({} ±{})", d(duration), pct(jitter))
        }
        RetryConfig::Cooldown { duration, .. } => format!("Cooldown({})", d(duration)),
        RetryConfig::Backoff {
            initial,
            multiplier,
            max,
            ..
        } => format!("Backoff({} ×{multiplier}, max {})", d(initial), d(max)),
    };
    let permit = match c.permit {
        PermitConfig::All => "All".to_owned(),
        PermitConfig::Random(r) => format!("Random({})", pct(r)),
        PermitConfig::RampUp {
            initial,
            final_ratio,
            duration,
        } => format!(
            "RampUp {}→{} over {}",
            pct(initial),
            pct(final_ratio),
            d(duration)
        ),
    };
    let recovery = match &c.recovery {
        RecoveryConfig::ByTripper => "ByTripper".to_owned(),
        RecoveryConfig::Successes(n) => format!("Successes({n})"),
        RecoveryConfig::Probes { n, rule } => format!("Probes({n}, {rule})"),
    };
    format!("{window}, {}, {retry}, {permit}, {recovery}", c.tripper)
}

/// `n` idle circuits on the same listener, for a large `/metrics` and `/status`.
fn idle_circuits(n: usize) -> Result<Vec<CircuitBreaker>, Box<dyn Error + Send + Sync>> {
    let prometheus = PrometheusListener::new();
    (0..n)
        .map(|i| {
            CircuitBreaker::builder(&format!("idle_{i:05}"))
                .listener(prometheus.clone())
                .build()
                .map_err(Into::into)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Output.

type Out = Arc<Mutex<Box<dyn Write + Send>>>;

fn say(out: &Out, line: fmt::Arguments<'_>) {
    let mut w = out.lock().unwrap_or_else(|p| p.into_inner());
    // A closed pipe (`demo | head`) must not stop the run.
    let _ = writeln!(w, "{line}");
    let _ = w.flush();
}

fn fmt_rate(r: Option<f64>) -> String {
    r.map_or_else(|| "   -".to_string(), |r| format!("{:3.0}%", r * 100.0))
}

fn status_line(at: Duration, g: &Guarded, last: Counts) -> String {
    let info = g.cb.info();
    let m = &info.metric;
    let slow = match g.slow {
        Some(threshold) => fmt_rate(m.slow_rate(threshold)),
        None => "   -".into(),
    };
    format!(
        "{:6.1}s  {:<14} {:<10} fail {}  slow {}  window {:4}  last 1s: {:4} ok {:4} failed {:4} rejected",
        at.as_secs_f64(),
        info.name,
        info.state.as_str(),
        fmt_rate(m.failure_rate()),
        slow,
        m.total_count,
        last.ok,
        last.failed,
        last.rejected,
    )
}

// ---------------------------------------------------------------------------------------
// The run.

/// Reads one value of a sample.
type Field = fn(&Sample) -> Option<f64>;

/// One sample of one breaker for the picture.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: f64,
    failure_rate: Option<f64>,
    /// Only for the breaker that has a latency rule.
    slow_rate: Option<f64>,
    admitted: Option<f64>,
}

/// Runs the demo: starts the metrics server, the workers and the sampler, prints until the
/// end (or `stop`), writes the picture.
pub fn run(opts: Options) -> Result<Report, Box<dyn Error + Send + Sync>> {
    let Options {
        duration,
        addr,
        circuits,
        config,
        svg,
        out,
        stop,
    } = opts;
    let config = load_config(config.as_deref(), duration)?;
    let out: Out = Arc::new(Mutex::new(out));
    let t = duration.as_secs_f64();
    // Built before the clock starts: a million idle circuits take seconds, which must
    // not come out of the run.
    let idle = Arc::new(idle_circuits(circuits)?);

    let start = Instant::now();
    let transitions = Arc::new(Mutex::new(Vec::<Transition>::new()));
    let printer = {
        let out = out.clone();
        let transitions = transitions.clone();
        move |s: &Signal| {
            let at = start.elapsed();
            say(
                &out,
                format_args!(
                    "{:6.1}s  {:<14} {} → {}",
                    at.as_secs_f64(),
                    s.circuit_name,
                    s.old_state,
                    s.new_state
                ),
            );
            transitions
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Transition {
                    at,
                    circuit: s.circuit_name.to_string(),
                    from: s.old_state,
                    to: s.new_state,
                });
        }
    };
    let guarded: Arc<Vec<Guarded>> = Arc::new(breakers(&config, printer)?);

    let status = {
        let guarded = Arc::clone(&guarded);
        let idle = Arc::clone(&idle);
        move || {
            guarded
                .iter()
                .map(|g| BreakerStatus::of(&g.cb))
                .chain(idle.iter().map(BreakerStatus::of))
                .collect()
        }
    };
    let server = MetricsServer::builder(addr.as_str())
        .status(status)
        .start()
        .map_err(|e| format!("{e} (try --addr 127.0.0.1:0 for a free port)"))?;
    let metrics_addr = server.local_addr();

    say(
        &out,
        format_args!("fluxgate demo: {t:.0} s, three breakers in front of one flaky upstream"),
    );
    for g in guarded.iter() {
        say(&out, format_args!("  {:<14} {}", g.cb.name(), g.policy));
    }
    say(&out, format_args!("status:  http://{metrics_addr}/status"));
    say(&out, format_args!("metrics: http://{metrics_addr}/metrics"));
    let plan: Vec<String> = {
        let mut from = 0.0;
        Phase::ALL
            .iter()
            .map(|&(p, end)| {
                let s = format!("{} {:.1}–{:.1}s", p.name(), from * t, end * t);
                from = end;
                s
            })
            .collect()
    };
    say(&out, format_args!("phases: {}", plan.join(", ")));
    say(
        &out,
        format_args!(
            "transitions are printed as they happen; one status line per breaker every second"
        ),
    );

    let upstream = Arc::new(Upstream {
        start,
        total: duration,
    });
    let done = Arc::new(AtomicBool::new(false));
    let deadline = start + duration;

    let mut workers = Vec::new();
    for (i, g) in guarded.iter().enumerate() {
        for w in 0..g.workers {
            let (guarded, upstream, done) = (guarded.clone(), upstream.clone(), done.clone());
            workers.push(
                thread::Builder::new()
                    .name(format!("worker-{}-{w}", g.cb.name()))
                    .spawn(move || work(&guarded[i], &upstream, &done))?,
            );
        }
    }

    let sampler = {
        let (guarded, done) = (guarded.clone(), done.clone());
        thread::Builder::new()
            .name("sampler".into())
            .spawn(move || sample(&guarded, start, &done))?
    };

    // Phase announcements and status lines, until the end or a stop.
    let mut phase = None;
    let mut next_status = start + Duration::from_secs(1);
    let mut last: Vec<Counts> = guarded.iter().map(|g| g.counts()).collect();
    loop {
        let now = Instant::now();
        if now >= deadline || stop.load(Ordering::Relaxed) {
            break;
        }
        let (p, _) = upstream.phase();
        if phase != Some(p) {
            phase = Some(p);
            say(
                &out,
                format_args!(
                    "{:6.1}s  ── phase: {} ({})",
                    start.elapsed().as_secs_f64(),
                    p.name(),
                    p.story()
                ),
            );
        }
        if now >= next_status {
            next_status += Duration::from_secs(1);
            for (g, last) in guarded.iter().zip(last.iter_mut()) {
                let counts = g.counts();
                say(
                    &out,
                    format_args!("{}", status_line(start.elapsed(), g, counts.since(*last))),
                );
                *last = counts;
            }
        }
        thread::sleep(
            Duration::from_millis(20).min(deadline.saturating_duration_since(Instant::now())),
        );
    }
    let ended = start.elapsed();
    if stop.load(Ordering::Relaxed) && ended < duration {
        say(&out, format_args!("{:6.1}s  stopped", ended.as_secs_f64()));
    }

    done.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let samples = sampler.join().map_err(|_| "the sampler thread panicked")?;
    server.shutdown();

    let transitions = transitions
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let names: Vec<&str> = guarded.iter().map(|g| g.cb.name()).collect();
    draw_timeline(
        &svg,
        t.min(ended.as_secs_f64()).max(0.1),
        &names,
        &samples,
        &transitions,
    )
    .map_err(|e| format!("cannot write {}: {e}", svg.display()))?;

    let calls: u64 = guarded.iter().map(|g| g.counts().offered()).sum();
    say(
        &out,
        format_args!(
            "── done after {:.1} s: {calls} calls, {} transitions",
            ended.as_secs_f64(),
            transitions.len()
        ),
    );
    for g in guarded.iter() {
        let c = g.counts();
        let mut pairs: Vec<((State, State), usize)> = Vec::new();
        for tr in transitions.iter().filter(|tr| tr.circuit == g.cb.name()) {
            match pairs.iter_mut().find(|(p, _)| *p == (tr.from, tr.to)) {
                Some((_, n)) => *n += 1,
                None => pairs.push(((tr.from, tr.to), 1)),
            }
        }
        let pairs: Vec<String> = pairs
            .iter()
            .map(|((a, b), n)| format!("{a} → {b} ×{n}"))
            .collect();
        say(
            &out,
            format_args!(
                "  {:<14} {} ok, {} failed, {} rejected; {}",
                g.cb.name(),
                c.ok,
                c.failed,
                c.rejected,
                if pairs.is_empty() {
                    "no transitions".into()
                } else {
                    pairs.join(", ")
                }
            ),
        );
    }
    say(&out, format_args!("timeline: {}", svg.display()));

    Ok(Report {
        metrics_addr,
        transitions,
        calls,
        svg,
    })
}

/// A worker: one call per tick through its breaker until `done`.
fn work(g: &Guarded, upstream: &Upstream, done: &AtomicBool) {
    let mut next = Instant::now();
    while !done.load(Ordering::Relaxed) {
        match g.cb.call(|| upstream.call(g.api)) {
            Ok(_) => g.ok.fetch_add(1, Ordering::Relaxed),
            Err(fluxgate::Error::Inner(_)) => g.failed.fetch_add(1, Ordering::Relaxed),
            Err(fluxgate::Error::Rejected(_)) => g.rejected.fetch_add(1, Ordering::Relaxed),
        };
        next += TICK;
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        } else {
            // Running late (a slow call): offer the next call now, do not catch up in a burst.
            next = now;
        }
    }
}

/// Every `SAMPLE`: each breaker's window failure and slow rates (`info()`), and the share
/// of calls it admitted over the last `SMOOTH` samples.
fn sample(guarded: &[Guarded], start: Instant, done: &AtomicBool) -> Vec<Vec<Sample>> {
    let mut series = vec![Vec::new(); guarded.len()];
    let mut history: Vec<Vec<Counts>> = guarded.iter().map(|g| vec![g.counts()]).collect();
    let mut next = start + SAMPLE;
    while !done.load(Ordering::Relaxed) {
        let now = Instant::now();
        if next > now {
            thread::sleep(next - now);
        }
        next += SAMPLE;
        let at = start.elapsed().as_secs_f64();
        for ((g, history), series) in guarded.iter().zip(&mut history).zip(&mut series) {
            let counts = g.counts();
            let metric = g.cb.info().metric;
            let base = history[history.len().saturating_sub(SMOOTH)];
            history.push(counts);
            series.push(Sample {
                at,
                failure_rate: metric.failure_rate(),
                slow_rate: g.slow.and_then(|threshold| metric.slow_rate(threshold)),
                admitted: counts.since(base).admitted_share(),
            });
        }
    }
    series
}

// ---------------------------------------------------------------------------------------
// The picture.

fn draw_timeline(
    path: &Path,
    t: f64,
    names: &[&str],
    samples: &[Vec<Sample>],
    transitions: &[Transition],
) -> Result<(), Box<dyn Error + Send + Sync>> {
    use plotters::prelude::*;

    let closed = RGBColor(46, 160, 67);
    let open = RGBColor(218, 54, 51);
    let half_open = RGBColor(240, 160, 30);
    let other = RGBColor(130, 130, 130);
    let band = |s: State| match s {
        State::Closed => closed,
        State::Open | State::ForcedOpen => open,
        State::HalfOpen => half_open,
        _ => other,
    };
    let failure_color = RGBColor(150, 20, 20);
    let admitted_color = RGBColor(30, 90, 200);
    let slow_color = RGBColor(150, 80, 200);

    let height = 120 + 260 * names.len() as u32;
    let root = SVGBackend::new(path, (1200, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let (head, body) = root.split_vertically(70);
    head.draw(&Text::new(
        "fluxgate demo: three breakers, one flaky upstream",
        (20, 12),
        ("sans-serif", 28).into_font().color(&BLACK),
    ))?;
    // A hand-made legend: the state bands, then the lines.
    let mut x = 20;
    for (label, color) in [("closed", closed), ("open", open), ("half_open", half_open)] {
        head.draw(&Rectangle::new(
            [(x, 45), (x + 22, 61)],
            color.mix(0.25).filled(),
        ))?;
        head.draw(&Text::new(
            label,
            (x + 28, 45),
            ("sans-serif", 16).into_font(),
        ))?;
        x += 110;
    }
    for (label, color, width) in [
        ("failure rate (window)", failure_color, 200),
        ("slow rate (window, search_api)", slow_color, 270),
        ("share of calls admitted", admitted_color, 0),
    ] {
        head.draw(&PathElement::new(
            vec![(x, 53), (x + 26, 53)],
            color.stroke_width(3),
        ))?;
        head.draw(&Text::new(
            label,
            (x + 32, 45),
            ("sans-serif", 16).into_font(),
        ))?;
        x += width;
    }

    let panels = body.split_evenly((names.len(), 1));
    for (i, (panel, name)) in panels.iter().zip(names).enumerate() {
        let mut chart = ChartBuilder::on(panel)
            .margin_left(20)
            .margin_right(30)
            .margin_top(8)
            .margin_bottom(8)
            .caption(*name, ("sans-serif", 20))
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..t, 0f64..112f64)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_labels(6)
            .y_max_light_lines(0)
            .y_label_formatter(&|v| format!("{v:.0}%"))
            .x_label_formatter(&|v| format!("{v:.0}s"))
            .x_desc(if i + 1 == names.len() { "time" } else { "" })
            .light_line_style(WHITE)
            .draw()?;

        // State bands from the exact transition times.
        let mut bands = Vec::new();
        let (mut from, mut state) = (0.0, State::Closed);
        for tr in transitions.iter().filter(|tr| tr.circuit == *name) {
            let at = tr.at.as_secs_f64().min(t);
            bands.push((from, at, state));
            (from, state) = (at, tr.to);
        }
        bands.push((from, t, state));
        chart.draw_series(bands.iter().filter(|(a, b, _)| b > a).map(|&(a, b, s)| {
            Rectangle::new([(a, 0.0), (b, 100.0)], band(s).mix(0.22).filled())
        }))?;

        // Phase boundaries and names.
        let mut from = 0.0;
        for (phase, end) in Phase::ALL {
            if from > 0.0 {
                chart.draw_series(DashedLineSeries::new(
                    [(from * t, 0.0), (from * t, 112.0)],
                    4,
                    4,
                    BLACK.mix(0.5).stroke_width(1),
                ))?;
            }
            chart.draw_series(std::iter::once(Text::new(
                phase.name(),
                (from * t + t * 0.005, 111.0),
                ("sans-serif", 15).into_font().color(&BLACK.mix(0.7)),
            )))?;
            from = end;
        }

        // Lines have gaps where there is nothing to show (an empty window right after a
        // transition or while open; no calls offered).
        let series = &samples[i];
        let lines: [(Field, ShapeStyle); 3] = [
            (|s| s.failure_rate, failure_color.stroke_width(2)),
            (|s| s.admitted, admitted_color.stroke_width(2)),
            // Last, so that its short stretches show over the admitted share's 100 %.
            (|s| s.slow_rate, slow_color.stroke_width(3)),
        ];
        for (value, style) in lines {
            let mut run: Vec<(f64, f64)> = Vec::new();
            for s in series.iter().filter(|s| s.at <= t) {
                match value(s) {
                    Some(v) => run.push((s.at, v * 100.0)),
                    None if !run.is_empty() => {
                        chart.draw_series(LineSeries::new(std::mem::take(&mut run), style))?;
                    }
                    None => {}
                }
            }
            if !run.is_empty() {
                chart.draw_series(LineSeries::new(run, style))?;
            }
        }
    }
    root.present()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------

/// Ends the run early on Ctrl-C (SIGINT), through tokio's signal handling.
pub fn stop_on_ctrl_c(stop: Arc<AtomicBool>) {
    let _ = thread::Builder::new().name("ctrl-c".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        if rt.block_on(tokio::signal::ctrl_c()).is_ok() {
            stop.store(true, Ordering::Relaxed);
        }
    });
}
