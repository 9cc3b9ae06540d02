//! Quotas: exact under concurrency, counted in the change's transaction.

use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn quota_admits_exactly_the_limit_under_concurrency() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let calls = (0..24).map(|i| {
        app.call(
            "POST",
            "/v1/projects",
            Some(&a.token),
            Some(json!({"name": format!("p{i}"), "spec": {}})),
        )
    });
    let results = futures::future::join_all(calls).await;
    let made = results.iter().filter(|r| r.status == 201).count();
    assert_eq!(made, 3);
    for r in results.iter().filter(|r| r.status != 201) {
        r.assert_problem(403, "QUOTA_EXCEEDED");
        assert_eq!(
            (
                r.body["resource"].as_str(),
                r.body["current"].as_i64(),
                r.body["limit"].as_i64(),
                r.body["requested"].as_i64()
            ),
            (Some("projects"), Some(3), Some(3), Some(1))
        );
    }
    let u = app
        .call(
            "GET",
            &format!("/v1/tenants/{}/usage", a.tenant_id),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(u.body["quotas"]["projects"], json!({"used": 3, "limit": 3}));
    // Deleting one frees its slot.
    let list = app.call("GET", "/v1/projects", Some(&a.token), None).await;
    let id = list.body["items"][0]["id"].as_str().unwrap();
    assert_eq!(
        app.call(
            "DELETE",
            &format!("/v1/projects/{id}"),
            Some(&a.token),
            None
        )
        .await
        .status,
        204
    );
    assert_eq!(
        app.call(
            "POST",
            "/v1/projects",
            Some(&a.token),
            Some(json!({"name": "again", "spec": {}}))
        )
        .await
        .status,
        201
    );
}

#[tokio::test]
async fn users_count_members_and_pending_invitations() {
    let app = TestApp::spawn().await;
    let free = app.signup("freebie", None).await;
    let r = app
        .call(
            "POST",
            "/v1/invitations",
            Some(&free.token),
            Some(json!({"email": "f@x.test", "role": "member"})),
        )
        .await;
    r.assert_problem(403, "QUOTA_EXCEEDED");
    assert_eq!(
        (r.body["resource"].as_str(), r.body["limit"].as_i64()),
        (Some("users"), Some(1))
    );

    let s = app.signup("team", Some("starter")).await;
    let calls = (0..10).map(|i| {
        app.call(
            "POST",
            "/v1/invitations",
            Some(&s.token),
            Some(json!({"email": format!("m{i}@team.test"), "role": "member"})),
        )
    });
    let results = futures::future::join_all(calls).await;
    assert_eq!(
        results.iter().filter(|r| r.status == 201).count(),
        4,
        "starter: 5 users = owner + 4 invitations"
    );
    let u = app
        .call(
            "GET",
            &format!("/v1/tenants/{}/usage", s.tenant_id),
            Some(&s.token),
            None,
        )
        .await;
    assert_eq!(u.body["quotas"]["users"], json!({"used": 5, "limit": 5}));
    // Revoking one frees a slot; accepting one keeps the count.
    let made: Vec<_> = results.iter().filter(|r| r.status == 201).collect();
    let id = made[0].body["id"].as_str().unwrap();
    assert_eq!(
        app.call(
            "DELETE",
            &format!("/v1/invitations/{id}"),
            Some(&s.token),
            None
        )
        .await
        .status,
        204
    );
    let acc = app
        .call(
            "POST",
            "/v1/invitations/accept",
            None,
            Some(json!({"token": made[1].body["token"], "name": "M", "password": "member-pass-1"})),
        )
        .await;
    assert_eq!(acc.status, 201, "{}", acc.text);
    let u = app
        .call(
            "GET",
            &format!("/v1/tenants/{}/usage", s.tenant_id),
            Some(&s.token),
            None,
        )
        .await;
    assert_eq!(u.body["quotas"]["users"]["used"], 4);
}

#[tokio::test]
async fn an_invitation_token_is_single_use_even_under_a_race() {
    let app = TestApp::spawn().await;
    let s = app.signup("team", Some("starter")).await;
    let inv = app
        .call(
            "POST",
            "/v1/invitations",
            Some(&s.token),
            Some(json!({"email": "m@team.test", "role": "viewer"})),
        )
        .await;
    let token = inv.body["token"].clone();
    let calls = (0..6).map(|_| {
        app.call(
            "POST",
            "/v1/invitations/accept",
            None,
            Some(json!({"token": token, "name": "M", "password": "member-pass-1"})),
        )
    });
    let results = futures::future::join_all(calls).await;
    assert_eq!(results.iter().filter(|r| r.status == 201).count(), 1);
    assert!(
        results.iter().all(|r| matches!(r.status, 201 | 404 | 409)),
        "{results:?}"
    );
    let members = app.call("GET", "/v1/members", Some(&s.token), None).await;
    assert_eq!(members.body["items"].as_array().unwrap().len(), 2);
    app.call(
        "POST",
        "/v1/invitations/accept",
        None,
        Some(json!({"token": "inv_forged"})),
    )
    .await
    .assert_problem(404, "NOT_FOUND");
}

#[tokio::test]
async fn a_downgrade_below_usage_is_refused_unless_forced() {
    let app = TestApp::spawn().await;
    let s = app.signup("team", Some("starter")).await;
    for i in 0..5 {
        assert_eq!(
            app.create(&s.token, "projects", &format!("p{i}"))
                .await
                .status,
            201
        );
    }
    let path = format!("/v1/tenants/{}/plan", s.tenant_id);
    app.call(
        "PUT",
        &path,
        Some(&s.token),
        Some(json!({"plan": "enterprise"})),
    )
    .await
    .assert_problem(403, "FORBIDDEN");
    let r = app
        .call(
            "PUT",
            &path,
            Some(&app.admin_token),
            Some(json!({"plan": "free"})),
        )
        .await;
    r.assert_problem(403, "QUOTA_EXCEEDED");
    let r = app
        .call(
            "PUT",
            &path,
            Some(&app.admin_token),
            Some(json!({"plan": "free", "force": true})),
        )
        .await;
    assert_eq!((r.status, r.body["plan"].as_str()), (200, Some("free")));
    app.create(&s.token, "projects", "one-more")
        .await
        .assert_problem(403, "QUOTA_EXCEEDED");
}
