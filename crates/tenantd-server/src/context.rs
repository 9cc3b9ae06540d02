//! The request path from credentials to a [`Ctx`]: authentication, tenant resolution with
//! the mismatch rule and the audited platform-admin crossing, status and membership checks,
//! and the `api_requests` rate limit. The only place that makes a `TenantScope` for a request.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use serde_json::{Value, json};
use tenantd_core::access::perm::{Perm, PlatformAdmin};
use tenantd_core::access::{Granted, Permission, Role};
use tenantd_core::audit::AuditDraft;
use tenantd_core::ids::{ApiKeyId, EventId, SessionId, TenantId, UserId};
use tenantd_core::plans::Plan;
use tenantd_core::tenant::{Tenant, TenantScope};
use tenantd_core::{Error, time};

use crate::auth::secrets::{hash_secret, looks_like_api_key};
use crate::cache::KeyContext;
use crate::error::ApiError;
use crate::http::{FactsSlot, RequestMeta};
use crate::state::AppState;

/// Who is calling.
#[derive(Debug, Clone, Copy)]
pub enum Actor {
    /// A user, through a session's access token.
    User {
        /// The user.
        id: UserId,
        /// The session.
        session: SessionId,
    },
    /// An API key.
    ApiKey {
        /// The key.
        id: ApiKeyId,
        /// The user who made it (keys act for, and never beyond, a person).
        created_by: Option<UserId>,
    },
    /// An operator at the command line, acting on the database directly.
    Operator,
}

impl Actor {
    /// The audit form: `user:<id>` or `api_key:<id>`.
    pub fn audit_name(&self) -> String {
        match self {
            Actor::User { id, .. } => format!("user:{id}"),
            Actor::ApiKey { id, .. } => format!("api_key:{id}"),
            Actor::Operator => "operator:cli".to_owned(),
        }
    }

    /// The person accountable for the call: the user, or the user who made the key.
    pub fn accountable_user(&self) -> Option<UserId> {
        match self {
            Actor::User { id, .. } => Some(*id),
            Actor::ApiKey { created_by, .. } => *created_by,
            Actor::Operator => None,
        }
    }

    /// The user, when a user is calling.
    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Actor::User { id, .. } => Some(*id),
            Actor::ApiKey { .. } | Actor::Operator => None,
        }
    }
}

/// An authenticated caller in its own (home) tenant.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub actor: Actor,
    /// The tenant the credential belongs to.
    pub home: Tenant,
    /// The live role there.
    pub role: Role,
    /// Request id and address.
    pub meta: RequestMeta,
}

impl Caller {
    /// The command-line operator: a platform admin acting without a credential, since
    /// whoever can open the database files already holds every tenant's data.
    pub async fn operator(state: &AppState) -> Result<Self, Error> {
        let home = state
            .catalog
            .find_tenant(state.platform)
            .await?
            .ok_or(Error::NotFound)?;
        Ok(Self {
            actor: Actor::Operator,
            home,
            role: Role::Owner,
            meta: RequestMeta {
                request_id: uuid::Uuid::now_v7().to_string(),
                ip: None,
            },
        })
    }

    /// Whether the caller administers the platform.
    pub fn is_platform_admin(&self) -> bool {
        tenantd_core::access::grant_platform_admin(self.home.kind, self.role).is_some()
    }

    /// Checks that the caller is a platform admin; a denial is audited in the caller's tenant
    /// and answered 403, like every other permission check.
    pub async fn require_platform_admin(
        &self,
        state: &AppState,
    ) -> Result<Granted<PlatformAdmin>, Error> {
        match tenantd_core::access::grant_platform_admin(self.home.kind, self.role) {
            Some(g) => Ok(g),
            None => Err(self
                .denied(state, self.home.id, Permission::PlatformAdmin, self.role)
                .await),
        }
    }

    /// Checks `P` over tenant `t` named in a path (`/v1/tenants/{id}`): a platform admin holds
    /// every permission there, a member what their role holds in it, anyone else nothing. A
    /// denial is audited in the caller's tenant and answered 403.
    pub async fn require_over<P: Perm>(
        &self,
        state: &AppState,
        t: &Tenant,
    ) -> Result<Granted<P>, Error> {
        let role = if self.is_platform_admin() {
            Role::Owner
        } else if t.id == self.home.id {
            self.role
        } else {
            Role::Viewer
        };
        match role.grant::<P>() {
            Some(g) => Ok(g),
            None => Err(self.denied(state, self.home.id, P::PERMISSION, role).await),
        }
    }

    /// Audits a denied permission in `tenant`'s chain and makes its 403.
    pub(crate) async fn denied(
        &self,
        state: &AppState,
        tenant: TenantId,
        p: Permission,
        role: Role,
    ) -> Error {
        let ev = event(
            &self.meta,
            self.actor.audit_name(),
            tenant,
            "permission.denied",
            p.as_str().split(':').next().unwrap_or("unknown"),
            None,
            "denied",
            json!({ "permission": p.as_str(), "role": role.as_str() }),
        );
        crate::services::auth::append_now(state, tenant, ev).await;
        Error::Forbidden(format!("the {role} role lacks {}", p.as_str()))
    }

    /// An audit draft by this caller in `tenant`.
    pub fn event(
        &self,
        tenant: TenantId,
        action: &str,
        resource: &str,
        resource_id: Option<String>,
        details: Value,
    ) -> AuditDraft {
        event(
            &self.meta,
            self.actor.audit_name(),
            tenant,
            action,
            resource,
            resource_id,
            "success",
            details,
        )
    }
}

/// An audit draft.
#[allow(clippy::too_many_arguments)]
pub fn event(
    meta: &RequestMeta,
    actor: String,
    tenant: TenantId,
    action: &str,
    resource: &str,
    resource_id: Option<String>,
    outcome: &str,
    details: Value,
) -> AuditDraft {
    AuditDraft {
        id: EventId::new(),
        tenant_id: tenant,
        actor,
        action: action.into(),
        resource: resource.into(),
        resource_id,
        outcome: outcome.into(),
        request_id: Some(meta.request_id.clone()),
        ip: meta.ip.clone(),
        at: time::format(time::now()),
        details,
    }
}

/// A request bound to exactly one tenant: the input of every tenant-scoped service.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The caller.
    pub caller: Caller,
    /// The tenant the request acts in.
    pub tenant: Tenant,
    /// Its plan.
    pub plan: std::sync::Arc<Plan>,
    /// The scope for its data.
    pub scope: TenantScope,
    /// The effective role in that tenant (a crossing platform admin acts as `owner`).
    pub role: Role,
    /// Whether a platform admin crossed into this tenant.
    pub crossing: bool,
}

impl Ctx {
    /// Checks the permission `P` (`ctx.require::<ResourcesWrite>(state)`); a denial is
    /// audited and answered 403. The proof it returns is what the service function for `P`
    /// takes.
    pub async fn require<P: Perm>(&self, state: &AppState) -> Result<Granted<P>, Error> {
        if let Some(g) = self.role.grant::<P>() {
            return Ok(g);
        }
        Err(self
            .caller
            .denied(state, self.tenant.id, P::PERMISSION, self.role)
            .await)
    }

    /// An audit draft by this request's caller in its tenant.
    pub fn event(
        &self,
        action: &str,
        resource: &str,
        resource_id: Option<String>,
        details: Value,
    ) -> AuditDraft {
        self.caller
            .event(self.tenant.id, action, resource, resource_id, details)
    }
}

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

/// Verifies the credential and loads the caller's home tenant and live role.
pub async fn authenticate(state: &AppState, parts: &Parts) -> Result<Caller, Error> {
    let token = bearer(parts)?;
    let meta = meta(parts);
    let invalid = || Error::Unauthenticated("invalid or revoked credentials");
    if looks_like_api_key(token) {
        let hash = hash_secret(token);
        let resolved = state
            .auth_cache
            .key(&hash, resolve_key(state, &hash))
            .await?
            .ok_or_else(invalid)?;
        let KeyContext {
            key,
            tenant: home,
            creator_role,
        } = resolved.as_ref();
        if !key.is_live(time::now()) {
            return Err(invalid());
        }
        home.ensure_serving()?;
        // A key acts for the person who made it: once they leave, or hold less than the key's
        // role, the key stops working.
        if key.created_by.is_some() && !creator_role.is_some_and(|r| key.role.within(r)) {
            return Err(invalid());
        }
        return Ok(Caller {
            actor: Actor::ApiKey {
                id: key.id,
                created_by: key.created_by,
            },
            home: home.clone(),
            role: key.role,
            meta,
        });
    }
    let claims = match state
        .auth_cache
        .verified_token(token, || state.keys.verify_until(token))
    {
        Ok(c) => c,
        Err(e) => {
            // A kid we do not know may come from a rotation elsewhere: reload, at most every 5 s.
            let kid = jsonwebtoken::decode_header(token).ok().and_then(|h| h.kid);
            if kid.is_some_and(|k| !state.keys.knows(&k)) && state.keys.older_than(5) {
                state.keys.reload(state.catalog.as_ref()).await?;
                state
                    .auth_cache
                    .verified_token(token, || state.keys.verify_until(token))?
            } else {
                return Err(e);
            }
        }
    };
    let user = UserId::parse(&claims.sub, "sub").map_err(|_| invalid())?;
    let tenant = TenantId::parse(&claims.tid, "tid").map_err(|_| invalid())?;
    let sid = SessionId::parse(&claims.sid, "sid").map_err(|_| invalid())?;
    // One catalog read for the session, the live membership and the tenant (or none, while
    // this node's cache holds them).
    let resolved = state
        .auth_cache
        .session(sid, state.catalog.find_session_context(sid))
        .await?
        .ok_or_else(invalid)?;
    let (session, role, home) = resolved.as_ref();
    if session.revoked_at.is_some() || session.user_id != user || session.tenant_id != tenant {
        return Err(invalid());
    }
    if session.revoked_after_gen.is_some_and(|g| claims.r#gen > g) {
        return Err(invalid());
    }
    home.ensure_serving()?;
    Ok(Caller {
        actor: Actor::User {
            id: user,
            session: sid,
        },
        home: home.clone(),
        role: *role,
        meta,
    })
}

/// Reads what an API key resolves to: the key, its tenant and its creator's live role.
async fn resolve_key(state: &AppState, hash: &str) -> Result<Option<KeyContext>, Error> {
    let Some(key) = state.catalog.find_api_key_by_hash(hash).await? else {
        return Ok(None);
    };
    let Some(tenant) = state.catalog.find_tenant(key.tenant_id).await? else {
        return Ok(None);
    };
    let creator_role = match key.created_by {
        Some(creator) => match state
            .catalog
            .find_membership(key.tenant_id, creator)
            .await?
        {
            Some(m) => Some(m.role),
            None => return Ok(None),
        },
        None => None,
    };
    Ok(Some(KeyContext {
        key,
        tenant,
        creator_role,
    }))
}

/// The tenant named by a header, subdomain or cookie value (id or slug).
async fn lookup(state: &AppState, value: &str) -> Result<Option<Tenant>, Error> {
    match TenantId::parse(value, "tenant") {
        Ok(id) => state.catalog.find_tenant(id).await,
        Err(_) => {
            state
                .catalog
                .find_tenant_by_slug(&value.to_ascii_lowercase())
                .await
        }
    }
}

fn names(t: &Tenant, value: &str) -> bool {
    value.eq_ignore_ascii_case(&t.id.to_string()) || value.eq_ignore_ascii_case(&t.slug)
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
            "tenant.mismatch",
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
        crate::services::auth::append_now(state, caller.home.id, ev).await;
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
    let caller = authenticate(state, parts).await?;
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

impl FromRequestParts<AppState> for Caller {
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
        Ok(caller)
    }
}

impl FromRequestParts<AppState> for Ctx {
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
        record_tenant(parts, target.id);
        let scope = TenantScope::unscoped_trusted(target.id, target.cell.clone());
        if crossing {
            let details = json!({ "method": parts.method.as_str(), "path": parts.uri.path(), "from_tenant": caller.home.id, "to_tenant": target.id });
            let out = caller.event(
                caller.home.id,
                "platform.cross_tenant",
                "tenants",
                Some(target.id.to_string()),
                details.clone(),
            );
            let inn = caller.event(
                target.id,
                "platform.cross_tenant",
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
        Ok(Ctx {
            caller,
            tenant: target,
            plan,
            scope,
            role,
            crossing,
        })
    }
}
