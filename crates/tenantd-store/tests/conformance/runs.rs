//! Agent runs: admission is exact under concurrency — the queue limit and the token budget
//! admit exactly what fits, an idempotency key makes one run, a refusal takes nothing, and
//! another tenant cannot read a run; a cancellation frees its place and its hold once.

use std::collections::HashSet;

use tenantd_core::Error;
use tenantd_core::ids::{ResourceId, RunId};
use tenantd_core::runs::{NewRun, RunLimits, RunStatus, TOKENS_HELD};

use crate::backends::*;

conformance! {
    check_queue_limit => queue_limit_on_sqlite, queue_limit_on_postgres;
    check_token_budget => token_budget_on_sqlite, token_budget_on_postgres;
    check_idempotency => idempotency_on_sqlite, idempotency_on_postgres;
    check_cancel => cancel_on_sqlite, cancel_on_postgres;
}

fn new_run(hold: i64, key: Option<&str>) -> NewRun {
    NewRun {
        id: RunId::new(),
        agent_id: ResourceId::new(),
        model: "small".into(),
        input: serde_json::json!({"prompt": "hello"}),
        max_tokens: None,
        token_hold: hold,
        idempotency_key: key.map(str::to_owned),
    }
}

/// `n` admissions of `t` at once; the outcomes.
async fn admit_at_once(
    b: &Backend,
    t: &TestTenant,
    n: usize,
    hold: i64,
    key: Option<&str>,
    limits: RunLimits,
) -> Vec<tenantd_core::Result<(tenantd_core::runs::Run, bool)>> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (cell, scope, tenant) = (b.home(t).clone(), t.scope(), t.id());
        let run = new_run(hold, key);
        tasks.push(tokio::spawn(async move {
            cell.admit_run(&scope, run, limits, draft(tenant, "runs.queue"))
                .await
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.expect("the task ran"));
    }
    out
}

/// 200 admissions at once against `queued_runs = 15` admit exactly 15; the others are
/// `QuotaExceeded queued_runs` and hold nothing.
async fn check_queue_limit(b: &Backend) {
    let t = b.tenant(LOCAL).await;
    let limits = RunLimits {
        queued: Some(15),
        tokens: None,
        slots: None,
        spawns_per_minute: None,
    };
    let outcomes = admit_at_once(b, &t, 200, 100, None, limits).await;
    let mut admitted = 0;
    for o in outcomes {
        match o {
            Ok((run, true)) => {
                assert_eq!((run.status, run.tenant_id), (RunStatus::Queued, t.id()));
                admitted += 1;
            }
            Err(Error::QuotaExceeded {
                resource,
                current,
                limit,
                ..
            }) => {
                assert_eq!((resource.as_str(), current, limit), ("queued_runs", 15, 15));
            }
            other => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!(admitted, 15);
    assert_eq!(
        b.counter(&t, TOKENS_HELD).await,
        15 * 100,
        "only the admitted hold"
    );
}

/// A budget of ten holds admits exactly ten runs at once; used + held never passes it.
async fn check_token_budget(b: &Backend) {
    let t = b.tenant(LOCAL).await;
    let limits = RunLimits {
        queued: None,
        tokens: Some(10 * 4_000 + 3_999),
        slots: None,
        spawns_per_minute: None,
    };
    let outcomes = admit_at_once(b, &t, 100, 4_000, None, limits).await;
    let admitted = outcomes.iter().filter(|o| o.is_ok()).count();
    for o in &outcomes {
        if let Err(e) = o {
            assert!(
                matches!(e, Error::QuotaExceeded { resource, .. } if resource == "tokens"),
                "{e:?}"
            );
        }
    }
    assert_eq!(admitted, 10);
    assert_eq!(b.counter(&t, TOKENS_HELD).await, 40_000);
}

/// 100 admissions at once with one key make one run, returned to all of them; another
/// tenant's same key is its own run; a run is not another tenant's to read.
async fn check_idempotency(b: &Backend) {
    let t = b.tenant(LOCAL).await;
    let u = b.tenant(LOCAL).await;
    let limits = RunLimits {
        queued: Some(50),
        tokens: None,
        slots: None,
        spawns_per_minute: None,
    };
    let outcomes = admit_at_once(b, &t, 100, 10, Some("key-1"), limits).await;
    let ids: HashSet<RunId> = outcomes
        .iter()
        .map(|o| o.as_ref().expect("admitted").0.id)
        .collect();
    assert_eq!(ids.len(), 1, "one run");
    let made = outcomes
        .iter()
        .filter(|o| o.as_ref().is_ok_and(|r| r.1))
        .count();
    assert_eq!(made, 1, "made once, returned 99 times");
    assert_eq!(b.counter(&t, TOKENS_HELD).await, 10, "one hold");
    let theirs = admit_at_once(b, &u, 1, 10, Some("key-1"), limits).await;
    let theirs = theirs[0].as_ref().expect("admitted").0.id;
    assert!(!ids.contains(&theirs));
    let mine = *ids.iter().next().unwrap();
    assert_eq!(b.home(&t).get_run(&t.scope(), mine).await.unwrap().id, mine);
    assert_not_found(
        b.home(&u).get_run(&u.scope(), mine).await,
        "another tenant's run",
    );
}

/// Cancelling a queued run frees its queue place and its hold at once (a full queue and a
/// spent budget admit again), twice is the same as once, racing cancels release the hold
/// once, and another tenant's run is `NotFound`.
async fn check_cancel(b: &Backend) {
    let t = b.tenant(LOCAL).await;
    let u = b.tenant(LOCAL).await;
    let limits = RunLimits {
        queued: Some(2),
        tokens: Some(2_000),
        slots: None,
        spawns_per_minute: None,
    };
    let first = admit_at_once(b, &t, 2, 1_000, None, limits).await;
    let ids: Vec<RunId> = first.iter().map(|o| o.as_ref().unwrap().0.id).collect();
    assert!(
        admit_at_once(b, &t, 1, 1_000, None, limits).await[0].is_err(),
        "full"
    );
    assert_not_found(
        b.home(&u)
            .cancel_run(&u.scope(), ids[0], draft(u.id(), "runs.cancel"))
            .await,
        "another tenant's run",
    );
    // Ten cancels of one run at once: it ends once, its hold comes back once.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (cell, scope, tenant, id) = (b.home(&t).clone(), t.scope(), t.id(), ids[0]);
        tasks.push(tokio::spawn(async move {
            cell.cancel_run(&scope, id, draft(tenant, "runs.cancel"))
                .await
        }));
    }
    for task in tasks {
        let run = task.await.unwrap().expect("cancelled");
        assert_eq!(run.status, RunStatus::Cancelled);
    }
    assert_eq!(b.counter(&t, TOKENS_HELD).await, 1_000);
    let again = admit_at_once(b, &t, 2, 1_000, None, limits).await;
    assert_eq!(
        again.iter().filter(|o| o.is_ok()).count(),
        1,
        "one place and one hold freed"
    );
    let (chain, _) = b.home(&t).audit_chain(&t.scope()).await.unwrap();
    let cancels = chain.iter().filter(|e| e.action == "runs.cancel").count();
    assert_eq!(cancels, 1, "one cancellation recorded");
}
