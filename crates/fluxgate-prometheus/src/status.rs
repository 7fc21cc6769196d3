//! The status page: every breaker's state and rates as JSON (`/status.json`) and as one
//! self-contained HTML page of tiles (`/status`).
//!
//! A listener only sees transitions, so the page reads its breakers from a
//! [`StatusSource`]: a breaker, a collection of breakers, or a closure that lists them
//! (for instance from a registry of breakers). [`MetricsServer::builder`] serves both
//! routes next to `/metrics`; with feature `axum`, [`status_router`] does the same in an
//! axum application.
//!
//! [`MetricsServer::builder`]: super::MetricsServer::builder
//! [`status_router`]: super::status_router

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fluxgate_core::{AsyncCircuitBreaker, CircuitBreaker, Info, State};

/// The content type of `/status.json`.
///
/// ```
/// assert_eq!(fluxgate_prometheus::STATUS_JSON_CONTENT_TYPE, "application/json");
/// ```
pub const STATUS_JSON_CONTENT_TYPE: &str = "application/json";

/// The content type of the `/status` page.
///
/// ```
/// assert_eq!(fluxgate_prometheus::STATUS_PAGE_CONTENT_TYPE, "text/html; charset=utf-8");
/// ```
pub const STATUS_PAGE_CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// The `/status` page: one self-contained HTML document (inline CSS and script, no other
/// request than `status.json`, relative to the page) that shows every breaker as a tile
/// coloured by state, open ones first, and refreshes itself every two seconds.
///
/// Serve it at a path whose sibling `status.json` answers [`status_json`]. Names are
/// only ever inserted as text (never as markup), control characters shown as `\u{…}`.
///
/// ```
/// let page = fluxgate_prometheus::STATUS_PAGE;
/// assert!(page.starts_with("<!doctype html>"));
/// assert!(page.contains("fetch('status.json'"));
/// ```
pub const STATUS_PAGE: &str = include_str!("status.html");

/// What the status page shows of one breaker.
///
/// Built from a breaker with [`BreakerStatus::of`] / [`of_async`](Self::of_async), or from
/// any [`Info`] with [`from_info`](Self::from_info).
///
/// ```
/// use fluxgate_core::{CircuitBreaker, State};
/// use fluxgate_prometheus::BreakerStatus;
///
/// let cb = CircuitBreaker::builder("payment_api").build().unwrap();
/// cb.force_open();
/// let status = BreakerStatus::of(&cb);
/// assert_eq!((status.name.as_str(), status.state), ("payment_api", State::ForcedOpen));
/// assert_eq!(status.failure_rate, None); // no calls yet
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BreakerStatus {
    /// The breaker's name.
    pub name: String,
    /// Its current state.
    pub state: State,
    /// When it entered that state (wall clock; construction time before any transition).
    pub since: SystemTime,
    /// Times it went from `half_open` back to `open` since it was last closed.
    pub reopens: u32,
    /// Calls in the window of the current state.
    pub calls: u64,
    /// Failed calls among them.
    pub failures: u64,
    /// `failures / calls`; `None` without calls.
    pub failure_rate: Option<f64>,
    /// For each slow-call threshold the window tracks: the share of calls at least that
    /// slow (empty without calls or thresholds).
    pub slow_rates: Vec<(Duration, f64)>,
    /// While open: the time left before a probe may go.
    pub retry_after: Option<Duration>,
}

impl BreakerStatus {
    /// The status described by a snapshot and, for an open breaker, its retry time. A
    /// retry time read while the breaker was in another state than the snapshot's (the
    /// two are read one after the other) is left out unless the snapshot says `open`.
    ///
    /// ```
    /// use fluxgate_prometheus::BreakerStatus;
    ///
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// let status = BreakerStatus::from_info(&cb.info(), cb.retry_after());
    /// assert_eq!(status.calls, 0);
    /// ```
    pub fn from_info(info: &Info, retry_after: Option<Duration>) -> BreakerStatus {
        let metric = &info.metric;
        let slow_rates = match metric.total_count {
            0 => Vec::new(),
            total => metric
                .slow_counts()
                .map(|(threshold, slow)| (threshold, slow as f64 / total as f64))
                .collect(),
        };
        BreakerStatus {
            name: info.name.clone(),
            state: info.state,
            since: info.changed_at,
            reopens: info.reopens,
            calls: metric.total_count,
            failures: metric.failure_count,
            failure_rate: metric.failure_rate(),
            slow_rates,
            retry_after: retry_after.filter(|_| info.state == State::Open),
        }
    }

    /// The status of a synchronous breaker now.
    ///
    /// ```
    /// let cb = fluxgate_core::CircuitBreaker::builder("db").build().unwrap();
    /// assert_eq!(fluxgate_prometheus::BreakerStatus::of(&cb).name, "db");
    /// ```
    pub fn of(breaker: &CircuitBreaker) -> BreakerStatus {
        BreakerStatus::from_info(&breaker.info(), breaker.retry_after())
    }

    /// The status of an async breaker now.
    ///
    /// ```
    /// let cb = fluxgate_core::AsyncCircuitBreaker::builder("db").build().unwrap();
    /// assert_eq!(fluxgate_prometheus::BreakerStatus::of_async(&cb).name, "db");
    /// ```
    pub fn of_async(breaker: &AsyncCircuitBreaker) -> BreakerStatus {
        BreakerStatus::from_info(&breaker.info(), breaker.retry_after())
    }
}

/// Where the status page gets its breakers from.
///
/// Implemented for [`CircuitBreaker`], [`AsyncCircuitBreaker`], `Vec`s, arrays and shared
/// slices of sources, `Arc`s of sources (`Arc<dyn StatusSource>` too), and closures returning
/// `Vec<BreakerStatus>` — the way to list breakers held anywhere else (a registry, a map
/// of tenants).
///
/// ```
/// use std::sync::Arc;
/// use fluxgate_core::CircuitBreaker;
/// use fluxgate_prometheus::{BreakerStatus, StatusSource};
///
/// let payment = Arc::new(CircuitBreaker::builder("payment_api").build().unwrap());
/// let inventory = CircuitBreaker::builder("inventory_api").build().unwrap();
/// assert_eq!(payment.statuses().len(), 1);
///
/// // A closure lists whatever it can reach.
/// let both = {
///     let payment = Arc::clone(&payment);
///     move || vec![BreakerStatus::of(&payment), BreakerStatus::of(&inventory)]
/// };
/// assert_eq!(both.statuses().len(), 2);
/// assert_eq!(vec![payment].statuses()[0].name, "payment_api");
/// ```
pub trait StatusSource: Send + Sync + 'static {
    /// The breakers' statuses now, in any order (the page sorts them).
    fn statuses(&self) -> Vec<BreakerStatus>;
}

impl StatusSource for CircuitBreaker {
    fn statuses(&self) -> Vec<BreakerStatus> {
        vec![BreakerStatus::of(self)]
    }
}

impl StatusSource for AsyncCircuitBreaker {
    fn statuses(&self) -> Vec<BreakerStatus> {
        vec![BreakerStatus::of_async(self)]
    }
}

impl<T: StatusSource> StatusSource for [T] {
    fn statuses(&self) -> Vec<BreakerStatus> {
        self.iter().flat_map(StatusSource::statuses).collect()
    }
}

impl<T: StatusSource> StatusSource for Vec<T> {
    fn statuses(&self) -> Vec<BreakerStatus> {
        self.as_slice().statuses()
    }
}

impl<T: StatusSource, const N: usize> StatusSource for [T; N] {
    fn statuses(&self) -> Vec<BreakerStatus> {
        self.as_slice().statuses()
    }
}

impl<T: StatusSource + ?Sized> StatusSource for Arc<T> {
    fn statuses(&self) -> Vec<BreakerStatus> {
        (**self).statuses()
    }
}

impl<F> StatusSource for F
where
    F: Fn() -> Vec<BreakerStatus> + Send + Sync + 'static,
{
    fn statuses(&self) -> Vec<BreakerStatus> {
        self()
    }
}

/// The `/status.json` document for `statuses`:
///
/// ```json
/// {"generated_ms":1764554400000,"breakers":[
///   {"name":"payment_api","state":"open","since_ms":1764554395000,"reopens":1,
///    "calls":20,"failures":11,"failure_rate":0.55,
///    "slow_rates":[{"threshold":1,"rate":0.1}],"retry_after":25}]}
/// ```
///
/// Times are unix milliseconds (`generated_ms` is the server's clock, for the age of
/// `since_ms`); `threshold` and `retry_after` are seconds; rates are fractions, `null`
/// without calls; `retry_after` is `null` unless the breaker is open. Breakers are in the
/// order given.
///
/// ```
/// use fluxgate_prometheus::{status_json, StatusSource};
///
/// let cb = fluxgate_core::CircuitBreaker::builder("db \"main\"").build().unwrap();
/// let json = status_json(&cb.statuses());
/// assert!(json.contains(r#""name":"db \"main\"","state":"closed""#), "{json}");
/// assert!(json.contains(r#""failure_rate":null"#));
/// ```
pub fn status_json(statuses: &[BreakerStatus]) -> String {
    let mut out = String::with_capacity(64 + statuses.len() * 240);
    out.push_str("{\"generated_ms\":");
    let _ = write!(out, "{}", unix_millis(SystemTime::now()));
    out.push_str(",\"breakers\":[");
    for (i, status) in statuses.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        push_json_string(&mut out, &status.name);
        let _ = write!(
            out,
            ",\"state\":\"{}\",\"since_ms\":{},\"reopens\":{},\"calls\":{},\"failures\":{},\"failure_rate\":",
            status.state.as_str(),
            unix_millis(status.since),
            status.reopens,
            status.calls,
            status.failures,
        );
        push_number(&mut out, status.failure_rate);
        out.push_str(",\"slow_rates\":[");
        for (j, (threshold, rate)) in status.slow_rates.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"threshold\":");
            push_number(&mut out, Some(threshold.as_secs_f64()));
            out.push_str(",\"rate\":");
            push_number(&mut out, Some(*rate));
            out.push('}');
        }
        out.push_str("],\"retry_after\":");
        // Milliseconds are plenty for a person, and keep the number short.
        push_number(
            &mut out,
            status
                .retry_after
                .map(|wait| wait.as_millis() as f64 / 1000.0),
        );
        out.push('}');
    }
    out.push_str("]}");
    out
}

fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
    })
}

/// A finite number, or `null`.
fn push_number(out: &mut String, value: Option<f64>) {
    match value {
        Some(value) if value.is_finite() => {
            let _ = write!(out, "{value}");
        }
        _ => out.push_str("null"),
    }
}

/// A JSON string: quotes, backslashes and control characters escaped, and `<`, `>` and
/// `&` too, so the text stays inert even if a client mistakes it for HTML.
fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' || matches!(c, '<' | '>' | '&' | '\u{7f}' | '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r6_names_are_escaped_in_json() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c\n\u{1b}<x>&\u{2028}é");
        assert_eq!(out, r#""a\"b\\c\n\u001b\u003cx\u003e\u0026\u2028é""#);
    }

    #[test]
    fn numbers_are_finite_or_null() {
        let mut out = String::new();
        push_number(&mut out, Some(f64::NAN));
        push_number(&mut out, Some(0.25));
        push_number(&mut out, None);
        assert_eq!(out, "null0.25null");
    }
}
