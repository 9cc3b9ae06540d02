//! Who runs a move: a lease in its record (`tenant_moves.runner`, `lease_until`). A runner
//! takes it before it touches the move and renews it every third of `move_lease_ms` while it
//! works; a runner that cannot renew stops before its lease runs out, so two runners never
//! carry one move at once. When a runner stops without finishing (its process killed, its
//! node gone, an error), the lease runs out and a serving node's `move-resume` job carries
//! the move on from its recorded phase (`resume_moves`), at most [`MOST_RESUMES`] times.

use std::time::{Duration, Instant};

use serde_json::json;
use tenantd_core::store::MoveRecord;
use tenantd_core::{Error, Result, time};
use tokio::sync::watch;

use super::{Silent, moving};
use crate::context::Caller;
use crate::state::AppState;

/// How many times the job resumes one move; then it waits for an operator's `--resume`.
pub const MOST_RESUMES: u64 = 3;

/// A lease held: renewed in the background until given up.
pub struct Held {
    id: String,
    runner: String,
    lost: watch::Receiver<bool>,
    renewing: tokio::task::JoinHandle<()>,
}

fn ttl(state: &AppState) -> Duration {
    Duration::from_millis(state.config.move_lease_ms)
}

fn until(d: Duration) -> String {
    time::format(time::now() + chrono::Duration::from_std(d).unwrap_or_default())
}

/// Takes the lease on move `m` for a new runner, waiting while another runner's lease runs
/// out (at most one lease's length): `Conflict` when it is still held then, since its runner
/// is alive and renewing.
pub async fn take(state: &AppState, m: &MoveRecord) -> Result<Held> {
    acquire(state, m, true).await
}

async fn acquire(state: &AppState, m: &MoveRecord, wait: bool) -> Result<Held> {
    let runner = uuid::Uuid::now_v7().to_string();
    let ttl = ttl(state);
    let deadline = Instant::now()
        + if wait {
            ttl + Duration::from_secs(1)
        } else {
            Duration::ZERO
        };
    loop {
        let now = time::format(time::now());
        if state
            .catalog
            .lease_move(&m.id, &runner, &until(ttl), &now)
            .await?
        {
            break;
        }
        if let Some(now) = state.catalog.latest_move(m.tenant_id).await?
            && now.id == m.id
            && (now.phase == "done" || now.phase == "aborted")
        {
            return Err(Error::invalid("move", format!("the move is {}", now.phase)));
        }
        if Instant::now() >= deadline {
            return Err(Error::conflict(
                "move",
                "another runner is carrying the move (its lease is being renewed); wait for it to finish",
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (tx, lost) = watch::channel(false);
    let (st, id, who) = (state.clone(), m.id.clone(), runner.clone());
    let renewing = tokio::spawn(async move {
        // Valid as far as this runner knows: from the last renewal on, for one lease less a
        // third (the margin for the databases' and the clocks' delays).
        let mut valid = Instant::now() + ttl * 2 / 3;
        loop {
            let next = (Instant::now() + ttl / 3).min(valid);
            tokio::time::sleep_until(next.into()).await;
            if Instant::now() >= valid {
                let _ = tx.send(true);
                return;
            }
            let now = time::format(time::now());
            match st.catalog.lease_move(&id, &who, &until(ttl), &now).await {
                Ok(true) => valid = Instant::now() + ttl * 2 / 3,
                Ok(false) => {
                    let _ = tx.send(true);
                    return;
                }
                Err(e) => {
                    tracing::warn!(move_id = %id, error = %e, "a move's lease was not renewed")
                }
            }
        }
    });
    Ok(Held {
        id: m.id.clone(),
        runner,
        lost,
        renewing,
    })
}

impl Held {
    /// Resolves when the lease is lost (another runner took it, or it could not be renewed).
    pub async fn lost(&mut self) {
        while !*self.lost.borrow() {
            if self.lost.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Stops renewing and gives the lease up.
    pub async fn release(self, state: &AppState) {
        self.renewing.abort();
        if let Err(e) = state.catalog.release_move(&self.id, &self.runner).await {
            tracing::warn!(move_id = %self.id, error = %e, "a move's lease was not given up; it runs out");
        }
    }
}

/// `work` under the lease `held`: stopped where it is if the lease is lost (as a crash
/// would stop it: every phase resumes), the lease given up after.
pub async fn under<T>(
    state: &AppState,
    mut held: Held,
    work: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    let out = tokio::select! {
        r = work => r,
        _ = held.lost() => Err(Error::conflict("move", "the move's lease was lost; another runner carries it on")),
    };
    held.release(state).await;
    out
}

/// The `move-resume` job's tick: every open move whose lease ran out (or that was never
/// leased, or given up, and has not changed for a lease's length) is carried on in the
/// background; how many were started.
pub async fn resume_stopped(state: &AppState) -> Result<usize> {
    let now = time::now();
    let stale = time::format(now - chrono::Duration::from_std(ttl(state)).unwrap_or_default());
    let now = time::format(now);
    let mut started = 0;
    for (mut m, lease_until) in state.catalog.open_moves().await? {
        let free = match &lease_until {
            Some(u) => *u < now,
            None => m.updated_at < stale,
        };
        if !free {
            continue;
        }
        let resumed = m.detail["resumed"].as_u64().unwrap_or(0);
        if resumed >= MOST_RESUMES {
            continue;
        }
        // The lease first, so no other node's job starts it too.
        let Ok(held) = acquire(state, &m, false).await else {
            continue;
        };
        m.detail["resumed"] = json!(resumed + 1);
        state.catalog.update_move(&m).await?;
        let st = state.clone();
        tracing::warn!(move_id = %m.id, tenant = %m.tenant_id, phase = %m.phase, "resuming a tenant move whose runner stopped");
        started += 1;
        tokio::spawn(async move {
            let id = m.id.clone();
            let run = async {
                let op = Caller::operator(&st).await?;
                moving::carry(&st, &op, m, &Silent, None).await
            };
            match under(&st, held, run).await {
                Ok(m) => {
                    tracing::info!(move_id = %id, phase = %m.phase, "a resumed tenant move ended")
                }
                Err(e) => {
                    tracing::error!(move_id = %id, error = %e, "a resumed tenant move stopped")
                }
            }
        });
    }
    Ok(started)
}
