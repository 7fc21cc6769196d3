//! Posts a trip, a failed recovery and a recovery of one breaker to a Slack channel.
//!
//! ```text
//! SLACK_BOT_TOKEN=xoxb-… SLACK_CHANNEL=C0123456789 cargo run --example slack_alerts --features slack
//! ```
//!
//! The messages form one thread: the trip starts it, the recovery ends it with a reply that
//! is also shown in the channel. Delivery failures (for example `not_in_channel`) are printed
//! by the `tracing` subscriber.

use std::io;
use std::time::Duration;

use fluxgate::listeners::log::LogListener;
use fluxgate::listeners::slack::SlackListener;
use fluxgate::{CircuitBreaker, permits, retries, trippers};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let token = std::env::var("SLACK_BOT_TOKEN").map_err(|_| "set SLACK_BOT_TOKEN (xoxb-…)")?;
    let channel = std::env::var("SLACK_CHANNEL").map_err(|_| "set SLACK_CHANNEL (C…)")?;
    let slack = SlackListener::new(channel, token)?;

    let cb = CircuitBreaker::builder("payment_api")
        .tripper(trippers::FailureStreak::new(1)) // trip on the first failure, for the demo
        .retry(retries::Always)
        .permit(permits::All)
        .listener(LogListener::new())
        .listener(slack.clone())
        .build()?;

    let failing = || Err::<(), _>(io::Error::other("503 from the payment provider"));
    let _ = cb.call(failing); // trips: 🚨 (starts the thread)
    let _ = cb.call(failing); // probe fails: 🔄 then ⚠️ (replies)
    let _ = cb.call(|| Ok::<_, io::Error>(())); // probe succeeds: 🔄 then ✅ (broadcast reply)

    if !slack.flush(Duration::from_secs(10)) {
        eprintln!("{} message(s) still pending", slack.pending());
    }
    Ok(())
}
