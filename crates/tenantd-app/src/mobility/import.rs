//! `tenantd tenant import` (and restore): a tenant put in place from its archive.
//!
//! 1. The archive is read through once and checked whole ([`archive::walk`]); nothing is
//!    written until every check has passed.
//! 2. The tenant's id and slug must be free here (`CONFLICT` names which is taken), the cell
//!    must exist and serve the tenant's region.
//! 3. Rows of the tenant left in any cell by an import that did not finish (the catalog does
//!    not know the tenant, so nothing else can own them) are removed with their blobs.
//! 4. The cell's rows are written part by part, the blobs put, and `tenant.imported` appended
//!    after the archived chain; last, one catalog transaction makes the tenant exist: its
//!    row, its members (linked to an account with the same email, or a new account without a
//!    password unless the archive carries credentials) and its counters. Until that commit
//!    the tenant is not there for anyone; if the import fails or is killed before it, the
//!    next import of the archive cleans up (3).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use object_store::ObjectStoreExt;
use object_store::path::Path as BlobPath;
use serde_json::json;
use tenantd_core::audit::Action;
use tenantd_core::ids::{FileId, TenantId};
use tenantd_core::resource::blob_key;
use tenantd_core::store::Accounts;
use tenantd_core::store::{CellStore, Row, Table, Value};
use tenantd_core::tenant::{CellName, Region, Tenant, TenantScope, TenantSlug};
use tenantd_core::{Error, Result};

use super::Progress;
use super::archive::{self, Item, Manifest, Place};
use crate::context::Caller;
use crate::state::AppState;

/// What an import is asked for.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Another slug for the tenant (`--as`).
    pub slug: Option<TenantSlug>,
    /// The cell to put it in (`--cell`); by default where a new tenant of its region and
    /// plan would go.
    pub cell: Option<CellName>,
    /// Public keys (base64url) one of which must have signed the archive (`--trust-key`).
    pub trusted: Option<Vec<String>>,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportReport {
    /// The tenant, as it now is.
    pub tenant: Tenant,
    /// The archive's manifest.
    pub manifest: Manifest,
    /// Members linked to an account that was already here.
    pub linked: usize,
    /// Members given a new account.
    pub created: usize,
    /// Whether rows of an earlier import that did not finish were removed first.
    pub cleaned_up: bool,
}

fn refused(why: String) -> Error {
    Error::invalid("archive", why)
}

/// The catalog rows of an archive (a few: the tenant, its members, its counters).
type CatalogRows = Vec<(&'static Table, Vec<Row>)>;

/// Reads and checks the whole archive, writing nothing: its manifest and catalog rows.
pub async fn check(
    state: &AppState,
    path: &Path,
    trusted: Option<Vec<String>>,
) -> Result<(Manifest, CatalogRows)> {
    let tables = (state.catalog.copy_tables(), cell_tables(state)?);
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let file = open(&path)?;
        let mut catalog: CatalogRows = Vec::new();
        let manifest = archive::walk(file, tables, trusted.as_deref(), |item| {
            if let Item::Rows {
                place: Place::Catalog,
                table,
                rows,
            } = item
            {
                match catalog.last_mut() {
                    Some((t, r)) if t.name == table.name => r.extend(rows),
                    _ => catalog.push((table, rows)),
                }
            }
            Ok(())
        })
        .map_err(refused)?;
        Ok((manifest, catalog))
    })
    .await
    .map_err(|e| Error::Internal(format!("archive check: {e}")))?
}

fn open(path: &Path) -> Result<BufReader<File>> {
    File::open(path)
        .map(|f| BufReader::with_capacity(1 << 16, f))
        .map_err(|e| Error::invalid("archive", format!("cannot open {}: {e}", path.display())))
}

fn cell_tables(state: &AppState) -> Result<&'static [Table]> {
    state
        .cells
        .values()
        .next()
        .map(|c| c.copy_tables())
        .ok_or(Error::Unavailable)
}

fn text<'a>(table: &Table, row: &'a Row, column: &str) -> Option<&'a str> {
    match table.index(column).and_then(|i| row.get(i)) {
        Some(Value::Text(s)) => Some(s),
        _ => None,
    }
}

fn set(table: &Table, row: &mut Row, column: &str, v: Value) {
    if let Some(i) = table.index(column) {
        row[i] = v;
    }
}

/// Imports the archive at `path`.
pub async fn import(
    state: &AppState,
    op: &Caller,
    path: &Path,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    progress.phase("checking the archive", None);
    let (manifest, catalog_rows) = check(state, path, opts.trusted.clone()).await?;
    put(
        state,
        op,
        path,
        opts,
        progress,
        manifest,
        catalog_rows,
        Action::TenantImported,
    )
    .await
}

/// `tenantd tenant restore`: the tenant put back to the state of its archive. Its rows and
/// blobs here are removed (its members' accounts stay, passwords included, and are linked
/// again), then the archive is imported into the cell the tenant is in, and
/// `tenant.restored` follows the archived chain. Other tenants' rows are not touched: every
/// removal is bound to this tenant. Killed midway, a rerun finds the tenant gone and
/// imports it.
pub async fn restore(
    state: &AppState,
    op: &Caller,
    path: &Path,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<ImportReport> {
    progress.phase("checking the archive", None);
    let (manifest, catalog_rows) = check(state, path, opts.trusted.clone()).await?;
    let id = archived_id(&manifest)?;
    let mut opts = opts.clone();
    if let Some(t) = state.catalog.find_tenant(id).await? {
        progress.phase("removing the tenant's current rows", None);
        opts.cell.get_or_insert(t.cell.clone());
        for (name, cell) in &state.cells {
            let scope = TenantScope::unscoped_trusted(id, name.clone());
            cell.copy_remove(&scope, Accounts::Drop).await?;
        }
        remove_blobs(state, id).await?;
        let scope = TenantScope::unscoped_trusted(id, t.cell.clone());
        state.catalog.copy_remove(&scope, Accounts::Keep).await?;
    }
    put(
        state,
        op,
        path,
        &opts,
        progress,
        manifest,
        catalog_rows,
        Action::TenantRestored,
    )
    .await
}

fn archived_id(manifest: &Manifest) -> Result<TenantId> {
    manifest
        .tenant
        .id
        .parse()
        .map(TenantId)
        .map_err(|_| refused("a tenant id that is not an id".into()))
}

/// Puts a checked archive in place.
#[allow(clippy::too_many_arguments)]
async fn put(
    state: &AppState,
    op: &Caller,
    path: &Path,
    opts: &ImportOptions,
    progress: &dyn Progress,
    manifest: Manifest,
    catalog_rows: CatalogRows,
    action: Action,
) -> Result<ImportReport> {
    let tenant_id = archived_id(&manifest)?;
    let (tenants, tenant_row) = match catalog_rows.first() {
        Some((t, rows)) if t.name == "tenants" && rows.len() == 1 => (*t, rows[0].clone()),
        _ => return Err(refused("the archive holds no tenant row".into())),
    };
    let slug = match &opts.slug {
        Some(s) => s.clone(),
        None => TenantSlug::parse(text(tenants, &tenant_row, "slug").unwrap_or_default())?,
    };
    let region = text(tenants, &tenant_row, "region")
        .map(|r| Region::parse(r, "region"))
        .transpose()?;
    let plan = text(tenants, &tenant_row, "plan")
        .unwrap_or("free")
        .to_owned();
    let cell = target_cell(state, opts.cell.as_ref(), region, &plan)?;

    if let Some(t) = state.catalog.find_tenant(tenant_id).await? {
        return Err(Error::conflict(
            "tenant_id",
            format!(
                "tenant {tenant_id} is already here (as {}); restore puts it back to an archive",
                t.slug
            ),
        ));
    }
    if state
        .catalog
        .find_tenant_by_slug(slug.as_str())
        .await?
        .is_some()
    {
        return Err(Error::conflict(
            "slug",
            format!("slug {slug} is taken; import with --as <slug>"),
        ));
    }
    let cleaned_up = remove_leftovers(state, tenant_id).await?;

    let scope = TenantScope::unscoped_trusted(tenant_id, cell.clone());
    let store = state.cell(&scope)?.clone();
    let written = write_cell(state, &store, &scope, path, opts, progress).await;
    let result = match written {
        Ok(()) => {
            finish(
                state,
                op,
                &store,
                &scope,
                &slug,
                tenant_row,
                catalog_rows,
                &manifest,
                action,
            )
            .await
        }
        Err(e) => Err(e),
    };
    let (linked, created) = match result {
        Ok(v) => v,
        Err(e) => {
            // Nothing of the tenant is in the catalog unless another import of it won a
            // race: only then are the rows someone else's.
            if state.catalog.find_tenant(tenant_id).await?.is_none() {
                remove_leftovers(state, tenant_id).await?;
            }
            return Err(e);
        }
    };
    let tenant = state
        .catalog
        .find_tenant(tenant_id)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(ImportReport {
        tenant,
        manifest,
        linked,
        created,
        cleaned_up,
    })
}

/// The cell the tenant goes to: the one named (which must serve its region), or where a new
/// tenant of its region and plan would be placed.
fn target_cell(
    state: &AppState,
    named: Option<&CellName>,
    region: Option<Region>,
    plan: &str,
) -> Result<CellName> {
    if let Some(name) = named {
        let cfg = state
            .config
            .cells
            .iter()
            .find(|c| c.name == *name)
            .ok_or_else(|| Error::invalid("cell", format!("no cell named {name}")))?;
        if let Some(r) = region
            && cfg.region.as_deref() != Some(r.as_str())
        {
            return Err(Error::invalid(
                "cell",
                format!("the tenant's data must stay in region {r}; cell {name} is not in it"),
            ));
        }
        return Ok(name.clone());
    }
    let plan = state
        .plans
        .get(plan)
        .unwrap_or(&state.fallback_plan)
        .clone();
    let placed = crate::services::placement::placement(state, region, &plan, false)?;
    placed
        .cells
        .into_iter()
        .next()
        .ok_or_else(|| Error::invalid("cell", "no cell takes this tenant"))
}

/// Removes the rows and blobs of a tenant the catalog does not know from every cell; whether
/// there were any.
pub(crate) async fn remove_leftovers(state: &AppState, tenant: TenantId) -> Result<bool> {
    let mut any = false;
    for (name, cell) in &state.cells {
        let scope = TenantScope::unscoped_trusted(tenant, name.clone());
        let counts = cell.copy_counts(&scope).await?;
        if counts.values().any(|n| *n > 0) {
            cell.copy_remove(&scope, Accounts::Drop).await?;
            any = true;
        }
    }
    any |= remove_blobs(state, tenant).await? > 0;
    Ok(any)
}

/// Removes every blob under the tenant's prefix; how many.
pub(crate) async fn remove_blobs(state: &AppState, tenant: TenantId) -> Result<u64> {
    let mut removed = 0;
    for b in state.cell_blobs.all() {
        removed +=
            super::downloads::remove_prefix(b.store.as_ref(), &format!("tenants/{tenant}")).await?;
    }
    Ok(removed)
}

/// Writes the cell's rows and the blobs, read from the archive a second time.
async fn write_cell(
    state: &AppState,
    store: &std::sync::Arc<dyn CellStore>,
    scope: &TenantScope,
    path: &Path,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> Result<()> {
    let tables = (state.catalog.copy_tables(), store.copy_tables());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Item>(4);
    let path: PathBuf = path.to_owned();
    let trusted = opts.trusted.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let file = open(&path)?;
        archive::walk(file, tables, trusted.as_deref(), |item| {
            tx.blocking_send(item)
                .map_err(|_| "the import stopped".to_owned())
        })
        .map_err(refused)
    });
    let tenant = scope.tenant_id();
    let mut current = "";
    let mut failed = None;
    let mut pending: Option<(&'static Table, Vec<Row>)> = None;
    while let Some(item) = rx.recv().await {
        let step = async {
            match item {
                Item::Rows {
                    place: Place::Cell,
                    table,
                    mut rows,
                } => {
                    if table.name != current {
                        flush(store, scope, &mut pending, progress).await?;
                        current = table.name;
                        progress.phase(&format!("cell/{}", table.name), None);
                    }
                    if table.has_sealed() {
                        for row in &mut rows {
                            reseal(state, table, row)?;
                        }
                    }
                    if pending.as_ref().is_some_and(|(t, _)| t.name != table.name) {
                        flush(store, scope, &mut pending, progress).await?;
                    }
                    let (_, buf) = pending.get_or_insert_with(|| (table, Vec::new()));
                    buf.extend(rows);
                    if buf.len() >= FLUSH_ROWS {
                        flush(store, scope, &mut pending, progress).await?;
                    }
                }
                Item::Rows { .. } => {}
                Item::Blob { file_id, bytes } => {
                    flush(store, scope, &mut pending, progress).await?;
                    if current != "blobs" {
                        current = "blobs";
                        progress.phase("blobs", None);
                    }
                    let id = FileId(
                        file_id
                            .parse()
                            .map_err(|_| refused(format!("blob of file {file_id:?}")))?,
                    );
                    state
                        .cell_blobs
                        .of(scope.cell())
                        .store
                        .put(&BlobPath::from(blob_key(tenant, id)), bytes.into())
                        .await
                        .map_err(|e| Error::Internal(format!("blob {id}: {e}")))?;
                    progress.advance(1);
                }
            }
            Ok::<(), Error>(())
        };
        if let Err(e) = step.await {
            failed = Some(e);
            break;
        }
    }
    if failed.is_none()
        && let Err(e) = flush(store, scope, &mut pending, progress).await
    {
        failed = Some(e);
    }
    drop(rx);
    let read = reader
        .await
        .map_err(|e| Error::Internal(format!("archive read: {e}")))?;
    match (failed, read) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => Err(e),
        (None, Ok(_)) => Ok(()),
    }
}

/// Rows written in one transaction: a commit (and its WAL flush) per 10,000 rows rather than
/// per batch read, while no transaction holds SQLite's one writer for long.
const FLUSH_ROWS: usize = 10_000;

/// Writes the rows gathered for one table.
async fn flush(
    store: &std::sync::Arc<dyn CellStore>,
    scope: &TenantScope,
    pending: &mut Option<(&'static Table, Vec<Row>)>,
    progress: &dyn Progress,
) -> Result<()> {
    if let Some((table, rows)) = pending.take() {
        let n = rows.len() as u64;
        store.copy_insert(scope, vec![(table, rows)]).await?;
        progress.advance(n);
    }
    Ok(())
}

/// A webhook endpoint's secret never travels in an archive: each imported endpoint signs
/// with a new one (rotate it to read it).
fn reseal(state: &AppState, table: &Table, row: &mut Row) -> Result<()> {
    if table.name != "webhook_endpoints" {
        return Err(Error::Internal(format!(
            "{} has a sealed column",
            table.name
        )));
    }
    let id = text(table, row, "id").unwrap_or_default().to_owned();
    let (_, key) = crate::webhooks::outbound::new_secret()?;
    let sealed = state.keys.master().seal(&format!("webhook:{id}"), &key)?;
    set(table, row, "secret", Value::Bytes(sealed));
    set(table, row, "old_secret", Value::Null);
    set(table, row, "old_secret_until", Value::Null);
    Ok(())
}

/// `tenant.imported` after the archived chain, then the catalog in one transaction.
#[allow(clippy::too_many_arguments)]
async fn finish(
    state: &AppState,
    op: &Caller,
    store: &std::sync::Arc<dyn CellStore>,
    scope: &TenantScope,
    slug: &TenantSlug,
    mut tenant_row: Row,
    catalog_rows: CatalogRows,
    manifest: &Manifest,
    action: Action,
) -> Result<(usize, usize)> {
    let tenant = scope.tenant_id();
    let mut parts: CatalogRows = Vec::new();
    let (mut linked, mut created) = (0, 0);
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    let mut members = 0i64;
    for (table, rows) in catalog_rows {
        let mut out = Vec::with_capacity(rows.len());
        for mut row in rows {
            match table.name {
                "tenants" => {
                    set(
                        table,
                        &mut tenant_row,
                        "slug",
                        Value::Text(slug.to_string()),
                    );
                    set(
                        table,
                        &mut tenant_row,
                        "cell",
                        Value::Text(scope.cell().to_string()),
                    );
                    row = tenant_row.clone();
                }
                "users" => {
                    let id = text(table, &row, "id").unwrap_or_default().to_owned();
                    let email = text(table, &row, "email").unwrap_or_default().to_owned();
                    if let Some(u) = state.catalog.find_user_by_email(&email).await? {
                        ids.insert(id, u.id.to_string());
                        linked += 1;
                        continue;
                    }
                    set(
                        table,
                        &mut row,
                        "last_tenant_id",
                        Value::Text(tenant.to_string()),
                    );
                    ids.insert(id.clone(), id);
                    created += 1;
                }
                "memberships" => {
                    let user = text(table, &row, "user_id").unwrap_or_default().to_owned();
                    let mapped = ids.get(&user).cloned().ok_or_else(|| {
                        refused(format!(
                            "a membership of user {user}, who is not in the archive"
                        ))
                    })?;
                    set(table, &mut row, "user_id", Value::Text(mapped));
                    members += 1;
                }
                _ => {}
            }
            out.push(row);
        }
        parts.push((table, out));
    }
    // The `users` quota counts members and pending invitations; invitations are not carried.
    for (table, rows) in &mut parts {
        if table.name == "quota_counters" {
            for row in rows.iter_mut() {
                if text(table, row, "quota") == Some("users") {
                    set(table, row, "used", Value::Int(members));
                }
            }
        }
    }
    let ev = op.event(
        tenant,
        action,
        "tenants",
        Some(tenant.to_string()),
        json!({"source": manifest.source.deployment, "source_cell": manifest.source.cell,
               "archived_at": manifest.created_at, "audit_seq": manifest.audit.seq,
               "slug": slug.to_string(), "cell": scope.cell().to_string(),
               "members_linked": linked, "members_created": created}),
    );
    store.append_audit(scope, vec![ev]).await?;
    state.catalog.copy_insert(scope, parts).await?;
    Ok((linked, created))
}
