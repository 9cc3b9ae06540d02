//! The benchmark ceiling: a bare axum handler running the *identical* store transactions
//! (the same `CellStore` calls, hence the same BEGIN / set_config / statements / COMMIT and
//! the same pool sizes) and the same JSON, with no authentication, tenancy resolution,
//! limits, audit of crossings or middleware. The tenant comes from `X-Tenant-ID`, trusted.
//!
//! The agent-run routes do the same: the admission's agent read and `admit_run` (with the
//! limits the benchmark plan sets), `unscoped_lease`, `unscoped_report_usage` and
//! `unscoped_complete`, each with the audit event tenantd appends.
//!
//! `cargo run --release -p tenantd-server --example bare -- <sqlite://PATH | postgres://...> <ADDR>`

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tenantd_core::audit::AuditDraft;
use tenantd_core::ids::{EventId, ResourceId, RunId, TenantId};
use tenantd_core::resource::{
    ListQuery, NewResource, ResourceKind, ResourceName, SharedFilter, Sharing, Spec,
};
use tenantd_core::runs::{Completion, LeaseAsk, LeaseOutcome, NewRun, RunLimits, WorkerCall};
use tenantd_core::store::CellStore;
use tenantd_core::tenant::TenantScope;
use tenantd_server::api::dto::ResourceResponse;
use tenantd_server::api::runs::RunResponse;

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

fn audit(scope: &TenantScope, action: &str, id: String) -> AuditDraft {
    AuditDraft {
        id: EventId::new(),
        tenant_id: scope.tenant_id(),
        actor: "bench".into(),
        action: action.into(),
        resource: "runs".into(),
        resource_id: Some(id),
        outcome: "success".into(),
        request_id: None,
        ip: None,
        at: tenantd_core::time::format(tenantd_core::time::now()),
        details: json!({}),
    }
}

/// The limits of the benchmark's `runs` plan, so the admission runs the same statements.
const LIMITS: RunLimits = RunLimits {
    queued: Some(1_000_000),
    tokens: None,
    slots: Some(100_000),
    spawns_per_minute: Some(1_000_000_000),
};

async fn start_run(
    State(cell): State<Cell>,
    h: HeaderMap,
    Path(agent): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response, StatusCode> {
    let scope = scope(&h)?;
    let agent = ResourceId::parse(&agent, "id").map_err(|_| StatusCode::NOT_FOUND)?;
    cell.get_resource(&scope, ResourceKind::Agents, agent)
        .await
        .map_err(|_| StatusCode::NOT_FOUND)?;
    let id = RunId::new();
    let new = NewRun {
        id,
        agent_id: agent,
        model: body["model"].as_str().unwrap_or("m").into(),
        input: body.get("input").cloned().unwrap_or(json!({})),
        max_tokens: body["max_tokens"].as_i64(),
        token_hold: body["max_tokens"].as_i64().unwrap_or(4_000),
        idempotency_key: None,
    };
    let (run, _) = cell
        .admit_run(
            &scope,
            new,
            LIMITS,
            audit(&scope, "runs.queue", id.to_string()),
        )
        .await
        .map_err(|_| StatusCode::CONFLICT)?;
    Ok((StatusCode::ACCEPTED, Json(RunResponse::from(run))).into_response())
}

async fn lease(State(cell): State<Cell>) -> Result<Response, StatusCode> {
    let ask = LeaseAsk {
        scheduling: Default::default(),
        wait_for_row: true,
        models: None,
        ttl: chrono::Duration::seconds(30),
        actor: "bench".into(),
        request_id: None,
    };
    match cell.unscoped_lease(&ask).await {
        Ok(LeaseOutcome::Leased(l)) => Ok(Json(json!({
            "run": RunResponse::from(l.run),
            "lease_id": l.lease_id,
            "lease_expires_at": l.lease_until.to_rfc3339(),
            "tokens_remaining": l.tokens_remaining,
        }))
        .into_response()),
        Ok(_) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(_) => Err(StatusCode::SERVICE_UNAVAILABLE),
    }
}

fn worker_call(id: &str, body: &Value) -> Result<WorkerCall, StatusCode> {
    Ok(WorkerCall {
        run: RunId::parse(id, "id").map_err(|_| StatusCode::CONFLICT)?,
        lease_id: body["lease_id"].as_str().unwrap_or_default().into(),
        actor: "bench".into(),
        request_id: None,
    })
}

async fn usage(
    State(cell): State<Cell>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, StatusCode> {
    let c = worker_call(&id, &body)?;
    let r = cell
        .unscoped_report_usage(
            &c,
            body["seq"].as_i64().unwrap_or(0),
            body["tokens"].as_i64().unwrap_or(0),
        )
        .await
        .map_err(|_| StatusCode::CONFLICT)?
        .ok_or(StatusCode::CONFLICT)?;
    Ok(Json(
        json!({"tokens_used": r.tokens_used, "tokens_remaining": r.tokens_remaining}),
    ))
}

async fn complete(
    State(cell): State<Cell>,
    Path(id): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<RunResponse>, StatusCode> {
    let c = worker_call(&id, &body)?;
    let done = Completion {
        output: body.get("output").cloned(),
        error: body.get("error").cloned(),
        tokens_total: body["tokens_total"].as_i64(),
    };
    let r = cell
        .unscoped_complete(&c, done)
        .await
        .map_err(|_| StatusCode::CONFLICT)?
        .ok_or(StatusCode::CONFLICT)?;
    Ok(Json(r.into()))
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
        .route("/v1/agents/{id}/runs", post(start_run))
        .route("/v1/workers/lease", post(lease))
        .route("/v1/runs/{id}/usage", post(usage))
        .route("/v1/runs/{id}/complete", post(complete))
        .with_state(cell);
    let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
