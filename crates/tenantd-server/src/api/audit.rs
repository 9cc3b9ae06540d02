//! `/v1/audit*`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use tenantd_core::Error;
use tenantd_core::audit::{AuditEvent, AuditFilter};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::cursor;
use crate::error::ApiResult;
use crate::http::ApiQuery;
use crate::resolve::InTenant;
use crate::services::audit as svc;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(export))
        .routes(routes!(verify))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub resource: Option<String>,
    /// RFC 3339, inclusive.
    pub from: Option<String>,
    /// RFC 3339, exclusive.
    pub to: Option<String>,
    /// 1 to 200 (default 50).
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

/// The tenant's audit events, oldest first (owners, admins, auditors; plan feature
/// `audit_logs`, which platform admins do not need).
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, body = Object, description = "{items, next_cursor}"), (status = 403)), security(("bearer" = [])))]
async fn list(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    ApiQuery(q): ApiQuery<AuditParams>,
) -> ApiResult<Json<Value>> {
    let g = svc::access(&state, &ctx).await?;
    let limit = cursor::limit(q.limit)?;
    let after_seq = match cursor::decode(q.cursor.as_deref(), "a")? {
        None => None,
        Some(s) => Some(
            s.parse::<i64>()
                .map_err(|_| Error::invalid("cursor", "not a cursor from this list"))?,
        ),
    };
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        resource: q.resource,
        from: svc::time_filter("from", q.from.as_deref())?,
        to: svc::time_filter("to", q.to.as_deref())?,
        after_seq,
        limit: limit + 1,
    };
    let events = svc::list(&state, &ctx, g, filter).await?;
    let (items, next) = cursor::page(events, limit, |e| cursor::encode("a", &e.seq.to_string()));
    Ok(Json(
        serde_json::json!({ "items": items, "next_cursor": next }),
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// `ndjson` (default) or `csv`.
    pub format: Option<String>,
}

fn csv_field(s: &str) -> String {
    // Quote every field; neutralise spreadsheet formulas.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn csv(events: &[AuditEvent]) -> String {
    let mut out = String::from(
        "seq,id,tenant_id,actor,action,resource,resource_id,outcome,request_id,ip,at,details,prev_hash,hash\n",
    );
    for e in events {
        let cols = [
            e.seq.to_string(),
            e.id.to_string(),
            e.tenant_id.to_string(),
            e.actor.clone(),
            e.action.clone(),
            e.resource.clone(),
            e.resource_id.clone().unwrap_or_default(),
            e.outcome.clone(),
            e.request_id.clone().unwrap_or_default(),
            e.ip.clone().unwrap_or_default(),
            e.at.clone(),
            e.details.to_string(),
            e.prev_hash.clone(),
            e.hash.clone(),
        ];
        out.push_str(
            &cols
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push('\n');
    }
    out
}

/// The whole chain as NDJSON or CSV.
#[utoipa::path(get, path = "/v1/audit/export", tag = "audit", params(ExportParams),
    responses((status = 200, description = "one event per line (ndjson) or a CSV table", content((String = "application/x-ndjson"), (String = "text/csv"))), (status = 403), (status = 422)), security(("bearer" = [])))]
async fn export(
    State(state): State<AppState>,
    InTenant(ctx): InTenant,
    ApiQuery(q): ApiQuery<ExportParams>,
) -> ApiResult<Response> {
    let g = svc::access(&state, &ctx).await?;
    let format = q.format.as_deref().unwrap_or("ndjson");
    if !matches!(format, "ndjson" | "csv") {
        return Err(Error::invalid("format", "ndjson or csv").into());
    }
    let events = svc::all(&state, &ctx, g).await?;
    let (body, ct) = if format == "csv" {
        (csv(&events), "text/csv; charset=utf-8")
    } else {
        let mut s = String::new();
        for e in &events {
            s.push_str(&serde_json::to_string(e).map_err(|e| Error::Internal(e.to_string()))?);
            s.push('\n');
        }
        (s, "application/x-ndjson")
    };
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    let name = format!(
        "attachment; filename=\"audit-{}.{format}\"",
        ctx.tenant.slug
    );
    if let Ok(v) = HeaderValue::from_str(&name) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// Verifies the tenant's hash chain: `{ok, events, head}` or `{ok: false, first_bad_seq}`.
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit", responses((status = 200, body = Object)), security(("bearer" = [])))]
async fn verify(State(state): State<AppState>, InTenant(ctx): InTenant) -> ApiResult<Json<Value>> {
    let g = svc::access(&state, &ctx).await?;
    let v = svc::verify(&state, &ctx, g).await?;
    Ok(Json(
        serde_json::to_value(v).map_err(|e| Error::Internal(e.to_string()))?,
    ))
}
