use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use tenantd_core::access::perm::{ApiKeysRead, ApiKeysWrite, MembersRead, MembersWrite};
use tenantd_core::access::{Granted, Role};
use tenantd_core::audit::Action;
use tenantd_core::identity::{
    ApiKey, Email, Invitation, Membership, NewInvitation, NewUser, Password,
};
use tenantd_core::ids::{ApiKeyId, InvitationId, UserId};
use tenantd_core::store::{Joiner, NewApiKey};
use tenantd_core::tenant::{DisplayName, Tenant};
use tenantd_core::{Error, Result, time};

use crate::auth::secrets::{api_key, hash_secret, invitation_token};
use crate::context::RequestMeta;
use crate::context::{Ctx, event};
use crate::services::auth::{Tokens, issue};
use crate::state::AppState;

fn check_assign(ctx: &Ctx, role: Role) -> Result<()> {
    if role == Role::Worker {
        return Err(Error::invalid(
            "role",
            "worker is a role for the platform tenant's API keys, not for members",
        ));
    }
    if ctx.role.may_assign(role) {
        Ok(())
    } else {
        Err(Error::Forbidden(format!(
            "the {} role cannot give the {role} role",
            ctx.role
        )))
    }
}

/// The tenant's members.
pub async fn list_members(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<MembersRead>,
) -> Result<Vec<Membership>> {
    state.catalog.list_members(ctx.tenant.id).await
}

/// Changes a member's role: only to a role the caller may give, never an owner's by an admin.
pub async fn update_member(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<MembersWrite>,
    user: UserId,
    role: Role,
) -> Result<Membership> {
    let current = state
        .catalog
        .find_membership(ctx.tenant.id, user)
        .await?
        .ok_or(Error::NotFound)?;
    check_assign(ctx, role)?;
    check_assign(ctx, current.role)?;
    let ev = ctx.event(
        Action::MemberUpdate,
        "members",
        Some(user.to_string()),
        json!({"from": current.role, "to": role}),
    );
    let m = state
        .catalog
        .update_member_role(ctx.tenant.id, user, role, vec![ev])
        .await?;
    // Keys the member made that now outrank them are revoked (they would stop working
    // anyway; revoking keeps the list honest and a later promotion from reviving them).
    for key in state.catalog.list_api_keys(ctx.tenant.id).await? {
        if key.created_by == Some(user) && key.revoked_at.is_none() && !key.role.within(role) {
            let ev = ctx.event(
                Action::ApiKeyRevoke,
                "api_keys",
                Some(key.id.to_string()),
                json!({"reason": "creator demoted"}),
            );
            state
                .catalog
                .revoke_api_key(ctx.tenant.id, key.id, vec![ev])
                .await?;
        }
    }
    state.relay_now().await;
    Ok(m)
}

/// Removes a member (or the caller leaves).
pub async fn remove_member(state: &AppState, ctx: &Ctx, user: UserId) -> Result<()> {
    let current = state
        .catalog
        .find_membership(ctx.tenant.id, user)
        .await?
        .ok_or(Error::NotFound)?;
    let leaving = ctx.caller.actor.user_id() == Some(user) && !ctx.crossing;
    if !leaving {
        ctx.require::<MembersWrite>(state).await?;
        check_assign(ctx, current.role)?;
    }
    let ev = ctx.event(
        Action::MemberRemove,
        "members",
        Some(user.to_string()),
        json!({"role": current.role, "left": leaving}),
    );
    state
        .catalog
        .remove_member(ctx.tenant.id, user, vec![ev])
        .await?;
    state.relay_now().await;
    Ok(())
}

/// Invites someone; the invitation holds a `users` slot until used, revoked or expired.
pub async fn invite(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<MembersWrite>,
    email: &str,
    role: &str,
) -> Result<(Invitation, String)> {
    let mut v = tenantd_core::error::Validator::default();
    let email = v.check(Email::parse(email, "email"));
    let role = v.check(Role::parse(role, "role"));
    v.finish()?;
    let (Some(email), Some(role)) = (email, role) else {
        return Err(Error::Internal("validator".into()));
    };
    check_assign(ctx, role)?;
    let token = invitation_token()?;
    let inv = NewInvitation {
        id: InvitationId::new(),
        tenant_id: ctx.tenant.id,
        email,
        role,
        token_hash: hash_secret(&token),
        expires_at: time::now() + Duration::seconds(state.config.invitation_ttl_secs),
        created_by: ctx.caller.actor.accountable_user(),
    };
    let ev = ctx.event(
        Action::InvitationCreate,
        "invitations",
        Some(inv.id.to_string()),
        json!({"email": inv.email.as_str(), "role": role}),
    );
    let out = state
        .catalog
        .create_invitation(inv, ctx.plan.limit("users"), vec![ev])
        .await?;
    state.relay_now().await;
    Ok((out, token))
}

/// The tenant's invitations.
pub async fn list_invitations(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<MembersWrite>,
) -> Result<Vec<Invitation>> {
    state.catalog.list_invitations(ctx.tenant.id).await
}

/// Revokes a pending invitation.
pub async fn revoke_invitation(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<MembersWrite>,
    id: InvitationId,
) -> Result<()> {
    let ev = ctx.event(
        Action::InvitationRevoke,
        "invitations",
        Some(id.to_string()),
        json!({}),
    );
    state
        .catalog
        .revoke_invitation(ctx.tenant.id, id, vec![ev])
        .await?;
    state.relay_now().await;
    Ok(())
}

/// Accepts an invitation: a new user sets a password; an existing user proves theirs.
pub async fn accept_invitation(
    state: &AppState,
    meta: &RequestMeta,
    token: &str,
    name: Option<&str>,
    password: Option<&str>,
) -> Result<(Tenant, Tokens)> {
    if token.is_empty() || token.len() > 512 {
        return Err(Error::NotFound);
    }
    crate::services::auth::throttle(state, meta, None)?;
    let inv = state
        .catalog
        .find_pending_invitation(&hash_secret(token))
        .await?
        .ok_or(Error::NotFound)?;
    // Password attempts through an invitation count against the invited account, like logins.
    crate::services::auth::throttle(state, meta, Some(&inv.email))?;
    let tenant = state
        .catalog
        .find_tenant(inv.tenant_id)
        .await?
        .ok_or(Error::NotFound)?;
    tenant.ensure_serving()?;
    // The password is checked for form first, the same way whether or not the invited email
    // has an account, so the answer does not tell which it is.
    let password = Password::parse(password.unwrap_or(""), "password")?;
    let existing = state.catalog.find_user_by_email(&inv.email).await?;
    let (joiner, user_id) = match existing {
        Some(u) => {
            if !state
                .passwords
                .verify(password.expose(), u.password_hash.as_deref())
                .await?
            {
                let ev = event(
                    meta,
                    "anonymous".into(),
                    tenant.id,
                    Action::InvitationAccept,
                    "invitations",
                    Some(inv.id.to_string()),
                    "failure",
                    json!({"reason": "wrong password for the invited account"}),
                );
                crate::relay::append_now(state, tenant.id, ev).await;
                return Err(Error::Unauthenticated(
                    "wrong password for the invited account",
                ));
            }
            (Joiner::Existing(u.id), u.id)
        }
        None => {
            let mut v = tenantd_core::error::Validator::default();
            let pw = Some(password);
            let name = v.check(DisplayName::parse(name.unwrap_or(&inv.email), "name"));
            let email = v.check(Email::parse(&inv.email, "email"));
            v.finish()?;
            let (Some(pw), Some(name), Some(email)) = (pw, name, email) else {
                return Err(Error::Internal("validator".into()));
            };
            let hash = state.passwords.hash(&pw).await?;
            let id = UserId::new();
            (
                Joiner::New(NewUser {
                    id,
                    email,
                    name: name.as_str().to_owned(),
                    password_hash: Some(hash),
                }),
                id,
            )
        }
    };
    let issued = issue(state, user_id, tenant.id, inv.role)?;
    let ev = event(
        meta,
        format!("user:{user_id}"),
        tenant.id,
        Action::InvitationAccept,
        "invitations",
        Some(inv.id.to_string()),
        "success",
        json!({"role": inv.role}),
    );
    state
        .catalog
        .accept_invitation(inv.id, joiner, issued.session, vec![ev])
        .await?;
    state
        .catalog
        .set_user_last_tenant(user_id, tenant.id)
        .await?;
    state.relay_now().await;
    Ok((tenant, issued.tokens))
}

/// Creates an API key acting with `role` (at most the caller's own).
pub async fn create_api_key(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<ApiKeysWrite>,
    name: &str,
    role: &str,
    expires_at: Option<&str>,
) -> Result<(ApiKey, String)> {
    let mut v = tenantd_core::error::Validator::default();
    let name = v.check(DisplayName::parse(name, "name"));
    let role = v.check(Role::parse(role, "role"));
    let expires: Option<DateTime<Utc>> = match expires_at {
        None => None,
        Some(s) => match time::parse(s) {
            Some(t) if t > time::now() => Some(t),
            Some(_) => {
                v.push(tenantd_core::FieldError::new(
                    "expires_at",
                    "must be in the future",
                ));
                None
            }
            None => {
                v.push(tenantd_core::FieldError::new(
                    "expires_at",
                    "must be an RFC 3339 time",
                ));
                None
            }
        },
    };
    v.finish()?;
    let (Some(name), Some(role)) = (name, role) else {
        return Err(Error::Internal("validator".into()));
    };
    if ctx.crossing {
        return Err(Error::Forbidden("a platform admin acting in another tenant cannot make its API keys: a key acts for a member".into()));
    }
    if role == Role::Worker && ctx.tenant.kind != tenantd_core::tenant::TenantType::Platform {
        return Err(Error::invalid(
            "role",
            "worker keys are made in the platform tenant (they lease every tenant's runs)",
        ));
    }
    if !role.within(ctx.role) || !ctx.role.may_assign(role) {
        return Err(Error::Forbidden(format!(
            "the {} role cannot make a key with the {role} role",
            ctx.role
        )));
    }
    let (key, prefix) = api_key()?;
    let new = NewApiKey {
        id: ApiKeyId::new(),
        tenant_id: ctx.tenant.id,
        name: name.as_str().to_owned(),
        role,
        prefix,
        key_hash: hash_secret(&key),
        created_by: ctx.caller.actor.accountable_user(),
        expires_at: expires,
    };
    let ev = ctx.event(
        Action::ApiKeyCreate,
        "api_keys",
        Some(new.id.to_string()),
        json!({"name": new.name, "role": role, "prefix": new.prefix}),
    );
    let out = state.catalog.create_api_key(new, vec![ev]).await?;
    state.relay_now().await;
    Ok((out, key))
}

/// The tenant's API keys (never the secrets).
pub async fn list_api_keys(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<ApiKeysRead>,
) -> Result<Vec<ApiKey>> {
    state.catalog.list_api_keys(ctx.tenant.id).await
}

/// Revokes an API key at once.
pub async fn revoke_api_key(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<ApiKeysWrite>,
    id: ApiKeyId,
) -> Result<()> {
    let ev = ctx.event(
        Action::ApiKeyRevoke,
        "api_keys",
        Some(id.to_string()),
        json!({}),
    );
    state
        .catalog
        .revoke_api_key(ctx.tenant.id, id, vec![ev])
        .await?;
    state.relay_now().await;
    Ok(())
}
