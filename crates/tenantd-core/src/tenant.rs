use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::error::FieldError;
use crate::ids::TenantId;

/// Slugs no tenant may take: they name parts of the platform or common subdomains.
pub const RESERVED_SLUGS: &[&str] = &[
    "www",
    "api",
    "admin",
    "platform",
    "app",
    "console",
    "docs",
    "status",
    "mail",
    "static",
    "assets",
    "auth",
    "login",
    "signup",
    "support",
    "help",
    "root",
    "system",
    "internal",
    "metrics",
    "health",
    "tenantd",
    "default",
    "public",
    "cdn",
    "healthz",
    "readyz",
    "openapi",
    "well-known",
    "v1",
    "v2",
    "null",
    "undefined",
    "self",
    "me",
    "current",
    "new",
];

/// A tenant's URL-safe name: `^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$`, not reserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct TenantSlug(String);

impl TenantSlug {
    /// Parses a slug; the error names `slug`.
    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let b = s.as_bytes();
        let ok_inner = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
        let ok_edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        if !(3..=63).contains(&b.len())
            || !ok_edge(&b[0])
            || !ok_edge(&b[b.len() - 1])
            || !b.iter().all(ok_inner)
        {
            return Err(FieldError::new(
                "slug",
                "3 to 63 characters: lowercase letters, digits and inner hyphens",
            ));
        }
        if RESERVED_SLUGS.contains(&s) {
            return Err(FieldError::new("slug", "this slug is reserved"));
        }
        // Tenants are named by id or slug interchangeably: a slug that reads as an id would
        // make that ambiguous (and could shadow another tenant's id).
        if uuid::Uuid::try_parse(s).is_ok() {
            return Err(FieldError::new(
                "slug",
                "must not have the form of a tenant id",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// A slug as stored: the form is checked, not the reserved list (the platform tenant
    /// holds `platform`, and a slug reserved after a tenant took it stays that tenant's).
    pub fn stored(s: &str) -> Result<Self, FieldError> {
        let form_ok = (3..=63).contains(&s.len())
            && s.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if form_ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(FieldError::new("slug", "not a stored slug"))
        }
    }

    /// The platform tenant's slug, the one reserved slug that exists.
    pub fn platform() -> Self {
        Self("platform".to_owned())
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A text value known by its name in the deployment's configuration: a plan id (`free`, `pro`
/// …, from the plans file) or a cell name (from `[[cells]]`). The type says which, so a cell
/// name cannot be passed where a plan is meant; whether the name exists is the configuration's
/// to say, not the value's.
macro_rules! config_name {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a name.
            pub fn new(s: impl Into<String>) -> Self {
                Self(s.into())
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

config_name!(
    /// A plan's id.
    PlanId
);

config_name!(
    /// A storage cell's name.
    CellName
);

/// A display name: 1 to 200 characters after trimming, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses a name; the error names `field`.
    pub fn parse(s: &str, field: &str) -> Result<Self, FieldError> {
        let t = s.trim();
        if t.is_empty() || t.chars().count() > 200 {
            return Err(FieldError::new(field, "1 to 200 characters"));
        }
        if t.chars().any(char::is_control) {
            return Err(FieldError::new(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(t.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! str_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $text)] $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &[$name] = &[$($name::$variant),+];

            /// The stored and wire form.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the wire form; the error names `field`.
            pub fn parse(s: &str, field: &str) -> Result<Self, $crate::error::FieldError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::error::FieldError::new(field, concat!("one of: ", $($text, " "),+).trim_end())),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use str_enum;

str_enum!(
    /// What a tenant is to the platform.
    TenantType {
        /// The one platform tenant: its admins are platform admins.
        Platform = "platform",
        /// A customer organisation.
        Client = "client",
        /// A solution built on the platform.
        Solution = "solution",
        /// An industry template tenant.
        Industry = "industry",
    }
);

str_enum!(
    /// A tenant's lifecycle status.
    TenantStatus {
        /// Created, not yet active.
        Pending = "pending",
        /// Serving.
        Active = "active",
        /// Stopped: credentials refused, data kept.
        Suspended = "suspended",
        /// Being moved between cells: writes refused.
        Migrating = "migrating",
        /// Soft-deleted, waiting for the purge.
        Deleted = "deleted",
    }
);

str_enum!(
    /// A data-residency region.
    Region {
        /// United States.
        Us = "us",
        /// European Union.
        Eu = "eu",
        /// Asia-Pacific.
        Ap = "ap",
    }
);

/// A tenant, as the catalog knows it.
#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Its slug.
    pub slug: TenantSlug,
    /// Its display name.
    pub name: String,
    /// Platform, client, solution or industry.
    #[serde(rename = "type")]
    pub kind: TenantType,
    /// The plan's id.
    pub plan: PlanId,
    /// Lifecycle status.
    pub status: TenantStatus,
    /// Why it was suspended, while it is.
    pub status_reason: Option<String>,
    /// Requested data-residency region.
    pub region: Option<Region>,
    /// The cell that holds its data.
    pub cell: CellName,
    /// Free-form settings object.
    pub settings: Value,
    /// Branding object (logo, colours).
    pub branding: Value,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Soft-deletion time.
    pub deleted_at: Option<DateTime<Utc>>,
    /// When the purge may remove its data.
    pub purge_after: Option<DateTime<Utc>>,
}

impl Tenant {
    /// Fails with the status error a request for this tenant must get, if any.
    pub fn ensure_serving(&self) -> crate::Result<()> {
        match self.status {
            TenantStatus::Active | TenantStatus::Pending | TenantStatus::Migrating => Ok(()),
            TenantStatus::Suspended => Err(crate::Error::TenantSuspended),
            TenantStatus::Deleted => Err(crate::Error::TenantDeleted),
        }
    }
}

/// Proof that a request (or an audited operator action) is bound to exactly one tenant.
///
/// Every query on tenant-owned data takes one. It has no public constructor other than the
/// deliberately named [`TenantScope::unscoped_trusted`], no `Default` and no `Deserialize`,
/// so a scope cannot come from client input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope {
    tenant_id: TenantId,
    cell: CellName,
}

impl TenantScope {
    /// Makes a scope. Only the request path (after authentication, status and membership
    /// checks), the audited platform-admin crossing, the audit relay and operator commands
    /// call this; the name makes each call site easy to find and review.
    pub fn unscoped_trusted(tenant_id: TenantId, cell: impl Into<CellName>) -> Self {
        Self {
            tenant_id,
            cell: cell.into(),
        }
    }

    /// The tenant.
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    /// The cell holding the tenant's data.
    pub fn cell(&self) -> &CellName {
        &self.cell
    }
}

/// A tenant about to be created.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// Its id.
    pub id: TenantId,
    /// Its slug.
    pub slug: TenantSlug,
    /// Its name.
    pub name: DisplayName,
    /// Its type.
    pub kind: TenantType,
    /// Its plan id (already checked against the plans).
    pub plan: PlanId,
    /// Requested region.
    pub region: Option<Region>,
    /// The cell chosen for it.
    pub cell: CellName,
    /// Whether the cell is dedicated: it is claimed for this tenant alone, and creation fails
    /// with `Conflict{cell}` if another tenant holds it.
    pub dedicated: bool,
    /// Settings object.
    pub settings: Value,
}

/// A change to a tenant's name, settings or branding.
#[derive(Debug, Clone, Default)]
pub struct TenantPatch {
    /// New name.
    pub name: Option<DisplayName>,
    /// Settings, merged key by key into the current ones.
    pub settings: Option<serde_json::Map<String, Value>>,
    /// Branding, merged key by key.
    pub branding: Option<serde_json::Map<String, Value>>,
}

/// A JSON object of at most 64 KiB (tenant settings, branding); `None` when absent.
pub fn json_object(
    field: &str,
    v: Option<Value>,
) -> Result<Option<serde_json::Map<String, Value>>, FieldError> {
    match v {
        None => Ok(None),
        Some(Value::Object(o)) if Value::Object(o.clone()).to_string().len() <= 64 * 1024 => {
            Ok(Some(o))
        }
        Some(Value::Object(_)) => Err(FieldError::new(field, "larger than 64 KiB")),
        Some(_) => Err(FieldError::new(field, "must be a JSON object")),
    }
}

/// The region `settings.data_residency` names, if it names one.
pub fn residency(settings: &serde_json::Map<String, Value>) -> Result<Option<Region>, FieldError> {
    match settings.get("data_residency") {
        None => Ok(None),
        Some(dr) => dr
            .as_str()
            .and_then(|r| Region::parse(r, "settings.data_residency").ok())
            .map(Some)
            .ok_or_else(|| FieldError::new("settings.data_residency", "one of: us eu ap")),
    }
}

impl TenantPatch {
    /// Parses the fields of a tenant change (`PATCH /v1/tenants/{id}`), every field error at
    /// once. Whether `settings.data_residency` agrees with the tenant's region is the
    /// service's to check (it needs the tenant).
    pub fn parse(
        name: Option<&str>,
        settings: Option<Value>,
        branding: Option<Value>,
    ) -> crate::Result<Self> {
        let mut v = crate::error::Validator::default();
        let name = name.map(|n| v.check(DisplayName::parse(n, "name")));
        let settings = v.check(json_object("settings", settings)).flatten();
        let branding = v.check(json_object("branding", branding)).flatten();
        if let Some(s) = &settings {
            v.check(residency(s));
        }
        v.finish()?;
        Ok(Self {
            name: name.flatten(),
            settings,
            branding,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn slug_rules_hold() {
        for ok in ["abc", "acme-corp", "a1b", "x0-9"] {
            assert!(TenantSlug::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "ab", "Acme", "-abc", "abc-", "a_b", "a b", "admin", "www", "", "é-abc",
        ] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad}");
        }
        assert!(TenantSlug::parse(&"a".repeat(63)).is_ok());
        assert!(TenantSlug::parse(&"a".repeat(64)).is_err());
    }

    proptest! {
        #[test]
        fn a_parsed_slug_always_matches_the_pattern(s in "\\PC{0,70}") {
            if let Ok(slug) = TenantSlug::parse(&s) {
                let b = slug.as_str().as_bytes();
                prop_assert!((3..=63).contains(&b.len()));
                prop_assert!(b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-'));
                prop_assert!(b[0] != b'-' && b[b.len() - 1] != b'-');
            }
        }

        #[test]
        fn valid_slugs_round_trip(s in "[a-z0-9][a-z0-9-]{1,61}[a-z0-9]") {
            if !RESERVED_SLUGS.contains(&s.as_str()) {
                let parsed = TenantSlug::parse(&s).unwrap();
                prop_assert_eq!(parsed.as_str(), s.as_str());
            }
        }
    }
}
