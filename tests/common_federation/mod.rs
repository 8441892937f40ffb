//! Shared setup for the federation tests: a development federation in one process, every node
//! a real gRPC server on loopback with its own certificate, sled store and audit log, the nodes
//! talking mutual TLS pinned in a directory signed by the authority. Nothing here is a mock.
//!
//! Delivery between nodes is asynchronous (outboxes, retries), so the helpers wait for what
//! should happen within a generous bound and fail naming what did not; no test asserts on time.
//!
//! Each test file is its own crate and uses only part of this module.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kring::api::TRANSACTION_HEADER;
use kring::api::client::LocalClient;
use kring::api::proto;
use kring::clock::{Clock, ManualClock, SharedClock, SystemClock};
use kring::config::Config;
use kring::demo::{DemoError, DevOrganisation, demo_members};
use kring::devnet::{DevFederation, DevMember, PlannedNode, RunningFederation};
use kring::directory::{Directory, DirectoryContent, Member, NodeRole};
use kring::domain::{Oin, OrgType, Role, UnixMillis};
use kring::node::{NodeError, RunningNode};
use kring::tls::{Connect, TlsIdentity};
use tempfile::TempDir;
use tonic::Status;
use tonic::transport::Channel;

/// How long anything asynchronous may take before a test gives up: a bound against hanging,
/// far above what delivery takes, never a measurement.
pub const WAIT: Duration = Duration::from_secs(30);

// The demo's family: a child, the mother, the father (the mother's ex-partner).
pub const CHILD: &str = "111222333";
pub const MOTHER: &str = "123456782";
pub const FATHER: &str = "999999990";

// The demo's organisations (see `kring::demo::demo_members`).
pub const INDEX: &str = "00000001820000000100";
pub const VEILIG_THUIS: &str = "00000001820000004000";
pub const SCHOOL: &str = "00000001820000001000";
pub const GGD: &str = "00000001820000002000";
pub const HUISARTS: &str = "00000001820000005000";
pub const LOKAAL_TEAM: &str = "00000001820000006000";
pub const RECLASSERING: &str = "00000001820000003000";
pub const SPORTCLUB: &str = "00000001820000007000";

// The demo's principals: node key and principal id.
pub const VT_ANALYST: (&str, &str) = ("veilig-thuis", "l.smit");
pub const SCHOOL_AF: (&str, &str) = ("school", "m.jansen");
pub const GGD_SIGNALER: (&str, &str) = ("ggd", "a.devries");
pub const HUISARTS_SIGNALER: (&str, &str) = ("huisarts", "h.bos");
pub const LT_COORDINATOR: (&str, &str) = ("lokaal-team", "p.smit");
pub const RECLASSERING_SIGNALER: (&str, &str) = ("reclassering", "r.bakker");
/// Every demo organisation has a privacy officer with this id.
pub const FG: &str = "fg";

/// A valid BSN (elfproef) made from `n`; different `n` (below 7,000,000) give different BSNs.
pub fn bsn(n: u32) -> String {
    kring::devnet::bsn_from(20_000_000 + (n % 7_000_000) * 11)
}

/// A valid BSN starting with 0, so that its last eight digits are the same BSN written with
/// eight digits.
pub fn bsn_with_leading_zero(n: u32) -> String {
    kring::devnet::bsn_from(1_000_000 + (n % 800_000) * 11)
}

pub fn oin(text: &str) -> Oin {
    Oin::parse(text).expect("a valid OIN")
}

/// The demo's members with a sports club (a coordinator and a signaler) added: the ring of
/// associations, which the default policy excludes from regie.
pub fn members_with_sportclub() -> Vec<DevMember> {
    let mut members = demo_members();
    members.push(DevMember::new(
        "sportclub",
        DevOrganisation::new(
            "Voetbalvereniging De Spartaan",
            SPORTCLUB,
            OrgType::SportsClub,
        )
        .principal("fg", &[Role::PrivacyOfficer])
        .principal("t.trainer", &[Role::Coordinator, Role::Signaler]),
        &[NodeRole::Organisation],
    ));
    members
}

/// Adds a principal to the member with node key `key`.
pub fn add_principal(members: &mut [DevMember], key: &str, id: &str, roles: &[Role]) {
    let member = members
        .iter_mut()
        .find(|m| m.key == key)
        .unwrap_or_else(|| panic!("no member {key}"));
    member
        .organisation
        .principals
        .push((id.to_owned(), roles.to_vec()));
}

/// A federation of `members` on the system clock, in a fresh temporary directory.
pub async fn start(members: &[DevMember]) -> (TempDir, RunningFederation) {
    start_on(members, Arc::new(SystemClock), |_| {}).await
}

/// A federation on `clock`, after `adjust` has had its say on every node's configuration.
///
/// The plan holds each node's ports until the node starts, which leaves a moment in which a
/// connection elsewhere in the process can get one of them as its local port; a start that
/// fails on a taken port is planned again on other ports.
pub async fn start_on(
    members: &[DevMember],
    clock: SharedClock,
    mut adjust: impl FnMut(&mut PlannedNode),
) -> (TempDir, RunningFederation) {
    for _ in 0..5 {
        let dir = base_dir();
        let planned = plan(members, &dir, clock.now(), &mut adjust);
        match planned.start(clock.clone()).await {
            Ok(federation) => return (dir, federation),
            Err(e) if port_taken(&e) => continue,
            Err(e) => panic!("the federation starts: {e}"),
        }
    }
    panic!("no free ports for a federation in five plans");
}

/// A federation on the system clock whose signed directory (serial 1) is first changed by
/// `edit`: another policy, say.
pub async fn start_with_directory(
    members: &[DevMember],
    edit: impl Fn(&mut DirectoryContent),
) -> (TempDir, RunningFederation) {
    start_edited(members, Arc::new(SystemClock), |_| {}, edit).await
}

/// Plans a federation, adjusts its nodes, re-signs its directory after `edit`, and starts it
/// on `clock`, planning again on other ports when one was taken meanwhile.
async fn start_edited(
    members: &[DevMember],
    clock: SharedClock,
    mut adjust: impl FnMut(&mut PlannedNode),
    edit: impl Fn(&mut DirectoryContent),
) -> (TempDir, RunningFederation) {
    for _ in 0..5 {
        let dir = base_dir();
        let planned = plan(members, &dir, clock.now(), &mut adjust);
        let mut content = planned.directory.content().clone();
        edit(&mut content);
        let note = Directory::new(content)
            .expect("the edited directory is valid")
            .sign(&planned.authority);
        let file = planned.nodes[0]
            .config
            .federation
            .as_ref()
            .expect("a federated node")
            .directory_file
            .clone();
        std::fs::write(file, note).expect("the directory file is written");
        match planned.start(clock.clone()).await {
            Ok(federation) => return (dir, federation),
            Err(e) if port_taken(&e) => continue,
            Err(e) => panic!("the federation starts: {e}"),
        }
    }
    panic!("no free ports for a federation in five plans");
}

fn port_taken(error: &DemoError) -> bool {
    matches!(
        error,
        DemoError::Node(NodeError::Listen { error, .. })
            if error.kind() == std::io::ErrorKind::AddrInUse
    )
}

/// Whether a node could not open its store because the store it just closed still holds its
/// lock: sled's background I/O lets go of the file a moment after the database is dropped.
/// Only a restart within one process meets this.
pub fn store_still_locked(error: &NodeError) -> bool {
    matches!(error, NodeError::Store(_)) && error.to_string().contains("could not acquire lock")
}

/// Starts a stopped node again on its ports, waiting while a port is briefly taken (by a
/// connection that got it as its ephemeral port while the node was down) or its store not yet
/// released.
pub async fn restart(federation: &mut RunningFederation, key: &str, clock: SharedClock) {
    for _ in 0..200 {
        match federation.restart(key, clock.clone()).await {
            Ok(()) => return,
            Err(e) if port_taken(&e) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(DemoError::Node(e)) if store_still_locked(&e) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("{key} restarts: {e}"),
        }
    }
    panic!("{key}'s ports or store stayed taken");
}

/// Starts a node from `config` in this process, waiting while the store of the run that just
/// stopped is still being released; returns how that start ended.
pub async fn start_again(config: Config, clock: SharedClock) -> Result<RunningNode, NodeError> {
    for _ in 0..200 {
        match RunningNode::start(config.clone(), clock.clone()).await {
            Err(e) if store_still_locked(&e) => tokio::time::sleep(Duration::from_millis(20)).await,
            other => return other,
        }
    }
    panic!("the store stayed locked");
}

/// A federation on a manual clock that starts at the system's time (certificates are checked
/// against the system's time, the directory and retention against the node's clock).
pub async fn start_manual(
    members: &[DevMember],
    adjust: impl FnMut(&mut PlannedNode),
) -> (TempDir, RunningFederation, ManualClock) {
    let clock = ManualClock::new(SystemClock.now());
    let (dir, federation) = start_on(members, Arc::new(clock.clone()), adjust).await;
    (dir, federation, clock)
}

/// A federation on a manual clock that starts at the system's time, whose signed directory
/// stays valid for `years` (the development directory's 30 days would expire long before the
/// law's terms of years run out on the node's clock).
pub async fn start_manual_for_years(
    members: &[DevMember],
    years: i32,
    adjust: impl FnMut(&mut PlannedNode),
) -> (TempDir, RunningFederation, ManualClock) {
    let clock = ManualClock::new(SystemClock.now());
    let (dir, federation) = start_edited(members, Arc::new(clock.clone()), adjust, |content| {
        content.expires_at = content.issued_at.plus_years(years);
    })
    .await;
    (dir, federation, clock)
}

pub fn base_dir() -> TempDir {
    tempfile::Builder::new()
        .prefix("kring-federation-")
        .tempdir()
        .expect("a temporary directory")
}

/// Plans a federation under `dir` (directory serial 1 signed by a fresh authority).
pub fn plan(
    members: &[DevMember],
    dir: &TempDir,
    now: UnixMillis,
    mut adjust: impl FnMut(&mut PlannedNode),
) -> DevFederation {
    let mut planned = DevFederation::plan(members, dir.path(), now).expect("a planned federation");
    for node in &mut planned.nodes {
        adjust(node);
    }
    planned
}

/// A client of `node`'s local API as `principal`.
pub async fn client(
    federation: &RunningFederation,
    (node, principal): (&str, &str),
) -> LocalClient {
    federation
        .client(node, principal)
        .await
        .unwrap_or_else(|e| panic!("a client at {node} as {principal}: {e}"))
}

/// The privacy officer of `node`.
pub async fn officer(federation: &RunningFederation, node: &str) -> LocalClient {
    client(federation, (node, FG)).await
}

/// The member entry of `oin` in `node`'s directory.
pub fn member(federation: &RunningFederation, node: &str, oin_text: &str) -> Member {
    federation
        .node(node)
        .federation()
        .expect("a federated node")
        .directory()
        .member(&oin(oin_text))
        .cloned()
        .unwrap_or_else(|| panic!("{oin_text} is in {node}'s directory"))
}

pub fn register(
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

/// A niet-pluis registration about `subject` with these household links.
pub fn worry(subject: &str, related: &[(&str, proto::Relation)]) -> proto::RegisterRequest {
    register(
        subject,
        related,
        proto::Category::NietPluis,
        proto::Severity::NietPluis,
    )
}

/// Registers and returns the stored signal.
pub async fn register_ok(
    client: &mut LocalClient,
    request: proto::RegisterRequest,
) -> proto::Signal {
    client
        .signals
        .register(request)
        .await
        .expect("the registration is acknowledged")
        .into_inner()
        .signal
        .expect("the response carries the signal")
}

pub type Watch = tonic::Streaming<proto::MatchEvent>;

/// Subscribes to the organisation's notices after `after_cursor`.
pub async fn watch(client: &mut LocalClient, after_cursor: u64) -> Watch {
    client
        .signals
        .watch_matches(proto::WatchMatchesRequest { after_cursor })
        .await
        .expect("a notice stream")
        .into_inner()
}

/// The next notice on a stream.
pub async fn next_event(watch: &mut Watch) -> proto::MatchEvent {
    tokio::time::timeout(WAIT, watch.message())
        .await
        .unwrap_or_else(|_| panic!("no notice arrived within {WAIT:?}"))
        .expect("the notice stream is healthy")
        .expect("the notice stream stays open")
}

/// The next notice, which must be a match.
pub async fn next_match(watch: &mut Watch) -> proto::MatchInfo {
    match next_event(watch).await.event {
        Some(proto::match_event::Event::Match(info)) => info,
        other => panic!("expected a match, got {other:?}"),
    }
}

/// The next notice, which must be the end of a match.
pub async fn next_ended(watch: &mut Watch) -> proto::MatchEndInfo {
    match next_event(watch).await.event {
        Some(proto::match_event::Event::Ended(info)) => info,
        other => panic!("expected a match to end, got {other:?}"),
    }
}

/// The next notice, which must be a change of regie.
pub async fn next_regie(watch: &mut Watch) -> proto::RegieInfo {
    match next_event(watch).await.event {
        Some(proto::match_event::Event::RegieChanged(info)) => info,
        other => panic!("expected a regie change, got {other:?}"),
    }
}

pub fn party_oins(info: &proto::MatchInfo) -> Vec<&str> {
    info.parties.iter().map(|p| p.oin.as_str()).collect()
}

/// Waits until `probe` returns something, for at most [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The organisation's current and historical matches.
pub async fn all_matches(client: &LocalClient) -> proto::ListMatchesResponse {
    client
        .signals
        .clone()
        .list_matches(proto::ListMatchesRequest {})
        .await
        .expect("the matches are listed")
        .into_inner()
}

/// The organisation's current matches.
pub async fn list_matches(client: &LocalClient) -> Vec<proto::MatchInfo> {
    all_matches(client).await.matches
}

/// Waits until the organisation's matches satisfy `done`, and returns them.
pub async fn matches_until(
    client: &LocalClient,
    what: &str,
    done: impl Fn(&[proto::MatchInfo]) -> bool,
) -> Vec<proto::MatchInfo> {
    eventually(what, || async {
        let matches = list_matches(client).await;
        done(&matches).then_some(matches)
    })
    .await
}

/// `message` as a request in exchange `transaction`, as a peer's client sends it.
pub fn in_transaction<T>(message: T, transaction: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        TRANSACTION_HEADER,
        transaction.parse().expect("an ASCII transaction id"),
    );
    request
}

/// The transaction id a node put on a response or a refusal.
pub fn transaction_of(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get(TRANSACTION_HEADER)
        .expect("every answer carries its transaction id")
        .to_str()
        .expect("an ASCII transaction id")
        .to_owned()
}

/// Asserts a refusal: the exact code, and a message that names `names` (a field or a rule).
pub fn refused<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, Status>,
    code: tonic::Code,
    names: &str,
) -> Status {
    match result {
        Err(status) => {
            assert_eq!(
                status.code(),
                code,
                "expected {code:?} naming {names:?}, got {status:?}"
            );
            assert!(
                status.message().contains(names),
                "the message {:?} does not name {names:?}",
                status.message()
            );
            status
        }
        Ok(response) => panic!("expected {code:?} naming {names:?}, got {response:?}"),
    }
}

/// Every event of `node`'s log that matches `request`, searched by its privacy officer.
pub async fn search(
    federation: &RunningFederation,
    node: &str,
    mut request: proto::AuditSearchRequest,
) -> Vec<proto::AuditEvent> {
    let mut audit = officer(federation, node).await.audit;
    request.page_size = 1000;
    let mut out = Vec::new();
    loop {
        let page = audit
            .search(request.clone())
            .await
            .unwrap_or_else(|e| panic!("{node}'s officer searches: {e}"))
            .into_inner();
        out.extend(page.events);
        if page.next_page_token.is_empty() {
            return out;
        }
        request.page_token = page.next_page_token;
    }
}

/// Every event of `node`'s log with this action.
pub async fn events(
    federation: &RunningFederation,
    node: &str,
    action: proto::AuditAction,
) -> Vec<proto::AuditEvent> {
    search(
        federation,
        node,
        proto::AuditSearchRequest {
            action: Some(action as i32),
            ..Default::default()
        },
    )
    .await
}

/// The events of `node`'s log in one exchange.
pub async fn events_of(
    federation: &RunningFederation,
    node: &str,
    transaction: &str,
) -> Vec<proto::AuditEvent> {
    search(federation, node, proto::AuditSearchRequest::default())
        .await
        .into_iter()
        .filter(|e| e.transaction_id == transaction)
        .collect()
}

/// The refusal `node` audited for `action` in exchange `transaction`, whose reason must start
/// with the status code's name (`permission_denied: `) and name `names`.
pub async fn audited_refusal(
    federation: &RunningFederation,
    node: &str,
    transaction: &str,
    action: proto::AuditAction,
    code: &str,
    names: &str,
) -> proto::AuditEvent {
    let refusals = search(
        federation,
        node,
        proto::AuditSearchRequest {
            action: Some(action as i32),
            outcome: Some(proto::Outcome::Refused as i32),
            ..Default::default()
        },
    )
    .await;
    let prefix = format!("{code}: ");
    refusals
        .iter()
        .find(|e| {
            e.transaction_id == transaction
                && e.reason.starts_with(&prefix)
                && e.reason.contains(names)
        })
        .cloned()
        .unwrap_or_else(|| {
            let seen: Vec<(&str, &str)> = refusals
                .iter()
                .map(|e| (e.transaction_id.as_str(), e.reason.as_str()))
                .collect();
            panic!(
                "{node} audited no {action:?} refusal in {transaction} saying {prefix:?} and \
                 naming {names:?}; its refusals: {seen:#?}"
            )
        })
}

/// `result` is refused with `code`, naming `names`, and `node` audited that refusal as
/// `action` in the exchange the refusal names.
pub async fn refused_and_audited<T: std::fmt::Debug>(
    federation: &RunningFederation,
    node: &str,
    result: Result<tonic::Response<T>, Status>,
    code: tonic::Code,
    action: proto::AuditAction,
    names: &str,
) -> proto::AuditEvent {
    let status = refused(result, code, names);
    audited_refusal(
        federation,
        node,
        &transaction_of(status.metadata()),
        action,
        kring::api::code_name(code),
        names,
    )
    .await
}

// The peer side: clients of a node's peer listener, as some certificate.

/// The federation CA's roots.
pub fn roots(federation: &RunningFederation) -> Arc<rustls::RootCertStore> {
    federation.configs["index"]
        .federation
        .as_ref()
        .expect("a federated node")
        .ca
        .clone()
}

/// The peer identity (certificate and key) of node `key`.
pub fn identity(federation: &RunningFederation, key: &str) -> TlsIdentity {
    federation.configs[key]
        .federation
        .as_ref()
        .expect("a federated node")
        .tls
        .clone()
}

/// The pin of node `key`'s peer certificate.
pub fn pin(federation: &RunningFederation, key: &str) -> [u8; 32] {
    kring::tls::spki_sha256(&identity(federation, key).certs[0]).expect("a pin")
}

/// A mutual-TLS channel to node `target`'s peer listener, presenting `identity` and checking
/// the server against the CA and the target's real pin.
pub async fn peer_channel(
    federation: &RunningFederation,
    target: &str,
    identity: &TlsIdentity,
) -> Channel {
    kring::tls::install_provider();
    let config =
        kring::tls::peer_client_config(roots(federation), identity, vec![pin(federation, target)])
            .expect("a client configuration");
    let address = federation
        .node(target)
        .peer_addr()
        .expect("a peer listener")
        .to_string();
    kring::tls::channel(&address, "localhost", config, Connect::Eager)
        .await
        .expect("a TLS connection to the peer listener")
}

pub type FederationClient = proto::federation_client::FederationClient<Channel>;
pub type IndexClient = proto::index_client::IndexClient<Channel>;

/// A request context as a peer sends it.
pub fn context(
    transaction: &str,
    purpose: proto::Purpose,
    user: &str,
    role: proto::Role,
) -> proto::RequestContext {
    proto::RequestContext {
        transaction_id: transaction.to_owned(),
        purpose: purpose as i32,
        user: user.to_owned(),
        role: role as i32,
        break_glass_reason: 0,
    }
}

pub fn new_transaction() -> String {
    kring::domain::TransactionId::new().to_string()
}

/// Every running node's log, exported through its privacy officer's audit API, reconciles:
/// each exchange one node recorded with another is on record at the other end too. A sender
/// records a delivery just after its receiver acknowledged it, so this waits for the logs to
/// settle.
pub async fn assert_reconciled(federation: &RunningFederation) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut logs = Vec::new();
        for (key, node) in &federation.nodes {
            let mut officer = officer(federation, key).await;
            let events = kring::demo::export_events(&mut officer.audit)
                .await
                .unwrap_or_else(|e| panic!("{key}'s log exports: {e}"));
            logs.push((node.organisation(), events));
        }
        let report = kring::audit::reconcile::reconcile(&logs, None, None);
        if report.clean() {
            assert!(report.exchanges > 0, "there were exchanges to reconcile");
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "exchanges on record at one end only: {:#?}",
            report.one_sided
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The federation pseudonym of a BSN, through the chain, as the school's node computes it.
pub async fn federation_pseudonym(
    federation: &RunningFederation,
    bsn: &str,
) -> kring::domain::Pseudonym {
    use kring::pseudonym::Pseudonymiser;
    let school = federation.node("school").federation().unwrap().clone();
    let peers = Arc::new(kring::api::peer_client::GrpcPeers::new(school.clone()));
    kring::pseudonym::OprfPseudonymiser::new(school, peers)
        .pseudonymise(vec![kring::domain::Bsn::parse(bsn).unwrap()])
        .await
        .expect("the chain answers")[0]
}

/// The index key of `epoch` as these pseudonym services' epoch files give it, in this order.
pub fn index_key_from(
    federation: &RunningFederation,
    services: &[&str],
    epoch: u32,
) -> kring::index::vault::EpochKey {
    use kring::pseudonym::IndexEpochs;
    let index = oin(INDEX);
    let shares: Vec<[u8; 32]> = services
        .iter()
        .map(|service| {
            IndexEpochs::open(&IndexEpochs::path_for(&pseudonym_key_file(
                federation, service,
            )))
            .expect("the epoch file reads")
            .share(&index, epoch)
            .expect("the service holds the epoch")
        })
        .collect();
    kring::index::vault::EpochKey::derive(epoch, &shares)
}

/// The index's person for a federation pseudonym under `key`, read from its running store.
pub fn person_under(
    federation: &RunningFederation,
    key: &kring::index::vault::EpochKey,
    p: &kring::domain::Pseudonym,
) -> Option<kring::domain::Pseudonym> {
    federation
        .node("index")
        .ledger()
        .store()
        .person_by_tag(key.epoch(), &key.tag(p))
        .expect("the store reads")
}

/// The OPRF key file of pseudonym service `service`.
pub fn pseudonym_key_file(federation: &RunningFederation, service: &str) -> std::path::PathBuf {
    federation.configs[service]
        .federation
        .as_ref()
        .and_then(|f| f.pseudonym_key.clone())
        .expect("a pseudonym service has a key file")
}

pub type PseudonymsClient = proto::pseudonyms_client::PseudonymsClient<Channel>;

/// A client of `service`'s Pseudonyms API presenting node `as_node`'s peer certificate.
pub async fn pseudonyms_as(
    federation: &RunningFederation,
    service: &str,
    as_node: &str,
) -> PseudonymsClient {
    let channel = peer_channel(federation, service, &identity(federation, as_node)).await;
    PseudonymsClient::new(channel)
}

/// A lookup at the index as Veilig Thuis's analyst asks it, for triage.
pub fn triage_lookup(person: Vec<u8>, household: bool) -> proto::LookupRequest {
    proto::LookupRequest {
        context: Some(context(
            &new_transaction(),
            proto::Purpose::VtTriage,
            "l.smit",
            proto::Role::Analyst,
        )),
        person,
        household,
    }
}

/// Veilig Thuis's triage question about a person and the household.
pub fn triage_of(bsn: &str) -> proto::LinkedSignalsRequest {
    proto::LinkedSignalsRequest {
        purpose: proto::Purpose::VtTriage as i32,
        person_bsn: bsn.into(),
        household: true,
    }
}
