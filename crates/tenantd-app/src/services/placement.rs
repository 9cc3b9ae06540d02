//! Placement: which cell takes a new tenant's data.
//!
//! - A tenant goes to a cell of its region (`region`, or `settings.data_residency`); without
//!   one, to the first cell of its kind. A region that no cell of the right kind serves is a
//!   422, never a silent fallback to another region.
//! - A plan with `isolation: dedicated` (enterprise) asks for a `dedicated` cell: the first
//!   free one of its region, claimed in the transaction that creates the tenant (a second
//!   tenant is refused by the catalog, so two concurrent creations cannot share one). When
//!   every dedicated cell of the region is taken, creation is a 422 — it is not placed in a
//!   pooled cell behind the operator's back. A deployment with no dedicated cell at all (the
//!   embedded default) places such tenants in pooled cells.
//! - Other plans never land in a dedicated cell.

use tenantd_core::audit::AuditDraft;
use tenantd_core::plans::Plan;
use tenantd_core::store::{NewSession, TenantOwner};
use tenantd_core::tenant::{CellName, NewTenant, Region, Tenant};
use tenantd_core::{Error, Result};

use crate::state::AppState;

/// Where a new tenant may go.
#[derive(Debug, Clone)]
pub struct Placement {
    /// Candidate cells, in order of preference.
    pub cells: Vec<CellName>,
    /// Whether they are dedicated cells to claim.
    pub dedicated: bool,
    region: Option<Region>,
}

/// The cells a tenant of `plan` in `region` may take. The platform tenant passes
/// `pooled_only`: its global resources are read by the tenants of its cell.
pub fn placement(
    state: &AppState,
    region: Option<Region>,
    plan: &Plan,
    pooled_only: bool,
) -> Result<Placement> {
    let cells = &state.config.cells;
    let in_region = |c: &&crate::config::CellConfig| {
        region.is_none_or(|r| c.region.as_deref() == Some(r.as_str()))
    };
    let wants_dedicated = !pooled_only
        && plan.isolation == tenantd_core::plans::Isolation::Dedicated
        && cells.iter().any(|c| c.dedicated);
    let candidates: Vec<CellName> = cells
        .iter()
        .filter(|c| c.dedicated == wants_dedicated)
        .filter(in_region)
        .map(|c| c.name.clone())
        .collect();
    if candidates.is_empty() {
        let kind = if wants_dedicated {
            "dedicated"
        } else {
            "pooled"
        };
        return Err(match region {
            Some(r) => Error::invalid("region", format!("no {kind} cell serves region {r}")),
            None => Error::invalid("region", format!("no {kind} cell is configured")),
        });
    }
    Ok(Placement {
        cells: if wants_dedicated {
            candidates
        } else {
            candidates.into_iter().take(1).collect()
        },
        dedicated: wants_dedicated,
        region,
    })
}

/// Creates the tenant in the first candidate cell that takes it.
pub async fn create_placed(
    state: &AppState,
    mut tenant: NewTenant,
    placement: &Placement,
    owner: TenantOwner,
    session: Option<NewSession>,
    outbox: Vec<AuditDraft>,
) -> Result<Tenant> {
    tenant.dedicated = placement.dedicated;
    for cell in &placement.cells {
        tenant.cell = cell.clone();
        match state
            .catalog
            .create_tenant(
                tenant.clone(),
                owner.clone(),
                session.clone(),
                outbox.clone(),
            )
            .await
        {
            Err(Error::Conflict { field, .. }) if field == "cell" => continue,
            other => return other,
        }
    }
    Err(Error::invalid(
        "region",
        match placement.region {
            Some(r) => format!("every dedicated cell of region {r} holds a tenant; add a cell"),
            None => "every dedicated cell holds a tenant; add a cell".to_owned(),
        },
    ))
}
