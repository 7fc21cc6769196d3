//! A registry run from a file, and live reconfiguration: changed breakers keep their
//! state (and window), unchanged ones are not touched, removed ones retire, new ones
//! appear; a bad file changes nothing.

use std::io;

use fluxgate::config::{Config, Live};
use fluxgate::registry::{AsyncRegistry, Registry};
use fluxgate::{CircuitBreaker, State};

use crate::support::Recorder;
use crate::{fail, ok, trackers};

const V1: &str = r#"
[defaults]
tripper = "FailureStreak(3)"
retry = { type = "never" }

[breakers.payments]
tripper = "FailureStreak(2)"

[breakers.search]
window = { type = "count", size = 50 }

[breakers.inventory]
tracker = "io"
"#;

fn start(text: &str) -> (Live, Registry, Recorder) {
    let live = Live::new(Config::from_toml_str(text).unwrap(), trackers()).unwrap();
    let recorder = Recorder::default();
    let registry = live
        .registry_builder::<CircuitBreaker>()
        .listener(recorder.listener())
        .build();
    live.start(&registry).unwrap();
    (live, registry, recorder)
}

fn get(registry: &Registry, name: &str) -> CircuitBreaker {
    registry
        .get(name)
        .unwrap_or_else(|| panic!("no breaker {name}"))
}

#[test]
fn a_registry_is_built_from_the_file() {
    let (_live, registry, _) = start(V1);
    assert_eq!(registry.names(), ["inventory", "payments", "search"]);
    let payments = get(&registry, "payments");
    for _ in 0..2 {
        let _ = fail(&payments);
    }
    assert_eq!(payments.state(), State::Open, "its own FailureStreak(2)");
    // A name the file does not mention: the defaults' FailureStreak(3).
    let orders = registry.get_or_create("orders").unwrap();
    for _ in 0..2 {
        let _ = fail(&orders);
    }
    assert_eq!(orders.state(), State::Closed);
    let _ = fail(&orders);
    assert_eq!(orders.state(), State::Open);
}

#[test]
fn a_reload_changing_one_tripper_keeps_its_state_and_leaves_the_others_alone() {
    let (live, registry, recorder) = start(V1);
    let payments = get(&registry, "payments");
    let search = get(&registry, "search");
    let inventory = get(&registry, "inventory");
    // payments: open (SM-3); search and inventory: some calls in their windows.
    let _ = fail(&payments);
    let _ = fail(&payments);
    assert_eq!(payments.state(), State::Open);
    for _ in 0..5 {
        assert!(ok(&search));
    }
    let _ = fail(&search);
    assert!(ok(&inventory));
    let _ = inventory.call(|| Err::<(), _>(io::Error::other("reset")));
    let search_before = search.info();
    let inventory_before = inventory.info();
    recorder.0.lock().unwrap().clear();

    let v2 = V1.replace(
        "tripper = \"FailureStreak(2)\"",
        "tripper = \"FailureStreak(5) | (MinRequests(10) & FailureRate(0.5))\"",
    );
    let changes = live
        .apply(&registry, Config::from_toml_str(&v2).unwrap())
        .unwrap();
    assert_eq!(changes.changed, ["payments"]);
    assert_eq!(changes.unchanged, ["inventory", "search"]);
    assert!(changes.added.is_empty() && changes.removed.is_empty());
    assert_eq!(changes.reconfigured.len(), 1);
    assert_eq!(changes.reconfigured[0].state, State::Open);
    assert!(
        changes.reconfigured[0].window_kept,
        "same window shape: kept"
    );

    // The changed breaker carries on: still open, no signal.
    let payments2 = get(&registry, "payments");
    assert_eq!(payments2.state(), State::Open);
    assert_eq!(
        live.config().get("payments").tripper.to_string(),
        "FailureStreak(5) | MinRequests(10) & FailureRate(0.5)"
    );
    // The others are untouched: same windows, same breakers (a handle from before still
    // is the registry's breaker).
    assert_eq!(get(&registry, "search").info().metric, search_before.metric);
    assert_eq!(
        get(&registry, "inventory").info().metric,
        inventory_before.metric
    );
    assert!(ok(&search));
    assert_eq!(
        get(&registry, "search").info().metric.total_count,
        search_before.metric.total_count + 1
    );
    assert!(payments2.flush_signals(std::time::Duration::from_secs(5)));
    assert_eq!(recorder.pairs(), []);
}

#[test]
fn a_reload_with_one_bad_breaker_changes_nothing() {
    let (live, registry, _) = start(V1);
    let search = get(&registry, "search");
    assert!(ok(&search));
    let before = live.config();

    // Bad values never load: the error names the breaker.
    let bad = format!("{V1}\n[breakers.reports]\ntripper = \"FailureRate(1.5)\"\n");
    let err = Config::from_toml_str(&bad).unwrap_err();
    assert_eq!(err.breaker(), Some("reports"));

    // A file that loads but names a tracker the application does not have: refused
    // before the registry is touched, although other breakers change too.
    let unknown = V1.replace("size = 50", "size = 60").replace(
        "[breakers.inventory]\ntracker = \"io\"",
        "[breakers.inventory]\ntracker = \"disk\"",
    ) + "\n[breakers.reports]\n";
    let err = live
        .apply(&registry, Config::from_toml_str(&unknown).unwrap())
        .unwrap_err();
    assert_eq!(err.breaker(), Some("inventory"));
    assert!(err.message().contains("unknown tracker 'disk'"), "{err}");
    assert_eq!(registry.names(), ["inventory", "payments", "search"]);
    assert_eq!(get(&registry, "search").info().metric.total_count, 1);
    assert!(
        ok(&search),
        "the old handle is still the registry's breaker"
    );
    assert_eq!(get(&registry, "search").info().metric.total_count, 2);
    assert_eq!(live.config(), before);
}

#[test]
fn a_reload_adds_removes_and_follows_the_defaults() {
    let (live, registry, _) = start(V1);
    let orders = registry.get_or_create("orders").unwrap(); // from the defaults
    let _ = fail(&orders);
    let search = get(&registry, "search");
    let v2 = r#"
[defaults]
tripper = "FailureStreak(2)"
retry = { type = "never" }

[breakers.payments]
tripper = "FailureStreak(2)"

[breakers.search]
window = { type = "count", size = 50 }
tripper = "FailureStreak(3)"
state = "forced_open"

[breakers.reports]
state = "disabled"
"#;
    let changes = live
        .apply(&registry, Config::from_toml_str(v2).unwrap())
        .unwrap();
    assert!(changes.defaults_changed);
    assert_eq!(changes.added, ["reports"]);
    assert_eq!(changes.removed, ["inventory"]);
    // search: same tripper as before (now its own), but its state field changed.
    assert_eq!(changes.changed, ["search"]);
    assert_eq!(changes.unchanged, ["payments"]);
    assert_eq!(
        registry.names(),
        ["orders", "payments", "reports", "search"]
    );
    assert_eq!(get(&registry, "reports").state(), State::Disabled);
    assert_eq!(
        get(&registry, "search").state(),
        State::ForcedOpen,
        "a changed state field is entered"
    );
    assert_eq!(
        search.state(),
        State::Closed,
        "a handle from before the change does not follow"
    );
    // orders follows the new defaults, keeping its window (one failure, streak 1 → kept).
    let orders = get(&registry, "orders");
    assert_eq!(orders.info().metric.failure_count, 1);
    let _ = fail(&orders);
    assert_eq!(
        orders.state(),
        State::Open,
        "FailureStreak(2) from the new defaults"
    );
    assert!(
        changes
            .to_string()
            .starts_with("added reports; changed search; removed inventory; defaults changed")
    );
}

#[tokio::test]
async fn an_async_registry_runs_from_a_file_too() {
    let live = Live::new(
        Config::from_yaml_str("breakers:\n  api:\n    tripper: FailureStreak(1)\n").unwrap(),
        trackers(),
    )
    .unwrap();
    let registry: AsyncRegistry = live.registry_builder().build();
    live.start(&registry).unwrap();
    let api = registry.get("api").unwrap();
    let _ = api
        .call(|| async { Err::<(), _>(io::Error::other("boom")) })
        .await;
    assert_eq!(api.state(), State::Open);
    let changes = live
        .apply(
            &registry,
            Config::from_yaml_str("breakers:\n  api:\n    tripper: FailureStreak(2)\n").unwrap(),
        )
        .unwrap();
    assert_eq!(changes.changed, ["api"]);
    assert_eq!(registry.get("api").unwrap().state(), State::Open);
}

#[test]
fn a_reload_says_what_changed_in_one_info_line() {
    let (live, registry, _) = start(V1);
    let logs = crate::support::logs::Logs::default();
    let v2 = V1.replace("size = 50", "size = 60") + "\n[breakers.reports]\n";
    tracing::subscriber::with_default(logs.subscriber(), || {
        // Another test thread may have registered the callsite while no subscriber of
        // its own was set; recompute its interest now that this one is.
        tracing::callsite::rebuild_interest_cache();
        live.apply(&registry, Config::from_toml_str(&v2).unwrap())
            .unwrap();
        // Nothing changed: nothing said.
        live.apply(&registry, Config::from_toml_str(&v2).unwrap())
            .unwrap();
    });
    let lines: Vec<_> = logs
        .events()
        .into_iter()
        .filter(|e| e.target == "fluxgate_config")
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].level, tracing::Level::INFO);
    assert_eq!(
        lines[0].message(),
        "circuit breaker configuration applied: added reports; changed search; 2 unchanged"
    );
    assert_eq!(
        (lines[0].field("added"), lines[0].field("changed")),
        ("1", "1")
    );
}

/// A shadow rollout (SM-10): every breaker records and never opens, but `payments`,
/// which is already trusted.
const SHADOW: &str = r#"
[defaults]
state = "metrics_only"
tripper = "FailureStreak(1)"
retry = { type = "never" }

[breakers.payments]
state = "closed"

[breakers.search]
"#;

#[test]
fn the_default_state_reaches_breakers_built_on_first_use() {
    let (_live, registry, recorder) = start(SHADOW);
    // A name the file does not mention, looked up after the load (SM-10).
    let orders = registry.get_or_create("orders").unwrap();
    assert_eq!(orders.state(), State::MetricsOnly);
    let _ = fail(&orders);
    assert_eq!(
        orders.state(),
        State::MetricsOnly,
        "metrics_only never opens"
    );
    assert_eq!(orders.info().metric.failure_count, 1, "but records");
    // A named breaker without a state of its own follows the defaults too.
    assert_eq!(get(&registry, "search").state(), State::MetricsOnly);
    // A breaker's own state wins.
    let payments = get(&registry, "payments");
    assert_eq!(payments.state(), State::Closed);
    let _ = fail(&payments);
    assert_eq!(payments.state(), State::Open);
    // Entered silently: the only signal is payments' trip.
    assert_eq!(recorder.pairs(), [(State::Closed, State::Open)]);

    // The async face alike.
    let live = Live::new(Config::from_toml_str(SHADOW).unwrap(), trackers()).unwrap();
    let registry: AsyncRegistry = live.registry_builder().build();
    live.start(&registry).unwrap();
    assert_eq!(
        registry.get_or_create("orders").unwrap().state(),
        State::MetricsOnly
    );
    assert_eq!(registry.get("payments").unwrap().state(), State::Closed);
}

#[test]
fn a_reload_changing_the_default_state_moves_the_breakers_that_follow_it() {
    let (live, registry, recorder) = start(SHADOW);
    let _ = registry.get_or_create("orders").unwrap();
    let _ = fail(&get(&registry, "payments"));
    assert_eq!(get(&registry, "payments").state(), State::Open);
    recorder.clear();

    // The rollout ends: [defaults] says closed.
    let live_text = SHADOW.replace(r#"state = "metrics_only""#, r#"state = "closed""#);
    live.apply(&registry, Config::from_toml_str(&live_text).unwrap())
        .unwrap();
    // Breakers that take their state from the defaults move to it, silently: the one
    // built on first use and the named one without a state of its own.
    assert_eq!(get(&registry, "orders").state(), State::Closed);
    assert_eq!(get(&registry, "search").state(), State::Closed);
    // A breaker with its own state is not touched: payments stays open.
    assert_eq!(get(&registry, "payments").state(), State::Open);
    // New names get the new default.
    assert_eq!(
        registry.get_or_create("billing").unwrap().state(),
        State::Closed
    );
    assert!(recorder.pairs().is_empty(), "{:?}", recorder.pairs());

    // A reload that changes the defaults but not their state leaves each breaker's
    // state as it stands: orders, now tripped, stays open.
    let orders = get(&registry, "orders");
    let _ = fail(&orders);
    assert_eq!(orders.state(), State::Open);
    let stricter = live_text.replace("FailureStreak(1)", "FailureStreak(2)");
    live.apply(&registry, Config::from_toml_str(&stricter).unwrap())
        .unwrap();
    assert_eq!(get(&registry, "orders").state(), State::Open);
}

#[test]
fn a_reload_of_the_defaults_reaches_breakers_created_while_it_runs() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let old = "[defaults]\ntripper = \"FailureStreak(1000)\"\nretry = { type = \"never\" }\n";
    let live = Live::new(Config::from_toml_str(old).unwrap(), trackers()).unwrap();
    let registry: Registry = live.registry_builder().build();
    live.start(&registry).unwrap();
    // Many breakers, so that listing them takes a while for the creator to race with.
    for i in 0..20_000 {
        registry.get_or_create(&format!("before-{i}")).unwrap();
    }
    let stop = AtomicBool::new(false);
    let created = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let creator = s.spawn(|| {
            for i in 0..200_000 {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                registry.get_or_create(&format!("during-{i}")).unwrap();
                created.fetch_add(1, Ordering::Release);
            }
        });
        // Let the creator start (the assertion below holds however far it got).
        while created.load(Ordering::Acquire) == 0 && !creator.is_finished() {
            std::thread::yield_now();
        }
        let new = old.replace("FailureStreak(1000)", "FailureStreak(1)");
        let changes = live
            .apply(&registry, Config::from_toml_str(&new).unwrap())
            .unwrap();
        assert!(changes.defaults_changed);
        stop.store(true, Ordering::Release);
        creator.join().unwrap();
    });
    // Every breaker, built before, during or after the reload's listing, follows the new
    // defaults: one failure opens it.
    let names = registry.names();
    assert!(names.len() > 20_000, "the creator built breakers");
    let stale: Vec<&String> = names
        .iter()
        .filter(|name| {
            let cb = get(&registry, name);
            let _ = fail(&cb);
            cb.state() != State::Open
        })
        .collect();
    assert!(
        stale.is_empty(),
        "{} of {} breakers kept FailureStreak(1000), such as {:?}",
        stale.len(),
        names.len(),
        &stale[..stale.len().min(5)]
    );
}
