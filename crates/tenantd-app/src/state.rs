//! Application state: stores, plans, keys, caches and limits, shared by every request and
//! job. It is built at start-up by `bootstrap.rs`.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;

use tenantd_core::ids::TenantId;
use tenantd_core::plans::{Plan, Plans};
use tenantd_core::store::{CatalogStore, CellStore};
use tenantd_core::tenant::{CellName, Tenant, TenantScope};
use tenantd_core::{Error, Result};
use tokio::sync::{Mutex, Notify};

use crate::auth::keys::KeyRing;
use crate::auth::password::PasswordHashing;
use crate::cache::{Announcer, AuthCache};
use crate::config::Config;
use crate::limits::{Limiter, RateLimits};

/// Shared state: cheap to clone.
#[derive(Clone)]
pub struct AppState(pub(crate) Arc<Inner>);

/// What the state holds.
pub struct Inner {
    /// The validated configuration.
    pub config: Config,
    /// The catalog (its changes invalidate [`Inner::auth_cache`] here and on other nodes).
    pub catalog: Arc<dyn CatalogStore>,
    /// Resolved credentials, reused for `auth_cache_ttl_ms`.
    pub auth_cache: Arc<AuthCache>,
    /// Announces this node's invalidations through Redis, when configured.
    pub announcer: Option<Arc<Announcer>>,
    /// Whether this node hears the other nodes' invalidations now.
    pub invalidations_subscribed: Arc<std::sync::atomic::AtomicBool>,
    /// The cells, by name.
    pub cells: HashMap<CellName, Arc<dyn CellStore>>,
    /// The plans.
    pub plans: Plans,
    /// The deployment's object store: exports' downloads, and the files of every cell
    /// without a store of its own.
    pub blobs: Arc<dyn object_store::ObjectStore>,
    /// The object store of each cell's file contents (keys under `tenants/<tenant_id>/`).
    pub cell_blobs: crate::blobs::CellBlobs,
    /// The HTTP client webhook deliveries go out through (the server's).
    pub sender: Arc<dyn crate::webhooks::Sender>,
    /// Webhook attempts by outcome, on this node.
    pub webhook_stats: crate::webhooks::Stats,
    /// Signing keys.
    pub keys: KeyRing,
    /// Password hashing.
    pub passwords: PasswordHashing,
    /// Rate limits (shared through Redis when configured).
    pub limiter: RateLimits,
    /// Sign-in throttling by client address and by account.
    pub sign_in: Limiter,
    /// The `free` plan, for a tenant whose plan left the plans file.
    pub fallback_plan: Arc<Plan>,
    /// The platform tenant.
    pub platform: TenantId,
    /// The cell that holds the platform tenant's data, hence every global item.
    pub platform_cell: CellName,
    /// Uploads being read at once (each may hold up to `file_limit_bytes` in memory).
    pub uploads: tokio::sync::Semaphore,
    /// Serialises audit relay flushes.
    pub relay_lock: Mutex<()>,
    /// Wakes the relay.
    pub relay_kick: Notify,
    /// Agent-run figures of this node, and the wake-up of waiting leases.
    pub run_stats: crate::run_stats::RunStats,
}

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// What the first start did, for `serve` to print.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The platform admin's email.
    pub admin_email: String,
    /// The generated one-time password, when none was configured (first start only).
    pub generated_password: Option<String>,
}

impl AppState {
    /// The cell holding a scope's tenant.
    pub fn cell(&self, scope: &TenantScope) -> Result<&Arc<dyn CellStore>> {
        self.cells
            .get(scope.cell().as_str())
            .ok_or(Error::Unavailable)
    }

    /// A tenant's plan (a tenant on a plan that left the plans file gets `free` limits).
    pub fn plan_of(&self, tenant: &Tenant) -> &Arc<Plan> {
        self.plans
            .get(tenant.plan.as_str())
            .unwrap_or(&self.fallback_plan)
    }
}
