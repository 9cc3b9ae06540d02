//! Taking and giving back quota units: the statements catalog and cells share, and the
//! threshold alerts a take may fire.

use serde_json::json;
use tenantd_core::audit::{Action, AuditDraft};
use tenantd_core::ids::{EventId, TenantId};
use tenantd_core::{Error, Result, time};

use crate::db::{Conn, Int, q};
use crate::sql::{events, quotas};

/// The thresholds that alert, in percent of a limit.
const THRESHOLDS: [i64; 2] = [80, 100];

/// Takes `n` units of a quota if they fit under `limit`, with one conditional update on the
/// counter row, so concurrent takers can never overshoot. Full → `QuotaExceeded`.
///
/// Returns the `quota.threshold` audit events this take fired — at most one per quota,
/// threshold and month (UTC), whatever races or deletions and re-creations happen: the take
/// that crosses a threshold records it in `quota_alerts` in its own transaction, and only the
/// first record of a (quota, threshold, month) counts. The caller appends them with its own
/// change, so they commit together.
pub(crate) async fn take(
    tx: &mut impl Conn,
    tenant: TenantId,
    quota: &str,
    limit: Option<i64>,
    n: i64,
) -> Result<Vec<AuditDraft>> {
    let t = tenant.to_string();
    tx.execute(q(quotas::ENSURE).bind(&t).bind(quota)).await?;
    let taken: Option<Int> = tx
        .fetch_optional(q(quotas::TAKE).bind(n).bind(&t).bind(quota).bind(limit))
        .await?;
    let Some(Int(used)) = taken else {
        let Int(current) = tx.fetch_one(q(quotas::USED).bind(&t).bind(quota)).await?;
        return Err(Error::QuotaExceeded {
            resource: quota.to_owned(),
            current,
            limit: limit.unwrap_or(0),
            requested: n,
        });
    };
    alerts(tx, tenant, quota, limit, used, n).await
}

/// Adds `n` to a counter with no limit (tokens already spent are counted whatever the
/// budget), returning the new value and the `quota.threshold` events (named `alert_as`) the
/// addition fired against `limit`.
pub(crate) async fn count(
    tx: &mut impl Conn,
    tenant: TenantId,
    counter: &str,
    alert_as: &str,
    limit: Option<i64>,
    n: i64,
) -> Result<(i64, Vec<AuditDraft>)> {
    let t = tenant.to_string();
    tx.execute(q(quotas::ENSURE).bind(&t).bind(counter)).await?;
    let Int(used) = tx
        .fetch_one(
            q(quotas::TAKE)
                .bind(n)
                .bind(&t)
                .bind(counter)
                .bind(None::<i64>),
        )
        .await?;
    let fired = alerts(tx, tenant, alert_as, limit, used, n).await?;
    Ok((used, fired))
}

/// The `quota.threshold` events a move of a counter from `used - n` to `used` fires.
async fn alerts(
    tx: &mut impl Conn,
    tenant: TenantId,
    quota: &str,
    limit: Option<i64>,
    used: i64,
    n: i64,
) -> Result<Vec<AuditDraft>> {
    let Some(limit) = limit.filter(|l| *l > 0) else {
        return Ok(Vec::new());
    };
    let t = tenant.to_string();
    let period = time::now().format("%Y-%m").to_string();
    let mut fired = Vec::new();
    for threshold in THRESHOLDS {
        // The smallest usage at or over the threshold.
        let mark = (limit * threshold + 99) / 100;
        if used - n < mark && mark <= used {
            let first = tx
                .execute(
                    q(events::RECORD_ALERT)
                        .bind(&t)
                        .bind(quota)
                        .bind(threshold)
                        .bind(period.as_str()),
                )
                .await?;
            if first == 1 {
                fired.push(alert(tenant, quota, threshold, used, limit, &period));
            }
        }
    }
    Ok(fired)
}

fn alert(
    tenant: TenantId,
    quota: &str,
    threshold: i64,
    used: i64,
    limit: i64,
    period: &str,
) -> AuditDraft {
    AuditDraft {
        id: EventId::new(),
        tenant_id: tenant,
        actor: "system".into(),
        action: Action::QuotaThreshold.text().into_owned(),
        resource: "quotas".into(),
        resource_id: Some(quota.to_owned()),
        outcome: "success".into(),
        request_id: None,
        ip: None,
        at: time::format(time::now()),
        details: json!({
            "quota": quota,
            "threshold": threshold,
            "used": used,
            "limit": limit,
            "period": period,
        }),
    }
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
