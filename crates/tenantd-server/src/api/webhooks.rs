//! `/v1/webhooks*`: a tenant's endpoints, their secrets and their deliveries.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tenantd_core::Error;
use tenantd_core::access::perm;
use tenantd_core::ids::{DeliveryId, WebhookId};
use tenantd_core::webhooks::{Delivery, Endpoint};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::dto::Items;
use crate::error::ApiResult;
use crate::http::{ApiJson, ApiQuery};
use crate::resolve::InTenant;
use crate::services::webhooks as svc;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
        .routes(routes!(rotate))
        .routes(routes!(deliveries))
        .routes(routes!(retry))
        .routes(routes!(test))
}

#[derive(Deserialize, ToSchema)]
pub struct CreateWebhookRequest {
    /// `https://…` (`http://` only with `webhook_allow_http`); no private, loopback,
    /// link-local or metadata address, checked after resolution.
    pub url: String,
    /// Event types (see `GET /v1/events`), or `["*"]` for every type.
    pub events: Vec<String>,
    pub description: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookResponse {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    /// `active` or `disabled` (after five days of failures, or switched off).
    pub status: String,
    /// Since when every delivery has failed.
    pub failing_since: Option<String>,
    pub created_at: String,
}

impl From<Endpoint> for WebhookResponse {
    fn from(e: Endpoint) -> Self {
        Self {
            id: e.id.to_string(),
            url: e.url,
            events: e.events,
            description: e.description,
            status: e.status.as_str().into(),
            failing_since: e.failing_since.map(|t| t.to_rfc3339()),
            created_at: e.created_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CreatedWebhookResponse {
    #[serde(flatten)]
    pub endpoint: WebhookResponse,
    /// Shown once: `whsec_` and base64, as Standard Webhooks has it.
    pub secret: String,
}

fn webhook_id(s: &str) -> Result<WebhookId, Error> {
    WebhookId::parse(s, "id").map_err(|_| Error::NotFound)
}

/// Makes an endpoint (owners, admins); its signing secret is in the answer, once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhookRequest,
    responses((status = 201, body = CreatedWebhookResponse), (status = 403), (status = 422)), security(("bearer" = [])))]
async fn create(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    ApiJson(req): ApiJson<CreateWebhookRequest>,
) -> ApiResult<(StatusCode, Json<CreatedWebhookResponse>)> {
    let g = ctx.require::<perm::WebhooksWrite>(&state).await?;
    let input = svc::EndpointInput {
        url: req.url,
        events: req.events,
        description: req.description,
    };
    let (ep, secret) = svc::create(&state, &ctx, g, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhookResponse {
            endpoint: ep.into(),
            secret,
        }),
    ))
}

/// The tenant's endpoints.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = Items<WebhookResponse>), (status = 403)), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
) -> ApiResult<Json<Items<WebhookResponse>>> {
    let g = ctx.require::<perm::WebhooksWrite>(&state).await?;
    let items = svc::list(&state, &ctx, g).await?;
    Ok(Json(Items {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

/// One endpoint.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    responses((status = 200, body = WebhookResponse), (status = 404)), security(("bearer" = [])))]
async fn get(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookResponse>> {
    let g = ctx.require::<perm::WebhooksWrite>(&state).await?;
    Ok(Json(
        svc::get(&state, &ctx, g, webhook_id(&id)?).await?.into(),
    ))
}

#[derive(Deserialize, ToSchema)]
pub struct PatchWebhookRequest {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub description: Option<String>,
    /// Switches deliveries on (clearing a failure streak) or off.
    pub enabled: Option<bool>,
}

/// Changes an endpoint.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", request_body = PatchWebhookRequest,
    responses((status = 200, body = WebhookResponse), (status = 404), (status = 422)), security(("bearer" = [])))]
async fn update(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<PatchWebhookRequest>,
) -> ApiResult<Json<WebhookResponse>> {
    let g = ctx.require::<perm::WebhooksWrite>(&state).await?;
    let patch = svc::EndpointPatch {
        url: req.url,
        events: req.events,
        description: req.description.map(Some),
        enabled: req.enabled,
    };
    Ok(Json(
        svc::update(&state, &ctx, g, webhook_id(&id)?, patch)
            .await?
            .into(),
    ))
}

/// Deletes an endpoint and its deliveries.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    responses((status = 204), (status = 404)), security(("bearer" = [])))]
async fn delete(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let g = ctx.require::<perm::WebhooksWrite>(&state).await?;
    svc::delete(&state, &ctx, g, webhook_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
pub struct SecretResponse {
    /// Shown once. The old secret keeps signing beside it for 24 h.
    pub secret: String,
}

/// A new signing secret; deliveries carry both signatures for 24 h.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks",
    responses((status = 200, body = SecretResponse), (status = 404)), security(("bearer" = [])))]
async fn rotate(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(id): Path<String>,
) -> ApiResult<Json<SecretResponse>> {
    let g = ctx.require::<perm::WebhooksWrite>(&state).await?;
    let secret = svc::rotate(&state, &ctx, g, webhook_id(&id)?).await?;
    Ok(Json(SecretResponse { secret }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// 1 to 200 (default 50).
    pub limit: Option<u32>,
}

/// The endpoint's deliveries, newest first: status, attempts, last error, next attempt.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks", params(DeliveryParams),
    responses((status = 200, body = Object, description = "{items}"), (status = 404)), security(("bearer" = [])))]
async fn deliveries(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<DeliveryParams>,
) -> ApiResult<Json<serde_json::Value>> {
    let g = ctx.require::<perm::WebhooksWrite>(&state).await?;
    let limit = crate::api::cursor::limit(q.limit)?;
    let items: Vec<Delivery> = svc::deliveries(&state, &ctx, g, webhook_id(&id)?, limit).await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

/// Makes a delivery due again now (after a receiver was fixed).
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/retry", tag = "webhooks",
    responses((status = 202), (status = 404)), security(("bearer" = [])))]
async fn retry(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path((id, delivery)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let g = ctx.require::<perm::WebhooksWrite>(&state).await?;
    let d = DeliveryId::parse(&delivery, "delivery_id").map_err(|_| Error::NotFound)?;
    svc::retry(&state, &ctx, g, webhook_id(&id)?, d).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Serialize, ToSchema)]
pub struct TestDeliveryResponse {
    /// The delivery of the test event (see `GET /v1/webhooks/{id}/deliveries`).
    pub delivery_id: String,
}

/// Sends a `webhook.test` event (not in the log) to this endpoint, signed like any delivery.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks",
    responses((status = 202, body = TestDeliveryResponse), (status = 404)), security(("bearer" = [])))]
async fn test(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<TestDeliveryResponse>)> {
    let g = ctx.require::<perm::WebhooksWrite>(&state).await?;
    let d = svc::test(&state, &ctx, g, webhook_id(&id)?).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TestDeliveryResponse {
            delivery_id: d.to_string(),
        }),
    ))
}

/// What the OpenAPI document says of webhook requests beyond their types: the event types an
/// endpoint may take, and the URL's outward form (whether it resolves to public addresses only
/// is the server's to find out).
pub(crate) fn schema_rules(schemas: &mut serde_json::Value) {
    use serde_json::{Value, json};
    let mut types: Vec<Value> = tenantd_core::events::EVENT_TYPES
        .iter()
        .map(|t| json!(t))
        .collect();
    types.push(json!("*"));
    for schema in ["CreateWebhookRequest", "PatchWebhookRequest"] {
        if let Some(Value::Object(events)) =
            schemas.pointer_mut(&format!("/{schema}/properties/events"))
        {
            events.insert("items".into(), json!({"type": "string", "enum": types}));
            events.insert("minItems".into(), json!(1));
        }
        if let Some(Value::Object(url)) = schemas.pointer_mut(&format!("/{schema}/properties/url"))
        {
            url.insert("pattern".into(), json!("^https?://[^\\s/@]+(/\\S*)?$"));
            url.insert("maxLength".into(), json!(2048));
        }
        if let Some(Value::Object(d)) =
            schemas.pointer_mut(&format!("/{schema}/properties/description"))
        {
            d.insert("maxLength".into(), json!(500));
        }
    }
}
