//! Configuration: defaults → TOML file → `TENANTD_*` environment → command-line flags.
//!
//! Every key is written once, in [`keys::KEYS`] (name, type, default, meaning); the sources
//! are merged through that table into one map ([`sources`]), which is then validated into
//! [`Config`]. A bad value fails the start with the key's name. Secrets are held as
//! [`Secret`], which never prints, so `Config`'s `Debug` is safe to log.

mod cells;
pub mod keys;
mod secret;
mod sources;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use cells::{BlobLocation, CellConfig, DbLocation, S3Config};
use cells::{parse_url, s3_url, validate_cells};
pub use secret::Secret;
use sources::Merged;
use tenantd_core::runs::Scheduling;

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

/// Where the master key comes from.
#[derive(Clone)]
pub enum MasterKeySource {
    /// `TENANTD_MASTER_KEY` (or `master_key` in the file): base64 of 32 bytes.
    Value(Secret),
    /// `master_key_file`: created with mode 0600 when nothing is sealed yet.
    File(PathBuf),
}

impl std::fmt::Debug for MasterKeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(_) => f.write_str("MasterKeySource::Value(***)"),
            Self::File(p) => write!(f, "MasterKeySource::File({})", p.display()),
        }
    }
}

/// The validated configuration (its `Debug` prints no secret).
#[derive(Debug, Clone)]
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
    pub master_key: MasterKeySource,
    /// Access-token lifetime, seconds.
    pub access_ttl_secs: i64,
    /// Refresh-token lifetime, seconds.
    pub refresh_ttl_secs: i64,
    /// Invitation lifetime, seconds.
    pub invitation_ttl_secs: i64,
    /// Days between deletion and purge.
    pub retention_days: i64,
    /// Days an event stays in the event log.
    pub event_retention_days: i64,
    /// A worker's lease on a run, milliseconds.
    pub run_lease_ttl_ms: i64,
    /// A tenant move's lease, milliseconds.
    pub move_lease_ms: u64,
    /// Whether a serving node resumes the moves whose runner stopped.
    pub resume_moves: bool,
    /// Leases a run may lose before it ends `expired`.
    pub run_max_attempts: i64,
    /// How leases pick runs (`run_scheduling`: fair, or fifo).
    pub run_scheduling: Scheduling,
    /// The longest a lease call waits for work, milliseconds.
    pub run_lease_max_wait_ms: u64,
    /// What outbound webhook URLs may point at beyond public `https` ones.
    pub webhook_policy: tenantd_core::net::OutboundPolicy,
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
    pub redis_url: Option<Secret>,
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
    pub admin_password: Option<Secret>,
}

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
        let mut m = Merged::default();
        if let Some(path) = &file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("config file {}: {e}", path.display()))?;
            m.file(&text, &format!("config file {}", path.display()))?;
        }
        let warnings = m.env(env)?;
        if let Some(l) = &over.listen {
            m.flag("listen", l);
        }
        if let Some(d) = &over.data_dir {
            m.flag("data_dir", d);
        }
        Self::validate(m).map(|c| (c, warnings))
    }

    fn validate(m: Merged) -> Result<Self, String> {
        let text = |k: &str| m.text(k);
        let listen = text("listen").unwrap_or_default();
        let listen: SocketAddr = listen
            .parse()
            .map_err(|_| format!("listen: not an address: {listen}"))?;
        let data_dir = PathBuf::from(text("data_dir").unwrap_or_default());
        let mode = match text("mode").unwrap_or_default().as_str() {
            "multi" => Mode::Multi,
            "single" => Mode::Single,
            other => {
                return Err(format!(
                    "mode: must be \"multi\" or \"single\", not {other:?}"
                ));
            }
        };
        let password_cost = match text("password_hashing").unwrap_or_default().as_str() {
            "owasp" => PasswordCost::Owasp,
            "insecure-fast-for-tests" => PasswordCost::InsecureFastForTests,
            other => {
                return Err(format!(
                    "password_hashing: \"owasp\" or \"insecure-fast-for-tests\", not {other:?}"
                ));
            }
        };
        let run_scheduling = match text("run_scheduling").unwrap_or_default().as_str() {
            "fair" => Scheduling::Fair,
            "fifo" => Scheduling::Fifo,
            other => {
                return Err(format!(
                    "run_scheduling: \"fair\" or \"fifo\", not {other:?}"
                ));
            }
        };
        let redis_url = m.secret("redis_url");
        if let Some(r) = &redis_url
            && !["redis://", "rediss://", "unix://"]
                .iter()
                .any(|p| r.expose().starts_with(p))
        {
            return Err("redis_url: expected redis://HOST:PORT".into());
        }
        let positive = |name: &str| match m.int(name) {
            Some(v) if v <= 0 => Err(format!("{name}: must be positive")),
            Some(v) => Ok(v),
            None => Err(format!("{name}: missing")),
        };
        let in_range = |name: &str, lo: i64, hi: i64, why: &str| match m.int(name) {
            Some(v) if (lo..=hi).contains(&v) => Ok(v),
            _ => Err(format!("{name}: {lo} to {hi}{why}")),
        };
        let pool = u32::try_from(positive("db_max_connections")?)
            .map_err(|_| "db_max_connections: too large".to_owned())?;
        let catalog = match text("catalog.url") {
            Some(url) => parse_url(
                "catalog",
                &url,
                text("catalog.migrate_url").as_deref(),
                pool,
            )?,
            None => DbLocation::Sqlite(data_dir.join("catalog.db")),
        };
        // The service and keys every bucket named here is reached with.
        let s3_base = S3Config {
            bucket: String::new(),
            prefix: String::new(),
            endpoint: text("s3_endpoint"),
            region: text("s3_region"),
            access_key_id: text("s3_access_key_id"),
            secret_access_key: m.secret("s3_secret_access_key"),
        };
        let cells = validate_cells(m.cells.as_deref(), &data_dir, pool, &s3_base)?;
        Ok(Self {
            listen,
            mode,
            base_domain: text("base_domain")
                .map(|d| d.trim_start_matches('.').to_ascii_lowercase()),
            signup: m.bool("signup").unwrap_or(true),
            plans_file: text("plans_file").map(PathBuf::from),
            public_url: match text("public_url") {
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
            master_key: match m.secret("master_key") {
                Some(k) => MasterKeySource::Value(k),
                None => MasterKeySource::File(
                    text("master_key_file")
                        .map(PathBuf::from)
                        .unwrap_or_else(|| data_dir.join("master.key")),
                ),
            },
            access_ttl_secs: positive("access_ttl_secs")?,
            refresh_ttl_secs: positive("refresh_ttl_secs")?,
            invitation_ttl_secs: positive("invitation_ttl_secs")?,
            retention_days: positive("retention_days")?,
            event_retention_days: in_range("event_retention_days", 1, 3650, "")?,
            run_lease_ttl_ms: in_range("run_lease_ttl_ms", 100, 3_600_000, "")?,
            move_lease_ms: in_range("move_lease_ms", 300, 3_600_000, "")? as u64,
            resume_moves: m.bool("resume_moves").unwrap_or(true),
            run_max_attempts: in_range("run_max_attempts", 1, 100, "")?,
            run_scheduling,
            run_lease_max_wait_ms: in_range("run_lease_max_wait_ms", 0, 30_000, "")? as u64,
            webhook_policy: tenantd_core::net::OutboundPolicy {
                allow_http: m.bool("webhook_allow_http").unwrap_or(false),
                allow_private: m.bool("webhook_allow_private").unwrap_or(false),
            },
            body_limit_bytes: positive("body_limit_bytes")? as usize,
            request_timeout_secs: in_range("request_timeout_secs", 1, 3600, "")? as u64,
            file_limit_bytes: positive("file_limit_bytes")? as usize,
            blob_dir: text("blob_dir")
                .map(PathBuf::from)
                .unwrap_or_else(|| data_dir.join("blobs")),
            s3: match text("blob_store") {
                None => None,
                Some(url) => Some(s3_url("blob_store", &url, &s3_base)?),
            },
            auth_rate_per_ip: in_range("auth_rate_per_ip", 1, u32::MAX.into(), "")? as u32,
            auth_rate_per_account: in_range("auth_rate_per_account", 1, u32::MAX.into(), "")?
                as u32,
            password_cost,
            catalog,
            cells,
            default_tenant: text("default_tenant").unwrap_or_default(),
            redis_url,
            auth_cache_ttl_ms: in_range(
                "auth_cache_ttl_ms",
                0,
                5000,
                " (0 is off); a revocation must take effect within seconds",
            )? as u64,
            admin_email: text("admin_email"),
            admin_password: m.secret("admin_password"),
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
        let mut m = Merged::default();
        m.flag("listen", "127.0.0.1:0");
        m.flag("data_dir", &dir.display().to_string());
        m.flag("password_hashing", "insecure-fast-for-tests");
        Self::validate(m).unwrap_or_else(|e| panic!("test config: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_file(toml: &str) -> Result<Config, String> {
        let mut m = Merged::default();
        m.file(toml, "test")?;
        Config::validate(m)
    }

    #[test]
    fn a_deployment_needs_a_pooled_cell_and_a_bounded_cache() {
        let e = from_file(
            "[[cells]]\nname = \"d\"\nmode = \"dedicated\"\nurl = \"sqlite:///tmp/x.db\"\n",
        )
        .unwrap_err();
        assert!(e.contains("at least one must be pooled"), "{e}");
        let e = from_file("auth_cache_ttl_ms = 60000").unwrap_err();
        assert!(e.starts_with("auth_cache_ttl_ms"), "{e}");
    }

    #[test]
    fn sources_merge_in_order_and_each_value_is_typed_by_its_key() {
        let dir = std::env::temp_dir().join(format!("tenantd-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tenantd.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\naccess_ttl_secs = 60\n[catalog]\nurl = \"sqlite:///tmp/cat.db\"\n").unwrap();
        let env: BTreeMap<String, String> = [
            ("TENANTD_ACCESS_TTL_SECS", "120"),
            ("TENANTD_ADMIN_PASSWORD", "correct horse battery"),
            ("TENANTD_NO_SUCH_KEY", "1"),
            ("TENANTD_TEST_BACKEND", "postgres"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let over = Overrides {
            config_file: Some(path.clone()),
            listen: Some("127.0.0.1:9001".into()),
            data_dir: None,
        };
        let (c, warnings) = Config::from_sources(&over, &env).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9001", "a flag wins");
        assert_eq!(c.access_ttl_secs, 120, "the environment wins over the file");
        assert_eq!(c.refresh_ttl_secs, 2_592_000, "the table's default");
        assert!(matches!(&c.catalog, DbLocation::Sqlite(p) if p == Path::new("/tmp/cat.db")));
        assert_eq!(
            warnings,
            vec!["unknown variable TENANTD_NO_SUCH_KEY".to_owned()]
        );
        let printed = format!("{c:?}");
        assert!(
            !printed.contains("correct horse"),
            "a secret never prints: {printed}"
        );
        assert_eq!(
            c.admin_password.as_ref().map(Secret::expose),
            Some("correct horse battery")
        );

        let e = from_file("access_ttl_secs = \"soon\"").unwrap_err();
        assert!(e.contains("access_ttl_secs: expected an integer"), "{e}");
        let e = from_file("no_such_key = 1").unwrap_err();
        assert!(e.contains("unknown key no_such_key"), "{e}");
        let e = from_file("issuer = \"https://x\"").unwrap_err();
        assert!(e.contains("renamed public_url"), "{e}");
        let bad: BTreeMap<String, String> =
            [("TENANTD_SIGNUP".to_owned(), "maybe".to_owned())].into();
        let e = Config::from_sources(&Overrides::default(), &bad).unwrap_err();
        assert_eq!(e, "TENANTD_SIGNUP: true or false");
        std::fs::remove_dir_all(&dir).ok();
    }
}
