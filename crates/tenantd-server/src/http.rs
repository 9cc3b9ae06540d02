//! HTTP plumbing: the request-context middleware (request id, span, response headers,
//! problem+json for every error), and the JSON/query extractors whose rejections are
//! problem+json too.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use tenantd_core::Error;
use tenantd_core::ids::TenantId;
use tracing::Instrument;

use crate::error::{ApiError, PROBLEM_JSON, ProblemBody, problem, problem_for_status};
pub use tenantd_app::context::RequestMeta;
use tenantd_app::limits::RateInfo;

/// What the extractors learn and the middleware writes into the response headers.
#[derive(Debug, Default)]
pub struct ResponseFacts {
    /// The tenant the request was bound to.
    pub tenant_id: Option<TenantId>,
    /// The rate-limit state after this request.
    pub rate: Option<RateInfo>,
}

/// Shared slot for [`ResponseFacts`].
pub type FactsSlot = Arc<Mutex<ResponseFacts>>;

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// The outermost middleware: request id and span, then, on the way out, `X-Request-ID`,
/// `X-Tenant-ID`, the `RateLimit-*` headers, and problem+json with `request_id` for every
/// error response.
pub async fn request_context(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let rid = request_id(req.headers());
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let facts: FactsSlot = Arc::default();
    req.extensions_mut().insert(RequestMeta {
        request_id: rid.clone(),
        ip,
    });
    req.extensions_mut().insert(facts.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", %method, %path, request_id = %rid, tenant_id = tracing::field::Empty);
    let mut resp = next.run(req).instrument(span.clone()).await;

    let status = resp.status();
    if status.is_client_error() || status.is_server_error() {
        resp = with_request_id(resp, &rid).await;
    }
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&rid) {
        h.insert("x-request-id", v);
    }
    let facts = facts
        .lock()
        .map(|f| (f.tenant_id, f.rate))
        .unwrap_or((None, None));
    if let Some(t) = facts.0
        && let Ok(v) = HeaderValue::from_str(&t.to_string())
    {
        h.insert("x-tenant-id", v);
    }
    if let Some(r) = facts.1 {
        h.insert("ratelimit-limit", HeaderValue::from(r.limit));
        h.insert("ratelimit-remaining", HeaderValue::from(r.remaining));
        h.insert("ratelimit-reset", HeaderValue::from(r.reset));
    }
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            latency_ms = started.elapsed().as_millis() as u64,
            "request done"
        );
    });
    resp
}

/// Makes an error response problem+json carrying `request_id`: a problem made by
/// [`crate::error::problem`] carries its body in the response's extensions; any other error
/// response (a layer's 408 or 413, a panic's 500, a rejection from axum) gets the problem for
/// its status. The original's other headers (`Retry-After`, `Allow`, …) are kept.
async fn with_request_id(mut resp: Response, rid: &str) -> Response {
    let body = match resp.extensions_mut().remove::<ProblemBody>() {
        Some(ProblemBody(v)) => v,
        None => problem_for_status(resp.status())
            .extensions_mut()
            .remove::<ProblemBody>()
            .map(|p| p.0)
            .unwrap_or_else(|| serde_json::json!({})),
    };
    let mut value = body;
    if let Some(o) = value.as_object_mut() {
        o.insert("request_id".into(), rid.into());
    }
    let status = value
        .get("status")
        .and_then(|s| s.as_u64())
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(resp.status());
    let (parts, _) = resp.into_parts();
    let mut fresh = (status, value.to_string()).into_response();
    fresh
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            fresh.headers_mut().insert(k.clone(), v.clone());
        }
    }
    fresh
}

/// A JSON body. A body must come as `application/json` (parameters allowed) or
/// `application/*+json`, else it is a 415 — which also keeps a cross-site form post (which can
/// only send `text/plain`, form or multipart bodies) from reaching a handler. A body that does
/// not parse, or lacks a field, is a 422 naming the field; one over the limit is a 413. No
/// body at all reads as `{}`.
pub struct ApiJson<T>(pub T);

/// Whether a `Content-Type` names JSON: `application/json` or `application/<x>+json`, with
/// any parameters.
pub fn is_json_content_type(value: Option<&HeaderValue>) -> bool {
    let Some(v) = value.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = v
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some(("application", sub)) => {
            sub == "json" || (sub.ends_with("+json") && sub.len() > "+json".len())
        }
        _ => false,
    }
}

impl<T: DeserializeOwned> FromRequest<crate::AppState> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &crate::AppState) -> Result<Self, Self::Rejection> {
        // A declared length over the limit is refused before a byte is read (a client that
        // announces 2 MB and sends nothing must not hold the connection until the timeout).
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > state.config.body_limit_bytes as u64) {
            return Err(problem_for_status(StatusCode::PAYLOAD_TOO_LARGE));
        }
        let json_type = is_json_content_type(req.headers().get(header::CONTENT_TYPE));
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                problem_for_status(status)
            } else {
                ApiError::from(Error::invalid("body", "unreadable body")).into_response()
            }
        })?;
        let bytes = if bytes.is_empty() {
            Bytes::from_static(b"{}")
        } else if !json_type {
            return Err(problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "send the body as application/json",
                serde_json::json!({}),
            ));
        } else {
            bytes
        };
        // Every request body of the API is a JSON object: serde would also read a struct from
        // an array of its fields (`[null, null]`), which the schema does not allow.
        if let Some(first) = bytes.iter().find(|b| !b.is_ascii_whitespace())
            && *first == b'['
        {
            return Err(
                ApiError::from(Error::invalid("body", "must be a JSON object")).into_response(),
            );
        }
        serde_json::from_slice(&bytes)
            .map(ApiJson)
            .map_err(|e| ApiError::from(json_error(&e)).into_response())
    }
}

/// Integers in request bodies as JSON Schema has them: `20` and `20.0` are the same integer
/// (a fraction, or a value out of range, is refused). For `#[serde(deserialize_with)]`.
pub mod whole {
    use serde::{Deserialize, Deserializer, de::Error as _};

    fn of<'de, D: Deserializer<'de>>(n: serde_json::Number) -> Result<i128, D::Error> {
        if let Some(i) = n.as_i64() {
            return Ok(i128::from(i));
        }
        if let Some(u) = n.as_u64() {
            return Ok(i128::from(u));
        }
        match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Ok(f as i128),
            _ => Err(D::Error::custom("expected a whole number")),
        }
    }

    /// An `i64`.
    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        i64::try_from(of::<D>(n)?).map_err(|_| D::Error::custom("out of range"))
    }

    /// An optional `i64` (with `#[serde(default)]`).
    pub fn opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match Option::<serde_json::Number>::deserialize(d)? {
            None => Ok(None),
            Some(n) => i64::try_from(of::<D>(n)?)
                .map(Some)
                .map_err(|_| D::Error::custom("out of range")),
        }
    }

    /// An optional `u64` (with `#[serde(default)]`).
    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<serde_json::Number>::deserialize(d)? {
            None => Ok(None),
            Some(n) => u64::try_from(of::<D>(n)?)
                .map(Some)
                .map_err(|_| D::Error::custom("out of range")),
        }
    }
}

fn json_error(e: &serde_json::Error) -> Error {
    let msg = e.to_string();
    if let Some(rest) = msg.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or("body");
        return Error::invalid(field, "is required");
    }
    let detail = match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not valid JSON",
        _ => msg.split(" at line").next().unwrap_or("invalid value"),
    };
    Error::invalid("body", detail)
}

/// Query parameters; a rejection is a 422.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| ApiQuery(q.0))
            .map_err(|e| {
                Error::invalid(
                    "query",
                    e.body_text()
                        .trim_start_matches("Failed to deserialize query string: "),
                )
                .into()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_application_json_or_a_json_suffix_with_any_parameters() {
        let ok = |v: &str| is_json_content_type(Some(&HeaderValue::from_str(v).unwrap()));
        assert!(ok("application/json"));
        assert!(ok("Application/JSON; charset=utf-8"));
        assert!(ok("application/merge-patch+json"));
        assert!(ok("application/problem+json"));
        assert!(!ok("text/plain"));
        assert!(!ok("application/x-www-form-urlencoded"));
        assert!(!ok("multipart/form-data; boundary=x"));
        assert!(!ok("application/+json"));
        assert!(!ok("text/json"));
        assert!(!ok("application/jsonx"));
        assert!(!is_json_content_type(None));
    }
}
