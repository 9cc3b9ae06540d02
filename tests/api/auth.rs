//! Credentials: forged, tampered, spent, revoked, rotated.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::helpers::TestApp;

fn b64(v: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn forged_and_malformed_tokens_are_401() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let parts: Vec<&str> = a.token.split('.').collect();
    let payload: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[0] ^= 1;
    let mut elevated = payload.clone();
    elevated["role"] = json!("owner");
    elevated["tid"] = json!(app.state.platform.to_string());
    let mut expired = payload.clone();
    expired["exp"] = json!(1_000_000);
    let jwks = app.call("GET", "/.well-known/jwks.json", None, None).await;
    let x = jwks.body["keys"][0]["x"].as_str().unwrap().to_owned();
    // HS256 keyed with the public key (the classic algorithm-confusion forgery).
    let hs = {
        use sha2::Digest;
        let h = json!({"alg": "HS256", "typ": "JWT", "kid": header["kid"]});
        let input = format!("{}.{}", b64(&h), parts[1]);
        let key = URL_SAFE_NO_PAD.decode(&x).unwrap();
        // HMAC-SHA256 by hand (RFC 2104), to avoid an extra dev-dependency.
        let mut k = [0u8; 64];
        k[..key.len()].copy_from_slice(&key);
        let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).chain(input.bytes()).collect();
        let inner = sha2::Sha256::digest(&ipad);
        let opad: Vec<u8> = k
            .iter()
            .map(|b| b ^ 0x5c)
            .chain(inner.iter().copied())
            .collect();
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&opad))
        )
    };
    let forged = [
        format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig)),
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            parts[1]
        ),
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "kid": header["kid"]})),
            parts[1]
        ),
        format!("{}.{}.{}", parts[0], b64(&elevated), parts[2]),
        format!("{}.{}.{}", parts[0], b64(&expired), parts[2]),
        format!(
            "{}.{}.{}",
            b64(&json!({"alg": "EdDSA", "kid": "nope"})),
            parts[1],
            parts[2]
        ),
        hs,
        "not.a.jwt".into(),
        "".into(),
        "tdk_AAAAAAAA_forged".into(),
        "x".repeat(10_000),
    ];
    for t in forged {
        let r = app
            .call_h(
                "GET",
                "/v1/tenant",
                None,
                None,
                &[("authorization", &format!("Bearer {t}"))],
            )
            .await;
        r.assert_problem(401, "UNAUTHENTICATED");
    }
    for h in ["Basic abc", "Bearer", "bearer  ", "Token abc"] {
        app.call_h("GET", "/v1/tenant", None, None, &[("authorization", h)])
            .await
            .assert_problem(401, "UNAUTHENTICATED");
    }
    assert_eq!(
        app.call("GET", "/v1/tenant", Some(&a.token), None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn a_spent_refresh_token_is_refused_and_revokes_its_family() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let r1 = app
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": a.refresh})),
        )
        .await;
    assert_eq!(r1.status, 200, "{}", r1.text);
    let next = r1.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, a.refresh);
    app.call(
        "POST",
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": a.refresh})),
    )
    .await
    .assert_problem(401, "UNAUTHENTICATED");
    app.call(
        "POST",
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": next})),
    )
    .await
    .assert_problem(401, "UNAUTHENTICATED");
    let events = app.audit_of(&a.tenant_id).await;
    assert!(events.iter().any(|e| e["action"] == "auth.refresh_reuse"));
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_rotate_at_most_once() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let calls = (0..8).map(|_| {
        app.call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": a.refresh})),
        )
    });
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().filter(|r| r.status == 200).count() <= 1);
    assert!(results.iter().all(|r| r.status == 200 || r.status == 401));
}

#[tokio::test]
async fn logout_ends_the_session_and_its_access_token() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    assert_eq!(
        app.call("POST", "/v1/auth/logout", Some(&a.token), None)
            .await
            .status,
        204
    );
    app.call("GET", "/v1/tenant", Some(&a.token), None)
        .await
        .assert_problem(401, "UNAUTHENTICATED");
    app.call(
        "POST",
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": a.refresh})),
    )
    .await
    .assert_problem(401, "UNAUTHENTICATED");
}

#[tokio::test]
async fn tokens_signed_before_a_key_rotation_keep_verifying() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let old_kid = app
        .call("GET", "/.well-known/jwks.json", None, None)
        .await
        .body["keys"][0]["kid"]
        .clone();
    app.state
        .keys
        .rotate(app.state.catalog.as_ref())
        .await
        .unwrap();
    app.state
        .keys
        .reload(app.state.catalog.as_ref())
        .await
        .unwrap();
    assert_eq!(
        app.call("GET", "/v1/tenant", Some(&a.token), None)
            .await
            .status,
        200
    );
    let login = app
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"email": a.email, "password": a.password})),
        )
        .await;
    let t = login.body["access_token"].as_str().unwrap();
    let hdr: serde_json::Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(t.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_ne!(hdr["kid"], old_kid);
    assert_eq!(
        app.call("GET", "/.well-known/jwks.json", None, None)
            .await
            .body["keys"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn failed_logins_are_audited_and_answer_like_unknown_users() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let wrong = app
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"email": a.email, "password": "wrong-password"})),
        )
        .await;
    let unknown = app
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"email": "ghost@x.test", "password": "wrong-password"})),
        )
        .await;
    wrong.assert_problem(401, "UNAUTHENTICATED");
    unknown.assert_problem(401, "UNAUTHENTICATED");
    assert_eq!(wrong.body["detail"], unknown.body["detail"]);
    let events = app.audit_of(&a.tenant_id).await;
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "auth.login" && e["outcome"] == "failure")
    );
}

#[tokio::test]
async fn refresh_reuse_kills_the_access_tokens_minted_from_the_stolen_token() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    // The thief refreshes first with a copy of the token.
    let stolen = app
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": a.refresh})),
        )
        .await;
    let thief = stolen.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.call("GET", "/v1/tenant", Some(&thief), None)
            .await
            .status,
        200
    );
    // The owner presents the same token: reuse. The thief's access token dies at once; the
    // owner's own, older access token (minted before the theft) keeps working.
    app.call(
        "POST",
        "/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": a.refresh})),
    )
    .await
    .assert_problem(401, "UNAUTHENTICATED");
    app.call("GET", "/v1/tenant", Some(&thief), None)
        .await
        .assert_problem(401, "UNAUTHENTICATED");
    assert_eq!(
        app.call("GET", "/v1/tenant", Some(&a.token), None)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn password_guessing_is_throttled_per_account() {
    let app = TestApp::spawn_with(|c| c.auth_rate_per_account = 5).await;
    let a = app.signup("acme", None).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            app.call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"email": a.email, "password": "guess-guess"})),
            )
            .await,
        );
    }
    assert!(statuses[..5].iter().all(|r| r.status == 401));
    let last = statuses.last().unwrap();
    last.assert_problem(429, "RATE_LIMITED");
    assert!(last.header("retry-after").is_some());
    // Another account is not held back by it.
    app.call(
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"email": "other@x.test", "password": "guess-guess"})),
    )
    .await
    .assert_problem(401, "UNAUTHENTICATED");
}

#[tokio::test]
async fn accepting_an_invitation_does_not_reveal_whether_the_email_has_an_account() {
    let app = TestApp::spawn().await;
    let s = app.signup("team", Some("starter")).await;
    let b = app.signup("bolt", None).await;
    let known = app
        .call(
            "POST",
            "/v1/invitations",
            Some(&s.token),
            Some(json!({"email": b.email, "role": "viewer"})),
        )
        .await;
    let unknown = app
        .call(
            "POST",
            "/v1/invitations",
            Some(&s.token),
            Some(json!({"email": "nobody@x.test", "role": "viewer"})),
        )
        .await;
    let r1 = app
        .call(
            "POST",
            "/v1/invitations/accept",
            None,
            Some(json!({"token": known.body["token"]})),
        )
        .await;
    let r2 = app
        .call(
            "POST",
            "/v1/invitations/accept",
            None,
            Some(json!({"token": unknown.body["token"]})),
        )
        .await;
    r1.assert_problem(422, "VALIDATION_FAILED");
    assert_eq!(r1.body["errors"], r2.body["errors"]);
    // The existing account must prove its password; the invitation survives a wrong one.
    app.call(
        "POST",
        "/v1/invitations/accept",
        None,
        Some(json!({"token": known.body["token"], "password": "wrong-password"})),
    )
    .await
    .assert_problem(401, "UNAUTHENTICATED");
    let ok = app
        .call(
            "POST",
            "/v1/invitations/accept",
            None,
            Some(json!({"token": known.body["token"], "password": b.password})),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", ok.text);
}

#[tokio::test]
async fn a_password_change_ends_the_users_other_sessions_and_a_wrong_one_is_audited() {
    let app = TestApp::spawn_with(|c| c.auth_rate_per_account = 6).await;
    let a = app.signup("acme", None).await;
    let login = |password: String| {
        let email = a.email.clone();
        let app = &app;
        async move {
            app.call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await
        }
    };
    let other = login(a.password.clone()).await;
    assert_eq!(other.status, 200, "{}", other.text);
    let other_token = other.body["access_token"].as_str().unwrap().to_owned();
    let other_refresh = other.body["refresh_token"].as_str().unwrap().to_owned();

    let wrong = app
        .call(
            "POST",
            "/v1/auth/password",
            Some(&a.token),
            Some(
                json!({"current_password": "not-my-password", "new_password": "brand-new-pass-1"}),
            ),
        )
        .await;
    wrong.assert_problem(422, "VALIDATION_FAILED");
    assert_eq!(wrong.body["errors"][0]["field"], "current_password");
    let audit = app.audit_of(&a.tenant_id).await;
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "auth.password_change" && e["outcome"] == "failure"),
        "the wrong attempt is in the chain"
    );
    app.call(
        "POST",
        "/v1/auth/password",
        Some(&a.token),
        Some(json!({"current_password": a.password, "new_password": "short"})),
    )
    .await
    .assert_problem(422, "VALIDATION_FAILED");

    let ok = app
        .call(
            "POST",
            "/v1/auth/password",
            Some(&a.token),
            Some(json!({"current_password": a.password, "new_password": "brand-new-pass-1"})),
        )
        .await;
    assert_eq!(ok.status, 204, "{}", ok.text);
    // The other session is over: its refresh token and its access token.
    let r = app
        .call(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": other_refresh})),
        )
        .await;
    r.assert_problem(401, "UNAUTHENTICATED");
    app.call("GET", "/v1/tenant", Some(&other_token), None)
        .await
        .assert_problem(401, "UNAUTHENTICATED");
    // The session that changed it goes on; only the new password signs in.
    assert_eq!(
        app.call("GET", "/v1/tenant", Some(&a.token), None)
            .await
            .status,
        200
    );
    login(a.password.clone())
        .await
        .assert_problem(401, "UNAUTHENTICATED");
    assert_eq!(login("brand-new-pass-1".into()).await.status, 200);
    let audit = app.audit_of(&a.tenant_id).await;
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "auth.password_change" && e["outcome"] == "success")
    );

    // Throttled like sign-in: guesses at the current password run into 429.
    let mut limited = false;
    for _ in 0..8 {
        let r = app
            .call(
                "POST",
                "/v1/auth/password",
                Some(&a.token),
                Some(
                    json!({"current_password": "guess-guess", "new_password": "brand-new-pass-2"}),
                ),
            )
            .await;
        if r.status == 429 {
            r.assert_problem(429, "RATE_LIMITED");
            limited = true;
            break;
        }
        r.assert_problem(422, "VALIDATION_FAILED");
    }
    assert!(limited, "password guesses are throttled");
}
