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
        /// A worker process: leases agent runs and reports on the run it holds, nothing else.
        /// Only the platform tenant's API keys have it (never a member or an invitation).
        Worker = "worker",
    }
);

/// The permissions, written once: each makes a [`Permission`] variant, its `resource:action`
/// name, and the zero-sized type of the same name in [`perm`] that a proof carries.
macro_rules! permissions {
    ($($(#[$m:meta])* $name:ident = $text:literal),+ $(,)?) => {
        /// A `resource:action` permission.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum Permission {
            $($(#[$m])* $name),+
        }

        impl Permission {
            /// The `resource:action` name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Permission::$name => $text),+
                }
            }
        }

        /// One zero-sized type per permission, so a proof names its permission in its type.
        pub mod perm {
            use super::Permission;

            mod sealed {
                pub trait Sealed {}
            }

            /// A permission as a type. Sealed: the set is this module's.
            pub trait Perm: sealed::Sealed + Send + Sync + 'static {
                /// The permission it stands for.
                const PERMISSION: Permission;
            }

            $(
                $(#[$m])*
                #[derive(Debug, Clone, Copy)]
                pub struct $name;
                impl sealed::Sealed for $name {}
                impl Perm for $name {
                    const PERMISSION: Permission = Permission::$name;
                }
            )+
        }
    };
}

permissions!(
    /// `tenant:read`
    TenantRead = "tenant:read",
    /// `tenant:write` (name, settings, branding)
    TenantWrite = "tenant:write",
    /// `tenant:delete`
    TenantDelete = "tenant:delete",
    /// `members:read`
    MembersRead = "members:read",
    /// `members:write` (roles, removal, invitations)
    MembersWrite = "members:write",
    /// `api_keys:read`
    ApiKeysRead = "api_keys:read",
    /// `api_keys:write`
    ApiKeysWrite = "api_keys:write",
    /// `resources:read`
    ResourcesRead = "resources:read",
    /// `resources:write`
    ResourcesWrite = "resources:write",
    /// `audit:read`
    AuditRead = "audit:read",
    /// `events:read` (the event log)
    EventsRead = "events:read",
    /// `webhooks:write` (endpoints, their secrets and deliveries)
    WebhooksWrite = "webhooks:write",
    /// `runs:read` (the tenant's agent runs)
    RunsRead = "runs:read",
    /// `runs:write` (start and cancel agent runs)
    RunsWrite = "runs:write",
    /// `runs:work` (lease runs of every tenant and report on them; in the platform tenant)
    RunsWork = "runs:work",
    /// `platform:admin`: tenant administration across tenants. No tenant role holds it; it is
    /// an owner's or admin's of the platform tenant ([`grant_platform_admin`]).
    PlatformAdmin = "platform:admin",
);

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
                EventsRead,
                WebhooksWrite,
                RunsRead,
                RunsWrite,
                RunsWork,
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
                EventsRead,
                WebhooksWrite,
                RunsRead,
                RunsWrite,
                RunsWork,
            ],
            Role::Member => &[
                TenantRead,
                MembersRead,
                ResourcesRead,
                ResourcesWrite,
                RunsRead,
                RunsWrite,
            ],
            Role::Viewer => &[TenantRead, MembersRead, ResourcesRead, RunsRead],
            Role::Auditor => &[TenantRead, AuditRead],
            Role::Worker => &[RunsWork],
        }
    }

    /// Whether this role holds `p`.
    pub fn has(self, p: Permission) -> bool {
        self.permissions().contains(&p)
    }

    /// Checks the permission `P` and returns the proof a service function asks for.
    pub fn grant<P: perm::Perm>(self) -> Option<Granted<P>> {
        self.has(P::PERMISSION)
            .then_some(Granted(std::marker::PhantomData))
    }

    /// Whether a holder of this role may give `other` to someone (a member, an invitation or
    /// an API key): nobody grants more than they hold, and only owners make owners.
    pub fn may_assign(self, other: Role) -> bool {
        if other == Role::Worker {
            // A worker is a key of the platform tenant: `create_api_key` checks the tenant.
            return matches!(self, Role::Owner | Role::Admin);
        }
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

/// The platform-admin proof: for an owner or admin of the platform tenant, and nobody else.
pub fn grant_platform_admin(
    home: crate::tenant::TenantType,
    role: Role,
) -> Option<Granted<perm::PlatformAdmin>> {
    (home == crate::tenant::TenantType::Platform && matches!(role, Role::Owner | Role::Admin))
        .then_some(Granted(std::marker::PhantomData))
}

/// Proof that the permission `P` was checked for the caller. Only [`Role::grant`] makes one
/// (the field is private, and there is no `Default`); a service function takes the proof of
/// the permission it needs, so a forgotten check — or the wrong one — does not compile:
///
/// ```compile_fail
/// use tenantd_core::access::{Granted, Role, perm};
/// fn write_something(_: Granted<perm::ResourcesWrite>) {}
/// let read = Role::Viewer.grant::<perm::ResourcesRead>().unwrap();
/// write_something(read); // a read proof is not a write proof
/// ```
///
/// ```compile_fail
/// use tenantd_core::access::{Granted, perm};
/// let forged: Granted<perm::ResourcesWrite> = Granted(std::marker::PhantomData);
/// ```
///
/// ```
/// use tenantd_core::access::{Granted, Role, perm};
/// fn write_something(_: Granted<perm::ResourcesWrite>) {}
/// write_something(Role::Member.grant::<perm::ResourcesWrite>().unwrap());
/// assert!(Role::Viewer.grant::<perm::ResourcesWrite>().is_none());
/// ```
#[derive(Debug)]
pub struct Granted<P: perm::Perm>(std::marker::PhantomData<P>);

impl<P: perm::Perm> Clone for Granted<P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P: perm::Perm> Copy for Granted<P> {}

impl<P: perm::Perm> Granted<P> {
    /// The permission that was checked.
    pub fn permission(self) -> Permission {
        P::PERMISSION
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

    #[test]
    fn a_worker_works_runs_and_reads_nothing() {
        assert_eq!(Role::Worker.permissions(), &[Permission::RunsWork]);
        for p in [
            Permission::ResourcesRead,
            Permission::TenantRead,
            Permission::RunsRead,
        ] {
            assert!(!Role::Worker.has(p));
        }
        assert!(!Role::Member.has(Permission::RunsWork));
    }
}
