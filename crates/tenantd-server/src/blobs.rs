//! The object store for file contents, opened at the edge: a local directory, or an
//! S3-compatible bucket through object_store's HTTP client (reqwest on rustls with ring).

use std::sync::Arc;

use tenantd_app::blobs::{BlobStore, CellBlobs};
use tenantd_app::config::{BlobLocation, Config};
use tenantd_core::{Error, Result};

/// The object stores for file contents: the deployment's (the S3-compatible bucket of
/// `blob_store`, else the local `blob_dir`) and each cell's own, where it names one. Each is
/// checked at start, so a wrong bucket or key fails here with its reason.
pub async fn open_blobs(config: &Config) -> Result<CellBlobs> {
    let deployment = match &config.s3 {
        Some(s3) => BlobLocation::S3(s3.clone()),
        None => BlobLocation::Dir(config.blob_dir.clone()),
    };
    let store = open(&deployment).await?;
    let mut blobs = CellBlobs::new(BlobStore {
        store,
        location: deployment,
    });
    let mut opened: Vec<Arc<BlobStore>> = Vec::new();
    for cell in &config.cells {
        let Some(location) = &cell.blobs else {
            continue;
        };
        if *location == blobs.deployment().location {
            continue;
        }
        let store = match opened.iter().find(|s| s.location == *location) {
            Some(s) => s.clone(),
            None => {
                let s = Arc::new(BlobStore {
                    store: open(location).await?,
                    location: location.clone(),
                });
                opened.push(s.clone());
                s
            }
        };
        blobs = blobs.with_cell(cell.name.clone(), store);
    }
    Ok(blobs)
}

/// One object store, checked.
async fn open(location: &BlobLocation) -> Result<Arc<dyn object_store::ObjectStore>> {
    use object_store::ObjectStoreExt;
    let s3 = match location {
        BlobLocation::S3(s3) => s3,
        BlobLocation::Dir(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Internal(format!("blob_dir {}: {e}", dir.display())))?;
            let local = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| Error::Internal(format!("blob_dir {}: {e}", dir.display())))?;
            return Ok(Arc::new(local));
        }
    };
    let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&s3.bucket);
    if let Some(e) = &s3.endpoint {
        b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
    }
    if let Some(r) = &s3.region {
        b = b.with_region(r);
    }
    if let Some(k) = &s3.access_key_id {
        b = b.with_access_key_id(k);
    }
    if let Some(k) = &s3.secret_access_key {
        b = b.with_secret_access_key(k.expose());
    }
    let store = b
        .build()
        .map_err(|e| Error::Internal(format!("blob_store s3://{}: {e}", s3.bucket)))?;
    let store: Arc<dyn object_store::ObjectStore> = if s3.prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(object_store::prefix::PrefixStore::new(
            store,
            s3.prefix.as_str(),
        ))
    };
    // Write and delete a probe: what uploads need, and allowed by a least-privilege policy.
    let probe = object_store::path::Path::from(".tenantd-probe");
    let checked = async {
        store
            .put(&probe, bytes::Bytes::from_static(b"ok").into())
            .await?;
        store.delete(&probe).await
    };
    match checked.await {
        Ok(()) => Ok(store),
        Err(e) => Err(Error::Internal(format!(
            "blob_store s3://{}: cannot write to the bucket: {e}",
            s3.bucket
        ))),
    }
}
