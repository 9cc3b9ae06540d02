//! Webhook endpoints: made, changed, rotated and deleted by a tenant's owners and admins.

use chrono::Utc;
use serde_json::json;
use tenantd_core::access::Granted;
use tenantd_core::access::perm::WebhooksWrite;
use tenantd_core::audit::Action;
use tenantd_core::ids::{DeliveryId, WebhookId};
use tenantd_core::webhooks::{
    Delivery, Endpoint, EndpointStatus, NewEndpoint, ROTATION_OVERLAP, parse_events,
};
use tenantd_core::{Error, FieldError, Result};

use crate::context::Ctx;
use crate::state::AppState;
use crate::webhooks::outbound;

/// An endpoint as a request states it: its URL, subscription and description.
pub struct EndpointInput {
    /// Where to deliver.
    pub url: String,
    /// Event types, or `*`.
    pub events: Vec<String>,
    /// A note.
    pub description: Option<String>,
}

fn description(d: Option<String>) -> Result<Option<String>> {
    match d {
        Some(d) if d.chars().count() > 500 => {
            Err(Error::invalid("description", "at most 500 characters"))
        }
        d => Ok(d.filter(|d| !d.is_empty())),
    }
}

/// Checks a URL the way a delivery will: form, scheme and every address its host resolves to.
async fn check(state: &AppState, url: &str) -> Result<String> {
    outbound::resolve(state.sender.as_ref(), url, state.config.webhook_policy)
        .await
        .map(|(t, _)| t.url)
        .map_err(|e| FieldError::new("url", e.trim_start_matches("url: ")).into())
}

/// Makes an endpoint; its secret is returned once (and stored sealed).
pub async fn create(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<WebhooksWrite>,
    input: EndpointInput,
) -> Result<(Endpoint, String)> {
    let events = parse_events(&input.events)?;
    let description = description(input.description)?;
    let url = check(state, &input.url).await?;
    let id = WebhookId::new();
    let (secret, key) = outbound::new_secret()?;
    let sealed_secret = state.keys.master().seal(&format!("webhook:{id}"), &key)?;
    let cell = state.cell(&ctx.scope)?;
    let ep = cell
        .create_endpoint(
            &ctx.scope,
            NewEndpoint {
                id,
                url,
                events,
                description,
                sealed_secret,
            },
        )
        .await?;
    let ev = ctx.event(
        Action::WebhookCreate,
        "webhooks",
        Some(id.to_string()),
        json!({"url": ep.url, "events": ep.events}),
    );
    cell.append_audit(&ctx.scope, vec![ev]).await?;
    Ok((ep, secret))
}

/// The tenant's endpoints.
pub async fn list(state: &AppState, ctx: &Ctx, _: Granted<WebhooksWrite>) -> Result<Vec<Endpoint>> {
    state.cell(&ctx.scope)?.list_endpoints(&ctx.scope).await
}

/// One endpoint.
pub async fn get(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<WebhooksWrite>,
    id: WebhookId,
) -> Result<Endpoint> {
    Ok(state
        .cell(&ctx.scope)?
        .endpoint_keys(&ctx.scope, id)
        .await?
        .endpoint)
}

/// A change: each field given replaces the current one; `enabled` switches it on or off.
pub struct EndpointPatch {
    /// New URL.
    pub url: Option<String>,
    /// New subscription.
    pub events: Option<Vec<String>>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// On or off.
    pub enabled: Option<bool>,
}

/// Changes an endpoint.
pub async fn update(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<WebhooksWrite>,
    id: WebhookId,
    patch: EndpointPatch,
) -> Result<Endpoint> {
    let cell = state.cell(&ctx.scope)?;
    let mut ep = cell.endpoint_keys(&ctx.scope, id).await?.endpoint;
    if let Some(events) = &patch.events {
        ep.events = parse_events(events)?;
    }
    if let Some(d) = patch.description {
        ep.description = description(d)?;
    }
    if let Some(url) = &patch.url {
        ep.url = check(state, url).await?;
    }
    if let Some(on) = patch.enabled {
        ep.status = if on {
            EndpointStatus::Active
        } else {
            EndpointStatus::Disabled
        };
    }
    let out = cell.update_endpoint(&ctx.scope, &ep).await?;
    let ev = ctx.event(
        Action::WebhookUpdate,
        "webhooks",
        Some(id.to_string()),
        json!({"url": out.url, "events": out.events, "status": out.status}),
    );
    cell.append_audit(&ctx.scope, vec![ev]).await?;
    Ok(out)
}

/// Deletes an endpoint and its deliveries.
pub async fn delete(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<WebhooksWrite>,
    id: WebhookId,
) -> Result<()> {
    let cell = state.cell(&ctx.scope)?;
    cell.delete_endpoint(&ctx.scope, id).await?;
    let ev = ctx.event(
        Action::WebhookDelete,
        "webhooks",
        Some(id.to_string()),
        json!({}),
    );
    cell.append_audit(&ctx.scope, vec![ev]).await
}

/// A new secret, returned once; the old one keeps signing beside it for 24 h.
pub async fn rotate(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<WebhooksWrite>,
    id: WebhookId,
) -> Result<String> {
    let cell = state.cell(&ctx.scope)?;
    let (secret, key) = outbound::new_secret()?;
    let sealed = state.keys.master().seal(&format!("webhook:{id}"), &key)?;
    cell.rotate_secret(&ctx.scope, id, sealed, Utc::now() + ROTATION_OVERLAP)
        .await?;
    let ev = ctx.event(
        Action::WebhookRotate,
        "webhooks",
        Some(id.to_string()),
        json!({}),
    );
    cell.append_audit(&ctx.scope, vec![ev]).await?;
    Ok(secret)
}

/// An endpoint's deliveries, newest first.
pub async fn deliveries(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<WebhooksWrite>,
    id: WebhookId,
    limit: u32,
) -> Result<Vec<Delivery>> {
    state
        .cell(&ctx.scope)?
        .list_deliveries(&ctx.scope, id, limit)
        .await
}

/// Sends a test event (`webhook.test`, not in the log) to one endpoint, signed like any other;
/// its delivery shows in the endpoint's log.
pub async fn test(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<WebhooksWrite>,
    id: WebhookId,
) -> Result<DeliveryId> {
    let event = tenantd_core::ids::EventId::new();
    let body = json!({
        "id": event,
        "seq": 0,
        "type": "webhook.test",
        "tenant_id": ctx.tenant.id,
        "occurred_at": tenantd_core::time::format(tenantd_core::time::now()),
        "data": {"endpoint_id": id},
    })
    .to_string();
    state
        .cell(&ctx.scope)?
        .create_test_delivery(&ctx.scope, id, event, body)
        .await
}

/// Makes a delivery of the endpoint due again now.
pub async fn retry(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<WebhooksWrite>,
    endpoint: WebhookId,
    id: DeliveryId,
) -> Result<()> {
    state
        .cell(&ctx.scope)?
        .retry_delivery(&ctx.scope, Some(endpoint), id)
        .await
}
