//! `tenantd runs …`: an operator's view of agent runs, and cancelling one.

use anyhow::{Context, anyhow};
use clap::Subcommand;
use serde_json::json;
use tenantd_core::audit::Action;
use tenantd_core::ids::{RunId, TenantId};
use tenantd_core::runs::{Run, RunFilter, RunStatus};
use tenantd_core::tenant::{Tenant, TenantScope};
use tenantd_server::AppState;
use tenantd_server::context::Caller;
use tenantd_server::services::tenants as tenants_svc;

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Agent runs, newest first: id, tenant, status, model, tokens used and held, attempts.
    List {
        /// Only this tenant (slug or id); absent: every tenant.
        #[arg(long)]
        tenant: Option<String>,
        /// Only runs in this state (queued, leased, succeeded, failed, cancelled,
        /// budget_exceeded, expired).
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cancels a run: a queued one ends at once with its hold back; a leased one too, and its
    /// worker gets RUN_CANCELLED at its next call.
    Cancel {
        /// The run's id.
        id: String,
        /// Its tenant (slug or id); absent: looked up in every tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
}

fn scope(t: &Tenant) -> TenantScope {
    TenantScope::unscoped_trusted(t.id, t.cell.clone())
}

/// Every tenant, or the one named.
async fn tenants(state: &AppState, op: &Caller, name: Option<&str>) -> anyhow::Result<Vec<Tenant>> {
    if let Some(n) = name {
        let t = tenants_svc::visible(state, op, n)
            .await
            .map_err(|e| anyhow!("tenant {n}: {e}"))?;
        return Ok(vec![t]);
    }
    let mut out = Vec::new();
    let mut after: Option<TenantId> = None;
    loop {
        let page = state
            .catalog
            .list_tenants(after, 500)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let n = page.len();
        after = page.last().map(|t| t.id);
        out.extend(page);
        if n < 500 {
            return Ok(out);
        }
    }
}

fn line(r: &Run) -> String {
    format!(
        "{}  {}  {:<15}  {:<12}  used {} held {}  attempt {}",
        r.id,
        r.tenant_id,
        r.status.as_str(),
        r.model,
        r.tokens_used,
        r.held(),
        r.attempt
    )
}

pub async fn run(state: AppState, cmd: RunsCommand) -> anyhow::Result<()> {
    let op = Caller::operator(&state).await.map_err(|e| anyhow!("{e}"))?;
    match cmd {
        RunsCommand::List {
            tenant,
            status,
            limit,
            json,
        } => {
            let status = match status.as_deref() {
                None => None,
                Some(s) => Some(RunStatus::parse(s).ok_or_else(|| {
                    anyhow!("--status {s}: one of queued, leased, succeeded, failed, cancelled, budget_exceeded, expired")
                })?),
            };
            let limit = limit.clamp(1, 1000);
            let mut runs = Vec::new();
            for t in tenants(&state, &op, tenant.as_deref()).await? {
                let f = RunFilter {
                    status,
                    agent_id: None,
                    before: None,
                    limit,
                };
                let s = scope(&t);
                let cell = state.cell(&s).map_err(|e| anyhow!("{e}"))?;
                runs.extend(cell.list_runs(&s, &f).await.map_err(|e| anyhow!("{e}"))?);
            }
            runs.sort_by_key(|r| std::cmp::Reverse(r.id.0));
            runs.truncate(limit as usize);
            if json {
                let v: Vec<_> = runs
                    .into_iter()
                    .map(tenantd_server::api::runs::RunResponse::from)
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for r in &runs {
                    println!("{}", line(r));
                }
            }
        }
        RunsCommand::Cancel { id, tenant } => {
            let rid = RunId::parse(&id, "id").map_err(|e| anyhow!("{}", e.message))?;
            for t in tenants(&state, &op, tenant.as_deref()).await? {
                let s = scope(&t);
                let cell = state.cell(&s).map_err(|e| anyhow!("{e}"))?;
                match cell.get_run(&s, rid).await {
                    Err(tenantd_core::Error::NotFound) => continue,
                    Err(e) => return Err(anyhow!("{e}")),
                    Ok(_) => {}
                }
                let ev = op.event(
                    t.id,
                    Action::RunCancel,
                    "runs",
                    Some(rid.to_string()),
                    json!({ "reason": "cancelled by an operator" }),
                );
                let r = cell
                    .cancel_run(&s, rid, ev)
                    .await
                    .map_err(|e| anyhow!("{e}"))
                    .context("cancel")?;
                println!("{}", line(&r));
                return Ok(());
            }
            return Err(anyhow!("run {id}: not found"));
        }
    }
    Ok(())
}
