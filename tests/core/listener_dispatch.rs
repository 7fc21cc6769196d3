//! Listener dispatch rules: L-1, L-2, L-4, L-5 (SPEC §7).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

use crate::support::logs::LogText;
use crate::support::*;
use fluxgate::clock::ManualClock;
use fluxgate::listeners::{
    AsyncListener, CallEvent, Listener, ListenerError, ListenerFuture, SpawnFuture,
};
use fluxgate::registry::Registry;
use fluxgate::store::MemoryStore;
use fluxgate::trippers::FailureStreak;
use fluxgate::{AsyncCircuitBreaker, CircuitBreaker, Signal, State};

#[test]
fn l1_signal_is_immutable_and_cheap_to_clone() {
    let rec = Recorder::default();
    let cb = CircuitBreaker::builder("payment_api")
        .listener(rec.listener())
        .build()
        .unwrap();
    cb.force_open();
    let s = rec.signals().pop().unwrap();
    let c = s.clone();
    assert!(Arc::ptr_eq(&s.circuit_name, &c.circuit_name));
    assert_eq!(&*s.circuit_name, "payment_api");
    assert_eq!(
        (s.old_state, s.new_state),
        (State::Closed, State::ForcedOpen)
    );
    assert_eq!(s.timestamp, cb.info().changed_at);
}

struct Failing;
impl Listener for Failing {
    fn on_signal(&self, _: &Signal) -> Result<(), ListenerError> {
        Err("listener backend down".into())
    }
}

struct Panicking;
impl Listener for Panicking {
    fn on_signal(&self, _: &Signal) -> Result<(), ListenerError> {
        panic!("listener bug")
    }
}

#[test]
fn l2_listeners_run_in_order_and_failures_are_contained_and_logged() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let (a, b) = (order.clone(), order.clone());
    let captured = LogText::default();
    let subscriber = captured.subscriber();
    tracing::subscriber::with_default(subscriber, || {
        let cb = CircuitBreaker::builder("svc")
            .tripper(FailureStreak::new(1))
            .listener(move |_: &Signal| a.lock().unwrap().push("first"))
            .listener(Failing)
            .listener(Panicking)
            .listener(move |_: &Signal| b.lock().unwrap().push("last"))
            .build()
            .unwrap();
        let r = fail(&cb);
        assert!(
            matches!(r, Err(fluxgate::Error::Inner(_))),
            "caller gets its own error"
        );
        assert_eq!(cb.state(), State::Open);
        cb.reset();
        assert!(ok(&cb).is_ok());
    });
    assert_eq!(*order.lock().unwrap(), ["first", "last", "first", "last"]);
    let log = captured.text();
    assert!(log.contains("listener failed"), "{log}");
    assert!(log.contains("listener_dispatch::Failing"), "{log}");
    assert!(log.contains("listener backend down"), "{log}");
    assert!(log.contains("listener panicked"), "{log}");
    assert!(log.contains("listener_dispatch::Panicking"), "{log}");
    assert!(log.contains("listener bug"), "{log}");
}

#[test]
fn l4_slow_listener_does_not_block_other_calls_or_info() {
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let cb = CircuitBreaker::builder("svc")
        .tripper(FailureStreak::new(1))
        .listener(move |s: &Signal| {
            if s.new_state == State::Open {
                entered_tx.send(()).unwrap();
                // Blocks until the test has checked everything below.
                release_rx.lock().unwrap().recv().unwrap();
            }
        })
        .build()
        .unwrap();
    let tripping = {
        let cb = cb.clone();
        std::thread::spawn(move || fail(&cb))
    };
    entered_rx.recv().unwrap();
    // The listener is still running on the tripping thread:
    assert_eq!(cb.info().state, State::Open);
    let served = (0..1000).filter(|_| ok(&cb).is_err()).count();
    assert_eq!(
        served, 1000,
        "rejected at full speed while the listener runs"
    );
    cb.metrics_only(); // a command from here goes through too; its signal is queued
    assert_eq!(cb.state(), State::MetricsOnly);
    assert!((0..100).all(|_| ok(&cb).is_ok()));
    release_tx.send(()).unwrap();
    assert!(tripping.join().unwrap().is_err());
}

#[derive(Default)]
struct Counting(AtomicUsize, Mutex<Vec<String>>);
impl Listener for Counting {
    fn on_signal(&self, s: &Signal) -> Result<(), ListenerError> {
        self.0.fetch_add(1, Ordering::Relaxed);
        self.1.lock().unwrap().push(s.circuit_name.to_string());
        Ok(())
    }
    fn on_attach(&self, name: &str, state: State) {
        self.1
            .lock()
            .unwrap()
            .push(format!("attach {name} {state}"));
    }
}

#[test]
fn l5_one_listener_serves_many_breakers() {
    let shared = Arc::new(Counting::default());
    let payment = CircuitBreaker::builder("payment_api")
        .listener(shared.clone())
        .build()
        .unwrap();
    let inventory = CircuitBreaker::builder("inventory_api")
        .listener(shared.clone())
        .build()
        .unwrap();
    payment.force_open();
    inventory.disable();
    payment.reset();
    assert_eq!(shared.0.load(Ordering::Relaxed), 3);
    assert_eq!(
        *shared.1.lock().unwrap(),
        [
            "attach payment_api closed",
            "attach inventory_api closed",
            "payment_api",
            "inventory_api",
            "payment_api"
        ]
    );
}

struct PanicsOnAttach;
impl Listener for PanicsOnAttach {
    fn on_signal(&self, _: &Signal) -> Result<(), ListenerError> {
        Ok(())
    }
    fn on_attach(&self, _: &str, _: State) {
        panic!("attach bug")
    }
}

#[test]
fn l2_a_listener_that_panics_on_attach_is_contained_and_logged() {
    // Before: `on_attach` ran unguarded in `build()`, so the panic reached the caller of
    // `build()` (and of `Keyed::get`, `Registry::get_or_create`), and the listeners
    // attached before it kept a circuit that was never built.
    let shared = Arc::new(Counting::default());
    let captured = LogText::default();
    let subscriber = captured.subscriber();
    let cb = tracing::subscriber::with_default(subscriber, || {
        CircuitBreaker::builder("svc")
            .tripper(FailureStreak::new(1))
            .listener(PanicsOnAttach)
            .listener(shared.clone())
            .build()
    })
    .expect("build() succeeds");
    assert_eq!(shared.1.lock().unwrap().as_slice(), ["attach svc closed"]);
    let _ = fail(&cb);
    assert_eq!(cb.state(), State::Open);
    assert_eq!(shared.0.load(Ordering::Relaxed), 1);
    let log = captured.text();
    assert!(log.contains("listener panicked"), "{log}");
    assert!(log.contains("listener_dispatch::PanicsOnAttach"), "{log}");
    assert!(log.contains("attach bug"), "{log}");
}

/// What `wants_calls()` of [`PanicsEverywhere`] does.
#[derive(Clone, Copy, Debug)]
enum Wants {
    No,
    Yes,
    Panics,
}

/// A listener whose every method panics, `name()` included; `wants_calls()` as told.
struct PanicsEverywhere(Wants);
impl Listener for PanicsEverywhere {
    fn on_signal(&self, _: &Signal) -> Result<(), ListenerError> {
        panic!("on_signal bug")
    }
    fn on_attach(&self, _: &str, _: State) {
        panic!("on_attach bug")
    }
    fn on_detach(&self, _: &str) {
        panic!("on_detach bug")
    }
    fn wants_calls(&self) -> bool {
        match self.0 {
            Wants::No => false,
            Wants::Yes => true,
            Wants::Panics => panic!("wants_calls bug"),
        }
    }
    fn on_call(&self, _: &CallEvent<'_>) {
        panic!("on_call bug")
    }
    fn on_store_connection(&self, _: &str, _: bool) {
        panic!("on_store_connection bug")
    }
    fn name(&self) -> &str {
        panic!("name bug")
    }
}

/// The async counterpart; `on_signal` panics itself or returns a future that panics.
struct AsyncPanicsEverywhere {
    wants: Wants,
    in_future: bool,
}
impl AsyncListener for AsyncPanicsEverywhere {
    fn on_signal(&self, _: Signal) -> ListenerFuture {
        if self.in_future {
            Box::pin(async { panic!("async future bug") })
        } else {
            panic!("async on_signal bug")
        }
    }
    fn on_attach(&self, _: &str, _: State) {
        panic!("on_attach bug")
    }
    fn on_detach(&self, _: &str) {
        panic!("on_detach bug")
    }
    fn wants_calls(&self) -> bool {
        match self.wants {
            Wants::No => false,
            Wants::Yes => true,
            Wants::Panics => panic!("wants_calls bug"),
        }
    }
    fn on_call(&self, _: &CallEvent<'_>) {
        panic!("on_call bug")
    }
    fn on_store_connection(&self, _: &str, _: bool) {
        panic!("on_store_connection bug")
    }
    fn name(&self) -> &str {
        panic!("name bug")
    }
}

#[test]
fn l2_a_listener_whose_every_method_panics_never_reaches_the_caller() {
    // L-2: a listener that panics never hurts the caller; R-3: nothing reachable from a
    // configuration build() accepted panics at call time. Before: the trait's query
    // methods ran outside every catch_unwind (`name()` for the log fields of attach,
    // detach, a failed signal, store connection and on_call; `wants_calls()` when the
    // breaker was built), so such a listener made build() panic, then the call that
    // tripped the breaker, then every call when it wanted calls.
    let captured = LogText::default();
    let subscriber = captured.subscriber(); // enabled for every event: log fields are evaluated
    tracing::subscriber::with_default(subscriber, || {
        for wants in [Wants::No, Wants::Yes, Wants::Panics] {
            let cb = CircuitBreaker::builder("svc")
                .tripper(FailureStreak::new(1))
                .listener(PanicsEverywhere(wants))
                .build()
                .unwrap_or_else(|e| panic!("{wants:?}: build() fails: {e}"));
            assert_eq!(cb.state(), State::Closed, "{wants:?}");
            assert!(ok(&cb).is_ok(), "{wants:?}");
            assert!(
                matches!(fail(&cb), Err(fluxgate::Error::Inner(_))),
                "{wants:?}: the caller gets its own error"
            );
            assert_eq!(cb.state(), State::Open, "{wants:?}");
            assert!(
                matches!(ok(&cb), Err(fluxgate::Error::Rejected(_))),
                "{wants:?}"
            );
            cb.reset();
            assert_eq!(cb.state(), State::Closed, "{wants:?}");
            assert!(ok(&cb).is_ok() && ok(&cb).is_ok(), "{wants:?}");
            assert_eq!(cb.state(), State::Closed, "{wants:?}");

            // A fleet store's connection events, and detach when a registry retires it.
            let store = MemoryStore::new(ManualClock::new());
            let fleet = CircuitBreaker::builder("fleet")
                .store(store.clone())
                .listener(PanicsEverywhere(wants))
                .build()
                .unwrap_or_else(|e| panic!("{wants:?}: build() with a store fails: {e}"));
            store.set_connected(false);
            store.set_connected(true);
            assert!(ok(&fleet).is_ok(), "{wants:?}");
            let registry: Registry = Registry::builder()
                .listener(PanicsEverywhere(wants))
                .build();
            let kept = registry.get_or_create("db").expect("get_or_create");
            kept.force_open();
            assert_eq!(kept.state(), State::ForcedOpen, "{wants:?}");
            assert!(registry.remove("db"), "{wants:?}");

            // The async face: sync and async listeners, futures driven on this thread.
            for in_future in [false, true] {
                let cb = AsyncCircuitBreaker::builder("async")
                    .tripper(FailureStreak::new(1))
                    .listener(PanicsEverywhere(wants))
                    .async_listener(AsyncPanicsEverywhere { wants, in_future })
                    .spawner(|mut fut: SpawnFuture| {
                        let mut cx = Context::from_waker(Waker::noop());
                        let _ = fut.as_mut().poll(&mut cx);
                    })
                    .build()
                    .unwrap_or_else(|e| panic!("{wants:?}: async build() fails: {e}"));
                cb.admit().expect("admitted").success();
                cb.admit().expect("admitted").failure();
                assert_eq!(cb.state(), State::Open, "{wants:?} {in_future}");
                assert!(cb.admit().is_err(), "{wants:?} {in_future}");
                cb.reset();
                assert_eq!(cb.state(), State::Closed, "{wants:?} {in_future}");
                cb.admit().expect("admitted").success();
                assert_eq!(cb.state(), State::Closed, "{wants:?} {in_future}");
            }
        }
    });
    let log = captured.text();
    assert!(log.contains("listener panicked in name"), "{log}");
    assert!(log.contains("<listener>"), "{log}");
    assert!(log.contains("listener panicked in wants_calls"), "{log}");
    assert!(log.contains("listener panicked in on_call"), "{log}");
    assert!(
        log.contains("listener panicked in on_store_connection"),
        "{log}"
    );
    assert!(log.contains("listener panicked in on_detach"), "{log}");
    assert!(log.contains("async future bug"), "{log}");
    assert!(log.contains("async on_signal bug"), "{log}");
}
