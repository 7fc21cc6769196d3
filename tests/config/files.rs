//! The annotated example files of docs/config: they load, TOML and YAML agree, and the
//! breakers they describe behave as the comments say.

use fluxgate::State;
use fluxgate::clock::ManualClock;
use fluxgate::config::{Config, InitialState, PermitConfig, RetryConfig, WindowConfig};
use std::time::Duration;

use crate::{both, breaker, fail, trackers};

const TOML: &str = include_str!("../../docs/config/breakers.toml");
const YAML: &str = include_str!("../../docs/config/breakers.yaml");

#[test]
fn the_example_files_load_and_agree() {
    let [toml, _yaml] = both(TOML, YAML);
    assert_eq!(
        toml.names().collect::<Vec<_>>(),
        [
            "inventory_api",
            "legacy_reports",
            "payment_api",
            "recommendations",
            "search_api"
        ]
    );
    toml.check(&trackers()).unwrap();
    // D-1 spelled out in [defaults] is D-1.
    assert_eq!(toml.defaults(), &fluxgate::config::BreakerConfig::default());
    let payment = toml.get("payment_api");
    assert_eq!(payment.window, WindowConfig::Count(200));
    assert_eq!(payment.max_half_open_calls, 5);
    assert_eq!(
        payment.retry,
        RetryConfig::Backoff {
            initial: Duration::from_secs(10),
            multiplier: 2.0,
            max: Duration::from_secs(300),
            jitter: 0.1
        }
    );
    // Inherited from [defaults].
    assert_eq!(payment.permit, PermitConfig::default());
    let search = toml.get("search_api");
    assert_eq!(search.window, WindowConfig::Time(Duration::from_secs(60)));
    assert_eq!(toml.get("inventory_api").permit, PermitConfig::Random(0.5));
    assert_eq!(
        toml.get("inventory_api").retry,
        RetryConfig::Cooldown {
            duration: Duration::from_secs(90),
            jitter: 0.2
        }
    );
    assert_eq!(toml.get("recommendations").state, InitialState::MetricsOnly);
    assert_eq!(toml.get("legacy_reports").retry, RetryConfig::Never);
    // A name the file does not mention gets the defaults.
    assert_eq!(toml.get("unknown_api"), toml.defaults());
}

#[test]
fn the_example_breakers_behave_the_same_from_either_file() {
    for config in both(TOML, YAML) {
        let clock = ManualClock::new();
        // inventory_api: FailureStreak(5) | … (TR-7): the fifth failure in a row opens it.
        let inventory = breaker(&config, "inventory_api", &clock);
        for _ in 0..4 {
            let _ = fail(&inventory);
        }
        assert_eq!(inventory.state(), State::Closed);
        let _ = fail(&inventory);
        assert_eq!(inventory.state(), State::Open);
        // Cooldown 1m30s ± 20 % (RT-2): shut at 71 s, probing by 109 s.
        clock.advance(Duration::from_secs(71));
        assert!(fail(&inventory).unwrap_err().is_rejected());

        // recommendations: metrics_only (SM-10), never opens, records.
        let shadow = breaker(&config, "recommendations", &clock);
        for _ in 0..200 {
            let _ = fail(&shadow);
        }
        assert_eq!(shadow.state(), State::MetricsOnly);
        assert_eq!(shadow.info().metric.failure_count, 100);

        // legacy_reports: disabled (SM-11), nothing recorded.
        let legacy = breaker(&config, "legacy_reports", &clock);
        let _ = fail(&legacy);
        assert_eq!(legacy.state(), State::Disabled);
        assert_eq!(legacy.info().metric.total_count, 0);
    }
}

#[test]
fn a_file_is_read_by_its_extension() {
    let dir = std::env::temp_dir().join(format!("fluxgate-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("breakers.toml");
    let yaml = dir.join("breakers.yml");
    std::fs::write(&toml, TOML).unwrap();
    std::fs::write(&yaml, YAML).unwrap();
    let a = Config::from_path(&toml).unwrap();
    let b = Config::from_path(&yaml).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.file(), Some(toml.display().to_string().as_str()));

    // An error in a file names the file.
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "breakers:\n  a:\n    windw: {}\n").unwrap();
    let err = Config::from_path(&bad).unwrap_err();
    assert_eq!(err.file(), Some(bad.display().to_string().as_str()));
    assert!(
        err.to_string()
            .starts_with(&format!("{}, line 3: breaker \"a\"", bad.display())),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_configuration_page_shows_the_example_files_as_they_are() {
    let page = include_str!("../../docs/configuration.md");
    assert!(
        page.contains(&format!("```toml\n{TOML}```")),
        "docs/configuration.md differs from docs/config/breakers.toml"
    );
    assert!(
        page.contains(&format!("```yaml\n{YAML}```")),
        "docs/configuration.md differs from docs/config/breakers.yaml"
    );
}

#[test]
fn the_demo_file_describes_the_demo_breakers() {
    let config = Config::from_toml_str(include_str!("../../demo/breakers.toml")).unwrap();
    assert_eq!(
        config.names().collect::<Vec<_>>(),
        ["inventory_api", "payment_api", "search_api"]
    );
    config.check(&trackers()).unwrap();
    assert_eq!(config.get("inventory_api").window, WindowConfig::Count(20));
    assert_eq!(
        config.get("search_api").window,
        WindowConfig::Time(Duration::from_secs(5))
    );
    let clock = ManualClock::new();
    let inventory = breaker(&config, "inventory_api", &clock);
    for _ in 0..5 {
        let _ = fail(&inventory);
    }
    assert_eq!(inventory.state(), State::Open);
}

#[test]
fn sm9_recovery_rules_and_probe_timeout_come_from_the_file() {
    use fluxgate::config::RecoveryConfig;
    let [t, _] = both(
        r#"
[breakers.a]
tripper = "FailureStreak(1)"
retry = { type = "always" }
permit = { type = "all" }
recovery = { type = "successes", n = 3 }
probe_timeout = "2s"

[breakers.b]
recovery = { type = "probes", n = 10, rule = "FailureRate(0.5)" }
"#,
        r#"
breakers:
  a:
    tripper: "FailureStreak(1)"
    retry: { type: always }
    permit: { type: all }
    recovery: { type: successes, n: 3 }
    probe_timeout: 2s
  b:
    recovery: { type: probes, n: 10, rule: "FailureRate(0.5)" }
"#,
    );
    assert_eq!(t.get("a").recovery, RecoveryConfig::Successes(3));
    assert_eq!(t.get("a").probe_timeout, Some(Duration::from_secs(2)));
    assert!(matches!(
        t.get("b").recovery,
        RecoveryConfig::Probes { n: 10, .. }
    ));
    assert_eq!(t.get("b").probe_timeout, None);
    // Three successful probes close it, not one (SM-9 with a recovery rule).
    let clock = ManualClock::new();
    let a = breaker(&t, "a", &clock);
    let _ = fail(&a);
    assert_eq!(a.state(), State::Open);
    for expected in [State::HalfOpen, State::HalfOpen, State::Closed] {
        assert!(crate::ok(&a));
        assert_eq!(a.state(), expected);
    }
}

#[test]
fn invalid_recovery_fields_name_the_field_and_value() {
    let cases = [
        (
            "recovery = { type = \"successes\", n = 0 }",
            "recovery.n",
            "0",
        ),
        (
            "recovery = { type = \"successes\" }",
            "recovery",
            "needs `n`",
        ),
        (
            "recovery = { type = \"probes\", n = 5, rule = \"FailureRat(0.5)\" }",
            "recovery.rule",
            "FailureRat",
        ),
        (
            "recovery = { type = \"probes\", n = 5, rule = \"FailureRate(1.5)\" }",
            "recovery.rule",
            "1.5",
        ),
        (
            "recovery = { type = \"sometimes\" }",
            "recovery",
            "sometimes",
        ),
        ("probe_timeout = \"0s\"", "probe_timeout", "0s"),
        ("probe_timeout = \"soon\"", "probe_timeout", "soon"),
    ];
    for (line, field, needle) in cases {
        let text = format!("[breakers.x]\n{line}\n");
        let err = Config::from_toml_str(&text).unwrap_err().to_string();
        assert!(err.contains(field), "{line}: {err}");
        assert!(err.contains(needle), "{line}: {err}");
        assert!(err.contains("line 2"), "{line}: {err}");
    }
}
