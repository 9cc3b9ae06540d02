//! Quotas: a counter moves in the transaction of the change it counts, per tenant, and a
//! full counter refuses with `QuotaExceeded` naming the quota, its usage and its limit.

use tenantd_core::Error;
use tenantd_core::access::Role;
use tenantd_core::ids::InvitationId;
use tenantd_core::resource::{ResourceKind, SharedFilter};
use tenantd_core::store::*;

use crate::backends::*;

conformance! {
    check_resource_quota => resource_quota_on_sqlite, resource_quota_on_postgres;
    check_concurrent_creates => concurrent_creates_on_sqlite, concurrent_creates_on_postgres;
    check_storage_quota => storage_quota_on_sqlite, storage_quota_on_postgres;
    check_users_quota => users_quota_on_sqlite, users_quota_on_postgres;
}

/// A kind's quota admits exactly `limit` resources of a tenant: the next create is
/// `QuotaExceeded` with the current count and the limit; a name conflict takes no slot;
/// deleting frees one (a failed delete frees none); other kinds, other tenants and other
/// cells count apart; no limit means unlimited.
async fn check_resource_quota(b: &Backend) {
    let t = b.tenant(LOCAL).await;
    let u = b.tenant(LOCAL).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = b
            .create(&t, ResourceKind::Agents, &format!("agent {i}"), Some(3))
            .await
            .expect("under the limit");
        assert_eq!(r.tenant_id, t.id());
        ids.push(r.id);
    }
    let full = b.create(&t, ResourceKind::Agents, "agent 3", Some(3)).await;
    assert_quota(
        full,
        "agents",
        3,
        3,
        1,
        "the fourth agent under a limit of 3",
    );
    assert_eq!(b.counter(&t, "agents").await, 3);
    assert_eq!(
        b.list_ids(&t, LOCAL, ResourceKind::Agents, SharedFilter::Exclude)
            .await
            .len(),
        3,
        "the refused agent was not stored"
    );

    let taken = b.create(&t, ResourceKind::Agents, "agent 0", None).await;
    assert_conflict(taken, "name", "a name already taken");
    assert_eq!(b.counter(&t, "agents").await, 3, "a conflict takes no slot");

    b.create(&t, ResourceKind::Tools, "tool", Some(1))
        .await
        .expect("tools have a counter of their own");
    for i in 0..3 {
        b.create(&u, ResourceKind::Agents, &format!("agent {i}"), Some(3))
            .await
            .expect("another tenant's agents count apart (and may reuse the names)");
    }
    assert_eq!(b.counter(&u, "agents").await, 3);
    assert_eq!(b.counter(&t, "agents").await, 3);

    b.home(&t)
        .delete_resource(
            &t.scope(),
            ResourceKind::Agents,
            ids[0],
            draft(t.id(), "agents.delete"),
        )
        .await
        .expect("delete");
    assert_eq!(b.counter(&t, "agents").await, 2, "deleting frees a slot");
    let again = b
        .home(&t)
        .delete_resource(
            &t.scope(),
            ResourceKind::Agents,
            ids[0],
            draft(t.id(), "agents.delete"),
        )
        .await;
    assert_not_found(again, "deleting twice");
    // Another tenant's delete of t's agent frees nothing either.
    let foreign = b
        .home(&u)
        .delete_resource(
            &u.scope(),
            ResourceKind::Agents,
            ids[1],
            draft(u.id(), "agents.delete"),
        )
        .await;
    assert_not_found(foreign, "deleting another tenant's agent");
    assert_eq!(b.counter(&t, "agents").await, 2);
    assert_eq!(b.counter(&u, "agents").await, 3);

    b.create(&t, ResourceKind::Agents, "agent 3", Some(3))
        .await
        .expect("the freed slot");
    let full = b.create(&t, ResourceKind::Agents, "agent 4", Some(3)).await;
    assert_quota(full, "agents", 3, 3, 1, "full again");
    let lower = b.create(&t, ResourceKind::Agents, "agent 4", Some(2)).await;
    assert_quota(lower, "agents", 3, 2, 1, "a limit below the usage");

    for i in 0..5 {
        b.create(&t, ResourceKind::Agents, &format!("more {i}"), None)
            .await
            .expect("no limit");
    }
    assert_eq!(b.counter(&t, "agents").await, 8);
    assert_eq!(
        b.list_ids(&t, LOCAL, ResourceKind::Agents, SharedFilter::Exclude)
            .await
            .len(),
        8,
        "the counter equals what is stored"
    );
    let elsewhere = b.eu.counters(&t.scope_in(EU)).await.expect("counters");
    assert!(
        elsewhere.values().all(|v| *v == 0),
        "nothing is counted in the other cell: {elsewhere:?}"
    );
}

/// Concurrent creates never overshoot: of 20 simultaneous creates against a limit of 5
/// exactly 5 succeed and 15 are `QuotaExceeded` at 5/5; likewise 10 simultaneous 100-byte
/// reservations against 450 bytes admit exactly 4.
async fn check_concurrent_creates(b: &Backend) {
    let t = b.tenant(LOCAL).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let cell = b.home(&t).clone();
        let scope = t.scope();
        let tenant = t.id();
        tasks.push(tokio::spawn(async move {
            cell.create_resource(
                &scope,
                new_resource(ResourceKind::Projects, &format!("project {i}")),
                Some(5),
                draft(tenant, "projects.create"),
            )
            .await
        }));
    }
    let (mut ok, mut full) = (0, 0);
    for task in tasks {
        match task.await.expect("the task ran") {
            Ok(r) => {
                assert_eq!(r.tenant_id, t.id());
                ok += 1;
            }
            Err(Error::QuotaExceeded {
                resource,
                current,
                limit,
                requested,
            }) => {
                assert_eq!(
                    (resource.as_str(), current, limit, requested),
                    ("projects", 5, 5, 1)
                );
                full += 1;
            }
            Err(e) => panic!("a concurrent create failed otherwise: {e:?}"),
        }
    }
    assert_eq!((ok, full), (5, 15), "(created, refused)");
    assert_eq!(b.counter(&t, "projects").await, 5);
    assert_eq!(
        b.list_ids(&t, LOCAL, ResourceKind::Projects, SharedFilter::Exclude)
            .await
            .len(),
        5
    );
    // Every successful create left exactly one audit event, and the crossing creates the two
    // alerts (4 of 5 is 80 %, 5 of 5 is 100 %), each once.
    let (events, head) = b.home(&t).audit_chain(&t.scope()).await.expect("chain");
    let alerts: Vec<i64> = events
        .iter()
        .filter(|e| e.action == "quota.threshold")
        .map(|e| e.details["threshold"].as_i64().unwrap_or(0))
        .collect();
    assert_eq!(events.len() - alerts.len(), 5);
    let mut sorted = alerts.clone();
    sorted.sort();
    assert_eq!(sorted, [80, 100], "each threshold once");
    assert_linked(&events, head.as_ref());

    let mut tasks = Vec::new();
    for i in 0..10 {
        let cell = b.home(&t).clone();
        let scope = t.scope();
        tasks.push(tokio::spawn(async move {
            let f = new_file(&format!("f{i}.bin"), 100);
            cell.reserve_file(&scope, &f, Some(450), expires()).await
        }));
    }
    let (mut ok, mut full) = (0, 0);
    for task in tasks {
        match task.await.expect("the task ran") {
            Ok(()) => ok += 1,
            Err(Error::QuotaExceeded {
                resource, limit, ..
            }) => {
                assert_eq!((resource.as_str(), limit), ("storage_bytes", 450));
                full += 1;
            }
            Err(e) => panic!("a concurrent reservation failed otherwise: {e:?}"),
        }
    }
    assert_eq!((ok, full), (4, 6), "(reserved, refused)");
    assert_eq!(b.counter(&t, "storage_bytes").await, 400);
}

/// File bytes count against `storage_bytes` from the reservation on: a reservation past the
/// limit is refused with the usage; aborting or deleting releases exactly the file's bytes;
/// a pending file is neither readable nor listed; another tenant can neither read, delete
/// nor release a tenant's file.
async fn check_storage_quota(b: &Backend) {
    let t = b.tenant(EU).await;
    let u = b.tenant(EU).await;
    let cell = b.home(&t);
    let s = t.scope();
    let a = new_file("a.bin", 600);
    cell.reserve_file(&s, &a, Some(1000), expires())
        .await
        .expect("600 of 1000");
    assert_eq!(b.counter(&t, "storage_bytes").await, 600);
    let big = new_file("b.bin", 500);
    let refused = cell.reserve_file(&s, &big, Some(1000), expires()).await;
    assert_quota(refused, "storage_bytes", 600, 1000, 500, "500 more bytes");
    assert_not_found(cell.get_file(&s, a.id).await, "a pending file");
    assert!(
        cell.list_files(&s, None, 100)
            .await
            .expect("list")
            .is_empty()
    );

    cell.abort_file(&s, a.id).await.expect("abort");
    assert_eq!(b.counter(&t, "storage_bytes").await, 0, "an abort releases");
    let late = cell
        .complete_file(&s, a.id, draft(t.id(), "files.upload"))
        .await;
    assert_not_found(late, "completing an aborted upload");

    cell.reserve_file(&s, &big, Some(1000), expires())
        .await
        .expect("room after the abort");
    let meta = cell
        .complete_file(&s, big.id, draft(t.id(), "files.upload"))
        .await
        .expect("complete");
    assert_eq!(
        (meta.id, meta.tenant_id, meta.size, meta.name.as_str()),
        (big.id, t.id(), 500, "b.bin")
    );
    assert_eq!(meta.sha256, big.sha256);
    assert_eq!(b.counter(&t, "storage_bytes").await, 500);

    let us = u.scope();
    assert_not_found(cell.get_file(&us, big.id).await, "another tenant's file");
    let del = cell
        .delete_file(&us, big.id, draft(u.id(), "files.delete"))
        .await;
    assert_not_found(del, "deleting another tenant's file");
    // Whatever an abort of someone else's file answers, it must release nothing.
    let _ = cell.abort_file(&us, big.id).await;
    assert!(
        cell.list_files(&us, None, 100)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(b.counter(&t, "storage_bytes").await, 500);
    assert_eq!(b.counter(&u, "storage_bytes").await, 0);
    assert_eq!(
        cell.get_file(&s, big.id).await.expect("still there").size,
        500
    );

    let gone = cell
        .delete_file(&s, big.id, draft(t.id(), "files.delete"))
        .await
        .expect("delete");
    assert_eq!(gone.id, big.id);
    assert_eq!(b.counter(&t, "storage_bytes").await, 0, "a delete releases");
    assert_not_found(cell.get_file(&s, big.id).await, "a deleted file");
    let twice = cell
        .delete_file(&s, big.id, draft(t.id(), "files.delete"))
        .await;
    assert_not_found(twice, "deleting a file twice");
    assert_eq!(b.counter(&t, "storage_bytes").await, 0);
}

/// The catalog's `users` quota counts members and pending invitations: a tenant starts at 1
/// (its owner); an invitation past the limit is `QuotaExceeded`; revoking frees the seat; an
/// accepted invitation's seat becomes the member's; removing a member frees it; inviting a
/// member or a pending email again is a `Conflict` on `email`.
async fn check_users_quota(b: &Backend) {
    let c = &b.catalog;
    let t = b.tenant(LOCAL).await;
    assert_eq!(c.users_used(t.id()).await.expect("users_used"), 1);
    let i1 = c
        .create_invitation(invitation(t.id(), "one", Role::Member), Some(3), vec![])
        .await
        .expect("a second seat");
    assert_eq!((i1.tenant_id, i1.status), (t.id(), "pending"));
    let second = invitation(t.id(), "two", Role::Admin);
    let second_email = second.email.clone();
    let i2 = c
        .create_invitation(second, Some(3), vec![])
        .await
        .expect("a third seat");
    assert_eq!(c.users_used(t.id()).await.expect("users_used"), 3);
    let refused = c
        .create_invitation(invitation(t.id(), "three", Role::Member), Some(3), vec![])
        .await;
    assert_quota(
        refused,
        "users",
        3,
        3,
        1,
        "a fourth seat under a limit of 3",
    );
    assert_eq!(c.users_used(t.id()).await.expect("users_used"), 3);

    c.revoke_invitation(t.id(), i1.id, vec![])
        .await
        .expect("revoke");
    assert_eq!(
        c.users_used(t.id()).await.expect("users_used"),
        2,
        "a revoke frees the seat"
    );
    let twice = c.revoke_invitation(t.id(), i1.id, vec![]).await;
    assert_not_found(twice, "revoking twice");

    // With room left, conflicts are conflicts (not quota errors).
    let mut again = invitation(t.id(), "again", Role::Member);
    again.email = second_email.clone();
    assert_conflict(
        c.create_invitation(again, Some(3), vec![]).await,
        "email",
        "a second pending invitation for one email",
    );
    let mut owner = invitation(t.id(), "owner", Role::Member);
    owner.email = tenantd_core::identity::Email::parse(&t.email, "email").expect("email");
    assert_conflict(
        c.create_invitation(owner, Some(3), vec![]).await,
        "email",
        "inviting a member",
    );
    assert_eq!(c.users_used(t.id()).await.expect("users_used"), 2);

    let i3 = c
        .create_invitation(invitation(t.id(), "three", Role::Viewer), Some(3), vec![])
        .await
        .expect("the freed seat");
    let listed = c.list_invitations(t.id()).await.expect("list");
    let status = |id: InvitationId| listed.iter().find(|i| i.id == id).map(|i| i.status);
    assert_eq!(
        (status(i1.id), status(i2.id), status(i3.id)),
        (Some("revoked"), Some("pending"), Some("pending"))
    );
    assert!(listed.iter().all(|i| i.tenant_id == t.id()));

    let u = b.tenant(LOCAL).await;
    assert_not_found(
        c.revoke_invitation(u.id(), i2.id, vec![]).await,
        "revoking another tenant's invitation",
    );
    assert!(c.list_invitations(u.id()).await.expect("list").is_empty());
    assert_eq!(c.users_used(u.id()).await.expect("users_used"), 1);

    let joiner = new_user("joiner");
    let joiner_id = joiner.id;
    c.accept_invitation(
        i2.id,
        Joiner::New(joiner),
        session(joiner_id, t.id()),
        vec![],
    )
    .await
    .expect("accept");
    assert_eq!(
        c.users_used(t.id()).await.expect("users_used"),
        3,
        "an accepted invitation's seat is the member's"
    );
    assert_eq!(c.list_members(t.id()).await.expect("members").len(), 2);
    let reaccept = c
        .accept_invitation(
            i2.id,
            Joiner::Existing(t.owner),
            session(t.owner, t.id()),
            vec![],
        )
        .await;
    assert_not_found(reaccept, "accepting an invitation twice");

    c.remove_member(t.id(), joiner_id, vec![])
        .await
        .expect("remove the member");
    assert_eq!(
        c.users_used(t.id()).await.expect("users_used"),
        2,
        "a removal frees the seat"
    );
    c.create_invitation(invitation(t.id(), "four", Role::Member), Some(3), vec![])
        .await
        .expect("the seat the member left");
    let refused = c
        .create_invitation(invitation(t.id(), "five", Role::Member), Some(3), vec![])
        .await;
    assert_quota(refused, "users", 3, 3, 1, "full again");
}
