//! Keys of a table on two sides of a move: which the target has that the source no longer
//! does, found by merging the two ordered key lists; and what the target already holds of a
//! catch-up's window, so rows copied unchanged are not written again.

use tenantd_core::Result;
use tenantd_core::store::{CellStore, CopySnapshot, Row, Table, Value};
use tenantd_core::tenant::TenantScope;

/// Rows read at once.
const PAGE: usize = 2000;

/// The keys the target has and the source's snapshot does not (rows deleted since the copy):
/// both key lists are read in order and merged.
pub(super) async fn missing_keys(
    snap: &mut dyn CopySnapshot,
    target: &std::sync::Arc<dyn CellStore>,
    dst: &TenantScope,
    table: &'static Table,
) -> Result<Vec<Row>> {
    let mut theirs = target.copy_snapshot(dst).await?;
    let (mut a_after, mut b_after): (Option<Row>, Option<Row>) = (None, None);
    let mut a = snap.keys(table, None, PAGE).await?.into_iter().peekable();
    let mut b = theirs.keys(table, None, PAGE).await?.into_iter().peekable();
    let mut gone = Vec::new();
    loop {
        if a.peek().is_none()
            && let Some(k) = a_after.take()
        {
            a = snap
                .keys(table, Some(&k), PAGE)
                .await?
                .into_iter()
                .peekable();
        }
        if b.peek().is_none()
            && let Some(k) = b_after.take()
        {
            b = theirs
                .keys(table, Some(&k), PAGE)
                .await?
                .into_iter()
                .peekable();
        }
        match (a.peek(), b.peek()) {
            (_, None) => break,
            (None, Some(_)) => {
                let k = b.next().unwrap_or_default();
                b_after = Some(k.clone());
                gone.push(k);
            }
            (Some(x), Some(y)) => match cmp_keys(x, y) {
                std::cmp::Ordering::Less => {
                    let k = a.next().unwrap_or_default();
                    a_after = Some(k);
                }
                std::cmp::Ordering::Equal => {
                    let k = a.next().unwrap_or_default();
                    a_after = Some(k);
                    let k = b.next().unwrap_or_default();
                    b_after = Some(k);
                }
                std::cmp::Ordering::Greater => {
                    let k = b.next().unwrap_or_default();
                    b_after = Some(k.clone());
                    gone.push(k);
                }
            },
        }
    }
    theirs.close().await?;
    Ok(gone)
}

/// Keys in the databases' order: integers numerically, text bytewise (the columns are `C`
/// collated ids and fixed-width times).
pub(super) fn cmp_keys(a: &Row, b: &Row) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Value::Int(x), Value::Int(y)) => x.cmp(y),
            (Value::Text(x), Value::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
            (Value::Null, Value::Null) => std::cmp::Ordering::Equal,
            (Value::Null, _) => std::cmp::Ordering::Less,
            (_, Value::Null) => std::cmp::Ordering::Greater,
            _ => std::cmp::Ordering::Equal,
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    std::cmp::Ordering::Equal
}

/// The most rows of a catch-up window compared rather than written again.
const WINDOW_MOST: usize = 50_000;

/// The target's rows of `table` stamped at `since` or later, by key: what an earlier pass
/// copied of the window a catch-up reads again (it reaches back by the clock skew). `None`
/// when there are more than [`WINDOW_MOST`]: the pass then writes its rows without comparing.
pub(super) async fn window(
    target: &std::sync::Arc<dyn CellStore>,
    dst: &TenantScope,
    table: &'static Table,
    column: &'static str,
    since: &str,
) -> Result<Option<std::collections::HashMap<Row, Row>>> {
    let mut theirs = target.copy_snapshot(dst).await?;
    let mut out = std::collections::HashMap::new();
    let mut after: Option<Row> = None;
    loop {
        let rows = theirs
            .page_since(table, column, since, after.as_ref(), PAGE)
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(table.key_of(last));
        let n = rows.len();
        for r in rows {
            out.insert(table.key_of(&r), r);
        }
        if out.len() > WINDOW_MOST {
            theirs.close().await?;
            return Ok(None);
        }
        if n < PAGE {
            break;
        }
    }
    theirs.close().await?;
    Ok(Some(out))
}
