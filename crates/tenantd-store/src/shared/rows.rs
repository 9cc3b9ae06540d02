//! Row decoding and the counter statements, written once for every backend.

/// Expands to the shared implementation for one backend.
macro_rules! rows_impl {
    ($Row:ty, $Conn:ty) => {
        // Row decoding and the statements that catalog and cell share (quota counters).

        use chrono::{DateTime, Utc};
        use serde_json::Value;
        use sqlx::Row;
        use tenantd_core::access::Role;
        use tenantd_core::audit::AuditEvent;
        use tenantd_core::identity::{ApiKey, Invitation, Membership, User};
        use tenantd_core::ids::*;
        use tenantd_core::resource::{Resource, ResourceKind, Sharing, SharingMode};
        use tenantd_core::tenant::{Tenant, TenantStatus, TenantType};
        use tenantd_core::{Error, Result, time};
        use uuid::Uuid;

        use $crate::classify;

        pub(crate) fn bad(what: &str) -> Error {
            Error::Internal(format!("undecodable stored {what}"))
        }

        pub(crate) fn s(r: &$Row, col: &str) -> Result<String> {
            r.try_get::<String, _>(col).map_err(classify)
        }

        pub(crate) fn opt(r: &$Row, col: &str) -> Result<Option<String>> {
            r.try_get::<Option<String>, _>(col).map_err(classify)
        }

        pub(crate) fn int(r: &$Row, col: &str) -> Result<i64> {
            r.try_get::<i64, _>(col).map_err(classify)
        }

        pub(crate) fn ts(r: &$Row, col: &str) -> Result<DateTime<Utc>> {
            time::parse(&s(r, col)?).ok_or_else(|| bad(col))
        }

        pub(crate) fn opt_ts(r: &$Row, col: &str) -> Result<Option<DateTime<Utc>>> {
            opt(r, col)?
                .map(|v| time::parse(&v).ok_or_else(|| bad(col)))
                .transpose()
        }

        pub(crate) fn uuid(r: &$Row, col: &str) -> Result<Uuid> {
            Uuid::try_parse(&s(r, col)?).map_err(|_| bad(col))
        }

        pub(crate) fn opt_uuid(r: &$Row, col: &str) -> Result<Option<Uuid>> {
            opt(r, col)?
                .map(|v| Uuid::try_parse(&v).map_err(|_| bad(col)))
                .transpose()
        }

        pub(crate) fn json(r: &$Row, col: &str) -> Result<Value> {
            serde_json::from_str(&s(r, col)?).map_err(|_| bad(col))
        }

        pub(crate) fn role(r: &$Row, col: &str) -> Result<Role> {
            Role::parse(&s(r, col)?, col).map_err(|_| bad(col))
        }

        pub(crate) fn fmt(t: DateTime<Utc>) -> String {
            time::format(t)
        }

        pub(crate) fn tenant(r: &$Row) -> Result<Tenant> {
            Ok(Tenant {
                id: TenantId(uuid(r, "id")?),
                slug: s(r, "slug")?,
                name: s(r, "name")?,
                kind: TenantType::parse(&s(r, "type")?, "type").map_err(|_| bad("type"))?,
                plan: s(r, "plan")?,
                status: TenantStatus::parse(&s(r, "status")?, "status").map_err(|_| bad("status"))?,
                status_reason: opt(r, "status_reason")?,
                region: opt(r, "region")?,
                cell: s(r, "cell")?,
                settings: json(r, "settings")?,
                branding: json(r, "branding")?,
                created_at: ts(r, "created_at")?,
                updated_at: ts(r, "updated_at")?,
                deleted_at: opt_ts(r, "deleted_at")?,
                purge_after: opt_ts(r, "purge_after")?,
            })
        }

        pub(crate) fn user(r: &$Row) -> Result<User> {
            Ok(User {
                id: UserId(uuid(r, "id")?),
                email: s(r, "email")?,
                name: s(r, "name")?,
                password_hash: opt(r, "password_hash")?,
                last_tenant_id: opt_uuid(r, "last_tenant_id")?.map(TenantId),
                created_at: ts(r, "created_at")?,
            })
        }

        pub(crate) fn membership(r: &$Row) -> Result<Membership> {
            Ok(Membership {
                tenant_id: TenantId(uuid(r, "tenant_id")?),
                user_id: UserId(uuid(r, "user_id")?),
                role: role(r, "role")?,
                email: s(r, "email")?,
                name: s(r, "name")?,
                created_at: ts(r, "created_at")?,
            })
        }

        pub(crate) fn invitation(r: &$Row, now: DateTime<Utc>) -> Result<Invitation> {
            let expires_at = ts(r, "expires_at")?;
            let status = if opt(r, "accepted_at")?.is_some() {
                "accepted"
            } else if opt(r, "revoked_at")?.is_some() {
                "revoked"
            } else if expires_at <= now {
                "expired"
            } else {
                "pending"
            };
            Ok(Invitation {
                id: InvitationId(uuid(r, "id")?),
                tenant_id: TenantId(uuid(r, "tenant_id")?),
                email: s(r, "email")?,
                role: role(r, "role")?,
                status,
                expires_at,
                created_by: opt_uuid(r, "created_by")?.map(UserId),
                created_at: ts(r, "created_at")?,
            })
        }

        pub(crate) fn api_key(r: &$Row) -> Result<ApiKey> {
            Ok(ApiKey {
                id: ApiKeyId(uuid(r, "id")?),
                tenant_id: TenantId(uuid(r, "tenant_id")?),
                name: s(r, "name")?,
                role: role(r, "role")?,
                prefix: s(r, "prefix")?,
                created_by: opt_uuid(r, "created_by")?.map(UserId),
                created_at: ts(r, "created_at")?,
                expires_at: opt_ts(r, "expires_at")?,
                revoked_at: opt_ts(r, "revoked_at")?,
            })
        }

        pub(crate) fn resource(r: &$Row) -> Result<Resource> {
            let mode =
                SharingMode::parse(&s(r, "sharing_mode")?, "sharing").map_err(|_| bad("sharing_mode"))?;
            Ok(Resource {
                id: ResourceId(uuid(r, "id")?),
                tenant_id: TenantId(uuid(r, "tenant_id")?),
                kind: ResourceKind::parse(&s(r, "kind")?, "kind").map_err(|_| bad("kind"))?,
                name: s(r, "name")?,
                spec: json(r, "spec")?,
                sharing: Sharing {
                    mode,
                    tenants: Vec::new(),
                },
                version: int(r, "version")?,
                created_at: ts(r, "created_at")?,
                updated_at: ts(r, "updated_at")?,
                created_by: s(r, "created_by")?,
            })
        }

        pub(crate) fn audit_event(r: &$Row) -> Result<AuditEvent> {
            Ok(AuditEvent {
                seq: int(r, "seq")?,
                id: EventId(uuid(r, "id")?),
                tenant_id: TenantId(uuid(r, "tenant_id")?),
                actor: s(r, "actor")?,
                action: s(r, "action")?,
                resource: s(r, "resource")?,
                resource_id: opt(r, "resource_id")?,
                outcome: s(r, "outcome")?,
                request_id: opt(r, "request_id")?,
                ip: opt(r, "ip")?,
                at: s(r, "at")?,
                details: json(r, "details")?,
                hash: s(r, "hash")?,
                prev_hash: s(r, "prev_hash")?,
            })
        }

        /// Takes `n` units of a quota if they fit under `limit`, with one conditional update on the
        /// counter row, so concurrent takers can never overshoot. Full → `QuotaExceeded`.
        pub(crate) async fn take_slot(
            conn: &mut $Conn,
            tenant: TenantId,
            quota: &str,
            limit: Option<i64>,
            n: i64,
        ) -> Result<()> {
            let t = tenant.to_string();
            sqlx::query("INSERT INTO quota_counters (tenant_id, quota, used) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING")
                .bind(&t)
                .bind(quota)
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
            let done = sqlx::query(
                "UPDATE quota_counters SET used = used + $1 WHERE tenant_id = $2 AND quota = $3 AND ($4 IS NULL OR used + $1 <= $4)",
            )
            .bind(n)
            .bind(&t)
            .bind(quota)
            .bind(limit)
            .execute(&mut *conn)
            .await
            .map_err(classify)?
            .rows_affected();
            if done == 1 {
                return Ok(());
            }
            let current: i64 =
                sqlx::query_scalar("SELECT used FROM quota_counters WHERE tenant_id = $1 AND quota = $2")
                    .bind(&t)
                    .bind(quota)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(classify)?;
            Err(Error::QuotaExceeded {
                resource: quota.to_owned(),
                current,
                limit: limit.unwrap_or(0),
                requested: n,
            })
        }

        /// Gives back `n` units of a quota (never below zero).
        pub(crate) async fn release_slot(
            conn: &mut $Conn,
            tenant: TenantId,
            quota: &str,
            n: i64,
        ) -> Result<()> {
            sqlx::query(
                "UPDATE quota_counters SET used = CASE WHEN used >= $1 THEN used - $1 ELSE 0 END WHERE tenant_id = $2 AND quota = $3",
            )
            .bind(n)
            .bind(tenant.to_string())
            .bind(quota)
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
            Ok(())
        }
    };
}
