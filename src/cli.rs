//! Command line (SPEC §2): `run` (default), `check-config`, `migrate`, `cleanup --once`,
//! `backfill`, `previews --backfill`, `demo`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{backfill, catalog, cleanup, config, demo, io_runtime, server, telemetry, upgrade};

#[derive(Debug, Parser)]
#[command(
    name = "attachment-gateway",
    version,
    about = "Private attachment gateway"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Configuration file.
    #[arg(long, global = true, default_value = "conf/gateway.toml")]
    config: PathBuf,
    /// Take over the listening sockets of a running instance (zero-downtime upgrade).
    #[arg(long, global = true)]
    upgrade: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve (the default).
    Run,
    /// Validate the configuration and print it with secrets redacted.
    CheckConfig {
        /// Also connect to the catalog database and check its tables' shape (no changes).
        #[arg(long)]
        database: bool,
    },
    /// Apply `migrations/` to the catalog database.
    Migrate,
    /// Run one cleanup pass (expired staged uploads, orphan objects), then exit.
    Cleanup {
        /// One pass and exit (the server runs passes itself every `upload.cleanup_interval_s`).
        #[arg(long, required = true)]
        once: bool,
    },
    /// Write one LINKED row per attachment of the app's legacy JSON (`[backfill]`), then exit.
    Backfill {
        /// Read and check everything, count what would be inserted, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Start after this message id (the `last_message_id` of an interrupted run).
        #[arg(long)]
        after: Option<String>,
    },
    /// Make the previews of image attachments that have none yet, then exit.
    Previews {
        /// Walk the catalog for image rows without previews (the only mode there is).
        #[arg(long, required = true)]
        backfill: bool,
        /// Stop after this many rows; run again to go on.
        #[arg(long, default_value_t = 10_000)]
        limit: u64,
    },
    /// Run on the embedded default with sample data and print ready-to-paste requests.
    Demo {
        /// Public listener (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Admin listener (default 127.0.0.1:9090).
        #[arg(long)]
        admin_listen: Option<std::net::SocketAddr>,
        /// The chat page, the stand-in app behind the gateway (default: the config's
        /// app.upstream, 127.0.0.1:8088).
        #[arg(long)]
        app_listen: Option<std::net::SocketAddr>,
        /// Run the page against this config's catalog and storage instead of the embedded
        /// default (it needs auth.hs_secret and internal.service_token).
        #[arg(long = "with-config")]
        with_config: Option<std::path::PathBuf>,
    },
    /// Zero-downtime upgrade (systemd `ExecReload`): start a new instance with `--upgrade`,
    /// hand it the running instance's sockets, let the old one drain.
    Reload,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => with_config(&cli.config, |cfg| {
            telemetry::init(&cfg.log);
            server::run(cfg, cli.upgrade)
        }),
        Command::CheckConfig { database } => match config::load(&cli.config) {
            Ok(cfg) => {
                print!("{}", config::render_redacted(&cfg));
                if database {
                    check_database(&cfg)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(problems) => {
                eprintln!("{problems}");
                ExitCode::from(2)
            }
        },
        Command::Migrate => with_config(&cli.config, |cfg| {
            telemetry::init(&cfg.log);
            io_runtime::block_on(async {
                let catalog = catalog::connect(&cfg.catalog).await?;
                catalog.migrate().await?;
                anyhow::Ok(())
            })?;
            tracing::info!("migrations applied");
            Ok(())
        }),
        Command::Cleanup { once: _ } => with_config(&cli.config, |cfg| {
            telemetry::init(&cfg.log);
            cleanup::run_once(&cfg)
        }),
        Command::Backfill { dry_run, after } => with_config(&cli.config, |cfg| {
            telemetry::init(&cfg.log);
            backfill_rows(&cfg, backfill::Options { dry_run, after })
        }),
        Command::Previews { backfill: _, limit } => with_config(&cli.config, |cfg| {
            telemetry::init(&cfg.log);
            backfill_previews(&cfg, limit)
        }),
        Command::Demo {
            listen,
            admin_listen,
            app_listen,
            with_config,
        } => report(demo::run(demo::Options {
            listen,
            admin_listen,
            app_listen,
            config: with_config,
        })),
        Command::Reload => with_config(&cli.config, |cfg| {
            telemetry::init(&cfg.log);
            upgrade::reload(&cli.config, &cfg.server)
        }),
    }
}

/// `check-config --database`: exit 2 with one line per mismatch, as for a config problem,
/// since both mean the gateway must not start as configured.
fn check_database(cfg: &config::Config) -> ExitCode {
    let verified = io_runtime::block_on(async {
        let catalog = catalog::connect(&cfg.catalog).await?;
        catalog.verify_schema().await
    });
    match verified {
        Ok(()) => ExitCode::SUCCESS,
        Err(catalog::CatalogError::Schema(problems)) => {
            for line in &problems.0 {
                eprintln!("catalog: {line}");
            }
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("catalog.database_url: {e}");
            ExitCode::from(2)
        }
    }
}

/// `backfill`: a progress bar on stderr when it is a terminal, the summary on stdout as one
/// JSON line. The gateway's tables are checked first: rows are only written into a catalog
/// the gateway can read.
fn backfill_rows(cfg: &config::Config, options: backfill::Options) -> anyhow::Result<()> {
    use std::io::{IsTerminal, Write};
    let terminal = std::io::stderr().is_terminal();
    let summary = io_runtime::block_on(async {
        catalog::connect(&cfg.catalog)
            .await?
            .verify_schema()
            .await?;
        let source = catalog::legacy::open(&cfg.catalog, &cfg.backfill).await?;
        let mut progress = |s: &backfill::Summary| {
            if terminal {
                eprint!("\r{}", backfill::progress_line(s));
                let _ = std::io::stderr().flush();
            }
        };
        anyhow::Ok(backfill::run(&*source, &cfg.backfill, &options, &mut progress).await?)
    })?;
    if terminal {
        eprintln!();
    }
    println!("{}", serde_json::to_value(summary)?);
    Ok(())
}

/// `previews --backfill`: the report goes to stdout as one JSON line.
fn backfill_previews(cfg: &config::Config, limit: u64) -> anyhow::Result<()> {
    let report = io_runtime::block_on(async {
        let catalog = catalog::connect(&cfg.catalog).await?;
        let storage = crate::storage::build(&cfg.storage)?;
        let previews = std::sync::Arc::new(crate::preview::Previews::new(
            catalog.clone(),
            storage,
            cfg.preview.clone(),
        ));
        let workers = cfg.preview.workers;
        anyhow::Ok(crate::preview::backfill::run(previews, catalog, limit, workers).await?)
    })?;
    println!("{}", serde_json::to_value(report)?);
    Ok(())
}

/// Load the config (exit 2 with one line per problem), then run `f`.
fn with_config(path: &Path, f: impl FnOnce(config::Config) -> anyhow::Result<()>) -> ExitCode {
    match config::load(path) {
        Ok(cfg) => report(f(cfg)),
        Err(problems) => {
            eprintln!("{problems}");
            ExitCode::from(2)
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
