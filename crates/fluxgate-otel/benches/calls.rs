//! The cost of the OpenTelemetry listener on the call path: one successful no-op call
//! through a closed breaker, without a listener, with the listener (transitions only:
//! calls pay nothing), and with its opt-in call metrics (an atomic add and a histogram
//! measurement per call), next to the Prometheus listener's call metrics.
//!
//! ```text
//! cargo bench -p fluxgate-otel --bench calls
//! ```

use std::hint::black_box;
use std::io;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fluxgate_core::CircuitBreaker;
use fluxgate_otel::OpenTelemetryListener;
use fluxgate_prometheus::PrometheusListener;
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

fn work() -> Result<u64, io::Error> {
    Ok(black_box(1))
}

/// A provider with a reader (without one the SDK's instruments do nothing), which does
/// not collect during a measurement.
fn provider() -> SdkMeterProvider {
    let reader = PeriodicReader::builder(InMemoryMetricExporter::default())
        .with_interval(Duration::from_secs(3600))
        .build();
    SdkMeterProvider::builder().with_reader(reader).build()
}

fn calls(c: &mut Criterion) {
    let mut g = c.benchmark_group("otel_calls");
    let plain = CircuitBreaker::builder("plain").build().unwrap();
    g.bench_function("no listener", |b| b.iter(|| black_box(plain.call(work))));

    let provider = provider();
    let transitions = CircuitBreaker::builder("transitions")
        .listener(OpenTelemetryListener::new(&provider))
        .build()
        .unwrap();
    g.bench_function("OpenTelemetryListener", |b| {
        b.iter(|| black_box(transitions.call(work)))
    });

    let calls = CircuitBreaker::builder("calls")
        .listener(
            OpenTelemetryListener::builder(&provider)
                .call_metrics(true)
                .build(),
        )
        .build()
        .unwrap();
    g.bench_function("OpenTelemetryListener call metrics", |b| {
        b.iter(|| black_box(calls.call(work)))
    });

    let prometheus = CircuitBreaker::builder("prometheus")
        .listener(
            PrometheusListener::with_registry(&prometheus::Registry::new())
                .and_then(PrometheusListener::with_call_metrics)
                .unwrap(),
        )
        .build()
        .unwrap();
    g.bench_function("PrometheusListener call metrics", |b| {
        b.iter(|| black_box(prometheus.call(work)))
    });
    g.finish();
    provider.shutdown().unwrap();
}

criterion_group!(benches, calls);
criterion_main!(benches);
