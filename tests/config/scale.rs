//! `Config::scale_durations`: one factor over every wait of a file, none over a call's
//! latency threshold; bad factors are refused by name.

use std::time::Duration;

use fluxgate::State;
use fluxgate::clock::ManualClock;
use fluxgate::config::{Config, PermitConfig, RetryConfig, WindowConfig};

use super::{breaker, fail, ok};

const FILE: &str = r#"
[defaults]
retry = { type = "cooldown", duration = "60s", jitter = 0.1 }
probe_timeout = "5s"

[breakers.inventory]
window = { type = "count", size = 20 }
tripper = "FailureStreak(2)"
retry = { type = "backoff", initial = "2s", multiplier = 3.0, max = "10s" }
permit = { type = "random", ratio = 0.5 }

[breakers.search]
window = { type = "time", duration = "5s" }
tripper = "MinRequests(20) & SlowRate(0.5, 40ms)"
recovery = { type = "probes", n = 10, rule = "SlowRate(0.5, 40ms)" }
permit = { type = "ramp_up", initial = 0.2, final = 1.0, duration = "6s" }
"#;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn every_wait_is_scaled_and_nothing_else() {
    let config = Config::from_toml_str(FILE).unwrap();
    let fast = config.clone().scale_durations(0.1).unwrap();

    // [defaults], and what the breakers inherit from it.
    assert_eq!(
        fast.defaults().retry,
        RetryConfig::Cooldown {
            duration: ms(6_000),
            jitter: 0.1
        }
    );
    assert_eq!(fast.defaults().probe_timeout, Some(ms(500)));
    assert_eq!(fast.get("not_in_the_file").probe_timeout, Some(ms(500)));
    assert_eq!(fast.breaker("search").unwrap().probe_timeout, Some(ms(500)));

    let inventory = fast.breaker("inventory").unwrap();
    assert_eq!(
        inventory.retry,
        RetryConfig::Backoff {
            initial: ms(200),
            multiplier: 3.0,
            max: ms(1_000),
            jitter: 0.0
        }
    );
    // Counts and ratios stay.
    assert_eq!(inventory.window, WindowConfig::Count(20));
    assert_eq!(inventory.permit, PermitConfig::Random(0.5));
    assert_eq!(inventory.tripper.to_string(), "FailureStreak(2)");

    let search = fast.breaker("search").unwrap();
    // 0.5 s rounds to a whole second.
    assert_eq!(search.window, WindowConfig::Time(Duration::from_secs(1)));
    assert_eq!(
        search.permit,
        PermitConfig::RampUp {
            initial: 0.2,
            final_ratio: 1.0,
            duration: ms(600)
        }
    );
    // A slow call stays a slow call: the thresholds are not the scenario's pace.
    assert_eq!(
        search.tripper,
        config.breaker("search").unwrap().tripper,
        "{}",
        search.tripper
    );
    assert_eq!(search.recovery, config.breaker("search").unwrap().recovery);

    // Stretched: time windows round to whole seconds.
    let slow = config.clone().scale_durations(2.5).unwrap();
    assert_eq!(
        slow.breaker("search").unwrap().window,
        WindowConfig::Time(Duration::from_secs(13))
    );
    // A factor of one changes nothing.
    assert_eq!(config.clone().scale_durations(1.0).unwrap(), config);
    // Tiny factors keep a time window of at least one second.
    assert_eq!(
        config
            .scale_durations(1e-6)
            .unwrap()
            .breaker("search")
            .unwrap()
            .window,
        WindowConfig::Time(Duration::from_secs(1))
    );
}

#[test]
fn a_scaled_breaker_waits_the_scaled_cooldown() {
    // RT-1: the cooldown of the scaled file, read on a manual clock.
    let config = Config::from_toml_str(
        r#"
        [breakers.a]
        tripper = "FailureStreak(2)"
        retry = { type = "cooldown", duration = "2s" }
        permit = { type = "all" }
        "#,
    )
    .unwrap()
    .scale_durations(0.1)
    .unwrap();
    let clock = ManualClock::new();
    let cb = breaker(&config, "a", &clock);
    let _ = fail(&cb);
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::Open);
    clock.advance(ms(199));
    assert!(!ok(&cb), "admitted before the scaled 200 ms");
    clock.advance(ms(1));
    assert!(ok(&cb), "rejected after the scaled 200 ms");
    assert_eq!(
        cb.state(),
        State::Closed,
        "the probe went through and closed it"
    );
}

#[test]
fn bad_factors_are_refused_by_name() {
    let config = Config::from_toml_str(FILE).unwrap();
    for (factor, text) in [
        (0.0, "0"),
        (-0.0, "-0"),
        (-1.0, "-1"),
        (f64::NAN, "NaN"),
        (f64::INFINITY, "inf"),
        (f64::NEG_INFINITY, "-inf"),
    ] {
        let err = config.clone().scale_durations(factor).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("scale_durations factor must be finite and > 0, got {text}")
        );
        assert_eq!(
            (err.component(), err.parameter()),
            ("scale_durations", "factor")
        );
    }
    // So large that a duration no longer fits.
    let err = config.clone().scale_durations(1e12).unwrap_err();
    assert_eq!(
        err.to_string(),
        "scale_durations factor must be small enough for every scaled duration to fit, got 1000000000000"
    );
    // A scaled value its component refuses: a time window beyond a day.
    let err = config.scale_durations(20_000.0).unwrap_err();
    assert_eq!((err.component(), err.parameter()), ("TimeWindow", "span"));
}
