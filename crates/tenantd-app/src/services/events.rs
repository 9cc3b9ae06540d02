use tenantd_core::access::Granted;
use tenantd_core::access::perm::EventsRead;
use tenantd_core::events::{EVENT_TYPES, Event, EventFilter};
use tenantd_core::{FieldError, Result};

use crate::context::Ctx;
use crate::state::AppState;

/// The most events one page returns.
pub const MAX_PAGE: u32 = 1000;

/// A page request as the client states it, parsed: `after` a `seq` (0 for the start),
/// `types` a comma-separated list of event types, `limit` 1 to 1000 (default 100).
pub fn filter(after: Option<i64>, types: Option<&str>, limit: Option<u32>) -> Result<EventFilter> {
    let mut v = tenantd_core::error::Validator::default();
    let after = match after {
        None => 0,
        Some(a) if a >= 0 => a,
        Some(_) => {
            v.push(FieldError::new("after", "a seq from this log (0 or more)"));
            0
        }
    };
    if types.is_some_and(|t| t.trim().is_empty()) {
        v.push(FieldError::new(
            "types",
            "one or more event types, comma-separated",
        ));
    }
    let types = types.filter(|t| !t.trim().is_empty()).map(|t| {
        let mut list: Vec<String> = Vec::new();
        for (i, kind) in t.split(',').map(str::trim).enumerate() {
            if EVENT_TYPES.contains(&kind) {
                if !list.iter().any(|k| k == kind) {
                    list.push(kind.to_owned());
                }
            } else {
                v.push(FieldError::new(
                    format!("types[{i}]"),
                    format!("not an event type; one of: {}", EVENT_TYPES.join(" ")),
                ));
            }
        }
        list
    });
    let limit = match limit {
        None => 100,
        Some(l @ 1..=MAX_PAGE) => l,
        Some(_) => {
            v.push(FieldError::new("limit", "1 to 1000"));
            100
        }
    };
    v.finish()?;
    Ok(EventFilter {
        after,
        types,
        limit,
    })
}

/// A page of the tenant's event log, in `seq` order (owners and admins). The platform
/// tenant's log also holds every tenant's lifecycle events.
pub async fn list(
    state: &AppState,
    ctx: &Ctx,
    _: Granted<EventsRead>,
    filter: &EventFilter,
) -> Result<Vec<Event>> {
    state
        .cell(&ctx.scope)?
        .list_events(&ctx.scope, filter)
        .await
}

/// Deletes events older than `event_retention_days` in every cell (the retention job).
pub async fn prune(state: &AppState) -> Result<u64> {
    let before =
        tenantd_core::time::now() - chrono::Duration::days(state.config.event_retention_days);
    let mut n = 0;
    for cell in state.cells.values() {
        n += cell.unscoped_prune_events(before).await?;
    }
    if n > 0 {
        tracing::info!(events = n, "pruned events past retention");
    }
    Ok(n)
}
