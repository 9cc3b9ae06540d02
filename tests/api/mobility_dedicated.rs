//! Moves into and out of a `dedicated` cell: a plan that wants one moves the tenant there, the
//! cell's claim keeps every other tenant out until the tenant leaves, and an abort gives it
//! up. The dedicated cell is a SQLite file on either backend, so on PostgreSQL the moves also
//! cross backends.

use std::time::Duration;

use serde_json::{Value, json};
use tenantd_server::config::{CellConfig, Config, DbLocation};

use crate::helpers::TestApp;
use crate::mobility_move::{rows_in, tid, two_cells};
use crate::mobility_purge::past_retention;

fn with_dedicated(c: &mut Config) {
    two_cells(c);
    if !c.cells.iter().any(|x| x.dedicated) {
        let region = c.cells[0].region.clone();
        c.cells.push(CellConfig {
            name: "vip".into(),
            region,
            dedicated: true,
            location: DbLocation::Sqlite(c.data_dir.join("cells").join("vip.db")),
            blobs: None,
        });
    }
}

async fn wait_done(app: &TestApp, tenant: &str) -> Value {
    let path = format!("/v1/tenants/{tenant}/move");
    for _ in 0..400 {
        let m = app.call("GET", &path, Some(&app.admin_token), None).await;
        assert_eq!(m.status, 200, "{}", m.text);
        if m.body["phase"] == "done" || m.body["phase"] == "aborted" {
            return m.body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the move of {tenant} did not finish");
}

async fn cell_of(app: &TestApp, tenant: &str) -> String {
    let t = app
        .call(
            "GET",
            &format!("/v1/tenants/{tenant}"),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    t.body["cell"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn a_dedicated_plan_moves_the_tenant_into_a_free_dedicated_cell_that_then_stays_its_own() {
    let app = TestApp::spawn_with(with_dedicated).await;
    let a = app.signup("iso-a", Some("professional")).await;
    let b = app.signup("iso-b", Some("professional")).await;
    for t in [&a, &b] {
        for k in 0..5 {
            assert_eq!(
                app.create(&t.token, "tools", &format!("t-{k}"))
                    .await
                    .status,
                201
            );
        }
    }
    let home = cell_of(&app, &a.tenant_id).await;
    assert_ne!(home, "vip");

    // The plan change asks for the move, and the tenant lands in the dedicated cell.
    let plan = |t: String| {
        let app = &app;
        async move {
            app.call(
                "PUT",
                &format!("/v1/tenants/{t}/plan"),
                Some(&app.admin_token),
                Some(json!({"plan": "enterprise"})),
            )
            .await
        }
    };
    let r = plan(a.tenant_id.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let m = wait_done(&app, &a.tenant_id).await;
    assert_eq!(m["phase"], "done", "{m}");
    assert_eq!(m["to"], "vip");
    assert_eq!(cell_of(&app, &a.tenant_id).await, "vip");
    assert_eq!(
        rows_in(&app, tid(&a), &home).await,
        vec![],
        "nothing left behind"
    );
    let list = app.call("GET", "/v1/tools", Some(&a.token), None).await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        5,
        "{}",
        list.text
    );
    assert_eq!(app.create(&a.token, "tools", "in-vip").await.status, 201);

    // The cell is a's: b's plan change leaves it pooled, and a move there is a conflict.
    let r = plan(b.tenant_id.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let none = app
        .call(
            "GET",
            &format!("/v1/tenants/{}/move", b.tenant_id),
            Some(&app.admin_token),
            None,
        )
        .await;
    none.assert_problem(404, "NOT_FOUND");
    let to_vip = json!({"cell": "vip"});
    let path_b = format!("/v1/tenants/{}/move", b.tenant_id);
    app.call(
        "POST",
        &path_b,
        Some(&app.admin_token),
        Some(to_vip.clone()),
    )
    .await
    .assert_problem(409, "CONFLICT");

    // a leaves (its claim goes with the switch); now b may take the cell.
    let back = app
        .call(
            "POST",
            &format!("/v1/tenants/{}/move", a.tenant_id),
            Some(&app.admin_token),
            Some(json!({"cell": home})),
        )
        .await;
    assert_eq!(back.status, 202, "{}", back.text);
    assert_eq!(wait_done(&app, &a.tenant_id).await["phase"], "done");
    assert_eq!(rows_in(&app, tid(&a), "vip").await, vec![]);
    let r = app
        .call(
            "POST",
            &path_b,
            Some(&app.admin_token),
            Some(to_vip.clone()),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(wait_done(&app, &b.tenant_id).await["phase"], "done");
    assert_eq!(cell_of(&app, &b.tenant_id).await, "vip");
    // And a, wanting it back, finds it taken.
    app.call(
        "POST",
        &format!("/v1/tenants/{}/move", a.tenant_id),
        Some(&app.admin_token),
        Some(to_vip),
    )
    .await
    .assert_problem(409, "CONFLICT");

    // b is deleted and purged: its rows, its moves' records and its claim go, and the cell
    // is free for a again.
    let d = app
        .call(
            "DELETE",
            &format!("/v1/tenants/{}", b.tenant_id),
            Some(&app.admin_token),
            None,
        )
        .await;
    assert!(d.status < 300, "{}", d.text);
    past_retention(&app, &b.tenant_id).await;
    let purged = tenantd_server::mobility::purge::purge_due(&app.state, false)
        .await
        .unwrap();
    assert_eq!(purged.len(), 1, "a moved tenant is purged");
    assert_eq!(
        purged[0].rows["catalog/tenant_moves"], 1,
        "{:?}",
        purged[0].rows
    );
    assert_eq!(
        purged[0].rows["catalog/dedicated_cells"], 1,
        "{:?}",
        purged[0].rows
    );
    assert_eq!(rows_in(&app, tid(&b), "vip").await, vec![]);
    let r = app
        .call(
            "POST",
            &format!("/v1/tenants/{}/move", a.tenant_id),
            Some(&app.admin_token),
            Some(json!({"cell": "vip"})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(wait_done(&app, &a.tenant_id).await["phase"], "done");
}
