//! Regression tests for three reliability rules: no panic at call time from a configuration
//! that built, exact ratio and latency thresholds (TR-4, TR-5, TR-6), and circuit
//! names that cannot forge log lines or error texts (R-6, LG-1, CF-2).

use std::io;

use std::time::{Duration, SystemTime};

use crate::support::logs::{LogText, Logs};
use crate::support::*;
use fluxgate::clock::ManualClock;
use fluxgate::listeners::Listener;
use fluxgate::listeners::log::LogListener;
use fluxgate::permits::{Permit, RampUp};
use fluxgate::retries::{Backoff, Cooldown, Retry, RetryContext};
use fluxgate::trippers::{AvgLatency, FailureRate, FailureStreak, SlowRate, TripContext, Tripper};
use fluxgate::{CallNotPermitted, CircuitBreaker, Error, Metric, Signal, State};

const SEC: Duration = Duration::from_secs(1);

/// Seeds spread over the whole `u64` range (SplitMix64 steps).
fn seeds() -> impl Iterator<Item = u64> {
    (0u64..2_000).map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i << 7))
}

fn reopen_counts() -> [u32; 10] {
    [0, 1, 2, 3, 10, 63, 64, 1_000, u32::MAX - 1, u32::MAX]
}

fn elapsed_values() -> [Duration; 5] {
    [
        Duration::ZERO,
        Duration::from_nanos(1),
        SEC,
        Duration::from_secs(u64::MAX / 2),
        Duration::MAX,
    ]
}

/// Calls every method of a retry policy on many contexts; none may panic, and a wait that
/// the policy bounds by `max` stays within it.
fn exercise(retry: &impl Retry, max: Option<Duration>) {
    for seed in seeds() {
        for reopens in reopen_counts() {
            for elapsed in elapsed_values() {
                let ctx = RetryContext::new(elapsed, reopens).with_seed(seed);
                let wait = retry.wait(&ctx);
                if let (Some(w), Some(max)) = (wait, max) {
                    assert!(w <= max, "{w:?} above max {max:?}");
                }
                let after = retry.retry_after(&ctx);
                assert_eq!(after, wait.map(|w| w.saturating_sub(elapsed)));
                assert_eq!(retry.should_retry(&ctx), wait.is_some_and(|w| elapsed >= w));
            }
        }
    }
}

#[test]
fn r3_cooldown_of_duration_max_with_jitter_never_panics() {
    for jitter in [0.0, 0.5, 0.999_999, 1.0 - f64::EPSILON] {
        let c = Cooldown::new(Duration::MAX).jitter(jitter);
        assert!(c.validate().is_ok());
        exercise(&c, None);
        // The jittered wait saturates instead of overflowing: never below d·(1 − j).
        for seed in seeds() {
            let w = c.wait(&RetryContext::new(Duration::ZERO, 0).with_seed(seed));
            let low = Duration::MAX.as_secs_f64() * (1.0 - jitter) * (1.0 - 1e-9);
            assert!(w.unwrap().as_secs_f64() >= low);
        }
    }
    for d in [
        Duration::from_nanos(1),
        SEC,
        Duration::from_secs(u64::MAX / 3),
    ] {
        exercise(&Cooldown::new(d).jitter(1.0 - f64::EPSILON), None);
    }
}

#[test]
fn r3_cooldown_jitter_is_unchanged_within_range() {
    // Saturation must not change ordinary waits: d·(1 + j·u) as before.
    let c = Cooldown::new(Duration::from_secs(60)).jitter(0.5);
    let mut spread = (Duration::MAX, Duration::ZERO);
    for seed in seeds() {
        let w = c
            .wait(&RetryContext::new(Duration::ZERO, 0).with_seed(seed))
            .unwrap();
        assert!(
            w >= Duration::from_secs(30) && w <= Duration::from_secs(90),
            "{w:?}"
        );
        spread = (spread.0.min(w), spread.1.max(w));
    }
    assert!(spread.0 < Duration::from_secs(35) && spread.1 > Duration::from_secs(85));
}

#[test]
fn r3_breaker_with_duration_max_cooldown_rejects_without_panicking() {
    let cb = CircuitBreaker::builder("never_again")
        .clock(ManualClock::new())
        .tripper(FailureStreak::new(1))
        .retry(Cooldown::new(Duration::MAX).jitter(0.5))
        .build()
        .unwrap();
    // Each open period draws its own jitter: go through many of them.
    for _ in 0..64 {
        let _ = fail(&cb);
        assert_eq!(cb.state(), State::Open);
        let Err(Error::Rejected(r)) = ok(&cb) else {
            panic!("an open breaker must reject")
        };
        assert!(r.retry_after().unwrap() > Duration::from_secs(100 * 365 * 86_400));
        cb.reset();
    }
}

#[test]
fn r3_backoff_with_extreme_parameters_never_panics() {
    let max = Duration::MAX;
    let ns = Duration::from_nanos(1);
    let cases = [
        (Backoff::new(SEC).multiplier(f64::MAX).max(max), max),
        (
            Backoff::new(SEC).multiplier(f64::MAX).max(max).jitter(0.5),
            max,
        ),
        (
            Backoff::new(SEC)
                .multiplier(f64::MAX)
                .max(max)
                .jitter(1.0 - f64::EPSILON),
            max,
        ),
        (Backoff::new(max).max(max), max),
        (Backoff::new(max).max(max).jitter(0.5), max),
        (
            Backoff::new(max).max(max).multiplier(f64::MAX).jitter(0.9),
            max,
        ),
        (
            Backoff::new(Duration::from_secs(u64::MAX / 2))
                .max(max)
                .jitter(0.999),
            max,
        ),
        (
            Backoff::new(ns)
                .multiplier(1.000_000_1)
                .max(max)
                .jitter(0.5),
            max,
        ),
        (Backoff::new(ns).multiplier(1.5).max(ns).jitter(0.5), ns),
        (Backoff::new(SEC).max(300 * SEC).jitter(0.99), 300 * SEC),
    ];
    for (b, max) in cases {
        assert!(b.validate().is_ok(), "{b:?}");
        exercise(&b, Some(max));
    }
}

#[test]
fn r3_backoff_in_a_breaker_survives_many_reopens() {
    let clock = ManualClock::new();
    let cb = CircuitBreaker::builder("backoff")
        .clock(clock.clone())
        .tripper(FailureStreak::new(1))
        .permit(fluxgate::permits::All)
        .retry(
            Backoff::new(SEC)
                .multiplier(f64::MAX)
                .max(Duration::MAX)
                .jitter(0.5),
        )
        .build()
        .unwrap();
    for _ in 0..32 {
        let _ = fail(&cb);
        assert_eq!(cb.state(), State::Open);
        // First period: probe after at most 1.5 s; then reopen from half_open.
        clock.advance(2 * SEC);
        let _ = fail(&cb);
        assert_eq!(cb.state(), State::Open);
        let Err(Error::Rejected(r)) = ok(&cb) else {
            panic!("an open breaker must reject")
        };
        assert!(r.retry_after().is_some());
        cb.reset();
    }
}

#[test]
fn r3_ramp_up_with_extreme_durations_never_panics() {
    for d in [Duration::from_nanos(1), SEC, Duration::MAX] {
        for (initial, last) in [(f64::MIN_POSITIVE, 1.0), (0.1, 0.8), (1.0, 1.0)] {
            let r = RampUp::new(initial, last, d);
            assert!(r.validate().is_ok());
            for e in elapsed_values() {
                let ratio = r.ratio_at(e);
                assert!((0.0..=1.0).contains(&ratio), "{ratio}");
                let _ = r.permit(e);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// TR-4, TR-5, TR-6: exact thresholds.

fn closed(m: &Metric) -> TripContext<'_> {
    TripContext::new(m, State::Closed, 0)
}

/// Every two-decimal ratio r (as the f64 a user writes, e.g. `0.28`) and every k of n ≤ 200:
/// the rule holds iff k/n ≥ r, decided with integers.
fn exhaustive(name: &str, trips: impl Fn(f64, u64, u64) -> bool) {
    let mut wrong = Vec::new();
    for hundredths in 1u64..=100 {
        let r = format!("0.{hundredths:02}");
        let r: f64 = if hundredths == 100 {
            1.0
        } else {
            r.parse().unwrap()
        };
        for n in 1u64..=200 {
            for k in 0..=n {
                let expected = k * 100 >= hundredths * n;
                if trips(r, k, n) != expected {
                    wrong.push((r, k, n, expected));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{name}: {} wrong decisions, first {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

#[test]
fn tr4_failure_rate_trips_at_exactly_the_threshold() {
    exhaustive("FailureRate", |r, k, n| {
        FailureRate::new(r).trip(&closed(&Metric::new(n, k, Duration::ZERO, &[])))
    });
    let m = Metric::new(25, 7, Duration::ZERO, &[]);
    assert!(FailureRate::new(0.28).trip(&closed(&m)), "7 of 25 is 0.28");
}

#[test]
fn tr6_slow_rate_trips_at_exactly_the_threshold() {
    let t = Duration::from_millis(250);
    exhaustive("SlowRate", |r, k, n| {
        SlowRate::new(r, t).trip(&closed(&Metric::new(n, 0, Duration::ZERO, &[(t, k)])))
    });
    let m = Metric::new(25, 0, Duration::ZERO, &[(t, 7)]);
    assert!(SlowRate::new(0.28, t).trip(&closed(&m)), "7 of 25 is 0.28");
}

/// The ratio means the decimal that `{}` prints for it, exactly.
fn decimal_of(r: f64) -> (u64, u32) {
    let text = format!("{r}");
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let digits = format!("{int}{frac}");
    (digits.parse().unwrap(), frac.len() as u32)
}

#[test]
fn tr4_tr6_a_decimal_ratio_is_reached_by_its_own_fraction() {
    let t = SEC;
    let check = |r: f64| {
        let (p, q) = decimal_of(r);
        // The quotient rule tells k/n from k/n − 10^-q while 10^-q is wider than the gap
        // between doubles near r: up to 15 decimal places.
        if r == 0.0 || q > 15 {
            return;
        }
        let n = 10u64.pow(q);
        let at = |k: u64| {
            let fr = FailureRate::new(r).trip(&closed(&Metric::new(n, k, Duration::ZERO, &[])));
            let sr =
                SlowRate::new(r, t).trip(&closed(&Metric::new(n, 0, Duration::ZERO, &[(t, k)])));
            assert_eq!(fr, sr, "r = {r}, k = {k}, n = {n}");
            fr
        };
        assert!(at(p), "r = {r}: {p} of {n} must trip");
        assert!(!at(p - 1), "r = {r}: {} of {n} must not trip", p - 1);
    };
    let mut x = 0x1234_5678_9ABC_DEF0u64;
    for _ in 0..20_000 {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let u = (z >> 11) as f64 / (1u64 << 53) as f64;
        if u > 0.0 {
            check(u);
            check((u * 1000.0).round() / 1000.0);
            check((u * 1e6).round() / 1e6);
        }
    }
    for r in [
        0.1,
        0.3,
        0.5,
        0.7,
        0.9,
        0.99,
        0.999_999,
        1.0,
        0.1 + 0.2,
        1.0 / 3.0,
    ] {
        check(r);
    }
}

#[test]
fn tr4_ratios_that_are_not_short_decimals() {
    let rate =
        |r: f64, k, n| FailureRate::new(r).trip(&closed(&Metric::new(n, k, Duration::ZERO, &[])));
    // A ratio means the number it stands for: one call in three reaches 1/3, five in six
    // reach 5/6 (as in the Python library, which compares the quotient too).
    assert!(rate(1.0 / 3.0, 1, 3));
    assert!(rate(5.0 / 6.0, 5, 6));
    assert!(!rate(5.0 / 6.0, 4, 6));
    assert!(!rate(
        1.0 / 3.0,
        3_333_333_333_333_332,
        10_000_000_000_000_000
    ));
    assert!(rate(2.0 / 3.0, 2, 3));
    // 0.1 + 0.2 prints 0.30000000000000004: three in ten is below it.
    assert!(!rate(0.1 + 0.2, 3, 10));
    assert!(rate(0.1 + 0.2, 4, 10));
    // Ratios below 1e-19 mean "any failure".
    assert!(rate(1e-300, 1, u64::MAX / 2));
    assert!(!rate(1e-300, 0, 10));
    assert!(rate(f64::from_bits(1), 1, 1_000));
    // Exact for every count below 2^53.
    let n = (1u64 << 53) - 1;
    assert!(rate(1.0, n, n));
    assert!(!rate(1.0, n - 1, n));
    assert!(rate(0.5, n / 2 + 1, n));
    assert!(!rate(0.5, n / 2, n));
}

#[test]
fn tr5_avg_latency_trips_at_exactly_the_threshold() {
    for t_nanos in [1u64, 3, 7, 999, 1_000_000_007] {
        let t = Duration::from_nanos(t_nanos);
        for n in 1u64..=50 {
            let at = |total: u128| {
                let total = Duration::new(
                    (total / 1_000_000_000) as u64,
                    (total % 1_000_000_000) as u32,
                );
                AvgLatency::new(t).trip(&closed(&Metric::new(n, 0, total, &[])))
            };
            let need = u128::from(t_nanos) * u128::from(n);
            assert!(at(need), "t = {t:?}, n = {n}");
            assert!(!at(need - 1), "t = {t:?}, n = {n}");
        }
    }
    // Averages beyond u64 nanoseconds (584 years) are not cut short.
    let thousand_years = Duration::from_secs(1_000 * 365 * 86_400);
    let m = Metric::new(1, 0, Duration::MAX, &[]);
    assert!(AvgLatency::new(thousand_years).trip(&closed(&m)));
    assert!(m.avg_duration().unwrap() > thousand_years);
    assert!(AvgLatency::new(Duration::MAX).trip(&closed(&m)));
    let m = Metric::new(2, 0, Duration::MAX, &[]);
    assert!(!AvgLatency::new(Duration::MAX).trip(&closed(&m)));
    assert!(AvgLatency::new(Duration::MAX / 2).trip(&closed(&m)));
}

// ---------------------------------------------------------------------------------------
// names with control characters.

/// (raw name, how texts show it)
fn hostile_names() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "api\nWARN fake: Circuit Breaker 'db' transitioned from open to closed",
            "api\\nWARN fake: Circuit Breaker 'db' transitioned from open to closed",
        ),
        ("a\rb", "a\\rb"),
        ("tab\there", "tab\\there"),
        ("\x1b[31mred\x1b[0m", "\\u{1b}[31mred\\u{1b}[0m"),
        ("nul\0byte", "nul\\0byte"),
        ("del\x7f", "del\\u{7f}"),
        ("c1\u{85}next", "c1\\u{85}next"),
        ("ls\u{2028}ps\u{2029}", "ls\\u{2028}ps\\u{2029}"),
        ("bidi\u{202e}txt\u{2066}", "bidi\\u{202e}txt\\u{2066}"),
    ]
}

/// Names that texts keep unchanged.
const PLAIN_NAMES: [&str; 6] = [
    "payment_api",
    "café-é",
    "日本の決済",
    "emoji 🚦 ok",
    "back\\slash 'quoted' \"double\"",
    "a_rather_long_circuit_name_for_one_tenant_日本",
];

#[test]
fn r6_call_not_permitted_display_escapes_control_characters() {
    let mut cases = hostile_names();
    cases.extend(PLAIN_NAMES.iter().map(|n| (*n, *n)));
    for (raw, shown) in cases {
        for (state, text) in [
            (State::Open, format!("circuit breaker '{shown}' is open")),
            (
                State::HalfOpen,
                format!("circuit breaker '{shown}' is half-open, call not permitted"),
            ),
            (
                State::ForcedOpen,
                format!("circuit breaker '{shown}' is forced open"),
            ),
        ] {
            let r = CallNotPermitted::new(raw, state, None);
            assert_eq!(r.to_string(), text);
            // The name itself is kept as given.
            assert_eq!(r.circuit_name(), raw);
            let e: Error<io::Error> = Error::Rejected(r);
            assert_eq!(e.to_string(), text);
        }
        // Rejections of a real breaker (short names copied inline, long ones shared).
        let cb = CircuitBreaker::builder(raw).build().unwrap();
        cb.force_open();
        let Err(e) = ok(&cb) else {
            panic!("forced open must reject")
        };
        assert_eq!(
            e.to_string(),
            format!("circuit breaker '{shown}' is forced open")
        );
        assert!(!e.to_string().chars().any(char::is_control));
    }
}

#[test]
fn lg1_r6_log_message_escapes_control_characters_in_the_name() {
    let mut cases = hostile_names();
    cases.extend(PLAIN_NAMES.iter().map(|n| (*n, *n)));
    for (raw, shown) in cases {
        let logs = Logs::default();
        let out = LogText::default();
        let subscriber = out.with_events(&logs);
        let signal = Signal::new(raw, State::Closed, State::Open, SystemTime::UNIX_EPOCH);
        tracing::subscriber::with_default(subscriber, || {
            Listener::on_signal(&LogListener::new(), &signal).unwrap();
        });
        let seen: Vec<_> = logs
            .events()
            .iter()
            .map(|e| (e.message().to_owned(), e.field("circuit").to_owned()))
            .collect();
        assert_eq!(
            seen,
            [(
                format!("Circuit Breaker '{shown}' transitioned from closed to open"),
                // The structured field keeps the name as given.
                raw.to_owned()
            )]
        );
        // One event, one line: a name cannot start a line of its own.
        let text = out.text();
        assert_eq!(text.lines().count(), 1, "{text:?}");
        assert!(
            !text.trim_end_matches('\n').contains(['\n', '\r']),
            "{text:?}"
        );
    }
}

#[test]
fn r6_the_facade_exports_the_escaping_helper_for_custom_listeners() {
    // Integrations are told to show names through `escaped`; the facade did not
    // export it, so a listener written against `fluxgate` could not.
    assert_eq!(fluxgate::escaped("pay\nments").to_string(), "pay\\nments");
    let shown: fluxgate::Escaped<'_> = fluxgate::escaped("\u{1b}[31m");
    assert_eq!(shown.to_string(), "\\u{1b}[31m");
}
