//! One circuit, two listeners: the Prometheus listener and the OpenTelemetry listener side
//! by side, both with their opt-in call metrics, and what each exports after the circuit
//! trips and recovers.
//!
//! ```text
//! cargo run --example opentelemetry --features opentelemetry,prometheus
//! ```
//!
//! The OpenTelemetry side uses the SDK's in-memory exporter so that the example can print
//! what was exported; a service puts its OTLP (or other) exporter in the reader instead.

use std::io;

use fluxgate::CircuitBreaker;
use fluxgate::listeners::opentelemetry::OpenTelemetryListener;
use fluxgate::listeners::prometheus::{PrometheusListener, encode_text};
use fluxgate::retries::Always;
use fluxgate::trippers::FailureStreak;
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let registry = prometheus::Registry::new();
    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();

    let cb = CircuitBreaker::builder("payment_api")
        .tripper(FailureStreak::new(3))
        .retry(Always)
        .permit(fluxgate::permits::All)
        .listener(PrometheusListener::with_registry(&registry)?.with_call_metrics()?)
        .listener(
            OpenTelemetryListener::builder(&provider)
                .call_metrics(true)
                .build(),
        )
        .build()?;

    // Three failures trip it; the next call is a probe that succeeds and closes it.
    for _ in 0..3 {
        let _ = cb.call(|| Err::<(), _>(io::Error::other("503")));
    }
    cb.call(|| Ok::<_, io::Error>(()))?;

    println!("== Prometheus (the registry's text, as /metrics serves it)\n");
    print!("{}", encode_text(&registry)?);

    println!("\n== OpenTelemetry (the points the reader exported)\n");
    provider.force_flush()?;
    for resource in exporter.get_finished_metrics()? {
        for scope in resource.scope_metrics() {
            for metric in scope.metrics() {
                let unit = match metric.unit() {
                    "" => String::new(),
                    unit => format!(", unit {unit}"),
                };
                println!("{} ({}{unit})", metric.name(), metric.description());
                let points: Vec<(String, u64)> = match metric.data() {
                    AggregatedMetrics::U64(MetricData::Gauge(gauge)) => gauge
                        .data_points()
                        .map(|p| (attributes(p.attributes()), p.value()))
                        .collect(),
                    AggregatedMetrics::U64(MetricData::Sum(sum)) => sum
                        .data_points()
                        .map(|p| (attributes(p.attributes()), p.value()))
                        .collect(),
                    AggregatedMetrics::F64(MetricData::Histogram(histogram)) => histogram
                        .data_points()
                        .map(|p| {
                            let buckets: Vec<String> = p
                                .bounds()
                                .map(|b| format!("≤{b}"))
                                .chain(["+Inf".to_owned()])
                                .zip(p.bucket_counts())
                                .filter(|(_, n)| *n > 0)
                                .map(|(b, n)| format!("{b}: {n}"))
                                .collect();
                            let text = format!(
                                "{}; sum {:.3} s; buckets {}",
                                attributes(p.attributes()),
                                p.sum(),
                                buckets.join(", ")
                            );
                            (text, p.count())
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                let mut points = points;
                points.sort();
                for (attributes, value) in points {
                    println!("  {{{attributes}}} {value}");
                }
            }
        }
    }
    provider.shutdown()?;
    Ok(())
}

fn attributes<'a>(kvs: impl Iterator<Item = &'a opentelemetry::KeyValue>) -> String {
    let mut pairs: Vec<String> = kvs.map(|kv| format!("{}={}", kv.key, kv.value)).collect();
    pairs.sort();
    pairs.join(", ")
}
