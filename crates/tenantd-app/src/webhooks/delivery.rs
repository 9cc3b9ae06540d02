//! The delivery job: due deliveries, across every cell, posted with per-endpoint queues.
//!
//! Every tick it lists due deliveries (ids only), leaving out the endpoints that already have
//! [`PER_ENDPOINT`] attempts in flight on this node, claims a batch with one lease statement
//! (a conditional update: another node's claim of the same delivery fails), and posts each in
//! its own task. A slow or dead endpoint so holds at most its own slots and never fills the
//! list, so it cannot delay another's; a crash leaves the lease to expire and the delivery is
//! attempted again (same `webhook-id`, so a receiver that saw it drops the repeat). A tick runs
//! every [`IDLE_TICK`], and at once when an attempt ends and frees a slot.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tenantd_core::audit::{Action, AuditDraft};
use tenantd_core::ids::{DeliveryId, EventId, TenantId, WebhookId};
use tenantd_core::store::CellStore;
use tenantd_core::tenant::{CellName, TenantScope};
use tenantd_core::webhooks::{
    Attempt, AttemptRecord, DISABLE_AFTER, EndpointStatus, PendingAttempt, retry_after,
};
use tenantd_core::{Result, time};
use tokio::sync::Notify;

use super::outbound;
use crate::state::AppState;

/// Attempts in flight per endpoint on one node.
pub const PER_ENDPOINT: usize = 2;
/// Attempts in flight on one node.
pub const PER_NODE: usize = 64;
/// A receiver must answer within this.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How often the job looks for due deliveries when nothing wakes it.
pub const IDLE_TICK: Duration = Duration::from_millis(100);
/// A claim lasts this long (longer than an attempt can take).
const LEASE: chrono::Duration = chrono::Duration::seconds(30);
/// Due deliveries looked at per cell and tick.
const DUE_LIMIT: u32 = 256;

/// What is in flight on this node, by endpoint, and a wake-up when a slot frees.
#[derive(Default, Clone)]
pub struct InFlight {
    slots: Arc<Mutex<HashMap<WebhookId, usize>>>,
    freed: Arc<Notify>,
}

impl InFlight {
    fn total(&self) -> usize {
        self.slots
            .lock()
            .map(|m| m.values().sum())
            .unwrap_or(usize::MAX)
    }

    /// The endpoints at their limit.
    fn busy(&self) -> Vec<WebhookId> {
        self.slots
            .lock()
            .map(|m| {
                m.iter()
                    .filter(|(_, n)| **n >= PER_ENDPOINT)
                    .map(|(e, _)| *e)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn try_take(&self, e: WebhookId) -> bool {
        let Ok(mut m) = self.slots.lock() else {
            return false;
        };
        let n = m.entry(e).or_default();
        if *n >= PER_ENDPOINT {
            return false;
        }
        *n += 1;
        true
    }

    fn give_back(&self, e: WebhookId) {
        if let Ok(mut m) = self.slots.lock()
            && let Some(n) = m.get_mut(&e)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&e);
            }
        }
        self.freed.notify_one();
    }
}

/// One tick: claims what is due and starts its attempts (it does not wait for them).
pub async fn tick(state: &AppState, inflight: &InFlight) -> Result<usize> {
    let mut started = 0;
    for (name, cell) in &state.cells {
        let free = PER_NODE.saturating_sub(inflight.total());
        if free == 0 {
            break;
        }
        let now = time::now();
        let due = cell
            .unscoped_due_deliveries(now, &inflight.busy(), DUE_LIMIT)
            .await?;
        let mut picked = Vec::new();
        for (tenant, delivery, endpoint) in due {
            if picked.len() >= free {
                break;
            }
            if inflight.try_take(endpoint) {
                picked.push((tenant, delivery, endpoint));
            }
        }
        if picked.is_empty() {
            continue;
        }
        let ids: Vec<DeliveryId> = picked.iter().map(|p| p.1).collect();
        let claimed: HashSet<DeliveryId> =
            match cell.unscoped_claim_deliveries(&ids, now, now + LEASE).await {
                Ok(c) => c.into_iter().collect(),
                Err(e) => {
                    for (_, _, endpoint) in picked {
                        inflight.give_back(endpoint);
                    }
                    return Err(e);
                }
            };
        for (tenant, delivery, endpoint) in picked {
            if !claimed.contains(&delivery) {
                inflight.give_back(endpoint);
                continue;
            }
            started += 1;
            let (state, cell, name, inflight) =
                (state.clone(), cell.clone(), name.clone(), inflight.clone());
            tokio::spawn(async move {
                if let Err(e) = attempt(&state, cell.as_ref(), &name, tenant, delivery).await {
                    tracing::warn!(error = %e, %delivery, "webhook delivery attempt failed to run; its lease will expire");
                }
                inflight.give_back(endpoint);
            });
        }
    }
    Ok(started)
}

/// Makes one attempt of a claimed delivery and records it.
async fn attempt(
    state: &AppState,
    cell: &dyn CellStore,
    cell_name: &CellName,
    tenant: TenantId,
    id: DeliveryId,
) -> Result<()> {
    let scope = TenantScope::unscoped_trusted(tenant, cell_name.clone());
    let pending = cell.pending_attempt(&scope, id).await?;
    let endpoint = &pending.keys.endpoint;
    let disabled = endpoint.status == EndpointStatus::Disabled;
    let outcome = if disabled {
        Attempt::Failed {
            status: None,
            error: "the endpoint is disabled".into(),
        }
    } else {
        post(state, &pending).await
    };
    let next = match &outcome {
        Attempt::Succeeded { .. } => None,
        Attempt::Failed { .. } if disabled => None,
        Attempt::Failed { .. } => {
            retry_after(pending.delivery.attempts + 1).map(|d| Utc::now() + d)
        }
    };
    state
        .webhook_stats
        .note(matches!(outcome, Attempt::Succeeded { .. }));
    let record = AttemptRecord {
        delivery: id,
        endpoint: endpoint.id,
        was_failing: endpoint.failing_since.is_some(),
        outcome,
        next,
        disable_before: Utc::now() - DISABLE_AFTER,
    };
    if cell.record_attempt(&scope, &record).await? {
        crate::relay::append_now(state, tenant, disabled_event(tenant, endpoint.id)).await;
    }
    Ok(())
}

/// Signs and posts the event; what came of it.
async fn post(state: &AppState, pending: &PendingAttempt) -> Attempt {
    let (keys, event, body) = (
        &pending.keys,
        pending.delivery.event_id,
        pending.body.as_str(),
    );
    let failed = |error: String| Attempt::Failed {
        status: None,
        error,
    };
    let (target, addr) = match outbound::resolve(
        state.sender.as_ref(),
        &keys.endpoint.url,
        state.config.webhook_policy,
    )
    .await
    {
        Ok(t) => t,
        Err(e) => return failed(format!("refused: {e}")),
    };
    let master = state.keys.master();
    let name = format!("webhook:{}", keys.endpoint.id);
    let Some(secret) = master.open(&name, &keys.sealed_secret) else {
        return failed("the endpoint's secret does not open under this master key".into());
    };
    let id = event.to_string();
    let ts = Utc::now().timestamp();
    let mut sigs = vec![outbound::signature(&secret, &id, ts, body.as_bytes())];
    if let Some(old) = keys
        .sealed_old_secret
        .as_ref()
        .and_then(|s| master.open(&name, s))
    {
        sigs.push(outbound::signature(&old, &id, ts, body.as_bytes()));
    }
    let headers = vec![
        ("content-type".to_owned(), "application/json".to_owned()),
        ("webhook-id".to_owned(), id),
        ("webhook-timestamp".to_owned(), ts.to_string()),
        ("webhook-signature".to_owned(), sigs.join(" ")),
        ("user-agent".to_owned(), "tenantd-webhooks".to_owned()),
    ];
    match state
        .sender
        .post(
            &target.url,
            &target.host,
            addr,
            &headers,
            body.as_bytes().to_vec(),
            TIMEOUT,
        )
        .await
    {
        Ok(s) if (200..300).contains(&s) => Attempt::Succeeded { status: s },
        Ok(s) => Attempt::Failed {
            status: Some(s),
            error: format!("answered {s}"),
        },
        Err(e) => failed(e),
    }
}

fn disabled_event(tenant: TenantId, endpoint: WebhookId) -> AuditDraft {
    AuditDraft {
        id: EventId::new(),
        tenant_id: tenant,
        actor: "system".into(),
        action: Action::WebhookDisable.text().into_owned(),
        resource: "webhooks".into(),
        resource_id: Some(endpoint.to_string()),
        outcome: "success".into(),
        request_id: None,
        ip: None,
        at: time::format(time::now()),
        details: serde_json::json!({"reason": "every delivery failed for five days"}),
    }
}

/// The job: a tick every [`IDLE_TICK`], and soon after an attempt frees a slot.
pub async fn job(state: AppState, mut stop: crate::jobs::Stop) {
    let inflight = InFlight::default();
    loop {
        if let Err(e) = tick(&state, &inflight).await {
            tracing::warn!(error = %e, "webhook delivery tick failed; will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(IDLE_TICK) => {}
            _ = inflight.freed.notified() => {
                // Let a few more attempts end, so one tick claims their successors together.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            _ = stop.stopped() => return,
        }
    }
}
