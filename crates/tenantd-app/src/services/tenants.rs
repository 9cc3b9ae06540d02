use std::collections::BTreeMap;

use chrono::Duration;
use serde::Serialize;
use serde_json::{Value, json};
use tenantd_core::access::perm::PlatformAdmin;
use tenantd_core::access::{Granted, Role, perm};
use tenantd_core::audit::Action;
use tenantd_core::drafts::TenantDraft;
use tenantd_core::identity::NewInvitation;
use tenantd_core::ids::{InvitationId, TenantId};
use tenantd_core::plans::{CORE_QUOTAS, check_quota};
use tenantd_core::resource::ResourceKind;
use tenantd_core::store::TenantOwner;
use tenantd_core::tenant::*;
use tenantd_core::{Error, Result, time};
use utoipa::ToSchema;

use crate::auth::secrets::{hash_secret, invitation_token};
use crate::context::Caller;
use crate::services::placement::{create_placed, placement};
use crate::state::AppState;

/// A tenant by id or slug, for a caller allowed to see it (a platform admin, or a member):
/// anyone else gets 404, as if it did not exist.
pub async fn visible(state: &AppState, caller: &Caller, id_or_slug: &str) -> Result<Tenant> {
    let t = match TenantId::parse(id_or_slug, "id") {
        Ok(id) => state.catalog.find_tenant(id).await?,
        Err(_) => {
            state
                .catalog
                .find_tenant_by_slug(&id_or_slug.to_ascii_lowercase())
                .await?
        }
    };
    let t = t.ok_or(Error::NotFound)?;
    if caller.is_platform_admin() || t.id == caller.home.id {
        Ok(t)
    } else {
        Err(Error::NotFound)
    }
}

/// What creating a tenant made.
pub struct Created {
    pub tenant: Tenant,
    /// The owner invitation's token, when the owner had no account yet.
    pub owner_invitation: Option<(InvitationId, String, chrono::DateTime<chrono::Utc>)>,
}

/// Creates a tenant (platform admins): the plan must exist; the tenant is placed on a cell
/// of its region and plan.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    _: Granted<PlatformAdmin>,
    draft: TenantDraft,
) -> Result<Created> {
    let TenantDraft {
        name,
        slug,
        plan,
        kind,
        region,
        settings,
        owner_email: email,
    } = draft;
    let plan = state
        .plans
        .get(plan.as_str())
        .cloned()
        .ok_or_else(|| Error::invalid("plan", "unknown plan"))?;
    let placement = placement(state, region, &plan, false)?;
    let id = TenantId::new();
    let (owner, invitation) = match state.catalog.find_user_by_email(email.as_str()).await? {
        Some(u) => (TenantOwner::Existing(u.id), None),
        None => {
            let token = invitation_token()?;
            let inv = NewInvitation {
                id: InvitationId::new(),
                tenant_id: id,
                email: email.clone(),
                role: Role::Owner,
                token_hash: hash_secret(&token),
                expires_at: time::now() + Duration::seconds(state.config.invitation_ttl_secs),
                created_by: caller.actor.user_id(),
            };
            let info = (inv.id, token, inv.expires_at);
            (TenantOwner::Invite(inv), Some(info))
        }
    };
    let new = NewTenant {
        id,
        slug,
        name,
        kind,
        plan: plan.id.clone(),
        region,
        cell: CellName::default(),
        dedicated: false,
        settings: Value::Object(settings),
    };
    let details =
        json!({"slug": new.slug.as_str(), "plan": new.plan, "owner_email": email.as_str()});
    let audit = vec![
        caller.event(
            id,
            Action::TenantCreate,
            "tenants",
            Some(id.to_string()),
            details.clone(),
        ),
        caller.event(
            caller.home.id,
            Action::TenantCreate,
            "tenants",
            Some(id.to_string()),
            details,
        ),
    ];
    let tenant = create_placed(state, new, &placement, owner, None, audit).await?;
    state.relay_now().await;
    Ok(Created {
        tenant,
        owner_invitation: invitation,
    })
}

/// Tenants, by id (platform admins).
pub async fn list(
    state: &AppState,
    caller: &Caller,
    after: Option<TenantId>,
    limit: u32,
) -> Result<Vec<Tenant>> {
    caller.require_platform_admin(state).await?;
    state.catalog.list_tenants(after, limit).await
}

/// Changes name, settings or branding (tenant owners and admins, platform admins). `patch` is
/// the request's parse, looked at only once the caller may change this tenant: a caller who
/// may not learns nothing from the validity of its body.
pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: &str,
    patch: Result<TenantPatch>,
) -> Result<Tenant> {
    let t = visible(state, caller, id).await?;
    if t.status == TenantStatus::Deleted {
        return Err(Error::TenantDeleted);
    }
    caller.require_over::<perm::TenantWrite>(state, &t).await?;
    let TenantPatch {
        name,
        settings,
        branding,
    } = patch?;
    if let Some(dr) = settings.as_ref().and_then(|s| residency(s).ok().flatten())
        && Some(dr) != t.region
    {
        return Err(Error::invalid(
            "settings.data_residency",
            "moving a tenant to another region is done with `tenantd tenant move`",
        ));
    }
    let ev = caller.event(t.id, Action::TenantUpdate, "tenants", Some(t.id.to_string()), json!({"name": name.is_some(), "settings": settings.as_ref().map(|s| s.keys().cloned().collect::<Vec<_>>()), "branding": branding.is_some()}));
    let out = state
        .catalog
        .update_tenant(
            t.id,
            TenantPatch {
                name,
                settings,
                branding,
            },
            vec![ev],
        )
        .await?;
    state.relay_now().await;
    Ok(out)
}

/// Suspends a tenant: its credentials stop working, its data stays.
pub async fn suspend(
    state: &AppState,
    caller: &Caller,
    id: &str,
    reason: Option<String>,
) -> Result<Tenant> {
    caller.require_platform_admin(state).await?;
    let t = visible(state, caller, id).await?;
    if t.kind == TenantType::Platform {
        return Err(Error::Forbidden(
            "the platform tenant cannot be suspended".into(),
        ));
    }
    if t.status == TenantStatus::Deleted {
        return Err(Error::TenantDeleted);
    }
    let reason = reason.map(|r| r.chars().take(500).collect::<String>());
    let ev = caller.event(
        t.id,
        Action::TenantSuspend,
        "tenants",
        Some(t.id.to_string()),
        json!({"reason": reason}),
    );
    stop_runs(state, caller, &t, "tenant suspended").await?;
    let out = state
        .catalog
        .set_tenant_status(t.id, TenantStatus::Suspended, reason, None, vec![ev])
        .await?;
    state.relay_now().await;
    Ok(out)
}

/// Cancels the tenant's open runs and stops its runs being leased or admitted, in its cell,
/// before the catalog records the status: the two are different databases, so the cell goes
/// first (if the catalog then fails, the runs stay stopped — the safe direction — and the
/// request fails). See `docs/design/runs.md`.
async fn stop_runs(state: &AppState, caller: &Caller, t: &Tenant, reason: &str) -> Result<()> {
    let scope = TenantScope::unscoped_trusted(t.id, t.cell.clone());
    let n = state
        .cell(&scope)?
        .stop_runs(
            &scope,
            reason,
            &caller.actor.audit_name(),
            Some(caller.meta.request_id.clone()),
        )
        .await?;
    state
        .run_stats
        .ended_n(tenantd_core::runs::RunStatus::Cancelled, n);
    Ok(())
}

/// Reactivates a suspended tenant.
pub async fn reactivate(state: &AppState, caller: &Caller, id: &str) -> Result<Tenant> {
    caller.require_platform_admin(state).await?;
    let t = visible(state, caller, id).await?;
    if t.status == TenantStatus::Deleted {
        return Err(Error::TenantDeleted);
    }
    let ev = caller.event(
        t.id,
        Action::TenantReactivate,
        "tenants",
        Some(t.id.to_string()),
        json!({"from": t.status}),
    );
    let out = state
        .catalog
        .set_tenant_status(t.id, TenantStatus::Active, None, None, vec![ev])
        .await?;
    let scope = TenantScope::unscoped_trusted(t.id, t.cell.clone());
    state.cell(&scope)?.resume_runs(&scope).await?;
    state.relay_now().await;
    Ok(out)
}

/// Soft-deletes a tenant (its owner, or a platform admin); the purge comes after retention.
pub async fn delete(state: &AppState, caller: &Caller, id: &str) -> Result<Tenant> {
    let t = visible(state, caller, id).await?;
    caller.require_over::<perm::TenantDelete>(state, &t).await?;
    if t.kind == TenantType::Platform {
        return Err(Error::Forbidden(
            "the platform tenant cannot be deleted".into(),
        ));
    }
    if t.status == TenantStatus::Deleted {
        return Err(Error::TenantDeleted);
    }
    let purge_after = time::now() + Duration::days(state.config.retention_days);
    let ev = caller.event(
        t.id,
        Action::TenantDelete,
        "tenants",
        Some(t.id.to_string()),
        json!({"purge_after": time::format(purge_after)}),
    );
    stop_runs(state, caller, &t, "tenant deleted").await?;
    let out = state
        .catalog
        .set_tenant_status(
            t.id,
            TenantStatus::Deleted,
            None,
            Some(purge_after),
            vec![ev],
        )
        .await?;
    state.relay_now().await;
    Ok(out)
}

/// Usage against the plan: `{period, quotas: {name: {used, limit}}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Usage {
    /// The calendar month the token quota counts (`YYYY-MM`).
    pub period: String,
    /// Each quota's usage and limit (`null` = unlimited).
    #[schema(value_type = Object)]
    pub quotas: BTreeMap<String, QuotaUsage>,
    /// Its agent runs now.
    pub runs: RunsUsage,
}

/// One quota.
#[derive(Debug, Serialize, ToSchema, Clone, Copy)]
pub struct QuotaUsage {
    /// Used now (`tokens`: this calendar month, UTC).
    pub used: i64,
    /// `tokens` only: what open runs hold and have not used yet (used + held ≤ limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<i64>,
    /// The plan's limit; `null` is unlimited.
    pub limit: Option<i64>,
}

impl QuotaUsage {
    fn of(used: i64, limit: Option<i64>) -> Self {
        Self {
            used,
            held: None,
            limit,
        }
    }
}

/// The tenant's agent runs now.
#[derive(Debug, Serialize, ToSchema, Clone)]
pub struct RunsUsage {
    /// Waiting for a worker.
    pub queued: i64,
    /// Held by a worker (the `concurrent_runs` slots in use).
    pub leased: i64,
    /// Median wait from creation to lease of the tenant's latest (at most 100) leased runs.
    pub wait_p50_ms: Option<i64>,
    /// The 99th percentile of the same waits.
    pub wait_p99_ms: Option<i64>,
    /// Leases of this month's runs that expired (each requeued its run or ended it).
    pub lease_expiries: i64,
    /// This month's refused admissions by reason (`feature`, `model`, `queued_runs`,
    /// `tokens`, `rate`, `suspended`).
    #[schema(value_type = Object)]
    pub rejections: BTreeMap<String, i64>,
}

/// A tenant's usage.
pub async fn usage_of(state: &AppState, t: &Tenant) -> Result<Usage> {
    let plan = state.plan_of(t);
    let scope = TenantScope::unscoped_trusted(t.id, t.cell.clone());
    let cell = state.cell(&scope)?;
    let counters = cell.counters(&scope).await?;
    let runs = cell.run_totals(&scope).await?;
    let mut quotas = BTreeMap::new();
    let users = state.catalog.users_used(t.id).await?;
    for q in CORE_QUOTAS {
        let usage = match *q {
            "users" => QuotaUsage::of(users, plan.limit(q)),
            "tokens" => QuotaUsage {
                used: runs.used,
                held: Some(runs.held),
                limit: plan.limit(q),
            },
            "concurrent_runs" => QuotaUsage::of(runs.leased, plan.limit(q)),
            "queued_runs" => QuotaUsage::of(runs.queued, plan.limit(q)),
            other => QuotaUsage::of(counters.get(other).copied().unwrap_or(0), plan.limit(q)),
        };
        quotas.insert((*q).to_owned(), usage);
    }
    for k in ResourceKind::ALL {
        quotas
            .entry(k.as_str().to_owned())
            .or_insert(QuotaUsage::of(
                counters.get(k.as_str()).copied().unwrap_or(0),
                plan.limit(k.as_str()),
            ));
    }
    Ok(Usage {
        period: time::now().format("%Y-%m").to_string(),
        quotas,
        runs: RunsUsage {
            queued: runs.queued,
            leased: runs.leased,
            wait_p50_ms: runs.wait_percentile(50),
            wait_p99_ms: runs.wait_percentile(99),
            lease_expiries: runs.lease_expiries,
            rejections: runs.rejections.clone(),
        },
    })
}

/// Usage, for a caller who may see the tenant.
pub async fn usage(state: &AppState, caller: &Caller, id: &str) -> Result<Usage> {
    let t = visible(state, caller, id).await?;
    usage_of(state, &t).await
}

/// Changes the plan (platform admins); a downgrade below current usage needs `force`.
pub async fn set_plan(
    state: &AppState,
    caller: &Caller,
    id: &str,
    plan: &str,
    force: bool,
) -> Result<Tenant> {
    caller.require_platform_admin(state).await?;
    let t = visible(state, caller, id).await?;
    if t.status == TenantStatus::Deleted {
        return Err(Error::TenantDeleted);
    }
    let new = state.plans.parse(plan, "plan")?;
    if !force {
        let u = usage_of(state, &t).await?;
        for (q, usage) in &u.quotas {
            check_quota(q, usage.used, new.limit(q), 0)?;
        }
    }
    let ev = caller.event(
        t.id,
        Action::TenantPlan,
        "tenants",
        Some(t.id.to_string()),
        json!({"from": t.plan, "to": new.id, "force": force}),
    );
    let out = state
        .catalog
        .set_tenant_plan(t.id, &new.id, vec![ev])
        .await?;
    state.relay_now().await;
    Ok(out)
}

/// Health of one tenant: its cell's reachability, quota pressure, status.
pub async fn health(state: &AppState, caller: &Caller, id: &str) -> Result<Value> {
    let t = visible(state, caller, id).await?;
    let scope = TenantScope::unscoped_trusted(t.id, t.cell.clone());
    let reachable = match state.cell(&scope) {
        Ok(c) => c.ping().await.is_ok(),
        Err(_) => false,
    };
    let pressure: BTreeMap<String, f64> = match usage_of(state, &t).await {
        Ok(u) => u
            .quotas
            .iter()
            .filter_map(|(k, q)| {
                q.limit.filter(|l| *l > 0).map(|l| {
                    (
                        k.clone(),
                        (q.used as f64 / l as f64 * 1000.0).round() / 1000.0,
                    )
                })
            })
            .collect(),
        Err(_) => BTreeMap::new(),
    };
    Ok(
        json!({"tenant_id": t.id, "status": t.status, "cell": {"name": t.cell, "reachable": reachable}, "quota_pressure": pressure}),
    )
}
