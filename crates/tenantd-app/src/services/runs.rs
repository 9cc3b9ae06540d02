//! Agent runs, as a tenant sees them: admission in the contract's order (feature, model, then
//! one transaction for the queue place, the token hold and the `agent_spawns` window), reads,
//! and cancellation. Workers' calls are `services/workers.rs`. See `docs/design/runs.md`.

use serde_json::{Value, json};
use tenantd_core::access::perm::{RunsRead, RunsWrite};
use tenantd_core::access::{Granted, perm};
use tenantd_core::audit::Action;
use tenantd_core::ids::{ResourceId, RunId};
use tenantd_core::resource::ResourceKind;
use tenantd_core::runs::{NewRun, Run, RunFilter, RunLimits, RunStatus, choose_model};
use tenantd_core::{Error, FieldError, Result};

use crate::context::Ctx;
use crate::state::AppState;

/// The plan feature runs need.
pub const FEATURE: &str = "basic_orchestration";

/// The largest `max_tokens` a run may ask for.
const MAX_TOKENS: i64 = 1 << 40;

/// A run as a request asks for it.
#[derive(Debug, Default)]
pub struct RunRequest {
    /// What the worker gets (absent: `{}`).
    pub input: Option<Value>,
    /// The model (absent: the tenant's default, else the plan's first).
    pub model: Option<String>,
    /// The caller's cap on the run's tokens, held from the budget.
    pub max_tokens: Option<i64>,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

fn idempotency_key(k: Option<String>) -> Result<Option<String>> {
    match k {
        Some(k) if k.is_empty() || k.len() > 200 || k.chars().any(char::is_control) => Err(
            Error::invalid("Idempotency-Key", "1 to 200 printable characters"),
        ),
        k => Ok(k),
    }
}

/// Admits a run of `agent`, in the contract's order; nothing is taken when it refuses. The
/// second value is `false` when the `Idempotency-Key` named a run made within 24 h (returned
/// as it is now).
pub async fn create(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<RunsWrite>,
    agent: ResourceId,
    req: RunRequest,
) -> Result<(Run, bool)> {
    let refused = |reason: &'static str| async move {
        state.run_stats.rejected(reason);
        // A figure of the tenant's usage; failing to count it does not change the answer.
        if let Ok(cell) = state.cell(&ctx.scope)
            && let Err(e) = cell.count_rejection(&ctx.scope, reason).await
        {
            tracing::warn!(error = %e, "counting a refused run admission failed");
        }
    };
    if let Err(e) = ctx.plan.require_feature(FEATURE) {
        refused("feature").await;
        return Err(e);
    }
    // The agent must be one the tenant can see (its own, or shared with it).
    let read = ctx
        .role
        .grant::<perm::ResourcesRead>()
        .ok_or(Error::NotFound)?;
    crate::services::resources::get(state, ctx, read, ResourceKind::Agents, agent).await?;
    let model = match choose_model(
        req.model.as_deref(),
        ctx.plan.models.as_deref(),
        &ctx.tenant.settings,
    ) {
        Err(e @ Error::ModelNotAllowed { .. }) => {
            refused("model").await;
            return Err(e);
        }
        other => other?,
    };
    if let Some(m) = req.max_tokens
        && !(1..=MAX_TOKENS).contains(&m)
    {
        return Err(FieldError::new("max_tokens", format!("1 to {MAX_TOKENS}")).into());
    }
    let key = idempotency_key(req.idempotency_key)?;
    let token_hold = req.max_tokens.unwrap_or_else(|| ctx.plan.run_token_hold());
    let id = RunId::new();
    let new = NewRun {
        id,
        agent_id: agent,
        model: model.clone(),
        input: req.input.unwrap_or_else(|| json!({})),
        max_tokens: req.max_tokens,
        token_hold,
        idempotency_key: key,
    };
    let limits = RunLimits {
        queued: ctx.plan.limit("queued_runs"),
        tokens: ctx.plan.limit("tokens"),
        slots: ctx.plan.limit("concurrent_runs"),
        spawns_per_minute: ctx.plan.rate_per_minute("agent_spawns").map(i64::from),
    };
    let audit = ctx.event(
        Action::RunQueue,
        "runs",
        Some(id.to_string()),
        json!({ "agent_id": agent.to_string(), "model": model, "token_hold": token_hold }),
    );
    let out = state
        .cell(&ctx.scope)?
        .admit_run(&ctx.scope, new, limits, audit)
        .await;
    match &out {
        Ok((_, true)) => state.run_stats.admitted(),
        Ok((_, false)) => {}
        Err(Error::QuotaExceeded { resource, .. }) if resource == "tokens" => {
            refused("tokens").await
        }
        Err(Error::QuotaExceeded { .. }) => refused("queued_runs").await,
        Err(Error::RateLimited { .. }) => refused("rate").await,
        Err(Error::TenantSuspended) => refused("suspended").await,
        Err(_) => {}
    }
    out
}

/// A run of the tenant.
pub async fn get(state: &AppState, ctx: &Ctx, _: Granted<RunsRead>, id: RunId) -> Result<Run> {
    state.cell(&ctx.scope)?.get_run(&ctx.scope, id).await
}

/// Parses a list request: `status`, `agent_id`, `limit` (1 to 200, default 50), `cursor`.
pub fn filter(
    status: Option<&str>,
    agent_id: Option<&str>,
    limit: Option<u32>,
    cursor: Option<&str>,
) -> Result<RunFilter> {
    let mut v = tenantd_core::error::Validator::default();
    let status = match status {
        None => None,
        Some(s) => match RunStatus::parse(s) {
            Some(s) => Some(s),
            None => {
                v.push(FieldError::new(
                    "status",
                    "one of queued, leased, succeeded, failed, cancelled, budget_exceeded, expired",
                ));
                None
            }
        },
    };
    let agent_id = agent_id.and_then(|a| v.check(ResourceId::parse(a, "agent_id")));
    let before = cursor.and_then(|c| v.check(RunId::parse(c, "cursor")));
    let limit = limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        v.push(FieldError::new("limit", "1 to 200"));
    }
    v.finish()?;
    Ok(RunFilter {
        status,
        agent_id,
        before,
        limit,
    })
}

/// A page of the tenant's runs, newest first, and the cursor of the next page.
pub async fn list(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<RunsRead>,
    f: &RunFilter,
) -> Result<(Vec<Run>, Option<String>)> {
    let runs = state.cell(&ctx.scope)?.list_runs(&ctx.scope, f).await?;
    let next = (runs.len() == f.limit as usize)
        .then(|| runs.last().map(|r| r.id.to_string()))
        .flatten();
    Ok((runs, next))
}

/// Cancels a run: a queued one ends at once with its hold back; a leased one ends at once
/// too (its slot and the rest of its hold back), and its worker gets `RUN_CANCELLED` at its
/// next call. An ended run is returned as it is.
pub async fn cancel(state: &AppState, ctx: &Ctx, _: Granted<RunsWrite>, id: RunId) -> Result<Run> {
    let audit = ctx.event(
        Action::RunCancel,
        "runs",
        Some(id.to_string()),
        json!({ "reason": "cancelled by a caller" }),
    );
    let cell = state.cell(&ctx.scope)?;
    let before = cell.get_run(&ctx.scope, id).await?;
    let run = cell.cancel_run(&ctx.scope, id, audit).await?;
    if before.status.is_open() && run.status == RunStatus::Cancelled {
        state.run_stats.ended(RunStatus::Cancelled);
    }
    Ok(run)
}
