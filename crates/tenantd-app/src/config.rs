//! Configuration: defaults → TOML file → `TENANTD_*` environment → command-line flags.
//! A raw, all-optional struct is read first, then validated into [`Config`]; a bad value
//! fails the start with the key's name.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Single- or multi-tenant operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every request names its tenant (token, key, header, subdomain or cookie).
    Multi,
    /// One default tenant; requests need no tenant resolution.
    Single,
}

/// How expensive password hashing is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordCost {
    /// argon2id at OWASP parameters (19 MiB, 2 passes): the default.
    Owasp,
    /// argon2id at minimal parameters: for test suites only, never production.
    InsecureFastForTests,
}

/// Where a catalog or cell lives.
#[derive(Debug, Clone)]
pub enum DbLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (serving and migrating roles).
    Postgres(tenantd_store::postgres::PgLocation),
}

/// An S3-compatible bucket (AWS S3, MinIO, …) for file contents. Unset fields fall back to
/// the standard `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_REGION`, `AWS_ENDPOINT_URL`, …).
#[derive(Clone)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// A key prefix inside the bucket (`""` for none).
    pub prefix: String,
    /// The endpoint, for S3-compatible services (`http://127.0.0.1:9000`).
    pub endpoint: Option<String>,
    /// The region.
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<String>,
}

/// A storage cell.
#[derive(Debug, Clone)]
pub struct CellConfig {
    /// Its name.
    pub name: String,
    /// Its region (`us`, `eu`, `ap`), if any.
    pub region: Option<String>,
    /// `pooled` or `dedicated`.
    pub dedicated: bool,
    /// Its database.
    pub location: DbLocation,
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Data directory of the embedded default.
    pub data_dir: PathBuf,
    /// Single or multi tenant.
    pub mode: Mode,
    /// Base domain for subdomain resolution.
    pub base_domain: Option<String>,
    /// Whether self-serve signup is on.
    pub signup: bool,
    /// The plans file (`None`: the shipped plans).
    pub plans_file: Option<PathBuf>,
    /// The URL clients reach tenantd at: the token issuer (`iss`, and `aud`) and the base of
    /// the OpenID discovery document. `None`: `http://<listen>` (with the bound port).
    pub public_url: Option<String>,
    /// Where the master key that seals the private signing keys comes from.
    pub master_key: crate::auth::seal::MasterKeySource,
    /// Access-token lifetime, seconds.
    pub access_ttl_secs: i64,
    /// Refresh-token lifetime, seconds.
    pub refresh_ttl_secs: i64,
    /// Invitation lifetime, seconds.
    pub invitation_ttl_secs: i64,
    /// Days between deletion and purge.
    pub retention_days: i64,
    /// Largest accepted request body, bytes.
    pub body_limit_bytes: usize,
    /// How long a request, reading its body included, may take before it is answered 408
    /// (and an upload cut off by it is released soon after).
    pub request_timeout_secs: u64,
    /// Largest accepted file upload, bytes.
    pub file_limit_bytes: usize,
    /// Directory of the local object store for file contents.
    pub blob_dir: PathBuf,
    /// An S3-compatible bucket for file contents instead of `blob_dir`.
    pub s3: Option<S3Config>,
    /// Sign-in attempts (signup, login, refresh, invitation accept) per client address and
    /// minute.
    pub auth_rate_per_ip: u32,
    /// Password attempts per account and minute (login and invitation accept together).
    pub auth_rate_per_account: u32,
    /// Password hashing cost.
    pub password_cost: PasswordCost,
    /// The catalog database.
    pub catalog: DbLocation,
    /// The cells; the first takes new tenants by default.
    pub cells: Vec<CellConfig>,
    /// Redis for rate limits shared by every API node and cache invalidation between them.
    pub redis_url: Option<String>,
    /// How long a node may reuse a resolved credential (session or API key, with its tenant
    /// and role) without reading the catalog; 0 turns the cache off. Changes made through this
    /// node, or announced by another through Redis, take effect at once; the TTL bounds the
    /// rest (a lost invalidation, a change made with the CLI).
    pub auth_cache_ttl_ms: u64,
    /// The tenant `mode = "single"` serves (created at first start).
    pub default_tenant: String,
    /// First-start platform admin email.
    pub admin_email: Option<String>,
    /// First-start platform admin password.
    pub admin_password: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("mode", &self.mode)
            .field("base_domain", &self.base_domain)
            .field("signup", &self.signup)
            .field("admin_email", &self.admin_email)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "***"),
            )
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDb {
    url: Option<String>,
    migrate_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCell {
    name: Option<String>,
    region: Option<String>,
    mode: Option<String>,
    url: Option<String>,
    migrate_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<String>,
    data_dir: Option<String>,
    mode: Option<String>,
    base_domain: Option<String>,
    signup: Option<bool>,
    plans_file: Option<String>,
    redis_url: Option<String>,
    auth_cache_ttl_ms: Option<i64>,
    issuer: Option<String>,
    public_url: Option<String>,
    master_key_file: Option<String>,
    master_key: Option<String>,
    access_ttl_secs: Option<i64>,
    refresh_ttl_secs: Option<i64>,
    invitation_ttl_secs: Option<i64>,
    retention_days: Option<i64>,
    body_limit_bytes: Option<usize>,
    request_timeout_secs: Option<i64>,
    db_max_connections: Option<u32>,
    file_limit_bytes: Option<usize>,
    blob_dir: Option<String>,
    blob_store: Option<String>,
    s3_endpoint: Option<String>,
    s3_region: Option<String>,
    s3_access_key_id: Option<String>,
    s3_secret_access_key: Option<String>,
    auth_rate_per_ip: Option<u32>,
    auth_rate_per_account: Option<u32>,
    password_hashing: Option<String>,
    default_tenant: Option<String>,
    admin_email: Option<String>,
    admin_password: Option<String>,
    catalog: Option<RawDb>,
    cells: Option<Vec<RawCell>>,
}

/// Top-level keys that may come from `TENANTD_<KEY>`.
const ENV_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "mode",
    "base_domain",
    "signup",
    "plans_file",
    "redis_url",
    "auth_cache_ttl_ms",
    "issuer",
    "public_url",
    "master_key_file",
    "master_key",
    "access_ttl_secs",
    "refresh_ttl_secs",
    "invitation_ttl_secs",
    "retention_days",
    "body_limit_bytes",
    "request_timeout_secs",
    "db_max_connections",
    "auth_rate_per_ip",
    "file_limit_bytes",
    "blob_dir",
    "blob_store",
    "s3_endpoint",
    "s3_region",
    "s3_access_key_id",
    "s3_secret_access_key",
    "auth_rate_per_account",
    "password_hashing",
    "default_tenant",
    "admin_email",
    "admin_password",
];

/// Variables the binary itself reads (not config keys).
const OTHER_ENV: &[&str] = &["config", "log", "log_format"];

/// Values given on the command line; they win over everything.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`.
    pub config_file: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--data-dir`.
    pub data_dir: Option<String>,
}

impl Config {
    /// Loads the configuration from the file, the process environment and the flags.
    pub fn load(over: &Overrides) -> Result<(Self, Vec<String>), String> {
        let env: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("TENANTD_"))
            .collect();
        Self::from_sources(over, &env)
    }

    /// Loads from explicit sources (tests pass their own environment). Returns the config and
    /// warnings (unknown `TENANTD_` variables).
    pub fn from_sources(
        over: &Overrides,
        env: &BTreeMap<String, String>,
    ) -> Result<(Self, Vec<String>), String> {
        let file = over
            .config_file
            .clone()
            .or_else(|| env.get("TENANTD_CONFIG").map(PathBuf::from));
        let mut raw: RawConfig = match &file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("config file {}: {e}", path.display()))?;
                toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?
            }
            None => RawConfig::default(),
        };
        let mut warnings = Vec::new();
        for (k, v) in env {
            let key = k.trim_start_matches("TENANTD_").to_ascii_lowercase();
            if OTHER_ENV.contains(&key.as_str()) || key.starts_with("test_") {
                continue;
            }
            if let Some((section, field)) = key.split_once("__") {
                if section == "catalog" {
                    let db = raw.catalog.get_or_insert_with(RawDb::default);
                    match field {
                        "url" => db.url = Some(v.clone()),
                        "migrate_url" => db.migrate_url = Some(v.clone()),
                        _ => warnings.push(format!("unknown variable {k}")),
                    }
                } else {
                    warnings.push(format!("unknown variable {k}"));
                }
                continue;
            }
            if !ENV_KEYS.contains(&key.as_str()) {
                warnings.push(format!("unknown variable {k}"));
                continue;
            }
            set_key(&mut raw, &key, v)?;
        }
        if let Some(l) = &over.listen {
            raw.listen = Some(l.clone());
        }
        if let Some(d) = &over.data_dir {
            raw.data_dir = Some(d.clone());
        }
        Self::validate(raw).map(|c| (c, warnings))
    }

    fn validate(raw: RawConfig) -> Result<Self, String> {
        let listen = raw.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen: SocketAddr = listen
            .parse()
            .map_err(|_| format!("listen: not an address: {listen}"))?;
        let data_dir = PathBuf::from(raw.data_dir.as_deref().unwrap_or("./data"));
        let mode = match raw.mode.as_deref().unwrap_or("multi") {
            "multi" => Mode::Multi,
            "single" => Mode::Single,
            other => {
                return Err(format!(
                    "mode: must be \"multi\" or \"single\", not {other:?}"
                ));
            }
        };
        let password_cost = match raw.password_hashing.as_deref().unwrap_or("owasp") {
            "owasp" => PasswordCost::Owasp,
            "insecure-fast-for-tests" => PasswordCost::InsecureFastForTests,
            other => {
                return Err(format!(
                    "password_hashing: \"owasp\" or \"insecure-fast-for-tests\", not {other:?}"
                ));
            }
        };
        if let Some(r) = raw.redis_url.as_deref().filter(|r| !r.is_empty())
            && !(r.starts_with("redis://")
                || r.starts_with("rediss://")
                || r.starts_with("unix://"))
        {
            return Err("redis_url: expected redis://HOST:PORT".into());
        }
        if raw.issuer.is_some() {
            return Err(
                "issuer: renamed public_url (the URL clients reach tenantd at, which is the token issuer)"
                    .into(),
            );
        }
        let positive = |name: &str, v: Option<i64>, default: i64| match v {
            Some(v) if v <= 0 => Err(format!("{name}: must be positive")),
            Some(v) => Ok(v),
            None => Ok(default),
        };
        let pool = raw.db_max_connections.unwrap_or(16);
        if pool == 0 {
            return Err("db_max_connections: must be positive".into());
        }
        let catalog = match raw.catalog.as_ref().and_then(|c| c.url.as_deref()) {
            Some(url) => parse_url(
                "catalog",
                url,
                raw.catalog.as_ref().and_then(|c| c.migrate_url.as_deref()),
                pool,
            )?,
            None => DbLocation::Sqlite(data_dir.join("catalog.db")),
        };
        let cells = match raw.cells {
            None => vec![CellConfig {
                name: "local".into(),
                region: None,
                dedicated: false,
                location: DbLocation::Sqlite(data_dir.join("cells").join("local.db")),
            }],
            Some(list) if list.is_empty() => {
                return Err("cells: at least one cell is needed".into());
            }
            Some(list) => {
                let mut out: Vec<CellConfig> = Vec::new();
                for (i, c) in list.into_iter().enumerate() {
                    let name = c.name.ok_or(format!("cells[{i}].name: missing"))?;
                    if out.iter().any(|o| o.name == name) {
                        return Err(format!("cells[{i}].name: {name} appears twice"));
                    }
                    if let Some(r) = &c.region {
                        tenantd_core::tenant::Region::parse(r, "region")
                            .map_err(|_| format!("cells[{i}].region: us, eu or ap"))?;
                    }
                    let dedicated = match c.mode.as_deref().unwrap_or("pooled") {
                        "pooled" => false,
                        "dedicated" => true,
                        m => {
                            return Err(format!("cells[{i}].mode: pooled or dedicated, not {m:?}"));
                        }
                    };
                    let url = c.url.ok_or(format!("cells[{i}].url: missing"))?;
                    let location =
                        parse_url(&format!("cells[{i}]"), &url, c.migrate_url.as_deref(), pool)?;
                    out.push(CellConfig {
                        name,
                        region: c.region,
                        dedicated,
                        location,
                    });
                }
                if out.iter().all(|c| c.dedicated) {
                    return Err(
                        "cells: at least one must be pooled (the platform tenant and every plan without dedicated isolation live there)"
                            .into(),
                    );
                }
                out
            }
        };
        Ok(Self {
            listen,
            mode,
            base_domain: raw
                .base_domain
                .filter(|d| !d.is_empty())
                .map(|d| d.trim_start_matches('.').to_ascii_lowercase()),
            signup: raw.signup.unwrap_or(true),
            plans_file: raw.plans_file.map(PathBuf::from),
            public_url: match raw.public_url.as_deref().filter(|u| !u.is_empty()) {
                None => None,
                Some(u) if u.starts_with("https://") || u.starts_with("http://") => {
                    Some(u.trim_end_matches('/').to_owned())
                }
                Some(_) => {
                    return Err(
                        "public_url: expected https://HOST[:PORT][/PATH] (the URL clients reach tenantd at)"
                            .into(),
                    );
                }
            },
            master_key: match raw.master_key.filter(|k| !k.is_empty()) {
                Some(k) => crate::auth::seal::MasterKeySource::Value(k),
                None => crate::auth::seal::MasterKeySource::File(
                    raw.master_key_file
                        .filter(|f| !f.is_empty())
                        .map(PathBuf::from)
                        .unwrap_or_else(|| data_dir.join("master.key")),
                ),
            },
            access_ttl_secs: positive("access_ttl_secs", raw.access_ttl_secs, 900)?,
            refresh_ttl_secs: positive("refresh_ttl_secs", raw.refresh_ttl_secs, 30 * 86400)?,
            invitation_ttl_secs: positive(
                "invitation_ttl_secs",
                raw.invitation_ttl_secs,
                7 * 86400,
            )?,
            retention_days: positive("retention_days", raw.retention_days, 30)?,
            body_limit_bytes: raw.body_limit_bytes.unwrap_or(1024 * 1024),
            request_timeout_secs: match raw.request_timeout_secs {
                None => 30,
                Some(s @ 1..=3600) => s as u64,
                Some(_) => return Err("request_timeout_secs: 1 to 3600".into()),
            },
            file_limit_bytes: raw.file_limit_bytes.unwrap_or(100 * 1024 * 1024),
            blob_dir: raw
                .blob_dir
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("blobs")),
            s3: match raw.blob_store.as_deref().filter(|b| !b.is_empty()) {
                None => None,
                Some(url) => {
                    let rest = url.strip_prefix("s3://").ok_or(
                        "blob_store: expected s3://BUCKET or s3://BUCKET/PREFIX (unset: the local blob_dir)",
                    )?;
                    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                    if bucket.is_empty() {
                        return Err("blob_store: s3:// needs a bucket".into());
                    }
                    Some(S3Config {
                        bucket: bucket.to_owned(),
                        prefix: prefix.trim_matches('/').to_owned(),
                        endpoint: raw.s3_endpoint.filter(|v| !v.is_empty()),
                        region: raw.s3_region.filter(|v| !v.is_empty()),
                        access_key_id: raw.s3_access_key_id.filter(|v| !v.is_empty()),
                        secret_access_key: raw.s3_secret_access_key.filter(|v| !v.is_empty()),
                    })
                }
            },
            auth_rate_per_ip: raw.auth_rate_per_ip.unwrap_or(300),
            auth_rate_per_account: raw.auth_rate_per_account.unwrap_or(20),
            password_cost,
            catalog,
            cells,
            default_tenant: raw.default_tenant.unwrap_or_else(|| "main".into()),
            redis_url: raw.redis_url.filter(|r| !r.is_empty()),
            auth_cache_ttl_ms: match raw.auth_cache_ttl_ms {
                None => 1000,
                Some(ms @ 0..=5000) => ms as u64,
                Some(_) => {
                    return Err(
                        "auth_cache_ttl_ms: 0 (off) to 5000; a revocation must take effect within seconds"
                            .into(),
                    );
                }
            },
            admin_email: raw.admin_email,
            admin_password: raw.admin_password,
            data_dir,
        })
    }

    /// The token issuer: `public_url`, else `http://<listen>`.
    pub fn issuer(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }

    /// A configuration for tests: everything under `dir`, fast password hashing, port 0.
    pub fn for_tests(dir: &Path) -> Self {
        let raw = RawConfig {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.display().to_string()),
            password_hashing: Some("insecure-fast-for-tests".into()),
            ..RawConfig::default()
        };
        Self::validate(raw).unwrap_or_else(|e| panic!("test config: {e}"))
    }
}

fn parse_url(
    key: &str,
    url: &str,
    migrate_url: Option<&str>,
    max_connections: u32,
) -> Result<DbLocation, String> {
    let is_pg = |u: &str| u.starts_with("postgres://") || u.starts_with("postgresql://");
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(format!("{key}.url: sqlite:// needs a path"));
        }
        if migrate_url.is_some_and(|m| m != url) {
            return Err(format!(
                "{key}.migrate_url: a SQLite database is migrated through its url"
            ));
        }
        Ok(DbLocation::Sqlite(PathBuf::from(path)))
    } else if is_pg(url) {
        if migrate_url.is_some_and(|m| !is_pg(m)) {
            return Err(format!("{key}.migrate_url: expected postgres://"));
        }
        Ok(DbLocation::Postgres(tenantd_store::postgres::PgLocation {
            url: url.to_owned(),
            migrate_url: migrate_url.map(str::to_owned),
            max_connections,
        }))
    } else {
        Err(format!(
            "{key}.url: expected sqlite://PATH or postgres://USER@HOST/DB"
        ))
    }
}

fn set_key(raw: &mut RawConfig, key: &str, v: &str) -> Result<(), String> {
    let int = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| format!("TENANTD_{}: not an integer", key.to_uppercase()))
    };
    let s = Some(v.to_owned());
    match key {
        "listen" => raw.listen = s,
        "data_dir" => raw.data_dir = s,
        "mode" => raw.mode = s,
        "base_domain" => raw.base_domain = s,
        "signup" => {
            raw.signup = Some(match v {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => return Err("TENANTD_SIGNUP: true or false".into()),
            })
        }
        "plans_file" => raw.plans_file = s,
        "redis_url" => raw.redis_url = s,
        "auth_cache_ttl_ms" => raw.auth_cache_ttl_ms = Some(int(v)?),
        "issuer" => raw.issuer = s,
        "public_url" => raw.public_url = s,
        "master_key_file" => raw.master_key_file = s,
        "master_key" => raw.master_key = s,
        "access_ttl_secs" => raw.access_ttl_secs = Some(int(v)?),
        "refresh_ttl_secs" => raw.refresh_ttl_secs = Some(int(v)?),
        "invitation_ttl_secs" => raw.invitation_ttl_secs = Some(int(v)?),
        "retention_days" => raw.retention_days = Some(int(v)?),
        "body_limit_bytes" => raw.body_limit_bytes = Some(int(v)? as usize),
        "request_timeout_secs" => raw.request_timeout_secs = Some(int(v)?),
        "db_max_connections" => raw.db_max_connections = Some(int(v)? as u32),
        "auth_rate_per_ip" => raw.auth_rate_per_ip = Some(int(v)? as u32),
        "file_limit_bytes" => raw.file_limit_bytes = Some(int(v)? as usize),
        "blob_dir" => raw.blob_dir = s.clone(),
        "blob_store" => raw.blob_store = s.clone(),
        "s3_endpoint" => raw.s3_endpoint = s.clone(),
        "s3_region" => raw.s3_region = s.clone(),
        "s3_access_key_id" => raw.s3_access_key_id = s.clone(),
        "s3_secret_access_key" => raw.s3_secret_access_key = s.clone(),
        "auth_rate_per_account" => raw.auth_rate_per_account = Some(int(v)? as u32),
        "password_hashing" => raw.password_hashing = s,
        "default_tenant" => raw.default_tenant = s,
        "admin_email" => raw.admin_email = s,
        "admin_password" => raw.admin_password = s,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_needs_a_pooled_cell_and_a_bounded_cache() {
        let raw = RawConfig {
            cells: Some(vec![RawCell {
                name: Some("d".into()),
                mode: Some("dedicated".into()),
                url: Some("sqlite:///tmp/x.db".into()),
                ..RawCell::default()
            }]),
            ..RawConfig::default()
        };
        let e = Config::validate(raw).unwrap_err();
        assert!(e.contains("at least one must be pooled"), "{e}");
        let raw = RawConfig {
            auth_cache_ttl_ms: Some(60_000),
            ..RawConfig::default()
        };
        let e = Config::validate(raw).unwrap_err();
        assert!(e.starts_with("auth_cache_ttl_ms"), "{e}");
    }
}
