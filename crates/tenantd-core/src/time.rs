use chrono::{DateTime, SecondsFormat, Utc};

/// The current time, truncated to microseconds (what every backend stores exactly).
pub fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

/// The stored form of a timestamp: RFC 3339, UTC, microseconds, `Z`. Fixed width, so it sorts
/// as text and hashes the same on every backend.
pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Parses a stored or client-given RFC 3339 timestamp.
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}
