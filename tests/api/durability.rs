//! After `kill -9` and a restart, every acknowledged write is there.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use serde_json::json;

use crate::helpers::{ADMIN_EMAIL, call_at, temp_dir, wait_healthy};

const PASSWORD: &str = "durable-admin-pass-1";

fn start(dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tenantd"))
        .arg("serve")
        .env("TENANTD_LISTEN", format!("127.0.0.1:{port}"))
        .env("TENANTD_DATA_DIR", dir)
        .env("TENANTD_ADMIN_EMAIL", ADMIN_EMAIL)
        .env("TENANTD_ADMIN_PASSWORD", PASSWORD)
        .env("TENANTD_PASSWORD_HASHING", "insecure-fast-for-tests")
        .env("TENANTD_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tenantd")
}

#[tokio::test]
async fn a_killed_server_restarts_with_every_acknowledged_write() {
    let dir = temp_dir();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    tenantd_server::install_tls_provider();
    let client = reqwest::Client::new();
    let mut child = start(&dir, port);
    wait_healthy(&client, &base).await;
    let (s, up) = call_at(&client, &base, "POST", "/v1/auth/signup", None, Some(json!({"email": "o@k.test", "password": "owner-pass-123", "name": "O", "tenant": {"name": "K", "slug": "killed"}})), None).await;
    assert_eq!(s, 201);
    let token = up["access_token"].as_str().unwrap().to_owned();
    let tid = up["tenant"]["id"].as_str().unwrap().to_owned();
    let spent = up["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        call_at(
            &client,
            &base,
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": spent})),
            None
        )
        .await
        .0,
        200
    );
    let (_, key) = call_at(
        &client,
        &base,
        "POST",
        "/v1/api-keys",
        Some(&token),
        Some(json!({"name": "k", "role": "viewer"})),
        None,
    )
    .await;
    let key_secret = key["key"].as_str().unwrap().to_owned();
    assert_eq!(
        call_at(
            &client,
            &base,
            "DELETE",
            &format!("/v1/api-keys/{}", key["id"].as_str().unwrap()),
            Some(&token),
            None,
            None
        )
        .await
        .0,
        204
    );
    let mut made = Vec::new();
    for i in 0..3 {
        let (s, r) = call_at(
            &client,
            &base,
            "POST",
            "/v1/projects",
            Some(&token),
            Some(json!({"name": format!("p{i}"), "spec": {}})),
            None,
        )
        .await;
        assert_eq!(s, 201);
        made.push(r["id"].as_str().unwrap().to_owned());
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    let mut child = start(&dir, port);
    wait_healthy(&client, &base).await;
    for id in &made {
        assert_eq!(
            call_at(
                &client,
                &base,
                "GET",
                &format!("/v1/projects/{id}"),
                Some(&token),
                None,
                None
            )
            .await
            .0,
            200
        );
    }
    assert_eq!(
        call_at(
            &client,
            &base,
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": spent})),
            None
        )
        .await
        .0,
        401
    );
    assert_eq!(
        call_at(
            &client,
            &base,
            "GET",
            "/v1/tenant",
            Some(&key_secret),
            None,
            None
        )
        .await
        .0,
        401
    );
    let (_, usage) = call_at(
        &client,
        &base,
        "GET",
        &format!("/v1/tenants/{tid}/usage"),
        Some(&token),
        None,
        None,
    )
    .await;
    assert_eq!(usage["quotas"]["projects"]["used"], 3);
    let (_, adm) = call_at(
        &client,
        &base,
        "POST",
        "/v1/auth/login",
        None,
        Some(json!({"email": ADMIN_EMAIL, "password": PASSWORD})),
        None,
    )
    .await;
    let admin = adm["access_token"].as_str().unwrap().to_owned();
    let (s, v) = call_at(
        &client,
        &base,
        "GET",
        "/v1/audit/verify",
        Some(&admin),
        None,
        Some(&tid),
    )
    .await;
    assert_eq!((s, v["ok"].clone()), (200, json!(true)), "{v}");
    child.kill().ok();
    child.wait().ok();
    let _ = std::fs::remove_dir_all(&dir);
}
