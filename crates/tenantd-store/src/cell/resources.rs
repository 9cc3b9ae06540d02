//! Resources and their shares. A tenant reads its own rows, global rows and rows shared with
//! it; it changes only its own, and a change to a row shared with it is `Forbidden`, to any
//! other row `NotFound`, exactly like a row that does not exist.

use async_trait::async_trait;
use tenantd_core::audit::AuditDraft;
use tenantd_core::ids::{ResourceId, TenantId};
use tenantd_core::resource::*;
use tenantd_core::store::ResourceStore;
use tenantd_core::tenant::TenantScope;
use tenantd_core::{Error, Result, time};

use super::{Cell, append};
use crate::db::{Conn, Db, Int, Text, Tx, q};
use crate::quota;
use crate::rows::{ResourceRow, fmt, uuid};
use crate::sql::resources as sql;

async fn replace_shares(
    tx: &mut impl Conn,
    owner: TenantId,
    id: ResourceId,
    sharing: &Sharing,
) -> Result<()> {
    tx.execute(
        q(sql::CLEAR_SHARES)
            .bind(id.to_string())
            .bind(owner.to_string()),
    )
    .await?;
    if sharing.mode == SharingMode::Selective {
        for t in &sharing.tenants {
            tx.execute(
                q(sql::INSERT_SHARE)
                    .bind(id.to_string())
                    .bind(owner.to_string())
                    .bind(t.to_string()),
            )
            .await?;
        }
    }
    Ok(())
}

/// Decodes a row for `scope`: the share list is the owner's business only.
async fn for_scope(tx: &mut impl Conn, scope: &TenantScope, row: ResourceRow) -> Result<Resource> {
    let mut r = Resource::try_from(row)?;
    if r.tenant_id == scope.tenant_id() && r.sharing.mode == SharingMode::Selective {
        let rows: Vec<Text> = tx
            .fetch_all(q(sql::SHARES_OF).bind(r.id.to_string()))
            .await?;
        r.sharing.tenants = rows
            .iter()
            .map(|Text(t)| uuid(t, "tenant_id").map(TenantId))
            .collect::<Result<_>>()?;
    }
    Ok(r)
}

/// The error for a change to a row the tenant does not own: read-only if shared with it,
/// otherwise exactly like a row that does not exist.
async fn not_owned(
    tx: &mut impl Conn,
    scope: &TenantScope,
    kind: ResourceKind,
    id: ResourceId,
) -> Error {
    let shared: Result<Int> = tx
        .fetch_one(
            q(sql::COUNT_SHARED_WITH)
                .bind(scope.tenant_id().to_string())
                .bind(id.to_string())
                .bind(kind.as_str()),
        )
        .await;
    match shared {
        Ok(Int(n)) if n > 0 => Error::Forbidden(
            "shared items are read-only for the tenants they are shared with".into(),
        ),
        Ok(_) => Error::NotFound,
        Err(e) => e,
    }
}

async fn owned(
    tx: &mut impl Conn,
    tenant: TenantId,
    kind: ResourceKind,
    id: ResourceId,
) -> Result<Option<ResourceRow>> {
    tx.fetch_optional(
        q(sql::FIND_OWNED)
            .bind(id.to_string())
            .bind(kind.as_str())
            .bind(tenant.to_string()),
    )
    .await
}

#[async_trait]
impl<D: Db> ResourceStore for Cell<D> {
    async fn create_resource(
        &self,
        scope: &TenantScope,
        new: NewResource,
        limit: Option<i64>,
        audit: AuditDraft,
    ) -> Result<Resource> {
        let mut tx = self.db.begin_scoped(scope).await?;
        let tenant = scope.tenant_id();
        let mut events = quota::take(&mut tx, tenant, new.kind.as_str(), limit, 1).await?;
        let now = fmt(time::now());
        tx.execute(
            q(sql::INSERT)
                .bind(new.id.to_string())
                .bind(tenant.to_string())
                .bind(new.kind.as_str())
                .bind(new.name.as_str())
                .bind(new.spec.as_value().to_string())
                .bind(new.sharing.mode.as_str())
                .bind(&now)
                .bind(&now)
                .bind(&new.created_by),
        )
        .await?;
        replace_shares(&mut tx, tenant, new.id, &new.sharing).await?;
        events.insert(0, audit);
        append(&mut tx, tenant, events).await?;
        let row = owned(&mut tx, tenant, new.kind, new.id)
            .await?
            .ok_or(Error::NotFound)?;
        let r = for_scope(&mut tx, scope, row).await?;
        tx.commit().await?;
        Ok(r)
    }

    async fn get_resource(
        &self,
        scope: &TenantScope,
        kind: ResourceKind,
        id: ResourceId,
    ) -> Result<Resource> {
        let mut tx = self.db.read_scoped(scope).await?;
        let row: ResourceRow = tx
            .fetch_one(
                q(sql::FIND_VISIBLE)
                    .bind(scope.tenant_id().to_string())
                    .bind(id.to_string())
                    .bind(kind.as_str()),
            )
            .await?;
        let r = for_scope(&mut tx, scope, row).await?;
        tx.commit().await?;
        Ok(r)
    }

    async fn list_resources(
        &self,
        scope: &TenantScope,
        kind: ResourceKind,
        list: &ListQuery,
    ) -> Result<Vec<Resource>> {
        let statement = match list.shared {
            SharedFilter::Exclude => sql::LIST_OWN,
            SharedFilter::Only => sql::LIST_SHARED,
            SharedFilter::Include => sql::LIST_OWN_AND_SHARED,
        };
        let mut tx = self.db.read_scoped(scope).await?;
        let rows: Vec<ResourceRow> = tx
            .fetch_all(
                q(statement)
                    .bind(scope.tenant_id().to_string())
                    .bind(kind.as_str())
                    .bind(list.name.as_deref())
                    .bind(list.after.map(|a| a.to_string()).unwrap_or_default())
                    .bind(i64::from(list.limit)),
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(for_scope(&mut tx, scope, row).await?);
        }
        tx.commit().await?;
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
        let Some(row) = owned(&mut tx, tenant, kind, id).await? else {
            return Err(not_owned(&mut tx, scope, kind, id).await);
        };
        let cur = Resource::try_from(row)?;
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
        tx.execute(
            q(sql::UPDATE)
                .bind(name)
                .bind(spec.to_string())
                .bind(mode.as_str())
                .bind(fmt(time::now()))
                .bind(id.to_string())
                .bind(tenant.to_string())
                .bind(cur.version),
        )
        .await?;
        if let Some(sharing) = &patch.sharing {
            replace_shares(&mut tx, tenant, id, sharing).await?;
        }
        append(&mut tx, tenant, vec![audit]).await?;
        let row = owned(&mut tx, tenant, kind, id)
            .await?
            .ok_or(Error::NotFound)?;
        let r = for_scope(&mut tx, scope, row).await?;
        tx.commit().await?;
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
        let (i, t) = (id.to_string(), tenant.to_string());
        tx.execute(
            q(sql::DELETE_SHARES_OF_OWNED)
                .bind(&i)
                .bind(kind.as_str())
                .bind(&t),
        )
        .await?;
        let n = tx
            .execute(q(sql::DELETE).bind(&i).bind(kind.as_str()).bind(&t))
            .await?;
        if n == 0 {
            return Err(not_owned(&mut tx, scope, kind, id).await);
        }
        quota::release(&mut tx, tenant, kind.as_str(), 1).await?;
        append(&mut tx, tenant, vec![audit]).await?;
        tx.commit().await
    }
}
