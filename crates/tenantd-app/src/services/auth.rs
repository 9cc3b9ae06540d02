use crate::services::placement::{create_placed, placement};
use chrono::Duration;
use serde::Serialize;
use serde_json::json;
use tenantd_core::access::Role;
use tenantd_core::audit::Action;
use tenantd_core::drafts::SignupDraft;
use tenantd_core::identity::{
    Email, Membership, NewRefreshToken, NewUser, Password, RefreshOutcome, User,
};
use tenantd_core::ids::{SessionId, TenantId, UserId};
use tenantd_core::store::{NewSession, TenantOwner};
use tenantd_core::tenant::{CellName, NewTenant, Tenant, TenantType};
use tenantd_core::{Error, Result, time};
use utoipa::ToSchema;

use crate::auth::secrets::{hash_secret, refresh_token};
use crate::context::RequestMeta;
use crate::context::{Caller, event};
use crate::state::AppState;

/// A token pair.
#[derive(Debug, Serialize, ToSchema)]
pub struct Tokens {
    /// EdDSA-signed JWT.
    pub access_token: String,
    /// Opaque, single-use.
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Access-token lifetime, seconds.
    pub expires_in: i64,
}

/// Throttles sign-in attempts by client address and, where one is named, by account, so
/// passwords cannot be guessed at speed (`429 RATE_LIMITED` with `Retry-After`).
pub(crate) fn throttle(state: &AppState, meta: &RequestMeta, account: Option<&str>) -> Result<()> {
    let limited = |key: String, per_minute: u32| match state
        .sign_in
        .check_key(&key, per_minute)
        .retry_after
    {
        Some(retry_after) => Err(Error::RateLimited { retry_after }),
        None => Ok(()),
    };
    if let Some(ip) = &meta.ip {
        limited(format!("ip:{ip}"), state.config.auth_rate_per_ip)?;
    }
    if let Some(a) = account {
        limited(
            format!("account:{}", a.trim().to_lowercase()),
            state.config.auth_rate_per_account,
        )?;
    }
    Ok(())
}

/// A new session: its row and the tokens that go with it.
pub(crate) struct Issued {
    pub session: NewSession,
    pub tokens: Tokens,
}

/// Mints a session and its tokens for (user, tenant, role); the caller stores the session.
pub(crate) fn issue(
    state: &AppState,
    user: UserId,
    tenant: TenantId,
    role: Role,
) -> Result<Issued> {
    let sid = SessionId::new();
    let refresh = refresh_token()?;
    let access = state.keys.issue(
        &user.to_string(),
        &tenant.to_string(),
        role.as_str(),
        &sid.to_string(),
        0,
    )?;
    Ok(Issued {
        session: NewSession {
            id: sid,
            user_id: user,
            tenant_id: tenant,
            refresh: NewRefreshToken {
                token_hash: hash_secret(&refresh),
                expires_at: time::now() + Duration::seconds(state.config.refresh_ttl_secs),
            },
        },
        tokens: Tokens {
            access_token: access,
            refresh_token: refresh,
            token_type: "Bearer",
            expires_in: state.keys.ttl(),
        },
    })
}

/// Signup's result.
pub struct SignupOutput {
    pub user: User,
    pub tenant: Tenant,
    pub tokens: Tokens,
}

/// Self-serve signup: a user, a tenant they own, and a session. `draft` is the request's
/// parse, looked at once signup is known to be on and the client within its sign-in rate.
pub async fn signup(
    state: &AppState,
    meta: &RequestMeta,
    draft: Result<SignupDraft>,
) -> Result<SignupOutput> {
    if !state.config.signup {
        return Err(Error::Forbidden("self-serve signup is switched off".into()));
    }
    throttle(state, meta, None)?;
    let SignupDraft {
        email,
        password,
        name,
        tenant_name: tname,
        tenant_slug: slug,
        plan: plan_id,
    } = draft?;
    let plan = match state.plans.get(plan_id.as_str()) {
        Some(p) if p.self_serve => p.clone(),
        Some(_) => {
            return Err(Error::invalid(
                "tenant.plan",
                "this plan is not available for self-serve signup",
            ));
        }
        None => return Err(Error::invalid("tenant.plan", "unknown plan")),
    };
    if state
        .catalog
        .find_user_by_email(email.as_str())
        .await?
        .is_some()
    {
        return Err(Error::conflict(
            "email",
            "an account with this email exists; log in and create the tenant from there",
        ));
    }
    let placement = placement(state, None, &plan, false)?;
    let hash = state.passwords.hash(&password).await?;
    let user = NewUser {
        id: UserId::new(),
        email,
        name: name.as_str().to_owned(),
        password_hash: Some(hash),
    };
    let tenant = NewTenant {
        id: TenantId::new(),
        slug,
        name: tname,
        kind: TenantType::Client,
        plan: plan_id,
        region: None,
        cell: CellName::default(),
        dedicated: false,
        settings: json!({}),
    };
    let issued = issue(state, user.id, tenant.id, Role::Owner)?;
    let actor = format!("user:{}", user.id);
    let audit = vec![
        event(
            meta,
            actor.clone(),
            tenant.id,
            Action::TenantCreate,
            "tenants",
            Some(tenant.id.to_string()),
            "success",
            json!({"slug": tenant.slug.as_str(), "plan": tenant.plan, "via": "signup"}),
        ),
        event(
            meta,
            actor,
            tenant.id,
            Action::Signup,
            "users",
            Some(user.id.to_string()),
            "success",
            json!({"email": user.email.as_str()}),
        ),
    ];
    let uid = user.id;
    let tenant = create_placed(
        state,
        tenant,
        &placement,
        TenantOwner::NewUser(user),
        Some(issued.session),
        audit,
    )
    .await?;
    state.catalog.set_user_last_tenant(uid, tenant.id).await?;
    state.relay_now().await;
    let user = state
        .catalog
        .find_user(uid)
        .await?
        .ok_or(Error::Internal("user vanished".into()))?;
    Ok(SignupOutput {
        user,
        tenant,
        tokens: issued.tokens,
    })
}

/// Picks the membership a login acts in: the named tenant, else the last used, else the only
/// (or oldest) one.
async fn pick_membership(
    state: &AppState,
    user: &User,
    tenant: Option<&str>,
) -> Result<Option<Membership>> {
    let all = state.catalog.list_user_memberships(user.id).await?;
    if let Some(t) = tenant {
        for m in &all {
            if let Some(ten) = state.catalog.find_tenant(m.tenant_id).await?
                && (t.eq_ignore_ascii_case(ten.slug.as_str())
                    || t.eq_ignore_ascii_case(&ten.id.to_string()))
            {
                return Ok(Some(m.clone()));
            }
        }
        return Ok(None);
    }
    if let Some(last) = user.last_tenant_id
        && let Some(m) = all.iter().find(|m| m.tenant_id == last)
    {
        return Ok(Some(m.clone()));
    }
    Ok(all.into_iter().next())
}

/// Password login.
pub async fn login(
    state: &AppState,
    meta: &RequestMeta,
    email: &str,
    password: &str,
    tenant: Option<&str>,
) -> Result<(User, Tenant, Tokens)> {
    let invalid = Error::Unauthenticated("invalid email, password or tenant");
    throttle(state, meta, Some(email))?;
    let user = match Email::parse(email, "email") {
        Ok(e) => state.catalog.find_user_by_email(e.as_str()).await?,
        Err(_) => None,
    };
    let ok = state
        .passwords
        .verify(
            password,
            user.as_ref().and_then(|u| u.password_hash.as_deref()),
        )
        .await?;
    let membership = match &user {
        Some(u) => pick_membership(state, u, tenant).await?,
        None => None,
    };
    let audit_tenant = membership
        .as_ref()
        .map(|m| m.tenant_id)
        .unwrap_or(state.platform);
    let actor = user
        .as_ref()
        .map(|u| format!("user:{}", u.id))
        .unwrap_or_else(|| "anonymous".into());
    let (Some(user), Some(m), true) = (user, membership, ok) else {
        let ev = event(
            meta,
            actor,
            audit_tenant,
            Action::Login,
            "sessions",
            None,
            "failure",
            json!({"email": email.chars().take(254).collect::<String>()}),
        );
        crate::relay::append_now(state, audit_tenant, ev).await;
        return Err(invalid);
    };
    let t = state
        .catalog
        .find_tenant(m.tenant_id)
        .await?
        .ok_or(Error::Unauthenticated("invalid email, password or tenant"))?;
    if let Err(e) = t.ensure_serving() {
        let ev = event(
            meta,
            actor,
            t.id,
            Action::Login,
            "sessions",
            None,
            "denied",
            json!({"reason": t.status.as_str()}),
        );
        crate::relay::append_now(state, t.id, ev).await;
        return Err(e);
    }
    let issued = issue(state, user.id, t.id, m.role)?;
    let ev = event(
        meta,
        actor,
        t.id,
        Action::Login,
        "sessions",
        Some(issued.session.id.to_string()),
        "success",
        json!({}),
    );
    state
        .catalog
        .create_session(issued.session, vec![ev])
        .await?;
    state.catalog.set_user_last_tenant(user.id, t.id).await?;
    state.relay_now().await;
    Ok((user, t, issued.tokens))
}

/// Refresh-token rotation with reuse detection.
pub async fn refresh(state: &AppState, meta: &RequestMeta, token: &str) -> Result<Tokens> {
    let invalid = Error::Unauthenticated("invalid, expired or revoked refresh token");
    throttle(state, meta, None)?;
    if token.is_empty() || token.len() > 512 {
        return Err(invalid);
    }
    // A tenant that is not serving refuses the refresh without spending the token, so it
    // works again after a reactivation.
    let hash = hash_secret(token);
    if let Some(s) = state.catalog.find_refresh_session(&hash).await?
        && let Some(t) = state.catalog.find_tenant(s.tenant_id).await?
    {
        t.ensure_serving()?;
    }
    let next = refresh_token()?;
    let next_row = NewRefreshToken {
        token_hash: hash_secret(&next),
        expires_at: time::now() + Duration::seconds(state.config.refresh_ttl_secs),
    };
    match state
        .catalog
        .rotate_refresh(&hash_secret(token), next_row)
        .await?
    {
        RefreshOutcome::Invalid => Err(invalid),
        RefreshOutcome::Reused(s) => {
            let ev = event(
                meta,
                format!("user:{}", s.user_id),
                s.tenant_id,
                Action::RefreshReuse,
                "sessions",
                Some(s.id.to_string()),
                "denied",
                json!({"revoked": "session"}),
            );
            crate::relay::append_now(state, s.tenant_id, ev).await;
            Err(invalid)
        }
        RefreshOutcome::Rotated {
            session: s,
            generation,
        } => {
            let m = state
                .catalog
                .find_membership(s.tenant_id, s.user_id)
                .await?;
            let t = state.catalog.find_tenant(s.tenant_id).await?;
            let (Some(m), Some(t)) = (m, t) else {
                state.catalog.revoke_session(s.id, vec![]).await?;
                return Err(invalid);
            };
            t.ensure_serving()?;
            let access = state.keys.issue(
                &s.user_id.to_string(),
                &s.tenant_id.to_string(),
                m.role.as_str(),
                &s.id.to_string(),
                generation,
            )?;
            Ok(Tokens {
                access_token: access,
                refresh_token: next,
                token_type: "Bearer",
                expires_in: state.keys.ttl(),
            })
        }
    }
}

/// Ends the caller's session: its access and refresh tokens stop working.
pub async fn logout(state: &AppState, caller: &Caller) -> Result<()> {
    let crate::context::Actor::User { session, .. } = caller.actor else {
        return Err(Error::invalid(
            "authorization",
            "API keys have no session; delete the key instead",
        ));
    };
    let ev = caller.event(
        caller.home.id,
        Action::Logout,
        "sessions",
        Some(session.to_string()),
        json!({}),
    );
    state.catalog.revoke_session(session, vec![ev]).await?;
    state.relay_now().await;
    Ok(())
}

/// Changes the caller's password after checking the current one; every other session of the
/// user ends (its refresh token stops working at once, its access tokens at their next use),
/// the caller's own session stays. Attempts are throttled like sign-in, per client address and
/// per account; a wrong current password is audited and answered 422.
pub async fn change_password(
    state: &AppState,
    caller: &Caller,
    current: &str,
    new: &str,
) -> Result<()> {
    let crate::context::Actor::User { id, session } = caller.actor else {
        return Err(Error::invalid(
            "authorization",
            "an API key has no password; sign in as the user",
        ));
    };
    let user = state
        .catalog
        .find_user(id)
        .await?
        .ok_or(Error::Unauthenticated("the user is gone"))?;
    throttle(state, &caller.meta, Some(&user.email))?;
    let new = Password::parse(new, "new_password")?;
    let ok = state
        .passwords
        .verify(current, user.password_hash.as_deref())
        .await?;
    if !ok {
        let ev = event(
            &caller.meta,
            caller.actor.audit_name(),
            caller.home.id,
            Action::PasswordChange,
            "users",
            Some(id.to_string()),
            "failure",
            json!({"reason": "wrong current password"}),
        );
        crate::relay::append_now(state, caller.home.id, ev).await;
        return Err(Error::invalid(
            "current_password",
            "is not the current password",
        ));
    }
    let hash = state.passwords.hash(&new).await?;
    let ev = caller.event(
        caller.home.id,
        Action::PasswordChange,
        "users",
        Some(id.to_string()),
        json!({"other_sessions_ended": true}),
    );
    state
        .catalog
        .change_password(id, &hash, session, vec![ev])
        .await?;
    state.relay_now().await;
    Ok(())
}

/// A token pair for another of the caller's memberships.
pub async fn switch(state: &AppState, caller: &Caller, tenant: &str) -> Result<(Tenant, Tokens)> {
    let Some(user_id) = caller.actor.user_id() else {
        return Err(Error::invalid(
            "authorization",
            "API keys are bound to one tenant",
        ));
    };
    let user = state
        .catalog
        .find_user(user_id)
        .await?
        .ok_or(Error::Unauthenticated("unknown user"))?;
    let m = pick_membership(state, &user, Some(tenant))
        .await?
        .ok_or(Error::NotFound)?;
    let t = state
        .catalog
        .find_tenant(m.tenant_id)
        .await?
        .ok_or(Error::NotFound)?;
    t.ensure_serving()?;
    let issued = issue(state, user.id, t.id, m.role)?;
    let ev = caller.event(
        t.id,
        Action::Switch,
        "sessions",
        Some(issued.session.id.to_string()),
        json!({"from_tenant": caller.home.id}),
    );
    state
        .catalog
        .create_session(issued.session, vec![ev])
        .await?;
    state.catalog.set_user_last_tenant(user.id, t.id).await?;
    state.relay_now().await;
    Ok((t, issued.tokens))
}
