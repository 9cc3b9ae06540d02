//! Helpers of the agent-run tests: a plan file with the numbers a test picks, a tenant with
//! an agent, a worker key, and the calls every run test makes.

use serde_json::{Value, json};

use super::{Resp, Signed, TestApp};

/// A plan file with one plan, `runs`, whose numbers the test picks.
pub fn runs_plans(queued: i64, tokens: i64, concurrent: i64, spawns: u32, hold: i64) -> String {
    format!(
        "plans:
  free:
    name: Free
    self_serve: true
    quotas: {{users: 5, tokens: 100000, concurrent_runs: 2, queued_runs: 20}}
    features: [basic_orchestration]
    rate_limits: {{api_requests: 100000, agent_spawns: 10}}
  runs:
    name: Runs
    self_serve: true
    quotas: {{users: 5, tokens: {tokens}, concurrent_runs: {concurrent}, queued_runs: {queued}}}
    run_token_hold: {hold}
    models: [small, large]
    features: [basic_orchestration]
    rate_limits: {{api_requests: 100000, agent_spawns: {spawns}}}
  enterprise:
    name: Enterprise
    isolation: pooled
    quotas: {{users: ~, tokens: ~, concurrent_runs: 50, queued_runs: 5000}}
    features: [basic_orchestration, audit_logs]
    rate_limits: {{api_requests: 100000, agent_spawns: 1000}}
"
    )
}

/// An app on [`runs_plans`], with `tweak` for the rest of the configuration.
pub async fn app_with(
    plans: String,
    tweak: impl FnOnce(&mut tenantd_server::config::Config),
) -> TestApp {
    TestApp::spawn_with(move |c| {
        std::fs::create_dir_all(&c.data_dir).unwrap();
        let path = c.data_dir.join("plans.yaml");
        std::fs::write(&path, plans).unwrap();
        c.plans_file = Some(path);
        tweak(c);
    })
    .await
}

/// A tenant on the `runs` plan with one agent: (owner, agent id).
pub async fn tenant_with_agent(app: &TestApp, slug: &str) -> (Signed, String) {
    let t = app.signup(slug, Some("runs")).await;
    let agent = app.create(&t.token, "agents", "helper").await;
    assert_eq!(agent.status, 201, "{}", agent.text);
    (t, agent.body["id"].as_str().unwrap().to_owned())
}

/// A platform API key with the worker role.
pub async fn worker_key(app: &TestApp) -> String {
    let r = app
        .call(
            "POST",
            "/v1/api-keys",
            Some(&app.admin_token),
            Some(json!({"name": "worker", "role": "worker"})),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["key"].as_str().unwrap().to_owned()
}

pub async fn start(app: &TestApp, token: &str, agent: &str, body: Value) -> Resp {
    app.call(
        "POST",
        &format!("/v1/agents/{agent}/runs"),
        Some(token),
        Some(body),
    )
    .await
}

pub async fn lease(app: &TestApp, worker: &str) -> Resp {
    app.call("POST", "/v1/workers/lease", Some(worker), Some(json!({})))
        .await
}

pub async fn tokens_of(app: &TestApp, t: &Signed) -> Value {
    let u = app
        .call(
            "GET",
            &format!("/v1/tenants/{}/usage", t.tenant_id),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(u.status, 200, "{}", u.text);
    u.body["quotas"]["tokens"].clone()
}
