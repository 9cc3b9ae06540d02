//! The archive's manifest: what it holds, each part's digest, and the source's signature
//! over all of it (`docs/design/mobility.md`).

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::auth::keys::DetachedSignature;

/// The archive's format name.
pub const FORMAT: &str = "tenantd-tenant-archive";
/// The format version this build writes and the newest it reads.
pub const VERSION: u32 = 1;
/// The first entry.
pub const MANIFEST: &str = "manifest.json";
/// The largest manifest read (it holds counts and digests, never rows).
pub(crate) const MANIFEST_MAX: u64 = 4 << 20;

/// The manifest: what the archive holds, each part's digest, and the source's signature
/// over all of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// The format version.
    pub version: u32,
    /// The tenant.
    pub tenant: ArchivedTenant,
    /// When the archive was written.
    pub created_at: String,
    /// Where it was written.
    pub source: Source,
    /// Whether members' password hashes are in it (`--include-credentials`).
    pub credentials: bool,
    /// The tenant's audit chain head at the snapshot.
    pub audit: Head,
    /// The parts, in archive order.
    pub parts: Vec<Part>,
    /// The blobs after the parts: one per stored file, named `blobs/<file id>`, each
    /// checked against its `files` row's `sha256` (which the `cell/files` part's digest
    /// covers).
    pub blobs: Blobs,
    /// The source deployment's Ed25519 signature of every other field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<DetachedSignature>,
}

/// The tenant an archive holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchivedTenant {
    /// Its id (kept by an import: the audit chain's hashes cover it).
    pub id: String,
    /// Its slug at export.
    pub slug: String,
}

/// The deployment an archive came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// The deployment (its issuer URL).
    pub deployment: String,
    /// The cell the tenant was in.
    pub cell: String,
}

/// An audit chain head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// The last seq (0: no events).
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

/// One part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// Its entry name: `catalog/<table>.jsonl` or `cell/<table>.jsonl`.
    pub name: String,
    /// Rows.
    pub rows: u64,
    /// Bytes.
    pub bytes: u64,
    /// sha256 of the bytes, hex.
    pub sha256: String,
}

/// The blobs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blobs {
    /// How many.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Manifest {
    /// The bytes the signature covers: the manifest without it, as canonical JSON (sorted
    /// keys, no whitespace).
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_value(self).unwrap_or(Json::Null);
        if let Some(o) = v.as_object_mut() {
            o.remove("signature");
        }
        v.to_string().into_bytes()
    }
}
