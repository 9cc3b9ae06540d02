//! Webhooks: deliveries to real receivers on loopback, their signatures verified with the
//! Standard Webhooks reference library (`standardwebhooks`), retries with the same id, one
//! hanging endpoint delaying no other, and private addresses refused.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::helpers::receiver::{Seen, endpoint, open_policy, receiver, receiver_on, wait_for};

#[tokio::test]
async fn deliveries_are_signed_retried_with_their_id_and_a_hanging_endpoint_delays_no_other() {
    let app = TestApp::spawn_with(open_policy).await;
    let a = app.signup("acme", None).await;
    let good = Arc::new(Mutex::new(Seen {
        fail_first: 1,
        ..Seen::default()
    }));
    let hung = Arc::new(Mutex::new(Seen {
        hang: true,
        ..Seen::default()
    }));
    let (good_id, secret) = endpoint(
        &app,
        &a,
        &receiver(good.clone()).await,
        json!(["api_key.created"]),
    )
    .await;
    endpoint(&app, &a, &receiver(hung.clone()).await, json!(["*"])).await;

    // The call that makes the event does not wait for either receiver.
    let started = Instant::now();
    let k = app.api_key(&a.token, "k1").await;
    assert_eq!(k.status, 201);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // First attempt answered 500, the retry (about 5 s later) 204: the same webhook-id, and
    // both verify with the reference implementation.
    let got = wait_for(&good, 2, Duration::from_secs(15)).await;
    let verifier = standardwebhooks::Webhook::new(&secret).expect("a Standard Webhooks secret");
    for (headers, body) in &got[..2] {
        verifier.verify(body, headers).expect("signature verifies");
        let ev: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(ev["type"], "api_key.created");
        assert_eq!(ev["tenant_id"], a.tenant_id);
    }
    assert_eq!(got[0].0["webhook-id"], got[1].0["webhook-id"]);
    // The body is the event as /v1/events shows it.
    let events = app
        .call(
            "GET",
            "/v1/events?types=api_key.created",
            Some(&a.token),
            None,
        )
        .await;
    let listed = &events.body["items"][0];
    assert_eq!(&serde_json::from_slice::<Value>(&got[0].1).unwrap(), listed);

    // The hanging endpoint holds its own slots only: the next event reaches the good one fast.
    let started = Instant::now();
    let k = app.api_key(&a.token, "k2").await;
    assert_eq!(k.status, 201);
    wait_for(&good, 3, Duration::from_secs(2)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // The delivery log says what happened.
    let log = app
        .call(
            "GET",
            &format!("/v1/webhooks/{good_id}/deliveries"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(log.status, 200, "{}", log.body);
    let first = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["event_id"] == got[0].0["webhook-id"].to_str().unwrap())
        .expect("the first delivery")
        .clone();
    assert_eq!(
        (first["status"].as_str(), first["attempts"].as_i64()),
        (Some("succeeded"), Some(2))
    );

    // The operator's view: the CLI lists the endpoints and the delivery log, and re-queues one.
    let out = app.cli(&["webhooks", "list", "--tenant", "acme", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["id"] == good_id.as_str())
    );
    let out = app.cli(&[
        "webhooks",
        "deliveries",
        &good_id,
        "--tenant",
        "acme",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ds: Value = serde_json::from_slice(&out.stdout).unwrap();
    let did = ds[0]["id"].as_str().unwrap().to_owned();
    let out = app.cli(&["webhooks", "retry", &did, "--tenant", "acme"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again = wait_for(&good, 4, Duration::from_secs(5)).await;
    assert_eq!(
        again[3].0["webhook-id"], again[2].0["webhook-id"],
        "the retried delivery, same id"
    );

    // The attempts are counted, and nothing is left waiting.
    let m = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> u64 {
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
    };
    assert!(value("tenantd_webhook_attempts_succeeded_total") >= 2);
    assert!(value("tenantd_webhook_attempts_failed_total") >= 1);

    // Rotation: both secrets sign for 24 h.
    let r = app
        .call(
            "POST",
            &format!("/v1/webhooks/{good_id}/rotate-secret"),
            Some(&a.token),
            None,
        )
        .await;
    let new_secret = r.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    app.api_key(&a.token, "k3").await;
    let got = wait_for(&good, 5, Duration::from_secs(5)).await;
    let (headers, body) = &got[4];
    standardwebhooks::Webhook::new(&new_secret)
        .unwrap()
        .verify(body, headers)
        .expect("new secret");
    verifier
        .verify(body, headers)
        .expect("old secret, within the overlap");
}

#[tokio::test]
async fn private_loopback_and_metadata_urls_are_refused_at_registration() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    for url in [
        "http://hooks.example.com/x",
        "https://127.0.0.1/x",
        "https://2130706433/x",
        "https://0x7f.1/x",
        "https://[::1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.8/x",
        "https://localhost/x",
        "https://user:pw@example.com/x",
    ] {
        let r = app
            .call(
                "POST",
                "/v1/webhooks",
                Some(&a.token),
                Some(json!({"url": url, "events": ["*"]})),
            )
            .await;
        r.assert_problem(422, "VALIDATION_FAILED");
        assert_eq!(r.body["errors"][0]["field"], "url", "{url}: {}", r.body);
    }
    let r = app
        .call(
            "POST",
            "/v1/webhooks",
            Some(&a.token),
            Some(json!({"url": "https://example.com/x", "events": ["nope"]})),
        )
        .await;
    r.assert_problem(422, "VALIDATION_FAILED");
}

#[tokio::test]
async fn events_made_while_the_receiver_is_down_survive_a_kill_and_are_all_delivered() {
    use crate::helpers::{call_at, free_port, temp_dir, wait_healthy};
    let dir = temp_dir();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    tenantd_server::install_tls_provider();
    let client = reqwest::Client::new();
    let env = [
        ("TENANTD_WEBHOOK_ALLOW_HTTP", "true"),
        ("TENANTD_WEBHOOK_ALLOW_PRIVATE", "true"),
    ];
    let mut child = crate::durability::start_with(&dir, port, &env);
    wait_healthy(&client, &base).await;
    let (s, up) = call_at(&client, &base, "POST", "/v1/auth/signup", None, Some(json!({"email": "o@w.test", "password": "owner-pass-123", "name": "O", "tenant": {"name": "W", "slug": "hooked"}})), None).await;
    assert_eq!(s, 201, "{up}");
    let token = up["access_token"].as_str().unwrap().to_owned();
    // The receiver is down: nothing listens on its port yet.
    let rport = free_port();
    let url = format!("http://127.0.0.1:{rport}/hook");
    let (s, hook) = call_at(
        &client,
        &base,
        "POST",
        "/v1/webhooks",
        Some(&token),
        Some(json!({"url": url, "events": ["api_key.created"]})),
        None,
    )
    .await;
    assert_eq!(s, 201, "{hook}");
    let secret = hook["secret"].as_str().unwrap().to_owned();
    for i in 0..20 {
        let (s, _) = call_at(
            &client,
            &base,
            "POST",
            "/v1/api-keys",
            Some(&token),
            Some(json!({"name": format!("k{i}"), "role": "member"})),
            None,
        )
        .await;
        assert_eq!(s, 201);
    }
    // First attempts fail against the closed port; then the process dies without a word.
    tokio::time::sleep(Duration::from_millis(800)).await;
    child.kill().expect("kill -9");
    child.wait().ok();
    let seen = Arc::new(Mutex::new(Seen::default()));
    receiver_on(seen.clone(), rport).await;
    let mut child = crate::durability::start_with(&dir, port, &env);
    wait_healthy(&client, &base).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    let unique = loop {
        let got = seen.lock().unwrap().deliveries.clone();
        let ids: std::collections::HashSet<String> = got
            .iter()
            .map(|(h, b)| {
                verifier.verify(b, h).expect("signature verifies");
                h["webhook-id"].to_str().unwrap().to_owned()
            })
            .collect();
        if ids.len() >= 20 || Instant::now() > deadline {
            break ids;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.kill().ok();
    child.wait().ok();
    assert_eq!(
        unique.len(),
        20,
        "every event delivered once de-duplicated by webhook-id"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_test_event_reaches_one_endpoint_and_platform_endpoints_hear_every_tenants_lifecycle() {
    let app = TestApp::spawn_with(open_policy).await;
    // The platform's endpoint takes tenant.created: a new tenant's creation reaches it.
    let platform = Arc::new(Mutex::new(Seen::default()));
    let url = receiver(platform.clone()).await;
    let r = app
        .call(
            "POST",
            "/v1/webhooks",
            Some(&app.admin_token),
            Some(json!({"url": url, "events": ["tenant.created"]})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    let a = app.signup("acme", None).await;
    let got = wait_for(&platform, 1, Duration::from_secs(10)).await;
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&got[0].1, &got[0].0)
        .unwrap();
    let ev: Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(
        (ev["type"].as_str(), ev["tenant_id"].as_str()),
        (Some("tenant.created"), Some(a.tenant_id.as_str()))
    );

    // A test event goes to the one endpoint asked, signed, and shows in its log.
    let mine = Arc::new(Mutex::new(Seen::default()));
    let (id, secret) = endpoint(
        &app,
        &a,
        &receiver(mine.clone()).await,
        json!(["file.deleted"]),
    )
    .await;
    let t = app
        .call(
            "POST",
            &format!("/v1/webhooks/{id}/test"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(t.status, 202, "{}", t.body);
    let got = wait_for(&mine, 1, Duration::from_secs(5)).await;
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&got[0].1, &got[0].0)
        .unwrap();
    let ev: Value = serde_json::from_slice(&got[0].1).unwrap();
    assert_eq!(ev["type"], "webhook.test");
    // A delivery is retried only through its own endpoint.
    let log = app
        .call(
            "GET",
            &format!("/v1/webhooks/{id}/deliveries"),
            Some(&a.token),
            None,
        )
        .await;
    let did = log.body["items"][0]["id"].as_str().unwrap().to_owned();
    let (other, _) = endpoint(&app, &a, "http://127.0.0.1:9/x", json!(["*"])).await;
    app.call(
        "POST",
        &format!("/v1/webhooks/{other}/deliveries/{did}/retry"),
        Some(&a.token),
        None,
    )
    .await
    .assert_problem(404, "NOT_FOUND");
    let r = app
        .call(
            "POST",
            &format!("/v1/webhooks/{id}/deliveries/{did}/retry"),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(r.status, 202);
    // Another tenant cannot test, see or change it.
    let b = app.signup("bolt", None).await;
    for (m, path) in [
        ("POST", format!("/v1/webhooks/{id}/test")),
        ("GET", format!("/v1/webhooks/{id}")),
        ("DELETE", format!("/v1/webhooks/{id}")),
    ] {
        app.call(m, &path, Some(&b.token), None)
            .await
            .assert_problem(404, "NOT_FOUND");
    }
}
