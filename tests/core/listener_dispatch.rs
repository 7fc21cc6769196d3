//! Listener dispatch rules: L-1, L-2, L-4, L-5 (SPEC §7).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use crate::support::logs::LogText;
use crate::support::*;
use fluxgate::listeners::{Listener, ListenerError};
use fluxgate::trippers::FailureStreak;
use fluxgate::{CircuitBreaker, Signal, State};

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
