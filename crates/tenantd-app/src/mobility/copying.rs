//! The copying half of a move (`moving.rs`): the first copy of every table, the
//! catch-up passes that bring the target up to the source, and the check that both sides
//! agree before the switch.
//!
//! Only the last catch-up, inside the freeze, reads the source from one snapshot. The copy
//! and the catch-ups before the freeze read each page in a snapshot of its own: while a
//! snapshot is open, PostgreSQL can prune no row version newer than it, so every update of
//! the cell's hot rows (each tenant's quota counters and audit head) lengthens a chain the
//! next update walks, and neighbours' writes slowed for as long as one snapshot stayed open
//! (p50 2.9 → 5.4 ms over a 30 s copy; `docs/benchmarks.md`).

use std::time::Instant;

use tenantd_core::store::{Catchup, CellStore, CopySnapshot, Counts, Row, Table};
use tenantd_core::tenant::TenantScope;
use tenantd_core::{Error, Result, time};

use super::Progress;
use super::keys::{cmp_keys, missing_keys, window};

type Cell = std::sync::Arc<dyn CellStore>;

/// Rows read at once. Short batches keep each burst of the copy's work short: against 2,000,
/// the neighbour's p99 during a 100,200-resource move went from 1.50x quiet to 1.23x (median
/// of three moves each, `docs/benchmarks.md`) for a move about as long.
const PAGE: usize = 500;

/// How far back a catch-up pass looks before the previous pass began (clock skew between
/// nodes stamping rows, and a write's stamp taken before it commits).
pub(super) const SKEW: chrono::Duration = chrono::Duration::seconds(5);

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

/// Which catch-up pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pass {
    /// Before the freeze, while the tenant writes: paced, each page in a snapshot of its own,
    /// then one short snapshot for the rows stamped during the pass and the whole tables
    /// (so a share never names a resource the target lacks). Deleted keys are left to the
    /// frozen pass: found by a merge of every key, they would hold a snapshot as long as the
    /// copy's, and the tenant may delete again after it.
    Live,
    /// Inside the freeze: unpaced, from one snapshot, deleted keys too, and the counts that
    /// [`verify`] compares.
    Frozen,
}

/// Where a pass reads the source.
enum Source<'a> {
    /// One snapshot for every read.
    One(Box<dyn CopySnapshot>),
    /// A snapshot of its own for each read.
    Fresh(&'a Cell, &'a TenantScope),
}

impl Source<'_> {
    async fn page(
        &mut self,
        table: &'static Table,
        after: Option<&Row>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        match self {
            Source::One(snap) => snap.page(table, after, limit).await,
            Source::Fresh(cell, scope) => {
                let mut snap = cell.copy_snapshot(scope).await?;
                let rows = snap.page(table, after, limit).await?;
                snap.close().await?;
                Ok(rows)
            }
        }
    }

    async fn page_since(
        &mut self,
        table: &'static Table,
        column: &'static str,
        since: &str,
        after: Option<&Row>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        match self {
            Source::One(snap) => snap.page_since(table, column, since, after, limit).await,
            Source::Fresh(cell, scope) => {
                let mut snap = cell.copy_snapshot(scope).await?;
                let rows = snap.page_since(table, column, since, after, limit).await?;
                snap.close().await?;
                Ok(rows)
            }
        }
    }

    async fn page_between(
        &mut self,
        w: Window<'_>,
        until: &str,
        after: Option<&Row>,
        limit: usize,
    ) -> Result<Vec<Row>> {
        let (table, column, since) = (w.table, w.column, w.since);
        match self {
            Source::One(snap) => {
                snap.page_between(table, column, since, until, after, limit)
                    .await
            }
            Source::Fresh(cell, scope) => {
                let mut snap = cell.copy_snapshot(scope).await?;
                let rows = snap
                    .page_between(table, column, since, until, after, limit)
                    .await?;
                snap.close().await?;
                Ok(rows)
            }
        }
    }

    async fn close(self) -> Result<()> {
        match self {
            Source::One(snap) => snap.close().await,
            Source::Fresh(..) => Ok(()),
        }
    }
}

/// Every table of the source into the target, page by page in key order, each page from a
/// snapshot of its own. The pages need not agree with each other: the first catch-up starts
/// from `since` (before the copy began) and brings every row written from then on.
///
/// So the copy leaves those rows to it, and ends however fast the tenant writes: a Stamped
/// table's pages hold only rows stamped before `since`, an Append table's stop at its last
/// key when the copy began. (Paged without a bound, the copy chased a tenant writing 300
/// rows a second for minutes: each new row's key lands ahead of the cursor.)
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
    since: &str,
    progress: &dyn Progress,
) -> Result<()> {
    let mut from = Source::Fresh(source, src);
    for table in source.copy_tables() {
        match table.sync {
            Catchup::Whole => {}
            Catchup::Append => {
                // Empty when the copy began: the first catch-up brings what it gets.
                let Some(last) = source.copy_max_key(src, table).await? else {
                    continue;
                };
                let to = Some(&last);
                append_to(&mut from, target, dst, table, None, to, PACED, progress).await?;
            }
            Catchup::Stamped(column) => {
                let w = Window {
                    table,
                    column,
                    since: "",
                };
                let mut after: Option<Row> = None;
                loop {
                    let began = Instant::now();
                    let rows = from.page_between(w, since, after.as_ref(), PAGE).await?;
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
        }
    }
    Ok(())
}

/// What a catch-up pass leaves for the next.
pub(super) struct Caught {
    /// Where the next pass's stamped windows begin.
    pub since: String,
    /// The counts of both sides when a [`Pass::Frozen`] pass left them equal.
    pub counts: Option<(Counts, Counts)>,
}

/// Where a pass's time went, table by table: milliseconds, and rows written.
#[derive(Debug, Default)]
pub(super) struct Spent {
    pub ms: std::collections::BTreeMap<&'static str, u64>,
    pub rows: std::collections::BTreeMap<&'static str, u64>,
}

impl Spent {
    pub fn took(&mut self, step: &'static str, since: Instant) {
        self.ms.insert(step, since.elapsed().as_millis() as u64);
    }

    fn wrote(&mut self, table: &'static str, n: u64) {
        *self.rows.entry(table).or_default() += n;
    }
}

/// Brings the target up to the source, table by table, by each table's [`Catchup`]: `since`
/// is where the stamped windows begin (the previous pass's start, less the clock skew).
/// `spent` gets each table's milliseconds and rows written.
#[allow(clippy::too_many_arguments)]
pub(super) async fn catch_up(
    source: &Cell,
    target: &Cell,
    src: &TenantScope,
    dst: &TenantScope,
    since: &str,
    pass: Pass,
    progress: &dyn Progress,
    spent: &mut Spent,
) -> Result<Caught> {
    let (mut from, pace) = match pass {
        Pass::Live => (Source::Fresh(source, src), PACED),
        Pass::Frozen => (Source::One(source.copy_snapshot(src).await?), UNPACED),
    };
    let began_pass = time::format(time::now() - SKEW);
    let mut stamped = Vec::new();
    for table in source.copy_tables() {
        let began = Instant::now();
        match table.sync {
            Catchup::Append => {
                // Live, up to the last key now: what is appended meanwhile is the next
                // pass's (the frozen pass's snapshot bounds its own).
                let to = match pass {
                    Pass::Live => source.copy_max_key(src, table).await?,
                    Pass::Frozen => None,
                };
                let n = append(&mut from, target, dst, table, to.as_ref(), pace, progress).await?;
                spent.wrote(table.name, n);
            }
            Catchup::Stamped(column) => {
                let w = Window {
                    table,
                    column,
                    since,
                };
                // Live, the rows stamped before this pass began: the ones since are the
                // closing snapshot's.
                let until = match pass {
                    Pass::Live => Until::Stamp(&began_pass),
                    Pass::Frozen => Until::Snapshot,
                };
                let n = changed(&mut from, target, dst, w, until, pace, progress).await?;
                spent.wrote(table.name, n);
                stamped.push(table);
            }
            Catchup::Whole => {
                if let Source::One(snap) = &mut from {
                    let n = replace(&mut **snap, target, dst, table, progress).await?;
                    spent.wrote(table.name, n);
                }
            }
        }
        spent.took(table.name, began);
    }
    if pass == Pass::Live {
        // One short snapshot: the rows stamped while this pass ran, then the whole tables,
        // whose rows name only rows the target has now.
        let since = time::format(time::now() - SKEW);
        let mut last = Source::One(source.copy_snapshot(src).await?);
        for table in source.copy_tables() {
            if let Catchup::Stamped(column) = table.sync {
                let w = Window {
                    table,
                    column,
                    since: &began_pass,
                };
                let n = changed(
                    &mut last,
                    target,
                    dst,
                    w,
                    Until::Snapshot,
                    UNPACED,
                    progress,
                )
                .await?;
                spent.wrote(table.name, n);
            }
        }
        if let Source::One(snap) = &mut last {
            for table in source.copy_tables() {
                if table.sync == Catchup::Whole {
                    let n = replace(&mut **snap, target, dst, table, progress).await?;
                    spent.wrote(table.name, n);
                }
            }
        }
        last.close().await?;
        return Ok(Caught {
            since,
            counts: None,
        });
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
    if let Source::One(snap) = &mut from {
        for table in stamped {
            if a.get(table.name) != b.get(table.name) {
                let gone = missing_keys(&mut **snap, target, dst, table).await?;
                if !gone.is_empty() {
                    target.copy_upsert(dst, table, Vec::new(), gone).await?;
                    settled = None;
                }
            }
        }
    }
    from.close().await?;
    spent.took("counts", began);
    Ok(Caught {
        since: began_pass,
        counts: settled,
    })
}

/// The rows appended to an append-only table after the target's last, up to the key `to`
/// when given; the oldest rows retention pruned in the source go in the target too.
#[allow(clippy::too_many_arguments)]
async fn append(
    from: &mut Source<'_>,
    target: &Cell,
    dst: &TenantScope,
    table: &'static Table,
    to: Option<&Row>,
    pace: Pace,
    progress: &dyn Progress,
) -> Result<u64> {
    let first = from.page(table, None, 1).await?;
    if let Some(first) = first.first() {
        let key = table.key_of(first);
        prune_before(target, dst, table, &key).await?;
    }
    let after = target.copy_max_key(dst, table).await?;
    append_to(from, target, dst, table, after, to, pace, progress).await
}

/// An append-only table's rows after the key `after`, up to the key `to` when given (a page
/// that reaches it is the last).
#[allow(clippy::too_many_arguments)]
async fn append_to(
    from: &mut Source<'_>,
    target: &Cell,
    dst: &TenantScope,
    table: &'static Table,
    mut after: Option<Row>,
    to: Option<&Row>,
    pace: Pace,
    progress: &dyn Progress,
) -> Result<u64> {
    let mut wrote = 0;
    loop {
        let began = Instant::now();
        let rows = from.page(table, after.as_ref(), PAGE).await?;
        let Some(last) = rows.last() else { break };
        let key = table.key_of(last);
        let reached = to.is_some_and(|to| cmp_keys(&key, to) != std::cmp::Ordering::Less);
        after = Some(key);
        let n = rows.len();
        target.copy_insert(dst, vec![(table, rows)]).await?;
        wrote += n as u64;
        progress.advance(n as u64);
        pace.after(began).await;
        if n < PAGE || reached {
            break;
        }
    }
    Ok(wrote)
}

/// A stamped table's rows changed since a time.
#[derive(Clone, Copy)]
struct Window<'a> {
    table: &'static Table,
    column: &'static str,
    since: &'a str,
}

/// Where a pass's pages of a window end: at rows stamped `until` (a later read brings the
/// rest), or with the rows (a snapshot bounds them).
#[derive(Clone, Copy)]
enum Until<'a> {
    Stamp(&'a str),
    Snapshot,
}

/// The rows of a stamped table's window into the target. Only what differs from the target
/// is written: the window reaches back past the last pass by the clock skew, so most of its
/// rows are there already.
#[allow(clippy::too_many_arguments)]
async fn changed(
    from: &mut Source<'_>,
    target: &Cell,
    dst: &TenantScope,
    w: Window<'_>,
    until: Until<'_>,
    pace: Pace,
    progress: &dyn Progress,
) -> Result<u64> {
    let table = w.table;
    let mut wrote = 0;
    let theirs = window(target, dst, table, w.column, w.since).await?;
    let mut after: Option<Row> = None;
    loop {
        let began = Instant::now();
        let rows = match until {
            Until::Stamp(until) => from.page_between(w, until, after.as_ref(), PAGE).await?,
            Until::Snapshot => {
                from.page_since(table, w.column, w.since, after.as_ref(), PAGE)
                    .await?
            }
        };
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
            wrote += rows.len() as u64;
            target.copy_upsert(dst, table, rows, Vec::new()).await?;
        }
        progress.advance(n as u64);
        pace.after(began).await;
        if n < PAGE {
            break;
        }
    }
    Ok(wrote)
}

/// A whole table replaced in the target by the snapshot's rows, when they differ.
async fn replace(
    snap: &mut dyn CopySnapshot,
    target: &Cell,
    dst: &TenantScope,
    table: &'static Table,
    progress: &dyn Progress,
) -> Result<u64> {
    let rows = whole(snap, table).await?;
    let mut theirs = target.copy_snapshot(dst).await?;
    let now = whole(&mut *theirs, table).await?;
    theirs.close().await?;
    if rows == now {
        return Ok(0);
    }
    let n = rows.len() as u64;
    progress.advance(n);
    target.copy_replace(dst, table, rows).await?;
    Ok(n)
}

/// Every row of a (small) table in a snapshot.
async fn whole(snap: &mut dyn CopySnapshot, table: &'static Table) -> Result<Vec<Row>> {
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
