use serde_json::json;
use tenantd_core::access::Granted;
use tenantd_core::access::perm::{ResourcesRead, ResourcesWrite};
use tenantd_core::audit::Action;
use tenantd_core::ids::ResourceId;
use tenantd_core::resource::*;
use tenantd_core::tenant::{TenantScope, TenantType};
use tenantd_core::{Error, FieldError, Result};

use crate::context::Ctx;
use crate::state::AppState;

/// Whether this tenant may share as `draft` says: global sharing is the platform tenant's,
/// selective sharing a plan feature, and every named tenant must exist and keep its data in
/// this tenant's cell (a share is read where the item is stored).
async fn admit_sharing(state: &AppState, ctx: &Ctx, draft: SharingDraft) -> Result<Sharing> {
    match draft.mode {
        SharingMode::Private => Ok(Sharing::private()),
        SharingMode::Global => {
            if ctx.tenant.kind != TenantType::Platform {
                return Err(Error::Forbidden(
                    "only the platform tenant shares globally".into(),
                ));
            }
            Ok(Sharing {
                mode: draft.mode,
                tenants: Vec::new(),
            })
        }
        SharingMode::Selective => {
            ctx.plan.require_feature("selective_sharing")?;
            let mut v = tenantd_core::error::Validator::default();
            for (i, id) in draft.tenants.iter().enumerate() {
                let field = format!("sharing.tenants[{i}]");
                // A tenant that does not exist is refused like a malformed id: nothing about
                // other tenants is revealed beyond what the caller already knows.
                let target = state
                    .catalog
                    .find_tenant(*id)
                    .await?
                    .filter(|_| *id != ctx.tenant.id);
                match target {
                    None => v.push(FieldError::new(
                        field,
                        "not a tenant this item can be shared with",
                    )),
                    // A tenant in another cell would never see the share: refused rather
                    // than silently ineffective.
                    Some(t) if t.cell != ctx.tenant.cell => v.push(FieldError::new(
                        field,
                        "this tenant's data is in another storage cell; selective sharing works within one cell",
                    )),
                    Some(_) => {}
                }
            }
            v.finish()?;
            Ok(Sharing {
                mode: draft.mode,
                tenants: draft.tenants,
            })
        }
    }
}

/// Creates a resource, taking a slot of its kind's quota in the same transaction.
pub async fn create(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<ResourcesWrite>,
    kind: ResourceKind,
    draft: ResourceDraft,
) -> Result<Resource> {
    let sharing = match draft.sharing {
        Some(s) => admit_sharing(state, ctx, s).await?,
        None => Sharing::private(),
    };
    let new = NewResource {
        id: ResourceId::new(),
        kind,
        name: draft.name,
        spec: draft.spec,
        sharing,
        created_by: ctx.caller.actor.audit_name(),
    };
    let ev = ctx.event(
        Action::ResourceCreate(kind),
        kind.as_str(),
        Some(new.id.to_string()),
        json!({"name": new.name.as_str(), "sharing": new.sharing.mode}),
    );
    state
        .cell(&ctx.scope)?
        .create_resource(&ctx.scope, new, ctx.plan.limit(kind.as_str()), ev)
        .await
}

/// The scope in which this tenant reads the platform's cell, when its own data is elsewhere:
/// global items live with the platform tenant. The cell's rules (and on PostgreSQL its
/// policies) show a tenant nothing there but global items and what is shared with it.
fn global_scope(state: &AppState, ctx: &Ctx) -> Option<TenantScope> {
    (ctx.tenant.cell != state.platform_cell)
        .then(|| TenantScope::unscoped_trusted(ctx.tenant.id, state.platform_cell.clone()))
}

/// One resource the tenant owns or that is shared with it.
pub async fn get(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<ResourcesRead>,
    kind: ResourceKind,
    id: ResourceId,
) -> Result<Resource> {
    match state
        .cell(&ctx.scope)?
        .get_resource(&ctx.scope, kind, id)
        .await
    {
        Err(Error::NotFound) => match global_scope(state, ctx) {
            Some(g) => state.cell(&g)?.get_resource(&g, kind, id).await,
            None => Err(Error::NotFound),
        },
        other => other,
    }
}

/// A page of resources: the tenant's cell, and the platform's cell for global items when the
/// tenant's data lives elsewhere (both ordered by id; merged and cut to the page).
pub async fn list(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<ResourcesRead>,
    kind: ResourceKind,
    q: ListQuery,
) -> Result<Vec<Resource>> {
    let mut items = state
        .cell(&ctx.scope)?
        .list_resources(&ctx.scope, kind, &q)
        .await?;
    if q.shared != SharedFilter::Exclude
        && let Some(g) = global_scope(state, ctx)
    {
        let global = state.cell(&g)?.list_resources(&g, kind, &q).await?;
        if !global.is_empty() {
            items.extend(global.into_iter().filter(|r| r.tenant_id != ctx.tenant.id));
            items.sort_by_key(|r| r.id);
            items.truncate(q.limit as usize);
        }
    }
    Ok(items)
}

/// A change to an item this tenant does not own but can read through the platform's cell is
/// refused as read-only, like a shared item in its own cell.
async fn read_only_elsewhere(
    state: &AppState,
    ctx: &Ctx,
    kind: ResourceKind,
    id: ResourceId,
    e: Error,
) -> Error {
    if !matches!(e, Error::NotFound) {
        return e;
    }
    let Some(g) = global_scope(state, ctx) else {
        return e;
    };
    match state.cell(&g) {
        Ok(cell) => match cell.get_resource(&g, kind, id).await {
            Ok(_) => Error::Forbidden(
                "shared items are read-only for the tenants they are shared with".into(),
            ),
            Err(_) => e,
        },
        Err(_) => e,
    }
}

/// Changes a resource the tenant owns (honouring `If-Match`).
pub async fn update(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<ResourcesWrite>,
    kind: ResourceKind,
    id: ResourceId,
    changes: ResourceChanges,
) -> Result<Resource> {
    let ResourceChanges {
        name,
        spec,
        sharing,
        if_version,
    } = changes;
    let sharing = match sharing {
        Some(s) => Some(admit_sharing(state, ctx, s).await?),
        None => None,
    };
    let changed: Vec<&str> = [
        ("name", name.is_some()),
        ("spec", spec.is_some()),
        ("sharing", sharing.is_some()),
    ]
    .iter()
    .filter(|(_, c)| *c)
    .map(|(f, _)| *f)
    .collect();
    let ev = ctx.event(
        Action::ResourceUpdate(kind),
        kind.as_str(),
        Some(id.to_string()),
        json!({"changed": changed}),
    );
    let patch = ResourcePatch {
        name,
        spec,
        sharing,
        if_version,
    };
    match state
        .cell(&ctx.scope)?
        .update_resource(&ctx.scope, kind, id, patch, ev)
        .await
    {
        Err(e) => Err(read_only_elsewhere(state, ctx, kind, id, e).await),
        ok => ok,
    }
}

/// Deletes a resource the tenant owns.
pub async fn delete(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<ResourcesWrite>,
    kind: ResourceKind,
    id: ResourceId,
) -> Result<()> {
    let ev = ctx.event(
        Action::ResourceDelete(kind),
        kind.as_str(),
        Some(id.to_string()),
        json!({}),
    );
    match state
        .cell(&ctx.scope)?
        .delete_resource(&ctx.scope, kind, id, ev)
        .await
    {
        Err(e) => Err(read_only_elsewhere(state, ctx, kind, id, e).await),
        ok => ok,
    }
}
