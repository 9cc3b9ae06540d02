//! Users, memberships and invitations (catalog).

/// A new user.
pub const INSERT_USER: &str = "
INSERT INTO users (id, email, name, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)";

/// One user by id.
pub const FIND_USER: &str = "
SELECT id, email, name, password_hash, last_tenant_id, created_at FROM users WHERE id = $1";

/// One user by (normalised) email.
pub const FIND_USER_BY_EMAIL: &str = "
SELECT id, email, name, password_hash, last_tenant_id, created_at FROM users WHERE email = $1";

/// The tenant a user last signed in to.
pub const SET_LAST_TENANT: &str = "
UPDATE users SET last_tenant_id = $1 WHERE id = $2";

/// A new membership.
pub const INSERT_MEMBERSHIP: &str = "
INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)";

/// One membership, with the user's email and name.
pub const FIND_MEMBERSHIP: &str = "
SELECT m.tenant_id, m.user_id, m.role, m.created_at, u.email, u.name
  FROM memberships m
  JOIN users u ON u.id = m.user_id
 WHERE m.tenant_id = $1 AND m.user_id = $2";

/// A user's memberships, oldest first.
pub const LIST_OF_USER: &str = "
SELECT m.tenant_id, m.user_id, m.role, m.created_at, u.email, u.name
  FROM memberships m
  JOIN users u ON u.id = m.user_id
 WHERE m.user_id = $1
 ORDER BY m.created_at, m.tenant_id";

/// A tenant's members, oldest first.
pub const LIST_OF_TENANT: &str = "
SELECT m.tenant_id, m.user_id, m.role, m.created_at, u.email, u.name
  FROM memberships m
  JOIN users u ON u.id = m.user_id
 WHERE m.tenant_id = $1
 ORDER BY m.created_at, m.user_id";

/// A member's role.
pub const ROLE: &str = "
SELECT role AS n FROM memberships WHERE tenant_id = $1 AND user_id = $2";

/// How many owners a tenant has.
pub const OWNER_COUNT: &str = "
SELECT COUNT(*) AS n FROM memberships WHERE tenant_id = $1 AND role = 'owner'";

/// Changes a role.
pub const SET_ROLE: &str = "
UPDATE memberships SET role = $1 WHERE tenant_id = $2 AND user_id = $3";

/// Removes a membership.
pub const DELETE_MEMBERSHIP: &str = "
DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2";

/// Whether the email $2 is a member of tenant $1 already.
pub const MEMBERS_WITH_EMAIL: &str = "
SELECT COUNT(*) AS n
  FROM memberships m
  JOIN users u ON u.id = m.user_id
 WHERE m.tenant_id = $1 AND u.email = $2";

/// The `users` quota's usage: members plus pending, unexpired invitations ($2 now).
pub const USERS_USED: &str = "
SELECT (SELECT COUNT(*) FROM memberships WHERE tenant_id = $1)
     + (SELECT COUNT(*) FROM invitations
         WHERE tenant_id = $1 AND released = 0 AND accepted_at IS NULL
           AND revoked_at IS NULL AND expires_at > $2) AS n";

/// A new invitation.
pub const INSERT_INVITATION: &str = "
INSERT INTO invitations (id, tenant_id, email, role, token_hash, expires_at, created_by, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// One invitation by id.
pub const FIND_INVITATION: &str = "
SELECT id, tenant_id, email, role, expires_at, created_by, created_at, accepted_at, revoked_at
  FROM invitations
 WHERE id = $1";

/// A tenant's invitations, newest first.
pub const LIST_INVITATIONS: &str = "
SELECT id, tenant_id, email, role, expires_at, created_by, created_at, accepted_at, revoked_at
  FROM invitations
 WHERE tenant_id = $1
 ORDER BY created_at DESC, id DESC";

/// A pending, unexpired invitation by token hash ($2 now).
pub const FIND_PENDING_BY_TOKEN: &str = "
SELECT id, tenant_id, email, role, expires_at, created_by, created_at, accepted_at, revoked_at
  FROM invitations
 WHERE token_hash = $1 AND released = 0 AND accepted_at IS NULL AND revoked_at IS NULL
   AND expires_at > $2";

/// Pending invitations of the email $2 that still hold a slot.
pub const PENDING_FOR_EMAIL: &str = "
SELECT COUNT(*) AS n
  FROM invitations
 WHERE tenant_id = $1 AND email = $2 AND released = 0 AND accepted_at IS NULL
   AND revoked_at IS NULL";

/// Releases the slots of expired pending invitations ($2 now); the rows changed is the count.
pub const RELEASE_EXPIRED: &str = "
UPDATE invitations
   SET released = 1
 WHERE tenant_id = $1 AND released = 0 AND accepted_at IS NULL AND revoked_at IS NULL
   AND expires_at <= $2";

/// Whether a pending invitation still holds its slot (`released` 0) — a row when it is pending.
pub const PENDING_RELEASED: &str = "
SELECT released AS n
  FROM invitations
 WHERE id = $1 AND tenant_id = $2 AND accepted_at IS NULL AND revoked_at IS NULL";

/// Revokes an invitation ($1 now) and marks its slot released.
pub const REVOKE_INVITATION: &str = "
UPDATE invitations SET revoked_at = $1, released = 1 WHERE id = $2";

/// Accepts a pending invitation exactly once ($1 now); its tenant and role when it did.
pub const ACCEPT_INVITATION: &str = "
UPDATE invitations
   SET accepted_at = $1, released = 1
 WHERE id = $2 AND released = 0 AND accepted_at IS NULL AND revoked_at IS NULL
   AND expires_at > $1
RETURNING tenant_id, role";

/// Ends every unused password link of account $1.
pub const END_PASSWORD_SETUPS: &str = "
UPDATE password_setups SET used_at = $2 WHERE user_id = $1 AND used_at IS NULL";

/// A password link: $1 hash, $2 account, $3 tenant, $4 expiry.
pub const INSERT_PASSWORD_SETUP: &str = "
INSERT INTO password_setups (token_hash, user_id, tenant_id, expires_at) VALUES ($1, $2, $3, $4)";

/// Uses link $1 once, if unused and not expired at $2; its account and tenant.
pub const USE_PASSWORD_SETUP: &str = "
UPDATE password_setups SET used_at = $2
 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
RETURNING user_id, tenant_id";

/// Sets account $1's password to $2 if it has none.
pub const SET_FIRST_PASSWORD: &str = "
UPDATE users SET password_hash = $2 WHERE id = $1 AND password_hash IS NULL";
