//! Two API nodes on one PostgreSQL and one Redis: quotas, rate limits, suspensions and
//! revoked keys hold across them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_EMAIL, PgTest, call_at, free_port, require_postgres, temp_dir, wait_healthy,
};

const PASSWORD: &str = "two-nodes-admin-pass";

/// A Redis for the test: `TENANTD_TEST_REDIS`, else a throwaway `redis-server`; without
/// either the test is skipped (a failure under `CI=true`).
struct TestRedis {
    url: String,
    child: Option<Child>,
}

impl TestRedis {
    fn start(test: &str) -> Option<Self> {
        if let Ok(url) = std::env::var("TENANTD_TEST_REDIS") {
            return Some(TestRedis { url, child: None });
        }
        let port = free_port();
        crate::helpers::spawn_redis(test, port).map(|child| TestRedis {
            url: format!("redis://127.0.0.1:{port}"),
            child: Some(child),
        })
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

struct Node {
    base: String,
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// The child is reaped by `Node`'s Drop, which the lint cannot see.
#[allow(clippy::zombie_processes)]
async fn start_node(config: &Path, data: &Path) -> Node {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tenantd"))
        .args(["serve", "--config"])
        .arg(config)
        .env("TENANTD_LISTEN", format!("127.0.0.1:{port}"))
        .env("TENANTD_DATA_DIR", data)
        .env("TENANTD_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("TENANTD_ADMIN_PASSWORD", PASSWORD)
        .env("TENANTD_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    tenantd_server::install_tls_provider();
    wait_healthy(&reqwest::Client::new(), &base).await;
    Node { base, child }
}

async fn call(
    c: &reqwest::Client,
    base: &str,
    m: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    call_at(c, base, m, path, token, body, None).await
}

/// Waits until the node hears the invalidation channel.
async fn wait_subscribed(c: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let (_, ready) = call(c, base, "GET", "/readyz", None, None).await;
        if ready["cache_invalidation"] == "redis" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{base} never subscribed to the invalidation channel");
}

/// Polls `GET /v1/tenant` with `token` until it answers `status`; how long that took.
async fn refused_within(c: &reqwest::Client, base: &str, token: &str, status: u16) -> Duration {
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(6) {
        if call(c, base, "GET", "/v1/tenant", Some(token), None)
            .await
            .0
            == status
        {
            return t0.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{base} never answered {status}");
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

const PLANS: &str = "plans:
  free:
    name: Free
    self_serve: true
    quotas: {users: 1, projects: 100}
    rate_limits: {api_requests: 100000}
  limited:
    name: Limited
    self_serve: true
    quotas: {users: 1, projects: 3}
    rate_limits: {api_requests: 50}
  enterprise:
    name: Enterprise
    isolation: dedicated
    quotas: {}
    features: [audit_logs]
    rate_limits: {api_requests: 100000}
";

#[tokio::test]
async fn two_nodes_share_quotas_rate_limits_suspensions_and_revocations() {
    let Some(admin) =
        require_postgres("two_nodes_share_quotas_rate_limits_suspensions_and_revocations")
    else {
        return;
    };
    let Some(redis) =
        TestRedis::start("two_nodes_share_quotas_rate_limits_suspensions_and_revocations")
    else {
        return;
    };
    let pg = PgTest::create(&admin).await;
    let dir = temp_dir();
    std::fs::write(dir.join("plans.yaml"), PLANS).unwrap();
    let config = dir.join("tenantd.toml");
    let toml = format!(
        // A cache TTL of 5 s: a refusal within 1 s on the other node can only come from the
        // invalidation announced through Redis.
        // One deployment behind a load balancer: one public_url (the issuer) and one master
        // key for every node.
        "plans_file = \"{}\"\nredis_url = \"{}\"\nauth_cache_ttl_ms = 5000\npublic_url = \"https://tenantd.test\"\nmaster_key_file = \"{}\"\n{}",
        dir.join("plans.yaml").display(),
        redis.url,
        dir.join("master.key").display(),
        pg.toml()
    );
    std::fs::write(&config, toml).unwrap();
    let a = start_node(&config, &dir.join("a")).await;
    let b = start_node(&config, &dir.join("b")).await;
    tenantd_server::install_tls_provider();
    let c = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    for node in [&a, &b] {
        wait_subscribed(&c, &node.base).await;
    }

    // Quota: 1,000 concurrent creates split across both nodes admit exactly 100.
    let (s, up) = call(&c, &a.base, "POST", "/v1/auth/signup", None, Some(json!({"email": "o@q.test", "password": "owner-pass-123", "name": "O", "tenant": {"name": "Q", "slug": "quota-co"}}))).await;
    assert_eq!(s, 201, "{up}");
    let token = up["access_token"].as_str().unwrap().to_owned();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    let calls = (0..1000).map(|i| {
        let (c, sem, token) = (c.clone(), sem.clone(), token.clone());
        let base = if i % 2 == 0 {
            a.base.clone()
        } else {
            b.base.clone()
        };
        async move {
            let _p = sem.acquire().await.unwrap();
            call(
                &c,
                &base,
                "POST",
                "/v1/projects",
                Some(&token),
                Some(json!({"name": format!("p{i}"), "spec": {}})),
            )
            .await
            .0
        }
    });
    let statuses = futures::future::join_all(calls).await;
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 100);
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 403),
        "{statuses:?}"
    );

    // Rate limit: 50 a minute shared by both nodes, not 50 each.
    let (_, up) = call(&c, &a.base, "POST", "/v1/auth/signup", None, Some(json!({"email": "o@r.test", "password": "owner-pass-123", "name": "O", "tenant": {"name": "R", "slug": "rate-co", "plan": "limited"}}))).await;
    let rt = up["access_token"].as_str().unwrap().to_owned();
    let mut ok = 0;
    for i in 0..80 {
        let base = if i % 2 == 0 { &a.base } else { &b.base };
        if call(&c, base, "GET", "/v1/tenant", Some(&rt), None).await.0 == 200 {
            ok += 1;
        }
    }
    assert!(
        (50..=52).contains(&ok),
        "admitted {ok} of 80 against a shared 50/min"
    );

    // A key deleted and a tenant suspended on node A are refused on node B within 1 s, although
    // node B had both in its cache.
    let (_, key) = call(
        &c,
        &a.base,
        "POST",
        "/v1/api-keys",
        Some(&token),
        Some(json!({"name": "k", "role": "viewer"})),
    )
    .await;
    let secret = key["key"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&c, &b.base, "GET", "/v1/tenant", Some(&secret), None)
            .await
            .0,
        200
    );
    assert_eq!(
        call(
            &c,
            &a.base,
            "DELETE",
            &format!("/v1/api-keys/{}", key["id"].as_str().unwrap()),
            Some(&token),
            None
        )
        .await
        .0,
        204
    );
    let took = refused_within(&c, &b.base, &secret, 401).await;
    assert!(
        took < Duration::from_secs(1),
        "deleted key still served after {took:?}"
    );
    let (_, adm) = call(
        &c,
        &a.base,
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"email": ADMIN_EMAIL, "password": PASSWORD})),
    )
    .await;
    let admin_token = adm["access_token"].as_str().unwrap().to_owned();
    let qid = call(&c, &a.base, "GET", "/v1/tenant", Some(&token), None)
        .await
        .1["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        call(
            &c,
            &b.base,
            "GET",
            "/v1/projects?limit=1",
            Some(&token),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        call(
            &c,
            &a.base,
            "POST",
            &format!("/v1/tenants/{qid}/suspend"),
            Some(&admin_token),
            Some(json!({"reason": "x"}))
        )
        .await
        .0,
        200
    );
    let took = refused_within(&c, &b.base, &token, 403).await;
    assert!(
        took < Duration::from_secs(1),
        "suspended tenant still served after {took:?}"
    );
    let (s, body) = call(&c, &b.base, "GET", "/v1/projects", Some(&token), None).await;
    assert_eq!((s, body["code"].as_str()), (403, Some("TENANT_SUSPENDED")));
    let metrics = c
        .get(format!("{}/metrics", b.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metric(&metrics, "tenantd_auth_cache_hits_total") > 0,
        "node B never used its cache, so the test proved nothing: {metrics}"
    );
    drop((a, b));
    let _ = std::fs::remove_dir_all(dir);
}
