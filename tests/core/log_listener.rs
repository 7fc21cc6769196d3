//! LogListener (LG-1): one `tracing` event per signal, captured here by a subscriber layer.

use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use fluxgate::listeners::Listener;
use fluxgate::listeners::log::{DEFAULT_TARGET, Level, LogListener};
use fluxgate::{Signal, State};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::{Layer, SubscriberExt};

use crate::support::logs::{Event as Captured, LogText, Logs as Capture};

/// Runs `f` with a capturing subscriber as the thread's default and returns what it saw.
fn capture(f: impl FnOnce()) -> Vec<Captured> {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(capture.clone());
    tracing::subscriber::with_default(subscriber, f);
    capture.events()
}

fn signal(name: &str, old: State, new: State) -> Signal {
    Signal::new(name, old, new, SystemTime::UNIX_EPOCH)
}

fn expected_level(new: State) -> Level {
    if matches!(new, State::Open | State::ForcedOpen) {
        Level::WARN
    } else {
        Level::INFO
    }
}

// LG-1: exactly one event per signal, message and structured fields, for all 36 pairs.
#[test]
fn lg1_one_event_per_signal_with_message_and_fields_for_every_pair() {
    let log = LogListener::new();
    let mut sent = Vec::new();
    let events = capture(|| {
        for old in State::ALL {
            for new in State::ALL {
                let s = signal("payment_api", old, new);
                log.on_signal(&s).unwrap();
                sent.push((old, new));
            }
        }
    });
    assert_eq!(events.len(), 36);
    for (event, (old, new)) in events.iter().zip(sent) {
        assert_eq!(
            event.field("message"),
            format!(
                "Circuit Breaker 'payment_api' transitioned from {} to {}",
                old.as_str(),
                new.as_str()
            )
        );
        assert_eq!(event.field("circuit"), "payment_api");
        assert_eq!(event.field("old_state"), old.as_str());
        assert_eq!(event.field("new_state"), new.as_str());
        assert_eq!(event.target, DEFAULT_TARGET);
        assert_eq!(event.fields.len(), 4, "no other fields: {event:?}");
    }
}

// LG-1: WARN for open and forced_open, INFO otherwise (the state entered decides).
#[test]
fn lg1_warn_for_open_and_forced_open_info_otherwise() {
    let log = LogListener::new();
    let events = capture(|| {
        for new in State::ALL {
            log.on_signal(&signal("db", State::Closed, new)).unwrap();
        }
    });
    let levels: Vec<Level> = events.iter().map(|e| e.level).collect();
    assert_eq!(
        levels,
        [
            Level::INFO, // closed
            Level::WARN, // open
            Level::INFO, // half_open
            Level::INFO, // metrics_only
            Level::INFO, // disabled
            Level::WARN, // forced_open
        ]
    );
    assert_eq!(levels, State::ALL.map(expected_level));
}

// LG-1: a caller may override the level per state; the others keep their default.
#[test]
fn lg1_level_override_per_state() {
    let log = LogListener::new()
        .level(State::Open, Level::ERROR)
        .level(State::HalfOpen, Level::DEBUG)
        .level(State::Closed, Level::WARN);
    let events = capture(|| {
        for new in State::ALL {
            log.on_signal(&signal("db", State::Closed, new)).unwrap();
        }
    });
    let levels: Vec<Level> = events.iter().map(|e| e.level).collect();
    assert_eq!(
        levels,
        [
            Level::WARN,
            Level::ERROR,
            Level::DEBUG,
            Level::INFO,
            Level::INFO,
            Level::WARN
        ]
    );
}

// LG-1: the custom target is the event's real target, whatever the order of the setters.
#[test]
fn lg1_custom_target_is_the_events_target() {
    let a = LogListener::new()
        .target("payments::breaker")
        .level(State::Open, Level::ERROR);
    let b = LogListener::new()
        .level(State::Open, Level::ERROR)
        .target("payments::breaker");
    let events = capture(|| {
        a.on_signal(&signal("p", State::Closed, State::Open))
            .unwrap();
        b.on_signal(&signal("p", State::Closed, State::Open))
            .unwrap();
        a.on_signal(&signal("p", State::Open, State::HalfOpen))
            .unwrap();
    });
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e.target == "payments::breaker"));
    assert_eq!(
        events.iter().map(|e| e.level).collect::<Vec<_>>(),
        [Level::ERROR, Level::ERROR, Level::INFO]
    );
    assert_eq!(events[0], events[1]);
}

// LG-1: because the target is real, target filters select breaker events by it.
#[test]
fn lg1_target_filters_select_the_custom_target() {
    let payments = LogListener::new().target("payments");
    let default = LogListener::new();
    let capture_layer = Capture::default();
    let subscriber = tracing_subscriber::registry().with(
        capture_layer
            .clone()
            .with_filter(Targets::new().with_target("payments", Level::WARN)),
    );
    tracing::subscriber::with_default(subscriber, || {
        payments
            .on_signal(&signal("a", State::Closed, State::Open))
            .unwrap(); // WARN: kept
        payments
            .on_signal(&signal("a", State::Open, State::HalfOpen))
            .unwrap(); // INFO: below the filter
        default
            .on_signal(&signal("b", State::Closed, State::Open))
            .unwrap(); // other target: not selected
    });
    let events = capture_layer.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].field("circuit"), "a");
    assert_eq!(events[0].field("new_state"), "open");
}

// LG-1: a subscriber that does not want INFO gets only the WARN events.
#[test]
fn lg1_level_filter_of_the_subscriber_is_honoured() {
    let log = LogListener::new();
    let capture_layer = Capture::default();
    let subscriber = tracing_subscriber::registry().with(
        capture_layer
            .clone()
            .with_filter(tracing_subscriber::filter::LevelFilter::WARN),
    );
    tracing::subscriber::with_default(subscriber, || {
        for new in State::ALL {
            log.on_signal(&signal("c", State::Closed, new)).unwrap();
        }
    });
    let states: Vec<String> = capture_layer
        .events()
        .iter()
        .map(|e| e.field("new_state").to_owned())
        .collect();
    assert_eq!(states, ["open", "forced_open"]);
}

// LG-1: what a person reads with the stock formatter: level, target, message, fields.
#[test]
fn lg1_fmt_output_shows_level_target_message_and_fields() {
    let buffer = LogText::default();
    let subscriber = buffer.subscriber();
    let log = LogListener::new().target("checkout::breakers");
    tracing::subscriber::with_default(subscriber, || {
        log.on_signal(&signal("payment_api", State::Closed, State::Open))
            .unwrap();
    });
    let out = buffer.text();
    assert_eq!(
        out.trim_end(),
        " WARN checkout::breakers: Circuit Breaker 'payment_api' transitioned from closed to open \
         circuit=\"payment_api\" old_state=\"closed\" new_state=\"open\""
    );
}

// L-5: one listener serves many circuits (and threads); each event names its own circuit.
#[test]
fn l5_one_listener_many_circuits() {
    let log = Arc::new(LogListener::new());
    let events = capture(|| {
        for name in ["a", "b", "c"] {
            log.on_signal(&signal(name, State::Closed, State::Open))
                .unwrap();
        }
    });
    let circuits: Vec<&str> = events.iter().map(|e| e.field("circuit")).collect();
    assert_eq!(circuits, ["a", "b", "c"]);
}

// With no subscriber at all, logging is a no-op and never fails the listener (L-2).
#[test]
fn without_subscriber_nothing_happens_and_nothing_fails() {
    let log = LogListener::new().target("quiet");
    for new in State::ALL {
        log.on_signal(&signal("q", State::Closed, new)).unwrap();
    }
}

#[test]
fn debug_shows_target_and_levels() {
    let log = LogListener::new()
        .target("t")
        .level(State::Closed, Level::DEBUG);
    let text = format!("{log:?}");
    assert!(text.contains("target: \"t\""), "{text}");
    assert!(text.contains("\"closed\": Level(Debug)"), "{text}");
    assert!(text.contains("\"open\": Level(Warn)"), "{text}");
}

// LG-1 through a real breaker: each transition is logged once, in order, with its level.
#[test]
fn lg1_breaker_transitions_are_logged() {
    let events = capture(|| {
        let cb = fluxgate::CircuitBreaker::builder("payment_api")
            .tripper(fluxgate::trippers::FailureStreak::new(1))
            .retry(fluxgate::retries::Always)
            .permit(fluxgate::permits::All)
            .listener(LogListener::new())
            .build()
            .unwrap();
        let _ = cb.call(|| Err::<(), _>(io::Error::other("x"))); // closed -> open
        let _ = cb.call(|| Ok::<_, io::Error>(())); // open -> half_open -> closed
        cb.force_open();
        cb.reset();
    });
    let seen: Vec<(Level, &str)> = events
        .iter()
        .map(|e| (e.level, e.field("message")))
        .collect();
    assert_eq!(
        seen,
        [
            (
                Level::WARN,
                "Circuit Breaker 'payment_api' transitioned from closed to open"
            ),
            (
                Level::INFO,
                "Circuit Breaker 'payment_api' transitioned from open to half_open"
            ),
            (
                Level::INFO,
                "Circuit Breaker 'payment_api' transitioned from half_open to closed"
            ),
            (
                Level::WARN,
                "Circuit Breaker 'payment_api' transitioned from closed to forced_open"
            ),
            (
                Level::INFO,
                "Circuit Breaker 'payment_api' transitioned from forced_open to closed"
            ),
        ]
    );
}

// LG-1 with the async breaker: LogListener is also an AsyncListener and logs in order.
#[test]
fn lg1_async_breaker_transitions_are_logged() {
    let events = capture(|| {
        let cb = fluxgate::AsyncCircuitBreaker::builder("inventory")
            .async_listener(LogListener::new().target("inventory::breaker"))
            .build()
            .unwrap();
        cb.force_open();
        cb.disable();
    });
    let seen: Vec<(&str, &str, &str)> = events
        .iter()
        .filter(|e| e.target == "inventory::breaker")
        .map(|e| {
            (
                e.field("circuit"),
                e.field("old_state"),
                e.field("new_state"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("inventory", "closed", "forced_open"),
            ("inventory", "forced_open", "disabled")
        ]
    );
}
