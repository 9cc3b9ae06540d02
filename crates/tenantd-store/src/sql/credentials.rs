//! API keys, sessions, refresh tokens and token-signing keys (catalog).

/// A new API key.
pub const INSERT_API_KEY: &str = "
INSERT INTO api_keys (id, tenant_id, name, role, prefix, key_hash, created_by, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// One API key by id.
pub const FIND_API_KEY: &str = "
SELECT id, tenant_id, name, role, prefix, created_by, created_at, expires_at, revoked_at
  FROM api_keys
 WHERE id = $1";

/// One API key by the hash of its secret.
pub const FIND_API_KEY_BY_HASH: &str = "
SELECT id, tenant_id, name, role, prefix, created_by, created_at, expires_at, revoked_at
  FROM api_keys
 WHERE key_hash = $1";

/// A tenant's API keys, revoked ones included.
pub const LIST_API_KEYS: &str = "
SELECT id, tenant_id, name, role, prefix, created_by, created_at, expires_at, revoked_at
  FROM api_keys
 WHERE tenant_id = $1
 ORDER BY id";

/// Revokes a live key of the tenant ($1 now).
pub const REVOKE_API_KEY: &str = "
UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL";

/// Revokes the live keys a user made in a tenant ($1 now): they die with the membership.
pub const REVOKE_API_KEYS_OF_MEMBER: &str = "
UPDATE api_keys
   SET revoked_at = $1
 WHERE tenant_id = $2 AND created_by = $3 AND revoked_at IS NULL";

/// A new session.
pub const INSERT_SESSION: &str = "
INSERT INTO sessions (id, user_id, tenant_id, created_at) VALUES ($1, $2, $3, $4)";

/// One session.
pub const FIND_SESSION: &str = "
SELECT id, user_id, tenant_id, revoked_at, revoked_after_gen FROM sessions WHERE id = $1";

/// What an access token's request needs, in one read: the session, the member's live role and
/// the tenant (no row when any of them is gone).
pub const FIND_SESSION_CONTEXT: &str = "
SELECT s.id AS session_id, s.user_id, s.tenant_id, s.revoked_at, s.revoked_after_gen,
       m.role AS member_role,
       t.id, t.slug, t.name, t.type, t.plan, t.status, t.status_reason, t.region, t.cell,
       t.settings, t.branding, t.created_at, t.updated_at, t.deleted_at, t.purge_after
  FROM sessions s
  JOIN memberships m ON m.tenant_id = s.tenant_id AND m.user_id = s.user_id
  JOIN tenants t ON t.id = s.tenant_id
 WHERE s.id = $1";

/// The session of a refresh token, without spending it.
pub const FIND_REFRESH_SESSION: &str = "
SELECT s.id, s.user_id, s.tenant_id, s.revoked_at, s.revoked_after_gen
  FROM refresh_tokens r
  JOIN sessions s ON s.id = r.session_id
 WHERE r.token_hash = $1";

/// Revokes a live session ($1 now).
pub const REVOKE_SESSION: &str = "
UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";

/// Revokes a member's live sessions in a tenant ($1 now).
pub const REVOKE_SESSIONS_OF_MEMBER: &str = "
UPDATE sessions
   SET revoked_at = $1
 WHERE tenant_id = $2 AND user_id = $3 AND revoked_at IS NULL";

/// The tenants of a user's live sessions other than $2.
pub const TENANTS_OF_OTHER_SESSIONS: &str = "
SELECT DISTINCT tenant_id AS n
  FROM sessions
 WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL";

/// Revokes a user's live sessions other than $3 ($1 now).
pub const REVOKE_OTHER_SESSIONS: &str = "
UPDATE sessions
   SET revoked_at = $1
 WHERE user_id = $2 AND id <> $3 AND revoked_at IS NULL";

/// A user's password hash.
pub const SET_PASSWORD: &str = "
UPDATE users SET password_hash = $1 WHERE id = $2";

/// A new refresh token of a session's family.
pub const INSERT_REFRESH: &str = "
INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at, generation)
VALUES ($1, $2, $3, $4, $5)";

/// Locks a refresh token's row (PostgreSQL), so two presentations of one token queue and the
/// second sees it spent.
pub const LOCK_REFRESH: &str = "
UPDATE refresh_tokens SET spent_at = spent_at WHERE token_hash = $1";

/// A refresh token with its session.
pub const FIND_REFRESH: &str = "
SELECT r.session_id, r.expires_at, r.spent_at, r.generation,
       s.user_id, s.tenant_id, s.revoked_at, s.refresh_revoked_at, s.revoked_after_gen
  FROM refresh_tokens r
  JOIN sessions s ON s.id = r.session_id
 WHERE r.token_hash = $1";

/// A spent token presented again: the family stops refreshing ($1 now), and access tokens
/// from generation $2 on stop working.
pub const REVOKE_FAMILY: &str = "
UPDATE sessions
   SET refresh_revoked_at = $1,
       revoked_after_gen = CASE WHEN revoked_after_gen IS NULL OR revoked_after_gen > $2
                                THEN $2 ELSE revoked_after_gen END
 WHERE id = $3";

/// Spends an unspent refresh token ($1 now).
pub const SPEND_REFRESH: &str = "
UPDATE refresh_tokens SET spent_at = $1 WHERE token_hash = $2 AND spent_at IS NULL";

/// Every signing key, oldest first.
pub const LIST_SIGNING_KEYS: &str = "
SELECT kid, private_key, public_key, created_at, verify_until
  FROM signing_keys
 ORDER BY created_at";

/// Every live key stops verifying at $1 (a rotation).
pub const RETIRE_SIGNING_KEYS: &str = "
UPDATE signing_keys SET verify_until = $1 WHERE verify_until IS NULL";

/// A new signing key (its private key sealed).
pub const INSERT_SIGNING_KEY: &str = "
INSERT INTO signing_keys (kid, private_key, public_key, created_at) VALUES ($1, $2, $3, $4)";

/// Replaces a key's stored private key $3 by $1; no row changed when it is no longer $3.
pub const RESEAL_SIGNING_KEY: &str = "
UPDATE signing_keys SET private_key = $1 WHERE kid = $2 AND private_key = $3";
