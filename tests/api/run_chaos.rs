//! Agent runs under chaos: workers that vanish mid-run, duplicate completions, cancellations
//! racing completions, a suspension while leases are handed out, and `kill -9` of tenantd
//! itself. At rest no slot and no token hold may be left, and the reconciler finds nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::runs::{app_with, runs_plans, tenant_with_agent, tokens_of, worker_key};
use crate::helpers::{ADMIN_EMAIL, TestApp, call_at, temp_dir, wait_healthy};

/// One worker's turn on a run, by its index: vanish, complete twice at once, race a cancel,
/// or report and complete.
async fn work(app: &TestApp, worker: &str, owner: &str, lease: &Value, turn: usize) {
    let run = lease["run"]["id"].as_str().unwrap();
    let lease_id = lease["lease_id"].as_str().unwrap();
    let done_path = format!("/v1/runs/{run}/complete");
    let cancel_path = format!("/v1/runs/{run}/cancel");
    let complete = || {
        app.call(
            "POST",
            &done_path,
            Some(worker),
            Some(json!({"lease_id": lease_id, "tokens_total": 40})),
        )
    };
    match turn % 4 {
        // Killed: the lease is never renewed; expiry requeues the run.
        0 => {}
        1 => {
            let (a, b) = tokio::join!(complete(), complete());
            if a.status == 200 && b.status == 200 {
                assert_eq!(
                    a.body["status"], b.body["status"],
                    "the same completion twice"
                );
            } else {
                // Only a suspension between the lease and the completion may refuse it.
                for r in [&a, &b] {
                    assert!(
                        r.status == 200 || r.code() == Some("RUN_CANCELLED"),
                        "{}",
                        r.text
                    );
                }
            }
        }
        2 => {
            let cancel = app.call("POST", &cancel_path, Some(owner), None);
            let (c, d) = tokio::join!(cancel, complete());
            assert_eq!(c.status, 200, "{}", c.text);
            assert!(
                d.status == 200 || d.code() == Some("RUN_CANCELLED"),
                "{}",
                d.text
            );
        }
        _ => {
            let u = app
                .call(
                    "POST",
                    &format!("/v1/runs/{run}/usage"),
                    Some(worker),
                    Some(json!({"lease_id": lease_id, "seq": 1, "tokens": 25})),
                )
                .await;
            assert!(u.status == 200 || u.status == 409, "{}", u.text);
            let d = complete().await;
            assert!(d.status == 200 || d.status == 409, "{}", d.text);
        }
    }
}

#[tokio::test]
async fn chaos_leaves_no_slot_and_no_hold() {
    let app = Arc::new(
        app_with(runs_plans(100, 10_000_000, 3, 100_000, 500), |c| {
            c.run_lease_ttl_ms = 300;
            c.run_max_attempts = 3;
        })
        .await,
    );
    let mut tenants = Vec::new();
    for slug in ["acme", "bolt", "core"] {
        let (t, agent) = tenant_with_agent(&app, slug).await;
        for _ in 0..12 {
            let r = crate::helpers::runs::start(&app, &t.token, &agent, json!({})).await;
            assert_eq!(r.status, 202, "{}", r.text);
        }
        tenants.push(t);
    }
    let worker = worker_key(&app).await;
    let suspended = tenants[1].clone();
    let mut workers = Vec::new();
    for w in 0..6 {
        let (app, worker, owners) = (app.clone(), worker.clone(), tenants.clone());
        workers.push(tokio::spawn(async move {
            let mut turn = w;
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(6) {
                let l = app
                    .call(
                        "POST",
                        "/v1/workers/lease",
                        Some(&worker),
                        Some(json!({"wait_ms": 300})),
                    )
                    .await;
                if l.status == 204 {
                    continue;
                }
                assert_eq!(l.status, 200, "{}", l.text);
                let tid = l.body["run"]["tenant_id"].as_str().unwrap();
                let owner = owners.iter().find(|o| o.tenant_id == tid).unwrap();
                work(&app, &worker, &owner.token, &l.body, turn).await;
                turn += 1;
            }
        }));
    }
    // A suspension while leases are being handed out, and a reactivation later.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let s = app
        .call(
            "POST",
            &format!("/v1/tenants/{}/suspend", suspended.tenant_id),
            Some(&app.admin_token),
            Some(json!({"reason": "chaos"})),
        )
        .await;
    assert_eq!(s.status, 200, "{}", s.text);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let r = app
        .call(
            "POST",
            &format!("/v1/tenants/{}/reactivate", suspended.tenant_id),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for w in workers {
        w.await.expect("a worker task");
    }
    // Whatever the workers left leased expires; then nothing is held or leased.
    let started = Instant::now();
    loop {
        let mut open = 0;
        for t in &tenants {
            let u = app
                .call(
                    "GET",
                    &format!("/v1/tenants/{}/usage", t.tenant_id),
                    Some(&app.admin_token),
                    None,
                )
                .await;
            open += u.body["runs"]["leased"].as_i64().unwrap();
            let leased_slots = u.body["quotas"]["concurrent_runs"]["used"]
                .as_i64()
                .unwrap();
            assert_eq!(leased_slots, u.body["runs"]["leased"].as_i64().unwrap());
        }
        if open == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "leases left after their TTL"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for t in &tenants {
        // Cancel what is still queued; at rest nothing is held.
        let runs = app
            .call(
                "GET",
                "/v1/runs?status=queued&limit=200",
                Some(&t.token),
                None,
            )
            .await;
        for r in runs.body["items"].as_array().unwrap() {
            let id = r["id"].as_str().unwrap();
            app.call(
                "POST",
                &format!("/v1/runs/{id}/cancel"),
                Some(&t.token),
                None,
            )
            .await;
        }
        assert_eq!(
            tokens_of(&app, t).await["held"],
            0,
            "{}: a hold leaked",
            t.tenant_id
        );
    }
    assert_eq!(
        tenantd_server::runs::reconcile(&app.state).await.unwrap(),
        0,
        "the reconciler agrees"
    );
}

#[tokio::test]
async fn a_killed_tenantd_leaks_no_slot_and_no_hold() {
    let dir = temp_dir();
    let port = crate::helpers::free_port();
    let base = format!("http://127.0.0.1:{port}");
    tenantd_server::install_tls_provider();
    let client = reqwest::Client::new();
    let env = [("TENANTD_RUN_LEASE_TTL_MS", "500")];
    let mut child = crate::durability::start_with(&dir, port, &env);
    wait_healthy(&client, &base).await;
    let (_, up) = call_at(&client, &base, "POST", "/v1/auth/signup", None, Some(json!({"email": "o@k.test", "password": "owner-pass-123", "name": "O", "tenant": {"name": "K", "slug": "killed"}})), None).await;
    let owner = up["access_token"].as_str().unwrap().to_owned();
    let (_, agent) = call_at(
        &client,
        &base,
        "POST",
        "/v1/agents",
        Some(&owner),
        Some(json!({"name": "a", "spec": {}})),
        None,
    )
    .await;
    let agent = agent["id"].as_str().unwrap().to_owned();
    for _ in 0..5 {
        let (s, r) = call_at(
            &client,
            &base,
            "POST",
            &format!("/v1/agents/{agent}/runs"),
            Some(&owner),
            Some(json!({"model": "m"})),
            None,
        )
        .await;
        assert_eq!(s, 202, "{r}");
    }
    let (_, admin) = call_at(
        &client,
        &base,
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"email": ADMIN_EMAIL, "password": crate::durability::PASSWORD})),
        None,
    )
    .await;
    let admin = admin["access_token"].as_str().unwrap().to_owned();
    let (_, key) = call_at(
        &client,
        &base,
        "POST",
        "/v1/api-keys",
        Some(&admin),
        Some(json!({"name": "w", "role": "worker"})),
        None,
    )
    .await;
    let worker = key["key"].as_str().unwrap().to_owned();
    // Two leased (the free plan's concurrent_runs), one usage report, then kill -9.
    for _ in 0..2 {
        let (s, l) = call_at(
            &client,
            &base,
            "POST",
            "/v1/workers/lease",
            Some(&worker),
            Some(json!({})),
            None,
        )
        .await;
        assert_eq!(s, 200, "{l}");
        let run = l["run"]["id"].as_str().unwrap();
        let (s, _) = call_at(
            &client,
            &base,
            "POST",
            &format!("/v1/runs/{run}/usage"),
            Some(&worker),
            Some(json!({"lease_id": l["lease_id"], "seq": 1, "tokens": 100})),
            None,
        )
        .await;
        assert_eq!(s, 200);
    }
    child.kill().expect("kill -9");
    child.wait().unwrap();
    let mut child = crate::durability::start_with(&dir, port, &env);
    wait_healthy(&client, &base).await;
    let (_, login) = call_at(
        &client,
        &base,
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"email": "o@k.test", "password": "owner-pass-123"})),
        None,
    )
    .await;
    let owner = login["access_token"].as_str().unwrap().to_owned();
    // The dead node's leases expire and their runs are leased again; every run completes.
    let started = Instant::now();
    let mut done = 0;
    while done < 5 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "only {done} of 5 runs completed"
        );
        let (s, l) = call_at(
            &client,
            &base,
            "POST",
            "/v1/workers/lease",
            Some(&worker),
            Some(json!({"wait_ms": 1000})),
            None,
        )
        .await;
        if s == 204 {
            continue;
        }
        let run = l["run"]["id"].as_str().unwrap();
        let (s, r) = call_at(
            &client,
            &base,
            "POST",
            &format!("/v1/runs/{run}/complete"),
            Some(&worker),
            Some(json!({"lease_id": l["lease_id"]})),
            None,
        )
        .await;
        assert_eq!(s, 200, "{r}");
        done += 1;
    }
    let (_, usage) = call_at(
        &client,
        &base,
        "GET",
        "/v1/tenants/killed/usage",
        Some(&owner),
        None,
        None,
    )
    .await;
    assert_eq!(usage["quotas"]["tokens"]["held"], 0, "{usage}");
    assert_eq!(
        usage["quotas"]["tokens"]["used"], 200,
        "tokens reported before the kill still count: {usage}"
    );
    assert_eq!(usage["runs"]["leased"], 0, "{usage}");
    assert!(
        usage["runs"]["lease_expiries"].as_i64().unwrap() >= 2,
        "{usage}"
    );
    child.kill().ok();
    child.wait().ok();
    let _ = std::fs::remove_dir_all(&dir);
}
