//! The one-command demo, run for a few seconds in-process: it serves `/metrics` and
//! `/status` (with `--circuits` idle circuits) over real
//! HTTP while it runs, prints every transition of the core cycle, ends on its own and
//! writes its timeline picture.

use fluxgate::State;
use fluxgate_demo as demo;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A `Write` the test can read while the demo writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A plain HTTP/1.0 GET; returns the status line and the body.
fn http_get(addr: SocketAddr, path: &str) -> io::Result<(String, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.lines().next().unwrap_or_default().to_owned();
    Ok((status, body.to_owned()))
}

/// The address the demo printed (`metrics: http://ADDR/metrics`).
fn printed_addr(output: &str) -> Option<SocketAddr> {
    output
        .lines()
        .find_map(|l| l.strip_prefix("metrics: http://"))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .and_then(|a| a.parse().ok())
}

#[test]
fn demo_serves_metrics_prints_the_whole_cycle_and_draws_the_timeline() {
    let out = Captured::default();
    let svg: PathBuf =
        std::env::temp_dir().join(format!("fluxgate-demo-{}.svg", std::process::id()));
    let _ = std::fs::remove_file(&svg);
    let opts = demo::Options {
        duration: Duration::from_secs(6),
        addr: "127.0.0.1:0".into(),
        svg: svg.clone(),
        circuits: 25,
        out: Box::new(out.clone()),
        ..demo::Options::new()
    };
    let run = thread::spawn(move || demo::run(opts).map_err(|e| e.to_string()));

    // While it runs: the printed address serves the three breakers' series.
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        if let Some(addr) = printed_addr(&out.text()) {
            break addr;
        }
        assert!(
            Instant::now() < deadline && !run.is_finished(),
            "no metrics address printed:\n{}",
            out.text()
        );
        thread::sleep(Duration::from_millis(20));
    };
    let (status, body) = http_get(addr, "/metrics").expect("GET /metrics while the demo runs");
    assert!(status.contains(" 200"), "{status}\n{body}");
    for name in ["payment_api", "inventory_api", "search_api"] {
        assert!(
            body.contains(&format!(
                r#"circuit_breaker_state{{circuit_name="{name}",state="closed"}}"#
            )),
            "{name} missing from /metrics:\n{body}"
        );
    }
    assert!(
        body.contains("circuit_breaker_state_transition_total{"),
        "{body}"
    );
    // The idle circuits share the listener.
    assert!(
        body.contains(r#"circuit_breaker_state{circuit_name="idle_00024",state="closed"} 1"#),
        "{body}"
    );
    // The status page and its data: the three breakers and the idle circuits.
    assert!(
        out.text()
            .contains(&format!("status:  http://{addr}/status"))
    );
    let (status, page) = http_get(addr, "/status").expect("GET /status");
    assert!(status.contains(" 200"), "{status}");
    assert!(page.contains("fetch('status.json'"), "{page}");
    let (status, json) = http_get(addr, "/status.json").expect("GET /status.json");
    assert!(status.contains(" 200"), "{status}\n{json}");
    for name in [
        "payment_api",
        "inventory_api",
        "search_api",
        "idle_00000",
        "idle_00024",
    ] {
        assert!(
            json.contains(&format!(r#""name":"{name}""#)),
            "{name}: {json}"
        );
    }
    assert_eq!(json.matches(r#""name":"#).count(), 3 + 25, "{json}");

    let report = run
        .join()
        .expect("the demo thread panicked")
        .expect("the demo failed");
    let text = out.text();

    // Every transition of the core cycle was printed, re-trip included.
    for arrow in [
        "closed → open",
        "open → half_open",
        "half_open → closed",
        "half_open → open",
    ] {
        assert!(text.contains(arrow), "no `{arrow}` printed:\n{text}");
        let (from, to) = arrow.split_once(" → ").unwrap();
        assert!(
            report
                .transitions
                .iter()
                .any(|t| t.from.as_str() == from && t.to.as_str() == to),
            "no {arrow} in the report"
        );
    }
    // No flapping: `search_api` judges ten probes (`Probes`) before it closes, so it never
    // closes and trips again in a row (with the default recovery, one lucky probe in the
    // slow phase closed it and the slow calls tripped it again within 100 ms).
    let search: Vec<_> = report
        .transitions
        .iter()
        .filter(|t| t.circuit == "search_api")
        .collect();
    for pair in search.windows(2) {
        assert!(
            !(pair[0].from == State::HalfOpen
                && pair[0].to == State::Closed
                && pair[1].to == State::Open),
            "search_api flapped: {pair:?}"
        );
    }
    // In the slow phase (45 % … 65 % of the run) its probes are slow: it never closes.
    let (slow_from, slow_to) = (
        Duration::from_millis(6 * 450 + 200),
        Duration::from_millis(6 * 650),
    );
    assert!(
        !search
            .iter()
            .any(|t| t.to == State::Closed && (slow_from..slow_to).contains(&t.at)),
        "search_api closed in the slow phase: {search:?}"
    );
    // Status lines and the closing summary.
    assert!(text.contains("last 1s:"), "{text}");
    assert!(text.contains("── done after"), "{text}");
    assert!(report.calls > 0);
    assert_eq!(report.metrics_addr, addr);

    // The picture: an SVG with the three panels.
    let picture = std::fs::read_to_string(&report.svg).expect("the timeline SVG was written");
    assert!(picture.contains("<svg"), "not an SVG");
    for name in ["payment_api", "inventory_api", "search_api"] {
        assert!(picture.contains(name), "{name} missing from the picture");
    }
    let _ = std::fs::remove_file(&svg);

    // The server was shut down with the run.
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err()
            || http_get(addr, "/metrics").is_err()
    );
}

#[test]
fn demo_arguments() {
    let args = |a: &[&str]| demo::Options::from_args(a.iter().map(|s| s.to_string()));
    let o = args(&["--seconds", "5", "--addr", "127.0.0.1:0", "--svg", "t.svg"]).unwrap();
    assert_eq!(o.duration, Duration::from_secs(5));
    assert_eq!(o.addr, "127.0.0.1:0");
    assert_eq!(o.svg, PathBuf::from("t.svg"));
    let d = args(&[]).unwrap();
    assert_eq!(
        (d.duration, d.addr.as_str()),
        (Duration::from_secs(60), "127.0.0.1:8000")
    );
    assert!(args(&["--seconds", "0"]).is_err());
    assert!(args(&["--seconds"]).is_err());
    assert!(args(&["--bogus"]).is_err());
    assert_eq!(args(&["--circuits", "10000"]).unwrap().circuits, 10_000);
    assert_eq!(d.circuits, 0);
    assert!(args(&["--circuits", "-1"]).is_err());
    assert!(args(&["--circuits", "many"]).is_err());
    assert!(args(&["--circuits", "2000000"]).is_err());
}

#[test]
fn demo_config_argument() {
    let args = |a: &[&str]| demo::Options::from_args(a.iter().map(|s| s.to_string()));
    assert_eq!(args(&[]).unwrap().config, None);
    assert_eq!(
        args(&["--config", "b.yaml"]).unwrap().config,
        Some(PathBuf::from("b.yaml"))
    );
    assert!(args(&["--config"]).is_err());
}

#[test]
fn the_shipped_breakers_file_is_the_demo_s_configuration_scaled_to_the_run() {
    use fluxgate::config::{PermitConfig, RecoveryConfig, RetryConfig, WindowConfig};

    // The file as shipped, for one minute: exactly what it says.
    let minute = demo::load_config(None, demo::CONFIG_RUN).unwrap();
    assert_eq!(
        minute.names().collect::<Vec<_>>(),
        ["inventory_api", "payment_api", "search_api"]
    );
    assert_eq!(
        minute,
        fluxgate::config::Config::from_toml_str(demo::BREAKERS_TOML).unwrap()
    );

    // Six seconds: every wait a tenth, counts unchanged.
    let short = demo::load_config(None, Duration::from_secs(6)).unwrap();
    let payment = short.breaker("payment_api").unwrap();
    assert_eq!(
        payment.retry,
        RetryConfig::Cooldown {
            duration: Duration::from_millis(300),
            jitter: 0.0
        }
    );
    assert!(
        matches!(payment.permit, PermitConfig::RampUp { duration, .. } if duration == Duration::from_secs(1))
    );
    assert_eq!(payment.recovery, RecoveryConfig::Successes(240));
    let inventory = short.breaker("inventory_api").unwrap();
    assert!(matches!(
        inventory.retry,
        RetryConfig::Backoff { initial, max, .. }
            if (initial, max) == (Duration::from_millis(200), Duration::from_secs(1))
    ));
    let search = short.breaker("search_api").unwrap();
    assert_eq!(search.window, WindowConfig::Time(Duration::from_secs(1)));
    assert!(
        search.tripper.to_string().contains("SlowRate(0.5, 40ms)"),
        "{}",
        search.tripper
    );

    // Another file, by path: errors name it.
    let dir = std::env::temp_dir().join(format!("fluxgate-demo-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("breakers.toml");
    std::fs::write(
        &path,
        "[breakers.search_api]\nwindow = { type = \"time\", duration = \"5 parsecs\" }\n",
    )
    .unwrap();
    let err = demo::load_config(Some(&path), demo::CONFIG_RUN)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(&path.display().to_string()), "{err}");
    assert!(
        err.contains("breaker \"search_api\", field window.duration"),
        "{err}"
    );
    std::fs::write(&path, "[breakers.search_api]\nstate = \"forced_open\"\n").unwrap();
    let other = demo::load_config(Some(&path), Duration::from_secs(6)).unwrap();
    assert_eq!(other.names().collect::<Vec<_>>(), ["search_api"]);
    let _ = std::fs::remove_dir_all(&dir);
}
