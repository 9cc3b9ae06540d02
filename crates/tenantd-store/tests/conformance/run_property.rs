//! The agent-run property: random sequences of admissions, leases (some with a lease that
//! lapses at once), usage reports (some repeated), completions (some twice), cancellations and
//! expiry sweeps keep, after every step,
//!
//! - the tenant's `tokens_held` counter = Σ over its open runs of what they hold, and its
//!   month's `tokens` counter = Σ tokens used by its runs (nothing drifts);
//! - used + held ≤ limit + overshoot, where overshoot is only what was counted past the
//!   budget by a report refused with `BUDGET_EXHAUSTED` or by a completion's final total
//!   (spent tokens still count, by the contract); no admission or hold growth ever adds to
//!   it, and a refused report counts no more than it carried;
//! - slots in use (`run_totals.leased`) = the runs whose state is `leased` ≤ `concurrent_runs`.
//!
//! At the end every open run is cancelled and nothing may stay held or leased. Cases:
//! `TENANTD_PROPTEST_CASES` (default 24 per backend here; each case is ~40 transactions).

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use tenantd_core::Error;
use tenantd_core::ids::RunId;
use tenantd_core::runs::{
    Completion, Lease, LeaseAsk, RunFilter, RunStatus, Scheduling, TOKENS_HELD, tokens_counter,
};

use crate::backends::*;
use crate::leases::{admit, ask, call, limits};

const LIMIT: i64 = 5_000;
const SLOTS: i64 = 2;

#[derive(Debug, Clone)]
enum Step {
    Admit(i64),
    Lease { lapses: bool, fifo: bool },
    Usage { pick: usize, seq: i64, tokens: i64 },
    Complete { pick: usize, total: Option<i64> },
    Cancel(usize),
    Expire,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (100_i64..2_000).prop_map(Step::Admit),
        3 => (any::<bool>(), any::<bool>()).prop_map(|(lapses, fifo)| Step::Lease { lapses, fifo }),
        4 => (0_usize..8, 0_i64..4, 0_i64..1_500).prop_map(|(pick, seq, tokens)| Step::Usage { pick, seq, tokens }),
        2 => (0_usize..8, proptest::option::of(0_i64..3_000)).prop_map(|(pick, total)| Step::Complete { pick, total }),
        1 => (0_usize..8).prop_map(Step::Cancel),
        1 => Just(Step::Expire),
    ]
}

fn cases() -> u32 {
    std::env::var("TENANTD_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map_or(24, |n: u32| n.min(24))
}

struct Case {
    leases: Vec<Lease>,
    overshoot: i64,
}

async fn check(b: &Backend, t: &TestTenant, c: &Case, after: &Step) -> Result<(), String> {
    let cell = b.home(t);
    let f = RunFilter {
        limit: 200,
        ..RunFilter::default()
    };
    let runs = cell
        .list_runs(&t.scope(), &f)
        .await
        .map_err(|e| e.to_string())?;
    let held: i64 = runs.iter().map(|r| r.held()).sum();
    let used: i64 = runs.iter().map(|r| r.tokens_used).sum();
    let leased = runs
        .iter()
        .filter(|r| r.status == RunStatus::Leased)
        .count() as i64;
    let counted_held = b.counter(t, TOKENS_HELD).await;
    let counted_used = b
        .counter(t, &tokens_counter(tenantd_core::time::now()))
        .await;
    let totals = cell
        .run_totals(&t.scope())
        .await
        .map_err(|e| e.to_string())?;
    if counted_held != held {
        return Err(format!(
            "after {after:?}: tokens_held {counted_held} but the runs hold {held}"
        ));
    }
    if counted_used != used {
        return Err(format!(
            "after {after:?}: tokens used {counted_used} but the runs used {used}"
        ));
    }
    if used + held > LIMIT + c.overshoot {
        return Err(format!(
            "after {after:?}: used {used} + held {held} > limit {LIMIT} + overshoot {}",
            c.overshoot
        ));
    }
    if totals.leased != leased || leased > SLOTS {
        return Err(format!(
            "after {after:?}: slots {} / leased runs {leased}",
            totals.leased
        ));
    }
    Ok(())
}

async fn run_case(b: &Backend, steps: Vec<Step>) -> Result<(), String> {
    let t = b.tenant(LOCAL).await;
    let out = run_steps(b, &t, steps).await;
    // At rest (and whatever failed, so the next case's leases never find this tenant's runs):
    // stopping the tenant cancels what is open; nothing may stay held or leased.
    let cell = b.home(&t);
    cell.stop_runs(&t.scope(), "end of case", "system", None)
        .await
        .map_err(|e| e.to_string())?;
    out?;
    let totals = cell
        .run_totals(&t.scope())
        .await
        .map_err(|e| e.to_string())?;
    if (totals.held, totals.leased, totals.queued) != (0, 0, 0) {
        return Err(format!("at rest: {totals:?}"));
    }
    Ok(())
}

async fn run_steps(b: &Backend, t: &TestTenant, steps: Vec<Step>) -> Result<(), String> {
    let cell = b.home(t).clone();
    let l = limits(Some(SLOTS), Some(LIMIT));
    let mut c = Case {
        leases: Vec::new(),
        overshoot: 0,
    };
    let mut admitted: Vec<RunId> = Vec::new();
    let mut completed: HashMap<usize, RunStatus> = HashMap::new();
    for s in &steps {
        match s {
            Step::Admit(hold) => match admit(b, t, *hold, l).await {
                Ok(id) => admitted.push(id),
                Err(Error::QuotaExceeded { .. }) => {}
                Err(e) => return Err(format!("admit: {e}")),
            },
            Step::Lease { lapses, fifo } => {
                let ask = LeaseAsk {
                    scheduling: if *fifo {
                        Scheduling::Fifo
                    } else {
                        Scheduling::Fair
                    },
                    ..ask(if *lapses { 0 } else { 60_000 })
                };
                let got = cell
                    .unscoped_lease(&ask)
                    .await
                    .map(|o| o.leased())
                    .map_err(|e| format!("lease: {e}"))?;
                if let Some(lease) = got {
                    if lease.run.tenant_id != t.id() {
                        return Err("leased another tenant's run".into());
                    }
                    c.leases.push(lease);
                }
            }
            Step::Usage { pick, seq, tokens } => {
                let Some(lease) = c.leases.get(pick % c.leases.len().max(1)) else {
                    continue;
                };
                let before = (
                    b.counter(t, &tokens_counter(tenantd_core::time::now()))
                        .await,
                    b.counter(t, TOKENS_HELD).await,
                );
                let out = cell
                    .unscoped_report_usage(&call(lease.run.id, &lease.lease_id), *seq, *tokens)
                    .await;
                match out {
                    Ok(_) | Err(Error::LeaseLost | Error::RunCancelled) => {}
                    Err(Error::BudgetExhausted { .. }) => {
                        let after = (
                            b.counter(t, &tokens_counter(tenantd_core::time::now()))
                                .await,
                            b.counter(t, TOKENS_HELD).await,
                        );
                        let beyond = after.0 + after.1 - LIMIT;
                        if after.0 > before.0 + tokens {
                            return Err("a refused report counted more than it carried".into());
                        }
                        c.overshoot = c.overshoot.max(beyond);
                    }
                    Err(e) => return Err(format!("usage: {e}")),
                }
            }
            Step::Complete { pick, total } => {
                let i = pick % c.leases.len().max(1);
                let Some(lease) = c.leases.get(i) else {
                    continue;
                };
                let done = Completion {
                    output: None,
                    error: None,
                    tokens_total: *total,
                };
                match cell
                    .unscoped_complete(&call(lease.run.id, &lease.lease_id), done)
                    .await
                {
                    Ok(Some(run)) => {
                        if let Some(prev) = completed.insert(i, run.status)
                            && prev != run.status
                        {
                            return Err("a second completion changed the run".into());
                        }
                        // A completion may count tokens past the budget only as a report
                        // would: track it like one.
                        let used = b
                            .counter(t, &tokens_counter(tenantd_core::time::now()))
                            .await;
                        let held = b.counter(t, TOKENS_HELD).await;
                        c.overshoot = c.overshoot.max(used + held - LIMIT);
                    }
                    Ok(None)
                    | Err(Error::LeaseLost | Error::RunCancelled | Error::BudgetExhausted { .. }) =>
                        {}
                    Err(e) => return Err(format!("complete: {e}")),
                }
            }
            Step::Cancel(pick) => {
                if let Some(id) = admitted.get(pick % admitted.len().max(1)) {
                    cell.cancel_run(&t.scope(), *id, draft(t.id(), "runs.cancel"))
                        .await
                        .map_err(|e| format!("cancel: {e}"))?;
                }
            }
            Step::Expire => {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                let due = cell
                    .unscoped_due_leases(tenantd_core::time::now(), 100)
                    .await
                    .map_err(|e| e.to_string())?;
                for d in due {
                    cell.expire_lease(&t.scope(), &d, 2)
                        .await
                        .map_err(|e| format!("expire: {e}"))?;
                }
            }
        }
        check(b, t, &c, s).await?;
    }
    // At rest: stopping the tenant cancels what is open; nothing stays held or leased.
    cell.stop_runs(&t.scope(), "end of case", "system", None)
        .await
        .map_err(|e| e.to_string())?;
    let totals = cell
        .run_totals(&t.scope())
        .await
        .map_err(|e| e.to_string())?;
    if (totals.held, totals.leased, totals.queued) != (0, 0, 0) {
        return Err(format!("at rest: {totals:?}"));
    }
    Ok(())
}

fn run_property(rt: &tokio::runtime::Runtime, b: &Backend) {
    let config = ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&proptest::collection::vec(step(), 10..40), |steps| {
        rt.block_on(run_case(b, steps)).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("{} store: agent-run property failed: {e}", b.name);
    }
}

#[test]
fn run_accounting_on_sqlite() {
    let rt = runtime();
    let b = rt.block_on(Backend::sqlite());
    run_property(&rt, &b);
    let _in_runtime = rt.enter();
    drop(b);
}

#[test]
fn run_accounting_on_postgres() {
    let rt = runtime();
    let Some(b) = rt.block_on(Backend::postgres()) else {
        return;
    };
    run_property(&rt, &b);
    let _in_runtime = rt.enter();
    drop(b);
}
