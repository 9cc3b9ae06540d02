//! `/v1/events`: the tenant's ordered event log.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use tenantd_core::access::perm;
use tenantd_core::events::Event;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiResult;
use crate::http::ApiQuery;
use crate::resolve::InTenant;
use crate::services::events as svc;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventParams {
    /// The `next` of the previous page (0, or absent, for the start of the log).
    pub after: Option<i64>,
    /// Comma-separated event types (absent: every type).
    pub types: Option<String>,
    /// 1 to 1000 (default 100).
    pub limit: Option<u32>,
}

/// One event of the log.
#[derive(Serialize, ToSchema)]
pub struct EventResponse {
    pub id: String,
    pub seq: i64,
    /// `tenant.created`, `member.added`, `quota.threshold`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The tenant it is about.
    pub tenant_id: String,
    pub occurred_at: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<Event> for EventResponse {
    fn from(e: Event) -> Self {
        Self {
            id: e.id.to_string(),
            seq: e.seq,
            kind: e.kind,
            tenant_id: e.tenant_id.to_string(),
            occurred_at: e.occurred_at,
            data: e.data,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub items: Vec<EventResponse>,
    /// What to pass as `after` next: the last item's `seq`, or the given `after` when nothing
    /// is new. Polling so never skips or repeats an event.
    pub next: i64,
}

/// The tenant's events after `after`, in `seq` order (owners, admins). The platform tenant's
/// log also holds every tenant's lifecycle events (`tenant.*`).
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventParams),
    responses((status = 200, body = EventPage), (status = 403), (status = 422)), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    ApiQuery(q): ApiQuery<EventParams>,
) -> ApiResult<Json<EventPage>> {
    let g = ctx.require::<perm::EventsRead>(&state).await?;
    let filter = svc::filter(q.after, q.types.as_deref(), q.limit)?;
    let items = svc::list(&state, &ctx, g, &filter).await?;
    let next = items.last().map_or(filter.after, |e| e.seq);
    Ok(Json(EventPage {
        items: items.into_iter().map(Into::into).collect(),
        next,
    }))
}
