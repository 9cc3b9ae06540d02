//! API keys: what they grant, who may make and revoke them, and how they die with their
//! creator's membership or role.

use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn api_keys_work_until_deleted_and_never_outrank_their_creator() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", Some("starter")).await;
    let k = app
        .call(
            "POST",
            "/v1/api-keys",
            Some(&a.token),
            Some(json!({"name": "ci", "role": "member"})),
        )
        .await;
    assert_eq!(k.status, 201, "{}", k.text);
    let key = k.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with(k.body["prefix"].as_str().unwrap()));
    assert_eq!(
        app.call("GET", "/v1/tenant", Some(&key), None).await.status,
        200
    );
    // The member key cannot manage keys or members.
    app.call(
        "POST",
        "/v1/api-keys",
        Some(&key),
        Some(json!({"name": "x", "role": "owner"})),
    )
    .await
    .assert_problem(403, "FORBIDDEN");
    let list = app.call("GET", "/v1/api-keys", Some(&a.token), None).await;
    assert!(!list.text.contains(&key));
    let id = k.body["id"].as_str().unwrap();
    assert_eq!(
        app.call(
            "DELETE",
            &format!("/v1/api-keys/{id}"),
            Some(&a.token),
            None
        )
        .await
        .status,
        204
    );
    app.call("GET", "/v1/tenant", Some(&key), None)
        .await
        .assert_problem(401, "UNAUTHENTICATED");
    // Invite an admin; an admin cannot mint owner keys.
    let admin = &app.join(&a.token, "ad@acme.test", "admin").await;
    app.call(
        "POST",
        "/v1/api-keys",
        Some(admin),
        Some(json!({"name": "x", "role": "owner"})),
    )
    .await
    .assert_problem(403, "FORBIDDEN");
    app.call(
        "POST",
        "/v1/invitations",
        Some(admin),
        Some(json!({"email": "o2@acme.test", "role": "owner"})),
    )
    .await
    .assert_problem(403, "FORBIDDEN");
    app.call(
        "PATCH",
        &format!("/v1/members/{}", a.user_id),
        Some(admin),
        Some(json!({"role": "viewer"})),
    )
    .await
    .assert_problem(403, "FORBIDDEN");
}

#[tokio::test]
async fn another_tenants_api_key_id_cannot_be_deleted() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let b = app.signup("bolt", None).await;
    let k = app
        .call(
            "POST",
            "/v1/api-keys",
            Some(&a.token),
            Some(json!({"name": "ci", "role": "viewer"})),
        )
        .await;
    let id = k.body["id"].as_str().unwrap();
    app.call(
        "DELETE",
        &format!("/v1/api-keys/{id}"),
        Some(&b.token),
        None,
    )
    .await
    .assert_problem(404, "NOT_FOUND");
    assert_eq!(
        app.call(
            "GET",
            "/v1/tenant",
            Some(k.body["key"].as_str().unwrap()),
            None
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn an_api_key_dies_with_its_creators_membership_or_role() {
    let app = TestApp::spawn().await;
    let s = app.signup("team", Some("starter")).await;
    let admin = app.join(&s.token, "ad@team.test", "admin").await;
    let admin_id = app
        .call("GET", "/v1/members", Some(&s.token), None)
        .await
        .body["items"][1]["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = app
        .call(
            "POST",
            "/v1/api-keys",
            Some(&admin),
            Some(json!({"name": "backdoor", "role": "admin"})),
        )
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // A key made with that key still answers to the same person.
    let key2 = app
        .call(
            "POST",
            "/v1/api-keys",
            Some(&key),
            Some(json!({"name": "k2", "role": "member"})),
        )
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.call("GET", "/v1/api-keys", Some(&key), None)
            .await
            .status,
        200
    );
    // Demoted below the key's role: the admin key stops; the member key still fits.
    let path = format!("/v1/members/{admin_id}");
    assert_eq!(
        app.call(
            "PATCH",
            &path,
            Some(&s.token),
            Some(json!({"role": "member"}))
        )
        .await
        .status,
        200
    );
    app.call("GET", "/v1/tenant", Some(&key), None)
        .await
        .assert_problem(401, "UNAUTHENTICATED");
    assert_eq!(
        app.call("GET", "/v1/tenant", Some(&key2), None)
            .await
            .status,
        200
    );
    // Removed: every key they made stops.
    assert_eq!(
        app.call("DELETE", &path, Some(&s.token), None).await.status,
        204
    );
    app.call("GET", "/v1/tenant", Some(&key2), None)
        .await
        .assert_problem(401, "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_removed_members_keys_stay_dead_after_a_new_invitation() {
    let app = TestApp::spawn().await;
    let s = app.signup("team", Some("starter")).await;
    let invite = |email: &'static str| {
        app.call(
            "POST",
            "/v1/invitations",
            Some(&s.token),
            Some(json!({"email": email, "role": "admin"})),
        )
    };
    let inv = invite("ad@team.test").await;
    let acc = app
        .call(
            "POST",
            "/v1/invitations/accept",
            None,
            Some(json!({"token": inv.body["token"], "name": "Ad", "password": "admin-pass-1234"})),
        )
        .await;
    let admin = acc.body["access_token"].as_str().unwrap().to_owned();
    let key = app
        .call(
            "POST",
            "/v1/api-keys",
            Some(&admin),
            Some(json!({"name": "k", "role": "admin"})),
        )
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin_id = app
        .call("GET", "/v1/members", Some(&s.token), None)
        .await
        .body["items"][1]["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.call(
            "DELETE",
            &format!("/v1/members/{admin_id}"),
            Some(&s.token),
            None
        )
        .await
        .status,
        204
    );
    let again = invite("ad@team.test").await;
    let acc = app
        .call(
            "POST",
            "/v1/invitations/accept",
            None,
            Some(json!({"token": again.body["token"], "password": "admin-pass-1234"})),
        )
        .await;
    assert_eq!(acc.status, 201, "{}", acc.text);
    app.call("GET", "/v1/tenant", Some(&key), None)
        .await
        .assert_problem(401, "UNAUTHENTICATED");
    let keys = app.call("GET", "/v1/api-keys", Some(&s.token), None).await;
    assert!(
        keys.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| !k["revoked_at"].is_null())
    );
}

#[tokio::test]
async fn a_crossing_platform_admin_cannot_mint_keys_inside_a_tenant() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let r = app
        .call_h(
            "POST",
            "/v1/api-keys",
            Some(&app.admin_token),
            Some(json!({"name": "x", "role": "owner"})),
            &[("x-tenant-id", a.tenant_id.as_str())],
        )
        .await;
    r.assert_problem(403, "FORBIDDEN");
}
