//! Tenant resolution for a request: reads the credential and every other source of tenant
//! context from the request, applies the mismatch rule once ([`resolve`]), and makes the
//! `Caller` and `Ctx` extractors (thin wrappers over it) with the status check and the
//! `api_requests` rate limit.

use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::header;
use axum::http::request::Parts;
use serde_json::json;
use tenantd_app::AppState;
use tenantd_app::context::{Caller, Ctx, RequestMeta, authenticate, event, lookup, names};
use tenantd_core::Error;
use tenantd_core::access::Role;
use tenantd_core::audit::Action;
use tenantd_core::ids::TenantId;
use tenantd_core::tenant::{Tenant, TenantScope};

use crate::error::ApiError;
use crate::http::FactsSlot;

fn meta(parts: &Parts) -> RequestMeta {
    parts
        .extensions
        .get::<RequestMeta>()
        .cloned()
        .unwrap_or_else(|| RequestMeta {
            request_id: uuid::Uuid::now_v7().to_string(),
            ip: None,
        })
}

fn bearer(parts: &Parts) -> Result<&str, Error> {
    let missing = Error::Unauthenticated("missing bearer credentials");
    let v = parts.headers.get(header::AUTHORIZATION).ok_or(missing)?;
    let v = v
        .to_str()
        .map_err(|_| Error::Unauthenticated("malformed Authorization header"))?;
    let (scheme, token) = v
        .split_once(' ')
        .ok_or(Error::Unauthenticated("malformed Authorization header"))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(Error::Unauthenticated("malformed Authorization header"));
    }
    Ok(token)
}

/// Every tenant the request names besides its credential: (`X-Tenant-ID`, others).
fn named_tenants(state: &AppState, parts: &Parts) -> Result<(Option<String>, Vec<String>), Error> {
    let header = match parts
        .headers
        .get_all("x-tenant-id")
        .iter()
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => None,
        [one] => Some(
            one.to_str()
                .map_err(|_| Error::TenantMismatch)?
                .trim()
                .to_owned(),
        ),
        _ => return Err(Error::TenantMismatch),
    };
    let mut others = Vec::new();
    if let Some(base) = &state.config.base_domain {
        // Byte-wise and without a trailing dot: `acme.example.com.` names acme too.
        let raw = parts
            .headers
            .get(header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
            .unwrap_or_default();
        let host = raw
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(&raw)
            .trim_end_matches('.')
            .to_ascii_lowercase();
        if let Some(sub) = host
            .strip_suffix(base.as_str())
            .and_then(|s| s.strip_suffix('.'))
            && !sub.is_empty()
            && !sub.contains('.')
            && sub != "www"
            && sub != "api"
        {
            others.push(sub.to_owned());
        }
    }
    // Read cookies byte-wise: one bad byte elsewhere in the header must not hide a `tenant`.
    for c in parts.headers.get_all(header::COOKIE) {
        for pair in String::from_utf8_lossy(c.as_bytes()).split(';') {
            if let Some((k, v)) = pair.trim().split_once('=')
                && k == "tenant"
            {
                others.push(v.trim().to_owned());
            }
        }
    }
    Ok((header, others))
}

async fn rate_limit(state: &AppState, parts: &Parts, tenant: &Tenant) -> Result<(), ApiError> {
    let plan = state.plan_of(tenant);
    let Some(per_minute) = plan.rate_per_minute("api_requests") else {
        return Ok(());
    };
    let info = state
        .limiter
        .check(tenant.id, "api_requests", per_minute)
        .await;
    if let Some(slot) = parts.extensions.get::<FactsSlot>()
        && let Ok(mut f) = slot.lock()
    {
        f.rate = Some(info);
    }
    match info.retry_after {
        Some(secs) => Err(Error::RateLimited { retry_after: secs }.into()),
        None => Ok(()),
    }
}

/// Denial events a tenant's chain takes per minute for refused crossings: enough to see every
/// probe of a careless or curious client, too few for a flood to bury the chain.
const MISMATCH_EVENTS_PER_MINUTE: u32 = 10;

/// A refused tenant crossing (`TENANT_MISMATCH`): appended as a denial to the chain of the
/// tenant the caller acts in — who, which tenant they named, request id and address — at most
/// [`MISMATCH_EVENTS_PER_MINUTE`] per tenant and node; then the refusal itself.
async fn refuse(state: &AppState, parts: &Parts, caller: &Caller, e: Error) -> ApiError {
    if !matches!(e, Error::TenantMismatch) {
        return e.into();
    }
    let key = format!("mismatch:{}", caller.home.id);
    if state
        .sign_in
        .check_key(&key, MISMATCH_EVENTS_PER_MINUTE)
        .retry_after
        .is_none()
    {
        let mut named: Vec<String> = parts
            .headers
            .get_all("x-tenant-id")
            .iter()
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .chars()
                    .take(100)
                    .collect()
            })
            .collect();
        if let Ok((_, others)) = named_tenants(state, parts) {
            named.extend(others.into_iter().map(|v| v.chars().take(100).collect()));
        }
        named.retain(|v| !names(&caller.home, v));
        named.truncate(4);
        let mut named_ids = Vec::new();
        for v in &named {
            if let Ok(Some(t)) = lookup(state, v).await {
                named_ids.push(t.id.to_string());
            }
        }
        let ev = event(
            &caller.meta,
            caller.actor.audit_name(),
            caller.home.id,
            Action::TenantMismatch,
            "tenants",
            named_ids.first().cloned(),
            "denied",
            json!({
                "named": named,
                "named_tenant_ids": named_ids,
                "method": parts.method.as_str(),
                "path": parts.uri.path().chars().take(200).collect::<String>(),
            }),
        );
        tenantd_app::relay::append_now(state, caller.home.id, ev).await;
    }
    e.into()
}

fn record_tenant(parts: &Parts, tenant: TenantId) {
    tracing::Span::current().record("tenant_id", tracing::field::display(tenant));
    if let Some(slot) = parts.extensions.get::<FactsSlot>()
        && let Ok(mut f) = slot.lock()
    {
        f.tenant_id = Some(tenant);
    }
}

/// What a request's tenant sources resolve to.
pub struct Resolution {
    /// Who calls, in their home tenant.
    pub caller: Caller,
    /// The tenant the request acts in: the home tenant, or the one a platform admin names in
    /// `X-Tenant-ID`.
    pub target: Tenant,
    /// Whether that is a platform admin's crossing into another tenant.
    pub crossing: bool,
}

/// The one place the mismatch rule lives (DESIGN.md, "tenant context"): every source of tenant
/// context — the credential, `X-Tenant-ID`, the subdomain, the `tenant` cookie — must name the
/// same tenant, except that a platform admin may name another in `X-Tenant-ID` and act there
/// (`cross`; for tenant-path endpoints the header is allowed but no crossing is made). Any
/// other disagreement is `TENANT_MISMATCH`, audited in the caller's tenant.
pub async fn resolve(state: &AppState, parts: &Parts, cross: bool) -> Result<Resolution, ApiError> {
    let caller = authenticate(state, bearer(parts)?, meta(parts)).await?;
    let (header, others) = match named_tenants(state, parts) {
        Ok(n) => n,
        Err(e) => return Err(refuse(state, parts, &caller, e).await),
    };
    let mut target = caller.home.clone();
    let mut crossing = false;
    if let Some(h) = header.as_deref().filter(|h| !names(&caller.home, h)) {
        if !caller.is_platform_admin() {
            return Err(refuse(state, parts, &caller, Error::TenantMismatch).await);
        }
        if cross {
            target = lookup(state, h).await?.ok_or(Error::NotFound)?;
            crossing = target.id != caller.home.id;
        }
    }
    if others
        .iter()
        .any(|v| !names(&target, v) && !names(&caller.home, v))
    {
        return Err(refuse(state, parts, &caller, Error::TenantMismatch).await);
    }
    Ok(Resolution {
        caller,
        target,
        crossing,
    })
}

/// The authenticated caller, as an extractor: for endpoints that name their tenant in the
/// path (`/v1/tenants/{id}`). (The application's `Caller` is wrapped because the extractor
/// trait is axum's and the type is `tenantd-app`'s.)
pub struct Authenticated(pub Caller);

/// The request bound to one tenant, as an extractor: for every tenant-scoped endpoint.
pub struct InTenant(pub Ctx);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    /// For endpoints that name their tenant in the path (`/v1/tenants/{id}`): the caller in
    /// its home tenant. Other tenant sources must still agree with the credential.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Resolution { caller, .. } = resolve(state, parts, false).await?;
        record_tenant(parts, caller.home.id);
        rate_limit(state, parts, &caller.home).await?;
        Ok(Authenticated(caller))
    }
}

impl FromRequestParts<AppState> for InTenant {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Resolution {
            caller,
            target,
            crossing,
        } = resolve(state, parts, true).await?;
        target.ensure_serving()?;
        // A tenant being moved serves reads; its writes wait for the move (503 with
        // Retry-After). The cell's fence refuses them too, whatever this node has cached.
        if target.status == tenantd_core::tenant::TenantStatus::Migrating
            && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
        {
            return Err(Error::TenantMigrating.into());
        }
        record_tenant(parts, target.id);
        let scope = TenantScope::unscoped_trusted(target.id, target.cell.clone());
        if crossing {
            let details = json!({ "method": parts.method.as_str(), "path": parts.uri.path(), "from_tenant": caller.home.id, "to_tenant": target.id });
            let out = caller.event(
                caller.home.id,
                Action::CrossTenant,
                "tenants",
                Some(target.id.to_string()),
                details.clone(),
            );
            let inn = caller.event(
                target.id,
                Action::CrossTenant,
                "tenants",
                Some(target.id.to_string()),
                details,
            );
            let home_scope =
                TenantScope::unscoped_trusted(caller.home.id, caller.home.cell.clone());
            state
                .cell(&home_scope)?
                .append_audit(&home_scope, vec![out])
                .await?;
            state.cell(&scope)?.append_audit(&scope, vec![inn]).await?;
        }
        rate_limit(state, parts, &target).await?;
        let plan = state.plan_of(&target).clone();
        let role = if crossing { Role::Owner } else { caller.role };
        Ok(InTenant(Ctx {
            caller,
            tenant: target,
            plan,
            scope,
            role,
            crossing,
        }))
    }
}
