//! Taking and giving back quota units: the statements catalog and cells share.

use tenantd_core::ids::TenantId;
use tenantd_core::{Error, Result};

use crate::db::{Conn, Int, q};
use crate::sql::quotas;

/// Takes `n` units of a quota if they fit under `limit`, with one conditional update on the
/// counter row, so concurrent takers can never overshoot. Full → `QuotaExceeded`.
pub(crate) async fn take(
    tx: &mut impl Conn,
    tenant: TenantId,
    quota: &str,
    limit: Option<i64>,
    n: i64,
) -> Result<()> {
    let t = tenant.to_string();
    tx.execute(q(quotas::ENSURE).bind(&t).bind(quota)).await?;
    let done = tx
        .execute(q(quotas::TAKE).bind(n).bind(&t).bind(quota).bind(limit))
        .await?;
    if done == 1 {
        return Ok(());
    }
    let Int(current) = tx.fetch_one(q(quotas::USED).bind(&t).bind(quota)).await?;
    Err(Error::QuotaExceeded {
        resource: quota.to_owned(),
        current,
        limit: limit.unwrap_or(0),
        requested: n,
    })
}

/// Gives back `n` units of a quota (never below zero).
pub(crate) async fn release(
    tx: &mut impl Conn,
    tenant: TenantId,
    quota: &str,
    n: i64,
) -> Result<()> {
    tx.execute(
        q(quotas::RELEASE)
            .bind(n)
            .bind(tenant.to_string())
            .bind(quota),
    )
    .await?;
    Ok(())
}
