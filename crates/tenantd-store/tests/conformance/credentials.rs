//! The catalog's credentials: API keys found by hash, sessions and refresh-token rotation.

use tenantd_core::access::Role;
use tenantd_core::identity::{NewRefreshToken, RefreshOutcome};
use tenantd_core::ids::{ApiKeyId, SessionId};
use tenantd_core::store::*;
use tenantd_core::{Error, time};

use crate::backends::*;

conformance! {
    check_api_keys => api_keys_on_sqlite, api_keys_on_postgres;
    check_refresh_rotation => refresh_rotation_on_sqlite, refresh_rotation_on_postgres;
}

/// An API key is found by its hash (and only by it), belongs to its tenant, is listed there
/// only, cannot be revoked by another tenant, and once revoked is no longer live; a hash
/// cannot be stored twice.
async fn check_api_keys(b: &Backend) {
    let c = &b.catalog;
    let t = b.tenant(LOCAL).await;
    let u = b.tenant(LOCAL).await;
    let hash = format!("{}{}", unique(), unique());
    let key = NewApiKey {
        id: ApiKeyId::new(),
        tenant_id: t.id(),
        name: "ci".into(),
        role: Role::Member,
        prefix: "tdk_conf".into(),
        key_hash: hash.clone(),
        created_by: Some(t.owner),
        expires_at: None,
    };
    let stored = c.create_api_key(key.clone(), vec![]).await.expect("create");
    assert_eq!(
        (stored.id, stored.tenant_id, stored.role),
        (key.id, t.id(), Role::Member)
    );
    assert_eq!(
        (stored.name.as_str(), stored.prefix.as_str()),
        ("ci", "tdk_conf")
    );
    assert!(stored.revoked_at.is_none());
    let found = c
        .find_api_key_by_hash(&hash)
        .await
        .expect("find")
        .expect("by hash");
    assert_eq!(
        (found.id, found.tenant_id, found.created_by),
        (key.id, t.id(), Some(t.owner))
    );
    assert!(found.is_live(time::now()));
    let unknown = c
        .find_api_key_by_hash(&format!("{}{}", unique(), unique()))
        .await;
    assert!(
        unknown.expect("find").is_none(),
        "an unknown hash finds nothing"
    );
    let listed = c.list_api_keys(t.id()).await.expect("list");
    assert_eq!(
        listed.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![key.id]
    );
    assert!(c.list_api_keys(u.id()).await.expect("list").is_empty());

    let mut dup = key.clone();
    dup.id = ApiKeyId::new();
    dup.tenant_id = u.id();
    let twice = c.create_api_key(dup, vec![]).await;
    assert!(
        matches!(twice, Err(Error::Conflict { .. })),
        "a hash stored twice: {twice:?}"
    );

    let foreign = c.revoke_api_key(u.id(), key.id, vec![]).await;
    assert_not_found(foreign, "revoking another tenant's key");
    let found = c
        .find_api_key_by_hash(&hash)
        .await
        .expect("find")
        .expect("by hash");
    assert!(found.is_live(time::now()), "still live");
    c.revoke_api_key(t.id(), key.id, vec![])
        .await
        .expect("revoke");
    let found = c
        .find_api_key_by_hash(&hash)
        .await
        .expect("find")
        .expect("by hash");
    assert!(found.revoked_at.is_some() && !found.is_live(time::now()));
    let twice = c.revoke_api_key(t.id(), key.id, vec![]).await;
    assert_not_found(twice, "revoking twice");
}

fn next_token() -> NewRefreshToken {
    NewRefreshToken {
        token_hash: unique(),
        expires_at: later(),
    }
}

/// Refresh rotation: the live token rotates once (`Rotated`, next generation); presenting the
/// spent token again is `Reused` (and marks the session from its generation on), after which
/// the family is `Invalid` for the spent and the newest token alike; an unknown or revoked
/// session's token is `Invalid`; another session of the same user is unaffected.
async fn check_refresh_rotation(b: &Backend) {
    let c = &b.catalog;
    let new = new_tenant(LOCAL);
    let user = new_user("login");
    let (tid, uid) = (new.id, user.id);
    let first = session(uid, tid);
    let (sid, t0) = (first.id, first.refresh.token_hash.clone());
    c.create_tenant(new, TenantOwner::NewUser(user), Some(first), vec![])
        .await
        .expect("create with a session");
    let s = c
        .find_session(sid)
        .await
        .expect("find")
        .expect("the session");
    assert_eq!((s.user_id, s.tenant_id), (uid, tid));
    assert!(s.revoked_at.is_none() && s.revoked_after_gen.is_none());
    let (cs, role, ct) = c
        .find_session_context(sid)
        .await
        .expect("find")
        .expect("the context");
    assert_eq!((cs.id, role, ct.id), (sid, Role::Owner, tid));
    let by_token = c
        .find_refresh_session(&t0)
        .await
        .expect("find")
        .expect("by token");
    assert_eq!(by_token.id, sid);

    let t1 = next_token();
    let t1_hash = t1.token_hash.clone();
    match c.rotate_refresh(&t0, t1).await.expect("rotate") {
        RefreshOutcome::Rotated {
            session,
            generation,
        } => {
            assert_eq!((session.id, generation), (sid, 1));
        }
        other => panic!("the first presentation rotates: {other:?}"),
    }
    let by_token = c
        .find_refresh_session(&t1_hash)
        .await
        .expect("find")
        .expect("by token");
    assert_eq!(by_token.id, sid);

    match c.rotate_refresh(&t0, next_token()).await.expect("rotate") {
        RefreshOutcome::Reused(session) => assert_eq!(session.id, sid),
        other => panic!("a spent token presented again is a reuse: {other:?}"),
    }
    let s = c
        .find_session(sid)
        .await
        .expect("find")
        .expect("the session");
    assert_eq!(
        s.revoked_after_gen,
        Some(0),
        "tokens from generation 0 on are suspect"
    );
    let again = c.rotate_refresh(&t0, next_token()).await.expect("rotate");
    assert!(
        matches!(again, RefreshOutcome::Invalid),
        "the spent token, after the reuse: {again:?}"
    );
    let newest = c
        .rotate_refresh(&t1_hash, next_token())
        .await
        .expect("rotate");
    assert!(
        matches!(newest, RefreshOutcome::Invalid),
        "the family's newest token: {newest:?}"
    );
    let unknown = c
        .rotate_refresh(&unique(), next_token())
        .await
        .expect("rotate");
    assert!(
        matches!(unknown, RefreshOutcome::Invalid),
        "an unknown token: {unknown:?}"
    );

    let second = session(uid, tid);
    let (sid2, u0) = (second.id, second.refresh.token_hash.clone());
    c.create_session(second, vec![])
        .await
        .expect("a second session");
    let u1 = next_token();
    let u1_hash = u1.token_hash.clone();
    match c.rotate_refresh(&u0, u1).await.expect("rotate") {
        RefreshOutcome::Rotated {
            session,
            generation,
        } => {
            assert_eq!(
                (session.id, generation),
                (sid2, 1),
                "the other family is unaffected"
            );
        }
        other => panic!("another session rotates on its own: {other:?}"),
    }
    c.revoke_session(sid2, vec![]).await.expect("revoke");
    let s2 = c
        .find_session(sid2)
        .await
        .expect("find")
        .expect("the session");
    assert!(s2.revoked_at.is_some());
    let revoked = c
        .rotate_refresh(&u1_hash, next_token())
        .await
        .expect("rotate");
    assert!(
        matches!(revoked, RefreshOutcome::Invalid),
        "a revoked session's token: {revoked:?}"
    );
    let unrelated = c.find_session(SessionId::new()).await.expect("find");
    assert!(unrelated.is_none());
}
