//! The request context: who calls ([`Caller`], [`Actor`]), the tenant a request is bound to
//! ([`Ctx`]), the checks that return typed proofs, and the resolution of a bearer credential.
//! No HTTP here: the server's `resolve` module reads the request and calls into this one, and
//! is the only place that makes a `TenantScope` for a request.

use serde_json::{Value, json};
use tenantd_core::access::perm::{Perm, PlatformAdmin};
use tenantd_core::access::{Granted, Permission, Role};
use tenantd_core::audit::Action;
use tenantd_core::audit::AuditDraft;
use tenantd_core::ids::{ApiKeyId, EventId, SessionId, TenantId, UserId};
use tenantd_core::plans::Plan;
use tenantd_core::tenant::{Tenant, TenantScope};
use tenantd_core::{Error, time};

use crate::auth::secrets::{hash_secret, looks_like_api_key};
use crate::cache::KeyContext;
use crate::state::AppState;

/// Per-request facts every layer may need.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The request id (`X-Request-ID`).
    pub request_id: String,
    /// The client address.
    pub ip: Option<String>,
}

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
            Action::PermissionDenied,
            p.as_str().split(':').next().unwrap_or("unknown"),
            None,
            "denied",
            json!({ "permission": p.as_str(), "role": role.as_str() }),
        );
        crate::relay::append_now(state, tenant, ev).await;
        Error::Forbidden(format!("the {role} role lacks {}", p.as_str()))
    }

    /// An audit draft by this caller in `tenant`.
    pub fn event(
        &self,
        tenant: TenantId,
        action: Action,
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
    action: Action,
    resource: &str,
    resource_id: Option<String>,
    outcome: &str,
    details: Value,
) -> AuditDraft {
    AuditDraft {
        id: EventId::new(),
        tenant_id: tenant,
        actor,
        action: action.text().into_owned(),
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
        action: Action,
        resource: &str,
        resource_id: Option<String>,
        details: Value,
    ) -> AuditDraft {
        self.caller
            .event(self.tenant.id, action, resource, resource_id, details)
    }
}

/// Verifies a bearer credential (an access token or an API key) and loads the caller's home
/// tenant and live role.
pub async fn authenticate(
    state: &AppState,
    token: &str,
    meta: RequestMeta,
) -> Result<Caller, Error> {
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
pub async fn lookup(state: &AppState, value: &str) -> Result<Option<Tenant>, Error> {
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

pub fn names(t: &Tenant, value: &str) -> bool {
    value.eq_ignore_ascii_case(&t.id.to_string()) || value.eq_ignore_ascii_case(t.slug.as_str())
}
