//! `tenantd webhooks …`: an operator's view of a tenant's endpoints and deliveries.

use anyhow::anyhow;
use clap::Subcommand;
use tenantd_core::ids::{DeliveryId, WebhookId};
use tenantd_core::tenant::TenantScope;
use tenantd_server::AppState;
use tenantd_server::context::Caller;
use tenantd_server::services::tenants as tenants_svc;

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// A tenant's webhook endpoints: URL, events, status, failing since.
    List {
        /// The tenant (slug or id).
        #[arg(long)]
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// An endpoint's deliveries, newest first: status, attempts, last error, next attempt.
    Deliveries {
        /// The endpoint's id.
        endpoint: String,
        /// The tenant (slug or id).
        #[arg(long)]
        tenant: String,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Makes a delivery due again now (a serving node attempts it within a second).
    Retry {
        /// The delivery's id.
        delivery: String,
        /// The tenant (slug or id).
        #[arg(long)]
        tenant: String,
    },
}

pub async fn run(state: AppState, cmd: WebhooksCommand) -> anyhow::Result<()> {
    let op = Caller::operator(&state).await.map_err(|e| anyhow!("{e}"))?;
    let tenant = match &cmd {
        WebhooksCommand::List { tenant, .. }
        | WebhooksCommand::Deliveries { tenant, .. }
        | WebhooksCommand::Retry { tenant, .. } => tenant,
    };
    let t = tenants_svc::visible(&state, &op, tenant)
        .await
        .map_err(|e| anyhow!("tenant {tenant}: {e}"))?;
    let scope = TenantScope::unscoped_trusted(t.id, t.cell.clone());
    let cell = state.cell(&scope).map_err(|e| anyhow!("{e}"))?;
    match cmd {
        WebhooksCommand::List { json, .. } => {
            let eps = cell
                .list_endpoints(&scope)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            if json {
                let v: Vec<_> = eps
                    .into_iter()
                    .map(tenantd_server::api::webhooks::WebhookResponse::from)
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for e in eps {
                    let failing = e
                        .failing_since
                        .map(|f| format!(", failing since {f}"))
                        .unwrap_or_default();
                    println!(
                        "{}  {}  {}  [{}]{failing}",
                        e.id,
                        e.status.as_str(),
                        e.url,
                        e.events.join(",")
                    );
                }
            }
        }
        WebhooksCommand::Deliveries {
            endpoint,
            limit,
            json,
            ..
        } => {
            let id =
                WebhookId::parse(&endpoint, "endpoint").map_err(|e| anyhow!("{}", e.message))?;
            let ds = cell
                .list_deliveries(&scope, id, limit.clamp(1, 1000))
                .await
                .map_err(|e| anyhow!("{e}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&ds)?);
            } else {
                for d in ds {
                    let next = d
                        .next_attempt_at
                        .map(|n| format!(", next {n}"))
                        .unwrap_or_default();
                    let err = d
                        .last_error
                        .map(|e| format!(", last error: {e}"))
                        .unwrap_or_default();
                    println!(
                        "{}  {}  {}  {} attempts{next}{err}",
                        d.id,
                        d.kind,
                        d.status.as_str(),
                        d.attempts
                    );
                }
            }
        }
        WebhooksCommand::Retry { delivery, .. } => {
            let id =
                DeliveryId::parse(&delivery, "delivery").map_err(|e| anyhow!("{}", e.message))?;
            cell.retry_delivery(&scope, None, id)
                .await
                .map_err(|e| anyhow!("{e}"))?;
            eprintln!("delivery {id} is due again");
        }
    }
    Ok(())
}
