//! Finishing the OpenAPI document: what every operation shares, written once.
//!
//! The handlers' `#[utoipa::path]` attributes say what is particular to each operation (its
//! body, its success responses, the errors only it has). What follows from the request path
//! for every operation of a kind is added here, so no operation can forget it:
//!
//! - every path parameter is declared (`{kind}` as the enum of resource kinds, ids as UUIDs,
//!   a tenant as id or slug);
//! - every error status the request path can produce is documented with the `Problem`
//!   schema (application/problem+json): 401/403/410/429 where credentials are needed, 413, 415
//!   and 422 where a JSON body is read, 422 for parameters, 404 for a path that names
//!   something, 409/507 for writes, 503 where a database is needed;
//! - the plans the server was started with are the enum of every `plan` field (the self-serve
//!   ones for signup).
//!
//! `tests/api/errors.rs` checks the result against real responses, and CI runs schemathesis
//! against it (`scripts/fuzz-api.py`).

use serde_json::{Map, Value, json};
use tenantd_core::access::Role;
use tenantd_core::resource::{ResourceKind, SharedFilter};
use tenantd_core::tenant::{RESERVED_SLUGS, TenantType};

/// What the server's parsers accept for a field, as JSON Schema. Each one mirrors a parser in
/// `tenantd-core` (named in its comment); a change there changes this.
#[derive(Clone, Copy)]
enum Rule {
    /// `DisplayName::parse`: trimmed, 1 to 200 characters, no control characters.
    Name,
    /// `TenantSlug::parse`: the slug pattern, not reserved, not in the form of a UUID.
    Slug,
    /// `Email::parse`: one `@`, a local part of 1 to 64 and a dotted domain, no whitespace or
    /// control characters (the server counts UTF-8 bytes where this counts characters: the
    /// same for ASCII addresses).
    Email,
    /// `Password::parse`: 8 to 1024 characters.
    Password,
    /// `Role::parse`: one of the roles.
    Role,
    /// A member's or an invitation's role: any but `worker` (a role for API keys only).
    MemberRole,
    /// `TenantType::parse`, less `platform` (there is one platform tenant).
    CreatableType,
    /// A JSON object of at most 64 KiB (settings, branding).
    Object,
    /// An RFC 3339 time.
    DateTime,
}

/// Request fields and the rule each one follows, by schema and property.
const RULES: &[(&str, &str, Rule)] = &[
    ("SignupRequest", "email", Rule::Email),
    ("SignupRequest", "password", Rule::Password),
    ("SignupRequest", "name", Rule::Name),
    ("SignupTenant", "name", Rule::Name),
    ("SignupTenant", "slug", Rule::Slug),
    ("CreateTenantRequest", "name", Rule::Name),
    ("CreateTenantRequest", "slug", Rule::Slug),
    ("CreateTenantRequest", "owner_email", Rule::Email),
    ("CreateTenantRequest", "type", Rule::CreatableType),
    ("CreateTenantRequest", "settings", Rule::Object),
    ("PatchTenantRequest", "name", Rule::Name),
    ("PatchTenantRequest", "settings", Rule::Object),
    ("PatchTenantRequest", "branding", Rule::Object),
    ("InviteRequest", "email", Rule::Email),
    ("InviteRequest", "role", Rule::MemberRole),
    ("RoleRequest", "role", Rule::MemberRole),
    ("CreateKeyRequest", "name", Rule::Name),
    ("CreateKeyRequest", "role", Rule::Role),
    ("CreateKeyRequest", "expires_at", Rule::DateTime),
    ("AcceptRequest", "name", Rule::Name),
    ("AcceptRequest", "password", Rule::Password),
    ("CreateResourceRequest", "name", Rule::Name),
    ("PatchResourceRequest", "name", Rule::Name),
    ("PasswordChangeRequest", "new_password", Rule::Password),
    ("SetPasswordRequest", "password", Rule::Password),
];

/// Characters the name rule refuses anywhere (Unicode `Cc`, as `char::is_control`).
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";

fn rule_schema(rule: Rule) -> Map<String, Value> {
    let v = match rule {
        Rule::Name => json!({
            "type": "string",
            "pattern": format!(r"^\s*[^\s{CONTROL}](?:[^{CONTROL}]{{0,198}}[^\s{CONTROL}])?\s*$"),
            "description": "1 to 200 characters once trimmed; no control characters."
        }),
        Rule::Slug => {
            let uuid_forms =
                r"^[0-9a-f]{32}$|^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$";
            json!({
                "type": "string",
                "pattern": "^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$",
                "not": {"anyOf": [{"enum": RESERVED_SLUGS}, {"pattern": uuid_forms}]},
                "description": "3 to 63 lowercase letters, digits and inner hyphens; not reserved, not in the form of a tenant id."
            })
        }
        Rule::Email => {
            let c = format!(r"[^\s@{CONTROL}]");
            json!({
                "type": "string",
                "pattern": format!(r"^\s*{c}{{1,64}}@(?!\.)(?!.*\.\.)(?=[^@]*\.){c}+(?<!\.)\s*$"),
                "description": "An email address (compared in lower case)."
            })
        }
        Rule::Password => json!({"type": "string", "minLength": 8, "maxLength": 1024}),
        Rule::Role => {
            json!({"type": "string", "enum": Role::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>()})
        }
        Rule::MemberRole => json!({
            "type": "string",
            "enum": Role::ALL
                .iter()
                .filter(|r| **r != Role::Worker)
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
        }),
        Rule::CreatableType => json!({
            "type": "string",
            "enum": TenantType::ALL
                .iter()
                .filter(|t| **t != TenantType::Platform)
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
        }),
        Rule::Object => {
            json!({"type": "object", "description": "A JSON object of at most 64 KiB."})
        }
        Rule::DateTime => date_time(),
    };
    match v {
        Value::Object(o) => o,
        _ => Map::new(),
    }
}

/// An RFC 3339 time, as `chrono`'s parser takes it. A pattern, not `format: date-time`: that
/// format is the stricter ABNF (no space for the T), and the schema must equal the server.
fn date_time() -> Value {
    json!({
        "type": "string",
        "description": "RFC 3339 (a space may stand for the T, as RFC 3339 allows).",
        "pattern": r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|1\d|2[0-8])[Tt ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d{1,9})?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)$"
    })
}

/// Applies `rule` to a property, keeping its description and whether it may be `null`.
fn apply_rule(prop: &mut Value, rule: Rule) {
    let nullable = match prop.get("type") {
        Some(Value::Array(types)) => types.iter().any(|t| t == "null"),
        _ => prop
            .get("oneOf")
            .and_then(|o| o.as_array())
            .is_some_and(|o| o.iter().any(|s| s.get("type") == Some(&json!("null")))),
    };
    let description = prop.get("description").cloned();
    let mut schema = rule_schema(rule);
    if nullable {
        if let Some(t) = schema.get("type").cloned() {
            schema.insert("type".into(), json!([t, "null"]));
        }
        if let Some(Value::Array(e)) = schema.get_mut("enum") {
            e.push(Value::Null);
        }
    }
    if let Some(d) = description {
        schema.insert("description".into(), d);
    }
    *prop = Value::Object(schema);
}

/// The problem+json schema every error response uses.
fn problem_schema() -> Value {
    json!({
        "type": "object",
        "description": "RFC 9457 problem details, with tenantd's stable `code`.",
        "required": ["type", "title", "status", "detail", "code"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string"},
            "code": {"type": "string", "description": "Stable and machine-readable, e.g. VALIDATION_FAILED, QUOTA_EXCEEDED."},
            "request_id": {"type": "string"},
            "errors": {
                "type": "array",
                "description": "With VALIDATION_FAILED and CONFLICT: what is wrong, per field.",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}}
                }
            },
            "resource": {"type": "string"},
            "current": {"type": "integer"},
            "limit": {"type": "integer"},
            "requested": {"type": "integer"},
            "retry_after": {"type": "integer"},
            "feature": {"type": "string"},
            "plan": {"type": "string"}
        },
        "additionalProperties": true
    })
}

fn describe(status: u16) -> &'static str {
    match status {
        400 => "malformed request",
        401 => "UNAUTHENTICATED: no, bad, expired or revoked credentials",
        403 => {
            "FORBIDDEN, TENANT_MISMATCH, TENANT_SUSPENDED, QUOTA_EXCEEDED or FEATURE_NOT_IN_PLAN"
        }
        404 => "NOT_FOUND: missing, or another tenant's",
        405 => "METHOD_NOT_ALLOWED",
        409 => "CONFLICT: a name, slug or email taken, or a state that forbids it",
        410 => "TENANT_DELETED",
        412 => "PRECONDITION_FAILED: If-Match does not match the current ETag",
        413 => "PAYLOAD_TOO_LARGE",
        415 => "UNSUPPORTED_MEDIA_TYPE: the body is not application/json",
        422 => "VALIDATION_FAILED: bad input, per field",
        429 => "RATE_LIMITED (Retry-After)",
        503 => "UNAVAILABLE: a database this request needs does not answer (Retry-After)",
        507 => "INSUFFICIENT_STORAGE: out of disk space, nothing written (Retry-After)",
        _ => "error",
    }
}

fn problem_response(status: u16) -> Value {
    json!({
        "description": describe(status),
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

/// The schema of a path parameter, by its name and path.
fn path_param_schema(path: &str, name: &str) -> Value {
    match name {
        "kind" => json!({
            "type": "string",
            "enum": ResourceKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>()
        }),
        "id" if path.starts_with("/v1/tenants/") => json!({
            "type": "string",
            "minLength": 1,
            "description": "the tenant's id or slug"
        }),
        _ => json!({"type": "string", "format": "uuid"}),
    }
}

fn path_params(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_owned)
        .collect()
}

/// Endpoints that never touch a database.
fn needs_no_database(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/metrics" | "/.well-known/jwks.json" | "/.well-known/openid-configuration"
    )
}

/// Sign-in endpoints: throttled per address and account even without credentials.
fn is_sign_in(path: &str) -> bool {
    matches!(
        path,
        "/v1/auth/signup"
            | "/v1/auth/login"
            | "/v1/auth/refresh"
            | "/v1/invitations/accept"
            | "/v1/auth/password"
            | "/v1/auth/set-password"
    )
}

fn finish_operation(
    path: &str,
    method: &str,
    op: &mut Map<String, Value>,
    schemas: &Map<String, Value>,
) {
    // Path parameters: declared, with their schema.
    let params = op
        .entry("parameters")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .map(std::mem::take)
        .unwrap_or_default();
    let mut params: Vec<Value> = params;
    for name in path_params(path) {
        let schema = path_param_schema(path, &name);
        match params
            .iter_mut()
            .find(|p| p["in"] == "path" && p["name"] == name.as_str())
        {
            Some(p) => {
                p["required"] = json!(true);
                p["schema"] = schema;
            }
            None => {
                params.push(json!({"name": name, "in": "path", "required": true, "schema": schema}))
            }
        }
    }
    for p in params.iter_mut().filter(|p| p["in"] == "query") {
        let name = p["name"].as_str().unwrap_or_default().to_owned();
        if let Some(schema) = query_param_schema(path, &name) {
            p["schema"] = schema;
        } else if name == "name" && path == "/v1/files" {
            let mut prop = p["schema"].clone();
            apply_rule(&mut prop, Rule::Name);
            p["schema"] = prop;
        }
    }
    let has_params = !params.is_empty();
    let has_path_params = params.iter().any(|p| p["in"] == "path");
    if params.is_empty() {
        op.remove("parameters");
    } else {
        op.insert("parameters".into(), Value::Array(params));
    }

    let has_body = op.contains_key("requestBody");
    // No body reads as `{}`: a body whose fields are all optional may be left out.
    if let Some(body) = op.get_mut("requestBody")
        && let Some(reference) = body
            .pointer("/content/application~1json/schema/$ref")
            .and_then(|r| r.as_str())
            .map(str::to_owned)
        && let Some(schema) = schemas.get(reference.trim_start_matches("#/components/schemas/"))
        && schema
            .get("required")
            .and_then(|r| r.as_array())
            .is_none_or(|r| r.is_empty())
    {
        body["required"] = json!(false);
    }
    // A raw upload may be empty (a file of 0 bytes).
    if let Some(body) = op.get_mut("requestBody")
        && body
            .get("content")
            .and_then(|c| c.as_object())
            .is_some_and(|c| !c.keys().any(|k| k.contains("json")))
    {
        body["required"] = json!(false);
    }
    let json_body = op
        .get("requestBody")
        .and_then(|b| b.get("content"))
        .and_then(|c| c.as_object())
        .is_some_and(|c| c.keys().any(|k| k.contains("json")));
    let secured = op
        .get("security")
        .and_then(|s| s.as_array())
        .is_some_and(|s| !s.is_empty());
    let write = method != "get";
    let v1 = path.starts_with("/v1/");

    let mut statuses: Vec<u16> = Vec::new();
    if secured {
        statuses.extend([401, 403, 410, 429]);
    }
    if is_sign_in(path) {
        // Wrong credentials (401), a suspended (403) or deleted (410) tenant, throttled (429).
        statuses.extend([401, 403, 410, 429]);
    }
    if has_body {
        statuses.push(413);
    }
    if json_body {
        statuses.extend([415, 422]);
    }
    if has_params {
        statuses.push(422);
    }
    if has_path_params {
        statuses.push(404);
    }
    if v1 && write {
        statuses.extend([409, 507]);
    }
    if !needs_no_database(path) {
        statuses.push(503);
    }
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else {
        return;
    };
    for s in statuses {
        responses
            .entry(s.to_string())
            .or_insert_with(|| problem_response(s));
    }
    // Every error response documented by hand gets the problem schema too.
    for (code, r) in responses.iter_mut() {
        let Ok(status) = code.parse::<u16>() else {
            continue;
        };
        if status < 400 {
            continue;
        }
        let has_content = r.get("content").is_some_and(|c| {
            c.as_object()
                .is_some_and(|c| c.contains_key("application/problem+json"))
        });
        if !has_content && let Some(obj) = r.as_object_mut() {
            obj.insert(
                "content".into(),
                problem_response(status)["content"].clone(),
            );
        }
    }
}

fn plan_is_string(p: &Map<String, Value>) -> bool {
    match p.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    }
}

/// `words` as an enum, with `null` when the property may be null.
fn with_null(p: &Map<String, Value>, words: &[String]) -> Value {
    let mut e: Vec<Value> = words.iter().map(|w| json!(w)).collect();
    if matches!(p.get("type"), Some(Value::Array(ts)) if ts.iter().any(|t| t == "null")) {
        e.push(Value::Null);
    }
    Value::Array(e)
}

/// `SharingRequest`, per mode, as `parse_sharing` takes it: `private` lists no tenants,
/// `global` ignores them, `selective` names 1 to 100.
fn sharing_schema() -> Value {
    let ids = |min: u32| json!({"type": "array", "minItems": min, "maxItems": 100, "items": {"type": "string", "format": "uuid"}});
    json!({
        "description": "Who else sees the item: `private` (the default), `global` (the platform tenant only) or `selective` (plans with selective_sharing; tenants of the same cell).",
        "oneOf": [
            {"type": "object", "required": ["mode"], "properties": {
                "mode": {"type": "string", "enum": ["private"]},
                "tenants": {"type": ["array", "null"], "maxItems": 0, "items": {"type": "string"}}
            }},
            {"type": "object", "required": ["mode"], "properties": {
                "mode": {"type": "string", "enum": ["global"]},
                "tenants": {"type": ["array", "null"], "items": {"type": "string"}}
            }},
            {"type": "object", "required": ["mode", "tenants"], "properties": {
                "mode": {"type": "string", "enum": ["selective"]},
                "tenants": ids(1)
            }}
        ]
    })
}

/// Sets the enum of every `plan` property and parameter to the configured plans.
fn plan_enums(v: &mut Value, plans: &[String]) {
    match v {
        Value::Object(o) => {
            if let Some(Value::Object(props)) = o.get_mut("properties")
                && let Some(Value::Object(plan)) = props.get_mut("plan")
                && plan_is_string(plan)
            {
                plan.insert("enum".into(), with_null(plan, plans));
            }
            for (_, child) in o.iter_mut() {
                plan_enums(child, plans);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|c| plan_enums(c, plans)),
        _ => {}
    }
}

/// What the document depends on in the configuration.
pub struct Deployment<'a> {
    /// Every configured plan.
    pub plans: &'a [String],
    /// The plans a signup may pick.
    pub self_serve: &'a [String],
    /// The regions some cell serves (a tenant can be placed only there).
    pub regions: &'a [String],
    /// The configured cells (a tenant can be moved only to one of them).
    pub cells: &'a [String],
}

/// Query parameters by name (and path, where one differs), with what the server accepts.
fn query_param_schema(path: &str, name: &str) -> Option<Value> {
    Some(match (path, name) {
        ("/v1/events", "limit") => json!({"type": "integer", "minimum": 1, "maximum": 1000}),
        ("/v1/events", "after") => json!({"type": "integer", "format": "int64", "minimum": 0}),
        ("/v1/events", "types") => {
            let one = format!(
                "(?:{})",
                tenantd_core::events::EVENT_TYPES
                    .iter()
                    .map(|t| t.replace('.', r"\."))
                    .collect::<Vec<_>>()
                    .join("|")
            );
            json!({"type": "string", "pattern": format!("^{one}(?:,{one})*$"),
                   "description": "Comma-separated event types."})
        }
        (_, name) => return generic_query_param_schema(name),
    })
}

fn generic_query_param_schema(name: &str) -> Option<Value> {
    Some(match name {
        "limit" => json!({"type": "integer", "minimum": 1, "maximum": 200}),
        "cursor" => {
            json!({"type": "string", "maxLength": 200, "description": "Opaque: the next_cursor of the previous page."})
        }
        "shared" => {
            json!({"type": "string", "enum": SharedFilter::ALL.iter().map(|f| f.as_str()).collect::<Vec<_>>()})
        }
        "format" => json!({"type": "string", "enum": ["ndjson", "csv"]}),
        "from" | "to" => date_time(),
        _ => return None,
    })
}

/// The finished document for a deployment.
pub fn finish(doc: &utoipa::openapi::OpenApi, dep: &Deployment<'_>) -> Value {
    let (plans, self_serve) = (dep.plans, dep.self_serve);
    let mut v = serde_json::to_value(doc).unwrap_or_else(|_| json!({}));
    let schemas = v
        .pointer("/components/schemas")
        .and_then(|s| s.as_object())
        .cloned()
        .unwrap_or_default();
    if let Some(paths) = v.get_mut("paths").and_then(|p| p.as_object_mut()) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for method in ["get", "put", "post", "delete", "patch"] {
                if let Some(Value::Object(op)) = item.get_mut(method) {
                    finish_operation(path, method, op, &schemas);
                }
            }
        }
    }
    if let Some(components) = v.get_mut("components").and_then(|c| c.as_object_mut()) {
        let schemas = components.entry("schemas").or_insert_with(|| json!({}));
        if let Some(s) = schemas.as_object_mut() {
            s.insert("Problem".into(), problem_schema());
        }
        plan_enums(schemas, plans);
        if let Some(Value::Object(plan)) = schemas.pointer_mut("/SignupTenant/properties/plan") {
            let words = with_null(plan, self_serve);
            plan.insert("enum".into(), words);
        }
        if let Some(sharing) = schemas.get_mut("SharingRequest") {
            *sharing = sharing_schema();
        }
        crate::api::webhooks::schema_rules(schemas);
        for (schema, prop, rule) in RULES {
            if let Some(p) = schemas.pointer_mut(&format!("/{schema}/properties/{prop}")) {
                apply_rule(p, *rule);
            }
        }
        // A tenant moves only to a configured cell.
        if let Some(p) = schemas.pointer_mut("/MoveRequest/properties/cell") {
            let words: Vec<Value> = dep.cells.iter().map(|c| json!(c)).collect();
            *p = json!({"type": "string", "enum": words, "description": "a configured cell"});
        }
        // A tenant goes to a cell of its region: only the configured regions place it.
        if let Some(p) = schemas.pointer_mut("/CreateTenantRequest/properties/region") {
            let mut words: Vec<Value> = dep.regions.iter().map(|r| json!(r)).collect();
            words.push(Value::Null);
            *p = json!({"type": ["string", "null"], "enum": words, "description": "a region some cell serves; omitted: the default cell"});
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameters_are_read_off_the_template() {
        assert_eq!(path_params("/v1/{kind}/{id}"), vec!["kind", "id"]);
        assert!(path_params("/v1/tenant").is_empty());
        assert_eq!(
            path_param_schema("/v1/tenants/{id}", "id")["format"],
            Value::Null
        );
        assert_eq!(path_param_schema("/v1/files/{id}", "id")["format"], "uuid");
    }
}
