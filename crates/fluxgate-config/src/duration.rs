//! Durations as humane strings: `"500ms"`, `"1m"`, `"1h30m"`, `"2h 37min"` (parsed by
//! `humantime`), and the compact form the expressions print (`1h30m`, `1s500ms`).

use std::fmt::Write as _;
use std::time::Duration;

/// Parses a humane duration (`"500ms"`, `"1m"`, `"1h30m"`).
///
/// ```
/// use std::time::Duration;
/// use fluxgate_config::parse_duration;
/// assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
/// assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
/// assert!(parse_duration("5").unwrap_err().contains("unit"));
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err(
            "expected a duration such as \"500ms\", \"1m\" or \"1h30m\", got an empty string"
                .into(),
        );
    }
    if t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "a duration needs a unit (\"{t}s\", \"{t}ms\"…), got \"{t}\""
        ));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("expected a duration such as \"500ms\", \"1m\" or \"1h30m\", got \"{t}\" ({e})")
    })
}

/// Prints a duration in the compact form the parser reads back: `1h30m`, `500ms`, `0s`.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(fluxgate_config::format_duration(Duration::from_secs(5400)), "1h30m");
/// assert_eq!(fluxgate_config::format_duration(Duration::from_millis(1500)), "1s500ms");
/// ```
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let secs = d.as_secs();
    let nanos = u64::from(d.subsec_nanos());
    let parts = [
        (secs / 86_400, "d"),
        (secs / 3600 % 24, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
        (nanos / 1_000_000, "ms"),
        (nanos / 1000 % 1000, "us"),
        (nanos % 1000, "ns"),
    ];
    let mut out = String::new();
    for (n, unit) in parts {
        if n > 0 {
            let _ = write!(out, "{n}{unit}");
        }
    }
    out
}
