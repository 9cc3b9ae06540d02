//! `tenantd tenant …`

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Subcommand;
use tenantd_core::drafts::TenantDraft;
use tenantd_core::tenant::Tenant;
use tenantd_server::AppState;
use tenantd_server::api::dto::TenantResponse;
use tenantd_server::context::Caller;
use tenantd_server::services::tenants as svc;

use super::errors::err;

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant. The owner is added if they have an account, else invited.
    Create {
        /// URL-safe name: 3–63 of a-z, 0-9 and inner hyphens.
        #[arg(long)]
        slug: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// Plan id from the plans file.
        #[arg(long, default_value = "free")]
        plan: String,
        /// The owner's email.
        #[arg(long)]
        owner_email: String,
        /// client, solution or industry.
        #[arg(long = "type")]
        kind: Option<String>,
        /// us, eu or ap.
        #[arg(long)]
        region: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tenants.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one tenant with its usage.
    Show {
        /// Slug or id.
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Suspend a tenant: its credentials stop working, its data is kept.
    Suspend {
        /// Slug or id.
        tenant: String,
        /// Why (kept on the tenant and in the audit trail).
        #[arg(long)]
        reason: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Reactivate a suspended tenant.
    Reactivate {
        /// Slug or id.
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Soft-delete a tenant; its data is purged after the retention period.
    Delete {
        /// Slug or id.
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a tenant's plan; a downgrade below current usage needs --force.
    Plan {
        /// Slug or id.
        tenant: String,
        /// The new plan id.
        plan: String,
        /// Apply even where usage is over the new limits.
        #[arg(long)]
        force: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write one tenant's archive: its record, members, resources, shares, files and blobs,
    /// runs, events, counters and whole audit chain, signed by this deployment's key. No
    /// secret is in it (no signing keys, sessions, refresh tokens, API keys or webhook
    /// secrets). The tenant keeps serving.
    Export {
        /// Slug or id.
        tenant: String,
        /// The archive to write (replaced only once the new one is whole).
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: PathBuf,
        /// Members' password hashes too.
        #[arg(long)]
        include_credentials: bool,
        /// Print JSON (and no progress).
        #[arg(long)]
        json: bool,
    },
    /// Put a tenant in place from its archive. Every check (format version, each part's
    /// sha256, the signature, the audit chain) passes before the first write; a tenant id or
    /// slug already here is a conflict; a killed import cleans up when run again.
    Import {
        /// The archive.
        file: PathBuf,
        /// Another slug for the tenant.
        #[arg(long = "as", value_name = "SLUG")]
        slug: Option<String>,
        /// The cell to put it in (default: where a new tenant of its region and plan goes).
        #[arg(long, value_name = "NAME")]
        cell: Option<String>,
        /// The source deployment's public key (base64url), or a file with it, a JWK or
        /// its JWKS: the archive must be signed by it. Repeatable.
        #[arg(long = "trust-key", value_name = "KEY")]
        trust_key: Vec<String>,
        /// Print JSON (and no progress).
        #[arg(long)]
        json: bool,
    },
    /// Move a tenant's data to another cell while it keeps serving: copy, catch up, freeze
    /// writes briefly (503 TENANT_MIGRATING, reads served), check, switch, remove the source
    /// copy. Every phase is recorded: after a crash, --resume or --abort.
    Move {
        /// Slug or id.
        tenant: String,
        /// The cell to move it to.
        #[arg(long, value_name = "CELL", required_unless_present_any = ["resume", "abort"])]
        to: Option<String>,
        /// Carry on a move cut short, from its recorded phase.
        #[arg(long, conflicts_with_all = ["abort", "to"])]
        resume: bool,
        /// Abandon a move cut short before its switch (the tenant stays where it was).
        #[arg(long, conflicts_with = "to")]
        abort: bool,
        /// For crash tests: stop once this phase (`frozen` or `switched`) is recorded, say so
        /// on stderr and wait to be killed.
        #[arg(long, value_name = "PHASE", hide = true, value_parser = ["frozen", "switched"])]
        pause_at: Option<String>,
        /// Print JSON (and no progress).
        #[arg(long)]
        json: bool,
    },
    /// Issue fresh one-time password links to the tenant's members who have no password (an
    /// import made their accounts without credentials); their older links stop working.
    PasswordLinks {
        /// Slug or id.
        tenant: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Put a tenant back to the state of its archive (its rows here are replaced; no other
    /// tenant's rows are touched; members keep their accounts).
    Restore {
        /// The archive.
        file: PathBuf,
        /// The source deployment's public key, as for import. Repeatable.
        #[arg(long = "trust-key", value_name = "KEY")]
        trust_key: Vec<String>,
        /// Print JSON (and no progress).
        #[arg(long)]
        json: bool,
    },
}

/// A tenant by slug or id.
pub async fn find(state: &AppState, t: &str) -> anyhow::Result<Tenant> {
    let op = Caller::operator(state).await.map_err(|e| anyhow!("{e}"))?;
    svc::visible(state, &op, t)
        .await
        .map_err(|_| anyhow!("no tenant {t:?}"))
}

fn print(t: Tenant, json: bool) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&TenantResponse::from(t))?
        );
    } else {
        println!(
            "{:<24} {:<36} {:<12} {:<10} {}",
            t.slug,
            t.id,
            t.plan,
            t.status.as_str(),
            t.name
        );
    }
    Ok(())
}

pub async fn run(state: AppState, cmd: TenantCommand) -> anyhow::Result<()> {
    let op = Caller::operator(&state).await.map_err(err)?;
    match cmd {
        TenantCommand::Create {
            slug,
            name,
            plan,
            owner_email,
            kind,
            region,
            json,
        } => {
            let g = op.require_platform_admin(&state).await.map_err(err)?;
            let draft = TenantDraft::parse(
                &name,
                &slug,
                &plan,
                kind.as_deref(),
                region.as_deref(),
                None,
                &owner_email,
            )
            .map_err(err)?;
            let out = svc::create(&state, &op, g, draft).await.map_err(err)?;
            if let Some((_, token, exp)) = &out.owner_invitation {
                if json {
                    let mut v = serde_json::to_value(TenantResponse::from(out.tenant))?;
                    v["owner_invitation"] =
                        serde_json::json!({"token": token, "expires_at": exp.to_rfc3339()});
                    println!("{}", serde_json::to_string_pretty(&v)?);
                    return Ok(());
                }
                eprintln!(
                    "The owner has no account yet: they join with this invitation token (shown once, valid until {exp}):\n  {token}"
                );
            }
            print(out.tenant, json)
        }
        TenantCommand::List { json } => {
            let mut all = Vec::new();
            let mut after = None;
            loop {
                let page = svc::list(&state, &op, after, 500).await.map_err(err)?;
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                all.extend(page);
            }
            if json {
                let v: Vec<TenantResponse> = all.into_iter().map(Into::into).collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{:<24} {:<36} {:<12} {:<10} NAME",
                    "SLUG", "ID", "PLAN", "STATUS"
                );
                for t in all {
                    print(t, false)?;
                }
            }
            Ok(())
        }
        TenantCommand::Show { tenant, json } => {
            let t = find(&state, &tenant).await?;
            let usage = svc::usage_of(&state, &t).await.map_err(err)?;
            if json {
                let mut v = serde_json::to_value(TenantResponse::from(t))?;
                v["usage"] = serde_json::to_value(&usage)?;
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print(t, false)?;
                for (q, u) in usage.quotas {
                    println!(
                        "  {q:<20} {:>12} / {}",
                        u.used,
                        u.limit
                            .map(|l| l.to_string())
                            .unwrap_or_else(|| "unlimited".into())
                    );
                }
            }
            Ok(())
        }
        TenantCommand::Suspend {
            tenant,
            reason,
            json,
        } => print(
            svc::suspend(&state, &op, &tenant, reason)
                .await
                .map_err(err)?,
            json,
        ),
        TenantCommand::Reactivate { tenant, json } => print(
            svc::reactivate(&state, &op, &tenant).await.map_err(err)?,
            json,
        ),
        TenantCommand::Delete { tenant, json } => {
            print(svc::delete(&state, &op, &tenant).await.map_err(err)?, json)
        }
        TenantCommand::Export {
            tenant,
            output,
            include_credentials,
            json,
        } => {
            super::mobility::run_export(
                &state,
                &find(&state, &tenant).await?,
                &output,
                include_credentials,
                json,
            )
            .await
        }
        TenantCommand::Import {
            file,
            slug,
            cell,
            trust_key,
            json,
        } => {
            let args = super::mobility::ImportArgs {
                file,
                slug,
                cell,
                trust_key,
                json,
            };
            super::mobility::run_import(&state, args, false).await
        }
        TenantCommand::Move {
            tenant,
            to,
            resume,
            abort,
            pause_at,
            json,
        } => {
            let t = find(&state, &tenant).await?;
            let how = super::mobility::MoveArgs {
                to,
                resume,
                abort,
                pause_at,
                json,
            };
            super::mobility::run_move(&state, &t, how).await
        }
        TenantCommand::PasswordLinks { tenant, json } => {
            let t = find(&state, &tenant).await?;
            super::mobility::run_links(&state, &t, json).await
        }
        TenantCommand::Restore {
            file,
            trust_key,
            json,
        } => {
            let args = super::mobility::ImportArgs {
                file,
                slug: None,
                cell: None,
                trust_key,
                json,
            };
            super::mobility::run_import(&state, args, true).await
        }
        TenantCommand::Plan {
            tenant,
            plan,
            force,
            json,
        } => {
            let t = svc::set_plan(&state, &op, &tenant, &plan, force)
                .await
                .map_err(err)?;
            // A plan that wants a dedicated cell moves the tenant into one, here and now.
            if let Some(m) = tenantd_server::mobility::isolation::plan_isolation(&state, &t)
                .await
                .map_err(err)?
            {
                if !json {
                    eprintln!(
                        "{} asks for a dedicated cell: moving {} to {}",
                        t.plan, t.slug, m.target_cell
                    );
                }
                super::mobility::run_move(
                    &state,
                    &t,
                    super::mobility::MoveArgs {
                        to: None,
                        resume: true,
                        abort: false,
                        pause_at: None,
                        json: true,
                    },
                )
                .await?;
                let t = find(&state, &t.id.to_string()).await?;
                return print(t, json);
            }
            print(t, json)
        }
    }
}
