//! Encryption at rest: with a keyring, no file of a node holds a signal's closed fields, its
//! contact point, a principal or an action name, while a node without one does (the scan's
//! positive control); the audit log verifies with the key, over the API and offline; a
//! rotation re-encrypts everything in the background and then lets the old key go; a start
//! that lacks a key values still need, a changed ciphertext byte, a value sealed under a
//! retired key, and a bad key configuration are refused, each naming the key or the record;
//! the environment works as a key source.

mod common;
mod common_federation;
mod common_files;

use common_files::{contains, files_under};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{
    CONTACT, OFFICER, SIGNALER, TestNode, bsn, list_all, register, register_ok, related, school,
    search_all, start_node, start_node_with,
};
use kring::api::client::LocalClient;
use kring::api::proto;
use kring::audit::verify::verify_store;
use kring::audit::{NoteVerifier, Verifier};
use kring::auth::token_hash_hex;
use kring::clock::SystemClock;
use kring::config::Config;
use kring::domain::{Oin, SignalId};
use kring::node::{NodeError, RunningNode};
use kring::pki::{DevCa, NodeCertRequest, ed25519_key_pem};
use kring::store::crypt::{self, KeyBytes};
use kring::store::{DataKeyId, Keyring, SledStore, Store, StoreError, StoreOptions};
use proto::{AuditAction, Category, MeldcodeStep, Relation, Severity};

/// A bound against hanging while the background re-encryption runs, never a measurement.
const WAIT: Duration = Duration::from_secs(60);

/// What must never be readable in an encrypted store: closed fields of a signal, the contact
/// point, principals, and the names of actions in the audit log.
const PLAINTEXT_FIELDS: &[&str] = &[
    "niet_pluis",
    "coercive_control",
    "ernstig",
    "4_wegen",
    CONTACT,
    SIGNALER,
    OFFICER,
    "signal.register",
    "signal.update",
    "signal.list",
    "audit.search",
];

fn id(n: u16) -> DataKeyId {
    DataKeyId::new(n).expect("not zero")
}

fn keyring(keys: &[(u16, &KeyBytes)], active: u16) -> Option<Arc<Keyring>> {
    let keys = keys
        .iter()
        .map(|(n, bytes)| (id(*n), KeyBytes::new(***bytes)))
        .collect();
    Some(Arc::new(Keyring::new(keys, id(active)).expect("a keyring")))
}

/// Which of `needles` some file under `dir` holds, and how many bytes the scan read.
fn found_under(dir: &Path, needles: &[&str]) -> (Vec<String>, usize) {
    let mut found = Vec::new();
    let mut scanned = 0;
    let files = files_under(dir);
    assert!(
        files.iter().any(|f| f.ends_with("store/db")),
        "sled's data file is among {files:?}"
    );
    for file in &files {
        let bytes = std::fs::read(file).expect("a readable file");
        scanned += bytes.len();
        for needle in needles {
            if contains(&bytes, needle.as_bytes()) && !found.contains(&needle.to_string()) {
                found.push(needle.to_string());
            }
        }
    }
    (found, scanned)
}

fn pinned(key: &NoteVerifier) -> Verifier {
    Verifier::new(Some(key.clone())).expect_origin(key.name())
}

/// Registers, updates, lists and searches on `test`, writing every field of
/// [`PLAINTEXT_FIELDS`]; returns the ids of the signals.
async fn exercise(test: &TestNode) -> Vec<String> {
    let mut signals = test.signals(SIGNALER);
    let mut officer = test.audit(OFFICER);
    let first = register_ok(&mut signals, register(&bsn(1))).await;
    let second = register_ok(
        &mut signals,
        proto::RegisterRequest {
            related: vec![related(&bsn(3), Relation::Parent)],
            category: Category::CoerciveControl as i32,
            severity: Severity::Ernstig as i32,
            ..register(&bsn(2))
        },
    )
    .await;
    signals
        .update(proto::UpdateRequest {
            signal_id: second.id.clone(),
            meldcode_step: Some(MeldcodeStep::Wegen as i32),
            severity: None,
            expected_version: 1,
        })
        .await
        .expect("an update");
    assert_eq!(
        list_all(&mut signals, proto::ListRequest::default())
            .await
            .len(),
        2
    );
    search_all(&mut officer, proto::AuditSearchRequest::default()).await;
    officer
        .checkpoint(proto::CheckpointRequest {})
        .await
        .expect("a checkpoint");
    vec![first.id, second.id]
}

async fn verify_rpc(client: &LocalClient) -> proto::VerifyResponse {
    client
        .audit
        .clone()
        .verify(proto::VerifyRequest {})
        .await
        .expect("the Verify call is answered")
        .into_inner()
}

/// Starts a node from `config`, waiting while the store the previous run just closed is still
/// locked by sled's background threads.
/// The node's store once re-encryption has resealed every value (waited for boundedly).
async fn resealed(node: &RunningNode) -> Arc<dyn Store> {
    let store = node.ledger().store().clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while store.data_keys().expect("the key use").needs_reseal() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "re-encryption did not finish"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store
}

async fn start_again(config: &Config) -> Result<RunningNode, NodeError> {
    for _ in 0..200 {
        match RunningNode::start(config.clone(), Arc::new(SystemClock)).await {
            Err(NodeError::Store(e)) if e.to_string().contains("could not acquire lock") => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => return other,
        }
    }
    panic!("the store stayed locked");
}

/// A client per principal of a node restarted from `test`'s configuration.
/// A signaler's list fails with INTERNAL naming the signal whose record does not open.
async fn list_fails_naming(clients: &BTreeMap<String, LocalClient>, signal_id: &str) {
    let failed = clients[SIGNALER]
        .signals
        .clone()
        .list(proto::ListRequest::default())
        .await
        .expect_err("a list that reads the signal fails");
    assert_eq!(failed.code(), tonic::Code::Internal);
    assert!(
        failed.message().contains(&format!("signal {signal_id}")),
        "{failed:?}"
    );
}

async fn connect(node: &RunningNode, test: &Restartable) -> BTreeMap<String, LocalClient> {
    common::connect_all(&node.local_addr().to_string(), &test.ca_pem, &test.tokens).await
}

/// What a test keeps of a [`TestNode`] to start it again.
struct Restartable {
    config: Config,
    store_path: PathBuf,
    ca_pem: String,
    tokens: BTreeMap<String, String>,
    _dir: tempfile::TempDir,
}

/// Stops the node gracefully and keeps what its restarts need.
async fn stop(test: TestNode) -> Restartable {
    test.node.shutdown().await.expect("a graceful stop");
    Restartable {
        config: test.config,
        store_path: test.store_path,
        ca_pem: test.ca_pem,
        tokens: test.tokens,
        _dir: test.dir,
    }
}

#[tokio::test]
async fn encrypted_stores_hold_no_plaintext_signal_fields() {
    let key = crypt::generate_key();
    let sealed = start_node_with(&school(), Arc::new(SystemClock), |config| {
        config.store.keyring = keyring(&[(1, &key)], 1);
    })
    .await;
    let plain = start_node(&school()).await;
    let sealed_ids = exercise(&sealed).await;
    let plain_ids = exercise(&plain).await;

    // The node's own Verify opens its events with its keyring.
    let verified = verify_rpc(&sealed.client(OFFICER)).await;
    assert!(verified.ok, "{}", verified.problem);
    assert!(verified.events_checked > 5);

    let audit_key = sealed.node.audit_key().clone();
    let (sealed_dir, sealed_store) = (sealed.dir.path().to_owned(), sealed.store_path.clone());
    let sealed_config = sealed.config.clone();
    sealed.node.shutdown().await.expect("a graceful stop");
    let plain_dir = plain.dir.path().to_owned();
    plain.node.shutdown().await.expect("a graceful stop");

    // The positive control: the same scan finds every field, and the signal ids as ASCII, in
    // the store without a keyring.
    let mut with_ids: Vec<&str> = PLAINTEXT_FIELDS.to_vec();
    with_ids.extend(plain_ids.iter().map(String::as_str));
    let (found, _) = found_under(&plain_dir, &with_ids);
    for needle in &with_ids {
        assert!(
            found.contains(&needle.to_string()),
            "the plain store holds {needle}"
        );
    }
    let mut with_ids: Vec<&str> = PLAINTEXT_FIELDS.to_vec();
    with_ids.extend(sealed_ids.iter().map(String::as_str));
    let (found, scanned) = found_under(&sealed_dir, &with_ids);
    assert!(found.is_empty(), "the encrypted store holds {found:?}");
    assert!(scanned > 0);

    // Offline, the log verifies with the data key (and the pinned audit key); without it
    // the store does not open, naming the key.
    let store = SledStore::open(&sealed_store, &sealed_config.store).expect("the store opens");
    let report = verify_store(&store, &pinned(&audit_key), None);
    assert!(report.ok(), "{:?}", report.problem);
    assert!(report.signatures_checked && report.events > 5);
    assert_eq!(store.signals_after(None).count(), 2);
    drop(store);
    let error = SledStore::open(&sealed_store, &StoreOptions::default()).unwrap_err();
    assert!(matches!(error, StoreError::MissingDataKey { id } if id.get() == 1));
    assert!(error.to_string().contains("data key 1"), "{error}");
}

#[tokio::test]
async fn a_rotation_reencrypts_everything_and_then_the_old_key_can_go() {
    let (one, two) = (crypt::generate_key(), crypt::generate_key());
    let test = start_node_with(&school(), Arc::new(SystemClock), |config| {
        config.store.keyring = keyring(&[(1, &one)], 1);
    })
    .await;
    // More records than one re-encryption commit takes (a signal and an event each).
    let mut signals = test.signals(SIGNALER);
    let count = 150;
    for n in 0..count {
        register_ok(&mut signals, register(&bsn(100 + n))).await;
    }
    let test = stop(test).await;
    let mut config = test.config.clone();

    // Key 2 active, key 1 still there: the node serves at once, and re-encrypts behind.
    config.store.keyring = keyring(&[(1, &one), (2, &two)], 2);
    let node = start_again(&config)
        .await
        .expect("the node starts with both keys");
    let clients = connect(&node, &test).await;
    let store = resealed(&node).await;
    let keys = store.data_keys().expect("the key use");
    assert_eq!(
        (keys.active, keys.plaintext, keys.keys.clone()),
        (Some(id(2)), false, vec![id(2)])
    );
    // Reported in the audit log, once.
    let mut officer = clients[OFFICER].audit.clone();
    let reported = search_all(
        &mut officer,
        proto::AuditSearchRequest {
            action: Some(AuditAction::StoreReencrypted as i32),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(reported.len(), 1, "{reported:?}");
    assert_eq!(reported[0].object, "data_key:2");
    assert!(
        reported[0].reason.contains("none needs data key 1"),
        "{}",
        reported[0].reason
    );
    let resealed: u64 = reported[0]
        .reason
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("the count of values sealed again");
    assert!(resealed > 2 * u64::from(count), "{resealed} values");
    drop(store);
    node.shutdown().await.expect("a graceful stop");

    // Key 1 can go: key 2 alone reads every signal and every event.
    config.store.keyring = keyring(&[(2, &two)], 2);
    let node = start_again(&config)
        .await
        .expect("the node starts with key 2 alone");
    let clients = connect(&node, &test).await;
    let mut signals = clients[SIGNALER].signals.clone();
    assert_eq!(
        list_all(&mut signals, proto::ListRequest::default())
            .await
            .len(),
        count as usize
    );
    let verified = verify_rpc(&clients[OFFICER]).await;
    assert!(verified.ok, "{}", verified.problem);
    let mut officer = clients[OFFICER].audit.clone();
    let registrations = search_all(
        &mut officer,
        proto::AuditSearchRequest {
            action: Some(AuditAction::SignalRegister as i32),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(registrations.len(), count as usize);
    node.shutdown().await.expect("a graceful stop");
}

#[tokio::test]
async fn a_start_without_a_key_that_values_still_need_is_refused_naming_it() {
    let (one, two) = (crypt::generate_key(), crypt::generate_key());
    let test = start_node_with(&school(), Arc::new(SystemClock), |config| {
        config.store.keyring = keyring(&[(1, &one)], 1);
    })
    .await;
    let mut signals = test.signals(SIGNALER);
    for n in 0..3 {
        register_ok(&mut signals, register(&bsn(200 + n))).await;
    }
    let test = stop(test).await;
    let (mut config, store_path) = (test.config.clone(), test.store_path.clone());

    let refused = |result: Result<RunningNode, NodeError>| match result {
        Ok(_) => panic!("the node started without data key 1"),
        Err(e) => e.to_string(),
    };
    // Straight to key 2: nothing is re-encrypted yet.
    config.store.keyring = keyring(&[(2, &two)], 2);
    let error = refused(start_again(&config).await);
    assert!(error.contains("data key 1"), "{error}");
    // Without a keyring at all.
    config.store.keyring = None;
    let error = refused(start_again(&config).await);
    assert!(error.contains("data key 1"), "{error}");
    // Another key under id 1.
    config.store.keyring = keyring(&[(1, &two)], 1);
    let error = refused(start_again(&config).await);
    assert!(error.contains("data key 1 is not the key"), "{error}");

    // A re-encryption that stopped half-way: some records under key 2, the rest under 1.
    {
        let store = SledStore::open(
            &store_path,
            &StoreOptions {
                keyring: keyring(&[(1, &one), (2, &two)], 2),
                ..StoreOptions::default()
            },
        )
        .expect("the store opens with both keys");
        let page = store.unsealed_records(None, 2).expect("a page");
        assert_eq!(page.records.len(), 2);
        store
            .apply(&[kring::store::Change::Reseal(page.records)])
            .expect("two records resealed");
        assert!(
            !store
                .unsealed_records(None, 1000)
                .expect("a page")
                .records
                .is_empty()
        );
    }
    config.store.keyring = keyring(&[(2, &two)], 2);
    let error = refused(start_again(&config).await);
    assert!(error.contains("data key 1"), "{error}");
    // Both keys: it starts, and finishes the job.
    config.store.keyring = keyring(&[(1, &one), (2, &two)], 2);
    let node = start_again(&config)
        .await
        .expect("the node starts with both keys");
    let store = resealed(&node).await;
    drop(store);
    node.shutdown().await.expect("a graceful stop");
    config.store.keyring = keyring(&[(2, &two)], 2);
    let node = start_again(&config)
        .await
        .expect("key 2 alone suffices now");
    node.shutdown().await.expect("a graceful stop");
}

#[tokio::test]
async fn a_value_under_a_retired_key_is_refused_while_that_key_is_still_configured() {
    let (one, two) = (crypt::generate_key(), crypt::generate_key());
    let test = start_node_with(&school(), Arc::new(SystemClock), |config| {
        config.store.keyring = keyring(&[(1, &one)], 1);
    })
    .await;
    let mut signals = test.signals(SIGNALER);
    let planted = register_ok(&mut signals, register(&bsn(500))).await;
    let kept = register_ok(&mut signals, register(&bsn(501))).await;
    let test = stop(test).await;
    let (mut config, store_path) = (test.config.clone(), test.store_path.clone());

    // Rotate to key 2 and let re-encryption finish and retire key 1.
    config.store.keyring = keyring(&[(1, &one), (2, &two)], 2);
    let node = start_again(&config)
        .await
        .expect("the node starts with both keys");
    let store = resealed(&node).await;
    assert_eq!(store.data_keys().expect("the key use").keys, vec![id(2)]);
    drop(store);
    node.shutdown().await.expect("a graceful stop");

    // Someone who holds the exposed key 1 and can write the store's files seals a value
    // under it: one that authenticates under key 1 and the record's key.
    let planted_id = SignalId::parse(&planted.id).expect("a signal id");
    let record = [b"s".as_slice(), planted_id.as_bytes()].concat();
    let (old, new) = (
        keyring(&[(1, &one)], 1).expect("key 1"),
        keyring(&[(2, &two)], 2).expect("key 2"),
    );
    tamper(&store_path, &record, |value| {
        assert_eq!(crypt::sealed_under(value), Some(id(2)));
        let plain = new.open(&record, value).expect("sealed under key 2");
        *value = old.seal(&record, &plain);
    });

    // Key 1 is still configured, but the store holds nothing under it any more.
    {
        let store = SledStore::open(&store_path, &config.store).expect("the store opens");
        let error = store.signal(&planted_id).unwrap_err();
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
        let error = error.to_string();
        assert!(error.contains(&format!("signal {}", planted.id)), "{error}");
        assert!(error.contains("sealed under data key 1"), "{error}");
        let other = SignalId::parse(&kept.id).expect("a signal id");
        assert!(store.signal(&other).expect("the other reads").is_some());
    }
    let node = start_again(&config)
        .await
        .expect("the node starts with both keys");
    let clients = connect(&node, &test).await;
    list_fails_naming(&clients, &planted.id).await;
    node.shutdown().await.expect("a graceful stop");
}

#[tokio::test]
async fn a_signal_that_does_not_open_fails_the_calls_that_audit_its_persons() {
    use kring::domain::{
        BreakGlassItem, BreakGlassReason, IndexNotice, Notice, Role, TransactionId, UnixMillis,
    };
    let key = crypt::generate_key();
    let test = start_node_with(&school(), Arc::new(SystemClock), |config| {
        config.store.keyring = keyring(&[(1, &key)], 1);
    })
    .await;
    let mut signals = test.signals(SIGNALER);
    let signal = register_ok(&mut signals, register(&bsn(600))).await;
    let test = stop(test).await;
    let (config, store_path) = (test.config.clone(), test.store_path.clone());

    // A match on the signal, and an emergency access that showed it, as the index and a
    // break-glass request leave them.
    let id = SignalId::parse(&signal.id).expect("a signal id");
    let other = Oin::parse(OIN).expect("an OIN");
    let access = SignalId::new();
    {
        let store = SledStore::open(&store_path, &config.store).expect("the store opens");
        store
            .apply(&[
                kring::store::Change::PutMatch(Notice {
                    cursor: 1,
                    received: UnixMillis(1),
                    from: other,
                    notice: IndexNotice::Match {
                        signal: id,
                        parties: vec![other],
                        household: false,
                        regie: None,
                    },
                }),
                kring::store::Change::PutBreakGlass(BreakGlassItem {
                    id: access,
                    transaction: TransactionId::new(),
                    at: UnixMillis(1),
                    requester: other,
                    requester_user: "l.smit".into(),
                    requester_role: Some(Role::Analyst),
                    reason: BreakGlassReason::AcuteDangerAdult,
                    signals: vec![id],
                    review: None,
                }),
            ])
            .expect("a match and a break-glass item");
    }
    // The signal's ciphertext changes on disk: it no longer opens.
    tamper(
        &store_path,
        &[b"s".as_slice(), id.as_bytes()].concat(),
        |v| v[20] ^= 0x01,
    );

    let node = start_again(&config).await.expect("the node starts");
    let clients = connect(&node, &test).await;
    // Listing matches audits the persons of each match's signal: it fails, naming the signal,
    // instead of recording an event without them.
    let failed = clients[SIGNALER]
        .signals
        .clone()
        .list_matches(proto::ListMatchesRequest::default())
        .await
        .expect_err("a list whose signal does not read fails");
    assert_eq!(failed.code(), tonic::Code::Internal, "{failed:?}");
    assert!(
        failed.message().contains(&format!("signal {}", signal.id)),
        "{failed:?}"
    );
    // So does reviewing the access, and the item stays unreviewed.
    let mut officer = clients[OFFICER].audit.clone();
    let failed = officer
        .review_break_glass(proto::ReviewBreakGlassRequest {
            id: access.to_string(),
            outcome: proto::ReviewOutcome::Justified as i32,
            reason: proto::ReviewReason::AcuteDangerConfirmed as i32,
        })
        .await
        .expect_err("a review whose signal does not read fails");
    assert_eq!(failed.code(), tonic::Code::Internal, "{failed:?}");
    assert!(
        failed.message().contains(&format!("signal {}", signal.id)),
        "{failed:?}"
    );
    let queue = officer
        .break_glass_queue(proto::BreakGlassQueueRequest::default())
        .await
        .expect("the queue")
        .into_inner()
        .items;
    assert_eq!(queue.len(), 1, "{queue:?}");
    assert_eq!(queue[0].outcome, proto::ReviewOutcome::Unspecified as i32);
    node.shutdown().await.expect("a graceful stop");
}

/// Rewrites one record's value in a stopped store, as someone with the disk could.
fn tamper(store_path: &Path, key: &[u8], change: impl FnOnce(&mut Vec<u8>)) {
    // sled lets go of the lock a moment after the node that closed the store.
    let mut opened = sled::Config::new().path(store_path).open();
    for _ in 0..200 {
        match &opened {
            Err(e) if e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(Duration::from_millis(20));
                opened = sled::Config::new().path(store_path).open();
            }
            _ => break,
        }
    }
    let db = opened.expect("sled opens the stopped store");
    let tree = db.open_tree("kring").expect("the tree");
    let mut value = tree.get(key).expect("a read").expect("the record").to_vec();
    change(&mut value);
    tree.insert(key, value).expect("a write");
    db.flush().expect("a flush");
}

#[tokio::test]
async fn a_changed_ciphertext_byte_is_detected_and_the_record_named() {
    let key = crypt::generate_key();
    let test = start_node_with(&school(), Arc::new(SystemClock), |config| {
        config.store.keyring = keyring(&[(1, &key)], 1);
    })
    .await;
    let mut signals = test.signals(SIGNALER);
    let signal = register_ok(&mut signals, register(&bsn(300))).await;
    let kept = register_ok(&mut signals, register(&bsn(301))).await;
    let registered = search_all(
        &mut test.audit(OFFICER),
        proto::AuditSearchRequest {
            action: Some(AuditAction::SignalRegister as i32),
            ..Default::default()
        },
    )
    .await;
    let event = registered
        .iter()
        .find(|e| e.object == format!("signal:{}", signal.id))
        .expect("the registration's event")
        .index;
    let test = stop(test).await;
    let (config, store_path) = (test.config.clone(), test.store_path.clone());

    let id = SignalId::parse(&signal.id).expect("a signal id");
    // One bit in the signal's ciphertext, and one in the event's (its last byte: the tag).
    tamper(
        &store_path,
        &[b"s".as_slice(), id.as_bytes()].concat(),
        |v| v[20] ^= 0x01,
    );
    tamper(
        &store_path,
        &[b"e".as_slice(), &event.to_be_bytes()].concat(),
        |v| {
            let last = v.len() - 1;
            v[last] ^= 0x01;
        },
    );

    {
        let store = SledStore::open(&store_path, &config.store).expect("the store opens");
        let error = store.signal(&id).unwrap_err().to_string();
        assert!(error.contains(&format!("signal {}", signal.id)), "{error}");
        assert!(
            error.contains("does not authenticate under data key 1"),
            "{error}"
        );
        let other = SignalId::parse(&kept.id).expect("a signal id");
        assert!(
            store
                .signal(&other)
                .expect("the other signal reads")
                .is_some()
        );
        let report = verify_store(&store, &Verifier::new(None), None);
        let problem = report
            .problem
            .expect("the changed event breaks the log")
            .to_string();
        assert!(
            problem.contains(&format!("audit event {event}")),
            "{problem}"
        );
        assert!(problem.contains("does not authenticate"), "{problem}");
    }

    // The running node names them too: in a failed read, and in its own Verify.
    let node = start_again(&config).await.expect("the node starts");
    let clients = connect(&node, &test).await;
    list_fails_naming(&clients, &signal.id).await;
    let verified = verify_rpc(&clients[OFFICER]).await;
    assert!(!verified.ok);
    assert!(
        verified.problem.contains(&format!("audit event {event}")),
        "{}",
        verified.problem
    );
    node.shutdown().await.expect("a graceful stop");
}

const OIN: &str = "00000001820000003000";
const TOKEN: &str = "kring_encryption_test_token";

/// Writes a certificate, its key, the CA and an audit key into `dir`, and returns a valid
/// configuration (listening on `port`) without a `[store]` section.
fn valid_setup(dir: &Path, port: u16) -> String {
    let ca = DevCa::generate("kring encryption test CA").expect("a CA");
    let oin = Oin::parse(OIN).expect("an OIN");
    let issued = ca
        .issue(&NodeCertRequest::loopback("Reclassering", oin, 1))
        .expect("a certificate");
    std::fs::write(dir.join("ca.crt"), ca.cert_pem()).expect("write");
    std::fs::write(dir.join("node.crt"), &issued.cert_pem).expect("write");
    std::fs::write(dir.join("node.key"), &issued.key_pem).expect("write");
    std::fs::write(dir.join("audit.key"), ed25519_key_pem()).expect("write");
    format!(
        r#"[node]
organisation = "Reclassering Nederland, unit Arnhem"
oin = "{OIN}"
org_type = "probation"
data_dir = "data"

[local]
listen = "127.0.0.1:{port}"
tls_cert = "node.crt"
tls_key = "node.key"

[audit]
signing_key = "audit.key"

[log]
level = "warn"

[[contact_points]]
id = "toezicht"
name = "Toezichthouder"
phone = "+31 88 000 0003"

[[principals]]
id = "r.smit"
token_sha256 = "{}"
roles = ["signaler", "privacy_officer"]
"#,
        token_hash_hex(TOKEN)
    )
}

#[test]
fn a_bad_key_configuration_is_refused_naming_the_key() {
    use base64::Engine;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let valid = valid_setup(dir.path(), 0);
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    std::fs::write(dir.path().join("one.key"), b64(&[1u8; 32]) + "\n").expect("write");
    std::fs::write(dir.path().join("raw.key"), [2u8; 32]).expect("write");
    std::fs::write(dir.path().join("short.key"), b64(&[3u8; 16])).expect("write");
    std::fs::write(dir.path().join("short-raw.key"), [4u8; 16]).expect("write");
    std::fs::write(dir.path().join("shared.key"), b64(&[5u8; 32])).expect("write");
    std::fs::write(
        dir.path().join("hex.key"),
        "00112233445566778899aabbccddeeff",
    )
    .expect("write");
    {
        use std::os::unix::fs::PermissionsExt;
        for (file, mode) in [
            ("one.key", 0o600),
            ("raw.key", 0o400),
            ("short.key", 0o600),
            ("short-raw.key", 0o600),
            ("shared.key", 0o640),
            ("hex.key", 0o600),
        ] {
            let path = dir.path().join(file);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
    }

    // Valid: a base64 file and a raw one, key 2 active; one key needs no active_data_key.
    let config = Config::parse(
        &format!(
            "{valid}\n[store]\ndata_keys = [{{ id = 1, file = \"one.key\" }}, {{ id = 2, file = \"raw.key\" }}]\nactive_data_key = 2\n"
        ),
        dir.path(),
    )
    .expect("a valid keyring");
    let ring = config.store.keyring.expect("a keyring");
    assert_eq!((ring.ids(), ring.active()), (vec![id(1), id(2)], id(2)));
    let config = Config::parse(
        &format!("{valid}\n[store]\ndata_keys = [{{ id = 7, file = \"one.key\" }}]\n"),
        dir.path(),
    )
    .expect("one key");
    assert_eq!(config.store.keyring.expect("a keyring").active(), id(7));
    let config = Config::parse(&valid, dir.path()).expect("no keys");
    assert!(
        config.store.keyring.is_none(),
        "without data_keys, values stay in the clear"
    );

    // (what, the [store] section, what the error must name)
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "a missing key file",
            r#"data_keys = [{ id = 1, file = "missing.key" }]"#,
            &["store.data_keys[0].file", "data key 1", "missing.key"],
        ),
        (
            "a key file others may read",
            r#"data_keys = [{ id = 1, file = "shared.key" }]"#,
            &[
                "store.data_keys[0].file",
                "data key 1",
                "mode 640",
                "chmod 600",
            ],
        ),
        (
            "a short key in base64",
            r#"data_keys = [{ id = 1, file = "one.key" }, { id = 2, file = "short.key" }]
active_data_key = 1"#,
            &["store.data_keys[1].file", "data key 2", "16-byte key"],
        ),
        (
            "32 hex digits (128 bits) in a file of 32 bytes",
            r#"data_keys = [{ id = 4, file = "hex.key" }]"#,
            &["store.data_keys[0].file", "data key 4", "32 bytes of text"],
        ),
        (
            "a short raw key",
            r#"data_keys = [{ id = 3, file = "short-raw.key" }]"#,
            &["store.data_keys[0].file", "data key 3", "16 bytes"],
        ),
        (
            "key id 0",
            r#"data_keys = [{ id = 0, file = "one.key" }]"#,
            &["store.data_keys[0].id", "1 to 65535"],
        ),
        (
            "a key id above 65535",
            r#"data_keys = [{ id = 65536, file = "one.key" }]"#,
            &["store.data_keys[0].id"],
        ),
        (
            "an id listed twice",
            r#"data_keys = [{ id = 1, file = "one.key" }, { id = 1, file = "raw.key" }]
active_data_key = 1"#,
            &["store.data_keys[1].id", "data key 1 is listed twice"],
        ),
        (
            "an active key not listed",
            r#"data_keys = [{ id = 1, file = "one.key" }, { id = 2, file = "raw.key" }]
active_data_key = 3"#,
            &["store.active_data_key", "data key 3"],
        ),
        (
            "two keys and no active one",
            r#"data_keys = [{ id = 1, file = "one.key" }, { id = 2, file = "raw.key" }]"#,
            &["store.active_data_key", "required"],
        ),
        (
            "an active key without keys",
            "active_data_key = 1",
            &["store.active_data_key"],
        ),
        (
            "a file and an environment variable at once",
            r#"data_keys = [{ id = 1, file = "one.key", env = "KRING_DATA_KEY" }]"#,
            &["store.data_keys[0].file", "data key 1", "one of them"],
        ),
        (
            "neither a file nor an environment variable",
            "data_keys = [{ id = 1 }]",
            &["store.data_keys[0].file", "data key 1"],
        ),
        (
            "an unset environment variable",
            r#"data_keys = [{ id = 1, file = "one.key" }, { id = 2, env = "KRING_TEST_DATA_KEY_THAT_IS_NEVER_SET" }]
active_data_key = 2"#,
            &[
                "store.data_keys[1].env",
                "data key 2",
                "KRING_TEST_DATA_KEY_THAT_IS_NEVER_SET",
            ],
        ),
        (
            "an unknown key in a data key",
            r#"data_keys = [{ id = 1, path = "one.key" }]"#,
            &["path"],
        ),
    ];
    for (what, store, names) in cases {
        let text = format!("{valid}\n[store]\n{store}\n");
        let error = Config::parse(&text, dir.path())
            .map(|_| ())
            .expect_err(what)
            .to_string();
        for name in *names {
            assert!(
                error.contains(name),
                "{what}: the error {error:?} does not name {name:?}"
            );
        }
    }
}

fn kring(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kring"));
    command.args(args).env_remove("KRING_TEST_DATA_KEY");
    for (name, value) in envs {
        command.env(name, value);
    }
    command.output().expect("the kring binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A `kring node` process, killed when dropped.
struct NodeProcess(Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_key_from_the_environment_seals_the_store_and_opens_it_offline() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let key_file = dir.path().join("data-2.key");
    let key_arg = key_file.to_str().expect("a UTF-8 path");

    // `kring store new-key`: a private file, never overwritten.
    let made = kring(&["store", "new-key", "--out", key_arg], &[]);
    assert!(made.status.success(), "{}", stderr(&made));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file)
            .expect("the key file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = kring(&["store", "new-key", "--out", key_arg], &[]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("never overwritten"),
        "{}",
        stderr(&again)
    );
    let base64_key = std::fs::read_to_string(&key_file)
        .expect("the key")
        .trim()
        .to_owned();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("its address")
        .port();
    let config = format!(
        "{}\n[store]\ndata_keys = [{{ id = 2, env = \"KRING_TEST_DATA_KEY\" }}]\n",
        valid_setup(dir.path(), port)
    );
    let config_path = dir.path().join("node.toml");
    std::fs::write(&config_path, config).expect("write");
    let config_arg = config_path.to_str().expect("a UTF-8 path");

    // Refused before the port is bound: the variable unset, or holding another key's id.
    let unset = kring(&["node", "--config", config_arg], &[]);
    assert!(!unset.status.success());
    assert!(
        stderr(&unset).contains("store.data_keys[0].env"),
        "{}",
        stderr(&unset)
    );
    assert!(stderr(&unset).contains("data key 2"), "{}", stderr(&unset));
    let other_id = format!("3:{base64_key}");
    let wrong = kring(
        &["node", "--config", config_arg],
        &[("KRING_TEST_DATA_KEY", &other_id)],
    );
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("holds data key 3, not data key 2"),
        "{}",
        stderr(&wrong)
    );
    // 32 hex digits (128 bits) are not taken as a 256-bit key: the environment holds base64.
    let hex = "00112233445566778899aabbccddeeff";
    let short = kring(
        &["node", "--config", config_arg],
        &[("KRING_TEST_DATA_KEY", &format!("2:{hex}"))],
    );
    assert!(!short.status.success());
    for name in ["store.data_keys[0].env", "$KRING_TEST_DATA_KEY", "32 bytes"] {
        assert!(stderr(&short).contains(name), "{}", stderr(&short));
    }
    assert!(!stderr(&short).contains(hex), "{}", stderr(&short));
    // A value that is not UTF-8 is refused without being printed.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStringExt;
        let mut value = format!("2:{base64_key}").into_bytes();
        value.insert(10, 0xFF);
        let garbled = Command::new(env!("CARGO_BIN_EXE_kring"))
            .args(["node", "--config", config_arg])
            .env("KRING_TEST_DATA_KEY", std::ffi::OsString::from_vec(value))
            .output()
            .expect("the kring binary runs");
        assert!(!garbled.status.success());
        let error = stderr(&garbled);
        assert!(
            error.contains("$KRING_TEST_DATA_KEY is not UTF-8: expected ID:BASE64"),
            "{error}"
        );
        assert!(!error.contains(&base64_key[12..]), "{error}");
    }
    assert!(!dir.path().join("data").exists(), "nothing was written");

    // The right value: the node runs, and what it stores is sealed under key 2.
    let value = format!("2:{base64_key}");
    let mut node = NodeProcess(
        Command::new(env!("CARGO_BIN_EXE_kring"))
            .args(["node", "--config", config_arg])
            .env("KRING_TEST_DATA_KEY", &value)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the node starts"),
    );
    let ca = std::fs::read_to_string(dir.path().join("ca.crt")).expect("the CA");
    let address = format!("127.0.0.1:{port}");
    let mut client = None;
    for _ in 0..400 {
        if let Some(status) = node.0.try_wait().expect("the child's status") {
            panic!("the node exited with {status}");
        }
        let roots = kring::tls::roots_from_pem(ca.as_bytes()).expect("the CA");
        if let Ok(connected) = LocalClient::connect(&address, "localhost", roots, Some(TOKEN)).await
            && connected
                .signals
                .clone()
                .list(proto::ListRequest::default())
                .await
                .is_ok()
        {
            client = Some(connected);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut client = client.expect("the node answered");
    client
        .signals
        .register(proto::RegisterRequest {
            category: Category::CoerciveControl as i32,
            severity: Severity::Ernstig as i32,
            contact_point: "toezicht".into(),
            ..register(&bsn(400))
        })
        .await
        .expect("a registration, acknowledged once durable");
    node.0.kill().expect("SIGKILL");
    node.0.wait().expect("the killed node is reaped");

    let (found, _) = found_under(
        &dir.path().join("data"),
        &[
            "coercive_control",
            "ernstig",
            "toezicht",
            "r.smit",
            "signal.register",
        ],
    );
    assert!(found.is_empty(), "the store holds {found:?}");

    // Offline verification needs the key, and recognises it by the store's key check.
    let store = dir.path().join("data").join("store");
    let store_arg = store.to_str().expect("a UTF-8 path");
    let without = kring(&["audit", "verify", "--store", store_arg], &[]);
    assert!(!without.status.success());
    assert!(
        stderr(&without).contains("data key 2"),
        "{}",
        stderr(&without)
    );
    assert!(
        stderr(&without).contains("--data-key"),
        "{}",
        stderr(&without)
    );
    let other = dir.path().join("other.key");
    let made = kring(
        &["store", "new-key", "--out", other.to_str().expect("UTF-8")],
        &[],
    );
    assert!(made.status.success());
    let unknown = kring(
        &[
            "audit",
            "verify",
            "--store",
            store_arg,
            "--data-key",
            other.to_str().expect("UTF-8"),
        ],
        &[],
    );
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("none of the data keys"),
        "{}",
        stderr(&unknown)
    );
    let with = kring(
        &[
            "audit",
            "verify",
            "--store",
            store_arg,
            "--data-key",
            key_arg,
        ],
        &[],
    );
    assert!(with.status.success(), "{}", stderr(&with));
    assert!(
        String::from_utf8_lossy(&with.stdout).contains("log verified"),
        "{}",
        String::from_utf8_lossy(&with.stdout)
    );
}

/// The development federation (the demo's, and the federation tests') seals every node's
/// store: pointers and parties at the index, notices and matches at the organisations, the
/// melding at Veilig Thuis, every audit event.
#[tokio::test]
async fn a_development_federation_seals_every_node_s_store() {
    use common_federation::{
        CHILD, GGD_SIGNALER, MOTHER, SCHOOL_AF, VT_ANALYST, client, eventually, matches_until,
        worry,
    };
    let (dir, federation) = common_federation::start(&kring::demo::demo_members()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let signal = common_federation::register_ok(
        &mut school,
        common_federation::register(
            CHILD,
            &[(MOTHER, Relation::Parent)],
            Category::CoerciveControl,
            Severity::Ernstig,
        ),
    )
    .await;
    common_federation::register_ok(&mut ggd, worry(MOTHER, &[(CHILD, Relation::Child)])).await;
    matches_until(&school, "the school hears of the GGD", |m| !m.is_empty()).await;
    school
        .signals
        .update(proto::UpdateRequest {
            signal_id: signal.id.clone(),
            meldcode_step: Some(MeldcodeStep::Beslissen as i32),
            severity: None,
            expected_version: 0,
        })
        .await
        .expect("step 5");
    school
        .signals
        .report_to_veilig_thuis(proto::ReportRequest {
            signal_id: signal.id.clone(),
            subject_bsn: CHILD.into(),
        })
        .await
        .expect("the melding");
    let vt = client(&federation, VT_ANALYST).await;
    eventually("Veilig Thuis received the melding", || async {
        let meldingen = vt
            .cases
            .clone()
            .list_meldingen(proto::ListMeldingenRequest {})
            .await
            .expect("the meldingen")
            .into_inner()
            .meldingen;
        (!meldingen.is_empty()).then_some(())
    })
    .await;
    federation.shutdown().await.expect("a graceful stop");

    let needles = [
        "coercive_control",
        "ernstig",
        CONTACT,
        SCHOOL_AF.1,
        GGD_SIGNALER.1,
        "signal.register",
        "pointer.publish",
        "notice.receive",
        "melding.receive",
        &signal.id,
    ];
    let mut directories = 0;
    for entry in std::fs::read_dir(dir.path()).expect("the federation's directory") {
        let node_dir = entry.expect("an entry").path();
        if !node_dir.join("store").is_dir() {
            continue;
        }
        let (found, _) = found_under(&node_dir, &needles);
        assert!(found.is_empty(), "{} holds {found:?}", node_dir.display());
        // The scan reads the stores' bytes: the accepted directory is kept in the clear.
        let (public, _) = found_under(&node_dir, &["kring development federation"]);
        directories += public.len();
    }
    assert_eq!(directories, kring::demo::demo_members().len());
}
