//! `tenantd tenant move <slug> --to <cell>`: a tenant's rows moved to another cell while it
//! keeps serving, with a write freeze of the catch-up's length (`docs/design/mobility.md`).
//!
//! Phases, each recorded in `tenant_moves` before the next begins:
//! - `copying`: the source's fence row is made (writes still pass, each now holding it); any
//!   rows of the tenant in the target are removed; every table is copied page by page
//!   ([`super::copying`]); then catch-up passes copy what changed meanwhile (appended rows,
//!   stamped rows, small tables whole), each pass shorter than the last; and the blobs, when
//!   the cells keep their files in different object stores (`blobs.rs`).
//! - `frozen`: the tenant's status is `migrating` (writes answer 503 `TENANT_MIGRATING` at
//!   the edge) and the source's fence is frozen — it waits for the writes in flight, and from
//!   then on refuses every write of the tenant in that cell, whatever a node has cached. The
//!   scheduler stops leasing its runs. A last catch-up (rows and blobs), then the counts of
//!   every table and the audit head must be equal on both sides.
//! - `switched`: one catalog transaction points the tenant at the target, gives it back its
//!   status and queues `tenant.moved` for its chain. The source stays frozen while nodes'
//!   caches of the old placement run out, then its copy, rows and blobs, is removed (`done`).
//!
//! `--resume` carries on from the recorded phase; `--abort` (before the switch) removes the
//! target's copy and unfreezes the source. There is never a second writable copy: the target
//! is written by nobody until the switch, and the source refuses writes from the freeze on.

use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use tenantd_core::audit::Action;
use tenantd_core::store::{Accounts, CellStore, MoveRecord, Value};
use tenantd_core::tenant::{CellName, Tenant, TenantScope, TenantStatus};
use tenantd_core::{Error, Result, time};

use super::Progress;
use super::copying::{Pass, SKEW, Spent, catch_up, copy_all, verify};
use super::{blobs, lease};
use crate::context::Caller;
use crate::state::AppState;

/// The most catch-up passes before the freeze.
const MOST_PASSES: usize = 8;
/// A pass that wrote at most this many rows leaves the freeze little to do.
const SETTLED_ROWS: u64 = 2_000;

/// The least time between making the fence and freezing it: a write that began before the
/// fence existed holds no lock on it, and is done by then.
const FENCE_SETTLES: Duration = Duration::from_secs(1);

type Cell = std::sync::Arc<dyn CellStore>;

/// Starts a move of `tenant` to `target` and carries it through.
pub async fn start(
    state: &AppState,
    op: &Caller,
    tenant: &Tenant,
    target: &CellName,
    progress: &dyn Progress,
) -> Result<MoveRecord> {
    let rec = plan(state, tenant, target).await?;
    run(state, op, rec, progress).await
}

/// Checks and records a move without running it (the API runs it in the background).
pub async fn plan(state: &AppState, tenant: &Tenant, target: &CellName) -> Result<MoveRecord> {
    // A cell that does not exist is invalid input (422); a move the tenant's state does not
    // allow is a conflict with that state (409).
    let cfg = state
        .config
        .cells
        .iter()
        .find(|c| c.name == *target)
        .ok_or_else(|| Error::invalid("cell", format!("no cell named {target}")))?;
    if tenant.id == state.platform {
        // Its cell holds every global item the tenants of the deployment read.
        return Err(Error::conflict(
            "tenant",
            "the platform tenant stays in its cell",
        ));
    }
    if *target == tenant.cell {
        return Err(Error::conflict(
            "cell",
            format!("the tenant is already in {target}"),
        ));
    }
    match tenant.status {
        TenantStatus::Active | TenantStatus::Suspended => {}
        TenantStatus::Migrating => {
            return Err(Error::conflict(
                "tenant",
                "the tenant is being moved; use --resume or --abort",
            ));
        }
        TenantStatus::Deleted => return Err(Error::TenantDeleted),
        _ => {
            return Err(Error::conflict(
                "tenant",
                format!("a {} tenant is not moved", tenant.status.as_str()),
            ));
        }
    }
    let now = time::format(time::now());
    let rec = MoveRecord {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant.id,
        source_cell: tenant.cell.clone(),
        target_cell: target.clone(),
        phase: "copying".into(),
        prior_status: tenant.status.as_str().to_owned(),
        detail: json!({"dedicated": cfg.dedicated}),
        started_at: now.clone(),
        updated_at: now,
    };
    // A dedicated cell is claimed before the move is recorded, so no other tenant is placed
    // or moved there meanwhile; an abort gives the claim up, the switch gives up the source's.
    if cfg.dedicated {
        state.catalog.claim_cell(target, tenant.id).await?;
    }
    if let Err(e) = state.catalog.insert_move(&rec).await {
        if cfg.dedicated {
            state.catalog.release_cell(target, tenant.id).await?;
        }
        return Err(e);
    }
    Ok(rec)
}

/// The tenant's move that is not done or aborted.
pub async fn open(state: &AppState, tenant: &Tenant) -> Result<MoveRecord> {
    match state.catalog.latest_move(tenant.id).await? {
        Some(m) if m.phase != "done" && m.phase != "aborted" => Ok(m),
        _ => Err(Error::invalid(
            "tenant",
            format!("{} has no move to resume or abort", tenant.slug),
        )),
    }
}

fn cells(state: &AppState, m: &MoveRecord) -> Result<(Cell, Cell, TenantScope, TenantScope)> {
    let src = TenantScope::unscoped_trusted(m.tenant_id, m.source_cell.clone());
    let dst = TenantScope::unscoped_trusted(m.tenant_id, m.target_cell.clone());
    Ok((
        state.cell(&src)?.clone(),
        state.cell(&dst)?.clone(),
        src,
        dst,
    ))
}

/// Carries a recorded move on from its phase to `done`.
pub async fn run(
    state: &AppState,
    op: &Caller,
    m: MoveRecord,
    progress: &dyn Progress,
) -> Result<MoveRecord> {
    run_until(state, op, m, progress, None).await
}

/// [`run`], stopping once the move has recorded `phase` (the tests stop it there, as a crash
/// would, and resume or abort it). The move's lease is taken first (waiting while a stopped
/// runner's runs out; `Conflict` while a live runner renews it) and given up at the end.
pub async fn run_until(
    state: &AppState,
    op: &Caller,
    m: MoveRecord,
    progress: &dyn Progress,
    stop_at: Option<&str>,
) -> Result<MoveRecord> {
    let held = lease::take(state, &m).await?;
    lease::under(state, held, carry(state, op, m, progress, stop_at)).await
}

/// Carries the move on from its recorded phase; its caller holds its lease.
pub(super) async fn carry(
    state: &AppState,
    op: &Caller,
    mut m: MoveRecord,
    progress: &dyn Progress,
    stop_at: Option<&str>,
) -> Result<MoveRecord> {
    let (source, target, src, dst) = cells(state, &m)?;
    if m.phase == "copying" {
        let fenced_at = Instant::now();
        source.copy_fence(&src, &m.id, Some(false)).await?;
        target.copy_remove(&dst, Accounts::Keep).await?;
        blobs::remove(state, m.tenant_id, &m.target_cell, &m.source_cell).await?;
        progress.phase("copying", None);
        let mut since = time::format(time::now() - SKEW);
        copy_all(&source, &target, &src, &dst, &since, progress).await?;
        // At least two passes, and more while the last still had much to write (a tenant
        // that writes faster than one pass catches up would otherwise leave it all to the
        // freeze): the freeze's catch-up is then about one short pass's worth.
        for pass in 0..MOST_PASSES {
            progress.phase(&format!("catching up ({})", pass + 1), None);
            let mut spent = Spent::default();
            let caught = catch_up(
                &source,
                &target,
                &src,
                &dst,
                &since,
                Pass::Live,
                progress,
                &mut spent,
            )
            .await?;
            since = caught.since;
            let wrote: u64 = spent.rows.values().sum();
            m.detail["catch_up_rows"] = json!(wrote);
            if pass >= 1 && wrote <= SETTLED_ROWS {
                break;
            }
        }
        let copied = blobs::sync(
            state,
            m.tenant_id,
            &m.source_cell,
            &m.target_cell,
            false,
            progress,
        )
        .await?;
        m.detail["blobs_copied"] = json!(copied.copied);
        if let Some(wait) = FENCE_SETTLES.checked_sub(fenced_at.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        // The freeze: the edge first (so most writers hear 503 at once), then the fence,
        // which every write in the source cell goes through.
        m.phase = "frozen".into();
        m.detail["since"] = json!(since);
        m.detail["frozen_at"] = json!(time::format(time::now()));
        m.detail["run_active"] = json!(run_active(&source, &src, None).await?);
        state
            .catalog
            .move_status(&m, TenantStatus::Migrating)
            .await?;
        source.copy_fence(&src, &m.id, Some(true)).await?;
        // Off the run scheduler in the source; the target gets the flag back at the switch.
        if m.detail["run_active"].is_i64() {
            run_active(&source, &src, Some(0)).await?;
        }
        if stop_at == Some("frozen") {
            return Ok(m);
        }
    }
    if m.phase == "frozen" {
        // The fence is frozen again on a resume (a crash may have come before it).
        source.copy_fence(&src, &m.id, Some(true)).await?;
        let frozen = Instant::now();
        progress.phase("final catch-up", None);
        let since = m.detail["since"].as_str().unwrap_or("").to_owned();
        let mut spent = Spent::default();
        let counts = catch_up(
            &source,
            &target,
            &src,
            &dst,
            &since,
            Pass::Frozen,
            progress,
            &mut spent,
        )
        .await?
        .counts;
        let at = Instant::now();
        let synced = blobs::sync(
            state,
            m.tenant_id,
            &m.source_cell,
            &m.target_cell,
            true,
            progress,
        )
        .await?;
        spent.took("blobs", at);
        m.detail["blobs_copied"] =
            json!(m.detail["blobs_copied"].as_u64().unwrap_or(0) + synced.copied);
        let caught_up = frozen.elapsed();
        verify(&source, &target, &src, &dst, counts).await?;
        spent.ms.retain(|_, ms| *ms > 0);
        spent.rows.retain(|_, n| *n > 0);
        m.detail["freeze_steps_ms"] = json!({
            "catch_up": caught_up.as_millis() as u64,
            "verify": (frozen.elapsed() - caught_up).as_millis() as u64,
            "by_table": spent.ms,
            "rows_written": spent.rows,
        });
        if let Some(active) = m.detail["run_active"].as_i64() {
            run_active(&target, &dst, Some(active)).await?;
        }
        let tenant = state
            .catalog
            .find_tenant(m.tenant_id)
            .await?
            .ok_or(Error::NotFound)?;
        let region = state
            .config
            .cells
            .iter()
            .find(|c| c.name == m.target_cell)
            .and_then(|c| c.region.clone());
        m.phase = "switched".into();
        m.detail["freeze_ms"] = json!(frozen.elapsed().as_millis() as u64);
        m.detail["switched_at"] = json!(time::format(time::now()));
        let ev = op.event(
            m.tenant_id,
            Action::TenantMoved,
            "tenants",
            Some(m.tenant_id.to_string()),
            json!({"move_id": m.id, "from": m.source_cell.to_string(), "to": m.target_cell.to_string(),
                   "from_region": tenant.region.map(|r| r.as_str()), "to_region": region}),
        );
        state
            .catalog
            .switch_move(&m, region.as_deref(), vec![ev])
            .await?;
        state.relay_kick.notify_one();
        if stop_at == Some("switched") {
            return Ok(m);
        }
    }
    if m.phase == "switched" {
        // Nodes that cached the old placement answer from the frozen source until their
        // credential caches run out; then the source copy goes.
        let ttl = Duration::from_millis(state.config.auth_cache_ttl_ms) + Duration::from_secs(1);
        let switched = m.detail["switched_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        if let Some(at) = switched {
            let left = ttl.saturating_sub((time::now() - at).to_std().unwrap_or_default());
            tokio::time::sleep(left).await;
        }
        progress.phase("removing the source copy", None);
        let removed = source.copy_remove(&src, Accounts::Keep).await?;
        m.detail["source_rows_removed"] = json!(removed.values().sum::<u64>());
        m.detail["source_blobs_removed"] =
            json!(blobs::remove(state, m.tenant_id, &m.source_cell, &m.target_cell).await?);
        m.phase = "done".into();
        state.catalog.update_move(&m).await?;
    }
    Ok(m)
}

/// Abandons a move before its switch: the target's copy goes, the source is unfrozen and the
/// tenant gets its status back. Under the move's lease, as [`run_until`].
pub async fn abort(state: &AppState, m: MoveRecord) -> Result<MoveRecord> {
    let held = lease::take(state, &m).await?;
    // The record again, now that no runner changes it: a runner that held the lease until
    // now may have carried the move past the phase the caller read.
    let m = match state.catalog.latest_move(m.tenant_id).await? {
        Some(now) if now.id == m.id => now,
        _ => m,
    };
    lease::under(state, held, abandon(state, m)).await
}

async fn abandon(state: &AppState, mut m: MoveRecord) -> Result<MoveRecord> {
    if m.phase == "done" || m.phase == "aborted" {
        return Err(Error::invalid("move", format!("the move is {}", m.phase)));
    }
    if m.phase == "switched" {
        return Err(Error::invalid(
            "move",
            "the move has switched to the target; --resume finishes it",
        ));
    }
    let (source, target, src, dst) = cells(state, &m)?;
    target.copy_remove(&dst, Accounts::Keep).await?;
    blobs::remove(state, m.tenant_id, &m.target_cell, &m.source_cell).await?;
    if m.detail["dedicated"] == json!(true) {
        state
            .catalog
            .release_cell(&m.target_cell, m.tenant_id)
            .await?;
    }
    if let Some(active) = m.detail["run_active"].as_i64() {
        run_active(&source, &src, Some(active)).await?;
    }
    source.copy_fence(&src, &m.id, None).await?;
    let prior = TenantStatus::parse(&m.prior_status, "prior_status")?;
    m.phase = "aborted".into();
    state.catalog.move_status(&m, prior).await?;
    Ok(m)
}

/// The tenant's `run_ready.active` (whether the scheduler leases its runs), set to `to` when
/// given; what it was, `None` without a scheduler row.
async fn run_active(cell: &Cell, scope: &TenantScope, to: Option<i64>) -> Result<Option<i64>> {
    let table = cell
        .copy_tables()
        .iter()
        .find(|t| t.name == "run_ready")
        .ok_or_else(|| Error::Internal("no run_ready".into()))?;
    let i = table
        .index("active")
        .ok_or_else(|| Error::Internal("run_ready.active".into()))?;
    let mut snap = cell.copy_snapshot(scope).await?;
    let rows = snap.page(table, None, 1).await?;
    snap.close().await?;
    let Some(mut row) = rows.into_iter().next() else {
        return Ok(None);
    };
    let was = match row[i] {
        Value::Int(n) => n,
        _ => 0,
    };
    if let Some(to) = to {
        row[i] = Value::Int(to);
        cell.copy_upsert(scope, table, vec![row], Vec::new())
            .await?;
    }
    Ok(Some(was))
}

/// A move as the API and `--json` show it.
pub fn view(m: &MoveRecord) -> Json {
    json!({
        "move_id": m.id, "tenant_id": m.tenant_id, "phase": m.phase,
        "from": m.source_cell, "to": m.target_cell, "started_at": m.started_at,
        "updated_at": m.updated_at, "freeze_ms": m.detail.get("freeze_ms"),
    })
}
