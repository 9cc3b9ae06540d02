//! Start-up: opening the stores and keys, the first-start bootstrap of the platform tenant
//! (and in single-tenant mode the default tenant), and the background jobs a serving node
//! runs. It sits above `state` (which it builds) and the services (which it calls), so
//! neither has to know about start-up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tenantd_core::access::Role;
use tenantd_core::audit::{Action, AuditDraft};
use tenantd_core::identity::{Email, NewUser, Password};
use tenantd_core::ids::{EventId, TenantId, UserId};
use tenantd_core::plans::Plans;
use tenantd_core::store::{CatalogStore, CellStore, TenantOwner};
use tenantd_core::tenant::{CellName, DisplayName, NewTenant, TenantSlug, TenantType};
use tenantd_core::{Error, Result, time};
use tokio::sync::{Mutex, Notify};

use crate::auth::keys::KeyRing;
use crate::auth::password::PasswordHashing;
use crate::cache::{self, Announcer, AuthCache, InvalidatingCatalog};
use crate::config::{Config, DbLocation, Mode};
use crate::jobs::Jobs;
use crate::limits::{Limiter, RateLimits};
use crate::state::{AppState, Bootstrap, Inner};
use crate::{relay, services};

impl AppState {
    /// Opens the stores and keys and bootstraps the platform tenant. `blobs` are the object
    /// stores for file contents, opened by the caller (the S3 client is the server's, at the
    /// edge; `tenantd_server::build_state` opens it from the configuration), and so is
    /// `sender`, the HTTP client webhook deliveries go out through.
    pub async fn build(
        config: Config,
        blobs: crate::blobs::CellBlobs,
        sender: Arc<dyn crate::webhooks::Sender>,
    ) -> Result<(Self, Option<Bootstrap>)> {
        let plans = match &config.plans_file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| Error::Internal(format!("plans_file {}: {e}", p.display())))?;
                Plans::from_yaml(&text)
                    .map_err(|e| Error::Internal(format!("plans_file {}: {e}", p.display())))?
            }
            None => Plans::builtin(),
        };
        if plans.get("enterprise").is_none() {
            return Err(Error::Internal(
                "plans_file: the platform tenant needs an `enterprise` plan".into(),
            ));
        }
        let catalog: Arc<dyn CatalogStore> = match &config.catalog {
            DbLocation::Sqlite(path) => Arc::new(tenantd_store::sqlite::open_catalog(path).await?),
            DbLocation::Postgres(loc) => {
                Arc::new(tenantd_store::postgres::open_catalog(loc).await?)
            }
        };
        let mut cells: HashMap<CellName, Arc<dyn CellStore>> = HashMap::new();
        for c in &config.cells {
            let cell: Arc<dyn CellStore> = match &c.location {
                DbLocation::Sqlite(path) => {
                    Arc::new(tenantd_store::sqlite::open_cell(c.name.as_str(), path).await?)
                }
                DbLocation::Postgres(loc) => {
                    Arc::new(tenantd_store::postgres::open_cell(c.name.as_str(), loc).await?)
                }
            };
            cells.insert(c.name.clone(), cell);
        }
        let auth_cache = Arc::new(AuthCache::new(std::time::Duration::from_millis(
            config.auth_cache_ttl_ms,
        )));
        let announcer = match &config.redis_url {
            Some(url) => Some(Arc::new(
                Announcer::new(url.expose()).map_err(Error::Internal)?,
            )),
            None => None,
        };
        let catalog: Arc<dyn CatalogStore> = Arc::new(InvalidatingCatalog::new(
            catalog,
            auth_cache.clone(),
            announcer.clone(),
        ));
        let keys = KeyRing::load(
            catalog.as_ref(),
            &config.master_key,
            &config.issuer(),
            config.access_ttl_secs,
        )
        .await?;
        let passwords = PasswordHashing::new(config.password_cost)?;
        let (platform, boot) = bootstrap(&config, catalog.as_ref(), &passwords).await?;
        let platform_cell = catalog
            .find_tenant(platform)
            .await?
            .map(|t| t.cell)
            .ok_or(Error::Internal("the platform tenant is gone".into()))?;
        if config
            .cells
            .iter()
            .any(|c| c.name == platform_cell && c.dedicated)
        {
            return Err(Error::Internal(format!(
                "cells: the platform tenant lives in cell {platform_cell}, which cannot be dedicated"
            )));
        }
        if !cells.contains_key(&platform_cell) {
            return Err(Error::Internal(format!(
                "cells: the platform tenant lives in cell {platform_cell}, which is not configured"
            )));
        }
        let config_redis = config.redis_url.clone();
        let state = AppState(Arc::new(Inner {
            config,
            catalog,
            auth_cache,
            announcer,
            invalidations_subscribed: Arc::default(),
            cells,
            blobs: blobs.deployment().store.clone(),
            cell_blobs: blobs,
            sender,
            webhook_stats: Default::default(),
            plans: plans.clone(),
            keys,
            passwords,
            limiter: match &config_redis {
                Some(url) => RateLimits::redis(url.expose()).map_err(Error::Internal)?,
                None => RateLimits::local(),
            },
            sign_in: Limiter::with_max_keys(100_000),
            fallback_plan: plans
                .get("free")
                .cloned()
                .ok_or(Error::Internal("plans_file: no free plan".into()))?,
            platform,
            platform_cell,
            uploads: tokio::sync::Semaphore::new(4),
            relay_lock: Mutex::new(()),
            relay_kick: Notify::new(),
            run_stats: Default::default(),
        }));
        if state.config.mode == Mode::Single {
            ensure_default_tenant(&state).await?;
        }
        state.relay_now().await;
        Ok((state, boot))
    }
}

/// Starts the background jobs of a serving node.
pub fn start_serving(state: &AppState) -> Jobs {
    let mut jobs = Jobs::new();
    let st = state.clone();
    jobs.start("audit-relay", move |stop| relay::job(st, stop));
    // Reservations of unanswered uploads (a killed process, a request cut off by its timeout):
    // at start, and every few seconds after.
    let st = state.clone();
    jobs.every("upload-sweep", Duration::from_secs(5), move || {
        let st = st.clone();
        async move {
            services::files::release_expired_uploads(&st)
                .await
                .map(|_| ())
        }
    });
    let st = state.clone();
    jobs.start("webhook-delivery", move |stop| {
        crate::webhooks::delivery::job(st, stop)
    });
    let st = state.clone();
    jobs.start("run-expiry", move |stop| crate::runs::expiry_job(st, stop));
    let st = state.clone();
    jobs.every("run-reconciler", Duration::from_secs(60), move || {
        let st = st.clone();
        async move { crate::runs::reconcile(&st).await.map(|_| ()) }
    });
    // Deleted tenants past their purge_after, and API exports past their expiry: at start,
    // and every minute after.
    let st = state.clone();
    jobs.every("tenant-purge", Duration::from_secs(60), move || {
        let st = st.clone();
        async move {
            crate::mobility::purge::purge_due(&st, false).await?;
            crate::mobility::downloads::sweep(&st).await.map(|_| ())
        }
    });
    // The event log's retention: at start, and hourly after.
    // Tenant moves whose runner stopped (a node gone, a CLI killed) are carried on once their
    // lease runs out.
    if state.config.resume_moves {
        let st = state.clone();
        let every = Duration::from_millis(state.config.move_lease_ms);
        jobs.every("move-resume", every, move || {
            let st = st.clone();
            async move {
                crate::mobility::lease::resume_stopped(&st)
                    .await
                    .map(|_| ())
            }
        });
    }
    let st = state.clone();
    jobs.every("event-retention", Duration::from_secs(3600), move || {
        let st = st.clone();
        async move { services::events::prune(&st).await.map(|_| ()) }
    });
    if let Some(url) = state.config.redis_url.clone() {
        let (cache, subscribed) = (
            state.auth_cache.clone(),
            state.invalidations_subscribed.clone(),
        );
        jobs.start("cache-invalidation", move |mut stop| async move {
            tokio::select! {
                _ = cache::subscribe(url.expose().to_owned(), cache, subscribed) => {}
                _ = stop.stopped() => {}
            }
        });
    }
    jobs
}

/// The system's own audit draft (no request).
pub fn system_event(
    tenant: TenantId,
    action: Action,
    resource: &str,
    resource_id: Option<String>,
    details: serde_json::Value,
) -> AuditDraft {
    AuditDraft {
        id: EventId::new(),
        tenant_id: tenant,
        actor: "system".into(),
        action: action.text().into_owned(),
        resource: resource.into(),
        resource_id,
        outcome: "success".into(),
        request_id: None,
        ip: None,
        at: time::format(time::now()),
        details,
    }
}

async fn bootstrap(
    config: &Config,
    catalog: &dyn CatalogStore,
    passwords: &PasswordHashing,
) -> Result<(TenantId, Option<Bootstrap>)> {
    if let Some(t) = catalog.find_tenant_by_slug("platform").await? {
        return Ok((t.id, None));
    }
    let email_text = config
        .admin_email
        .clone()
        .unwrap_or_else(|| "admin@tenantd.local".into());
    let email = Email::parse(&email_text, "TENANTD_ADMIN_EMAIL")
        .map_err(|e| Error::Internal(format!("{}: {}", e.field, e.message)))?;
    let (password, generated) = match &config.admin_password {
        Some(p) => (p.expose().to_owned(), None),
        None => {
            let p = crate::auth::secrets::random_secret()?[..24].to_owned();
            (p.clone(), Some(p))
        }
    };
    let password = Password::parse(&password, "TENANTD_ADMIN_PASSWORD")
        .map_err(|e| Error::Internal(format!("{}: {}", e.field, e.message)))?;
    let hash = passwords.hash(&password).await?;
    let tenant = NewTenant {
        id: TenantId::new(),
        slug: TenantSlug::platform(),
        name: DisplayName::parse("Platform", "name").map_err(|_| Error::Internal("name".into()))?,
        kind: TenantType::Platform,
        plan: "enterprise".into(),
        region: None,
        // Pooled: the platform's global resources are read by the tenants of its cell.
        cell: config
            .cells
            .iter()
            .find(|c| !c.dedicated)
            .map(|c| c.name.clone())
            .ok_or(Error::Internal("no pooled cell".into()))?,
        dedicated: false,
        settings: serde_json::json!({}),
    };
    let user = NewUser {
        id: UserId::new(),
        email: email.clone(),
        name: "Platform admin".into(),
        password_hash: Some(hash),
    };
    let audit = vec![system_event(
        tenant.id,
        Action::TenantCreate,
        "tenants",
        Some(tenant.id.to_string()),
        serde_json::json!({"slug": "platform", "bootstrap": true}),
    )];
    let id = tenant.id;
    catalog
        .create_tenant(tenant, TenantOwner::NewUser(user), None, audit)
        .await?;
    Ok((
        id,
        Some(Bootstrap {
            admin_email: email.as_str().to_owned(),
            generated_password: generated,
        }),
    ))
}

async fn ensure_default_tenant(state: &AppState) -> Result<()> {
    let slug = TenantSlug::parse(&state.config.default_tenant)
        .map_err(|e| Error::Internal(format!("default_tenant: {}", e.message)))?;
    if state
        .catalog
        .find_tenant_by_slug(slug.as_str())
        .await?
        .is_some()
    {
        return Ok(());
    }
    let admins = state.catalog.list_members(state.platform).await?;
    let owner = admins
        .iter()
        .find(|m| m.role == Role::Owner)
        .ok_or(Error::Internal("platform has no owner".into()))?;
    let tenant = NewTenant {
        id: TenantId::new(),
        slug: slug.clone(),
        name: DisplayName::parse("Default", "name").map_err(|_| Error::Internal("name".into()))?,
        kind: TenantType::Client,
        plan: "enterprise".into(),
        region: None,
        cell: CellName::default(),
        dedicated: false,
        settings: serde_json::json!({}),
    };
    let plan = state
        .plans
        .get("enterprise")
        .cloned()
        .ok_or(Error::Internal("plans_file: no enterprise plan".into()))?;
    let placement = services::placement::placement(state, None, &plan, false)?;
    let audit = vec![system_event(
        tenant.id,
        Action::TenantCreate,
        "tenants",
        Some(tenant.id.to_string()),
        serde_json::json!({"slug": slug.as_str(), "single_mode_default": true}),
    )];
    services::placement::create_placed(
        state,
        tenant,
        &placement,
        TenantOwner::Existing(owner.user_id),
        None,
        audit,
    )
    .await?;
    Ok(())
}
