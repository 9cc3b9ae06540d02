//! The audit trail: recorded with every change, one chain per tenant, tampering found.

use serde_json::json;

use crate::helpers::TestApp;

async fn tenant_with_events(app: &TestApp) -> crate::helpers::Signed {
    let a = app.signup("acme", None).await;
    for i in 0..4 {
        assert_eq!(
            app.create(&a.token, "agents", &format!("a{i}"))
                .await
                .status,
            201
        );
    }
    a
}

async fn raw(app: &TestApp, sql: &str, tenant: &str) {
    app.raw_cell(sql, Some(tenant)).await;
}

async fn verify(app: &TestApp, tenant: &str) -> serde_json::Value {
    let r = app
        .call_h(
            "GET",
            "/v1/audit/verify",
            Some(&app.admin_token),
            None,
            &[("x-tenant-id", tenant)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

fn cli_verify(app: &TestApp, tenant: &str) -> (bool, String) {
    let out = app.cli(&["audit", "verify", "--tenant", tenant]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test]
async fn an_untouched_chain_verifies_through_the_api_and_the_cli() {
    let app = TestApp::spawn().await;
    let a = tenant_with_events(&app).await;
    let v = verify(&app, &a.tenant_id).await;
    assert_eq!(v["ok"], true);
    assert!(v["events"].as_i64().unwrap() >= 6);
    let (ok, out) = cli_verify(&app, "acme");
    assert!(ok && out.contains("ok"), "{out}");
    let events = app.audit_of(&a.tenant_id).await;
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"tenant.create")
            && actions.contains(&"auth.signup")
            && actions.contains(&"agents.create"),
        "{actions:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["tenant_id"] == a.tenant_id.as_str())
    );
    assert!(events.windows(2).all(|w| w[1]["prev_hash"] == w[0]["hash"]));
}

#[tokio::test]
async fn an_edited_row_is_reported_at_its_seq() {
    let app = TestApp::spawn().await;
    let a = tenant_with_events(&app).await;
    raw(
        &app,
        "UPDATE audit_events SET actor = 'user:nobody' WHERE tenant_id = $1 AND seq = 3",
        &a.tenant_id,
    )
    .await;
    assert_eq!(
        verify(&app, &a.tenant_id).await,
        json!({"ok": false, "first_bad_seq": 3})
    );
    let (ok, out) = cli_verify(&app, "acme");
    assert!(!ok && out.contains("seq 3"), "{out}");
}

#[tokio::test]
async fn a_deleted_row_is_reported_at_its_seq() {
    let app = TestApp::spawn().await;
    let a = tenant_with_events(&app).await;
    raw(
        &app,
        "DELETE FROM audit_events WHERE tenant_id = $1 AND seq = 4",
        &a.tenant_id,
    )
    .await;
    assert_eq!(
        verify(&app, &a.tenant_id).await,
        json!({"ok": false, "first_bad_seq": 4})
    );
    let (ok, out) = cli_verify(&app, "acme");
    assert!(!ok && out.contains("seq 4"), "{out}");
}

#[tokio::test]
async fn a_deleted_last_row_is_reported_too() {
    let app = TestApp::spawn().await;
    let a = tenant_with_events(&app).await;
    let n = verify(&app, &a.tenant_id).await["events"].as_i64().unwrap();
    raw(&app, "DELETE FROM audit_events WHERE tenant_id = $1 AND seq = (SELECT MAX(seq) FROM audit_events)", &a.tenant_id).await;
    // Reading the audit appends a crossing event first, so the gap is where the last row was.
    assert_eq!(verify(&app, &a.tenant_id).await["first_bad_seq"], n);
}

#[tokio::test]
async fn swapped_rows_are_reported_at_the_first_of_them() {
    let app = TestApp::spawn().await;
    let a = tenant_with_events(&app).await;
    raw(&app, "UPDATE audit_events SET seq = CASE seq WHEN 2 THEN -5 WHEN 5 THEN 2 END WHERE tenant_id = $1 AND seq IN (2, 5)", &a.tenant_id).await;
    raw(
        &app,
        "UPDATE audit_events SET seq = 5 WHERE tenant_id = $1 AND seq = -5",
        &a.tenant_id,
    )
    .await;
    assert_eq!(
        verify(&app, &a.tenant_id).await,
        json!({"ok": false, "first_bad_seq": 2})
    );
}

#[tokio::test]
async fn two_hundred_concurrent_audited_writes_form_one_unbroken_chain() {
    let app = TestApp::spawn().await;
    let p = app.signup("busy", Some("professional")).await;
    let names: Vec<String> = (0..200).map(|i| format!("agent-{i}")).collect();
    let calls = names.iter().map(|n| app.create(&p.token, "agents", n));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(|r| r.status == 201));
    let v = verify(&app, &p.tenant_id).await;
    assert_eq!(v["ok"], true, "{v}");
    let events = app.audit_of(&p.tenant_id).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["action"] == "agents.create")
            .count(),
        200
    );
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn audit_reads_need_the_role_and_the_plan_feature() {
    let app = TestApp::spawn().await;
    let free = app.signup("acme", None).await;
    app.call("GET", "/v1/audit", Some(&free.token), None)
        .await
        .assert_problem(403, "FEATURE_NOT_IN_PLAN");
    let r = app.call("POST", "/v1/tenants", Some(&app.admin_token), Some(json!({"name": "E", "slug": "ent-co", "plan": "enterprise", "owner_email": free.email}))).await;
    assert_eq!(r.status, 201);
    let sw = app
        .call(
            "POST",
            "/v1/auth/switch",
            Some(&free.token),
            Some(json!({"tenant": "ent-co"})),
        )
        .await;
    assert_eq!(sw.status, 200, "{}", sw.text);
    let t = sw.body["access_token"].as_str().unwrap();
    let list = app
        .call("GET", "/v1/audit?action=tenant.create", Some(t), None)
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    let csv = app
        .call("GET", "/v1/audit/export?format=csv", Some(t), None)
        .await;
    assert!(csv.text.starts_with("seq,id,tenant_id"));
    let nd = app.call("GET", "/v1/audit/export", Some(t), None).await;
    assert!(
        nd.text
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
    );
    app.call("GET", "/v1/audit/export?format=xml", Some(t), None)
        .await
        .assert_problem(422, "VALIDATION_FAILED");
}
