//! The sources of the configuration, merged in order — the table's defaults, the TOML file,
//! `TENANTD_*` variables, the flags — into one map by key. Every value is checked against the
//! key's type as it is read, so a wrong type names its key and its source.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::Secret;
use super::keys::{self, Kind};

/// A value as read, typed by its key.
#[derive(Debug, Clone)]
enum Value {
    Text(String),
    Int(i64),
    Bool(bool),
    Secret(Secret),
}

/// One `[[cells]]` table of the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCell {
    pub name: Option<String>,
    pub region: Option<String>,
    pub mode: Option<String>,
    pub url: Option<String>,
    pub migrate_url: Option<String>,
    pub blob_dir: Option<String>,
    pub blob_store: Option<String>,
}

/// The merged configuration, before validation.
#[derive(Debug, Default)]
pub(super) struct Merged {
    values: BTreeMap<&'static str, Value>,
    /// The `[[cells]]` list (file only).
    pub cells: Option<Vec<RawCell>>,
}

impl Merged {
    /// Reads a TOML document (`what` names it in errors).
    pub fn file(&mut self, text: &str, what: &str) -> Result<(), String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| format!("{what}: {e}"))?;
        for (k, v) in table {
            match (k.as_str(), v) {
                ("cells", v) => {
                    let cells: Vec<RawCell> =
                        v.try_into().map_err(|e| format!("{what}: cells: {e}"))?;
                    self.cells = Some(cells);
                }
                (section, toml::Value::Table(t)) => {
                    for (sub, v) in t {
                        self.set_toml(&format!("{section}.{sub}"), v, what)?;
                    }
                }
                (name, v) => self.set_toml(name, v, what)?,
            }
        }
        Ok(())
    }

    fn set_toml(&mut self, name: &str, v: toml::Value, what: &str) -> Result<(), String> {
        let key = keys::find(name).ok_or_else(|| format!("{what}: unknown key {name}"))?;
        let value = match (key.kind, v) {
            (Kind::Retired(why), _) => return Err(why.into()),
            (Kind::Text, toml::Value::String(s)) => Value::Text(s),
            (Kind::Secret, toml::Value::String(s)) => Value::Secret(Secret::new(s)),
            (Kind::Int, toml::Value::Integer(i)) => Value::Int(i),
            (Kind::Bool, toml::Value::Boolean(b)) => Value::Bool(b),
            (kind, _) => return Err(format!("{what}: {name}: expected {}", kind_name(kind))),
        };
        self.set(key.name, value);
        Ok(())
    }

    /// Reads `TENANTD_*` variables; returns warnings for those that name no key.
    pub fn env(&mut self, env: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
        let mut warnings = Vec::new();
        for (var, v) in env {
            let Some(rest) = var.strip_prefix("TENANTD_") else {
                continue;
            };
            if keys::OTHER_ENV.contains(&var.as_str()) || rest.starts_with("TEST_") {
                continue;
            }
            let name = rest.to_ascii_lowercase().replace("__", ".");
            let Some(key) = keys::find(&name) else {
                warnings.push(format!("unknown variable {var}"));
                continue;
            };
            let value = match key.kind {
                Kind::Retired(why) => return Err(why.into()),
                Kind::Text => Value::Text(v.clone()),
                Kind::Secret => Value::Secret(Secret::new(v.clone())),
                Kind::Int => Value::Int(v.parse().map_err(|_| format!("{var}: not an integer"))?),
                Kind::Bool => Value::Bool(match v.as_str() {
                    "true" | "1" | "yes" | "on" => true,
                    "false" | "0" | "no" | "off" => false,
                    _ => return Err(format!("{var}: true or false")),
                }),
            };
            self.set(key.name, value);
        }
        Ok(warnings)
    }

    /// A flag's value (flags win over everything).
    pub fn flag(&mut self, name: &'static str, v: &str) {
        self.set(name, Value::Text(v.to_owned()));
    }

    /// An empty string is the same as unset, whatever its source.
    fn set(&mut self, name: &'static str, v: Value) {
        match &v {
            Value::Text(s) if s.is_empty() => self.values.remove(name),
            Value::Secret(s) if s.expose().is_empty() => self.values.remove(name),
            _ => self.values.insert(name, v),
        };
    }

    fn get(&self, name: &str) -> Option<Value> {
        if let Some(v) = self.values.get(name) {
            return Some(v.clone());
        }
        let key =
            keys::find(name).unwrap_or_else(|| panic!("config key {name} is not in the table"));
        let d = key.default?;
        Some(match key.kind {
            Kind::Int => Value::Int(d.parse().ok()?),
            Kind::Bool => Value::Bool(d.parse().ok()?),
            Kind::Secret => Value::Secret(Secret::new(d)),
            Kind::Text | Kind::Retired(_) => Value::Text(d.to_owned()),
        })
    }

    /// A text key's value, or its default.
    pub fn text(&self, name: &str) -> Option<String> {
        match self.get(name)? {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// An integer key's value, or its default.
    pub fn int(&self, name: &str) -> Option<i64> {
        match self.get(name)? {
            Value::Int(i) => Some(i),
            _ => None,
        }
    }

    /// A boolean key's value, or its default.
    pub fn bool(&self, name: &str) -> Option<bool> {
        match self.get(name)? {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// A secret key's value.
    pub fn secret(&self, name: &str) -> Option<Secret> {
        match self.get(name)? {
            Value::Secret(s) => Some(s),
            _ => None,
        }
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Text | Kind::Secret => "a string",
        Kind::Int => "an integer",
        Kind::Bool => "true or false",
        Kind::Retired(_) => "nothing",
    }
}
