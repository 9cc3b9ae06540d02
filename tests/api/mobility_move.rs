//! The online move between cells: under writes, reads and a busy neighbour, and cut short at
//! each phase boundary then resumed or aborted.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tenantd_core::ids::TenantId;
use tenantd_core::tenant::{CellName, TenantScope};
use tenantd_server::config::{BlobLocation, CellConfig, Config, DbLocation};
use tenantd_server::mobility::{Silent, moving};

use crate::helpers::{Signed, TestApp};
use crate::mobility::settle;

/// Two cells on either backend (PostgreSQL tests have them already): `local` (us), whose
/// files are in the deployment's object store, and `eu-1` (eu), with a store of its own.
pub fn two_cells(c: &mut Config) {
    if c.cells.len() == 1 {
        c.cells.push(CellConfig {
            name: "eu-1".into(),
            region: Some("eu".into()),
            dedicated: false,
            location: DbLocation::Sqlite(c.data_dir.join("cells").join("eu-1.db")),
            blobs: None,
        });
    }
    let own = c.data_dir.join("blobs-eu-1");
    if let Some(eu) = c.cells.iter_mut().find(|c| c.name == "eu-1") {
        eu.blobs = Some(BlobLocation::Dir(own));
    }
    c.auth_cache_ttl_ms = 500;
}

/// The tenant's blobs in a local object store's directory (its staging files left out).
pub fn blobs_in(dir: &std::path::Path, tenant: TenantId) -> usize {
    match std::fs::read_dir(dir.join(format!("tenants/{tenant}/files"))) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().contains('#'))
            .count(),
        Err(_) => 0,
    }
}

/// The directory of `eu-1`'s own object store.
pub fn eu_blobs(app: &TestApp) -> std::path::PathBuf {
    app.state.config.data_dir.join("blobs-eu-1")
}

/// Uploads a file; its id when stored, `None` when the move's freeze refused it.
async fn upload(
    app: &TestApp,
    token: &str,
    name: &str,
    bytes: &[u8],
) -> Result<Option<String>, String> {
    let r = app
        .raw(
            "POST",
            &format!("/v1/files?name={name}"),
            Some(token),
            bytes.to_vec(),
            &[],
        )
        .await;
    match r.status {
        201 => Ok(Some(r.body["id"].as_str().unwrap_or_default().to_owned())),
        503 if r.code() == Some("TENANT_MIGRATING") => Ok(None),
        _ => Err(format!("{}: {}", r.status, r.text)),
    }
}

/// Every file's contents, read through the API, are what was uploaded.
async fn assert_files_read_back(
    app: &TestApp,
    token: &str,
    files: &[(String, Vec<u8>)],
    context: &str,
) {
    for (id, bytes) in files {
        let got = app
            .client
            .get(format!("{}/v1/files/{id}/content", app.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(got.status(), 200, "{context}: file {id}");
        assert_eq!(
            got.bytes().await.unwrap().as_ref(),
            bytes.as_slice(),
            "{context}: file {id}"
        );
    }
}

pub fn tid(s: &Signed) -> TenantId {
    TenantId(s.tenant_id.parse().unwrap())
}

/// The tenant's rows in `cell`, by table (only the tables with any).
pub async fn rows_in(app: &TestApp, tenant: TenantId, cell: &str) -> Vec<(String, u64)> {
    let scope = TenantScope::unscoped_trusted(tenant, CellName::new(cell));
    let store = app.state.cell(&scope).unwrap();
    store
        .copy_counts(&scope)
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Asserts that every acknowledged agent write is there exactly once and every refused one
/// is absent, read through the API.
pub async fn assert_writes_kept(
    app: &TestApp,
    token: &str,
    acked: &[String],
    refused: &[String],
    context: &str,
) {
    let agents = names(app, token).await;
    let set: BTreeSet<&String> = agents.iter().collect();
    assert_eq!(set.len(), agents.len(), "{context}: a write twice");
    for name in acked {
        assert!(set.contains(name), "{context}: acknowledged {name} is lost");
    }
    for name in refused {
        assert!(!set.contains(name), "{context}: refused {name} was written");
    }
}

/// Every agent name of the tenant, read through the API.
pub async fn names(app: &TestApp, token: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/agents?limit=200&cursor={c}"),
            None => "/v1/agents?limit=200".to_owned(),
        };
        let r = app.call("GET", &path, Some(token), None).await;
        assert_eq!(r.status, 200, "{}", r.text);
        for item in r.body["items"].as_array().unwrap() {
            out.push(item["name"].as_str().unwrap().to_owned());
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    out
}

#[tokio::test]
async fn a_tenant_moves_between_cells_under_load_and_loses_nothing() {
    let app = Arc::new(TestApp::spawn_with(two_cells).await);
    let t = app.signup("mover", Some("professional")).await;
    let n = app.signup("neighbour", Some("professional")).await;
    for i in 0..300 {
        assert_eq!(
            app.create(&t.token, "memories", &format!("before-{i}"))
                .await
                .status,
            201
        );
    }
    let mut files = Vec::new();
    for i in 0..5 {
        let bytes = format!("before the move {i}").into_bytes();
        let id = upload(&app, &t.token, &format!("before-{i}"), &bytes)
            .await
            .unwrap();
        files.push((id.expect("stored"), bytes));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let uploader = {
        let (app, stop, token) = (app.clone(), stop.clone(), t.token.clone());
        tokio::spawn(async move {
            let (mut stored, mut refused, mut other, mut i) = (Vec::new(), 0, Vec::new(), 0);
            while !stop.load(Ordering::Relaxed) {
                let bytes = format!("during the move {i}").into_bytes();
                match upload(&app, &token, &format!("during-{i}"), &bytes).await {
                    Ok(Some(id)) => stored.push((id, bytes)),
                    Ok(None) => refused += 1,
                    Err(e) => other.push(e),
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (stored, refused, other)
        })
    };
    let writer = {
        let (app, stop, token) = (app.clone(), stop.clone(), t.token.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut refused = Vec::new();
            let mut other = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("during-{i}");
                i += 1;
                let r = app.create(&token, "agents", &name).await;
                match r.status {
                    201 => acked.push(name),
                    503 => {
                        assert_eq!(r.code(), Some("TENANT_MIGRATING"), "{}", r.text);
                        assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
                        refused.push(name);
                    }
                    _ => other.push(format!("{}: {}", r.status, r.text)),
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            (acked, refused, other)
        })
    };
    let reader = {
        let (app, stop, token) = (app.clone(), stop.clone(), t.token.clone());
        tokio::spawn(async move {
            let (mut ok, mut bad) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                let r = app
                    .call("GET", "/v1/memories?limit=5", Some(&token), None)
                    .await;
                if r.status == 200 {
                    ok += 1;
                } else {
                    bad.push(format!("{}: {}", r.status, r.text));
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            (ok, bad)
        })
    };
    let neighbour = {
        let (app, stop, token) = (app.clone(), stop.clone(), n.token.clone());
        tokio::spawn(async move {
            let (mut ok, mut bad, mut i) = (0, Vec::new(), 0);
            while !stop.load(Ordering::Relaxed) {
                let r = app.create(&token, "tools", &format!("n-{i}")).await;
                i += 1;
                if r.status == 201 {
                    ok += 1;
                } else {
                    bad.push(format!("{}: {}", r.status, r.text));
                }
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            (ok, bad)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let op = tenantd_server::context::Caller::operator(&app.state)
        .await
        .unwrap();
    let tenant = app
        .state
        .catalog
        .find_tenant(tid(&t))
        .await
        .unwrap()
        .unwrap();
    let from = tenant.cell.to_string();
    assert_eq!(from, "local");
    let m = moving::start(&app.state, &op, &tenant, &CellName::new("eu-1"), &Silent)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let (acked, refused, other) = writer.await.unwrap();
    let (reads, read_errors) = reader.await.unwrap();
    let (n_ok, n_bad) = neighbour.await.unwrap();
    let (uploaded, uploads_refused, upload_errors) = uploader.await.unwrap();

    assert_eq!(m.phase, "done");
    assert!(
        other.is_empty(),
        "{} writes answered neither 201 nor 503: {:?}",
        other.len(),
        &other[..other.len().min(3)]
    );
    assert!(
        read_errors.is_empty(),
        "{} reads failed during the move: {:?}",
        read_errors.len(),
        &read_errors[..read_errors.len().min(3)]
    );
    assert!(
        n_bad.is_empty(),
        "the neighbour saw {} errors: {:?}",
        n_bad.len(),
        &n_bad[..n_bad.len().min(3)]
    );
    assert!(reads > 0 && n_ok > 0 && !acked.is_empty());
    assert!(
        upload_errors.is_empty(),
        "uploads failed: {upload_errors:?}"
    );
    assert!(!uploaded.is_empty(), "no upload was stored during the move");
    let after = app
        .state
        .catalog
        .find_tenant(tid(&t))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.cell.as_str(), "eu-1");
    assert_eq!(
        after.region.map(|r| r.as_str()),
        Some("eu"),
        "residency follows the cell"
    );
    assert_eq!(after.status.as_str(), "active");

    assert_writes_kept(&app, &t.token, &acked, &refused, "the move").await;
    assert_eq!(
        names_of_kind(&app, &t.token, "memories").await,
        300,
        "the rows from before"
    );
    assert_eq!(
        rows_in(&app, tid(&t), &from).await,
        vec![],
        "nothing left in the source"
    );
    // Its files came along from the deployment's store to eu-1's own, and none stayed.
    files.extend(uploaded);
    assert_files_read_back(&app, &t.token, &files, "after the move").await;
    assert_eq!(
        blobs_in(&app.state.config.blob_dir, tid(&t)),
        0,
        "no blob left in the source"
    );
    // An upload refused by the freeze after its blob was copied leaves that blob in the
    // target until its reservation expires and the sweep releases it.
    let there = blobs_in(&eu_blobs(&app), tid(&t));
    assert!(
        (files.len()..=files.len() + uploads_refused).contains(&there),
        "{there} blobs in the target for {} stored files ({uploads_refused} uploads refused)",
        files.len()
    );
    // (The uploads go on after the move, into the target: the first five were in the source.)
    assert!(
        m.detail["source_blobs_removed"].as_u64() >= Some(5)
            && m.detail["blobs_copied"].as_u64() >= Some(5),
        "{}",
        m.detail
    );
    settle(&app).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let chain = app.audit_of(&t.tenant_id).await;
    assert!(
        chain.iter().any(|e| e["action"] == "tenant.moved"),
        "tenant.moved is in the chain"
    );
    app.assert_chain_verifies(&t.tenant_id, "after the move")
        .await;
    eprintln!(
        "move: {} writes acknowledged, {} refused while frozen, freeze {} ms",
        acked.len(),
        refused.len(),
        m.detail["freeze_ms"]
    );
}

async fn names_of_kind(app: &TestApp, token: &str, kind: &str) -> usize {
    let r = app
        .call("GET", &format!("/v1/{kind}?limit=200"), Some(token), None)
        .await;
    let mut n = r.body["items"].as_array().unwrap().len();
    let mut cursor = r.body["next_cursor"].as_str().map(str::to_owned);
    while let Some(c) = cursor {
        let r = app
            .call(
                "GET",
                &format!("/v1/{kind}?limit=200&cursor={c}"),
                Some(token),
                None,
            )
            .await;
        n += r.body["items"].as_array().unwrap().len();
        cursor = r.body["next_cursor"].as_str().map(str::to_owned);
    }
    n
}

#[tokio::test]
async fn a_move_cut_short_at_each_phase_is_resumed_or_aborted_with_one_copy() {
    let app = TestApp::spawn_with(two_cells).await;
    let op = tenantd_server::context::Caller::operator(&app.state)
        .await
        .unwrap();
    for (i, (stop_at, then)) in [
        ("frozen", "abort"),
        ("frozen", "resume"),
        ("switched", "resume"),
    ]
    .into_iter()
    .enumerate()
    {
        let t = app.signup(&format!("cut-{i}"), None).await;
        for k in 0..20 {
            assert_eq!(
                app.create(&t.token, "tools", &format!("t-{k}"))
                    .await
                    .status,
                201
            );
        }
        let tenant = app
            .state
            .catalog
            .find_tenant(tid(&t))
            .await
            .unwrap()
            .unwrap();
        let rec = moving::plan(&app.state, &tenant, &CellName::new("eu-1"))
            .await
            .unwrap();
        let m = moving::run_until(&app.state, &op, rec, &Silent, Some(stop_at))
            .await
            .unwrap();
        assert_eq!(m.phase, stop_at);
        // Cut short while frozen: reads are served, writes refused, in every cell.
        if stop_at == "frozen" {
            let w = app.create(&t.token, "tools", "while-frozen").await;
            w.assert_problem(503, "TENANT_MIGRATING");
            let r = app.call("GET", "/v1/tools", Some(&t.token), None).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
        let open = moving::open(&app.state, &tenant).await.unwrap();
        let done = match then {
            "abort" => moving::abort(&app.state, open).await.unwrap(),
            _ => moving::run(&app.state, &op, open, &Silent).await.unwrap(),
        };
        let now = app
            .state
            .catalog
            .find_tenant(tid(&t))
            .await
            .unwrap()
            .unwrap();
        let (home, away) = if then == "abort" {
            ("local", "eu-1")
        } else {
            ("eu-1", "local")
        };
        assert_eq!(done.phase, if then == "abort" { "aborted" } else { "done" });
        assert_eq!(now.cell.as_str(), home, "{stop_at} then {then}");
        assert_eq!(now.status.as_str(), "active");
        assert_eq!(
            rows_in(&app, tid(&t), away).await,
            vec![],
            "{stop_at} then {then}: one copy"
        );
        assert!(!rows_in(&app, tid(&t), home).await.is_empty());
        let w = app.create(&t.token, "tools", "after").await;
        assert_eq!(w.status, 201, "{stop_at} then {then}: {}", w.text);
        let r = app
            .call("GET", "/v1/tools?limit=200", Some(&t.token), None)
            .await;
        assert_eq!(r.body["items"].as_array().unwrap().len(), 21, "{}", r.text);
    }
}

#[tokio::test]
async fn a_platform_admin_moves_a_tenant_over_the_api_and_watches_it() {
    let app = TestApp::spawn_with(two_cells).await;
    let t = app.signup("api-mover", None).await;
    assert_eq!(app.create(&t.token, "tools", "x").await.status, 201);
    let path = format!("/v1/tenants/{}/move", t.tenant_id);
    let denied = app
        .call(
            "POST",
            &path,
            Some(&t.token),
            Some(serde_json::json!({"cell": "eu-1"})),
        )
        .await;
    denied.assert_problem(403, "FORBIDDEN");
    let bad = app
        .call(
            "POST",
            &path,
            Some(&app.admin_token),
            Some(serde_json::json!({"cell": "nowhere"})),
        )
        .await;
    bad.assert_problem(422, "VALIDATION_FAILED");
    let none = app.call("GET", &path, Some(&app.admin_token), None).await;
    none.assert_problem(404, "NOT_FOUND");
    let r = app
        .call(
            "POST",
            &path,
            Some(&app.admin_token),
            Some(serde_json::json!({"cell": "eu-1"})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["phase"], "copying");
    let id = r.body["move_id"].as_str().unwrap().to_owned();
    let again = app
        .call(
            "POST",
            &path,
            Some(&app.admin_token),
            Some(serde_json::json!({"cell": "eu-1"})),
        )
        .await;
    assert!(again.status == 409 || again.status == 422, "{}", again.text);
    let mut phase = String::new();
    for _ in 0..200 {
        let g = app.call("GET", &path, Some(&app.admin_token), None).await;
        assert_eq!(g.status, 200, "{}", g.text);
        assert_eq!(g.body["move_id"], id.as_str());
        phase = g.body["phase"].as_str().unwrap().to_owned();
        if phase == "done" {
            assert!(g.body["freeze_ms"].is_u64(), "{}", g.text);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(phase, "done");
    let now = app
        .state
        .catalog
        .find_tenant(tid(&t))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.cell.as_str(), "eu-1");
    assert_eq!(app.create(&t.token, "tools", "y").await.status, 201);
}
