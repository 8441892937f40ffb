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

use tonic::Code;

use crate::api::client::{LocalClient, prove_event, prove_extends, verify_remote};
use crate::api::proto;
use crate::audit::{NoteVerifier, Verifier, checkpoint, verify};
use crate::auth::{Principal, Principals, new_token, token_hash};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{AuditSettings, Config, ContactPoint, LogFormat, Organisation, default_origin};
use crate::domain::{ContactPointId, Oin, OrgType, PrincipalId, Role, UnixMillis};
use crate::node::RunningNode;
use crate::pki::{DevCa, NodeCertRequest};
use crate::store::{SledStore, StoreOptions};
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
        store: StoreOptions {
            cache_bytes: 16 * 1024 * 1024,
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
const OTHER_CHILD: &str = "999999990";

fn expect_refusal<T: std::fmt::Debug>(
    story: &Story,
    what: &str,
    result: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
) -> Result<(), DemoError> {
    match result {
        Err(status) if status.code() == code => {
            story.line(format!(
                "{what}: refused, {:?}: {}",
                status.code(),
                status.message()
            ));
            Ok(())
        }
        other => Err(DemoError::Scenario(format!(
            "{what}: expected {code:?}, got {other:?}"
        ))),
    }
}

/// Runs the demo: start, scenario, and either shut down and verify, or serve.
pub async fn run(args: DemoArgs) -> Result<ExitCode, DemoError> {
    let temp;
    let data_dir = match &args.data_dir {
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
    let ca = DevCa::generate("kring demo CA").map_err(setup)?;
    let school = DevOrganisation::new(
        "Basisschool De Regenboog",
        "00000001820000001000",
        OrgType::School,
    )
    .principal("m.jansen", &[Role::Signaler, Role::Coordinator])
    .principal("fg.bakker", &[Role::PrivacyOfficer]);
    let dev = dev_node(&ca, &school, &data_dir.join("school"))?;
    let store_dir = dev.config.data_dir.join("store");
    let node = RunningNode::start(dev.config, clock).await?;
    let address = node.local_addr().to_string();
    let key = node.audit_key().clone();

    println!("kring demo: one organisation node on loopback, real gRPC over TLS, a real store.");
    println!(
        "Organisation: {} (school, ring \"{}\")",
        school.name,
        OrgType::School.ring().label()
    );
    println!(
        "Listening on {address}; audit log verifier key:\n   {}",
        node.verifier_key()
    );

    let roots = crate::tls::roots_from_pem(ca.cert_pem().as_bytes()).map_err(DemoError::Setup)?;
    let teacher =
        LocalClient::connect(&address, "localhost", roots, Some(&dev.tokens["m.jansen"])).await?;
    let officer = teacher.with_token(Some(&dev.tokens["fg.bakker"]))?;
    let anonymous = teacher.with_token(None)?;

    let mut story = Story { step: 0 };
    let scenario = play(&mut story, &teacher, &officer, &anonymous, &key).await;
    if let Err(e) = scenario {
        let _ = node.shutdown().await;
        return Err(e);
    }

    if args.serve {
        let ca_path = data_dir.join("ca.crt");
        std::fs::write(&ca_path, ca.cert_pem()).map_err(setup)?;
        println!("\nServing until Ctrl-C. Try, for example:");
        println!(
            "   export KRING_NODE={address} KRING_CA={}",
            ca_path.display()
        );
        println!(
            "   export KRING_TOKEN={}   # m.jansen, signaler",
            dev.tokens["m.jansen"]
        );
        println!("   kring signal list");
        println!(
            "   KRING_TOKEN={} kring audit search --action signal.register",
            dev.tokens["fg.bakker"]
        );
        println!("   grpcurl -cacert {} {address} list", ca_path.display());
        crate::cli_support::wait_for_signal().await;
    }

    story.step("The node stops gracefully, and a privacy officer verifies its store offline");
    node.shutdown().await?;
    let store = SledStore::open(&store_dir, &StoreOptions::default()).map_err(setup)?;
    let report = verify::verify_store(
        &store,
        &Verifier::new(Some(key.clone())).expect_origin(key.name()),
        None,
    );
    story.line(crate::cli_support::render_report(&report));
    if !report.ok() {
        return Err(DemoError::Scenario("the stored log does not verify".into()));
    }
    println!("\nDone: every step above was audited, and the log proves it.");
    Ok(ExitCode::SUCCESS)
}

async fn play(
    story: &mut Story,
    teacher: &LocalClient,
    officer: &LocalClient,
    anonymous: &LocalClient,
    key: &NoteVerifier,
) -> Result<(), DemoError> {
    let mut signals = teacher.signals.clone();

    story.step("The aandachtsfunctionaris registers a worry (niet-pluis) about a child");
    let registered = signals
        .register(proto::RegisterRequest {
            subject_bsn: CHILD.into(),
            related: vec![proto::RelatedPerson {
                bsn: MOTHER.into(),
                relation: proto::Relation::Parent as i32,
            }],
            category: proto::Category::NietPluis as i32,
            severity: proto::Severity::NietPluis as i32,
            meldcode_step: proto::MeldcodeStep::Signalen as i32,
            contact_point: "aandachtsfunctionaris".into(),
        })
        .await
        .map_err(crate::api::client::ClientError::from)?
        .into_inner();
    let signal = registered
        .signal
        .ok_or_else(|| DemoError::Scenario("no signal returned".into()))?;
    story.line(format!(
        "signal {} registered; the child is stored only as pseudonym {:.12}…, the mother as {:.12}…",
        signal.id, signal.subject, signal.related[0].pseudonym
    ));
    story.line(format!(
        "it expires on {} (two years), transaction {}",
        UnixMillis(signal.expires_at_unix_ms).rfc3339(),
        registered.transaction_id
    ));

    story.step("After collegial consultation the worry grows: meldcode step 2, severity zorg");
    let updated = signals
        .update(proto::UpdateRequest {
            signal_id: signal.id.clone(),
            meldcode_step: Some(proto::MeldcodeStep::Consultatie as i32),
            severity: Some(proto::Severity::Zorg as i32),
            expected_version: signal.version,
        })
        .await
        .map_err(crate::api::client::ClientError::from)?
        .into_inner()
        .signal
        .ok_or_else(|| DemoError::Scenario("no signal returned".into()))?;
    story.line(crate::cli_support::render_signal(&updated));

    story.step("Bad input is refused precisely, changes nothing, and is audited");
    let mut bad = proto::RegisterRequest {
        subject_bsn: "123456789".into(),
        category: proto::Category::Neglect as i32,
        severity: proto::Severity::Zorg as i32,
        meldcode_step: proto::MeldcodeStep::Signalen as i32,
        contact_point: "aandachtsfunctionaris".into(),
        ..Default::default()
    };
    expect_refusal(
        story,
        "a BSN that fails the elfproef",
        signals.register(bad.clone()).await,
        Code::InvalidArgument,
    )?;
    bad.subject_bsn = OTHER_CHILD.into();
    bad.category = 99;
    expect_refusal(
        story,
        "an unknown category",
        signals.register(bad.clone()).await,
        Code::InvalidArgument,
    )?;
    bad.category = proto::Category::Neglect as i32;
    expect_refusal(
        story,
        "the privacy officer trying to register",
        officer.signals.clone().register(bad.clone()).await,
        Code::PermissionDenied,
    )?;
    expect_refusal(
        story,
        "a call without a token",
        anonymous.signals.clone().register(bad.clone()).await,
        Code::Unauthenticated,
    )?;
    let mut oversized = bad.clone();
    oversized.contact_point = "x".repeat(crate::config::DEFAULT_MAX_MESSAGE_BYTES + 1);
    expect_refusal(
        story,
        "an oversized message",
        signals.register(oversized).await,
        Code::ResourceExhausted,
    )?;

    story.step("A signal registered on the wrong child is withdrawn at once (unfounded)");
    let mistaken = signals
        .register(bad)
        .await
        .map_err(crate::api::client::ClientError::from)?
        .into_inner()
        .signal
        .ok_or_else(|| DemoError::Scenario("no signal returned".into()))?;
    let withdrawn = signals
        .withdraw(proto::WithdrawRequest {
            signal_id: mistaken.id.clone(),
            reason: proto::WithdrawReason::Unfounded as i32,
        })
        .await
        .map_err(crate::api::client::ClientError::from)?
        .into_inner();
    story.line(format!(
        "signal {} withdrawn and deleted",
        withdrawn.signal_id
    ));

    story.step("The school's list of active signals");
    let list = signals
        .list(proto::ListRequest::default())
        .await
        .map_err(crate::api::client::ClientError::from)?
        .into_inner();
    for s in &list.signals {
        story.line(crate::cli_support::render_signal(s));
    }

    story.step("The privacy officer searches the audit log for everything about the child");
    let mut audit = officer.audit.clone();
    let found = audit
        .search(proto::AuditSearchRequest {
            subject_bsn: Some(CHILD.into()),
            ..Default::default()
        })
        .await
        .map_err(crate::api::client::ClientError::from)?
        .into_inner();
    for event in &found.events {
        story.line(crate::cli_support::render_event(event));
    }
    let refused = audit
        .search(proto::AuditSearchRequest {
            outcome: Some(proto::Outcome::Refused as i32),
            ..Default::default()
        })
        .await
        .map_err(crate::api::client::ClientError::from)?
        .into_inner();
    story.line(format!("and the refusals ({}):", refused.events.len()));
    for event in &refused.events {
        story.line(crate::cli_support::render_event(event));
    }

    story.step("A signed checkpoint, kept by the officer for later");
    let earlier = audit
        .checkpoint(proto::CheckpointRequest {})
        .await
        .map_err(crate::api::client::ClientError::from)?
        .into_inner();
    story.line(&earlier.signed_note);
    let earlier = checkpoint::open(key, &earlier.signed_note)
        .map_err(|e| DemoError::Scenario(format!("checkpoint: {e}")))?;

    story.step("Proof that the registration is in the log, checked with the pinned key alone");
    let first = found
        .events
        .first()
        .ok_or_else(|| DemoError::Scenario("no events about the child".into()))?;
    let proven = prove_event(&mut audit, key, first.index).await?;
    story.line(format!(
        "event {} is leaf {} of the signed tree of {} events ({} proof hashes): verified",
        proven.event.object, first.index, proven.checkpoint.size, proven.proof_hashes
    ));

    story.step("More work happens; the officer checks the log still extends the saved checkpoint");
    signals
        .list(proto::ListRequest {
            person_bsn: Some(MOTHER.into()),
            ..Default::default()
        })
        .await
        .map_err(crate::api::client::ClientError::from)?;
    let (latest, hashes) = prove_extends(&mut audit, key, &earlier).await?;
    story.line(format!(
        "the log at {} events extends the checkpoint at {} ({hashes} proof hashes): verified",
        latest.size, earlier.size
    ));

    story.step("The officer downloads the whole log and verifies it end to end");
    let report = verify_remote(
        &mut audit,
        &Verifier::new(Some(key.clone()))
            .expect_origin(key.name())
            .trust(earlier),
    )
    .await?;
    story.line(crate::cli_support::render_report(&report));
    if !report.ok() {
        return Err(DemoError::Scenario("the log does not verify".into()));
    }
    Ok(())
}
