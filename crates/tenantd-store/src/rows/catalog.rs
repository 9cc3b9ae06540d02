//! The catalog's rows.

use tenantd_core::Result;
use tenantd_core::access::Role;
use tenantd_core::audit::AuditDraft;
use tenantd_core::identity::{ApiKey, Invitation, Membership, Session, User};
use tenantd_core::ids::*;
use tenantd_core::store::SigningKeyRecord;
use tenantd_core::tenant::{
    CellName, PlanId, Region, Tenant, TenantSlug, TenantStatus, TenantType,
};

use super::{bad, json, opt_ts, opt_uuid, role, ts, uuid};
use crate::db::{Columns, Record};

/// A `tenants` row.
pub(crate) struct TenantRow {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub kind: String,
    pub plan: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub region: Option<String>,
    pub cell: String,
    pub settings: String,
    pub branding: String,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    pub purge_after: Option<String>,
}

impl Record for TenantRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            id: r.text("id")?,
            slug: r.text("slug")?,
            name: r.text("name")?,
            kind: r.text("type")?,
            plan: r.text("plan")?,
            status: r.text("status")?,
            status_reason: r.opt_text("status_reason")?,
            region: r.opt_text("region")?,
            cell: r.text("cell")?,
            settings: r.text("settings")?,
            branding: r.text("branding")?,
            created_at: r.text("created_at")?,
            updated_at: r.text("updated_at")?,
            deleted_at: r.opt_text("deleted_at")?,
            purge_after: r.opt_text("purge_after")?,
        })
    }
}

impl TryFrom<TenantRow> for Tenant {
    type Error = tenantd_core::Error;

    fn try_from(r: TenantRow) -> Result<Self> {
        Ok(Tenant {
            id: TenantId(uuid(&r.id, "id")?),
            slug: TenantSlug::stored(&r.slug).map_err(|_| bad("slug"))?,
            name: r.name,
            kind: TenantType::parse(&r.kind, "type").map_err(|_| bad("type"))?,
            plan: PlanId::new(r.plan),
            status: TenantStatus::parse(&r.status, "status").map_err(|_| bad("status"))?,
            status_reason: r.status_reason,
            region: r
                .region
                .map(|g| Region::parse(&g, "region").map_err(|_| bad("region")))
                .transpose()?,
            cell: CellName::new(r.cell),
            settings: json(&r.settings, "settings")?,
            branding: json(&r.branding, "branding")?,
            created_at: ts(&r.created_at, "created_at")?,
            updated_at: ts(&r.updated_at, "updated_at")?,
            deleted_at: opt_ts(r.deleted_at.as_deref(), "deleted_at")?,
            purge_after: opt_ts(r.purge_after.as_deref(), "purge_after")?,
        })
    }
}

/// A `users` row.
pub(crate) struct UserRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
    pub last_tenant_id: Option<String>,
    pub created_at: String,
}

impl Record for UserRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            id: r.text("id")?,
            email: r.text("email")?,
            name: r.text("name")?,
            password_hash: r.opt_text("password_hash")?,
            last_tenant_id: r.opt_text("last_tenant_id")?,
            created_at: r.text("created_at")?,
        })
    }
}

impl TryFrom<UserRow> for User {
    type Error = tenantd_core::Error;

    fn try_from(r: UserRow) -> Result<Self> {
        Ok(User {
            id: UserId(uuid(&r.id, "id")?),
            email: r.email,
            name: r.name,
            password_hash: r.password_hash,
            last_tenant_id: opt_uuid(r.last_tenant_id.as_deref(), "last_tenant_id")?.map(TenantId),
            created_at: ts(&r.created_at, "created_at")?,
        })
    }
}

/// A `memberships` row joined with its user's email and name.
pub(crate) struct MembershipRow {
    pub tenant_id: String,
    pub user_id: String,
    pub role: String,
    pub email: String,
    pub name: String,
    pub created_at: String,
}

impl Record for MembershipRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            tenant_id: r.text("tenant_id")?,
            user_id: r.text("user_id")?,
            role: r.text("role")?,
            email: r.text("email")?,
            name: r.text("name")?,
            created_at: r.text("created_at")?,
        })
    }
}

impl TryFrom<MembershipRow> for Membership {
    type Error = tenantd_core::Error;

    fn try_from(r: MembershipRow) -> Result<Self> {
        Ok(Membership {
            tenant_id: TenantId(uuid(&r.tenant_id, "tenant_id")?),
            user_id: UserId(uuid(&r.user_id, "user_id")?),
            role: role(&r.role, "role")?,
            email: r.email,
            name: r.name,
            created_at: ts(&r.created_at, "created_at")?,
        })
    }
}

/// An `invitations` row (without its token hash).
pub(crate) struct InvitationRow {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub role: String,
    pub expires_at: String,
    pub created_by: Option<String>,
    pub created_at: String,
    pub accepted_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl Record for InvitationRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            id: r.text("id")?,
            tenant_id: r.text("tenant_id")?,
            email: r.text("email")?,
            role: r.text("role")?,
            expires_at: r.text("expires_at")?,
            created_by: r.opt_text("created_by")?,
            created_at: r.text("created_at")?,
            accepted_at: r.opt_text("accepted_at")?,
            revoked_at: r.opt_text("revoked_at")?,
        })
    }
}

impl InvitationRow {
    /// The invitation as of `now` (its status depends on the time).
    pub fn at(self, now: chrono::DateTime<chrono::Utc>) -> Result<Invitation> {
        let expires_at = ts(&self.expires_at, "expires_at")?;
        let status = if self.accepted_at.is_some() {
            "accepted"
        } else if self.revoked_at.is_some() {
            "revoked"
        } else if expires_at <= now {
            "expired"
        } else {
            "pending"
        };
        Ok(Invitation {
            id: InvitationId(uuid(&self.id, "id")?),
            tenant_id: TenantId(uuid(&self.tenant_id, "tenant_id")?),
            email: self.email,
            role: role(&self.role, "role")?,
            status,
            expires_at,
            created_by: opt_uuid(self.created_by.as_deref(), "created_by")?.map(UserId),
            created_at: ts(&self.created_at, "created_at")?,
        })
    }
}

/// The tenant and role an accepted invitation grants.
pub(crate) struct AcceptedRow {
    pub tenant_id: String,
    pub role: String,
}

impl Record for AcceptedRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            tenant_id: r.text("tenant_id")?,
            role: r.text("role")?,
        })
    }
}

impl AcceptedRow {
    pub fn parse(self) -> Result<(TenantId, Role)> {
        Ok((
            TenantId(uuid(&self.tenant_id, "tenant_id")?),
            role(&self.role, "role")?,
        ))
    }
}

/// An `api_keys` row (without its hash).
pub(crate) struct ApiKeyRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub role: String,
    pub prefix: String,
    pub created_by: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
}

impl Record for ApiKeyRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            id: r.text("id")?,
            tenant_id: r.text("tenant_id")?,
            name: r.text("name")?,
            role: r.text("role")?,
            prefix: r.text("prefix")?,
            created_by: r.opt_text("created_by")?,
            created_at: r.text("created_at")?,
            expires_at: r.opt_text("expires_at")?,
            revoked_at: r.opt_text("revoked_at")?,
        })
    }
}

impl TryFrom<ApiKeyRow> for ApiKey {
    type Error = tenantd_core::Error;

    fn try_from(r: ApiKeyRow) -> Result<Self> {
        Ok(ApiKey {
            id: ApiKeyId(uuid(&r.id, "id")?),
            tenant_id: TenantId(uuid(&r.tenant_id, "tenant_id")?),
            name: r.name,
            role: role(&r.role, "role")?,
            prefix: r.prefix,
            created_by: opt_uuid(r.created_by.as_deref(), "created_by")?.map(UserId),
            created_at: ts(&r.created_at, "created_at")?,
            expires_at: opt_ts(r.expires_at.as_deref(), "expires_at")?,
            revoked_at: opt_ts(r.revoked_at.as_deref(), "revoked_at")?,
        })
    }
}

/// A `sessions` row; its id column is `id`, or `session_id` in a join.
pub(crate) struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub tenant_id: String,
    pub revoked_at: Option<String>,
    pub revoked_after_gen: Option<i64>,
}

impl SessionRow {
    fn read_as(r: &dyn Columns, id_col: &str) -> Result<Self> {
        Ok(Self {
            id: r.text(id_col)?,
            user_id: r.text("user_id")?,
            tenant_id: r.text("tenant_id")?,
            revoked_at: r.opt_text("revoked_at")?,
            revoked_after_gen: r.opt_int("revoked_after_gen")?,
        })
    }
}

impl Record for SessionRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Self::read_as(r, "id")
    }
}

impl TryFrom<SessionRow> for Session {
    type Error = tenantd_core::Error;

    fn try_from(r: SessionRow) -> Result<Self> {
        Ok(Session {
            id: SessionId(uuid(&r.id, "id")?),
            user_id: UserId(uuid(&r.user_id, "user_id")?),
            tenant_id: TenantId(uuid(&r.tenant_id, "tenant_id")?),
            revoked_at: opt_ts(r.revoked_at.as_deref(), "revoked_at")?,
            revoked_after_gen: r.revoked_after_gen,
        })
    }
}

/// A session with the member's role and the tenant (`sql::credentials::FIND_SESSION_CONTEXT`).
pub(crate) struct SessionContextRow {
    pub session: SessionRow,
    pub role: String,
    pub tenant: TenantRow,
}

impl Record for SessionContextRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            session: SessionRow::read_as(r, "session_id")?,
            role: r.text("member_role")?,
            tenant: TenantRow::read(r)?,
        })
    }
}

/// A refresh token with its session (`sql::credentials::FIND_REFRESH`).
pub(crate) struct RefreshRow {
    pub session: SessionRow,
    pub expires_at: String,
    pub spent_at: Option<String>,
    pub generation: i64,
    pub refresh_revoked_at: Option<String>,
}

impl Record for RefreshRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            session: SessionRow::read_as(r, "session_id")?,
            expires_at: r.text("expires_at")?,
            spent_at: r.opt_text("spent_at")?,
            generation: r.int("generation")?,
            refresh_revoked_at: r.opt_text("refresh_revoked_at")?,
        })
    }
}

/// A `signing_keys` row.
pub(crate) struct SigningKeyRow {
    pub kid: String,
    pub private_key: Vec<u8>,
    pub public_key: Vec<u8>,
    pub created_at: String,
    pub verify_until: Option<String>,
}

impl Record for SigningKeyRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            kid: r.text("kid")?,
            private_key: r.bytes("private_key")?,
            public_key: r.bytes("public_key")?,
            created_at: r.text("created_at")?,
            verify_until: r.opt_text("verify_until")?,
        })
    }
}

impl TryFrom<SigningKeyRow> for SigningKeyRecord {
    type Error = tenantd_core::Error;

    fn try_from(r: SigningKeyRow) -> Result<Self> {
        Ok(SigningKeyRecord {
            kid: r.kid,
            private_key: r.private_key,
            public_key: r.public_key,
            created_at: ts(&r.created_at, "created_at")?,
            verify_until: opt_ts(r.verify_until.as_deref(), "verify_until")?,
        })
    }
}

/// An `audit_outbox` row.
pub(crate) struct OutboxRow {
    pub id: String,
    pub tenant_id: String,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub resource_id: Option<String>,
    pub outcome: String,
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub at: String,
    pub details: String,
}

impl Record for OutboxRow {
    fn read(r: &dyn Columns) -> Result<Self> {
        Ok(Self {
            id: r.text("id")?,
            tenant_id: r.text("tenant_id")?,
            actor: r.text("actor")?,
            action: r.text("action")?,
            resource: r.text("resource")?,
            resource_id: r.opt_text("resource_id")?,
            outcome: r.text("outcome")?,
            request_id: r.opt_text("request_id")?,
            ip: r.opt_text("ip")?,
            at: r.text("at")?,
            details: r.text("details")?,
        })
    }
}

impl TryFrom<OutboxRow> for AuditDraft {
    type Error = tenantd_core::Error;

    fn try_from(r: OutboxRow) -> Result<Self> {
        Ok(AuditDraft {
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
        })
    }
}
