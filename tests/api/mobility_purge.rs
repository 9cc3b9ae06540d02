//! Purge after retention, restore from an archive, and an import killed midway — each
//! checked against the schema itself: every table of the catalog and of every cell that has
//! a column naming a tenant is searched for the tenant's id.

use serde_json::json;
use tenantd_core::ids::TenantId;
use tenantd_server::mobility::import::{ImportOptions, import, restore};
use tenantd_server::mobility::{Silent, export};

use crate::helpers::receiver::open_policy;
use crate::helpers::{Signed, TestApp};
use crate::mobility::{dump, populated, settle, traces};
use crate::mobility_download::api_export;

/// Every row anywhere that names `tenant` in a tenant column: `table: n`, read behind the
/// application's back from the schema's own list of tables and columns.
async fn rows_naming(app: &TestApp, tenant: &str) -> Vec<String> {
    const COLUMNS: [&str; 3] = ["tenant_id", "owner_tenant_id", "last_tenant_id"];
    let mut out = Vec::new();
    match &app.pg {
        Some(pg) => {
            for i in 0..pg.dbs.len() {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&pg.superuser_url(i))
                    .await
                    .unwrap();
                let cols: Vec<(String, String)> = sqlx::query_as(
                    "SELECT table_name::text, column_name::text FROM information_schema.columns \
                     WHERE table_schema = 'public' AND (column_name = ANY($1) \
                     OR (table_name = 'tenants' AND column_name = 'id'))",
                )
                .bind(COLUMNS.to_vec())
                .fetch_all(&pool)
                .await
                .unwrap();
                assert!(cols.len() > 5, "the schema lists its tenant columns");
                for (table, column) in cols {
                    let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1");
                    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(tenant)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                    if n > 0 {
                        out.push(format!("db {i} {table}.{column}: {n}"));
                    }
                }
                pool.close().await;
            }
        }
        None => {
            let mut files = vec![app.dir.join("catalog.db")];
            for e in std::fs::read_dir(app.dir.join("cells")).unwrap() {
                let p = e.unwrap().path();
                if p.extension().is_some_and(|x| x == "db") {
                    files.push(p);
                }
            }
            for f in files {
                // Read-only, beside the server's own connections (never changing the journal).
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(&f)
                    .read_only(true);
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(opts)
                    .await
                    .unwrap();
                let cols: Vec<(String, String)> = sqlx::query_as(
                    "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p \
                     WHERE m.type = 'table' AND (p.name IN ('tenant_id', 'owner_tenant_id', 'last_tenant_id') \
                     OR (m.name = 'tenants' AND p.name = 'id'))",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                assert!(cols.len() > 3, "the schema lists its tenant columns");
                for (table, column) in cols {
                    let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1");
                    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(tenant)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                    if n > 0 {
                        out.push(format!("{} {table}.{column}: {n}", f.display()));
                    }
                }
                pool.close().await;
            }
        }
    }
    out
}

fn tid(s: &Signed) -> TenantId {
    TenantId(s.tenant_id.parse().unwrap())
}

/// Moves a deleted tenant's `purge_after` into the past, behind the application's back.
pub async fn past_retention(app: &TestApp, tenant: &str) {
    let sql = "UPDATE tenants SET purge_after = '2000-01-01T00:00:00.000000Z' WHERE id = $1";
    match &app.pg {
        Some(pg) => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&pg.superuser_url(0))
                .await
                .unwrap();
            sqlx::query(sql).bind(tenant).execute(&pool).await.unwrap();
            pool.close().await;
        }
        None => {
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .connect(&format!(
                    "sqlite://{}",
                    app.dir.join("catalog.db").display()
                ))
                .await
                .unwrap();
            sqlx::query(sql).bind(tenant).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

#[tokio::test]
async fn purge_leaves_nothing_of_the_tenant_but_its_record() {
    let app = TestApp::spawn_with(open_policy).await;
    let (t, _) = populated(&app, "gone", 30).await;
    let (n, _) = populated(&app, "stays", 10).await;
    // An archive kept for download goes with the tenant too.
    api_export(&app, &t.tenant_id).await;
    let neighbour = dump(&app.state, tid(&n)).await;
    assert!(!rows_naming(&app, &t.tenant_id).await.is_empty());
    let d = app
        .call(
            "DELETE",
            &format!("/v1/tenants/{}", t.tenant_id),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert!(d.status < 300, "{}", d.text);

    // Not yet past its retention: nothing to purge.
    let out = app.cli_bg(&["purge", "--dry-run", "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["tenants"], json!([]));

    past_retention(&app, &t.tenant_id).await;
    let out = app.cli_bg(&["purge", "--dry-run", "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed["tenants"][0]["slug"], "gone", "{listed}");
    assert!(
        app.state
            .catalog
            .find_tenant(tid(&t))
            .await
            .unwrap()
            .is_some(),
        "a dry run removes nothing"
    );

    let out = app.cli_bg(&["purge", "--json"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["tenants"][0]["tenant_id"], t.tenant_id.as_str());
    assert_eq!(done["tenants"][0]["blobs"], 1);
    assert_eq!(rows_naming(&app, &t.tenant_id).await, Vec::<String>::new());
    assert!(traces(&app.state, tid(&t)).await.is_empty());
    for email in [t.email.clone(), "member@gone.test".to_owned()] {
        assert!(
            app.state
                .catalog
                .find_user_by_email(&email)
                .await
                .unwrap()
                .is_none(),
            "{email}: an account with no membership left is removed"
        );
    }
    assert_eq!(
        dump(&app.state, tid(&n)).await,
        neighbour,
        "the neighbour is untouched"
    );

    // Its record stays in the platform tenant's chain, which still verifies.
    settle(&app).await;
    let platform = app.state.platform.to_string();
    let chain = app.audit_of(&platform).await;
    let rec = chain
        .iter()
        .find(|e| e["action"] == "tenant.purged")
        .expect("a tenant.purged record");
    assert_eq!(rec["resource_id"], t.tenant_id.as_str());
    assert!(
        rec["details"]["rows"]["cell/resources"].as_u64().unwrap() >= 30,
        "{rec}"
    );
    app.assert_chain_verifies(&platform, "the chain").await;

    // The slug is free again, and a second purge finds nothing.
    let again = app.signup("gone", None).await;
    assert_ne!(again.tenant_id, t.tenant_id);
    let out = app.cli_bg(&["purge", "--json"]).await;
    let done: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(done["tenants"], json!([]));
}

#[tokio::test]
async fn restore_puts_one_tenant_back_and_leaves_its_neighbours_identical() {
    let app = TestApp::spawn_with(open_policy).await;
    let (t, _) = populated(&app, "acme", 50).await;
    let (n, _) = populated(&app, "bolt", 20).await;
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
    let file = app.dir.join("acme.tar");
    let at_export = dump(&app.state, tid(&t)).await;
    export::export(
        &app.state,
        &op,
        &tenant,
        &file,
        &Default::default(),
        &Silent,
    )
    .await
    .unwrap();

    // The tenant changes after its archive: more items, one gone, a renamed tenant.
    for i in 0..5 {
        assert_eq!(
            app.create(&t.token, "tools", &format!("late-{i}"))
                .await
                .status,
            201
        );
    }
    let list = app
        .call("GET", "/v1/agents?limit=1", Some(&t.token), None)
        .await;
    let id = list.body["items"][0]["id"].as_str().unwrap().to_owned();
    let del = app
        .call("DELETE", &format!("/v1/agents/{id}"), Some(&t.token), None)
        .await;
    assert!(del.status < 300, "{}", del.text);
    settle(&app).await;
    let neighbour = dump(&app.state, tid(&n)).await;

    let r = restore(&app.state, &op, &file, &ImportOptions::default(), &Silent)
        .await
        .unwrap();
    assert_eq!(r.linked, 2, "members keep their accounts");
    let after = dump(&app.state, tid(&t)).await;
    for (table, rows) in &at_export {
        match table.as_str() {
            "cell/audit_events" => {
                assert_eq!(&after[table][..rows.len()], rows.as_slice());
                assert_eq!(after[table].len(), rows.len() + 1, "and tenant.restored");
            }
            "cell/audit_heads" | "cell/webhook_endpoints" | "catalog/users" => {}
            _ => assert_eq!(&after[table], rows, "{table}"),
        }
    }
    assert_eq!(
        dump(&app.state, tid(&n)).await,
        neighbour,
        "neighbours untouched"
    );
    let login = app
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"email": t.email, "password": t.password})),
        )
        .await;
    assert_eq!(
        login.status, 200,
        "the owner signs in as before: {}",
        login.text
    );
    for who in [&t, &n] {
        app.assert_chain_verifies(&who.tenant_id, "the chain").await;
    }
}

#[tokio::test]
async fn an_import_that_did_not_finish_is_cleaned_up_by_the_next() {
    let a = TestApp::spawn_with(open_policy).await;
    let (t, _) = populated(&a, "acme", 20).await;
    let op = tenantd_server::context::Caller::operator(&a.state)
        .await
        .unwrap();
    let tenant = a.state.catalog.find_tenant(tid(&t)).await.unwrap().unwrap();
    let file = a.dir.join("acme.tar");
    export::export(&a.state, &op, &tenant, &file, &Default::default(), &Silent)
        .await
        .unwrap();
    let b = TestApp::spawn().await;
    let bop = tenantd_server::context::Caller::operator(&b.state)
        .await
        .unwrap();
    import(&b.state, &bop, &file, &ImportOptions::default(), &Silent)
        .await
        .unwrap();
    let whole = dump(&b.state, tid(&t)).await;
    // As if it had been killed before its catalog transaction: the cell's rows and the blobs
    // are there, the catalog knows nothing.
    let scope = tenantd_core::tenant::TenantScope::unscoped_trusted(tid(&t), tenant.cell.clone());
    b.state
        .catalog
        .copy_remove(&scope, tenantd_core::store::Accounts::Drop)
        .await
        .unwrap();
    assert!(
        b.state
            .catalog
            .find_tenant(tid(&t))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !traces(&b.state, tid(&t)).await.is_empty(),
        "the cell still holds its rows"
    );

    let r = import(&b.state, &bop, &file, &ImportOptions::default(), &Silent)
        .await
        .unwrap();
    assert!(r.cleaned_up);
    let again = dump(&b.state, tid(&t)).await;
    for (table, rows) in &whole {
        if table == "cell/audit_events"
            || table == "cell/audit_heads"
            || table == "cell/webhook_endpoints"
        {
            continue;
        }
        assert_eq!(&again[table], rows, "{table}");
    }
    b.assert_chain_verifies(&t.tenant_id, "the chain").await;
}

fn redis_keys(port: u16, pattern: &str) -> Vec<String> {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "--scan", "--pattern", pattern])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn purge_removes_the_tenant_s_rate_limit_keys_in_redis() {
    let test = "purge_removes_the_tenant_s_rate_limit_keys_in_redis";
    let port = crate::helpers::free_port();
    let Some(mut redis) = crate::helpers::spawn_redis(test, port) else {
        return;
    };
    let url = format!("redis://127.0.0.1:{port}");
    let app = TestApp::spawn_with(|c| c.redis_url = Some(url.clone().into())).await;
    let t = app.signup("limited", Some("professional")).await;
    let n = app.signup("limited-nb", Some("professional")).await;
    for token in [&t.token, &n.token] {
        assert_eq!(app.create(token, "tools", "x").await.status, 201);
    }
    let mine = format!("tenantd:rl:{}:*", t.tenant_id);
    let theirs = format!("tenantd:rl:{}:*", n.tenant_id);
    assert!(
        !redis_keys(port, &mine).is_empty(),
        "the tenant has buckets in Redis"
    );
    let d = app
        .call(
            "DELETE",
            &format!("/v1/tenants/{}", t.tenant_id),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert!(d.status < 300, "{}", d.text);
    past_retention(&app, &t.tenant_id).await;
    let done = tenantd_server::mobility::purge::purge_due(&app.state, false)
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(
        redis_keys(port, &mine),
        Vec::<String>::new(),
        "its keys are gone"
    );
    assert!(
        !redis_keys(port, &theirs).is_empty(),
        "the neighbour's stay"
    );
    settle(&app).await;
    let platform = app.state.platform.to_string();
    let rec = app
        .audit_of(&platform)
        .await
        .into_iter()
        .find(|e| e["action"] == "tenant.purged")
        .expect("a tenant.purged record");
    assert!(rec["details"]["redis_keys"].as_u64().unwrap() >= 1, "{rec}");
    let _ = redis.kill();
    let _ = redis.wait();
}
