//! The two backends every check runs on (the helpers the checks share are in `helpers`,
//! re-exported here).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tenantd_core::Result;
use tenantd_core::ids::{ResourceId, TenantId, UserId};
use tenantd_core::resource::{Resource, ResourceKind, SharedFilter};
use tenantd_core::store::*;
use tenantd_core::tenant::{Tenant, TenantScope};
use tenantd_store::postgres::PgLocation;

pub use crate::helpers::*;

/// The first cell.
pub const LOCAL: &str = "local";
/// The second cell.
pub const EU: &str = "eu-1";
/// Both cells, by index (the property test names cells by index).
pub const CELLS: [&str; 2] = [LOCAL, EU];

/// A catalog and two cells of one backend, removed when dropped.
pub struct Backend {
    /// `sqlite` or `postgres`, for messages.
    pub name: &'static str,
    pub catalog: Arc<dyn CatalogStore>,
    pub local: Arc<dyn CellStore>,
    pub eu: Arc<dyn CellStore>,
    // Last: the stores close their pools before the files or databases go.
    _guard: Guard,
}

enum Guard {
    Dir(PathBuf),
    // Held for its Drop, which drops the databases.
    Pg(#[allow(dead_code)] PgTest),
}

impl Drop for Guard {
    fn drop(&mut self) {
        match self {
            Guard::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            // PgTest drops its databases itself.
            Guard::Pg(_) => {}
        }
    }
}

impl Backend {
    /// SQLite: a catalog and two cells in fresh files under the temp directory.
    pub async fn sqlite() -> Backend {
        let dir = std::env::temp_dir().join(format!("tenantd-conformance-{}", unique()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let guard = Guard::Dir(dir.clone());
        let catalog = tenantd_store::sqlite::open_catalog(&dir.join("catalog.db"))
            .await
            .expect("open the SQLite catalog");
        let local = tenantd_store::sqlite::open_cell(LOCAL, &dir.join("cell-local.db"))
            .await
            .expect("open the SQLite cell local");
        let eu = tenantd_store::sqlite::open_cell(EU, &dir.join("cell-eu-1.db"))
            .await
            .expect("open the SQLite cell eu-1");
        Backend {
            name: "sqlite",
            catalog: Arc::new(catalog),
            local: Arc::new(local),
            eu: Arc::new(eu),
            _guard: guard,
        }
    }

    /// PostgreSQL on the server `TENANTD_TEST_PG` names (a superuser URL, used only to make
    /// roles and throwaway databases): served as `tenantd_test_app`, migrated as
    /// `tenantd_test_owner`. `None` (the test says it was skipped) when the variable is
    /// unset — a panic under `CI=true`.
    pub async fn postgres() -> Option<Backend> {
        let test = std::thread::current()
            .name()
            .unwrap_or("a PostgreSQL conformance test")
            .to_owned();
        let admin = match std::env::var("TENANTD_TEST_PG") {
            Ok(url) if !url.trim().is_empty() => url,
            _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("{test}: TENANTD_TEST_PG is not set, and CI=true does not allow skipping")
            }
            _ => {
                eprintln!("SKIPPED {test}: no PostgreSQL (set TENANTD_TEST_PG)");
                return None;
            }
        };
        let pg = PgTest::create(&admin).await;
        let loc = |i: usize| PgLocation {
            url: pg.app_url(i),
            migrate_url: Some(pg.owner_url(i)),
            max_connections: 6,
        };
        let catalog = tenantd_store::postgres::open_catalog(&loc(0))
            .await
            .expect("open the PostgreSQL catalog");
        let local = tenantd_store::postgres::open_cell(LOCAL, &loc(1))
            .await
            .expect("open the PostgreSQL cell local");
        let eu = tenantd_store::postgres::open_cell(EU, &loc(2))
            .await
            .expect("open the PostgreSQL cell eu-1");
        Some(Backend {
            name: "postgres",
            catalog: Arc::new(catalog),
            local: Arc::new(local),
            eu: Arc::new(eu),
            _guard: Guard::Pg(pg),
        })
    }

    /// A cell by name.
    pub fn cell(&self, name: &str) -> &Arc<dyn CellStore> {
        match name {
            LOCAL => &self.local,
            EU => &self.eu,
            other => panic!("no cell {other}"),
        }
    }

    /// The cell holding `t`'s data.
    pub fn home(&self, t: &TestTenant) -> &Arc<dyn CellStore> {
        self.cell(t.tenant.cell.as_str())
    }

    /// A new tenant in `cell`, owned by a new user, as signup makes one.
    pub async fn tenant(&self, cell: &str) -> TestTenant {
        let user = new_user("owner");
        let (owner, email) = (user.id, user.email.as_str().to_owned());
        let tenant = self
            .catalog
            .create_tenant(
                new_tenant(cell),
                TenantOwner::NewUser(user),
                None,
                Vec::new(),
            )
            .await
            .expect("create a tenant");
        assert_eq!(tenant.cell, cell, "the tenant is placed where it was asked");
        TestTenant {
            tenant,
            owner,
            email,
        }
    }

    /// Creates a private resource of `t` in its cell.
    pub async fn create(
        &self,
        t: &TestTenant,
        kind: ResourceKind,
        name: &str,
        limit: Option<i64>,
    ) -> Result<Resource> {
        self.home(t)
            .create_resource(
                &t.scope(),
                new_resource(kind, name),
                limit,
                draft(t.id(), &format!("{kind}.create")),
            )
            .await
    }

    /// `t`'s counter `quota` in its cell (0 when it has none).
    pub async fn counter(&self, t: &TestTenant, quota: &str) -> i64 {
        let counters = self.home(t).counters(&t.scope()).await.expect("counters");
        counters.get(quota).copied().unwrap_or(0)
    }

    /// The ids `reader` lists in `cell` (every page).
    pub async fn list_ids(
        &self,
        reader: &TestTenant,
        cell: &str,
        kind: ResourceKind,
        shared: SharedFilter,
    ) -> Vec<ResourceId> {
        list_all(
            self.cell(cell),
            &reader.scope_in(cell),
            kind,
            shared,
            None,
            100,
        )
        .await
        .expect("list")
        .iter()
        .map(|r| r.id)
        .collect()
    }
}

/// A tenant the catalog holds, with its owner.
pub struct TestTenant {
    pub tenant: Tenant,
    pub owner: UserId,
    pub email: String,
}

impl TestTenant {
    pub fn id(&self) -> TenantId {
        self.tenant.id
    }

    /// The scope of its requests.
    pub fn scope(&self) -> TenantScope {
        TenantScope::unscoped_trusted(self.tenant.id, self.tenant.cell.clone())
    }

    /// Its scope in another cell: how the server reads the platform's cell (global items)
    /// for a tenant whose own data is elsewhere.
    pub fn scope_in(&self, cell: &str) -> TenantScope {
        TenantScope::unscoped_trusted(self.tenant.id, cell)
    }
}

conformance! {
    check_backends_answer => backends_answer_on_sqlite, backends_answer_on_postgres;
}

/// Both backends open (PostgreSQL: migrated as the owner, served as a plain role that passes
/// the serving-role check), answer pings and name their cells as configured.
async fn check_backends_answer(b: &Backend) {
    b.catalog.ping().await.expect("catalog ping");
    for name in CELLS {
        let cell = b.cell(name);
        cell.ping().await.expect("cell ping");
        assert_eq!(cell.name(), name, "{} cell name", b.name);
    }
}

/// The throwaway PostgreSQL databases of one test (adapted from `tests/api/helpers.rs`).
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
        let id = unique();
        let dbs: Vec<String> = ["cat", "c1", "c2"]
            .iter()
            .map(|s| format!("tdc_{id}_{s}"))
            .collect();
        for db in &dbs {
            // Concurrent CREATE DATABASE from one template may collide: retry a few times.
            let mut attempt: u64 = 0;
            loop {
                let sql = format!("CREATE DATABASE {db} OWNER tenantd_test_owner");
                match sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&pool).await {
                    Ok(_) => break,
                    Err(e) if attempt >= 5 => panic!("create database {db}: {e}"),
                    Err(_) => {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                    }
                }
            }
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
}

async fn drop_databases(admin: &str, dbs: &[String]) -> Option<()> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(admin)
        .await
        .ok()?;
    for db in dbs {
        let sql = format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)");
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .ok()?;
    }
    pool.close().await;
    Some(())
}

impl Drop for PgTest {
    fn drop(&mut self) {
        // Best effort: the databases are throwaway either way. On a thread of its own with a
        // runtime of its own, since this may run inside the test's runtime; psql if that fails.
        let (admin, dbs) = (self.admin.clone(), self.dbs.clone());
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(drop_databases(&admin, &dbs))
        })
        .join()
        .ok()
        .flatten()
        .is_some();
        if dropped {
            return;
        }
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
