//! The cell store, written once for every backend.

/// Expands to the shared implementation for one backend.
macro_rules! cell_impl {
    ($Store:ident, $Row:ty, $Conn:ty) => {
        use std::collections::BTreeMap;

        use async_trait::async_trait;
        use tenantd_core::audit::{AuditDraft, AuditEvent, AuditFilter, GENESIS_HASH};
        use tenantd_core::ids::{FileId, ResourceId, TenantId};
        use tenantd_core::resource::*;
        use tenantd_core::store::CellStore;
        use tenantd_core::tenant::TenantScope;
        use tenantd_core::{Error, Result, time};

        use super::Db;
        use super::rows::{self, fmt, release_slot, take_slot};
        use $crate::classify;

        /// A cell.
        #[derive(Clone, Debug)]
        pub struct $Store {
            name: String,
            db: Db,
        }

        impl $Store {
            pub(crate) fn new(name: &str, db: Db) -> Self {
                Self {
                    name: name.to_owned(),
                    db,
                }
            }
        }

        async fn append(
            conn: &mut $Conn,
            tenant: TenantId,
            drafts: Vec<AuditDraft>,
        ) -> Result<()> {
            let t = tenant.to_string();
            sqlx::query(
                "INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ($1, 0, $2) ON CONFLICT DO NOTHING",
            )
            .bind(&t)
            .bind(GENESIS_HASH)
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
            for d in drafts {
                if d.tenant_id != tenant {
                    return Err(Error::Internal("audit event for another tenant".into()));
                }
                let seen: Option<i64> = sqlx::query_scalar("SELECT seq FROM audit_events WHERE id = $1")
                    .bind(d.id.to_string())
                    .fetch_optional(&mut *conn)
                    .await
                    .map_err(classify)?;
                if seen.is_some() {
                    continue;
                }
                // Lock the head row first (PostgreSQL; SQLite's writer is single anyway), so
                // concurrent appends to one tenant's chain queue here and each sees the last.
                sqlx::query("UPDATE audit_heads SET seq = seq WHERE tenant_id = $1")
                    .bind(&t)
                    .execute(&mut *conn)
                    .await
                    .map_err(classify)?;
                let head = sqlx::query("SELECT seq, hash FROM audit_heads WHERE tenant_id = $1")
                    .bind(&t)
                    .fetch_one(&mut *conn)
                    .await
                    .map_err(classify)?;
                let ev = AuditEvent::chain(d, rows::int(&head, "seq")? + 1, &rows::s(&head, "hash")?);
                sqlx::query(
                    "INSERT INTO audit_events (tenant_id, seq, id, actor, action, resource, resource_id, outcome, request_id, ip, at, details, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(&t)
                .bind(ev.seq)
                .bind(ev.id.to_string())
                .bind(&ev.actor)
                .bind(&ev.action)
                .bind(&ev.resource)
                .bind(&ev.resource_id)
                .bind(&ev.outcome)
                .bind(&ev.request_id)
                .bind(&ev.ip)
                .bind(&ev.at)
                .bind(ev.details.to_string())
                .bind(&ev.prev_hash)
                .bind(&ev.hash)
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
                sqlx::query("UPDATE audit_heads SET seq = $1, hash = $2 WHERE tenant_id = $3")
                    .bind(ev.seq)
                    .bind(&ev.hash)
                    .bind(&t)
                    .execute(&mut *conn)
                    .await
                    .map_err(classify)?;
            }
            Ok(())
        }

        async fn replace_shares(
            conn: &mut $Conn,
            owner: TenantId,
            id: ResourceId,
            sharing: &Sharing,
        ) -> Result<()> {
            sqlx::query("DELETE FROM resource_shares WHERE resource_id = $1 AND owner_tenant_id = $2")
                .bind(id.to_string())
                .bind(owner.to_string())
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
            if sharing.mode == SharingMode::Selective {
                for t in &sharing.tenants {
                    sqlx::query("INSERT INTO resource_shares (resource_id, owner_tenant_id, tenant_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                        .bind(id.to_string())
                        .bind(owner.to_string())
                        .bind(t.to_string())
                        .execute(&mut *conn)
                        .await
                        .map_err(classify)?;
                }
            }
            Ok(())
        }

        async fn shares_of(conn: &mut $Conn, id: ResourceId) -> Result<Vec<TenantId>> {
            sqlx::query("SELECT tenant_id FROM resource_shares WHERE resource_id = $1 ORDER BY tenant_id")
                .bind(id.to_string())
                .fetch_all(&mut *conn)
                .await
                .map_err(classify)?
                .iter()
                .map(|r| Ok(TenantId(rows::uuid(r, "tenant_id")?)))
                .collect()
        }

        /// Decodes a row for `scope`: the share list is the owner's business only.
        async fn for_scope(
            conn: &mut $Conn,
            scope: &TenantScope,
            row: &$Row,
        ) -> Result<Resource> {
            let mut r = rows::resource(row)?;
            if r.tenant_id == scope.tenant_id() && r.sharing.mode == SharingMode::Selective {
                r.sharing.tenants = shares_of(conn, r.id).await?;
            }
            Ok(r)
        }

        /// Drops an upload's reservation note (its upload completed or was aborted).
        async fn forget_reservation(conn: &mut $Conn, scope: &TenantScope, id: FileId) -> Result<()> {
            sqlx::query("DELETE FROM upload_reservations WHERE file_id = $1 AND tenant_id = $2")
                .bind(id.to_string())
                .bind(scope.tenant_id().to_string())
                .execute(&mut *conn)
                .await
                .map_err(classify)?;
            Ok(())
        }

        /// Whether `id` is visible to the tenant without being its own (shared with it).
        async fn visible_shared(
            conn: &mut $Conn,
            scope: &TenantScope,
            kind: ResourceKind,
            id: ResourceId,
        ) -> Result<bool> {
            let n: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM resources r WHERE r.id = $2 AND r.kind = $3 AND r.tenant_id <> $1 AND (r.sharing_mode = 'global' OR (r.sharing_mode = 'selective' AND EXISTS (SELECT 1 FROM resource_shares s WHERE s.resource_id = r.id AND s.tenant_id = $1)))",
            )
            .bind(scope.tenant_id().to_string())
            .bind(id.to_string())
            .bind(kind.as_str())
            .fetch_one(&mut *conn)
            .await
            .map_err(classify)?;
            Ok(n > 0)
        }

        /// The error for a change to a row the tenant does not own: read-only if shared with it,
        /// otherwise exactly like a row that does not exist.
        async fn not_owned(
            conn: &mut $Conn,
            scope: &TenantScope,
            kind: ResourceKind,
            id: ResourceId,
        ) -> Error {
            match visible_shared(conn, scope, kind, id).await {
                Ok(true) => Error::Forbidden(
                    "shared items are read-only for the tenants they are shared with".into(),
                ),
                Ok(false) => Error::NotFound,
                Err(e) => e,
            }
        }

        fn file_row(r: &$Row) -> Result<FileMeta> {
            Ok(FileMeta {
                id: FileId(rows::uuid(r, "id")?),
                tenant_id: TenantId(rows::uuid(r, "tenant_id")?),
                name: rows::s(r, "name")?,
                size: rows::int(r, "size")?,
                sha256: rows::s(r, "sha256")?,
                content_type: rows::s(r, "content_type")?,
                created_at: rows::ts(r, "created_at")?,
                created_by: rows::s(r, "created_by")?,
            })
        }

        async fn file_in(conn: &mut $Conn, scope: &TenantScope, id: FileId) -> Result<FileMeta> {
            let row = sqlx::query(
                "SELECT id, tenant_id, name, size, sha256, content_type, created_at, created_by FROM files WHERE id = $1 AND tenant_id = $2 AND state = 'stored'",
            )
            .bind(id.to_string())
            .bind(scope.tenant_id().to_string())
            .fetch_optional(&mut *conn)
            .await
            .map_err(classify)?
            .ok_or(Error::NotFound)?;
            file_row(&row)
        }

        #[async_trait]
        impl CellStore for $Store {
            fn name(&self) -> &str {
                &self.name
            }

            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1")
                    .execute(self.db.reader()?)
                    .await
                    .map_err(classify)?;
                Ok(())
            }

            async fn create_resource(
                &self,
                scope: &TenantScope,
                new: NewResource,
                limit: Option<i64>,
                audit: AuditDraft,
            ) -> Result<Resource> {
                let mut tx = self.db.begin_scoped(scope).await?;
                let tenant = scope.tenant_id();
                take_slot(&mut tx, tenant, new.kind.as_str(), limit, 1).await?;
                let now = fmt(time::now());
                sqlx::query(
                    "INSERT INTO resources (id, tenant_id, kind, name, spec, sharing_mode, version, created_at, updated_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9)",
                )
                .bind(new.id.to_string())
                .bind(tenant.to_string())
                .bind(new.kind.as_str())
                .bind(new.name.as_str())
                .bind(new.spec.as_value().to_string())
                .bind(new.sharing.mode.as_str())
                .bind(&now)
                .bind(&now)
                .bind(&new.created_by)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                replace_shares(&mut tx, tenant, new.id, &new.sharing).await?;
                append(&mut tx, tenant, vec![audit]).await?;
                let sql = "SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version, r.created_at, r.updated_at, r.created_by FROM resources r WHERE r.id = $1 AND r.tenant_id = $2";
                let row = sqlx::query(sql)
                    .bind(new.id.to_string())
                    .bind(tenant.to_string())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(classify)?;
                let r = for_scope(&mut tx, scope, &row).await?;
                tx.commit().await.map_err(classify)?;
                Ok(r)
            }

            async fn get_resource(
                &self,
                scope: &TenantScope,
                kind: ResourceKind,
                id: ResourceId,
            ) -> Result<Resource> {
                let mut conn = self.db.read_scoped(scope).await?;
                let row = sqlx::query(
                    "SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version, r.created_at, r.updated_at, r.created_by FROM resources r WHERE r.id = $2 AND r.kind = $3 AND (r.tenant_id = $1 OR r.sharing_mode = 'global' OR (r.sharing_mode = 'selective' AND EXISTS (SELECT 1 FROM resource_shares s WHERE s.resource_id = r.id AND s.tenant_id = $1)))",
                )
                .bind(scope.tenant_id().to_string())
                .bind(id.to_string())
                .bind(kind.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(classify)?
                .ok_or(Error::NotFound)?;
                let r = for_scope(&mut conn, scope, &row).await?;
                conn.commit().await.map_err(classify)?;
                Ok(r)
            }

            async fn list_resources(
                &self,
                scope: &TenantScope,
                kind: ResourceKind,
                q: &ListQuery,
            ) -> Result<Vec<Resource>> {
                // One static statement per filter; $1 tenant, $2 kind, $3 name, $4 after ('' for
                // the first page), $5 limit. The three sources (own, global, shared with the
                // tenant) are separate branches so each can use its own index instead of one
                // OR that scans every tenant's rows; each branch is cut to the page in index order,
                // so a page costs O(limit) rows however many the tenant has.
                let sql = match q.shared {
                    SharedFilter::Exclude => "SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version, r.created_at, r.updated_at, r.created_by FROM resources r WHERE r.tenant_id = $1 AND r.kind = $2 AND r.id > $4 AND ($3 IS NULL OR r.name = $3) ORDER BY r.id LIMIT $5",
                    SharedFilter::Only => "SELECT * FROM (SELECT * FROM (SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version, r.created_at, r.updated_at, r.created_by FROM resources r WHERE r.sharing_mode = 'global' AND r.kind = $2 AND r.id > $4 AND r.tenant_id <> $1 AND ($3 IS NULL OR r.name = $3) ORDER BY r.id LIMIT $5) g UNION ALL SELECT * FROM (SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version, r.created_at, r.updated_at, r.created_by FROM resource_shares s JOIN resources r ON r.id = s.resource_id WHERE s.tenant_id = $1 AND r.sharing_mode = 'selective' AND r.kind = $2 AND r.id > $4 AND r.tenant_id <> $1 AND ($3 IS NULL OR r.name = $3) ORDER BY r.id LIMIT $5) s) u ORDER BY u.id LIMIT $5",
                    SharedFilter::Include => "SELECT * FROM (SELECT * FROM (SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version, r.created_at, r.updated_at, r.created_by FROM resources r WHERE r.tenant_id = $1 AND r.kind = $2 AND r.id > $4 AND ($3 IS NULL OR r.name = $3) ORDER BY r.id LIMIT $5) o UNION ALL SELECT * FROM (SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version, r.created_at, r.updated_at, r.created_by FROM resources r WHERE r.sharing_mode = 'global' AND r.kind = $2 AND r.id > $4 AND r.tenant_id <> $1 AND ($3 IS NULL OR r.name = $3) ORDER BY r.id LIMIT $5) g UNION ALL SELECT * FROM (SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version, r.created_at, r.updated_at, r.created_by FROM resource_shares s JOIN resources r ON r.id = s.resource_id WHERE s.tenant_id = $1 AND r.sharing_mode = 'selective' AND r.kind = $2 AND r.id > $4 AND r.tenant_id <> $1 AND ($3 IS NULL OR r.name = $3) ORDER BY r.id LIMIT $5) s) u ORDER BY u.id LIMIT $5",
                };
                let mut conn = self.db.read_scoped(scope).await?;
                let rows = sqlx::query(sql)
                    .bind(scope.tenant_id().to_string())
                    .bind(kind.as_str())
                    .bind(q.name.as_deref())
                    .bind(q.after.map(|a| a.to_string()).unwrap_or_default())
                    .bind(i64::from(q.limit))
                    .fetch_all(&mut *conn)
                    .await
                    .map_err(classify)?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(for_scope(&mut conn, scope, row).await?);
                }
                conn.commit().await.map_err(classify)?;
                Ok(out)
            }

            async fn update_resource(
                &self,
                scope: &TenantScope,
                kind: ResourceKind,
                id: ResourceId,
                patch: ResourcePatch,
                audit: AuditDraft,
            ) -> Result<Resource> {
                let mut tx = self.db.begin_scoped(scope).await?;
                let tenant = scope.tenant_id();
                let sql = "SELECT r.id, r.tenant_id, r.kind, r.name, r.spec, r.sharing_mode, r.version, r.created_at, r.updated_at, r.created_by FROM resources r WHERE r.id = $1 AND r.kind = $2 AND r.tenant_id = $3";
                let row = sqlx::query(sql)
                    .bind(id.to_string())
                    .bind(kind.as_str())
                    .bind(tenant.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(classify)?;
                let Some(row) = row else {
                    return Err(not_owned(&mut tx, scope, kind, id).await);
                };
                let cur = rows::resource(&row)?;
                if patch.if_version.is_some_and(|v| v != cur.version) {
                    return Err(Error::PreconditionFailed);
                }
                let name = patch
                    .name
                    .as_ref()
                    .map(|n| n.as_str().to_owned())
                    .unwrap_or(cur.name);
                let spec = patch
                    .spec
                    .as_ref()
                    .map(|s| s.as_value().clone())
                    .unwrap_or(cur.spec);
                let mode = patch
                    .sharing
                    .as_ref()
                    .map(|s| s.mode)
                    .unwrap_or(cur.sharing.mode);
                sqlx::query(
                    "UPDATE resources SET name = $1, spec = $2, sharing_mode = $3, version = version + 1, updated_at = $4 WHERE id = $5 AND tenant_id = $6 AND version = $7",
                )
                .bind(&name)
                .bind(spec.to_string())
                .bind(mode.as_str())
                .bind(fmt(time::now()))
                .bind(id.to_string())
                .bind(tenant.to_string())
                .bind(cur.version)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                if let Some(sharing) = &patch.sharing {
                    replace_shares(&mut tx, tenant, id, sharing).await?;
                }
                append(&mut tx, tenant, vec![audit]).await?;
                let row = sqlx::query(sql)
                    .bind(id.to_string())
                    .bind(kind.as_str())
                    .bind(tenant.to_string())
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(classify)?;
                let r = for_scope(&mut tx, scope, &row).await?;
                tx.commit().await.map_err(classify)?;
                Ok(r)
            }

            async fn delete_resource(
                &self,
                scope: &TenantScope,
                kind: ResourceKind,
                id: ResourceId,
                audit: AuditDraft,
            ) -> Result<()> {
                let mut tx = self.db.begin_scoped(scope).await?;
                let tenant = scope.tenant_id();
                sqlx::query("DELETE FROM resource_shares WHERE resource_id IN (SELECT id FROM resources WHERE id = $1 AND kind = $2 AND tenant_id = $3)")
                    .bind(id.to_string())
                    .bind(kind.as_str())
                    .bind(tenant.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                let n = sqlx::query("DELETE FROM resources WHERE id = $1 AND kind = $2 AND tenant_id = $3")
                    .bind(id.to_string())
                    .bind(kind.as_str())
                    .bind(tenant.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?
                    .rows_affected();
                if n == 0 {
                    return Err(not_owned(&mut tx, scope, kind, id).await);
                }
                release_slot(&mut tx, tenant, kind.as_str(), 1).await?;
                append(&mut tx, tenant, vec![audit]).await?;
                tx.commit().await.map_err(classify)
            }

            async fn reserve_file(
                &self,
                scope: &TenantScope,
                new: &NewFile,
                limit: Option<i64>,
                expires_at: chrono::DateTime<chrono::Utc>,
            ) -> Result<()> {
                let mut tx = self.db.begin_scoped(scope).await?;
                let tenant = scope.tenant_id();
                take_slot(&mut tx, tenant, "storage_bytes", limit, new.size).await?;
                sqlx::query(
                    "INSERT INTO files (id, tenant_id, name, size, sha256, content_type, state, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8)",
                )
                .bind(new.id.to_string())
                .bind(tenant.to_string())
                .bind(new.name.as_str())
                .bind(new.size)
                .bind(&new.sha256)
                .bind(&new.content_type)
                .bind(fmt(time::now()))
                .bind(&new.created_by)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
                sqlx::query("INSERT INTO upload_reservations (file_id, tenant_id, expires_at) VALUES ($1, $2, $3)")
                    .bind(new.id.to_string())
                    .bind(tenant.to_string())
                    .bind(fmt(expires_at))
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?;
                tx.commit().await.map_err(classify)
            }

            async fn complete_file(&self, scope: &TenantScope, id: FileId, audit: AuditDraft) -> Result<FileMeta> {
                let mut tx = self.db.begin_scoped(scope).await?;
                let n = sqlx::query("UPDATE files SET state = 'stored' WHERE id = $1 AND tenant_id = $2 AND state = 'pending'")
                    .bind(id.to_string())
                    .bind(scope.tenant_id().to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(classify)?
                    .rows_affected();
                if n != 1 {
                    return Err(Error::NotFound);
                }
                forget_reservation(&mut tx, scope, id).await?;
                append(&mut tx, scope.tenant_id(), vec![audit]).await?;
                let meta = file_in(&mut tx, scope, id).await?;
                tx.commit().await.map_err(classify)?;
                Ok(meta)
            }

            async fn abort_file(&self, scope: &TenantScope, id: FileId) -> Result<()> {
                let mut tx = self.db.begin_scoped(scope).await?;
                let size: Option<i64> = sqlx::query_scalar(
                    "DELETE FROM files WHERE id = $1 AND tenant_id = $2 AND state = 'pending' RETURNING size",
                )
                .bind(id.to_string())
                .bind(scope.tenant_id().to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
                if let Some(size) = size {
                    release_slot(&mut tx, scope.tenant_id(), "storage_bytes", size).await?;
                }
                forget_reservation(&mut tx, scope, id).await?;
                tx.commit().await.map_err(classify)
            }

            async fn unscoped_expired_uploads(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                limit: u32,
            ) -> Result<Vec<(TenantId, FileId)>> {
                sqlx::query("SELECT tenant_id, file_id FROM upload_reservations WHERE expires_at < $1 ORDER BY expires_at LIMIT $2")
                    .bind(fmt(now))
                    .bind(i64::from(limit))
                    .fetch_all(self.db.reader()?)
                    .await
                    .map_err(classify)?
                    .iter()
                    .map(|r| Ok((TenantId(rows::uuid(r, "tenant_id")?), FileId(rows::uuid(r, "file_id")?))))
                    .collect()
            }

            async fn get_file(&self, scope: &TenantScope, id: FileId) -> Result<FileMeta> {
                let mut tx = self.db.read_scoped(scope).await?;
                let meta = file_in(&mut tx, scope, id).await?;
                tx.commit().await.map_err(classify)?;
                Ok(meta)
            }

            async fn list_files(&self, scope: &TenantScope, after: Option<FileId>, limit: u32) -> Result<Vec<FileMeta>> {
                let mut tx = self.db.read_scoped(scope).await?;
                let rows = sqlx::query(
                    "SELECT id, tenant_id, name, size, sha256, content_type, created_at, created_by FROM files WHERE tenant_id = $1 AND state = 'stored' AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
                )
                .bind(scope.tenant_id().to_string())
                .bind(after.map(|a| a.to_string()))
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await
                .map_err(classify)?;
                tx.commit().await.map_err(classify)?;
                rows.iter().map(file_row).collect()
            }

            async fn delete_file(&self, scope: &TenantScope, id: FileId, audit: AuditDraft) -> Result<FileMeta> {
                let mut tx = self.db.begin_scoped(scope).await?;
                let meta = file_in(&mut tx, scope, id).await?;
                // Release exactly what this statement removed: a concurrent delete of the same
                // file removes nothing here and releases nothing.
                let size: Option<i64> = sqlx::query_scalar(
                    "DELETE FROM files WHERE id = $1 AND tenant_id = $2 AND state = 'stored' RETURNING size",
                )
                .bind(id.to_string())
                .bind(scope.tenant_id().to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(classify)?;
                let size = size.ok_or(Error::NotFound)?;
                release_slot(&mut tx, scope.tenant_id(), "storage_bytes", size).await?;
                append(&mut tx, scope.tenant_id(), vec![audit]).await?;
                tx.commit().await.map_err(classify)?;
                Ok(meta)
            }

            async fn counters(&self, scope: &TenantScope) -> Result<BTreeMap<String, i64>> {
                let mut tx = self.db.read_scoped(scope).await?;
                let rows = sqlx::query("SELECT quota, used FROM quota_counters WHERE tenant_id = $1")
                    .bind(scope.tenant_id().to_string())
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(classify)?;
                tx.commit().await.map_err(classify)?;
                rows.iter().map(|r| Ok((rows::s(r, "quota")?, rows::int(r, "used")?))).collect()
            }

            async fn append_audit(&self, scope: &TenantScope, events: Vec<AuditDraft>) -> Result<()> {
                let mut tx = self.db.begin_scoped(scope).await?;
                append(&mut tx, scope.tenant_id(), events).await?;
                tx.commit().await.map_err(classify)
            }

            async fn list_audit(&self, scope: &TenantScope, f: &AuditFilter) -> Result<Vec<AuditEvent>> {
                let mut tx = self.db.read_scoped(scope).await?;
                let rows = sqlx::query(
                    "SELECT tenant_id, seq, id, actor, action, resource, resource_id, outcome, request_id, ip, at, details, prev_hash, hash FROM audit_events WHERE tenant_id = $1 AND ($2 IS NULL OR actor = $2) AND ($3 IS NULL OR action = $3) AND ($4 IS NULL OR resource = $4) AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) AND ($7 IS NULL OR seq > $7) ORDER BY seq LIMIT $8",
                )
                .bind(scope.tenant_id().to_string())
                .bind(f.actor.as_deref())
                .bind(f.action.as_deref())
                .bind(f.resource.as_deref())
                .bind(f.from.as_deref())
                .bind(f.to.as_deref())
                .bind(f.after_seq)
                .bind(i64::from(f.limit))
                .fetch_all(&mut *tx)
                .await
                .map_err(classify)?;
                tx.commit().await.map_err(classify)?;
                rows.iter().map(rows::audit_event).collect()
            }

            async fn audit_chain(
                &self,
                scope: &TenantScope,
            ) -> Result<(Vec<AuditEvent>, Option<(i64, String)>)> {
                // One read transaction, so the head and the events are the same snapshot.
                let mut tx = self.db.read_scoped(scope).await?;
                let t = scope.tenant_id().to_string();
                let head = sqlx::query("SELECT seq, hash FROM audit_heads WHERE tenant_id = $1")
                    .bind(&t)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(classify)?
                    .map(|r| Ok::<_, Error>((rows::int(&r, "seq")?, rows::s(&r, "hash")?)))
                    .transpose()?
                    .filter(|(seq, _)| *seq > 0);
                let events = sqlx::query(
                    "SELECT tenant_id, seq, id, actor, action, resource, resource_id, outcome, request_id, ip, at, details, prev_hash, hash FROM audit_events WHERE tenant_id = $1 ORDER BY seq",
                )
                .bind(&t)
                .fetch_all(&mut *tx)
                .await
                .map_err(classify)?
                .iter()
                .map(rows::audit_event)
                .collect::<Result<Vec<_>>>()?;
                tx.commit().await.map_err(classify)?;
                Ok((events, head))
            }
        }
    };
}
