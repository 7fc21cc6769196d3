//! Regression tests for reliability rules: no panic at call time from a configuration
//! that built.

mod support;

use std::time::Duration;

use fluxgate::clock::ManualClock;
use fluxgate::permits::{Permit, RampUp};
use fluxgate::retries::{Backoff, Cooldown, Retry, RetryContext};
use fluxgate::trippers::FailureStreak;
use fluxgate::{CircuitBreaker, Error, State};
use support::*;

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
