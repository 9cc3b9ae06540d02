//! Where a new tenant goes: its region, data residency, and dedicated cells for plans that
//! ask for one.

use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn placement_follows_region_data_residency_and_dedicated_cells() {
    use tenantd_server::config::{CellConfig, DbLocation};
    let app = TestApp::spawn_with(|c| {
        // The catalog is the suite's (SQLite or PostgreSQL: the dedicated claim lives there);
        // the cells are SQLite files, enough to see where tenants land.
        let cell = |name: &str, region: &str, dedicated: bool| CellConfig {
            name: name.into(),
            region: Some(region.into()),
            dedicated,
            location: DbLocation::Sqlite(c.data_dir.join("cells").join(format!("{name}.db"))),
            blobs: None,
        };
        c.cells = vec![
            cell("us-pool", "us", false),
            cell("eu-pool", "eu", false),
            cell("eu-ded-1", "eu", true),
            cell("eu-ded-2", "eu", true),
            cell("us-ded", "us", true),
            cell("ap-ded", "ap", true),
            cell("ap-pool", "ap", false),
        ];
    })
    .await;
    let create = |slug: &str, plan: &str, extra: serde_json::Value| {
        let mut body = json!({"name": slug, "slug": slug, "plan": plan, "owner_email": format!("o@{slug}.test")});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let app = &app;
        async move {
            app.call("POST", "/v1/tenants", Some(&app.admin_token), Some(body))
                .await
        }
    };
    let placed = |r: &crate::helpers::Resp| {
        assert_eq!(r.status, 201, "{}", r.text);
        (
            r.body["cell"].as_str().unwrap().to_owned(),
            r.body["region"].as_str().map(str::to_owned),
        )
    };
    // The platform tenant is in a pooled cell.
    let platform = app
        .call("GET", "/v1/tenants/platform", Some(&app.admin_token), None)
        .await;
    assert_eq!(platform.body["cell"], "us-pool", "{}", platform.text);

    // Enterprise asks for a dedicated cell of its region, one tenant each; then 422.
    let r = create("ent-eu-1", "enterprise", json!({"region": "eu"})).await;
    assert_eq!(placed(&r), ("eu-ded-1".into(), Some("eu".into())));
    let r = create(
        "ent-eu-2",
        "enterprise",
        json!({"settings": {"data_residency": "eu"}}),
    )
    .await;
    assert_eq!(placed(&r), ("eu-ded-2".into(), Some("eu".into())));
    assert_eq!(r.body["settings"]["data_residency"], "eu");
    create("ent-eu-3", "enterprise", json!({"region": "eu"}))
        .await
        .assert_problem(422, "VALIDATION_FAILED");
    // Other plans never take a dedicated cell; data_residency picks the region.
    let r = create(
        "free-eu",
        "free",
        json!({"settings": {"data_residency": "eu", "theme": "x"}}),
    )
    .await;
    assert_eq!(placed(&r), ("eu-pool".into(), Some("eu".into())));
    let r = create("free-any", "free", json!({})).await;
    assert_eq!(placed(&r), ("us-pool".into(), None));
    // Bad or contradictory residency is a 422 naming the field.
    let r = create(
        "bad-dr",
        "free",
        json!({"settings": {"data_residency": "mars"}}),
    )
    .await;
    r.assert_problem(422, "VALIDATION_FAILED");
    assert!(r.text.contains("settings.data_residency"), "{}", r.text);
    let r = create(
        "two-regions",
        "free",
        json!({"region": "eu", "settings": {"data_residency": "us"}}),
    )
    .await;
    r.assert_problem(422, "VALIDATION_FAILED");
    assert!(r.text.contains("settings.data_residency"), "{}", r.text);

    // A cell that held a tenant before it was declared dedicated (an upgraded deployment) is
    // not free: simulated by moving a pooled tenant's placement there in the catalog.
    let r = create("early-ap", "free", json!({"region": "ap"})).await;
    assert_eq!(placed(&r), ("ap-pool".into(), Some("ap".into())));
    let sql = "UPDATE tenants SET cell = 'ap-ded' WHERE slug = 'early-ap'";
    match &app.pg {
        Some(pg) => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .connect(&pg.superuser_url(0))
                .await
                .unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
        None => {
            let path = app.dir.join("catalog.db");
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::query(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
    create("ent-ap", "enterprise", json!({"region": "ap"}))
        .await
        .assert_problem(422, "VALIDATION_FAILED");

    // Five concurrent enterprise creations for the one dedicated us cell: exactly one wins.
    let results =
        futures::future::join_all((0..5).map(|i| create_owned(&app, format!("ent-us-{i}")))).await;
    let won: Vec<_> = results.iter().filter(|r| r.status == 201).collect();
    assert_eq!(
        won.len(),
        1,
        "{:?}",
        results.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    assert_eq!(won[0].body["cell"], "us-ded");
    assert!(
        results
            .iter()
            .filter(|r| r.status != 201)
            .all(|r| r.status == 422),
        "{:?}",
        results.iter().map(|r| &r.text).collect::<Vec<_>>()
    );
    // The dedicated tenant's data is served from its cell.
    let owner_inv = won[0].body["owner_invitation"]["token"].as_str().unwrap();
    let joined = app
        .call(
            "POST",
            "/v1/invitations/accept",
            None,
            Some(json!({"token": owner_inv, "name": "O", "password": "owner-pass-123"})),
        )
        .await;
    assert_eq!(joined.status, 201, "{}", joined.text);
    let token = joined.body["access_token"].as_str().unwrap();
    let made = app
        .call(
            "POST",
            "/v1/agents",
            Some(token),
            Some(json!({"name": "a", "spec": {}})),
        )
        .await;
    assert_eq!(made.status, 201, "{}", made.text);
    let agent = made.body["id"].as_str().unwrap();
    let count_in = |cell: &str| {
        let path = app.dir.join("cells").join(format!("{cell}.db"));
        let agent = agent.to_owned();
        async move {
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM resources WHERE id = $1")
                .bind(agent)
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            n
        }
    };
    assert_eq!(
        (count_in("us-ded").await, count_in("us-pool").await),
        (1, 0)
    );
}

async fn create_owned(app: &TestApp, slug: String) -> crate::helpers::Resp {
    app.call(
        "POST",
        "/v1/tenants",
        Some(&app.admin_token),
        Some(json!({"name": slug, "slug": slug, "plan": "enterprise", "owner_email": format!("o@{slug}.test"), "region": "us"})),
    )
    .await
}
