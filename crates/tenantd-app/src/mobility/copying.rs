//! The copying half of a move (`moving.rs`): the first copy of every table, the
//! catch-up passes that bring the target up to the source, and the check that both sides
//! agree before the switch.

use std::time::Instant;

use tenantd_core::store::{Catchup, CellStore, Counts, Row, Table};
use tenantd_core::tenant::TenantScope;
use tenantd_core::{Error, Result};

use super::Progress;
use super::keys::{cmp_keys, missing_keys, window};

type Cell = std::sync::Arc<dyn CellStore>;

/// Rows read at once.
const PAGE: usize = 2000;

/// How a move's copy leaves the cells room for their other work: after each batch it rests
/// `rest` times as long as the batch took. The copy and the catch-ups before the freeze rest
/// 3 times (the move takes at most a quarter of the time, in short steps); the last
/// catch-up, inside the freeze, does not rest.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pace {
    rest: u32,
}

pub(super) const PACED: Pace = Pace { rest: 3 };
pub(super) const UNPACED: Pace = Pace { rest: 0 };

impl Pace {
    async fn after(self, began: Instant) {
        if self.rest > 0 {
            tokio::time::sleep(began.elapsed() * self.rest).await;
        }
    }
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
pub(super) async fn copy_all(
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
pub(super) async fn catch_up(
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
pub(super) async fn verify(
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
