//! The HTTP load generator of `bench/runs.py` (the agent-run benchmarks; see
//! docs/benchmarks.md). It drives one server — tenantd or the bare harness — and prints one
//! JSON line of results.
//!
//! ```text
//! bench_runs lifecycle URL WORKER_KEY TENANTS_FILE SECONDS CONCURRENCY
//! bench_runs submit    URL TENANTS_FILE COUNT CONCURRENCY
//! bench_runs fairness  URL WORKER_KEY TENANTS_FILE SECONDS SLOTS RUN_MS [JITTER_MS]
//! bench_runs lease     URL WORKER_KEY COUNT CONCURRENCY
//! ```
//!
//! `TENANTS_FILE` has one `token tenant_id agent_id` line per tenant. `fairness` submits one
//! run per second for each of them while SLOTS workers lease, hold each run RUN_MS and
//! complete it (the workers start staggered over one run's length; with JITTER_MS each run lasts
//! RUN_MS ± JITTER_MS); it reports the waits (created → leased, from the server's own times) of those
//! runs and the leases each tenant got (backlogs queued beforehand by `submit` included).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[derive(Clone)]
struct Tenant {
    token: String,
    id: String,
    agent: String,
}

struct Http {
    client: reqwest::Client,
    base: String,
}

impl Http {
    async fn post(
        &self,
        path: &str,
        token: &str,
        tenant: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        let mut r = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body);
        if let Some(t) = tenant {
            r = r.header("x-tenant-id", t);
        }
        match r.send().await {
            Ok(resp) => {
                let s = resp.status().as_u16();
                (s, resp.json().await.unwrap_or(Value::Null))
            }
            Err(_) => (0, Value::Null),
        }
    }
}

fn tenants(path: &str) -> Vec<Tenant> {
    std::fs::read_to_string(path)
        .expect("tenants file")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut p = l.split_whitespace();
            Tenant {
                token: p.next().unwrap().into(),
                id: p.next().unwrap().into(),
                agent: p.next().unwrap().into(),
            }
        })
        .collect()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let i = ((v.len() as f64 * p / 100.0).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

fn ms_between(a: &Value, b: &Value) -> Option<f64> {
    let a = chrono::DateTime::parse_from_rfc3339(a.as_str()?).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(b.as_str()?).ok()?;
    Some((b - a).num_microseconds()? as f64 / 1000.0)
}

async fn create(http: &Http, t: &Tenant) -> u16 {
    http.post(
        &format!("/v1/agents/{}/runs", t.agent),
        &t.token,
        Some(&t.id),
        json!({"model": "m", "max_tokens": 100}),
    )
    .await
    .0
}

/// One run's whole life over HTTP: create, lease, one usage report, complete.
async fn lifecycle(
    http: Arc<Http>,
    worker: String,
    ts: Vec<Tenant>,
    seconds: u64,
    conc: usize,
) -> Value {
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..conc {
        let (http, worker, ts) = (http.clone(), worker.clone(), ts.clone());
        tasks.push(tokio::spawn(async move {
            let (mut done, mut errors, mut i) = (0u64, 0u64, w);
            while Instant::now() < until {
                let t = &ts[i % ts.len()];
                i += conc;
                if create(&http, t).await != 202 {
                    errors += 1;
                    continue;
                }
                let (s, l) = http
                    .post("/v1/workers/lease", &worker, None, json!({}))
                    .await;
                if s != 200 {
                    errors += 1;
                    continue;
                }
                let run = l["run"]["id"].as_str().unwrap_or_default().to_owned();
                let lease = l["lease_id"].clone();
                let (s, _) = http
                    .post(
                        &format!("/v1/runs/{run}/usage"),
                        &worker,
                        None,
                        json!({"lease_id": lease, "seq": 1, "tokens": 10}),
                    )
                    .await;
                let (c, _) = http
                    .post(
                        &format!("/v1/runs/{run}/complete"),
                        &worker,
                        None,
                        json!({"lease_id": lease}),
                    )
                    .await;
                if s == 200 && c == 200 {
                    done += 1;
                } else {
                    errors += 1;
                }
            }
            (done, errors)
        }));
    }
    let (mut done, mut errors) = (0, 0);
    for t in tasks {
        let (d, e) = t.await.unwrap();
        done += d;
        errors += e;
    }
    json!({"runs": done, "errors": errors, "runs_per_s": done as f64 / seconds as f64})
}

async fn submit(http: Arc<Http>, ts: Vec<Tenant>, count: usize, conc: usize) -> Value {
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (http, ts, next) = (http.clone(), ts.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return ok;
                }
                if create(&http, &ts[i % ts.len()]).await == 202 {
                    ok += 1;
                }
            }
        }));
    }
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap();
    }
    json!({"admitted": ok, "seconds": started.elapsed().as_secs_f64()})
}

async fn fairness(
    http: Arc<Http>,
    worker: String,
    ts: Vec<Tenant>,
    seconds: u64,
    slots: usize,
    run_ms: u64,
    jitter_ms: u64,
) -> Value {
    let until = Instant::now() + Duration::from_secs(seconds);
    let mine: std::collections::HashSet<String> = ts.iter().map(|t| t.id.clone()).collect();
    // The submitters: one run per second per tenant, spread over the second.
    let mut subs = Vec::new();
    for (k, t) in ts.iter().cloned().enumerate() {
        let (http, n) = (http.clone(), ts.len());
        subs.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis((1000 * k / n) as u64)).await;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while Instant::now() < until {
                tick.tick().await;
                create(&http, &t).await;
            }
        }));
    }
    let mut workers = Vec::new();
    for k in 0..slots {
        let (http, worker) = (http.clone(), worker.clone());
        workers.push(tokio::spawn(async move {
            // Workers start staggered over one run's length, as workers that did not all
            // start in the same millisecond do: slots then free one by one, not in waves.
            tokio::time::sleep(Duration::from_millis(run_ms * k as u64 / slots as u64)).await;
            let mut seen: Vec<(String, Option<f64>, String)> = Vec::new();
            // Run lengths of run_ms ± jitter_ms (a small LCG per worker; 0: exactly run_ms).
            let mut lcg = 0x9e37_79b9_u64.wrapping_mul(k as u64 + 1);
            let mut length = move || {
                lcg = lcg.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                let spread = 2 * jitter_ms + 1;
                run_ms - jitter_ms + (lcg >> 33) % spread
            };
            while Instant::now() < until {
                let (s, l) = http
                    .post("/v1/workers/lease", &worker, None, json!({"wait_ms": 500}))
                    .await;
                if s != 200 {
                    continue;
                }
                let tenant = l["run"]["tenant_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let wait = ms_between(&l["run"]["created_at"], &l["run"]["leased_at"]);
                let at = l["run"]["leased_at"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                seen.push((tenant, wait, at));
                tokio::time::sleep(Duration::from_millis(length())).await;
                let run = l["run"]["id"].as_str().unwrap_or_default().to_owned();
                http.post(
                    &format!("/v1/runs/{run}/complete"),
                    &worker,
                    None,
                    json!({"lease_id": l["lease_id"]}),
                )
                .await;
            }
            seen
        }));
    }
    for s in subs {
        s.await.unwrap();
    }
    let (mut waits, mut per) = (Vec::new(), HashMap::<String, u64>::new());
    let (mut total, mut times) = (0u64, Vec::new());
    for w in workers {
        for (tenant, wait, at) in w.await.unwrap() {
            total += 1;
            times.push(at);
            *per.entry(tenant.clone()).or_default() += 1;
            if mine.contains(&tenant)
                && let Some(w) = wait
            {
                waits.push(w);
            }
        }
    }
    // Gaps between consecutive leases (all workers): a quiet run waits for the next one.
    times.sort();
    let mut gaps: Vec<f64> = times
        .windows(2)
        .filter_map(|w| ms_between(&json!(w[0]), &json!(w[1])))
        .collect();
    json!({
        "lease_gap_p99_ms": pct(&mut gaps.clone(), 99.0),
        "lease_gap_max_ms": pct(&mut gaps, 100.0),
        "leases": total,
        "runs_per_s": total as f64 / seconds as f64,
        "submitted_leases": waits.len(),
        "submitted_wait_p50_ms": pct(&mut waits.clone(), 50.0),
        "submitted_wait_p99_ms": pct(&mut waits, 99.0),
        "leases_by_tenant": per,
    })
}

async fn lease(http: Arc<Http>, worker: String, count: usize, conc: usize) -> Value {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (http, worker, next) = (http.clone(), worker.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                let t = Instant::now();
                let (s, _) = http
                    .post("/v1/workers/lease", &worker, None, json!({}))
                    .await;
                if s == 200 {
                    lat.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    json!({"leases": all.len(), "p50_ms": pct(&mut all.clone(), 50.0), "p99_ms": pct(&mut all.clone(), 99.0), "latencies_ms": all})
}

#[tokio::main]
async fn main() {
    tenantd_server::install_tls_provider();
    let a: Vec<String> = std::env::args().collect();
    let http = Arc::new(Http {
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .unwrap(),
        base: a[2].clone(),
    });
    let n = |i: usize| a[i].parse::<u64>().expect("a number");
    let out = match a[1].as_str() {
        "lifecycle" => lifecycle(http, a[3].clone(), tenants(&a[4]), n(5), n(6) as usize).await,
        "submit" => submit(http, tenants(&a[3]), n(4) as usize, n(5) as usize).await,
        "fairness" => {
            fairness(
                http,
                a[3].clone(),
                tenants(&a[4]),
                n(5),
                n(6) as usize,
                n(7),
                a.get(8).map_or(0, |j| j.parse().expect("jitter ms")),
            )
            .await
        }
        "lease" => lease(http, a[3].clone(), n(4) as usize, n(5) as usize).await,
        other => panic!("unknown mode {other}"),
    };
    println!("{out}");
}
