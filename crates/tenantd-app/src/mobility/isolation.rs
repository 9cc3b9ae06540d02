//! A move a plan change asks for: a plan with `isolation: dedicated` takes the tenant from its
//! pooled cell into a free dedicated one (`docs/design/mobility.md`).

use tenantd_core::store::MoveRecord;
use tenantd_core::tenant::{Tenant, TenantStatus};
use tenantd_core::{Error, Result};

use super::moving::plan;
use crate::state::AppState;

/// What a plan change asks for: a tenant whose plan wants a dedicated cell
/// (`isolation: dedicated`) and that is in a pooled one is moved to the first free dedicated
/// cell of its region. The move is planned (the cell claimed) and returned for the caller to
/// run; `None` when nothing is to move, or when every such cell is taken (the tenant stays
/// pooled, as placement leaves it in a deployment without a free one).
pub async fn plan_isolation(state: &AppState, tenant: &Tenant) -> Result<Option<MoveRecord>> {
    let wants = state.plan_of(tenant).isolation;
    let cells = &state.config.cells;
    let in_dedicated = cells.iter().any(|c| c.name == tenant.cell && c.dedicated);
    if wants != tenantd_core::plans::Isolation::Dedicated
        || in_dedicated
        || tenant.id == state.platform
        || tenant.status == TenantStatus::Migrating
    {
        return Ok(None);
    }
    let region = tenant.region.map(|r| r.as_str().to_owned());
    for c in cells.iter().filter(|c| c.dedicated) {
        if region.is_some() && c.region != region {
            continue;
        }
        match plan(state, tenant, &c.name).await {
            Ok(m) => return Ok(Some(m)),
            Err(Error::Conflict { field, .. }) if field == "cell" => continue,
            Err(e) => return Err(e),
        }
    }
    tracing::warn!(tenant = %tenant.id, "the tenant's plan asks for a dedicated cell and none is free; it stays pooled");
    Ok(None)
}
