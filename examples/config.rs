//! Builds breakers from a configuration file and shows what a mistake in one looks like.
//!
//! ```text
//! cargo run --example config --features config                        # docs/config/breakers.toml
//! cargo run --example config --features config -- demo/breakers.toml  # any .toml/.yaml/.yml
//! ```

use std::io;

use fluxgate::CircuitBreaker;
use fluxgate::config::{Breaker, Config, Live, Trackers};
use fluxgate::listeners::log::LogListener;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "docs/config/breakers.toml".to_owned());
    let config = Config::from_path(&path)?;

    // The tracker names the files use, and what they mean in this program.
    let trackers = Trackers::new()
        .add::<io::Error>("io")
        .add_fn("not_found", |e| {
            e.downcast_ref::<io::Error>()
                .is_some_and(|e| e.kind() == io::ErrorKind::NotFound)
        })
        .add_fn("timeout", |e| e.to_string().contains("timed out"));
    config.check(&trackers)?;

    let log = std::sync::Arc::new(LogListener::new());
    for name in config.names() {
        let cb = config
            .builder::<CircuitBreaker>(name, &trackers)?
            .listener(log.clone())
            .build()?;
        let c = config.get(name);
        cb.enter_silently(c.state);
        println!(
            "{name:<16} {:<12} tripper {}\n{:<16} {:<12} retry {:?}, permit {:?}",
            cb.state().as_str(),
            c.tripper,
            "",
            "",
            c.retry,
            c.permit,
        );
    }

    // The same file running a registry, and a reload of it: nothing changed, nothing
    // touched.
    let live = Live::new(config.clone(), trackers)?;
    let registry = live
        .registry_builder::<CircuitBreaker>()
        .listener(log)
        .build();
    live.start(&registry)?;
    let changes = live.apply(&registry, Config::from_path(&path)?)?;
    println!("\nreloaded {path}: {changes}");

    // One mistake, one error naming the breaker, the field, the value and the line.
    let typo = "[breakers.payment_api]\ntripper = \"MinRequests(20) & FailureRate(1.5)\"\n";
    match Config::from_toml_str(typo) {
        Ok(_) => unreachable!("a ratio of 1.5 is refused"),
        Err(e) => println!("\na bad file:\n  {e}"),
    }
    Ok(())
}
