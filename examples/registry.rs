//! A registry of named breakers: a template, an override, one listener for all, a
//! snapshot, a live reconfiguration that keeps state, and a removal.
//!
//! ```text
//! cargo run --example registry
//! ```

use std::io;

use fluxgate::registry::Registry;
use fluxgate::trippers::FailureStreak;
use fluxgate::windows::CountWindow;
use fluxgate::{Signal, State};

fn call(registry: &Registry, name: &str, fail: bool) {
    // Look the breaker up per call: a reconfiguration replaces it.
    let cb = registry.get_or_create(name).expect("valid configuration");
    let _ = cb.call(|| {
        if fail {
            Err(io::Error::other("503"))
        } else {
            Ok(())
        }
    });
}

fn main() -> Result<(), fluxgate::ConfigError> {
    let registry: Registry = Registry::builder()
        .defaults(|b| b.tripper(FailureStreak::new(5)))
        .breaker("payments", |b| b.tripper(FailureStreak::new(2)))
        .listener(|s: &Signal| {
            println!(
                "signal  {}: {} -> {}",
                s.circuit_name, s.old_state, s.new_state
            )
        })
        .build();

    call(&registry, "payments", true);
    call(&registry, "payments", true);
    call(&registry, "search", false);
    for info in registry.snapshot() {
        println!(
            "state   {}: {} ({} calls)",
            info.name, info.state, info.metric.total_count
        );
    }

    // A config reload: a longer streak for payments, same window shape.
    let change = registry.reconfigure("payments", |b| b.tripper(FailureStreak::new(4)))?;
    println!("reload  {}", change.expect("payments exists"));
    assert_eq!(registry.get("payments").unwrap().state(), State::Open);

    // Another window shape for search: its state stays, its window starts empty.
    let change = registry.reconfigure("search", |b| b.window(CountWindow::new(20)))?;
    println!("reload  {}", change.expect("search exists"));

    assert!(registry.remove("search"));
    println!("names   {:?}", registry.names());
    Ok(())
}
