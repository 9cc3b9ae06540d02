//! A tiny tenantd worker: leases agent runs, heartbeats while it "works", reports token usage
//! in steps and completes each run. It runs no model; each step pretends to spend tokens.
//!
//! ```sh
//! TENANTD_URL=http://127.0.0.1:8080 TENANTD_WORKER_KEY=tdk_… cargo run --release --example worker
//! ```
//!
//! The key is a platform API key with the `worker` role (see the README). Options (env):
//! `WORKER_STEPS` (usage reports per run, default 3), `WORKER_STEP_TOKENS` (tokens a step
//! spends, default 250), `WORKER_STEP_MS` (how long a step takes, default 300), `WORKER_ONCE`
//! (set: stop after one run).

use std::time::Duration;

use serde_json::{Value, json};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    /// POSTs `body`; the status and the JSON answer (`null` when there is none).
    async fn post(&self, path: &str, body: Value) -> Result<(u16, Value), reqwest::Error> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await?;
        let status = r.status().as_u16();
        let v = r.json().await.unwrap_or(Value::Null);
        Ok((status, v))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The workspace's reqwest speaks TLS through rustls with ring, installed here.
    tenantd_server::install_tls_provider();
    let api = std::sync::Arc::new(Api {
        http: reqwest::Client::new(),
        base: std::env::var("TENANTD_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into()),
        key: std::env::var("TENANTD_WORKER_KEY")
            .map_err(|_| "set TENANTD_WORKER_KEY to a platform API key with the worker role")?,
    });
    let (steps, step_tokens, step_ms) = (
        env_or("WORKER_STEPS", 3),
        env_or("WORKER_STEP_TOKENS", 250),
        env_or("WORKER_STEP_MS", 300),
    );
    eprintln!("worker: leasing from {}", api.base);
    loop {
        let (status, lease) = api
            .post("/v1/workers/lease", json!({"wait_ms": 10_000}))
            .await?;
        match status {
            204 => continue,
            200 => {}
            _ => return Err(format!("lease: {status} {lease}").into()),
        }
        let run = lease["run"]["id"].as_str().unwrap_or_default().to_owned();
        let lease_id = lease["lease_id"].as_str().unwrap_or_default().to_owned();
        eprintln!(
            "worker: leased run {run} of tenant {} (model {}, attempt {}, {} tokens remaining)",
            lease["run"]["tenant_id"],
            lease["run"]["model"],
            lease["run"]["attempt"],
            lease["tokens_remaining"]
        );
        // Heartbeats every 5 s while the run is worked on.
        let beat = {
            let (api, run, lease_id) = (api.clone(), run.clone(), lease_id.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    let r = api
                        .post(
                            &format!("/v1/runs/{run}/heartbeat"),
                            json!({"lease_id": lease_id}),
                        )
                        .await;
                    if !matches!(r, Ok((200, _))) {
                        return;
                    }
                }
            })
        };
        let mut stopped = None;
        for seq in 1..=steps {
            tokio::time::sleep(Duration::from_millis(step_ms)).await;
            let (status, v) = api
                .post(
                    &format!("/v1/runs/{run}/usage"),
                    json!({"lease_id": lease_id, "seq": seq, "tokens": step_tokens}),
                )
                .await?;
            if status != 200 {
                // BUDGET_EXHAUSTED, RUN_CANCELLED or LEASE_LOST: stop working on this run.
                stopped = Some(v["code"].as_str().unwrap_or("error").to_owned());
                break;
            }
            eprintln!(
                "worker: run {run} step {seq}: {} tokens used, {} remaining",
                v["tokens_used"], v["tokens_remaining"]
            );
        }
        beat.abort();
        match stopped {
            Some(code) => eprintln!("worker: run {run} stopped: {code}"),
            None => {
                let (status, v) = api
                    .post(
                        &format!("/v1/runs/{run}/complete"),
                        json!({"lease_id": lease_id, "output": {"steps": steps}}),
                    )
                    .await?;
                eprintln!(
                    "worker: run {run} completed ({status}): {} with {} tokens",
                    v["status"], v["tokens_used"]
                );
            }
        }
        if std::env::var_os("WORKER_ONCE").is_some() {
            return Ok(());
        }
    }
}
