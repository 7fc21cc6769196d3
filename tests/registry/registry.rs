//! The registry: named breakers from a template, listeners on every breaker, removal
//! that retires, live reconfiguration that keeps state.

use std::sync::{Arc, Barrier};
use std::time::Duration;

use fluxgate::clock::ManualClock;
use fluxgate::registry::{AsyncRegistry, Registry};
use fluxgate::retries::Cooldown;
use fluxgate::trippers::{FailureStreak, MinRequests};
use fluxgate::windows::{CountWindow, TimeWindow};
use fluxgate::{CircuitBreaker, State};

use super::support::{fail, ok};
use super::{Lifecycle, SlowDetach, SlowSignal};

fn registry(clock: &ManualClock, life: &Lifecycle) -> Registry {
    let clock = clock.clone();
    Registry::builder()
        .defaults(move |b| {
            b.clock(clock.clone())
                .tripper(FailureStreak::new(3))
                .retry(Cooldown::new(Duration::from_secs(10)))
        })
        .breaker("strict", |b| b.tripper(FailureStreak::new(1)))
        .listener(life.clone())
        .build()
}

#[test]
fn template_and_override_configure_each_breaker() {
    let r = registry(&ManualClock::new(), &Lifecycle::default());
    let strict = r.get_or_create("strict").unwrap();
    let lenient = r.get_or_create("lenient").unwrap();
    let _ = fail(&strict);
    let _ = fail(&lenient);
    assert_eq!(strict.state(), State::Open);
    assert_eq!(lenient.state(), State::Closed);
    assert_eq!(r.names(), ["lenient", "strict"]);
    let snapshot = r.snapshot();
    assert_eq!(snapshot.len(), 2);
    assert_eq!(snapshot[1].state, State::Open);
}

#[test]
fn a_bad_override_is_a_config_error_every_time() {
    let r: Registry = Registry::builder()
        .breaker("bad", |b| b.window(CountWindow::new(0)))
        .build();
    for _ in 0..2 {
        let err = r.get_or_create("bad").unwrap_err();
        assert!(err.to_string().contains("size"), "{err}");
    }
    assert!(r.get("bad").is_none());
    assert!(r.check("bad").is_err());
}

#[test]
fn registry_listeners_reach_every_breaker() {
    let life = Lifecycle::default();
    let r = registry(&ManualClock::new(), &life);
    for name in ["a", "b", "strict"] {
        r.get_or_create(name).unwrap().force_open();
    }
    for name in ["a", "b", "strict"] {
        assert_eq!(life.count(&format!("attach {name} closed")), 1);
        assert_eq!(life.count(&format!("signal {name} closed->forced_open")), 1);
    }
}

#[test]
fn reset_all_closes_every_breaker() {
    let r = registry(&ManualClock::new(), &Lifecycle::default());
    r.get_or_create("a").unwrap().force_open();
    let _ = fail(&r.get_or_create("strict").unwrap());
    r.reset_all();
    assert!(r.snapshot().iter().all(|i| i.state == State::Closed));
}

#[test]
fn remove_calls_on_detach_once_and_retires_the_breaker() {
    let life = Lifecycle::default();
    let r = registry(&ManualClock::new(), &life);
    let old = r.get_or_create("a").unwrap();
    assert!(r.remove("a"));
    assert!(!r.remove("a"));
    assert_eq!(life.count("detach a"), 1);
    // A kept handle is retired: no transition, no signal after the detach.
    old.force_open();
    assert_eq!(old.state(), State::Closed);
    assert_eq!(life.events().last().unwrap(), "detach a");
    // The name can be used again: a new breaker, attached again.
    let new = r.get_or_create("a").unwrap();
    assert_eq!(life.count("attach a closed"), 2);
    new.force_open();
    assert_eq!(new.state(), State::ForcedOpen);
}

#[test]
fn a_panicking_on_detach_does_not_hurt_the_caller() {
    struct Bad;
    impl fluxgate::listeners::Listener for Bad {
        fn on_signal(
            &self,
            _: &fluxgate::Signal,
        ) -> Result<(), fluxgate::listeners::ListenerError> {
            Ok(())
        }
        fn on_detach(&self, _: &str) {
            panic!("listener bug");
        }
    }
    let r: Registry = Registry::builder().listener(Bad).build();
    r.get_or_create("a").unwrap();
    assert!(r.remove("a"));
}

#[test]
fn reconfigure_keeps_state_and_window_when_shape_unchanged() {
    let clock = ManualClock::new();
    let life = Lifecycle::default();
    let r = registry(&clock, &life);
    let cb = r.get_or_create("a").unwrap();
    let _ = ok(&cb);
    let _ = fail(&cb);
    let _ = fail(&cb);
    let before = cb.info();
    assert_eq!(
        (before.metric.total_count, before.consecutive_failures),
        (3, 2)
    );

    let change = r
        .reconfigure("a", |b| {
            b.tripper(FailureStreak::new(3) | MinRequests::new(1000))
        })
        .unwrap()
        .unwrap();
    assert!(change.window_kept);
    assert_eq!(change.state, State::Closed);
    let cb = r.get("a").unwrap();
    let after = cb.info();
    assert_eq!(after.metric, before.metric);
    assert_eq!(after.consecutive_failures, 2);
    assert_eq!(after.changed_at, before.changed_at);
    // The streak carried over: the third failure in a row trips.
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::Open);
    // Listeners saw one attach per build, with the inherited state, and no detach.
    assert_eq!(life.count("attach a closed"), 2);
    assert_eq!(life.count("detach a"), 0);
}

#[test]
fn reconfigure_keeps_open_state_reopens_and_cooldown() {
    let clock = ManualClock::new();
    let life = Lifecycle::default();
    let r = registry(&clock, &life);
    let cb = r.get_or_create("strict").unwrap();
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::Open);
    clock.advance(Duration::from_secs(10));
    // Half-open probes are admitted by the permit's ramp: fail the first admitted one.
    while cb.state() != State::Open || cb.info().reopens == 0 {
        let _ = fail(&cb);
    }
    assert_eq!((cb.state(), cb.info().reopens), (State::Open, 1));
    let opened_at = cb.info().changed_at;
    clock.advance(Duration::from_secs(6));

    let change = r
        .reconfigure("strict", |b| {
            b.max_half_open_calls(2).permit(fluxgate::permits::All)
        })
        .unwrap()
        .unwrap();
    assert_eq!(change.state, State::Open);
    assert_eq!(life.count("attach strict open"), 1);
    let cb = r.get("strict").unwrap();
    let info = cb.info();
    assert_eq!(
        (info.state, info.reopens, info.changed_at),
        (State::Open, 1, opened_at)
    );
    // 6 s of the 10 s cooldown had passed: 3 s more still reject, 4 s admit a probe.
    clock.advance(Duration::from_secs(3));
    assert!(ok(&cb).unwrap_err().is_rejected());
    clock.advance(Duration::from_secs(1));
    assert!(ok(&cb).is_ok());
}

#[test]
fn reconfigure_keeps_manual_states() {
    let r = registry(&ManualClock::new(), &Lifecycle::default());
    for (name, set) in [
        ("f", CircuitBreaker::force_open as fn(&CircuitBreaker)),
        ("m", CircuitBreaker::metrics_only),
        ("d", CircuitBreaker::disable),
    ] {
        let cb = r.get_or_create(name).unwrap();
        set(&cb);
        let state = cb.state();
        r.reconfigure(name, |b| b.max_half_open_calls(1)).unwrap();
        assert_eq!(r.get(name).unwrap().state(), state);
    }
}

#[test]
fn reconfigure_clears_the_window_when_its_shape_changes() {
    let clock = ManualClock::new();
    let r = registry(&clock, &Lifecycle::default());
    let cb = r.get_or_create("a").unwrap();
    let _ = fail(&cb);
    let _ = ok(&cb);
    let change = r
        .reconfigure("a", |b| b.window(TimeWindow::new(Duration::from_secs(30))))
        .unwrap()
        .unwrap();
    assert!(!change.window_kept);
    assert_eq!(change.old_window.as_deref(), Some("count(100)"));
    assert_eq!(change.new_window.as_deref(), Some("time(30s)"));
    let cb = r.get("a").unwrap();
    assert_eq!(cb.info().metric.total_count, 0);
    let _ = fail(&cb);
    assert_eq!(cb.info().metric.failure_count, 1);
    // And back to a count window of another size: cleared again.
    let change = r
        .reconfigure("a", |b| b.window(CountWindow::new(10)))
        .unwrap()
        .unwrap();
    assert!(!change.window_kept);
}

#[test]
fn reconfigure_of_an_unbuilt_name_only_stores_the_override() {
    let r = registry(&ManualClock::new(), &Lifecycle::default());
    assert_eq!(
        r.reconfigure("later", |b| b.tripper(FailureStreak::new(1)))
            .unwrap(),
        None
    );
    let cb = r.get_or_create("later").unwrap();
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::Open);
}

#[test]
fn an_invalid_reconfiguration_changes_nothing() {
    let r = registry(&ManualClock::new(), &Lifecycle::default());
    let cb = r.get_or_create("strict").unwrap();
    assert!(
        r.reconfigure("strict", |b| b.max_half_open_calls(0))
            .is_err()
    );
    assert!(r.set_defaults(|b| b.max_half_open_calls(0)).is_err());
    // Same breaker, same override (one failure trips).
    let _ = fail(&r.get("strict").unwrap());
    assert_eq!(cb.state(), State::Open);
}

#[test]
fn reconfiguration_logs_one_line_per_change() {
    let logs = super::support::logs::Logs::default();
    let r = registry(&ManualClock::new(), &Lifecycle::default());
    r.get_or_create("a").unwrap();
    r.get_or_create("b").unwrap();
    tracing::subscriber::with_default(logs.subscriber(), || {
        r.set_defaults(|b| b.window(CountWindow::new(50))).unwrap();
    });
    let lines: Vec<_> = logs
        .events()
        .into_iter()
        .filter(|e| e.message() == "circuit reconfigured")
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].field("window_kept"), "false");
}

#[test]
fn many_threads_creating_one_name_get_one_breaker() {
    let life = Lifecycle::default();
    let r = registry(&ManualClock::new(), &life);
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (r, barrier) = (r.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                r.get_or_create("shared").unwrap()
            })
        })
        .collect();
    let breakers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    breakers[0].force_open();
    assert!(breakers.iter().all(|b| b.state() == State::ForcedOpen));
    assert_eq!(life.count("attach shared closed"), 1);
}

#[test]
fn the_async_registry_builds_async_breakers() {
    let r = AsyncRegistry::builder()
        .defaults(|b| b.tripper(FailureStreak::new(1)))
        .build();
    let cb = r.get_or_create("api").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _ = rt.block_on(cb.call(|| async { Err::<(), _>(std::io::Error::other("x")) }));
    assert_eq!(r.get("api").unwrap().state(), State::Open);
    let change = r
        .reconfigure("api", |b| b.max_half_open_calls(1))
        .unwrap()
        .unwrap();
    assert_eq!(change.state, State::Open);
}

#[cfg(feature = "prometheus")]
#[test]
fn remove_drops_the_circuit_series_from_the_exposition() {
    use fluxgate::listeners::prometheus::PrometheusListener;
    let prom = prometheus::Registry::new();
    let listener = PrometheusListener::with_registry(&prom).unwrap();
    let r: Registry = Registry::builder().listener(listener).build();
    r.get_or_create("a").unwrap().force_open();
    r.get_or_create("b").unwrap();
    let text = || {
        prometheus::TextEncoder::new()
            .encode_to_string(&prom.gather())
            .unwrap()
    };
    let (a, b) = (
        super::series(&text(), Some("a")),
        super::series(&text(), Some("b")),
    );
    assert!(a > 0 && b > 0);
    assert!(r.remove("a"));
    assert_eq!(super::series(&text(), Some("a")), 0);
    assert_eq!(super::series(&text(), Some("b")), b);
    // A reconfiguration keeps the series and shows the inherited state.
    r.get_or_create("c").unwrap().force_open();
    r.reconfigure("c", |b| b.max_half_open_calls(1)).unwrap();
    let t = text();
    assert!(
        t.contains("circuit_breaker_state{circuit_name=\"c\",state=\"forced_open\"} 1"),
        "{t}"
    );
}

#[cfg(feature = "prometheus-client")]
#[test]
fn remove_drops_the_circuit_series_from_the_client_exposition() {
    use fluxgate::listeners::prometheus::PrometheusClientListener;
    let mut prom = prometheus_client::registry::Registry::default();
    let listener = PrometheusClientListener::new(&mut prom);
    let r: Registry = Registry::builder().listener(listener).build();
    r.get_or_create("a").unwrap().force_open();
    r.get_or_create("b").unwrap();
    let text = || {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, &prom).unwrap();
        s
    };
    let before = super::series(&text(), None);
    assert!(super::series(&text(), Some("a")) > 0);
    assert!(r.remove("a"));
    assert_eq!(super::series(&text(), Some("a")), 0);
    assert!(super::series(&text(), None) < before);
}

#[test]
fn on_create_runs_once_for_each_breaker_built_on_first_use_and_not_for_successors() {
    use std::sync::Mutex;
    let created = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = created.clone();
    let r: Registry = Registry::builder()
        .on_create(move |cb: &CircuitBreaker| {
            seen.lock().unwrap().push(cb.name().to_owned());
            cb.metrics_only_silently();
        })
        .build();
    // Many threads asking for one new name: one breaker, one call, and none of them
    // sees it before its initial state is set.
    let barrier = Arc::new(Barrier::new(8));
    let states: Vec<State> = (0..8)
        .map(|_| {
            let (r, barrier) = (r.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                r.get_or_create("db").unwrap().state()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(
        states.iter().all(|s| *s == State::MetricsOnly),
        "{states:?}"
    );
    assert_eq!(*created.lock().unwrap(), ["db"]);

    // A successor carries the state on; the hook is not asked again.
    r.get("db").unwrap().force_open_silently();
    r.reconfigure("db", |b| b.max_half_open_calls(2)).unwrap();
    r.set_defaults(|b| b.max_half_open_calls(3)).unwrap();
    assert_eq!(r.get("db").unwrap().state(), State::ForcedOpen);
    assert_eq!(*created.lock().unwrap(), ["db"]);
    // Removed, then asked for again: a new breaker, a new call.
    assert!(r.remove("db"));
    assert_eq!(r.get_or_create("db").unwrap().state(), State::MetricsOnly);
    assert_eq!(*created.lock().unwrap(), ["db", "db"]);
}

/// Code generic over the face: the breakers of any registry or keyed breaker, of either
/// face, through `Face` alone (SM-13's manual commands and a snapshot).
fn force_open_and_report<F: fluxgate::Face>(breakers: Vec<F>) -> Vec<(String, State)> {
    for b in &breakers {
        b.force_open_silently();
    }
    breakers
        .iter()
        .map(|b| (b.name().to_owned(), b.info().state))
        .collect()
}

#[test]
fn code_generic_over_the_face_serves_registries_and_keyed_breakers_of_both_faces() {
    let sync: Registry = Registry::new();
    sync.get_or_create("db").unwrap();
    let not_sync = AsyncRegistry::new();
    not_sync.get_or_create("api").unwrap();
    let hosts = fluxgate::keyed::Keyed::<String, fluxgate::AsyncCircuitBreaker>::builder("host")
        .build()
        .unwrap();
    let a = hosts.get("a");

    let names = sync.names();
    let got = force_open_and_report(names.iter().filter_map(|n| sync.get(n)).collect());
    assert_eq!(got, [("db".to_owned(), State::ForcedOpen)]);
    let got = force_open_and_report(vec![not_sync.get("api").unwrap(), a.clone()]);
    assert_eq!(got[0], ("api".to_owned(), State::ForcedOpen));
    assert_eq!(got[1].1, State::ForcedOpen);
    assert_eq!(got[1].0, a.name());
    // The commands acted on the registries' breakers themselves.
    assert_eq!(sync.get("db").unwrap().state(), State::ForcedOpen);
    assert_eq!(hosts.get("a").state(), State::ForcedOpen);
}

#[test]
fn a_panicking_on_create_hook_leaves_no_breaker_attached() {
    // Before: a breaker whose `on_create` hook panicked was built and attached to the
    // registry's listeners but never inserted, so its listeners kept a circuit (and its
    // series) that no registry held, and every retry attached another one.
    let life = Lifecycle::default();
    let panics = Arc::new(std::sync::atomic::AtomicUsize::new(2));
    let left = panics.clone();
    let r: Registry = Registry::builder()
        .listener(life.clone())
        .on_create(move |_: &CircuitBreaker| {
            let n = left.load(std::sync::atomic::Ordering::Relaxed);
            if n > 0 {
                left.store(n - 1, std::sync::atomic::Ordering::Relaxed);
                panic!("hook fails");
            }
        })
        .build();
    for _ in 0..2 {
        let panicked =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.get_or_create("db")));
        assert!(panicked.is_err());
        assert!(r.get("db").is_none());
    }
    assert_eq!(life.count("attach db closed"), 2);
    assert_eq!(life.count("detach db"), 2);
    let db = r.get_or_create("db").unwrap();
    assert_eq!(db.state(), State::Closed);
    assert_eq!(
        (life.count("attach db closed"), life.count("detach db")),
        (3, 2)
    );
}

#[test]
fn a_panicking_reconfiguration_changes_nothing() {
    // Before: `set_defaults` and `reconfigure` put the new closure in place before trying
    // it, so one that panicked stayed: every breaker built afterwards panicked too.
    let r: Registry = Registry::builder()
        .defaults(|b| b.tripper(FailureStreak::new(2)))
        .build();
    let a = r.get_or_create("a").unwrap();
    let defaults = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        r.set_defaults(|_| panic!("no defaults"))
    }));
    assert!(defaults.is_err());
    let one = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        r.reconfigure("a", |_| panic!("no override"))
    }));
    assert!(one.is_err());
    // The old template and no override: a new breaker opens after two failures, and the
    // live one is still the same breaker.
    let b = r.get_or_create("b").unwrap();
    for _ in 0..2 {
        let _ = fail(&b);
    }
    assert_eq!(b.state(), State::Open);
    assert!(r.check("a").is_ok());
    for _ in 0..2 {
        let _ = fail(&r.get("a").unwrap());
    }
    assert_eq!(a.state(), State::Open, "the live breaker was replaced");
}

#[test]
fn a_name_built_again_while_its_old_breaker_detaches_is_attached_after_it() {
    // Before: `remove` took the breaker out of the map and told the listeners afterwards,
    // outside the lock; a `get_or_create` of the same name in between attached the new
    // breaker first, and the old one's `on_detach` then dropped the series (and any
    // per-circuit state) the new, live breaker was using. Now the order is guaranteed
    // by the shard's lock, whatever the timing; the pause below only gives the old code
    // the chance to show its race (see `Gate::race`).
    let (slow, gate) = SlowDetach::new();
    let r: Registry = Registry::builder().listener(slow.clone()).build();
    r.get_or_create("db").unwrap();
    gate.race(
        || assert!(r.remove("db")),
        || drop(r.get_or_create("db").unwrap()),
    );
    assert_eq!(
        slow.life.lifecycle(),
        ["attach db closed", "detach db", "attach db closed"]
    );
}

/// A registry whose listeners are a `SlowSignal` (holding the first signal into
/// `forced_open`) and then a `Lifecycle`; with the slow listener's two channels.
fn behind_a_slow_listener() -> (
    Registry,
    Lifecycle,
    std::sync::mpsc::Receiver<()>,
    std::sync::mpsc::Sender<()>,
) {
    let (slow, entered, release) = SlowSignal::new(State::ForcedOpen);
    let life = Lifecycle::default();
    let registry = Registry::builder()
        .listener(slow)
        .listener(life.clone())
        .build();
    (registry, life, entered, release)
}

#[test]
fn a_removed_breakers_signal_still_being_delivered_never_reaches_a_listener_after_its_detach() {
    // A slow listener holds a signal of "t1" past the removal's waits. The old code then
    // detached the breaker and let the signal go on to the next listener: a Prometheus
    // listener re-created the removed circuit's series (forced_open = 1) for good.
    let (registry, life, entered, release) = behind_a_slow_listener();
    let cb = registry.get_or_create("t1").unwrap();
    std::thread::scope(|s| {
        let opener = s.spawn(move || cb.force_open());
        entered.recv().unwrap(); // the signal is inside the slow listener
        assert!(registry.remove("t1"));
        release.send(()).unwrap();
        opener.join().unwrap();
    });
    assert_eq!(life.events(), ["attach t1 closed", "detach t1"]);
}

#[test]
fn after_a_reconfiguration_no_signal_of_the_old_breaker_comes_after_the_successors() {
    // The old breaker's signal into forced_open is held by a slow listener while the
    // breaker is reconfigured and its successor reset. The old code delivered it last:
    // the listeners ended on forced_open while the breaker was closed.
    let (registry, life, entered, release) = behind_a_slow_listener();
    let old = registry.get_or_create("db").unwrap();
    std::thread::scope(|s| {
        let opener = s.spawn(move || old.force_open());
        entered.recv().unwrap();
        registry
            .reconfigure("db", |b| b.max_half_open_calls(3))
            .unwrap();
        let new = registry.get("db").unwrap();
        new.reset();
        release.send(()).unwrap();
        opener.join().unwrap();
        assert_eq!(new.state(), State::Closed);
    });
    assert_eq!(
        life.events(),
        [
            "attach db closed",
            "attach db forced_open",
            "signal db forced_open->closed"
        ]
    );
}

/// Records the calls and store-connection reports a listener hears.
#[derive(Clone, Default)]
struct Heard(Arc<std::sync::Mutex<Vec<String>>>);

impl fluxgate::listeners::Listener for Heard {
    fn on_signal(&self, _: &fluxgate::Signal) -> Result<(), fluxgate::listeners::ListenerError> {
        Ok(())
    }
    fn wants_calls(&self) -> bool {
        true
    }
    fn on_call(&self, call: &fluxgate::listeners::CallEvent<'_>) {
        self.0
            .lock()
            .unwrap()
            .push(format!("call {} {:?}", call.circuit_name, call.outcome));
    }
    fn on_store_connection(&self, name: &str, connected: bool) {
        self.0
            .lock()
            .unwrap()
            .push(format!("store {name} {connected}"));
    }
}

#[test]
fn calls_through_a_handle_kept_past_its_removal_are_heard_by_nobody() {
    // The old code told the listeners of every call of a removed breaker: they key their
    // series by name, so its calls counted for the new breaker of the same name.
    let heard = Heard::default();
    let registry: Registry = Registry::builder().listener(heard.clone()).build();
    let old = registry.get_or_create("db").unwrap();
    assert!(registry.remove("db"));
    let _new = registry.get_or_create("db").unwrap();
    for _ in 0..5 {
        let _ = fail(&old);
    }
    assert!(
        heard.0.lock().unwrap().is_empty(),
        "{:?}",
        heard.0.lock().unwrap()
    );
}

#[test]
fn a_store_report_for_a_removed_breaker_reaches_no_listener() {
    // The old code told the listeners: the Prometheus listener re-created the removed
    // circuit's store gauge, which nothing would ever remove again.
    #[derive(Clone, Default)]
    struct Keep(Arc<std::sync::Mutex<Vec<fluxgate::store::StoreLink>>>);
    struct Quiet;
    impl fluxgate::store::StoreSink for Quiet {
        fn changed(&self, _: fluxgate::store::Change) {}
    }
    impl fluxgate::store::StateStore for Keep {
        fn attach(&self, link: fluxgate::store::StoreLink) -> Box<dyn fluxgate::store::StoreSink> {
            self.0.lock().unwrap().push(link);
            Box::new(Quiet)
        }
    }
    let (keep, heard) = (Keep::default(), Heard::default());
    let store = keep.clone();
    let registry: Registry = Registry::builder()
        .defaults(move |b| b.store(store.clone()))
        .listener(heard.clone())
        .build();
    let _kept = registry.get_or_create("tenant-1").unwrap();
    let link = keep.0.lock().unwrap()[0].clone();
    link.connection(false);
    let before = heard.0.lock().unwrap().clone();
    assert_eq!(
        before.last().map(String::as_str),
        Some("store tenant-1 false")
    );
    assert!(registry.remove("tenant-1"));
    link.connection(true);
    assert_eq!(*heard.0.lock().unwrap(), before);
}
