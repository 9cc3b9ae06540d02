//! Two tenants never see, change or count each other's rows.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn another_tenants_resource_answers_404_everywhere_and_stays_untouched() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let b = app.signup("bolt", None).await;
    let made = app.create(&a.token, "agents", "helper").await;
    assert_eq!(made.status, 201);
    let id = made.body["id"].as_str().unwrap();
    for (m, body) in [
        ("GET", None),
        ("PATCH", Some(json!({"name": "stolen"}))),
        ("DELETE", None),
    ] {
        let r = app
            .call(m, &format!("/v1/agents/{id}"), Some(&b.token), body)
            .await;
        r.assert_problem(404, "NOT_FOUND");
    }
    let list = app.call("GET", "/v1/agents", Some(&b.token), None).await;
    assert_eq!(list.status, 200);
    assert!(list.body["items"].as_array().unwrap().is_empty());
    let mine = app
        .call("GET", &format!("/v1/agents/{id}"), Some(&a.token), None)
        .await;
    assert_eq!(
        (
            mine.status,
            mine.body["name"].as_str(),
            mine.body["version"].as_i64()
        ),
        (200, Some("helper"), Some(1))
    );
}

#[tokio::test]
async fn an_id_of_another_kind_or_garbage_answers_404() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let made = app.create(&a.token, "agents", "helper").await;
    let id = made.body["id"].as_str().unwrap();
    app.call("GET", &format!("/v1/tools/{id}"), Some(&a.token), None)
        .await
        .assert_problem(404, "NOT_FOUND");
    app.call("GET", "/v1/agents/not-a-uuid", Some(&a.token), None)
        .await
        .assert_problem(404, "NOT_FOUND");
    app.call("GET", "/v1/gadgets", Some(&a.token), None)
        .await
        .assert_problem(404, "NOT_FOUND");
}

#[tokio::test]
async fn a_refused_crossing_is_in_the_acting_tenants_audit_chain_and_cannot_flood_it() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let b = app.signup("bolt", None).await;
    let r = app
        .call_h(
            "DELETE",
            "/v1/agents/0190a000-0000-7000-8000-000000000001",
            Some(&a.token),
            None,
            &[("x-tenant-id", "bolt"), ("x-request-id", "probe-1")],
        )
        .await;
    r.assert_problem(403, "TENANT_MISMATCH");
    let events = app.audit_of(&a.tenant_id).await;
    let denial = events
        .iter()
        .find(|e| e["action"] == "tenant.mismatch")
        .expect("the refusal is in acme's chain");
    assert_eq!(denial["outcome"], "denied");
    assert_eq!(denial["actor"], format!("user:{}", a.user_id));
    assert_eq!(denial["request_id"], "probe-1");
    assert_eq!(denial["resource_id"], b.tenant_id.as_str());
    assert_eq!(denial["details"]["named"][0], "bolt");
    assert_eq!(denial["details"]["method"], "DELETE");
    assert!(
        denial["ip"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("127."))
    );
    // Also for the tenant-path endpoints, and with a cookie as the other source.
    app.call_h(
        "GET",
        "/v1/tenant",
        Some(&a.token),
        None,
        &[("cookie", "tenant=bolt")],
    )
    .await
    .assert_problem(403, "TENANT_MISMATCH");
    // Nothing lands in the named tenant's chain: bolt learns nothing of acme's probe.
    assert!(
        !app.audit_of(&b.tenant_id)
            .await
            .iter()
            .any(|e| e["action"] == "tenant.mismatch")
    );
    // A flood is throttled: the chain takes at most 10 such events a minute.
    for _ in 0..30 {
        app.call_h(
            "GET",
            "/v1/agents",
            Some(&a.token),
            None,
            &[("x-tenant-id", "bolt")],
        )
        .await
        .assert_problem(403, "TENANT_MISMATCH");
    }
    let n = app
        .audit_of(&a.tenant_id)
        .await
        .iter()
        .filter(|e| e["action"] == "tenant.mismatch")
        .count();
    assert_eq!(n, 10, "two probes, then eight more before the throttle");
}

#[tokio::test]
async fn tenant_sources_that_disagree_with_the_credential_are_a_mismatch() {
    let app = TestApp::spawn_with(|c| c.base_domain = Some("tenants.example.com".into())).await;
    let a = app.signup("acme", None).await;
    let b = app.signup("bolt", None).await;
    for headers in [
        vec![("x-tenant-id", b.tenant_id.as_str())],
        vec![("x-tenant-id", "bolt")],
        vec![("x-tenant-id", "no-such-tenant")],
        vec![("cookie", "tenant=bolt")],
        vec![("host", "bolt.tenants.example.com")],
        vec![("host", "bolt.tenants.example.com.")],
        vec![("cookie", "other=1; tenant=bolt")],
    ] {
        let r = app
            .call_h("GET", "/v1/agents", Some(&a.token), None, &headers)
            .await;
        r.assert_problem(403, "TENANT_MISMATCH");
    }
    // Sources that agree are fine.
    for headers in [
        vec![("x-tenant-id", a.tenant_id.as_str())],
        vec![("x-tenant-id", "acme")],
        vec![("cookie", "tenant=acme")],
        vec![("host", "acme.tenants.example.com")],
    ] {
        let r = app
            .call_h("GET", "/v1/agents", Some(&a.token), None, &headers)
            .await;
        assert_eq!(r.status, 200, "{headers:?}: {}", r.text);
        assert_eq!(r.header("x-tenant-id"), Some(a.tenant_id.as_str()));
    }
}

#[tokio::test]
async fn a_tenant_id_smuggled_in_a_body_or_query_is_ignored() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let b = app.signup("bolt", None).await;
    let r = app
        .call(
            "POST",
            "/v1/agents",
            Some(&a.token),
            Some(json!({"name": "x", "spec": {}, "tenant_id": b.tenant_id})),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body["tenant_id"].as_str(), Some(a.tenant_id.as_str()));
    let r = app
        .call(
            "GET",
            &format!("/v1/agents?tenant_id={}", a.tenant_id),
            Some(&b.token),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_platform_admin_crossing_is_allowed_and_audited_in_both_tenants() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    app.create(&a.token, "agents", "helper").await;
    let r = app
        .call_h(
            "GET",
            "/v1/agents",
            Some(&app.admin_token),
            None,
            &[("x-tenant-id", "acme")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.header("x-tenant-id"), Some(a.tenant_id.as_str()));
    let platform = app.state.platform.to_string();
    let inside = app.audit_of(&a.tenant_id).await;
    assert!(
        inside
            .iter()
            .any(|e| e["action"] == "platform.cross_tenant")
    );
    let home = app.audit_of(&platform).await;
    assert!(home.iter().any(
        |e| e["action"] == "platform.cross_tenant" && e["resource_id"] == a.tenant_id.as_str()
    ));
}

#[tokio::test]
async fn a_cursor_from_another_tenant_never_shows_its_rows() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", Some("starter")).await;
    let b = app.signup("bolt", None).await;
    for i in 0..4 {
        app.create(&a.token, "agents", &format!("a{i}")).await;
    }
    let page = app
        .call("GET", "/v1/agents?limit=2", Some(&a.token), None)
        .await;
    let cursor = page.body["next_cursor"].as_str().expect("a next cursor");
    let r = app
        .call(
            "GET",
            &format!("/v1/agents?cursor={cursor}"),
            Some(&b.token),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body["items"].as_array().unwrap().is_empty());
    app.call("GET", "/v1/agents?cursor=garbage!!", Some(&a.token), None)
        .await
        .assert_problem(422, "VALIDATION_FAILED");
}

#[derive(Debug, Clone)]
enum Op {
    Create(usize, u8),
    Delete(usize, usize),
    Rename(usize, usize),
    Probe(usize, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..3, 0u8..50).prop_map(|(t, n)| Op::Create(t, n)),
        (0usize..3, 0usize..100).prop_map(|(t, i)| Op::Delete(t, i)),
        (0usize..3, 0usize..100).prop_map(|(t, i)| Op::Rename(t, i)),
        (0usize..3, 0usize..100).prop_map(|(t, i)| Op::Probe(t, i)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// Random operations by three tenants, each aimed at any tenant's rows: every tenant's
    /// list is exactly its own model, foreign ids always answer 404, counters equal counts.
    #[test]
    fn random_interleavings_never_show_one_tenant_another_tenants_rows(ops in proptest::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let app = TestApp::spawn().await;
            let mut tenants = Vec::new();
            for s in ["ta-one", "tb-two", "tc-three"] {
                tenants.push(app.signup(s, Some("professional")).await);
            }
            let mut model: Vec<BTreeMap<String, String>> = vec![BTreeMap::new(); 3];
            let all_ids = |m: &Vec<BTreeMap<String, String>>| -> Vec<(usize, String)> {
                m.iter().enumerate().flat_map(|(t, ids)| ids.keys().map(move |id| (t, id.clone()))).collect()
            };
            for op in ops {
                match op {
                    Op::Create(t, n) => {
                        let name = format!("item-{n}");
                        let r = app.create(&tenants[t].token, "agents", &name).await;
                        if model[t].values().any(|v| *v == name) {
                            assert_eq!(r.status, 409, "{}", r.text);
                        } else {
                            assert_eq!(r.status, 201, "{}", r.text);
                            model[t].insert(r.body["id"].as_str().unwrap().to_owned(), name);
                        }
                    }
                    Op::Delete(t, i) | Op::Rename(t, i) | Op::Probe(t, i) => {
                        let ids = all_ids(&model);
                        if ids.is_empty() { continue; }
                        let (owner, id) = ids[i % ids.len()].clone();
                        let path = format!("/v1/agents/{id}");
                        let r = match op {
                            Op::Delete(..) => app.call("DELETE", &path, Some(&tenants[t].token), None).await,
                            Op::Rename(..) => app.call("PATCH", &path, Some(&tenants[t].token), Some(json!({"name": format!("renamed-{id}")}))).await,
                            _ => app.call("GET", &path, Some(&tenants[t].token), None).await,
                        };
                        if owner == t {
                            assert!(r.status < 300, "{}", r.text);
                            match op {
                                Op::Delete(..) => { model[t].remove(&id); }
                                Op::Rename(..) => { model[t].insert(id.clone(), format!("renamed-{id}")); }
                                _ => assert_eq!(r.body["tenant_id"].as_str(), Some(tenants[t].tenant_id.as_str())),
                            }
                        } else {
                            assert_eq!(r.status, 404, "{}", r.text);
                        }
                    }
                }
            }
            for (t, s) in tenants.iter().enumerate() {
                let r = app.call("GET", "/v1/agents?limit=200", Some(&s.token), None).await;
                let seen: BTreeMap<String, String> = r.body["items"].as_array().unwrap().iter()
                    .map(|i| (i["id"].as_str().unwrap().to_owned(), i["name"].as_str().unwrap().to_owned())).collect();
                assert_eq!(seen, model[t]);
                let owners: BTreeSet<&str> = r.body["items"].as_array().unwrap().iter().map(|i| i["tenant_id"].as_str().unwrap()).collect();
                assert!(owners.len() <= 1 && owners.iter().all(|o| *o == s.tenant_id));
                let u = app.call("GET", &format!("/v1/tenants/{}/usage", s.tenant_id), Some(&s.token), None).await;
                assert_eq!(u.body["quotas"]["agents"]["used"].as_i64(), Some(model[t].len() as i64));
            }
        });
    }
}

#[tokio::test]
async fn a_cookie_with_bad_bytes_still_counts_as_naming_its_tenant() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    app.signup("bolt", None).await;
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        "cookie",
        reqwest::header::HeaderValue::from_bytes(b"tenant=bolt; junk=\xff").unwrap(),
    );
    let r = app
        .client
        .get(format!("{}/v1/agents", app.base))
        .bearer_auth(&a.token)
        .headers(h)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

#[tokio::test]
async fn an_unknown_kind_is_a_404_before_authentication() {
    let app = TestApp::spawn().await;
    app.call("GET", "/v1/gadgets", None, None)
        .await
        .assert_problem(404, "NOT_FOUND");
    app.call("GET", "/v1/agents/not-an-id", None, None)
        .await
        .assert_problem(404, "NOT_FOUND");
    app.call("GET", "/v1/agents", None, None)
        .await
        .assert_problem(401, "UNAUTHENTICATED");
}
