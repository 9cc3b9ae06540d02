//! The tenant archive (`docs/design/mobility.md` has the format): a tar of a signed
//! manifest, then one JSON-lines part per table (catalog tables, then the cell's), then the
//! stored files' blobs. Written part by part and read entry by entry: no tenant is ever
//! held in memory whole.
//!
//! [`walk`] reads an archive and checks everything a part can be checked for — its place
//! in the order, size, sha256, row count, columns, each value's type, that every row is the
//! tenant's, the audit chain link by link, each blob against its file's digest — handing
//! the rows on in batches as it goes. Import walks twice: once to check, writing nothing,
//! then to write.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};

use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use tenantd_core::audit::{AuditEvent, GENESIS_HASH};
use tenantd_core::ids::{EventId, TenantId};
use tenantd_core::store::{Kind, Row, Table, Value};

pub use super::manifest::*;

/// Rows handed on at once.
pub const BATCH: usize = 512;

/// Where a table lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The catalog.
    Catalog,
    /// The tenant's cell.
    Cell,
}

/// The part name of a table.
pub fn part_name(place: Place, table: &Table) -> String {
    match place {
        Place::Catalog => format!("catalog/{}.jsonl", table.name),
        Place::Cell => format!("cell/{}.jsonl", table.name),
    }
}

/// A stored value as JSON: null, an integer or a string. A sealed value is never written:
/// it is null in every archive.
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Null | Value::Bytes(_) => Json::Null,
        Value::Int(n) => Json::from(*n),
        Value::Text(s) => Json::String(s.clone()),
    }
}

fn from_json(kind: Kind, j: Json) -> Result<Value, &'static str> {
    match (kind, j) {
        (_, Json::Null) => Ok(Value::Null),
        (Kind::Int, Json::Number(n)) => n.as_i64().map(Value::Int).ok_or("not a 64-bit integer"),
        (Kind::Text, Json::String(s)) => Ok(Value::Text(s)),
        (Kind::Sealed, _) => Err("a sealed value (archives hold none)"),
        _ => Err("a value of the wrong type"),
    }
}

/// Writes one part: a header line of the column names, then a JSON array per row; counts
/// and hashes what it writes.
pub struct PartWriter<W: Write> {
    out: W,
    hash: Sha256,
    rows: u64,
    bytes: u64,
    buf: Vec<u8>,
}

impl<W: Write> PartWriter<W> {
    /// Starts `table`'s part.
    pub fn new(out: W, table: &Table) -> std::io::Result<Self> {
        let mut w = Self {
            out,
            hash: Sha256::new(),
            rows: 0,
            bytes: 0,
            buf: Vec::with_capacity(1024),
        };
        let header: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
        w.line(&serde_json::to_vec(&header)?)?;
        Ok(w)
    }

    fn line(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.out.write_all(bytes)?;
        self.out.write_all(b"\n")?;
        self.hash.update(bytes);
        self.hash.update(b"\n");
        self.bytes += bytes.len() as u64 + 1;
        Ok(())
    }

    /// Writes a row: the same bytes as `serde_json` writes the row's [`to_json`] array,
    /// without building it.
    pub fn row(&mut self, row: &Row) -> std::io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        buf.push(b'[');
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            match v {
                Value::Null | Value::Bytes(_) => buf.extend_from_slice(b"null"),
                Value::Int(n) => write!(buf, "{n}")?,
                Value::Text(t) => serde_json::to_writer(&mut buf, t)?,
            }
        }
        buf.push(b']');
        self.line(&buf)?;
        self.buf = buf;
        self.rows += 1;
        Ok(())
    }

    /// Ends the part: its entry in the manifest.
    pub fn finish(mut self, name: String) -> std::io::Result<Part> {
        self.out.flush()?;
        Ok(Part {
            name,
            rows: self.rows,
            bytes: self.bytes,
            sha256: hex::encode(self.hash.finalize()),
        })
    }
}

/// What [`walk`] hands on.
pub enum Item {
    /// Rows of a table, in archive order.
    Rows {
        /// Where the table lives.
        place: Place,
        /// The table.
        table: &'static Table,
        /// Up to [`BATCH`] rows.
        rows: Vec<Row>,
    },
    /// A stored file's bytes.
    Blob {
        /// The file.
        file_id: String,
        /// Its content.
        bytes: Vec<u8>,
    },
}

/// Why an archive is refused: one line for the operator.
pub type Refusal = String;

/// Reads and checks an archive from `input`, handing rows and blobs to `on` as it goes, and
/// returns its manifest once every check has passed. `tables` are this build's catalog and
/// cell tables; `trusted`, the public keys (base64url) one of which must have signed it.
pub fn walk(
    input: impl Read,
    tables: (&'static [Table], &'static [Table]),
    trusted: Option<&[String]>,
    mut on: impl FnMut(Item) -> Result<(), Refusal>,
) -> Result<Manifest, Refusal> {
    let mut archive = tar::Archive::new(input);
    let mut entries = archive
        .entries()
        .map_err(|e| format!("not a tenant archive: {e}"))?;
    let manifest = read_manifest(&mut entries, trusted)?;
    let tenant = manifest.tenant.id.clone();
    let expected: Vec<(Place, &'static Table)> = tables
        .0
        .iter()
        .map(|t| (Place::Catalog, t))
        .chain(tables.1.iter().map(|t| (Place::Cell, t)))
        .collect();
    let names: Vec<String> = expected.iter().map(|(p, t)| part_name(*p, t)).collect();
    let listed: Vec<&str> = manifest.parts.iter().map(|p| p.name.as_str()).collect();
    if listed != names.iter().map(String::as_str).collect::<Vec<_>>() {
        let missing = names.iter().find(|n| !listed.contains(&n.as_str()));
        let extra = listed.iter().find(|n| !names.iter().any(|m| m == *n));
        return Err(match (missing, extra) {
            (Some(m), _) => format!("the manifest lists no part {m}"),
            (None, Some(x)) => format!("the manifest lists a part this format has not: {x}"),
            _ => "the manifest lists the parts out of order".to_owned(),
        });
    }
    let mut state = Checks::new(&tenant);
    for ((place, table), part) in expected.iter().zip(&manifest.parts) {
        let entry = next_entry(&mut entries)?
            .ok_or_else(|| format!("the archive ends before part {}", part.name))?;
        let (name, entry) = entry;
        if name != part.name {
            return Err(format!("expected part {}, found {name}", part.name));
        }
        read_part(entry, *place, table, part, &mut state, &mut on)?;
    }
    let head = state.chain_head();
    let recorded = state.recorded_head.clone().filter(|h| h.seq > 0);
    if recorded != (head.seq > 0).then(|| head.clone()) {
        return Err(format!(
            "the audit chain ends at seq {} but its recorded head is at seq {}",
            head.seq,
            recorded.map_or(0, |h| h.seq)
        ));
    }
    if head != manifest.audit {
        return Err("the audit chain does not end where the manifest says".to_owned());
    }
    let mut blobs = Blobs::default();
    while let Some((name, mut entry)) = next_entry(&mut entries)? {
        let Some(file_id) = name.strip_prefix("blobs/") else {
            return Err(format!("an entry the manifest does not list: {name}"));
        };
        let Some((size, digest)) = state.stored.remove(file_id) else {
            return Err(format!("a blob of no stored file, or twice: {name}"));
        };
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| format!("blob {file_id} is truncated: {e}"))?;
        if bytes.len() as u64 != size || hex::encode(Sha256::digest(&bytes)) != digest {
            return Err(format!("blob {file_id} does not match its file's sha256"));
        }
        blobs.count += 1;
        blobs.bytes += size;
        on(Item::Blob {
            file_id: file_id.to_owned(),
            bytes,
        })?;
    }
    if let Some(id) = state.stored.keys().next() {
        return Err(format!("the blob of file {id} is missing"));
    }
    if blobs != manifest.blobs {
        return Err("the blobs do not match the manifest's count".to_owned());
    }
    Ok(manifest)
}

type Entries<'a, R> = tar::Entries<'a, R>;

fn next_entry<'a, R: Read>(
    entries: &mut Entries<'a, R>,
) -> Result<Option<(String, tar::Entry<'a, R>)>, Refusal> {
    match entries.next() {
        None => Ok(None),
        Some(Err(e)) => Err(format!("the archive is truncated or damaged: {e}")),
        Some(Ok(entry)) => {
            let name = entry
                .path()
                .map_err(|e| format!("an entry with a bad name: {e}"))?
                .to_string_lossy()
                .into_owned();
            Ok(Some((name, entry)))
        }
    }
}

fn read_manifest<R: Read>(
    entries: &mut Entries<'_, R>,
    trusted: Option<&[String]>,
) -> Result<Manifest, Refusal> {
    let (name, entry) = next_entry(entries)?.ok_or_else(|| "the archive is empty".to_owned())?;
    if name != MANIFEST {
        return Err(format!("the first entry is {name}, not {MANIFEST}"));
    }
    let mut raw = Vec::new();
    entry
        .take(MANIFEST_MAX + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("the manifest is truncated: {e}"))?;
    if raw.len() as u64 > MANIFEST_MAX {
        return Err("the manifest is too large".to_owned());
    }
    // The version first, so a newer archive is named as such even if its fields differ.
    let loose: Json =
        serde_json::from_slice(&raw).map_err(|e| format!("the manifest is not JSON: {e}"))?;
    if loose.get("format").and_then(Json::as_str) != Some(FORMAT) {
        return Err("not a tenant archive (its manifest names another format)".to_owned());
    }
    match loose.get("version").and_then(Json::as_u64) {
        Some(v) if v > u64::from(VERSION) => {
            return Err(format!(
                "written by a newer tenantd: format version {v}; this one reads up to {VERSION}"
            ));
        }
        Some(v) if v == u64::from(VERSION) => {}
        _ => return Err("the manifest has no format version this tenantd reads".to_owned()),
    }
    let manifest: Manifest =
        serde_json::from_value(loose).map_err(|e| format!("the manifest is malformed: {e}"))?;
    let sig = manifest
        .signature
        .as_ref()
        .ok_or_else(|| "the manifest is not signed".to_owned())?;
    if !sig.verifies(&manifest.signed_bytes()) {
        return Err("the manifest's signature does not verify".to_owned());
    }
    if let Some(keys) = trusted
        && !keys.contains(&sig.public_key)
    {
        return Err(format!(
            "signed by key {} ({}), which is not the trusted key",
            sig.kid, sig.public_key
        ));
    }
    if manifest.tenant.id.parse::<uuid::Uuid>().is_err() {
        return Err("the manifest's tenant id is not an id".to_owned());
    }
    Ok(manifest)
}

/// What is checked across parts.
struct Checks {
    tenant: String,
    /// The chain so far: the next seq and the last hash.
    next_seq: i64,
    prev: String,
    /// `audit_heads`' row.
    recorded_head: Option<Head>,
    /// Stored files: id → (size, sha256), each waiting for its blob.
    stored: HashMap<String, (u64, String)>,
}

impl Checks {
    fn new(tenant: &str) -> Self {
        Self {
            tenant: tenant.to_owned(),
            next_seq: 1,
            prev: GENESIS_HASH.to_owned(),
            recorded_head: None,
            stored: HashMap::new(),
        }
    }

    fn chain_head(&self) -> Head {
        if self.next_seq == 1 {
            Head {
                seq: 0,
                hash: String::new(),
            }
        } else {
            Head {
                seq: self.next_seq - 1,
                hash: self.prev.clone(),
            }
        }
    }

    /// Per row of a table: the tenant, and what this table needs checked.
    fn row(&mut self, place: Place, table: &Table, row: &Row) -> Result<(), Refusal> {
        let col = |name: &str| table.index(name).and_then(|i| row.get(i));
        if let Some(tc) = table.tenant_column()
            && col(tc) != Some(&Value::Text(self.tenant.clone()))
        {
            return Err(format!("a row of {} belongs to another tenant", table.name));
        }
        match (place, table.name) {
            (Place::Cell, "audit_events") => self.link(table, row),
            (Place::Cell, "audit_heads") => {
                if let (Some(Value::Int(seq)), Some(Value::Text(hash))) = (col("seq"), col("hash"))
                {
                    self.recorded_head = Some(Head {
                        seq: *seq,
                        hash: hash.clone(),
                    });
                }
                Ok(())
            }
            (Place::Cell, "files") => {
                if let (
                    Some(Value::Text(id)),
                    Some(Value::Int(size)),
                    Some(Value::Text(sha)),
                    Some(Value::Text(state)),
                ) = (col("id"), col("size"), col("sha256"), col("state"))
                    && state == "stored"
                {
                    self.stored
                        .insert(id.clone(), (u64::try_from(*size).unwrap_or(0), sha.clone()));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// The next link of the audit chain.
    fn link(&mut self, table: &Table, row: &Row) -> Result<(), Refusal> {
        let bad = || {
            format!(
                "audit event {} is altered, missing or out of place",
                self.next_seq
            )
        };
        let fields: BTreeMap<&str, Json> = table
            .columns
            .iter()
            .zip(row)
            .map(|(c, v)| (c.name, to_json(v)))
            .collect();
        let text = |k: &str| fields.get(k).and_then(Json::as_str).map(str::to_owned);
        let id = text("id").and_then(|s| s.parse().ok()).map(EventId);
        let tenant_id = text("tenant_id").and_then(|s| s.parse().ok()).map(TenantId);
        let details = text("details").and_then(|d| serde_json::from_str(&d).ok());
        let (Some(id), Some(tenant_id), Some(details)) = (id, tenant_id, details) else {
            return Err(bad());
        };
        let ev = AuditEvent {
            seq: fields.get("seq").and_then(Json::as_i64).unwrap_or(0),
            id,
            tenant_id,
            actor: text("actor").unwrap_or_default(),
            action: text("action").unwrap_or_default(),
            resource: text("resource").unwrap_or_default(),
            resource_id: text("resource_id"),
            outcome: text("outcome").unwrap_or_default(),
            request_id: text("request_id"),
            ip: text("ip"),
            at: text("at").unwrap_or_default(),
            details,
            hash: text("hash").unwrap_or_default(),
            prev_hash: text("prev_hash").unwrap_or_default(),
        };
        if ev.seq != self.next_seq || ev.prev_hash != self.prev || ev.computed_hash() != ev.hash {
            return Err(bad());
        }
        self.prev = ev.hash;
        self.next_seq += 1;
        Ok(())
    }
}

fn read_part(
    entry: impl Read,
    place: Place,
    table: &'static Table,
    part: &Part,
    state: &mut Checks,
    on: &mut impl FnMut(Item) -> Result<(), Refusal>,
) -> Result<(), Refusal> {
    let name = &part.name;
    let mut reader = BufReader::new(Hashing::new(entry));
    let mut line = Vec::new();
    let read_line = |reader: &mut BufReader<Hashing<_>>, line: &mut Vec<u8>| {
        line.clear();
        reader
            .read_until(b'\n', line)
            .map_err(|e| format!("part {name} is truncated: {e}"))
    };
    if read_line(&mut reader, &mut line)? == 0 {
        return Err(format!("part {name} is empty"));
    }
    let header: Vec<String> =
        serde_json::from_slice(&line).map_err(|_| format!("part {name} has no column header"))?;
    if header
        .iter()
        .map(String::as_str)
        .ne(table.columns.iter().map(|c| c.name))
    {
        return Err(format!(
            "part {name} has other columns than this tenantd's {}",
            table.name
        ));
    }
    let mut rows = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        if read_line(&mut reader, &mut line)? == 0 {
            break;
        }
        rows += 1;
        let bad = |why: &str| format!("part {name}, row {rows}: {why}");
        if line.last() != Some(&b'\n') {
            return Err(bad("cut short"));
        }
        let values: Vec<Json> =
            serde_json::from_slice(&line).map_err(|_| bad("not a JSON array"))?;
        if values.len() != table.columns.len() {
            return Err(bad("the wrong number of columns"));
        }
        let row = table
            .columns
            .iter()
            .zip(values)
            .map(|(c, v)| from_json(c.kind, v).map_err(|w| bad(&format!("{}: {w}", c.name))))
            .collect::<Result<Row, _>>()?;
        state.row(place, table, &row)?;
        batch.push(row);
        if batch.len() == BATCH {
            on(Item::Rows {
                place,
                table,
                rows: std::mem::take(&mut batch),
            })?;
        }
    }
    let (bytes, digest) = reader.into_inner().finish();
    if bytes != part.bytes || digest != part.sha256 {
        return Err(format!(
            "part {name} does not match its sha256 in the manifest"
        ));
    }
    if rows != part.rows {
        return Err(format!(
            "part {name} has {rows} rows, the manifest says {}",
            part.rows
        ));
    }
    if !batch.is_empty() {
        on(Item::Rows {
            place,
            table,
            rows: batch,
        })?;
    }
    Ok(())
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    bytes: u64,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            bytes: 0,
        }
    }
    fn finish(self) -> (u64, String) {
        (self.bytes, hex::encode(self.hash.finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_written_as_serde_json_writes_its_array() {
        let row: Row = vec![
            Value::Text("quote \" backslash \\ tab \t nul \u{0} é 漢 🦀".into()),
            Value::Int(-9_223_372_036_854_775_808),
            Value::Null,
            Value::Bytes(vec![1, 2, 3]),
            Value::Text(String::new()),
        ];
        let table = Table {
            name: "t",
            columns: &[],
            key: &[],
            filter: "tenant_id = $1",
            sync: tenantd_core::store::Catchup::Whole,
        };
        let mut out = Vec::new();
        let mut w = PartWriter::new(&mut out, &table).unwrap();
        w.row(&row).unwrap();
        drop(w);
        let expected: Vec<Json> = row.iter().map(to_json).collect();
        let mut want = b"[]\n".to_vec();
        want.extend(serde_json::to_vec(&expected).unwrap());
        want.push(b'\n');
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(want).unwrap()
        );
    }
}
