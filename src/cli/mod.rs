//! `tenantd` commands. Every command but `serve` works on the configured databases directly,
//! with no server running.

mod errors;
mod mobility;
mod runs;
mod tenant;
mod webhooks;

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::{Args, Parser, Subcommand, ValueEnum};
use tenantd_core::tenant::TenantScope;
use tenantd_server::AppState;
use tenantd_server::config::{Config, Overrides};

/// tenantd — a multi-tenant platform server: tenants, identity, isolation, quotas, rate
/// limits and a hash-chained audit trail, in front of your product's data.
#[derive(Debug, Parser)]
#[command(name = "tenantd", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// TOML configuration file.
    #[arg(long, global = true, env = "TENANTD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory of the embedded default's data (SQLite files).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "TENANTD_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

/// Log line format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (embedded SQLite under --data-dir when unconfigured).
    Serve {
        /// Address to listen on [env: TENANTD_LISTEN] [default: 127.0.0.1:8080].
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(tenant::TenantCommand),
    /// Audit trail tools.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Token-signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Webhook endpoints and their deliveries.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Agent runs: list them, cancel one.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Purge the deleted tenants past their purge_after: every row of each in the catalog
    /// and the cells, its blobs, and accounts left with no membership; the slug becomes
    /// free and a tenant.purged record stays in the platform tenant's chain. `serve` does
    /// the same in the background.
    Purge {
        /// Only list what would be purged, with its rows now.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chains; exits non-zero and names the first bad seq if one is broken.
    Verify {
        /// Only this tenant (slug or id).
        #[arg(long)]
        tenant: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Start signing with a new key; older keys verify until their tokens expire.
    Rotate,
}

/// Sets up tracing: `TENANTD_LOG` (or `RUST_LOG`) filters, `--log-format` picks the format.
pub fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("TENANTD_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| {
            if matches!(cli.command, Command::Serve { .. }) {
                "info,sqlx=warn".into()
            } else {
                "warn".into()
            }
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new(filter))
        .with_writer(std::io::stderr);
    match cli.global.log_format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder.init(),
    }
}

fn load_config(g: &Global, listen: Option<String>) -> anyhow::Result<Config> {
    let over = Overrides {
        config_file: g.config.clone(),
        listen,
        data_dir: g.data_dir.clone(),
    };
    let (config, warnings) = Config::load(&over).map_err(|e| anyhow!(e))?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(config)
}

/// Opens the databases (migrating them) and bootstraps, printing first-start sign-in help.
async fn open(g: &Global, listen: Option<String>) -> anyhow::Result<AppState> {
    open_config(load_config(g, listen)?).await
}

async fn open_config(config: Config) -> anyhow::Result<AppState> {
    let (state, boot) = tenantd_server::build_state(config)
        .await
        .map_err(|e| anyhow!("{e}"))
        .context("cannot open the databases")?;
    if let Some(b) = boot {
        eprintln!(
            "First start: created the platform tenant and its admin {}.",
            b.admin_email
        );
        match b.generated_password {
            Some(p) => eprintln!(
                "  One-time password: {p}\n  (shown once; set TENANTD_ADMIN_EMAIL/TENANTD_ADMIN_PASSWORD before the first start to choose your own)"
            ),
            None => eprintln!("  Sign in with the password from TENANTD_ADMIN_PASSWORD."),
        }
    }
    Ok(state)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { listen } => serve(&cli.global, listen).await,
        Command::Migrate => {
            open(&cli.global, None).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Tenant(cmd) => tenant::run(open(&cli.global, None).await?, cmd).await,
        Command::Webhooks(cmd) => webhooks::run(open(&cli.global, None).await?, cmd).await,
        Command::Runs(cmd) => runs::run(open(&cli.global, None).await?, cmd).await,
        Command::Purge { dry_run, json } => {
            mobility::run_purge(open(&cli.global, None).await?, dry_run, json).await
        }
        Command::Audit(AuditCommand::Verify { tenant, json }) => {
            audit_verify(open(&cli.global, None).await?, tenant, json).await
        }
        Command::Keys(KeysCommand::Rotate) => {
            let state = open(&cli.global, None).await?;
            let kid = state
                .keys
                .rotate(state.catalog.as_ref())
                .await
                .map_err(|e| anyhow!("{e}"))?;
            println!(
                "now signing with key {kid}; older keys verify for one more access-token lifetime"
            );
            Ok(())
        }
    }
}

async fn serve(g: &Global, listen: Option<String>) -> anyhow::Result<()> {
    let mut config = load_config(g, listen)?;
    let addr = config.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    // Without a public_url, tokens are issued by the address actually bound (port 0 included).
    if config.public_url.is_none() {
        if matches!(
            config.catalog,
            tenantd_server::config::DbLocation::Postgres(_)
        ) {
            tracing::warn!(
                "public_url is not set: tokens name http://{local} as their issuer, which other nodes of this deployment will not accept; set public_url to the URL clients use"
            );
        }
        config.public_url = Some(format!("http://{local}"));
    }
    let state = open_config(config).await?;
    eprintln!("tenantd listening on http://{local}");
    eprintln!("  console: http://{local}/console");
    eprintln!("  API docs: http://{local}/docs   (OpenAPI: http://{local}/openapi.json)");
    eprintln!("  data: {}", state.config.data_dir.display());
    let shutdown = async {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let term = async {
            if let Ok(mut s) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                s.recv().await;
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
        eprintln!("tenantd: shutting down");
    };
    tenantd_server::run(state, listener, shutdown)
        .await
        .map_err(|e| anyhow!("{e}"))
}

async fn audit_verify(state: AppState, tenant: Option<String>, json: bool) -> anyhow::Result<()> {
    let tenants = match tenant {
        Some(t) => vec![tenant::find(&state, &t).await?],
        None => {
            let mut all = Vec::new();
            let mut after = None;
            loop {
                let page = state
                    .catalog
                    .list_tenants(after, 500)
                    .await
                    .map_err(|e| anyhow!("{e}"))?;
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                all.extend(page);
            }
            all
        }
    };
    let mut broken = 0;
    let mut out = Vec::new();
    for t in &tenants {
        let scope = TenantScope::unscoped_trusted(t.id, t.cell.clone());
        let cell = state.cell(&scope).map_err(|e| anyhow!("{e}"))?;
        let (events, head) = cell.audit_chain(&scope).await.map_err(|e| anyhow!("{e}"))?;
        let v = tenantd_core::audit::verify(&events, head.as_ref().map(|(s, h)| (*s, h.as_str())));
        let value = serde_json::to_value(&v)?;
        if value["ok"] != true {
            broken += 1;
        }
        if json {
            out.push(serde_json::json!({"tenant": t.slug, "result": value}));
        } else if value["ok"] == true {
            println!("{:<30} ok ({} events)", t.slug, value["events"]);
        } else {
            println!("{:<30} BROKEN at seq {}", t.slug, value["first_bad_seq"]);
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    if broken > 0 {
        return Err(anyhow!("{broken} audit chain(s) broken"));
    }
    Ok(())
}
