//! Nothing acknowledged is lost: across a graceful restart (same signals, same pseudonyms, a log
//! that extends the checkpoint kept before), and across a crash of a real `kring node`
//! process killed with SIGKILL in the middle of concurrent registrations.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    OFFICER, SIGNALER, bsn, connect, connect_all, hashes, ids, list_all, register, register_ok,
    related, school, search_all, start_node,
};
use kring::api::client::{LocalClient, prove_extends};
use kring::api::proto;
use kring::audit::merkle::verify_consistency;
use kring::audit::verify::verify_store;
use kring::audit::{NoteSigner, NoteVerifier, SignedCheckpoint, Verifier, checkpoint};
use kring::auth::{new_token, token_hash_hex};
use kring::clock::SystemClock;
use kring::config::Config;
use kring::domain::{Oin, SignalId};
use kring::node::RunningNode;
use kring::pki::{DevCa, NodeCertRequest, ed25519_key_pem};
use kring::store::{SledStore, Store, StoreOptions};
use proto::{AuditAction, Outcome, Relation};

async fn latest_checkpoint(
    audit: &mut kring::api::client::Audit,
    key: &NoteVerifier,
) -> SignedCheckpoint {
    let response = audit
        .checkpoint(proto::CheckpointRequest {})
        .await
        .expect("a checkpoint")
        .into_inner();
    checkpoint::open(key, &response.signed_note).expect("signed by the node's key")
}

fn pinned(key: &NoteVerifier) -> Verifier {
    Verifier::new(Some(key.clone())).expect_origin(key.name())
}

#[tokio::test]
async fn a_restart_keeps_signals_pseudonyms_and_the_log() {
    let test = start_node(&school()).await;
    let key = test.node.audit_key().clone();
    let mut signals = test.signals(SIGNALER);
    let (child, mother) = (bsn(1), bsn(2));
    let first = register_ok(
        &mut signals,
        proto::RegisterRequest {
            related: vec![related(&mother, Relation::Parent)],
            ..register(&child)
        },
    )
    .await;
    for i in 0..3 {
        register_ok(&mut signals, register(&bsn(10 + i))).await;
    }
    let listed = list_all(&mut signals, proto::ListRequest::default()).await;
    assert_eq!(listed.len(), 4);
    let kept = latest_checkpoint(&mut test.audit(OFFICER), &key).await;

    let common::TestNode {
        node,
        config,
        store_path,
        ca_pem,
        tokens,
        dir,
        ..
    } = test;
    node.shutdown().await.expect("a graceful stop");

    // The stopped store verifies offline with the pinned key and the checkpoint kept before.
    {
        let store = SledStore::open(&store_path, &StoreOptions::default()).expect("the store");
        let report = verify_store(&store, &pinned(&key).trust(kept.clone()), None);
        assert!(report.ok(), "{:?}", report.problem);
        assert!(report.signatures_checked);
        assert!(report.events > kept.size, "the stop is recorded after it");
        assert!(report.checkpoints >= 2, "the kept one and the last one");
        assert_eq!(report.stored_hashes, tlog_stored_hash_count(report.events));
    }

    // The same configuration on the same data directory, on a new port.
    let node = RunningNode::start(config.clone(), Arc::new(SystemClock))
        .await
        .expect("the node starts again");
    assert_eq!(node.audit_key(), &key);
    let clients = connect_all(&node.local_addr().to_string(), &ca_pem, &tokens).await;
    let mut signals = clients[SIGNALER].signals.clone();
    let mut officer = clients[OFFICER].audit.clone();

    assert_eq!(
        list_all(&mut signals, proto::ListRequest::default()).await,
        listed,
        "the same signals, unchanged"
    );
    let again = register_ok(&mut signals, register(&child)).await;
    assert_eq!(
        again.subject, first.subject,
        "the same BSN, the same pseudonym"
    );
    let of_mother = list_all(
        &mut signals,
        proto::ListRequest {
            person_bsn: Some(mother.clone()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&of_mother), vec![first.id.clone()]);
    let about_child = search_all(
        &mut officer,
        proto::AuditSearchRequest {
            subject_bsn: Some(child.clone()),
            action: Some(AuditAction::SignalRegister as i32),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        about_child
            .iter()
            .map(|e| e.object.clone())
            .collect::<Vec<_>>(),
        vec![
            format!("signal:{}", first.id),
            format!("signal:{}", again.id)
        ]
    );

    // The log after the restart extends the checkpoint kept before it.
    let latest = latest_checkpoint(&mut officer, &key).await;
    assert!(latest.size > kept.size);
    let proof = officer
        .consistency_proof(proto::ConsistencyProofRequest {
            old_size: kept.size,
            new_size: latest.size,
        })
        .await
        .expect("a consistency proof")
        .into_inner();
    verify_consistency(
        kept.size,
        &kept.root,
        latest.size,
        &latest.root,
        &hashes(&proof.proof),
    )
    .expect("the log extends the kept checkpoint");
    prove_extends(&mut officer, &key, &kept)
        .await
        .expect("the client helper agrees");
    let stops = search_all(
        &mut officer,
        proto::AuditSearchRequest {
            action: Some(AuditAction::NodeStopped as i32),
            ..Default::default()
        },
    )
    .await;
    let starts = search_all(
        &mut officer,
        proto::AuditSearchRequest {
            action: Some(AuditAction::NodeStarted as i32),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(stops.len(), 1);
    assert_eq!(starts.len(), 2);
    assert!(starts[0].index < stops[0].index && stops[0].index < starts[1].index);

    node.shutdown().await.expect("a graceful stop");
    let store = SledStore::open(&store_path, &StoreOptions::default()).expect("the store");
    let report = verify_store(&store, &pinned(&key).trust(kept).trust(latest), None);
    assert!(report.ok(), "{:?}", report.problem);
    drop(dir);
}

/// How many stored hashes a log of `n` events has (tlog's layout): `2n - popcount(n)`.
fn tlog_stored_hash_count(n: u64) -> u64 {
    2 * n - u64::from(n.count_ones())
}

/// A `kring node` child process, killed (SIGKILL) when dropped.
struct NodeProcess {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl NodeProcess {
    fn spawn(config: &Path, dir: &Path, run: &str) -> NodeProcess {
        let stdout = dir.join(format!("{run}.stdout"));
        let stderr = dir.join(format!("{run}.stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_kring"))
            .arg("node")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("a stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("a stderr file"))
            .spawn()
            .expect("the kring binary starts");
        NodeProcess {
            child,
            stdout,
            stderr,
        }
    }

    fn output(&self) -> String {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        )
    }

    /// Polls until the node answers a call (at most about 20 s), then returns a client.
    async fn wait_until_it_answers(&mut self, address: &str, ca: &str, token: &str) -> LocalClient {
        for _ in 0..400 {
            if let Some(status) = self.child.try_wait().expect("the child's status") {
                panic!("the node exited with {status}\n{}", self.output());
            }
            let roots = kring::tls::roots_from_pem(ca.as_bytes()).expect("the CA");
            if let Ok(client) = LocalClient::connect(address, "localhost", roots, Some(token)).await
                && client
                    .signals
                    .clone()
                    .list(proto::ListRequest::default())
                    .await
                    .is_ok()
            {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the node never answered\n{}", self.output());
    }

    fn kill(&mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("the killed child is reaped");
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// Writes a node's certificate, keys and TOML configuration into `dir`.
fn write_node_config(dir: &Path, port: u16, tokens: &BTreeMap<&str, String>) -> PathBuf {
    let oin = Oin::parse("00000001820000002000").expect("an OIN");
    let ca = DevCa::generate("kring crash test CA").expect("a CA");
    let issued = ca
        .issue(&NodeCertRequest::loopback("GGD Gelderland-Zuid", oin, 1))
        .expect("a node certificate");
    std::fs::write(dir.join("ca.crt"), ca.cert_pem()).expect("write");
    std::fs::write(dir.join("node.crt"), &issued.cert_pem).expect("write");
    std::fs::write(dir.join("node.key"), &issued.key_pem).expect("write");
    std::fs::write(dir.join("audit.key"), ed25519_key_pem()).expect("write");
    let toml = format!(
        r#"
[node]
organisation = "GGD Gelderland-Zuid"
oin = "{oin}"
org_type = "ggd"
data_dir = "data"

[local]
listen = "127.0.0.1:{port}"
tls_cert = "node.crt"
tls_key = "node.key"

[audit]
signing_key = "audit.key"
checkpoint_every_events = 100
checkpoint_every_secs = 1

[log]
level = "warn"

[[contact_points]]
id = "jgz-team"
name = "JGZ-team"
phone = "+31 88 000 0002"

[[principals]]
id = "load"
token_sha256 = "{load}"
roles = ["signaler"]

[[principals]]
id = "fg.ggd"
token_sha256 = "{officer}"
roles = ["privacy_officer"]
"#,
        load = token_hash_hex(&tokens["load"]),
        officer = token_hash_hex(&tokens["fg.ggd"]),
    );
    let path = dir.join("node.toml");
    std::fs::write(&path, toml).expect("write");
    path
}

const CLIENTS: u32 = 16;
/// How many acknowledgements to see before the kill; the clients keep going past it.
const ACKS_BEFORE_KILL: usize = 1200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_load_loses_nothing_acknowledged() {
    let dir = tempfile::Builder::new()
        .prefix("kring-crash-")
        .tempdir()
        .expect("a temporary directory");
    let tokens: BTreeMap<&str, String> = [("load", new_token()), ("fg.ggd", new_token())].into();
    let port = free_port();
    let config_path = write_node_config(dir.path(), port, &tokens);
    let config = Config::load(&config_path).expect("the written configuration is valid");
    let key = NoteSigner::from_pkcs8(&config.audit.origin, &config.audit.signing_key_pkcs8)
        .expect("the audit key")
        .verifier();
    let ca = std::fs::read_to_string(dir.path().join("ca.crt")).expect("the CA");
    let address = format!("127.0.0.1:{port}");

    let mut process = NodeProcess::spawn(&config_path, dir.path(), "first");
    process
        .wait_until_it_answers(&address, &ca, &tokens["load"])
        .await;

    // Sixteen clients, each on its own connection, register until the node dies under them.
    let acknowledged: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let count = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let client = connect(&address, &ca, Some(&tokens["load"])).await;
        let acknowledged = acknowledged.clone();
        let count = count.clone();
        clients.push(tokio::spawn(async move {
            let mut signals = client.signals;
            for i in 0.. {
                let request = proto::RegisterRequest {
                    contact_point: "jgz-team".into(),
                    ..register(&bsn(c * 100_000 + i))
                };
                match signals.register(request).await {
                    Ok(response) => {
                        let signal = response.into_inner().signal.expect("the signal");
                        acknowledged
                            .lock()
                            .expect("the list")
                            .push((signal.id, signal.subject));
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(status) => return (i, status),
                }
            }
            unreachable!("the loop only ends with an error")
        }));
    }
    for _ in 0..6000 {
        if count.load(Ordering::SeqCst) >= ACKS_BEFORE_KILL {
            break;
        }
        if let Some(status) = process.child.try_wait().expect("the child's status") {
            panic!("the node exited with {status}\n{}", process.output());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        count.load(Ordering::SeqCst) >= ACKS_BEFORE_KILL,
        "the load never reached {ACKS_BEFORE_KILL} acknowledgements"
    );
    process.kill();
    for client in clients {
        let (calls, status) = client.await.expect("a client task");
        assert!(calls > 0, "every client registered before the kill");
        assert_ne!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    }
    let acknowledged = std::mem::take(&mut *acknowledged.lock().expect("the list"));
    eprintln!(
        "{} registrations acknowledged before the kill",
        acknowledged.len()
    );
    assert!(acknowledged.len() >= ACKS_BEFORE_KILL);

    // Every acknowledged signal is in the store, as acknowledged, and the log verifies.
    let store_path = config.data_dir.join("store");
    {
        let store = SledStore::open(&store_path, &StoreOptions::default()).expect("the store");
        for (id, subject) in &acknowledged {
            let stored = store
                .signal(&SignalId::parse(id).expect("a signal id"))
                .expect("a read")
                .unwrap_or_else(|| panic!("the acknowledged signal {id} was lost"));
            assert_eq!(&stored.subject.to_string(), subject);
        }
        let report = verify_store(&store, &pinned(&key), None);
        assert!(report.ok(), "{:?}", report.problem);
        assert!(report.signatures_checked);
        assert!(report.events > acknowledged.len() as u64);
    }

    // The node starts again from the same configuration and lists them all.
    let mut process = NodeProcess::spawn(&config_path, dir.path(), "second");
    let client = process
        .wait_until_it_answers(&address, &ca, &tokens["load"])
        .await;
    let mut signals = client.signals.clone();
    let listed: std::collections::BTreeSet<String> = list_all(
        &mut signals,
        proto::ListRequest {
            page_size: 100,
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .map(|s| s.id)
    .collect();
    for (id, _) in &acknowledged {
        assert!(listed.contains(id), "{id} is listed after the restart");
    }
    // Each acknowledged registration has its audit event.
    let mut officer = client
        .with_token(Some(&tokens["fg.ggd"]))
        .expect("a token")
        .audit;
    let registered: std::collections::BTreeSet<String> = search_all(
        &mut officer,
        proto::AuditSearchRequest {
            action: Some(AuditAction::SignalRegister as i32),
            outcome: Some(Outcome::Success as i32),
            page_size: 1000,
            ..Default::default()
        },
    )
    .await
    .into_iter()
    .map(|e| e.object)
    .collect();
    for (id, _) in &acknowledged {
        assert!(
            registered.contains(&format!("signal:{id}")),
            "the registration of {id} is audited"
        );
    }
    let verified = officer
        .verify(proto::VerifyRequest {})
        .await
        .expect("a verification")
        .into_inner();
    assert!(verified.ok, "{}", verified.problem);
    process.kill();
}
