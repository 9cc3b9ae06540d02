//! Run rows.

use tenantd_core::Result;
use tenantd_core::ids::{ResourceId, RunId, TenantId};
use tenantd_core::runs::{Run, RunStatus};

use super::{bad, json, ts, uuid};
use crate::db::{Columns, Record};

/// A `runs` row.
pub(crate) struct RunRow {
    pub id: String,
    pub tenant_id: String,
    pub agent_id: String,
    pub status: String,
    pub model: String,
    pub input: String,
    pub max_tokens: Option<i64>,
    pub token_hold: i64,
    pub tokens_used: i64,
    pub attempt: i64,
    pub created_at: String,
}

impl Record for RunRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            id: r.text("id")?,
            tenant_id: r.text("tenant_id")?,
            agent_id: r.text("agent_id")?,
            status: r.text("status")?,
            model: r.text("model")?,
            input: r.text("input")?,
            max_tokens: r.opt_int("max_tokens")?,
            token_hold: r.int("token_hold")?,
            tokens_used: r.int("tokens_used")?,
            attempt: r.int("attempt")?,
            created_at: r.text("created_at")?,
        })
    }
}

impl TryFrom<RunRow> for Run {
    type Error = tenantd_core::Error;

    fn try_from(r: RunRow) -> Result<Self> {
        Ok(Run {
            id: RunId(uuid(&r.id, "id")?),
            tenant_id: TenantId(uuid(&r.tenant_id, "tenant_id")?),
            agent_id: ResourceId(uuid(&r.agent_id, "agent_id")?),
            status: RunStatus::parse(&r.status).ok_or_else(|| bad("status"))?,
            model: r.model,
            input: json(&r.input, "input")?,
            max_tokens: r.max_tokens,
            token_hold: r.token_hold,
            tokens_used: r.tokens_used,
            attempt: r.attempt,
            created_at: ts(&r.created_at, "created_at")?,
        })
    }
}
