//! Leasing agent runs: round robin across tenants whatever their backlog, never beyond a
//! tenant's slots even under racing leases, fenced worker calls, usage counted once and
//! closed into the budget, completion settling the hold, expiry requeueing then ending a run,
//! and a stopped tenant's runs cancelled and never leased.

use std::collections::{HashMap, HashSet};

use chrono::Duration;
use tenantd_core::Error;
use tenantd_core::ids::{ResourceId, RunId, TenantId};
use tenantd_core::runs::{
    Completion, LeaseAsk, LeaseOutcome, NewRun, RunLimits, RunStatus, Scheduling, TOKENS_HELD,
    WorkerCall, tokens_counter,
};

use crate::backends::*;

conformance! {
    check_lifecycle => lifecycle_on_sqlite, lifecycle_on_postgres;
    check_round_robin => round_robin_on_sqlite, round_robin_on_postgres;
    check_fifo => fifo_on_sqlite, fifo_on_postgres;
    check_racing_leases => racing_leases_on_sqlite, racing_leases_on_postgres;
    check_budget_closes => budget_closes_on_sqlite, budget_closes_on_postgres;
    check_expiry => expiry_on_sqlite, expiry_on_postgres;
    check_stop => stop_on_sqlite, stop_on_postgres;
}

pub fn limits(slots: Option<i64>, tokens: Option<i64>) -> RunLimits {
    RunLimits {
        queued: None,
        tokens,
        slots,
        spawns_per_minute: None,
    }
}

pub fn ask(ttl_ms: i64) -> LeaseAsk {
    LeaseAsk {
        scheduling: Default::default(),
        wait_for_row: true,
        models: None,
        ttl: Duration::milliseconds(ttl_ms),
        actor: "api_key:worker".into(),
        request_id: None,
    }
}

pub fn call(run: RunId, lease_id: &str) -> WorkerCall {
    WorkerCall {
        run,
        lease_id: lease_id.to_owned(),
        actor: "api_key:worker".into(),
        request_id: None,
    }
}

/// Admits one run of `t` holding `hold`.
pub async fn admit(
    b: &Backend,
    t: &TestTenant,
    hold: i64,
    l: RunLimits,
) -> tenantd_core::Result<RunId> {
    let new = NewRun {
        id: RunId::new(),
        agent_id: ResourceId::new(),
        model: "small".into(),
        input: serde_json::json!({}),
        max_tokens: None,
        token_hold: hold,
        idempotency_key: None,
    };
    let (run, _) = b
        .home(t)
        .admit_run(&t.scope(), new, l, draft(t.id(), "runs.queue"))
        .await?;
    Ok(run.id)
}

fn done(total: Option<i64>) -> Completion {
    Completion {
        output: Some(serde_json::json!({"answer": 42})),
        error: None,
        tokens_total: total,
    }
}

/// Queue, lease (the oldest first, never past the slots), heartbeat, usage once per seq,
/// complete: at the end nothing is held and the month counts what was used.
async fn check_lifecycle(b: &Backend) {
    let t = b.tenant(LOCAL).await;
    let l = limits(Some(2), Some(100_000));
    let ids = [
        admit(b, &t, 1_000, l).await.unwrap(),
        admit(b, &t, 1_000, l).await.unwrap(),
        admit(b, &t, 1_000, l).await.unwrap(),
    ];
    let cell = b.home(&t);
    let first = cell
        .unscoped_lease(&ask(30_000))
        .await
        .unwrap()
        .leased()
        .expect("a lease");
    assert_eq!(first.run.id, ids[0], "the oldest first");
    assert_eq!(
        (first.run.status, first.run.attempt),
        (RunStatus::Leased, 1)
    );
    assert_eq!(first.tokens_remaining, Some(100_000 - 3_000 + 1_000));
    let second = cell
        .unscoped_lease(&ask(30_000))
        .await
        .unwrap()
        .leased()
        .expect("a lease");
    assert_eq!(second.run.id, ids[1]);
    assert!(
        cell.unscoped_lease(&ask(30_000))
            .await
            .unwrap()
            .leased()
            .is_none(),
        "two slots, both used"
    );

    let bad = call(ids[0], &second.lease_id);
    assert!(matches!(
        cell.unscoped_heartbeat(&bad, Duration::seconds(30)).await,
        Err(Error::LeaseLost)
    ));
    let c = call(ids[0], &first.lease_id);
    assert!(
        cell.unscoped_heartbeat(&c, Duration::seconds(30))
            .await
            .unwrap()
            .is_some()
    );
    let r = cell
        .unscoped_report_usage(&c, 1, 300)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.tokens_used, 300);
    let again = cell
        .unscoped_report_usage(&c, 1, 300)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.tokens_used, 300, "the same seq counts once");
    assert_eq!(b.counter(&t, TOKENS_HELD).await, 3_000 - 300);
    let ended = cell
        .unscoped_complete(&c, done(Some(450)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (ended.status, ended.tokens_used),
        (RunStatus::Succeeded, 450)
    );
    let twice = cell
        .unscoped_complete(&c, done(Some(450)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        twice.status,
        RunStatus::Succeeded,
        "a duplicate completion changes nothing"
    );
    assert!(matches!(
        cell.unscoped_report_usage(&c, 2, 1).await,
        Err(Error::LeaseLost)
    ));

    let third = cell
        .unscoped_lease(&ask(30_000))
        .await
        .unwrap()
        .leased()
        .expect("the freed slot");
    assert_eq!(third.run.id, ids[2]);
    for lease in [&second, &third] {
        cell.unscoped_complete(&call(lease.run.id, &lease.lease_id), done(None))
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(b.counter(&t, TOKENS_HELD).await, 0, "nothing held at rest");
    assert_eq!(
        b.counter(&t, &tokens_counter(tenantd_core::time::now()))
            .await,
        450
    );
    let totals = cell.run_totals(&t.scope()).await.unwrap();
    assert_eq!((totals.queued, totals.leased, totals.held), (0, 0, 0));
    let (counted, derived) = cell.held_check(&t.scope()).await.unwrap();
    assert_eq!(counted, derived);
}

/// A tenant with 30 queued runs and two with 2 each: the first six leases serve each tenant
/// twice — a share does not grow with a backlog.
async fn check_round_robin(b: &Backend) {
    let noisy = b.tenant(LOCAL).await;
    let quiet = [b.tenant(LOCAL).await, b.tenant(LOCAL).await];
    let l = limits(None, None);
    for _ in 0..30 {
        admit(b, &noisy, 10, l).await.unwrap();
    }
    for q in &quiet {
        for _ in 0..2 {
            admit(b, q, 10, l).await.unwrap();
        }
    }
    let cell = b.home(&noisy);
    let mut served: HashMap<TenantId, usize> = HashMap::new();
    for round in 0..3 {
        let mut this_round = HashSet::new();
        for _ in 0..3 {
            let lease = cell
                .unscoped_lease(&ask(30_000))
                .await
                .unwrap()
                .leased()
                .expect("work");
            this_round.insert(lease.run.tenant_id);
            *served.entry(lease.run.tenant_id).or_default() += 1;
        }
        if round < 2 {
            assert_eq!(this_round.len(), 3, "round {round}: every tenant once");
        }
    }
    assert_eq!(
        served[&noisy.id()],
        5,
        "the quiet ones ran out after two each"
    );
}

/// FIFO scheduling (the fairness benchmark's baseline) serves runs oldest first across
/// tenants: a backlog goes before a neighbour's later run, and a full tenant is passed over
/// for the next oldest run.
async fn check_fifo(b: &Backend) {
    let noisy = b.tenant(LOCAL).await;
    let quiet = b.tenant(LOCAL).await;
    let full = b.tenant(LOCAL).await;
    let cell = b.home(&noisy);
    let fifo = LeaseAsk {
        scheduling: Scheduling::Fifo,
        ..ask(30_000)
    };
    let lease = |a: LeaseAsk| {
        let cell = cell.clone();
        async move { cell.unscoped_lease(&a).await.unwrap().leased() }
    };
    // `full` has one slot: its first run is leased, its second waits behind it.
    for _ in 0..2 {
        admit(b, &full, 10, limits(Some(1), None)).await.unwrap();
    }
    assert_eq!(lease(fifo.clone()).await.unwrap().run.tenant_id, full.id());
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(admit(b, &noisy, 10, limits(None, None)).await.unwrap());
    }
    order.push(admit(b, &quiet, 10, limits(None, None)).await.unwrap());
    let mut got = Vec::new();
    while let Some(l) = lease(fifo.clone()).await {
        got.push(l.run.id);
    }
    assert_eq!(
        got, order,
        "oldest first; the full tenant's second run passed over"
    );
    // The same queue under fair scheduling serves the quiet tenant second.
    let noisy2 = b.tenant(LOCAL).await;
    let quiet2 = b.tenant(LOCAL).await;
    for _ in 0..3 {
        admit(b, &noisy2, 10, limits(None, None)).await.unwrap();
    }
    admit(b, &quiet2, 10, limits(None, None)).await.unwrap();
    let mut fair = Vec::new();
    for _ in 0..4 {
        fair.push(lease(ask(30_000)).await.unwrap().run.tenant_id);
    }
    assert_eq!(fair[..2], [noisy2.id(), quiet2.id()]);
}

/// 24 leases at once over four tenants of 10 queued runs with 3 slots each: exactly 12 are
/// leased, no run twice, no tenant past 3.
async fn check_racing_leases(b: &Backend) {
    let mut tenants = Vec::new();
    for _ in 0..4 {
        let t = b.tenant(LOCAL).await;
        for _ in 0..10 {
            admit(b, &t, 10, limits(Some(3), None)).await.unwrap();
        }
        tenants.push(t);
    }
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let cell = b.local.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                match cell.unscoped_lease(&ask(30_000)).await {
                    Err(Error::Unavailable) | Ok(LeaseOutcome::Contended) => continue,
                    other => return other.map(|o| o.leased()),
                }
            }
        }));
    }
    let mut runs = HashSet::new();
    let mut per: HashMap<TenantId, usize> = HashMap::new();
    for task in tasks {
        if let Some(lease) = task.await.unwrap().expect("no error") {
            assert!(runs.insert(lease.run.id), "a run leased twice");
            *per.entry(lease.run.tenant_id).or_default() += 1;
        }
    }
    assert!(per.values().all(|n| *n <= 3), "{per:?}");
    // Whatever raced, the slots are now exactly full.
    while b
        .local
        .unscoped_lease(&ask(30_000))
        .await
        .unwrap()
        .leased()
        .is_some()
    {}
    for t in &tenants {
        assert_eq!(b.local.run_totals(&t.scope()).await.unwrap().leased, 3);
    }
}

/// Usage past the hold grows it while the budget allows; past the budget the run ends
/// `budget_exceeded`, the tokens still counted, and the next admission sees them at once.
async fn check_budget_closes(b: &Backend) {
    let t = b.tenant(LOCAL).await;
    let l = limits(None, Some(1_000));
    let id = admit(b, &t, 400, l).await.unwrap();
    let cell = b.home(&t);
    let lease = cell
        .unscoped_lease(&ask(30_000))
        .await
        .unwrap()
        .leased()
        .unwrap();
    let c = call(id, &lease.lease_id);
    assert_eq!(
        cell.unscoped_report_usage(&c, 1, 300)
            .await
            .unwrap()
            .unwrap()
            .tokens_remaining,
        Some(700)
    );
    let grown = cell
        .unscoped_report_usage(&c, 2, 300)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (grown.tokens_used, grown.tokens_remaining),
        (600, Some(400))
    );
    assert_eq!(
        b.counter(&t, TOKENS_HELD).await,
        0,
        "a grown hold is all used"
    );
    assert!(
        matches!(admit(b, &t, 500, l).await, Err(Error::QuotaExceeded { resource, .. }) if resource == "tokens"),
        "the admission sees the usage at once"
    );
    match cell.unscoped_report_usage(&c, 3, 500).await {
        Err(Error::BudgetExhausted { tokens_used, limit }) => {
            assert_eq!((tokens_used, limit), (1_100, 1_000))
        }
        other => panic!("{other:?}"),
    }
    let run = cell.get_run(&t.scope(), id).await.unwrap();
    assert_eq!(
        (run.status, run.tokens_used),
        (RunStatus::BudgetExceeded, 1_100)
    );
    assert_eq!(
        b.counter(&t, &tokens_counter(tenantd_core::time::now()))
            .await,
        1_100,
        "spent tokens count"
    );
    assert_eq!(b.counter(&t, TOKENS_HELD).await, 0);
    assert!(matches!(
        cell.unscoped_report_usage(&c, 4, 1).await,
        Err(Error::BudgetExhausted { .. })
    ));
}

/// A lease nobody renews is queued again (attempt 2 at its next lease), and at the last
/// attempt the run ends `expired` with its hold released; an expiry that lost the race to a
/// renewal changes nothing.
async fn check_expiry(b: &Backend) {
    let t = b.tenant(LOCAL).await;
    let id = admit(b, &t, 700, limits(Some(1), None)).await.unwrap();
    let cell = b.home(&t);
    let lease = cell
        .unscoped_lease(&ask(0))
        .await
        .unwrap()
        .leased()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let due = cell
        .unscoped_due_leases(tenantd_core::time::now(), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        cell.expire_lease(&t.scope(), &due[0], 2).await.unwrap(),
        Some(RunStatus::Queued)
    );
    assert_eq!(
        cell.expire_lease(&t.scope(), &due[0], 2).await.unwrap(),
        None,
        "once"
    );
    assert!(matches!(
        cell.unscoped_heartbeat(&call(id, &lease.lease_id), Duration::seconds(1))
            .await,
        Err(Error::LeaseLost) | Ok(None)
    ));
    let second = cell
        .unscoped_lease(&ask(0))
        .await
        .unwrap()
        .leased()
        .expect("requeued");
    assert_eq!((second.run.id, second.run.attempt), (id, 2));
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let due = cell
        .unscoped_due_leases(tenantd_core::time::now(), 10)
        .await
        .unwrap();
    assert_eq!(
        cell.expire_lease(&t.scope(), &due[0], 2).await.unwrap(),
        Some(RunStatus::Expired)
    );
    assert_eq!(
        cell.get_run(&t.scope(), id).await.unwrap().status,
        RunStatus::Expired
    );
    assert_eq!(b.counter(&t, TOKENS_HELD).await, 0);
    assert!(
        cell.unscoped_lease(&ask(0))
            .await
            .unwrap()
            .leased()
            .is_none()
    );
}

/// Stopping a tenant's runs cancels the queued and the leased ones in one go (holds back),
/// its worker learns `RunCancelled`, nothing of it is leased or admitted until it resumes.
async fn check_stop(b: &Backend) {
    let t = b.tenant(LOCAL).await;
    let other = b.tenant(LOCAL).await;
    let l = limits(Some(5), Some(10_000));
    for _ in 0..3 {
        admit(b, &t, 1_000, l).await.unwrap();
    }
    let cell = b.home(&t);
    let lease = cell
        .unscoped_lease(&ask(30_000))
        .await
        .unwrap()
        .leased()
        .unwrap();
    admit(b, &other, 1_000, l).await.unwrap();
    let n = cell
        .stop_runs(&t.scope(), "tenant suspended", "system", None)
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(b.counter(&t, TOKENS_HELD).await, 0);
    let c = call(lease.run.id, &lease.lease_id);
    assert!(matches!(
        cell.unscoped_heartbeat(&c, Duration::seconds(1)).await,
        Err(Error::RunCancelled)
    ));
    assert!(matches!(
        admit(b, &t, 1, l).await,
        Err(Error::TenantSuspended)
    ));
    let next = cell
        .unscoped_lease(&ask(30_000))
        .await
        .unwrap()
        .leased()
        .expect("the other tenant's");
    assert_eq!(next.run.tenant_id, other.id());
    assert!(
        cell.unscoped_lease(&ask(30_000))
            .await
            .unwrap()
            .leased()
            .is_none()
    );
    cell.resume_runs(&t.scope()).await.unwrap();
    admit(b, &t, 1_000, l).await.unwrap();
    let back = cell
        .unscoped_lease(&ask(30_000))
        .await
        .unwrap()
        .leased()
        .expect("resumed");
    assert_eq!(back.run.tenant_id, t.id());
}
