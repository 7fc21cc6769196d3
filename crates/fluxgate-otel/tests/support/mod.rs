//! Reading what the OpenTelemetry SDK exports: a provider with the in-memory exporter,
//! collected on demand, and the points of one instrument as attribute maps.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fluxgate_core::State;
use opentelemetry::Value;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{
    InMemoryMetricExporter, PeriodicReader, SdkMeterProvider, Temporality,
};

/// Attributes of one point, by key.
pub type Attributes = BTreeMap<String, String>;

pub struct Harness {
    pub exporter: InMemoryMetricExporter,
    pub provider: SdkMeterProvider,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with_temporality(Temporality::Cumulative)
    }

    pub fn with_temporality(temporality: Temporality) -> Harness {
        let exporter = opentelemetry_sdk::metrics::InMemoryMetricExporterBuilder::new()
            .with_temporality(temporality)
            .build();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        Harness { exporter, provider }
    }

    /// Collects now and returns what was exported by this collection only.
    pub fn collect(&self) -> Collected {
        self.exporter.reset();
        self.provider.force_flush().expect("force_flush");
        // An empty collection is not exported at all.
        let exported = self.exporter.get_finished_metrics().expect("exported");
        assert!(exported.len() <= 1, "one collection per force_flush");
        Collected(exported)
    }

    /// Collects until `done` holds, for at most 10 s.
    pub fn collect_until(&self, what: &str, done: impl Fn(&Collected) -> bool) -> Collected {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let collected = self.collect();
            if done(&collected) {
                return collected;
            }
            assert!(
                Instant::now() < deadline,
                "after 10 s still not {what}: {:#?}",
                collected.0
            );
            std::thread::yield_now();
        }
    }
}

/// The resource metrics of one collection (none when nothing was reported).
pub struct Collected(pub Vec<ResourceMetrics>);

fn attributes<'a>(kvs: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> Attributes {
    kvs.map(|kv| {
        let value = match &kv.value {
            Value::String(s) => s.as_str().to_owned(),
            other => panic!("{}: not a string attribute: {other:?}", kv.key),
        };
        (kv.key.as_str().to_owned(), value)
    })
    .collect()
}

pub fn attrs(pairs: &[(&str, &str)]) -> Attributes {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

impl Collected {
    pub fn metric(&self, name: &str) -> Option<&Metric> {
        let mut found = self
            .0
            .iter()
            .flat_map(|resource| resource.scope_metrics())
            .flat_map(|scope| scope.metrics())
            .filter(|metric| metric.name() == name);
        let metric = found.next();
        assert!(found.next().is_none(), "{name} exported twice");
        metric
    }

    /// The points of a `u64` gauge or sum, with their attributes.
    pub fn points(&self, name: &str) -> Vec<(Attributes, u64)> {
        let Some(metric) = self.metric(name) else {
            return Vec::new();
        };
        match metric.data() {
            AggregatedMetrics::U64(MetricData::Gauge(gauge)) => gauge
                .data_points()
                .map(|p| (attributes(p.attributes()), p.value()))
                .collect(),
            AggregatedMetrics::U64(MetricData::Sum(sum)) => sum
                .data_points()
                .map(|p| (attributes(p.attributes()), p.value()))
                .collect(),
            other => panic!("{name}: unexpected data {other:?}"),
        }
    }

    /// The points of `name` whose `circuit_name` is `circuit`.
    pub fn circuit_points(&self, name: &str, circuit: &str) -> Vec<(Attributes, u64)> {
        self.points(name)
            .into_iter()
            .filter(|(a, _)| a.get("circuit_name").map(String::as_str) == Some(circuit))
            .collect()
    }

    /// `circuit_breaker_state` of one circuit, by state name.
    pub fn gauges(&self, circuit: &str) -> BTreeMap<String, u64> {
        self.circuit_points("circuit_breaker_state", circuit)
            .into_iter()
            .map(|(mut a, v)| {
                let state = a.remove("state").expect("state attribute");
                a.remove("circuit_name");
                assert!(a.is_empty(), "extra attributes {a:?}");
                (state, v)
            })
            .collect()
    }

    /// The one state whose gauge is 1; panics unless the six gauges are exactly one 1
    /// and five 0.
    pub fn current(&self, circuit: &str) -> State {
        let gauges = self.gauges(circuit);
        assert_eq!(gauges.len(), 6, "{circuit}: {gauges:?}");
        let ones: Vec<&String> = gauges
            .iter()
            .filter(|(_, v)| **v == 1)
            .map(|(k, _)| k)
            .collect();
        assert_eq!(ones.len(), 1, "{circuit}: {gauges:?}");
        assert_eq!(
            gauges.values().filter(|v| **v == 0).count(),
            5,
            "{gauges:?}"
        );
        State::from_name(ones[0]).expect("a state name")
    }

    /// `circuit_breaker_state_transition` of one circuit, by `(old, new)`.
    pub fn transitions(&self, circuit: &str) -> BTreeMap<(String, String), u64> {
        self.circuit_points("circuit_breaker_state_transition", circuit)
            .into_iter()
            .map(|(mut a, v)| {
                let old = a.remove("old_state").expect("old_state attribute");
                let new = a.remove("new_state").expect("new_state attribute");
                a.remove("circuit_name");
                assert!(a.is_empty(), "extra attributes {a:?}");
                ((old, new), v)
            })
            .collect()
    }

    /// Whether any instrument reports a point for `circuit`.
    pub fn reports(&self, circuit: &str) -> bool {
        self.0
            .iter()
            .flat_map(|resource| resource.scope_metrics())
            .flat_map(|scope| scope.metrics())
            .any(|metric| match metric.data() {
                AggregatedMetrics::U64(MetricData::Gauge(g)) => g
                    .data_points()
                    .any(|p| attributes(p.attributes())["circuit_name"] == circuit),
                AggregatedMetrics::U64(MetricData::Sum(s)) => s
                    .data_points()
                    .any(|p| attributes(p.attributes())["circuit_name"] == circuit),
                AggregatedMetrics::F64(MetricData::Histogram(h)) => h
                    .data_points()
                    .any(|p| attributes(p.attributes())["circuit_name"] == circuit),
                _ => false,
            })
    }
}

/// `(old, new)` keys for [`Collected::transitions`].
pub fn pair(old: State, new: State) -> (String, String) {
    (old.as_str().to_owned(), new.as_str().to_owned())
}

/// One point of a histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramPoint {
    pub attributes: Attributes,
    pub bounds: Vec<f64>,
    pub bucket_counts: Vec<u64>,
    pub count: u64,
    pub sum: f64,
}

impl Collected {
    /// The points of an `f64` histogram.
    pub fn histogram(&self, name: &str) -> Vec<HistogramPoint> {
        let Some(metric) = self.metric(name) else {
            return Vec::new();
        };
        match metric.data() {
            AggregatedMetrics::F64(MetricData::Histogram(histogram)) => histogram
                .data_points()
                .map(|p| HistogramPoint {
                    attributes: attributes(p.attributes()),
                    bounds: p.bounds().collect(),
                    bucket_counts: p.bucket_counts().collect(),
                    count: p.count(),
                    sum: p.sum(),
                })
                .collect(),
            other => panic!("{name}: unexpected data {other:?}"),
        }
    }

    /// `circuit_breaker_calls` of one circuit, by outcome.
    pub fn calls(&self, circuit: &str) -> BTreeMap<String, u64> {
        self.circuit_points("circuit_breaker_calls", circuit)
            .into_iter()
            .map(|(mut a, v)| {
                let outcome = a.remove("outcome").expect("outcome attribute");
                a.remove("circuit_name");
                assert!(a.is_empty(), "extra attributes {a:?}");
                (outcome, v)
            })
            .collect()
    }
}

/// Polls a future to completion on this thread (the futures of these tests never wait).
pub fn ready<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the future was not ready"),
    }
}
