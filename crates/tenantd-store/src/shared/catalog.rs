//! The catalog store, written once for every backend.

/// Expands to the shared implementation for one backend.
macro_rules! catalog_impl {
    ($Store:ident, $Row:ty, $Conn:ty) => {
        use async_trait::async_trait;
        use chrono::{DateTime, Utc};
        use serde_json::Value;
        use sqlx::Row;
        use tenantd_core::access::Role;
        use tenantd_core::audit::AuditDraft;
        use tenantd_core::identity::*;
        use tenantd_core::ids::*;
        use tenantd_core::store::*;
        use tenantd_core::tenant::{NewTenant, Tenant, TenantPatch, TenantStatus};
        use tenantd_core::{Error, Result, time};

        use super::Db;
        use super::rows::{self, fmt, release_slot, take_slot};
        use $crate::classify;

        /// The catalog.
        #[derive(Clone, Debug)]
        pub struct $Store {
            db: Db,
        }

        impl $Store {
            pub(crate) fn new(db: Db) -> Self {
                Self { db }
            }
        }

        async fn insert_outbox(conn: &mut $Conn, drafts: &[AuditDraft]) -> Result<()> {
            for d in drafts {
                sqlx::query(
                    "INSERT INTO audit_outbox (id, tenant_id, actor, action, resource, resource_id, outcome, request_id, ip, at, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(d.id.to_string())
                .bind(d.tenant_id.to_string())
                .bind(&d.actor)
                .bind(&d.action)
                .bind(&d.resource)
                .bind(&d.resource_id)
                .bind(&d.outcome)
                .bind(&d.request_id)
                .bind(&d.ip)
                .bind(&d.at)
                .bind(d.details.to_string())
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
            }
            Ok(())
        }

        async fn insert_user(conn: &mut $Conn, u: &NewUser) -> Result<()> {
            sqlx::query(
                "INSERT INTO users (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(u.id.to_string())
            .bind(u.email.as_str())
            .bind(&u.name)
            .bind(&u.password_hash)
            .bind(fmt(time::now()))
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
            Ok(())
        }

        async fn insert_membership(
            conn: &mut $Conn,
            tenant: TenantId,
            user: UserId,
            role: Role,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(tenant.to_string())
            .bind(user.to_string())
            .bind(role.as_str())
            .bind(fmt(time::now()))
            .execute(&mut *conn)
            .await
            .map_err(|e| match classify(e) {
                Error::Conflict { .. } => Error::conflict("email", "already a member of this tenant"),
                other => other,
            })?;
            Ok(())
        }

        async fn insert_invitation(conn: &mut $Conn, inv: &NewInvitation) -> Result<()> {
            sqlx::query(
                "INSERT INTO invitations (id, tenant_id, email, role, token_hash, expires_at, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(inv.id.to_string())
            .bind(inv.tenant_id.to_string())
            .bind(inv.email.as_str())
            .bind(inv.role.as_str())
            .bind(&inv.token_hash)
            .bind(fmt(inv.expires_at))
            .bind(inv.created_by.map(|u| u.to_string()))
            .bind(fmt(time::now()))
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
            Ok(())
        }

        async fn insert_session(conn: &mut $Conn, s: &NewSession) -> Result<()> {
            let now = fmt(time::now());
            sqlx::query("INSERT INTO sessions (id, user_id, tenant_id, created_at) VALUES ($1, $2, $3, $4)")
                .bind(s.id.to_string())
                .bind(s.user_id.to_string())
                .bind(s.tenant_id.to_string())
                .bind(&now)
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
            insert_refresh(conn, s.id, &s.refresh, 0).await
        }

        async fn insert_refresh(
            conn: &mut $Conn,
            session: SessionId,
            r: &NewRefreshToken,
            generation: i64,
        ) -> Result<()> {
            sqlx::query("INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at, generation) VALUES ($1, $2, $3, $4, $5)")
                .bind(&r.token_hash)
                .bind(session.to_string())
                .bind(fmt(time::now()))
                .bind(fmt(r.expires_at))
                .bind(generation)
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
            Ok(())
        }

        fn session_of(r: &$Row, id_col: &str) -> Result<Session> {
            Ok(Session {
                id: SessionId(rows::uuid(r, id_col)?),
                user_id: UserId(rows::uuid(r, "user_id")?),
                tenant_id: TenantId(rows::uuid(r, "tenant_id")?),
                revoked_at: rows::opt_ts(r, "revoked_at")?,
                revoked_after_gen: r.try_get::<Option<i64>, _>("revoked_after_gen").map_err(classify)?,
            })
        }

        async fn tenant_in(conn: &mut $Conn, id: TenantId) -> Result<Tenant> {
            let sql = "SELECT id, slug, name, type, plan, status, status_reason, region, cell, settings, branding, created_at, updated_at, deleted_at, purge_after FROM tenants WHERE id = $1";
            let row = sqlx::query(sql)
                .bind(id.to_string())
                .fetch_optional(&mut *conn)
                .await
                .map_err(classify)?;
            row.as_ref()
                .map(rows::tenant)
                .transpose()?
                .ok_or(Error::NotFound)
        }

        /// Serialises changes to one tenant's membership (PostgreSQL row lock; SQLite's writer
        /// is single anyway), so two concurrent demotions cannot leave it without an owner.
        async fn lock_tenant(conn: &mut $Conn, tenant: TenantId) -> Result<()> {
            sqlx::query("UPDATE tenants SET updated_at = updated_at WHERE id = $1")
                .bind(tenant.to_string())
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
            Ok(())
        }

        async fn owner_count(conn: &mut $Conn, tenant: TenantId) -> Result<i64> {
            sqlx::query_scalar("SELECT COUNT(*) FROM memberships WHERE tenant_id = $1 AND role = 'owner'")
                .bind(tenant.to_string())
                .fetch_one(&mut *conn)
                .await
                .map_err(classify)
        }

        async fn member_role(conn: &mut $Conn, tenant: TenantId, user: UserId) -> Result<Role> {
            let role: Option<String> =
                sqlx::query_scalar("SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2")
                    .bind(tenant.to_string())
                    .bind(user.to_string())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(classify)?;
            let role = role.ok_or(Error::NotFound)?;
            Role::parse(&role, "role").map_err(|_| rows::bad("role"))
        }

        /// Frees the `users` slots of pending invitations that have expired.
        async fn release_expired_invitations(conn: &mut $Conn, tenant: TenantId) -> Result<()> {
            let n = sqlx::query(
                "UPDATE invitations SET released = 1 WHERE tenant_id = $1 AND released = 0 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at <= $2",
            )
            .bind(tenant.to_string())
            .bind(fmt(time::now()))
            .execute(&mut *conn)
            .await
            .map_err(classify)?
            .rows_affected();
            if n > 0 {
                release_slot(conn, tenant, "users", n as i64).await?;
            }
            Ok(())
        }

        fn merge(current: Value, patch: serde_json::Map<String, Value>) -> Value {
            let mut obj = match current {
                Value::Object(o) => o,
                _ => serde_json::Map::new(),
            };
            for (k, v) in patch {
                if v.is_null() {
                    obj.remove(&k);
                } else {
                    obj.insert(k, v);
                }
            }
            Value::Object(obj)
        }

        #[async_trait]
        impl CatalogStore for $Store {
            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1")
                    .execute(self.db.reader()?)
                    .await
                    .map_err(classify)?;
                Ok(())
            }

            async fn find_tenant(&self, id: TenantId) -> Result<Option<Tenant>> {
                let sql = "SELECT id, slug, name, type, plan, status, status_reason, region, cell, settings, branding, created_at, updated_at, deleted_at, purge_after FROM tenants WHERE id = $1";
                let row = sqlx::query(sql)
                    .bind(id.to_string())
                    .fetch_optional(self.db.reader()?)
                    .await
                    .map_err(classify)?;
                row.as_ref().map(rows::tenant).transpose()
            }

            async fn find_tenant_by_slug(&self, slug: &str) -> Result<Option<Tenant>> {
                let sql = "SELECT id, slug, name, type, plan, status, status_reason, region, cell, settings, branding, created_at, updated_at, deleted_at, purge_after FROM tenants WHERE slug = $1";
                let row = sqlx::query(sql)
                    .bind(slug)
                    .fetch_optional(self.db.reader()?)
                    .await
                    .map_err(classify)?;
                row.as_ref().map(rows::tenant).transpose()
            }

            async fn list_tenants(&self, after: Option<TenantId>, limit: u32) -> Result<Vec<Tenant>> {
                let sql = "SELECT id, slug, name, type, plan, status, status_reason, region, cell, settings, branding, created_at, updated_at, deleted_at, purge_after FROM tenants WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2";
                sqlx::query(sql)
                    .bind(after.map(|a| a.to_string()))
                    .bind(i64::from(limit))
                    .fetch_all(self.db.reader()?)
                    .await
                    .map_err(classify)?
                    .iter()
                    .map(rows::tenant)
                    .collect()
            }

            async fn create_tenant(
                &self,
                t: NewTenant,
                owner: TenantOwner,
                session: Option<NewSession>,
                outbox: Vec<AuditDraft>,
            ) -> Result<Tenant> {
                let mut tx = self.db.begin().await?;
                let now = fmt(time::now());
                sqlx::query(
                    "INSERT INTO tenants (id, slug, name, type, plan, status, region, cell, settings, branding, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, '{}', $9, $10)",
                )
                .bind(t.id.to_string())
                .bind(t.slug.as_str())
                .bind(t.name.as_str())
                .bind(t.kind.as_str())
                .bind(&t.plan)
                .bind(t.region.map(|r| r.as_str()))
                .bind(&t.cell)
                .bind(t.settings.to_string())
                .bind(&now)
                .bind(&now)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                if t.dedicated {
                    sqlx::query("INSERT INTO dedicated_cells (cell, tenant_id) VALUES ($1, $2)")
                        .bind(&t.cell)
                        .bind(t.id.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(classify)?;
                    // A cell placed into before it was declared dedicated is not free either.
                    let others: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants WHERE cell = $1 AND id <> $2")
                        .bind(&t.cell)
                        .bind(t.id.to_string())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(classify)?;
                    if others > 0 {
                        return Err(Error::conflict("cell", "this dedicated cell already holds a tenant"));
                    }
                }
                sqlx::query("INSERT INTO quota_counters (tenant_id, quota, used) VALUES ($1, 'users', 1)")
                    .bind(t.id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                match &owner {
                    TenantOwner::NewUser(u) => {
                        insert_user(&mut tx, u).await?;
                        insert_membership(&mut tx, t.id, u.id, Role::Owner).await?;
                    }
                    TenantOwner::Existing(u) => insert_membership(&mut tx, t.id, *u, Role::Owner).await?,
                    TenantOwner::Invite(inv) => insert_invitation(&mut tx, inv).await?,
                }
                if let Some(s) = &session {
                    insert_session(&mut tx, s).await?;
                }
                insert_outbox(&mut tx, &outbox).await?;
                let tenant = tenant_in(&mut tx, t.id).await?;
                tx.commit().await.map_err(classify)?;
                Ok(tenant)
            }

            async fn update_tenant(
                &self,
                id: TenantId,
                patch: TenantPatch,
                outbox: Vec<AuditDraft>,
            ) -> Result<Tenant> {
                let mut tx = self.db.begin().await?;
                let cur = tenant_in(&mut tx, id).await?;
                let name = patch
                    .name
                    .map(|n| n.as_str().to_owned())
                    .unwrap_or(cur.name);
                let settings = match patch.settings {
                    Some(p) => merge(cur.settings, p),
                    None => cur.settings,
                };
                let branding = match patch.branding {
                    Some(p) => merge(cur.branding, p),
                    None => cur.branding,
                };
                sqlx::query(
                    "UPDATE tenants SET name = $1, settings = $2, branding = $3, updated_at = $4 WHERE id = $5",
                )
                .bind(name)
                .bind(settings.to_string())
                .bind(branding.to_string())
                .bind(fmt(time::now()))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                insert_outbox(&mut tx, &outbox).await?;
                let t = tenant_in(&mut tx, id).await?;
                tx.commit().await.map_err(classify)?;
                Ok(t)
            }

            async fn set_tenant_status(
                &self,
                id: TenantId,
                status: TenantStatus,
                reason: Option<String>,
                purge_after: Option<DateTime<Utc>>,
                outbox: Vec<AuditDraft>,
            ) -> Result<Tenant> {
                let mut tx = self.db.begin().await?;
                let now = fmt(time::now());
                let deleted = status == TenantStatus::Deleted;
                let n = sqlx::query(
                    "UPDATE tenants SET status = $1, status_reason = $2, updated_at = $3, deleted_at = CASE WHEN $4 THEN $5 ELSE NULL END, purge_after = $6 WHERE id = $7",
                )
                .bind(status.as_str())
                .bind(reason)
                .bind(&now)
                .bind(deleted)
                .bind(&now)
                .bind(purge_after.map(fmt))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(classify)?
                .rows_affected();
                if n == 0 {
                    return Err(Error::NotFound);
                }
                insert_outbox(&mut tx, &outbox).await?;
                let t = tenant_in(&mut tx, id).await?;
                tx.commit().await.map_err(classify)?;
                Ok(t)
            }

            async fn set_tenant_plan(
                &self,
                id: TenantId,
                plan: &str,
                outbox: Vec<AuditDraft>,
            ) -> Result<Tenant> {
                let mut tx = self.db.begin().await?;
                let n = sqlx::query("UPDATE tenants SET plan = $1, updated_at = $2 WHERE id = $3")
                    .bind(plan)
                    .bind(fmt(time::now()))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?
                    .rows_affected();
                if n == 0 {
                    return Err(Error::NotFound);
                }
                insert_outbox(&mut tx, &outbox).await?;
                let t = tenant_in(&mut tx, id).await?;
                tx.commit().await.map_err(classify)?;
                Ok(t)
            }

            async fn find_user(&self, id: UserId) -> Result<Option<User>> {
                let row = sqlx::query("SELECT id, email, name, password_hash, last_tenant_id, created_at FROM users WHERE id = $1")
                    .bind(id.to_string())
                    .fetch_optional(self.db.reader()?)
                    .await
                    .map_err(classify)?;
                row.as_ref().map(rows::user).transpose()
            }

            async fn find_user_by_email(&self, email: &str) -> Result<Option<User>> {
                let row = sqlx::query("SELECT id, email, name, password_hash, last_tenant_id, created_at FROM users WHERE email = $1")
                    .bind(email)
                    .fetch_optional(self.db.reader()?)
                    .await
                    .map_err(classify)?;
                row.as_ref().map(rows::user).transpose()
            }

            async fn set_user_last_tenant(&self, user: UserId, tenant: TenantId) -> Result<()> {
                sqlx::query("UPDATE users SET last_tenant_id = $1 WHERE id = $2")
                    .bind(tenant.to_string())
                    .bind(user.to_string())
                    .execute(self.db.writer()?)
                    .await
                    .map_err(classify)?;
                Ok(())
            }

            async fn find_membership(&self, tenant: TenantId, user: UserId) -> Result<Option<Membership>> {
                let row = sqlx::query(
                    "SELECT m.tenant_id, m.user_id, m.role, m.created_at, u.email, u.name FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 AND m.user_id = $2",
                )
                .bind(tenant.to_string())
                .bind(user.to_string())
                .fetch_optional(self.db.reader()?)
                .await
                .map_err(classify)?;
                row.as_ref().map(rows::membership).transpose()
            }

            async fn list_user_memberships(&self, user: UserId) -> Result<Vec<Membership>> {
                sqlx::query(
                    "SELECT m.tenant_id, m.user_id, m.role, m.created_at, u.email, u.name FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.user_id = $1 ORDER BY m.created_at, m.tenant_id",
                )
                .bind(user.to_string())
                .fetch_all(self.db.reader()?)
                .await
                .map_err(classify)?
                .iter()
                .map(rows::membership)
                .collect()
            }

            async fn list_members(&self, tenant: TenantId) -> Result<Vec<Membership>> {
                sqlx::query(
                    "SELECT m.tenant_id, m.user_id, m.role, m.created_at, u.email, u.name FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 ORDER BY m.created_at, m.user_id",
                )
                .bind(tenant.to_string())
                .fetch_all(self.db.reader()?)
                .await
                .map_err(classify)?
                .iter()
                .map(rows::membership)
                .collect()
            }

            async fn update_member_role(
                &self,
                tenant: TenantId,
                user: UserId,
                role: Role,
                outbox: Vec<AuditDraft>,
            ) -> Result<Membership> {
                let mut tx = self.db.begin().await?;
                lock_tenant(&mut tx, tenant).await?;
                let current = member_role(&mut tx, tenant, user).await?;
                if current == Role::Owner && role != Role::Owner && owner_count(&mut tx, tenant).await? <= 1
                {
                    return Err(Error::conflict("role", "the last owner cannot be demoted"));
                }
                sqlx::query("UPDATE memberships SET role = $1 WHERE tenant_id = $2 AND user_id = $3")
                    .bind(role.as_str())
                    .bind(tenant.to_string())
                    .bind(user.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                insert_outbox(&mut tx, &outbox).await?;
                let row = sqlx::query(
                    "SELECT m.tenant_id, m.user_id, m.role, m.created_at, u.email, u.name FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 AND m.user_id = $2",
                )
                .bind(tenant.to_string())
                .bind(user.to_string())
                .fetch_one(&mut *tx)
                .await
                .map_err(classify)?;
                let m = rows::membership(&row)?;
                tx.commit().await.map_err(classify)?;
                Ok(m)
            }

            async fn remove_member(
                &self,
                tenant: TenantId,
                user: UserId,
                outbox: Vec<AuditDraft>,
            ) -> Result<()> {
                let mut tx = self.db.begin().await?;
                lock_tenant(&mut tx, tenant).await?;
                let current = member_role(&mut tx, tenant, user).await?;
                if current == Role::Owner && owner_count(&mut tx, tenant).await? <= 1 {
                    return Err(Error::conflict(
                        "user_id",
                        "the last owner cannot be removed",
                    ));
                }
                sqlx::query("DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2")
                    .bind(tenant.to_string())
                    .bind(user.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE tenant_id = $2 AND user_id = $3 AND revoked_at IS NULL")
                    .bind(fmt(time::now()))
                    .bind(tenant.to_string())
                    .bind(user.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                // Their API keys die with the membership, for good: a later re-invitation does
                // not bring them back.
                sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE tenant_id = $2 AND created_by = $3 AND revoked_at IS NULL")
                    .bind(fmt(time::now()))
                    .bind(tenant.to_string())
                    .bind(user.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                release_slot(&mut tx, tenant, "users", 1).await?;
                insert_outbox(&mut tx, &outbox).await?;
                tx.commit().await.map_err(classify)
            }

            async fn users_used(&self, tenant: TenantId) -> Result<i64> {
                sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM memberships WHERE tenant_id = $1) + (SELECT COUNT(*) FROM invitations WHERE tenant_id = $1 AND released = 0 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2)",
                )
                .bind(tenant.to_string())
                .bind(fmt(time::now()))
                .fetch_one(self.db.reader()?)
                .await
                .map_err(classify)
            }

            async fn create_invitation(
                &self,
                inv: NewInvitation,
                limit: Option<i64>,
                outbox: Vec<AuditDraft>,
            ) -> Result<Invitation> {
                let mut tx = self.db.begin().await?;
                lock_tenant(&mut tx, inv.tenant_id).await?;
                let member: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 AND u.email = $2",
                )
                .bind(inv.tenant_id.to_string())
                .bind(inv.email.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(classify)?;
                if member > 0 {
                    return Err(Error::conflict("email", "already a member of this tenant"));
                }
                release_expired_invitations(&mut tx, inv.tenant_id).await?;
                let pending: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM invitations WHERE tenant_id = $1 AND email = $2 AND released = 0 AND accepted_at IS NULL AND revoked_at IS NULL",
                )
                .bind(inv.tenant_id.to_string())
                .bind(inv.email.as_str())
                .fetch_one(&mut *tx)
                .await
                .map_err(classify)?;
                if pending > 0 {
                    return Err(Error::conflict(
                        "email",
                        "a pending invitation for this email exists",
                    ));
                }
                take_slot(&mut tx, inv.tenant_id, "users", limit, 1).await?;
                insert_invitation(&mut tx, &inv).await?;
                insert_outbox(&mut tx, &outbox).await?;
                let sql = "SELECT id, tenant_id, email, role, expires_at, created_by, created_at, accepted_at, revoked_at FROM invitations WHERE id = $1";
                let row = sqlx::query(sql)
                    .bind(inv.id.to_string())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(classify)?;
                let out = rows::invitation(&row, time::now())?;
                tx.commit().await.map_err(classify)?;
                Ok(out)
            }

            async fn list_invitations(&self, tenant: TenantId) -> Result<Vec<Invitation>> {
                let now = time::now();
                sqlx::query(
                    "SELECT id, tenant_id, email, role, expires_at, created_by, created_at, accepted_at, revoked_at FROM invitations WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC",
                )
                .bind(tenant.to_string())
                .fetch_all(self.db.reader()?)
                .await
                .map_err(classify)?
                .iter()
                .map(|r| rows::invitation(r, now))
                .collect()
            }

            async fn revoke_invitation(
                &self,
                tenant: TenantId,
                id: InvitationId,
                outbox: Vec<AuditDraft>,
            ) -> Result<()> {
                let mut tx = self.db.begin().await?;
                let released: Option<i64> = sqlx::query_scalar(
                    "SELECT released FROM invitations WHERE id = $1 AND tenant_id = $2 AND accepted_at IS NULL AND revoked_at IS NULL",
                )
                .bind(id.to_string())
                .bind(tenant.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
                let released = released.ok_or(Error::NotFound)?;
                sqlx::query("UPDATE invitations SET revoked_at = $1, released = 1 WHERE id = $2")
                    .bind(fmt(time::now()))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                if released == 0 {
                    release_slot(&mut tx, tenant, "users", 1).await?;
                }
                insert_outbox(&mut tx, &outbox).await?;
                tx.commit().await.map_err(classify)
            }

            async fn find_pending_invitation(&self, token_hash: &str) -> Result<Option<Invitation>> {
                let now = time::now();
                let row = sqlx::query(
                    "SELECT id, tenant_id, email, role, expires_at, created_by, created_at, accepted_at, revoked_at FROM invitations WHERE token_hash = $1 AND released = 0 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2",
                )
                .bind(token_hash)
                .bind(fmt(now))
                .fetch_optional(self.db.reader()?)
                .await
                .map_err(classify)?;
                row.as_ref().map(|r| rows::invitation(r, now)).transpose()
            }

            async fn accept_invitation(
                &self,
                id: InvitationId,
                joiner: Joiner,
                session: NewSession,
                outbox: Vec<AuditDraft>,
            ) -> Result<()> {
                let mut tx = self.db.begin().await?;
                let now = fmt(time::now());
                let row = sqlx::query(
                    "UPDATE invitations SET accepted_at = $1, released = 1 WHERE id = $2 AND released = 0 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1 RETURNING tenant_id, role",
                )
                .bind(&now)
                .bind(id.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?
                .ok_or(Error::NotFound)?;
                let tenant = TenantId(rows::uuid(&row, "tenant_id")?);
                let role = rows::role(&row, "role")?;
                let user = match &joiner {
                    Joiner::Existing(u) => *u,
                    Joiner::New(u) => {
                        insert_user(&mut tx, u).await?;
                        u.id
                    }
                };
                // The invitation's `users` slot becomes the member's: the counter does not move.
                insert_membership(&mut tx, tenant, user, role).await?;
                insert_session(&mut tx, &session).await?;
                insert_outbox(&mut tx, &outbox).await?;
                tx.commit().await.map_err(classify)
            }

            async fn create_api_key(&self, k: NewApiKey, outbox: Vec<AuditDraft>) -> Result<ApiKey> {
                let mut tx = self.db.begin().await?;
                sqlx::query(
                    "INSERT INTO api_keys (id, tenant_id, name, role, prefix, key_hash, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(k.id.to_string())
                .bind(k.tenant_id.to_string())
                .bind(&k.name)
                .bind(k.role.as_str())
                .bind(&k.prefix)
                .bind(&k.key_hash)
                .bind(k.created_by.map(|u| u.to_string()))
                .bind(fmt(time::now()))
                .bind(k.expires_at.map(fmt))
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                insert_outbox(&mut tx, &outbox).await?;
                let row = sqlx::query("SELECT id, tenant_id, name, role, prefix, created_by, created_at, expires_at, revoked_at FROM api_keys WHERE id = $1")
                    .bind(k.id.to_string())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(classify)?;
                let key = rows::api_key(&row)?;
                tx.commit().await.map_err(classify)?;
                Ok(key)
            }

            async fn list_api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKey>> {
                sqlx::query(
                    "SELECT id, tenant_id, name, role, prefix, created_by, created_at, expires_at, revoked_at FROM api_keys WHERE tenant_id = $1 ORDER BY id",
                )
                .bind(tenant.to_string())
                .fetch_all(self.db.reader()?)
                .await
                .map_err(classify)?
                .iter()
                .map(rows::api_key)
                .collect()
            }

            async fn revoke_api_key(
                &self,
                tenant: TenantId,
                id: ApiKeyId,
                outbox: Vec<AuditDraft>,
            ) -> Result<()> {
                let mut tx = self.db.begin().await?;
                let n = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL")
                    .bind(fmt(time::now()))
                    .bind(id.to_string())
                    .bind(tenant.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?
                    .rows_affected();
                if n == 0 {
                    return Err(Error::NotFound);
                }
                insert_outbox(&mut tx, &outbox).await?;
                tx.commit().await.map_err(classify)
            }

            async fn find_api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>> {
                let row = sqlx::query(
                    "SELECT id, tenant_id, name, role, prefix, created_by, created_at, expires_at, revoked_at FROM api_keys WHERE key_hash = $1",
                )
                .bind(key_hash)
                .fetch_optional(self.db.reader()?)
                .await
                .map_err(classify)?;
                row.as_ref().map(rows::api_key).transpose()
            }

            async fn create_session(&self, session: NewSession, outbox: Vec<AuditDraft>) -> Result<()> {
                let mut tx = self.db.begin().await?;
                insert_session(&mut tx, &session).await?;
                insert_outbox(&mut tx, &outbox).await?;
                tx.commit().await.map_err(classify)
            }

            async fn rotate_refresh(
                &self,
                token_hash: &str,
                next: NewRefreshToken,
            ) -> Result<RefreshOutcome> {
                let mut tx = self.db.begin().await?;
                let now = time::now();
                // Lock the token's row first (PostgreSQL), so two presentations of one token
                // queue here and the second sees it spent.
                sqlx::query("UPDATE refresh_tokens SET spent_at = spent_at WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                let row = sqlx::query(
                    "SELECT r.session_id, r.expires_at, r.spent_at, r.generation, s.user_id, s.tenant_id, s.revoked_at, s.refresh_revoked_at, s.revoked_after_gen FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
                let Some(row) = row else {
                    return Ok(RefreshOutcome::Invalid);
                };
                let session = session_of(&row, "session_id")?;
                let generation = rows::int(&row, "generation")?;
                if session.revoked_at.is_some()
                    || rows::opt(&row, "refresh_revoked_at")?.is_some()
                    || rows::ts(&row, "expires_at")? <= now
                {
                    return Ok(RefreshOutcome::Invalid);
                }
                if rows::opt(&row, "spent_at")?.is_some() {
                    // A spent token presented again: someone holds a copy. The family can no
                    // longer refresh, and access tokens minted from this token on stop working.
                    sqlx::query(
                        "UPDATE sessions SET refresh_revoked_at = $1, revoked_after_gen = CASE WHEN revoked_after_gen IS NULL OR revoked_after_gen > $2 THEN $2 ELSE revoked_after_gen END WHERE id = $3",
                    )
                    .bind(fmt(now))
                    .bind(generation)
                    .bind(session.id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                    tx.commit().await.map_err(classify)?;
                    return Ok(RefreshOutcome::Reused(session));
                }
                let n = sqlx::query(
                    "UPDATE refresh_tokens SET spent_at = $1 WHERE token_hash = $2 AND spent_at IS NULL",
                )
                .bind(fmt(now))
                .bind(token_hash)
                .execute(&mut *tx)
                .await
                .map_err(classify)?
                .rows_affected();
                if n != 1 {
                    return Ok(RefreshOutcome::Invalid);
                }
                insert_refresh(&mut tx, session.id, &next, generation + 1).await?;
                tx.commit().await.map_err(classify)?;
                Ok(RefreshOutcome::Rotated { session, generation: generation + 1 })
            }

            async fn find_session(&self, id: SessionId) -> Result<Option<Session>> {
                let row = sqlx::query(
                    "SELECT id, user_id, tenant_id, revoked_at, revoked_after_gen FROM sessions WHERE id = $1",
                )
                .bind(id.to_string())
                .fetch_optional(self.db.reader()?)
                .await
                .map_err(classify)?;
                row.as_ref().map(|r| session_of(r, "id")).transpose()
            }

            async fn find_session_context(&self, id: SessionId) -> Result<Option<(Session, Role, Tenant)>> {
                let row = sqlx::query(
                    "SELECT s.id AS session_id, s.user_id, s.tenant_id, s.revoked_at, s.revoked_after_gen, m.role AS member_role, t.id, t.slug, t.name, t.type, t.plan, t.status, t.status_reason, t.region, t.cell, t.settings, t.branding, t.created_at, t.updated_at, t.deleted_at, t.purge_after FROM sessions s JOIN memberships m ON m.tenant_id = s.tenant_id AND m.user_id = s.user_id JOIN tenants t ON t.id = s.tenant_id WHERE s.id = $1",
                )
                .bind(id.to_string())
                .fetch_optional(self.db.reader()?)
                .await
                .map_err(classify)?;
                let Some(r) = row else { return Ok(None) };
                Ok(Some((session_of(&r, "session_id")?, rows::role(&r, "member_role")?, rows::tenant(&r)?)))
            }

            async fn find_refresh_session(&self, token_hash: &str) -> Result<Option<Session>> {
                let row = sqlx::query(
                    "SELECT s.id, s.user_id, s.tenant_id, s.revoked_at, s.revoked_after_gen FROM refresh_tokens r JOIN sessions s ON s.id = r.session_id WHERE r.token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(self.db.reader()?)
                .await
                .map_err(classify)?;
                row.as_ref().map(|r| session_of(r, "id")).transpose()
            }

            async fn revoke_session(&self, id: SessionId, outbox: Vec<AuditDraft>) -> Result<()> {
                let mut tx = self.db.begin().await?;
                sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                    .bind(fmt(time::now()))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                insert_outbox(&mut tx, &outbox).await?;
                tx.commit().await.map_err(classify)
            }

            async fn change_password(
                &self,
                user: UserId,
                password_hash: &str,
                keep: SessionId,
                outbox: Vec<AuditDraft>,
            ) -> Result<Vec<TenantId>> {
                let mut tx = self.db.begin().await?;
                let n = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                    .bind(password_hash)
                    .bind(user.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?
                    .rows_affected();
                if n == 0 {
                    return Err(Error::NotFound);
                }
                let tenants = sqlx::query("SELECT DISTINCT tenant_id FROM sessions WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL")
                    .bind(user.to_string())
                    .bind(keep.to_string())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(classify)?
                    .iter()
                    .map(|r| rows::uuid(r, "tenant_id").map(TenantId))
                    .collect::<Result<Vec<TenantId>>>()?;
                sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND id <> $3 AND revoked_at IS NULL")
                    .bind(fmt(time::now()))
                    .bind(user.to_string())
                    .bind(keep.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                insert_outbox(&mut tx, &outbox).await?;
                tx.commit().await.map_err(classify)?;
                Ok(tenants)
            }

            async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
                sqlx::query("SELECT kid, private_key, public_key, created_at, verify_until FROM signing_keys ORDER BY created_at")
                    .fetch_all(self.db.reader()?)
                    .await
                    .map_err(classify)?
                    .iter()
                    .map(|r| {
                        Ok(SigningKeyRecord {
                            kid: rows::s(r, "kid")?,
                            private_key: r.try_get::<Vec<u8>, _>("private_key").map_err(classify)?,
                            public_key: r.try_get::<Vec<u8>, _>("public_key").map_err(classify)?,
                            created_at: rows::ts(r, "created_at")?,
                            verify_until: rows::opt_ts(r, "verify_until")?,
                        })
                    })
                    .collect()
            }

            async fn insert_signing_key(
                &self,
                key: SigningKeyRecord,
                retire_others_at: Option<DateTime<Utc>>,
            ) -> Result<()> {
                let mut tx = self.db.begin().await?;
                if let Some(at) = retire_others_at {
                    sqlx::query("UPDATE signing_keys SET verify_until = $1 WHERE verify_until IS NULL")
                        .bind(fmt(at))
                        .execute(&mut *tx)
                        .await
                        .map_err(classify)?;
                }
                sqlx::query("INSERT INTO signing_keys (kid, private_key, public_key, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&key.kid)
                    .bind(&key.private_key)
                    .bind(&key.public_key)
                    .bind(fmt(key.created_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                tx.commit().await.map_err(classify)
            }

            async fn reseal_signing_key(&self, kid: &str, old: &[u8], new: &[u8]) -> Result<bool> {
                let n = sqlx::query("UPDATE signing_keys SET private_key = $1 WHERE kid = $2 AND private_key = $3")
                    .bind(new)
                    .bind(kid)
                    .bind(old)
                    .execute(self.db.writer()?)
                    .await
                    .map_err(classify)?
                    .rows_affected();
                Ok(n == 1)
            }

            async fn pending_outbox(&self, limit: u32) -> Result<Vec<AuditDraft>> {
                sqlx::query(
                    "SELECT id, tenant_id, actor, action, resource, resource_id, outcome, request_id, ip, at, details FROM audit_outbox ORDER BY pos LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(self.db.reader()?)
                .await
                .map_err(classify)?
                .iter()
                .map(|r| {
                    Ok(AuditDraft {
                        id: EventId(rows::uuid(r, "id")?),
                        tenant_id: TenantId(rows::uuid(r, "tenant_id")?),
                        actor: rows::s(r, "actor")?,
                        action: rows::s(r, "action")?,
                        resource: rows::s(r, "resource")?,
                        resource_id: rows::opt(r, "resource_id")?,
                        outcome: rows::s(r, "outcome")?,
                        request_id: rows::opt(r, "request_id")?,
                        ip: rows::opt(r, "ip")?,
                        at: rows::s(r, "at")?,
                        details: rows::json(r, "details")?,
                    })
                })
                .collect()
            }

            async fn delete_outbox(&self, ids: &[EventId]) -> Result<()> {
                let mut tx = self.db.begin().await?;
                for id in ids {
                    sqlx::query("DELETE FROM audit_outbox WHERE id = $1")
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(classify)?;
                }
                tx.commit().await.map_err(classify)
            }
        }
    };
}
