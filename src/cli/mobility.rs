//! `tenantd tenant export|import|restore` and `tenantd purge`: archives and purge, with a
//! progress bar on a terminal and plain lines otherwise (or with `--json`, one JSON document
//! at the end on stdout).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use anyhow::anyhow;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tenantd_core::tenant::{CellName, Tenant, TenantSlug};
use tenantd_server::AppState;
use tenantd_server::context::Caller;
use tenantd_server::mobility::export::{ExportOptions, export};
use tenantd_server::mobility::import::{ImportOptions, ImportReport, import, restore};
use tenantd_server::mobility::{Progress, moving, purge};
use tenantd_server::services::setups::{self, PasswordLink};

/// Progress on stderr: a bar with counts and rate on a terminal, a line per phase otherwise.
struct Report {
    bar: Option<ProgressBar>,
    plain: Mutex<Option<(String, u64, Instant)>>,
    quiet: bool,
}

impl Report {
    fn new(json: bool) -> Self {
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {msg:<28} {pos:>10} rows  {per_sec:>12}  {elapsed}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        });
        Self {
            bar,
            plain: Mutex::new(None),
            quiet: json,
        }
    }

    fn flush_line(&self) {
        if self.quiet {
            return;
        }
        if let Ok(mut p) = self.plain.lock()
            && let Some((name, n, at)) = p.take()
        {
            let secs = at.elapsed().as_secs_f64().max(1e-3);
            eprintln!("{name}: {n} ({:.0}/s)", n as f64 / secs);
        }
    }

    fn done(&self) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => self.flush_line(),
        }
    }
}

impl Progress for Report {
    fn phase(&self, name: &str, total: Option<u64>) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(bar) => {
                bar.set_message(name.to_owned());
                bar.set_position(0);
                bar.reset_eta();
                if let Some(t) = total {
                    bar.set_length(t);
                }
            }
            None => {
                self.flush_line();
                if let Ok(mut p) = self.plain.lock() {
                    *p = Some((name.to_owned(), 0, Instant::now()));
                }
            }
        }
    }

    fn advance(&self, n: u64) {
        match &self.bar {
            Some(bar) => bar.inc(n),
            None => {
                if let Ok(mut p) = self.plain.lock()
                    && let Some((_, done, _)) = p.as_mut()
                {
                    *done += n;
                }
            }
        }
    }
}

fn err(e: tenantd_core::Error) -> anyhow::Error {
    match e {
        tenantd_core::Error::Validation(v) if v.len() == 1 && v[0].field == "archive" => {
            anyhow!("archive refused: {}", v[0].message)
        }
        other => super::errors::err(other),
    }
}

/// `tenantd tenant export <tenant> -o FILE`.
pub async fn run_export(
    state: &AppState,
    t: &Tenant,
    out: &Path,
    include_credentials: bool,
    json: bool,
) -> anyhow::Result<()> {
    let op = Caller::operator(state).await.map_err(err)?;
    let report = Report::new(json);
    let opts = ExportOptions {
        include_credentials,
    };
    let began = Instant::now();
    let m = export(state, &op, t, out, &opts, &report).await;
    let seconds = began.elapsed().as_secs_f64();
    report.done();
    let m = m.map_err(err)?;
    let rows: u64 = m.parts.iter().map(|p| p.rows).sum();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "file": out, "tenant_id": m.tenant.id, "slug": m.tenant.slug, "rows": rows,
                "seconds": seconds,
                "blobs": m.blobs.count, "audit_seq": m.audit.seq,
                "signed_by": m.signature.as_ref().map(|s| &s.kid),
                "public_key": m.signature.as_ref().map(|s| &s.public_key),
            }))?
        );
    } else {
        let sig = m.signature.as_ref();
        println!(
            "exported {} to {}: {rows} rows, {} blobs, audit chain to seq {}",
            m.tenant.slug,
            out.display(),
            m.blobs.count,
            m.audit.seq
        );
        if let Some(s) = sig {
            println!(
                "signed by key {}; to check it on import: --trust-key {}",
                s.kid, s.public_key
            );
        }
    }
    Ok(())
}

/// The options `import` and `restore` share.
pub struct ImportArgs {
    pub file: PathBuf,
    pub slug: Option<String>,
    pub cell: Option<String>,
    pub trust_key: Vec<String>,
    pub json: bool,
}

/// A `--trust-key`: a public key (base64url), or a file holding one, a JWK or a JWKS.
fn trusted_keys(args: &[String]) -> anyhow::Result<Option<Vec<String>>> {
    if args.is_empty() {
        return Ok(None);
    }
    let mut keys = Vec::new();
    for a in args {
        let path = Path::new(a);
        if !path.exists() {
            keys.push(a.clone());
            continue;
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("cannot read --trust-key {a}: {e}"))?;
        let text = text.trim();
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(doc) => {
                let jwks = doc.get("keys").and_then(|k| k.as_array()).cloned();
                for k in jwks.unwrap_or_else(|| vec![doc.clone()]) {
                    if let Some(x) = k.get("x").and_then(|x| x.as_str()) {
                        keys.push(x.to_owned());
                    }
                }
            }
            Err(_) => keys.push(text.to_owned()),
        }
    }
    if keys.is_empty() {
        return Err(anyhow!("--trust-key names no Ed25519 public key"));
    }
    Ok(Some(keys))
}

fn import_options(a: &ImportArgs) -> anyhow::Result<ImportOptions> {
    Ok(ImportOptions {
        slug: a
            .slug
            .as_deref()
            .map(TenantSlug::parse)
            .transpose()
            .map_err(|e| anyhow!("--as: {}", e.message))?,
        cell: a.cell.as_deref().map(CellName::new),
        trusted: trusted_keys(&a.trust_key)?,
    })
}

fn print_import(
    verb: &str,
    r: &ImportReport,
    links: &[PasswordLink],
    seconds: f64,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "tenant_id": r.tenant.id, "slug": r.tenant.slug, "cell": r.tenant.cell,
                "status": r.tenant.status, "members_linked": r.linked,
                "members_created": r.created, "cleaned_up": r.cleaned_up,
                "rows": r.manifest.parts.iter().map(|p| p.rows).sum::<u64>(),
                "blobs": r.manifest.blobs.count,
                "signed_by": r.manifest.signature.as_ref().map(|s| &s.kid),
                "password_links": links,
                "seconds": seconds,
            }))?
        );
    } else {
        if r.cleaned_up {
            println!("removed what an earlier import of this tenant left behind");
        }
        println!(
            "{verb} {} ({}) into cell {}: {} rows, {} blobs; {} members linked to existing accounts, {} given new accounts without a password",
            r.tenant.slug,
            r.tenant.id,
            r.tenant.cell,
            r.manifest.parts.iter().map(|p| p.rows).sum::<u64>(),
            r.manifest.blobs.count,
            r.linked,
            r.created
        );
        print_links(links);
    }
    Ok(())
}

/// The one-time password links, for the operator to hand to each member.
pub fn print_links(links: &[PasswordLink]) {
    if links.is_empty() {
        return;
    }
    println!(
        "one-time password links (shown once; each works for {} days: POST /v1/auth/set-password {{token, password}}):",
        setups::LINK_DAYS
    );
    for l in links {
        println!("  {}  {}", l.email, l.token);
    }
}

/// `tenantd tenant import FILE`.
pub async fn run_import(state: &AppState, a: ImportArgs, restoring: bool) -> anyhow::Result<()> {
    let opts = import_options(&a)?;
    let op = Caller::operator(state).await.map_err(err)?;
    let report = Report::new(a.json);
    if opts.trusted.is_none() && !a.json {
        eprintln!(
            "note: without --trust-key the archive's signature is checked against the key it names, not against a key you trust"
        );
    }
    let began = Instant::now();
    let r = if restoring {
        restore(state, &op, &a.file, &opts, &report).await
    } else {
        import(state, &op, &a.file, &opts, &report).await
    };
    let seconds = began.elapsed().as_secs_f64();
    report.done();
    let r = r.map_err(err)?;
    // Members given an account without a password set one through a one-time link.
    let links = setups::issue_links(state, r.tenant.id).await.map_err(err)?;
    print_import(
        if restoring { "restored" } else { "imported" },
        &r,
        &links,
        seconds,
        a.json,
    )
}

/// `tenantd tenant password-links <tenant>`: fresh links for its members without a password.
pub async fn run_links(state: &AppState, t: &Tenant, json: bool) -> anyhow::Result<()> {
    let links = setups::issue_links(state, t.id).await.map_err(err)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&links)?);
    } else if links.is_empty() {
        println!("every member of {} has a password", t.slug);
    } else {
        print_links(&links);
    }
    Ok(())
}

/// `tenantd purge [--dry-run]`.
pub async fn run_purge(state: AppState, dry_run: bool, json: bool) -> anyhow::Result<()> {
    let done = purge::purge_due(&state, dry_run).await.map_err(err)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"dry_run": dry_run, "tenants": done}))?
        );
        return Ok(());
    }
    if done.is_empty() {
        println!("no deleted tenant is past its purge_after");
    }
    for p in &done {
        let rows: u64 = p.rows.values().sum();
        if dry_run {
            println!("would purge {} ({}): {rows} rows", p.slug, p.tenant_id);
        } else {
            println!(
                "purged {} ({}): {rows} rows, {} blobs",
                p.slug, p.tenant_id, p.blobs
            );
        }
    }
    Ok(())
}

/// What `tenantd tenant move` is asked for.
pub struct MoveArgs {
    pub to: Option<String>,
    pub resume: bool,
    pub abort: bool,
    /// Stop once this phase is recorded and wait to be killed (crash tests).
    pub pause_at: Option<String>,
    pub json: bool,
}

/// `tenantd tenant move <tenant> --to <cell>` (or `--resume`, `--abort`).
pub async fn run_move(state: &AppState, t: &Tenant, args: MoveArgs) -> anyhow::Result<()> {
    let MoveArgs {
        to,
        resume,
        abort,
        pause_at,
        json,
    } = args;
    let op = Caller::operator(state).await.map_err(err)?;
    let report = Report::new(json);
    let done = if abort {
        let m = moving::open(state, t).await.map_err(err)?;
        moving::abort(state, m).await
    } else {
        let m = if resume {
            moving::open(state, t).await.map_err(err)?
        } else {
            let to = CellName::new(to.unwrap_or_default());
            moving::plan(state, t, &to).await.map_err(err)?
        };
        let m = moving::run_until(state, &op, m, &report, pause_at.as_deref()).await;
        if let (Some(phase), Ok(m)) = (&pause_at, &m)
            && m.phase == *phase
        {
            report.done();
            eprintln!("paused at {phase} (move {}); waiting to be killed", m.id);
            std::future::pending::<()>().await;
        }
        m
    };
    report.done();
    let m = done.map_err(err)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&moving::view(&m))?);
    } else if m.phase == "aborted" {
        println!(
            "move {} aborted: {} stays in {}",
            m.id, t.slug, m.source_cell
        );
    } else {
        println!(
            "moved {} from {} to {} (move {}; writes were frozen {} ms)",
            t.slug,
            m.source_cell,
            m.target_cell,
            m.id,
            m.detail["freeze_ms"].as_u64().unwrap_or(0)
        );
    }
    Ok(())
}
