//! `kring signal`: a professional's view of the organisation's own signals.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::client::{Connection, bsn_arg};
use crate::api::convert;
use crate::api::proto;
use crate::cli_support::render_signal;
use crate::domain::{Category, MeldcodeStep, Relation, Severity, UnixMillis, WithdrawReason};

#[derive(Debug, Subcommand)]
pub enum SignalCommand {
    Register(RegisterArgs),
    Update(UpdateArgs),
    Withdraw(WithdrawArgs),
    List(ListArgs),
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
    }
    Ok(ExitCode::SUCCESS)
}
