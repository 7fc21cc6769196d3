//! The status endpoints: `/status.json` (every breaker's state, rates and retry time, R-6
//! escaping, rendered at most once a second) and `/status` (one self-contained page),
//! served next to `/metrics`; and the page rendered by a real browser (headless
//! chromium), before and after a breaker opens.

#![cfg(feature = "prometheus")]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::prometheus::{TempDir, http_get, raw_request};
use fluxgate::CircuitBreaker;
use fluxgate::listeners::prometheus::{
    BreakerStatus, MetricsServer, PrometheusListener, STATUS_PAGE, StatusSource,
};
use fluxgate::retries::Cooldown;
use fluxgate::trippers::FailureStreak;
use prometheus::Registry;
use serde_json::Value;

fn breaker(name: &str, listener: &PrometheusListener) -> Arc<CircuitBreaker> {
    Arc::new(
        CircuitBreaker::builder(name)
            .tripper(FailureStreak::new(3))
            .retry(Cooldown::new(Duration::from_secs(60)))
            .listener(listener.clone())
            .build()
            .unwrap(),
    )
}

fn fail(cb: &CircuitBreaker) {
    let _ = cb.call(|| Err::<(), _>(std::io::Error::other("down")));
}

fn succeed(cb: &CircuitBreaker) {
    cb.call(|| Ok::<_, std::io::Error>(())).unwrap();
}

fn json(server: &MetricsServer) -> Value {
    let response = http_get(server.local_addr(), "/status.json").unwrap();
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.header("content-type"), Some("application/json"));
    serde_json::from_str(&response.body).unwrap()
}

fn by_name<'a>(document: &'a Value, name: &str) -> &'a Value {
    document["breakers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .unwrap_or_else(|| panic!("{name} not in {document}"))
}

#[test]
fn status_json_lists_every_breaker_with_its_state_rates_and_retry_time() {
    let registry = Registry::new();
    let listener = PrometheusListener::with_registry(&registry).unwrap();
    let payment = breaker("payment_api", &listener);
    let inventory = breaker("inventory_api", &listener);
    let hostile = breaker("</script><img src=x onerror=alert(1)>\u{7}\"", &listener);
    succeed(&inventory);
    fail(&inventory);
    let before = std::time::SystemTime::now();
    for _ in 0..3 {
        fail(&payment);
    }
    assert_eq!(payment.state(), fluxgate::State::Open);
    let server = MetricsServer::builder("127.0.0.1:0")
        .registry(&registry)
        .status(vec![
            Arc::clone(&payment),
            Arc::clone(&inventory),
            Arc::clone(&hostile),
        ])
        .start()
        .unwrap();
    let document = json(&server);
    let generated = document["generated_ms"].as_u64().unwrap();
    let open = by_name(&document, "payment_api");
    assert_eq!(open["state"], "open");
    let retry = open["retry_after"].as_f64().unwrap();
    assert!(retry > 0.0 && retry <= 60.0, "{open}");
    let since = open["since_ms"].as_u64().unwrap();
    let before_ms = before
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(since >= before_ms && since <= generated, "{open}");
    let closed = by_name(&document, "inventory_api");
    assert_eq!(closed["state"], "closed");
    assert_eq!(closed["retry_after"], Value::Null);
    assert_eq!(
        (closed["calls"].as_u64(), closed["failures"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(closed["failure_rate"].as_f64(), Some(0.5));
    assert_eq!(closed["reopens"].as_u64(), Some(0));
    assert!(closed["slow_rates"].as_array().unwrap().is_empty());
    // R-6: the name comes back intact, and the raw body holds no markup.
    by_name(&document, "</script><img src=x onerror=alert(1)>\u{7}\"");
    let raw = http_get(server.local_addr(), "/status.json").unwrap().body;
    assert!(!raw.contains('<') && !raw.contains('\u{7}'), "{raw}");
    // The same breakers as the metrics show.
    let metrics = http_get(server.local_addr(), "/metrics").unwrap().body;
    assert!(
        metrics.contains(r#"circuit_breaker_state{circuit_name="payment_api",state="open"} 1"#)
    );
    server.shutdown();
}

#[test]
fn r5_a_flood_of_status_requests_renders_the_source_at_most_once_a_second() {
    let renders = Arc::new(AtomicUsize::new(0));
    let cb = CircuitBreaker::builder("flooded").build().unwrap();
    let source = {
        let renders = Arc::clone(&renders);
        move || {
            renders.fetch_add(1, Ordering::SeqCst);
            cb.statuses()
        }
    };
    let server = MetricsServer::builder("127.0.0.1:0")
        .registry(&Registry::new())
        .status(source)
        .start()
        .unwrap();
    let started = Instant::now();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let addr = server.local_addr();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    assert_eq!(http_get(addr, "/status.json").unwrap().status, 200);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let seconds = started.elapsed().as_secs() as usize;
    let renders = renders.load(Ordering::SeqCst);
    assert!(
        renders <= seconds + 2,
        "{renders} renders for 200 requests in {seconds} s"
    );
    server.shutdown();
}

#[test]
fn the_status_page_is_one_self_contained_document() {
    let cb = CircuitBreaker::builder("page").build().unwrap();
    let server = MetricsServer::builder("127.0.0.1:0")
        .registry(&Registry::new())
        .status(cb)
        .start()
        .unwrap();
    let page = http_get(server.local_addr(), "/status").unwrap();
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let policy = page.header("content-security-policy").unwrap();
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    assert_eq!(page.body, STATUS_PAGE);
    // No external asset: no link, no src, no absolute URL; names only ever as text.
    for needle in [
        "<link",
        " src=",
        "http://",
        "https://",
        "innerHTML",
        "insertAdjacentHTML",
    ] {
        assert!(!page.body.contains(needle), "the page contains {needle}");
    }
    assert!(page.body.contains("name=\"viewport\""));
    let head = raw_request(
        server.local_addr(),
        b"HEAD /status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    let post = raw_request(
        server.local_addr(),
        b"POST /status.json HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(post.status, 405);
    server.shutdown();
}

#[test]
fn without_a_status_source_the_status_routes_do_not_exist() {
    let server = MetricsServer::builder("127.0.0.1:0")
        .registry(&Registry::new())
        .start()
        .unwrap();
    for path in ["/status", "/status.json"] {
        assert_eq!(
            http_get(server.local_addr(), path).unwrap().status,
            404,
            "{path}"
        );
    }
    assert_eq!(
        http_get(server.local_addr(), "/metrics").unwrap().status,
        200
    );
    server.shutdown();
}

#[test]
fn a_panicking_source_is_a_500_and_the_server_keeps_serving() {
    let server = MetricsServer::builder("127.0.0.1:0")
        .registry(&Registry::new())
        .status(|| -> Vec<BreakerStatus> { panic!("the source failed") })
        .start()
        .unwrap();
    let response = http_get(server.local_addr(), "/status.json").unwrap();
    assert_eq!(response.status, 500, "{}", response.body);
    assert!(
        response.body.starts_with("cannot encode the status"),
        "{}",
        response.body
    );
    assert_eq!(
        http_get(server.local_addr(), "/metrics").unwrap().status,
        200
    );
    assert_eq!(
        http_get(server.local_addr(), "/status").unwrap().status,
        200
    );
    server.shutdown();
}

// ---------------------------------------------------------------------------------------
// In a real browser.

/// Headless chromium, or `None` after a loud message; panics under `CI=true` (`.ci/run`
/// installs Debian's `chromium`).
fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.is_file());
    if found.is_none() {
        let message = "`chromium` is not installed (Debian: apt-get install -y chromium; \
                       .ci/run installs it); the status page cannot be checked in a browser";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}");
        }
        eprintln!("\n==================== SKIPPED ====================\n{message}\n");
    }
    found
}

/// The DOM of `url` after its scripts ran, as headless chromium serialises it.
fn dump_dom(chromium: &PathBuf, profile: &TempDir, url: &str) -> String {
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || std::io::read_to_string(stdout).unwrap_or_default());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("chromium runs").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// `(name as serialised, state)` of every tile in the dumped DOM.
fn tiles(dom: &str) -> Vec<(String, String)> {
    dom.split("<article ")
        .skip(1)
        .filter_map(|tile| {
            let state = tile.split("data-state=\"").nth(1)?.split('"').next()?;
            let class = tile.split("class=\"").nth(1)?.split('"').next()?;
            assert_eq!(class, format!("tile s-{state}"), "{tile}");
            let name = tile
                .split("<h2 class=\"name\">")
                .nth(1)?
                .split("</h2>")
                .next()?;
            Some((name.to_owned(), state.to_owned()))
        })
        .collect()
}

/// Dumps the page until `done` holds for its tiles (`/status.json` is shared for up to a
/// second, and a refresh takes two), within a bounded number of attempts.
fn tiles_until(
    chromium: &PathBuf,
    profile: &TempDir,
    url: &str,
    done: impl Fn(&[(String, String)]) -> bool,
) -> (Vec<(String, String)>, String) {
    let mut last = (Vec::new(), String::new());
    for _ in 0..5 {
        let dom = dump_dom(chromium, profile, url);
        let found = tiles(&dom);
        if done(&found) {
            return (found, dom);
        }
        last = (found, dom);
    }
    panic!(
        "the page never showed the expected tiles: {:?}\n{}",
        last.0, last.1
    );
}

#[test]
fn the_status_page_renders_tiles_in_a_real_browser_and_follows_a_trip() {
    let Some(chromium) = chromium() else {
        return;
    };
    let registry = Registry::new();
    let listener = PrometheusListener::with_registry(&registry).unwrap();
    let payment = breaker("payment_api", &listener);
    let inventory = breaker("inventory_api", &listener);
    let hostile = breaker("<b id=\"pwn\">x</b>\u{7}", &listener);
    let search = breaker("search_api", &listener);
    search.force_open();
    let server = MetricsServer::builder("127.0.0.1:0")
        .registry(&registry)
        .status(vec![
            Arc::clone(&payment),
            Arc::clone(&inventory),
            Arc::clone(&hostile),
            Arc::clone(&search),
        ])
        .start()
        .unwrap();
    let url = format!("http://{}/status", server.local_addr());
    let profile = TempDir::new("chromium-profile");
    let (first, dom) = tiles_until(&chromium, &profile, &url, |t| t.len() == 4);
    // Open ones first, then by name; names as text, control characters made visible.
    assert_eq!(
        first,
        [
            ("search_api".to_owned(), "forced_open".to_owned()),
            (
                "&lt;b id=\"pwn\"&gt;x&lt;/b&gt;\\u{7}".to_owned(),
                "closed".to_owned()
            ),
            ("inventory_api".to_owned(), "closed".to_owned()),
            ("payment_api".to_owned(), "closed".to_owned()),
        ]
    );
    assert!(
        !dom.contains("<b id=\"pwn\">"),
        "markup from a name reached the DOM"
    );
    assert!(dom.contains("data-state=\"forced_open\""), "{dom}");

    // The breaker trips: a fresh page shows its tile open (red), first.
    for _ in 0..3 {
        fail(&payment);
    }
    assert_eq!(payment.state(), fluxgate::State::Open);
    let (after, dom) = tiles_until(&chromium, &profile, &url, |t| {
        t.iter()
            .any(|(name, state)| name == "payment_api" && state == "open")
    });
    assert_eq!(after[0], ("payment_api".to_owned(), "open".to_owned()));
    let tile = dom
        .split("<article ")
        .find(|tile| tile.contains(">payment_api<"))
        .unwrap();
    assert!(tile.contains("class=\"tile s-open\""), "{tile}");
    assert!(tile.contains("retry in"), "{tile}");
    server.shutdown();
}

#[test]
fn a_retry_time_read_while_the_breaker_was_open_is_not_shown_for_a_closed_snapshot() {
    // `of` reads `info()` and `retry_after()` one after the other: a breaker tripped and
    // reset in between gave a closed tile with "retry in 60s" (the JSON promises
    // `retry_after` is null unless the breaker is open).
    let cb = CircuitBreaker::builder("flapping")
        .tripper(FailureStreak::new(1))
        .retry(Cooldown::new(Duration::from_secs(60)))
        .build()
        .unwrap();
    let closed = cb.info();
    fail(&cb);
    let retry = cb.retry_after();
    assert!(retry.is_some());
    let status = BreakerStatus::from_info(&closed, retry);
    assert_eq!(status.retry_after, None);
    let status = BreakerStatus::from_info(&cb.info(), retry);
    assert_eq!(status.retry_after, retry);
}
