//! After `kill -9` and a restart, every acknowledged write is there.

use std::process::{Child, Command, Stdio};

use serde_json::json;

use crate::helpers::{ADMIN_EMAIL, call_at, temp_dir, wait_healthy};

pub(crate) const PASSWORD: &str = "durable-admin-pass-1";

fn start(dir: &std::path::Path, port: u16) -> Child {
    start_with(dir, port, &[])
}

pub(crate) fn start_with(dir: &std::path::Path, port: u16, extra: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tenantd"))
        .arg("serve")
        .envs(extra.iter().copied())
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
    let port = crate::helpers::free_port();
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

/// Every file under `dir`, recursively (staging files of interrupted writes included).
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn uploads_cut_off_by_a_kill_are_released_after_the_restart_with_no_orphan_blob() {
    let dir = temp_dir();
    let port = crate::helpers::free_port();
    let base = format!("http://127.0.0.1:{port}");
    tenantd_server::install_tls_provider();
    let client = reqwest::Client::new();
    // A short request timeout, so an interrupted upload's deadline passes within seconds. On
    // the PostgreSQL run the catalog and cells are PostgreSQL's; blobs stay in the data dir.
    std::fs::create_dir_all(&dir).unwrap();
    let pg = match crate::helpers::postgres_admin_url() {
        Some(admin) => Some(crate::helpers::PgTest::create(&admin).await),
        None => None,
    };
    let cfg = dir.join("tenantd.toml");
    let mut env = vec![("TENANTD_REQUEST_TIMEOUT_SECS", "2")];
    if let Some(pg) = &pg {
        std::fs::write(&cfg, pg.toml()).unwrap();
        env.push(("TENANTD_CONFIG", cfg.to_str().unwrap()));
    }
    let mut child = start_with(&dir, port, &env);
    wait_healthy(&client, &base).await;
    let (s, up) = call_at(&client, &base, "POST", "/v1/auth/signup", None, Some(json!({"email": "o@u.test", "password": "owner-pass-123", "name": "O", "tenant": {"name": "U", "slug": "uploads", "plan": "professional"}})), None).await;
    assert_eq!(s, 201);
    let token = up["access_token"].as_str().unwrap().to_owned();
    let tid = up["tenant"]["id"].as_str().unwrap().to_owned();

    // Eight writers upload 1 MiB files without pause; the process is killed among them.
    let body = vec![7u8; 1 << 20];
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, base, token, body) =
            (client.clone(), base.clone(), token.clone(), body.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..1000 {
                let r = client
                    .post(format!("{base}/v1/files?name=w{w}-{i}"))
                    .bearer_auth(&token)
                    .header("content-type", "application/octet-stream")
                    .body(body.clone())
                    .send()
                    .await;
                if r.is_err() {
                    return;
                }
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    for w in writers {
        let _ = w.await;
    }

    let mut child = start_with(&dir, port, &env);
    wait_healthy(&client, &base).await;
    // Within the deadline (2 s + 5 s) and a sweep (every 5 s): usage equals the stored bytes,
    // and every blob on disk is a listed file.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let (used, stored, listed, blobs) = loop {
        let mut listed = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/files?limit=200&cursor={c}"),
                None => "/v1/files?limit=200".to_owned(),
            };
            let (s, page) = call_at(&client, &base, "GET", &path, Some(&token), None, None).await;
            assert_eq!(s, 200, "{page}");
            listed.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let stored: i64 = listed.iter().map(|f| f["size"].as_i64().unwrap()).sum();
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
        let used = usage["quotas"]["storage_bytes"]["used"].as_i64().unwrap();
        let blobs = files_under(&dir.join("blobs"));
        let ids: Vec<String> = listed
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_owned())
            .collect();
        let all_listed = blobs.len() == ids.len()
            && blobs.iter().all(|b| {
                ids.iter()
                    .any(|id| b.file_name().is_some_and(|n| n == id.as_str()))
            });
        if (used == stored && all_listed) || std::time::Instant::now() > deadline {
            break (used, stored, ids, blobs);
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    assert!(
        !listed.is_empty(),
        "some uploads were acknowledged before the kill"
    );
    assert_eq!(
        used, stored,
        "storage_bytes counts exactly the stored files"
    );
    let orphans: Vec<_> = blobs
        .iter()
        .filter(|b| {
            !listed
                .iter()
                .any(|id| b.file_name().is_some_and(|n| n == id.as_str()))
        })
        .take(5)
        .collect();
    assert!(orphans.is_empty(), "orphan blobs: {orphans:?}");
    assert_eq!(blobs.len(), listed.len());
    // And uploads work on.
    let r = client
        .post(format!("{base}/v1/files?name=after"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("after the restart")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    child.kill().ok();
    child.wait().ok();
    let _ = std::fs::remove_dir_all(&dir);
}
