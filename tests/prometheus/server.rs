//! `start_http_server` (PR-6, PR-7): `/metrics` over HTTP/1.1 from a background thread,
//! the classic text content type, 404 elsewhere, a clear error for a taken port, and
//! robustness against slow or malformed clients.

#![cfg(feature = "prometheus")]

use std::io::Write;
use std::net::TcpStream;
use std::time::SystemTime;

use crate::support::prometheus::{http_get, raw_request};
use fluxgate::listeners::Listener;
use fluxgate::listeners::prometheus::{
    CONTENT_TYPE, MetricsServer, PrometheusListener, encode_text, start_http_server,
    start_http_server_with_registry,
};
use fluxgate::{Signal, State};
use prometheus::Registry;

fn serving(circuit: &str) -> (Registry, PrometheusListener, MetricsServer) {
    let registry = Registry::new();
    let listener = PrometheusListener::with_registry(&registry).unwrap();
    listener.on_attach(circuit, State::Closed);
    listener
        .on_signal(&Signal::new(
            circuit,
            State::Closed,
            State::Open,
            SystemTime::now(),
        ))
        .unwrap();
    let server = start_http_server_with_registry("127.0.0.1:0", &registry).unwrap();
    (registry, listener, server)
}

#[test]
fn pr6_pr7_get_metrics_returns_the_registry_in_the_classic_text_format() {
    let (registry, _listener, server) = serving("payment_api");
    let response = http_get(server.local_addr(), "/metrics").unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(response.body, encode_text(&registry).unwrap());
    assert_eq!(
        response.header("content-length"),
        Some(response.body.len().to_string().as_str())
    );
    assert!(
        response
            .body
            .contains("circuit_breaker_state{circuit_name=\"payment_api\",state=\"open\"} 1\n")
    );
    server.shutdown();
}

#[test]
fn pr6_query_strings_are_ignored_and_head_sends_no_body() {
    let (_registry, _listener, server) = serving("q");
    let with_query =
        http_get(server.local_addr(), "/metrics?name[]=circuit_breaker_state").unwrap();
    assert_eq!(with_query.status, 200);
    let head = raw_request(
        server.local_addr(),
        b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.body, "");
    assert_eq!(
        head.header("content-length"),
        Some(with_query.body.len().to_string().as_str())
    );
    server.shutdown();
}

#[test]
fn pr6_other_paths_are_404_and_other_methods_405() {
    let (_registry, _listener, server) = serving("p");
    for path in ["/", "/metric", "/metrics/", "/favicon.ico"] {
        let response = http_get(server.local_addr(), path).unwrap();
        assert_eq!(response.status, 404, "{path}");
    }
    let head = raw_request(
        server.local_addr(),
        b"HEAD /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!((head.status, head.body.as_str()), (404, ""));
    let post = raw_request(
        server.local_addr(),
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
    )
    .unwrap();
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    server.shutdown();
}

#[test]
fn pr6_a_taken_port_is_a_clear_error() {
    let (_registry, _listener, server) = serving("taken");
    let err = start_http_server_with_registry(server.local_addr(), &Registry::new()).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert_eq!(err.addr(), Some(server.local_addr()));
    let message = err.to_string();
    assert!(message.contains("already in use"), "{message}");
    assert!(
        message.contains(&server.local_addr().port().to_string()),
        "{message}"
    );
    assert!(std::error::Error::source(&err).is_some());
    // The first server is unharmed.
    assert_eq!(
        http_get(server.local_addr(), "/metrics").unwrap().status,
        200
    );
    server.shutdown();
}

#[test]
fn pr6_an_unresolvable_address_is_an_error_not_a_panic() {
    let err = start_http_server("not an address").unwrap_err();
    assert_eq!(err.addr(), None);
    assert!(err.to_string().starts_with("cannot serve metrics"), "{err}");
}

#[test]
fn pr6_start_http_server_serves_the_default_registry() {
    let listener = PrometheusListener::new();
    listener.on_attach("pr6-default-registry", State::Closed);
    let server = start_http_server("127.0.0.1:0").unwrap();
    let response = http_get(server.local_addr(), "/metrics").unwrap();
    assert_eq!(response.status, 200);
    assert!(
        response.body.contains(
            "circuit_breaker_state{circuit_name=\"pr6-default-registry\",state=\"closed\"} 1\n"
        ),
        "{}",
        response.body
    );
    server.shutdown();
}

#[test]
fn pr6_a_stalled_client_does_not_stop_others_from_being_served() {
    let (_registry, _listener, server) = serving("slow");
    // One client sends half a request line and stalls; another connects and sends nothing.
    let mut stalled = TcpStream::connect(server.local_addr()).unwrap();
    stalled.write_all(b"GET /met").unwrap();
    let silent = TcpStream::connect(server.local_addr()).unwrap();
    for _ in 0..5 {
        let response = http_get(server.local_addr(), "/metrics").unwrap();
        assert_eq!(response.status, 200);
    }
    drop((stalled, silent));
    server.shutdown();
}

#[test]
fn pr6_malformed_and_oversized_requests_get_errors_and_the_server_keeps_serving() {
    let (_registry, _listener, server) = serving("bad");
    let addr = server.local_addr();
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /metrics HTTP/9.9\r\n\r\n",
        b"GET /metrics HTTP/1.1 extra\r\n\r\n",
    ] {
        let response = raw_request(addr, garbage).unwrap();
        assert_eq!(response.status, 400, "{garbage:?}");
    }
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    huge.extend_from_slice(&[b'a'; 64 * 1024]);
    huge.extend_from_slice(b"\r\n\r\n");
    let response = raw_request(addr, &huge).unwrap();
    assert_eq!(response.status, 431);
    // A client that disconnects mid-request.
    let mut gone = TcpStream::connect(addr).unwrap();
    gone.write_all(b"GET /metrics HT").unwrap();
    drop(gone);

    assert_eq!(http_get(addr, "/metrics").unwrap().status, 200);
    server.shutdown();
}

#[test]
fn pr6_concurrent_scrapes_are_all_answered() {
    let (registry, _listener, server) = serving("many");
    let addr = server.local_addr();
    let expected = encode_text(&registry).unwrap();
    let threads: Vec<_> = (0..16)
        .map(|_| std::thread::spawn(move || http_get(addr, "/metrics").unwrap()))
        .collect();
    for thread in threads {
        let response = thread.join().unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, expected);
    }
    server.shutdown();
}

#[test]
fn pr6_scrapes_see_transitions_made_after_the_server_started() {
    let (_registry, listener, server) = serving("live");
    listener
        .on_signal(&Signal::new(
            "live",
            State::Open,
            State::HalfOpen,
            SystemTime::now(),
        ))
        .unwrap();
    let body = http_get(server.local_addr(), "/metrics").unwrap().body;
    assert!(body.contains("circuit_breaker_state{circuit_name=\"live\",state=\"half_open\"} 1\n"));
    server.shutdown();
}

#[test]
fn pr6_shutdown_releases_the_port_and_a_dropped_handle_keeps_serving() {
    let (registry, _listener, server) = serving("stop");
    let addr = server.local_addr();
    server.shutdown();
    assert!(TcpStream::connect(addr).is_err());
    let again = start_http_server_with_registry(addr, &registry).unwrap();
    assert_eq!(again.local_addr(), addr);
    drop(again); // detaches: the server goes on, as Python's does
    assert_eq!(http_get(addr, "/metrics").unwrap().status, 200);
}

#[tokio::test(flavor = "current_thread")]
async fn pr6_the_server_starts_answers_and_stops_inside_an_async_runtime() {
    // The server runs its own runtime on its own thread; a caller's runtime is no obstacle.
    let (_registry, _listener, server) = serving("inside");
    let addr = server.local_addr();
    let response = tokio::task::spawn_blocking(move || http_get(addr, "/metrics").unwrap())
        .await
        .unwrap();
    assert_eq!(response.status, 200);
    assert!(response.body.contains("circuit_name=\"inside\""));
    server.shutdown();
    assert!(TcpStream::connect(addr).is_err());
}
