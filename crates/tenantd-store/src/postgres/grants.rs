//! Migrations as the owner role, and the serving role's grants and checks.

use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::Migration;

/// Applies migrations as the owner role, one migrator at a time (an advisory lock), then grants
/// the serving role its privileges.
pub(super) async fn migrate(
    url: &str,
    migrations: &[Migration],
    serving_url: &str,
) -> std::result::Result<(), String> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .map_err(|e| e.to_string())?;
    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
    sqlx::query("SELECT pg_advisory_xact_lock(7260124351)")
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::query("CREATE TABLE IF NOT EXISTS _tenantd_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    let applied: Vec<i64> = sqlx::query("SELECT version FROM _tenantd_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .filter_map(|r| r.try_get::<i64, _>(0).ok())
        .collect();
    for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        sqlx::raw_sql(m.sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| format!("migration {} {}: {e}", m.version, m.name))?;
        sqlx::query(
            "INSERT INTO _tenantd_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(m.name)
        .bind(tenantd_core::time::format(tenantd_core::time::now()))
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
    }
    tx.commit().await.map_err(|e| e.to_string())?;
    let granted = grant_serving_role(&pool, serving_url).await;
    pool.close().await;
    granted
}

/// Grants the serving role what `_tenantd_grants` lists, and CONNECT on this database — to
/// that role alone, so two deployments on one cluster (each with its own serving role) cannot
/// reach each other's databases. Run as the owner after every migration run, so a changed
/// serving role gets its privileges too. The role name comes from the operator's configuration,
/// never from a request, and is checked to be a plain identifier; the SQL quotes it with
/// `format('%I')` as well.
async fn grant_serving_role(pool: &PgPool, serving_url: &str) -> std::result::Result<(), String> {
    let serving: PgConnectOptions = serving_url
        .parse()
        .map_err(|e: sqlx::Error| e.to_string())?;
    let role = serving.get_username();
    let owner: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(pool)
        .await
        .map_err(|e| e.to_string())?;
    if role == owner {
        // Serving as the owner is refused at connect time, with a clear message.
        return Ok(());
    }
    if role.is_empty()
        || role.len() > 63
        || !role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!(
            "the serving role name {role:?} must be a plain lower-case identifier"
        ));
    }
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(pool)
            .await
            .map_err(|e| e.to_string())?;
    if !exists {
        return Err(format!(
            "the serving role {role} does not exist; as a superuser run `CREATE ROLE {role} LOGIN PASSWORD '...'`"
        ));
    }
    let mut tx = pool.begin().await.map_err(|e| e.to_string())?;
    sqlx::query("SELECT set_config('tenantd.serving_role', $1, true)")
        .bind(role)
        .execute(&mut *tx)
        .await
        .map_err(|e| e.to_string())?;
    sqlx::raw_sql(GRANT_SERVING_ROLE)
        .execute(&mut *tx)
        .await
        .map_err(|e| format!("cannot grant the serving role {role} its privileges: {e}"))?;
    tx.commit().await.map_err(|e| e.to_string())?;
    // A serving role of an installation older than migration 3 joined the cluster-wide
    // `tenantd_app`; it needs it no more. Best effort: the owner may lack ADMIN OPTION on it.
    let member: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE r.rolname = 'tenantd_app' AND u.rolname = $1)",
    )
    .bind(role)
    .fetch_one(pool)
    .await
    .unwrap_or(false);
    if member
        && let Err(e) = sqlx::query(sqlx::AssertSqlSafe(format!(
            "REVOKE tenantd_app FROM \"{role}\""
        )))
        .execute(pool)
        .await
    {
        tracing::warn!(error = %e, role, "could not take the old shared role tenantd_app from the serving role; as a superuser run `REVOKE tenantd_app FROM {role}`");
    }
    Ok(())
}

/// The serving role (`tenantd.serving_role`, set by the caller) gets CONNECT on this database,
/// USAGE on the schema, and the privileges `_tenantd_grants` lists.
const GRANT_SERVING_ROLE: &str = r#"
DO $$
DECLARE
    serving text := current_setting('tenantd.serving_role');
    g record;
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), serving);
    EXECUTE format('GRANT USAGE ON SCHEMA public TO %I', serving);
    FOR g IN SELECT object, kind, privileges FROM _tenantd_grants LOOP
        EXECUTE format('GRANT %s ON %s %I TO %I', g.privileges, g.kind, g.object, serving);
    END LOOP;
END $$;
"#;

/// Refuses a serving role that could see past row-level security.
pub async fn check_serving_role(pool: &PgPool) -> std::result::Result<(), String> {
    let row = sqlx::query(
        "SELECT r.rolname::text AS name, r.rolsuper AS sup, r.rolbypassrls AS bypass, (SELECT COUNT(*) FROM pg_tables t WHERE t.schemaname = current_schema() AND t.tableowner = current_user AND t.tablename NOT LIKE '\\_%') AS owned FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(pool)
    .await
    .map_err(|e| format!("cannot inspect the serving role: {e}"))?;
    let name: String = row.try_get("name").unwrap_or_default();
    let sup: bool = row.try_get("sup").unwrap_or(true);
    let bypass: bool = row.try_get("bypass").unwrap_or(true);
    let owned: i64 = row.try_get("owned").unwrap_or(1);
    if sup {
        return Err(format!(
            "refusing to serve as {name}: it is a superuser, which row-level security does not bind; serve as a plain role and give the owner role in migrate_url"
        ));
    }
    if bypass {
        return Err(format!(
            "refusing to serve as {name}: it has BYPASSRLS; serve as a role without it"
        ));
    }
    if owned > 0 {
        return Err(format!(
            "refusing to serve as {name}: it owns {owned} of the tables; serve as another role and migrate as the owner"
        ));
    }
    Ok(())
}
