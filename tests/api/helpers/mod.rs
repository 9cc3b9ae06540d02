//! `TestApp`: a fresh data directory, the server on port 0, typed helpers.

use std::path::PathBuf;

use reqwest::Method;
use serde_json::{Value, json};
use tenantd_server::AppState;
use tenantd_server::config::Config;
use tokio::sync::oneshot;

pub const ADMIN_EMAIL: &str = "root@platform.test";

mod checks;
mod pg;
pub mod receiver;
pub mod runs;
pub use pg::*;

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub admin_token: String,
    pub admin_password: String,
    pub dir: PathBuf,
    pub pg: Option<PgTest>,
    _shutdown: oneshot::Sender<()>,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn code(&self) -> Option<&str> {
        self.body.get("code").and_then(|c| c.as_str())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json with `code` and a request id.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.code(), Some(code), "{}", self.text);
        assert!(
            self.header("content-type")
                .is_some_and(|c| c.starts_with("application/problem+json")),
            "{:?}",
            self.headers
        );
        assert!(
            self.body.get("request_id").is_some_and(|r| r.is_string()),
            "{}",
            self.text
        );
    }
}

#[derive(Debug, Clone)]
pub struct Signed {
    pub token: String,
    pub refresh: String,
    pub tenant_id: String,
    pub user_id: String,
    pub email: String,
    pub password: String,
}

pub fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("tenantd-test-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let sender = std::sync::Arc::new(tenantd_server::sender::HttpSender::new());
        Self::spawn_with_sender(tweak, sender).await
    }

    /// A test app whose webhook deliveries go out through `sender` (whose name resolution a
    /// test may steer).
    pub async fn spawn_with_sender(
        tweak: impl FnOnce(&mut Config),
        sender: std::sync::Arc<dyn tenantd_server::webhooks::Sender>,
    ) -> Self {
        let dir = temp_dir();
        let mut config = Config::for_tests(&dir);
        config.admin_email = Some(ADMIN_EMAIL.into());
        // The tests that cut a move short resume or abort it themselves; the job that
        // resumes moves has its own test (`mobility_resume.rs`).
        config.resume_moves = false;
        let pg = match postgres_admin_url() {
            Some(admin) => {
                let pg = PgTest::create(&admin).await;
                pg.configure(&mut config);
                Some(pg)
            }
            None => None,
        };
        tweak(&mut config);
        let (addr, state, boot, tx) = serve(config, sender).await;
        let admin_password = boot
            .and_then(|b| b.generated_password)
            .expect("generated admin password");
        let mut app = TestApp {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(32)
                .build()
                .expect("client"),
            state,
            admin_token: String::new(),
            admin_password,
            dir,
            pg,
            _shutdown: tx,
        };
        let r = app
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"email": ADMIN_EMAIL, "password": app.admin_password.clone()})),
            )
            .await;
        assert_eq!(r.status, 200, "admin login: {}", r.text);
        app.admin_token = r.body["access_token"].as_str().expect("token").to_owned();
        app
    }

    /// Another node serving the same databases and data directory, configured like this one
    /// and then by `tweak`; it stops when the returned node is dropped.
    pub async fn another_node(&self, tweak: impl FnOnce(&mut Config)) -> OtherNode {
        let mut config = Config::for_tests(&self.dir);
        config.admin_email = Some(ADMIN_EMAIL.into());
        if let Some(pg) = &self.pg {
            pg.configure(&mut config);
        }
        tweak(&mut config);
        let sender = std::sync::Arc::new(tenantd_server::sender::HttpSender::new());
        let (addr, state, _, tx) = serve(config, sender).await;
        OtherNode {
            state,
            base: format!("http://{addr}"),
            _shutdown: tx,
        }
    }

    /// Makes a member API key named `name` (an `api_key.created` event).
    pub async fn api_key(&self, token: &str, name: &str) -> Resp {
        self.call(
            "POST",
            "/v1/api-keys",
            Some(token),
            Some(json!({"name": name, "role": "member"})),
        )
        .await
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        self.call_h(method, path, token, body, &[]).await
    }

    pub async fn call_h(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.client.request(
            Method::from_bytes(method.as_bytes()).expect("method"),
            format!("{}{path}", self.base),
        );
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .client
            .request(
                Method::from_bytes(method.as_bytes()).expect("method"),
                format!("{}{path}", self.base),
            )
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn signup(&self, slug: &str, plan: Option<&str>) -> Signed {
        let email = format!("owner@{slug}.test");
        let password = format!("pw-{slug}-123456");
        let mut tenant = json!({"name": slug, "slug": slug});
        if let Some(p) = plan {
            tenant["plan"] = json!(p);
        }
        let r = self.call("POST", "/v1/auth/signup", None, Some(json!({"email": email, "password": password, "name": "Owner", "tenant": tenant}))).await;
        assert_eq!(r.status, 201, "signup {slug}: {}", r.text);
        Signed {
            token: r.body["access_token"].as_str().unwrap().into(),
            refresh: r.body["refresh_token"].as_str().unwrap().into(),
            tenant_id: r.body["tenant"]["id"].as_str().unwrap().into(),
            user_id: r.body["user"]["id"].as_str().unwrap().into(),
            email,
            password,
        }
    }

    /// Invites `email` as `role` (with `owner`'s token), accepts as a new account, and returns
    /// the new member's access token.
    pub async fn join(&self, owner: &str, email: &str, role: &str) -> String {
        let inv = self
            .call(
                "POST",
                "/v1/invitations",
                Some(owner),
                Some(json!({"email": email, "role": role})),
            )
            .await;
        assert_eq!(inv.status, 201, "invite {email}: {}", inv.text);
        let acc = self
            .call("POST", "/v1/invitations/accept", None, Some(json!({"token": inv.body["token"], "name": "Member", "password": "member-pass-1234"})))
            .await;
        assert_eq!(acc.status, 201, "accept {email}: {}", acc.text);
        acc.body["access_token"].as_str().expect("token").to_owned()
    }

    pub async fn create(&self, token: &str, kind: &str, name: &str) -> Resp {
        self.call(
            "POST",
            &format!("/v1/{kind}"),
            Some(token),
            Some(json!({"name": name, "spec": {"n": name}})),
        )
        .await
    }

    /// Audit events of a tenant, read by the platform admin crossing into it.
    pub async fn audit_of(&self, tenant_id: &str) -> Vec<Value> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/audit?limit=200&cursor={c}"),
                None => "/v1/audit?limit=200".to_owned(),
            };
            let r = self
                .call_h(
                    "GET",
                    &path,
                    Some(&self.admin_token),
                    None,
                    &[("x-tenant-id", tenant_id)],
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            out.extend(r.body["items"].as_array().unwrap().iter().cloned());
            match r.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return out,
            }
        }
    }

    /// Runs one statement on the first cell behind the application's back (as a superuser
    /// on PostgreSQL, so row-level security does not apply), binding `tenant` as `$1`.
    pub async fn raw_cell(&self, sql: &str, tenant: Option<&str>) {
        match &self.pg {
            Some(pg) => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&pg.superuser_url(1))
                    .await
                    .unwrap();
                let q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
                let q = match tenant {
                    Some(t) => q.bind(t.to_owned()),
                    None => q,
                };
                q.execute(&pool).await.unwrap();
                pool.close().await;
            }
            None => {
                let url = format!(
                    "sqlite://{}",
                    self.dir.join("cells").join("local.db").display()
                );
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect(&url)
                    .await
                    .unwrap();
                let q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
                let q = match tenant {
                    Some(t) => q.bind(t.to_owned()),
                    None => q,
                };
                q.execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }

    /// Every stored signing key `(kid, private_key as stored)`, read behind the application's
    /// back (as a superuser on PostgreSQL).
    pub async fn stored_signing_keys(&self) -> Vec<(String, Vec<u8>)> {
        use sqlx::Row;
        let sql = "SELECT kid, private_key FROM signing_keys ORDER BY created_at";
        match self.raw_catalog().await {
            RawCatalog::Pg(pool) => {
                let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows.iter().map(|r| (r.get(0), r.get(1))).collect()
            }
            RawCatalog::Sqlite(pool) => {
                let rows = sqlx::query(sql).fetch_all(&pool).await.unwrap();
                pool.close().await;
                rows.iter().map(|r| (r.get(0), r.get(1))).collect()
            }
        }
    }

    /// Stores a signing key the way a release before sealing did: the private key in clear.
    pub async fn insert_clear_signing_key(&self, kid: &str, seed: &[u8], public: &[u8]) {
        let sql = "INSERT INTO signing_keys (kid, private_key, public_key, created_at) VALUES ($1, $2, $3, '2999-01-01T00:00:00.000000Z')";
        match self.raw_catalog().await {
            RawCatalog::Pg(pool) => {
                let q = sqlx::query(sql).bind(kid).bind(seed).bind(public);
                q.execute(&pool).await.unwrap();
                pool.close().await;
            }
            RawCatalog::Sqlite(pool) => {
                let q = sqlx::query(sql).bind(kid).bind(seed).bind(public);
                q.execute(&pool).await.unwrap();
                pool.close().await;
            }
        }
    }

    /// A one-connection pool on the catalog behind the application's back (a superuser on
    /// PostgreSQL, so nothing the serving role lacks stands in the way).
    async fn raw_catalog(&self) -> RawCatalog {
        match &self.pg {
            Some(pg) => RawCatalog::Pg(
                sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&pg.superuser_url(0))
                    .await
                    .unwrap(),
            ),
            None => RawCatalog::Sqlite(
                sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect(&format!(
                        "sqlite://{}",
                        self.dir.join("catalog.db").display()
                    ))
                    .await
                    .unwrap(),
            ),
        }
    }

    /// The CLI on this app's databases.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.cli_command(args).output().unwrap()
    }

    /// The CLI, waited for off the test's runtime: the app keeps running meanwhile. (`cli`
    /// blocks the one thread of a `#[tokio::test]`, so an app transaction open at that moment
    /// stays open — holding SQLite's write lock — until the command ends; a command that
    /// writes then waits for it in vain.)
    pub async fn cli_bg(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = self.cli_command(args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    fn cli_command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_tenantd"));
        cmd.args(args)
            .env("TENANTD_PASSWORD_HASHING", "insecure-fast-for-tests");
        match &self.pg {
            Some(pg) => {
                let path = self.dir.join("tenantd.toml");
                std::fs::write(&path, pg.toml()).unwrap();
                // The databases are PostgreSQL's; the data dir still holds the master key.
                cmd.arg("--config")
                    .arg(path)
                    .arg("--data-dir")
                    .arg(&self.dir);
            }
            None => {
                cmd.arg("--data-dir").arg(&self.dir);
            }
        }
        cmd
    }
}

/// The catalog's database, by backend.
enum RawCatalog {
    Pg(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

/// A second node of a [`TestApp`]'s deployment.
pub struct OtherNode {
    pub state: AppState,
    /// `http://<addr>` of this node.
    pub base: String,
    _shutdown: oneshot::Sender<()>,
}

/// Builds the state for `config` and serves it on a port of its own; the address, the state,
/// what the first start did, and the handle that stops it when dropped.
async fn serve(
    mut config: Config,
    sender: std::sync::Arc<dyn tenantd_server::webhooks::Sender>,
) -> (
    std::net::SocketAddr,
    AppState,
    Option<tenantd_server::state::Bootstrap>,
    oneshot::Sender<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    config.public_url = Some(format!("http://{addr}"));
    let (state, boot) = tenantd_server::build_state_with(config, sender)
        .await
        .expect("state");
    let (tx, rx) = oneshot::channel::<()>();
    let st = state.clone();
    tokio::spawn(async move {
        let _ = tenantd_server::run(st, listener, async {
            let _ = rx.await;
        })
        .await;
    });
    (addr, state, boot, tx)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until a tenantd process answers `/healthz` (30 s at most).
pub async fn wait_healthy(client: &reqwest::Client, base: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("tenantd did not start");
}

/// One request to a tenantd process: (status, JSON body or null).
pub async fn call_at(
    client: &reqwest::Client,
    base: &str,
    m: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
    tenant: Option<&str>,
) -> (u16, Value) {
    let mut r = client.request(m.parse().unwrap(), format!("{base}{path}"));
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(t) = tenant {
        r = r.header("x-tenant-id", t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let s = resp.status().as_u16();
    (s, resp.json().await.unwrap_or(Value::Null))
}

/// A free port on 127.0.0.1 (bound, then released, for a child process to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` of the test's own on `port`, answering before this returns; `None` (a
/// skip, or a failure under `CI=true`) where there is no `redis-server`.
pub fn spawn_redis(test: &str, port: u16) -> Option<std::process::Child> {
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let child = match child {
        Ok(c) => c,
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: no redis-server and CI=true")
        }
        Err(_) => {
            eprintln!("SKIPPED {test}: no Redis (set TENANTD_TEST_REDIS or install redis-server)");
            return None;
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "redis-server did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Some(child)
}
