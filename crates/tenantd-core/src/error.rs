use serde::Serialize;

/// A result with the domain error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One invalid input field: what feeds the `errors` list of a 422.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field, as the client named it (`tenant.slug`, `email`, ...).
    pub field: String,
    /// What is wrong with it, for a person.
    pub message: String,
}

impl FieldError {
    /// A new field error.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error under a parent field (`slug` → `tenant.slug`).
    pub fn under(mut self, parent: &str) -> Self {
        self.field = format!("{parent}.{}", self.field);
        self
    }
}

/// The domain error. The server maps each variant to one HTTP status and API code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No credentials, or bad, expired or revoked ones.
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// Authenticated, but not allowed.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// Two sources of tenant context disagree.
    #[error("tenant context mismatch")]
    TenantMismatch,
    /// The tenant is suspended.
    #[error("tenant suspended")]
    TenantSuspended,
    /// The tenant is deleted.
    #[error("tenant deleted")]
    TenantDeleted,
    /// A write while the tenant is being moved.
    #[error("tenant migrating")]
    TenantMigrating,
    /// Missing, or belonging to another tenant.
    #[error("not found")]
    NotFound,
    /// Bad input.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// A uniqueness rule: the field that is taken, and why.
    #[error("conflict on {field}: {message}")]
    Conflict {
        /// The field whose value is taken.
        field: String,
        /// For a person.
        message: String,
    },
    /// `If-Match` does not match.
    #[error("precondition failed")]
    PreconditionFailed,
    /// A quota would be exceeded.
    #[error("quota {resource} exceeded")]
    QuotaExceeded {
        /// The quota's name.
        resource: String,
        /// Current usage.
        current: i64,
        /// The plan's limit.
        limit: i64,
        /// How much the refused change asked for.
        requested: i64,
    },
    /// The plan lacks a feature.
    #[error("feature {feature} not in plan {plan}")]
    FeatureNotInPlan {
        /// The feature.
        feature: String,
        /// The tenant's plan.
        plan: String,
    },
    /// A run's model is not one the plan and the tenant allow.
    #[error("model {model} not allowed")]
    ModelNotAllowed {
        /// The model asked for (or defaulted to).
        model: String,
        /// The models that are allowed (empty: none is).
        allowed: Vec<String>,
    },
    /// A run's usage went past the tenant's token budget (the run ended `budget_exceeded`).
    #[error("token budget exhausted")]
    BudgetExhausted {
        /// The run's tokens used, counted with the refused report.
        tokens_used: i64,
        /// The month's limit.
        limit: i64,
    },
    /// A worker call with a lease that expired or was taken over.
    #[error("lease lost")]
    LeaseLost,
    /// A worker call about a run that was cancelled.
    #[error("run cancelled")]
    RunCancelled,
    /// Too many requests: retry after this many seconds.
    #[error("rate limited")]
    RateLimited {
        /// Seconds until a retry may pass.
        retry_after: u64,
    },
    /// A database the request needs is unreachable.
    #[error("unavailable")]
    Unavailable,
    /// The disk under a database or the file store is full: nothing was written; writes work
    /// again as soon as space is freed.
    #[error("storage full")]
    StorageFull,
    /// Anything else: logged, never shown.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// A 422 with one field error.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Validation(vec![FieldError::new(field, message)])
    }

    /// A 409 on one field.
    pub fn conflict(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Conflict {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<FieldError> for Error {
    fn from(e: FieldError) -> Self {
        Error::Validation(vec![e])
    }
}

/// Collects field errors from several parses, so a 422 lists them all.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    /// Keeps the value, or records its error.
    pub fn check<T>(&mut self, r: std::result::Result<T, FieldError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    /// Records an error.
    pub fn push(&mut self, e: FieldError) {
        self.errors.push(e);
    }

    /// `Ok` when nothing was recorded.
    pub fn finish(self) -> Result<()> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.errors))
        }
    }
}
