//! The JSON body of one Slack message (SL-1).

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::template::Template;
use fluxgate_core::Signal;

/// Where in the channel a message goes (SL-3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placement<'a> {
    /// A new top-level message.
    TopLevel,
    /// A reply in the circuit's thread.
    Reply(&'a str),
    /// The reply that ends the thread, also shown in the channel.
    ClosingReply(&'a str),
}

/// `{channel, attachments: [{color, fallback, blocks: [title, fields]}]}` plus the thread
/// keys; `channel` is left out for incoming webhooks, which post where they were made for.
pub(super) fn message(
    channel: Option<&str>,
    template: &Template,
    signal: &Signal,
    placement: Placement<'_>,
) -> Value {
    // Control characters escaped first, so a name cannot start a line of its own.
    let shown = fluxgate_core::escaped(&signal.circuit_name).to_string();
    let name = escape(&shown);
    let (old, new) = (signal.old_state.as_str(), signal.new_state.as_str());
    let mut body = json!({
        "attachments": [{
            "color": template.color(),
            "fallback": format!("{}: {shown} {old} → {new}", template.title()),
            "blocks": [
                {
                    "type": "section",
                    "text": { "type": "mrkdwn", "text": format!("*{}*", template.title()) }
                },
                {
                    "type": "section",
                    "fields": [
                        { "type": "mrkdwn", "text": format!("*Circuit Breaker:*\n{name}") },
                        { "type": "mrkdwn", "text": format!("*State Transition:*\n{old} → {new}") },
                        { "type": "mrkdwn", "text": format!("*Transition Time:*\n{}", slack_time(signal.timestamp)) },
                        { "type": "mrkdwn", "text": format!("*Description:*\n{}", template.description()) }
                    ]
                }
            ]
        }]
    });
    if let Some(channel) = channel {
        body["channel"] = json!(channel);
    }
    match placement {
        Placement::TopLevel => {}
        Placement::Reply(ts) => body["thread_ts"] = json!(ts),
        Placement::ClosingReply(ts) => {
            body["thread_ts"] = json!(ts);
            body["reply_broadcast"] = json!(true);
        }
    }
    body
}

/// Slack's `&`, `<`, `>` escaping, so a circuit name is shown as written, never as markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// The time as Slack's date token, shown in each reader's own time zone, with UTC as the
/// text for clients that cannot render it.
fn slack_time(at: SystemTime) -> String {
    match at.duration_since(UNIX_EPOCH) {
        Ok(since) => {
            let secs = since.as_secs();
            format!("<!date^{secs}^{{date_num}} {{time_secs}}|{}>", utc(secs))
        }
        Err(_) => "before 1970-01-01 00:00:00 UTC".to_owned(),
    }
}

/// `YYYY-MM-DD HH:MM:SS UTC` for seconds since the Unix epoch.
pub(super) fn utc(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm,
/// restricted to days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(4_107_542_399), "2100-02-28 23:59:59 UTC");
        assert_eq!(utc(4_107_542_400), "2100-03-01 00:00:00 UTC");
    }

    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(escape("a<b>&c"), "a&lt;b&gt;&amp;c");
        assert_eq!(escape("payment_api"), "payment_api");
    }
}
