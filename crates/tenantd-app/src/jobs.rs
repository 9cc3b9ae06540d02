//! The job supervisor: the background work `serve` starts, and stops when it stops.
//!
//! Each job is a named task that watches one stop signal. `run` stops them after the HTTP
//! server has drained, waits for them up to a grace period (a job finishes its current step —
//! the audit relay makes a last flush), and aborts what is left. Jobs keep their state in the
//! database and claim their work, so a job killed with the process (`kill -9`) loses nothing
//! and several nodes may run the same job: stopping is for tidiness, not for correctness.
//!
//! Jobs today (started by `bootstrap.rs::start_serving`): the audit relay, the
//! upload-reservation sweep, and the cache-invalidation subscriber. Later issues add run
//! leases, webhook deliveries, purge and moves there.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use tokio::task::JoinHandle;

/// A stop signal as a job sees it.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Resolves once the supervisor stops (at once if it has).
    pub async fn stopped(&mut self) {
        while !*self.0.borrow() {
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }

    /// Whether the supervisor has stopped.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }
}

/// The running jobs.
pub struct Jobs {
    stop: watch::Sender<bool>,
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

impl Default for Jobs {
    fn default() -> Self {
        Self::new()
    }
}

impl Jobs {
    /// No jobs yet.
    pub fn new() -> Self {
        Self {
            stop: watch::channel(false).0,
            tasks: Vec::new(),
        }
    }

    /// Starts a job: `job` runs until it returns; it should return once `Stop` fires.
    pub fn start<F, Fut>(&mut self, name: &'static str, job: F)
    where
        F: FnOnce(Stop) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let stop = Stop(self.stop.subscribe());
        self.tasks.push((name, tokio::spawn(job(stop))));
    }

    /// Starts a job that runs `tick` at once and then every `every`, until stopped; a failed
    /// tick is logged and the next one retries.
    pub fn every<F, Fut>(&mut self, name: &'static str, every: Duration, tick: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = tenantd_core::Result<()>> + Send + 'static,
    {
        self.start(name, move |mut stop| async move {
            loop {
                if let Err(e) = tick().await {
                    tracing::warn!(job = name, error = %e, "background job failed; will retry");
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.stopped() => return,
                }
            }
        });
    }

    /// The names of the jobs started.
    pub fn names(&self) -> Vec<&'static str> {
        self.tasks.iter().map(|(n, _)| *n).collect()
    }

    /// Signals every job to stop and waits for them up to `grace` in all; the ones still
    /// running then are aborted (and named in the log).
    pub async fn stop(self, grace: Duration) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        for (name, mut task) in self.tasks {
            match tokio::time::timeout_at(deadline, &mut task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(job = name, error = %e, "background job ended abnormally")
                }
                Err(_) => {
                    tracing::warn!(job = name, "background job did not stop in time; aborted");
                    task.abort();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test]
    async fn jobs_tick_until_stopped_and_a_stubborn_one_is_aborted() {
        let ticks = Arc::new(AtomicU32::new(0));
        let mut jobs = Jobs::new();
        let t = ticks.clone();
        jobs.every("count", Duration::from_millis(5), move || {
            let t = t.clone();
            async move {
                t.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        });
        let finished = Arc::new(AtomicU32::new(0));
        let f = finished.clone();
        jobs.start("polite", move |mut stop| async move {
            stop.stopped().await;
            f.fetch_add(1, Ordering::SeqCst);
        });
        // Ignores the stop signal: aborted after the grace period.
        jobs.start("stubborn", |_stop| async move {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        assert_eq!(jobs.names(), ["count", "polite", "stubborn"]);
        tokio::time::sleep(Duration::from_millis(40)).await;
        let started = std::time::Instant::now();
        jobs.stop(Duration::from_millis(200)).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(ticks.load(Ordering::SeqCst) >= 2, "ticked while running");
        assert_eq!(
            finished.load(Ordering::SeqCst),
            1,
            "the polite job saw the stop"
        );
        let after = ticks.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            ticks.load(Ordering::SeqCst),
            after,
            "no tick after the stop"
        );
    }
}
