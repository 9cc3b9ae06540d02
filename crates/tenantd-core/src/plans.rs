use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The plans shipped with tenantd (`plans.yaml` at the repository root).
pub const DEFAULT_PLANS_YAML: &str = include_str!("../../../plans.yaml");

/// Quota names that every plan knows about, besides one per resource kind.
pub const CORE_QUOTAS: &[&str] = &[
    "users",
    "projects",
    "tokens",
    "storage_bytes",
    "concurrent_runs",
    "queued_runs",
];

/// Rate-limited actions.
pub const RATE_ACTIONS: &[&str] = &["api_requests", "agent_spawns"];

/// How a plan's tenants are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// In a pooled cell, beside other tenants (row-level isolation).
    #[default]
    Pooled,
    /// In a dedicated cell of its own.
    Dedicated,
}

/// One plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The plan's id (its key in the file).
    #[serde(skip_deserializing)]
    pub id: crate::tenant::PlanId,
    /// Display name.
    pub name: String,
    /// Whether self-serve signup may pick it.
    #[serde(default)]
    pub self_serve: bool,
    /// `pooled` (the default) or `dedicated`.
    #[serde(default)]
    pub isolation: Isolation,
    /// Quota limits; `~` (null) or absent is unlimited.
    #[serde(default)]
    pub quotas: BTreeMap<String, Option<i64>>,
    /// Feature flags.
    #[serde(default)]
    pub features: BTreeSet<String>,
    /// Requests per minute for each rate-limited action.
    #[serde(default)]
    pub rate_limits: BTreeMap<String, u32>,
    /// Models agent runs may use; absent = any.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Tokens held for a run that gives no `max_tokens` (absent: [`DEFAULT_RUN_TOKEN_HOLD`]).
    #[serde(default)]
    pub run_token_hold: Option<i64>,
}

/// The token hold of a run without `max_tokens`, on a plan that names none.
pub const DEFAULT_RUN_TOKEN_HOLD: i64 = 4_000;

impl Plan {
    /// The limit of a quota, `None` when unlimited.
    pub fn limit(&self, quota: &str) -> Option<i64> {
        self.quotas.get(quota).copied().flatten()
    }

    /// Whether the plan has a feature.
    pub fn has_feature(&self, feature: &str) -> bool {
        self.features.contains(feature)
    }

    /// Fails with `FEATURE_NOT_IN_PLAN` unless the plan has `feature`.
    pub fn require_feature(&self, feature: &str) -> Result<()> {
        if self.has_feature(feature) {
            Ok(())
        } else {
            Err(Error::FeatureNotInPlan {
                feature: feature.to_owned(),
                plan: self.id.to_string(),
            })
        }
    }

    /// Tokens held for a run that gives no `max_tokens`.
    pub fn run_token_hold(&self) -> i64 {
        self.run_token_hold.unwrap_or(DEFAULT_RUN_TOKEN_HOLD)
    }

    /// Requests per minute for an action, `None` when not limited.
    pub fn rate_per_minute(&self, action: &str) -> Option<u32> {
        self.rate_limits.get(action).copied()
    }
}

/// Checks that `requested` more of a quota fits: the pure arithmetic behind every counter.
pub fn check_quota(resource: &str, current: i64, limit: Option<i64>, requested: i64) -> Result<()> {
    match limit {
        Some(limit) if current.saturating_add(requested) > limit => Err(Error::QuotaExceeded {
            resource: resource.to_owned(),
            current,
            limit,
            requested,
        }),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlansFile {
    plans: BTreeMap<String, Plan>,
}

/// The set of plans tenantd serves. Plans are shared (`Arc`), so a request can hold its
/// tenant's plan without copying it.
#[derive(Debug, Clone)]
pub struct Plans {
    plans: BTreeMap<String, std::sync::Arc<Plan>>,
}

impl Plans {
    /// Parses a plans file.
    pub fn from_yaml(text: &str) -> std::result::Result<Self, String> {
        let file: PlansFile = yaml_serde::from_str(text).map_err(|e| e.to_string())?;
        let mut plans = BTreeMap::new();
        for (id, mut plan) in file.plans {
            plan.id = id.as_str().into();
            for (q, v) in &plan.quotas {
                if v.is_some_and(|v| v < 0) {
                    return Err(format!("plan {id}: quota {q} is negative"));
                }
            }
            if plan.run_token_hold.is_some_and(|h| h <= 0) {
                return Err(format!("plan {id}: run_token_hold must be positive"));
            }
            for a in plan.rate_limits.keys() {
                if !RATE_ACTIONS.contains(&a.as_str()) {
                    return Err(format!("plan {id}: unknown rate-limit action {a}"));
                }
            }
            plans.insert(id, std::sync::Arc::new(plan));
        }
        if !plans.contains_key("free") {
            return Err("the plans file must define a `free` plan".to_owned());
        }
        Ok(Self { plans })
    }

    /// The plans shipped with tenantd.
    pub fn builtin() -> Self {
        Self::from_yaml(DEFAULT_PLANS_YAML).unwrap_or_else(|e| panic!("shipped plans.yaml: {e}"))
    }

    /// A plan by id.
    pub fn get(&self, id: &str) -> Option<&std::sync::Arc<Plan>> {
        self.plans.get(id)
    }

    /// A plan by id, or a 422 naming `field`.
    pub fn parse(&self, id: &str, field: &str) -> Result<&Plan> {
        self.get(id).map(|p| p.as_ref()).ok_or_else(|| {
            let names: Vec<&str> = self.plans.keys().map(String::as_str).collect();
            Error::invalid(field, format!("unknown plan; one of: {}", names.join(", ")))
        })
    }

    /// Every plan.
    pub fn all(&self) -> impl Iterator<Item = &Plan> {
        self.plans.values().map(|p| p.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn shipped_plans_carry_the_contract_numbers() {
        let p = Plans::builtin();
        let free = p.get("free").unwrap();
        assert_eq!(free.limit("users"), Some(1));
        assert_eq!(free.limit("projects"), Some(3));
        assert_eq!(free.limit("tokens"), Some(100_000));
        assert_eq!(free.limit("storage_bytes"), Some(1 << 30));
        assert_eq!(free.limit("concurrent_runs"), Some(2));
        assert_eq!(free.limit("queued_runs"), Some(20));
        assert_eq!(free.run_token_hold(), 4_000);
        assert_eq!(free.rate_per_minute("api_requests"), Some(100));
        assert_eq!(free.rate_per_minute("agent_spawns"), Some(10));
        let ent = p.get("enterprise").unwrap();
        assert_eq!(ent.limit("users"), None);
        assert_eq!(ent.limit("concurrent_runs"), Some(50));
        assert_eq!(ent.limit("queued_runs"), Some(5_000));
        assert_eq!(ent.run_token_hold(), 32_000);
        let (st, pro) = (p.get("starter").unwrap(), p.get("professional").unwrap());
        assert_eq!(
            (st.limit("queued_runs"), st.run_token_hold()),
            (Some(100), 8_000)
        );
        assert_eq!(
            (pro.limit("queued_runs"), pro.run_token_hold()),
            (Some(500), 16_000)
        );
        assert_eq!(ent.isolation, Isolation::Dedicated);
        assert!(ent.has_feature("audit_logs") && ent.has_feature("sso"));
        assert!(
            p.get("professional")
                .unwrap()
                .has_feature("selective_sharing")
        );
        assert!(!free.has_feature("audit_logs"));
    }

    proptest! {
        #[test]
        fn quota_check_admits_exactly_up_to_the_limit(current in 0i64..1000, limit in 0i64..1000, req in 1i64..10) {
            let ok = check_quota("projects", current, Some(limit), req).is_ok();
            prop_assert_eq!(ok, current + req <= limit);
            prop_assert!(check_quota("projects", current, None, req).is_ok());
        }
    }
}
