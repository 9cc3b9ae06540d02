//! Row structs: each mirrors the columns a statement of `sql/` returns, in portable types
//! (text, integers, bytes), read with [`Record`]; `TryFrom` turns it into the domain type,
//! parsing ids, timestamps, JSON and enums. A stored value that does not parse is an internal
//! error ("undecodable stored …"), never a guess.

mod catalog;
mod cell;
mod runs;
mod webhooks;

pub(crate) use catalog::*;
pub(crate) use cell::*;
pub(crate) use runs::*;
pub(crate) use webhooks::*;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tenantd_core::access::Role;
use tenantd_core::{Error, Result, time};
use uuid::Uuid;

#[allow(unused_imports)]
use crate::db::Record;

/// The error for a stored value that does not parse.
pub(crate) fn bad(what: &str) -> Error {
    Error::Internal(format!("undecodable stored {what}"))
}

/// Stored timestamps are RFC 3339 text, UTC, fixed width (so text order is time order).
pub(crate) fn ts(v: &str, col: &str) -> Result<DateTime<Utc>> {
    time::parse(v).ok_or_else(|| bad(col))
}

pub(crate) fn opt_ts(v: Option<&str>, col: &str) -> Result<Option<DateTime<Utc>>> {
    v.map(|v| ts(v, col)).transpose()
}

pub(crate) fn uuid(v: &str, col: &str) -> Result<Uuid> {
    Uuid::try_parse(v).map_err(|_| bad(col))
}

pub(crate) fn opt_uuid(v: Option<&str>, col: &str) -> Result<Option<Uuid>> {
    v.map(|v| uuid(v, col)).transpose()
}

pub(crate) fn json(v: &str, col: &str) -> Result<Value> {
    serde_json::from_str(v).map_err(|_| bad(col))
}

pub(crate) fn role(v: &str, col: &str) -> Result<Role> {
    Role::parse(v, col).map_err(|_| bad(col))
}

/// A timestamp as stored.
pub(crate) fn fmt(t: DateTime<Utc>) -> String {
    time::format(t)
}
