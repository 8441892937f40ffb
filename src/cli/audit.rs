//! `kring audit`: a privacy officer's tools. `verify` trusts only the pinned verifier key and
//! checkpoints saved before, whether it reads a store or a node over the API.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::client::{Connection, bsn_arg};
use crate::api::client::{prove_event, prove_extends, verify_remote};
use crate::api::convert;
use crate::api::proto;
use crate::audit::{NoteVerifier, Verifier, checkpoint, verify};
use crate::cli_support::{render_event, render_report};
use crate::domain::{Action, Outcome, Purpose};
use crate::store::{SledStore, StoreOptions};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Searches a node's audit log.
    Search(SearchArgs),
    /// Fetches the latest signed checkpoint (and saves it, to check later that the log extends it).
    Checkpoint {
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        save: Option<PathBuf>,
    },
    /// Proves that an event is in the log, checked against the pinned key.
    Proof {
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        index: u64,
        /// The node's verifier key (name+keyid+key).
        #[arg(long, env = "KRING_AUDIT_KEY")]
        key: String,
    },
    /// Proves that the node's log extends a checkpoint saved before.
    Consistency {
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        saved: PathBuf,
        #[arg(long, env = "KRING_AUDIT_KEY")]
        key: String,
    },
    /// Verifies a log end to end: from a store directory (node stopped) or over the API.
    Verify(VerifyArgs),
    /// Writes the log's events as JSON lines (exactly the hashed bytes).
    Export {
        #[command(flatten)]
        connection: Connection,
        #[arg(long, default_value_t = 0)]
        from: u64,
        #[arg(long, default_value_t = 0)]
        until: u64,
    },
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    #[command(flatten)]
    connection: Connection,
    /// Events about this person (BSN, or - for standard input).
    #[arg(long)]
    subject_bsn: Option<String>,
    #[arg(long)]
    subject_pseudonym: Option<String>,
    #[arg(long)]
    actor: Option<String>,
    #[arg(long)]
    action: Option<Action>,
    #[arg(long)]
    purpose: Option<Purpose>,
    #[arg(long)]
    outcome: Option<Outcome>,
    #[arg(long)]
    from_unix_ms: Option<i64>,
    #[arg(long)]
    until_unix_ms: Option<i64>,
    #[arg(long, default_value_t = 100)]
    page_size: u32,
    #[arg(long, default_value = "")]
    page_token: String,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A node's store directory (the node must be stopped).
    #[arg(long, conflicts_with = "node")]
    store: Option<PathBuf>,
    /// A running node's local listener, host:port.
    #[arg(long)]
    node: Option<String>,
    #[arg(long, env = "KRING_CA")]
    ca: Option<PathBuf>,
    #[arg(long, default_value = "localhost")]
    server_name: String,
    #[arg(long, env = "KRING_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The node's verifier key (name+keyid+key); without it signatures are not checked.
    #[arg(long, env = "KRING_AUDIT_KEY")]
    key: Option<String>,
    /// Checkpoints saved before (signed notes); the log must extend each.
    #[arg(long = "trusted")]
    trusted: Vec<PathBuf>,
}

fn key(raw: &str) -> anyhow::Result<NoteVerifier> {
    NoteVerifier::parse(raw).map_err(|e| anyhow::anyhow!("--key: {e}"))
}

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Search(args) => {
            let mut client = args.connection.connect().await?;
            let response = client
                .audit
                .search(proto::AuditSearchRequest {
                    from_unix_ms: args.from_unix_ms,
                    until_unix_ms: args.until_unix_ms,
                    actor: args.actor,
                    action: args.action.map(|a| convert::action_to_proto(a) as i32),
                    subject_bsn: args.subject_bsn.map(bsn_arg).transpose()?,
                    subject_pseudonym: args.subject_pseudonym,
                    purpose: args.purpose.map(|p| convert::purpose_to_proto(p) as i32),
                    outcome: args.outcome.map(|o| convert::outcome_to_proto(o) as i32),
                    page_size: args.page_size,
                    page_token: args.page_token,
                })
                .await?
                .into_inner();
            for event in &response.events {
                println!("{}", render_event(event));
            }
            if !response.next_page_token.is_empty() {
                println!("more: --page-token {}", response.next_page_token);
            }
        }
        AuditCommand::Checkpoint { connection, save } => {
            let mut client = connection.connect().await?;
            let response = client
                .audit
                .checkpoint(proto::CheckpointRequest {})
                .await?
                .into_inner();
            print!("{}", response.signed_note);
            println!(
                "verifier key (pin it from a trusted source): {}",
                response.verifier_key
            );
            if let Some(path) = save {
                std::fs::write(&path, &response.signed_note)
                    .with_context(|| path.display().to_string())?;
            }
        }
        AuditCommand::Proof {
            connection,
            index,
            key: raw,
        } => {
            let mut client = connection.connect().await?;
            let proven = prove_event(&mut client.audit, &key(&raw)?, index).await?;
            println!("{}", render_event(&proven.event));
            println!(
                "included in the signed tree of {} events ({} proof hashes): verified",
                proven.checkpoint.size, proven.proof_hashes
            );
        }
        AuditCommand::Consistency {
            connection,
            saved,
            key: raw,
        } => {
            let key = key(&raw)?;
            let note =
                std::fs::read_to_string(&saved).with_context(|| saved.display().to_string())?;
            let old = checkpoint::open(&key, &note)?;
            let mut client = connection.connect().await?;
            let (new, hashes) = prove_extends(&mut client.audit, &key, &old).await?;
            println!(
                "the log at {} events extends the saved checkpoint at {} ({hashes} proof hashes): verified",
                new.size, old.size
            );
        }
        AuditCommand::Verify(args) => {
            let mut verifier = Verifier::new(args.key.as_deref().map(key).transpose()?);
            if let Some(key) = &args.key {
                let origin = key.split('+').next().unwrap_or_default().to_owned();
                verifier = verifier.expect_origin(origin);
            }
            for path in &args.trusted {
                let note =
                    std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
                let trusted = checkpoint::parse_unverified(&note)?;
                verifier = verifier.trust(trusted);
            }
            let report = match (&args.store, &args.node) {
                (Some(dir), _) => {
                    let store = SledStore::open(dir, &StoreOptions::default())
                        .with_context(|| format!("opening the store in {}", dir.display()))?;
                    verify::verify_store(&store, &verifier, None)
                }
                (None, Some(node)) => {
                    let connection = Connection {
                        node: node.clone(),
                        ca: args
                            .ca
                            .clone()
                            .ok_or_else(|| anyhow::anyhow!("--ca is required with --node"))?,
                        server_name: args.server_name.clone(),
                        token: args
                            .token
                            .clone()
                            .ok_or_else(|| anyhow::anyhow!("--token is required with --node"))?,
                    };
                    let mut client = connection.connect().await?;
                    verify_remote(&mut client.audit, &verifier).await?
                }
                (None, None) => anyhow::bail!("give --store DIR or --node HOST:PORT"),
            };
            println!("{}", render_report(&report));
            if !report.ok() {
                return Ok(ExitCode::from(2));
            }
        }
        AuditCommand::Export {
            connection,
            from,
            until,
        } => {
            let mut client = connection.connect().await?;
            let mut stream = client
                .audit
                .export(proto::ExportRequest {
                    from_index: from,
                    until_index: until,
                })
                .await?
                .into_inner();
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = stream.message().await? {
                for event in chunk.events {
                    out.write_all(&event.canonical)?;
                    out.write_all(b"\n")?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
