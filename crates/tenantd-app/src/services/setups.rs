//! One-time password links for accounts that have none: the members an import created
//! without credentials set their first password through one (`POST /v1/auth/set-password`),
//! then sign in as anyone does. Only the token's sha256 is stored; a link works once, for
//! [`LINK_DAYS`] days, and a new link for an account ends its older ones.

use serde::Serialize;
use serde_json::json;
use tenantd_core::audit::Action;
use tenantd_core::identity::Password;
use tenantd_core::ids::TenantId;
use tenantd_core::{Error, Result, time};

use crate::auth::secrets::{hash_secret, invitation_token};
use crate::context::{RequestMeta, event};
use crate::state::AppState;

/// How long a password link works.
pub const LINK_DAYS: i64 = 7;

/// A one-time password link, its token shown once.
#[derive(Debug, Clone, Serialize)]
pub struct PasswordLink {
    /// The account's email.
    pub email: String,
    /// The token for `POST /v1/auth/set-password`.
    pub token: String,
    /// When it stops working.
    pub expires_at: String,
}

/// A fresh link for every member of `tenant` who has no password; their older links end.
pub async fn issue_links(state: &AppState, tenant: TenantId) -> Result<Vec<PasswordLink>> {
    let expires = time::now() + chrono::Duration::days(LINK_DAYS);
    let mut out = Vec::new();
    for m in state.catalog.list_members(tenant).await? {
        let Some(u) = state.catalog.find_user(m.user_id).await? else {
            continue;
        };
        if u.password_hash.is_some() {
            continue;
        }
        let token = invitation_token()?;
        state
            .catalog
            .put_password_setup(tenant, u.id, &hash_secret(&token), expires)
            .await?;
        out.push(PasswordLink {
            email: u.email,
            token,
            expires_at: time::format(expires),
        });
    }
    Ok(out)
}

/// Sets an account's first password through its link. An unknown, used or expired token, or
/// an account that has a password by now, is `NotFound`.
pub async fn set_password(
    state: &AppState,
    meta: &RequestMeta,
    token: &str,
    password: &str,
) -> Result<()> {
    if token.is_empty() || token.len() > 512 {
        return Err(Error::NotFound);
    }
    crate::services::auth::throttle(state, meta, None)?;
    let password = Password::parse(password, "password")?;
    let hash = state.passwords.hash(&password).await?;
    let meta = meta.clone();
    state
        .catalog
        .use_password_setup(
            &hash_secret(token),
            &hash,
            Box::new(move |user, tenant| {
                vec![event(
                    &meta,
                    format!("user:{user}"),
                    tenant,
                    Action::PasswordSet,
                    "users",
                    Some(user.to_string()),
                    "success",
                    json!({}),
                )]
            }),
        )
        .await?;
    state.relay_now().await;
    Ok(())
}
