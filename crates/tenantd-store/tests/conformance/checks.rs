//! What the isolation property checks after each step and in the final sweep: the store's
//! reads, listings, counters, audit chains and files against the model.

use std::collections::BTreeMap;

use tenantd_core::audit::{AuditFilter, Verification, verify};
use tenantd_core::ids::{EventId, FileId, ResourceId};
use tenantd_core::resource::{ResourceKind, SharedFilter, SharingMode};

use crate::backends::{Backend, CELLS, list_all};
use crate::model::{Model, Want, outcome};

/// `reader` reads resource `i` by id through `cell` as `kind`: exactly what the model says it
/// may see, else `NotFound`.
pub async fn read_back(
    b: &Backend,
    m: &Model,
    reader: usize,
    i: usize,
    cell: usize,
    kind: ResourceKind,
) -> Result<(), String> {
    let got = b
        .cell(CELLS[cell])
        .get_resource(&m.scope(reader, cell), kind, m.res[i].id)
        .await;
    if m.res[i].kind == kind && m.sees(i, reader, cell) {
        outcome(&got, &[Want::Ok])?;
        if let Ok(r) = &got {
            m.check_view(r, i, reader)?;
        }
        Ok(())
    } else {
        outcome(&got, &[Want::NotFound]).map_err(|e| {
            format!(
                "tenant #{reader} read resource #{i} of tenant #{}: {e}",
                m.res[i].owner
            )
        })
    }
}

/// Every page of `reader`'s listing against the model's visible set. Items of tenants from
/// other cases may appear only if global.
#[allow(clippy::too_many_arguments)]
pub async fn check_list(
    b: &Backend,
    m: &Model,
    reader: usize,
    cell: usize,
    kind: ResourceKind,
    shared: SharedFilter,
    name: Option<&str>,
    page: u32,
) -> Result<(), String> {
    let got = list_all(
        b.cell(CELLS[cell]),
        &m.scope(reader, cell),
        kind,
        shared,
        name,
        page,
    )
    .await?;
    let want = m.listed(reader, cell, kind, shared, name);
    let mut mine = Vec::new();
    for r in &got {
        ensure!(r.kind == kind, "a {} listed among {kind}", r.kind);
        ensure!(
            name.is_none_or(|n| r.name == n),
            "{:?} listed under the name filter {name:?}",
            r.name
        );
        match m.index_of(r.tenant_id) {
            Some(_) => mine.push(r),
            None => ensure!(
                shared != SharedFilter::Exclude
                    && r.sharing.mode == SharingMode::Global
                    && r.sharing.tenants.is_empty(),
                "tenant #{reader} listed ({shared}) resource {} of tenant {} outside the case: {r:?}",
                r.id,
                r.tenant_id
            ),
        }
    }
    let got_ids: Vec<ResourceId> = mine.iter().map(|r| r.id).collect();
    let want_ids: Vec<ResourceId> = want.iter().map(|&i| m.res[i].id).collect();
    ensure!(
        got_ids == want_ids,
        "tenant #{reader} listed {kind} ({shared}, name {name:?}, page {page}) in {}: store {got_ids:?}, model {want_ids:?}",
        CELLS[cell]
    );
    for (r, &i) in mine.iter().zip(&want) {
        m.check_view(r, i, reader)?;
    }
    Ok(())
}

/// `t`'s counters in `cell` equal the model's (zero and absent alike), none negative.
pub async fn check_counters(b: &Backend, m: &Model, t: usize, cell: usize) -> Result<(), String> {
    let got = b
        .cell(CELLS[cell])
        .counters(&m.scope(t, cell))
        .await
        .map_err(|e| format!("counters: {e:?}"))?;
    ensure!(got.values().all(|v| *v >= 0), "negative counters {got:?}");
    let got: BTreeMap<String, i64> = got.into_iter().filter(|(_, v)| *v != 0).collect();
    let want: BTreeMap<String, i64> = m
        .counters
        .get(&(t, cell))
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .collect();
    ensure!(
        got == want,
        "counters of tenant #{t} in {}: store {got:?}, model {want:?}",
        CELLS[cell]
    );
    Ok(())
}

/// `t`'s audit listing in `cell` holds exactly its own events, in the model's order, seq from
/// 1; with `chain`, `audit_chain` returns the same and verifies against its head.
pub async fn check_audit(
    b: &Backend,
    m: &Model,
    t: usize,
    cell: usize,
    chain: bool,
) -> Result<(), String> {
    let store = b.cell(CELLS[cell]);
    let scope = m.scope(t, cell);
    let filter = AuditFilter {
        limit: 1000,
        ..AuditFilter::default()
    };
    let listed = store
        .list_audit(&scope, &filter)
        .await
        .map_err(|e| format!("list_audit: {e:?}"))?;
    let want = m.chains.get(&(t, cell)).cloned().unwrap_or_default();
    for (k, e) in listed.iter().enumerate() {
        ensure!(
            e.tenant_id == m.tenants[t],
            "tenant #{t}'s audit listing holds an event of {}",
            e.tenant_id
        );
        ensure!(
            e.seq == k as i64 + 1,
            "tenant #{t}'s event {} has seq {}",
            k + 1,
            e.seq
        );
    }
    // Quota alerts are the store's own events (their ids are not the model's): each
    // (quota, threshold) fires at most once in a case (one month), at or over its mark.
    let mut fired = std::collections::HashSet::new();
    for e in listed.iter().filter(|e| e.action == "quota.threshold") {
        let d = &e.details;
        let (quota, threshold) = (d["quota"].to_string(), d["threshold"].as_i64().unwrap_or(0));
        ensure!(
            fired.insert((quota.clone(), threshold)),
            "tenant #{t}: {quota} {threshold} % fired twice"
        );
        let (used, limit) = (
            d["used"].as_i64().unwrap_or(0),
            d["limit"].as_i64().unwrap_or(0),
        );
        ensure!(
            [80, 100].contains(&threshold) && used * 100 >= limit * threshold && used <= limit,
            "tenant #{t}: an alert that should not be: {d}"
        );
    }
    let ids: Vec<EventId> = listed
        .iter()
        .filter(|e| e.action != "quota.threshold")
        .map(|e| e.id)
        .collect();
    ensure!(
        ids == want,
        "audit of tenant #{t} in {}: store {ids:?}, model {want:?}",
        CELLS[cell]
    );
    if chain {
        let (all, head) = store
            .audit_chain(&scope)
            .await
            .map_err(|e| format!("audit_chain: {e:?}"))?;
        let ids: Vec<EventId> = all
            .iter()
            .filter(|e| e.action != "quota.threshold")
            .map(|e| e.id)
            .collect();
        ensure!(
            ids == want,
            "chain of tenant #{t} in {}: store {ids:?}, model {want:?}",
            CELLS[cell]
        );
        let v = verify(&all, head.as_ref().map(|(s, h)| (*s, h.as_str())));
        ensure!(
            matches!(v, Verification::Ok { events, .. } if events == all.len() as i64),
            "chain of tenant #{t} in {} does not verify: {v:?}",
            CELLS[cell]
        );
    }
    Ok(())
}

/// `t`'s stored files (pending ones are not listed) equal the model's.
pub async fn check_files(b: &Backend, m: &Model, t: usize) -> Result<(), String> {
    let cell = m.home[t];
    let got = b
        .cell(CELLS[cell])
        .list_files(&m.scope(t, cell), None, 1000)
        .await
        .map_err(|e| format!("list_files: {e:?}"))?;
    let want = m.stored_files(t);
    let got_ids: Vec<FileId> = got.iter().map(|f| f.id).collect();
    let want_ids: Vec<FileId> = want.iter().map(|&i| m.files[i].id).collect();
    ensure!(
        got_ids == want_ids,
        "files of tenant #{t}: store {got_ids:?}, model {want_ids:?}"
    );
    for (f, &i) in got.iter().zip(&want) {
        m.check_file(f, i, t)?;
    }
    Ok(())
}

/// After a resource write: every tenant's listing of the kind in that cell, the actor's
/// counters and audit listing there.
pub async fn after_write(
    b: &Backend,
    m: &Model,
    actor: usize,
    cell: usize,
    kind: ResourceKind,
) -> Result<(), String> {
    for reader in 0..m.n() {
        check_list(b, m, reader, cell, kind, SharedFilter::Include, None, 50).await?;
    }
    check_counters(b, m, actor, cell).await?;
    check_audit(b, m, actor, cell, false).await
}

pub async fn after_files(b: &Backend, m: &Model, actor: usize) -> Result<(), String> {
    check_counters(b, m, actor, m.home[actor]).await?;
    check_files(b, m, actor).await?;
    check_audit(b, m, actor, m.home[actor], false).await
}
