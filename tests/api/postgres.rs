//! PostgreSQL's own guarantees: row-level security holds with the application's filter
//! removed, and tenantd refuses to serve as a role that RLS would not bind.

use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tenantd_store::postgres::{PgLocation, open_cell};

use crate::helpers::{PgTest, require_postgres};

async fn pool(url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(2)
        .connect(url)
        .await
        .unwrap()
}

/// Runs `sql` as the serving role inside a transaction bound to `tenant`.
async fn as_tenant(pool: &PgPool, tenant: &str, sql: &str) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    let n = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(n)
}

async fn visible_names(pool: &PgPool, tenant: Option<&str>) -> Vec<String> {
    let mut tx = pool.begin().await.unwrap();
    if let Some(t) = tenant {
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(t)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    // No tenant filter at all: only the policies decide.
    let rows = sqlx::query("SELECT name FROM resources ORDER BY name")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    rows.iter().map(|r| r.get::<String, _>("name")).collect()
}

const A: &str = "0190a000-0000-7000-8000-00000000000a";
const B: &str = "0190a000-0000-7000-8000-00000000000b";
const C: &str = "0190a000-0000-7000-8000-00000000000c";

fn insert(tenant: &str, id: &str, name: &str, mode: &str) -> String {
    format!(
        "INSERT INTO resources (id, tenant_id, kind, name, spec, sharing_mode, version, created_at, updated_at, created_by) VALUES ('{id}', '{tenant}', 'agents', '{name}', '{{}}', '{mode}', 1, 'now', 'now', 'test')"
    )
}

#[tokio::test]
async fn row_level_security_alone_keeps_tenants_apart() {
    let Some(admin) = require_postgres("row_level_security_alone_keeps_tenants_apart") else {
        return;
    };
    let pg = PgTest::create(&admin).await;
    let loc = PgLocation {
        url: pg.app_url(1),
        migrate_url: Some(pg.owner_url(1)),
        max_connections: 2,
    };
    open_cell("c1", &loc)
        .await
        .expect("migrate and open the cell");
    let app = pool(&pg.app_url(1)).await;

    assert_eq!(
        as_tenant(&app, A, &insert(A, "r-a1", "a-private", "private"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        as_tenant(&app, A, &insert(A, "r-a2", "a-global", "global"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        as_tenant(&app, A, &insert(A, "r-a3", "a-for-b", "selective"))
            .await
            .unwrap(),
        1
    );
    as_tenant(&app, A, &format!("INSERT INTO resource_shares (resource_id, owner_tenant_id, tenant_id) VALUES ('r-a3', '{A}', '{B}')")).await.unwrap();
    assert_eq!(
        as_tenant(&app, B, &insert(B, "r-b1", "b-private", "private"))
            .await
            .unwrap(),
        1
    );

    // Reads: own rows, global rows, rows shared with you; nothing without a tenant.
    assert_eq!(
        visible_names(&app, Some(A)).await,
        ["a-for-b", "a-global", "a-private"]
    );
    assert_eq!(
        visible_names(&app, Some(B)).await,
        ["a-for-b", "a-global", "b-private"]
    );
    assert_eq!(visible_names(&app, Some(C)).await, ["a-global"]);
    assert!(visible_names(&app, None).await.is_empty());

    // Writes across tenants: refused or matching nothing, with no WHERE tenant_id at all.
    let err = as_tenant(&app, B, &insert(A, "r-x", "smuggled", "private"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    assert_eq!(
        as_tenant(&app, B, "UPDATE resources SET name = name || '-stolen'")
            .await
            .unwrap(),
        1,
        "only B's own row"
    );
    assert_eq!(
        as_tenant(&app, B, "DELETE FROM resources WHERE name LIKE 'a-%'")
            .await
            .unwrap(),
        0
    );
    let moved = as_tenant(
        &app,
        B,
        &format!("UPDATE resources SET tenant_id = '{A}' WHERE id = 'r-b1'"),
    )
    .await;
    assert!(moved.is_err(), "a row cannot be handed to another tenant");
    assert_eq!(
        visible_names(&app, Some(A)).await,
        ["a-for-b", "a-global", "a-private"]
    );
    // B cannot share A's item onward, nor see A's share list beyond its own entry.
    assert!(as_tenant(&app, B, &format!("INSERT INTO resource_shares (resource_id, owner_tenant_id, tenant_id) VALUES ('r-a1', '{A}', '{C}')")).await.is_err());

    // ...nor by claiming to own it.
    assert!(as_tenant(&app, B, &format!("INSERT INTO resource_shares (resource_id, owner_tenant_id, tenant_id) VALUES ('r-a3', '{B}', '{C}')")).await.is_err());
    assert_eq!(visible_names(&app, Some(C)).await, ["a-global"]);

    // Counters and the audit chain are scoped the same way; audit rows are append-only.
    as_tenant(
        &app,
        A,
        &format!("INSERT INTO quota_counters (tenant_id, quota, used) VALUES ('{A}', 'agents', 3)"),
    )
    .await
    .unwrap();
    assert_eq!(
        as_tenant(&app, B, "UPDATE quota_counters SET used = 0")
            .await
            .unwrap(),
        0
    );
    as_tenant(&app, A, &format!("INSERT INTO audit_events (tenant_id, seq, id, actor, action, resource, outcome, at, details, prev_hash, hash) VALUES ('{A}', 1, 'e1', 'x', 'y', 'z', 'success', 'now', '{{}}', 'p', 'h')")).await.unwrap();
    let tamper = as_tenant(&app, A, "UPDATE audit_events SET actor = 'evil'")
        .await
        .unwrap_err();
    assert!(tamper.to_string().contains("permission denied"), "{tamper}");
    // Deleting them takes the removal scope (purge, restore, a move's clean-up), which names
    // the tenant being removed; in its ordinary scope nothing goes.
    assert_eq!(
        as_tenant(&app, A, "DELETE FROM audit_events")
            .await
            .unwrap(),
        0
    );
    app.close().await;
}

#[tokio::test]
async fn tenantd_refuses_to_serve_as_a_role_that_rls_does_not_bind() {
    let Some(admin) = require_postgres("tenantd_refuses_to_serve_as_a_role_that_rls_does_not_bind")
    else {
        return;
    };
    let pg = PgTest::create(&admin).await;
    let superuser = PgLocation {
        url: pg.superuser_url(1),
        migrate_url: Some(pg.owner_url(1)),
        max_connections: 2,
    };
    let e = open_cell("c1", &superuser)
        .await
        .expect_err("a superuser is refused")
        .to_string();
    assert!(e.contains("superuser"), "{e}");
    let owner = PgLocation {
        url: pg.owner_url(1),
        migrate_url: Some(pg.owner_url(1)),
        max_connections: 2,
    };
    let e = open_cell("c1", &owner)
        .await
        .expect_err("the tables' owner is refused")
        .to_string();
    assert!(e.contains("owns"), "{e}");
    let ok = PgLocation {
        url: pg.app_url(1),
        migrate_url: Some(pg.owner_url(1)),
        max_connections: 2,
    };
    assert!(open_cell("c1", &ok).await.is_ok());

    // The same through the binary: a clear one-line reason and a non-zero exit.
    let dir = crate::helpers::temp_dir();
    let cfg = dir.join("bad.toml");
    std::fs::write(
        &cfg,
        format!(
            "[catalog]\nurl = \"{}\"\nmigrate_url = \"{}\"\n",
            pg.superuser_url(0),
            pg.owner_url(0)
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenantd"))
        .args(["migrate", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && text.contains("superuser"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn tenantd_connects_over_tls_when_the_url_asks_for_it() {
    let Some(admin) = require_postgres("tenantd_connects_over_tls_when_the_url_asks_for_it") else {
        return;
    };
    let pg = PgTest::create(&admin).await;
    let sup = pool(&pg.superuser_url(1)).await;
    let server_ssl: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&sup)
        .await
        .unwrap();
    if server_ssl != "on" {
        // scripts/lib-pg.sh turns TLS on for its throwaway server; another server may not.
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true: the test PostgreSQL has ssl = off");
        }
        eprintln!(
            "SKIPPED tenantd_connects_over_tls_when_the_url_asks_for_it: the server has ssl = off"
        );
        return;
    }
    let tls = |u: String| format!("{u}?sslmode=require");
    let loc = PgLocation {
        url: tls(pg.app_url(1)),
        migrate_url: Some(tls(pg.owner_url(1))),
        max_connections: 2,
    };
    use tenantd_core::store::CellStore;
    let cell = open_cell("c1", &loc).await.expect("a cell over TLS");
    cell.ping().await.unwrap();
    // Every connection the serving role holds to that database is encrypted.
    let db = pg.dbs[1].clone();
    let (conns, encrypted): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.datname = $1 AND a.usename = 'tenantd_test_app'",
    )
    .bind(&db)
    .fetch_one(&sup)
    .await
    .unwrap();
    assert!(conns > 0, "the cell holds no connection to check");
    assert_eq!(
        encrypted, conns,
        "{conns} connections, {encrypted} over TLS"
    );
}

/// Two deployments set up on one cluster as the README says: each with its own owner and
/// serving role, catalog and cell, and the cluster's (empty) `tenantd_app`. Neither serving
/// role can connect to the other's databases; and even where a DBA hands CONNECT back to
/// PUBLIC, it can read and write none of the other's tables.
#[tokio::test]
async fn two_deployments_on_one_cluster_reach_nothing_of_each_other() {
    let Some(admin) =
        require_postgres("two_deployments_on_one_cluster_reach_nothing_of_each_other")
    else {
        return;
    };
    let su = pool(&admin).await;
    let _ = sqlx::raw_sql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantd_app') THEN CREATE ROLE tenantd_app NOLOGIN; END IF; END $$").execute(&su).await;
    let id = &uuid::Uuid::now_v7().simple().to_string()[20..];
    let name = |d: &str, what: &str| format!("tdd_{id}_{d}_{what}");
    let url = |role: &str, db: &str| {
        let rest = admin.split_once("://").map(|(_, r)| r).unwrap_or(&admin);
        let host = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
        let host = host.split('/').next().unwrap_or(host);
        format!("postgres://{role}@{host}/{db}")
    };
    for d in ["a", "b"] {
        for sql in [
            format!("CREATE ROLE {} LOGIN", name(d, "owner")),
            format!("CREATE ROLE {} LOGIN", name(d, "serve")),
            format!(
                "CREATE DATABASE {} OWNER {}",
                name(d, "cat"),
                name(d, "owner")
            ),
            format!(
                "CREATE DATABASE {} OWNER {}",
                name(d, "cell"),
                name(d, "owner")
            ),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&su)
                .await
                .unwrap();
        }
        // Exactly the README's configuration, migrated by the binary.
        let dir = crate::helpers::temp_dir();
        let cfg = dir.join("tenantd.toml");
        std::fs::write(
            &cfg,
            format!(
                "[catalog]\nurl = \"{}\"\nmigrate_url = \"{}\"\n[[cells]]\nname = \"c1\"\nurl = \"{}\"\nmigrate_url = \"{}\"\n",
                url(&name(d, "serve"), &name(d, "cat")),
                url(&name(d, "owner"), &name(d, "cat")),
                url(&name(d, "serve"), &name(d, "cell")),
                url(&name(d, "owner"), &name(d, "cell")),
            ),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tenantd"))
            .args(["migrate", "--config"])
            .arg(&cfg)
            .arg("--data-dir")
            .arg(&dir)
            .env("TENANTD_PASSWORD_HASHING", "insecure-fast-for-tests")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_dir_all(dir);
    }
    let catalog_tables = [
        "users",
        "sessions",
        "api_keys",
        "memberships",
        "signing_keys",
        "tenants",
    ];
    let cell_tables = ["resources", "audit_events", "files", "quota_counters"];

    // Each deployment's own serving role works on its own databases (so the refusals below
    // are about the other deployment, not a broken setup).
    for d in ["a", "b"] {
        let own = pool(&url(&name(d, "serve"), &name(d, "cat"))).await;
        for t in catalog_tables {
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {t}")))
                .fetch_one(&own)
                .await
                .unwrap_or_else(|e| panic!("{d} reads its own {t}: {e}"));
        }
        own.close().await;
    }
    let refused_connect = |r: Result<PgPool, sqlx::Error>| match r {
        Err(sqlx::Error::Database(e)) => e.code().as_deref() == Some("42501"),
        _ => false,
    };
    for (me, other) in [("a", "b"), ("b", "a")] {
        for db in ["cat", "cell"] {
            let r = PgPoolOptions::new()
                .max_connections(1)
                .connect(&url(&name(me, "serve"), &name(other, db)))
                .await;
            assert!(
                refused_connect(r),
                "{me}'s serving role connected to {other}'s {db}"
            );
        }
        // The old shared role holds nothing here either.
        let c = pool(&url(&name(other, "owner"), &name(other, "cat"))).await;
        let held: bool = sqlx::query_scalar(
            "SELECT has_table_privilege('tenantd_app', 'users', 'SELECT') OR has_table_privilege('tenantd_app', 'signing_keys', 'SELECT')",
        )
        .fetch_one(&c)
        .await
        .unwrap();
        assert!(
            !held,
            "tenantd_app still holds privileges in {other}'s catalog"
        );
        c.close().await;
    }
    // A DBA's mistake: CONNECT handed back to PUBLIC. The tables stay closed to the other
    // deployment's serving role, for reading and for writing, whatever tenant it claims.
    for db in [name("a", "cat"), name("a", "cell")] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "GRANT CONNECT ON DATABASE {db} TO PUBLIC"
        )))
        .execute(&su)
        .await
        .unwrap();
    }
    let intruder = pool(&url(&name("b", "serve"), &name("a", "cat"))).await;
    for t in catalog_tables {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {t}")))
            .fetch_one(&intruder)
            .await;
        assert!(r.is_err(), "b's serving role read a's {t}");
    }
    assert!(
        sqlx::query("UPDATE users SET name = 'x'")
            .execute(&intruder)
            .await
            .is_err(),
        "b's serving role wrote a's users"
    );
    intruder.close().await;
    let intruder = pool(&url(&name("b", "serve"), &name("a", "cell"))).await;
    for t in cell_tables {
        let sql = format!("SELECT COUNT(*) FROM {t}");
        assert!(
            as_tenant(&intruder, A, &sql).await.is_err(),
            "b's serving role read a's {t}"
        );
    }
    assert!(
        as_tenant(
            &intruder,
            A,
            &insert(A, "0190a000-0000-7000-8000-0000000000f1", "x", "private")
        )
        .await
        .is_err(),
        "b's serving role wrote into a's cell"
    );
    intruder.close().await;

    for d in ["a", "b"] {
        for db in ["cat", "cell"] {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                name(d, db)
            )))
            .execute(&su)
            .await;
        }
    }
    for d in ["a", "b"] {
        for r in ["serve", "owner"] {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP ROLE IF EXISTS {}",
                name(d, r)
            )))
            .execute(&su)
            .await;
        }
    }
    su.close().await;
}

/// An installation from before migration 3 — tables granted to the cluster-wide
/// `tenantd_app`, `CONNECT` for `PUBLIC` — is upgraded by the next migration run: the shared
/// role and `PUBLIC` hold nothing afterwards, and the serving role, granted directly, serves.
#[tokio::test]
async fn an_installation_from_before_migration_3_is_upgraded_to_its_own_grants() {
    let Some(admin) =
        require_postgres("an_installation_from_before_migration_3_is_upgraded_to_its_own_grants")
    else {
        return;
    };
    let pg = PgTest::create(&admin).await;
    let loc = PgLocation {
        url: pg.app_url(0),
        migrate_url: Some(pg.owner_url(0)),
        max_connections: 2,
    };
    tenantd_store::postgres::open_catalog(&loc).await.unwrap();
    // Back to how migrations 1 and 2 left it.
    let su = pool(&pg.superuser_url(0)).await;
    let db = &pg.dbs[0];
    for sql in [
        "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO tenantd_app"
            .to_owned(),
        format!("GRANT CONNECT, TEMPORARY ON DATABASE {db} TO PUBLIC"),
        "GRANT USAGE ON SCHEMA public TO PUBLIC".to_owned(),
        "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM tenantd_test_app".to_owned(),
        format!("REVOKE CONNECT ON DATABASE {db} FROM tenantd_test_app"),
        "GRANT tenantd_app TO tenantd_test_app".to_owned(),
        "DROP TABLE _tenantd_grants".to_owned(),
        "DELETE FROM _tenantd_migrations WHERE version = 3".to_owned(),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&su)
            .await
            .unwrap();
    }
    let before: bool =
        sqlx::query_scalar("SELECT has_table_privilege('tenantd_app', 'users', 'SELECT')")
            .fetch_one(&su)
            .await
            .unwrap();
    assert!(before, "the old layout is in place");

    tenantd_store::postgres::open_catalog(&loc)
        .await
        .expect("the upgrade serves");
    let (shared, public_connect, serving, member): (bool, bool, bool, bool) = sqlx::query_as(
        "SELECT has_table_privilege('tenantd_app', 'users', 'SELECT') OR has_table_privilege('tenantd_app', 'signing_keys', 'SELECT'),
                EXISTS (SELECT 1 FROM pg_database d, aclexplode(d.datacl) a WHERE d.datname = current_database() AND a.grantee = 0 AND a.privilege_type = 'CONNECT'),
                has_table_privilege('tenantd_test_app', 'users', 'SELECT'),
                pg_has_role('tenantd_test_app', 'tenantd_app', 'MEMBER')",
    )
    .fetch_one(&su)
    .await
    .unwrap();
    assert!(!shared, "tenantd_app still holds privileges");
    assert!(!public_connect, "PUBLIC may still connect");
    assert!(serving, "the serving role was granted directly");
    assert!(!member, "the serving role left tenantd_app");
    su.close().await;
}
