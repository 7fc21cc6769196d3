//! The Redis store against a real `redis-server` (Debian's package; `.ci/run` installs it).
//! Each test starts its own server on a free port of 127.0.0.1 and kills it when done.
//! Without `redis-server`, a test prints that it skipped, unless `CI` is set: then it
//! fails. Every wait polls a condition with a generous deadline; nothing is timed.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use fluxgate_core::permits::All;
use fluxgate_core::retries::Cooldown;
use fluxgate_core::trippers::FailureStreak;
use fluxgate_core::{CircuitBreaker, Error, State};
use fluxgate_redis::{RedisStore, WRITE_SCRIPT};

const DEADLINE: Duration = Duration::from_secs(10);

/// A `redis-server` of this test, killed on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    /// A server on a free port, or `None` (the test skips) without `redis-server`.
    fn start() -> Option<Server> {
        for _ in 0..10 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            match Server::on(port) {
                Ok(Some(s)) => return Some(s),
                Ok(None) => continue, // the port was taken meanwhile: another one
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if std::env::var_os("CI").is_some() {
                        panic!("redis-server is not installed (CI is set: .ci/run installs it)");
                    }
                    eprintln!("skipped: redis-server is not installed");
                    return None;
                }
                Err(e) => panic!("starting redis-server: {e}"),
            }
        }
        panic!("no free port for redis-server after 10 attempts");
    }

    /// A server on `port`: `Ok(None)` if it exited (port taken).
    fn on(port: u16) -> std::io::Result<Option<Server>> {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut s = Server { child, port };
        let start = Instant::now();
        while start.elapsed() < DEADLINE {
            if s.child.try_wait()?.is_some() {
                return Ok(None);
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(Some(s));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not listen on port {port} within {DEADLINE:?}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig} redis-server");
    }

    /// Kills the server (SIGKILL) and waits for it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.signal_quietly();
        self.kill();
    }
}

impl Server {
    /// A stopped server would not die of SIGKILL any later than now, but be sure.
    fn signal_quietly(&self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// Everything logged in this test binary (a global subscriber: the store logs from its
/// own threads). Tests tell their lines apart by their server's port.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

fn logs() -> &'static Logs {
    static LOGS: OnceLock<Logs> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_writer(logs.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        logs
    })
}

/// Log lines of the server on `port` containing `what`.
fn count_logs(port: u16, what: &str) -> usize {
    let text = String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned();
    let addr = format!("127.0.0.1:{port}");
    text.lines()
        .filter(|l| l.contains(&addr) && l.contains(what) && l.contains("fluxgate"))
        .count()
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < DEADLINE,
            "not within {DEADLINE:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn store(url: &str) -> RedisStore {
    RedisStore::builder(url)
        .poll_interval(Duration::from_millis(100))
        .timeout(Duration::from_millis(200))
        .max_backoff(Duration::from_millis(200))
        .lease_ttl(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn breaker(name: &str, store: &RedisStore, cooldown: Duration) -> CircuitBreaker {
    CircuitBreaker::builder(name)
        .tripper(FailureStreak::new(1))
        .retry(Cooldown::new(cooldown))
        .permit(All)
        .max_half_open_calls(1)
        .store(store.clone())
        .build()
        .unwrap()
}

fn fail(cb: &CircuitBreaker) -> Result<(), Error<std::io::Error>> {
    cb.call(|| Err(std::io::Error::other("down")))
}

fn succeed(cb: &CircuitBreaker) -> Result<(), Error<std::io::Error>> {
    cb.call(|| Ok(()))
}

fn client(server: &Server) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection_with_timeout(DEADLINE)
        .unwrap()
}

/// Three instances with separate clients: one trips, the others open with the fleet's
/// deadline (pub/sub: polling is set to an hour, so only a message can bring it).
#[test]
fn one_trips_and_the_others_follow() {
    let Some(server) = Server::start() else {
        return;
    };
    let stores: Vec<_> = (0..3)
        .map(|_| {
            RedisStore::builder(&server.url())
                .poll_interval(Duration::from_secs(3600))
                .key_ttl(Duration::from_secs(7200))
                .build()
                .unwrap()
        })
        .collect();
    let fleet: Vec<_> = stores
        .iter()
        .map(|s| breaker("db", s, Duration::from_secs(60)))
        .collect();
    wait_for("every store connected and subscribed", || {
        stores.iter().all(RedisStore::is_connected)
    });
    // The subscriber may still be subscribing: trip until the others saw a message.
    assert!(matches!(fail(&fleet[0]), Err(Error::Inner(_))));
    wait_for("the other instances open", || {
        fleet[1..].iter().all(|cb| cb.state() == State::Open)
    });
    for cb in &fleet[1..] {
        let left = cb.retry_after().unwrap();
        assert!(
            left <= Duration::from_secs(60) && left > Duration::from_secs(30),
            "{left:?}"
        );
        assert!(matches!(succeed(cb), Err(Error::Rejected(_))));
    }
    let mut con = client(&server);
    let state: String = redis::cmd("HGET")
        .arg(stores[0].state_key("db"))
        .arg("s")
        .query(&mut con)
        .unwrap();
    assert_eq!(state, "open");
}

/// With `probes(2)`, exactly two of four instances probe once the deadline is over; the
/// others reject with `retry_after` until the probers close the fleet.
#[test]
fn exactly_k_instances_probe() {
    let Some(server) = Server::start() else {
        return;
    };
    let stores: Vec<_> = (0..4)
        .map(|_| {
            RedisStore::builder(&server.url())
                .probes(2)
                .poll_interval(Duration::from_millis(50))
                .build()
                .unwrap()
        })
        .collect();
    let fleet: Vec<_> = stores
        .iter()
        .map(|s| breaker("leased", s, Duration::from_millis(300)))
        .collect();
    wait_for("every store connected", || {
        stores.iter().all(RedisStore::is_connected)
    });
    let _ = fail(&fleet[0]);
    wait_for("the fleet open", || {
        fleet.iter().all(|cb| cb.state() == State::Open)
    });
    let mut tickets = Vec::new();
    let probing = |fleet: &[CircuitBreaker]| {
        fleet
            .iter()
            .filter(|cb| cb.state() == State::HalfOpen)
            .count()
    };
    wait_for("two instances probing", || {
        for cb in &fleet {
            match cb.admit() {
                Ok(t) => tickets.push(t),
                Err(r) => assert!(r.retry_after().is_some() || cb.state() == State::HalfOpen),
            }
        }
        assert!(probing(&fleet) <= 2, "more than k instances probe");
        probing(&fleet) == 2
    });
    // The other two keep being refused leases: a few more lease periods of asking.
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        for cb in &fleet {
            if let Ok(t) = cb.admit() {
                tickets.push(t);
            }
        }
        assert_eq!(probing(&fleet), 2, "exactly k instances probe");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        tickets.len(),
        2,
        "one probe call per prober (max_half_open_calls 1)"
    );
    for t in tickets {
        t.success();
    }
    wait_for("the whole fleet closed", || {
        fleet.iter().all(|cb| cb.state() == State::Closed)
    });
}

/// A manual command on one instance is the fleet's; a restarted instance starts from it.
#[test]
fn fleet_wide_commands_and_restart() {
    let Some(server) = Server::start() else {
        return;
    };
    let stores: Vec<_> = (0..3).map(|_| store(&server.url())).collect();
    let fleet: Vec<_> = stores
        .iter()
        .map(|s| breaker("ops", s, Duration::from_secs(60)))
        .collect();
    fleet[1].force_open();
    wait_for("everyone forced open", || {
        fleet.iter().all(|cb| cb.state() == State::ForcedOpen)
    });
    let restarted = breaker("ops", &store(&server.url()), Duration::from_secs(60));
    wait_for("the restarted instance forced open", || {
        restarted.state() == State::ForcedOpen
    });
    fleet[2].disable();
    wait_for("everyone disabled", || {
        fleet
            .iter()
            .chain([&restarted])
            .all(|cb| cb.state() == State::Disabled)
    });
    fleet[0].metrics_only();
    wait_for("everyone metrics_only", || {
        fleet.iter().all(|cb| cb.state() == State::MetricsOnly)
    });
    restarted.reset();
    wait_for("everyone closed", || {
        fleet.iter().all(|cb| cb.state() == State::Closed)
    });
}

/// A writer with an old version loses the compare-and-set: the state stays as it was.
#[test]
fn a_stale_writer_loses_the_race() {
    let Some(server) = Server::start() else {
        return;
    };
    let s = store(&server.url());
    let cb = breaker("race", &s, Duration::from_secs(60));
    cb.force_open();
    let mut con = client(&server);
    let key = s.state_key("race");
    wait_for("the command written", || {
        redis::cmd("HGET")
            .arg(&key)
            .arg("s")
            .query::<Option<String>>(&mut con)
            .unwrap()
            .as_deref()
            == Some("forced_open")
    });
    let version: u64 = redis::cmd("HGET")
        .arg(&key)
        .arg("v")
        .query(&mut con)
        .unwrap();
    let script = redis::Script::new(WRITE_SCRIPT);
    for (state, stale) in [
        ("closed", 0),
        ("closed", version - 1),
        ("open", version - 1),
    ] {
        let reply: (i64, u64, String, u32, i64, i64) = script
            .key(&key)
            .key(s.lease_key("race"))
            .arg(stale)
            .arg(state)
            .arg(0)
            .arg(-1)
            .arg(0)
            .arg(60_000)
            .arg(s.channel())
            .arg("race")
            .invoke(&mut con)
            .unwrap();
        assert_eq!(reply.0, 0, "a stale {state} must not be written");
        assert_eq!((reply.1, reply.2.as_str()), (version, "forced_open"));
    }
    // The current version wins.
    let reply: (i64, u64, String, u32, i64, i64) = script
        .key(&key)
        .key(s.lease_key("race"))
        .arg(version)
        .arg("closed")
        .arg(0)
        .arg(-1)
        .arg(0)
        .arg(60_000)
        .arg(s.channel())
        .arg("race")
        .invoke(&mut con)
        .unwrap();
    assert_eq!((reply.0, reply.2.as_str()), (1, "closed"));
    assert!(reply.1 > version);
    wait_for("the breaker follows the newer version", || {
        cb.state() == State::Closed
    });
}

/// Redis paused (SIGSTOP) then killed while calls go on: every call returns (run or
/// rejected on local state), nothing panics, the loss shows in `info()`, a local trip made
/// meanwhile is published when Redis is back, and a Redis restarted empty is seeded again.
#[test]
fn redis_paused_and_killed_mid_run() {
    let Some(mut server) = Server::start() else {
        return;
    };
    logs();
    let (sa, sb) = (store(&server.url()), store(&server.url()));
    let a = breaker("flaky", &sa, Duration::from_secs(60));
    let b = breaker("flaky", &sb, Duration::from_secs(60));
    wait_for("connected", || sa.is_connected() && sb.is_connected());

    // Calls on another thread the whole time; every one must come back.
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, answers) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let caller = {
        let (b, stop, calls, answers) = (b.clone(), stop.clone(), calls.clone(), answers.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                calls.fetch_add(1, Ordering::AcqRel);
                match b.call(|| Ok::<_, std::io::Error>(())) {
                    Ok(()) | Err(Error::Rejected(_)) => {
                        answers.fetch_add(1, Ordering::AcqRel);
                    }
                    Err(e) => panic!("{e:?}"),
                }
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };

    server.signal("-STOP");
    wait_for("both see the loss", || {
        a.info().store_connected == Some(false) && !sb.is_connected()
    });
    assert!(succeed(&a).is_ok(), "calls run on local state");
    let _ = fail(&a);
    assert_eq!(a.state(), State::Open, "trips on local state");
    assert_eq!(b.state(), State::Closed);
    server.signal("-CONT");
    wait_for("the local trip published: b opens", || {
        b.state() == State::Open
    });
    assert_eq!(a.info().store_connected, Some(true));

    let port = server.port;
    server.kill();
    wait_for("both see the loss", || {
        b.info().store_connected == Some(false) && !sa.is_connected()
    });
    assert!(
        matches!(succeed(&b), Err(Error::Rejected(_))),
        "still open locally"
    );
    let server = Server::on(port)
        .unwrap()
        .expect("redis-server again on its port");
    wait_for("both reconnected", || {
        sa.is_connected() && sb.is_connected()
    });
    let mut con = client(&server);
    wait_for("the empty Redis seeded with the fleet's open state", || {
        redis::cmd("HGET")
            .arg(sa.state_key("flaky"))
            .arg("s")
            .query::<Option<String>>(&mut con)
            .unwrap()
            .as_deref()
            == Some("open")
    });
    a.reset();
    wait_for("a reset reaches b", || b.state() == State::Closed);

    // Each store said it once per outage: two outages, two stores.
    wait_for(
        "one warning and one recovery line per store and outage",
        || count_logs(port, "fleet store reconnected") == 4,
    );
    assert_eq!(count_logs(port, "fleet store unreachable"), 4);

    stop.store(true, Ordering::Release);
    caller.join().expect("the calling thread never panics");
    assert_eq!(
        calls.load(Ordering::Acquire),
        answers.load(Ordering::Acquire)
    );
    assert!(answers.load(Ordering::Acquire) > 0);
}

/// Separate processes: two children (this test binary again, running `child_instance`)
/// attach to the fleet; the parent trips and each child sees its breaker open.
#[test]
fn separate_processes_follow_a_trip() {
    let Some(server) = Server::start() else {
        return;
    };
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<Child> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args(["child_instance", "--exact", "--ignored", "--nocapture"])
                .env("FLUXGATE_FLEET_URL", server.url())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in &mut children {
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.by_ref().map_while(Result::ok).any(|l| l == "ready");
        assert!(ready, "a child never became ready");
        // Keep reading, so that the child's output never meets a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
    }
    let s = store(&server.url());
    let cb = breaker("procs", &s, Duration::from_secs(60));
    let _ = fail(&cb);
    for mut child in children {
        assert!(
            child.wait().unwrap().success(),
            "a child did not see the trip"
        );
    }
}

/// The child of `separate_processes_follow_a_trip` (run only by it).
#[test]
#[ignore = "run as a child process by separate_processes_follow_a_trip"]
fn child_instance() {
    let url = std::env::var("FLUXGATE_FLEET_URL").expect("FLUXGATE_FLEET_URL");
    let s = store(&url);
    let cb = breaker("procs", &s, Duration::from_secs(60));
    wait_for("connected", || s.is_connected());
    assert_eq!(cb.state(), State::Closed);
    println!("ready");
    wait_for("the parent's trip", || cb.state() == State::Open);
}

/// Pub/sub is the fast path, polling the fallback: a state written without a message
/// (as if the message was lost) still reaches the instances within a poll.
#[test]
fn polling_brings_a_state_whose_message_was_lost() {
    let Some(server) = Server::start() else {
        return;
    };
    let s = store(&server.url());
    let cb = breaker("quiet", &s, Duration::from_secs(60));
    wait_for("connected", || s.is_connected());
    let mut con = client(&server);
    let key = s.state_key("quiet");
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg(&[
            "v",
            "9000000000000000",
            "s",
            "forced_open",
            "r",
            "0",
            "d",
            "-1",
        ])
        .query(&mut con)
        .unwrap();
    wait_for("the instance polls the new state", || {
        cb.state() == State::ForcedOpen
    });
}

/// Live instances keep their breakers' keys alive past `key_ttl`; once every instance is
/// gone, the keys expire.
#[test]
fn keys_expire_when_every_instance_is_gone() {
    let Some(server) = Server::start() else {
        return;
    };
    let ttl = Duration::from_millis(400);
    let make = || {
        RedisStore::builder(&server.url())
            .poll_interval(Duration::from_millis(50))
            .key_ttl(ttl)
            .build()
            .unwrap()
    };
    let (s1, s2) = (make(), make());
    let a = breaker("ephemeral", &s1, Duration::from_secs(60));
    let b = breaker("ephemeral", &s2, Duration::from_secs(60));
    a.force_open();
    wait_for("b follows", || b.state() == State::ForcedOpen);
    let mut con = client(&server);
    let key = s1.state_key("ephemeral");
    let exists = |con: &mut redis::Connection| -> bool {
        redis::cmd("EXISTS").arg(&key).query::<i64>(con).unwrap() == 1
    };
    // Three TTLs long, the key is there at every look: the instances refresh it.
    let until = Instant::now() + ttl * 3;
    while Instant::now() < until {
        assert!(exists(&mut con), "a live fleet's key expired");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop((a, b, s1, s2));
    wait_for("the key expires once every instance is gone", || {
        !exists(&mut con)
    });
}

/// Bad settings are a `ConfigError` naming the parameter and the value, at build time;
/// a URL's credentials never appear in it.
#[test]
fn bad_settings_are_config_errors() {
    let url = "redis://127.0.0.1:1/";
    let err = |b: fluxgate_redis::RedisStoreBuilder| b.build().unwrap_err().to_string();
    assert_eq!(
        err(RedisStore::builder(url).poll_interval(Duration::ZERO)),
        "RedisStore poll_interval must be > 0, got 0ns"
    );
    assert_eq!(
        err(RedisStore::builder(url).lease_ttl(Duration::ZERO)),
        "RedisStore lease_ttl must be > 0, got 0ns"
    );
    assert_eq!(
        err(RedisStore::builder(url).key_ttl(Duration::from_secs(1))),
        "RedisStore key_ttl must be > poll_interval, got 1s"
    );
    assert_eq!(
        err(RedisStore::builder(url).prefix("")),
        "RedisStore prefix must be not empty, got \"\""
    );
    let e = err(RedisStore::builder("postgres://admin:hunter2@db/"));
    assert!(e.starts_with("RedisStore url must be"), "{e}");
    assert!(!e.contains("hunter2"), "{e}");
    // A Redis that is not there is no error: the store connects in the background.
    let s = RedisStore::builder(url).build().unwrap();
    assert!(!s.is_connected());
}

/// Three instances race: calls with failures (trips), commands on every instance, the
/// store threads applying the fleet's state meanwhile. Nothing panics, and once the calls
/// stop every instance converges on the state Redis holds.
#[test]
fn racing_instances_converge_on_the_fleet_state() {
    let Some(server) = Server::start() else {
        return;
    };
    let stores: Vec<_> = (0..3).map(|_| store(&server.url())).collect();
    let fleet: Vec<_> = stores
        .iter()
        .map(|s| {
            CircuitBreaker::builder("race3")
                .tripper(FailureStreak::new(3))
                .retry(Cooldown::new(Duration::from_secs(60)))
                .store(s.clone())
                .build()
                .unwrap()
        })
        .collect();
    wait_for("connected", || stores.iter().all(RedisStore::is_connected));
    let callers: Vec<_> = fleet
        .iter()
        .enumerate()
        .map(|(i, cb)| {
            let cb = cb.clone();
            std::thread::spawn(move || {
                for n in 0..3_000u32 {
                    let _ = if (n * 7 + i as u32) % 11 < 4 {
                        fail(&cb)
                    } else {
                        succeed(&cb)
                    };
                    match (n % 600, i) {
                        (100, 0) => cb.force_open(),
                        (200, 1) => cb.reset(),
                        (300, 2) => cb.metrics_only(),
                        (400, 0) => cb.reset(),
                        (500, 1) => cb.disable(),
                        (599, 2) => cb.reset(),
                        _ => {}
                    }
                    if n % 20 == 0 {
                        // Let the store's deliveries interleave with the calls.
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            })
        })
        .collect();
    for c in callers {
        c.join().expect("no caller panics");
    }
    let mut con = client(&server);
    let key = stores[0].state_key("race3");
    wait_for("every instance in the state Redis holds", || {
        let fleet_state: Option<String> = redis::cmd("HGET")
            .arg(&key)
            .arg("s")
            .query(&mut con)
            .unwrap();
        let fleet_state = fleet_state.as_deref().and_then(State::from_name);
        fleet.iter().all(|cb| Some(cb.state()) == fleet_state)
    });
}

/// Records what `on_store_connection` says.
#[derive(Clone, Default)]
struct Connection(Arc<std::sync::Mutex<Vec<bool>>>);

impl fluxgate_core::listeners::Listener for Connection {
    fn on_signal(
        &self,
        _: &fluxgate_core::Signal,
    ) -> Result<(), fluxgate_core::listeners::ListenerError> {
        Ok(())
    }
    fn on_store_connection(&self, circuit_name: &str, connected: bool) {
        assert_eq!(circuit_name, "watched");
        self.0.lock().unwrap().push(connected);
    }
}

impl Connection {
    fn seen(&self) -> Vec<bool> {
        self.0.lock().unwrap().clone()
    }
}

#[test]
fn listeners_hear_the_store_go_and_come_back_once_each() {
    let Some(server) = Server::start() else {
        return;
    };
    let s = store(&server.url());
    let heard = Connection::default();
    let cb = CircuitBreaker::builder("watched")
        .store(s.clone())
        .listener(heard.clone())
        .build()
        .unwrap();
    wait_for("connected", || s.is_connected());
    // At attach the store may not have connected yet: [false, true] or [true].
    wait_for("told it is connected", || {
        heard.seen().last() == Some(&true)
    });
    let before = heard.seen().len();
    server.signal("-STOP");
    wait_for("told of the loss", || heard.seen().last() == Some(&false));
    server.signal("-CONT");
    wait_for("told of the return", || heard.seen().last() == Some(&true));
    let seen = heard.seen();
    assert_eq!(seen[before..], [false, true], "once each: {seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] != w[1]),
        "no repeats: {seen:?}"
    );
    drop(cb);
}

/// Keys of the prefix written by something else than this crate: a hash with values that
/// are not numbers or names, a bytes-valued state, a string where the hash belongs and a
/// string where the lease set belongs. The old scripts failed on them, and the worker took
/// the failure of one breaker's key for a lost connection: every breaker of the store was
/// cut off the fleet, reconnecting about 20 times a second for good.
#[test]
fn keys_written_by_others_read_as_no_state_and_the_next_write_replaces_them() {
    let Some(server) = Server::start() else {
        return;
    };
    logs();
    let mut con = client(&server);
    let garbage: [(&str, &[&[u8]]); 2] = [
        (
            "fluxgate:{nums}",
            &[b"v", b"garbage", b"s", b"open", b"r", b"-1", b"d", b"abc"],
        ),
        (
            "fluxgate:{bytes}",
            &[b"v", b"5", b"s", b"\xff\xfe", b"r", b"1e300"],
        ),
    ];
    for (key, fields) in garbage {
        let _: () = redis::cmd("HSET")
            .arg(key)
            .arg(fields)
            .query(&mut con)
            .unwrap();
    }
    for key in ["fluxgate:{typo}", "fluxgate:{nums}:probes"] {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg("text")
            .query(&mut con)
            .unwrap();
    }
    let (sa, sb) = (store(&server.url()), store(&server.url()));
    let names = ["nums", "bytes", "typo", "good"];
    let a: Vec<_> = names
        .iter()
        .map(|n| breaker(n, &sa, Duration::from_secs(60)))
        .collect();
    let b: Vec<_> = names
        .iter()
        .map(|n| breaker(n, &sb, Duration::from_secs(60)))
        .collect();
    wait_for("connected", || sa.is_connected() && sb.is_connected());
    // Each breaker, foreign key or not, trips on one instance and the other follows:
    // the write replaced what was there.
    for (i, name) in names.iter().enumerate() {
        let _ = fail(&a[i]);
        wait_for(&format!("{name}: b follows a's trip"), || {
            b[i].state() == State::Open
        });
        let s: Option<String> = redis::cmd("HGET")
            .arg(format!("fluxgate:{{{name}}}"))
            .arg("s")
            .query(&mut con)
            .unwrap();
        assert_eq!(s.as_deref(), Some("open"), "{name}");
    }
    for cb in a.iter().chain(&b) {
        assert_eq!(cb.info().store_connected, Some(true), "{}", cb.name());
    }
    assert_eq!(count_logs(server.port, "unreachable"), 0);
    assert_eq!(count_logs(server.port, "cannot sync"), 0);
}

/// A breaker whose own keys Redis refuses (here an ACL that allows one breaker's keys
/// only; in practice e.g. a cluster node that does not own its slot) is cut off alone,
/// with one log line: the others keep syncing on the same connection.
#[test]
fn a_breaker_whose_keys_are_refused_is_cut_off_alone() {
    let Some(server) = Server::start() else {
        return;
    };
    logs();
    let mut con = client(&server);
    let _: () = redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "limited",
            "on",
            ">pw",
            "~fluxgate:{good}*",
            "&fluxgate:changes",
            "+@all",
        ])
        .query(&mut con)
        .unwrap();
    let url = format!("redis://limited:pw@127.0.0.1:{}/", server.port);
    let (sa, sb) = (store(&url), store(&url));
    let refused = breaker("refused", &sa, Duration::from_secs(60));
    let good_a = breaker("good", &sa, Duration::from_secs(60));
    let good_b = breaker("good", &sb, Duration::from_secs(60));
    wait_for("connected", || sa.is_connected() && sb.is_connected());
    wait_for("the refused breaker shown cut off", || {
        refused.info().store_connected == Some(false)
    });
    let _ = fail(&refused);
    let _ = fail(&good_a);
    wait_for("b follows a's trip on the same connection", || {
        good_b.state() == State::Open
    });
    assert!(sa.is_connected() && sb.is_connected());
    assert_eq!(good_a.info().store_connected, Some(true));
    assert_eq!(refused.state(), State::Open, "trips on local state");
    // A later round: `good` is reset on a and b follows; `refused` stays cut off and
    // is logged once.
    good_a.reset();
    wait_for("b follows a's reset", || good_b.state() == State::Closed);
    assert_eq!(refused.info().store_connected, Some(false));
    assert_eq!(count_logs(server.port, "cannot sync this breaker"), 1);
    assert_eq!(count_logs(server.port, "unreachable"), 0);
}
