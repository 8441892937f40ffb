//! `kring audit`: a privacy officer's tools. `verify` trusts only the pinned verifier key and
//! checkpoints saved before, whether it reads a store or a node over the API. `break-glass`
//! and `review` work the review queue of emergency disclosures; `subject-access` gathers every
//! event about one person from the whole federation for an access request (AVG art. 15);
//! `reconcile` compares the logs of several nodes and names every exchange on record at one
//! end only.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::client::{Connection, bsn_arg};
use crate::api::client::{prove_event, prove_extends, verify_remote};
use crate::api::convert;
use crate::api::proto;
use crate::audit::{NoteVerifier, Verifier, checkpoint, fhir, verify};
use crate::cli_support::{AccessView, render_event, render_reconciliation, render_report};
use crate::domain::{Action, Oin, Outcome, Purpose, ReviewOutcome, ReviewReason, UnixMillis};
use crate::store::{SledStore, StoreError, StoreOptions, crypt};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Searches a node's audit log.
    Search(SearchArgs),
    /// Fetches the latest signed checkpoint (and saves it, to check later that the log extends it).
    /// With --cosigned, the latest checkpoint its witnesses cosigned, with their cosignatures,
    /// to check offline with `kring audit verify --checkpoint`.
    Checkpoint {
        #[command(flatten)]
        connection: Connection,
        #[arg(long)]
        save: Option<PathBuf>,
        /// The checkpoint with its witnesses' cosignatures.
        #[arg(long)]
        cosigned: bool,
        /// With --cosigned: the checkpoint of this tree size instead of the latest cosigned.
        #[arg(long, requires = "cosigned")]
        tree_size: Option<u64>,
    },
    /// The forks of members' audit logs this node found as a witness or was alerted to, and
    /// the logs it witnesses that went silent (no checkpoint pushed for an hour).
    Forks {
        #[command(flatten)]
        connection: Connection,
    },
    /// At the index, for an administrator: its key epoch and a rotation's progress; with
    /// --rotate, starts moving every person to the next epoch (the index keeps serving).
    IndexKey {
        #[command(flatten)]
        connection: Connection,
        /// Start a rotation, for this reason (recorded).
        #[arg(long, value_name = "REASON")]
        rotate: Option<String>,
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
    /// Writes the log's events as JSON lines (exactly the hashed bytes), or as FHIR R4
    /// AuditEvent resources, one line each (NDJSON).
    Export(ExportArgs),
    /// Break-glass disclosures of this organisation's data awaiting review (with --all, the
    /// reviewed ones too).
    BreakGlass {
        #[command(flatten)]
        connection: Connection,
        /// Include the items already reviewed.
        #[arg(long)]
        all: bool,
    },
    /// Records the review of a break-glass disclosure.
    Review(ReviewArgs),
    /// Subject access (AVG art. 15): every audit event about one person across the
    /// federation, as a report by organisation or as JSON.
    SubjectAccess(SubjectAccessArgs),
    /// Compares the audit logs of two or more running nodes and reports every exchange that
    /// one node recorded with another and the other did not. Exits 2 when any is found.
    Reconcile(ReconcileArgs),
}

#[derive(Debug, Args)]
#[command(after_help = "\
The node pseudonymises the BSN and asks every member of the federation for its audit events
about the person under purpose subject_access; the BSN itself never leaves the node. The report
shows, per organisation and in time order, who (principal, role, organisation) did what, when
(Amsterdam time and RFC 3339), for which purpose on which legal basis, and whether it was a
break-glass access; then the organisations that did not answer. Exits 2 when any did not.

Example:
  echo 111222333 | kring audit subject-access --ca pki/ca.crt --bsn - --format text")]
pub struct SubjectAccessArgs {
    #[command(flatten)]
    connection: Connection,
    /// The person's BSN, or - to read it from standard input (keeps it out of shell history).
    #[arg(long)]
    bsn: String,
    #[arg(long, value_enum, default_value_t = AccessFormat::Text)]
    format: AccessFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AccessFormat {
    /// A readable report, grouped by organisation.
    Text,
    /// One JSON document.
    Json,
}

#[derive(Debug, Args)]
pub struct ReviewArgs {
    #[command(flatten)]
    connection: Connection,
    /// The break-glass item's id, from `kring audit break-glass`.
    #[arg(long)]
    id: String,
    /// justified or unjustified.
    #[arg(long)]
    outcome: ReviewOutcome,
    /// acute_danger_confirmed, proportionate, no_acute_danger, wrong_person, excessive_scope,
    /// other.
    #[arg(long)]
    reason: ReviewReason,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Each node is given as HOST:PORT=TOKEN: its local listener and a privacy officer's bearer token
there. The node's organisation (OIN) is learnt from its own log, from the actor of its
node.started events; two nodes of one organisation are refused. The server name checked in each
node's certificate is HOST. Tokens on a command line are visible to other users of the machine:
use example tokens only, or run this where that does not matter.

Example:
  kring audit reconcile --ca pki/ca.crt \\
      --node 127.0.0.1:7404=$SCHOOL_FG --node 127.0.0.1:7405=$GGD_FG --node 127.0.0.1:7402=$INDEX_FG")]
pub struct ReconcileArgs {
    /// A node to reconcile, HOST:PORT=TOKEN; give two or more.
    #[arg(long = "node", value_name = "HOST:PORT=TOKEN", required = true)]
    nodes: Vec<NodeToken>,
    /// Only exchanges recorded at or after this time (Unix milliseconds).
    #[arg(long)]
    from_unix_ms: Option<i64>,
    /// Only exchanges recorded before this time (Unix milliseconds); default: the moment the
    /// comparison begins, so that an exchange in flight while the logs are fetched is not
    /// reported as one-sided.
    #[arg(long)]
    until_unix_ms: Option<i64>,
    /// The CA certificate (PEM) that every node's certificate chains to.
    #[arg(long, env = "KRING_CA")]
    ca: PathBuf,
}

/// `HOST:PORT=TOKEN`.
#[derive(Debug, Clone)]
struct NodeToken {
    address: String,
    host: String,
    token: String,
}

impl std::str::FromStr for NodeToken {
    type Err = String;

    fn from_str(text: &str) -> Result<NodeToken, String> {
        let (address, token) = text
            .split_once('=')
            .ok_or("must be HOST:PORT=TOKEN (no = found)")?;
        let (host, port) = address
            .rsplit_once(':')
            .ok_or("must be HOST:PORT=TOKEN (no :PORT found)")?;
        port.parse::<u16>()
            .ok()
            .filter(|port| *port != 0)
            .ok_or("the port must be a number from 1 to 65535")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("the host is empty".into());
        }
        if token.is_empty() {
            return Err("the token is empty".into());
        }
        Ok(NodeToken {
            address: address.to_owned(),
            host: host.to_owned(),
            token: token.to_owned(),
        })
    }
}

#[derive(Debug, Args)]
#[command(after_help = "\
--format jsonl writes each event's canonical bytes, the bytes its leaf hash covers, so a line can
be checked against an inclusion proof. --format fhir writes FHIR R4 AuditEvent resources following
the IHE Basic Audit Log Patterns: one per subject (pseudonym), disclosures as Export at the source
and Import at the recipient. Its observer is the organisation that wrote the log: by default the
organisation of the log's node.started events (found with an audit search, itself audited).")]
pub struct ExportArgs {
    #[command(flatten)]
    connection: Connection,
    /// The first event's index.
    #[arg(long, default_value_t = 0)]
    from: u64,
    /// The index after the last event; 0 for the end of the durable log.
    #[arg(long, default_value_t = 0)]
    until: u64,
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    format: ExportFormat,
    /// With --format fhir: the OIN of the organisation whose node wrote the log, instead of
    /// learning it from the log.
    #[arg(long)]
    observer_oin: Option<Oin>,
    /// With --format fhir: that organisation's name, shown with its OIN.
    #[arg(long)]
    observer_name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// The canonical JSON lines, exactly the hashed bytes.
    Jsonl,
    /// FHIR R4 AuditEvent resources as NDJSON.
    Fhir,
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
#[command(after_help = "\
A cosigned checkpoint (kring audit checkpoint --cosigned --save FILE) is checked offline:
  kring audit verify --checkpoint FILE --log-key LOG_VKEY --witness-key W1_VKEY --witness-key W2_VKEY
The log key is the node's audit key as the directory pins it; a witness key is a cosignature/v1
vkey or the witness's audit key as the directory pins it. Exits 2 when anything fails.")]
pub struct VerifyArgs {
    /// A node's store directory (the node must be stopped).
    #[arg(long, conflicts_with_all = ["node", "checkpoint"])]
    store: Option<PathBuf>,
    /// A saved cosigned checkpoint, checked offline.
    #[arg(long, conflicts_with = "node", requires = "log_key")]
    checkpoint: Option<PathBuf>,
    /// With --checkpoint: the log's audit key (name+keyid+key).
    #[arg(long, requires = "checkpoint")]
    log_key: Option<String>,
    /// With --checkpoint: a witness's key (repeatable).
    #[arg(long = "witness-key", requires = "checkpoint")]
    witness_keys: Vec<String>,
    /// With --checkpoint: how many of the given witnesses must have cosigned (default: all).
    #[arg(long, requires = "checkpoint")]
    min_cosignatures: Option<usize>,
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
    /// A data key file of an encrypted store (repeatable: every key its values are sealed
    /// under). Each key's id is recognised from the store's own key checks.
    #[arg(long = "data-key", requires = "store")]
    data_keys: Vec<PathBuf>,
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
        AuditCommand::Checkpoint {
            connection,
            save,
            cosigned: true,
            tree_size,
        } => {
            let mut client = connection.connect().await?;
            let response = client
                .audit
                .cosigned_checkpoint(proto::CosignedCheckpointRequest {
                    tree_size: tree_size.unwrap_or(0),
                })
                .await?
                .into_inner();
            print!("{}", response.cosigned_note);
            println!("cosigned by: {}", response.witness_oins.join(", "));
            if let Some(path) = save {
                std::fs::write(&path, &response.cosigned_note)
                    .with_context(|| path.display().to_string())?;
            }
        }
        AuditCommand::IndexKey { connection, rotate } => {
            let mut client = connection.connect().await?;
            let status = match rotate {
                Some(reason) => client
                    .audit
                    .rotate_index_key(proto::RotateIndexKeyRequest { reason })
                    .await?
                    .into_inner(),
                None => client
                    .audit
                    .get_index_key_status(proto::IndexKeyStatusRequest {})
                    .await?
                    .into_inner(),
            };
            match status.next_epoch {
                0 => println!(
                    "index key epoch {}: {} persons",
                    status.epoch, status.persons_left
                ),
                next => println!(
                    "index key epoch {} rotating to {next}: {} persons moved, {} left",
                    status.epoch, status.persons_moved, status.persons_left
                ),
            }
        }
        AuditCommand::Forks { connection } => {
            let mut client = connection.connect().await?;
            let response = client
                .audit
                .list_forks(proto::ListForksRequest {})
                .await?
                .into_inner();
            if response.forks.is_empty() {
                println!("no forks of any member's audit log known here");
            }
            for fork in &response.forks {
                println!("{}", crate::cli_support::render_fork(fork));
            }
            for log in response.witnessed.iter().filter(|l| l.silent) {
                println!(
                    "silent: the log of {} has not pushed a checkpoint here since {} (tree size {}); a log that stops showing its checkpoints to its witnesses may be hiding a rewrite",
                    log.log_oin,
                    crate::domain::UnixMillis(log.last_heard_unix_ms).rfc3339(),
                    log.tree_size
                );
            }
            if !response.witnessed.is_empty() && response.witnessed.iter().all(|l| !l.silent) {
                println!("witnessing {} logs, none silent", response.witnessed.len());
            }
        }
        AuditCommand::Checkpoint {
            connection, save, ..
        } => {
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
        AuditCommand::Verify(args) if args.checkpoint.is_some() => {
            let path = args.checkpoint.as_ref().expect("matched");
            let note = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
            match crate::cli_support::verify_cosigned_checkpoint(
                &note,
                args.log_key.as_deref().unwrap_or_default(),
                &args.witness_keys,
                args.min_cosignatures,
            ) {
                Ok(report) => println!("{report}"),
                Err(problem) => {
                    println!("FAILED: {problem}");
                    return Ok(ExitCode::from(2));
                }
            }
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
                    let mut keys = Vec::new();
                    for path in &args.data_keys {
                        keys.push(
                            crypt::read_key_file(path)
                                .map_err(|e| anyhow::anyhow!("--data-key {e}"))?,
                        );
                    }
                    let store = SledStore::open_with_keys(dir, &StoreOptions::default(), keys)
                        .map_err(|e| match e {
                            StoreError::MissingDataKey { id } => anyhow::anyhow!(
                                "{e}: give the file of data key {id} with --data-key"
                            ),
                            e => e.into(),
                        })
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
        AuditCommand::Export(args) => export(args).await?,
        AuditCommand::BreakGlass { connection, all } => {
            let mut client = connection.connect().await?;
            let response = client
                .audit
                .break_glass_queue(proto::BreakGlassQueueRequest {
                    include_reviewed: all,
                })
                .await?
                .into_inner();
            if response.items.is_empty() {
                println!(
                    "{}",
                    if all {
                        "no break-glass disclosures of this organisation's data"
                    } else {
                        "no break-glass disclosures awaiting review"
                    }
                );
            }
            for item in &response.items {
                println!("{}", super::render::break_glass_item(item));
            }
        }
        AuditCommand::Review(args) => {
            let mut client = args.connection.connect().await?;
            let response = client
                .audit
                .review_break_glass(proto::ReviewBreakGlassRequest {
                    id: args.id,
                    outcome: convert::review_outcome_to_proto(args.outcome) as i32,
                    reason: convert::review_reason_to_proto(args.reason) as i32,
                })
                .await?
                .into_inner();
            match response.item {
                Some(item) => println!("{}", super::render::break_glass_item(&item)),
                None => anyhow::bail!("the node answered without the reviewed item"),
            }
        }
        AuditCommand::SubjectAccess(args) => {
            let mut client = args.connection.connect().await?;
            let report = client
                .audit
                .subject_access(proto::SubjectAccessLocalRequest {
                    subject_bsn: bsn_arg(args.bsn)?,
                    purpose: proto::Purpose::SubjectAccess as i32,
                })
                .await?
                .into_inner();
            let view =
                AccessView::new(&report).map_err(|e| anyhow::anyhow!("the node's report: {e}"))?;
            match args.format {
                AccessFormat::Text => print!("{}", view.render()),
                AccessFormat::Json => {
                    println!("{}", serde_json::to_string_pretty(&view.to_json())?);
                }
            }
            if report.sources.iter().any(|s| !s.answered) {
                return Ok(ExitCode::from(2));
            }
        }
        AuditCommand::Reconcile(args) => return reconcile(args).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// Streams the log's events to standard output in the chosen format.
async fn export(args: ExportArgs) -> anyhow::Result<()> {
    if args.format == ExportFormat::Jsonl
        && (args.observer_oin.is_some() || args.observer_name.is_some())
    {
        anyhow::bail!("--observer-oin and --observer-name apply to --format fhir only");
    }
    if args
        .observer_name
        .as_deref()
        .is_some_and(|n| n.trim().is_empty())
    {
        anyhow::bail!("--observer-name: must not be empty");
    }
    let mut client = args.connection.connect().await?;
    let observer = match args.format {
        ExportFormat::Jsonl => None,
        ExportFormat::Fhir => Some(fhir::Observer {
            oin: match args.observer_oin {
                Some(oin) => oin,
                None => started_by(&mut client.audit, &args.connection.node).await?,
            },
            name: args.observer_name,
        }),
    };
    let mut stream = client
        .audit
        .export(proto::ExportRequest {
            from_index: args.from,
            until_index: args.until,
        })
        .await?
        .into_inner();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    while let Some(chunk) = stream.message().await? {
        for event in chunk.events {
            let Some(observer) = &observer else {
                out.write_all(&event.canonical)?;
                out.write_all(b"\n")?;
                continue;
            };
            let decoded = crate::audit::event::decode(&event.canonical).with_context(|| {
                format!(
                    "event {}: its canonical bytes are not an event",
                    event.index
                )
            })?;
            for resource in fhir::to_fhir(&decoded, observer) {
                serde_json::to_writer(&mut out, &resource)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

/// The organisation that wrote a node's log, learnt from its `node.started` events through an
/// audit search.
async fn started_by(audit: &mut crate::api::client::Audit, address: &str) -> anyhow::Result<Oin> {
    let mut request = proto::AuditSearchRequest {
        action: Some(convert::action_to_proto(Action::NodeStarted) as i32),
        page_size: 1000,
        ..Default::default()
    };
    let mut started = Vec::new();
    loop {
        let page = audit
            .search(request.clone())
            .await
            .with_context(|| format!("{address}: searching its node.started events"))?
            .into_inner();
        for event in &page.events {
            started.push(
                crate::audit::event::decode(&event.canonical)
                    .with_context(|| format!("event {}", event.index))?,
            );
        }
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
    }
    log_owner(address, &started)
}

/// The organisation whose log this is: the actor of its `node.started` events, which the
/// node writes at every start under its own OIN.
fn log_owner(address: &str, events: &[crate::domain::AuditEvent]) -> anyhow::Result<Oin> {
    let mut owners = events
        .iter()
        .filter(|e| e.action == Action::NodeStarted)
        .map(|e| e.actor.organisation)
        .collect::<Vec<_>>();
    owners.sort();
    owners.dedup();
    match owners.as_slice() {
        [oin] => Ok(*oin),
        [] => anyhow::bail!(
            "{address}: its log has no node.started event, so its organisation is unknown"
        ),
        several => anyhow::bail!(
            "{address}: its node.started events name {} organisations ({}); a log belongs to one",
            several.len(),
            several
                .iter()
                .map(Oin::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Every event of a node's durable log, decoded from the exact bytes it hashed.
async fn export_events(
    audit: &mut crate::api::client::Audit,
) -> anyhow::Result<Vec<crate::domain::AuditEvent>> {
    let mut stream = audit
        .export(proto::ExportRequest {
            from_index: 0,
            until_index: 0,
        })
        .await?
        .into_inner();
    let mut events = Vec::new();
    while let Some(chunk) = stream.message().await? {
        for event in chunk.events {
            events.push(
                crate::audit::event::decode(&event.canonical)
                    .with_context(|| format!("event {}", event.index))?,
            );
        }
    }
    Ok(events)
}

async fn reconcile(args: ReconcileArgs) -> anyhow::Result<ExitCode> {
    use crate::clock::Clock;
    if args.nodes.len() < 2 {
        anyhow::bail!("--node: give two or more nodes to reconcile");
    }
    let from = args.from_unix_ms.map(UnixMillis);
    // Exchanges after this moment may be on record at a node exported earlier and not yet at
    // one exported later; they are left to the next reconciliation.
    let until = UnixMillis(
        args.until_unix_ms
            .unwrap_or(crate::clock::SystemClock.now().0),
    );
    if from.is_some_and(|from| from >= until) {
        anyhow::bail!("--from-unix-ms must be before --until-unix-ms (or now)");
    }
    let roots =
        crate::tls::load_roots(&args.ca).with_context(|| format!("--ca {}", args.ca.display()))?;
    let mut logs: Vec<(Oin, Vec<crate::domain::AuditEvent>)> = Vec::new();
    let mut addresses: Vec<&str> = Vec::new();
    for node in &args.nodes {
        let mut client = crate::api::client::LocalClient::connect(
            &node.address,
            &node.host,
            roots.clone(),
            Some(&node.token),
        )
        .await
        .with_context(|| format!("connecting to {}", node.address))?;
        let events = export_events(&mut client.audit)
            .await
            .with_context(|| format!("{}: exporting its audit log", node.address))?;
        let oin = log_owner(&node.address, &events)?;
        if let Some(i) = logs.iter().position(|(seen, _)| *seen == oin) {
            anyhow::bail!(
                "{} and {} are the same organisation ({oin}); give each node once",
                addresses[i],
                node.address
            );
        }
        println!("{:<24} {oin}  {} events", node.address, events.len());
        logs.push((oin, events));
        addresses.push(&node.address);
    }
    println!(
        "exchanges recorded from {} until {}",
        from.map(UnixMillis::rfc3339)
            .unwrap_or_else(|| "the beginning".into()),
        until.rfc3339()
    );
    let report = crate::audit::reconcile::reconcile(&logs, from, Some(until));
    println!("{}", render_reconciliation(&report).trim_end());
    Ok(if report.clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}
