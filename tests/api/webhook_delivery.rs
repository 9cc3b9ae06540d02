//! Webhook delivery under pressure: two nodes never making the same attempt, a hanging
//! endpoint's backlog delaying no other endpoint, an endpoint failing for five days disabled
//! (and not before), and a name whose DNS answer turns private after registration refused at
//! delivery without a connection.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tenantd_server::webhooks::Sender;

use crate::helpers::TestApp;
use crate::helpers::receiver::{Seen, endpoint, open_policy, receiver, wait_for};

/// Uploads a small file (a `file.created` event).
async fn upload(app: &TestApp, token: &str, i: usize) {
    let r = app
        .client
        .post(format!("{}/v1/files?name=f{i}.txt", app.base))
        .bearer_auth(token)
        .header("content-type", "application/octet-stream")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
}

#[tokio::test]
async fn two_nodes_deliver_every_event_once_and_both_take_part() {
    let app = TestApp::spawn_with(open_policy).await;
    let other = app.another_node(open_policy).await;
    let a = app.signup("twonodes", Some("professional")).await;
    let mut seen = Vec::new();
    for _ in 0..8 {
        let s = Arc::new(Mutex::new(Seen {
            delay: Duration::from_millis(15),
            ..Seen::default()
        }));
        endpoint(
            &app,
            &a,
            &receiver(s.clone()).await,
            json!(["file.created"]),
        )
        .await;
        seen.push(s);
    }
    for i in 0..25 {
        upload(&app, &a.token, i).await;
    }
    for s in &seen {
        wait_for(s, 25, Duration::from_secs(60)).await;
    }
    // Anything made twice would arrive within this.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for s in &seen {
        let got = s.lock().unwrap().deliveries.clone();
        let ids: std::collections::HashSet<String> = got
            .iter()
            .map(|(h, _)| h["webhook-id"].to_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            (got.len(), ids.len()),
            (25, 25),
            "each event once per endpoint"
        );
    }
    let (one, two) = (
        app.state.webhook_stats.succeeded(),
        other.state.webhook_stats.succeeded(),
    );
    assert_eq!(one + two, 200, "attempts made: {one} + {two}");
    assert!(one > 0 && two > 0, "both nodes delivered: {one} and {two}");
}

#[tokio::test]
async fn a_hanging_endpoints_backlog_delays_no_other_endpoint() {
    let app = TestApp::spawn_with(open_policy).await;
    let a = app.signup("backlog", Some("professional")).await;
    let hung = Arc::new(Mutex::new(Seen {
        hang: true,
        ..Seen::default()
    }));
    let good = Arc::new(Mutex::new(Seen::default()));
    endpoint(&app, &a, &receiver(hung.clone()).await, json!(["*"])).await;
    endpoint(
        &app,
        &a,
        &receiver(good.clone()).await,
        json!(["api_key.created"]),
    )
    .await;
    // 300 deliveries to the hanging endpoint, all due before the good one's.
    for i in 0..300 {
        upload(&app, &a.token, i).await;
    }
    wait_for(&hung, 2, Duration::from_secs(10)).await;
    let started = Instant::now();
    let k = app.api_key(&a.token, "k").await;
    assert_eq!(k.status, 201);
    wait_for(&good, 1, Duration::from_secs(2)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        hung.lock().unwrap().deliveries.len(),
        2,
        "two in flight, no more"
    );
}

/// Sets every endpoint of `tenant` failing since `days` ago, behind the application's back.
async fn failing_for(app: &TestApp, tenant: &str, days: i64) {
    let since = tenantd_core::time::format(chrono::Utc::now() - chrono::Duration::days(days));
    let sql =
        format!("UPDATE webhook_endpoints SET failing_since = '{since}' WHERE tenant_id = $1");
    app.raw_cell(&sql, Some(tenant)).await;
}

async fn attempts_of(app: &TestApp, token: &str, hook: &str) -> Vec<Value> {
    let r = app
        .call(
            "GET",
            &format!("/v1/webhooks/{hook}/deliveries"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"].as_array().unwrap().clone()
}

async fn status_of(app: &TestApp, token: &str, hook: &str) -> String {
    let r = app
        .call("GET", &format!("/v1/webhooks/{hook}"), Some(token), None)
        .await;
    r.body["status"].as_str().unwrap().to_owned()
}

/// Makes an `api_key.created` event and waits until its delivery has had its first attempt.
async fn one_failed_attempt(app: &TestApp, token: &str, hook: &str, n: usize) {
    let k = app.api_key(token, &format!("k{n}")).await;
    assert_eq!(k.status, 201, "{}", k.text);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let items = attempts_of(app, token, hook).await;
        let tried = items
            .iter()
            .filter(|d| d["attempts"].as_i64() >= Some(1))
            .count();
        if items.len() >= n && tried >= n {
            return;
        }
        assert!(Instant::now() < deadline, "attempts: {items:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_endpoint_failing_for_five_days_is_disabled_with_an_event_and_not_before() {
    let app = TestApp::spawn_with(open_policy).await;
    let a = app.signup("failing", Some("professional")).await;
    let dead = Arc::new(Mutex::new(Seen {
        fail_first: usize::MAX,
        ..Seen::default()
    }));
    let (hook, _) = endpoint(
        &app,
        &a,
        &receiver(dead.clone()).await,
        json!(["api_key.created"]),
    )
    .await;
    one_failed_attempt(&app, &a.token, &hook, 1).await;
    assert_eq!(status_of(&app, &a.token, &hook).await, "active");

    // Failing for four days: another failure leaves it active.
    failing_for(&app, &a.tenant_id, 4).await;
    one_failed_attempt(&app, &a.token, &hook, 2).await;
    assert_eq!(
        status_of(&app, &a.token, &hook).await,
        "active",
        "four days is not five"
    );

    // Failing for six days: the next failure disables it, and an event says so.
    failing_for(&app, &a.tenant_id, 6).await;
    one_failed_attempt(&app, &a.token, &hook, 3).await;
    assert_eq!(status_of(&app, &a.token, &hook).await, "disabled");
    let ev = app
        .call(
            "GET",
            "/v1/events?types=webhook.disabled",
            Some(&a.token),
            None,
        )
        .await;
    let items = ev.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", ev.body);
    assert_eq!(items[0]["data"]["id"], hook.as_str(), "{}", items[0]);

    // A disabled endpoint gets no new deliveries.
    let before = attempts_of(&app, &a.token, &hook).await.len();
    let k = app.api_key(&a.token, "late").await;
    assert_eq!(k.status, 201);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(attempts_of(&app, &a.token, &hook).await.len(), before);

    // Enabled again by its owner, it gets the next event's delivery.
    let r = app
        .call(
            "PATCH",
            &format!("/v1/webhooks/{hook}"),
            Some(&a.token),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    one_failed_attempt(&app, &a.token, &hook, before + 1).await;
}

/// The real sender, with name resolution answered from a list the test changes, counting
/// every post it lets through.
struct Rebinding {
    inner: tenantd_server::sender::HttpSender,
    answers: Mutex<Vec<IpAddr>>,
    posts: AtomicUsize,
}

#[async_trait::async_trait]
impl Sender for Rebinding {
    async fn lookup(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        assert_eq!(host, "hooks.rebind.test");
        let answers = self.answers.lock().unwrap().clone();
        if answers.is_empty() {
            return Err(std::io::Error::other("no answer (SERVFAIL)"));
        }
        Ok(answers
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }

    async fn post(
        &self,
        url: &str,
        host: &str,
        addr: SocketAddr,
        headers: &[(String, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<u16, String> {
        self.posts.fetch_add(1, Ordering::SeqCst);
        self.inner
            .post(url, host, addr, headers, body, timeout)
            .await
    }
}

#[tokio::test]
async fn a_name_whose_answer_turns_private_after_registration_is_refused_at_delivery() {
    let net = Arc::new(Rebinding {
        inner: tenantd_server::sender::HttpSender::new(),
        answers: Mutex::new(vec![]),
        posts: AtomicUsize::new(0),
    });
    let app = TestApp::spawn_with_sender(
        |c| {
            c.webhook_policy = tenantd_core::net::OutboundPolicy {
                allow_http: true,
                allow_private: false,
            }
        },
        net.clone(),
    )
    .await;
    let a = app.signup("rebind", Some("professional")).await;
    let url = "http://hooks.rebind.test/hook";
    let register = || {
        app.call(
            "POST",
            "/v1/webhooks",
            Some(&a.token),
            Some(json!({"url": url, "events": ["api_key.created"]})),
        )
    };
    // At registration: no answer, or any private answer, is refused.
    for answers in [vec![], vec!["10.1.2.3"], vec!["93.184.216.34", "127.0.0.1"]] {
        *net.answers.lock().unwrap() = answers.iter().map(|a| a.parse().unwrap()).collect();
        let r = register().await;
        r.assert_problem(422, "VALIDATION_FAILED");
    }
    // A public answer registers; nothing is posted (no event of its type yet).
    *net.answers.lock().unwrap() = vec!["93.184.216.34".parse().unwrap()];
    let r = register().await;
    assert_eq!(r.status, 201, "{}", r.text);
    let hook = r.body["id"].as_str().unwrap().to_owned();

    // Then the name answers inward: each attempt is refused before any connection.
    let inward = [
        vec!["10.0.0.7"],
        vec!["169.254.169.254"],
        vec!["93.184.216.34", "192.168.1.1"],
        vec!["::ffff:10.0.0.1"],
        vec!["fd00::1"],
        vec!["100.64.0.1"],
        vec!["127.0.0.1"],
        vec![],
    ];
    for (i, answers) in inward.iter().enumerate() {
        *net.answers.lock().unwrap() = answers.iter().map(|a| a.parse().unwrap()).collect();
        one_failed_attempt(&app, &a.token, &hook, i + 1).await;
        let items = attempts_of(&app, &a.token, &hook).await;
        let newest = &items[0];
        let error = newest["last_error"].as_str().unwrap_or_default();
        assert!(error.starts_with("refused"), "{answers:?}: {newest}");
    }
    assert_eq!(net.posts.load(Ordering::SeqCst), 0, "no request was made");
}
