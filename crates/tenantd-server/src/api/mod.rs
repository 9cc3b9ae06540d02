//! The HTTP API: one module per area, each exposing its routes with their OpenAPI paths.

/// `/v1/audit*`.
pub mod audit;
/// `/v1/auth/*`, JWKS.
pub mod auth;
/// Response bodies.
pub mod dto;
/// `/v1/events`.
pub mod events;
/// Files.
pub mod files;
/// Members, invitations, API keys.
pub mod identity;
/// Moving a tenant between cells.
pub mod mobility;
/// What every operation's OpenAPI description shares, added once.
pub mod openapi;
/// Health, readiness, OpenAPI, docs, console.
pub mod ops;
/// Tenant-owned resources.
pub mod resources;
/// `/v1/agents/{id}/runs`, `/v1/runs*`: agent runs.
pub mod runs;
/// Tenants.
pub mod tenants;
/// `/v1/webhooks*`.
pub mod webhooks;
/// `/v1/workers/lease` and the workers' calls on a run.
pub mod workers;

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{InfoBuilder, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Every API route, and the OpenAPI document describing them.
pub fn routes(file_limit: usize) -> (axum::Router<AppState>, OpenApi) {
    let (router, mut doc) = OpenApiRouter::new()
        .merge(auth::routes())
        .merge(tenants::routes())
        .merge(mobility::routes())
        .merge(identity::routes())
        .merge(audit::routes())
        .merge(events::routes())
        .merge(webhooks::routes())
        .merge(runs::routes())
        .merge(workers::routes())
        .merge(files::routes(file_limit))
        .merge(resources::routes())
        .merge(ops::routes())
        .split_for_parts();
    doc.info = InfoBuilder::new()
        .title("tenantd")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(
            "Multi-tenant platform server. Errors are application/problem+json with a stable `code`; \
             every tenant-scoped response carries X-Tenant-ID; rate-limited responses carry RateLimit-* headers.",
        ))
        .build();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT or API key")
                .build(),
        ),
    );
    (router, doc)
}

/// Opaque page cursors: `base64url("<tag>:<position>")`. The tag keeps a cursor from one
/// list out of another; a cursor never widens a query beyond the caller's tenant.
pub mod cursor {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use tenantd_core::Error;
    use uuid::Uuid;

    /// Encodes a position.
    pub fn encode(tag: &str, pos: &str) -> String {
        URL_SAFE_NO_PAD.encode(format!("{tag}:{pos}"))
    }

    /// Decodes a cursor of `tag`.
    pub fn decode(c: Option<&str>, tag: &str) -> Result<Option<String>, Error> {
        let Some(c) = c.filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let bad = || Error::invalid("cursor", "not a cursor from this list");
        if c.len() > 200 {
            return Err(bad());
        }
        let raw = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
        let s = String::from_utf8(raw).map_err(|_| bad())?;
        let (t, pos) = s.split_once(':').ok_or_else(bad)?;
        if t != tag {
            return Err(bad());
        }
        Ok(Some(pos.to_owned()))
    }

    /// Decodes an id cursor.
    pub fn decode_id(c: Option<&str>, tag: &str) -> Result<Option<Uuid>, Error> {
        decode(c, tag)?
            .map(|p| {
                Uuid::try_parse(&p)
                    .map_err(|_| Error::invalid("cursor", "not a cursor from this list"))
            })
            .transpose()
    }

    /// The page size: 1 to 200, default 50.
    pub fn limit(l: Option<u32>) -> Result<u32, Error> {
        match l {
            None => Ok(50),
            Some(n) if (1..=200).contains(&n) => Ok(n),
            Some(_) => Err(Error::invalid("limit", "1 to 200")),
        }
    }

    /// Splits `limit + 1` fetched items into a page and the next cursor.
    pub fn page<T>(
        mut items: Vec<T>,
        limit: u32,
        cursor_of: impl Fn(&T) -> String,
    ) -> (Vec<T>, Option<String>) {
        if items.len() > limit as usize {
            items.truncate(limit as usize);
            let next = items.last().map(&cursor_of);
            (items, next)
        } else {
            (items, None)
        }
    }
}
