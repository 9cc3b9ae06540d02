//! API keys, sessions, refresh-token families and password changes.

use async_trait::async_trait;
use tenantd_core::access::Role;
use tenantd_core::audit::AuditDraft;
use tenantd_core::identity::{ApiKey, NewRefreshToken, RefreshOutcome, Session};
use tenantd_core::ids::{ApiKeyId, SessionId, TenantId, UserId};
use tenantd_core::store::{CredentialStore, NewApiKey, NewSession};
use tenantd_core::tenant::Tenant;
use tenantd_core::{Error, Result, time};

use super::{Catalog, insert_outbox};
use crate::db::{Conn, Db, Text, Tx, q};
use crate::rows::{ApiKeyRow, RefreshRow, SessionContextRow, SessionRow, fmt, role, ts, uuid};
use crate::sql::credentials as sql;

pub(crate) async fn insert_session(tx: &mut impl Conn, s: &NewSession) -> Result<()> {
    tx.execute(
        q(sql::INSERT_SESSION)
            .bind(s.id.to_string())
            .bind(s.user_id.to_string())
            .bind(s.tenant_id.to_string())
            .bind(fmt(time::now())),
    )
    .await?;
    insert_refresh(tx, s.id, &s.refresh, 0).await
}

async fn insert_refresh(
    tx: &mut impl Conn,
    session: SessionId,
    r: &NewRefreshToken,
    generation: i64,
) -> Result<()> {
    tx.execute(
        q(sql::INSERT_REFRESH)
            .bind(&r.token_hash)
            .bind(session.to_string())
            .bind(fmt(time::now()))
            .bind(fmt(r.expires_at))
            .bind(generation),
    )
    .await?;
    Ok(())
}

#[async_trait]
impl<D: Db> CredentialStore for Catalog<D> {
    async fn create_api_key(&self, k: NewApiKey, outbox: Vec<AuditDraft>) -> Result<ApiKey> {
        let mut tx = self.db.begin().await?;
        tx.execute(
            q(sql::INSERT_API_KEY)
                .bind(k.id.to_string())
                .bind(k.tenant_id.to_string())
                .bind(&k.name)
                .bind(k.role.as_str())
                .bind(&k.prefix)
                .bind(&k.key_hash)
                .bind(k.created_by.map(|u| u.to_string()))
                .bind(fmt(time::now()))
                .bind(k.expires_at.map(fmt)),
        )
        .await?;
        insert_outbox(&mut tx, &outbox).await?;
        let row: ApiKeyRow = tx
            .fetch_one(q(sql::FIND_API_KEY).bind(k.id.to_string()))
            .await?;
        let key = row.try_into()?;
        tx.commit().await?;
        Ok(key)
    }

    async fn list_api_keys(&self, tenant: TenantId) -> Result<Vec<ApiKey>> {
        let rows: Vec<ApiKeyRow> = self
            .db
            .reader()?
            .fetch_all(q(sql::LIST_API_KEYS).bind(tenant.to_string()))
            .await?;
        rows.into_iter().map(ApiKey::try_from).collect()
    }

    async fn revoke_api_key(
        &self,
        tenant: TenantId,
        id: ApiKeyId,
        outbox: Vec<AuditDraft>,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        let n = tx
            .execute(
                q(sql::REVOKE_API_KEY)
                    .bind(fmt(time::now()))
                    .bind(id.to_string())
                    .bind(tenant.to_string()),
            )
            .await?;
        if n == 0 {
            return Err(Error::NotFound);
        }
        insert_outbox(&mut tx, &outbox).await?;
        tx.commit().await
    }

    async fn find_api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        let row: Option<ApiKeyRow> = self
            .db
            .reader()?
            .fetch_optional(q(sql::FIND_API_KEY_BY_HASH).bind(key_hash))
            .await?;
        row.map(ApiKey::try_from).transpose()
    }

    async fn create_session(&self, session: NewSession, outbox: Vec<AuditDraft>) -> Result<()> {
        let mut tx = self.db.begin().await?;
        insert_session(&mut tx, &session).await?;
        insert_outbox(&mut tx, &outbox).await?;
        tx.commit().await
    }

    async fn rotate_refresh(
        &self,
        token_hash: &str,
        next: NewRefreshToken,
    ) -> Result<RefreshOutcome> {
        let mut tx = self.db.begin().await?;
        let now = time::now();
        tx.execute(q(sql::LOCK_REFRESH).bind(token_hash)).await?;
        let row: Option<RefreshRow> = tx
            .fetch_optional(q(sql::FIND_REFRESH).bind(token_hash))
            .await?;
        let Some(row) = row else {
            return Ok(RefreshOutcome::Invalid);
        };
        let generation = row.generation;
        let (spent, family_revoked) = (row.spent_at.is_some(), row.refresh_revoked_at.is_some());
        let expires_at = ts(&row.expires_at, "expires_at")?;
        let session = Session::try_from(row.session)?;
        if session.revoked_at.is_some() || family_revoked || expires_at <= now {
            return Ok(RefreshOutcome::Invalid);
        }
        if spent {
            // A spent token presented again: someone holds a copy. The family can no longer
            // refresh, and access tokens minted from this token on stop working.
            tx.execute(
                q(sql::REVOKE_FAMILY)
                    .bind(fmt(now))
                    .bind(generation)
                    .bind(session.id.to_string()),
            )
            .await?;
            tx.commit().await?;
            return Ok(RefreshOutcome::Reused(session));
        }
        let n = tx
            .execute(q(sql::SPEND_REFRESH).bind(fmt(now)).bind(token_hash))
            .await?;
        if n != 1 {
            return Ok(RefreshOutcome::Invalid);
        }
        insert_refresh(&mut tx, session.id, &next, generation + 1).await?;
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated {
            session,
            generation: generation + 1,
        })
    }

    async fn find_session(&self, id: SessionId) -> Result<Option<Session>> {
        let row: Option<SessionRow> = self
            .db
            .reader()?
            .fetch_optional(q(sql::FIND_SESSION).bind(id.to_string()))
            .await?;
        row.map(Session::try_from).transpose()
    }

    async fn find_session_context(&self, id: SessionId) -> Result<Option<(Session, Role, Tenant)>> {
        let row: Option<SessionContextRow> = self
            .db
            .reader()?
            .fetch_optional(q(sql::FIND_SESSION_CONTEXT).bind(id.to_string()))
            .await?;
        let Some(r) = row else { return Ok(None) };
        Ok(Some((
            r.session.try_into()?,
            role(&r.role, "member_role")?,
            r.tenant.try_into()?,
        )))
    }

    async fn find_refresh_session(&self, token_hash: &str) -> Result<Option<Session>> {
        let row: Option<SessionRow> = self
            .db
            .reader()?
            .fetch_optional(q(sql::FIND_REFRESH_SESSION).bind(token_hash))
            .await?;
        row.map(Session::try_from).transpose()
    }

    async fn revoke_session(&self, id: SessionId, outbox: Vec<AuditDraft>) -> Result<()> {
        let mut tx = self.db.begin().await?;
        tx.execute(
            q(sql::REVOKE_SESSION)
                .bind(fmt(time::now()))
                .bind(id.to_string()),
        )
        .await?;
        insert_outbox(&mut tx, &outbox).await?;
        tx.commit().await
    }

    async fn change_password(
        &self,
        user: UserId,
        password_hash: &str,
        keep: SessionId,
        outbox: Vec<AuditDraft>,
    ) -> Result<Vec<TenantId>> {
        let mut tx = self.db.begin().await?;
        let (u, k) = (user.to_string(), keep.to_string());
        let n = tx
            .execute(q(sql::SET_PASSWORD).bind(password_hash).bind(&u))
            .await?;
        if n == 0 {
            return Err(Error::NotFound);
        }
        let tenants: Vec<Text> = tx
            .fetch_all(q(sql::TENANTS_OF_OTHER_SESSIONS).bind(&u).bind(&k))
            .await?;
        let tenants = tenants
            .iter()
            .map(|Text(t)| uuid(t, "tenant_id").map(TenantId))
            .collect::<Result<Vec<_>>>()?;
        tx.execute(
            q(sql::REVOKE_OTHER_SESSIONS)
                .bind(fmt(time::now()))
                .bind(&u)
                .bind(&k),
        )
        .await?;
        insert_outbox(&mut tx, &outbox).await?;
        tx.commit().await?;
        Ok(tenants)
    }
}
