//! Every invalid field gives one error naming the breaker (or `defaults`), the field, the
//! value and the line; core parameter checks (`build()`'s `ConfigError`) come through
//! with the same context. Loading is all or nothing.

use fluxgate::config::{Config, Format};

/// (format, file text, the error's text).
const CASES: &[(Format, &str, &str)] = &[
    // --- the file's shape
    (
        Format::Toml,
        "[defaults]\nwindow = { type = \"count\", size = 5 }\nwindw = 3\n",
        "line 3: defaults, field windw: unknown field `windw`, expected one of `window`, `tracker`, `tripper`, `retry`, `permit`, `max_half_open_calls`, `measure_durations`, `state`, `recovery`, `probe_timeout`",
    ),
    (
        Format::Yaml,
        "breakers:\n  a:\n    windw: 3\n",
        "line 3: breaker \"a\", field windw: unknown field `windw`, expected one of `window`, `tracker`, `tripper`, `retry`, `permit`, `max_half_open_calls`, `measure_durations`, `state`, `recovery`, `probe_timeout`",
    ),
    (
        Format::Toml,
        "[breakers.a]\nretry = { type = \"cooldown\", duration = \"1s\", jiter = 0.1 }\n",
        "line 2: breaker \"a\", field retry.jiter: unknown field `jiter`, expected one of `type`, `duration`, `jitter`, `initial`, `multiplier`, `max`",
    ),
    (
        Format::Toml,
        "[sections]\n",
        "line 1, field sections: unknown field `sections`, expected `defaults` or `breakers`",
    ),
    (
        Format::Toml,
        "[breakers.a]\nmax_half_open_calls = \"ten\"\n",
        "line 2: breaker \"a\", field max_half_open_calls: invalid type: string \"ten\", expected u64",
    ),
    (
        Format::Yaml,
        "breakers:\n  a:\n    max_half_open_calls: -1\n",
        "line 3: breaker \"a\", field max_half_open_calls: invalid type: integer `-1`, expected u64",
    ),
    (
        Format::Toml,
        "[breakers.a]\nstate = \"half_open\"\n",
        "line 2: breaker \"a\", field state: unknown variant `half_open`, expected one of `closed`, `metrics_only`, `forced_open`, `disabled`",
    ),
    (
        Format::Yaml,
        "breakers:\n  a:\n    window: { type: sliding, size: 3 }\n",
        "line 3: breaker \"a\", field window.type: unknown variant `sliding`, expected `count` or `time`",
    ),
    (
        Format::Toml,
        "[breakers.a\n",
        "line 1: unclosed table, expected `]`",
    ),
    (
        Format::Yaml,
        "breakers:\n  a: [1\n",
        "line 2: breaker \"a\": invalid type: sequence, expected a table of breaker fields",
    ),
    (
        Format::Yaml,
        "breakers:\n  a:\n\tstate: closed\n",
        "line 3: breaker \"a\": found character that cannot start any token, while scanning for the next token",
    ),
    // --- components: required and foreign parameters
    (
        Format::Toml,
        "[breakers.a]\nwindow = { type = \"count\" }\n",
        "line 2: breaker \"a\", field window: a count window needs `size`",
    ),
    (
        Format::Yaml,
        "breakers:\n  a:\n    window: { type: time, size: 3 }\n",
        "line 3: breaker \"a\", field window.size: `size` is not a parameter of a time window",
    ),
    (
        Format::Toml,
        "[breakers.a]\nretry = { type = \"backoff\", duration = \"1s\" }\n",
        "line 2: breaker \"a\", field retry.duration: `duration` is not a parameter of a backoff retry",
    ),
    (
        Format::Toml,
        "[breakers.a]\npermit = { type = \"ramp_up\", initial = 0.1, final = 1 }\n",
        "line 2: breaker \"a\", field permit: a ramp_up permit needs `duration`",
    ),
    // --- durations
    (
        Format::Toml,
        "[defaults]\nretry = { type = \"cooldown\", duration = \"30\" }\n",
        "line 2: defaults, field retry.duration = \"30\": a duration needs a unit (\"30s\", \"30ms\"…), got \"30\"",
    ),
    (
        Format::Yaml,
        "defaults:\n  window:\n    type: time\n    duration: soon\n",
        "line 4: defaults, field window.duration = \"soon\": expected a duration such as \"500ms\", \"1m\" or \"1h30m\", got \"soon\" (expected number at 0)",
    ),
    // --- expressions
    (
        Format::Toml,
        "[breakers.payment_api]\ntripper = \"MinRequests(20) & FailureRatio(0.5)\"\n",
        "line 2: breaker \"payment_api\", field tripper = \"MinRequests(20) & FailureRatio(0.5)\": column 19: unknown rule 'FailureRatio' (known: Closed, HalfOpened, MinRequests, FailureRate, AvgLatency, SlowRate, FailureStreak)",
    ),
    (
        Format::Yaml,
        "breakers:\n  payment_api:\n    tripper: MinRequests(20) & (FailureRate(0.5)\n",
        "line 3: breaker \"payment_api\", field tripper = \"MinRequests(20) & (FailureRate(0.5)\": column 36: expected ')' to close the '(' at column 19, found the end",
    ),
    (
        Format::Toml,
        "[breakers.a]\ntracker = \"io &\"\n",
        "line 2: breaker \"a\", field tracker = \"io &\": column 5: expected a name, '(' or '!', found the end",
    ),
    // --- every parameter the core checks, through build()'s ConfigError
    (
        Format::Toml,
        "[breakers.payment_api]\ntripper = \"FailureRate(1.5)\"\n",
        "line 2: breaker \"payment_api\", field tripper = \"FailureRate(1.5)\": FailureRate ratio must be in (0, 1], got 1.5",
    ),
    (
        Format::Yaml,
        "breakers:\n  a:\n    tripper: MinRequests(0) | FailureStreak(2)\n",
        "line 3: breaker \"a\", field tripper = \"MinRequests(0) | FailureStreak(2)\": MinRequests n must be >= 1, got 0",
    ),
    (
        Format::Toml,
        "[breakers.a]\ntripper = \"FailureStreak(0)\"\n",
        "line 2: breaker \"a\", field tripper = \"FailureStreak(0)\": FailureStreak n must be >= 1, got 0",
    ),
    (
        Format::Toml,
        "[breakers.a]\ntripper = \"SlowRate(0.5, 0s)\"\n",
        "line 2: breaker \"a\", field tripper = \"SlowRate(0.5, 0s)\": SlowRate threshold must be greater than zero, got 0ns",
    ),
    (
        Format::Toml,
        "[breakers.a]\ntripper = \"AvgLatency(0s)\"\n",
        "line 2: breaker \"a\", field tripper = \"AvgLatency(0s)\": AvgLatency threshold must be greater than zero, got 0ns",
    ),
    (
        Format::Toml,
        "[breakers.a]\ntripper = \"SlowRate(1s1ms, 1s)\"\n",
        "line 2: breaker \"a\", field tripper = \"SlowRate(1s1ms, 1s)\": column 10: SlowRate expects a number here, got '1s1ms'",
    ),
    (
        Format::Toml,
        "[breakers.a]\nwindow = { type = \"count\", size = 0 }\n",
        "line 2: breaker \"a\", field window.size = 0: CountWindow size must be in 1..=4194304, got 0",
    ),
    (
        Format::Yaml,
        "breakers:\n  a:\n    window:\n      type: time\n      duration: 1500ms\n",
        "line 5: breaker \"a\", field window.duration = \"1500ms\": TimeWindow span must be a whole number of seconds in 1..=86400, got 1.5s",
    ),
    (
        Format::Toml,
        "[breakers.a]\nretry = { type = \"cooldown\", duration = \"0s\" }\n",
        "line 2: breaker \"a\", field retry.duration = \"0s\": Cooldown duration must be greater than zero, got 0ns",
    ),
    (
        Format::Toml,
        "[breakers.a]\nretry = { type = \"cooldown\", duration = \"1s\", jitter = 1.0 }\n",
        "line 2: breaker \"a\", field retry.jitter = 1: Cooldown jitter must be in [0, 1), got 1",
    ),
    (
        Format::Yaml,
        "breakers:\n  a:\n    retry:\n      type: backoff\n      initial: 10s\n      multiplier: 1\n",
        "line 6: breaker \"a\", field retry.multiplier = 1: Backoff multiplier must be greater than 1, got 1",
    ),
    (
        Format::Toml,
        "[breakers.a]\nretry = { type = \"backoff\", initial = \"10s\", max = \"5s\" }\n",
        "line 2: breaker \"a\", field retry.max = \"5s\": Backoff max must be at least initial, got 5s",
    ),
    (
        Format::Toml,
        "[breakers.a]\npermit = { type = \"random\", ratio = 1.5 }\n",
        "line 2: breaker \"a\", field permit.ratio = 1.5: Random ratio must be in [0, 1], got 1.5",
    ),
    (
        Format::Toml,
        "[breakers.a]\npermit = { type = \"ramp_up\", initial = 0.5, final = 0.2, duration = \"1m\" }\n",
        "line 2: breaker \"a\", field permit.final = 0.2: RampUp final must be at least initial, got 0.2",
    ),
    (
        Format::Yaml,
        "defaults:\n  permit: { type: ramp_up, initial: 0, final: 1, duration: 1m }\n",
        "line 2: defaults, field permit.initial = 0: RampUp initial must be in (0, 1], got 0",
    ),
    (
        Format::Toml,
        "[defaults]\n\n\nmax_half_open_calls = 0\n",
        "line 4: defaults, field max_half_open_calls = 0: CircuitBreaker max_half_open_calls must be >= 1, got 0",
    ),
];

#[test]
fn every_invalid_field_names_breaker_field_value_and_line() {
    let mut wrong = Vec::new();
    for (format, text, expected) in CASES {
        match Config::from_str_as(text, *format) {
            Ok(_) => wrong.push(format!("{format:?} {text:?}: loaded, expected {expected}")),
            Err(e) if e.to_string() != *expected => wrong.push(format!(
                "{format:?} {text:?}:\n   got  {e}\n   want {expected}"
            )),
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn nine_slow_thresholds_are_one_too_many() {
    // M-3: at most 8 distinct SlowRate thresholds per breaker.
    let rules: Vec<String> = (1..=9).map(|i| format!("SlowRate(0.5, {i}s)")).collect();
    let text = format!("[breakers.a]\ntripper = \"{}\"\n", rules.join(" | "));
    let err = Config::from_toml_str(&text).unwrap_err();
    assert_eq!(err.field(), Some("tripper"));
    assert_eq!(err.line(), Some(2));
    assert!(
        err.message()
            .contains("at most 8 distinct SlowRate thresholds"),
        "{err}"
    );
}

#[test]
fn errors_carry_their_parts() {
    let err = Config::from_yaml_str(
        "breakers:\n  search_api:\n    retry: { type: cooldown, duration: 1s, jitter: 2 }\n",
    )
    .unwrap_err();
    assert_eq!(err.file(), None);
    assert_eq!(err.line(), Some(3));
    assert_eq!(err.breaker(), Some("search_api"));
    assert_eq!(err.field(), Some("retry.jitter"));
    assert_eq!(err.value(), Some("2"));
    assert_eq!(err.message(), "Cooldown jitter must be in [0, 1), got 2");
}

#[test]
fn hostile_input_is_an_error_not_a_panic() {
    let deep = format!(
        "[breakers.a]\ntripper = \"{}Closed{}\"\n",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    assert!(
        Config::from_toml_str(&deep)
            .unwrap_err()
            .message()
            .contains("nested deeper")
    );
    let nots = format!(
        "breakers:\n  a:\n    tripper: \"{}Closed\"\n",
        "!".repeat(100_000)
    );
    assert!(Config::from_yaml_str(&nots).is_err());
    for text in [
        "\u{0}",
        "breakers: 3",
        "breakers:\n  a: 3\n",
        "[[breakers]]\n",
        "defaults = 1\n",
    ] {
        let _ = Config::from_toml_str(text);
        let _ = Config::from_yaml_str(text);
    }
    let huge = "[breakers.a]\nwindow = { type = \"count\", size = 18446744073709551615 }\nmax_half_open_calls = 18446744073709551615\n";
    assert!(Config::from_toml_str(huge).is_err());
    let long =
        "[breakers.a]\nretry = { type = \"cooldown\", duration = \"99999999999999999999h\" }\n";
    assert!(Config::from_toml_str(long).is_err());
}

#[test]
fn deeply_nested_files_are_an_error_with_their_line() {
    // Before: the YAML parser refused it too, but only after a scan quadratic in the
    // depth: a 200 KB line of brackets took minutes.
    let deep = format!(
        "breakers:\n  a:\n    state: disabled\n    tripper: {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let err = Config::from_yaml_str(&deep).unwrap_err();
    assert_eq!(err.message(), "brackets nested deeper than 128 levels");
    assert_eq!(err.line(), Some(4));
    // Brackets in quoted strings, comments and words do not count.
    let fine = format!(
        "# {}\nbreakers:\n  a:\n    state: disabled # it's {}\n    tripper: \"{}Closed\"\n  b: {{ state: disabled }}\n",
        "[".repeat(500),
        "{".repeat(500),
        "'[".repeat(300),
    );
    let err = Config::from_yaml_str(&fine).unwrap_err();
    assert_ne!(err.message(), "brackets nested deeper than 128 levels");
    let ok = format!(
        "breakers:\n  a:\n    state: 'disabled' # {}\n  b: {{ state: \"disabled\" }}\n",
        "[".repeat(500)
    );
    let c = Config::from_yaml_str(&ok).unwrap();
    assert_eq!(c.names().count(), 2);
    // TOML: its parser stops at its own recursion limit.
    let deep = format!(
        "[breakers.a]\ntripper = {}{}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let err = Config::from_toml_str(&deep).unwrap_err();
    assert_eq!(err.line(), Some(2));
    assert!(err.message().contains("recursion"), "{err}");
}

/// Runs `f` on a thread with a small stack (256 KiB, where a thread's default is 2 MiB):
/// what a configuration can reach must not need a deep one.
fn on_a_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

/// `n` copies of `term` joined by `op`.
fn chain(term: &str, op: &str, n: usize) -> String {
    vec![term; n].join(op)
}

/// A quoted value as an error message shows it: its first 120 characters and its length
/// when it is longer.
fn shown(value: &str) -> String {
    let quoted = format!("\"{value}\"");
    if quoted.chars().count() <= 120 {
        return quoted;
    }
    let head: String = quoted.chars().take(120).collect();
    format!("{head}… ({} bytes)", quoted.len())
}

#[test]
fn r3_a_flat_chain_of_100_000_terms_is_an_error_not_a_stack_overflow() {
    // Before: `MinRequests(1) & MinRequests(1) & …` parsed, without nesting, into a tree
    // as deep as the chain is long, and every walk of it recursed: the loader overflowed
    // the stack (and aborted the process) at ~20,000 terms on a 2 MiB thread, sooner here.
    on_a_small_stack(|| {
        for op in [" & ", " | "] {
            let rules = chain("MinRequests(1)", op, 100_000);
            let names = chain("All", op, 100_000);
            // The 65th term is the first too many: 64 terms and their operators before it.
            let (rule_column, name_column) = (64 * 17 + 1, 64 * 6 + 1);
            let cases = [
                (
                    Format::Toml,
                    format!("[breakers.a]\ntripper = \"{rules}\"\n"),
                    format!(
                        "line 2: breaker \"a\", field tripper = {}: column {rule_column}: \
                         more than 64 terms (rules or names) in one expression",
                        shown(&rules)
                    ),
                ),
                (
                    Format::Yaml,
                    format!("defaults:\n  tracker: \"{names}\"\n"),
                    format!(
                        "line 2: defaults, field tracker = {}: column {name_column}: \
                         more than 64 terms (rules or names) in one expression",
                        shown(&names)
                    ),
                ),
                (
                    Format::Toml,
                    format!(
                        "[breakers.b]\nrecovery = {{ type = \"probes\", n = 3, rule = \"{rules}\" }}\n"
                    ),
                    format!(
                        "line 2: breaker \"b\", field recovery.rule = {}: column {rule_column}: \
                         more than 64 terms (rules or names) in one expression",
                        shown(&rules)
                    ),
                ),
            ];
            for (format, text, expected) in cases {
                let err = Config::from_str_as(&text, format).unwrap_err();
                assert_eq!(err.to_string(), expected, "{format:?}{op:?}");
                assert_eq!(err.to_string().lines().count(), 1);
            }
        }
    });
}

#[test]
fn r3_an_expression_may_have_64_terms_and_not_65() {
    // The deepest tree the limits allow: 64 `!` around the first of 64 terms, 128 levels.
    let tripper = format!(
        "{}FailureStreak(1){}",
        "!".repeat(64),
        " & MinRequests(1)".repeat(63)
    );
    let tracker = format!("{}All{}", "!".repeat(64), " | All".repeat(63));
    let text = format!("[breakers.a]\ntripper = \"{tripper}\"\ntracker = \"{tracker}\"\n");
    let config = Config::from_toml_str(&text).unwrap();
    let cb = crate::breaker(&config, "a", &fluxgate::clock::ManualClock::new());
    // Built trippers and trackers are evaluated on every call, on the caller's thread:
    // even the deepest runs on a small stack.
    on_a_small_stack(move || {
        let _ = crate::fail(&cb);
        assert_eq!(
            cb.state(),
            fluxgate::State::Open,
            "FailureStreak(1) tripped"
        );
    });
    // The longest flat chain loads on a small stack too.
    on_a_small_stack(|| {
        let text = format!("[defaults]\ntripper = \"{}\"\n", chain("Closed", " | ", 64));
        assert!(Config::from_toml_str(&text).is_ok());
    });

    // One term more, wherever it is, is refused at its column.
    let over = format!("{tripper} | Closed");
    let err =
        Config::from_yaml_str(&format!("breakers:\n  a:\n    tripper: \"{over}\"\n")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "line 3: breaker \"a\", field tripper = {}: column {}: \
             more than 64 terms (rules or names) in one expression",
            shown(&over),
            tripper.len() + 4
        )
    );
    let err =
        Config::from_toml_str(&format!("[defaults]\ntracker = \"All & {tracker}\"\n")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "line 2: defaults, field tracker = {}: column {}: \
             more than 64 terms (rules or names) in one expression",
            shown(&format!("All & {tracker}")),
            tracker.len() + 4
        )
    );
}

#[test]
fn a_breaker_written_twice_is_an_error_with_the_line_of_the_second() {
    // Before: YAML kept the second section and dropped the first without a word.
    let yaml = "breakers:\n  payment_api:\n    state: disabled\n  payment_api:\n    tripper: \"FailureStreak(1)\"\n";
    let err = Config::from_yaml_str(yaml).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 4, field breakers: duplicate breaker \"payment_api\""
    );
    // The first repeated name, wherever it is, quoted or not, block or flow.
    let err = Config::from_yaml_str(
        "breakers:\n  a: {}\n  b:\n    state: disabled\n  # a:\n  c: {}\n  'b':\n  a:\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 7, field breakers: duplicate breaker \"b\""
    );
    let err =
        Config::from_yaml_str("defaults: {}\nbreakers: { a: {}, b: {}, a: {} }\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 2, field breakers: duplicate breaker \"a\""
    );
    // From a file, the file too.
    let dir = std::env::temp_dir().join(format!("fluxgate-config-twice-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("breakers.yaml");
    std::fs::write(&path, yaml).unwrap();
    let err = Config::from_path(&path).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        err.to_string(),
        format!(
            "{}, line 4, field breakers: duplicate breaker \"payment_api\"",
            path.display()
        )
    );
    // TOML's parser refuses it itself, as before, by either spelling.
    let toml = "[breakers.payment_api]\nstate = \"disabled\"\n[breakers.payment_api]\ntripper = \"FailureStreak(1)\"\n";
    assert_eq!(
        Config::from_toml_str(toml).unwrap_err().to_string(),
        "line 3: duplicate key"
    );
    let toml = "[breakers]\npayment_api = { state = \"disabled\" }\npayment_api = { tripper = \"FailureStreak(1)\" }\n";
    assert_eq!(
        Config::from_toml_str(toml).unwrap_err().to_string(),
        "line 3: duplicate key"
    );
    // Distinct names still load.
    let ok = Config::from_yaml_str("breakers:\n  a:\n    state: disabled\n  b: {}\n").unwrap();
    assert_eq!(ok.names().collect::<Vec<_>>(), ["a", "b"]);
}

#[test]
fn a_null_field_is_an_error_not_the_default() {
    // Before: every field was read as "not set" when null, so `tracker:` with nothing
    // after it (or `~`, or `null`) silently kept the default's tracker.
    let null = |line: usize, scope: &str, field: &str| {
        format!("line {line}: {scope}, field {field}: a value is required (null given)")
    };
    let a = "breaker \"a\"";
    let cases = [
        // Block form: nothing after the colon, `~`, `null` (any case YAML allows).
        ("breakers:\n  a:\n    tracker:\n", null(3, a, "tracker")),
        (
            "breakers:\n  a:\n    tracker:\n    state: closed\n",
            null(3, a, "tracker"),
        ),
        ("breakers:\n  a:\n    tripper: ~\n", null(3, a, "tripper")),
        ("breakers:\n  a:\n    window: null\n", null(3, a, "window")),
        ("breakers:\n  a:\n    state: Null\n", null(3, a, "state")),
        ("breakers:\n  a:\n    retry: NULL\n", null(3, a, "retry")),
        (
            "breakers:\n  a:\n    state: closed\n    window: { type: count, size: 3 }\n\n    max_half_open_calls:  # set later\n",
            null(6, a, "max_half_open_calls"),
        ),
        (
            "breakers:\n  a:\n    measure_durations: ~\n",
            null(3, a, "measure_durations"),
        ),
        ("breakers:\n  a:\n    permit:\n", null(3, a, "permit")),
        ("breakers:\n  a:\n    recovery: ~\n", null(3, a, "recovery")),
        (
            "breakers:\n  a:\n    probe_timeout: null\n",
            null(3, a, "probe_timeout"),
        ),
        // Flow form.
        ("breakers:\n  a: { tracker: ~ }\n", null(2, a, "tracker")),
        (
            "breakers:\n  a: { state: closed, tripper: }\n",
            null(2, a, "tripper"),
        ),
        ("breakers: { a: { window: null } }\n", null(1, a, "window")),
        (
            "breakers:\n  a: {\n    state: closed,\n    tracker: ~\n  }\n",
            null(4, a, "tracker"),
        ),
        // The defaults' fields.
        (
            "defaults:\n  tracker:\nbreakers:\n  a: {}\n",
            null(2, "defaults", "tracker"),
        ),
        ("defaults: { tripper: ~ }\n", null(1, "defaults", "tripper")),
        (
            "defaults:\n  state: disabled\n  window: null\n",
            null(3, "defaults", "window"),
        ),
        // Parameters of the nested tables, which would keep their own defaults too.
        (
            "defaults:\n  retry:\n    type: backoff\n    initial: 10s\n    max:\n    jitter: 0.1\n",
            null(5, "defaults", "retry.max"),
        ),
        (
            "breakers:\n  a:\n    retry: { type: cooldown, duration: 1s, jitter: ~ }\n",
            null(3, a, "retry.jitter"),
        ),
        (
            "breakers:\n  a:\n    retry: { type: never, duration: null }\n",
            null(3, a, "retry.duration"),
        ),
        (
            "breakers:\n  a:\n    retry:\n      type: backoff\n      initial: 1s\n      multiplier: ~\n",
            null(6, a, "retry.multiplier"),
        ),
        (
            "breakers:\n  a:\n    window: { type: count, size: ~ }\n",
            null(3, a, "window.size"),
        ),
        (
            "breakers:\n  a:\n    window:\n      type: time\n      duration:\n",
            null(5, a, "window.duration"),
        ),
        (
            "breakers:\n  a:\n    permit: { type: random, ratio: null }\n",
            null(3, a, "permit.ratio"),
        ),
        (
            "defaults:\n  permit:\n    type: ramp_up\n    initial: 0.1\n    final: ~\n    duration: 1m\n",
            null(5, "defaults", "permit.final"),
        ),
        (
            "breakers:\n  a:\n    recovery: { type: successes, n: ~ }\n",
            null(3, a, "recovery.n"),
        ),
        (
            "breakers:\n  a:\n    recovery:\n      type: by_tripper\n      rule:\n",
            null(5, a, "recovery.rule"),
        ),
        // The first null of a file is the one reported.
        (
            "defaults:\n  state: closed\nbreakers:\n  a: ~\n  b:\n    tracker: io\n    tripper: ~\n    state: ~\n",
            null(7, "breaker \"b\"", "tripper"),
        ),
    ];
    let mut wrong = Vec::new();
    for (text, expected) in &cases {
        match Config::from_yaml_str(text) {
            Ok(_) => wrong.push(format!("{text:?}: loaded, expected {expected}")),
            Err(e) if e.to_string() != *expected => {
                wrong.push(format!("{text:?}:\n   got  {e}\n   want {expected}"))
            }
            Err(_) => {}
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    let err = Config::from_yaml_str("breakers:\n  payment_api:\n    tracker:\n").unwrap_err();
    assert_eq!(err.breaker(), Some("payment_api"));
    assert_eq!(err.field(), Some("tracker"));
    assert_eq!(err.value(), None);
    assert_eq!(err.message(), "a value is required (null given)");

    // A whole section may be null, meaning every field inherited; so may `defaults`,
    // meaning D-1; a quoted "null" is a string (here, an unknown tracker name).
    let d1 = fluxgate::config::BreakerConfig::default();
    let c =
        Config::from_yaml_str("defaults:\nbreakers:\n  a:\n  b: ~\n  c: null\n  d: {}\n").unwrap();
    assert_eq!(c.names().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    for name in ["a", "b", "c", "d"] {
        assert_eq!(c.breaker(name), Some(&d1), "{name}");
    }
    let c = Config::from_yaml_str("defaults: ~\nbreakers:\n  a:\n").unwrap();
    assert_eq!(c.defaults(), &d1);
    let c =
        Config::from_yaml_str("defaults:\n  max_half_open_calls: 3\nbreakers:\n  a:\n").unwrap();
    assert_eq!(c.get("a").max_half_open_calls, 3);
    let c = Config::from_yaml_str("breakers:\n  a:\n    tracker: \"null\"\n").unwrap();
    assert_eq!(c.get("a").tracker.to_string(), "null");

    // TOML has no null: a key without a value is a syntax error, as before, and empty
    // sections inherit, as before.
    for (text, expected) in [
        (
            "[breakers.a]\ntracker =\n",
            "line 2: string values must be quoted, expected literal string",
        ),
        (
            "[breakers.a]\nretry = { type = \"backoff\", initial = \"10s\", max = }\n",
            "line 2: invalid literal string, expected `'`",
        ),
    ] {
        assert_eq!(
            Config::from_toml_str(text).unwrap_err().to_string(),
            expected
        );
    }
    let c = Config::from_toml_str("[defaults]\n[breakers.a]\n[breakers.b]\nstate = \"disabled\"\n")
        .unwrap();
    assert_eq!(c.defaults(), &d1);
    assert_eq!(c.breaker("a"), Some(&d1));
    assert_eq!(c.get("b").tracker, d1.tracker);
    let c = Config::from_toml_str(
        "[defaults]\nretry = { type = \"backoff\", initial = \"10s\" }\n[breakers.a]\n",
    )
    .unwrap();
    assert_eq!(
        c.get("a").retry,
        fluxgate::config::RetryConfig::Backoff {
            initial: std::time::Duration::from_secs(10),
            multiplier: 2.0,
            max: std::time::Duration::from_secs(300),
            jitter: 0.0
        }
    );
}
