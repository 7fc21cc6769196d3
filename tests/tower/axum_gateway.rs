//! The axum gateway example, driven over real HTTP: the breaker opens on upstream
//! failures, then the route answers 503 with Retry-After and `/metrics` shows it.
#![cfg(all(feature = "tower", feature = "axum", feature = "tokio"))]

#[path = "../../examples/axum_gateway.rs"]
mod gateway;

use std::sync::atomic::Ordering;

use fluxgate::State;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_opens_answers_503_with_retry_after_and_exports_metrics() {
    let upstream = gateway::start_upstream().await.unwrap();
    let registry = prometheus::Registry::new();
    let (app, cb) = gateway::gateway(upstream.addr, &registry).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = gateway::http_client();
    let get = |path: &'static str| {
        let client = client.clone();
        async move {
            client
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap()
        }
    };

    let ok = get("/price").await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "42");
    let metrics = get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"circuit_breaker_state{circuit_name="api_gateway",state="closed"} 1"#),
        "{metrics}"
    );

    upstream.healthy.store(false, Ordering::Relaxed);
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let resp = get("/price").await;
        statuses.push(resp.status().as_u16());
        if resp.status() == 503 {
            assert_eq!(resp.headers()["retry-after"], "30");
            break;
        }
    }
    // 1 success + 4 failures = 5 calls at 80 % failures: the 4th failure opens it
    assert_eq!(statuses, [502, 502, 502, 502, 503]);
    assert_eq!(cb.state(), State::Open);

    let metrics = get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"circuit_breaker_state{circuit_name="api_gateway",state="open"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(
        r#"circuit_breaker_state_transition_total{circuit_name="api_gateway",new_state="open",old_state="closed"} 1"#
    ), "{metrics}");
}
