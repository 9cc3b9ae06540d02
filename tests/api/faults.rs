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

async fn median_latency(app: &TestApp, token: &str, n: usize) -> std::time::Duration {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t0 = std::time::Instant::now();
        let r = app.call("GET", "/v1/tenant", Some(token), None).await;
        times.push(t0.elapsed());
        assert_eq!(r.status, 200, "{}", r.text);
    }
    times.sort();
    times[n / 2]
}

#[tokio::test]
async fn with_redis_killed_a_request_costs_no_redis_round_trip_until_it_is_back() {
    let test = "with_redis_killed_a_request_costs_no_redis_round_trip_until_it_is_back";
    let port = crate::helpers::free_port();
    let Some(mut redis) = crate::helpers::spawn_redis(test, port) else {
        return;
    };
    let url = format!("redis://127.0.0.1:{port}");
    let app = TestApp::spawn_with(|c| c.redis_url = Some(url.clone().into())).await;
    let a = app.signup("acme", Some("professional")).await;
    let ready = app.call("GET", "/readyz", None, None).await;
    assert_eq!(ready.body["rate_limits"], "redis", "{}", ready.text);
    median_latency(&app, &a.token, 20).await;
    let healthy = median_latency(&app, &a.token, 200).await;

    let wait_shared = || async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            app.call("GET", "/v1/tenant", Some(&a.token), None).await;
            let ready = app.call("GET", "/readyz", None, None).await;
            if ready.body["rate_limits"] == "redis" {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "limits never went back to Redis: {}",
                ready.text
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    // Frozen (SIGSTOP): checks wait out the 250 ms timeout for a second, then none waits.
    let pid = redis.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .unwrap()
            .success()
    );
    // Taken for down after a second of failures with no success between.
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_millis(1300) {
        app.call("GET", "/v1/tenant", Some(&a.token), None).await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let frozen = median_latency(&app, &a.token, 100).await;
    assert!(
        frozen <= healthy * 3 + std::time::Duration::from_micros(300),
        "median with Redis frozen {frozen:?}, healthy {healthy:?}"
    );
    assert!(
        std::process::Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_shared().await;

    redis.kill().unwrap();
    redis.wait().unwrap();
    // The checks of the first second find it gone; after that, none asks it.
    let t0 = std::time::Instant::now();
    while t0.elapsed() < std::time::Duration::from_millis(1300) {
        app.call("GET", "/v1/tenant", Some(&a.token), None).await;
        // Paced, so the run stays within the plan's rate limit.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let t0 = std::time::Instant::now();
    let ready = app.call("GET", "/readyz", None, None).await;
    assert!(t0.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(ready.body["rate_limits"], "degraded", "{}", ready.text);
    let dead = median_latency(&app, &a.token, 200).await;
    assert!(
        dead <= healthy * 3 + std::time::Duration::from_micros(300),
        "median with Redis dead {dead:?}, healthy {healthy:?}"
    );
    // Still limited meanwhile (this node's buckets), never "no limit".
    assert!(
        app.call("GET", "/v1/tenant", Some(&a.token), None)
            .await
            .header("ratelimit-limit")
            .is_some()
    );

    // Redis back on the same address: the probe finds it and limits are shared again.
    let mut redis = crate::helpers::spawn_redis(test, port).unwrap();
    wait_shared().await;
    let _ = redis.kill();
    let _ = redis.wait();
}

/// A PostgreSQL server of the test's own, from the local binaries, that the test may stop.
struct OwnPg {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    port: u16,
    user: Option<String>,
}

impl OwnPg {
    fn run(&self, program: &str, args: &[&str]) -> bool {
        let exe = self.bin.join(program);
        let mut cmd = match &self.user {
            Some(u) => {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", u, "--"]).arg(&exe);
                c
            }
            None => std::process::Command::new(&exe),
        };
        cmd.args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn start(test: &str) -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .max();
        let Some(bin) = bin else {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "{test}: no PostgreSQL binaries (initdb), and CI=true does not allow skipping"
                );
            }
            eprintln!("SKIPPED {test}: no PostgreSQL binaries to start a server of its own");
            return None;
        };
        // initdb and postgres refuse to run as root.
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        let user = root.then(|| {
            let name = "tenantd-pg".to_owned();
            let _ = std::process::Command::new("useradd")
                .args(["--system", "--no-create-home", &name])
                .stderr(std::process::Stdio::null())
                .status();
            name
        });
        let dir = crate::helpers::temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        if let Some(u) = &user {
            let _ = std::process::Command::new("chown")
                .arg(u)
                .arg(&dir)
                .status();
        }
        let pg = OwnPg {
            bin,
            dir,
            port: crate::helpers::free_port(),
            user,
        };
        let data = pg.dir.join("data").display().to_string();
        assert!(
            pg.run(
                "initdb",
                &["-D", &data, "-U", "postgres", "--auth=trust", "-E", "UTF8"]
            ),
            "initdb failed"
        );
        assert!(pg.up(), "postgres did not start");
        Some(pg)
    }

    fn up(&self) -> bool {
        let data = self.dir.join("data").display().to_string();
        let log = self.dir.join("log").display().to_string();
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &["-D", &data, "-l", &log, "-w", "-o", &opts, "start"],
        )
    }

    fn down(&self) -> bool {
        let data = self.dir.join("data").display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"])
    }

    fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for OwnPg {
    fn drop(&mut self) {
        self.down();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_database_stopped_under_load_is_answered_503_at_once_and_comes_back_without_a_restart() {
    let test =
        "a_database_stopped_under_load_is_answered_503_at_once_and_comes_back_without_a_restart";
    let Some(server) = OwnPg::start(test) else {
        return;
    };
    let pg = crate::helpers::PgTest::create(&server.admin_url()).await;
    let app = TestApp::spawn_with(|c| pg.configure(c)).await;
    let a = app.signup("acme", Some("professional")).await;
    assert_eq!(app.create(&a.token, "agents", "before").await.status, 201);

    // Load: four clients reading, 50 requests a second each, for the whole test (under the
    // plan's 2,000 a minute, so what they see is the database, not the rate limit).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (client, base, token, stop) = (
            app.client.clone(),
            app.base.clone(),
            a.token.clone(),
            stop.clone(),
        );
        load.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = client
                    .get(format!("{base}/v1/agents"))
                    .bearer_auth(&token)
                    .timeout(std::time::Duration::from_secs(10))
                    .send()
                    .await;
                n += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            n
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(server.down(), "pg_ctl stop");
    let stopped = std::time::Instant::now();
    // Once it is known down (the probe asks every 500 ms): every answer is a prompt 503.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mut slowest = std::time::Duration::ZERO;
    while stopped.elapsed() < std::time::Duration::from_millis(3500) {
        let t0 = std::time::Instant::now();
        let r = app.call("GET", "/v1/agents", Some(&a.token), None).await;
        slowest = slowest.max(t0.elapsed());
        r.assert_problem(503, "UNAVAILABLE");
        assert!(r.header("retry-after").is_some());
        let w = app
            .call(
                "POST",
                "/v1/agents",
                Some(&a.token),
                Some(json!({"name": "during", "spec": {}})),
            )
            .await;
        w.assert_problem(503, "UNAVAILABLE");
    }
    assert!(
        slowest < std::time::Duration::from_secs(1),
        "a 503 took {slowest:?}"
    );
    let t0 = std::time::Instant::now();
    let ready = app.call("GET", "/readyz", None, None).await;
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(1),
        "/readyz took {:?}",
        t0.elapsed()
    );
    ready.assert_problem(503, "UNAVAILABLE");
    assert_eq!(ready.body["catalog"], "unreachable", "{}", ready.text);
    assert!(
        ready.body["cells"]
            .as_object()
            .unwrap()
            .values()
            .all(|v| v != "ok"),
        "{}",
        ready.text
    );

    // Back: served again within seconds, without a restart of tenantd.
    assert!(server.up(), "pg_ctl start");
    let back = std::time::Instant::now();
    loop {
        let r = app.call("GET", "/v1/agents", Some(&a.token), None).await;
        if r.status == 200 {
            break;
        }
        assert!(
            back.elapsed() < std::time::Duration::from_secs(15),
            "never came back: {}",
            r.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(app.create(&a.token, "agents", "after").await.status, 201);
    // The tenant's cell and the catalog answer; the other cell's breaker lets its next probe
    // (every 500 ms) through before /readyz counts it again.
    let mut ready = app.call("GET", "/readyz", None, None).await;
    for _ in 0..30 {
        if ready.status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        ready = app.call("GET", "/readyz", None, None).await;
    }
    assert_eq!(ready.status, 200, "{}", ready.text);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in load {
        assert!(l.await.unwrap() > 0);
    }
    drop(app);
}
