//! The catalog: tenants and their owners, members (API keys and sessions: `credentials`).

use std::collections::HashSet;

use tenantd_core::access::Role;
use tenantd_core::identity::Email;
use tenantd_core::ids::{TenantId, UserId};
use tenantd_core::store::*;
use tenantd_core::tenant::{TenantSlug, TenantStatus, TenantType};

use crate::backends::*;

conformance! {
    check_tenant_creation => tenant_creation_on_sqlite, tenant_creation_on_postgres;
    check_last_owner => last_owner_on_sqlite, last_owner_on_postgres;
}

/// A user who joined `tenant` with `role` through an invitation.
async fn join(b: &Backend, tenant: TenantId, role: Role) -> UserId {
    let inv = invitation(tenant, "member", role);
    let user = new_user("member");
    let id = user.id;
    b.catalog
        .create_invitation(inv.clone(), None, vec![])
        .await
        .expect("invite");
    b.catalog
        .accept_invitation(inv.id, Joiner::New(user), session(id, tenant), vec![])
        .await
        .expect("accept");
    id
}

/// Creating a tenant with a new owner stores the tenant (active, in its cell, findable by id
/// and slug), the user and the owner membership, one `users` seat, and its outbox events;
/// a taken slug is a `Conflict` on `slug` and a taken email one on `email`, and neither
/// leaves anything behind; an existing user may own a second tenant; `list_tenants` pages
/// by id.
async fn check_tenant_creation(b: &Backend) {
    let c = &b.catalog;
    let new = new_tenant(EU);
    let user = new_user("founder");
    let (tid, uid) = (new.id, user.id);
    let slug = new.slug.as_str().to_owned();
    let email = user.email.as_str().to_owned();
    let outbox = vec![draft(tid, "tenant.create")];
    let t = c
        .create_tenant(new, TenantOwner::NewUser(user), None, outbox.clone())
        .await
        .expect("create");
    assert_eq!(
        (t.id, t.slug.as_str(), t.cell.as_str()),
        (tid, slug.as_str(), EU)
    );
    assert_eq!(
        (t.status, t.kind, t.plan.as_str()),
        (TenantStatus::Active, TenantType::Client, "free")
    );
    let by_id = c.find_tenant(tid).await.expect("find").expect("by id");
    assert_eq!(by_id.slug.as_str(), slug);
    let by_slug = c
        .find_tenant_by_slug(&slug)
        .await
        .expect("find")
        .expect("by slug");
    assert_eq!(by_slug.id, tid);
    let u = c
        .find_user_by_email(&email)
        .await
        .expect("find")
        .expect("the owner");
    assert_eq!(u.id, uid);
    assert_eq!(
        c.find_user(uid).await.expect("find").expect("by id").email,
        email
    );
    let members = c.list_members(tid).await.expect("members");
    assert_eq!(members.len(), 1);
    assert_eq!(
        (
            members[0].user_id,
            members[0].role,
            members[0].email.as_str()
        ),
        (uid, Role::Owner, email.as_str())
    );
    assert_eq!(c.users_used(tid).await.expect("users_used"), 1);
    let pending = c.pending_outbox(10_000).await.expect("outbox");
    assert!(
        pending
            .iter()
            .any(|d| d.id == outbox[0].id && d.tenant_id == tid),
        "the creation's audit event waits in the outbox"
    );
    c.delete_outbox(&[outbox[0].id]).await.expect("relayed");
    let pending = c.pending_outbox(10_000).await.expect("outbox");
    assert!(pending.iter().all(|d| d.id != outbox[0].id));

    let mut dup = new_tenant(LOCAL);
    let dup_id = dup.id;
    dup.slug = TenantSlug::parse(&slug).expect("slug");
    let other = new_user("second");
    let other_email = other.email.as_str().to_owned();
    let taken = c
        .create_tenant(dup, TenantOwner::NewUser(other), None, vec![])
        .await;
    assert_conflict(taken, "slug", "a taken slug");
    assert!(
        c.find_tenant(dup_id).await.expect("find").is_none(),
        "no tenant was kept"
    );
    assert!(
        c.find_user_by_email(&other_email)
            .await
            .expect("find")
            .is_none(),
        "no user was kept"
    );

    let fresh = new_tenant(LOCAL);
    let (fresh_id, fresh_slug) = (fresh.id, fresh.slug.as_str().to_owned());
    let mut same_email = new_user("again");
    same_email.email = Email::parse(&email, "email").expect("email");
    let taken = c
        .create_tenant(
            fresh.clone(),
            TenantOwner::NewUser(same_email),
            None,
            vec![],
        )
        .await;
    assert_conflict(taken, "email", "a taken email");
    assert!(
        c.find_tenant_by_slug(&fresh_slug)
            .await
            .expect("find")
            .is_none()
    );

    let second = c
        .create_tenant(fresh, TenantOwner::Existing(uid), None, vec![])
        .await
        .expect("an existing user owns a second tenant");
    assert_eq!(second.id, fresh_id);
    let mine: HashSet<(TenantId, Role)> = c
        .list_user_memberships(uid)
        .await
        .expect("memberships")
        .iter()
        .map(|m| (m.tenant_id, m.role))
        .collect();
    assert_eq!(
        mine,
        HashSet::from([(tid, Role::Owner), (fresh_id, Role::Owner)])
    );
    let members = c.list_members(fresh_id).await.expect("members");
    assert_eq!(
        members.iter().map(|m| m.user_id).collect::<Vec<_>>(),
        vec![uid]
    );

    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = c.list_tenants(after, 2).await.expect("list");
        assert!(page.len() <= 2);
        all.extend(page.iter().map(|t| t.id));
        if page.len() < 2 {
            break;
        }
        after = page.last().map(|t| t.id);
    }
    assert!(
        all.windows(2).all(|w| w[0] < w[1]),
        "tenants by id, each once"
    );
    assert!(all.contains(&tid) && all.contains(&fresh_id));
    assert!(!all.contains(&dup_id));
}

/// A tenant always keeps an owner: demoting the last owner is a `Conflict` on `role`,
/// removing it one on `user_id`; with a second owner either is allowed; members of another
/// tenant are `NotFound` there.
async fn check_last_owner(b: &Backend) {
    let c = &b.catalog;
    let t = b.tenant(LOCAL).await;
    let member = join(b, t.id(), Role::Member).await;
    assert_eq!(c.list_members(t.id()).await.expect("members").len(), 2);
    let demote = c
        .update_member_role(t.id(), t.owner, Role::Admin, vec![])
        .await;
    assert_conflict(demote, "role", "demoting the last owner");
    let remove = c.remove_member(t.id(), t.owner, vec![]).await;
    assert_conflict(remove, "user_id", "removing the last owner");
    let m = c
        .find_membership(t.id(), t.owner)
        .await
        .expect("find")
        .expect("still a member");
    assert_eq!(m.role, Role::Owner, "still the owner");

    let m = c
        .update_member_role(t.id(), member, Role::Owner, vec![])
        .await
        .expect("promote");
    assert_eq!((m.user_id, m.role), (member, Role::Owner));
    let m = c
        .update_member_role(t.id(), t.owner, Role::Admin, vec![])
        .await
        .expect("with two owners one may step down");
    assert_eq!(m.role, Role::Admin);
    c.remove_member(t.id(), t.owner, vec![])
        .await
        .expect("an admin may be removed");
    assert!(
        c.find_membership(t.id(), t.owner)
            .await
            .expect("find")
            .is_none()
    );
    let members = c.list_members(t.id()).await.expect("members");
    assert_eq!(
        members
            .iter()
            .map(|m| (m.user_id, m.role))
            .collect::<Vec<_>>(),
        vec![(member, Role::Owner)]
    );
    let remove = c.remove_member(t.id(), member, vec![]).await;
    assert_conflict(remove, "user_id", "removing the new last owner");
    let demote = c
        .update_member_role(t.id(), member, Role::Viewer, vec![])
        .await;
    assert_conflict(demote, "role", "demoting the new last owner");

    let u = b.tenant(LOCAL).await;
    let foreign = c.remove_member(u.id(), member, vec![]).await;
    assert_not_found(foreign, "removing a member of another tenant");
    let foreign = c
        .update_member_role(u.id(), member, Role::Admin, vec![])
        .await;
    assert_not_found(foreign, "changing a member of another tenant");
    assert_eq!(c.list_members(u.id()).await.expect("members").len(), 1);
    assert_eq!(c.users_used(t.id()).await.expect("users_used"), 1);
}
