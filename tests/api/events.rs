//! The event log: every change an event, in order, polled with `after` without a skip or a
//! repeat under racing writers; tenants see only their own; quota thresholds fire once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Signed, TestApp};

/// Every event of `token`'s log after `after`, following `next` until nothing is new.
async fn drain(app: &TestApp, token: &str, after: i64, types: Option<&str>) -> (Vec<Value>, i64) {
    let mut out = Vec::new();
    let mut after = after;
    loop {
        let path = match types {
            Some(t) => format!("/v1/events?after={after}&limit=7&types={t}"),
            None => format!("/v1/events?after={after}&limit=7"),
        };
        let r = app.call("GET", &path, Some(token), None).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let items = r.body["items"].as_array().expect("items").clone();
        let next = r.body["next"].as_i64().expect("next");
        if items.is_empty() {
            assert_eq!(next, after, "nothing new: next is the given after");
            return (out, after);
        }
        assert_eq!(next, items.last().unwrap()["seq"].as_i64().unwrap());
        out.extend(items);
        after = next;
    }
}

async fn key(app: &TestApp, a: &Signed, name: &str) -> u16 {
    app.api_key(&a.token, name).await.status
}

#[tokio::test]
async fn polling_with_after_under_eight_writers_sees_every_event_once_in_order() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    let b = app.signup("bolt", None).await;
    let (start, mut after) = {
        let (e, after) = drain(&app, &a.token, 0, None).await;
        (e, after)
    };
    assert_eq!(start[0]["type"], "tenant.created");
    assert_eq!(start[0]["tenant_id"], a.tenant_id);

    // Eight writers make API keys (catalog changes: through the outbox) while a reader polls.
    let writers = (0..8).map(|w| {
        let app = &app;
        let a = &a;
        async move {
            for i in 0..6 {
                assert_eq!(key(app, a, &format!("w{w}-{i}")).await, 201);
            }
        }
    });
    let reader = async {
        let mut seen: Vec<Value> = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while seen
            .iter()
            .filter(|e| e["type"] == "api_key.created")
            .count()
            < 48
        {
            assert!(
                Instant::now() < deadline,
                "only {} events arrived",
                seen.len()
            );
            let (page, next) = drain(&app, &a.token, after, None).await;
            seen.extend(page);
            after = next;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        seen
    };
    let (_, seen) = tokio::join!(futures::future::join_all(writers), reader);
    let seqs: Vec<i64> = seen.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    let first = start.last().unwrap()["seq"].as_i64().unwrap();
    assert_eq!(
        seqs,
        ((first + 1)..=(first + seqs.len() as i64)).collect::<Vec<_>>(),
        "every seq once, in order, no gap"
    );
    let ids: HashSet<&str> = seen.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), seen.len(), "no event twice");
    assert!(seen.iter().all(|e| e["tenant_id"] == a.tenant_id));
    // A filtered read sees the same events of that type.
    let (keys, _) = drain(&app, &a.token, 0, Some("api_key.created")).await;
    assert_eq!(keys.len(), 48);
    // Another tenant's log has none of them.
    let (theirs, _) = drain(&app, &b.token, 0, None).await;
    assert!(theirs.iter().all(|e| e["tenant_id"] == b.tenant_id));
    assert!(!theirs.iter().any(|e| e["type"] == "api_key.created"));
    // The platform's admins follow every tenant's lifecycle.
    let (platform, _) = drain(&app, &app.admin_token, 0, Some("tenant.created")).await;
    let created: HashSet<&str> = platform
        .iter()
        .map(|e| e["tenant_id"].as_str().unwrap())
        .collect();
    assert!(created.contains(a.tenant_id.as_str()) && created.contains(b.tenant_id.as_str()));
}

#[tokio::test]
async fn members_keys_invitations_and_files_are_events_with_their_ids() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", Some("starter")).await;
    let inv = app
        .call(
            "POST",
            "/v1/invitations",
            Some(&a.token),
            Some(json!({"email": "new@acme.test", "role": "member"})),
        )
        .await;
    assert_eq!(inv.status, 201, "{}", inv.body);
    let joined = app
        .call(
            "POST",
            "/v1/invitations/accept",
            None,
            Some(json!({"token": inv.body["token"], "password": "a-long-password", "name": "New"})),
        )
        .await;
    assert_eq!(joined.status, 201, "{}", joined.body);
    let members = app.call("GET", "/v1/members", Some(&a.token), None).await;
    let user = members.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["email"] == "new@acme.test")
        .expect("the new member")["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let up = app
        .raw(
            "POST",
            "/v1/files?name=a.txt",
            Some(&a.token),
            b"hello".to_vec(),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(up.status, 201, "{}", up.body);
    let (events, _) = drain(&app, &a.token, 0, None).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for k in [
        "invitation.created",
        "invitation.accepted",
        "member.added",
        "file.created",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    let added = events.iter().find(|e| e["type"] == "member.added").unwrap();
    assert_eq!(added["data"]["user_id"], user);
    let file = events.iter().find(|e| e["type"] == "file.created").unwrap();
    assert_eq!(file["data"]["id"], up.body["id"]);
    // A member may not read the log; a bad filter names its field.
    let member = app
        .call(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"email": "new@acme.test", "password": "a-long-password"})),
        )
        .await;
    let mt = member.body["access_token"].as_str().unwrap();
    app.call("GET", "/v1/events", Some(mt), None)
        .await
        .assert_problem(403, "FORBIDDEN");
    let bad = app
        .call(
            "GET",
            "/v1/events?types=tenant.created,nope",
            Some(&a.token),
            None,
        )
        .await;
    bad.assert_problem(422, "VALIDATION_FAILED");
}

#[tokio::test]
async fn a_quota_threshold_fires_once_per_period_under_racing_creates() {
    let app = TestApp::spawn().await;
    let a = app.signup("acme", None).await;
    // The free plan allows 3 projects: the third crosses both 80 % and 100 %.
    let calls = (0..24).map(|i| {
        app.call(
            "POST",
            "/v1/projects",
            Some(&a.token),
            Some(json!({"name": format!("p{i}")})),
        )
    });
    let made = futures::future::join_all(calls)
        .await
        .iter()
        .filter(|r| r.status == 201)
        .count();
    assert_eq!(made, 3);
    let alerts = |events: &[Value]| -> Vec<(i64, i64, i64)> {
        let mut v: Vec<_> = events
            .iter()
            .filter(|e| e["type"] == "quota.threshold" && e["data"]["quota"] == "projects")
            .map(|e| {
                let d = &e["data"];
                (
                    d["threshold"].as_i64().unwrap(),
                    d["used"].as_i64().unwrap(),
                    d["limit"].as_i64().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let (events, after) = drain(&app, &a.token, 0, Some("quota.threshold")).await;
    assert_eq!(alerts(&events), [(80, 3, 3), (100, 3, 3)]);
    let period = events[0]["data"]["period"].as_str().unwrap();
    assert_eq!(period.len(), 7, "a calendar month, YYYY-MM: {period}");
    // Deleting one and creating it again crosses the thresholds again: no new alert.
    let list = app.call("GET", "/v1/projects", Some(&a.token), None).await;
    let id = list.body["items"][0]["id"].as_str().unwrap();
    let path = format!("/v1/projects/{id}");
    assert_eq!(
        app.call("DELETE", &path, Some(&a.token), None).await.status,
        204
    );
    let again = app
        .call(
            "POST",
            "/v1/projects",
            Some(&a.token),
            Some(json!({"name": "again"})),
        )
        .await;
    assert_eq!(again.status, 201);
    let (later, _) = drain(&app, &a.token, after, Some("quota.threshold")).await;
    assert!(later.is_empty(), "{later:?}");
}

#[tokio::test]
async fn the_retention_job_prunes_only_events_past_retention_and_seqs_go_on() {
    let app = TestApp::spawn().await;
    let a = app.signup("keeper", None).await;
    let b = app.signup("other", None).await;
    for (t, n) in [(&a, 3), (&b, 1)] {
        for i in 0..n {
            let r = app.api_key(&t.token, &format!("k{i}")).await;
            assert_eq!(r.status, 201, "{}", r.text);
        }
    }
    // Two of a's events and one of b's were made in 2020 (their time and their time-ordered
    // ids, behind the application's back).
    let old = "UPDATE events SET occurred_at = '2020-01-01T00:00:00.000000Z', \
               id = '00000000' || substr(id, 9) WHERE tenant_id = $1 AND seq <= ";
    app.raw_cell(&format!("{old}2"), Some(&a.tenant_id)).await;
    app.raw_cell(&format!("{old}1"), Some(&b.tenant_id)).await;

    let pruned = tenantd_server::services::events::prune(&app.state)
        .await
        .expect("prune");
    assert_eq!(pruned, 3);
    let (left, last) = drain(&app, &a.token, 0, None).await;
    let seqs: Vec<i64> = left.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(
        seqs,
        vec![3, 4],
        "the recent ones stay, their seqs unchanged"
    );
    let (left_b, _) = drain(&app, &b.token, 0, None).await;
    assert_eq!(left_b.len(), 1);
    // The log goes on after its last seq, never reusing a pruned one.
    let r = app.api_key(&a.token, "after").await;
    assert_eq!(r.status, 201);
    let (new, _) = drain(&app, &a.token, last, None).await;
    assert_eq!(new[0]["seq"].as_i64(), Some(last + 1));
}
