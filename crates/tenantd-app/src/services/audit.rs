use tenantd_core::access::Granted;
use tenantd_core::access::perm::AuditRead;
use tenantd_core::audit::{AuditEvent, AuditFilter, Verification, verify as verify_chain};
use tenantd_core::{Error, Result};

use crate::context::Ctx;
use crate::state::AppState;

/// Audit access: the role's `audit:read`, and the plan's `audit_logs` feature unless a
/// platform admin is reading.
pub async fn access(state: &AppState, ctx: &Ctx) -> Result<Granted<AuditRead>> {
    let g = ctx.require::<AuditRead>(state).await?;
    if !ctx.crossing && !ctx.caller.is_platform_admin() {
        ctx.plan.require_feature("audit_logs")?;
    }
    Ok(g)
}

/// A page of events.
pub async fn list(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<AuditRead>,
    filter: AuditFilter,
) -> Result<Vec<AuditEvent>> {
    state
        .cell(&ctx.scope)?
        .list_audit(&ctx.scope, &filter)
        .await
}

/// The whole chain (exports).
pub async fn all(state: &AppState, ctx: &Ctx, _: Granted<AuditRead>) -> Result<Vec<AuditEvent>> {
    Ok(state.cell(&ctx.scope)?.audit_chain(&ctx.scope).await?.0)
}

/// Verifies the tenant's chain.
pub async fn verify(state: &AppState, ctx: &Ctx, _: Granted<AuditRead>) -> Result<Verification> {
    let (events, head) = state.cell(&ctx.scope)?.audit_chain(&ctx.scope).await?;
    Ok(verify_chain(
        &events,
        head.as_ref().map(|(s, h)| (*s, h.as_str())),
    ))
}

/// Parses a time filter to the stored form.
pub fn time_filter(field: &str, v: Option<&str>) -> Result<Option<String>> {
    v.map(|s| {
        tenantd_core::time::parse(s)
            .map(tenantd_core::time::format)
            .ok_or_else(|| Error::invalid(field, "must be an RFC 3339 time"))
    })
    .transpose()
}
