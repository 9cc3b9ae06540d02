//! Token-signing keys and the audit outbox: the two capabilities whose changes no credential
//! cache has to hear about.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tenantd_core::Result;
use tenantd_core::audit::AuditDraft;
use tenantd_core::ids::EventId;
use tenantd_core::store::{OutboxStore, SigningKeyRecord, SigningKeyStore};

use super::Catalog;
use crate::db::{Conn, Db, Tx, q};
use crate::rows::{OutboxRow, SigningKeyRow, fmt};
use crate::sql::{audit, credentials};

#[async_trait]
impl<D: Db> SigningKeyStore for Catalog<D> {
    async fn list_signing_keys(&self) -> Result<Vec<SigningKeyRecord>> {
        let rows: Vec<SigningKeyRow> = self
            .db
            .reader()?
            .fetch_all(q(credentials::LIST_SIGNING_KEYS))
            .await?;
        rows.into_iter().map(SigningKeyRecord::try_from).collect()
    }

    async fn insert_signing_key(
        &self,
        key: SigningKeyRecord,
        retire_others_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let mut tx = self.db.begin().await?;
        if let Some(at) = retire_others_at {
            tx.execute(q(credentials::RETIRE_SIGNING_KEYS).bind(fmt(at)))
                .await?;
        }
        tx.execute(
            q(credentials::INSERT_SIGNING_KEY)
                .bind(&key.kid)
                .bind(&key.private_key)
                .bind(&key.public_key)
                .bind(fmt(key.created_at)),
        )
        .await?;
        tx.commit().await
    }

    async fn reseal_signing_key(&self, kid: &str, old: &[u8], new: &[u8]) -> Result<bool> {
        let n = self
            .db
            .writer()?
            .execute(
                q(credentials::RESEAL_SIGNING_KEY)
                    .bind(new)
                    .bind(kid)
                    .bind(old),
            )
            .await?;
        Ok(n == 1)
    }
}

#[async_trait]
impl<D: Db> OutboxStore for Catalog<D> {
    async fn pending_outbox(&self, limit: u32) -> Result<Vec<AuditDraft>> {
        let rows: Vec<OutboxRow> = self
            .db
            .reader()?
            .fetch_all(q(audit::PENDING_OUTBOX).bind(i64::from(limit)))
            .await?;
        rows.into_iter().map(AuditDraft::try_from).collect()
    }

    async fn delete_outbox(&self, ids: &[EventId]) -> Result<()> {
        let mut tx = self.db.begin().await?;
        for id in ids {
            tx.execute(q(audit::DELETE_OUTBOX).bind(id.to_string()))
                .await?;
        }
        tx.commit().await
    }
}
