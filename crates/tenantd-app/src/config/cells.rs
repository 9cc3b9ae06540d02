//! The databases and object stores a deployment is made of: the catalog's location, the
//! `[[cells]]` list, and where file contents are kept.

use std::path::{Path, PathBuf};

use super::{Secret, sources};

/// Where a catalog or cell lives.
#[derive(Debug, Clone)]
pub enum DbLocation {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (serving and migrating roles).
    Postgres(tenantd_store::postgres::PgLocation),
}

/// An S3-compatible bucket (AWS S3, MinIO, …) for file contents. Unset fields fall back to
/// the standard `AWS_*` environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_REGION`, `AWS_ENDPOINT_URL`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// A key prefix inside the bucket (`""` for none).
    pub prefix: String,
    /// The endpoint, for S3-compatible services (`http://127.0.0.1:9000`).
    pub endpoint: Option<String>,
    /// The region.
    pub region: Option<String>,
    /// The access key id.
    pub access_key_id: Option<String>,
    /// The secret access key.
    pub secret_access_key: Option<Secret>,
}

/// A storage cell.
#[derive(Debug, Clone)]
pub struct CellConfig {
    /// Its name.
    pub name: tenantd_core::tenant::CellName,
    /// Its region (`us`, `eu`, `ap`), if any.
    pub region: Option<String>,
    /// `pooled` or `dedicated`.
    pub dedicated: bool,
    /// Its database.
    pub location: DbLocation,
    /// Its own object store for its tenants' file contents; `None`: the deployment's.
    pub blobs: Option<BlobLocation>,
}

/// An object store for file contents.
#[derive(Debug, Clone, PartialEq)]
pub enum BlobLocation {
    /// A local directory.
    Dir(PathBuf),
    /// A bucket of an S3-compatible service.
    S3(S3Config),
}

impl BlobLocation {
    /// What names the store (two cells with the same name share it): the directory, or the
    /// endpoint, bucket and prefix.
    pub fn describe(&self) -> String {
        match self {
            BlobLocation::Dir(d) => d.display().to_string(),
            BlobLocation::S3(s) => format!(
                "{}s3://{}/{}",
                s.endpoint
                    .as_deref()
                    .map(|e| format!("{e} "))
                    .unwrap_or_default(),
                s.bucket,
                s.prefix
            ),
        }
    }
}

pub(super) fn parse_url(
    key: &str,
    url: &str,
    migrate_url: Option<&str>,
    max_connections: u32,
) -> Result<DbLocation, String> {
    let is_pg = |u: &str| u.starts_with("postgres://") || u.starts_with("postgresql://");
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(format!("{key}.url: sqlite:// needs a path"));
        }
        if migrate_url.is_some_and(|m| m != url) {
            return Err(format!(
                "{key}.migrate_url: a SQLite database is migrated through its url"
            ));
        }
        Ok(DbLocation::Sqlite(PathBuf::from(path)))
    } else if is_pg(url) {
        if migrate_url.is_some_and(|m| !is_pg(m)) {
            return Err(format!("{key}.migrate_url: expected postgres://"));
        }
        Ok(DbLocation::Postgres(tenantd_store::postgres::PgLocation {
            url: url.to_owned(),
            migrate_url: migrate_url.map(str::to_owned),
            max_connections,
        }))
    } else {
        Err(format!(
            "{key}.url: expected sqlite://PATH or postgres://USER@HOST/DB"
        ))
    }
}

/// `s3://BUCKET[/PREFIX]` of `key`, reached with `base`'s service and keys.
pub(super) fn s3_url(key: &str, url: &str, base: &S3Config) -> Result<S3Config, String> {
    let rest = url.strip_prefix("s3://").ok_or(format!(
        "{key}: expected s3://BUCKET or s3://BUCKET/PREFIX (unset: the local blob_dir)"
    ))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{key}: s3:// needs a bucket"));
    }
    Ok(S3Config {
        bucket: bucket.to_owned(),
        prefix: prefix.trim_matches('/').to_owned(),
        ..base.clone()
    })
}

/// The `[[cells]]` list, or the one pooled SQLite cell `local` of the embedded default.
pub(super) fn validate_cells(
    list: Option<&[sources::RawCell]>,
    data_dir: &Path,
    pool: u32,
    s3_base: &S3Config,
) -> Result<Vec<CellConfig>, String> {
    let list = match list {
        None => {
            return Ok(vec![CellConfig {
                name: "local".into(),
                region: None,
                dedicated: false,
                location: DbLocation::Sqlite(data_dir.join("cells").join("local.db")),
                blobs: None,
            }]);
        }
        Some([]) => return Err("cells: at least one cell is needed".into()),
        Some(list) => list,
    };
    let mut out: Vec<CellConfig> = Vec::new();
    for (i, c) in list.iter().enumerate() {
        let name: tenantd_core::tenant::CellName = c
            .name
            .clone()
            .ok_or(format!("cells[{i}].name: missing"))?
            .into();
        if out.iter().any(|o| o.name == name) {
            return Err(format!("cells[{i}].name: {name} appears twice"));
        }
        if let Some(r) = &c.region {
            tenantd_core::tenant::Region::parse(r, "region")
                .map_err(|_| format!("cells[{i}].region: us, eu or ap"))?;
        }
        let dedicated = match c.mode.as_deref().unwrap_or("pooled") {
            "pooled" => false,
            "dedicated" => true,
            m => return Err(format!("cells[{i}].mode: pooled or dedicated, not {m:?}")),
        };
        let url = c.url.as_deref().ok_or(format!("cells[{i}].url: missing"))?;
        let location = parse_url(&format!("cells[{i}]"), url, c.migrate_url.as_deref(), pool)?;
        let blobs = match (&c.blob_dir, &c.blob_store) {
            (None, None) => None,
            (Some(d), None) => Some(BlobLocation::Dir(PathBuf::from(d))),
            (None, Some(u)) => Some(BlobLocation::S3(s3_url(
                &format!("cells[{i}].blob_store"),
                u,
                s3_base,
            )?)),
            (Some(_), Some(_)) => {
                return Err(format!("cells[{i}]: blob_dir or blob_store, not both"));
            }
        };
        out.push(CellConfig {
            name,
            region: c.region.clone(),
            dedicated,
            location,
            blobs,
        });
    }
    if out.iter().all(|c| c.dedicated) {
        return Err(
            "cells: at least one must be pooled (the platform tenant and every plan without dedicated isolation live there)"
                .into(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::config::sources::Merged;

    fn from_file(toml: &str) -> Result<Config, String> {
        let mut m = Merged::default();
        m.file(toml, "test")?;
        Config::validate(m)
    }

    #[test]
    fn a_cell_may_keep_its_files_in_a_store_of_its_own() {
        let cells = "[[cells]]\nname = \"a\"\nurl = \"sqlite:///tmp/a.db\"\n\
                     [[cells]]\nname = \"b\"\nurl = \"sqlite:///tmp/b.db\"\nblob_dir = \"/srv/b\"\n\
                     [[cells]]\nname = \"c\"\nurl = \"sqlite:///tmp/c.db\"\nblob_store = \"s3://files/c/\"\n";
        let c = from_file(&format!("s3_region = \"eu-west-1\"\n{cells}")).unwrap();
        assert_eq!(c.cells[0].blobs, None, "the deployment's store");
        assert_eq!(c.cells[1].blobs, Some(BlobLocation::Dir("/srv/b".into())));
        let Some(BlobLocation::S3(s3)) = &c.cells[2].blobs else {
            panic!("{:?}", c.cells[2].blobs)
        };
        assert_eq!((s3.bucket.as_str(), s3.prefix.as_str()), ("files", "c"));
        assert_eq!(
            s3.region.as_deref(),
            Some("eu-west-1"),
            "the deployment's service"
        );
        let e = from_file(&format!(
            "{cells}[[cells]]\nname = \"d\"\nurl = \"sqlite:///tmp/d.db\"\nblob_dir = \"/x\"\nblob_store = \"s3://y\"\n"
        ))
        .unwrap_err();
        assert_eq!(e, "cells[3]: blob_dir or blob_store, not both");
        let e = from_file(
            "[[cells]]\nname = \"a\"\nurl = \"sqlite:///tmp/a.db\"\nblob_store = \"gs://x\"\n",
        )
        .unwrap_err();
        assert!(e.starts_with("cells[0].blob_store: expected s3://"), "{e}");
    }
}
