//! Response bodies shared by several areas, with their OpenAPI schemas.

use serde::Serialize;
use serde_json::Value;
use tenantd_core::identity::{ApiKey, Invitation, Membership, User};
use tenantd_core::resource::Resource;
use tenantd_core::tenant::Tenant;
use utoipa::ToSchema;

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantResponse {
    pub id: String,
    pub slug: String,
    pub name: String,
    /// `platform`, `client`, `solution` or `industry`.
    #[serde(rename = "type")]
    pub kind: String,
    pub plan: String,
    /// `pending`, `active`, `suspended`, `migrating` or `deleted`.
    pub status: String,
    pub status_reason: Option<String>,
    pub region: Option<String>,
    /// The storage cell holding its data.
    pub cell: String,
    #[schema(value_type = Object)]
    pub settings: Value,
    #[schema(value_type = Object)]
    pub branding: Value,
    pub created_at: String,
    pub updated_at: String,
    pub deleted_at: Option<String>,
    pub purge_after: Option<String>,
}

impl From<Tenant> for TenantResponse {
    fn from(t: Tenant) -> Self {
        Self {
            id: t.id.to_string(),
            slug: t.slug.to_string(),
            name: t.name,
            kind: t.kind.as_str().into(),
            plan: t.plan.to_string(),
            status: t.status.as_str().into(),
            status_reason: t.status_reason,
            region: t.region.map(|r| r.as_str().to_owned()),
            cell: t.cell.to_string(),
            settings: t.settings,
            branding: t.branding,
            created_at: t.created_at.to_rfc3339(),
            updated_at: t.updated_at.to_rfc3339(),
            deleted_at: t.deleted_at.map(|d| d.to_rfc3339()),
            purge_after: t.purge_after.map(|d| d.to_rfc3339()),
        }
    }
}

/// A user (never the password hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: String,
    pub email: String,
    pub name: String,
    pub created_at: String,
}

impl From<User> for UserResponse {
    fn from(u: User) -> Self {
        Self {
            id: u.id.to_string(),
            email: u.email,
            name: u.name,
            created_at: u.created_at.to_rfc3339(),
        }
    }
}

/// A member of the tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberResponse {
    pub user_id: String,
    pub tenant_id: String,
    pub email: String,
    pub name: String,
    /// `owner`, `admin`, `member`, `viewer` or `auditor`.
    pub role: String,
    pub created_at: String,
}

impl From<Membership> for MemberResponse {
    fn from(m: Membership) -> Self {
        Self {
            user_id: m.user_id.to_string(),
            tenant_id: m.tenant_id.to_string(),
            email: m.email,
            name: m.name,
            role: m.role.as_str().into(),
            created_at: m.created_at.to_rfc3339(),
        }
    }
}

/// An invitation (the token is shown once, at creation).
#[derive(Debug, Serialize, ToSchema)]
pub struct InvitationResponse {
    pub id: String,
    pub tenant_id: String,
    pub email: String,
    pub role: String,
    /// `pending`, `accepted`, `revoked` or `expired`.
    pub status: String,
    pub expires_at: String,
    pub created_at: String,
    /// Only in the response to its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl From<Invitation> for InvitationResponse {
    fn from(i: Invitation) -> Self {
        Self {
            id: i.id.to_string(),
            tenant_id: i.tenant_id.to_string(),
            email: i.email,
            role: i.role.as_str().into(),
            status: i.status.into(),
            expires_at: i.expires_at.to_rfc3339(),
            created_at: i.created_at.to_rfc3339(),
            token: None,
        }
    }
}

/// An API key (the key is shown once, at creation).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyResponse {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub role: String,
    /// The visible start of the key.
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    /// Only in the response to its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl From<ApiKey> for ApiKeyResponse {
    fn from(k: ApiKey) -> Self {
        Self {
            id: k.id.to_string(),
            tenant_id: k.tenant_id.to_string(),
            name: k.name,
            role: k.role.as_str().into(),
            prefix: k.prefix,
            created_at: k.created_at.to_rfc3339(),
            expires_at: k.expires_at.map(|d| d.to_rfc3339()),
            revoked_at: k.revoked_at.map(|d| d.to_rfc3339()),
            key: None,
        }
    }
}

/// Sharing of a resource.
#[derive(Debug, Serialize, ToSchema)]
pub struct SharingResponse {
    /// `private`, `global` or `selective`.
    pub mode: String,
    /// Tenants it is shared with (selective; shown to the owner only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<String>,
}

/// A tenant-owned resource.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceResponse {
    pub id: String,
    pub tenant_id: String,
    /// `agents`, `tools`, `prompts`, `workflows`, `knowledge-sources`, `projects` or `memories`.
    pub kind: String,
    pub name: String,
    #[schema(value_type = Object)]
    pub spec: Value,
    pub sharing: SharingResponse,
    /// Incremented by every change; the ETag is `"<version>"`.
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
    pub created_by: String,
}

impl From<Resource> for ResourceResponse {
    fn from(r: Resource) -> Self {
        Self {
            id: r.id.to_string(),
            tenant_id: r.tenant_id.to_string(),
            kind: r.kind.as_str().into(),
            name: r.name,
            spec: r.spec,
            sharing: SharingResponse {
                mode: r.sharing.mode.as_str().into(),
                tenants: r.sharing.tenants.iter().map(|t| t.to_string()).collect(),
            },
            version: r.version,
            created_at: r.created_at.to_rfc3339(),
            updated_at: r.updated_at.to_rfc3339(),
            created_by: r.created_by,
        }
    }
}

/// A page of items.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T: ToSchema> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A list that is not paginated.
#[derive(Debug, Serialize, ToSchema)]
pub struct Items<T: ToSchema> {
    pub items: Vec<T>,
}
