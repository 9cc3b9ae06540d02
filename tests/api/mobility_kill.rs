//! `kill -9` of `tenantd tenant move` in each phase, then `--resume` or `--abort` from another
//! process: exactly one cell holds the tenant, and every write a serving node acknowledged
//! meanwhile is there exactly once (every 503 write absent).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::helpers::TestApp;
use crate::mobility_move::{assert_writes_kept, eu_blobs, rows_in, tid, two_cells};

/// The CLI on the app's databases, with both cells and the app's credential-cache lifetime.
fn mover(app: &TestApp, args: &[&str]) -> Command {
    let toml = match &app.pg {
        Some(pg) => format!(
            "auth_cache_ttl_ms = 500\nmove_lease_ms = 1000\n{}",
            pg.toml()
        ),
        None => format!(
            "auth_cache_ttl_ms = 500\nmove_lease_ms = 1000\npassword_hashing = \"insecure-fast-for-tests\"\n\
             [[cells]]\nname = \"local\"\nurl = \"sqlite://{d}/cells/local.db\"\n\
             [[cells]]\nname = \"eu-1\"\nregion = \"eu\"\nurl = \"sqlite://{d}/cells/eu-1.db\"\n",
            d = app.dir.display()
        ),
    };
    // eu-1 keeps its files in a store of its own, as `two_cells` gives the serving node.
    let own = format!(
        "name = \"eu-1\"\nblob_dir = \"{}\"\n",
        eu_blobs(app).display()
    );
    let toml = toml.replacen("name = \"eu-1\"\n", &own, 1);
    assert!(toml.contains("blob_dir"), "{toml}");
    let path = app.dir.join("mover.toml");
    std::fs::write(&path, toml).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tenantd"));
    cmd.args(args)
        .arg("--config")
        .arg(path)
        .arg("--data-dir")
        .arg(&app.dir)
        .env("TENANTD_PASSWORD_HASHING", "insecure-fast-for-tests");
    cmd
}

async fn finish(mut cmd: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// Writes agents until told to stop: the names answered 201, and those answered 503.
fn writer(
    app: Arc<TestApp>,
    token: String,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<(Vec<String>, Vec<String>, Vec<String>)> {
    tokio::spawn(async move {
        let (mut acked, mut refused, mut other) = (Vec::new(), Vec::new(), Vec::new());
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let name = format!("w-{i}");
            i += 1;
            let r = app.create(&token, "agents", &name).await;
            match r.status {
                201 => acked.push(name),
                503 if r.code() == Some("TENANT_MIGRATING") => refused.push(name),
                _ => other.push(format!("{}: {}", r.status, r.text)),
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (acked, refused, other)
    })
}

#[tokio::test]
async fn a_move_killed_in_each_phase_is_resumed_or_aborted_with_one_copy_and_nothing_lost() {
    let app = Arc::new(TestApp::spawn_with(two_cells).await);
    // (where it is killed, then what): mid-copy and mid-switch by watching the record, the
    // freeze at its boundary (it is too short to watch for).
    let cases = [
        ("copying", "abort"),
        ("copying", "resume"),
        ("frozen", "abort"),
        ("frozen", "resume"),
        ("switched", "resume"),
    ];
    for (i, (at, then)) in cases.into_iter().enumerate() {
        let slug = format!("killed-{i}");
        let t = app.signup(&slug, Some("professional")).await;
        for chunk in (0..200).collect::<Vec<_>>().chunks(20) {
            let calls = chunk.iter().map(|k| {
                let (app, token) = (app.clone(), t.token.clone());
                async move { app.create(&token, "tools", &format!("t-{k}")).await }
            });
            for r in futures::future::join_all(calls).await {
                assert_eq!(r.status, 201, "{}", r.text);
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let w = writer(app.clone(), t.token.clone(), stop.clone());
        tokio::time::sleep(Duration::from_millis(100)).await;

        let mut args = vec!["tenant", "move", slug.as_str(), "--to", "eu-1"];
        if at == "frozen" {
            args.extend(["--pause-at", "frozen"]);
        }
        let mut child = mover(&app, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(Instant::now() < deadline, "{at}: never saw the move there");
            assert!(
                child.try_wait().unwrap().is_none(),
                "{at}: the move ended before it could be killed"
            );
            let phase = app
                .state
                .catalog
                .latest_move(tid(&t))
                .await
                .unwrap()
                .map(|m| m.phase);
            let copied = !rows_in(&app, tid(&t), "eu-1").await.is_empty();
            let there = match at {
                "copying" => phase.as_deref() == Some("copying") && copied,
                other => phase.as_deref() == Some(other),
            };
            if there {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let rec = app
            .state
            .catalog
            .latest_move(tid(&t))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.phase, at, "killed in {at}");

        if at == "switched" {
            let refused = finish(mover(&app, &["tenant", "move", &slug, "--abort"])).await;
            assert!(!refused.status.success(), "no abort after the switch");
            assert!(
                String::from_utf8_lossy(&refused.stderr).contains("--resume"),
                "{}",
                String::from_utf8_lossy(&refused.stderr)
            );
        }
        let flag = format!("--{then}");
        let out = finish(mover(&app, &["tenant", "move", &slug, &flag, "--json"])).await;
        assert!(
            out.status.success(),
            "{at} then {then}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let view: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let expected = if then == "abort" { "aborted" } else { "done" };
        assert_eq!(view["phase"], expected, "{view}");
        // Writes go on for a while after it, through the cell the tenant is in now.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        stop.store(true, Ordering::Relaxed);
        let (acked, refused, other) = w.await.unwrap();
        assert!(
            other.is_empty(),
            "{at} then {then}: {:?}",
            &other[..other.len().min(3)]
        );
        assert!(!acked.is_empty());

        let (home, away) = if then == "abort" {
            ("local", "eu-1")
        } else {
            ("eu-1", "local")
        };
        let now = app
            .state
            .catalog
            .find_tenant(tid(&t))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(now.cell.as_str(), home, "{at} then {then}");
        assert_eq!(now.status.as_str(), "active", "{at} then {then}");
        assert_eq!(
            rows_in(&app, tid(&t), away).await,
            vec![],
            "{at} then {then}: one copy"
        );
        let case = format!("{at} then {then}");
        assert_writes_kept(&app, &t.token, &acked, &refused, &case).await;
        if at == "frozen" {
            assert!(
                !refused.is_empty(),
                "writes were refused while it was frozen"
            );
        }
        app.assert_chain_verifies(&t.tenant_id, &case).await;
    }
}
