//! The API's export: a platform admin starts it, watches it and downloads an archive that
//! imports like the CLI's; another tenant's path does not reach it.

use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::helpers::receiver::open_policy;
use crate::mobility::{contains, dump, entries, populated, tid};

/// Exports a tenant through the API, waits for it and downloads it: its record and bytes.
pub async fn api_export(app: &TestApp, tenant: &str) -> (Value, Vec<u8>) {
    let started = app
        .call(
            "POST",
            &format!("/v1/tenants/{tenant}/export"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(started.status, 202, "{}", started.text);
    assert_eq!(started.body["status"], "running");
    let url = started.body["url"].as_str().unwrap().to_owned();
    let mut rec = started.body.clone();
    for _ in 0..600 {
        rec = app
            .call("GET", &url, Some(&app.admin_token), None)
            .await
            .body;
        if rec["status"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(rec["status"], "ready", "{rec}");
    let got = app
        .client
        .get(format!(
            "{}{}",
            app.base,
            rec["download_url"].as_str().unwrap()
        ))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.headers()["content-type"], "application/x-tar");
    let bytes = got.bytes().await.unwrap().to_vec();
    use sha2::Digest;
    assert_eq!(rec["bytes"], bytes.len() as u64);
    assert_eq!(
        rec["sha256"].as_str().unwrap(),
        hex::encode(sha2::Sha256::digest(&bytes))
    );
    (rec, bytes)
}

#[tokio::test]
async fn the_api_writes_an_archive_to_download_that_imports_like_the_cli_s() {
    let a = TestApp::spawn_with(open_policy).await;
    let (t, secrets) = populated(&a, "dlx", 40).await;
    let before = dump(&a.state, tid(&t)).await;
    let path = format!("/v1/tenants/{}/export", t.tenant_id);
    let member = a.call("POST", &path, Some(&t.token), None).await;
    assert_eq!(
        member.status, 403,
        "a tenant's own owner is no platform admin"
    );
    let loc = a
        .client
        .post(format!("{}{path}", a.base))
        .bearer_auth(&a.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(loc.status(), 202);
    let location = loc.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("/v1/tenants/{}/exports/", t.tenant_id)));

    let (rec, bytes) = api_export(&a, &t.tenant_id).await;
    for s in &secrets {
        assert!(
            !contains(&bytes, s.as_bytes()),
            "a secret is in the archive"
        );
    }
    assert!(!contains(&bytes, b"$argon2"), "no password hash by default");
    let file = a.dir.join("dlx.tar");
    std::fs::write(&file, &bytes).unwrap();
    assert_eq!(entries(&file)[0].0, "manifest.json", "the manifest first");

    // Another tenant's path does not reach it; an unknown id is a 404.
    let other = a.signup("dl-other", None).await;
    let export_id = rec["export_id"].as_str().unwrap();
    for url in [
        format!("/v1/tenants/{}/exports/{export_id}", other.tenant_id),
        format!(
            "/v1/tenants/{}/exports/{export_id}/download",
            other.tenant_id
        ),
        format!("/v1/tenants/{}/exports/not-an-id", t.tenant_id),
    ] {
        let r = a.call("GET", &url, Some(&a.admin_token), None).await;
        assert_eq!(r.status, 404, "{url}: {}", r.text);
    }

    let b = TestApp::spawn().await;
    let out = b
        .cli_bg(&["tenant", "import", file.to_str().unwrap(), "--json"])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let after = dump(&b.state, tid(&t)).await;
    for table in [
        "cell/resources",
        "cell/resource_shares",
        "cell/files",
        "cell/runs",
        "catalog/memberships",
    ] {
        assert!(!before[table].is_empty(), "{table}");
        assert_eq!(after[table], before[table], "{table}");
    }

    // The members made without a password set one through their one-time links.
    let links = printed["password_links"].as_array().unwrap().clone();
    assert_eq!(links.len(), 2, "{printed}");
    let mine = links
        .iter()
        .find(|l| l["email"] == t.email.as_str())
        .unwrap();
    let token = mine["token"].as_str().unwrap();
    let login = json!({"email": t.email, "password": "a-new-password-123"});
    let before_set = b
        .call("POST", "/v1/auth/login", None, Some(login.clone()))
        .await;
    assert_eq!(before_set.status, 401);
    let short = json!({"token": token, "password": "short"});
    b.call("POST", "/v1/auth/set-password", None, Some(short))
        .await
        .assert_problem(422, "VALIDATION_FAILED");
    let set = json!({"token": token, "password": "a-new-password-123"});
    let r = b
        .call("POST", "/v1/auth/set-password", None, Some(set.clone()))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let signed = b.call("POST", "/v1/auth/login", None, Some(login)).await;
    assert_eq!(signed.status, 200, "{}", signed.text);
    assert_eq!(signed.body["tenant"]["id"], t.tenant_id.as_str());
    let again = b
        .call("POST", "/v1/auth/set-password", None, Some(set))
        .await;
    again.assert_problem(404, "NOT_FOUND");
    let other = links
        .iter()
        .find(|l| l["email"] != t.email.as_str())
        .unwrap();
    // A reissued link ends the first one.
    let out = b
        .cli_bg(&["tenant", "password-links", "dlx", "--json"])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        fresh.as_array().unwrap().len(),
        1,
        "only the member still without one: {fresh}"
    );
    let stale = json!({"token": other["token"], "password": "another-password-123"});
    b.call("POST", "/v1/auth/set-password", None, Some(stale))
        .await
        .assert_problem(404, "NOT_FOUND");
    let current = json!({"token": fresh[0]["token"], "password": "another-password-123"});
    let r = b
        .call("POST", "/v1/auth/set-password", None, Some(current))
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

#[tokio::test]
async fn an_export_whose_node_went_away_reads_failed_not_running_forever() {
    use object_store::ObjectStoreExt;
    let app = TestApp::spawn().await;
    let t = app.signup("left-behind", None).await;
    // The record a node leaves when it is killed mid-export: running, last saved long ago.
    let id = uuid::Uuid::now_v7().to_string();
    let record = json!({
        "id": id, "tenant_id": t.tenant_id, "status": "running", "credentials": false,
        "started_at": "2026-01-01T00:00:00.000000Z", "alive_at": "2026-01-01T00:00:00.000000Z",
        "finished_at": null, "expires_at": "2099-01-01T00:00:00.000000Z",
        "bytes": null, "sha256": null, "error": null,
    });
    app.state
        .blobs
        .put(
            &object_store::path::Path::from(format!("exports/{}/{id}.json", t.tenant_id)),
            serde_json::to_vec(&record).unwrap().into(),
        )
        .await
        .unwrap();
    let path = format!("/v1/tenants/{}/exports/{id}", t.tenant_id);
    let r = app.call("GET", &path, Some(&app.admin_token), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["status"], "failed", "{}", r.text);
    assert!(
        r.body["error"].as_str().unwrap_or("").contains("went away"),
        "{}",
        r.text
    );
    let d = app
        .call(
            "GET",
            &format!("{path}/download"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(d.status, 409, "{}", d.text);
    // A running export that its node keeps saving is still running.
    let fresh = uuid::Uuid::now_v7().to_string();
    let now = chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string();
    let mut alive = record.clone();
    alive["id"] = json!(fresh);
    alive["started_at"] = json!(now);
    alive["alive_at"] = json!(now);
    app.state
        .blobs
        .put(
            &object_store::path::Path::from(format!("exports/{}/{fresh}.json", t.tenant_id)),
            serde_json::to_vec(&alive).unwrap().into(),
        )
        .await
        .unwrap();
    let r = app
        .call(
            "GET",
            &format!("/v1/tenants/{}/exports/{fresh}", t.tenant_id),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(r.body["status"], "running", "{}", r.text);
}
