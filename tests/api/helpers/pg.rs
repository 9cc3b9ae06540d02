//! Throwaway PostgreSQL databases for the tests (catalog and two cells), with an owner role
//! that migrates and a serving role that RLS binds.

use tenantd_server::config::Config;

/// The PostgreSQL server for the tests that need one whatever the backend: `TENANTD_TEST_PG`.
/// Without it they say they were skipped; under `CI=true` that is a failure.
pub fn require_postgres(test: &str) -> Option<String> {
    match std::env::var("TENANTD_TEST_PG") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: TENANTD_TEST_PG is not set, and CI=true does not allow skipping")
        }
        Err(_) => {
            eprintln!("SKIPPED {test}: no PostgreSQL (set TENANTD_TEST_PG to a superuser URL)");
            None
        }
    }
}

/// Which backend the suite runs on: `TENANTD_TEST_BACKEND=postgres` runs every test against
/// PostgreSQL (catalog and two cells on the server `TENANTD_TEST_PG` names, as a superuser
/// URL used only to create throwaway databases and roles); otherwise SQLite.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("TENANTD_TEST_BACKEND").as_deref() {
        Ok("postgres") => Some(
            std::env::var("TENANTD_TEST_PG")
                .expect("TENANTD_TEST_BACKEND=postgres needs TENANTD_TEST_PG (a superuser URL)"),
        ),
        _ => None,
    }
}

/// The throwaway PostgreSQL databases of one test.
pub struct PgTest {
    pub admin: String,
    pub dbs: Vec<String>,
}

fn with_db(url: &str, user: &str, db: &str) -> String {
    // postgres://user@host:port/db → same host, another user and database.
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let host = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let host = host.split('/').next().unwrap_or(host);
    format!("postgres://{user}@{host}/{db}")
}

impl PgTest {
    pub async fn create(admin: &str) -> Self {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(admin)
            .await
            .expect("TENANTD_TEST_PG reachable");
        for (role, extra) in [
            ("tenantd_test_owner", "CREATEROLE"),
            ("tenantd_test_app", ""),
        ] {
            let sql = format!(
                "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN CREATE ROLE {role} LOGIN {extra}; END IF; END $$"
            );
            // Parallel tests may race to create the role: a duplicate is fine.
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
        }
        let _ = sqlx::raw_sql("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenantd_app') THEN CREATE ROLE tenantd_app NOLOGIN; END IF; END $$").execute(&pool).await;
        let _ = sqlx::raw_sql("GRANT tenantd_app TO tenantd_test_owner WITH ADMIN OPTION")
            .execute(&pool)
            .await;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let dbs: Vec<String> = ["cat", "c1", "c2"]
            .iter()
            .map(|s| format!("tdt_{id}_{s}"))
            .collect();
        for db in &dbs {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "CREATE DATABASE {db} OWNER tenantd_test_owner"
            )))
            .execute(&pool)
            .await
            .expect("create database");
        }
        pool.close().await;
        PgTest {
            admin: admin.to_owned(),
            dbs,
        }
    }

    pub fn app_url(&self, i: usize) -> String {
        with_db(&self.admin, "tenantd_test_app", &self.dbs[i])
    }

    pub fn owner_url(&self, i: usize) -> String {
        with_db(&self.admin, "tenantd_test_owner", &self.dbs[i])
    }

    pub fn superuser_url(&self, i: usize) -> String {
        let rest = self
            .admin
            .split_once("://")
            .map(|(_, r)| r)
            .unwrap_or(&self.admin);
        let user = rest
            .rsplit_once('@')
            .map(|(u, _)| u.split(':').next().unwrap_or(u))
            .unwrap_or("postgres");
        with_db(&self.admin, user, &self.dbs[i])
    }

    pub fn configure(&self, c: &mut Config) {
        use tenantd_server::config::{CellConfig, DbLocation};
        use tenantd_store::postgres::PgLocation;
        let loc = |i: usize| {
            DbLocation::Postgres(PgLocation {
                url: self.app_url(i),
                migrate_url: Some(self.owner_url(i)),
                max_connections: 8,
            })
        };
        c.catalog = loc(0);
        c.cells = vec![
            CellConfig {
                name: "local".into(),
                region: Some("us".into()),
                dedicated: false,
                location: loc(1),
                blobs: None,
            },
            CellConfig {
                name: "eu-1".into(),
                region: Some("eu".into()),
                dedicated: false,
                location: loc(2),
                blobs: None,
            },
        ];
    }

    /// The TOML the CLI needs to reach the same databases.
    pub fn toml(&self) -> String {
        format!(
            "password_hashing = \"insecure-fast-for-tests\"\n[catalog]\nurl = \"{}\"\nmigrate_url = \"{}\"\n[[cells]]\nname = \"local\"\nregion = \"us\"\nurl = \"{}\"\nmigrate_url = \"{}\"\n[[cells]]\nname = \"eu-1\"\nregion = \"eu\"\nurl = \"{}\"\nmigrate_url = \"{}\"\n",
            self.app_url(0),
            self.owner_url(0),
            self.app_url(1),
            self.owner_url(1),
            self.app_url(2),
            self.owner_url(2)
        )
    }
}

impl Drop for PgTest {
    fn drop(&mut self) {
        // Best effort: the databases are throwaway either way.
        for db in &self.dbs {
            let _ = std::process::Command::new("psql")
                .arg(&self.admin)
                .args([
                    "-q",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"),
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}
