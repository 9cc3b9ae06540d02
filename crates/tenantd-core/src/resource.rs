use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::error::FieldError;
use crate::ids::{ResourceId, TenantId};
use crate::tenant::str_enum;

str_enum!(
    /// The kinds of tenant-owned resources.
    ResourceKind {
        /// Agents.
        Agents = "agents",
        /// Tools.
        Tools = "tools",
        /// Prompts.
        Prompts = "prompts",
        /// Workflows.
        Workflows = "workflows",
        /// Knowledge sources.
        KnowledgeSources = "knowledge-sources",
        /// Projects.
        Projects = "projects",
        /// Memories.
        Memories = "memories",
    }
);

str_enum!(
    /// Who besides the owner tenant sees a resource.
    SharingMode {
        /// Only its tenant.
        Private = "private",
        /// Every tenant (platform tenant only), read-only.
        Global = "global",
        /// The listed tenants, read-only.
        Selective = "selective",
    }
);

/// A resource's sharing: the mode and, for `selective`, the tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sharing {
    /// The mode.
    pub mode: SharingMode,
    /// The tenants it is shared with (selective only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<TenantId>,
}

impl Sharing {
    /// Private: the default.
    pub fn private() -> Self {
        Self {
            mode: SharingMode::Private,
            tenants: Vec::new(),
        }
    }
}

/// A resource name: 1 to 200 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ResourceName(String);

impl ResourceName {
    /// Parses a name; the error names `name`.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        crate::tenant::DisplayName::parse(s, "name").map(|n| Self(n.as_str().to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A resource's spec: a JSON object of at most 256 KiB, 32 levels deep.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Spec(Value);

impl Spec {
    /// Parses a spec; the error names `spec`.
    pub fn parse(v: Value) -> Result<Self, FieldError> {
        if !v.is_object() {
            return Err(FieldError::new("spec", "must be a JSON object"));
        }
        if depth(&v) > 32 {
            return Err(FieldError::new("spec", "nested more than 32 levels"));
        }
        if v.to_string().len() > 256 * 1024 {
            return Err(FieldError::new("spec", "larger than 256 KiB"));
        }
        Ok(Self(v))
    }

    /// The JSON value.
    pub fn as_value(&self) -> &Value {
        &self.0
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// A tenant-owned resource.
#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    /// Its id.
    pub id: ResourceId,
    /// The owner tenant.
    pub tenant_id: TenantId,
    /// Its kind.
    pub kind: ResourceKind,
    /// Its name (unique per tenant and kind).
    pub name: String,
    /// Its spec.
    pub spec: Value,
    /// Its sharing.
    pub sharing: Sharing,
    /// Incremented by every change; the ETag.
    pub version: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// The actor that created it (`user:<id>` or `api_key:<id>`).
    pub created_by: String,
}

impl Resource {
    /// The strong ETag of this version.
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }
}

/// A resource about to be created.
#[derive(Debug, Clone)]
pub struct NewResource {
    /// Its id.
    pub id: ResourceId,
    /// Its kind.
    pub kind: ResourceKind,
    /// Its name.
    pub name: ResourceName,
    /// Its spec.
    pub spec: Spec,
    /// Its sharing.
    pub sharing: Sharing,
    /// The creating actor.
    pub created_by: String,
}

/// A change to a resource.
#[derive(Debug, Clone, Default)]
pub struct ResourcePatch {
    /// New name.
    pub name: Option<ResourceName>,
    /// New spec (replaces the old one).
    pub spec: Option<Spec>,
    /// New sharing.
    pub sharing: Option<Sharing>,
    /// The version `If-Match` named, if any.
    pub if_version: Option<i64>,
}

str_enum!(
    /// Whether a list shows items shared with the tenant.
    SharedFilter {
        /// Own items and shared ones.
        Include = "include",
        /// Own items only.
        Exclude = "exclude",
        /// Shared items only.
        Only = "only",
    }
);

/// A page request over a list ordered by id.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// At most this many items (1..=200).
    pub limit: u32,
    /// Items after this id.
    pub after: Option<ResourceId>,
    /// Exact name filter.
    pub name: Option<String>,
    /// Shared items.
    pub shared: SharedFilter,
}

/// A stored file's metadata (the bytes live in the object store).
#[derive(Debug, Clone, Serialize)]
pub struct FileMeta {
    /// Its id.
    pub id: crate::ids::FileId,
    /// The owner tenant.
    pub tenant_id: TenantId,
    /// Its name.
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// sha256 of the bytes, hex.
    pub sha256: String,
    /// The content type it was uploaded with.
    pub content_type: String,
    /// Upload time.
    pub created_at: DateTime<Utc>,
    /// The uploading actor.
    pub created_by: String,
}

/// A file about to be stored.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Its id.
    pub id: crate::ids::FileId,
    /// Its name.
    pub name: ResourceName,
    /// Size in bytes.
    pub size: i64,
    /// sha256, hex.
    pub sha256: String,
    /// Content type.
    pub content_type: String,
    /// The uploading actor.
    pub created_by: String,
}

/// The object-store key of a file: always under its tenant's prefix.
pub fn blob_key(tenant: TenantId, file: crate::ids::FileId) -> String {
    format!("tenants/{tenant}/files/{file}")
}

/// Sharing as a request states it, its syntax checked: a mode and, for `selective`, 1 to 100
/// distinct tenant ids. Whether the tenant may share so — the plan's feature, the platform
/// tenant's global sharing, targets in the same cell — is the service's decision.
#[derive(Debug, Clone)]
pub struct SharingDraft {
    /// The mode.
    pub mode: SharingMode,
    /// The tenants named, sorted and without repeats (empty unless `selective`).
    pub tenants: Vec<TenantId>,
}

impl SharingDraft {
    /// Parses a mode and its tenant list, recording every field error in `v`.
    pub fn parse(
        mode: &str,
        tenants: Option<&[String]>,
        v: &mut crate::error::Validator,
    ) -> Option<Self> {
        let mode = v.check(SharingMode::parse(mode, "sharing.mode"))?;
        let raw = tenants.unwrap_or_default();
        match mode {
            SharingMode::Private if !raw.is_empty() => {
                v.push(FieldError::new(
                    "sharing.tenants",
                    "only selective sharing lists tenants",
                ));
                None
            }
            SharingMode::Private | SharingMode::Global => Some(Self {
                mode,
                tenants: Vec::new(),
            }),
            SharingMode::Selective => {
                if raw.is_empty() || raw.len() > 100 {
                    v.push(FieldError::new("sharing.tenants", "1 to 100 tenant ids"));
                    return None;
                }
                let mut ids = Vec::with_capacity(raw.len());
                for (i, r) in raw.iter().enumerate() {
                    ids.push(v.check(TenantId::parse(r, &format!("sharing.tenants[{i}]"))));
                }
                let mut ids: Vec<TenantId> = ids.into_iter().collect::<Option<_>>()?;
                ids.sort();
                ids.dedup();
                Some(Self { mode, tenants: ids })
            }
        }
    }
}

/// A new resource as a request states it, parsed: every field error is reported at once.
#[derive(Debug, Clone)]
pub struct ResourceDraft {
    /// Its name.
    pub name: ResourceName,
    /// Its spec (`{}` when the request had none).
    pub spec: Spec,
    /// Its sharing (`None`: private).
    pub sharing: Option<SharingDraft>,
}

/// A change to a resource as a request states it, parsed.
#[derive(Debug, Clone, Default)]
pub struct ResourceChanges {
    /// New name.
    pub name: Option<ResourceName>,
    /// New spec.
    pub spec: Option<Spec>,
    /// New sharing.
    pub sharing: Option<SharingDraft>,
    /// The version `If-Match` named (`None`: absent or `*`).
    pub if_version: Option<i64>,
}

impl ResourceChanges {
    /// The version an `If-Match` header names: `None` for none or `*`; an ETag tenantd never
    /// issued cannot match (`PreconditionFailed`).
    pub fn if_version(if_match: Option<&str>) -> crate::Result<Option<i64>> {
        match if_match.map(str::trim) {
            None | Some("*") => Ok(None),
            Some(tag) => tag
                .trim_start_matches("W/")
                .trim_matches('"')
                .parse::<i64>()
                .map(Some)
                .map_err(|_| crate::Error::PreconditionFailed),
        }
    }
}
