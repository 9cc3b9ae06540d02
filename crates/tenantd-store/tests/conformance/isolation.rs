//! The isolation property: random sequences of multi-tenant operations (`ops`), applied to
//! the store and to the model (`model`), must agree after every step (`steps`, `file_steps`,
//! `checks`) and in a final sweep over every tenant, kind and cell.
//!
//! Each case makes 3–4 fresh tenants in the catalog (the first two always share a cell), so
//! cases are independent without fresh databases; items of earlier cases may still be in the
//! cells, and the only ones a tenant of this case may ever see are global ones.

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use tenantd_core::resource::{ResourceKind, SharedFilter, SharingMode};
use tenantd_core::store::*;

use crate::backends::*;
use crate::model::Model;
use crate::ops::{Case, OP_KINDS, case};
use crate::{checks, steps};

/// Makes the case's tenants in the catalog and plays its operations, checking every step,
/// then sweeps everything and removes the case's global items (so later cases' listings stay
/// small).
async fn run_case(b: &Backend, case: Case) -> Result<(), String> {
    let mut tenants = Vec::new();
    for &home in &case.homes {
        let new = new_tenant(CELLS[home]);
        let t = b
            .catalog
            .create_tenant(
                new,
                TenantOwner::NewUser(new_user("prop")),
                None,
                Vec::new(),
            )
            .await
            .map_err(|e| format!("create_tenant: {e:?}"))?;
        ensure!(
            t.cell == CELLS[home],
            "tenant placed in {} not {}",
            t.cell,
            CELLS[home]
        );
        tenants.push(t.id);
    }
    let mut m = Model::new(tenants, case.homes.clone());
    for (step, op) in case.ops.iter().enumerate() {
        steps::apply(b, &mut m, op)
            .await
            .map_err(|e| format!("step {step} {op:?}: {e}"))?;
    }
    sweep(b, &m)
        .await
        .map_err(|e| format!("final sweep: {e}"))?;
    for r in m
        .res
        .iter()
        .filter(|r| r.alive && r.mode == SharingMode::Global)
    {
        let d = draft(m.tenants[r.owner], "cleanup.delete");
        let _ = b
            .cell(CELLS[r.cell])
            .delete_resource(&m.scope(r.owner, r.cell), r.kind, r.id, d)
            .await;
    }
    Ok(())
}

/// Everything, for every tenant of the case: counters and whole audit chains in both cells,
/// listings of every kind in its cell (and of the operations' kinds in the other), its files,
/// and a read by id of every resource the case ever made.
async fn sweep(b: &Backend, m: &Model) -> Result<(), String> {
    for t in 0..m.n() {
        for cell in 0..CELLS.len() {
            checks::check_counters(b, m, t, cell).await?;
            checks::check_audit(b, m, t, cell, true).await?;
            let kinds: &[ResourceKind] = if cell == m.home[t] {
                ResourceKind::ALL
            } else {
                &OP_KINDS
            };
            for &kind in kinds {
                checks::check_list(b, m, t, cell, kind, SharedFilter::Include, None, 50).await?;
            }
        }
        checks::check_files(b, m, t).await?;
        for i in 0..m.res.len() {
            checks::read_back(b, m, t, i, m.res[i].cell, m.res[i].kind).await?;
        }
    }
    Ok(())
}

/// `TENANTD_CONFORMANCE_CASES`, or 256.
fn cases() -> u32 {
    std::env::var("TENANTD_CONFORMANCE_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(256)
}

/// Runs the property on one backend: one runtime, one backend, fresh tenants per case.
fn run_property(rt: &tokio::runtime::Runtime, b: &Backend) {
    let config = ProptestConfig {
        cases: cases(),
        // Nothing is written to the source tree; a failure prints its minimal case.
        failure_persistence: None,
        max_shrink_iters: 512,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case(), |c| {
        rt.block_on(run_case(b, c)).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{} store: tenant isolation property failed: {e}", b.name);
    }
}

/// The property on SQLite.
#[test]
fn isolation_on_sqlite() {
    let rt = runtime();
    let b = rt.block_on(Backend::sqlite());
    run_property(&rt, &b);
    let _in_runtime = rt.enter();
    drop(b);
}

/// The property on PostgreSQL (row-level security binding the serving role).
#[test]
fn isolation_on_postgres() {
    let rt = runtime();
    let Some(b) = rt.block_on(Backend::postgres()) else {
        return;
    };
    run_property(&rt, &b);
    let _in_runtime = rt.enter();
    drop(b);
}
