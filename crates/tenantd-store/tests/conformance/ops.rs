//! The operations of the isolation property and how proptest generates them: a case is
//! 3–4 tenants (the first two in one cell) and 1–25 operations; actors, targets and names
//! are drawn from small sets so that tenants keep meeting each other's ids and names.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::Union;
use tenantd_core::resource::{ResourceKind, SharedFilter};

/// The kinds the operations use (few, so names and ids collide often).
pub const OP_KINDS: [ResourceKind; 3] = [
    ResourceKind::Agents,
    ResourceKind::Tools,
    ResourceKind::Prompts,
];
const NAMES: [&str; 5] = ["alpha", "beta", "gamma", "Zeta Ω", "two words"];

#[derive(Debug, Clone, Copy)]
pub enum ShareSpec {
    Private,
    Global,
    /// A bit mask of tenant indices (the owner's bit is ignored).
    Selective(u8),
}

#[derive(Debug, Clone, Copy)]
pub enum IfVersion {
    Absent,
    Current,
    Stale,
}

#[derive(Debug, Clone, Copy)]
pub enum TargetMode {
    /// Any resource (or file) of the case, whoever owns it, live or deleted.
    Any,
    /// One of the actor's own, if it has any.
    Own,
    /// An id that never existed.
    Fresh,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub pick: Index,
    pub mode: TargetMode,
}

/// One operation; `actor` (and `victim`) are taken modulo the case's tenant count.
#[derive(Debug, Clone)]
pub enum Op {
    Create {
        actor: usize,
        kind: ResourceKind,
        name: &'static str,
        share: ShareSpec,
        limit: Option<i64>,
        spec: i64,
    },
    Get {
        actor: usize,
        target: Target,
        kind: ResourceKind,
        wrong_kind: bool,
        other_cell: bool,
    },
    List {
        actor: usize,
        kind: ResourceKind,
        shared: SharedFilter,
        name: Option<&'static str>,
        page: u32,
        other_cell: bool,
    },
    Update {
        actor: usize,
        target: Target,
        rename: Option<&'static str>,
        spec: Option<i64>,
        share: Option<ShareSpec>,
        version: IfVersion,
        other_cell: bool,
    },
    Delete {
        actor: usize,
        target: Target,
        kind: ResourceKind,
        wrong_kind: bool,
        other_cell: bool,
    },
    Share {
        actor: usize,
        target: Target,
        share: ShareSpec,
    },
    Unshare {
        actor: usize,
        target: Target,
    },
    /// Appends new events, maybe with an earlier draft of the actor again (a relay retry).
    Audit {
        actor: usize,
        count: usize,
        resend: Option<Index>,
    },
    /// Appends, in the actor's scope, an event of the victim: must be refused.
    ForgedAudit {
        actor: usize,
        victim: usize,
    },
    Counters {
        actor: usize,
        other_cell: bool,
    },
    Reserve {
        actor: usize,
        size: i64,
        limit: Option<i64>,
    },
    Complete {
        actor: usize,
        target: Target,
    },
    Abort {
        actor: usize,
        target: Target,
    },
    DeleteFile {
        actor: usize,
        target: Target,
    },
    GetFile {
        actor: usize,
        target: Target,
    },
}

#[derive(Debug, Clone)]
pub struct Case {
    /// Each tenant's cell (an index into `CELLS`).
    pub homes: Vec<usize>,
    pub ops: Vec<Op>,
}

fn kind() -> impl Strategy<Value = ResourceKind> {
    prop::sample::select(OP_KINDS.to_vec())
}

fn name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(NAMES.to_vec())
}

fn share() -> impl Strategy<Value = ShareSpec> {
    prop_oneof![
        2 => Just(ShareSpec::Private),
        1 => Just(ShareSpec::Global),
        2 => any::<u8>().prop_map(ShareSpec::Selective),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    let mode = prop_oneof![
        5 => Just(TargetMode::Any),
        4 => Just(TargetMode::Own),
        1 => Just(TargetMode::Fresh),
    ];
    (any::<Index>(), mode).prop_map(|(pick, mode)| Target { pick, mode })
}

fn version() -> impl Strategy<Value = IfVersion> {
    prop_oneof![
        3 => Just(IfVersion::Absent),
        2 => Just(IfVersion::Current),
        1 => Just(IfVersion::Stale),
    ]
}

fn filter() -> impl Strategy<Value = SharedFilter> {
    prop::sample::select(vec![
        SharedFilter::Include,
        SharedFilter::Exclude,
        SharedFilter::Only,
    ])
}

fn op() -> BoxedStrategy<Op> {
    let actor = || 0usize..4;
    let other = || prop::bool::weighted(0.15);
    let wrong = || prop::bool::weighted(0.15);
    let arms: Vec<(u32, BoxedStrategy<Op>)> = vec![
        (
            6,
            (
                actor(),
                kind(),
                name(),
                share(),
                prop::option::weighted(0.3, 1i64..=3),
                0i64..1000,
            )
                .prop_map(|(actor, kind, name, share, limit, spec)| Op::Create {
                    actor,
                    kind,
                    name,
                    share,
                    limit,
                    spec,
                })
                .boxed(),
        ),
        (
            3,
            (actor(), target(), kind(), wrong(), other())
                .prop_map(|(actor, target, kind, wrong_kind, other_cell)| Op::Get {
                    actor,
                    target,
                    kind,
                    wrong_kind,
                    other_cell,
                })
                .boxed(),
        ),
        (
            3,
            (
                actor(),
                kind(),
                filter(),
                prop::option::weighted(0.25, name()),
                1u32..=6,
                other(),
            )
                .prop_map(|(actor, kind, shared, name, page, other_cell)| Op::List {
                    actor,
                    kind,
                    shared,
                    name,
                    page,
                    other_cell,
                })
                .boxed(),
        ),
        (
            3,
            (
                actor(),
                target(),
                prop::option::weighted(0.4, name()),
                prop::option::weighted(0.5, 0i64..1000),
                prop::option::weighted(0.3, share()),
                version(),
                other(),
            )
                .prop_map(
                    |(actor, target, rename, spec, share, version, other_cell)| Op::Update {
                        actor,
                        target,
                        rename,
                        spec,
                        share,
                        version,
                        other_cell,
                    },
                )
                .boxed(),
        ),
        (
            2,
            (actor(), target(), kind(), wrong(), other())
                .prop_map(|(actor, target, kind, wrong_kind, other_cell)| Op::Delete {
                    actor,
                    target,
                    kind,
                    wrong_kind,
                    other_cell,
                })
                .boxed(),
        ),
        (
            2,
            (actor(), target(), share())
                .prop_map(|(actor, target, share)| Op::Share {
                    actor,
                    target,
                    share,
                })
                .boxed(),
        ),
        (
            1,
            (actor(), target())
                .prop_map(|(actor, target)| Op::Unshare { actor, target })
                .boxed(),
        ),
        (
            2,
            (
                actor(),
                1usize..=3,
                prop::option::weighted(0.4, any::<Index>()),
            )
                .prop_map(|(actor, count, resend)| Op::Audit {
                    actor,
                    count,
                    resend,
                })
                .boxed(),
        ),
        (
            1,
            (actor(), actor())
                .prop_map(|(actor, victim)| Op::ForgedAudit { actor, victim })
                .boxed(),
        ),
        (
            1,
            (actor(), other())
                .prop_map(|(actor, other_cell)| Op::Counters { actor, other_cell })
                .boxed(),
        ),
        (
            2,
            (
                actor(),
                1i64..=4000,
                prop::option::weighted(0.4, 1000i64..=6000),
            )
                .prop_map(|(actor, size, limit)| Op::Reserve { actor, size, limit })
                .boxed(),
        ),
        (
            2,
            (actor(), target())
                .prop_map(|(actor, target)| Op::Complete { actor, target })
                .boxed(),
        ),
        (
            1,
            (actor(), target())
                .prop_map(|(actor, target)| Op::Abort { actor, target })
                .boxed(),
        ),
        (
            1,
            (actor(), target())
                .prop_map(|(actor, target)| Op::DeleteFile { actor, target })
                .boxed(),
        ),
        (
            1,
            (actor(), target())
                .prop_map(|(actor, target)| Op::GetFile { actor, target })
                .boxed(),
        ),
    ];
    Union::new_weighted(arms).boxed()
}

pub fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(0usize..2, 3..=4),
        prop::collection::vec(op(), 1..=25),
    )
        .prop_map(|(mut homes, ops)| {
            // Two tenants always share a cell, so sharing and cross-tenant ids meet in one
            // database; the others land anywhere.
            homes[1] = homes[0];
            Case { homes, ops }
        })
}
