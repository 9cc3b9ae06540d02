use serde::Serialize;

use crate::tenant::str_enum;

str_enum!(
    /// A member's role in one tenant.
    Role {
        /// Everything, including deleting the tenant and naming other owners.
        Owner = "owner",
        /// Everything but deleting the tenant and managing owners.
        Admin = "admin",
        /// Reads and writes the tenant's resources.
        Member = "member",
        /// Reads the tenant's resources.
        Viewer = "viewer",
        /// Reads the tenant and its audit trail.
        Auditor = "auditor",
    }
);

/// A `resource:action` permission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Permission {
    /// `tenant:read`
    TenantRead,
    /// `tenant:write` (name, settings, branding)
    TenantWrite,
    /// `tenant:delete`
    TenantDelete,
    /// `members:read`
    MembersRead,
    /// `members:write` (roles, removal, invitations)
    MembersWrite,
    /// `api_keys:read`
    ApiKeysRead,
    /// `api_keys:write`
    ApiKeysWrite,
    /// `resources:read`
    ResourcesRead,
    /// `resources:write`
    ResourcesWrite,
    /// `audit:read`
    AuditRead,
}

impl Permission {
    /// The `resource:action` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::TenantRead => "tenant:read",
            Permission::TenantWrite => "tenant:write",
            Permission::TenantDelete => "tenant:delete",
            Permission::MembersRead => "members:read",
            Permission::MembersWrite => "members:write",
            Permission::ApiKeysRead => "api_keys:read",
            Permission::ApiKeysWrite => "api_keys:write",
            Permission::ResourcesRead => "resources:read",
            Permission::ResourcesWrite => "resources:write",
            Permission::AuditRead => "audit:read",
        }
    }
}

impl Role {
    /// The permissions this role holds in its tenant.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Owner => &[
                TenantRead,
                TenantWrite,
                TenantDelete,
                MembersRead,
                MembersWrite,
                ApiKeysRead,
                ApiKeysWrite,
                ResourcesRead,
                ResourcesWrite,
                AuditRead,
            ],
            Role::Admin => &[
                TenantRead,
                TenantWrite,
                MembersRead,
                MembersWrite,
                ApiKeysRead,
                ApiKeysWrite,
                ResourcesRead,
                ResourcesWrite,
                AuditRead,
            ],
            Role::Member => &[TenantRead, MembersRead, ResourcesRead, ResourcesWrite],
            Role::Viewer => &[TenantRead, MembersRead, ResourcesRead],
            Role::Auditor => &[TenantRead, AuditRead],
        }
    }

    /// Whether this role holds `p`.
    pub fn has(self, p: Permission) -> bool {
        self.permissions().contains(&p)
    }

    /// Checks `p` and returns the proof a service function asks for.
    pub fn grant(self, p: Permission) -> Option<Granted> {
        self.has(p).then_some(Granted(p))
    }

    /// Whether a holder of this role may give `other` to someone (a member, an invitation or
    /// an API key): nobody grants more than they hold, and only owners make owners.
    pub fn may_assign(self, other: Role) -> bool {
        match self {
            Role::Owner => true,
            Role::Admin => other != Role::Owner,
            _ => false,
        }
    }

    /// Whether a key or member with this role is at most as strong as `creator`: every
    /// permission of `self` is one `creator` holds.
    pub fn within(self, creator: Role) -> bool {
        self.permissions().iter().all(|p| creator.has(*p))
    }
}

/// Proof that a permission was checked for the caller. Only [`Role::grant`] makes one;
/// service functions take it as an argument, so a forgotten check does not compile.
#[derive(Debug, Clone, Copy)]
pub struct Granted(Permission);

impl Granted {
    /// The permission that was checked.
    pub fn permission(self) -> Permission {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_assigns_a_role_stronger_than_their_own() {
        for a in Role::ALL {
            for b in Role::ALL {
                if a.may_assign(*b) {
                    assert!(b.within(*a), "{a} may assign {b}");
                }
            }
        }
        assert!(!Role::Admin.may_assign(Role::Owner));
        assert!(!Role::Member.may_assign(Role::Viewer));
    }

    #[test]
    fn auditors_read_audit_but_write_nothing() {
        assert!(Role::Auditor.has(Permission::AuditRead));
        assert!(!Role::Auditor.has(Permission::ResourcesWrite));
        assert!(!Role::Viewer.has(Permission::ResourcesWrite));
        assert!(!Role::Member.has(Permission::AuditRead));
    }
}
