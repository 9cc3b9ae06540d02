//! The one HTTP error type and its problem+json mapping (RFC 9457).
//!
//! Each variant of the domain error maps to one status and API code. A 500 body is fixed
//! text: the cause is logged inside the request span, never sent. `request_id` is added to
//! every problem body by the request-context middleware (from the [`ProblemBody`] the
//! response carries, never by parsing the body), which also turns errors produced outside
//! the handlers (unknown route, wrong method, body too large, panic) into problem+json.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tenantd_core::Error;

/// The problem+json media type.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    inner: Error,
}

/// A handler result.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// The domain error behind it.
    pub fn domain(&self) -> &Error {
        &self.inner
    }
}

impl From<tenantd_core::FieldError> for ApiError {
    fn from(e: tenantd_core::FieldError) -> Self {
        Error::from(e).into()
    }
}

impl From<Error> for ApiError {
    fn from(inner: Error) -> Self {
        Self { inner }
    }
}

/// A problem's body, carried in the response's extensions so the request-context middleware
/// can add `request_id` without reading the body back.
#[derive(Debug, Clone)]
pub struct ProblemBody(pub Value);

/// Builds a problem body.
pub fn problem(status: StatusCode, code: &str, detail: &str, extras: Value) -> Response {
    let mut body = json!({
        "type": format!("https://tenantd.dev/problems/{}", code.to_ascii_lowercase().replace('_', "-")),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
        "code": code,
    });
    if let (Some(b), Value::Object(x)) = (body.as_object_mut(), extras) {
        b.extend(x);
    }
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    resp.extensions_mut().insert(ProblemBody(body));
    resp
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
        let (status, code, detail, extras) = match self.inner {
            Error::Unauthenticated(why) => (
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                why.to_owned(),
                json!({}),
            ),
            Error::Forbidden(why) => (StatusCode::FORBIDDEN, "FORBIDDEN", why, json!({})),
            Error::TenantMismatch => (
                StatusCode::FORBIDDEN,
                "TENANT_MISMATCH",
                "the request names more than one tenant".to_owned(),
                json!({}),
            ),
            Error::TenantSuspended => (
                StatusCode::FORBIDDEN,
                "TENANT_SUSPENDED",
                "the tenant is suspended".to_owned(),
                json!({}),
            ),
            Error::TenantDeleted => (
                StatusCode::GONE,
                "TENANT_DELETED",
                "the tenant is deleted".to_owned(),
                json!({}),
            ),
            Error::TenantMigrating => {
                retry_after = Some(5);
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "TENANT_MIGRATING",
                    "the tenant is being moved; retry shortly".to_owned(),
                    json!({}),
                )
            }
            Error::NotFound => (
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "no such resource".to_owned(),
                json!({}),
            ),
            Error::Validation(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "VALIDATION_FAILED",
                "the request is not valid".to_owned(),
                json!({ "errors": errors }),
            ),
            Error::Conflict { field, message } => (
                StatusCode::CONFLICT,
                "CONFLICT",
                message.clone(),
                json!({ "errors": [{ "field": field, "message": message }] }),
            ),
            Error::PreconditionFailed => (
                StatusCode::PRECONDITION_FAILED,
                "PRECONDITION_FAILED",
                "If-Match does not match the current ETag".to_owned(),
                json!({}),
            ),
            Error::QuotaExceeded {
                resource,
                current,
                limit,
                requested,
            } => (
                StatusCode::FORBIDDEN,
                "QUOTA_EXCEEDED",
                format!("the plan allows {limit} {resource}"),
                json!({ "resource": resource, "current": current, "limit": limit, "requested": requested }),
            ),
            Error::FeatureNotInPlan { feature, plan } => (
                StatusCode::FORBIDDEN,
                "FEATURE_NOT_IN_PLAN",
                format!("the {plan} plan does not include {feature}"),
                json!({ "feature": feature, "plan": plan }),
            ),
            Error::ModelNotAllowed { model, allowed } => (
                StatusCode::FORBIDDEN,
                "MODEL_NOT_ALLOWED",
                format!("the model {model} is not allowed for this tenant"),
                json!({ "model": model, "allowed": allowed }),
            ),
            Error::BudgetExhausted { tokens_used, limit } => (
                StatusCode::CONFLICT,
                "BUDGET_EXHAUSTED",
                format!(
                    "the run's usage went past the tenant's token budget of {limit}; the run ended budget_exceeded"
                ),
                json!({ "tokens_used": tokens_used, "limit": limit }),
            ),
            Error::LeaseLost => (
                StatusCode::CONFLICT,
                "LEASE_LOST",
                "this lease expired or the run was leased again; stop working on it".to_owned(),
                json!({}),
            ),
            Error::RunCancelled => (
                StatusCode::CONFLICT,
                "RUN_CANCELLED",
                "the run was cancelled; stop working on it".to_owned(),
                json!({}),
            ),
            Error::RateLimited { retry_after: secs } => {
                retry_after = Some(secs);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    "RATE_LIMITED",
                    "rate limit reached; retry later".to_owned(),
                    json!({ "retry_after": secs }),
                )
            }
            Error::Unavailable => {
                retry_after = Some(2);
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "a database this request needs is unavailable; retry shortly".to_owned(),
                    json!({}),
                )
            }
            Error::StorageFull => {
                tracing::error!("a database or the file store is out of disk space");
                retry_after = Some(30);
                (
                    StatusCode::INSUFFICIENT_STORAGE,
                    "INSUFFICIENT_STORAGE",
                    "the server is out of storage space; nothing was written, retry later"
                        .to_owned(),
                    json!({}),
                )
            }
            Error::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "INTERNAL",
                    "internal error".to_owned(),
                    json!({}),
                )
            }
        };
        let mut r = problem(status, code, &detail, extras);
        if let Some(secs) = retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}

/// The problem for a status produced outside the handlers.
pub fn problem_for_status(status: StatusCode) -> Response {
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("NOT_FOUND", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "METHOD_NOT_ALLOWED",
            "this method is not allowed on this route",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "PAYLOAD_TOO_LARGE",
            "the request body is over the configured limit",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ("UNSUPPORTED_MEDIA_TYPE", "unsupported content type")
        }
        StatusCode::BAD_REQUEST => ("VALIDATION_FAILED", "the request is malformed"),
        StatusCode::UNAUTHORIZED => ("UNAUTHENTICATED", "credentials required"),
        StatusCode::REQUEST_TIMEOUT => ("TIMEOUT", "the request took too long"),
        s if s.is_server_error() => ("INTERNAL", "internal error"),
        _ => ("ERROR", "the request failed"),
    };
    let status = if status == StatusCode::BAD_REQUEST {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        status
    };
    let extras = if code == "VALIDATION_FAILED" {
        json!({ "errors": [] })
    } else {
        json!({})
    };
    problem(status, code, detail, extras)
}
