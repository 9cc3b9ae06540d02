//! A circuit breaker per PostgreSQL database.
//!
//! While a database is known to be down, every request that needs it is answered `Unavailable`
//! (503 with `Retry-After`) at once, instead of each one waiting out the pool's acquire timeout.
//! It is known down when a connection-level error comes back from it, or when the probe — a
//! `SELECT 1` every half second on a connection of its own, so a busy pool never looks like a
//! dead database — fails; it is known up again at the first probe that succeeds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use tenantd_core::{Error, Result};

/// How often the probe asks.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// How long the probe waits for an answer (connecting included).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The state of one database.
#[derive(Debug)]
pub struct Breaker {
    name: String,
    open: AtomicBool,
}

impl Breaker {
    /// A closed breaker for the database called `name` (in logs).
    pub fn new(name: &str) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            open: AtomicBool::new(false),
        })
    }

    /// `Unavailable` while the database is known to be down.
    pub fn check(&self) -> Result<()> {
        if self.open.load(Ordering::Acquire) {
            Err(Error::Unavailable)
        } else {
            Ok(())
        }
    }

    /// Whether the database is known to be down.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }

    /// The database did not answer.
    pub fn trip(&self) {
        if !self.open.swap(true, Ordering::AcqRel) {
            tracing::warn!(database = %self.name, "database unreachable; answering 503 until it answers again");
        }
    }

    /// The database answered.
    pub fn close(&self) {
        if self.open.swap(false, Ordering::AcqRel) {
            tracing::info!(database = %self.name, "database answers again");
        }
    }

    /// Trips on the errors that mean the database itself is gone (not on a conflict, a
    /// deadlock or a serialization failure, which are per-transaction).
    pub fn observe(&self, e: &sqlx::Error) {
        let gone = match e {
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|c| {
                c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")
            }),
            _ => false,
        };
        if gone {
            self.trip();
        }
    }

    /// Probes the database in the background for as long as the breaker is in use.
    pub fn spawn_probe(self: &Arc<Self>, opts: PgConnectOptions) {
        let weak = Arc::downgrade(self);
        let opts = opts.log_statements(tracing::log::LevelFilter::Trace);
        tokio::spawn(async move {
            let mut conn: Option<PgConnection> = None;
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let Some(breaker) = weak.upgrade() else {
                    return;
                };
                let answered = tokio::time::timeout(PROBE_TIMEOUT, async {
                    if conn.is_none() {
                        conn = Some(PgConnection::connect_with(&opts).await?);
                    }
                    match conn.as_mut() {
                        Some(c) => c.ping().await,
                        None => Ok(()),
                    }
                })
                .await;
                match answered {
                    Ok(Ok(())) => breaker.close(),
                    _ => {
                        // A dead or half-open connection: start afresh next time.
                        if let Some(c) = conn.take() {
                            drop(c);
                        }
                        breaker.trip();
                    }
                }
            }
        });
    }
}
