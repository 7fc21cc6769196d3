//! The expression language: round trips, precedence (`!` > `&` > `|`), every rule name,
//! and tracker names.

use fluxgate::config::expr::{Expr, parse};
use fluxgate::config::rules::{RULES, build_tripper};
use fluxgate::config::{Config, Trackers, parse_tracker, parse_tripper};
use fluxgate::trippers::{TripContext, Tripper};
use fluxgate::{Metric, State};
use proptest::prelude::*;
use std::time::Duration;

#[test]
fn expressions_print_as_they_are_written() {
    for e in [
        "MinRequests(20) & (FailureRate(0.5) | SlowRate(0.3, 1s))",
        "FailureStreak(5) | MinRequests(100) & FailureRate(0.5)",
        "!Closed & HalfOpened",
        "!(Closed | HalfOpened)",
        "AvgLatency(1h30m) | SlowRate(1.0, 500ms)",
    ] {
        assert_eq!(parse_tripper(e).unwrap().to_string(), e);
    }
    // Spacing, redundant parentheses and units are normalised.
    assert_eq!(
        parse_tripper("((FailureStreak(5)))|(MinRequests( 100 )&FailureRate(0.5))")
            .unwrap()
            .to_string(),
        "FailureStreak(5) | MinRequests(100) & FailureRate(0.5)"
    );
    assert_eq!(
        parse_tripper("SlowRate(0.3, 1000ms)").unwrap().to_string(),
        "SlowRate(0.3, 1s)"
    );
    assert_eq!(
        parse_tripper("AvgLatency(90m)").unwrap().to_string(),
        "AvgLatency(1h30m)"
    );
    // Numbers print in plain decimal, the shortest that reads back as the same `f64`, and
    // an exponent is read: before, `1e-5` printed as `1e-5` and did not parse.
    for (written, printed) in [
        ("FailureRate(0.00001)", "FailureRate(0.00001)"),
        ("FailureRate(1e-5)", "FailureRate(0.00001)"),
        ("FailureRate(1E-5)", "FailureRate(0.00001)"),
        ("SlowRate(2.5e-1, 1s)", "SlowRate(0.25, 1s)"),
        ("SlowRate(2.5E+3, 1s)", "SlowRate(2500.0, 1s)"),
        ("FailureRate(1e0)", "FailureRate(1.0)"),
        ("FailureRate(1)", "FailureRate(1.0)"),
        ("FailureRate(0.000000001)", "FailureRate(0.000000001)"),
        (
            "FailureRate(5e-324)",
            &format!("FailureRate(0.{}5)", "0".repeat(323)),
        ),
        (
            "MinRequests(20) & FailureRate(1.5e-7) | !FailureRate(1e-4)",
            "MinRequests(20) & FailureRate(0.00000015) | !FailureRate(0.0001)",
        ),
    ] {
        let e = parse_tripper(written).unwrap_or_else(|err| panic!("{written}: {err}"));
        assert_eq!(e.to_string(), printed, "{written}");
        assert_eq!(parse_tripper(printed).unwrap(), e, "{printed}");
    }
}

#[test]
fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
    let same = |a: &str, b: &str| assert_eq!(parse(a).unwrap(), parse(b).unwrap(), "{a} vs {b}");
    same("a | b & c", "a | (b & c)");
    same("a & b | c", "(a & b) | c");
    same("!a & b", "(!a) & b");
    same("!a | b & !c", "(!a) | (b & (!c))");
    same("a | b | c", "(a | b) | c");
    same("a & b & c", "(a & b) & c");
    assert_ne!(parse("!a & b").unwrap(), parse("!(a & b)").unwrap());
    assert_ne!(parse("(a | b) & c").unwrap(), parse("a | b & c").unwrap());

    // And as behaviour: `FailureStreak(1) | Closed & HalfOpened` trips on one failure
    // (`Closed & HalfOpened` is never true); read as `(… | Closed) & HalfOpened` it
    // could never trip in `closed`.
    let rule = build_tripper(&parse_tripper("FailureStreak(1) | Closed & HalfOpened").unwrap());
    assert!(rule.trip(&TripContext::new(&Metric::default(), State::Closed, 1)));
    let rule = build_tripper(&parse_tripper("!FailureStreak(1) & Closed").unwrap());
    assert!(rule.trip(&TripContext::new(&Metric::default(), State::Closed, 0)));
    assert!(!rule.trip(&TripContext::new(&Metric::default(), State::Closed, 1)));
}

#[test]
fn every_rule_of_the_table_parses_and_builds() {
    for rule in RULES {
        let args: Vec<&str> = rule
            .params
            .iter()
            .map(|p| match p {
                fluxgate::config::rules::Param::Count => "3",
                fluxgate::config::rules::Param::Ratio => "0.5",
                fluxgate::config::rules::Param::Duration => "2s",
            })
            .collect();
        let text = if args.is_empty() {
            rule.name.to_owned()
        } else {
            format!("{}({})", rule.name, args.join(", "))
        };
        let e = parse_tripper(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(e.to_string(), text);
        build_tripper(&e).validate().unwrap();
    }
}

#[test]
fn expression_errors_name_the_column() {
    for (text, column, message) in [
        (
            "MinRequests(20) & FailureRatio(0.5)",
            19,
            "unknown rule 'FailureRatio'",
        ),
        (
            "MinRequests(20) & (FailureRate(0.5)",
            36,
            "expected ')' to close the '(' at column 19",
        ),
        (
            "MinRequests(20) && FailureRate(0.5)",
            17,
            "write '&', not '&&'",
        ),
        (
            "MinRequests(2.5)",
            13,
            "MinRequests expects a whole number here, got '2.5'",
        ),
        ("SlowRate(0.3)", 13, "SlowRate takes 2 arguments, got 1"),
        ("SlowRate(0.3, 1)", 15, "a duration needs a unit"),
        ("FailureRate", 12, "FailureRate needs arguments"),
        (
            "FailureRate(0.5) FailureStreak(2)",
            18,
            "expected '&', '|' or the end",
        ),
        ("Closed |", 9, "expected a name, '(' or '!', found the end"),
    ] {
        let err = parse_tripper(text).unwrap_err();
        assert_eq!(err.column, column, "{text}: {err}");
        assert!(err.message.contains(message), "{text}: {err}");
    }
}

#[test]
fn unknown_tracker_name_lists_the_known_ones() {
    let config =
        Config::from_toml_str("[breakers.payment_api]\ntracker = \"io | timeuot\"\n").unwrap();
    let known = Trackers::new()
        .add::<std::io::Error>("io")
        .add_fn("timeout", |_| true);
    let err = config
        .builder::<fluxgate::CircuitBreaker>("payment_api", &known)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 2: breaker \"payment_api\", field tracker = \"io | timeuot\": \
         column 6: unknown tracker 'timeuot' (known: All, io, timeout)"
    );
    assert_eq!(err.breaker(), Some("payment_api"));
    assert_eq!(err.field(), Some("tracker"));
    assert_eq!(config.check(&known).unwrap_err(), err);
    // The value is shown as written, so the column points into it; a tracker inherited
    // from [defaults] is reported there.
    let spaced =
        Config::from_yaml_str("defaults:\n  tracker: \"io|(timeuot)\"\nbreakers:\n  b: {}\n")
            .unwrap();
    assert_eq!(
        spaced
            .builder::<fluxgate::CircuitBreaker>("b", &known)
            .unwrap_err()
            .to_string(),
        "line 2: defaults, field tracker = \"io|(timeuot)\": column 5: unknown tracker 'timeuot' (known: All, io, timeout)"
    );
    // Arguments after a tracker name are a syntax error.
    assert_eq!(parse_tracker("io(1)").unwrap_err().column, 3);
}

/// A ratio in (0, 1] as it may be written: any `f64` there (subnormals included, half of
/// them uniform over the bit patterns so that every exponent comes up), in exponent form
/// (`1e-5`) or as Rust's `Debug` writes it (`1e-5`, `0.5`).
fn ratio_text() -> impl Strategy<Value = String> {
    let ratio = prop_oneof![
        (1u64..=1 << 53).prop_map(|n| n as f64 / (1u64 << 53) as f64),
        (1u64..=1.0f64.to_bits()).prop_map(f64::from_bits),
    ];
    (ratio, any::<bool>()).prop_map(|(r, exp)| {
        if exp {
            format!("{r:e}")
        } else {
            format!("{r:?}")
        }
    })
}

#[test]
fn a_ratio_with_an_exponent_loads_from_a_file_as_its_decimal() {
    // Before: `1e-5` lexed as `1e` and `-5`, an error.
    let dir = std::env::temp_dir().join(format!("fluxgate-config-exponent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("breakers.toml");
    let yaml = dir.join("breakers.yaml");
    std::fs::write(&toml, "[breakers.a]\ntripper = \"FailureRate(1e-5)\"\n").unwrap();
    std::fs::write(&yaml, "breakers:\n  a:\n    tripper: FailureRate(1e-5)\n").unwrap();
    let loaded = [Config::from_path(&toml), Config::from_path(&yaml)];
    std::fs::remove_dir_all(&dir).unwrap();
    let decimal =
        Config::from_toml_str("[breakers.a]\ntripper = \"FailureRate(0.00001)\"\n").unwrap();
    for config in loaded {
        let config = config.unwrap();
        assert_eq!(config, decimal);
        let tripper = &config.get("a").tripper;
        assert_eq!(tripper, &parse_tripper("FailureRate(0.00001)").unwrap());
        assert_eq!(tripper.to_string(), "FailureRate(0.00001)");
        // And what it builds trips like the decimal: 1 failure in 100 000 calls does.
        let built = build_tripper(tripper);
        let m = Metric::new(100_000, 1, Duration::ZERO, &[]);
        assert!(built.trip(&TripContext::new(&m, State::Closed, 0)));
        let m = Metric::new(100_001, 1, Duration::ZERO, &[]);
        assert!(!built.trip(&TripContext::new(&m, State::Closed, 0)));
    }
}

fn leaf() -> impl Strategy<Value = String> {
    prop_oneof![
        ratio_text().prop_map(|r| format!("FailureRate({r})")),
        (ratio_text(), 1u64..100_000).prop_map(|(r, ms)| format!("SlowRate({r}, {ms}ms)")),
        Just("Closed".to_owned()),
        Just("HalfOpened".to_owned()),
        (1u64..1000).prop_map(|n| format!("MinRequests({n})")),
        (1u64..1000).prop_map(|n| format!("FailureStreak({n})")),
        (1u32..=100).prop_map(|p| format!("FailureRate({})", f64::from(p) / 100.0)),
        (1u64..100_000, 1u32..=100).prop_map(|(ms, p)| format!(
            "SlowRate({}, {})",
            f64::from(p) / 100.0,
            fluxgate::config::format_duration(Duration::from_millis(ms))
        )),
        (1u64..10_000_000).prop_map(|us| format!(
            "AvgLatency({})",
            fluxgate::config::format_duration(Duration::from_micros(us))
        )),
    ]
}

fn tree() -> impl Strategy<Value = String> {
    leaf().prop_recursive(5, 32, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|a| format!("!({a})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) & ({b})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a}) | ({b})")),
        ]
    })
}

proptest! {
    /// Printing a parsed expression and parsing it again gives the same tree, and the
    /// printed form is a fixed point; the built tripper judges like the original.
    #[test]
    fn printing_and_parsing_round_trip(text in tree(), total in 0u64..50, failed in 0u64..50, streak in 0u64..10) {
        let e = parse_tripper(&text).unwrap();
        let printed = e.to_string();
        let again = parse_tripper(&printed).unwrap();
        prop_assert_eq!(&again, &e);
        prop_assert_eq!(again.to_string(), printed);
        let m = Metric::new(total.max(failed), failed, Duration::from_millis(total * 7), &[]);
        for state in [State::Closed, State::HalfOpen] {
            let ctx = TripContext::new(&m, state, streak);
            prop_assert_eq!(build_tripper(&e).trip(&ctx), build_tripper(&again).trip(&ctx));
        }
        let _ = matches!(e, Expr::Leaf(_));
    }
}
