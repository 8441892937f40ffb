//! Witnessing over the wire: every node pushes its signed checkpoint to every other member,
//! which checks a consistency proof from what it saw before and returns a C2SP
//! tlog-cosignature. A privacy officer checks the cosigned checkpoint offline; a node whose
//! history is rewritten is caught by its witnesses, and every node's audit API says so.
//! Real nodes, real mutual TLS, real sled stores.

mod common_federation;

use std::sync::Arc;
use std::time::Duration;

use common_federation::*;
use kring::api::proto;
use kring::audit::cosignature::{self, CosignatureError, WitnessKey};
use kring::audit::{NoteSigner, NoteVerifier, SignedCheckpoint, checkpoint};
use kring::clock::{SharedClock, SystemClock};
use kring::demo::DevOrganisation;
use kring::devnet::{DevMember, RunningFederation};
use kring::directory::NodeRole;
use kring::domain::{OrgType, Role};
use kring::federation::witness::Pushed;
use tonic::Code;

const NODES: [&str; 4] = ["index", "pseudonyms", "school", "ggd"];

fn members() -> Vec<DevMember> {
    let fg = |o: DevOrganisation| o.principal(FG, &[Role::PrivacyOfficer]);
    vec![
        DevMember::new(
            "index",
            fg(DevOrganisation::new(
                "Verwijsindex regio",
                INDEX,
                OrgType::FederationService,
            )),
            &[NodeRole::Index],
        ),
        DevMember::new(
            "pseudonyms",
            fg(DevOrganisation::new(
                "Pseudoniemdienst",
                "00000001820000000200",
                OrgType::FederationService,
            )),
            &[NodeRole::PseudonymService],
        ),
        DevMember::new(
            "school",
            fg(
                DevOrganisation::new("Basisschool De Regenboog", SCHOOL, OrgType::School)
                    .principal("m.jansen", &[Role::Signaler]),
            ),
            &[NodeRole::Organisation],
        ),
        DevMember::new(
            "ggd",
            fg(DevOrganisation::new(
                "GGD Gelderland-Zuid",
                GGD,
                OrgType::Ggd,
            )),
            &[NodeRole::Organisation],
        ),
    ]
}

/// A federation whose scheduled witnessing runs every `every`.
async fn federation(every: Duration) -> (tempfile::TempDir, RunningFederation) {
    start_on(&members(), Arc::new(SystemClock), |node| {
        node.config.witness_every = every;
    })
    .await
}

/// Scheduled rounds out of the way: the test pushes when it wants to.
const BY_HAND: Duration = Duration::from_secs(3600);

fn oin_of(federation: &RunningFederation, node: &str) -> String {
    federation.node(node).organisation().to_string()
}

/// A member's audit key as the directory pins it (what a privacy officer pins).
fn pinned_key(federation: &RunningFederation, node: &str) -> String {
    member(federation, "school", &oin_of(federation, node)).audit_key
}

fn witness_keys(federation: &RunningFederation, log: &str) -> Vec<String> {
    NODES
        .iter()
        .filter(|n| **n != log)
        .map(|n| pinned_key(federation, n))
        .collect()
}

/// `node` signs a checkpoint of what is new; its latest durable checkpoint.
async fn signed_head(federation: &RunningFederation, node: &str) -> SignedCheckpoint {
    let ledger = federation.node(node).ledger();
    ledger.checkpoint().await.expect("a checkpoint is signed");
    ledger.durable().checkpoint.expect("a checkpoint")
}

async fn round(federation: &RunningFederation, node: &str) -> Vec<(String, Pushed)> {
    federation
        .node(node)
        .witness()
        .expect("a federated node witnesses")
        .round()
        .await
        .into_iter()
        .map(|(oin, pushed)| (oin.to_string(), pushed))
        .collect()
}

async fn cosigned(
    federation: &RunningFederation,
    node: &str,
) -> Result<proto::CosignedCheckpointResponse, tonic::Status> {
    officer(federation, node)
        .await
        .audit
        .cosigned_checkpoint(proto::CosignedCheckpointRequest { tree_size: 0 })
        .await
        .map(tonic::Response::into_inner)
}

async fn forks(federation: &RunningFederation, node: &str) -> Vec<proto::Fork> {
    officer(federation, node)
        .await
        .audit
        .list_forks(proto::ListForksRequest {})
        .await
        .unwrap_or_else(|e| panic!("{node}'s officer lists forks: {e}"))
        .into_inner()
        .forks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosignatures_are_collected_on_schedule_and_verify_offline() {
    let (_dir, federation) = federation(Duration::from_secs(1)).await;
    // The schedule alone gathers a cosignature from every other member.
    let response = eventually(
        "every witness cosigned a checkpoint of the school",
        || async {
            cosigned(&federation, "school")
                .await
                .ok()
                .filter(|r| r.witness_oins.len() == NODES.len() - 1)
        },
    )
    .await;
    let log_key = pinned_key(&federation, "school");
    let witnesses = witness_keys(&federation, "school");

    // Offline, through the command line's own check, with nothing but pinned keys.
    let report = kring::cli_support::verify_cosigned_checkpoint(
        &response.cosigned_note,
        &log_key,
        &witnesses,
        None,
    )
    .unwrap_or_else(|e| panic!("the cosigned checkpoint verifies: {e}"));
    assert!(report.contains("3 of 3 witness(es) cosigned"), "{report}");
    let checked = cosignature::verify_cosigned(
        &response.cosigned_note,
        &NoteVerifier::parse(&log_key).unwrap(),
        &witnesses
            .iter()
            .map(|k| WitnessKey::parse(k).unwrap())
            .collect::<Vec<_>>(),
        3,
    )
    .unwrap();
    assert_eq!(checked.checkpoint.size, response.tree_size);

    // And with the command itself, as a privacy officer runs it on a saved file.
    let saved = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(saved.path(), &response.cosigned_note).unwrap();
    let kring_verify = |file: &std::path::Path, witnesses: &[String]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kring"));
        command
            .args(["audit", "verify", "--checkpoint"])
            .arg(file)
            .args(["--log-key", &log_key]);
        for key in witnesses {
            command.args(["--witness-key", key]);
        }
        command.output().expect("kring runs")
    };
    let output = kring_verify(saved.path(), &witnesses);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("3 of 3 witness(es) cosigned"), "{stdout}");

    // A forged cosignature: the witness's line with one byte of its signature changed.
    let line = response
        .cosigned_note
        .lines()
        .find(|l| l.contains(&format!("kring.nl/audit/{GGD}")))
        .expect("the GGD's cosignature line")
        .to_owned();
    let (prefix, blob) = line.rsplit_once(' ').unwrap();
    let mut raw = base64_decode(blob);
    raw[20] ^= 1;
    let forged = response
        .cosigned_note
        .replace(&line, &format!("{prefix} {}", base64_encode(&raw)));
    let problem =
        kring::cli_support::verify_cosigned_checkpoint(&forged, &log_key, &witnesses, None)
            .unwrap_err();
    assert!(
        problem.contains(&format!(
            "the cosignature by kring.nl/audit/{GGD} does not verify"
        )),
        "{problem}"
    );
    let forged_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(forged_file.path(), &forged).unwrap();
    let output = kring_verify(forged_file.path(), &witnesses);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "FAILED: the cosignature by kring.nl/audit/{GGD} does not verify"
        )),
        "{stdout}"
    );

    // A wrong witness key under the GGD's name: its cosignature is not there for that key.
    let impostor = NoteSigner::from_pkcs8(
        &format!("kring.nl/audit/{GGD}"),
        &kring::audit::note::generate_pkcs8(),
    )
    .unwrap()
    .verifier_key();
    let problem = kring::cli_support::verify_cosigned_checkpoint(
        &response.cosigned_note,
        &log_key,
        &[impostor],
        None,
    )
    .unwrap_err();
    assert!(
        problem.contains("0 valid cosignature(s)") && problem.contains(GGD),
        "{problem}"
    );
    // The wrong log key.
    let problem = kring::cli_support::verify_cosigned_checkpoint(
        &response.cosigned_note,
        &pinned_key(&federation, "ggd"),
        &witnesses,
        None,
    )
    .unwrap_err();
    assert!(problem.contains("the checkpoint"), "{problem}");
    // A witness missing with a quorum that allows it, and one that does not.
    let without_ggd = response.cosigned_note.replace(&format!("{line}\n"), "");
    assert!(
        kring::cli_support::verify_cosigned_checkpoint(&without_ggd, &log_key, &witnesses, Some(2))
            .unwrap()
            .contains(&format!("no cosignature by kring.nl/audit/{GGD}"))
    );
    assert!(matches!(
        cosignature::verify_cosigned(
            &without_ggd,
            &NoteVerifier::parse(&log_key).unwrap(),
            &witnesses
                .iter()
                .map(|k| WitnessKey::parse(k).unwrap())
                .collect::<Vec<_>>(),
            3,
        ),
        Err(CosignatureError::TooFew {
            found: 2,
            needed: 3,
            ..
        })
    ));
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_growing_log_is_cosigned_again_with_a_consistency_proof() {
    let (_dir, federation) = federation(BY_HAND).await;
    let first = round(&federation, "school").await;
    assert_eq!(first.len(), NODES.len() - 1);
    let first_size = match &first[0].1 {
        Pushed::Cosigned(size) => *size,
        other => panic!("the first push is cosigned: {other:?}"),
    };
    assert!(
        first
            .iter()
            .all(|(_, p)| *p == Pushed::Cosigned(first_size)),
        "{first:?}"
    );
    // The log grows (this round's own records, a registration); the next push proves it.
    let mut school = client(&federation, ("school", "m.jansen")).await;
    register_ok(&mut school, worry(CHILD, &[])).await;
    let second = round(&federation, "school").await;
    for (witness, pushed) in &second {
        match pushed {
            Pushed::Cosigned(size) => assert!(*size > first_size, "{witness}: {size}"),
            other => panic!("{witness} cosigns the grown log: {other:?}"),
        }
    }
    // Cosignatures are kept, not recorded as events: once the registration's last deliveries
    // are on record, a round has nothing to push to any witness, and the log stays as it is.
    // (Were every cosignature an event, every round would grow the log and never be quiet.)
    // A delivery is recorded in the commit that empties the outbox.
    eventually(
        "the school's publication is delivered and on record",
        || async {
            let outbox = federation.node("school").ledger().store().outbox(1);
            outbox.expect("the outbox reads").is_empty().then_some(())
        },
    )
    .await;
    let mut rounds = Vec::new();
    for _ in 0..10 {
        let pushed = round(&federation, "school").await;
        let quiet = pushed.iter().all(|(_, p)| *p == Pushed::Unchanged);
        rounds.push(pushed);
        if quiet {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(
        rounds
            .last()
            .unwrap()
            .iter()
            .all(|(_, p)| *p == Pushed::Unchanged),
        "witnessing alone keeps the log growing: {rounds:?}"
    );
    let cosigned_size = signed_head(&federation, "school").await.size;
    assert_eq!(round(&federation, "school").await.len(), 3);
    let after = signed_head(&federation, "school").await.size;
    if after != cosigned_size {
        let grown: Vec<_> = search(&federation, "school", proto::AuditSearchRequest::default())
            .await
            .into_iter()
            .filter(|e| e.index >= cosigned_size)
            .map(|e| (e.index, e.action, e.reason, e.object))
            .collect();
        panic!("witnessing alone does not grow the log: {grown:?}");
    }
    for witness in ["index", "pseudonyms", "ggd"] {
        let cosigns: Vec<_> = events(&federation, witness, proto::AuditAction::WitnessCosign)
            .await
            .into_iter()
            .filter(|e| e.counterpart_oin == SCHOOL && e.outcome == proto::Outcome::Success as i32)
            .collect();
        assert!(cosigns.is_empty(), "{witness}: {cosigns:#?}");
    }
    assert_reconciled(&federation).await;
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pushes_get_a_precise_status_change_nothing_and_are_audited() {
    let (_dir, federation) = federation(BY_HAND).await;
    let school_identity = identity(&federation, "school");
    let mut ggd = proto::witness_client::WitnessClient::new(
        peer_channel(&federation, "ggd", &school_identity).await,
    );
    let head = signed_head(&federation, "school").await;
    let push = |old_size: u64, proof: Vec<Vec<u8>>, note: String| {
        let transaction = new_transaction();
        let request = in_transaction(
            proto::AddCheckpointRequest {
                old_size,
                consistency_proof: proof,
                checkpoint: note,
            },
            &transaction,
        );
        (transaction, request)
    };

    // The witness has seen nothing of the school: only old_size 0 will do.
    let (transaction, request) = push(5, Vec::new(), head.note.clone());
    refused(
        ggd.add_checkpoint(request).await,
        Code::FailedPrecondition,
        "old_size: this witness last cosigned tree size 0",
    );
    audited_refusal(
        &federation,
        "ggd",
        &transaction,
        proto::AuditAction::WitnessCosign,
        "failed_precondition",
        "old_size",
    )
    .await;

    // A proof hash of the wrong length.
    let (transaction, request) = push(0, vec![vec![0; 31]], head.note.clone());
    refused(
        ggd.add_checkpoint(request).await,
        Code::InvalidArgument,
        "consistency_proof[0]",
    );
    audited_refusal(
        &federation,
        "ggd",
        &transaction,
        proto::AuditAction::WitnessCosign,
        "invalid_argument",
        "consistency_proof[0]",
    )
    .await;

    // Another member's checkpoint: not signed by the key pinned for the caller.
    let index_head = signed_head(&federation, "index").await;
    let (transaction, request) = push(0, Vec::new(), index_head.note);
    refused(
        ggd.add_checkpoint(request).await,
        Code::InvalidArgument,
        "checkpoint",
    );
    audited_refusal(
        &federation,
        "ggd",
        &transaction,
        proto::AuditAction::WitnessCosign,
        "invalid_argument",
        "not a checkpoint signed by the audit key the directory pins",
    )
    .await;

    // None of that changed what the witness holds: a first push from 0 is still taken, and
    // then a wrong old size names the size it cosigned.
    let (_, request) = push(0, Vec::new(), head.note.clone());
    let line = ggd
        .add_checkpoint(request)
        .await
        .unwrap()
        .into_inner()
        .cosignature;
    let key = WitnessKey::parse(&pinned_key(&federation, "ggd")).unwrap();
    key.verify(&cosignature::with_cosignatures(&head.note, [line.as_str()]))
        .expect("the cosignature verifies under the GGD's pinned key");
    let mut school = client(&federation, ("school", "m.jansen")).await;
    register_ok(&mut school, worry(CHILD, &[])).await;
    let grown = signed_head(&federation, "school").await;
    assert!(grown.size > head.size);
    let grown_note = grown.note.clone();
    let (_, request) = push(0, Vec::new(), grown.note);
    refused(
        ggd.add_checkpoint(request).await,
        Code::FailedPrecondition,
        &format!(
            "old_size: this witness last cosigned tree size {}",
            head.size
        ),
    );

    // Fork alerts that are not: each refused naming the field or rule, none kept.
    let mut deliver =
        FederationClient::new(peer_channel(&federation, "ggd", &school_identity).await);
    let alert = |witness: &str, log: &str, kind: proto::ForkKind, seen: &str, presented: &str| {
        proto::DeliverRequest {
            message_id: kring::domain::MessageId::new().to_string(),
            transaction_id: new_transaction(),
            body: Some(proto::deliver_request::Body::ForkAlert(proto::Fork {
                id: kring::domain::MessageId::new().to_string(),
                log_oin: log.to_owned(),
                witness_oin: witness.to_owned(),
                kind: kind as i32,
                detected_at_unix_ms: 0,
                seen_checkpoint: seen.to_owned(),
                presented_checkpoint: presented.to_owned(),
            })),
        }
    };
    let rollback = proto::ForkKind::Rollback;
    refused(
        deliver
            .deliver(alert(INDEX, SCHOOL, rollback, &grown_note, &head.note))
            .await,
        Code::PermissionDenied,
        "fork_alert.witness_oin",
    );
    refused(
        deliver
            .deliver(alert(SCHOOL, INDEX, rollback, &grown_note, &head.note))
            .await,
        Code::InvalidArgument,
        "fork_alert.seen_checkpoint",
    );
    refused(
        deliver
            .deliver(alert(
                SCHOOL,
                SCHOOL,
                proto::ForkKind::Equivocation,
                &head.note,
                &head.note,
            ))
            .await,
        Code::InvalidArgument,
        "fork_alert.kind",
    );
    refused(
        deliver
            .deliver(alert(
                SCHOOL,
                SCHOOL,
                proto::ForkKind::Unspecified,
                &head.note,
                &head.note,
            ))
            .await,
        Code::InvalidArgument,
        "fork_alert.kind",
    );
    assert!(forks(&federation, "ggd").await.is_empty());
    let refusals: Vec<_> = events(&federation, "ggd", proto::AuditAction::ForkAlertReceive)
        .await
        .into_iter()
        .filter(|e| e.outcome == proto::Outcome::Refused as i32)
        .collect();
    assert_eq!(refusals.len(), 4, "{refusals:#?}");
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_rewrites_its_own_history_is_caught_by_its_witnesses() {
    let (_dir, mut federation) = federation(BY_HAND).await;
    let mut school = client(&federation, ("school", "m.jansen")).await;
    register_ok(&mut school, worry(CHILD, &[])).await;
    register_ok(&mut school, worry(MOTHER, &[])).await;
    let pushed = round(&federation, "school").await;
    assert!(
        pushed.iter().all(|(_, p)| matches!(p, Pushed::Cosigned(_))),
        "{pushed:?}"
    );
    let school_key = NoteVerifier::parse(&pinned_key(&federation, "school")).unwrap();
    let saved = cosigned(&federation, "school").await.unwrap();

    // The school's operator replaces its audit log with another history, signed with the
    // same key: the node is stopped, its store swapped for a new one, and started again.
    let config = federation.stop("school").await.unwrap();
    std::fs::remove_dir_all(config.data_dir.join("store")).unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    restart(&mut federation, "school", clock).await;

    // Its next push shows the witnesses a checkpoint that contradicts the one they cosigned.
    let refused_by = round(&federation, "school").await;
    assert_eq!(refused_by.len(), NODES.len() - 1);
    for (witness, pushed) in &refused_by {
        match pushed {
            Pushed::Refused(reason) => assert!(
                reason.starts_with("failed_precondition: fork: "),
                "{witness}: {reason}"
            ),
            other => panic!("{witness} refuses the rewritten log: {other:?}"),
        }
    }
    // Each witness recorded the fork in its own audit log.
    for witness in ["index", "pseudonyms", "ggd"] {
        let found = events(&federation, witness, proto::AuditAction::WitnessFork).await;
        assert_eq!(found.len(), 1, "{witness}: {found:#?}");
        assert_eq!(found[0].counterpart_oin, SCHOOL);
        assert!(found[0].reason.contains("fork:"), "{:?}", found[0].reason);
    }
    // Every node's audit API lists every witness's fork of the school, the school's too.
    let witnesses: Vec<String> = ["index", "pseudonyms", "ggd"]
        .iter()
        .map(|w| oin_of(&federation, w))
        .collect();
    for node in NODES {
        let listed = eventually(
            &format!("{node} lists the school's fork from every witness"),
            || {
                let federation = &federation;
                let witnesses = &witnesses;
                async move {
                    let listed = forks(federation, node).await;
                    let mut by: Vec<String> = listed
                        .iter()
                        .filter(|f| f.log_oin == SCHOOL)
                        .map(|f| f.witness_oin.clone())
                        .collect();
                    by.sort();
                    let mut expected = witnesses.clone();
                    expected.sort();
                    (by == expected).then_some(listed)
                }
            },
        )
        .await;
        // The evidence stands on its own: both checkpoints signed by the school's pinned
        // key, the one seen being the one the school's officer saved before.
        for fork in &listed {
            let seen = checkpoint::open(&school_key, &fork.seen_checkpoint).unwrap();
            let presented = checkpoint::open(&school_key, &fork.presented_checkpoint).unwrap();
            assert_eq!(seen.size, saved.tree_size);
            assert_ne!(
                (seen.size, seen.root),
                (presented.size, presented.root),
                "{node}: {fork:?}"
            );
        }
    }
    // A member alerted records the alert in its own audit log.
    let alerts = eventually("the GGD recorded the other witnesses' alerts", || async {
        let alerts = events(&federation, "ggd", proto::AuditAction::ForkAlertReceive).await;
        (alerts.len() == 2).then_some(alerts)
    })
    .await;
    assert!(
        alerts
            .iter()
            .all(|e| e.outcome == proto::Outcome::Success as i32)
    );

    // The forked school cannot wipe out a witness's evidence with an alert of its own under
    // the witness's fork id: the alert is kept as the school's, beside the GGD's record.
    let ggd_oin = oin_of(&federation, "ggd");
    let own = forks(&federation, "ggd")
        .await
        .into_iter()
        .find(|f| f.witness_oin == ggd_oin)
        .expect("the GGD's own fork record");
    let mut deliver = FederationClient::new(
        peer_channel(&federation, "ggd", &identity(&federation, "school")).await,
    );
    deliver
        .deliver(proto::DeliverRequest {
            message_id: kring::domain::MessageId::new().to_string(),
            transaction_id: new_transaction(),
            body: Some(proto::deliver_request::Body::ForkAlert(proto::Fork {
                witness_oin: SCHOOL.to_owned(),
                ..own.clone()
            })),
        })
        .await
        .expect("a well-formed alert from the school about its own log");
    let listed = forks(&federation, "ggd").await;
    assert!(listed.contains(&own), "{listed:#?}");
    assert!(
        listed
            .iter()
            .any(|f| f.id == own.id && f.witness_oin == SCHOOL),
        "{listed:#?}"
    );

    // A witness that found the fork cosigns nothing more of that log, and records no new fork.
    let again = round(&federation, "school").await;
    assert!(
        again
            .iter()
            .all(|(_, p)| matches!(p, Pushed::Refused(r) if r.contains("cosigns no further"))),
        "{again:?}"
    );
    for witness in ["index", "pseudonyms", "ggd"] {
        assert_eq!(
            events(&federation, witness, proto::AuditAction::WitnessFork)
                .await
                .len(),
            1
        );
    }
    // The other logs are still witnessed as before.
    let ggd = round(&federation, "ggd").await;
    assert!(
        ggd.iter().all(|(_, p)| matches!(p, Pushed::Cosigned(_))),
        "{ggd:?}"
    );
    federation.shutdown().await.unwrap();
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The logs the GGD witnesses, as its privacy officer sees them.
async fn witnessed_at_ggd(federation: &RunningFederation) -> Vec<proto::WitnessedLog> {
    officer(federation, "ggd")
        .await
        .audit
        .list_forks(proto::ListForksRequest {})
        .await
        .expect("the GGD's view")
        .into_inner()
        .witnessed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_that_stops_showing_its_checkpoints_goes_silent_at_its_witnesses() {
    let (_dir, mut federation, clock) = start_manual(&members(), |node| {
        node.config.witness_every = BY_HAND;
    })
    .await;
    for node in NODES {
        round(&federation, node).await;
    }
    let witnessed = witnessed_at_ggd(&federation).await;
    assert_eq!(witnessed.len(), NODES.len() - 1, "{witnessed:#?}");
    assert!(
        witnessed
            .iter()
            .all(|l| !l.silent && l.last_heard_unix_ms > 0)
    );

    // The school stops pushing (here: stops); the others are quiet but keep pushing.
    federation.stop("school").await.unwrap();
    clock.advance(25 * 60 * 1000);
    for node in NODES.iter().filter(|n| **n != "school") {
        let pushed = round(&federation, node).await;
        assert!(
            pushed
                .iter()
                .filter(|(oin, _)| oin != SCHOOL)
                .all(|(_, p)| matches!(p, Pushed::Cosigned(_))),
            "{node} pushes its unchanged checkpoint after ten minutes: {pushed:?}"
        );
    }
    clock.advance(40 * 60 * 1000);
    for node in NODES.iter().filter(|n| **n != "school") {
        round(&federation, node).await;
    }
    let witnessed = witnessed_at_ggd(&federation).await;
    let school = SCHOOL.to_owned();
    for log in &witnessed {
        assert_eq!(
            log.silent,
            log.log_oin == school,
            "only the school is silent: {witnessed:#?}"
        );
    }
    federation.shutdown().await.unwrap();
}
