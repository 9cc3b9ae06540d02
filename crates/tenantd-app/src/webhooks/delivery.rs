//! The delivery job: due deliveries, across every cell, posted with per-endpoint queues.
//!
//! Every tick it lists due deliveries (ids only), skips those whose endpoint already has
//! [`PER_ENDPOINT`] attempts in flight on this node, claims each with a lease (a conditional
//! update: another node's claim of the same delivery fails), and posts it in its own task. A
//! slow or dead endpoint so holds at most its own slots, never another's; a crash leaves the
//! lease to expire and the delivery is attempted again (same `webhook-id`, so a receiver that
//! saw it drops the repeat).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tenantd_core::audit::{Action, AuditDraft};
use tenantd_core::ids::{DeliveryId, EventId, TenantId, WebhookId};
use tenantd_core::store::CellStore;
use tenantd_core::tenant::{CellName, TenantScope};
use tenantd_core::webhooks::{Attempt, DISABLE_AFTER, EndpointStatus, retry_after};
use tenantd_core::{Result, time};

use super::outbound;
use crate::state::AppState;

/// Attempts in flight per endpoint on one node.
pub const PER_ENDPOINT: usize = 2;
/// Attempts in flight on one node.
pub const PER_NODE: usize = 64;
/// A receiver must answer within this.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// A claim lasts this long (longer than an attempt can take).
const LEASE: chrono::Duration = chrono::Duration::seconds(30);

/// What is in flight on this node, by endpoint.
#[derive(Default, Clone)]
pub struct InFlight(Arc<Mutex<HashMap<WebhookId, usize>>>);

impl InFlight {
    fn total(&self) -> usize {
        self.0
            .lock()
            .map(|m| m.values().sum())
            .unwrap_or(usize::MAX)
    }

    fn try_take(&self, e: WebhookId) -> bool {
        let Ok(mut m) = self.0.lock() else {
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
        if let Ok(mut m) = self.0.lock()
            && let Some(n) = m.get_mut(&e)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&e);
            }
        }
    }
}

/// One tick: claims what is due and starts its attempts (it does not wait for them).
pub async fn tick(state: &AppState, inflight: &InFlight) -> Result<usize> {
    let mut started = 0;
    for (name, cell) in &state.cells {
        let now = time::now();
        let due = cell.unscoped_due_deliveries(now, 200).await?;
        for (tenant, delivery, endpoint) in due {
            if inflight.total() >= PER_NODE {
                return Ok(started);
            }
            if !inflight.try_take(endpoint) {
                continue;
            }
            let claimed = cell
                .unscoped_claim_delivery(delivery, now, now + LEASE)
                .await
                .unwrap_or(false);
            if !claimed {
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
    let (delivery, body) = cell.delivery(&scope, id).await?;
    let keys = cell.endpoint_keys(&scope, delivery.endpoint_id).await?;
    let outcome = if keys.endpoint.status == EndpointStatus::Disabled {
        Attempt::Failed {
            status: None,
            error: "the endpoint is disabled".into(),
        }
    } else {
        post(state, &keys, delivery.event_id, &body).await
    };
    let next = match &outcome {
        Attempt::Succeeded { .. } => None,
        Attempt::Failed { .. } if keys.endpoint.status == EndpointStatus::Disabled => None,
        Attempt::Failed { .. } => retry_after(delivery.attempts + 1).map(|d| Utc::now() + d),
    };
    state
        .webhook_stats
        .note(matches!(outcome, Attempt::Succeeded { .. }));
    let disabled = cell
        .record_attempt(&scope, id, &outcome, next, Utc::now() - DISABLE_AFTER)
        .await?;
    if disabled {
        crate::relay::append_now(state, tenant, disabled_event(tenant, keys.endpoint.id)).await;
    }
    Ok(())
}

/// Signs and posts the event; what came of it.
async fn post(
    state: &AppState,
    keys: &tenantd_core::webhooks::EndpointKeys,
    event: EventId,
    body: &str,
) -> Attempt {
    let failed = |error: String| Attempt::Failed {
        status: None,
        error,
    };
    let (target, addr) =
        match outbound::resolve(&keys.endpoint.url, state.config.webhook_policy).await {
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

/// The job: a tick every 200 ms.
pub async fn job(state: AppState, mut stop: crate::jobs::Stop) {
    let inflight = InFlight::default();
    loop {
        if let Err(e) = tick(&state, &inflight).await {
            tracing::warn!(error = %e, "webhook delivery tick failed; will retry");
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.stopped() => return,
        }
    }
}
