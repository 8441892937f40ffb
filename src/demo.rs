//! The embedded default: `kring demo` starts a node on loopback with a generated development
//! PKI and a temporary store, and plays a short scenario over real gRPC and TLS, printing an
//! account a person can follow. `--serve` keeps the node up for other clients afterwards.
//!
//! [`DevOrganisation`] and [`dev_node`] build complete node configurations in memory; the
//! integration tests use them too.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::api::client::{ClientError, verify_remote};
use crate::api::proto;
use crate::audit::Verifier;
use crate::auth::{Principal, Principals, new_token, token_hash};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{AuditSettings, Config, ContactPoint, LogFormat, Organisation, default_origin};
use crate::devnet::{DevFederation, DevMember, RunningFederation};
use crate::directory::NodeRole;
use crate::domain::{ContactPointId, Oin, OrgType, PrincipalId, Role, UnixMillis};
use crate::pki::{DevCa, NodeCertRequest};
use crate::store::StoreOptions;
use crate::tls::TlsIdentity;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("{0}")]
    Setup(String),
    #[error("node: {0}")]
    Node(#[from] crate::node::NodeError),
    #[error("client: {0}")]
    Client(#[from] crate::api::client::ClientError),
    #[error("the scenario went wrong: {0}")]
    Scenario(String),
}

fn setup(e: impl std::fmt::Display) -> DemoError {
    DemoError::Setup(e.to_string())
}

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Keep the node running for other clients after the scenario (Ctrl-C stops it).
    #[arg(long)]
    pub serve: bool,
    /// Where the node keeps its store (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// An organisation for a development node.
#[derive(Debug, Clone)]
pub struct DevOrganisation {
    pub name: String,
    pub oin: Oin,
    pub org_type: OrgType,
    /// Principals and their roles.
    pub principals: Vec<(String, Vec<Role>)>,
}

impl DevOrganisation {
    pub fn new(name: &str, oin: &str, org_type: OrgType) -> DevOrganisation {
        DevOrganisation {
            name: name.to_owned(),
            oin: Oin::parse(oin).expect("development OINs are valid"),
            org_type,
            principals: Vec::new(),
        }
    }

    pub fn principal(mut self, id: &str, roles: &[Role]) -> Self {
        self.principals.push((id.to_owned(), roles.to_vec()));
        self
    }
}

/// A node configuration with everything generated, and the tokens of its principals.
#[derive(Debug)]
pub struct DevNode {
    pub config: Config,
    pub tokens: BTreeMap<String, String>,
}

/// Configures a node for `organisation` listening on 127.0.0.1 (port 0 unless given), with a
/// certificate from `ca`, a fresh audit key and a token per principal.
pub fn dev_node(
    ca: &DevCa,
    organisation: &DevOrganisation,
    data_dir: &Path,
) -> Result<DevNode, DemoError> {
    let issued = ca
        .issue(&NodeCertRequest::loopback(
            &organisation.name,
            organisation.oin,
            30,
        ))
        .map_err(setup)?;
    let local_tls = TlsIdentity::from_pem(issued.cert_pem.as_bytes(), issued.key_pem.as_bytes())
        .map_err(setup)?;
    dev_node_with(organisation, data_dir, local_tls)
}

/// As [`dev_node`], with a given TLS identity for the local listener.
pub fn dev_node_with(
    organisation: &DevOrganisation,
    data_dir: &Path,
    local_tls: TlsIdentity,
) -> Result<DevNode, DemoError> {
    let mut tokens = BTreeMap::new();
    let mut principals = Vec::new();
    for (id, roles) in &organisation.principals {
        let token = new_token();
        principals.push((
            token_hash(&token),
            Principal {
                id: PrincipalId::parse(id).map_err(setup)?,
                roles: roles.clone(),
            },
        ));
        tokens.insert(id.clone(), token);
    }
    let config = Config {
        organisation: Organisation {
            name: organisation.name.clone(),
            oin: organisation.oin,
            org_type: organisation.org_type,
        },
        data_dir: data_dir.to_owned(),
        secret_file: data_dir.join("node.secret"),
        listen: "127.0.0.1:0".parse().expect("a valid address"),
        local_tls,
        max_message_bytes: crate::config::DEFAULT_MAX_MESSAGE_BYTES,
        audit: AuditSettings {
            signing_key_pkcs8: crate::audit::note::generate_pkcs8(),
            origin: default_origin(&organisation.oin),
            checkpoint_every_events: 100,
            checkpoint_every: Duration::from_secs(2),
        },
        signal_retention_millis: i64::from(crate::config::DEFAULT_RETENTION_DAYS) * UnixMillis::DAY,
        sweep_every: Duration::from_secs(60),
        witness_every: Duration::from_secs(crate::config::DEFAULT_WITNESS_SECS),
        // In the clear, as a configuration without `data_keys`; `devnet` seals its nodes'.
        store: StoreOptions {
            cache_bytes: 16 * 1024 * 1024,
            keyring: None,
        },
        log_format: LogFormat::Text,
        log_level: "warn".into(),
        contact_points: vec![ContactPoint {
            id: ContactPointId::parse("aandachtsfunctionaris").map_err(setup)?,
            name: format!("Aandachtsfunctionaris {}", organisation.name),
            phone: Some("+31 26 000 0000".into()),
            email: None,
        }],
        principals: Principals::new(principals),
        federation: None,
    };
    Ok(DevNode { config, tokens })
}

/// Prints the story, one numbered step at a time.
struct Story {
    step: usize,
}

impl Story {
    fn step(&mut self, title: &str) {
        self.step += 1;
        println!("\n{}. {title}", self.step);
    }

    fn line(&self, text: impl AsRef<str>) {
        for line in text.as_ref().lines() {
            println!("   {line}");
        }
    }
}

const CHILD: &str = "111222333";
const MOTHER: &str = "123456782";
const FATHER: &str = "999999990";

fn scenario(e: impl std::fmt::Display) -> DemoError {
    DemoError::Scenario(e.to_string())
}

/// The members of the demo federation, in start order.
pub fn demo_members() -> Vec<DevMember> {
    use NodeRole::*;
    let fg = |o: DevOrganisation| o.principal("fg", &[Role::PrivacyOfficer]);
    vec![
        DevMember::new(
            "authority",
            fg(DevOrganisation::new(
                "Federatiebeheer Samen Veilig",
                "00000001820000000300",
                OrgType::FederationService,
            )),
            &[Authority],
        ),
        DevMember::new(
            "pseudonyms",
            fg(DevOrganisation::new(
                "Pseudoniemdienst Samen Veilig (sleutel A)",
                "00000001820000000200",
                OrgType::FederationService,
            )),
            &[PseudonymService],
        ),
        DevMember::new(
            "pseudonyms-b",
            fg(DevOrganisation::new(
                "Pseudoniemdienst Samen Veilig (sleutel B)",
                "00000001820000000210",
                OrgType::FederationService,
            )),
            &[PseudonymService],
        ),
        DevMember::new(
            "index",
            fg(DevOrganisation::new(
                "Verwijsindex Samen Veilig",
                "00000001820000000100",
                OrgType::FederationService,
            ))
            .principal("beheer", &[Role::Admin]),
            &[Index],
        ),
        DevMember::new(
            "veilig-thuis",
            fg(DevOrganisation::new(
                "Veilig Thuis Gelderland-Midden",
                "00000001820000004000",
                OrgType::VeiligThuis,
            ))
            .principal("l.smit", &[Role::Analyst, Role::Coordinator]),
            &[Organisation],
        ),
        DevMember::new(
            "school",
            fg(DevOrganisation::new(
                "Basisschool De Regenboog",
                "00000001820000001000",
                OrgType::School,
            ))
            .principal("m.jansen", &[Role::Signaler, Role::Coordinator]),
            &[Organisation],
        ),
        DevMember::new(
            "ggd",
            fg(DevOrganisation::new(
                "GGD Gelderland-Zuid",
                "00000001820000002000",
                OrgType::Ggd,
            ))
            .principal("a.devries", &[Role::Signaler]),
            &[Organisation],
        ),
        DevMember::new(
            "huisarts",
            fg(DevOrganisation::new(
                "Huisartsenpraktijk Presikhaaf",
                "00000001820000005000",
                OrgType::Huisarts,
            ))
            .principal("h.bos", &[Role::Signaler]),
            &[Organisation],
        ),
        DevMember::new(
            "lokaal-team",
            fg(DevOrganisation::new(
                "Lokaal team Arnhem-Oost",
                "00000001820000006000",
                OrgType::LocalTeam,
            ))
            .principal("p.smit", &[Role::Coordinator, Role::Signaler]),
            &[Organisation],
        ),
        DevMember::new(
            "reclassering",
            fg(DevOrganisation::new(
                "Reclassering Nederland, unit Arnhem",
                "00000001820000003000",
                OrgType::Probation,
            ))
            .principal("r.bakker", &[Role::Signaler]),
            &[Organisation],
        ),
    ]
}

fn register(
    subject: &str,
    related: &[(&str, proto::Relation)],
    category: proto::Category,
    severity: proto::Severity,
) -> proto::RegisterRequest {
    proto::RegisterRequest {
        subject_bsn: subject.into(),
        related: related
            .iter()
            .map(|(bsn, relation)| proto::RelatedPerson {
                bsn: (*bsn).into(),
                relation: *relation as i32,
            })
            .collect(),
        category: category as i32,
        severity: severity as i32,
        meldcode_step: proto::MeldcodeStep::Signalen as i32,
        contact_point: "aandachtsfunctionaris".into(),
        age_range_ends_on: None,
    }
}

type Watch = tonic::Streaming<proto::MatchEvent>;

/// The next notice on a subscriber's stream, within a few seconds.
async fn next_notice(watch: &mut Watch) -> Result<proto::MatchEvent, DemoError> {
    tokio::time::timeout(Duration::from_secs(10), watch.message())
        .await
        .map_err(|_| scenario("no notice arrived within ten seconds"))?
        .map_err(|e| scenario(format!("notice stream: {e}")))?
        .ok_or_else(|| scenario("the notice stream ended"))
}

/// Runs the demo: start the federation, play the story, verify and reconcile, then stop
/// (or serve until Ctrl-C).
pub async fn run(args: DemoArgs) -> Result<ExitCode, DemoError> {
    let temp;
    let base = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("kring-demo-")
                .tempdir()
                .map_err(setup)?;
            temp.path().to_owned()
        }
    };
    let clock: SharedClock = Arc::new(SystemClock);
    let planned = DevFederation::plan(&demo_members(), &base, clock.now())?;
    let federation = planned.start(clock.clone()).await?;

    println!("kring demo: a whole federation in one process, every node a real gRPC server on");
    println!("loopback with its own certificate, store and audit log; nodes talk mutual TLS,");
    println!("pinned in a directory signed by the authority.\n");
    for (key, node) in &federation.nodes {
        let member = federation.nodes[key]
            .federation()
            .and_then(|f| f.directory().member(&node.organisation()).cloned());
        if let Some(m) = member {
            println!(
                "   {:<40} {:<20} ring: {:<46} peer {}",
                m.name,
                m.org_type.to_string(),
                m.org_type.ring().label(),
                node.peer_addr().map(|a| a.to_string()).unwrap_or_default()
            );
        }
    }

    if let Err(e) = play_story(&federation).await {
        let _ = federation.shutdown().await;
        return Err(e);
    }
    if args.serve {
        let ca_path = base.join("ca.crt");
        std::fs::write(&ca_path, federation.ca.cert_pem()).map_err(setup)?;
        println!("\nServing until Ctrl-C. Every node's local API, with its principals' tokens:");
        for (key, node) in &federation.nodes {
            println!("   {key:<14} {}", node.local_addr());
            for (principal, token) in &federation.tokens[key] {
                println!("      {principal:<10} {token}");
            }
        }
        println!("   CA certificate: {}", ca_path.display());
        println!(
            "   e.g. KRING_CA={} KRING_NODE=<address> KRING_TOKEN=<token> kring signal list",
            ca_path.display()
        );
        crate::cli_support::wait_for_signal().await;
    }
    federation.shutdown().await?;
    println!(
        "\nDone: the federation stopped gracefully; every exchange above is on record at both ends."
    );
    Ok(ExitCode::SUCCESS)
}

/// Plays the demo's story on a running federation of [`demo_members`], printing each step:
/// the flows, witnessing, and every log verified and reconciled at the end.
pub async fn play_story(federation: &RunningFederation) -> Result<(), DemoError> {
    let mut story = Story { step: 0 };
    play(&mut story, federation).await?;
    witness_all(&mut story, federation).await?;
    verify_all(&mut story, federation).await
}

async fn play(story: &mut Story, federation: &RunningFederation) -> Result<(), DemoError> {
    let mut school = federation.client("school", "m.jansen").await?;
    let mut ggd = federation.client("ggd", "a.devries").await?;
    let mut reclassering = federation.client("reclassering", "r.bakker").await?;
    let mut lokaal_team = federation.client("lokaal-team", "p.smit").await?;
    let mut vt = federation.client("veilig-thuis", "l.smit").await?;
    let mut watch_school = school
        .signals
        .watch_matches(proto::WatchMatchesRequest { after_cursor: 0 })
        .await
        .map_err(ClientError::from)?
        .into_inner();
    let mut watch_ggd = ggd
        .signals
        .watch_matches(proto::WatchMatchesRequest { after_cursor: 0 })
        .await
        .map_err(ClientError::from)?
        .into_inner();

    story.step("The school's aandachtsfunctionaris worries about a child (niet-pluis)");
    let school_signal = school
        .signals
        .register(register(
            CHILD,
            &[(MOTHER, proto::Relation::Parent)],
            proto::Category::NietPluis,
            proto::Severity::NietPluis,
        ))
        .await
        .map_err(ClientError::from)?
        .into_inner()
        .signal
        .ok_or_else(|| scenario("no signal"))?;
    story.line(format!(
        "signal {} at the school; the child is only a pseudonym there ({:.10}…), the BSN is gone",
        school_signal.id, school_signal.subject
    ));

    story.step("The GGD registers a signal on the mother");
    ggd.signals
        .register(register(
            MOTHER,
            &[(CHILD, proto::Relation::Child)],
            proto::Category::Psychological,
            proto::Severity::Zorg,
        ))
        .await
        .map_err(ClientError::from)?;
    story.line("both organisations are told, each on its subscriber stream:");
    story.line(format!(
        "school: {}",
        crate::cli_support::render_match_event(&next_notice(&mut watch_school).await?)
    ));
    story.line(format!(
        "GGD:    {}",
        crate::cli_support::render_match_event(&next_notice(&mut watch_ggd).await?)
    ));
    story.line(
        "(neither learns the other's category or severity: who, their ring, how to reach them)",
    );

    story.step("Reclassering registers on the father, the mother's ex-partner");
    reclassering
        .signals
        .register(register(
            FATHER,
            &[
                (MOTHER, proto::Relation::ExPartner),
                (CHILD, proto::Relation::Child),
            ],
            proto::Category::CoerciveControl,
            proto::Severity::Ernstig,
        ))
        .await
        .map_err(ClientError::from)?;
    story.line(format!(
        "school: {}",
        crate::cli_support::render_match_event(&next_notice(&mut watch_school).await?)
    ));
    story.line(format!(
        "GGD:    {}",
        crate::cli_support::render_match_event(&next_notice(&mut watch_ggd).await?)
    ));

    story.step("The local team claims regie: one coordinator for the family, visible to all");
    let regie = lokaal_team
        .cases
        .claim_regie(proto::CaseRequest {
            person_bsn: CHILD.into(),
        })
        .await
        .map_err(ClientError::from)?
        .into_inner();
    story.line(format!(
        "regie held by {}",
        regie.regie.map(|r| r.holder_oin).unwrap_or_default()
    ));
    story.line(format!(
        "school: {}",
        crate::cli_support::render_match_event(&next_notice(&mut watch_school).await?)
    ));
    let second = school
        .cases
        .claim_regie(proto::CaseRequest {
            person_bsn: MOTHER.into(),
        })
        .await;
    match second {
        Err(status) => story.line(format!(
            "a second claim, by the school's coordinator, is refused: {:?}: {}",
            status.code(),
            status.message()
        )),
        Ok(_) => return Err(scenario("a second regie claim went through")),
    }

    story.step("The school reaches meldcode step 5 and reports to Veilig Thuis");
    school
        .signals
        .update(proto::UpdateRequest {
            signal_id: school_signal.id.clone(),
            meldcode_step: Some(proto::MeldcodeStep::Beslissen as i32),
            severity: Some(proto::Severity::Ernstig as i32),
            expected_version: 0,
        })
        .await
        .map_err(ClientError::from)?;
    let report = school
        .signals
        .report_to_veilig_thuis(proto::ReportRequest {
            signal_id: school_signal.id.clone(),
            subject_bsn: CHILD.into(),
        })
        .await
        .map_err(ClientError::from)?
        .into_inner();
    story.line(format!(
        "melding queued for Veilig Thuis ({})",
        report.veilig_thuis_oin
    ));
    let mut received = Vec::new();
    for _ in 0..100 {
        received = vt
            .cases
            .list_meldingen(proto::ListMeldingenRequest {})
            .await
            .map_err(ClientError::from)?
            .into_inner()
            .meldingen;
        if !received.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let melding = received
        .first()
        .and_then(|m| m.melding.clone())
        .ok_or_else(|| scenario("Veilig Thuis received no melding"))?;
    story.line(format!(
        "Veilig Thuis acknowledged the melding: {} / {}, reported by {} (contact: {})",
        short_enum(
            proto::Category::try_from(melding.category)
                .ok()
                .map(|c| c.as_str_name()),
            "CATEGORY_"
        ),
        short_enum(
            proto::Severity::try_from(melding.severity)
                .ok()
                .map(|c| c.as_str_name()),
            "SEVERITY_"
        ),
        melding.reported_by,
        melding.contact_point.map(|c| c.name).unwrap_or_default()
    ));

    story.step("Veilig Thuis asks for the linked signals, for its safety assessment");
    let triage_of_the_child = || proto::LinkedSignalsRequest {
        purpose: proto::Purpose::VtTriage as i32,
        person_bsn: CHILD.into(),
        household: true,
    };
    let map = vt
        .cases
        .linked_signals(triage_of_the_child())
        .await
        .map_err(ClientError::from)?
        .into_inner();
    story.line(crate::cli_support::render_map(&map));
    let refused = school.cases.linked_signals(triage_of_the_child()).await;
    match refused {
        Err(status) => story.line(format!(
            "the school asking the same is refused: {:?}: {}",
            status.code(),
            status.message()
        )),
        Ok(_) => return Err(scenario("the school got a triage map")),
    }

    story.step("Acute danger: Veilig Thuis breaks the glass for the mother");
    let emergency = vt
        .cases
        .break_glass(proto::BreakGlassRequest {
            person_bsn: MOTHER.into(),
            reason: proto::BreakGlassReason::AcuteDangerAdult as i32,
        })
        .await
        .map_err(ClientError::from)?
        .into_inner();
    story.line(crate::cli_support::render_map(&emergency));

    story.step("Each source's privacy officer reviews the break-glass access to its data");
    for key in ["school", "ggd", "reclassering"] {
        let mut officer = federation.client(key, "fg").await?;
        let queue = officer
            .audit
            .break_glass_queue(proto::BreakGlassQueueRequest {
                include_reviewed: false,
            })
            .await
            .map_err(ClientError::from)?
            .into_inner();
        let item = queue
            .items
            .first()
            .ok_or_else(|| scenario(format!("no break-glass item at {key}")))?;
        let reviewed = officer
            .audit
            .review_break_glass(proto::ReviewBreakGlassRequest {
                id: item.id.clone(),
                outcome: proto::ReviewOutcome::Justified as i32,
                reason: proto::ReviewReason::AcuteDangerConfirmed as i32,
            })
            .await
            .map_err(ClientError::from)?
            .into_inner();
        story.line(format!(
            "{key}: {} by {} ({}) for {} signal(s): reviewed as justified by {}",
            short_enum(
                proto::BreakGlassReason::try_from(item.reason)
                    .ok()
                    .map(|r| r.as_str_name()),
                "BREAK_GLASS_REASON_"
            ),
            item.requester_name,
            item.requester_user,
            item.signal_ids.len(),
            reviewed.item.map(|i| i.reviewed_by).unwrap_or_default()
        ));
    }

    story.step("The mother asks the GGD what was done with her data: subject access (AVG art. 15)");
    let mut officer = federation.client("ggd", "fg").await?;
    let report = officer
        .audit
        .subject_access(proto::SubjectAccessLocalRequest {
            subject_bsn: MOTHER.into(),
            purpose: proto::Purpose::SubjectAccess as i32,
        })
        .await
        .map_err(ClientError::from)?
        .into_inner();
    let view = crate::cli_support::AccessView::new(&report).map_err(scenario)?;
    story.line(view.summary());

    story.step("The index's administrator rotates the index key while the index answers");
    let mut beheer = federation.client("index", "beheer").await?;
    let started = beheer
        .audit
        .rotate_index_key(proto::RotateIndexKeyRequest {
            reason: "yearly rotation".into(),
        })
        .await
        .map_err(ClientError::from)?
        .into_inner();
    story.line(format!(
        "epoch {} to {}: {} persons to move, by the index, without a BSN",
        started.epoch, started.next_epoch, started.persons_left
    ));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let finished = loop {
        let now = beheer
            .audit
            .get_index_key_status(proto::IndexKeyStatusRequest {})
            .await
            .map_err(ClientError::from)?
            .into_inner();
        if now.next_epoch == 0 {
            break now;
        }
        if std::time::Instant::now() > deadline {
            return Err(scenario(format!("the rotation did not finish: {now:?}")));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let again = vt
        .cases
        .linked_signals(triage_of_the_child())
        .await
        .map_err(ClientError::from)?
        .into_inner();
    let shape = |m: &proto::SignalMap| -> Vec<(i32, Vec<String>)> {
        m.persons
            .iter()
            .map(|p| {
                (
                    p.relation,
                    p.organisations.iter().map(|o| o.oin.clone()).collect(),
                )
            })
            .collect()
    };
    if shape(&again) != shape(&map) {
        return Err(scenario("Veilig Thuis's map changed with the index key"));
    }
    story.line(format!(
        "epoch {}: {} persons; Veilig Thuis's map of the child is the same ({} persons); the \
         pseudonym services are asked to delete epoch {}",
        finished.epoch,
        finished.persons_left,
        again.persons.len(),
        started.epoch
    ));
    Ok(())
}

fn short_enum(name: Option<&str>, prefix: &str) -> String {
    name.map(|n| n.trim_start_matches(prefix).to_lowercase())
        .unwrap_or_default()
}

/// A witnessing round on every node (it also runs every minute): each pushes its checkpoint to
/// every other member and keeps their cosignatures; the school's privacy officer fetches its
/// cosigned checkpoint and checks it offline with nothing but the keys pinned in the directory.
async fn witness_all(story: &mut Story, federation: &RunningFederation) -> Result<(), DemoError> {
    use crate::federation::witness::Pushed;
    story.step("Every node's audit log is witnessed by every other member (C2SP cosignatures)");
    for (key, node) in &federation.nodes {
        let Some(witness) = node.witness() else {
            continue;
        };
        let pushed = witness.round().await;
        let cosigned = pushed
            .iter()
            .filter(|(_, p)| matches!(p, Pushed::Cosigned(_) | Pushed::Unchanged))
            .count();
        story.line(format!(
            "{key:<14} checkpoint cosigned by {cosigned} of {} witnesses",
            pushed.len()
        ));
        if cosigned != pushed.len() {
            return Err(scenario(format!(
                "{key}'s witnesses did not all cosign: {pushed:?}"
            )));
        }
    }
    let directory = federation
        .nodes
        .values()
        .next()
        .and_then(|n| n.federation().map(|f| f.directory()))
        .ok_or_else(|| scenario("no directory"))?;
    let school = &federation.nodes["school"];
    let log_key = directory
        .member(&school.organisation())
        .map(|m| m.audit_key.clone())
        .ok_or_else(|| scenario("the school is not in the directory"))?;
    let witness_keys: Vec<String> = directory
        .members()
        .iter()
        .filter(|m| m.oin != school.organisation())
        .map(|m| m.audit_key.clone())
        .collect();
    let mut officer = federation.client("school", "fg").await?;
    let cosigned = officer
        .audit
        .cosigned_checkpoint(proto::CosignedCheckpointRequest { tree_size: 0 })
        .await
        .map_err(ClientError::from)?
        .into_inner();
    let forks = officer
        .audit
        .list_forks(proto::ListForksRequest {})
        .await
        .map_err(ClientError::from)?
        .into_inner()
        .forks;
    let report = crate::cli_support::verify_cosigned_checkpoint(
        &cosigned.cosigned_note,
        &log_key,
        &witness_keys,
        None,
    )
    .map_err(|e| scenario(format!("the school's cosigned checkpoint: {e}")))?;
    story.line("The school's privacy officer checks its cosigned checkpoint offline:");
    story.line(report);
    story.line(format!(
        "Forks of any member's log known at the school: {}",
        forks.len()
    ));
    Ok(())
}

/// Every node's log verified over its audit API against the key pinned in the directory, and
/// the exchanges between them reconciled.
async fn verify_all(story: &mut Story, federation: &RunningFederation) -> Result<(), DemoError> {
    story.step("Every node's audit log verifies, and the two sides of every exchange agree");
    let directory = federation
        .nodes
        .values()
        .next()
        .and_then(|n| n.federation().map(|f| f.directory()))
        .ok_or_else(|| scenario("no directory"))?;
    let mut logs = Vec::new();
    for (key, node) in &federation.nodes {
        let member = directory
            .member(&node.organisation())
            .ok_or_else(|| scenario(format!("{key} is not in the directory")))?;
        let key_pin = member.audit_verifier().map_err(scenario)?;
        let mut officer = federation.client(key, "fg").await?;
        officer
            .audit
            .checkpoint(proto::CheckpointRequest {})
            .await
            .map_err(ClientError::from)?;
        let report = verify_remote(
            &mut officer.audit,
            &Verifier::new(Some(key_pin.clone())).expect_origin(key_pin.name()),
        )
        .await?;
        story.line(format!(
            "{:<40} {}",
            member.name,
            crate::cli_support::render_report(&report)
        ));
        if !report.ok() {
            return Err(scenario(format!("{key}'s log does not verify")));
        }
        logs.push((
            node.organisation(),
            export_events(&mut officer.audit).await?,
        ));
    }
    let reconciliation = crate::audit::reconcile::reconcile(&logs, None, None);
    story.line(crate::cli_support::render_reconciliation(&reconciliation));
    if !reconciliation.clean() {
        return Err(scenario("the logs do not reconcile"));
    }
    Ok(())
}

/// Every event of a node's durable log, through its audit API.
pub async fn export_events(
    audit: &mut crate::api::client::Audit,
) -> Result<Vec<crate::domain::AuditEvent>, DemoError> {
    let mut stream = audit
        .export(proto::ExportRequest {
            from_index: 0,
            until_index: 0,
        })
        .await
        .map_err(ClientError::from)?
        .into_inner();
    let mut events = Vec::new();
    while let Some(chunk) = stream.message().await.map_err(ClientError::from)? {
        for event in chunk.events {
            events.push(crate::audit::event::decode(&event.canonical).map_err(scenario)?);
        }
    }
    Ok(events)
}
