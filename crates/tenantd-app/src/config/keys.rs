//! Every configuration key, written once: its name, type, default and meaning. The file, the
//! environment (`TENANTD_<KEY>`, `TENANTD_<SECTION>__<KEY>`) and the flags are all read
//! through this table; a key missing here is an unknown key everywhere, and the README's
//! table is checked against it (`every_key_is_documented`).

/// How a key's value is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string.
    Text,
    /// An integer.
    Int,
    /// `true`/`false` (`1`/`0`, `yes`/`no`, `on`/`off` from the environment).
    Bool,
    /// A string held as a [`super::Secret`]: never printed.
    Secret,
    /// A key that no longer exists; using it stops the start with the text (what replaced it).
    Retired(&'static str),
}

/// One configuration key.
#[derive(Debug)]
pub struct Key {
    /// Its name in the file; `section.key` inside a `[section]`.
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its default, as it would be written in the file (`None`: unset, or derived from
    /// another key — the meaning says how).
    pub default: Option<&'static str>,
    /// What it does.
    pub meaning: &'static str,
}

const fn key(
    name: &'static str,
    kind: Kind,
    default: Option<&'static str>,
    meaning: &'static str,
) -> Key {
    Key {
        name,
        kind,
        default,
        meaning,
    }
}

use Kind::*;

/// The keys. `[[cells]]` (a list of tables: `name`, `region`, `mode`, `url`, `migrate_url`,
/// and `blob_dir` or `blob_store` for a cell's own object store) comes from the file only.
pub const KEYS: &[Key] = &[
    key(
        "listen",
        Text,
        Some("127.0.0.1:8080"),
        "address to serve on",
    ),
    key(
        "data_dir",
        Text,
        Some("./data"),
        "where the embedded default keeps its databases, blobs and master key",
    ),
    key(
        "mode",
        Text,
        Some("multi"),
        "multi, or single: one default tenant",
    ),
    key(
        "default_tenant",
        Text,
        Some("main"),
        "the tenant mode = \"single\" serves",
    ),
    key(
        "base_domain",
        Text,
        None,
        "resolve the tenant from <slug>.<base_domain> in Host",
    ),
    key("signup", Bool, Some("true"), "self-serve signup"),
    key(
        "plans_file",
        Text,
        None,
        "plans: quotas, features, rate limits (unset: the shipped plans)",
    ),
    key(
        "public_url",
        Text,
        None,
        "the URL clients reach tenantd at: JWT iss and aud (unset: http://<listen>)",
    ),
    key(
        "issuer",
        Retired(
            "issuer: renamed public_url (the URL clients reach tenantd at, which is the token issuer)",
        ),
        None,
        "renamed public_url",
    ),
    key(
        "master_key_file",
        Text,
        None,
        "the key sealing private signing keys (unset: <data_dir>/master.key)",
    ),
    key(
        "master_key",
        Secret,
        None,
        "the master key itself, base64 of 32 bytes",
    ),
    key("access_ttl_secs", Int, Some("900"), "access-token lifetime"),
    key(
        "refresh_ttl_secs",
        Int,
        Some("2592000"),
        "refresh-token lifetime",
    ),
    key(
        "invitation_ttl_secs",
        Int,
        Some("604800"),
        "invitation lifetime",
    ),
    key(
        "retention_days",
        Int,
        Some("30"),
        "days from deletion to purge_after",
    ),
    key(
        "run_lease_ttl_ms",
        Int,
        Some("30000"),
        "a worker's lease on an agent run, renewed by heartbeats; an expired lease requeues the run",
    ),
    key(
        "move_lease_ms",
        Int,
        Some("15000"),
        "a tenant move's lease, renewed while it runs; a move whose runner stopped is resumed once it runs out",
    ),
    key(
        "resume_moves",
        Bool,
        Some("true"),
        "whether a serving node resumes a tenant move whose runner stopped (false: only `tenantd tenant move --resume`)",
    ),
    key(
        "run_lease_max_wait_ms",
        Int,
        Some("30000"),
        "the longest a `POST /v1/workers/lease` waits for work (`wait_ms` above it is cut to it); lower it behind proxies with short idle timeouts",
    ),
    key(
        "run_max_attempts",
        Int,
        Some("3"),
        "leases a run may lose; at the last loss it ends `expired`",
    ),
    key(
        "run_scheduling",
        Text,
        Some("fair"),
        "how leases pick runs: fair (least recently served tenant first, then its oldest run), or fifo (the oldest run of any tenant: a backlog starves its neighbours; for comparison)",
    ),
    key(
        "webhook_allow_http",
        Bool,
        Some("false"),
        "deliver webhooks to http:// URLs (tests, closed networks)",
    ),
    key(
        "webhook_allow_private",
        Bool,
        Some("false"),
        "deliver webhooks to loopback and private addresses (tests)",
    ),
    key(
        "event_retention_days",
        Int,
        Some("30"),
        "days the event log keeps an event",
    ),
    key(
        "body_limit_bytes",
        Int,
        Some("1048576"),
        "larger bodies get 413",
    ),
    key(
        "request_timeout_secs",
        Int,
        Some("30"),
        "a slower request is answered 408",
    ),
    key(
        "file_limit_bytes",
        Int,
        Some("104857600"),
        "larger uploads get 413",
    ),
    key(
        "blob_dir",
        Text,
        None,
        "local object store for file contents (unset: <data_dir>/blobs)",
    ),
    key(
        "blob_store",
        Text,
        None,
        "s3://BUCKET[/PREFIX]: file contents in an S3-compatible bucket",
    ),
    key(
        "s3_endpoint",
        Text,
        None,
        "for blob_store (unset: AWS_ENDPOINT_URL)",
    ),
    key(
        "s3_region",
        Text,
        None,
        "for blob_store (unset: AWS_REGION)",
    ),
    key(
        "s3_access_key_id",
        Text,
        None,
        "for blob_store (unset: AWS_ACCESS_KEY_ID)",
    ),
    key(
        "s3_secret_access_key",
        Secret,
        None,
        "for blob_store (unset: AWS_SECRET_ACCESS_KEY)",
    ),
    key(
        "auth_rate_per_ip",
        Int,
        Some("300"),
        "sign-in attempts per client address and minute",
    ),
    key(
        "auth_rate_per_account",
        Int,
        Some("20"),
        "password attempts per account and minute",
    ),
    key(
        "password_hashing",
        Text,
        Some("owasp"),
        "owasp, or insecure-fast-for-tests (tests only)",
    ),
    key(
        "admin_email",
        Text,
        None,
        "first-start platform admin (unset: admin@tenantd.local)",
    ),
    key(
        "admin_password",
        Secret,
        None,
        "first-start platform admin password (unset: generated and printed once)",
    ),
    key(
        "redis_url",
        Secret,
        None,
        "Redis for shared rate limits and cache invalidation",
    ),
    key(
        "auth_cache_ttl_ms",
        Int,
        Some("1000"),
        "how long a node reuses a resolved credential; 0 is off, at most 5000",
    ),
    key(
        "db_max_connections",
        Int,
        Some("16"),
        "pool size per PostgreSQL database",
    ),
    key(
        "catalog.url",
        Text,
        None,
        "catalog database (unset: sqlite://<data_dir>/catalog.db)",
    ),
    key(
        "catalog.migrate_url",
        Text,
        None,
        "the catalog's owner role, for migrations",
    ),
];

/// Environment variables the binary reads that are not configuration keys.
pub const OTHER_ENV: &[&str] = &["TENANTD_CONFIG", "TENANTD_LOG", "TENANTD_LOG_FORMAT"];

/// The key named `name`.
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

/// The environment variable of a key: `listen` → `TENANTD_LISTEN`, `catalog.url` →
/// `TENANTD_CATALOG__URL`.
pub fn env_name(name: &str) -> String {
    format!("TENANTD_{}", name.replace('.', "__").to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_documented() {
        let readme = include_str!("../../../../README.md");
        let section = readme
            .split("## Configuration")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("README has a Configuration section");
        for k in KEYS {
            if matches!(k.kind, Kind::Retired(_)) {
                continue;
            }
            let field = k.name.rsplit('.').next().unwrap_or(k.name);
            assert!(
                section.contains(&format!("`{}`", k.name)) || section.contains(field),
                "README's configuration table does not mention {}",
                k.name
            );
        }
    }

    #[test]
    fn names_are_unique_and_defaults_parse() {
        for (i, k) in KEYS.iter().enumerate() {
            assert!(
                KEYS[..i].iter().all(|o| o.name != k.name),
                "{} twice",
                k.name
            );
            if let (Some(d), Kind::Int) = (k.default, k.kind) {
                d.parse::<i64>()
                    .unwrap_or_else(|_| panic!("{}: {d}", k.name));
            }
            if let (Some(d), Kind::Bool) = (k.default, k.kind) {
                d.parse::<bool>()
                    .unwrap_or_else(|_| panic!("{}: {d}", k.name));
            }
        }
    }
}
