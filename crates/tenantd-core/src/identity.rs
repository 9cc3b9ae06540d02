use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::access::Role;
use crate::error::FieldError;
use crate::ids::{ApiKeyId, InvitationId, SessionId, TenantId, UserId};

/// An email address, trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parses an address; the error names `field`.
    pub fn parse(s: &str, field: &str) -> Result<Self, FieldError> {
        let e = s.trim().to_lowercase();
        let bad = || FieldError::new(field, "must be an email address");
        if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = e.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || local.len() > 64
            || domain.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(bad());
        }
        Ok(Self(e))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password as the client sent it: 8 to 1024 characters. Never logged, never stored.
pub struct Password(String);

impl Password {
    /// Parses a password; the error names `field`.
    pub fn parse(s: &str, field: &str) -> Result<Self, FieldError> {
        let n = s.chars().count();
        if n < 8 {
            return Err(FieldError::new(field, "at least 8 characters"));
        }
        if n > 1024 {
            return Err(FieldError::new(field, "at most 1024 characters"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The secret, for the hasher only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A user. `password_hash` is an argon2id PHC string, or `None` for a user who has not
/// set a password yet.
#[derive(Debug, Clone)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// Its email.
    pub email: String,
    /// Its display name.
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: Option<String>,
    /// The tenant last logged into.
    pub last_tenant_id: Option<TenantId>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A user about to be created.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Its id.
    pub id: UserId,
    /// Its email.
    pub email: Email,
    /// Its name.
    pub name: String,
    /// argon2id PHC string.
    pub password_hash: Option<String>,
}

/// A user's membership in a tenant.
#[derive(Debug, Clone, Serialize)]
pub struct Membership {
    /// The tenant.
    pub tenant_id: TenantId,
    /// The user.
    pub user_id: UserId,
    /// The role in that tenant.
    pub role: Role,
    /// The user's email.
    pub email: String,
    /// The user's name.
    pub name: String,
    /// When the user joined.
    pub created_at: DateTime<Utc>,
}

/// An invitation. The token itself is never stored, only its hash.
#[derive(Debug, Clone, Serialize)]
pub struct Invitation {
    /// Its id.
    pub id: InvitationId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Who is invited.
    pub email: String,
    /// The role they get.
    pub role: Role,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: &'static str,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Who invited.
    pub created_by: Option<UserId>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// An invitation about to be created.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    /// Its id.
    pub id: InvitationId,
    /// The tenant.
    pub tenant_id: TenantId,
    /// Who is invited.
    pub email: Email,
    /// The role.
    pub role: Role,
    /// sha256 of the token, hex.
    pub token_hash: String,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Who invited.
    pub created_by: Option<UserId>,
}

/// An API key. The key itself is never stored, only its hash.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// The tenant it acts in.
    pub tenant_id: TenantId,
    /// Its name.
    pub name: String,
    /// The role it acts with.
    pub role: Role,
    /// The visible start of the key.
    pub prefix: String,
    /// Who made it.
    pub created_by: Option<UserId>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revocation time, if revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Whether the key may authenticate at `now`.
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| e > now)
    }
}

/// A login session (one refresh-token family).
#[derive(Debug, Clone)]
pub struct Session {
    /// Its id: the `sid` claim of its access tokens.
    pub id: SessionId,
    /// The user.
    pub user_id: UserId,
    /// The tenant it is bound to.
    pub tenant_id: TenantId,
    /// When it was revoked (logout, removal): every token of the session stops working.
    pub revoked_at: Option<DateTime<Utc>>,
    /// After a spent refresh token of generation `g` was presented again: access tokens of
    /// generations above `g` (minted from the stolen token onwards) stop working.
    pub revoked_after_gen: Option<i64>,
}

/// A refresh token about to be stored.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    /// sha256 of the token, hex.
    pub token_hash: String,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone)]
pub enum RefreshOutcome {
    /// The token was live and is now spent; the new one is stored in the same session at
    /// the next generation.
    Rotated {
        /// The session.
        session: Session,
        /// The new token's generation (the `gen` claim of the access token that goes with it).
        generation: i64,
    },
    /// The token was already spent: the whole family can no longer refresh (its access
    /// tokens run out on their own).
    Reused(Session),
    /// Unknown, expired or revoked.
    Invalid,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse(" A@B.Test ", "email").unwrap().as_str(),
            "a@b.test"
        );
        for bad in ["", "a", "a@", "@b.c", "a@b", "a b@c.d", "a@b..c", "a@@b.c"] {
            assert!(Email::parse(bad, "email").is_err(), "{bad}");
        }
    }

    #[test]
    fn password_debug_hides_the_secret() {
        let p = Password::parse("hunter2-hunter2", "password").unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
