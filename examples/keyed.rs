//! One breaker per upstream host, bounded: a failing host keeps its open breaker while a
//! flood of new hosts comes and goes.
//!
//! ```text
//! cargo run --example keyed
//! ```

use std::io;

use fluxgate::State;
use fluxgate::keyed::Keyed;
use fluxgate::trippers::FailureStreak;

fn main() -> Result<(), fluxgate::ConfigError> {
    let hosts: Keyed<String> = Keyed::builder("upstream:")
        .template(|b| b.tripper(FailureStreak::new(3)))
        .max_keys(1_000)
        .build()?;

    for _ in 0..3 {
        let _ = hosts
            .get("db-1.internal")
            .call(|| Err::<(), _>(io::Error::other("connection refused")));
    }
    println!("db-1.internal is {}", hosts.get("db-1.internal").state());

    for i in 0..50_000 {
        let host = format!("client-{i}.example");
        let _ = hosts.get(host.as_str()).call(|| Ok::<_, io::Error>(()));
    }
    println!(
        "after 50 000 new hosts: {} live keys (max {}), {} evicted, {} on the overflow breaker",
        hosts.len(),
        hosts.max_keys(),
        hosts.evicted(),
        hosts.overflowed()
    );
    let db = hosts.get("db-1.internal");
    assert_eq!(db.state(), State::Open);
    println!("db-1.internal is still {}", db.state());
    Ok(())
}
