//! Agent runs: their states, and the pure rules of admission. A run is one execution of an
//! agent by an external worker; tenantd admits, queues, leases, meters and stops runs (see
//! `docs/design/runs.md`). This module holds what needs no I/O: which model a run may use.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::{Error, FieldError, Result};
use crate::ids::{ResourceId, RunId, TenantId};

/// A run as stored.
#[derive(Debug, Clone)]
pub struct Run {
    /// Its id.
    pub id: RunId,
    /// Its tenant.
    pub tenant_id: TenantId,
    /// The agent (a resource of the tenant) it runs.
    pub agent_id: ResourceId,
    /// Where it is.
    pub status: RunStatus,
    /// The model it may use.
    pub model: String,
    /// What the worker gets.
    pub input: Value,
    /// The caller's cap, if any.
    pub max_tokens: Option<i64>,
    /// Tokens reserved for it from the month's budget.
    pub token_hold: i64,
    /// Tokens it has used.
    pub tokens_used: i64,
    /// Leases it has had.
    pub attempt: i64,
    /// When it was admitted.
    pub created_at: DateTime<Utc>,
    /// When it was last leased.
    pub leased_at: Option<DateTime<Utc>>,
    /// Until when its current lease holds (while `leased`).
    pub lease_until: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// What its worker returned on completion.
    pub output: Option<Value>,
    /// The error its worker reported, or why tenantd ended it.
    pub error: Option<Value>,
    /// Queued runs of the tenant admitted before it (while `queued`; `None` otherwise or
    /// where not computed).
    pub queue_position: Option<i64>,
}

impl Run {
    /// What is left of its hold.
    pub fn held(&self) -> i64 {
        if self.status.is_open() {
            (self.token_hold - self.tokens_used).max(0)
        } else {
            0
        }
    }
}

/// A lease a worker holds on a run: every call it makes about the run carries `lease_id`.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The run, now `leased`.
    pub run: Run,
    /// The fence: a later lease of the same run has another.
    pub lease_id: String,
    /// When it expires unless renewed.
    pub lease_until: DateTime<Utc>,
    /// Tokens the run may still use: what is left of its hold plus what the tenant's budget
    /// has free (`None`: unlimited).
    pub tokens_remaining: Option<i64>,
}

/// What one lease attempt in one cell found.
#[derive(Debug, Clone)]
pub enum LeaseOutcome {
    /// A run, now leased.
    Leased(Box<Lease>),
    /// Work exists, but every tenant that has some was being leased by another transaction at
    /// that instant (PostgreSQL's `SKIP LOCKED`): worth trying again at once.
    Contended,
    /// No tenant with work and a free slot.
    Empty,
}

impl LeaseOutcome {
    /// The lease, if one was made.
    pub fn leased(self) -> Option<Lease> {
        match self {
            LeaseOutcome::Leased(l) => Some(*l),
            _ => None,
        }
    }
}

/// How a lease picks the run it hands out (`run_scheduling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheduling {
    /// The least recently served tenant with work and a free slot, then its oldest run: a
    /// tenant's share does not grow with its backlog.
    #[default]
    Fair,
    /// The oldest queued run of any tenant with a free slot: a backlog goes first, and its
    /// neighbours wait behind it. What the fairness benchmark compares against.
    Fifo,
}

/// Who asks for a lease, and for what.
#[derive(Debug, Clone)]
pub struct LeaseAsk {
    /// How the run is picked.
    pub scheduling: Scheduling,
    /// Whether the lease may wait for a tenant's scheduler row that another lease holds
    /// (PostgreSQL). Without it such a tenant is passed over (fair) or the answer is
    /// [`LeaseOutcome::Contended`] (FIFO, or every tenant with work held).
    pub wait_for_row: bool,
    /// The models the worker serves (`None`: any).
    pub models: Option<Vec<String>>,
    /// How long a lease holds unless renewed (`run_lease_ttl_ms`).
    pub ttl: chrono::Duration,
    /// The worker, as an audit actor (`api_key:<id>`).
    pub actor: String,
    /// The request, for the audit trail.
    pub request_id: Option<String>,
}

/// A worker's call about the run it holds.
#[derive(Debug, Clone)]
pub struct WorkerCall {
    /// The run.
    pub run: RunId,
    /// The lease it was given.
    pub lease_id: String,
    /// The worker, as an audit actor.
    pub actor: String,
    /// The request, for the audit trail.
    pub request_id: Option<String>,
}

/// What a usage report leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageReport {
    /// The run's tokens used so far.
    pub tokens_used: i64,
    /// What it may still use (`None`: unlimited).
    pub tokens_remaining: Option<i64>,
}

/// How a worker ends a run.
#[derive(Debug, Clone)]
pub struct Completion {
    /// What the run produced.
    pub output: Option<Value>,
    /// Its error; given, the run ends `failed`.
    pub error: Option<Value>,
    /// The run's final token total (absent: what it reported).
    pub tokens_total: Option<i64>,
}

/// Which of a tenant's runs to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs in this state.
    pub status: Option<RunStatus>,
    /// Only runs of this agent.
    pub agent_id: Option<ResourceId>,
    /// Runs older than this one (the previous page's cursor).
    pub before: Option<RunId>,
    /// At most this many.
    pub limit: u32,
}

/// A tenant's runs at a glance, for its usage and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunTotals {
    /// Runs waiting for a worker.
    pub queued: i64,
    /// Runs held by a worker.
    pub leased: i64,
    /// Tokens open runs hold and have not used (the `tokens_held` counter).
    pub held: i64,
    /// Tokens used this month.
    pub used: i64,
    /// Created → leased, in milliseconds, of the tenant's latest leased runs (at most 100),
    /// sorted.
    pub waits_ms: Vec<i64>,
    /// Leases of this month's runs that expired (requeued or ended `expired`).
    pub lease_expiries: i64,
    /// This month's refused admissions by reason (`model`, `tokens`, `queued_runs`, …).
    pub rejections: std::collections::BTreeMap<String, i64>,
}

impl RunTotals {
    /// A percentile (0–100) of [`RunTotals::waits_ms`]; `None` with no leased run yet.
    pub fn wait_percentile(&self, p: usize) -> Option<i64> {
        let n = self.waits_ms.len();
        if n == 0 {
            return None;
        }
        let i = ((n * p).div_ceil(100)).clamp(1, n) - 1;
        Some(self.waits_ms[i])
    }
}

/// A lease past its time, found across tenants by the expiry job.
#[derive(Debug, Clone)]
pub struct DueLease {
    /// The run.
    pub run: RunId,
    /// Its tenant.
    pub tenant: TenantId,
    /// The lease that expired.
    pub lease_id: String,
}

/// A run to admit (its model chosen by [`choose_model`], its hold by the plan).
#[derive(Debug, Clone)]
pub struct NewRun {
    /// Its id.
    pub id: RunId,
    /// The agent.
    pub agent_id: ResourceId,
    /// The model.
    pub model: String,
    /// The input.
    pub input: Value,
    /// The caller's cap.
    pub max_tokens: Option<i64>,
    /// The tokens to hold: `max_tokens`, else the plan's `run_token_hold`.
    pub token_hold: i64,
    /// The caller's `Idempotency-Key` (a second admission with it within
    /// [`IDEMPOTENCY_WINDOW`] returns the first run).
    pub idempotency_key: Option<String>,
}

/// The limits an admission is checked against, from the tenant's plan.
#[derive(Debug, Clone, Copy)]
pub struct RunLimits {
    /// `queued_runs` (`None`: unlimited).
    pub queued: Option<i64>,
    /// The month's `tokens` (`None`: unlimited).
    pub tokens: Option<i64>,
    /// `concurrent_runs`: runs leased at one time (`None`: unlimited). The scheduler keeps
    /// the value of the tenant's latest admission.
    pub slots: Option<i64>,
    /// The `agent_spawns` rate: admissions in any 60 s (`None`: unlimited).
    pub spawns_per_minute: Option<i64>,
}

/// How long an `Idempotency-Key` names its run.
pub const IDEMPOTENCY_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// The quota counter of a month's used tokens (`tokens:YYYY-MM`, UTC).
pub fn tokens_counter(at: DateTime<Utc>) -> String {
    format!("tokens:{}", at.format("%Y-%m"))
}

/// The quota counter of what open runs hold.
pub const TOKENS_HELD: &str = "tokens_held";

/// The counter of a month's refused admissions for one reason (`runs_rejected:YYYY-MM:tokens`).
pub fn rejections_counter(at: DateTime<Utc>, reason: &str) -> String {
    format!("{}{reason}", rejections_prefix(at))
}

/// What every rejection counter of the month starts with.
pub fn rejections_prefix(at: DateTime<Utc>) -> String {
    format!("runs_rejected:{}:", at.format("%Y-%m"))
}

/// The most tokens one usage report may carry (a guard against overflow, not a limit).
pub const MAX_REPORT: i64 = 1 << 40;

/// An audit event about a run (`runs.*`), by `actor`.
pub fn run_event(
    tenant: TenantId,
    action: crate::audit::Action,
    run: RunId,
    actor: &str,
    request_id: Option<String>,
    details: Value,
) -> crate::audit::AuditDraft {
    crate::audit::AuditDraft {
        id: crate::ids::EventId::new(),
        tenant_id: tenant,
        actor: actor.to_owned(),
        action: action.text().into_owned(),
        resource: "runs".into(),
        resource_id: Some(run.to_string()),
        outcome: "success".into(),
        request_id,
        ip: None,
        at: crate::time::format(crate::time::now()),
        details,
    }
}

/// A run's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Waiting for a worker.
    Queued,
    /// Held by a worker's lease.
    Leased,
    /// Completed by its worker without an error.
    Succeeded,
    /// Completed by its worker with an error.
    Failed,
    /// Cancelled (by a caller, or by the tenant's suspension or deletion).
    Cancelled,
    /// Its usage went past the tenant's token budget.
    BudgetExceeded,
    /// Its lease was lost `run_max_attempts` times.
    Expired,
}

impl RunStatus {
    /// Every state.
    pub const ALL: [RunStatus; 7] = [
        RunStatus::Queued,
        RunStatus::Leased,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::BudgetExceeded,
        RunStatus::Expired,
    ];

    /// The name the API and the database use.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Leased => "leased",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::BudgetExceeded => "budget_exceeded",
            RunStatus::Expired => "expired",
        }
    }

    /// Parses a name; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether the run still holds tokens and may still change (queued or leased).
    pub fn is_open(self) -> bool {
        matches!(self, RunStatus::Queued | RunStatus::Leased)
    }
}

/// The longest model name accepted.
const MODEL_MAX: usize = 200;

/// The model a new run gets, by the contract's rule: the requested one, else the tenant's
/// `settings.default_model`, else the plan's first model. It must be in the plan's `models`
/// (`None`: any) and in the tenant's `settings.allowed_models` when that is set (an empty
/// list allows none); otherwise `MODEL_NOT_ALLOWED` naming what is allowed.
pub fn choose_model(
    requested: Option<&str>,
    plan_models: Option<&[String]>,
    settings: &Value,
) -> Result<String> {
    if let Some(m) = requested
        && (m.trim().is_empty() || m.chars().count() > MODEL_MAX || m.chars().any(char::is_control))
    {
        return Err(
            FieldError::new("model", format!("1 to {MODEL_MAX} printable characters")).into(),
        );
    }
    let tenant_allows: Option<Vec<String>> = match settings.get("allowed_models") {
        Some(Value::Array(a)) => Some(
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    };
    let default = settings.get("default_model").and_then(Value::as_str);
    let model = requested
        .or(default)
        .or_else(|| plan_models.and_then(|p| p.first()).map(String::as_str));
    let allowed: Option<Vec<String>> = match (plan_models, &tenant_allows) {
        (Some(p), Some(t)) => Some(p.iter().filter(|m| t.contains(m)).cloned().collect()),
        (Some(p), None) => Some(p.to_vec()),
        (None, Some(t)) => Some(t.clone()),
        (None, None) => None,
    };
    let Some(model) = model else {
        return Err(FieldError::new(
            "model",
            "required: neither the tenant's settings nor its plan name a default model",
        )
        .into());
    };
    match &allowed {
        Some(list) if !list.iter().any(|m| m == model) => Err(Error::ModelNotAllowed {
            model: model.to_owned(),
            allowed: list.clone(),
        }),
        _ => Ok(model.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn models(m: &[&str]) -> Vec<String> {
        m.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn the_model_is_the_requested_then_the_tenants_default_then_the_plans_first() {
        let plan = models(&["small", "large"]);
        let none = json!({});
        assert_eq!(
            choose_model(Some("large"), Some(&plan), &none).unwrap(),
            "large"
        );
        let dflt = json!({"default_model": "large"});
        assert_eq!(choose_model(None, Some(&plan), &dflt).unwrap(), "large");
        assert_eq!(choose_model(None, Some(&plan), &none).unwrap(), "small");
        assert_eq!(
            choose_model(Some("anything"), None, &none).unwrap(),
            "anything"
        );
    }

    #[test]
    fn a_model_outside_the_plan_or_the_tenants_list_is_refused_naming_what_is_allowed() {
        let plan = models(&["small", "large"]);
        let e = choose_model(Some("huge"), Some(&plan), &json!({})).unwrap_err();
        assert!(
            matches!(&e, Error::ModelNotAllowed { model, allowed } if model == "huge" && allowed == &plan)
        );
        let only_small = json!({"allowed_models": ["small", "not-in-plan"]});
        let e = choose_model(Some("large"), Some(&plan), &only_small).unwrap_err();
        assert!(
            matches!(&e, Error::ModelNotAllowed { allowed, .. } if allowed == &models(&["small"]))
        );
        // An empty list allows none, whatever the plan says.
        let empty = json!({"allowed_models": []});
        assert!(matches!(
            choose_model(None, Some(&plan), &empty),
            Err(Error::ModelNotAllowed { .. })
        ));
        assert!(matches!(
            choose_model(Some("x"), None, &empty),
            Err(Error::ModelNotAllowed { .. })
        ));
        // A default the plan does not allow is refused too.
        let bad_default = json!({"default_model": "huge"});
        assert!(choose_model(None, Some(&plan), &bad_default).is_err());
    }

    #[test]
    fn no_model_at_all_and_malformed_names_are_field_errors() {
        assert!(matches!(
            choose_model(None, None, &json!({})),
            Err(Error::Validation(_))
        ));
        for bad in ["", "  ", "a\nb"] {
            assert!(
                matches!(
                    choose_model(Some(bad), None, &json!({})),
                    Err(Error::Validation(_))
                ),
                "{bad:?}"
            );
        }
        assert!(choose_model(Some(&"m".repeat(201)), None, &json!({})).is_err());
    }

    #[test]
    fn states_round_trip_and_only_queued_and_leased_are_open() {
        for s in RunStatus::ALL {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                s.is_open(),
                matches!(s, RunStatus::Queued | RunStatus::Leased)
            );
        }
        assert_eq!(RunStatus::parse("running"), None);
    }

    proptest! {
        /// Whatever the inputs, an accepted model is allowed by the plan and by the tenant.
        #[test]
        fn an_accepted_model_is_always_allowed_by_both(
            requested in proptest::option::of("[a-c]"),
            plan in proptest::option::of(proptest::collection::vec("[a-c]", 0..3)),
            tenant in proptest::option::of(proptest::collection::vec("[a-c]", 0..3)),
            default in proptest::option::of("[a-c]"),
        ) {
            let mut settings = json!({});
            if let Some(t) = &tenant { settings["allowed_models"] = json!(t); }
            if let Some(d) = &default { settings["default_model"] = json!(d); }
            if let Ok(m) = choose_model(requested.as_deref(), plan.as_deref(), &settings) {
                prop_assert!(plan.as_ref().is_none_or(|p| p.contains(&m)));
                prop_assert!(tenant.as_ref().is_none_or(|t| t.contains(&m)));
                if let Some(r) = &requested { prop_assert_eq!(&m, r); }
            }
        }
    }
}
