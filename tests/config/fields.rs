//! Every field's happy path, written in TOML and in YAML: both give the same breaker, and
//! the breaker does what the field says (driven on a manual clock, never a sleep).

use std::io;
use std::time::Duration;

use fluxgate::clock::ManualClock;
use fluxgate::config::{Breaker, Config};
use fluxgate::{AsyncCircuitBreaker, CircuitBreaker, State};

use crate::support::Recorder;
use crate::{both, breaker, fail, ok, trackers};

/// Builds breaker `a` of both spellings.
fn each(toml: &str, yaml: &str, clock: &ManualClock) -> Vec<CircuitBreaker> {
    both(toml, yaml)
        .iter()
        .map(|c| breaker(c, "a", clock))
        .collect()
}

#[test]
fn window_count_keeps_the_last_n_calls() {
    // W-1
    let clock = ManualClock::new();
    for cb in each(
        "[breakers.a]\nwindow = { type = \"count\", size = 4 }\ntripper = \"MinRequests(4) & FailureRate(0.5)\"\n",
        "breakers:\n  a:\n    window: { type: count, size: 4 }\n    tripper: MinRequests(4) & FailureRate(0.5)\n",
        &clock,
    ) {
        for _ in 0..4 {
            assert!(ok(&cb));
        }
        let _ = fail(&cb);
        let m = cb.info().metric;
        assert_eq!((m.total_count, m.failure_count), (4, 1));
        assert_eq!(cb.state(), State::Closed);
        let _ = fail(&cb);
        assert_eq!(cb.state(), State::Open);
    }
}

#[test]
fn window_time_forgets_calls_older_than_its_span() {
    // W-2
    let clock = ManualClock::new();
    for cb in each(
        "[breakers.a]\nwindow = { type = \"time\", duration = \"2s\" }\n",
        "breakers:\n  a:\n    window:\n      type: time\n      duration: 2s\n",
        &clock,
    ) {
        for _ in 0..3 {
            assert!(ok(&cb));
        }
        assert_eq!(cb.info().metric.total_count, 3);
        clock.advance(Duration::from_secs(3));
        assert_eq!(cb.info().metric.total_count, 0);
    }
}

#[test]
fn tracker_expressions_choose_the_failures() {
    // TK-1, TK-2
    let clock = ManualClock::new();
    for cb in each(
        "[breakers.a]\ntracker = \"io & !not_found\"\ntripper = \"FailureStreak(1)\"\n",
        "breakers:\n  a:\n    tracker: io & !not_found\n    tripper: FailureStreak(1)\n",
        &clock,
    ) {
        let _ = cb.call(|| Err::<(), _>(io::Error::from(io::ErrorKind::NotFound)));
        let _ = cb.call(|| Err::<(), _>(std::fmt::Error));
        assert_eq!(cb.state(), State::Closed);
        assert_eq!(cb.info().metric.total_count, 0);
        let _ = cb.call(|| Err::<(), _>(io::Error::from(io::ErrorKind::ConnectionReset)));
        assert_eq!(cb.state(), State::Open);
    }
}

#[test]
fn tripper_expressions_follow_the_worked_cases() {
    // TR-8's worked case: FailureStreak(5) | (MinRequests(20) & FailureRate(0.5)).
    let clock = ManualClock::new();
    let toml = "[defaults]\ntripper = \"FailureStreak(5) | (MinRequests(20) & FailureRate(0.5))\"\n[breakers.a]\n";
    let yaml = "defaults:\n  tripper: FailureStreak(5) | (MinRequests(20) & FailureRate(0.5))\nbreakers:\n  a: {}\n";
    for cb in each(toml, yaml, &clock) {
        for _ in 0..4 {
            let _ = fail(&cb);
        }
        assert_eq!(cb.state(), State::Closed, "a streak of 4 is not 5");
        let _ = fail(&cb);
        assert_eq!(cb.state(), State::Open, "a streak of 5");
    }
    for cb in each(toml, yaml, &clock) {
        // 10 of 20 failed, streak 1 → open on the 20th call, not before.
        for i in 0..19 {
            if i % 2 == 0 {
                let _ = fail(&cb);
            } else {
                assert!(ok(&cb));
            }
        }
        assert_eq!(cb.state(), State::Closed);
        assert!(ok(&cb));
        assert_eq!(cb.state(), State::Open);
    }
}

#[test]
fn latency_rules_take_durations() {
    // TR-5, TR-6: SlowRate(0.5, 100ms) and AvgLatency; the breaker times calls for them.
    let clock = ManualClock::new();
    for cb in each(
        "[breakers.a]\ntripper = \"MinRequests(2) & SlowRate(0.5, 100ms)\"\n",
        "breakers:\n  a:\n    tripper: MinRequests(2) & SlowRate(0.5, 100ms)\n",
        &clock,
    ) {
        assert!(ok(&cb));
        assert!(
            cb.call(|| {
                clock.advance(Duration::from_millis(100));
                Ok::<_, io::Error>(())
            })
            .is_ok()
        );
        assert_eq!(cb.state(), State::Open);
    }
    for cb in each(
        "[breakers.a]\ntripper = \"AvgLatency(1m30s)\"\n",
        "breakers:\n  a:\n    tripper: AvgLatency(1m30s)\n",
        &clock,
    ) {
        let _ = cb.call(|| {
            clock.advance(Duration::from_secs(89));
            Ok::<_, io::Error>(())
        });
        assert_eq!(cb.state(), State::Closed);
        let _ = cb.call(|| {
            clock.advance(Duration::from_secs(92));
            Ok::<_, io::Error>(())
        });
        assert_eq!(cb.state(), State::Open, "average 90.5 s");
    }
}

/// Opens `cb` with one failure (its tripper is `FailureStreak(1)`).
fn open(cb: &CircuitBreaker) {
    let _ = fail(cb);
    assert_eq!(cb.state(), State::Open);
}

#[test]
fn retry_always_probes_at_once() {
    // RT-1
    let clock = ManualClock::new();
    for cb in each(
        "[breakers.a]\ntripper = \"FailureStreak(1)\"\nretry = { type = \"always\" }\npermit = { type = \"all\" }\n",
        "breakers:\n  a:\n    tripper: FailureStreak(1)\n    retry: { type: always }\n    permit: { type: all }\n",
        &clock,
    ) {
        open(&cb);
        assert!(ok(&cb));
        assert_eq!(cb.state(), State::Closed);
    }
}

#[test]
fn retry_never_waits_for_a_reset() {
    // RT-1
    let clock = ManualClock::new();
    for cb in each(
        "[breakers.a]\ntripper = \"FailureStreak(1)\"\nretry = { type = \"never\" }\n",
        "breakers:\n  a:\n    tripper: FailureStreak(1)\n    retry: { type: never }\n",
        &clock,
    ) {
        open(&cb);
        clock.advance(Duration::from_secs(86_400));
        assert!(fail(&cb).unwrap_err().is_rejected());
        cb.reset();
        assert!(ok(&cb));
    }
}

#[test]
fn retry_cooldown_waits_its_duration() {
    // RT-2
    let clock = ManualClock::new();
    for cb in each(
        "[breakers.a]\ntripper = \"FailureStreak(1)\"\nretry = { type = \"cooldown\", duration = \"30s\" }\npermit = { type = \"all\" }\n",
        "breakers:\n  a:\n    tripper: FailureStreak(1)\n    retry: { type: cooldown, duration: 30s }\n    permit: { type: all }\n",
        &clock,
    ) {
        open(&cb);
        clock.advance(Duration::from_secs(29));
        let r = fail(&cb).unwrap_err();
        assert_eq!(
            r.rejection().unwrap().retry_after(),
            Some(Duration::from_secs(1))
        );
        clock.advance(Duration::from_secs(1));
        assert!(ok(&cb));
    }
}

#[test]
fn retry_cooldown_jitter_spreads_the_wait() {
    // RT-2, R-4: ±50 % of 100 s lies in [50 s, 150 s].
    let clock = ManualClock::new();
    for cb in each(
        "[breakers.a]\ntripper = \"FailureStreak(1)\"\nretry = { type = \"cooldown\", duration = \"100s\", jitter = 0.5 }\n",
        "breakers:\n  a:\n    tripper: FailureStreak(1)\n    retry: { type: cooldown, duration: 100s, jitter: 0.5 }\n",
        &clock,
    ) {
        open(&cb);
        let wait = fail(&cb)
            .unwrap_err()
            .rejection()
            .unwrap()
            .retry_after()
            .unwrap();
        assert!(
            (Duration::from_secs(50)..=Duration::from_secs(150)).contains(&wait),
            "{wait:?}"
        );
    }
}

#[test]
fn retry_backoff_grows_per_reopening_up_to_max() {
    // RT-3: 10 s, ×3, max 25 s: 10 s, then 25 s (not 30 s).
    let clock = ManualClock::new();
    for cb in each(
        "[breakers.a]\ntripper = \"FailureStreak(1)\"\nretry = { type = \"backoff\", initial = \"10s\", multiplier = 3, max = \"25s\" }\npermit = { type = \"all\" }\n",
        "breakers:\n  a:\n    tripper: FailureStreak(1)\n    retry:\n      type: backoff\n      initial: 10s\n      multiplier: 3\n      max: 25s\n    permit: { type: all }\n",
        &clock,
    ) {
        open(&cb);
        let wait = |cb: &CircuitBreaker| fail(cb).unwrap_err().rejection().unwrap().retry_after();
        assert_eq!(wait(&cb), Some(Duration::from_secs(10)));
        clock.advance(Duration::from_secs(10));
        let _ = fail(&cb); // the probe fails: open again, reopens = 1
        assert_eq!(cb.info().reopens, 1);
        assert_eq!(wait(&cb), Some(Duration::from_secs(25)));
    }
}

#[test]
fn permit_random_admits_its_share() {
    // P-1: ratio 0 admits no half-open call, ratio 1 every one.
    let clock = ManualClock::new();
    for (ratio, admitted) in [("0", false), ("1.0", true)] {
        for cb in each(
            &format!(
                "[breakers.a]\ntripper = \"FailureStreak(1)\"\nretry = {{ type = \"always\" }}\npermit = {{ type = \"random\", ratio = {ratio} }}\n"
            ),
            &format!(
                "breakers:\n  a:\n    tripper: FailureStreak(1)\n    retry: {{ type: always }}\n    permit: {{ type: random, ratio: {ratio} }}\n"
            ),
            &clock,
        ) {
            open(&cb);
            assert_eq!(cb.admit().is_ok(), admitted);
            assert_eq!(cb.state(), State::HalfOpen);
        }
    }
}

#[test]
fn permit_ramp_up_widens_over_its_duration() {
    // P-2: 10 % at first, everything from the end of the ramp.
    let clock = ManualClock::new();
    for cb in each(
        "[breakers.a]\ntripper = \"FailureStreak(1)\"\nretry = { type = \"always\" }\npermit = { type = \"ramp_up\", initial = 0.1, final = 1, duration = \"10s\" }\n",
        "breakers:\n  a:\n    tripper: FailureStreak(1)\n    retry: { type: always }\n    permit: { type: ramp_up, initial: 0.1, final: 1, duration: 10s }\n",
        &clock,
    ) {
        open(&cb);
        let admitted = (0..2000).filter(|_| cb.admit().is_ok()).count();
        assert!(
            (100..=400).contains(&admitted),
            "{admitted} of 2000 at 10 %"
        );
        clock.advance(Duration::from_secs(10));
        assert_eq!((0..100).filter(|_| cb.admit().is_ok()).count(), 100);
    }
}

#[test]
fn max_half_open_calls_bounds_probes_in_flight() {
    // SM-8
    let clock = ManualClock::new();
    for cb in each(
        "[breakers.a]\ntripper = \"FailureStreak(1)\"\nretry = { type = \"always\" }\npermit = { type = \"all\" }\nmax_half_open_calls = 2\n",
        "breakers:\n  a:\n    tripper: FailureStreak(1)\n    retry: { type: always }\n    permit: { type: all }\n    max_half_open_calls: 2\n",
        &clock,
    ) {
        open(&cb);
        let first = cb.admit().unwrap();
        let second = cb.admit().unwrap();
        assert!(cb.admit().is_err());
        drop((first, second));
        assert!(cb.admit().is_ok());
    }
}

#[test]
fn measure_durations_times_every_call() {
    let clock = ManualClock::new();
    let slow = |cb: &CircuitBreaker| {
        let _ = cb.call(|| {
            clock.advance(Duration::from_millis(5));
            Ok::<_, io::Error>(())
        });
        cb.info().metric.total_duration
    };
    for cb in each(
        "[breakers.a]\nmeasure_durations = true\n",
        "breakers:\n  a:\n    measure_durations: true\n",
        &clock,
    ) {
        assert_eq!(slow(&cb), Duration::from_millis(5));
    }
    for cb in each(
        "[breakers.a]\nmeasure_durations = false\n",
        "breakers:\n  a:\n    measure_durations: false\n",
        &clock,
    ) {
        assert_eq!(slow(&cb), Duration::ZERO);
    }
}

#[test]
fn initial_states_apply_silently() {
    // SM-13's silent forms: the breaker starts in the state, no listener hears of it.
    for (state, expected) in [
        ("closed", State::Closed),
        ("metrics_only", State::MetricsOnly),
        ("forced_open", State::ForcedOpen),
        ("disabled", State::Disabled),
    ] {
        for config in both(
            &format!("[breakers.a]\nstate = \"{state}\"\n"),
            &format!("breakers:\n  a:\n    state: {state}\n"),
        ) {
            let recorder = Recorder::default();
            let cb = config
                .builder::<CircuitBreaker>("a", &trackers())
                .unwrap()
                .listener(recorder.listener())
                .build()
                .unwrap();
            cb.enter_silently(config.get("a").state);
            assert_eq!(cb.state(), expected);
            let built: CircuitBreaker = config.build("a", &trackers()).unwrap();
            assert_eq!(built.state(), expected);
            assert!(cb.flush_signals(Duration::from_secs(5)));
            assert_eq!(recorder.pairs(), []);
        }
    }
}

#[test]
fn forced_open_rejects_and_metrics_only_never_opens() {
    // SM-10, SM-12
    let clock = ManualClock::new();
    let [config, _] = both(
        "[defaults]\ntripper = \"FailureStreak(1)\"\n[breakers.shadow]\nstate = \"metrics_only\"\n[breakers.off]\nstate = \"forced_open\"\n",
        "defaults:\n  tripper: FailureStreak(1)\nbreakers:\n  shadow:\n    state: metrics_only\n  off:\n    state: forced_open\n",
    );
    let shadow = breaker(&config, "shadow", &clock);
    let _ = fail(&shadow);
    assert_eq!(shadow.state(), State::MetricsOnly);
    assert_eq!(shadow.info().metric.failure_count, 1);
    let off = breaker(&config, "off", &clock);
    assert_eq!(
        fail(&off).unwrap_err().rejection().unwrap().state(),
        State::ForcedOpen
    );
}

#[test]
fn defaults_fill_what_a_breaker_leaves_out() {
    let [config, _] = both(
        "[defaults]\nmax_half_open_calls = 3\nretry = { type = \"never\" }\n[breakers.a]\nretry = { type = \"always\" }\n",
        "defaults:\n  max_half_open_calls: 3\n  retry: { type: never }\nbreakers:\n  a:\n    retry: { type: always }\n",
    );
    let a = config.get("a");
    assert_eq!(a.max_half_open_calls, 3);
    assert_eq!(a.retry, fluxgate::config::RetryConfig::Always);
    // Fields neither sets are D-1's.
    assert_eq!(a.window, fluxgate::config::WindowConfig::Count(100));
    assert_eq!(a.tripper.to_string(), "MinRequests(100) & FailureRate(0.5)");
    // In YAML, a name with nothing after it is a breaker with the defaults.
    let bare = Config::from_yaml_str("defaults:\nbreakers:\n  a:\n  b: {}\n").unwrap();
    assert_eq!(bare.names().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(bare.get("a"), bare.defaults());
    // An empty file is D-1 with no breakers.
    for empty in [
        Config::from_toml_str("").unwrap(),
        Config::from_yaml_str("# nothing\n").unwrap(),
    ] {
        assert_eq!(empty, Config::default());
    }
}

#[tokio::test]
async fn the_async_face_builds_from_the_same_config() {
    let [config, _] = both(
        "[breakers.a]\ntripper = \"FailureStreak(2)\"\n",
        "breakers:\n  a:\n    tripper: FailureStreak(2)\n",
    );
    let cb: AsyncCircuitBreaker = config.build("a", &trackers()).unwrap();
    for _ in 0..2 {
        let _ = cb
            .call(|| async { Err::<(), _>(io::Error::other("boom")) })
            .await;
    }
    assert_eq!(cb.state(), State::Open);
    let b = config
        .builder::<AsyncCircuitBreaker>("a", &trackers())
        .unwrap()
        .build()
        .unwrap();
    b.enter_silently(fluxgate::config::InitialState::Disabled);
    assert_eq!(b.state(), State::Disabled);
    let _ = Config::default();
}
