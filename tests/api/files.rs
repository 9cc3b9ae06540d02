//! Files: isolation, exact storage quota under concurrency, limits.

use serde_json::json;

use crate::helpers::{Signed, TestApp};

/// The tenant's `storage_bytes` usage, as its usage endpoint reports it.
async fn storage_used(app: &TestApp, who: &Signed) -> i64 {
    let usage = app
        .call(
            "GET",
            &format!("/v1/tenants/{}/usage", who.tenant_id),
            Some(&who.token),
            None,
        )
        .await;
    usage.body["quotas"]["storage_bytes"]["used"]
        .as_i64()
        .unwrap_or_else(|| panic!("no storage_bytes usage: {}", usage.text))
}

const PLANS: &str = "plans:
  free:
    name: Free
    self_serve: true
    quotas: {users: 1, storage_bytes: 1000}
    rate_limits: {api_requests: 10000}
  enterprise:
    name: Enterprise
    quotas: {}
    features: [audit_logs]
    rate_limits: {api_requests: 10000}
";

#[tokio::test]
async fn files_round_trip_and_stay_inside_their_tenant() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let b = app.signup("bolt", None).await;
    let up = app
        .raw(
            "POST",
            "/v1/files?name=notes.txt",
            Some(&a.token),
            b"hello tenants".to_vec(),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(up.status, 201, "{}", up.text);
    assert_eq!(up.body["size"], 13);
    use sha2::Digest;
    assert_eq!(
        up.body["sha256"].as_str(),
        Some(hex_of(&sha2::Sha256::digest(b"hello tenants")).as_str())
    );
    assert_eq!(up.body["content_type"], "text/plain");
    let id = up.body["id"].as_str().unwrap();
    let got = app
        .client
        .get(format!("{}/v1/files/{id}/content", app.base))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.headers()["content-disposition"], "attachment");
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"hello tenants");
    for path in [format!("/v1/files/{id}"), format!("/v1/files/{id}/content")] {
        app.call("GET", &path, Some(&b.token), None)
            .await
            .assert_problem(404, "NOT_FOUND");
    }
    app.call("DELETE", &format!("/v1/files/{id}"), Some(&b.token), None)
        .await
        .assert_problem(404, "NOT_FOUND");
    assert!(
        app.call("GET", "/v1/files", Some(&b.token), None)
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        app.call("GET", "/v1/files", Some(&a.token), None)
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(storage_used(&app, &a).await, 13);
    assert_eq!(
        app.call("DELETE", &format!("/v1/files/{id}"), Some(&a.token), None)
            .await
            .status,
        204
    );
    assert_eq!(storage_used(&app, &a).await, 0);
    // The blob is gone from the tenant's prefix too.
    let blobs = app
        .state
        .config
        .blob_dir
        .join("tenants")
        .join(&a.tenant_id)
        .join("files");
    assert_eq!(std::fs::read_dir(&blobs).map(|d| d.count()).unwrap_or(0), 0);
}

#[tokio::test]
async fn storage_quota_is_exact_under_concurrent_uploads() {
    let app = TestApp::spawn_with(|c| {
        let path = c.data_dir.join("plans.yaml");
        std::fs::create_dir_all(&c.data_dir).unwrap();
        std::fs::write(&path, PLANS).unwrap();
        c.plans_file = Some(path);
    })
    .await;
    let a = app.signup("acme", None).await;
    let paths: Vec<String> = (0..25).map(|i| format!("/v1/files?name=f{i}")).collect();
    let calls = paths.iter().map(|p| {
        app.raw(
            "POST",
            p,
            Some(&a.token),
            vec![b'x'; 100],
            &[("content-type", "application/octet-stream")],
        )
    });
    let results = futures::future::join_all(calls).await;
    assert_eq!(
        results.iter().filter(|r| r.status == 201).count(),
        10,
        "{:?}",
        results
            .iter()
            .map(|r| (r.status, r.body["detail"].clone()))
            .collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.status != 201) {
        r.assert_problem(403, "QUOTA_EXCEEDED");
        assert_eq!(
            (r.body["resource"].as_str(), r.body["requested"].as_i64()),
            (Some("storage_bytes"), Some(100))
        );
    }
    let usage = app
        .call(
            "GET",
            &format!("/v1/tenants/{}/usage", a.tenant_id),
            Some(&a.token),
            None,
        )
        .await;
    assert_eq!(
        usage.body["quotas"]["storage_bytes"],
        json!({"used": 1000, "limit": 1000})
    );
    let listed: i64 = app
        .call("GET", "/v1/files?limit=200", Some(&a.token), None)
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["size"].as_i64().unwrap())
        .sum();
    assert_eq!(listed, 1000, "nothing counted that is not stored");
    let blobs = app
        .state
        .config
        .blob_dir
        .join("tenants")
        .join(&a.tenant_id)
        .join("files");
    assert_eq!(
        std::fs::read_dir(&blobs).unwrap().count(),
        10,
        "nothing stored that is not counted"
    );
}

#[tokio::test]
async fn an_upload_over_the_file_limit_is_413() {
    let app = TestApp::spawn_with(|c| c.file_limit_bytes = 1024).await;
    let a = app.signup("acme", None).await;
    app.raw(
        "POST",
        "/v1/files?name=big",
        Some(&a.token),
        vec![0u8; 4096],
        &[("content-type", "application/octet-stream")],
    )
    .await
    .assert_problem(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(
        app.raw(
            "POST",
            "/v1/files?name=ok",
            Some(&a.token),
            vec![0u8; 512],
            &[]
        )
        .await
        .status,
        201
    );
    assert_eq!(storage_used(&app, &a).await, 512);
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[tokio::test]
async fn an_upload_that_cannot_fit_is_refused_before_its_body_is_read() {
    let app = TestApp::spawn_with(|c| {
        let path = c.data_dir.join("plans.yaml");
        std::fs::create_dir_all(&c.data_dir).unwrap();
        std::fs::write(&path, PLANS).unwrap();
        c.plans_file = Some(path);
    })
    .await;
    let a = app.signup("acme", None).await;
    // Declares 5,000 bytes against a 1,000-byte quota and never sends them: the answer must
    // not wait for the body.
    let addr = app.base.trim_start_matches("http://").to_owned();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/files?name=x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 5000\r\nConnection: close\r\n\r\n",
        a.token
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answered without the body")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.starts_with("HTTP/1.1 403") && text.contains("QUOTA_EXCEEDED"),
        "{text}"
    );
}

#[tokio::test]
async fn concurrent_deletes_of_one_file_release_its_bytes_once() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let keep = app
        .raw(
            "POST",
            "/v1/files?name=keep",
            Some(&a.token),
            vec![1u8; 300],
            &[],
        )
        .await;
    assert_eq!(keep.status, 201);
    let up = app
        .raw(
            "POST",
            "/v1/files?name=gone",
            Some(&a.token),
            vec![1u8; 200],
            &[],
        )
        .await;
    let path = format!("/v1/files/{}", up.body["id"].as_str().unwrap());
    let calls = (0..8).map(|_| app.call("DELETE", &path, Some(&a.token), None));
    let results = futures::future::join_all(calls).await;
    assert_eq!(results.iter().filter(|r| r.status == 204).count(), 1);
    assert_eq!(storage_used(&app, &a).await, 300);
}

/// An S3-compatible server for the test: `s3s-fs` (a real S3 protocol server over a
/// directory, `cargo install s3s-fs@0.14.1 --features binary`); without it the test is skipped
/// (a failure under `CI=true`).
struct TestS3 {
    child: std::process::Child,
    root: std::path::PathBuf,
    endpoint: String,
}

impl TestS3 {
    async fn start(test: &str) -> Option<Self> {
        let root = crate::helpers::temp_dir();
        std::fs::create_dir_all(root.join("tenantd-files")).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = match std::process::Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--access-key",
                "tenantd-test",
                "--secret-key",
                "tenantd-test-secret",
            ])
            .arg(&root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        {
            Ok(c) => c,
            Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("{test}: no s3s-fs and CI=true")
            }
            Err(_) => {
                eprintln!(
                    "SKIPPED {test}: no s3s-fs (cargo install s3s-fs@0.14.1 --features binary)"
                );
                return None;
            }
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(TestS3 {
                    child,
                    root,
                    endpoint,
                });
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("s3s-fs did not start");
    }
}

impl Drop for TestS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[tokio::test]
async fn files_live_in_an_s3_bucket_under_their_tenant_with_an_exact_quota() {
    let Some(s3) =
        TestS3::start("files_live_in_an_s3_bucket_under_their_tenant_with_an_exact_quota").await
    else {
        return;
    };
    let app = TestApp::spawn_with(|c| {
        let path = c.data_dir.join("plans.yaml");
        std::fs::create_dir_all(&c.data_dir).unwrap();
        std::fs::write(&path, PLANS).unwrap();
        c.plans_file = Some(path);
        c.s3 = Some(tenantd_server::config::S3Config {
            bucket: "tenantd-files".into(),
            prefix: "prod".into(),
            endpoint: Some(s3.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some("tenantd-test".into()),
            secret_access_key: Some("tenantd-test-secret".into()),
        });
    })
    .await;
    let a = app.signup("acme", None).await;
    let b = app.signup("bolt", None).await;
    let up = app
        .raw(
            "POST",
            "/v1/files?name=n.txt",
            Some(&a.token),
            b"in the bucket".to_vec(),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(up.status, 201, "{}", up.text);
    let id = up.body["id"].as_str().unwrap().to_owned();
    // The object sits in the bucket, under the prefix and the tenant's own key space.
    let object = s3
        .root
        .join("tenantd-files/prod/tenants")
        .join(&a.tenant_id)
        .join("files")
        .join(&id);
    assert_eq!(std::fs::read(&object).unwrap(), b"in the bucket");
    let got = app
        .client
        .get(format!("{}/v1/files/{id}/content", app.base))
        .bearer_auth(&a.token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"in the bucket");
    app.call(
        "GET",
        &format!("/v1/files/{id}/content"),
        Some(&b.token),
        None,
    )
    .await
    .assert_problem(404, "NOT_FOUND");
    // storage_bytes 1000: 13 used, so 9 of 25 concurrent 100-byte uploads fit, exactly.
    let paths: Vec<String> = (0..25).map(|i| format!("/v1/files?name=f{i}")).collect();
    let results = futures::future::join_all(paths.iter().map(|p| {
        app.raw(
            "POST",
            p,
            Some(&a.token),
            vec![b'x'; 100],
            &[("content-type", "application/octet-stream")],
        )
    }))
    .await;
    assert_eq!(results.iter().filter(|r| r.status == 201).count(), 9);
    assert_eq!(storage_used(&app, &a).await, 913);
    let stored = std::fs::read_dir(object.parent().unwrap()).unwrap().count();
    assert_eq!(stored, 10, "nothing stored that is not counted");
    // Deleting removes the object and releases its bytes.
    assert_eq!(
        app.call("DELETE", &format!("/v1/files/{id}"), Some(&a.token), None)
            .await
            .status,
        204
    );
    assert!(!object.exists());
    assert_eq!(storage_used(&app, &a).await, 900);
}

/// What a process killed between reserving an upload and storing it leaves — a pending row,
/// its bytes counted, a written blob — is released by the sweep once the deadline passed, and
/// only then; a live reservation is left alone.
#[tokio::test]
async fn the_sweep_releases_expired_reservations_and_their_blobs_and_nothing_else() {
    use object_store::ObjectStoreExt;
    use tenantd_core::ids::{FileId, TenantId};
    use tenantd_core::resource::{NewFile, ResourceName, blob_key};
    use tenantd_core::tenant::TenantScope;

    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let tenant = TenantId::parse(&a.tenant_id, "t").unwrap();
    let cell_name = app
        .state
        .catalog
        .find_tenant(tenant)
        .await
        .unwrap()
        .unwrap()
        .cell;
    let scope = TenantScope::unscoped_trusted(tenant, cell_name.clone());
    let cell = app.state.cells[&cell_name].clone();
    let reserve = |size: i64, expires: chrono::DateTime<chrono::Utc>| {
        let cell = cell.clone();
        let scope = scope.clone();
        async move {
            let new = NewFile {
                id: FileId::new(),
                name: ResourceName::parse("half-written").unwrap(),
                size,
                sha256: "00".repeat(32),
                content_type: "application/octet-stream".into(),
                created_by: "test".into(),
            };
            cell.reserve_file(&scope, &new, None, expires)
                .await
                .unwrap();
            new.id
        }
    };
    let now = tenantd_core::time::now();
    let dead = reserve(1000, now - chrono::Duration::seconds(1)).await;
    let live = reserve(24, now + chrono::Duration::seconds(60)).await;
    let dead_blob = object_store::path::Path::from(blob_key(tenant, dead));
    app.state
        .blobs
        .put(&dead_blob, bytes::Bytes::from_static(b"partial").into())
        .await
        .unwrap();
    assert_eq!(storage_used(&app, &a).await, 1024);

    let released = tenantd_server::services::files::release_expired_uploads(&app.state)
        .await
        .unwrap();
    assert_eq!(released, 1);
    assert_eq!(
        storage_used(&app, &a).await,
        24,
        "only the live reservation is counted"
    );
    assert!(
        app.state.blobs.head(&dead_blob).await.is_err(),
        "the orphan blob is gone"
    );
    // Idempotent: a second sweep (another node, a later tick) finds nothing.
    assert_eq!(
        tenantd_server::services::files::release_expired_uploads(&app.state)
            .await
            .unwrap(),
        0
    );
    // The live one completes as usual.
    let ev = tenantd_core::audit::AuditDraft {
        id: tenantd_core::ids::EventId::new(),
        tenant_id: tenant,
        actor: "test".into(),
        action: "files.create".into(),
        resource: "files".into(),
        resource_id: Some(live.to_string()),
        outcome: "success".into(),
        request_id: None,
        ip: None,
        at: tenantd_core::time::format(now),
        details: json!({}),
    };
    cell.complete_file(&scope, live, ev).await.unwrap();
    assert_eq!(storage_used(&app, &a).await, 24);
}
