//! Tenants: signup rules, lifecycle, suspension, deletion.

use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn signup_checks_slugs_and_refuses_duplicates() {
    let app = TestApp::spawn().await;
    app.signup("acme", None).await;
    let dup = app.call("POST", "/v1/auth/signup", None, Some(json!({"email": "other@x.test", "password": "password-123", "name": "O", "tenant": {"name": "A", "slug": "acme"}}))).await;
    dup.assert_problem(409, "CONFLICT");
    for slug in ["Bad Slug!", "ab", "admin", "-x-", "a".repeat(64).as_str()] {
        let r = app.call("POST", "/v1/auth/signup", None, Some(json!({"email": "s@x.test", "password": "password-123", "name": "S", "tenant": {"name": "S", "slug": slug}}))).await;
        r.assert_problem(422, "VALIDATION_FAILED");
        assert!(
            r.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == "tenant.slug"),
            "{}",
            r.text
        );
    }
    let r = app.call("POST", "/v1/auth/signup", None, Some(json!({"email": "nope", "password": "short", "name": "", "tenant": {"name": "S", "slug": "fine-slug"}}))).await;
    r.assert_problem(422, "VALIDATION_FAILED");
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["email", "password", "name"]);
    let r = app.call("POST", "/v1/auth/signup", None, Some(json!({"email": "e@x.test", "password": "password-123", "name": "E", "tenant": {"name": "E", "slug": "ent-co", "plan": "enterprise"}}))).await;
    r.assert_problem(422, "VALIDATION_FAILED");
}

#[tokio::test]
async fn signup_can_be_switched_off() {
    let app = TestApp::spawn_with(|c| c.signup = false).await;
    let r = app.call("POST", "/v1/auth/signup", None, Some(json!({"email": "s@x.test", "password": "password-123", "name": "S", "tenant": {"name": "S", "slug": "some-co"}}))).await;
    r.assert_problem(403, "FORBIDDEN");
}

#[tokio::test]
async fn a_suspended_tenant_is_refused_and_reactivation_restores_it_with_its_data() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let b = app.signup("bolt", None).await;
    let made = app.create(&a.token, "agents", "helper").await;
    let id = made.body["id"].as_str().unwrap();
    let key = app
        .call(
            "POST",
            "/v1/api-keys",
            Some(&a.token),
            Some(json!({"name": "k", "role": "viewer"})),
        )
        .await
        .body["key"]
        .as_str()
        .unwrap()
        .to_owned();
    app.call(
        "POST",
        &format!("/v1/tenants/{}/suspend", b.tenant_id),
        Some(&a.token),
        Some(json!({"reason": "x"})),
    )
    .await
    .assert_problem(403, "FORBIDDEN");
    let s = app
        .call(
            "POST",
            &format!("/v1/tenants/{}/suspend", a.tenant_id),
            Some(&app.admin_token),
            Some(json!({"reason": "unpaid"})),
        )
        .await;
    assert_eq!(
        (s.status, s.body["status"].as_str()),
        (200, Some("suspended"))
    );
    app.call("GET", "/v1/agents", Some(&a.token), None)
        .await
        .assert_problem(403, "TENANT_SUSPENDED");
    app.call("GET", "/v1/agents", Some(&key), None)
        .await
        .assert_problem(403, "TENANT_SUSPENDED");
    app.call(
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"email": a.email, "password": a.password})),
    )
    .await
    .assert_problem(403, "TENANT_SUSPENDED");
    app.call(
        "POST",
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": a.refresh})),
    )
    .await
    .assert_problem(403, "TENANT_SUSPENDED");
    assert_eq!(
        app.call("GET", "/v1/agents", Some(&b.token), None)
            .await
            .status,
        200
    );
    let r = app
        .call(
            "POST",
            &format!("/v1/tenants/{}/reactivate", a.tenant_id),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(r.body["status"].as_str(), Some("active"));
    let again = app
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"email": a.email, "password": a.password})),
        )
        .await;
    assert_eq!(again.status, 200);
    let t = again.body["access_token"].as_str().unwrap();
    assert_eq!(
        app.call("GET", &format!("/v1/agents/{id}"), Some(t), None)
            .await
            .body["name"],
        "helper"
    );
    let events = app.audit_of(&a.tenant_id).await;
    for action in ["tenant.suspend", "tenant.reactivate"] {
        assert!(events.iter().any(|e| e["action"] == action), "{action}");
    }
}

#[tokio::test]
async fn a_deleted_tenant_answers_410_and_shows_its_purge_date() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let b = app.signup("bolt", None).await;
    app.call(
        "DELETE",
        &format!("/v1/tenants/{}", b.tenant_id),
        Some(&a.token),
        None,
    )
    .await
    .assert_problem(404, "NOT_FOUND");
    let r = app
        .call(
            "DELETE",
            &format!("/v1/tenants/{}", a.tenant_id),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (202, Some("deleted"))
    );
    assert!(r.body["purge_after"].is_string());
    app.call("GET", "/v1/agents", Some(&a.token), None)
        .await
        .assert_problem(410, "TENANT_DELETED");
}

#[tokio::test]
async fn platform_admins_create_and_list_tenants_and_members_see_only_their_own() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let r = app.call("POST", "/v1/tenants", Some(&app.admin_token), Some(json!({"name": "Corp", "slug": "corp", "plan": "professional", "owner_email": "boss@corp.test"}))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let token = r.body["owner_invitation"]["token"].as_str().unwrap();
    let acc = app
        .call(
            "POST",
            "/v1/invitations/accept",
            None,
            Some(json!({"token": token, "name": "Boss", "password": "boss-pass-1234"})),
        )
        .await;
    assert_eq!(acc.status, 201);
    let boss = acc.body["access_token"].as_str().unwrap();
    assert_eq!(
        app.call("GET", "/v1/members", Some(boss), None).await.body["items"][0]["role"],
        "owner"
    );
    app.call(
        "POST",
        "/v1/tenants",
        Some(&a.token),
        Some(json!({"name": "X", "slug": "xcorp", "plan": "free", "owner_email": "x@x.test"})),
    )
    .await
    .assert_problem(403, "FORBIDDEN");
    app.call("GET", "/v1/tenants", Some(&a.token), None)
        .await
        .assert_problem(403, "FORBIDDEN");
    app.call("GET", "/v1/tenants/corp", Some(&a.token), None)
        .await
        .assert_problem(404, "NOT_FOUND");
    assert_eq!(
        app.call("GET", "/v1/tenants/acme", Some(&a.token), None)
            .await
            .status,
        200
    );
    let all = app
        .call("GET", "/v1/tenants?limit=2", Some(&app.admin_token), None)
        .await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 2);
    assert!(all.body["next_cursor"].is_string());
    // A region no cell serves is refused, never placed elsewhere; one a cell serves lands there.
    let r = app.call("POST", "/v1/tenants", Some(&app.admin_token), Some(json!({"name": "Ap", "slug": "ap-co", "plan": "free", "owner_email": "e@ap.test", "region": "ap"}))).await;
    r.assert_problem(422, "VALIDATION_FAILED");
    let r = app.call("POST", "/v1/tenants", Some(&app.admin_token), Some(json!({"name": "Eu", "slug": "eu-co", "plan": "free", "owner_email": "e@eu.test", "region": "eu"}))).await;
    if app.pg.is_some() {
        // The PostgreSQL suite runs a catalog and two cells: `local` (us) and `eu-1` (eu).
        assert_eq!(
            (r.status, r.body["cell"].as_str(), r.body["region"].as_str()),
            (201, Some("eu-1"), Some("eu")),
            "{}",
            r.text
        );
    } else {
        r.assert_problem(422, "VALIDATION_FAILED");
    }
}

#[tokio::test]
async fn tenant_settings_merge_and_branding_is_kept() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let path = format!("/v1/tenants/{}", a.tenant_id);
    let r = app.call("PATCH", &path, Some(&a.token), Some(json!({"settings": {"default_model": "small", "x": 1}, "branding": {"color": "#123456"}}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = app
        .call(
            "PATCH",
            &path,
            Some(&a.token),
            Some(json!({"name": "Acme Inc", "settings": {"x": null}})),
        )
        .await;
    assert_eq!(r.body["settings"], json!({"default_model": "small"}));
    assert_eq!(r.body["branding"], json!({"color": "#123456"}));
    assert_eq!(r.body["name"], "Acme Inc");
    app.call(
        "PATCH",
        &path,
        Some(&a.token),
        Some(json!({"settings": "nope"})),
    )
    .await
    .assert_problem(422, "VALIDATION_FAILED");
}

#[tokio::test]
async fn the_last_owner_cannot_leave_or_be_demoted() {
    let app = TestApp::spawn().await;
    let s = app.signup("team", Some("starter")).await;
    let path = format!("/v1/members/{}", s.user_id);
    app.call(
        "PATCH",
        &path,
        Some(&s.token),
        Some(json!({"role": "admin"})),
    )
    .await
    .assert_problem(409, "CONFLICT");
    app.call("DELETE", &path, Some(&s.token), None)
        .await
        .assert_problem(409, "CONFLICT");
    let member = &app.join(&s.token, "m@team.test", "member").await;
    app.call("DELETE", &path, Some(member), None)
        .await
        .assert_problem(403, "FORBIDDEN");
    // A removed member's token stops working at once.
    let member_id = app
        .call("GET", "/v1/members", Some(&s.token), None)
        .await
        .body["items"][1]["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.call(
            "DELETE",
            &format!("/v1/members/{member_id}"),
            Some(&s.token),
            None
        )
        .await
        .status,
        204
    );
    app.call("GET", "/v1/tenant", Some(member), None)
        .await
        .assert_problem(401, "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_refresh_refused_during_suspension_works_after_reactivation() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    app.call(
        "POST",
        &format!("/v1/tenants/{}/suspend", a.tenant_id),
        Some(&app.admin_token),
        Some(json!({"reason": "x"})),
    )
    .await;
    app.call(
        "POST",
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": a.refresh})),
    )
    .await
    .assert_problem(403, "TENANT_SUSPENDED");
    app.call(
        "POST",
        &format!("/v1/tenants/{}/reactivate", a.tenant_id),
        Some(&app.admin_token),
        None,
    )
    .await;
    assert_eq!(
        app.call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": a.refresh}))
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn a_deleted_tenant_cannot_be_changed() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    app.call(
        "DELETE",
        &format!("/v1/tenants/{}", a.tenant_id),
        Some(&app.admin_token),
        None,
    )
    .await;
    let path = format!("/v1/tenants/{}", a.tenant_id);
    app.call(
        "PATCH",
        &path,
        Some(&app.admin_token),
        Some(json!({"name": "zzz"})),
    )
    .await
    .assert_problem(410, "TENANT_DELETED");
    app.call(
        "PUT",
        &format!("{path}/plan"),
        Some(&app.admin_token),
        Some(json!({"plan": "starter"})),
    )
    .await
    .assert_problem(410, "TENANT_DELETED");
    app.call(
        "POST",
        &format!("{path}/suspend"),
        Some(&app.admin_token),
        Some(json!({})),
    )
    .await
    .assert_problem(410, "TENANT_DELETED");
}

#[tokio::test]
async fn platform_and_tenant_admin_denials_are_audited_like_every_permission_check() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", Some("starter")).await;
    let viewer = app.join(&a.token, "viewer@acme.test", "viewer").await;
    let r = app
        .call(
            "POST",
            "/v1/tenants",
            Some(&a.token),
            Some(json!({"name": "X", "slug": "xco", "plan": "free", "owner_email": "x@x.test"})),
        )
        .await;
    r.assert_problem(403, "FORBIDDEN");
    app.call(
        "POST",
        &format!("/v1/tenants/{}/suspend", a.tenant_id),
        Some(&a.token),
        Some(json!({"reason": "self"})),
    )
    .await
    .assert_problem(403, "FORBIDDEN");
    app.call(
        "PATCH",
        &format!("/v1/tenants/{}", a.tenant_id),
        Some(&viewer),
        Some(json!({"name": "Renamed"})),
    )
    .await
    .assert_problem(403, "FORBIDDEN");
    app.call(
        "DELETE",
        &format!("/v1/tenants/{}", a.tenant_id),
        Some(&viewer),
        None,
    )
    .await
    .assert_problem(403, "FORBIDDEN");
    let denials: Vec<String> = app
        .audit_of(&a.tenant_id)
        .await
        .into_iter()
        .filter(|e| e["action"] == "permission.denied")
        .map(|e| e["details"]["permission"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        denials.iter().filter(|p| *p == "platform:admin").count(),
        2,
        "{denials:?}"
    );
    assert!(denials.contains(&"tenant:write".to_owned()), "{denials:?}");
    assert!(denials.contains(&"tenant:delete".to_owned()), "{denials:?}");
}
