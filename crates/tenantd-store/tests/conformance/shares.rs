//! Sharing: global items reach every tenant reading the cell, selective ones only the named
//! tenants, and both are read-only for them; an item nobody shared is `NotFound`, whatever
//! the operation.

use tenantd_core::resource::{
    ResourceKind, ResourceName, ResourcePatch, SharedFilter, Sharing, SharingMode,
};

use crate::backends::*;

conformance! {
    check_global_sharing => global_sharing_on_sqlite, global_sharing_on_postgres;
    check_selective_sharing => selective_sharing_on_sqlite, selective_sharing_on_postgres;
}

fn rename(name: &str) -> ResourcePatch {
    ResourcePatch {
        name: Some(ResourceName::parse(name).expect("a valid name")),
        ..ResourcePatch::default()
    }
}

fn share(sharing: Sharing) -> ResourcePatch {
    ResourcePatch {
        sharing: Some(sharing),
        ..ResourcePatch::default()
    }
}

fn selective(mut tenants: Vec<tenantd_core::ids::TenantId>) -> Sharing {
    tenants.sort();
    Sharing {
        mode: SharingMode::Selective,
        tenants,
    }
}

fn sorted(mut ids: Vec<tenantd_core::ids::ResourceId>) -> Vec<tenantd_core::ids::ResourceId> {
    ids.sort();
    ids
}

/// A global item is readable and listed (`include` and `only`, never `exclude`) by every
/// tenant reading its cell — including, in its own name, a tenant whose data is in another
/// cell — under its owner's `tenant_id`; for them it is read-only (`Forbidden`, nothing
/// changes, nothing is audited), while the owner's private items stay `NotFound` to them for
/// every operation; unshared, it is `NotFound` again.
async fn check_global_sharing(b: &Backend) {
    let p = b.tenant(LOCAL).await;
    let a = b.tenant(LOCAL).await;
    let e = b.tenant(EU).await;
    let local = b.cell(LOCAL);
    let mut new = new_resource(ResourceKind::Tools, "shared tool");
    new.sharing = Sharing {
        mode: SharingMode::Global,
        tenants: vec![],
    };
    let g = local
        .create_resource(&p.scope(), new, None, draft(p.id(), "tools.create"))
        .await
        .expect("create a global tool");
    assert_eq!(g.sharing.mode, SharingMode::Global);
    let private = b
        .create(&p, ResourceKind::Tools, "private tool", None)
        .await
        .expect("create a private tool");

    let seen = local
        .get_resource(&a.scope(), ResourceKind::Tools, g.id)
        .await
        .expect("a global item is readable by another tenant");
    assert_eq!((seen.id, seen.tenant_id, seen.version), (g.id, p.id(), 1));
    assert_eq!(
        (seen.name.as_str(), seen.sharing.mode),
        ("shared tool", SharingMode::Global)
    );
    assert_eq!(seen.spec, g.spec);
    let hidden = local
        .get_resource(&a.scope(), ResourceKind::Tools, private.id)
        .await;
    assert_not_found(hidden, "another tenant's private item");
    let wrong_kind = local
        .get_resource(&a.scope(), ResourceKind::Agents, g.id)
        .await;
    assert_not_found(wrong_kind, "a global tool read as an agent");

    let own = b
        .create(&a, ResourceKind::Tools, "a's tool", None)
        .await
        .expect("a's own tool");
    let tools = |f| b.list_ids(&a, LOCAL, ResourceKind::Tools, f);
    assert_eq!(
        tools(SharedFilter::Include).await,
        sorted(vec![g.id, own.id])
    );
    assert_eq!(tools(SharedFilter::Only).await, vec![g.id]);
    assert_eq!(tools(SharedFilter::Exclude).await, vec![own.id]);
    let owner_only = b
        .list_ids(&p, LOCAL, ResourceKind::Tools, SharedFilter::Only)
        .await;
    assert!(
        owner_only.is_empty(),
        "the owner's own items are not shared with it: {owner_only:?}"
    );

    let via = local
        .get_resource(&e.scope_in(LOCAL), ResourceKind::Tools, g.id)
        .await
        .expect("a global item, read in the platform's cell by a tenant from another cell");
    assert_eq!(via.tenant_id, p.id());
    assert_eq!(
        b.list_ids(&e, LOCAL, ResourceKind::Tools, SharedFilter::Only)
            .await,
        vec![g.id]
    );
    let not_there =
        b.eu.get_resource(&e.scope(), ResourceKind::Tools, g.id)
            .await;
    assert_not_found(not_there, "a global item outside its cell");
    let hidden = local
        .get_resource(&e.scope_in(LOCAL), ResourceKind::Tools, private.id)
        .await;
    assert_not_found(hidden, "a private item, read from another cell");

    let upd = local
        .update_resource(
            &a.scope(),
            ResourceKind::Tools,
            g.id,
            rename("taken over"),
            draft(a.id(), "tools.update"),
        )
        .await;
    assert_forbidden(upd, "changing a global item of another tenant");
    let del = local
        .delete_resource(
            &a.scope(),
            ResourceKind::Tools,
            g.id,
            draft(a.id(), "tools.delete"),
        )
        .await;
    assert_forbidden(del, "deleting a global item of another tenant");
    let upd = local
        .update_resource(
            &a.scope(),
            ResourceKind::Tools,
            private.id,
            rename("taken over"),
            draft(a.id(), "tools.update"),
        )
        .await;
    assert_not_found(upd, "changing another tenant's private item");
    let del = local
        .delete_resource(
            &a.scope(),
            ResourceKind::Tools,
            private.id,
            draft(a.id(), "tools.delete"),
        )
        .await;
    assert_not_found(del, "deleting another tenant's private item");

    let after = local
        .get_resource(&p.scope(), ResourceKind::Tools, g.id)
        .await
        .expect("still there");
    assert_eq!(
        (after.version, after.name.as_str()),
        (1, "shared tool"),
        "unchanged"
    );
    assert!(
        local
            .get_resource(&p.scope(), ResourceKind::Tools, private.id)
            .await
            .is_ok()
    );
    assert_eq!(
        b.counter(&a, "tools").await,
        1,
        "only a's own tool counts for a"
    );
    assert_eq!(b.counter(&p, "tools").await, 2);
    let (chain, _) = local.audit_chain(&a.scope()).await.expect("chain");
    assert_eq!(chain.len(), 1, "refused changes leave nothing in a's chain");
    let (chain, _) = local.audit_chain(&p.scope()).await.expect("chain");
    assert_eq!(chain.len(), 2, "nor in the owner's");

    let unshared = local
        .update_resource(
            &p.scope(),
            ResourceKind::Tools,
            g.id,
            share(Sharing::private()),
            draft(p.id(), "tools.update"),
        )
        .await
        .expect("unshare");
    assert_eq!(
        (unshared.version, unshared.sharing.mode),
        (2, SharingMode::Private)
    );
    let gone = local
        .get_resource(&a.scope(), ResourceKind::Tools, g.id)
        .await;
    assert_not_found(gone, "an unshared item");
    assert!(tools(SharedFilter::Only).await.is_empty());
    let upd = local
        .update_resource(
            &a.scope(),
            ResourceKind::Tools,
            g.id,
            rename("taken over"),
            draft(a.id(), "tools.update"),
        )
        .await;
    assert_not_found(upd, "changing an item no longer shared");
    let gone = local
        .get_resource(&e.scope_in(LOCAL), ResourceKind::Tools, g.id)
        .await;
    assert_not_found(gone, "an unshared item, from another cell");
}

/// A selective item is readable and listed by the named tenants only; its owner sees the
/// share list, the tenants it is shared with do not (it is the owner's business); for them
/// it is read-only (`Forbidden`) while for everybody else every operation is `NotFound`;
/// re-sharing replaces the list; deleting it removes it for all.
async fn check_selective_sharing(b: &Backend) {
    let o = b.tenant(LOCAL).await;
    let a = b.tenant(LOCAL).await;
    let c = b.tenant(LOCAL).await;
    let local = b.cell(LOCAL);
    let mut new = new_resource(ResourceKind::Prompts, "for a");
    new.sharing = selective(vec![a.id()]);
    let r = local
        .create_resource(&o.scope(), new, None, draft(o.id(), "prompts.create"))
        .await
        .expect("create");
    assert_eq!(
        r.sharing,
        selective(vec![a.id()]),
        "the owner sees the list"
    );

    let seen = local
        .get_resource(&a.scope(), ResourceKind::Prompts, r.id)
        .await
        .expect("the named tenant reads it");
    assert_eq!(
        (seen.tenant_id, seen.sharing.mode),
        (o.id(), SharingMode::Selective)
    );
    assert!(
        seen.sharing.tenants.is_empty(),
        "the list is not shown to others: {:?}",
        seen.sharing
    );
    assert_eq!(
        b.list_ids(&a, LOCAL, ResourceKind::Prompts, SharedFilter::Only)
            .await,
        vec![r.id]
    );
    assert!(
        b.list_ids(&a, LOCAL, ResourceKind::Prompts, SharedFilter::Exclude)
            .await
            .is_empty()
    );
    let other = local
        .get_resource(&c.scope(), ResourceKind::Prompts, r.id)
        .await;
    assert_not_found(other, "a tenant it is not shared with");
    assert!(
        b.list_ids(&c, LOCAL, ResourceKind::Prompts, SharedFilter::Include)
            .await
            .is_empty()
    );
    let wrong_kind = local
        .get_resource(&a.scope(), ResourceKind::Memories, r.id)
        .await;
    assert_not_found(wrong_kind, "a shared prompt read as a memory");

    let upd = local
        .update_resource(
            &a.scope(),
            ResourceKind::Prompts,
            r.id,
            share(selective(vec![a.id(), c.id()])),
            draft(a.id(), "prompts.update"),
        )
        .await;
    assert_forbidden(upd, "a tenant it is shared with re-sharing it");
    let del = local
        .delete_resource(
            &a.scope(),
            ResourceKind::Prompts,
            r.id,
            draft(a.id(), "prompts.delete"),
        )
        .await;
    assert_forbidden(del, "a tenant it is shared with deleting it");
    let upd = local
        .update_resource(
            &c.scope(),
            ResourceKind::Prompts,
            r.id,
            rename("mine now"),
            draft(c.id(), "prompts.update"),
        )
        .await;
    assert_not_found(upd, "a tenant it is not shared with changing it");
    let del = local
        .delete_resource(
            &c.scope(),
            ResourceKind::Prompts,
            r.id,
            draft(c.id(), "prompts.delete"),
        )
        .await;
    assert_not_found(del, "a tenant it is not shared with deleting it");
    let still = local
        .get_resource(&c.scope(), ResourceKind::Prompts, r.id)
        .await;
    assert_not_found(still, "the refused re-share shared nothing");

    let moved = local
        .update_resource(
            &o.scope(),
            ResourceKind::Prompts,
            r.id,
            share(selective(vec![c.id()])),
            draft(o.id(), "prompts.update"),
        )
        .await
        .expect("re-share");
    assert_eq!(
        (moved.version, moved.sharing.clone()),
        (2, selective(vec![c.id()]))
    );
    assert_not_found(
        local
            .get_resource(&a.scope(), ResourceKind::Prompts, r.id)
            .await,
        "a tenant taken off the list",
    );
    let now_c = local
        .get_resource(&c.scope(), ResourceKind::Prompts, r.id)
        .await
        .expect("the tenant put on the list");
    assert_eq!(now_c.version, 2);

    let both = local
        .update_resource(
            &o.scope(),
            ResourceKind::Prompts,
            r.id,
            share(selective(vec![c.id(), a.id()])),
            draft(o.id(), "prompts.update"),
        )
        .await
        .expect("share with two");
    assert_eq!(both.sharing, selective(vec![a.id(), c.id()]));
    let renamed = local
        .update_resource(
            &o.scope(),
            ResourceKind::Prompts,
            r.id,
            rename("for a and c"),
            draft(o.id(), "prompts.update"),
        )
        .await
        .expect("a change without sharing keeps the list");
    assert_eq!(renamed.sharing, selective(vec![a.id(), c.id()]));
    for t in [&a, &c] {
        let got = local
            .get_resource(&t.scope(), ResourceKind::Prompts, r.id)
            .await
            .expect("both read it");
        assert_eq!((got.name.as_str(), got.version), ("for a and c", 4));
    }

    local
        .delete_resource(
            &o.scope(),
            ResourceKind::Prompts,
            r.id,
            draft(o.id(), "prompts.delete"),
        )
        .await
        .expect("the owner deletes it");
    for t in [&o, &a, &c] {
        let got = local
            .get_resource(&t.scope(), ResourceKind::Prompts, r.id)
            .await;
        assert_not_found(got, "a deleted item");
        let listed = b
            .list_ids(t, LOCAL, ResourceKind::Prompts, SharedFilter::Include)
            .await;
        assert!(listed.is_empty(), "a deleted item is listed: {listed:?}");
    }
    assert_eq!(b.counter(&o, "prompts").await, 0);
}
