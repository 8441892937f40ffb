//! Shared setup for the integration tests: real nodes on 127.0.0.1:0 with certificates from a
//! development CA and sled stores in temporary directories, reached over gRPC and TLS through
//! the same client the command line uses. Nothing here is a mock.
//!
//! Each test file is its own crate and uses only part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use kring::api::TRANSACTION_HEADER;
use kring::api::client::{Audit, LocalClient, Signals};
use kring::api::proto;
use kring::clock::{ManualClock, SharedClock, SystemClock};
use kring::config::Config;
use kring::demo::{DevOrganisation, dev_node};
use kring::domain::{OrgType, Role, UnixMillis};
use kring::node::RunningNode;
use kring::pki::DevCa;
use tempfile::TempDir;
use tonic::{Code, Status};

/// The contact point every development node has.
pub const CONTACT: &str = "aandachtsfunctionaris";
/// 2030-01-01T00:00:00Z: where tests with a manual clock start.
pub const T0: i64 = 1_893_456_000_000;

/// A school with one principal per role, the usual cast of a test.
pub fn school() -> DevOrganisation {
    DevOrganisation::new(
        "Basisschool De Regenboog",
        "00000001820000001000",
        OrgType::School,
    )
    .principal("m.jansen", &[Role::Signaler])
    .principal("k.coord", &[Role::Coordinator])
    .principal("a.analyst", &[Role::Analyst])
    .principal("fg.bakker", &[Role::PrivacyOfficer])
}

pub const SIGNALER: &str = "m.jansen";
pub const COORDINATOR: &str = "k.coord";
pub const ANALYST: &str = "a.analyst";
pub const OFFICER: &str = "fg.bakker";

/// A started node with everything a test needs to talk to it, restart it, or read its store.
pub struct TestNode {
    pub node: RunningNode,
    /// One connected client per principal, by principal id.
    pub clients: BTreeMap<String, LocalClient>,
    pub tokens: BTreeMap<String, String>,
    pub ca_pem: String,
    /// The configuration the node was started with (cloned before the start), for a restart.
    pub config: Config,
    pub address: String,
    pub dir: TempDir,
    pub store_path: PathBuf,
}

impl TestNode {
    pub fn client(&self, principal: &str) -> LocalClient {
        self.clients
            .get(principal)
            .unwrap_or_else(|| panic!("no principal {principal}"))
            .clone()
    }

    pub fn signals(&self, principal: &str) -> Signals {
        self.client(principal).signals
    }

    pub fn audit(&self, principal: &str) -> Audit {
        self.client(principal).audit
    }

    /// A client on the node's connection without a bearer token.
    pub fn anonymous(&self) -> LocalClient {
        self.clients
            .values()
            .next()
            .expect("a node has principals")
            .with_token(None)
            .expect("no token is a valid header")
    }

    /// A client on the node's connection with this bearer token.
    pub fn with_token(&self, token: &str) -> LocalClient {
        self.clients
            .values()
            .next()
            .expect("a node has principals")
            .with_token(Some(token))
            .expect("the token is a valid header")
    }
}

/// Starts a development node for `organisation` on the system clock.
pub async fn start_node(organisation: &DevOrganisation) -> TestNode {
    start_node_with(organisation, Arc::new(SystemClock), |_| {}).await
}

/// Starts a node on a manual clock at [`T0`].
pub async fn start_manual(organisation: &DevOrganisation) -> (TestNode, ManualClock) {
    start_manual_with(organisation, |_| {}).await
}

pub async fn start_manual_with(
    organisation: &DevOrganisation,
    adjust: impl FnOnce(&mut Config),
) -> (TestNode, ManualClock) {
    let clock = ManualClock::new(UnixMillis(T0));
    let node = start_node_with(organisation, Arc::new(clock.clone()), adjust).await;
    (node, clock)
}

/// Starts a development node for `organisation` with a fresh CA, in a fresh temporary data
/// directory, after `adjust` has had its say on the configuration.
pub async fn start_node_with(
    organisation: &DevOrganisation,
    clock: SharedClock,
    adjust: impl FnOnce(&mut Config),
) -> TestNode {
    let dir = tempfile::Builder::new()
        .prefix("kring-test-")
        .tempdir()
        .expect("a temporary directory");
    let ca = DevCa::generate("kring test CA").expect("a development CA");
    let mut dev = dev_node(&ca, organisation, &dir.path().join("node")).expect("a node config");
    adjust(&mut dev.config);
    let config = dev.config.clone();
    let store_path = config.data_dir.join("store");
    let node = RunningNode::start(dev.config, clock)
        .await
        .expect("the node starts");
    let address = node.local_addr().to_string();
    let clients = connect_all(&address, ca.cert_pem(), &dev.tokens).await;
    TestNode {
        node,
        clients,
        tokens: dev.tokens,
        ca_pem: ca.cert_pem().to_owned(),
        config,
        address,
        dir,
        store_path,
    }
}

/// One TLS connection, shared by a client per principal.
pub async fn connect_all(
    address: &str,
    ca_pem: &str,
    tokens: &BTreeMap<String, String>,
) -> BTreeMap<String, LocalClient> {
    let mut tokens = tokens.iter();
    let (first, token) = tokens.next().expect("at least one principal");
    let connected = connect(address, ca_pem, Some(token)).await;
    let mut clients = BTreeMap::new();
    for (principal, token) in tokens {
        clients.insert(
            principal.clone(),
            connected.with_token(Some(token)).expect("a valid token"),
        );
    }
    clients.insert(first.clone(), connected);
    clients
}

pub async fn connect(address: &str, ca_pem: &str, token: Option<&str>) -> LocalClient {
    let roots = kring::tls::roots_from_pem(ca_pem.as_bytes()).expect("the CA certificate");
    LocalClient::connect(address, "localhost", roots, token)
        .await
        .expect("a TLS connection to the node")
}

/// A valid BSN (elfproef) made from `n`; different `n` give different BSNs.
pub fn bsn(n: u32) -> String {
    kring::devnet::bsn_from(20_000_000 + (n % 7_000_000) * 11)
}

/// A valid nine-digit BSN that starts with 0, so that its last eight digits are the same BSN
/// in its eight-digit form; different `n` give different BSNs, none equal to a [`bsn`].
pub fn bsn_with_leading_zero(n: u32) -> String {
    kring::devnet::bsn_from(1_000_000 + (n % 800_000) * 11)
}

/// Whether a string passes the elfproef, checked independently of the node.
pub fn elfproef(bsn: &str) -> bool {
    let digits: Vec<i32> = bsn
        .bytes()
        .map(|b| i32::from(b) - i32::from(b'0'))
        .collect();
    digits.len() == 9
        && digits.iter().all(|d| (0..10).contains(d))
        && digits
            .iter()
            .zip([9, 8, 7, 6, 5, 4, 3, 2, -1])
            .map(|(d, w)| d * w)
            .sum::<i32>()
            % 11
            == 0
}

/// A valid registration of a worry about `subject`, at meldcode step 1.
pub fn register(subject: &str) -> proto::RegisterRequest {
    proto::RegisterRequest {
        subject_bsn: subject.to_owned(),
        related: Vec::new(),
        category: proto::Category::NietPluis as i32,
        severity: proto::Severity::NietPluis as i32,
        meldcode_step: proto::MeldcodeStep::Signalen as i32,
        contact_point: CONTACT.to_owned(),
        age_range_ends_on: None,
    }
}

pub fn related(bsn: &str, relation: proto::Relation) -> proto::RelatedPerson {
    proto::RelatedPerson {
        bsn: bsn.to_owned(),
        relation: relation as i32,
    }
}

/// Registers and returns the stored signal.
pub async fn register_ok(signals: &mut Signals, request: proto::RegisterRequest) -> proto::Signal {
    signals
        .register(request)
        .await
        .expect("the registration is accepted")
        .into_inner()
        .signal
        .expect("the response carries the signal")
}

/// Every page of a list, in order, checking the paging contract on the way.
pub async fn list_all(
    signals: &mut Signals,
    mut request: proto::ListRequest,
) -> Vec<proto::Signal> {
    let mut out = Vec::new();
    let page_size = request.page_size;
    for _ in 0..10_000 {
        let page = signals
            .list(request.clone())
            .await
            .expect("the list is answered")
            .into_inner();
        if page_size > 0 {
            assert!(
                page.signals.len() <= page_size as usize,
                "an oversized page"
            );
        }
        out.extend(page.signals);
        if page.next_page_token.is_empty() {
            return out;
        }
        request.page_token = page.next_page_token;
    }
    panic!("the list never ended");
}

pub fn ids(signals: &[proto::Signal]) -> Vec<String> {
    signals.iter().map(|s| s.id.clone()).collect()
}

/// Every page of an audit search, in order.
pub async fn search_all(
    audit: &mut Audit,
    mut request: proto::AuditSearchRequest,
) -> Vec<proto::AuditEvent> {
    let mut out: Vec<proto::AuditEvent> = Vec::new();
    for _ in 0..10_000 {
        let page = audit
            .search(request.clone())
            .await
            .expect("the search is answered")
            .into_inner();
        out.extend(page.events);
        if page.next_page_token.is_empty() {
            let indexes: BTreeSet<u64> = out.iter().map(|e| e.index).collect();
            assert_eq!(indexes.len(), out.len(), "a search repeated an event");
            return out;
        }
        request.page_token = page.next_page_token;
    }
    panic!("the search never ended");
}

/// Asserts a refusal: the exact code, and a message that names `names` (a field or a rule).
pub fn refused<T: std::fmt::Debug>(
    result: Result<tonic::Response<T>, Status>,
    code: Code,
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

/// The transaction id a node put on a response or a refusal.
pub fn transaction_of(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get(TRANSACTION_HEADER)
        .expect("every answer carries its transaction id")
        .to_str()
        .expect("an ASCII transaction id")
        .to_owned()
}

/// The snake-case code name the audit reason starts with.
pub fn reason_code(code: Code) -> &'static str {
    match code {
        Code::Unauthenticated => "unauthenticated",
        Code::PermissionDenied => "permission_denied",
        Code::InvalidArgument => "invalid_argument",
        Code::NotFound => "not_found",
        Code::FailedPrecondition => "failed_precondition",
        Code::ResourceExhausted => "resource_exhausted",
        other => panic!("no refusal has code {other:?}"),
    }
}

/// Finds the audited refusal of transaction `transaction` (searching as a privacy officer)
/// and checks that its reason starts with the code and names `names`.
pub async fn audited_refusal(
    audit: &mut Audit,
    transaction: &str,
    code: Code,
    names: &str,
) -> proto::AuditEvent {
    let refusals = search_all(
        audit,
        proto::AuditSearchRequest {
            outcome: Some(proto::Outcome::Refused as i32),
            page_size: 1000,
            ..Default::default()
        },
    )
    .await;
    let mut matching = refusals
        .into_iter()
        .filter(|e| e.transaction_id == transaction);
    let event = matching
        .next()
        .unwrap_or_else(|| panic!("no refusal audited for transaction {transaction}"));
    assert!(matching.next().is_none(), "one refusal, one event");
    assert_eq!(event.outcome, proto::Outcome::Refused as i32);
    let prefix = format!("{}: ", reason_code(code));
    assert!(
        event.reason.starts_with(&prefix) && event.reason.contains(names),
        "the audited reason {:?} does not say {prefix:?} and name {names:?}",
        event.reason
    );
    event
}

/// 32 bytes from a proof, or a failed test.
pub fn hashes(raw: &[Vec<u8>]) -> Vec<[u8; 32]> {
    raw.iter()
        .map(|h| h.as_slice().try_into().expect("a proof hash is 32 bytes"))
        .collect()
}

/// Whether a pseudonym is 43 characters of unpadded base64url that decode to 32 bytes.
pub fn is_pseudonym(text: &str) -> bool {
    use base64::Engine;
    text.len() == 43
        && base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .is_ok_and(|bytes| bytes.len() == 32)
}
