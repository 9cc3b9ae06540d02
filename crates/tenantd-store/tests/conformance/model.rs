//! The in-memory model of the isolation property: what each tenant owns, what it may see, its
//! counters and its audit chains, per cell. Tenants and cells are named by index.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;

use serde_json::{Value, json};
use tenantd_core::audit::AuditDraft;
use tenantd_core::ids::{EventId, FileId, ResourceId, TenantId};
use tenantd_core::resource::{
    FileMeta, Resource, ResourceKind, SharedFilter, Sharing, SharingMode,
};
use tenantd_core::tenant::TenantScope;
use tenantd_core::{Error, time};

use crate::backends::CELLS;
use crate::ops::ShareSpec;

/// A resource as the model knows it (deleted ones are kept, `alive == false`, so their ids
/// can be tried again).
pub struct MRes {
    pub id: ResourceId,
    pub cell: usize,
    pub owner: usize,
    pub kind: ResourceKind,
    pub name: String,
    pub spec: Value,
    pub mode: SharingMode,
    /// The tenants a selective resource is shared with.
    pub with: BTreeSet<usize>,
    pub version: i64,
    pub created_by: String,
    pub alive: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileState {
    Pending,
    Stored,
    Gone,
}

/// A file, always in its owner's cell.
pub struct MFile {
    pub id: FileId,
    pub owner: usize,
    pub name: String,
    pub size: i64,
    pub sha256: String,
    pub state: FileState,
}

pub struct Model {
    pub tenants: Vec<TenantId>,
    /// Each tenant's cell.
    pub home: Vec<usize>,
    pub res: Vec<MRes>,
    pub files: Vec<MFile>,
    /// (tenant, cell) → quota → used.
    pub counters: HashMap<(usize, usize), BTreeMap<String, i64>>,
    /// (tenant, cell) → event ids in chain order.
    pub chains: HashMap<(usize, usize), Vec<EventId>>,
    /// Every draft made, appended or not (for retries).
    pub drafts: Vec<AuditDraft>,
}

/// An outcome the store may give.
#[derive(Debug, Clone, PartialEq)]
pub enum Want {
    Ok,
    NotFound,
    /// Read-only: shared with the caller, not theirs.
    Forbidden,
    Precondition,
    Conflict(&'static str),
    Quota {
        resource: String,
        current: i64,
        limit: i64,
        requested: i64,
    },
    AnyErr,
}

/// `Ok(())` if `got` is one of `want`.
pub fn outcome<T: Debug>(got: &tenantd_core::Result<T>, want: &[Want]) -> Result<(), String> {
    let ok = want.iter().any(|w| match (w, got) {
        (Want::Ok, Ok(_)) => true,
        (Want::NotFound, Err(Error::NotFound)) => true,
        (Want::Forbidden, Err(Error::Forbidden(_))) => true,
        (Want::Precondition, Err(Error::PreconditionFailed)) => true,
        (Want::Conflict(f), Err(Error::Conflict { field, .. })) => field.as_str() == *f,
        (
            Want::Quota {
                resource,
                current,
                limit,
                requested,
            },
            Err(Error::QuotaExceeded {
                resource: r,
                current: c,
                limit: l,
                requested: q,
            }),
        ) => resource == r && current == c && limit == l && requested == q,
        (Want::AnyErr, Err(_)) => true,
        _ => false,
    });
    ensure!(ok, "expected one of {want:?}, the store answered {got:?}");
    Ok(())
}

impl Model {
    pub fn new(tenants: Vec<TenantId>, home: Vec<usize>) -> Self {
        Model {
            tenants,
            home,
            res: Vec::new(),
            files: Vec::new(),
            counters: HashMap::new(),
            chains: HashMap::new(),
            drafts: Vec::new(),
        }
    }

    pub fn n(&self) -> usize {
        self.tenants.len()
    }

    pub fn scope(&self, t: usize, cell: usize) -> TenantScope {
        TenantScope::unscoped_trusted(self.tenants[t], CELLS[cell])
    }

    /// The tenant of this case with this id.
    pub fn index_of(&self, id: TenantId) -> Option<usize> {
        self.tenants.iter().position(|t| *t == id)
    }

    pub fn actor(&self, t: usize) -> String {
        format!("user:{}", self.tenants[t])
    }

    /// A new audit draft of `t`, remembered for retries.
    pub fn draft(
        &mut self,
        t: usize,
        action: &str,
        resource: &str,
        resource_id: Option<String>,
    ) -> AuditDraft {
        let n = self.drafts.len();
        let d = AuditDraft {
            id: EventId::new(),
            tenant_id: self.tenants[t],
            actor: self.actor(t),
            action: action.to_owned(),
            resource: resource.to_owned(),
            resource_id,
            outcome: "success".into(),
            request_id: Some(format!("req-{n}")),
            ip: Some("192.0.2.7".into()),
            at: time::format(time::now()),
            details: json!({"draft": n}),
        };
        self.drafts.push(d.clone());
        d
    }

    pub fn counter(&self, t: usize, cell: usize, quota: &str) -> i64 {
        self.counters
            .get(&(t, cell))
            .and_then(|c| c.get(quota))
            .copied()
            .unwrap_or(0)
    }

    pub fn add(&mut self, t: usize, cell: usize, quota: &str, n: i64) {
        *self
            .counters
            .entry((t, cell))
            .or_default()
            .entry(quota.to_owned())
            .or_default() += n;
    }

    /// Records that `id` joined `t`'s chain in `cell` (a no-op for an id already there).
    pub fn logged(&mut self, t: usize, cell: usize, id: EventId) {
        let chain = self.chains.entry((t, cell)).or_default();
        if !chain.contains(&id) {
            chain.push(id);
        }
    }

    /// Whether `reader` may read resource `i` through `cell`.
    pub fn sees(&self, i: usize, reader: usize, cell: usize) -> bool {
        let r = &self.res[i];
        r.alive && r.cell == cell && (r.owner == reader || self.sees_shared(i, reader, cell))
    }

    /// Whether resource `i` is shared with `reader` (visible through `cell`, not its own).
    pub fn sees_shared(&self, i: usize, reader: usize, cell: usize) -> bool {
        let r = &self.res[i];
        r.alive
            && r.cell == cell
            && r.owner != reader
            && match r.mode {
                SharingMode::Private => false,
                SharingMode::Global => true,
                SharingMode::Selective => r.with.contains(&reader),
            }
    }

    /// Whether `t` owns resource `i`, reached through `cell`.
    pub fn owns(&self, i: usize, t: usize, cell: usize) -> bool {
        let r = &self.res[i];
        r.alive && r.owner == t && r.cell == cell
    }

    /// Whether another live resource of `t` in `cell` of `kind` has `name`.
    pub fn name_taken(
        &self,
        t: usize,
        cell: usize,
        kind: ResourceKind,
        name: &str,
        except: Option<usize>,
    ) -> bool {
        self.res.iter().enumerate().any(|(i, r)| {
            Some(i) != except
                && r.alive
                && r.owner == t
                && r.cell == cell
                && r.kind == kind
                && r.name == name
        })
    }

    /// What `reader` lists in `cell`, by id.
    pub fn listed(
        &self,
        reader: usize,
        cell: usize,
        kind: ResourceKind,
        shared: SharedFilter,
        name: Option<&str>,
    ) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.res.len())
            .filter(|&i| {
                let r = &self.res[i];
                r.alive
                    && r.cell == cell
                    && r.kind == kind
                    && name.is_none_or(|n| r.name == n)
                    && match shared {
                        SharedFilter::Exclude => r.owner == reader,
                        SharedFilter::Only => self.sees_shared(i, reader, cell),
                        SharedFilter::Include => self.sees(i, reader, cell),
                    }
            })
            .collect();
        v.sort_by_key(|&i| self.res[i].id);
        v
    }

    /// The sharing an operation of `owner` asks for: a selective list never names the owner
    /// and is never empty.
    pub fn sharing_for(&self, spec: ShareSpec, owner: usize) -> (SharingMode, BTreeSet<usize>) {
        match spec {
            ShareSpec::Private => (SharingMode::Private, BTreeSet::new()),
            ShareSpec::Global => (SharingMode::Global, BTreeSet::new()),
            ShareSpec::Selective(mask) => {
                let n = self.n();
                let mut with: BTreeSet<usize> = (0..n)
                    .filter(|&t| t != owner && mask & (1u8 << t) != 0)
                    .collect();
                if with.is_empty() {
                    with.insert((owner + 1) % n);
                }
                (SharingMode::Selective, with)
            }
        }
    }

    /// The store's form of a sharing: tenant ids sorted.
    pub fn sharing(&self, mode: SharingMode, with: &BTreeSet<usize>) -> Sharing {
        let mut tenants: Vec<TenantId> = with.iter().map(|&t| self.tenants[t]).collect();
        tenants.sort();
        Sharing { mode, tenants }
    }

    /// Checks what the store returned for resource `i` to `reader`: every field, the owner's
    /// `tenant_id`, the share list for the owner only, and that `reader` may see it at all.
    pub fn check_view(&self, got: &Resource, i: usize, reader: usize) -> Result<(), String> {
        let r = &self.res[i];
        ensure!(got.id == r.id, "returned {} for {}", got.id, r.id);
        ensure!(
            got.tenant_id == self.tenants[r.owner],
            "resource {} reported tenant {} but belongs to tenant #{} ({})",
            r.id,
            got.tenant_id,
            r.owner,
            self.tenants[r.owner]
        );
        ensure!(
            r.owner == reader || self.sees_shared(i, reader, r.cell),
            "tenant #{reader} was given resource {} of tenant #{}, not shared with it",
            r.id,
            r.owner
        );
        ensure!(
            got.kind == r.kind && got.name == r.name && got.spec == r.spec,
            "resource {}: store {:?}/{:?}/{}, model {:?}/{:?}/{}",
            r.id,
            got.kind,
            got.name,
            got.spec,
            r.kind,
            r.name,
            r.spec
        );
        ensure!(
            got.version == r.version && got.created_by == r.created_by,
            "resource {}: version {} by {}, model {} by {}",
            r.id,
            got.version,
            got.created_by,
            r.version,
            r.created_by
        );
        let want = if reader == r.owner && r.mode == SharingMode::Selective {
            self.sharing(r.mode, &r.with)
        } else {
            Sharing {
                mode: r.mode,
                tenants: Vec::new(),
            }
        };
        ensure!(
            got.sharing == want,
            "tenant #{reader} sees sharing {:?} of resource {}, model {:?}",
            got.sharing,
            r.id,
            want
        );
        Ok(())
    }

    /// `t`'s stored files, by id.
    pub fn stored_files(&self, t: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..self.files.len())
            .filter(|&i| self.files[i].owner == t && self.files[i].state == FileState::Stored)
            .collect();
        v.sort_by_key(|&i| self.files[i].id);
        v
    }

    pub fn check_file(&self, got: &FileMeta, i: usize, reader: usize) -> Result<(), String> {
        let f = &self.files[i];
        ensure!(
            f.owner == reader,
            "tenant #{reader} was given file {} of tenant #{}",
            f.id,
            f.owner
        );
        ensure!(
            got.id == f.id && got.tenant_id == self.tenants[f.owner],
            "file {} of tenant {} returned for file {} of tenant {}",
            got.id,
            got.tenant_id,
            f.id,
            self.tenants[f.owner]
        );
        ensure!(
            got.name == f.name && got.size == f.size && got.sha256 == f.sha256,
            "file {}: store {}/{}/{}, model {}/{}/{}",
            f.id,
            got.name,
            got.size,
            got.sha256,
            f.name,
            f.size,
            f.sha256
        );
        Ok(())
    }
}
