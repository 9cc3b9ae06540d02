//! Agent runs over HTTP: admission exact under concurrency (queue, budget, idempotency, the
//! `agent_spawns` rate), the worker's loop (lease, heartbeat, usage, complete) fenced by its
//! lease, metering closed into the budget, expiry, suspension, and the worker key's reach.

use serde_json::{Value, json};

pub use crate::helpers::runs::*;

#[tokio::test]
async fn a_run_goes_from_queued_to_succeeded_through_a_worker() {
    let app = app_with(runs_plans(20, 100_000, 2, 100, 5_000), |_| {}).await;
    let (t, agent) = tenant_with_agent(&app, "acme").await;
    let worker = worker_key(&app).await;
    let made = start(&app, &t.token, &agent, json!({"input": {"q": "hi"}})).await;
    assert_eq!(made.status, 202, "{}", made.text);
    let run = made.body["id"].as_str().unwrap().to_owned();
    assert_eq!(made.body["status"], "queued");
    assert_eq!(made.body["model"], "small", "the plan's first model");
    assert_eq!(made.body["token_hold"], 5_000);
    assert_eq!(made.body["attempt"], 0);
    let got = app
        .call("GET", &format!("/v1/runs/{run}"), Some(&t.token), None)
        .await;
    assert_eq!(got.body["queue_position"], 0);
    assert_eq!(
        tokens_of(&app, &t).await,
        json!({"used": 0, "held": 5_000, "limit": 100_000})
    );

    let l = lease(&app, &worker).await;
    assert_eq!(l.status, 200, "{}", l.text);
    assert_eq!(l.body["run"]["id"], run.as_str());
    assert_eq!(l.body["run"]["input"], json!({"q": "hi"}));
    assert_eq!(l.body["run"]["attempt"], 1);
    assert_eq!(l.body["tokens_remaining"], 100_000);
    let lease_id = l.body["lease_id"].as_str().unwrap().to_owned();
    assert_eq!(
        lease(&app, &worker).await.status,
        204,
        "nothing else queued"
    );

    let hb = app
        .call(
            "POST",
            &format!("/v1/runs/{run}/heartbeat"),
            Some(&worker),
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(hb.status, 200, "{}", hb.text);
    assert!(hb.body["lease_expires_at"].is_string());
    for _ in 0..2 {
        let u = app
            .call(
                "POST",
                &format!("/v1/runs/{run}/usage"),
                Some(&worker),
                Some(json!({"lease_id": lease_id, "seq": 1, "tokens": 1_200})),
            )
            .await;
        assert_eq!(u.status, 200, "{}", u.text);
        assert_eq!(u.body["tokens_used"], 1_200, "the same seq counts once");
    }
    assert_eq!(
        tokens_of(&app, &t).await,
        json!({"used": 1_200, "held": 3_800, "limit": 100_000}),
        "metered in the report's transaction"
    );
    let stale = app
        .call(
            "POST",
            &format!("/v1/runs/{run}/heartbeat"),
            Some(&worker),
            Some(json!({"lease_id": "not-the-lease"})),
        )
        .await;
    stale.assert_problem(409, "LEASE_LOST");
    let done = app
        .call(
            "POST",
            &format!("/v1/runs/{run}/complete"),
            Some(&worker),
            Some(json!({"lease_id": lease_id, "output": {"a": 1}, "tokens_total": 2_000})),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["status"], "succeeded");
    assert_eq!(done.body["tokens_used"], 2_000);
    assert_eq!(done.body["tokens_held"], 0);
    assert_eq!(
        tokens_of(&app, &t).await,
        json!({"used": 2_000, "held": 0, "limit": 100_000})
    );
    let after = app
        .call(
            "POST",
            &format!("/v1/runs/{run}/usage"),
            Some(&worker),
            Some(json!({"lease_id": lease_id, "seq": 2, "tokens": 1})),
        )
        .await;
    after.assert_problem(409, "LEASE_LOST");

    let events = app
        .call(
            "GET",
            "/v1/events?types=run.queued,run.leased,run.succeeded",
            Some(&t.token),
            None,
        )
        .await;
    let kinds: Vec<&str> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["run.queued", "run.leased", "run.succeeded"],
        "{}",
        events.text
    );
    let list = app
        .call("GET", "/v1/runs?status=succeeded", Some(&t.token), None)
        .await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        list.text
    );
}

#[tokio::test]
async fn a_thousand_concurrent_creations_against_fifteen_places_admit_exactly_fifteen() {
    let app = app_with(runs_plans(15, 100_000_000, 2, 100_000, 10), |_| {}).await;
    let (t, agent) = tenant_with_agent(&app, "acme").await;
    let path = format!("/v1/agents/{agent}/runs");
    let calls = (0..1000).map(|_| app.call("POST", &path, Some(&t.token), Some(json!({}))));
    let results = futures::future::join_all(calls).await;
    let admitted = results.iter().filter(|r| r.status == 202).count();
    assert_eq!(admitted, 15);
    for r in results.iter().filter(|r| r.status != 202) {
        r.assert_problem(403, "QUOTA_EXCEEDED");
        assert_eq!(r.body["resource"], "queued_runs", "{}", r.text);
    }
    assert_eq!(
        tokens_of(&app, &t).await["held"],
        15 * 10,
        "only the admitted hold"
    );
}

#[tokio::test]
async fn a_budget_of_ten_holds_admits_exactly_ten_and_one_key_makes_one_run() {
    let app = app_with(
        runs_plans(1_000, 10 * 4_000 + 3_999, 2, 100_000, 4_000),
        |_| {},
    )
    .await;
    let (t, agent) = tenant_with_agent(&app, "acme").await;
    let path = format!("/v1/agents/{agent}/runs");
    let calls = (0..100).map(|_| app.call("POST", &path, Some(&t.token), Some(json!({}))));
    let results = futures::future::join_all(calls).await;
    assert_eq!(results.iter().filter(|r| r.status == 202).count(), 10);
    for r in results.iter().filter(|r| r.status != 202) {
        r.assert_problem(403, "QUOTA_EXCEEDED");
        assert_eq!(r.body["resource"], "tokens");
    }

    let (u, agent) = tenant_with_agent(&app, "bolt").await;
    let path = format!("/v1/agents/{agent}/runs");
    let calls = (0..100).map(|_| {
        app.call_h(
            "POST",
            &path,
            Some(&u.token),
            Some(json!({"max_tokens": 10})),
            &[("idempotency-key", "order-7")],
        )
    });
    let results = futures::future::join_all(calls).await;
    let ids: std::collections::HashSet<&str> = results
        .iter()
        .map(|r| {
            assert_eq!(r.status, 202, "{}", r.text);
            r.body["id"].as_str().unwrap()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one run");
    assert_eq!(
        results
            .iter()
            .filter(|r| r.header("idempotent-replayed").is_none())
            .count(),
        1
    );
    assert_eq!(tokens_of(&app, &u).await["held"], 10, "one hold");
}

#[tokio::test]
async fn admission_refuses_in_order_and_a_refusal_uses_no_rate_token() {
    let app = app_with(runs_plans(2, 1_000_000, 2, 3, 10), |_| {}).await;
    let (t, agent) = tenant_with_agent(&app, "acme").await;
    let first = start(&app, &t.token, &agent, json!({})).await;
    assert_eq!(first.status, 202);
    assert_eq!(start(&app, &t.token, &agent, json!({})).await.status, 202);
    // Refused by the full queue: no rate token used.
    start(&app, &t.token, &agent, json!({}))
        .await
        .assert_problem(403, "QUOTA_EXCEEDED");
    start(&app, &t.token, &agent, json!({"model": "huge"}))
        .await
        .assert_problem(403, "MODEL_NOT_ALLOWED");
    let id = first.body["id"].as_str().unwrap();
    let c = app
        .call(
            "POST",
            &format!("/v1/runs/{id}/cancel"),
            Some(&t.token),
            None,
        )
        .await;
    assert_eq!(
        (c.status, c.body["status"].as_str()),
        (200, Some("cancelled")),
        "{}",
        c.text
    );
    assert_eq!(
        start(&app, &t.token, &agent, json!({})).await.status,
        202,
        "the third of three spawns"
    );
    let id = first.body["id"].as_str().unwrap();
    let _ = id;
    let list = app
        .call("GET", "/v1/runs?status=queued", Some(&t.token), None)
        .await;
    let one = list.body["items"][0]["id"].as_str().unwrap().to_owned();
    app.call(
        "POST",
        &format!("/v1/runs/{one}/cancel"),
        Some(&t.token),
        None,
    )
    .await;
    let r = start(&app, &t.token, &agent, json!({})).await;
    r.assert_problem(429, "RATE_LIMITED");
    assert!(
        r.body["retry_after"]
            .as_u64()
            .is_some_and(|s| (1..=60).contains(&s)),
        "{}",
        r.text
    );
    // The model rule: an empty allowed list allows none.
    let p = app
        .call(
            "PATCH",
            &format!("/v1/tenants/{}", t.tenant_id),
            Some(&t.token),
            Some(json!({"settings": {"allowed_models": []}})),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    let r = start(&app, &t.token, &agent, json!({})).await;
    r.assert_problem(403, "MODEL_NOT_ALLOWED");
    assert_eq!(r.body["allowed"], json!([]));
    start(
        &app,
        &t.token,
        "00000000-0000-7000-8000-000000000000",
        json!({}),
    )
    .await
    .assert_problem(404, "NOT_FOUND");
    let u = app
        .call(
            "GET",
            &format!("/v1/tenants/{}/usage", t.tenant_id),
            Some(&t.token),
            None,
        )
        .await;
    assert_eq!(
        u.body["runs"]["rejections"],
        json!({"model": 2, "queued_runs": 1, "rate": 1}),
        "{}",
        u.text
    );
}

#[tokio::test]
async fn the_worker_key_works_runs_and_reads_no_tenant_data() {
    let app = app_with(runs_plans(20, 100_000, 2, 100, 10), |_| {}).await;
    let (t, _) = tenant_with_agent(&app, "acme").await;
    let worker = worker_key(&app).await;
    app.call("GET", "/v1/agents", Some(&worker), None)
        .await
        .assert_problem(403, "FORBIDDEN");
    app.call("GET", "/v1/runs", Some(&worker), None)
        .await
        .assert_problem(403, "FORBIDDEN");
    app.call("GET", "/v1/members", Some(&worker), None)
        .await
        .assert_problem(403, "FORBIDDEN");
    // A tenant's own owner cannot lease other tenants' runs, nor make a worker key.
    lease(&app, &t.token).await.assert_problem(403, "FORBIDDEN");
    app.call(
        "POST",
        "/v1/api-keys",
        Some(&t.token),
        Some(json!({"name": "w", "role": "worker"})),
    )
    .await
    .assert_problem(422, "VALIDATION_FAILED");
    app.call(
        "POST",
        "/v1/invitations",
        Some(&t.token),
        Some(json!({"email": "w@acme.test", "role": "worker"})),
    )
    .await
    .assert_problem(422, "VALIDATION_FAILED");
    let bogus = "00000000-0000-7000-8000-000000000000";
    app.call(
        "POST",
        &format!("/v1/runs/{bogus}/heartbeat"),
        Some(&worker),
        Some(json!({"lease_id": "x"})),
    )
    .await
    .assert_problem(409, "LEASE_LOST");
}

#[tokio::test]
async fn usage_past_the_budget_ends_the_run_and_still_counts() {
    let app = app_with(runs_plans(20, 1_000, 2, 100, 400), |_| {}).await;
    let (t, agent) = tenant_with_agent(&app, "acme").await;
    let worker = worker_key(&app).await;
    let run = start(&app, &t.token, &agent, json!({})).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let l = lease(&app, &worker).await;
    let lease_id = l.body["lease_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/runs/{run}/usage");
    let report = |seq: i64, tokens: i64| {
        app.call(
            "POST",
            &path,
            Some(&worker),
            Some(json!({"lease_id": lease_id, "seq": seq, "tokens": tokens})),
        )
    };
    let grown = report(1, 700).await;
    assert_eq!(
        (grown.status, grown.body["tokens_remaining"].as_i64()),
        (200, Some(300)),
        "{}",
        grown.text
    );
    let past = report(2, 500).await;
    past.assert_problem(409, "BUDGET_EXHAUSTED");
    let got = app
        .call("GET", &format!("/v1/runs/{run}"), Some(&t.token), None)
        .await;
    assert_eq!(
        (
            got.body["status"].as_str(),
            got.body["tokens_used"].as_i64()
        ),
        (Some("budget_exceeded"), Some(1_200))
    );
    assert_eq!(
        tokens_of(&app, &t).await,
        json!({"used": 1_200, "held": 0, "limit": 1_000})
    );
    start(&app, &t.token, &agent, json!({}))
        .await
        .assert_problem(403, "QUOTA_EXCEEDED");
    let alerts = app
        .call(
            "GET",
            "/v1/events?types=quota.threshold",
            Some(&t.token),
            None,
        )
        .await;
    let fired: Vec<(Value, Value)> = alerts.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["data"]["quota"].clone(), e["data"]["threshold"].clone()))
        .collect();
    assert_eq!(
        fired,
        [(json!("tokens"), json!(80)), (json!("tokens"), json!(100))],
        "{}",
        alerts.text
    );
}

#[tokio::test]
async fn a_lease_nobody_renews_requeues_then_expires_within_its_ttl_and_a_second() {
    let app = app_with(runs_plans(20, 100_000, 2, 100, 300), |c| {
        c.run_lease_ttl_ms = 400;
        c.run_max_attempts = 2;
    })
    .await;
    let (t, agent) = tenant_with_agent(&app, "acme").await;
    let worker = worker_key(&app).await;
    let run = start(&app, &t.token, &agent, json!({})).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let first = lease(&app, &worker).await;
    let started = std::time::Instant::now();
    let mut second = None;
    while started.elapsed() < std::time::Duration::from_millis(1_400) {
        let l = lease(&app, &worker).await;
        if l.status == 200 {
            second = Some(l);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let second = second.expect("requeued within the TTL + 1 s");
    assert_eq!(
        (
            second.body["run"]["id"].as_str(),
            second.body["run"]["attempt"].as_i64()
        ),
        (Some(run.as_str()), Some(2))
    );
    let old = first.body["lease_id"].as_str().unwrap();
    app.call(
        "POST",
        &format!("/v1/runs/{run}/heartbeat"),
        Some(&worker),
        Some(json!({"lease_id": old})),
    )
    .await
    .assert_problem(409, "LEASE_LOST");
    let started = std::time::Instant::now();
    loop {
        let got = app
            .call("GET", &format!("/v1/runs/{run}"), Some(&t.token), None)
            .await;
        if got.body["status"] == "expired" {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_millis(1_400),
            "{}",
            got.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(tokens_of(&app, &t).await["held"], 0);
}

#[tokio::test]
async fn suspension_cancels_queued_and_leased_runs_and_leases_nothing_of_the_tenant() {
    let app = app_with(runs_plans(20, 100_000, 2, 100, 1_000), |_| {}).await;
    let (t, agent) = tenant_with_agent(&app, "acme").await;
    let worker = worker_key(&app).await;
    for _ in 0..3 {
        assert_eq!(start(&app, &t.token, &agent, json!({})).await.status, 202);
    }
    let l = lease(&app, &worker).await;
    let (run, lease_id) = (
        l.body["run"]["id"].as_str().unwrap().to_owned(),
        l.body["lease_id"].as_str().unwrap().to_owned(),
    );
    let s = app
        .call(
            "POST",
            &format!("/v1/tenants/{}/suspend", t.tenant_id),
            Some(&app.admin_token),
            Some(json!({"reason": "unpaid"})),
        )
        .await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(tokens_of(&app, &t).await["held"], 0, "every hold released");
    assert_eq!(
        lease(&app, &worker).await.status,
        204,
        "nothing of a suspended tenant is leased"
    );
    app.call(
        "POST",
        &format!("/v1/runs/{run}/heartbeat"),
        Some(&worker),
        Some(json!({"lease_id": lease_id})),
    )
    .await
    .assert_problem(409, "RUN_CANCELLED");
    let r = app
        .call(
            "POST",
            &format!("/v1/tenants/{}/reactivate", t.tenant_id),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let runs = app.call("GET", "/v1/runs", Some(&t.token), None).await;
    assert_eq!(runs.status, 200, "{}", runs.text);
    assert!(
        runs.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "cancelled"),
        "{}",
        runs.text
    );
    assert_eq!(
        start(&app, &t.token, &agent, json!({})).await.status,
        202,
        "runs again once active"
    );
    assert_eq!(lease(&app, &worker).await.status, 200);
}

#[tokio::test]
async fn two_nodes_lease_every_run_exactly_once() {
    let app = app_with(runs_plans(100, 100_000_000, 5, 100_000, 10), |_| {}).await;
    let plans = app.state.config.plans_file.clone();
    let other = app.another_node(move |c| c.plans_file = plans).await;
    let mut owners = Vec::new();
    for slug in ["acme", "bolt", "core"] {
        let (t, agent) = tenant_with_agent(&app, slug).await;
        for _ in 0..20 {
            assert_eq!(start(&app, &t.token, &agent, json!({})).await.status, 202);
        }
        owners.push(t);
    }
    let worker = worker_key(&app).await;
    let bases = [app.base.clone(), other.base.clone()];
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (base, worker, client) = (bases[w % 2].clone(), worker.clone(), app.client.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let (s, l) = crate::helpers::call_at(
                    &client,
                    &base,
                    "POST",
                    "/v1/workers/lease",
                    Some(&worker),
                    Some(json!({"wait_ms": 200})),
                    None,
                )
                .await;
                if s == 204 {
                    return mine;
                }
                assert_eq!(s, 200, "{l}");
                let run = l["run"]["id"].as_str().unwrap().to_owned();
                let (s, r) = crate::helpers::call_at(
                    &client,
                    &base,
                    "POST",
                    &format!("/v1/runs/{run}/complete"),
                    Some(&worker),
                    Some(json!({"lease_id": l["lease_id"], "tokens_total": 3})),
                    None,
                )
                .await;
                assert_eq!(s, 200, "{r}");
                mine.push(run);
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: std::collections::HashSet<&String> = all.iter().collect();
    assert_eq!(
        (all.len(), unique.len()),
        (60, 60),
        "every run leased once, none twice"
    );
    for t in &owners {
        let u = tokens_of(&app, t).await;
        assert_eq!(
            (u["used"].as_i64(), u["held"].as_i64()),
            (Some(60), Some(0)),
            "{u}"
        );
    }
}
