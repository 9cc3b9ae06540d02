//! A cell's rows.

use tenantd_core::Result;
use tenantd_core::audit::AuditEvent;
use tenantd_core::ids::*;
use tenantd_core::resource::{FileMeta, Resource, ResourceKind, Sharing, SharingMode};

use super::{bad, json, ts, uuid};
use crate::db::{Columns, Record};

/// A `resources` row (its share list is read separately, for its owner only).
pub(crate) struct ResourceRow {
    pub id: String,
    pub tenant_id: String,
    pub kind: String,
    pub name: String,
    pub spec: String,
    pub sharing_mode: String,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    pub created_by: String,
}

impl Record for ResourceRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            id: r.text("id")?,
            tenant_id: r.text("tenant_id")?,
            kind: r.text("kind")?,
            name: r.text("name")?,
            spec: r.text("spec")?,
            sharing_mode: r.text("sharing_mode")?,
            version: r.int("version")?,
            created_at: r.text("created_at")?,
            updated_at: r.text("updated_at")?,
            created_by: r.text("created_by")?,
        })
    }
}

impl TryFrom<ResourceRow> for Resource {
    type Error = tenantd_core::Error;

    fn try_from(r: ResourceRow) -> Result<Self> {
        let mode =
            SharingMode::parse(&r.sharing_mode, "sharing").map_err(|_| bad("sharing_mode"))?;
        Ok(Resource {
            id: ResourceId(uuid(&r.id, "id")?),
            tenant_id: TenantId(uuid(&r.tenant_id, "tenant_id")?),
            kind: ResourceKind::parse(&r.kind, "kind").map_err(|_| bad("kind"))?,
            name: r.name,
            spec: json(&r.spec, "spec")?,
            sharing: Sharing {
                mode,
                tenants: Vec::new(),
            },
            version: r.version,
            created_at: ts(&r.created_at, "created_at")?,
            updated_at: ts(&r.updated_at, "updated_at")?,
            created_by: r.created_by,
        })
    }
}

/// A `files` row (stored files only are read).
pub(crate) struct FileRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub size: i64,
    pub sha256: String,
    pub content_type: String,
    pub created_at: String,
    pub created_by: String,
}

impl Record for FileRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            id: r.text("id")?,
            tenant_id: r.text("tenant_id")?,
            name: r.text("name")?,
            size: r.int("size")?,
            sha256: r.text("sha256")?,
            content_type: r.text("content_type")?,
            created_at: r.text("created_at")?,
            created_by: r.text("created_by")?,
        })
    }
}

impl TryFrom<FileRow> for FileMeta {
    type Error = tenantd_core::Error;

    fn try_from(r: FileRow) -> Result<Self> {
        Ok(FileMeta {
            id: FileId(uuid(&r.id, "id")?),
            tenant_id: TenantId(uuid(&r.tenant_id, "tenant_id")?),
            name: r.name,
            size: r.size,
            sha256: r.sha256,
            content_type: r.content_type,
            created_at: ts(&r.created_at, "created_at")?,
            created_by: r.created_by,
        })
    }
}

/// An `upload_reservations` row: whose, which file.
pub(crate) struct ReservationRow {
    pub tenant_id: String,
    pub file_id: String,
}

impl Record for ReservationRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            tenant_id: r.text("tenant_id")?,
            file_id: r.text("file_id")?,
        })
    }
}

impl TryFrom<ReservationRow> for (TenantId, FileId) {
    type Error = tenantd_core::Error;

    fn try_from(r: ReservationRow) -> Result<Self> {
        Ok((
            TenantId(uuid(&r.tenant_id, "tenant_id")?),
            FileId(uuid(&r.file_id, "file_id")?),
        ))
    }
}

/// A `quota_counters` row of one tenant.
pub(crate) struct CounterRow {
    pub quota: String,
    pub used: i64,
}

impl Record for CounterRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            quota: r.text("quota")?,
            used: r.int("used")?,
        })
    }
}

/// An `audit_heads` row: the last `seq` and `hash` of a tenant's chain.
pub(crate) struct HeadRow {
    pub seq: i64,
    pub hash: String,
}

/// A chain head as a lock takes it: with the event log's last `seq` and the number of
/// active webhook endpoints.
pub(crate) struct LockedHead {
    pub seq: i64,
    pub hash: String,
    pub event_seq: i64,
    /// The tenant's active webhook endpoints.
    pub hooks: i64,
}

impl Record for LockedHead {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            seq: r.int("seq")?,
            hash: r.text("hash")?,
            event_seq: r.int("event_seq")?,
            hooks: r.int("hooks")?,
        })
    }
}

impl Record for HeadRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            seq: r.int("seq")?,
            hash: r.text("hash")?,
        })
    }
}

/// An `audit_events` row.
pub(crate) struct EventRow {
    pub tenant_id: String,
    pub seq: i64,
    pub id: String,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub resource_id: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub at: String,
    pub details: String,
    pub prev_hash: String,
    pub hash: String,
}

impl Record for EventRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            tenant_id: r.text("tenant_id")?,
            seq: r.int("seq")?,
            id: r.text("id")?,
            actor: r.text("actor")?,
            action: r.text("action")?,
            resource: r.text("resource")?,
            resource_id: r.opt_text("resource_id")?,
            outcome: r.text("outcome")?,
            request_id: r.opt_text("request_id")?,
            ip: r.opt_text("ip")?,
            at: r.text("at")?,
            details: r.text("details")?,
            prev_hash: r.text("prev_hash")?,
            hash: r.text("hash")?,
        })
    }
}

impl TryFrom<EventRow> for AuditEvent {
    type Error = tenantd_core::Error;

    fn try_from(r: EventRow) -> Result<Self> {
        Ok(AuditEvent {
            seq: r.seq,
            id: EventId(uuid(&r.id, "id")?),
            tenant_id: TenantId(uuid(&r.tenant_id, "tenant_id")?),
            actor: r.actor,
            action: r.action,
            resource: r.resource,
            resource_id: r.resource_id,
            outcome: r.outcome,
            request_id: r.request_id,
            ip: r.ip,
            at: r.at,
            details: json(&r.details, "details")?,
            hash: r.hash,
            prev_hash: r.prev_hash,
        })
    }
}

/// An `events` row.
pub(crate) struct EventLogRow {
    pub seq: i64,
    pub id: String,
    pub kind: String,
    pub subject_id: String,
    pub occurred_at: String,
    pub data: String,
}

impl Record for EventLogRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            seq: r.int("seq")?,
            id: r.text("id")?,
            kind: r.text("type")?,
            subject_id: r.text("subject_id")?,
            occurred_at: r.text("occurred_at")?,
            data: r.text("data")?,
        })
    }
}

impl TryFrom<EventLogRow> for tenantd_core::events::Event {
    type Error = tenantd_core::Error;

    fn try_from(r: EventLogRow) -> Result<Self> {
        Ok(tenantd_core::events::Event {
            id: EventId(uuid(&r.id, "id")?),
            seq: r.seq,
            kind: r.kind,
            tenant_id: TenantId(uuid(&r.subject_id, "subject_id")?),
            occurred_at: r.occurred_at,
            data: json(&r.data, "data")?,
        })
    }
}
