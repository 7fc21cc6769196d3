//! The Slack listener (SL-1 … SL-5) against a local server that answers like Slack.
//!
//! Signals are fed straight to the listener here, through its sync face (`Listener`) and
//! its async face (`AsyncListener`); `breaker.rs` drives it through real breakers.

#![cfg(feature = "slack")]

use crate::support::slack as slack_support;

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::logs::Logs;
use State::{Closed, Disabled, ForcedOpen, HalfOpen, MetricsOnly, Open};
use fluxgate::listeners::slack::{SlackListener, Template};
use fluxgate::listeners::{AsyncListener, Listener};
use fluxgate::{Signal, State};
use slack_support::{DEADLINE, Reply, SlackServer};

const TOKEN: &str = "xoxb-test-secret-token";
const CHANNEL: &str = "C0123456789";

fn at() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn sig(name: &str, old: State, new: State) -> Signal {
    Signal::new(name, old, new, at())
}

fn listener(server: &SlackServer) -> SlackListener {
    SlackListener::builder(CHANNEL, TOKEN)
        .api_base(server.api_base())
        .build()
        .unwrap()
}

/// Feeds the signals and waits (bounded) until all of them were handled.
fn send(slack: &SlackListener, signals: &[Signal]) {
    for s in signals {
        Listener::on_signal(slack, s).unwrap();
    }
    assert!(slack.flush(DEADLINE), "messages still pending");
}

// SL-1: chat.postMessage, bearer token, JSON body {channel, attachments:[{color, blocks}]}.
#[test]
fn sl1_posts_chat_post_message_with_bearer_token_and_attachment() {
    let server = SlackServer::start();
    let slack = listener(&server);
    send(&slack, &[sig("payment_api", Closed, Open)]);

    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/api/chat.postMessage");
    assert_eq!(
        r.header("authorization"),
        Some("Bearer xoxb-test-secret-token")
    );
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("application/json")
    );
    assert_eq!(r.body["channel"], CHANNEL);
    assert_eq!(r.body["attachments"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.color(), "#FF4C4C");
    let blocks = r.attachment()["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0]["type"], "section");
    assert_eq!(blocks[0]["text"]["type"], "mrkdwn");
    assert_eq!(r.title(), "*🚨 Circuit Breaker Triggered*");
    assert_eq!(blocks[1]["type"], "section");
    assert_eq!(
        r.fields(),
        [
            "*Circuit Breaker:*\npayment_api",
            "*State Transition:*\nclosed → open",
            "*Transition Time:*\n<!date^1700000000^{date_num} {time_secs}|2023-11-14 22:13:20 UTC>",
            "*Description:*\nThe request failure rate exceeded the threshold.",
        ]
    );
    assert!(r.body.get("thread_ts").is_none());
    assert!(r.body.get("reply_broadcast").is_none());
}

// SL-1: a circuit name is shown as written, never interpreted as Slack markup.
#[test]
fn sl1_circuit_name_is_escaped() {
    let server = SlackServer::start();
    let slack = listener(&server);
    send(&slack, &[sig("<!channel> & co", Closed, Disabled)]);
    let r = &server.requests()[0];
    assert_eq!(r.field("Circuit Breaker"), "&lt;!channel&gt; &amp; co");
}

// a control character in a name cannot start a line of its own in the post.
#[test]
fn r6_control_characters_in_a_name_are_escaped_in_the_post() {
    let server = SlackServer::start();
    let slack = listener(&server);
    send(
        &slack,
        &[sig("tenant\n*FAKE ALERT*\u{1b}[31m", Closed, Open)],
    );
    let r = &server.requests()[0];
    assert_eq!(
        r.field("Circuit Breaker"),
        "tenant\\n*FAKE ALERT*\\u{1b}[31m"
    );
    let fallback = r.body["attachments"][0]["fallback"].as_str().unwrap();
    assert!(!fallback.contains('\n'), "{fallback}");
}

fn expected_template(old: State, new: State) -> (&'static str, &'static str, &'static str) {
    match (old, new) {
        (Closed, Open) => (
            "🚨 Circuit Breaker Triggered",
            "#FF4C4C",
            "The request failure rate exceeded the threshold.",
        ),
        (Open, HalfOpen) => (
            "🔄 Attempting Circuit Breaker Recovery",
            "#FFA500",
            "Testing service status with partial requests.",
        ),
        (HalfOpen, Open) => (
            "⚠️ Circuit Breaker Re-triggered",
            "#FF4C4C",
            "Test request failed, reverting to open state.",
        ),
        (HalfOpen, Closed) => (
            "✅ Circuit Breaker Recovered",
            "#36a64f",
            "Test request succeeded, service is now healthy.",
        ),
        _ => (
            "ℹ️ Circuit Breaker State Changed",
            "#808080",
            "Circuit breaker state has been changed.",
        ),
    }
}

// SL-2: title, colour and description for each of the 36 pairs.
#[test]
fn sl2_payload_per_template_for_every_pair() {
    let server = SlackServer::start();
    let slack = listener(&server);
    let mut signals = Vec::new();
    for old in State::ALL {
        for new in State::ALL {
            // One circuit per pair, so no thread from an earlier pair is involved.
            signals.push(sig(&format!("{old}-{new}"), old, new));
        }
    }
    send(&slack, &signals);
    let requests = server.requests();
    assert_eq!(requests.len(), 36);
    for (r, s) in requests.iter().zip(&signals) {
        let (title, color, description) = expected_template(s.old_state, s.new_state);
        assert_eq!(r.title(), format!("*{title}*"), "{s:?}");
        assert_eq!(r.color(), color, "{s:?}");
        assert_eq!(r.field("Description"), description, "{s:?}");
        assert_eq!(
            r.field("State Transition"),
            format!("{} → {}", s.old_state, s.new_state)
        );
        assert_eq!(r.field("Circuit Breaker"), &*s.circuit_name);
        let (t, c, d) = expected_template(s.old_state, s.new_state);
        let built_in = Template::for_transition(s.old_state, s.new_state);
        assert_eq!(
            (built_in.title(), built_in.color(), built_in.description()),
            (t, c, d)
        );
    }
}

// SL-2: templates are replaceable per pair, and the fallback for all other pairs.
#[test]
fn sl2_templates_are_replaceable() {
    let server = SlackServer::start();
    let slack = SlackListener::builder(CHANNEL, TOKEN)
        .api_base(server.api_base())
        .template(
            Closed,
            Open,
            Template::new("<!here> tripped", "danger", "Runbook: <https://wiki/x|x>"),
        )
        .template(
            Closed,
            ForcedOpen,
            Template::new("Forced", "#000000", "By an operator."),
        )
        .fallback_template(Template::new("Changed", "#CCCCCC", "Something changed."))
        .build()
        .unwrap();
    send(
        &slack,
        &[
            sig("a", Closed, Open),
            sig("b", Closed, ForcedOpen),
            sig("c", Closed, Disabled),
            sig("d", HalfOpen, Closed),
        ],
    );
    let r = server.requests();
    assert_eq!(
        (r[0].title(), r[0].color()),
        ("*<!here> tripped*", "danger")
    );
    assert_eq!(r[0].field("Description"), "Runbook: <https://wiki/x|x>");
    assert_eq!((r[1].title(), r[1].color()), ("*Forced*", "#000000"));
    assert_eq!((r[2].title(), r[2].color()), ("*Changed*", "#CCCCCC"));
    assert_eq!(r[2].field("Description"), "Something changed.");
    // Pairs not replaced keep their built-in template.
    assert_eq!(r[3].title(), "*✅ Circuit Breaker Recovered*");
}

/// (thread_ts, reply_broadcast) of each request.
fn placements(requests: &[slack_support::Received]) -> Vec<(Option<String>, bool)> {
    requests
        .iter()
        .map(|r| (r.thread_ts().map(str::to_owned), r.broadcast()))
        .collect()
}

// SL-3: trip starts a thread; half-open and re-trip reply in it; recovery is a broadcast
// reply that ends it; the next trip starts a new thread.
#[test]
fn sl3_thread_lifecycle_trip_retrip_recover_and_new_thread() {
    let server = SlackServer::start();
    let slack = listener(&server);
    send(
        &slack,
        &[
            sig("db", Closed, Open),
            sig("db", Open, HalfOpen),
            sig("db", HalfOpen, Open),
            sig("db", Open, HalfOpen),
            sig("db", HalfOpen, Closed),
            sig("db", Closed, Open),
            sig("db", Open, HalfOpen),
        ],
    );
    let r = server.requests();
    let first = r[0].ts.clone().unwrap();
    let second = r[5].ts.clone().unwrap();
    assert_ne!(first, second);
    let some = |ts: &String| Some(ts.clone());
    assert_eq!(
        placements(&r),
        [
            (None, false),
            (some(&first), false),
            (some(&first), false),
            (some(&first), false),
            (some(&first), true),
            (None, false),
            (some(&second), false),
        ]
    );
}

// SL-3: entering disabled or metrics_only ends the thread too, with a broadcast reply.
#[test]
fn sl3_disable_and_metrics_only_end_the_thread() {
    let server = SlackServer::start();
    let slack = listener(&server);
    send(
        &slack,
        &[
            sig("db", Closed, Open),
            sig("db", Open, Disabled),
            sig("db", Disabled, Closed),
            sig("db", Closed, Open),
            sig("db", Open, MetricsOnly),
            sig("db", MetricsOnly, Closed),
        ],
    );
    let r = server.requests();
    let (t1, t2) = (r[0].ts.clone(), r[3].ts.clone());
    assert_eq!(
        placements(&r),
        [
            (None, false),
            (t1, true),
            (None, false),
            (None, false),
            (t2, true),
            (None, false),
        ]
    );
}

// SL-3: only entering `open` starts a thread; forced_open replies inside an open thread.
#[test]
fn sl3_only_open_starts_a_thread() {
    let server = SlackServer::start();
    let slack = listener(&server);
    send(
        &slack,
        &[
            sig("db", Closed, ForcedOpen),
            sig("db", ForcedOpen, Closed),
            sig("db", Closed, Open),
            sig("db", Open, ForcedOpen),
            sig("db", ForcedOpen, Closed),
        ],
    );
    let r = server.requests();
    let t = r[2].ts.clone();
    assert_eq!(
        placements(&r),
        [
            (None, false),
            (None, false),
            (None, false),
            (t.clone(), false),
            (t, true),
        ]
    );
}

// SL-3: threads are per circuit.
#[test]
fn sl3_each_circuit_has_its_own_thread() {
    let server = SlackServer::start();
    let slack = listener(&server);
    send(
        &slack,
        &[
            sig("a", Closed, Open),
            sig("b", Closed, Open),
            sig("a", Open, HalfOpen),
            sig("b", Open, HalfOpen),
            sig("b", HalfOpen, Closed),
            sig("a", HalfOpen, Open),
        ],
    );
    let r = server.requests();
    let (a, b) = (r[0].ts.clone(), r[1].ts.clone());
    assert_eq!(
        placements(&r),
        [
            (None, false),
            (None, false),
            (a.clone(), false),
            (b.clone(), false),
            (b, true),
            (a, false),
        ]
    );
}

// SL-3: the thread map changes only after `ok: true`: a failed trip starts no thread, and a
// failed closing reply leaves the thread open.
#[test]
fn sl3_thread_state_changes_only_after_ok() {
    let server = SlackServer::start();
    server.script([
        Reply::Error("channel_not_found"), // trip fails: no thread
        Reply::Ok,                         // open -> half_open: top level
        Reply::Ok,                         // half_open -> open: enters open, starts thread
        Reply::Status(500, "oops"),        // closing reply fails: thread stays
        Reply::Ok,                         // next closing reply, in the same thread
        Reply::Ok,                         // next trip: new thread
    ]);
    let slack = listener(&server);
    send(
        &slack,
        &[
            sig("db", Closed, Open),
            sig("db", Open, HalfOpen),
            sig("db", HalfOpen, Open),
            sig("db", Open, Closed),
            sig("db", Closed, Disabled),
            sig("db", Disabled, Open),
        ],
    );
    let r = server.requests();
    let t = r[2].ts.clone();
    assert!(t.is_some());
    assert_eq!(
        placements(&r),
        [
            (None, false),
            (None, false),
            (None, false),
            (t.clone(), true),
            (t, true),
            (None, false),
        ]
    );
}

// SL-3: an `ok` answer without a ts (or a webhook) starts no thread.
#[test]
fn sl3_answer_without_ts_starts_no_thread() {
    let server = SlackServer::start();
    server.script([Reply::OkWithoutTs]);
    let slack = listener(&server);
    send(
        &slack,
        &[sig("db", Closed, Open), sig("db", Open, HalfOpen)],
    );
    assert_eq!(
        placements(&server.requests()),
        [(None, false), (None, false)]
    );
}

// SL-3: two listener instances keep separate threads for the same circuit; clones share.
#[test]
fn sl3_two_listener_instances_keep_separate_threads() {
    let server = SlackServer::start();
    let one = listener(&server);
    let other = SlackListener::builder("C999", TOKEN)
        .api_base(server.api_base())
        .build()
        .unwrap();
    send(&one, &[sig("db", Closed, Open)]);
    send(&other, &[sig("db", Closed, Open)]);
    let clone = one.clone();
    send(&clone, &[sig("db", Open, HalfOpen)]);
    send(&other, &[sig("db", Open, HalfOpen)]);
    let r = server.requests();
    assert_ne!(r[0].ts, r[1].ts);
    assert_eq!(r[2].body["channel"], CHANNEL);
    assert_eq!(r[2].thread_ts(), r[0].ts.as_deref());
    assert_eq!(r[3].body["channel"], "C999");
    assert_eq!(r[3].thread_ts(), r[1].ts.as_deref());
}

// SL-4: `ok:false` is logged with Slack's error code; the next message still goes out.
#[test]
fn sl4_ok_false_is_logged_with_the_error_code() {
    let server = SlackServer::start();
    server.script([Reply::Error("not_in_channel")]);
    let logs = Logs::default();
    let slack = tracing::subscriber::with_default(logs.subscriber(), || listener(&server));
    send(
        &slack,
        &[sig("db", Closed, Open), sig("db", Open, HalfOpen)],
    );
    assert_eq!(server.requests().len(), 2);
    let errors: Vec<_> = logs
        .events()
        .into_iter()
        .filter(|e| e.level == tracing::Level::ERROR)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!(e.target, "fluxgate::listeners::slack");
    assert_eq!(e.field("slack_error"), "not_in_channel");
    assert_eq!(e.field("circuit"), "db");
    assert_eq!(e.field("new_state"), "open");
    assert!(!logs.text().contains(TOKEN));
}

// SL-4: non-2xx answers are logged with the status and are not retried.
#[test]
fn sl4_server_error_is_logged_and_not_retried() {
    let server = SlackServer::start();
    server.script([Reply::Status(500, "internal_error")]);
    let logs = Logs::default();
    let slack = tracing::subscriber::with_default(logs.subscriber(), || listener(&server));
    send(
        &slack,
        &[sig("db", Closed, Open), sig("db", Open, HalfOpen)],
    );
    assert_eq!(server.requests().len(), 2);
    let error = logs
        .events()
        .into_iter()
        .find(|e| e.level == tracing::Level::ERROR)
        .expect("an error event");
    assert_eq!(error.field("status"), "500");
    assert_eq!(error.field("slack_error"), "internal_error");
}

// SL-4: 429 is retried after Retry-After; the retried message keeps its place and its thread.
#[test]
fn sl4_rate_limit_honours_retry_after() {
    let server = SlackServer::start();
    server.script([Reply::RateLimited(1), Reply::Ok]);
    let slack = listener(&server);
    send(
        &slack,
        &[sig("db", Closed, Open), sig("db", Open, HalfOpen)],
    );
    let r = server.requests();
    assert_eq!(r.len(), 3);
    assert_eq!(
        r[0].raw_body, r[1].raw_body,
        "the same message is sent again"
    );
    // The retry waited at least what Slack asked for (a lower bound, never flaky).
    assert!(r[1].at.duration_since(r[0].at) >= Duration::from_secs(1));
    assert_eq!(r[2].thread_ts(), r[1].ts.as_deref());
}

// SL-4: when Slack keeps answering 429, the message is given up after max_retries, logged.
#[test]
fn sl4_rate_limit_retries_are_bounded() {
    let server = SlackServer::start();
    server.script([
        Reply::RateLimited(0),
        Reply::RateLimited(0),
        Reply::RateLimited(0),
    ]);
    let logs = Logs::default();
    let slack = tracing::subscriber::with_default(logs.subscriber(), || {
        SlackListener::builder(CHANNEL, TOKEN)
            .api_base(server.api_base())
            .max_retries(2)
            .build()
            .unwrap()
    });
    send(
        &slack,
        &[sig("db", Closed, Open), sig("db", Open, HalfOpen)],
    );
    let r = server.requests();
    assert_eq!(r.len(), 4, "1 try + 2 retries, then the next message");
    assert_eq!(r[3].thread_ts(), None, "the trip was never delivered");
    let error = logs
        .events()
        .into_iter()
        .find(|e| e.level == tracing::Level::ERROR)
        .expect("an error event");
    assert_eq!(error.field("slack_error"), "ratelimited");
    assert_eq!(error.field("status"), "429");
}

// SL-4, docs/listeners/slack.md ("Rate limits"): a 429 is retried after its Retry-After,
// but waits at most `max_retry_wait`. Slack asks for 30 s, the cap is 200 ms: the same
// message is sent again after at least the cap, and long before the 30 s (the upper
// bound only shows the cap applied; it is far too loose to be a speed test).
#[test]
fn sl4_rate_limit_wait_is_capped_by_max_retry_wait() {
    const CAP: Duration = Duration::from_millis(200);
    const ASKED: Duration = Duration::from_secs(30);
    let server = SlackServer::start();
    server.script([Reply::RateLimited(ASKED.as_secs()), Reply::Ok]);
    let slack = SlackListener::builder(CHANNEL, TOKEN)
        .api_base(server.api_base())
        .max_retry_wait(CAP)
        .build()
        .unwrap();
    Listener::on_signal(&slack, &sig("db", Closed, Open)).unwrap();
    // Longer than Retry-After, so that an uncapped wait fails on the gap below, not here.
    assert!(
        slack.flush(ASKED + DEADLINE),
        "the message was never delivered"
    );
    let r = server.requests();
    assert_eq!(r.len(), 2, "one 429, then the retry");
    assert_eq!(
        r[0].raw_body, r[1].raw_body,
        "the same message is sent again"
    );
    assert!(r[1].ts.is_some(), "the retry was answered ok");
    let gap = r[1].at.duration_since(r[0].at);
    assert!(gap >= CAP, "retried after {gap:?}, before max_retry_wait");
    assert!(
        gap < Duration::from_secs(5),
        "retried after {gap:?}: Retry-After ({ASKED:?}) was not capped by max_retry_wait"
    );
}

// SL-4: a network error is logged (without the token) and never reaches the caller.
#[test]
fn sl4_network_error_is_logged() {
    let closed_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let logs = Logs::default();
    let slack = tracing::subscriber::with_default(logs.subscriber(), || {
        SlackListener::builder(CHANNEL, TOKEN)
            .api_base(format!("http://{closed_port}/api"))
            .build()
            .unwrap()
    });
    send(&slack, &[sig("db", Closed, Open)]);
    let error = logs
        .events()
        .into_iter()
        .find(|e| e.level == tracing::Level::ERROR)
        .expect("an error event");
    assert_eq!(error.field("circuit"), "db");
    assert!(!error.field("detail").is_empty());
    assert!(!error.fields.contains_key("status"), "no answer, no status");
    assert!(!error.fields.contains_key("slack_error"));
    assert!(!logs.text().contains(TOKEN));
}

// SL-4: while Slack is slow, on_signal returns at once, nothing is lost, order is kept.
#[test]
fn sl4_slow_slack_loses_nothing_and_keeps_transition_order() {
    let server = SlackServer::start();
    server.script([Reply::Hold]);
    let slack = listener(&server);
    let mut signals = Vec::new();
    for i in 0..10 {
        let name = if i % 2 == 0 { "a" } else { "b" };
        let (old, new) = if i % 4 < 2 {
            (Closed, Open)
        } else {
            (Open, Closed)
        };
        signals.push(sig(name, old, new));
    }
    Listener::on_signal(&slack, &signals[0]).unwrap();
    server.wait_holding(1);
    // Slack has not answered the first message, yet every further signal is accepted.
    for s in &signals[1..] {
        Listener::on_signal(&slack, s).unwrap();
    }
    assert_eq!(server.holding(), 1);
    assert_eq!(slack.pending(), 10);
    assert_eq!(
        server.requests().len(),
        1,
        "one message in flight at a time"
    );
    server.release();
    assert!(slack.flush(DEADLINE));
    let r = server.requests();
    let seen: Vec<(String, String)> = r
        .iter()
        .map(|r| (r.field("Circuit Breaker"), r.field("State Transition")))
        .collect();
    let sent: Vec<(String, String)> = signals
        .iter()
        .map(|s| {
            (
                s.circuit_name.to_string(),
                format!("{} → {}", s.old_state, s.new_state),
            )
        })
        .collect();
    assert_eq!(seen, sent);
    assert_eq!(slack.dropped(), 0);
}

// SL-4: the queue is bounded; when full, the new message is dropped and logged, never waited on.
#[test]
fn sl4_full_queue_drops_the_new_message_and_logs_it() {
    let server = SlackServer::start();
    server.script([Reply::Hold]);
    let logs = Logs::default();
    // The overflow is logged where on_signal runs: on this thread.
    let _guard = tracing::subscriber::set_default(logs.subscriber());
    let slack = SlackListener::builder(CHANNEL, TOKEN)
        .api_base(server.api_base())
        .queue_capacity(2)
        .build()
        .unwrap();
    Listener::on_signal(&slack, &sig("m0", Closed, Open)).unwrap();
    server.wait_holding(1); // m0 is in flight, out of the queue
    for i in 1..=5 {
        Listener::on_signal(&slack, &sig(&format!("m{i}"), Closed, Open)).unwrap();
    }
    assert_eq!(slack.dropped(), 3);
    assert_eq!(slack.pending(), 3);
    server.release();
    assert!(slack.flush(DEADLINE));
    let names: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.field("Circuit Breaker"))
        .collect();
    assert_eq!(names, ["m0", "m1", "m2"]);
    let warnings: Vec<_> = logs
        .events()
        .into_iter()
        .filter(|e| e.level == tracing::Level::WARN)
        .collect();
    assert_eq!(warnings.len(), 3);
    assert_eq!(warnings[0].field("circuit"), "m3");
    assert_eq!(warnings[0].field("capacity"), "2");
}

// SL-4: flush waits at most its timeout and tells whether everything went out.
#[test]
fn sl4_flush_is_bounded() {
    let server = SlackServer::start();
    server.script([Reply::Hold]);
    let slack = listener(&server);
    assert!(slack.flush(Duration::ZERO), "nothing pending yet");
    Listener::on_signal(&slack, &sig("db", Closed, Open)).unwrap();
    server.wait_holding(1);
    assert!(
        !slack.flush(Duration::from_millis(20)),
        "Slack is holding the answer"
    );
    server.release();
    assert!(slack.flush(DEADLINE));
    assert_eq!(slack.pending(), 0);
}

// SL-4: the token never appears in Debug output or configuration errors.
#[test]
fn sl4_token_never_in_debug_or_errors() {
    let server = SlackServer::start();
    let builder = SlackListener::builder(CHANNEL, TOKEN).api_base(server.api_base());
    assert!(!format!("{builder:?}").contains(TOKEN));
    let slack = builder.build().unwrap();
    let debug = format!("{slack:?}");
    assert!(!debug.contains(TOKEN), "{debug}");
    assert!(debug.contains(CHANNEL), "{debug}");

    let bad = "xoxb-secret\nwith-newline";
    let err = SlackListener::builder(CHANNEL, bad).build().unwrap_err();
    assert!(!err.to_string().contains("xoxb-secret"), "{err}");
    assert!(!format!("{err:?}").contains("xoxb-secret"), "{err:?}");

    let webhook = SlackListener::webhook(server.webhook_url())
        .build()
        .unwrap();
    assert!(!format!("{webhook:?}").contains("webhooksecret"));
    let err = SlackListener::webhook("not a url webhooksecret")
        .build()
        .unwrap_err();
    assert!(!err.to_string().contains("webhooksecret"), "{err}");
}

// SL-5 and configuration: invalid values are errors at build, never panics later.
#[test]
fn sl5_configuration_is_checked_at_build() {
    let cases = [
        SlackListener::builder("", TOKEN).build().unwrap_err(),
        SlackListener::builder(CHANNEL, " ").build().unwrap_err(),
        SlackListener::builder(CHANNEL, TOKEN)
            .api_base("not a url")
            .build()
            .unwrap_err(),
        SlackListener::builder(CHANNEL, TOKEN)
            .queue_capacity(0)
            .build()
            .unwrap_err(),
    ];
    let texts: Vec<String> = cases.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            "slack listener: the channel is empty",
            "slack listener: the bot token is empty",
            "slack listener: the API base 'not a url' is not a valid URL",
            "slack listener: the queue capacity must be at least 1, got 0",
        ]
    );
    assert!(std::error::Error::source(&cases[2]).is_some());
}

// SL-5: a trailing slash on the API base is fine.
#[test]
fn sl5_api_base_with_trailing_slash() {
    let server = SlackServer::start();
    let slack = SlackListener::builder(CHANNEL, TOKEN)
        .api_base(format!("{}/", server.api_base()))
        .build()
        .unwrap();
    send(&slack, &[sig("db", Closed, Open)]);
    assert_eq!(server.requests()[0].path, "/api/chat.postMessage");
}

// Webhook mode: URL only, no token, no channel, no threads; plain-text errors are logged.
#[test]
fn webhook_mode_posts_without_token_or_threads() {
    let server = SlackServer::start();
    server.script([
        Reply::WebhookOk,
        Reply::WebhookOk,
        Reply::Status(404, "no_service"),
    ]);
    let logs = Logs::default();
    let slack = tracing::subscriber::with_default(logs.subscriber(), || {
        SlackListener::webhook(server.webhook_url())
            .build()
            .unwrap()
    });
    send(
        &slack,
        &[
            sig("db", Closed, Open),
            sig("db", Open, HalfOpen),
            sig("db", HalfOpen, Closed),
        ],
    );
    let r = server.requests();
    assert_eq!(r.len(), 3);
    for r in &r {
        assert_eq!(r.path, "/services/T000/B000/webhooksecret");
        assert_eq!(r.header("authorization"), None);
        assert!(r.body.get("channel").is_none());
        assert!(r.body.get("thread_ts").is_none());
    }
    assert_eq!(r[0].title(), "*🚨 Circuit Breaker Triggered*");
    let error = logs
        .events()
        .into_iter()
        .find(|e| e.level == tracing::Level::ERROR)
        .expect("an error event");
    assert_eq!(error.field("slack_error"), "no_service");
    assert_eq!(error.field("status"), "404");
    assert!(!logs.text().contains("webhooksecret"));
}

// L-5: one listener serves many circuits, from many threads.
#[test]
fn l5_one_listener_many_circuits_many_threads() {
    let server = SlackServer::start();
    let slack = listener(&server);
    std::thread::scope(|scope| {
        for t in 0..4 {
            let slack = slack.clone();
            scope.spawn(move || {
                for i in 0..5 {
                    Listener::on_signal(&slack, &sig(&format!("c{t}-{i}"), Closed, Disabled))
                        .unwrap();
                }
            });
        }
    });
    assert!(slack.flush(DEADLINE));
    assert_eq!(server.requests().len(), 20);
}

// The async face: the same type, the same threads and ordering (SL-3, SL-4).
#[tokio::test]
async fn async_face_threads_and_order() {
    let server = SlackServer::start();
    let slack = listener(&server);
    for s in [
        sig("db", Closed, Open),
        sig("db", Open, HalfOpen),
        sig("db", HalfOpen, Closed),
    ] {
        AsyncListener::on_signal(&slack, s).await.unwrap();
    }
    assert!(slack.flush_async(DEADLINE).await);
    let r = server.requests();
    let t = r[0].ts.clone();
    assert_eq!(
        placements(&r),
        [(None, false), (t.clone(), false), (t, true)]
    );
}

// SL-4 (async): the future returned by on_signal is ready before Slack answers; the
// messages are enqueued in call order even if the futures are polled in another order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_face_never_waits_for_slack() {
    let server = SlackServer::start();
    server.script([Reply::Hold]);
    let slack = listener(&server);
    let first = AsyncListener::on_signal(&slack, sig("db", Closed, Open));
    let second = AsyncListener::on_signal(&slack, sig("db", Open, HalfOpen));
    // Polled in reverse order; the messages still go out in call order.
    second.await.unwrap();
    first.await.unwrap();
    tokio::task::block_in_place(|| server.wait_holding(1));
    assert_eq!(slack.pending(), 2);
    assert!(!slack.flush_async(Duration::from_millis(20)).await);
    server.release();
    assert!(slack.flush_async(DEADLINE).await);
    let r = server.requests();
    assert_eq!(r[0].field("State Transition"), "closed → open");
    assert_eq!(r[1].field("State Transition"), "open → half_open");
    assert_eq!(r[1].thread_ts(), r[0].ts.as_deref());
}

// Built outside any runtime, fed through the async face and flushed from a runtime that
// was made later: the worker does not depend on where the listener was built.
#[test]
fn async_face_of_a_listener_built_outside_a_runtime() {
    let server = SlackServer::start();
    let slack = listener(&server);
    drop(AsyncListener::on_signal(&slack, sig("db", Closed, Open)));
    server.wait_for_requests(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // No time driver on this runtime: flush_async measures its timeout on the listener's
    // own runtime.
    assert!(rt.block_on(slack.flush_async(DEADLINE)));
    assert!(!rt.block_on(async {
        server.script([Reply::Hold]);
        Listener::on_signal(&slack, &sig("db", Open, HalfOpen)).unwrap();
        slack.flush_async(Duration::from_millis(20)).await
    }));
    server.release_all();
    assert!(slack.flush(DEADLINE));
}

// SL-4: a flush waits only for what was queued before it: a message accepted while it
// waits cannot keep it waiting.
#[test]
fn sl4_flush_waits_only_for_messages_queued_before_it() {
    let server = SlackServer::start();
    server.script([Reply::Hold, Reply::Hold]);
    let slack = listener(&server);
    Listener::on_signal(&slack, &sig("a", Closed, Open)).unwrap();
    server.wait_holding(1);

    // The flush takes its mark on its first poll, before the second message exists.
    let mut flush = Box::pin(slack.flush_async(DEADLINE));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(flush.as_mut().poll(&mut cx).is_pending());
    Listener::on_signal(&slack, &sig("b", Closed, Open)).unwrap();
    server.release(); // "a" is answered; "b" will be held
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert!(rt.block_on(flush), "only 'a' was queued before the flush");
    server.wait_holding(1);
    assert_eq!(slack.pending(), 1);
    assert!(!slack.flush(Duration::from_millis(20)), "'b' is still held");
    server.release_all();
    assert!(slack.flush(DEADLINE));
}

#[test]
fn the_spec_name_of_the_async_slack_listener_is_the_slack_listener() {
    // SPEC §0 names `fluxgate::listeners::slack::AsyncSlackListener`.
    fn same<T>(_: &T, _: &T) {}
    let a: fluxgate::listeners::slack::AsyncSlackListener =
        fluxgate::listeners::slack::SlackListener::builder("C0123456789", "xoxb-t")
            .api_base("http://127.0.0.1:9")
            .build()
            .unwrap();
    let b = a.clone();
    same::<fluxgate::listeners::slack::SlackListener>(&a, &b);
}
