//! `kring cases`: Veilig Thuis analysts and coordinators working on a person and their
//! household, always for one declared purpose: the linked-signals map, break-glass, regie,
//! waakvlam follow-up and received meldingen. What may be asked and what comes back is decided
//! by the federation's purpose policy at the index and at every source, not here.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::client::{Connection, bsn_arg};
use super::render;
use crate::api::convert;
use crate::api::proto;
use crate::cli_support::render_map;
use crate::domain::{BreakGlassReason, Purpose};

#[derive(Debug, Subcommand)]
pub enum CasesCommand {
    /// The linked signals of a person (and household, where the purpose allows), as a map:
    /// persons, organisations by ring, the fields the purpose discloses, regie, contacts.
    LinkedSignals(LinkedSignalsArgs),
    /// Acute danger: the emergency profile of a person and household. Always goes through for
    /// the roles the policy allows, and is flagged for review at every source organisation.
    BreakGlass(BreakGlassArgs),
    /// Claims the coordinator role (regie) for a person's household; one holder at a time.
    ClaimRegie(PersonArgs),
    /// Releases the coordinator role this organisation holds.
    ReleaseRegie(PersonArgs),
    /// Puts a person's household in waakvlam follow-up for a number of days: a new signal on
    /// any member alerts the coordinator at once.
    StartWaakvlam(StartWaakvlamArgs),
    /// The households in waakvlam follow-up that this organisation coordinates, with due
    /// check-ins.
    Waakvlam {
        #[command(flatten)]
        connection: Connection,
    },
    /// Meldingen received (Veilig Thuis nodes).
    Meldingen {
        #[command(flatten)]
        connection: Connection,
    },
}

#[derive(Debug, Args)]
pub struct LinkedSignalsArgs {
    #[command(flatten)]
    connection: Connection,
    /// The declared purpose (doelbinding), e.g. vt_triage, local_team_coordination,
    /// mda_case_conference, waakvlam_follow_up.
    #[arg(long)]
    purpose: Purpose,
    /// The person's BSN, or - to read it from standard input.
    #[arg(long)]
    person_bsn: String,
    /// Include the person's household, where the purpose allows it.
    #[arg(long)]
    household: bool,
}

#[derive(Debug, Args)]
pub struct BreakGlassArgs {
    #[command(flatten)]
    connection: Connection,
    /// The person's BSN, or - to read it from standard input.
    #[arg(long)]
    person_bsn: String,
    /// Why the glass is broken: acute_danger_child, acute_danger_adult, imminent_violence,
    /// missing_person, other.
    #[arg(long)]
    reason: BreakGlassReason,
}

#[derive(Debug, Args)]
pub struct PersonArgs {
    #[command(flatten)]
    connection: Connection,
    /// The person's BSN, or - to read it from standard input.
    #[arg(long)]
    person_bsn: String,
}

#[derive(Debug, Args)]
pub struct StartWaakvlamArgs {
    #[command(flatten)]
    connection: Connection,
    /// The person's BSN, or - to read it from standard input.
    #[arg(long)]
    person_bsn: String,
    /// How long the follow-up lasts; the policy sets the maximum.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    days: u32,
}

pub async fn run(command: CasesCommand) -> anyhow::Result<ExitCode> {
    match command {
        CasesCommand::LinkedSignals(args) => {
            let mut client = args.connection.connect().await?;
            let map = client
                .cases
                .linked_signals(proto::LinkedSignalsRequest {
                    purpose: convert::purpose_to_proto(args.purpose) as i32,
                    person_bsn: bsn_arg(args.person_bsn)?,
                    household: args.household,
                })
                .await?
                .into_inner();
            print!("{}", render_map(&map));
        }
        CasesCommand::BreakGlass(args) => {
            let mut client = args.connection.connect().await?;
            let map = client
                .cases
                .break_glass(proto::BreakGlassRequest {
                    person_bsn: bsn_arg(args.person_bsn)?,
                    reason: convert::break_glass_to_proto(args.reason) as i32,
                })
                .await?
                .into_inner();
            print!("{}", render_map(&map));
        }
        CasesCommand::ClaimRegie(args) => {
            let mut client = args.connection.connect().await?;
            let response = client
                .cases
                .claim_regie(proto::CaseRequest {
                    person_bsn: bsn_arg(args.person_bsn)?,
                })
                .await?
                .into_inner();
            println!("{}", render::regie(response.regie.as_ref()));
        }
        CasesCommand::ReleaseRegie(args) => {
            let mut client = args.connection.connect().await?;
            let response = client
                .cases
                .release_regie(proto::CaseRequest {
                    person_bsn: bsn_arg(args.person_bsn)?,
                })
                .await?
                .into_inner();
            println!("released; {}", render::regie(response.regie.as_ref()));
        }
        CasesCommand::StartWaakvlam(args) => {
            let mut client = args.connection.connect().await?;
            let response = client
                .cases
                .start_waakvlam(proto::StartWaakvlamLocalRequest {
                    person_bsn: bsn_arg(args.person_bsn)?,
                    days: args.days,
                })
                .await?
                .into_inner();
            match response.entry {
                Some(entry) => println!("waakvlam started: {}", render::waakvlam(&entry)),
                None => anyhow::bail!("the node answered without the waakvlam entry"),
            }
        }
        CasesCommand::Waakvlam { connection } => {
            let mut client = connection.connect().await?;
            let response = client
                .cases
                .list_waakvlam(proto::ListWaakvlamLocalRequest {})
                .await?
                .into_inner();
            if response.entries.is_empty() {
                println!("no households in waakvlam follow-up");
            }
            for entry in &response.entries {
                println!("{}", render::waakvlam(entry));
            }
        }
        CasesCommand::Meldingen { connection } => {
            let mut client = connection.connect().await?;
            let response = client
                .cases
                .list_meldingen(proto::ListMeldingenRequest {})
                .await?
                .into_inner();
            if response.meldingen.is_empty() {
                println!("no meldingen received");
            }
            for received in &response.meldingen {
                println!("{}", render::melding(received));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
