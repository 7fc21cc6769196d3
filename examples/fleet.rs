//! Three instances of a service share one breaker through Redis: one trips, the others
//! follow; one probes; an operator's `force_open` on one reaches all.
//!
//! ```sh
//! redis-server --port 6379 --save '' --appendonly no &   # a local Redis
//! cargo run --example fleet --features redis              # or FLUXGATE_REDIS_URL=redis://…
//! ```
//!
//! Each instance has its own store (its own connections), as separate processes would.

use std::time::{Duration, Instant};

use fluxgate::store::redis::RedisStore;
use fluxgate::{CircuitBreaker, State, retries::Cooldown, trippers::FailureStreak};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("FLUXGATE_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
    // A prefix of this run, so that old runs' state does not get in the way.
    let prefix = format!("fleet-example-{}", std::process::id());
    let instances: Vec<(RedisStore, CircuitBreaker)> = (0..3)
        .map(|_| {
            let store = RedisStore::builder(&url)
                .prefix(&prefix)
                .probes(1)
                .poll_interval(Duration::from_millis(200))
                .build()?;
            let cb = CircuitBreaker::builder("payment_api")
                .tripper(FailureStreak::new(3))
                .retry(Cooldown::new(Duration::from_secs(2)))
                .permit(fluxgate::permits::All)
                .max_half_open_calls(1)
                .store(store.clone())
                .build()?;
            Ok((store, cb))
        })
        .collect::<Result<_, fluxgate::ConfigError>>()?;
    let show = |what: &str| {
        let states: Vec<String> = instances
            .iter()
            .map(|(_, cb)| format!("{:<11}", cb.state().as_str()))
            .collect();
        println!("{what:<46} {}", states.join(" "));
    };
    let until = |what: &str, cond: &dyn Fn() -> bool| -> Result<(), String> {
        let start = Instant::now();
        while !cond() {
            if start.elapsed() > Duration::from_secs(10) {
                return Err(format!(
                    "{what}: not within 10 s (is Redis at {url} running?)"
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    };

    until("connecting", &|| {
        instances.iter().all(|(s, _)| s.is_connected())
    })?;
    show("connected; states of instances 0, 1, 2:");

    let failing = || Err::<(), _>(std::io::Error::other("503"));
    for _ in 0..3 {
        let _ = instances[0].1.call(failing);
    }
    show("instance 0 saw 3 failures and opened");
    let start = Instant::now();
    until("the fleet opening", &|| {
        instances.iter().all(|(_, cb)| cb.state() == State::Open)
    })?;
    show(&format!("the others followed in {:?}", start.elapsed()));
    for (i, (_, cb)) in instances.iter().enumerate() {
        println!("  instance {i}: retry_after {:?}", cb.retry_after());
    }

    // After the cooldown every instance gets traffic; exactly one gets the lease.
    let start = Instant::now();
    let mut probe = None;
    while probe.is_none() {
        if start.elapsed() > Duration::from_secs(10) {
            return Err("no instance probed within 10 s".into());
        }
        for (i, (_, cb)) in instances.iter().enumerate() {
            if let Ok(ticket) = cb.admit_owned() {
                probe = Some((i, ticket));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    show("after the cooldown, one instance holds the lease");
    if let Some((i, ticket)) = probe {
        ticket.success();
        println!("  instance {i}'s probe succeeded");
    }
    until("the fleet closing", &|| {
        instances.iter().all(|(_, cb)| cb.state() == State::Closed)
    })?;
    show("the probe closed the whole fleet");

    instances[2].1.force_open();
    until("the command spreading", &|| {
        instances
            .iter()
            .all(|(_, cb)| cb.state() == State::ForcedOpen)
    })?;
    show("an operator forced instance 2 open: all follow");
    instances[1].1.reset();
    until("the reset spreading", &|| {
        instances.iter().all(|(_, cb)| cb.state() == State::Closed)
    })?;
    show("a reset on instance 1: all closed");
    Ok(())
}
