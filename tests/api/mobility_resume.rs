//! A move's lease: one runner at a time, and a move whose runner stopped carried on by a
//! serving node's `move-resume` job once its lease runs out.

use std::time::{Duration, Instant};

use tenantd_core::tenant::CellName;
use tenantd_server::mobility::{Silent, lease, moving};

use crate::helpers::{Signed, TestApp};
use crate::mobility_move::{blobs_in, eu_blobs, rows_in, tid, two_cells};

#[tokio::test]
async fn a_move_whose_runner_stopped_is_carried_on_by_a_serving_node_and_never_by_two() {
    let app = TestApp::spawn_with(|c| {
        two_cells(c);
        c.resume_moves = true;
        c.move_lease_ms = 600;
    })
    .await;
    let t = app.signup("orphaned", None).await;
    for k in 0..20 {
        assert_eq!(
            app.create(&t.token, "tools", &format!("t-{k}"))
                .await
                .status,
            201
        );
    }
    let up = app
        .raw(
            "POST",
            "/v1/files?name=f",
            Some(&t.token),
            b"moved by the job".to_vec(),
            &[],
        )
        .await;
    assert_eq!(up.status, 201, "{}", up.text);
    let file = up.body["id"].as_str().unwrap().to_owned();
    let op = tenantd_server::context::Caller::operator(&app.state)
        .await
        .unwrap();
    let tenant = tenant_of(&app, &t).await;
    let rec = moving::plan(&app.state, &tenant, &CellName::new("eu-1"))
        .await
        .unwrap();
    // Its runner stops at the freeze, as a killed process would: the tenant is `migrating`.
    let m = moving::run_until(&app.state, &op, rec, &Silent, Some("frozen"))
        .await
        .unwrap();
    assert_eq!(m.phase, "frozen");

    // While a live runner renews the lease, the job leaves the move alone and nobody else
    // takes it: an abort waits for the lease, then is refused.
    let held = lease::take(&app.state, &m).await.unwrap();
    let began = Instant::now();
    let e = moving::abort(&app.state, m.clone()).await.unwrap_err();
    assert!(
        matches!(e, tenantd_core::Error::Conflict { .. }),
        "a leased move is not aborted: {e:?}"
    );
    assert!(
        began.elapsed() >= Duration::from_millis(600),
        "it waited for the lease to run out"
    );
    let now = latest(&app, &t).await;
    assert_eq!(
        now.phase, "frozen",
        "the job did not carry a leased move on"
    );
    held.release(&app.state).await;

    // Given up, the lease is free: the job carries the move on to `done`.
    let deadline = Instant::now() + Duration::from_secs(20);
    let done = loop {
        let now = latest(&app, &t).await;
        if now.phase == "done" {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the job never finished the move: {}",
            now.phase
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(done.detail["resumed"], 1, "{}", done.detail);
    let after = tenant_of(&app, &t).await;
    assert_eq!(
        (after.cell.as_str(), after.status.as_str()),
        ("eu-1", "active")
    );
    assert_eq!(rows_in(&app, tid(&t), "local").await, vec![], "one copy");
    assert_eq!(
        blobs_in(&app.state.config.blob_dir, tid(&t)),
        0,
        "no blob left in the source"
    );
    assert_eq!(blobs_in(&eu_blobs(&app), tid(&t)), 1);
    // The node's cache of the old placement runs out; then the tenant writes again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let w = app.create(&t.token, "tools", "after").await;
        if w.status == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "{}", w.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = app
        .client
        .get(format!("{}/v1/files/{file}/content", app.base))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"moved by the job");
}

/// The tenant's latest move record.
async fn latest(app: &TestApp, t: &Signed) -> tenantd_core::store::MoveRecord {
    let m = app.state.catalog.latest_move(tid(t)).await.unwrap();
    m.expect("a move")
}

/// The tenant's catalog row.
async fn tenant_of(app: &TestApp, t: &Signed) -> tenantd_core::tenant::Tenant {
    let row = app.state.catalog.find_tenant(tid(t)).await.unwrap();
    row.expect("the tenant")
}
