//! Errors are problem+json, never internal detail.

use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn hostile_bodies_get_clean_4xx_problems() {
    let app = TestApp::spawn_with(|c| c.body_limit_bytes = 4096).await;
    let a = app.signup("acme", None).await;
    let big = json!({"name": "x", "spec": {"blob": "y".repeat(8000)}});
    app.call("POST", "/v1/agents", Some(&a.token), Some(big))
        .await
        .assert_problem(413, "PAYLOAD_TOO_LARGE");
    for body in [
        &b"{not json"[..],
        b"[]",
        b"\"str\"",
        b"{\"name\": 5}",
        b"{\"name\": \"x\", \"spec\": []}",
        b"\xff\xfe",
    ] {
        let r = app
            .raw(
                "POST",
                "/v1/agents",
                Some(&a.token),
                body.to_vec(),
                &[("content-type", "application/json")],
            )
            .await;
        r.assert_problem(422, "VALIDATION_FAILED");
    }
    let deep = format!(
        "{{\"name\":\"d\",\"spec\":{}{}}}",
        "{\"a\":".repeat(40),
        "}".repeat(40)
    );
    app.raw(
        "POST",
        "/v1/agents",
        Some(&a.token),
        deep.into_bytes(),
        &[("content-type", "application/json")],
    )
    .await
    .assert_problem(422, "VALIDATION_FAILED");
    let r = app
        .call(
            "POST",
            "/v1/agents",
            Some(&a.token),
            Some(json!({"name": "a\u{0000}b", "spec": {}})),
        )
        .await;
    r.assert_problem(422, "VALIDATION_FAILED");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let app = TestApp::spawn().await;
    app.call("GET", "/v2/nothing", None, None)
        .await
        .assert_problem(404, "NOT_FOUND");
    let r = app.call("GET", "/v1/auth/login", None, None).await;
    r.assert_problem(405, "METHOD_NOT_ALLOWED");
    app.call("GET", "/v1/agents", None, None)
        .await
        .assert_problem(401, "UNAUTHENTICATED");
}

#[tokio::test]
async fn a_broken_database_answers_500_without_internal_detail() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    app.raw_cell("DROP TABLE audit_heads", None).await;
    let r = app.create(&a.token, "agents", "x").await;
    r.assert_problem(500, "INTERNAL");
    for leak in [
        "resources",
        "audit_heads",
        "SQL",
        "sqlite",
        "no such table",
        "/",
        "panicked",
    ] {
        assert!(
            !r.body["detail"].as_str().unwrap().contains(leak),
            "{}",
            r.text
        );
        assert!(
            !r.text.to_lowercase().contains(&leak.to_lowercase()) || leak == "/",
            "{}",
            r.text
        );
    }
}

#[tokio::test]
async fn the_openapi_document_and_docs_page_are_served() {
    let app = TestApp::spawn().await;
    let doc = app.call("GET", "/openapi.json", None, None).await;
    assert_eq!(doc.body["openapi"], "3.1.0");
    for path in [
        "/v1/auth/signup",
        "/v1/tenants",
        "/v1/{kind}/{id}",
        "/v1/audit/verify",
        "/v1/api-keys",
        "/v1/invitations/accept",
    ] {
        assert!(doc.body["paths"].get(path).is_some(), "{path}");
    }
    let docs = app.call("GET", "/docs", None, None).await;
    assert!(
        docs.status == 200
            && docs.text.contains("/openapi.json")
            && !docs.text.contains("https://cdn")
    );
    let ready = app.call("GET", "/readyz", None, None).await;
    assert_eq!(ready.body["status"], "ready", "{}", ready.text);
    // Every dependency is named with its state.
    assert_eq!(ready.body["catalog"], "ok");
    assert!(
        ready.body["cells"]
            .as_object()
            .unwrap()
            .values()
            .all(|v| v == "ok")
    );
    assert_eq!(ready.body["files"], "ok");
    // The pages load only their own scripts, and those are served.
    for (page, script) in [("/docs", "/docs/app.js"), ("/console", "/console/app.js")] {
        let p = app.call("GET", page, None, None).await;
        assert!(
            p.text.contains(&format!("src=\"{script}\""))
                && p.header("content-security-policy")
                    .is_some_and(|c| c.contains("script-src 'self'"))
        );
        let js = app.call("GET", script, None, None).await;
        assert!(
            js.status == 200
                && js
                    .header("content-type")
                    .is_some_and(|c| c.starts_with("text/javascript")),
            "{script}"
        );
    }
    let r = app.call("GET", "/healthz", None, None).await;
    assert!(r.header("x-request-id").is_some());
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read =
        tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the server kept a half-sent request open for 20 s"
    );
}

#[tokio::test]
async fn a_json_endpoint_refuses_a_body_that_is_not_json_with_415() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let body = br#"{"name": "sneaky", "spec": {}}"#.to_vec();
    for headers in [
        &[("content-type", "text/plain")][..],
        &[("content-type", "application/x-www-form-urlencoded")],
        &[("content-type", "multipart/form-data; boundary=x")],
        &[],
    ] {
        let r = app
            .raw("POST", "/v1/agents", Some(&a.token), body.clone(), headers)
            .await;
        r.assert_problem(415, "UNSUPPORTED_MEDIA_TYPE");
    }
    // Unauthenticated endpoints too (a cross-site form post to signup creates nothing).
    app.raw(
        "POST",
        "/v1/auth/signup",
        None,
        br#"{"email":"x@y.test","password":"long-password-1","name":"X","tenant":{"name":"X","slug":"xco"}}"#.to_vec(),
        &[("content-type", "text/plain")],
    )
    .await
    .assert_problem(415, "UNSUPPORTED_MEDIA_TYPE");
    let list = app.call("GET", "/v1/agents", Some(&a.token), None).await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        0,
        "nothing was created"
    );

    // JSON with parameters, and a +json type, are JSON.
    let r = app
        .raw(
            "POST",
            "/v1/agents",
            Some(&a.token),
            body.clone(),
            &[("content-type", "application/json; charset=utf-8")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let r = app
        .raw(
            "PATCH",
            &format!("/v1/agents/{id}"),
            Some(&a.token),
            br#"{"name": "renamed"}"#.to_vec(),
            &[("content-type", "application/merge-patch+json")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A file upload stays raw, whatever its type.
    let r = app
        .raw(
            "POST",
            "/v1/files?name=notes.txt",
            Some(&a.token),
            b"plain text".to_vec(),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_413_before_it_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // Announce 2 MB (over the 1 MiB JSON limit, under the file limit) and send none of it.
    let head = format!(
        "POST /v1/agents HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 2000000\r\n\r\n",
        a.token
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("PAYLOAD_TOO_LARGE"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}
