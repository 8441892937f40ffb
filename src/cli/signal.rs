//! `kring signal`: a professional's view of the organisation's own signals, the melding to
//! Veilig Thuis, and the match notices the federation sends about them.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::client::{Connection, bsn_arg};
use crate::api::convert;
use crate::api::proto;
use crate::cli_support::{render_match_event, render_signal};
use crate::domain::{Category, MeldcodeStep, Relation, Severity, UnixMillis, WithdrawReason};

#[derive(Debug, Subcommand)]
pub enum SignalCommand {
    Register(RegisterArgs),
    Update(UpdateArgs),
    Withdraw(WithdrawArgs),
    List(ListArgs),
    /// Meldcode step 5: hands a signal to Veilig Thuis (delivered until acknowledged).
    Report(ReportArgs),
    /// Prints match notices as they arrive, each with its cursor, until Ctrl-C or the node
    /// ends the stream. `--after CURSOR` resumes after the last notice seen.
    Watch(WatchArgs),
    /// The organisation's current matches.
    Matches {
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    connection: Connection,
    /// The signal to report; it must be at meldcode step 5 (beslissen).
    #[arg(long)]
    id: String,
    /// The signal's subject's BSN typed again (or - for standard input): it confirms the
    /// signal and lets Veilig Thuis find the person.
    #[arg(long)]
    subject_bsn: String,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    connection: Connection,
    /// Resume after this cursor (the last one printed); 0 for every notice kept.
    #[arg(long, default_value_t = 0)]
    after: u64,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    connection: Connection,
    /// The subject's BSN, or - to read it from standard input.
    #[arg(long)]
    subject_bsn: String,
    /// A related person as BSN:relation (parent, child, partner, ex_partner, sibling,
    /// household_member); repeatable.
    #[arg(long = "related")]
    related: Vec<String>,
    #[arg(long)]
    category: Category,
    #[arg(long)]
    severity: Severity,
    #[arg(long, default_value = "1_signalen")]
    step: MeldcodeStep,
    #[arg(long)]
    contact_point: String,
    /// The day the subject leaves the organisation's statutory age range (YYYY-MM-DD), if it
    /// records one: the signal expires at its start if that is before its retention ends.
    #[arg(long)]
    age_range_ends_on: Option<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    id: String,
    #[arg(long)]
    step: Option<MeldcodeStep>,
    #[arg(long)]
    severity: Option<Severity>,
    #[arg(long, default_value_t = 0)]
    expected_version: u32,
}

#[derive(Debug, Args)]
pub struct WithdrawArgs {
    #[command(flatten)]
    connection: Connection,
    #[arg(long)]
    id: String,
    #[arg(long)]
    reason: WithdrawReason,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    connection: Connection,
    /// Only signals naming this person (BSN, or - for standard input).
    #[arg(long)]
    person_bsn: Option<String>,
    #[arg(long)]
    category: Option<Category>,
    #[arg(long)]
    severity: Option<Severity>,
    #[arg(long)]
    step: Option<MeldcodeStep>,
    #[arg(long, default_value_t = 50)]
    page_size: u32,
    #[arg(long, default_value = "")]
    page_token: String,
}

pub async fn run(command: SignalCommand) -> anyhow::Result<ExitCode> {
    match command {
        SignalCommand::Register(args) => {
            let mut client = args.connection.connect().await?;
            let mut related = Vec::new();
            for entry in args.related {
                let (bsn, relation) = entry
                    .split_once(':')
                    .ok_or_else(|| anyhow::anyhow!("--related takes BSN:relation"))?;
                let relation: Relation = relation.parse()?;
                related.push(proto::RelatedPerson {
                    bsn: bsn.to_owned(),
                    relation: convert::relation_to_proto(relation) as i32,
                });
            }
            let response = client
                .signals
                .register(proto::RegisterRequest {
                    subject_bsn: bsn_arg(args.subject_bsn)?,
                    related,
                    category: convert::category_to_proto(args.category) as i32,
                    severity: convert::severity_to_proto(args.severity) as i32,
                    meldcode_step: convert::step_to_proto(args.step) as i32,
                    contact_point: args.contact_point,
                    age_range_ends_on: args.age_range_ends_on,
                })
                .await?
                .into_inner();
            if let Some(signal) = response.signal {
                println!("registered {}", render_signal(&signal));
            }
            println!("transaction {}", response.transaction_id);
        }
        SignalCommand::Update(args) => {
            let mut client = args.connection.connect().await?;
            let response = client
                .signals
                .update(proto::UpdateRequest {
                    signal_id: args.id,
                    meldcode_step: args.step.map(|s| convert::step_to_proto(s) as i32),
                    severity: args.severity.map(|s| convert::severity_to_proto(s) as i32),
                    expected_version: args.expected_version,
                })
                .await?
                .into_inner();
            if let Some(signal) = response.signal {
                println!("updated {}", render_signal(&signal));
            }
        }
        SignalCommand::Withdraw(args) => {
            let mut client = args.connection.connect().await?;
            let response = client
                .signals
                .withdraw(proto::WithdrawRequest {
                    signal_id: args.id,
                    reason: convert::withdraw_reason_to_proto(args.reason) as i32,
                })
                .await?
                .into_inner();
            println!(
                "withdrawn {} at {}",
                response.signal_id,
                UnixMillis(response.withdrawn_at_unix_ms).rfc3339()
            );
        }
        SignalCommand::List(args) => {
            let mut client = args.connection.connect().await?;
            let response = client
                .signals
                .list(proto::ListRequest {
                    person_bsn: args.person_bsn.map(bsn_arg).transpose()?,
                    category: args.category.map(|c| convert::category_to_proto(c) as i32),
                    severity: args.severity.map(|s| convert::severity_to_proto(s) as i32),
                    meldcode_step: args.step.map(|s| convert::step_to_proto(s) as i32),
                    page_size: args.page_size,
                    page_token: args.page_token,
                    ..Default::default()
                })
                .await?
                .into_inner();
            for signal in &response.signals {
                println!("{}", render_signal(signal));
            }
            if !response.next_page_token.is_empty() {
                println!("more: --page-token {}", response.next_page_token);
            }
        }
        SignalCommand::Report(args) => {
            let mut client = args.connection.connect().await?;
            let response = client
                .signals
                .report_to_veilig_thuis(proto::ReportRequest {
                    signal_id: args.id,
                    subject_bsn: bsn_arg(args.subject_bsn)?,
                })
                .await?
                .into_inner();
            println!(
                "melding of signal {} queued for Veilig Thuis ({}); delivered until acknowledged",
                response.signal_id, response.veilig_thuis_oin
            );
            println!("transaction {}", response.transaction_id);
        }
        SignalCommand::Watch(args) => return watch(args).await,
        SignalCommand::Matches { connection } => {
            let mut client = connection.connect().await?;
            let response = client
                .signals
                .list_matches(proto::ListMatchesRequest {})
                .await?
                .into_inner();
            if response.matches.is_empty() {
                println!("no matches");
            }
            for info in response.matches {
                let event = proto::MatchEvent {
                    event: Some(proto::match_event::Event::Match(info)),
                    ..Default::default()
                };
                println!("{}", render_match_event(&event));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Follows the notice stream until Ctrl-C, SIGTERM or its end; an error on the stream (the
/// node went away) is an error, so that a supervisor can restart with `--after`.
async fn watch(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let mut client = args.connection.connect().await?;
    let mut stream = client
        .signals
        .watch_matches(proto::WatchMatchesRequest {
            after_cursor: args.after,
        })
        .await?
        .into_inner();
    let mut last = args.after;
    let stop = crate::cli_support::wait_for_signal();
    tokio::pin!(stop);
    let ended = loop {
        let next = tokio::select! {
            _ = &mut stop => break "stopped",
            next = stream.message() => next,
        };
        match next {
            Ok(Some(event)) => {
                last = event.cursor;
                println!(
                    "cursor {}  {}  {}",
                    event.cursor,
                    UnixMillis(event.received_unix_ms).rfc3339(),
                    render_match_event(&event)
                );
            }
            Ok(None) => break "the node ended the stream",
            Err(status) => {
                return Err(anyhow::Error::from(status).context(format!(
                    "the notice stream broke; resume with --after {last}"
                )));
            }
        }
    };
    eprintln!("{ended}; resume with --after {last}");
    Ok(ExitCode::SUCCESS)
}
