//! Requests as parsed inputs: what an edge (an HTTP handler, a CLI command) turns a request
//! into before calling a service. Each parse checks the syntax of every field and reports
//! every error at once; what needs the deployment's state (does the plan exist, is the email
//! free, where does the tenant go) is the service's to decide.

use serde_json::Value;

use crate::error::{FieldError, Validator};
use crate::identity::{Email, Password};
use crate::tenant::{DisplayName, PlanId, Region, TenantSlug, TenantType, json_object, residency};

/// A new tenant as a request (`POST /v1/tenants`, `tenantd tenant create`) states it,
/// parsed, every field error reported at once. Whether the plan exists and where the tenant
/// goes are the service's to decide.
#[derive(Debug, Clone)]
pub struct TenantDraft {
    /// Its name.
    pub name: DisplayName,
    /// Its slug.
    pub slug: TenantSlug,
    /// The plan asked for (not yet checked against the plans).
    pub plan: PlanId,
    /// `client` unless the request said `solution` or `industry`.
    pub kind: TenantType,
    /// The region, from `region` or `settings.data_residency` (which must agree).
    pub region: Option<Region>,
    /// Initial settings.
    pub settings: serde_json::Map<String, Value>,
    /// The owner's email.
    pub owner_email: Email,
}

impl TenantDraft {
    /// Parses the fields of a tenant creation.
    pub fn parse(
        name: &str,
        slug: &str,
        plan: &str,
        kind: Option<&str>,
        region: Option<&str>,
        settings: Option<Value>,
        owner_email: &str,
    ) -> crate::Result<Self> {
        let mut v = Validator::default();
        let name = v.check(DisplayName::parse(name, "name"));
        let slug = v.check(TenantSlug::parse(slug));
        let kind = match kind {
            None => Some(TenantType::Client),
            Some("platform") => {
                v.push(FieldError::new("type", "there is one platform tenant"));
                None
            }
            Some(k) => v.check(TenantType::parse(k, "type")),
        };
        let region = region.and_then(|r| v.check(Region::parse(r, "region")));
        let settings = v
            .check(json_object("settings", settings))
            .flatten()
            .unwrap_or_default();
        let residency = v.check(residency(&settings)).flatten();
        if let (Some(r), Some(dr)) = (region, residency)
            && r != dr
        {
            v.push(FieldError::new(
                "settings.data_residency",
                format!("disagrees with region {r}"),
            ));
        }
        let owner_email = v.check(Email::parse(owner_email, "owner_email"));
        v.finish()?;
        match (name, slug, kind, owner_email) {
            (Some(name), Some(slug), Some(kind), Some(owner_email)) => Ok(Self {
                name,
                slug,
                plan: PlanId::new(plan),
                kind,
                region: region.or(residency),
                settings,
                owner_email,
            }),
            _ => Err(crate::Error::Internal(
                "validator passed an unparsed field".into(),
            )),
        }
    }
}

/// A self-serve signup as the request states it, parsed, every field error at once. Whether
/// signup is on, the plan is self-serve and the email is free are the service's to decide.
#[derive(Debug)]
pub struct SignupDraft {
    /// The new user's email.
    pub email: Email,
    /// Their password.
    pub password: Password,
    /// Their name.
    pub name: DisplayName,
    /// The tenant's name.
    pub tenant_name: DisplayName,
    /// The tenant's slug.
    pub tenant_slug: TenantSlug,
    /// The plan asked for (`free` when none).
    pub plan: PlanId,
}

impl SignupDraft {
    /// Parses a signup's fields.
    pub fn parse(
        email: &str,
        password: &str,
        name: &str,
        tenant_name: &str,
        tenant_slug: &str,
        plan: Option<&str>,
    ) -> crate::Result<Self> {
        let mut v = Validator::default();
        let email = v.check(Email::parse(email, "email"));
        let password = v.check(Password::parse(password, "password"));
        let name = v.check(DisplayName::parse(name, "name"));
        let tenant_name = v.check(DisplayName::parse(tenant_name, "tenant.name"));
        let tenant_slug = v.check(TenantSlug::parse(tenant_slug).map_err(|e| e.under("tenant")));
        v.finish()?;
        match (email, password, name, tenant_name, tenant_slug) {
            (Some(email), Some(password), Some(name), Some(tenant_name), Some(tenant_slug)) => {
                Ok(Self {
                    email,
                    password,
                    name,
                    tenant_name,
                    tenant_slug,
                    plan: plan.unwrap_or("free").into(),
                })
            }
            _ => Err(crate::Error::Internal(
                "validator passed an unparsed field".into(),
            )),
        }
    }
}
