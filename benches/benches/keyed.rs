//! Keyed breakers: the cost of finding a key's breaker among many.
//!
//! Group `keyed` (see BENCHMARKS.md):
//! - `plain` — one successful no-op call through one closed breaker (default config);
//! - `plain_10k` — the same call on 10 000 breakers held in a `Vec`, a different one each
//!   call (the cost of touching many breakers, without a lookup);
//! - `keyed_u64_10k` — the same call through `Keyed<u64>` holding 10 000 live keys, the
//!   key changing on every call (a lookup that hits a different entry each time);
//! - `keyed_u64_10k_one_key` — the same map, always the same key (the lookup's own cost,
//!   without the cache misses of touching 10 000 breakers in turn);
//! - `keyed_str_10k` — the same with `Keyed<String>` looked up by `&str` (host names);
//! - `registry_get` — `Registry::get` by name among 100 breakers, then the call;
//! - `floor_lock_and_pin` — what a lookup's synchronization costs by itself: a read
//!   lock taken and released and an `Arc` cloned and dropped, with no map and no call
//!   (the four atomic read-modify-writes of `Keyed::get` for one hot key).

use std::hint::black_box;
use std::io;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use fluxgate::CircuitBreaker;
use fluxgate::keyed::Keyed;
use fluxgate::registry::Registry;

const KEYS: u64 = 10_000;

#[inline(always)]
fn work() -> Result<u64, io::Error> {
    Ok(black_box(1))
}

fn keyed(c: &mut Criterion) {
    let mut g = c.benchmark_group("keyed");
    let cb = CircuitBreaker::builder("plain").build().unwrap();
    g.bench_function("plain", |b| b.iter(|| black_box(cb.call(work))));

    // The same call on 10 000 breakers taken in turn from a Vec: the cache misses of
    // touching many breakers, without any lookup.
    let many: Vec<CircuitBreaker> = (0..KEYS)
        .map(|k| CircuitBreaker::builder(&format!("k{k}")).build().unwrap())
        .collect();
    let mut i = 0usize;
    g.bench_function("plain_10k", |b| {
        b.iter(|| {
            i = (i + 7919) % many.len();
            black_box(many[i].call(work))
        })
    });

    let by_id: Keyed<u64> = Keyed::builder("k").max_keys(KEYS as usize).build().unwrap();
    for k in 0..KEYS {
        by_id.get(&k);
    }
    let mut i = 0u64;
    g.bench_function("keyed_u64_10k", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            black_box(by_id.get(&i).call(work))
        })
    });
    assert_eq!(by_id.len(), KEYS as usize);
    let hot = 4242u64;
    g.bench_function("keyed_u64_10k_one_key", |b| {
        b.iter(|| black_box(by_id.get(&hot).call(work)))
    });

    let hosts: Keyed<String> = Keyed::builder("h:")
        .max_keys(KEYS as usize)
        .build()
        .unwrap();
    let names: Vec<String> = (0..KEYS)
        .map(|k| format!("host-{k}.internal:8080"))
        .collect();
    for n in &names {
        hosts.get(n.as_str());
    }
    let mut i = 0usize;
    g.bench_function("keyed_str_10k", |b| {
        b.iter(|| {
            i = (i + 7919) % names.len();
            black_box(hosts.get(names[i].as_str()).call(work))
        })
    });

    let registry: Registry = Registry::new();
    let services: Vec<String> = (0..100).map(|k| format!("service_{k}")).collect();
    for s in &services {
        registry.get_or_create(s).unwrap();
    }
    let mut i = 0usize;
    g.bench_function("registry_get", |b| {
        b.iter(|| {
            i = (i + 37) % services.len();
            black_box(registry.get(&services[i]).unwrap().call(work))
        })
    });
    let lock = std::sync::RwLock::new(std::sync::Arc::new(0u64));
    g.bench_function("floor_lock_and_pin", |b| {
        b.iter(|| {
            let pinned = lock.read().unwrap().clone();
            black_box(*pinned)
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .noise_threshold(0.05)
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = keyed
}
criterion_main!(benches);
