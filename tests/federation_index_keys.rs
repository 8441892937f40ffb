//! The index's key epochs: the index keeps persons under tags and sealed pseudonyms keyed with
//! an index key derived from every pseudonym service's epoch secret, held only in its memory.
//! Rotating it moves every person to the next epoch in the background while the index keeps
//! answering, and the services then delete the old epoch's secrets. Nobody sees a BSN for it.

mod common_federation;

use common_federation::*;
use kring::api::client::LocalClient;
use kring::api::proto;
use kring::demo::demo_members;
use kring::devnet::RunningFederation;
use kring::domain::Role;
use kring::pseudonym::IndexEpochs;
use tonic::Code;

const ADMIN: (&str, &str) = ("index", "beheer");

fn members_with_admins() -> Vec<kring::devnet::DevMember> {
    // The demo's index has its administrator; the school gets one to show where rotation
    // is refused.
    let mut members = demo_members();
    add_principal(&mut members, "school", "beheer", &[Role::Admin]);
    members
}

async fn status(admin: &mut LocalClient) -> proto::IndexKeyStatus {
    admin
        .audit
        .get_index_key_status(proto::IndexKeyStatusRequest {})
        .await
        .expect("the index's key status")
        .into_inner()
}

/// The organisations Veilig Thuis's triage map shows, person by person.
async fn triage(vt: &mut LocalClient, bsn: &str) -> Vec<(i32, Vec<String>)> {
    let map = vt
        .cases
        .linked_signals(triage_of(bsn))
        .await
        .expect("Veilig Thuis's triage map")
        .into_inner();
    assert!(map.unavailable.is_empty(), "{:?}", map.unavailable);
    map.persons
        .iter()
        .map(|p| {
            (
                p.relation,
                p.organisations.iter().map(|o| o.oin.clone()).collect(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_moves_every_person_to_the_next_epoch_while_the_index_answers() {
    let (_dir, mut federation) = start(&members_with_admins()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let mut ggd = client(&federation, GGD_SIGNALER).await;
    let mut vt = client(&federation, VT_ANALYST).await;
    let mut admin = client(&federation, ADMIN).await;
    register_ok(
        &mut school,
        worry(CHILD, &[(MOTHER, proto::Relation::Parent)]),
    )
    .await;
    register_ok(&mut ggd, worry(MOTHER, &[(CHILD, proto::Relation::Child)])).await;
    for party in [&school, &ggd] {
        matches_until(party, "the school and the GGD know of each other", |m| {
            m.len() == 1
        })
        .await;
    }
    let before = triage(&mut vt, CHILD).await;
    assert_eq!(before.len(), 2, "the child and the mother: {before:?}");
    // Enough other persons that a rotation takes several commits (256 persons each).
    for n in 0..30 {
        let related: Vec<(String, proto::Relation)> = (1..=20)
            .map(|r| (bsn(n * 21 + r), proto::Relation::HouseholdMember))
            .collect();
        let related: Vec<(&str, proto::Relation)> =
            related.iter().map(|(b, r)| (b.as_str(), *r)).collect();
        register_ok(&mut school, worry(&bsn(n * 21), &related)).await;
    }
    let persons = 2 + 30 * 21;
    eventually("the index holds every person", || async {
        (store_count(&federation, 1) == persons).then_some(())
    })
    .await;

    // Epoch 1, started by the index at its first request: the child is found under the tag
    // every service's epoch secret gives, and under no key fewer services give.
    let child = federation_pseudonym(&federation, CHILD).await;
    let mother = federation_pseudonym(&federation, MOTHER).await;
    let both = ["pseudonyms", "pseudonyms-b"];
    let one = index_key_from(&federation, &both, 1);
    let child_id = person_under(&federation, &one, &child).expect("the child under epoch 1");
    let mother_id = person_under(&federation, &one, &mother).expect("the mother under epoch 1");
    for alone in [["pseudonyms"], ["pseudonyms-b"]] {
        let key = index_key_from(&federation, &alone, 1);
        assert_eq!(person_under(&federation, &key, &child), None, "{alone:?}");
    }
    let at_start = status(&mut admin).await;
    assert_eq!(
        (at_start.epoch, at_start.next_epoch, at_start.persons_left),
        (1, 0, persons)
    );

    // Rotate, and keep asking while the persons move.
    let started = admin
        .audit
        .rotate_index_key(proto::RotateIndexKeyRequest {
            reason: "scheduled yearly rotation".into(),
        })
        .await
        .expect("the rotation starts")
        .into_inner();
    assert_eq!((started.epoch, started.next_epoch), (1, 2));
    let mut during = Vec::new();
    let finished = tokio::time::timeout(WAIT, async {
        loop {
            during.push(triage(&mut vt, CHILD).await);
            let now = status(&mut admin).await;
            if now.next_epoch == 0 {
                break now;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the rotation finishes");
    assert!(during.iter().all(|map| *map == before), "{during:?}");
    assert_eq!((finished.epoch, finished.persons_left), (2, persons));

    // Under epoch 2 the same persons (their ids do not change), none left under epoch 1.
    let two = index_key_from(&federation, &both, 2);
    assert_eq!(person_under(&federation, &two, &child), Some(child_id));
    assert_eq!(person_under(&federation, &two, &mother), Some(mother_id));
    assert_eq!(person_under(&federation, &one, &child), None);
    assert_eq!(store_count(&federation, 1), 0);
    assert_eq!(store_count(&federation, 2), persons);

    // The services delete epoch 1 once the index is done with it.
    for service in both {
        let mut as_index = pseudonyms_as(&federation, service, "index").await;
        eventually("the service retires epoch 1", || {
            let mut as_index = as_index.clone();
            async move {
                match as_index
                    .index_key(proto::IndexKeyRequest {
                        epoch: 1,
                        start: false,
                    })
                    .await
                {
                    Err(status) if status.code() == Code::FailedPrecondition => Some(status),
                    _ => None,
                }
            }
        })
        .await;
        refused(
            as_index
                .index_key(proto::IndexKeyRequest {
                    epoch: 1,
                    start: true,
                })
                .await,
            Code::FailedPrecondition,
            "epoch: 1 is retired",
        );
    }

    // A new signal after the rotation matches as before; the rotation is on record.
    register_ok(&mut ggd, worry(CHILD, &[(MOTHER, proto::Relation::Parent)])).await;
    matches_until(&ggd, "the GGD's new signal on the child matches", |m| {
        m.len() == 2 && m.iter().all(|m| m.parties.iter().any(|p| p.oin == SCHOOL))
    })
    .await;
    let rekeys = events(&federation, "index", proto::AuditAction::IndexRekey).await;
    assert_eq!(rekeys.len(), 2, "{rekeys:?}");
    assert_eq!(rekeys[0].actor.as_ref().unwrap().user, "beheer");
    assert_eq!(
        rekeys[0].reason,
        format!("scheduled yearly rotation; started: {persons} persons to move")
    );
    assert_eq!(rekeys[0].object, "epoch:1->2");
    assert_eq!(
        rekeys[1].reason,
        format!("finished: {persons} persons under epoch 2")
    );
    for service in both {
        let shares = events(&federation, service, proto::AuditAction::IndexKeyShare).await;
        assert!(shares.iter().any(|e| e.object == "epoch:2"), "{shares:?}");
        let retired = events(&federation, service, proto::AuditAction::IndexEpochRetire).await;
        assert!(retired.iter().any(|e| e.object == "epoch:2"), "{retired:?}");
    }

    // The administrator's command line says the same.
    let ca = federation.base.join("ca.crt");
    std::fs::write(&ca, federation.ca.cert_pem()).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kring"));
    command
        .args(["audit", "index-key", "--node"])
        .arg(federation.node("index").local_addr().to_string())
        .arg("--ca")
        .arg(&ca)
        .env("KRING_TOKEN", &federation.tokens["index"]["beheer"])
        .env_remove("KRING_NODE")
        .env_remove("KRING_CA");
    let output = tokio::task::spawn_blocking(move || command.output().expect("kring runs"))
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("index key epoch 2: {persons} persons\n")
    );

    // A restarted index loads epoch 2's key from the services and finds everyone again.
    let clock: kring::clock::SharedClock = std::sync::Arc::new(kring::clock::SystemClock);
    federation.stop("index").await.unwrap();
    restart(&mut federation, "index", clock).await;
    let mut vt = client(&federation, VT_ANALYST).await;
    let after = triage(&mut vt, CHILD).await;
    assert_eq!(after[0].1, vec![SCHOOL.to_owned(), GGD.to_owned()]);
    assert_eq!(after.len(), 2);
    assert_eq!(
        store_count(&federation, 2),
        persons,
        "no person was made twice"
    );
    federation.shutdown().await.unwrap();
}

fn store_count(federation: &RunningFederation, epoch: u32) -> u64 {
    federation
        .node("index")
        .ledger()
        .store()
        .count_person_tags(epoch)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_requests_are_refused_precisely_and_change_nothing() {
    let (_dir, federation) = start(&members_with_admins()).await;
    let mut admin = client(&federation, ADMIN).await;

    // Only an administrator rotates, only with a reason, only at the index.
    for reason in [" ".to_owned(), "x".repeat(201)] {
        refused(
            admin
                .audit
                .rotate_index_key(proto::RotateIndexKeyRequest { reason })
                .await,
            Code::InvalidArgument,
            "reason: is required (1 to 200 characters)",
        );
    }
    let mut officer_client = officer(&federation, "index").await;
    refused(
        officer_client
            .audit
            .rotate_index_key(proto::RotateIndexKeyRequest {
                reason: "curious".into(),
            })
            .await,
        Code::PermissionDenied,
        "index.rotate_key",
    );
    let mut school_admin = client(&federation, ("school", "beheer")).await;
    refused(
        school_admin
            .audit
            .rotate_index_key(proto::RotateIndexKeyRequest {
                reason: "wrong node".into(),
            })
            .await,
        Code::FailedPrecondition,
        "not the federation's index",
    );
    let unchanged = status(&mut admin).await;
    assert_eq!((unchanged.epoch, unchanged.next_epoch), (1, 0));
    let refusals = events(&federation, "index", proto::AuditAction::IndexRekey).await;
    assert_eq!(refusals.len(), 3, "every refusal at the index is recorded");
    assert!(
        refusals
            .iter()
            .all(|e| e.outcome == proto::Outcome::Refused as i32)
    );

    // A service gives index key shares to the index only, for an epoch that exists or (as the
    // index starts it) is next.
    let mut as_school = pseudonyms_as(&federation, "pseudonyms", "school").await;
    refused(
        as_school
            .index_key(proto::IndexKeyRequest {
                epoch: 1,
                start: false,
            })
            .await,
        Code::PermissionDenied,
        "only the directory's index",
    );
    refused(
        as_school
            .retire_index_epochs(proto::RetireIndexEpochsRequest { before: 1 })
            .await,
        Code::PermissionDenied,
        "only the directory's index",
    );
    let mut as_index = pseudonyms_as(&federation, "pseudonyms", "index").await;
    refused(
        as_index
            .index_key(proto::IndexKeyRequest {
                epoch: 0,
                start: true,
            })
            .await,
        Code::InvalidArgument,
        "epoch",
    );
    refused(
        as_index
            .index_key(proto::IndexKeyRequest {
                epoch: 5,
                start: true,
            })
            .await,
        Code::FailedPrecondition,
        "epoch: 5 is ahead",
    );
    // Asking for the share of an epoch the service does not hold creates nothing, not even
    // the next one: only the index starting an epoch does.
    for epoch in [5, 2] {
        refused(
            as_index
                .index_key(proto::IndexKeyRequest {
                    epoch,
                    start: false,
                })
                .await,
            Code::FailedPrecondition,
            &format!("epoch: {epoch} is not held at this service (its newest is 1)"),
        );
    }
    refused(
        as_index
            .retire_index_epochs(proto::RetireIndexEpochsRequest { before: 9 })
            .await,
        Code::FailedPrecondition,
        "before: 9",
    );
    let recorded = events(&federation, "pseudonyms", proto::AuditAction::IndexKeyShare).await;
    let refused_here: Vec<_> = recorded
        .iter()
        .filter(|e| e.outcome == proto::Outcome::Refused as i32)
        .collect();
    assert_eq!(refused_here.len(), 5, "{recorded:?}");
    assert!(
        refused_here
            .iter()
            .any(|e| e.counterpart_oin == SCHOOL && e.reason.contains("permission_denied"))
    );
    // Nothing was started by the refused requests: epoch 2 does not exist at the service.
    let key_file = pseudonym_key_file(&federation, "pseudonyms");
    let text = std::fs::read_to_string(IndexEpochs::path_for(&key_file)).unwrap_or_default();
    assert!(!text.lines().any(|l| l.starts_with("2 ")), "{text}");
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_services_the_index_answers_unavailable_naming_its_key() {
    let (_dir, mut federation) = start(&demo_members()).await;
    // Start the index's first epoch, then take a service away and restart the index.
    let mut school = client(&federation, SCHOOL_AF).await;
    register_ok(&mut school, worry(CHILD, &[])).await;
    eventually("the index holds the pointer", || async {
        (store_count(&federation, 1) == 1).then_some(())
    })
    .await;
    federation.stop("pseudonyms-b").await.unwrap();
    federation.stop("index").await.unwrap();
    let clock: kring::clock::SharedClock = std::sync::Arc::new(kring::clock::SystemClock);
    restart(&mut federation, "index", clock.clone()).await;

    let channel = peer_channel(&federation, "index", &identity(&federation, "veilig-thuis")).await;
    let mut index = IndexClient::new(channel);
    let lookup = || triage_lookup(vec![7; 32], false);
    refused(
        index.lookup(lookup()).await,
        Code::Unavailable,
        "index key for epoch 1",
    );

    restart(&mut federation, "pseudonyms-b", clock).await;
    let answer = eventually("the index answers again", || {
        let mut index = index.clone();
        let request = lookup();
        async move { index.lookup(request).await.ok() }
    })
    .await
    .into_inner();
    assert!(answer.pointers.is_empty());
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_whose_epochs_file_lacks_the_index_epoch_refuses_and_creates_none() {
    let (_dir, mut federation) = start(&demo_members()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    register_ok(&mut school, worry(CHILD, &[])).await;
    eventually("the index holds the child under epoch 1", || async {
        (store_count(&federation, 1) == 1).then_some(())
    })
    .await;
    // Service B's epochs file is restored from a backup taken before epoch 1 started; the
    // index then restarts and asks every service for epoch 1 again.
    let clock: kring::clock::SharedClock = std::sync::Arc::new(kring::clock::SystemClock);
    let epochs_file = IndexEpochs::path_for(&pseudonym_key_file(&federation, "pseudonyms-b"));
    federation.stop("pseudonyms-b").await.unwrap();
    std::fs::write(&epochs_file, "retired 0\n").unwrap();
    restart(&mut federation, "pseudonyms-b", clock.clone()).await;
    federation.stop("index").await.unwrap();
    restart(&mut federation, "index", clock).await;

    // B refuses rather than create a fresh secret for epoch 1, which would give the index a
    // wrong key and split every person it holds from the requests that name them.
    let channel = peer_channel(&federation, "index", &identity(&federation, "veilig-thuis")).await;
    let mut index = IndexClient::new(channel);
    let status = refused(
        index.lookup(triage_lookup(vec![7; 32], false)).await,
        Code::Unavailable,
        "index key for epoch 1",
    );
    assert!(
        status
            .message()
            .contains("epoch: 1 is not held at this service (its newest is 0)"),
        "{status:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&epochs_file).unwrap(),
        "retired 0\n",
        "B created no epoch"
    );
    let refusals: Vec<_> = events(
        &federation,
        "pseudonyms-b",
        proto::AuditAction::IndexKeyShare,
    )
    .await
    .into_iter()
    .filter(|e| e.outcome == proto::Outcome::Refused as i32)
    .collect();
    assert!(
        refusals.iter().any(|e| e.counterpart_oin == INDEX
            && e.reason
                .starts_with("failed_precondition: epoch: 1 is not held")),
        "{refusals:?}"
    );
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_interrupted_by_a_stop_finishes_after_the_restart_and_no_second_one_starts() {
    let (_dir, mut federation) = start(&demo_members()).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    register_ok(
        &mut school,
        worry(CHILD, &[(MOTHER, proto::Relation::Parent)]),
    )
    .await;
    eventually("the index holds both persons", || async {
        (store_count(&federation, 1) == 2).then_some(())
    })
    .await;

    // The index stops right after a rotation started (every service started epoch 2, and its
    // epoch record says so), and comes back while one service is away: it cannot have the
    // keys to go on.
    for service in ["pseudonyms", "pseudonyms-b"] {
        pseudonyms_as(&federation, service, "index")
            .await
            .index_key(proto::IndexKeyRequest {
                epoch: 2,
                start: true,
            })
            .await
            .expect("the service starts epoch 2 for the index");
    }
    let config = federation.stop("index").await.unwrap();
    {
        let store = kring::store::SledStore::open(&config.data_dir.join("store"), &config.store)
            .expect("the index's store");
        let mut epochs = kring::store::Store::index_epoch(&store)
            .unwrap()
            .expect("epoch 1 started");
        epochs.next = Some(2);
        kring::store::Store::apply(&store, &[kring::store::Change::PutIndexEpoch(epochs)]).unwrap();
        kring::store::Store::sync(&store).unwrap();
    }
    federation.stop("pseudonyms-b").await.unwrap();
    let clock: kring::clock::SharedClock = std::sync::Arc::new(kring::clock::SystemClock);
    restart(&mut federation, "index", clock.clone()).await;
    let mut admin = client(&federation, ADMIN).await;
    let stuck = status(&mut admin).await;
    assert_eq!(
        (
            stuck.epoch,
            stuck.next_epoch,
            stuck.persons_left,
            stuck.persons_moved
        ),
        (1, 2, 2, 0)
    );
    refused(
        admin
            .audit
            .rotate_index_key(proto::RotateIndexKeyRequest {
                reason: "again".into(),
            })
            .await,
        Code::FailedPrecondition,
        "a rotation to index key epoch 2 is running (2 persons left under epoch 1)",
    );

    // With the service back, the rotation goes on by itself and finishes.
    restart(&mut federation, "pseudonyms-b", clock).await;
    let done = eventually("the rotation finishes", || {
        let mut admin = admin.clone();
        async move {
            let now = status(&mut admin).await;
            (now.next_epoch == 0).then_some(now)
        }
    })
    .await;
    assert_eq!((done.epoch, done.persons_left), (2, 2));
    let mut vt = client(&federation, VT_ANALYST).await;
    let map = triage(&mut vt, CHILD).await;
    assert_eq!(map.len(), 2, "the child and the mother: {map:?}");
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_rotates_its_key_on_its_schedule() {
    const DAY: i64 = kring::domain::UnixMillis::DAY;
    let (_dir, federation, clock) = start_manual_for_years(&demo_members(), 1, |planned| {
        if planned.key == "index" {
            planned
                .config
                .federation
                .as_mut()
                .unwrap()
                .index_key_rotate_days = Some(30);
        }
    })
    .await;
    let mut school = client(&federation, SCHOOL_AF).await;
    register_ok(&mut school, worry(CHILD, &[])).await;
    eventually("the index holds the child", || async {
        (store_count(&federation, 1) == 1).then_some(())
    })
    .await;
    let mut admin = client(&federation, ADMIN).await;

    // Twenty-nine days on, the epoch is not due (the schedule is looked at every 5 s).
    clock.advance(29 * DAY);
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let waiting = status(&mut admin).await;
    assert_eq!((waiting.epoch, waiting.next_epoch), (1, 0));

    // Past thirty days the index rotates on its own, and records why.
    clock.advance(2 * DAY);
    let rotated = eventually("the scheduled rotation finishes", || {
        let mut admin = admin.clone();
        async move {
            let now = status(&mut admin).await;
            (now.epoch == 2 && now.next_epoch == 0).then_some(now)
        }
    })
    .await;
    assert_eq!(rotated.persons_left, 1);
    let rekeys = events(&federation, "index", proto::AuditAction::IndexRekey).await;
    assert_eq!(rekeys.len(), 2, "{rekeys:?}");
    assert_eq!(rekeys[0].actor.as_ref().unwrap().user, "kring:keys");
    assert_eq!(
        rekeys[0].reason,
        "scheduled: every 30 days; started: 1 persons to move"
    );
    federation.shutdown().await.unwrap();
}
