//! Run rows, and the scheduler's.

use tenantd_core::Result;
use tenantd_core::ids::{ResourceId, RunId, TenantId};
use tenantd_core::runs::{DueLease, Run, RunStatus};

use super::{bad, json, opt_ts, ts, uuid};
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
    pub lease_id: Option<String>,
    pub lease_until: Option<String>,
    pub leased_at: Option<String>,
    pub ended_at: Option<String>,
    pub output: Option<String>,
    pub error: Option<String>,
}

impl RunRow {
    /// Its state.
    pub fn status(&self) -> Result<RunStatus> {
        RunStatus::parse(&self.status).ok_or_else(|| bad("status"))
    }

    /// What is left of its hold while it is open.
    pub fn held(&self) -> Result<i64> {
        Ok(if self.status()?.is_open() {
            (self.token_hold - self.tokens_used).max(0)
        } else {
            0
        })
    }
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
            lease_id: r.opt_text("lease_id")?,
            lease_until: r.opt_text("lease_until")?,
            leased_at: r.opt_text("leased_at")?,
            ended_at: r.opt_text("ended_at")?,
            output: r.opt_text("output")?,
            error: r.opt_text("error")?,
        })
    }
}

fn opt_json(v: Option<&str>, col: &str) -> Result<Option<serde_json::Value>> {
    v.map(|s| json(s, col)).transpose()
}

impl TryFrom<RunRow> for Run {
    type Error = tenantd_core::Error;

    fn try_from(r: RunRow) -> Result<Self> {
        let status = r.status()?;
        Ok(Run {
            id: RunId(uuid(&r.id, "id")?),
            tenant_id: TenantId(uuid(&r.tenant_id, "tenant_id")?),
            agent_id: ResourceId(uuid(&r.agent_id, "agent_id")?),
            status,
            model: r.model,
            input: json(&r.input, "input")?,
            max_tokens: r.max_tokens,
            token_hold: r.token_hold,
            tokens_used: r.tokens_used,
            attempt: r.attempt,
            created_at: ts(&r.created_at, "created_at")?,
            leased_at: opt_ts(r.leased_at.as_deref(), "leased_at")?,
            lease_until: if status == RunStatus::Leased {
                opt_ts(r.lease_until.as_deref(), "lease_until")?
            } else {
                None
            },
            ended_at: opt_ts(r.ended_at.as_deref(), "ended_at")?,
            output: opt_json(r.output.as_deref(), "output")?,
            error: opt_json(r.error.as_deref(), "error")?,
            queue_position: None,
        })
    }
}

/// A `run_ready` row, as the scheduler reads it.
pub(crate) struct ReadyRow {
    pub tenant_id: String,
    pub slots: Option<i64>,
    pub token_limit: Option<i64>,
}

impl Record for ReadyRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            tenant_id: r.text("tenant_id")?,
            slots: r.opt_int("slots")?,
            token_limit: r.opt_int("token_limit")?,
        })
    }
}

/// A `run_leases` row.
pub(crate) struct LeaseEntry {
    pub tenant_id: String,
    pub lease_id: String,
}

impl Record for LeaseEntry {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            tenant_id: r.text("tenant_id")?,
            lease_id: r.text("lease_id")?,
        })
    }
}

/// A due `run_leases` row.
pub(crate) struct DueRow {
    pub run_id: String,
    pub tenant_id: String,
    pub lease_id: String,
}

impl Record for DueRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            run_id: r.text("run_id")?,
            tenant_id: r.text("tenant_id")?,
            lease_id: r.text("lease_id")?,
        })
    }
}

impl TryFrom<DueRow> for DueLease {
    type Error = tenantd_core::Error;

    fn try_from(r: DueRow) -> Result<Self> {
        Ok(DueLease {
            run: RunId(uuid(&r.run_id, "run_id")?),
            tenant: TenantId(uuid(&r.tenant_id, "tenant_id")?),
            lease_id: r.lease_id,
        })
    }
}

/// A queued run at the head of its tenant's queue: its id and when it was created.
pub(crate) struct QueuedHead {
    pub id: String,
    pub created_at: String,
}

impl Record for QueuedHead {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            id: r.text("id")?,
            created_at: r.text("created_at")?,
        })
    }
}

/// The `agent_spawns` window: admissions in it, and the oldest one's time.
pub(crate) struct SpawnWindow {
    pub n: i64,
    pub first: Option<String>,
}

impl Record for SpawnWindow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            n: r.int("n")?,
            first: r.opt_text("first")?,
        })
    }
}

/// A cancelled run's id and what it held.
pub(crate) struct Cancelled {
    pub id: String,
    pub n: i64,
}

impl Record for Cancelled {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            id: r.text("id")?,
            n: r.int("n")?,
        })
    }
}

/// A tenant's held tokens, counted and derived.
pub(crate) struct HeldCheck {
    pub counted: Option<i64>,
    pub n: i64,
}

impl Record for HeldCheck {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            counted: r.opt_int("counted")?,
            n: r.int("n")?,
        })
    }
}

/// Two times of a run (created, leased).
pub(crate) struct TimePair {
    pub created: String,
    pub leased: String,
}

impl Record for TimePair {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            created: r.text("n")?,
            leased: r.text("first")?,
        })
    }
}
