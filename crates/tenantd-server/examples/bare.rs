//! The benchmark ceiling: a bare axum handler running the *identical* store transactions
//! (the same `CellStore` calls, hence the same BEGIN / set_config / statements / COMMIT and
//! the same pool sizes) and the same JSON, with no authentication, tenancy resolution,
//! limits, audit of crossings or middleware. The tenant comes from `X-Tenant-ID`, trusted.
//!
//! `cargo run --release -p tenantd-server --example bare -- <sqlite://PATH | postgres://...> <ADDR>`

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tenantd_core::audit::AuditDraft;
use tenantd_core::ids::{EventId, ResourceId, TenantId};
use tenantd_core::resource::{
    ListQuery, NewResource, ResourceKind, ResourceName, SharedFilter, Sharing, Spec,
};
use tenantd_core::store::CellStore;
use tenantd_core::tenant::TenantScope;
use tenantd_server::api::dto::ResourceResponse;

type Cell = Arc<dyn CellStore>;

fn scope(h: &HeaderMap) -> Result<TenantScope, StatusCode> {
    let t = h
        .get("x-tenant-id")
        .and_then(|v| v.to_str().ok())
        .ok_or(StatusCode::BAD_REQUEST)?;
    let id = TenantId::parse(t, "tenant").map_err(|_| StatusCode::BAD_REQUEST)?;
    Ok(TenantScope::unscoped_trusted(id, "bench"))
}

async fn get_one(
    State(cell): State<Cell>,
    h: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<ResourceResponse>, StatusCode> {
    let scope = scope(&h)?;
    let id = ResourceId::parse(&id, "id").map_err(|_| StatusCode::NOT_FOUND)?;
    let r = cell
        .get_resource(&scope, ResourceKind::Agents, id)
        .await
        .map_err(|_| StatusCode::NOT_FOUND)?;
    Ok(Json(r.into()))
}

async fn list(State(cell): State<Cell>, h: HeaderMap) -> Result<Json<Value>, StatusCode> {
    let scope = scope(&h)?;
    let q = ListQuery {
        limit: 51,
        after: None,
        name: None,
        shared: SharedFilter::Include,
    };
    let mut items = cell
        .list_resources(&scope, ResourceKind::Agents, &q)
        .await
        .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
    items.truncate(50);
    let items: Vec<ResourceResponse> = items.into_iter().map(Into::into).collect();
    Ok(Json(json!({ "items": items, "next_cursor": null })))
}

async fn create(
    State(cell): State<Cell>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<ResourceResponse>), StatusCode> {
    let scope = scope(&h)?;
    let name = ResourceName::parse(body["name"].as_str().unwrap_or(""))
        .map_err(|_| StatusCode::UNPROCESSABLE_ENTITY)?;
    let spec = Spec::parse(body.get("spec").cloned().unwrap_or(json!({})))
        .map_err(|_| StatusCode::UNPROCESSABLE_ENTITY)?;
    let new = NewResource {
        id: ResourceId::new(),
        kind: ResourceKind::Agents,
        name,
        spec,
        sharing: Sharing::private(),
        created_by: "bench".into(),
    };
    let audit = AuditDraft {
        id: EventId::new(),
        tenant_id: scope.tenant_id(),
        actor: "bench".into(),
        action: "agents.create".into(),
        resource: "agents".into(),
        resource_id: Some(new.id.to_string()),
        outcome: "success".into(),
        request_id: None,
        ip: None,
        at: tenantd_core::time::format(tenantd_core::time::now()),
        details: json!({}),
    };
    let r = cell
        .create_resource(&scope, new, None, audit)
        .await
        .map_err(|_| StatusCode::CONFLICT)?;
    Ok((StatusCode::CREATED, Json(r.into())))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (url, addr) = (
        args.get(1).expect("database url"),
        args.get(2).expect("listen address"),
    );
    let cell: Cell = if let Some(path) = url.strip_prefix("sqlite://") {
        Arc::new(
            tenantd_store::sqlite::open_cell("bench", std::path::Path::new(path))
                .await
                .expect("open sqlite cell"),
        )
    } else {
        let loc = tenantd_store::postgres::PgLocation {
            url: url.clone(),
            migrate_url: None,
            max_connections: 16,
        };
        Arc::new(
            tenantd_store::postgres::open_cell("bench", &loc)
                .await
                .expect("open postgres cell"),
        )
    };
    let app = Router::new()
        .route("/v1/agents/{id}", get(get_one))
        .route("/v1/agents", get(list).post(create))
        .with_state(cell);
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
