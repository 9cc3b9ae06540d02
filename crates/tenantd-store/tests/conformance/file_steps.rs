//! File steps of the isolation property: a reservation counts against `storage_bytes` from
//! the start, and only its owner completes, aborts, reads or deletes a file.

use tenantd_core::ids::FileId;
use tenantd_core::resource::{NewFile, ResourceName};

use crate::backends::{Backend, CELLS, expires};
use crate::checks::after_files;
use crate::model::{FileState, MFile, Model, Want, outcome};
use crate::ops::Target;
use crate::steps::resolve_file;

pub async fn reserve(
    b: &Backend,
    m: &mut Model,
    a: usize,
    size: i64,
    limit: Option<i64>,
) -> Result<(), String> {
    let cell = m.home[a];
    let used = m.counter(a, cell, "storage_bytes");
    let new = NewFile {
        id: FileId::new(),
        name: ResourceName::parse("blob.bin").map_err(|e| format!("{e:?}"))?,
        size,
        sha256: format!("{size:064x}"),
        content_type: "application/octet-stream".into(),
        created_by: m.actor(a),
    };
    let want = match limit.filter(|l| used + size > *l) {
        Some(l) => Want::Quota {
            resource: "storage_bytes".into(),
            current: used,
            limit: l,
            requested: size,
        },
        None => Want::Ok,
    };
    let got = b
        .cell(CELLS[cell])
        .reserve_file(&m.scope(a, cell), &new, limit, expires())
        .await;
    outcome(&got, &[want])?;
    if got.is_ok() {
        m.files.push(MFile {
            id: new.id,
            owner: a,
            name: "blob.bin".into(),
            size,
            sha256: new.sha256.clone(),
            state: FileState::Pending,
        });
        m.add(a, cell, "storage_bytes", size);
    }
    after_files(b, m, a).await
}

pub async fn complete(b: &Backend, m: &mut Model, a: usize, target: &Target) -> Result<(), String> {
    let cell = m.home[a];
    let (fi, id) = resolve_file(m, target, a);
    let mine = fi.filter(|&i| m.files[i].owner == a && m.files[i].state == FileState::Pending);
    let d = m.draft(a, "files.upload", "files", Some(id.to_string()));
    let got = b
        .cell(CELLS[cell])
        .complete_file(&m.scope(a, cell), id, d.clone())
        .await;
    outcome(
        &got,
        &[if mine.is_some() {
            Want::Ok
        } else {
            Want::NotFound
        }],
    )?;
    if let (Ok(meta), Some(i)) = (&got, mine) {
        m.check_file(meta, i, a)?;
        m.files[i].state = FileState::Stored;
        m.logged(a, cell, d.id);
    }
    after_files(b, m, a).await
}

pub async fn abort(b: &Backend, m: &mut Model, a: usize, target: &Target) -> Result<(), String> {
    let cell = m.home[a];
    let (fi, id) = resolve_file(m, target, a);
    let mine = fi.filter(|&i| m.files[i].owner == a && m.files[i].state == FileState::Pending);
    let got = b.cell(CELLS[cell]).abort_file(&m.scope(a, cell), id).await;
    match mine {
        Some(i) => {
            outcome(&got, &[Want::Ok])?;
            m.files[i].state = FileState::Gone;
            let size = m.files[i].size;
            m.add(a, cell, "storage_bytes", -size);
        }
        // Nothing of the actor's to abort: an answer either way, and nothing may change
        // (after_files checks the actor; the sweep checks the owner).
        None => outcome(&got, &[Want::Ok, Want::NotFound])?,
    }
    after_files(b, m, a).await
}

pub async fn delete_file(
    b: &Backend,
    m: &mut Model,
    a: usize,
    target: &Target,
) -> Result<(), String> {
    let cell = m.home[a];
    let (fi, id) = resolve_file(m, target, a);
    let mine = fi.filter(|&i| m.files[i].owner == a && m.files[i].state == FileState::Stored);
    let d = m.draft(a, "files.delete", "files", Some(id.to_string()));
    let got = b
        .cell(CELLS[cell])
        .delete_file(&m.scope(a, cell), id, d.clone())
        .await;
    outcome(
        &got,
        &[if mine.is_some() {
            Want::Ok
        } else {
            Want::NotFound
        }],
    )?;
    if let (Ok(meta), Some(i)) = (&got, mine) {
        m.check_file(meta, i, a)?;
        m.files[i].state = FileState::Gone;
        let size = m.files[i].size;
        m.add(a, cell, "storage_bytes", -size);
        m.logged(a, cell, d.id);
    }
    after_files(b, m, a).await
}
