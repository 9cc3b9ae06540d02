//! Audit chains: per tenant and per cell, append-only, hash-linked, idempotent by event id.

use serde_json::json;
use tenantd_core::audit::{AuditDraft, AuditEvent, AuditFilter, GENESIS_HASH};
use tenantd_core::ids::EventId;
use tenantd_core::resource::ResourceKind;

use crate::backends::*;

conformance! {
    check_audit_chain => audit_chain_on_sqlite, audit_chain_on_postgres;
    check_concurrent_appends => concurrent_appends_on_sqlite, concurrent_appends_on_postgres;
}

fn numbered(tenant: tenantd_core::ids::TenantId, action: &str, n: usize) -> AuditDraft {
    let mut d = draft(tenant, action);
    d.resource_id = Some(format!("r{n}"));
    d.details = json!({"n": n, "nested": {"b": [1, 2], "a": null}});
    d
}

fn ids(events: &[AuditEvent]) -> Vec<EventId> {
    events.iter().map(|e| e.id).collect()
}

fn hashes(events: &[AuditEvent]) -> Vec<String> {
    events.iter().map(|e| e.hash.clone()).collect()
}

/// `audit_chain` returns a tenant's events in `seq` order, every field as appended, each
/// `prev_hash` the previous `hash` (the first the genesis hash) and the head the last event;
/// re-appending an id already in the chain is a no-op (the relay's retries); another tenant's
/// chain, listing and head are untouched by all of it, and a draft of another tenant is
/// refused; `list_audit` filters and pages within the tenant's own events only; each cell
/// keeps its own chains; a resource write joins the chain.
async fn check_audit_chain(b: &Backend) {
    let a = b.tenant(LOCAL).await;
    let o = b.tenant(LOCAL).await;
    let cell = b.home(&a);
    let first: Vec<AuditDraft> = (0..5).map(|i| numbered(a.id(), "test.append", i)).collect();
    cell.append_audit(&a.scope(), first.clone())
        .await
        .expect("append five");
    let more = vec![
        numbered(a.id(), "test.more", 5),
        numbered(a.id(), "test.more", 6),
    ];
    cell.append_audit(&a.scope(), more.clone())
        .await
        .expect("append two");
    let drafts: Vec<&AuditDraft> = first.iter().chain(&more).collect();

    let (events, head) = cell.audit_chain(&a.scope()).await.expect("chain");
    assert_eq!(
        ids(&events),
        drafts.iter().map(|d| d.id).collect::<Vec<_>>()
    );
    assert_eq!(events[0].prev_hash, GENESIS_HASH);
    assert_linked(&events, head.as_ref());
    for (e, d) in events.iter().zip(&drafts) {
        assert_eq!(e.tenant_id, a.id());
        assert_eq!(
            (&e.actor, &e.action, &e.resource, &e.resource_id, &e.outcome),
            (&d.actor, &d.action, &d.resource, &d.resource_id, &d.outcome)
        );
        assert_eq!((&e.request_id, &e.ip, &e.at), (&d.request_id, &d.ip, &d.at));
        assert_eq!(e.details, d.details);
    }

    // A retry: two ids already there (one from each earlier call) and one new.
    let fresh = numbered(a.id(), "test.after_retry", 7);
    cell.append_audit(
        &a.scope(),
        vec![first[2].clone(), fresh.clone(), more[0].clone()],
    )
    .await
    .expect("a retried append");
    let (after, head2) = cell.audit_chain(&a.scope()).await.expect("chain");
    assert_eq!(after.len(), 8, "only the new id was added");
    assert_eq!(ids(&after[..7]), ids(&events));
    assert_eq!(
        hashes(&after[..7]),
        hashes(&events),
        "earlier events unchanged"
    );
    assert_eq!((after[7].id, after[7].seq), (fresh.id, 8));
    assert_linked(&after, head2.as_ref());

    let (theirs, their_head) = cell.audit_chain(&o.scope()).await.expect("chain");
    assert!(
        theirs.is_empty(),
        "another tenant's chain is empty: {theirs:?}"
    );
    assert!(their_head.is_none());
    let listed = cell
        .list_audit(
            &o.scope(),
            &AuditFilter {
                limit: 100,
                ..AuditFilter::default()
            },
        )
        .await
        .expect("list");
    assert!(listed.is_empty(), "another tenant lists none of a's events");

    let own = draft(o.id(), "test.other");
    cell.append_audit(&o.scope(), vec![own.clone()])
        .await
        .expect("o appends");
    let (theirs, their_head) = cell.audit_chain(&o.scope()).await.expect("chain");
    assert_eq!(ids(&theirs), vec![own.id]);
    assert_eq!(
        theirs[0].prev_hash, GENESIS_HASH,
        "each tenant's chain starts afresh"
    );
    assert_linked(&theirs, their_head.as_ref());

    let forged = cell
        .append_audit(&o.scope(), vec![draft(a.id(), "test.forged")])
        .await;
    assert!(
        forged.is_err(),
        "a draft of tenant a appended in o's scope: {forged:?}"
    );
    let (now_a, head_a) = cell.audit_chain(&a.scope()).await.expect("chain");
    assert_eq!(hashes(&now_a), hashes(&after), "a's chain untouched");
    assert_eq!(head_a, head2);
    let (now_o, head_o) = cell.audit_chain(&o.scope()).await.expect("chain");
    assert_eq!(ids(&now_o), vec![own.id], "o's chain untouched");
    assert_eq!(head_o, their_head);

    let by_action = cell
        .list_audit(
            &a.scope(),
            &AuditFilter {
                action: Some("test.more".into()),
                limit: 100,
                ..AuditFilter::default()
            },
        )
        .await
        .expect("filtered");
    assert_eq!(ids(&by_action), vec![more[0].id, more[1].id]);
    let page = cell
        .list_audit(
            &a.scope(),
            &AuditFilter {
                after_seq: Some(5),
                limit: 2,
                ..AuditFilter::default()
            },
        )
        .await
        .expect("page");
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![6, 7]);
    let all = cell
        .list_audit(
            &a.scope(),
            &AuditFilter {
                limit: 100,
                ..AuditFilter::default()
            },
        )
        .await
        .expect("all");
    assert_eq!(ids(&all), ids(&after));
    assert!(all.iter().all(|e| e.tenant_id == a.id()));

    let (elsewhere, head_elsewhere) = b.eu.audit_chain(&a.scope_in(EU)).await.expect("chain");
    assert!(
        elsewhere.is_empty() && head_elsewhere.is_none(),
        "the other cell has its own chains"
    );

    let d = draft(a.id(), "agents.create");
    let d_id = d.id;
    cell.create_resource(
        &a.scope(),
        new_resource(ResourceKind::Agents, "audited"),
        None,
        d,
    )
    .await
    .expect("create");
    let (last, head3) = cell.audit_chain(&a.scope()).await.expect("chain");
    assert_eq!(last.last().map(|e| (e.id, e.seq)), Some((d_id, 9)));
    assert_linked(&last, head3.as_ref());
}

/// Concurrent appends to one tenant's chain queue behind its head: 12 simultaneous calls of
/// two events each make one unbroken chain of 24 (no fork, no repeated seq), each call's
/// events adjacent; a concurrent writer of another tenant does not interleave into it.
async fn check_concurrent_appends(b: &Backend) {
    let t = b.tenant(EU).await;
    let other = b.tenant(EU).await;
    let mut tasks = Vec::new();
    let mut calls = Vec::new();
    for i in 0..12 {
        let batch = vec![
            numbered(t.id(), "test.burst", 2 * i),
            numbered(t.id(), "test.burst", 2 * i + 1),
        ];
        calls.push((batch[0].id, batch[1].id));
        let (cell, scope) = (b.home(&t).clone(), t.scope());
        tasks.push(tokio::spawn(async move {
            cell.append_audit(&scope, batch).await
        }));
        let (cell, scope, id) = (b.home(&other).clone(), other.scope(), other.id());
        tasks.push(tokio::spawn(async move {
            cell.append_audit(&scope, vec![draft(id, "test.noise")])
                .await
        }));
    }
    for task in tasks {
        task.await.expect("the task ran").expect("append");
    }
    let (events, head) = b.home(&t).audit_chain(&t.scope()).await.expect("chain");
    assert_eq!(events.len(), 24);
    assert_linked(&events, head.as_ref());
    assert!(
        events
            .iter()
            .all(|e| e.tenant_id == t.id() && e.action == "test.burst")
    );
    for (x, y) in calls {
        let pos = events
            .iter()
            .position(|e| e.id == x)
            .expect("every event is there");
        assert_eq!(events[pos + 1].id, y, "one call's events are adjacent");
    }
    let (theirs, their_head) = b
        .home(&other)
        .audit_chain(&other.scope())
        .await
        .expect("chain");
    assert_eq!(theirs.len(), 12);
    assert_linked(&theirs, their_head.as_ref());
}
