//! Rate limits per tenant.

use crate::helpers::TestApp;

#[tokio::test]
async fn a_tenant_at_its_limit_gets_429_while_a_neighbour_stays_200() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let b = app.signup("bolt", None).await;
    let first = app.call("GET", "/v1/tenant", Some(&a.token), None).await;
    assert_eq!(first.header("ratelimit-limit"), Some("100"));
    assert_eq!(first.header("ratelimit-remaining"), Some("99"));
    assert!(first.header("ratelimit-reset").is_some());
    let mut limited = None;
    for _ in 0..130 {
        let r = app.call("GET", "/v1/tenant", Some(&a.token), None).await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the free plan's 100/min is reached");
    r.assert_problem(429, "RATE_LIMITED");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1);
    assert_eq!(r.body["retry_after"].as_u64(), Some(retry));
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    let nb = app.call("GET", "/v1/tenant", Some(&b.token), None).await;
    assert_eq!(nb.status, 200);
    assert_eq!(nb.header("ratelimit-remaining"), Some("99"));
}

#[tokio::test]
async fn without_redis_limits_fall_back_to_the_node_and_readyz_says_degraded() {
    // Nothing listens on port 1: every shared check fails and falls back, never to "no limit".
    let app = TestApp::spawn_with(|c| c.redis_url = Some("redis://127.0.0.1:1".into())).await;
    let a = app.signup("acme", None).await;
    let mut limited = false;
    for _ in 0..110 {
        if app
            .call("GET", "/v1/tenant", Some(&a.token), None)
            .await
            .status
            == 429
        {
            limited = true;
            break;
        }
    }
    assert!(limited, "the in-process fallback still limits");
    let ready = app.call("GET", "/readyz", None, None).await;
    assert_eq!(
        (
            ready.status,
            ready.body["status"].as_str(),
            ready.body["rate_limits"].as_str(),
            ready.body["cache_invalidation"].as_str()
        ),
        (200, Some("degraded"), Some("degraded"), Some("degraded"))
    );
    let metrics = app.call("GET", "/metrics", None, None).await;
    let fallbacks: u64 = metrics
        .text
        .lines()
        .find_map(|l| l.strip_prefix("tenantd_rate_limit_fallbacks_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(fallbacks >= 100, "{}", metrics.text);
}
