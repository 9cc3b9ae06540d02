//! Tenant archives: a round trip into a fresh deployment through the CLI, and every kind of
//! tampered archive refused before its first write (`docs/design/mobility.md`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use tenantd_core::ids::TenantId;
use tenantd_core::store::{Row, Value as Cell};
use tenantd_core::tenant::TenantScope;
use tenantd_server::AppState;
use tenantd_server::mobility::archive::Manifest;
use tenantd_server::mobility::import::{ImportOptions, import};
use tenantd_server::mobility::{Silent, export};

use crate::helpers::receiver::open_policy;
use crate::helpers::runs::{lease, start, worker_key};
use crate::helpers::{Signed, TestApp};

/// Every row of a tenant, by `catalog/<table>` and `cell/<table>`, read from one snapshot of
/// each database.
pub async fn dump(state: &AppState, tenant: TenantId) -> BTreeMap<String, Vec<Row>> {
    let t = state
        .catalog
        .find_tenant(tenant)
        .await
        .unwrap()
        .expect("tenant");
    let scope = TenantScope::unscoped_trusted(tenant, t.cell.clone());
    let mut out = BTreeMap::new();
    let cell = state.cell(&scope).unwrap().clone();
    for (prefix, store) in [
        (
            "catalog",
            state.catalog.clone() as std::sync::Arc<dyn tenantd_core::store::CopyStore>,
        ),
        (
            "cell",
            cell as std::sync::Arc<dyn tenantd_core::store::CopyStore>,
        ),
    ] {
        let mut snap = store.copy_snapshot(&scope).await.unwrap();
        for table in store.copy_tables() {
            let mut rows = Vec::new();
            let mut after: Option<Row> = None;
            loop {
                let page = snap.page(table, after.as_ref(), 333).await.unwrap();
                let Some(last) = page.last() else { break };
                after = Some(table.key_of(last));
                rows.extend(page);
            }
            out.insert(format!("{prefix}/{}", table.name), rows);
        }
        snap.close().await.unwrap();
    }
    out
}

/// Whether anything of `tenant` is left: catalog row, rows in any cell, blobs.
pub async fn traces(state: &AppState, tenant: TenantId) -> Vec<String> {
    let mut out = Vec::new();
    if state.catalog.find_tenant(tenant).await.unwrap().is_some() {
        out.push("catalog tenant row".to_owned());
    }
    for (name, cell) in &state.cells {
        let scope = TenantScope::unscoped_trusted(tenant, name.clone());
        for (table, n) in cell.copy_counts(&scope).await.unwrap() {
            if n > 0 {
                out.push(format!("{n} rows in {name}/{table}"));
            }
        }
    }
    use futures::TryStreamExt;
    for prefix in [format!("tenants/{tenant}"), format!("exports/{tenant}")] {
        let prefix = object_store::path::Path::from(prefix);
        let blobs: Vec<_> = state.blobs.list(Some(&prefix)).try_collect().await.unwrap();
        if !blobs.is_empty() {
            out.push(format!("{} objects under {prefix}", blobs.len()));
        }
    }
    out
}

/// Waits until the catalog's audit outbox is relayed, so a tenant's chain is complete.
pub async fn settle(app: &TestApp) {
    for _ in 0..200 {
        if app
            .state
            .catalog
            .pending_outbox(1)
            .await
            .unwrap()
            .is_empty()
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the outbox did not drain");
}

/// A tenant with something of every kind: members, resources of each kind (enough for a long
/// chain), a share, a file, an API key, a webhook endpoint, runs queued, leased and done.
pub async fn populated(app: &TestApp, slug: &str, items: usize) -> (Signed, Vec<String>) {
    let t = app.signup(slug, Some("professional")).await;
    let other = app.signup(&format!("{slug}-nb"), None).await;
    app.join(&t.token, &format!("member@{slug}.test"), "member")
        .await;
    let kinds = [
        "agents",
        "tools",
        "prompts",
        "workflows",
        "knowledge-sources",
        "memories",
    ];
    let mut secrets = vec![t.password.clone(), t.refresh.clone(), t.token.clone()];
    for chunk in (0..items).collect::<Vec<_>>().chunks(16) {
        let calls = chunk.iter().map(|i| {
            let kind = kinds[i % kinds.len()];
            let token = t.token.clone();
            async move { app.create(&token, kind, &format!("{kind}-{i}")).await }
        });
        for r in futures::future::join_all(calls).await {
            assert_eq!(r.status, 201, "{}", r.text);
        }
    }
    let project = app.create(&t.token, "projects", "one").await;
    assert_eq!(project.status, 201, "{}", project.text);
    let share = app.call("POST", "/v1/prompts", Some(&t.token), Some(json!({"name": "shared", "spec": {"s": 1}, "sharing": {"mode": "selective", "tenants": [other.tenant_id]}}))).await;
    assert_eq!(share.status, 201, "{}", share.text);
    let up = app
        .raw(
            "POST",
            "/v1/files?name=notes.txt",
            Some(&t.token),
            b"the tenant's own bytes".to_vec(),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(up.status, 201, "{}", up.text);
    let key = app.api_key(&t.token, "ci").await;
    assert_eq!(key.status, 201, "{}", key.text);
    secrets.push(key.body["key"].as_str().unwrap().to_owned());
    let hook = app
        .call(
            "POST",
            "/v1/webhooks",
            Some(&t.token),
            Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["tenant.deleted"]})),
        )
        .await;
    assert_eq!(hook.status, 201, "{}", hook.text);
    secrets.push(hook.body["secret"].as_str().unwrap().to_owned());
    let agent = app.create(&t.token, "agents", "runner").await;
    let agent = agent.body["id"].as_str().unwrap().to_owned();
    let worker = worker_key(app).await;
    for i in 0..3 {
        let r = start(
            app,
            &t.token,
            &agent,
            json!({"model": "small", "input": {"i": i}}),
        )
        .await;
        assert_eq!(r.status, 202, "{}", r.text);
    }
    let l = lease(app, &worker).await;
    assert_eq!(l.status, 200, "{}", l.text);
    let (run, lease_id) = (
        l.body["run"]["id"].as_str().unwrap().to_owned(),
        l.body["lease_id"].as_str().unwrap().to_owned(),
    );
    let done = app
        .call(
            "POST",
            &format!("/v1/runs/{run}/complete"),
            Some(&worker),
            Some(json!({"lease_id": lease_id, "output": {"ok": true}, "tokens_total": 321})),
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(
        lease(app, &worker).await.status,
        200,
        "one run stays leased"
    );
    settle(app).await;
    (t, secrets)
}

pub fn tid(s: &Signed) -> TenantId {
    TenantId(s.tenant_id.parse().unwrap())
}

async fn usage(app: &TestApp, tenant: &str) -> Value {
    let u = app
        .call(
            "GET",
            &format!("/v1/tenants/{tenant}/usage"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(u.status, 200, "{}", u.text);
    u.body["quotas"].clone()
}

fn col(rows: &[Row], i: usize) -> Vec<Cell> {
    rows.iter().map(|r| r[i].clone()).collect()
}

#[tokio::test]
async fn an_archive_round_trips_a_tenant_into_a_fresh_deployment() {
    let a = TestApp::spawn_with(open_policy).await;
    let (t, secrets) = populated(&a, "acme", 1100).await;
    let before = dump(&a.state, tid(&t)).await;
    let usage_before = usage(&a, &t.tenant_id).await;
    let file = a.dir.join("acme.tar");
    let out = a
        .cli_bg(&[
            "tenant",
            "export",
            "acme",
            "-o",
            file.to_str().unwrap(),
            "--json",
        ])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = printed["public_key"].as_str().unwrap().to_owned();

    let bytes = std::fs::read(&file).unwrap();
    for s in &secrets {
        assert!(
            !contains(&bytes, s.as_bytes()),
            "a secret is in the archive"
        );
    }
    for marker in ["$argon2", "private_key", "member-pass-1234"] {
        assert!(
            !contains(&bytes, marker.as_bytes()),
            "{marker} is in the archive"
        );
    }

    let b = TestApp::spawn().await;
    let out = b
        .cli_bg(&[
            "tenant",
            "import",
            file.to_str().unwrap(),
            "--trust-key",
            &key,
            "--json",
        ])
        .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["members_created"], 2, "{printed}");
    let after = dump(&b.state, tid(&t)).await;

    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (table, rows) in &before {
        let got = &after[table];
        match table.as_str() {
            "cell/audit_events" => {
                assert_eq!(got.len(), rows.len() + 1, "the chain and tenant.imported");
                assert_eq!(&got[..rows.len()], rows.as_slice(), "the chain, verbatim");
                assert_eq!(got[rows.len()][4], Cell::Text("tenant.imported".into()));
            }
            "cell/audit_heads" => {
                let seq = before["cell/audit_events"].len() as i64;
                assert_eq!(rows[0][1], Cell::Int(seq));
                assert_eq!(got[0][1], Cell::Int(seq + 1));
            }
            "cell/webhook_endpoints" => {
                assert_eq!(got.len(), rows.len());
                assert_ne!(col(got, 5), col(rows, 5), "a new secret");
                for i in [0, 1, 2, 3, 8, 10] {
                    assert_eq!(col(got, i), col(rows, i));
                }
            }
            "catalog/users" => {
                assert_eq!(col(got, 1), col(rows, 1), "the members, by email");
                assert!(col(got, 3).iter().all(|p| *p == Cell::Null), "no password");
            }
            _ => assert_eq!(got, rows, "{table}"),
        }
    }
    assert!(before["cell/audit_events"].len() > 1100, "a long chain");
    for table in [
        "cell/resources",
        "cell/resource_shares",
        "cell/files",
        "cell/runs",
        "cell/events",
        "catalog/memberships",
    ] {
        assert!(!before[table].is_empty(), "{table} was carried with rows");
    }

    b.assert_chain_verifies(&t.tenant_id, "the imported chain")
        .await;
    assert_eq!(
        usage(&b, &t.tenant_id).await,
        usage_before,
        "usage equals the counts"
    );
    let files = &before["cell/files"];
    let (fid, digest) = (files[0][0].clone(), files[0][4].clone());
    let Cell::Text(fid) = fid else { panic!() };
    let got = b
        .client
        .get(format!("{}/v1/files/{fid}/content", b.base))
        .bearer_auth(&b.admin_token)
        .header("x-tenant-id", &t.tenant_id)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    use sha2::Digest;
    let body = got.bytes().await.unwrap();
    assert_eq!(Cell::Text(hex::encode(sha2::Sha256::digest(&body))), digest);
    let login = b
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"email": t.email, "password": t.password})),
        )
        .await;
    assert_eq!(login.status, 401, "an imported member has no password yet");

    // The same archive again: a named conflict, and nothing changed.
    let again = b
        .cli_bg(&["tenant", "import", file.to_str().unwrap()])
        .await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("conflict"));
    let other_slug = b
        .cli_bg(&["tenant", "import", file.to_str().unwrap(), "--as", "acme-2"])
        .await;
    assert!(
        !other_slug.status.success(),
        "the tenant id is taken whatever the slug"
    );
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// An archive's entries: (name, bytes), in order.
type Entries = Vec<(String, Vec<u8>)>;

/// The archive's entries, in order.
pub fn entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    use std::io::Read;
    let mut ar = tar::Archive::new(std::fs::File::open(path).unwrap());
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut body = Vec::new();
            e.read_to_end(&mut body).unwrap();
            (name, body)
        })
        .collect()
}

fn write_entries(path: &Path, entries: &[(String, Vec<u8>)]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, body) in entries {
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, body.as_slice()).unwrap();
    }
    b.into_inner().unwrap();
}

/// Re-signs a manifest with a key of the test's own, and refreshes the digests of `parts`.
fn resign(entries: &mut [(String, Vec<u8>)], edit: impl FnOnce(&mut Manifest)) {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ed25519_dalek::Signer;
    use sha2::Digest;
    let mut m: Manifest = serde_json::from_slice(&entries[0].1).unwrap();
    for part in &mut m.parts {
        let body = &entries.iter().find(|(n, _)| *n == part.name).unwrap().1;
        part.bytes = body.len() as u64;
        part.sha256 = hex::encode(sha2::Sha256::digest(body));
    }
    edit(&mut m);
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    m.signature = Some(tenantd_server::auth::keys::DetachedSignature {
        kid: "attacker".into(),
        public_key: URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
        value: URL_SAFE_NO_PAD.encode(key.sign(&m.signed_bytes()).to_bytes()),
    });
    entries[0].1 = serde_json::to_vec(&m).unwrap();
}

/// Edits line `n` (0: the header) of the part `name` with `f`.
fn edit_line(entries: &mut [(String, Vec<u8>)], name: &str, f: impl FnOnce(&mut Vec<String>)) {
    let e = entries.iter_mut().find(|(n, _)| n == name).unwrap();
    let text = String::from_utf8(e.1.clone()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    f(&mut lines);
    e.1 = (lines.join("\n") + "\n").into_bytes();
}

#[tokio::test]
async fn every_tampered_archive_is_refused_before_any_write() {
    let a = TestApp::spawn_with(open_policy).await;
    let (t, _) = populated(&a, "acme", 40).await;
    let op = tenantd_server::context::Caller::operator(&a.state)
        .await
        .unwrap();
    let tenant = a.state.catalog.find_tenant(tid(&t)).await.unwrap().unwrap();
    let file = a.dir.join("acme.tar");
    let m = export::export(&a.state, &op, &tenant, &file, &Default::default(), &Silent)
        .await
        .unwrap();
    let trusted = m.signature.as_ref().unwrap().public_key.clone();
    let good = entries(&file);
    let b = TestApp::spawn().await;
    let bop = tenantd_server::context::Caller::operator(&b.state)
        .await
        .unwrap();
    let dir = b.dir.join("bad");
    std::fs::create_dir_all(&dir).unwrap();

    let mut cases: Vec<(String, Entries, bool)> = Vec::new();
    for i in 0..good.len() {
        let mut e = good.clone();
        let mid = e[i].1.len() / 2;
        if e[i].1.is_empty() {
            continue;
        }
        e[i].1[mid] ^= 0x20;
        cases.push((format!("a byte flipped in {}", good[i].0), e, false));
    }
    let mut e = good.clone();
    e.retain(|(n, _)| n != "cell/resources.jsonl");
    cases.push(("a part missing".into(), e, false));
    let mut e = good.clone();
    e.pop();
    cases.push(("the last entry (a blob) missing".into(), e, false));
    let mut e = good.clone();
    e.insert(3, ("cell/extra.jsonl".into(), b"[\"x\"]\n".to_vec()));
    cases.push(("a part added".into(), e, false));
    let mut e = good.clone();
    e.push(("blobs/not-a-file".into(), b"x".to_vec()));
    cases.push(("a blob added".into(), e, false));
    let mut e = good.clone();
    edit_line(&mut e, "cell/audit_events.jsonl", |l| {
        l[3] = l[3].replacen("success", "failure", 1);
    });
    resign(&mut e, |_| {});
    cases.push((
        "an audit event edited, the digests and signature remade".into(),
        e,
        false,
    ));
    let mut e = good.clone();
    edit_line(&mut e, "cell/audit_events.jsonl", |l| l.swap(2, 3));
    resign(&mut e, |_| {});
    cases.push((
        "two audit events swapped, the digests and signature remade".into(),
        e,
        false,
    ));
    let mut e = good.clone();
    edit_line(&mut e, "cell/resources.jsonl", |l| {
        l[1] = l[1].replacen(&t.tenant_id, &uuid::Uuid::now_v7().to_string(), 1);
    });
    resign(&mut e, |_| {});
    cases.push((
        "a row of another tenant, the digests and signature remade".into(),
        e,
        false,
    ));
    let mut e = good.clone();
    resign(&mut e, |m| m.version = 2);
    cases.push(("a newer format version".into(), e, false));
    let mut e = good.clone();
    let mut sig: Value = serde_json::from_slice(&e[0].1).unwrap();
    let v = sig["signature"]["value"].as_str().unwrap().to_owned();
    let flipped = match v.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", &v[1..]),
    };
    sig["signature"]["value"] = json!(flipped);
    e[0].1 = serde_json::to_vec(&sig).unwrap();
    cases.push(("a wrong signature".into(), e, false));
    let mut e = good.clone();
    resign(&mut e, |_| {});
    cases.push((
        "signed by a key that is not the trusted one".into(),
        e,
        true,
    ));

    for (i, (what, e, with_trust)) in cases.into_iter().enumerate() {
        let path: PathBuf = dir.join(format!("{i}.tar"));
        write_entries(&path, &e);
        let opts = ImportOptions {
            trusted: with_trust.then(|| vec![trusted.clone()]),
            ..Default::default()
        };
        let r = import(&b.state, &bop, &path, &opts, &Silent).await;
        assert!(r.is_err(), "{what}: accepted");
        assert!(
            traces(&b.state, tid(&t)).await.is_empty(),
            "{what}: left something behind"
        );
    }
    for cut in [
        10,
        600,
        std::fs::metadata(&file).unwrap().len() as usize / 2,
        std::fs::metadata(&file).unwrap().len() as usize - 1100,
    ] {
        let bytes = std::fs::read(&file).unwrap();
        let path = dir.join(format!("cut-{cut}.tar"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let r = import(&b.state, &bop, &path, &ImportOptions::default(), &Silent).await;
        assert!(r.is_err(), "truncated at {cut}: accepted");
        assert!(
            traces(&b.state, tid(&t)).await.is_empty(),
            "truncated at {cut}: left something"
        );
    }
    // The archive itself passes every check.
    let opts = ImportOptions {
        trusted: Some(vec![trusted]),
        ..Default::default()
    };
    let r = import(&b.state, &bop, &file, &opts, &Silent).await.unwrap();
    assert_eq!(r.tenant.id, tid(&t));
}
