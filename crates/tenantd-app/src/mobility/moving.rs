//! `tenantd tenant move <slug> --to <cell>`: a tenant's rows moved to another cell while it
//! keeps serving, with a write freeze of the catch-up's length (`docs/design/mobility.md`).
//!
//! Phases, each recorded in `tenant_moves` before the next begins:
//! - `copying`: the source's fence row is made (writes still pass, each now holding it); any
//!   rows of the tenant in the target are removed; every table is copied from one snapshot;
//!   then catch-up passes copy what changed meanwhile (appended rows, stamped rows, small
//!   tables whole), each pass shorter than the last.
//! - `frozen`: the tenant's status is `migrating` (writes answer 503 `TENANT_MIGRATING` at
//!   the edge) and the source's fence is frozen — it waits for the writes in flight, and from
//!   then on refuses every write of the tenant in that cell, whatever a node has cached. The
//!   scheduler stops leasing its runs. A last catch-up, then the counts of every table and the
//!   audit head must be equal on both sides.
//! - `switched`: one catalog transaction points the tenant at the target, gives it back its
//!   status and queues `tenant.moved` for its chain. The source stays frozen while nodes'
//!   caches of the old placement run out, then its copy is removed (`done`).
//!
//! `--resume` carries on from the recorded phase; `--abort` (before the switch) removes the
//! target's copy and unfreezes the source. There is never a second writable copy: the target
//! is written by nobody until the switch, and the source refuses writes from the freeze on.

use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};
use tenantd_core::audit::Action;
use tenantd_core::store::{Accounts, Catchup, CellStore, Counts, MoveRecord, Row, Table, Value};
use tenantd_core::tenant::{CellName, Tenant, TenantScope, TenantStatus};
use tenantd_core::{Error, Result, time};

use super::Progress;
use super::keys::{cmp_keys, missing_keys, window};
use crate::context::Caller;
use crate::state::AppState;

/// Rows read at once.
const PAGE: usize = 2000;

/// How a move's copy leaves the cells room for their other work: after each batch it rests
/// `rest` times as long as the batch took. The copy and the catch-ups before the freeze rest
/// 3 times (the move takes at most a quarter of the time, in short steps); the last
/// catch-up, inside the freeze, does not rest.
#[derive(Debug, Clone, Copy)]
struct Pace {
    rest: u32,
}

const PACED: Pace = Pace { rest: 3 };
const UNPACED: Pace = Pace { rest: 0 };

impl Pace {
    async fn after(self, began: Instant) {
        if self.rest > 0 {
            tokio::time::sleep(began.elapsed() * self.rest).await;
        }
    }
}
/// How far back a catch-up pass looks before the previous pass began (clock skew between
/// nodes stamping rows).
const SKEW: chrono::Duration = chrono::Duration::seconds(5);
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
/// would, and resume or abort it).
pub async fn run_until(
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
        progress.phase("copying", None);
        let mut since = time::format(time::now() - SKEW);
        copy_all(&source, &target, &src, &dst, progress).await?;
        for pass in 0..2 {
            progress.phase(&format!("catching up ({})", pass + 1), None);
            let next = time::format(time::now() - SKEW);
            let mut spent = std::collections::BTreeMap::new();
            catch_up(
                &source, &target, &src, &dst, &since, PACED, progress, &mut spent,
            )
            .await?;
            since = next;
        }
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
        let mut spent = std::collections::BTreeMap::new();
        let counts = catch_up(
            &source, &target, &src, &dst, &since, UNPACED, progress, &mut spent,
        )
        .await?;
        let caught_up = frozen.elapsed();
        verify(&source, &target, &src, &dst, counts).await?;
        spent.retain(|_, ms| *ms > 0);
        m.detail["freeze_steps_ms"] = json!({
            "catch_up": caught_up.as_millis() as u64,
            "verify": (frozen.elapsed() - caught_up).as_millis() as u64,
            "by_table": spent,
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
        m.phase = "done".into();
        state.catalog.update_move(&m).await?;
    }
    Ok(m)
}

/// Abandons a move before its switch: the target's copy goes, the source is unfrozen and the
/// tenant gets its status back.
pub async fn abort(state: &AppState, mut m: MoveRecord) -> Result<MoveRecord> {
    if m.phase == "switched" {
        return Err(Error::invalid(
            "move",
            "the move has switched to the target; --resume finishes it",
        ));
    }
    let (source, target, src, dst) = cells(state, &m)?;
    target.copy_remove(&dst, Accounts::Keep).await?;
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

/// Every table of the source into the target, page by page in key order.
///
/// Each page is read in a snapshot of its own, not one for the whole copy: while a snapshot
/// is open, PostgreSQL can prune no row version newer than it, so every update of the cell's
/// hot rows (each tenant's quota counters and audit head) lengthened a chain the next update
/// walks, and neighbours' writes slowed for as long as the copy ran (p50 2.9 → 5.4 ms over a
/// 30 s copy; `docs/benchmarks.md`). The pages need not agree with each other: the first
/// catch-up starts from before the copy began and brings, from one snapshot, every row
/// written since and the keys deleted since.
///
/// The [`Catchup::Whole`] tables are left to that catch-up, which replaces them whole
/// anyway. They are the small ones, and the only ones with a foreign key (shares on their
/// resource, deliveries on their endpoint): copied page by page, a share could name a
/// resource made after the resources were copied.
async fn copy_all(
    source: &Cell,
    target: &Cell,
    src: &TenantScope,
    dst: &TenantScope,
    progress: &dyn Progress,
) -> Result<()> {
    for table in source.copy_tables() {
        if table.sync == Catchup::Whole {
            continue;
        }
        let mut after: Option<Row> = None;
        loop {
            let began = Instant::now();
            let mut snap = source.copy_snapshot(src).await?;
            let rows = snap.page(table, after.as_ref(), PAGE).await?;
            snap.close().await?;
            let n = rows.len();
            let Some(last) = rows.last() else { break };
            after = Some(table.key_of(last));
            target.copy_insert(dst, vec![(table, rows)]).await?;
            progress.advance(n as u64);
            PACED.after(began).await;
            if n < PAGE {
                break;
            }
        }
    }
    Ok(())
}

/// Brings the target up to the source's snapshot now, table by table, by each table's
/// [`Catchup`]: `since` is when the previous pass began (less the clock skew).
#[allow(clippy::too_many_arguments)]
async fn catch_up(
    source: &Cell,
    target: &Cell,
    src: &TenantScope,
    dst: &TenantScope,
    since: &str,
    pace: Pace,
    progress: &dyn Progress,
    spent: &mut std::collections::BTreeMap<&'static str, u64>,
) -> Result<Option<(Counts, Counts)>> {
    let mut snap = source.copy_snapshot(src).await?;
    let mut stamped = Vec::new();
    for table in source.copy_tables() {
        let began = Instant::now();
        match table.sync {
            Catchup::Append => {
                // The oldest rows retention pruned in the source go in the target too.
                let first = snap.page(table, None, 1).await?;
                if let Some(first) = first.first() {
                    let key = table.key_of(first);
                    prune_before(target, dst, table, &key).await?;
                }
                let mut after = target.copy_max_key(dst, table).await?;
                loop {
                    let began = Instant::now();
                    let rows = snap.page(table, after.as_ref(), PAGE).await?;
                    let Some(last) = rows.last() else { break };
                    after = Some(table.key_of(last));
                    let n = rows.len();
                    target.copy_insert(dst, vec![(table, rows)]).await?;
                    progress.advance(n as u64);
                    pace.after(began).await;
                    if n < PAGE {
                        break;
                    }
                }
            }
            Catchup::Stamped(column) => {
                // Only what differs from the target is written: the window reaches back past
                // the last pass by the clock skew, so most of its rows are there already.
                let theirs = window(target, dst, table, column, since).await?;
                let mut after: Option<Row> = None;
                loop {
                    let began = Instant::now();
                    let rows = snap
                        .page_since(table, column, since, after.as_ref(), PAGE)
                        .await?;
                    let Some(last) = rows.last() else { break };
                    after = Some(table.key_of(last));
                    let n = rows.len();
                    let rows: Vec<Row> = match &theirs {
                        Some(t) => rows
                            .into_iter()
                            .filter(|r| t.get(&table.key_of(r)) != Some(r))
                            .collect(),
                        None => rows,
                    };
                    if !rows.is_empty() {
                        target.copy_upsert(dst, table, rows, Vec::new()).await?;
                    }
                    progress.advance(n as u64);
                    pace.after(began).await;
                    if n < PAGE {
                        break;
                    }
                }
                stamped.push(table);
            }
            Catchup::Whole => {
                let rows = whole(&mut *snap, table).await?;
                let mut theirs = target.copy_snapshot(dst).await?;
                let now = whole(&mut *theirs, table).await?;
                theirs.close().await?;
                if rows != now {
                    progress.advance(rows.len() as u64);
                    target.copy_replace(dst, table, rows).await?;
                }
            }
        }
        spent.insert(table.name, began.elapsed().as_millis() as u64);
    }
    let began = Instant::now();
    // Every source row of a stamped table is in the target now (the older ones were copied
    // by an earlier pass), so equal counts mean equal key sets: the merge of both key lists,
    // which reads every key, is needed only where they differ.
    let (a, b) = (
        source.copy_counts(src).await?,
        target.copy_counts(dst).await?,
    );
    let mut settled = Some((a.clone(), b.clone()));
    for table in stamped {
        if a.get(table.name) != b.get(table.name) {
            let gone = missing_keys(&mut *snap, target, dst, table).await?;
            if !gone.is_empty() {
                target.copy_upsert(dst, table, Vec::new(), gone).await?;
                settled = None;
            }
        }
    }
    snap.close().await?;
    spent.insert("counts", began.elapsed().as_millis() as u64);
    Ok(settled)
}

/// Every row of a (small) table in a snapshot.
async fn whole(
    snap: &mut dyn tenantd_core::store::CopySnapshot,
    table: &'static Table,
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut after: Option<Row> = None;
    loop {
        let page = snap.page(table, after.as_ref(), PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(table.key_of(last));
        let n = page.len();
        rows.extend(page);
        if n < PAGE {
            break;
        }
    }
    Ok(rows)
}

/// Removes the target's rows of an append-only table before the source's first key.
async fn prune_before(
    target: &Cell,
    dst: &TenantScope,
    table: &'static Table,
    first: &Row,
) -> Result<()> {
    let mut snap = target.copy_snapshot(dst).await?;
    let mut gone = Vec::new();
    let mut after: Option<Row> = None;
    'pages: loop {
        let keys = snap.keys(table, after.as_ref(), PAGE).await?;
        let Some(last) = keys.last().cloned() else {
            break;
        };
        for k in keys {
            if cmp_keys(&k, first) != std::cmp::Ordering::Less {
                break 'pages;
            }
            gone.push(k);
        }
        after = Some(last);
    }
    snap.close().await?;
    if !gone.is_empty() {
        target.copy_upsert(dst, table, Vec::new(), gone).await?;
    }
    Ok(())
}

/// The counts of every table and the audit head must be the same on both sides.
async fn verify(
    source: &Cell,
    target: &Cell,
    src: &TenantScope,
    dst: &TenantScope,
    counts: Option<(Counts, Counts)>,
) -> Result<()> {
    let (a, b) = match counts {
        Some(c) => c,
        None => (
            source.copy_counts(src).await?,
            target.copy_counts(dst).await?,
        ),
    };
    if a != b {
        let diff: Vec<String> = a
            .iter()
            .filter(|(t, n)| b.get(*t) != Some(n))
            .map(|(t, n)| {
                format!(
                    "{t}: {n} in the source, {} in the target",
                    b.get(t).copied().unwrap_or(0)
                )
            })
            .collect();
        return Err(Error::Internal(format!(
            "the copy does not match: {}",
            diff.join("; ")
        )));
    }
    let heads = |cell: &Cell, scope: &TenantScope| {
        let (cell, scope) = (cell.clone(), scope.clone());
        async move {
            let table = cell
                .copy_tables()
                .iter()
                .find(|t| t.name == "audit_heads")
                .ok_or_else(|| Error::Internal("no audit_heads".into()))?;
            let mut snap = cell.copy_snapshot(&scope).await?;
            let rows = snap.page(table, None, 1).await?;
            snap.close().await?;
            Ok::<Vec<Row>, Error>(rows)
        }
    };
    if heads(source, src).await? != heads(target, dst).await? {
        return Err(Error::Internal(
            "the audit heads differ after the copy".into(),
        ));
    }
    Ok(())
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
