#![forbid(unsafe_code)]
//! Benchmarks of fluxgate beside its peers; the code is in `benches/`:
//! `cargo bench -p fluxgate-bench --features tower`. See BENCHMARKS.md.
