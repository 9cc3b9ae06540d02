//! One step of the isolation property: apply an operation to the store, compare its outcome
//! with the model's prediction, update the model, and check what the step could have
//! disturbed (`checks`: listings of the kind by every tenant of the case, the actor's
//! counters and audit listing). Resource operations are here, file ones in `file_steps`.

use serde_json::json;
use tenantd_core::ids::{FileId, ResourceId};
use tenantd_core::resource::{NewResource, ResourceKind, ResourceName, ResourcePatch, Spec};

use crate::backends::{Backend, CELLS, draft};
use crate::checks::{after_write, check_audit, check_counters, check_list, read_back};
use crate::file_steps::{abort, complete, delete_file, reserve};
use crate::model::{FileState, MRes, Model, Want, outcome};
use crate::ops::{IfVersion, Op, ShareSpec, Target, TargetMode};

pub async fn apply(b: &Backend, m: &mut Model, op: &Op) -> Result<(), String> {
    let n = m.n();
    match op.clone() {
        Op::Create {
            actor,
            kind,
            name,
            share,
            limit,
            spec,
        } => create(b, m, actor % n, kind, name, share, limit, spec).await,
        Op::Get {
            actor,
            target,
            kind,
            wrong_kind,
            other_cell,
        } => {
            let a = actor % n;
            let cell = cell_of(m, a, other_cell);
            let (ri, id, k) = resolve(m, &target, a, kind, wrong_kind);
            match ri {
                Some(i) if m.res[i].kind == k => read_back(b, m, a, i, cell, k).await,
                _ => {
                    let got = b
                        .cell(CELLS[cell])
                        .get_resource(&m.scope(a, cell), k, id)
                        .await;
                    outcome(&got, &[Want::NotFound])
                }
            }
        }
        Op::List {
            actor,
            kind,
            shared,
            name,
            page,
            other_cell,
        } => {
            let a = actor % n;
            let cell = cell_of(m, a, other_cell);
            check_list(b, m, a, cell, kind, shared, name, page).await
        }
        Op::Update {
            actor,
            target,
            rename,
            spec,
            share,
            version,
            other_cell,
        } => {
            let a = actor % n;
            let cell = cell_of(m, a, other_cell);
            update(b, m, a, cell, &target, rename, spec, share, version).await
        }
        Op::Share {
            actor,
            target,
            share,
        } => {
            let (a, share) = (actor % n, Some(share));
            let cell = m.home[a];
            update(b, m, a, cell, &target, None, None, share, IfVersion::Absent).await
        }
        Op::Unshare { actor, target } => {
            let (a, share) = (actor % n, Some(ShareSpec::Private));
            let cell = m.home[a];
            update(b, m, a, cell, &target, None, None, share, IfVersion::Absent).await
        }
        Op::Delete {
            actor,
            target,
            kind,
            wrong_kind,
            other_cell,
        } => {
            let a = actor % n;
            let cell = cell_of(m, a, other_cell);
            delete(b, m, a, cell, &target, kind, wrong_kind).await
        }
        Op::Audit {
            actor,
            count,
            resend,
        } => {
            let a = actor % n;
            let cell = m.home[a];
            let mut batch = Vec::new();
            let mine: Vec<usize> = (0..m.drafts.len())
                .filter(|&i| m.drafts[i].tenant_id == m.tenants[a])
                .collect();
            if let Some(ix) = resend.filter(|_| !mine.is_empty()) {
                batch.push(m.drafts[mine[ix.index(mine.len())]].clone());
            }
            for i in 0..count {
                batch.push(m.draft(a, "test.append", "audit", Some(i.to_string())));
            }
            let got = b
                .cell(CELLS[cell])
                .append_audit(&m.scope(a, cell), batch.clone())
                .await;
            outcome(&got, &[Want::Ok])?;
            for d in &batch {
                m.logged(a, cell, d.id);
            }
            check_audit(b, m, a, cell, true).await
        }
        Op::ForgedAudit { actor, victim } => {
            let a = actor % n;
            let v = if victim % n == a {
                (a + 1) % n
            } else {
                victim % n
            };
            let cell = m.home[a];
            let forged = draft(m.tenants[v], "test.forged");
            let got = b
                .cell(CELLS[cell])
                .append_audit(&m.scope(a, cell), vec![forged])
                .await;
            outcome(&got, &[Want::AnyErr])?;
            check_audit(b, m, a, cell, true).await?;
            check_audit(b, m, v, cell, true).await
        }
        Op::Counters { actor, other_cell } => {
            let a = actor % n;
            check_counters(b, m, a, cell_of(m, a, other_cell)).await
        }
        Op::Reserve { actor, size, limit } => reserve(b, m, actor % n, size, limit).await,
        Op::Complete { actor, target } => complete(b, m, actor % n, &target).await,
        Op::Abort { actor, target } => abort(b, m, actor % n, &target).await,
        Op::DeleteFile { actor, target } => delete_file(b, m, actor % n, &target).await,
        Op::GetFile { actor, target } => {
            let a = actor % n;
            let (fi, id) = resolve_file(m, &target, a);
            let mine =
                fi.filter(|&i| m.files[i].owner == a && m.files[i].state == FileState::Stored);
            let got = b
                .cell(CELLS[m.home[a]])
                .get_file(&m.scope(a, m.home[a]), id)
                .await;
            match mine {
                Some(i) => {
                    outcome(&got, &[Want::Ok])?;
                    if let Ok(meta) = &got {
                        m.check_file(meta, i, a)?;
                    }
                    Ok(())
                }
                None => outcome(&got, &[Want::NotFound]),
            }
        }
    }
}

fn cell_of(m: &Model, a: usize, other_cell: bool) -> usize {
    if other_cell { 1 - m.home[a] } else { m.home[a] }
}

fn pick(len: usize, own: Vec<usize>, t: &Target) -> Option<usize> {
    match t.mode {
        TargetMode::Fresh => None,
        TargetMode::Own if !own.is_empty() => Some(own[t.pick.index(own.len())]),
        _ if len == 0 => None,
        _ => Some(t.pick.index(len)),
    }
}

/// The resource a target names (if any), the id to send, and the kind to send it with.
fn resolve(
    m: &Model,
    t: &Target,
    actor: usize,
    kind: ResourceKind,
    wrong_kind: bool,
) -> (Option<usize>, ResourceId, ResourceKind) {
    let own = (0..m.res.len())
        .filter(|&i| m.res[i].owner == actor)
        .collect();
    match pick(m.res.len(), own, t) {
        Some(i) => (
            Some(i),
            m.res[i].id,
            if wrong_kind { kind } else { m.res[i].kind },
        ),
        None => (None, ResourceId::new(), kind),
    }
}

pub fn resolve_file(m: &Model, t: &Target, actor: usize) -> (Option<usize>, FileId) {
    let own = (0..m.files.len())
        .filter(|&i| m.files[i].owner == actor)
        .collect();
    match pick(m.files.len(), own, t) {
        Some(i) => (Some(i), m.files[i].id),
        None => (None, FileId::new()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn create(
    b: &Backend,
    m: &mut Model,
    a: usize,
    kind: ResourceKind,
    name: &'static str,
    share: ShareSpec,
    limit: Option<i64>,
    spec: i64,
) -> Result<(), String> {
    let cell = m.home[a];
    let (mode, with) = m.sharing_for(share, a);
    let new = NewResource {
        id: ResourceId::new(),
        kind,
        name: ResourceName::parse(name).map_err(|e| format!("{e:?}"))?,
        spec: Spec::parse(json!({"n": spec})).map_err(|e| format!("{e:?}"))?,
        sharing: m.sharing(mode, &with),
        created_by: m.actor(a),
    };
    let used = m.counter(a, cell, kind.as_str());
    let quota = |l: i64| Want::Quota {
        resource: kind.as_str().to_owned(),
        current: used,
        limit: l,
        requested: 1,
    };
    let taken = m.name_taken(a, cell, kind, name, None);
    // Which check comes first is the store's business: when both apply, either error is right.
    let want = match (limit.filter(|l| used + 1 > *l), taken) {
        (Some(l), true) => vec![quota(l), Want::Conflict("name")],
        (Some(l), false) => vec![quota(l)],
        (None, true) => vec![Want::Conflict("name")],
        (None, false) => vec![Want::Ok],
    };
    let d = m.draft(
        a,
        &format!("{kind}.create"),
        kind.as_str(),
        Some(new.id.to_string()),
    );
    let got = b
        .cell(CELLS[cell])
        .create_resource(&m.scope(a, cell), new.clone(), limit, d.clone())
        .await;
    outcome(&got, &want)?;
    if let Ok(r) = &got {
        m.res.push(MRes {
            id: new.id,
            cell,
            owner: a,
            kind,
            name: name.to_owned(),
            spec: json!({"n": spec}),
            mode,
            with,
            version: 1,
            created_by: new.created_by.clone(),
            alive: true,
        });
        m.check_view(r, m.res.len() - 1, a)?;
        m.add(a, cell, kind.as_str(), 1);
        m.logged(a, cell, d.id);
    }
    after_write(b, m, a, cell, kind).await
}

#[allow(clippy::too_many_arguments)]
async fn update(
    b: &Backend,
    m: &mut Model,
    a: usize,
    cell: usize,
    target: &Target,
    rename: Option<&'static str>,
    spec: Option<i64>,
    share: Option<ShareSpec>,
    version: IfVersion,
) -> Result<(), String> {
    let (ri, id, kind) = resolve(m, target, a, ResourceKind::Agents, false);
    let current = ri.map_or(1, |i| m.res[i].version);
    let if_version = match version {
        IfVersion::Absent => None,
        IfVersion::Current => Some(current),
        IfVersion::Stale => Some(current + 7),
    };
    let sharing = share.map(|s| m.sharing_for(s, a));
    let patch = ResourcePatch {
        name: rename.map(|n| ResourceName::parse(n).expect("a valid name")),
        spec: spec.map(|s| Spec::parse(json!({"n": s})).expect("a valid spec")),
        sharing: sharing.as_ref().map(|(mode, with)| m.sharing(*mode, with)),
        if_version,
    };
    let owned = ri.filter(|&i| m.owns(i, a, cell));
    let want = match owned {
        None if ri.is_some_and(|i| m.sees_shared(i, a, cell)) => vec![Want::Forbidden],
        None => vec![Want::NotFound],
        Some(i) => {
            let stale = if_version.is_some_and(|v| v != m.res[i].version);
            let taken = rename.is_some_and(|nm| m.name_taken(a, cell, kind, nm, Some(i)));
            match (stale, taken) {
                (true, true) => vec![Want::Precondition, Want::Conflict("name")],
                (true, false) => vec![Want::Precondition],
                (false, true) => vec![Want::Conflict("name")],
                (false, false) => vec![Want::Ok],
            }
        }
    };
    let d = m.draft(
        a,
        &format!("{kind}.update"),
        kind.as_str(),
        Some(id.to_string()),
    );
    let got = b
        .cell(CELLS[cell])
        .update_resource(&m.scope(a, cell), kind, id, patch, d.clone())
        .await;
    outcome(&got, &want)?;
    if let (Ok(r), Some(i)) = (&got, owned) {
        let res = &mut m.res[i];
        res.version += 1;
        if let Some(nm) = rename {
            res.name = nm.to_owned();
        }
        if let Some(s) = spec {
            res.spec = json!({"n": s});
        }
        if let Some((mode, with)) = sharing {
            res.mode = mode;
            res.with = with;
        }
        m.check_view(r, i, a)?;
        m.logged(a, cell, d.id);
    }
    after_write(b, m, a, cell, kind).await
}

async fn delete(
    b: &Backend,
    m: &mut Model,
    a: usize,
    cell: usize,
    target: &Target,
    kind: ResourceKind,
    wrong_kind: bool,
) -> Result<(), String> {
    let (ri, id, k) = resolve(m, target, a, kind, wrong_kind);
    let same_kind = |i: usize| m.res[i].kind == k;
    let owned = ri.filter(|&i| same_kind(i) && m.owns(i, a, cell));
    let want = if owned.is_some() {
        Want::Ok
    } else if ri.is_some_and(|i| same_kind(i) && m.sees_shared(i, a, cell)) {
        Want::Forbidden
    } else {
        Want::NotFound
    };
    let d = m.draft(a, &format!("{k}.delete"), k.as_str(), Some(id.to_string()));
    let got = b
        .cell(CELLS[cell])
        .delete_resource(&m.scope(a, cell), k, id, d.clone())
        .await;
    outcome(&got, &[want])?;
    if let (Ok(()), Some(i)) = (&got, owned) {
        m.res[i].alive = false;
        m.add(a, cell, k.as_str(), -1);
        m.logged(a, cell, d.id);
    }
    after_write(b, m, a, cell, k).await
}
