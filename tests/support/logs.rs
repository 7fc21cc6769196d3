//! Capturing what the crate logs through `tracing`, for the tests that check it: the
//! events with their fields ([`Logs`]) and the formatted lines ([`LogText`]). Both are set
//! as the default subscriber of the test's thread (`tracing::subscriber::with_default`),
//! never globally, so tests running side by side do not see each other's events.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// One captured `tracing` event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    pub(crate) target: String,
    pub(crate) level: Level,
    pub(crate) fields: BTreeMap<String, String>,
}

impl Event {
    pub(crate) fn field(&self, name: &str) -> &str {
        self.fields.get(name).map(String::as_str).unwrap_or("")
    }

    pub(crate) fn message(&self) -> &str {
        self.field("message")
    }
}

/// Collects every event of the subscriber it is part of.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<Event>>>);

impl Logs {
    /// A subscriber that records into `self`; set it as default while building a listener
    /// and the listener's worker logs into it too.
    pub(crate) fn subscriber(&self) -> impl Subscriber + Send + Sync + 'static + use<> {
        tracing_subscriber::registry().with(self.clone())
    }

    pub(crate) fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Everything recorded, as text: for "the token appears nowhere" checks.
    pub(crate) fn text(&self) -> String {
        format!("{:?}", self.events())
    }
}

struct FieldMap<'a>(&'a mut BTreeMap<String, String>);

impl Visit for FieldMap<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber> Layer<S> for Logs {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut FieldMap(&mut fields));
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Event {
                target: event.metadata().target().to_owned(),
                level: *event.metadata().level(),
                fields,
            });
    }
}

/// The formatted log lines (no colours), as the `fmt` subscriber writes them.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogText(Arc<Mutex<Vec<u8>>>);

impl LogText {
    /// A `fmt` subscriber that writes into `self` (without timestamps).
    pub(crate) fn subscriber(&self) -> impl Subscriber + Send + Sync + 'static + use<> {
        tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .without_time()
            .finish()
    }

    /// A subscriber that records the events into `logs` and their lines into `self`
    /// (without timestamps).
    pub(crate) fn with_events(
        &self,
        logs: &Logs,
    ) -> impl Subscriber + Send + Sync + 'static + use<> {
        tracing_subscriber::registry().with(logs.clone()).with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .without_time()
                .with_writer(self.clone()),
        )
    }

    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl io::Write for LogText {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogText {
    type Writer = LogText;
    fn make_writer(&'a self) -> LogText {
        self.clone()
    }
}
