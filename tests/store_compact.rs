//! `kring store compact`: what a withdrawal deleted is still in sled's files until the store is
//! compacted, and gone from them afterwards; every live record survives byte for byte, the log
//! verifies, and the node records the compaction when it starts again; a store sealed at rest
//! is compacted without its data key and opens with it after; an interrupted run is finished
//! by the next, whichever step it stopped at; a run that fails before the swap removes its copy
//! and leaves the store as it was. Refusals: a running node's store, a second run, a directory
//! without a store, and a node start on an unfinished compaction.

mod common;
mod common_files;

use common_files::{contains, files_under};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use common::{
    COORDINATOR, OFFICER, SIGNALER, bsn, connect_all, ids, list_all, register, register_ok,
    related, school, search_all, start_node, start_node_with,
};
use kring::api::client::LocalClient;
use kring::api::proto;
use kring::audit::Verifier;
use kring::audit::verify::verify_store;
use kring::clock::SystemClock;
use kring::node::RunningNode;
use kring::store::compact::{compacting_path, record_path, superseded_path};
use kring::store::{DataKeyId, Keyring, SledStore, StoreOptions};
use proto::{AuditAction, Relation};

/// Every record of every tree of a stopped store, read with sled itself.
type Records = BTreeMap<(Vec<u8>, Vec<u8>), Vec<u8>>;

fn records(store: &Path) -> Records {
    // sled lets go of a store's lock a moment after the node dropped it.
    let db = (0..100)
        .find_map(|_| {
            sled::Config::new().path(store).open().ok().or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(50));
                None
            })
        })
        .expect("the stopped store opens");
    let mut all = Records::new();
    for name in db.tree_names() {
        for entry in db.open_tree(&name).expect("a tree").iter() {
            let (key, value) = entry.expect("a record");
            all.insert((name.to_vec(), key.to_vec()), value.to_vec());
        }
    }
    all
}

/// The files under `dir`, with their bytes.
fn files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files_under(dir)
        .into_iter()
        .map(|path| {
            let bytes = std::fs::read(&path).expect("a readable file");
            (path, bytes)
        })
        .collect()
}

fn compact(store: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kring"))
        .args(["store", "compact", "--store"])
        .arg(store)
        .output()
        .expect("the kring binary runs")
}

/// A node stopped by the test, with what it takes to start it again.
struct Stopped {
    config: kring::config::Config,
    ca_pem: String,
    tokens: BTreeMap<String, String>,
    store: PathBuf,
    _dir: tempfile::TempDir,
}

impl Stopped {
    async fn stop(test: common::TestNode) -> Stopped {
        test.node.shutdown().await.expect("a graceful stop");
        Stopped {
            config: test.config,
            ca_pem: test.ca_pem,
            tokens: test.tokens,
            store: test.store_path,
            _dir: test.dir,
        }
    }

    /// Starts the node again on its store, with a client per principal.
    async fn start(&self, what: &str) -> (RunningNode, BTreeMap<String, LocalClient>) {
        let node = RunningNode::start(self.config.clone(), Arc::new(SystemClock))
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let clients = connect_all(&node.local_addr().to_string(), &self.ca_pem, &self.tokens).await;
        (node, clients)
    }

    async fn refused_start(&self) -> String {
        RunningNode::start(self.config.clone(), Arc::new(SystemClock))
            .await
            .expect_err("the node refuses to start")
            .to_string()
    }
}

/// The signals the school lists, by id.
async fn listed(clients: &BTreeMap<String, LocalClient>) -> Vec<String> {
    ids(&list_all(
        &mut clients[SIGNALER].signals.clone(),
        proto::ListRequest::default(),
    )
    .await)
}

/// The `store.compacted` events in the node's log.
async fn compactions(clients: &BTreeMap<String, LocalClient>) -> Vec<proto::AuditEvent> {
    search_all(
        &mut clients[OFFICER].audit.clone(),
        proto::AuditSearchRequest {
            action: Some(AuditAction::StoreCompacted as i32),
            ..Default::default()
        },
    )
    .await
}

fn compacted_ok(store: &Path) {
    let output = compact(store);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for (path, bytes) in files(from) {
        let target = to.join(path.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }
}

fn refused(output: &Output, message: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "refused: {stderr}");
    assert!(stderr.contains(message), "{message:?} in {stderr:?}");
}

#[tokio::test]
async fn compaction_removes_what_a_withdrawal_left_in_the_files_and_keeps_everything_else() {
    let test = start_node(&school()).await;
    let key = test.node.audit_key().clone();
    let mut signals = test.signals(SIGNALER);
    let kept = register_ok(
        &mut signals,
        proto::RegisterRequest {
            related: vec![related(&bsn(2), Relation::Parent)],
            ..register(&bsn(1))
        },
    )
    .await;
    let mistaken = register_ok(&mut signals, register(&bsn(3))).await;

    // A compaction of a running node's store is refused and changes nothing.
    let store = test.store_path.clone();
    refused(&compact(&store), "the store is in use; stop the node first");
    assert!(!compacting_path(&store).exists());

    let stopped = Stopped::stop(test).await;
    let before_withdrawal = records(&store);

    let (node, clients) = stopped.start("the node starts again").await;
    clients[COORDINATOR]
        .signals
        .clone()
        .withdraw(proto::WithdrawRequest {
            signal_id: mistaken.id.clone(),
            reason: proto::WithdrawReason::Unfounded as i32,
        })
        .await
        .expect("a coordinator may withdraw");
    node.shutdown().await.expect("a graceful stop");

    // What the withdrawal deleted: the values of records gone or changed since, that no live
    // record holds.
    let live = records(&store);
    let deleted: Vec<&Vec<u8>> = before_withdrawal
        .iter()
        .filter(|(key, value)| live.get(*key) != Some(*value))
        .map(|(_, value)| value)
        .filter(|value| value.len() >= 32)
        .filter(|value| !live.values().any(|v| contains(v, value)))
        .collect();
    assert!(!deleted.is_empty(), "the withdrawal deleted the signal");
    let in_files = |dir: &Path, value: &[u8]| {
        files(dir)
            .into_iter()
            .any(|(_, bytes)| contains(&bytes, value))
    };
    assert!(
        deleted.iter().any(|value| in_files(&store, value)),
        "sled keeps deleted values in its files until it reuses them"
    );

    let output = compact(&store);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("{} records", live.len())),
        "{stdout}"
    );
    for value in &deleted {
        assert!(!in_files(&store, value), "a deleted value is gone");
    }
    let parent = store.parent().expect("the data directory");
    for leftover in [compacting_path(&store), superseded_path(&store)] {
        assert!(!leftover.exists(), "{} is removed", leftover.display());
    }
    assert!(record_path(&store).exists(), "the node is to audit it");
    assert_eq!(records(&store), live, "every live record, byte for byte");
    for (path, bytes) in files(parent) {
        for value in &deleted {
            assert!(
                !contains(&bytes, value),
                "{} holds no deleted value",
                path.display()
            );
        }
    }

    // The log verifies offline, and the node starts on the new files and records the
    // compaction.
    {
        let opened = SledStore::open(&store, &StoreOptions::default()).expect("the store");
        let report = verify_store(
            &opened,
            &Verifier::new(Some(key.clone())).expect_origin(key.name()),
            None,
        );
        assert!(report.ok(), "{:?}", report.problem);
        assert!(report.signatures_checked);
    }
    let (node, clients) = stopped
        .start("the node starts on the compacted store")
        .await;
    assert_eq!(node.audit_key(), &key);
    assert_eq!(listed(&clients).await, vec![kept.id.clone()]);
    let compacted = compactions(&clients).await;
    assert_eq!(compacted.len(), 1, "{compacted:?}");
    assert_eq!(
        compacted[0].actor.as_ref().map(|a| a.user.as_str()),
        Some("kring:store")
    );
    assert!(
        compacted[0]
            .reason
            .contains(&format!("{} records copied", live.len())),
        "{}",
        compacted[0].reason
    );
    assert!(!record_path(&store).exists(), "recorded once");
    node.shutdown().await.expect("a graceful stop");
}

#[tokio::test]
async fn a_node_does_not_start_on_an_unfinished_compaction_and_compact_finishes_it() {
    // Sealed at rest: compaction copies the ciphertexts as they are, with no data key.
    let test = start_node_with(&school(), Arc::new(SystemClock), |config| {
        config.store.keyring = Some(Arc::new(Keyring::generate(
            DataKeyId::new(1).expect("not zero"),
        )));
    })
    .await;
    let kept = register_ok(&mut test.signals(SIGNALER), register(&bsn(5))).await;
    let stopped = Stopped::stop(test).await;
    let store = stopped.store.clone();
    let live = records(&store);

    // A copy left half-built by an interrupted run.
    let copy = compacting_path(&store);
    std::fs::create_dir_all(&copy).unwrap();
    std::fs::write(copy.join("db"), b"half a copy").unwrap();
    let message = stopped.refused_start().await;
    assert!(
        message.contains(&format!(
            "run `kring store compact --store {}` to finish it",
            store.display()
        )),
        "{message}"
    );
    assert!(message.contains("store.compacting"), "{message}");

    compacted_ok(&store);
    assert!(!copy.exists());
    assert_eq!(records(&store), live);

    // Interrupted between its two renames, with a complete copy: the copy goes into place.
    copy_dir(&store, &copy);
    std::fs::rename(&store, superseded_path(&store)).unwrap();
    let message = stopped.refused_start().await;
    assert!(message.contains("a compaction did not finish"), "{message}");
    compacted_ok(&store);
    assert!(!copy.exists() && !superseded_path(&store).exists());
    assert_eq!(records(&store), live);

    // The same without the copy (removed by hand): the old store goes back into place.
    std::fs::rename(&store, superseded_path(&store)).unwrap();
    compacted_ok(&store);
    assert!(!superseded_path(&store).exists());
    assert_eq!(records(&store), live);

    let (node, clients) = stopped
        .start("the node starts after the compaction finished")
        .await;
    assert_eq!(listed(&clients).await, vec![kept.id]);
    // Three runs finished while the node was stopped: three events.
    let compacted = compactions(&clients).await;
    assert_eq!(compacted.len(), 3, "{compacted:?}");
    assert!(!record_path(&store).exists());
    node.shutdown().await.expect("a graceful stop");
}

#[test]
fn a_directory_without_a_store_and_a_second_run_are_refused() {
    use fs2::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("store");
    std::fs::create_dir_all(&empty).unwrap();
    refused(
        &compact(&empty),
        &format!("{}: no store here", empty.display()),
    );
    assert!(!compacting_path(&empty).exists());
    assert!(!record_path(&empty).exists());

    // A run holds the store's compaction lock; a second is refused.
    let lock = std::fs::File::open(dir.path().join("store.compact-lock")).unwrap();
    lock.try_lock_exclusive().unwrap();
    refused(
        &compact(&empty),
        &format!(
            "{}: another compaction of this store is running",
            empty.display()
        ),
    );
}

/// `kring store compact` in a process that may hold at most `limit` open files: a run cut
/// short at whichever step needs one more, the way a full disk or a broken device would.
fn compact_with_files(store: &Path, limit: u64) -> Output {
    use std::os::unix::process::CommandExt;
    let mut command = Command::new(env!("CARGO_BIN_EXE_kring"));
    command.args(["store", "compact", "--store"]).arg(store);
    // SAFETY: between fork and exec the closure calls only setrlimit, which is
    // async-signal-safe, and touches no memory shared with the parent.
    unsafe {
        command.pre_exec(move || {
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    command.output().expect("the kring binary runs")
}

#[tokio::test]
async fn a_run_cut_short_before_the_swap_removes_its_copy_and_leaves_the_store_as_it_was() {
    let test = start_node(&school()).await;
    let mut signals = test.signals(SIGNALER);
    let mut registered = Vec::new();
    for n in 1..=20 {
        registered.push(register_ok(&mut signals, register(&bsn(n))).await.id);
    }
    registered.sort();
    let stopped = Stopped::stop(test).await;
    let store = stopped.store.clone();
    let before = records(&store);
    let copy = compacting_path(&store).display().to_string();

    // From too few files to start the process at all up to enough for a whole run: every
    // run that fails leaves the store as it was, and nothing behind.
    let mut failed_on_the_copy = 0;
    let mut limit = 3;
    loop {
        let output = compact_with_files(&store, limit);
        if output.status.success() {
            break;
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if stderr.contains(&copy) {
            failed_on_the_copy += 1;
            assert!(
                !stderr.contains("could not be removed"),
                "with {limit} files: {stderr}"
            );
            assert_eq!(
                stderr.matches("Too many open files").count(),
                1,
                "the cause is said once: {stderr}"
            );
        }
        for leftover in [compacting_path(&store), superseded_path(&store)] {
            assert!(
                !leftover.exists(),
                "with {limit} files: {} is removed ({stderr})",
                leftover.display()
            );
        }
        assert!(
            !record_path(&store).exists(),
            "with {limit} files: nothing to audit"
        );
        assert_eq!(
            records(&store),
            before,
            "with {limit} files: the store is as it was"
        );
        limit += 1;
        assert!(limit < 256, "a run needs a handful of files");
    }
    assert!(
        failed_on_the_copy > 0,
        "some run failed while building its copy"
    );
    assert_eq!(
        records(&store),
        before,
        "the run that succeeded kept every record"
    );

    // The node starts on the compacted store with every signal, and records the one
    // compaction that finished.
    let (node, clients) = stopped.start("the node starts after the runs").await;
    let mut listed = listed(&clients).await;
    listed.sort();
    assert_eq!(listed, registered);
    assert_eq!(compactions(&clients).await.len(), 1);
    node.shutdown().await.expect("a graceful stop");
}
