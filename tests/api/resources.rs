//! Tenant-owned resources: CRUD, ETags, pagination, sharing.

use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn every_kind_supports_create_read_update_delete() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", Some("starter")).await;
    for kind in [
        "agents",
        "tools",
        "prompts",
        "workflows",
        "knowledge-sources",
        "projects",
        "memories",
    ] {
        let r = app.create(&a.token, kind, "first").await;
        assert_eq!(r.status, 201, "{kind}: {}", r.text);
        assert_eq!(r.header("etag"), Some("\"1\""));
        assert_eq!(r.body["kind"], kind);
        let id = r.body["id"].as_str().unwrap();
        let p = app
            .call(
                "PATCH",
                &format!("/v1/{kind}/{id}"),
                Some(&a.token),
                Some(json!({"spec": {"v": 2}})),
            )
            .await;
        assert_eq!(
            (p.status, p.body["version"].as_i64(), p.body["spec"].clone()),
            (200, Some(2), json!({"v": 2}))
        );
        app.create(&a.token, kind, "first")
            .await
            .assert_problem(409, "CONFLICT");
        assert_eq!(
            app.call("DELETE", &format!("/v1/{kind}/{id}"), Some(&a.token), None)
                .await
                .status,
            204
        );
        app.call("GET", &format!("/v1/{kind}/{id}"), Some(&a.token), None)
            .await
            .assert_problem(404, "NOT_FOUND");
    }
}

#[tokio::test]
async fn if_match_guards_against_lost_updates() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let r = app.create(&a.token, "agents", "a").await;
    let id = r.body["id"].as_str().unwrap();
    let path = format!("/v1/agents/{id}");
    let ok = app
        .call_h(
            "PATCH",
            &path,
            Some(&a.token),
            Some(json!({"name": "b"})),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!((ok.status, ok.header("etag")), (200, Some("\"2\"")));
    app.call_h(
        "PATCH",
        &path,
        Some(&a.token),
        Some(json!({"name": "c"})),
        &[("if-match", "\"1\"")],
    )
    .await
    .assert_problem(412, "PRECONDITION_FAILED");
    assert_eq!(
        app.call("GET", &path, Some(&a.token), None).await.body["name"],
        "b"
    );
}

#[tokio::test]
async fn lists_paginate_and_filter_by_name() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    for i in 0..7 {
        app.create(&a.token, "agents", &format!("agent-{i}")).await;
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let r = app
            .call(
                "GET",
                &format!("/v1/agents?limit=3&cursor={cursor}"),
                Some(&a.token),
                None,
            )
            .await;
        seen.extend(
            r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["name"].as_str().unwrap().to_owned()),
        );
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..7).map(|i| format!("agent-{i}")).collect::<Vec<_>>()
    );
    let f = app
        .call("GET", "/v1/agents?name=agent-3", Some(&a.token), None)
        .await;
    assert_eq!(f.body["items"].as_array().unwrap().len(), 1);
    app.call("GET", "/v1/agents?limit=0", Some(&a.token), None)
        .await
        .assert_problem(422, "VALIDATION_FAILED");
    app.call("GET", "/v1/agents?limit=abc", Some(&a.token), None)
        .await
        .assert_problem(422, "VALIDATION_FAILED");
    app.call("GET", "/v1/agents?shared=sometimes", Some(&a.token), None)
        .await
        .assert_problem(422, "VALIDATION_FAILED");
}

#[tokio::test]
async fn viewers_read_and_cannot_write() {
    let app = TestApp::spawn().await;
    let s = app.signup("team", Some("starter")).await;
    app.create(&s.token, "agents", "a").await;
    let v = &app.join(&s.token, "v@team.test", "viewer").await;
    assert_eq!(
        app.call("GET", "/v1/agents", Some(v), None).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    app.create(v, "agents", "b")
        .await
        .assert_problem(403, "FORBIDDEN");
    let events = app.audit_of(&s.tenant_id).await;
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "permission.denied" && e["outcome"] == "denied")
    );
}

#[tokio::test]
async fn global_items_of_the_platform_are_read_only_for_everyone_else() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let g = app
        .call(
            "POST",
            "/v1/tools",
            Some(&app.admin_token),
            Some(json!({"name": "web-search", "spec": {}, "sharing": {"mode": "global"}})),
        )
        .await;
    assert_eq!(g.status, 201, "{}", g.text);
    let id = g.body["id"].as_str().unwrap();
    let list = app.call("GET", "/v1/tools", Some(&a.token), None).await;
    assert_eq!(list.body["items"][0]["id"], id);
    assert_eq!(
        app.call("GET", "/v1/tools?shared=exclude", Some(&a.token), None)
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        app.call("GET", "/v1/tools?shared=only", Some(&a.token), None)
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        app.call("GET", &format!("/v1/tools/{id}"), Some(&a.token), None)
            .await
            .status,
        200
    );
    app.call(
        "PATCH",
        &format!("/v1/tools/{id}"),
        Some(&a.token),
        Some(json!({"name": "mine"})),
    )
    .await
    .assert_problem(403, "FORBIDDEN");
    app.call("DELETE", &format!("/v1/tools/{id}"), Some(&a.token), None)
        .await
        .assert_problem(403, "FORBIDDEN");
    app.call(
        "POST",
        "/v1/tools",
        Some(&a.token),
        Some(json!({"name": "x", "spec": {}, "sharing": {"mode": "global"}})),
    )
    .await
    .assert_problem(403, "FORBIDDEN");
    // Unsharing takes effect at once.
    app.call(
        "PATCH",
        &format!("/v1/tools/{id}"),
        Some(&app.admin_token),
        Some(json!({"sharing": {"mode": "private"}})),
    )
    .await;
    app.call("GET", &format!("/v1/tools/{id}"), Some(&a.token), None)
        .await
        .assert_problem(404, "NOT_FOUND");
}

#[tokio::test]
async fn selective_sharing_needs_the_feature_and_reaches_only_the_listed_tenants() {
    let app = TestApp::spawn().await;
    let p = app.signup("pro", Some("professional")).await;
    let f = app.signup("free", None).await;
    let b = app.signup("bolt", None).await;
    let r = app.call("POST", "/v1/prompts", Some(&f.token), Some(json!({"name": "x", "spec": {}, "sharing": {"mode": "selective", "tenants": [p.tenant_id]}}))).await;
    r.assert_problem(403, "FEATURE_NOT_IN_PLAN");
    let s = app.call("POST", "/v1/prompts", Some(&p.token), Some(json!({"name": "shared", "spec": {}, "sharing": {"mode": "selective", "tenants": [f.tenant_id]}}))).await;
    assert_eq!(s.status, 201, "{}", s.text);
    let id = s.body["id"].as_str().unwrap();
    let seen = app
        .call("GET", &format!("/v1/prompts/{id}"), Some(&f.token), None)
        .await;
    assert_eq!(seen.status, 200);
    assert!(
        seen.body["sharing"].get("tenants").is_none(),
        "the share list is the owner's business"
    );
    app.call("GET", &format!("/v1/prompts/{id}"), Some(&b.token), None)
        .await
        .assert_problem(404, "NOT_FOUND");
    app.call(
        "PATCH",
        &format!("/v1/prompts/{id}"),
        Some(&f.token),
        Some(json!({"spec": {"x": 1}})),
    )
    .await
    .assert_problem(403, "FORBIDDEN");
}

/// The embedded default has one cell; give it a second (eu) on SQLite. The PostgreSQL suite
/// already runs `local` (us) and `eu-1` (eu).
fn two_cells(c: &mut tenantd_server::config::Config) {
    use tenantd_server::config::{CellConfig, DbLocation};
    if matches!(c.catalog, DbLocation::Sqlite(_)) {
        c.cells.push(CellConfig {
            name: "eu-1".into(),
            region: Some("eu".into()),
            dedicated: false,
            location: DbLocation::Sqlite(c.data_dir.join("cells").join("eu-1.db")),
            blobs: None,
        });
    }
}

#[tokio::test]
async fn global_items_reach_tenants_in_every_cell_and_selective_shares_stay_in_one() {
    let app = TestApp::spawn_with(two_cells).await;
    // A tenant whose data lives in the eu cell; the platform's lives in the first cell.
    let made = app.call("POST", "/v1/tenants", Some(&app.admin_token), Some(json!({"name": "Eu", "slug": "eu-co", "plan": "professional", "owner_email": "o@eu.test", "region": "eu"}))).await;
    assert_eq!(
        (made.status, made.body["cell"].as_str()),
        (201, Some("eu-1")),
        "{}",
        made.text
    );
    let eu_id = made.body["id"].as_str().unwrap().to_owned();
    let acc = app.call("POST", "/v1/invitations/accept", None, Some(json!({"token": made.body["owner_invitation"]["token"], "name": "O", "password": "eu-owner-pass-1"}))).await;
    assert_eq!(acc.status, 201, "{}", acc.text);
    let eu = acc.body["access_token"].as_str().unwrap().to_owned();
    let tool = |token: &str, name: &str, sharing: serde_json::Value| {
        let (app, token, name) = (&app, token.to_owned(), name.to_owned());
        async move {
            let r = app
                .call(
                    "POST",
                    "/v1/tools",
                    Some(&token),
                    Some(json!({"name": name, "spec": {}, "sharing": sharing})),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
            r.body["id"].as_str().unwrap().to_owned()
        }
    };
    let own1 = tool(&eu, "own-1", json!({"mode": "private"})).await;
    let global = tool(&app.admin_token, "web-search", json!({"mode": "global"})).await;
    let own2 = tool(&eu, "own-2", json!({"mode": "private"})).await;
    let ids = |path: &str| {
        let (app, eu, path) = (&app, eu.clone(), path.to_owned());
        async move {
            let r = app.call("GET", &path, Some(&eu), None).await;
            assert_eq!(r.status, 200, "{}", r.text);
            let items: Vec<String> = r.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned())
                .collect();
            (items, r.body["next_cursor"].as_str().map(str::to_owned))
        }
    };
    // Own and global items, merged in id order across the two cells, paginated.
    assert_eq!(
        ids("/v1/tools").await.0,
        [own1.clone(), global.clone(), own2.clone()]
    );
    let (page1, cursor) = ids("/v1/tools?limit=2").await;
    assert_eq!(page1, [own1.clone(), global.clone()]);
    let (page2, end) = ids(&format!("/v1/tools?limit=2&cursor={}", cursor.unwrap())).await;
    assert_eq!((page2, end), (vec![own2.clone()], None));
    assert_eq!(
        ids("/v1/tools?shared=exclude").await.0,
        [own1.clone(), own2.clone()]
    );
    assert_eq!(
        ids("/v1/tools?shared=only").await.0,
        std::slice::from_ref(&global)
    );
    // Readable, read-only.
    assert_eq!(
        app.call("GET", &format!("/v1/tools/{global}"), Some(&eu), None)
            .await
            .status,
        200
    );
    app.call(
        "PATCH",
        &format!("/v1/tools/{global}"),
        Some(&eu),
        Some(json!({"name": "mine"})),
    )
    .await
    .assert_problem(403, "FORBIDDEN");
    app.call("DELETE", &format!("/v1/tools/{global}"), Some(&eu), None)
        .await
        .assert_problem(403, "FORBIDDEN");
    // Unsharing takes effect at once, in every cell.
    let r = app
        .call(
            "PATCH",
            &format!("/v1/tools/{global}"),
            Some(&app.admin_token),
            Some(json!({"sharing": {"mode": "private"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    app.call("GET", &format!("/v1/tools/{global}"), Some(&eu), None)
        .await
        .assert_problem(404, "NOT_FOUND");
    app.call("DELETE", &format!("/v1/tools/{global}"), Some(&eu), None)
        .await
        .assert_problem(404, "NOT_FOUND");
    assert_eq!(ids("/v1/tools").await.0, [own1, own2]);
    // A selective share would be stored where the eu tenant never reads: refused, said why.
    let us = app.signup("us-co", Some("professional")).await;
    let r = app.call("POST", "/v1/prompts", Some(&us.token), Some(json!({"name": "p", "spec": {}, "sharing": {"mode": "selective", "tenants": [eu_id]}}))).await;
    r.assert_problem(422, "VALIDATION_FAILED");
    assert!(r.text.contains("another storage cell"), "{}", r.text);
}
