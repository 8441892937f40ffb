//! `kring.v1.Audit` over the wire: search by every filter with paging, signed checkpoints,
//! inclusion and consistency proofs, Verify and Export. Every proof is checked with the
//! verifier alone (the Merkle functions and the pinned key), never with the node's own state.

mod common;

use std::collections::BTreeSet;

use common::{
    OFFICER, SIGNALER, T0, TestNode, bsn, hashes, register, register_ok, related, school,
    search_all, start_manual, start_node,
};
use kring::api::client::{Audit, prove_event, prove_extends, verify_remote};
use kring::api::proto;
use kring::audit::merkle::{Frontier, leaf_hash, verify_consistency, verify_inclusion};
use kring::audit::verify::Break;
use kring::audit::{NoteSigner, SignedCheckpoint, Verifier, checkpoint};
use kring::domain::Role;
use proto::{AuditAction, Outcome, Purpose, Relation};

const SECOND: i64 = 1000;

async fn export(audit: &mut Audit, from: u64, until: u64) -> Vec<proto::AuditEvent> {
    let mut stream = audit
        .export(proto::ExportRequest {
            from_index: from,
            until_index: until,
        })
        .await
        .expect("the export starts")
        .into_inner();
    let mut events = Vec::new();
    while let Some(chunk) = stream.message().await.expect("the export streams") {
        events.extend(chunk.events);
    }
    events
}

async fn checkpoint_now(test: &TestNode) -> (proto::CheckpointResponse, SignedCheckpoint) {
    let response = test
        .audit(OFFICER)
        .checkpoint(proto::CheckpointRequest {})
        .await
        .expect("a checkpoint")
        .into_inner();
    let opened = checkpoint::open(test.node.audit_key(), &response.signed_note)
        .expect("the checkpoint opens with the node's pinned key");
    (response, opened)
}

fn user(event: &proto::AuditEvent) -> &str {
    &event.actor.as_ref().expect("every event has an actor").user
}

#[tokio::test]
async fn search_filters_by_time_actor_action_subject_purpose_and_outcome() {
    let organisation = school().principal("p.devries", &[Role::Signaler]);
    let (test, clock) = start_manual(&organisation).await;
    let mut jansen = test.signals(SIGNALER);
    let mut devries = test.signals("p.devries");
    let mut officer = test.audit(OFFICER);
    let (child, mother, other_child) = (bsn(1), bsn(2), bsn(3));

    let first = register_ok(
        &mut jansen,
        proto::RegisterRequest {
            related: vec![related(&mother, Relation::Parent)],
            ..register(&child)
        },
    )
    .await;
    let mother_pseudonym = first.related[0].pseudonym.clone();
    clock.advance(SECOND);
    let second = register_ok(&mut devries, register(&other_child)).await;
    clock.advance(SECOND);
    jansen
        .update(proto::UpdateRequest {
            signal_id: first.id.clone(),
            meldcode_step: Some(proto::MeldcodeStep::Gesprek as i32),
            severity: None,
            expected_version: 1,
        })
        .await
        .expect("an update");
    clock.advance(SECOND);
    jansen
        .list(proto::ListRequest {
            person_bsn: Some(mother.clone()),
            ..Default::default()
        })
        .await
        .expect("a list");
    clock.advance(SECOND);
    jansen
        .register(register("123456789"))
        .await
        .expect_err("a BSN that fails the elfproef");
    clock.advance(SECOND);
    register_ok(
        &mut devries,
        proto::RegisterRequest {
            related: vec![related(&mother, Relation::ExPartner)],
            ..register(&bsn(4))
        },
    )
    .await;
    clock.advance(SECOND);
    jansen
        .withdraw(proto::WithdrawRequest {
            signal_id: second.id.clone(),
            reason: proto::WithdrawReason::RiskGone as i32,
        })
        .await
        .expect("a withdrawal");
    clock.advance(SECOND);
    let (_, signed) = checkpoint_now(&test).await;
    clock.advance(10 * SECOND);

    // The baseline: the log up to the checkpoint, through Export.
    let baseline = export(&mut officer, 0, signed.size).await;
    assert_eq!(baseline.len() as u64, signed.size);
    let until_now = T0 + 10 * SECOND;

    type Filter = Box<dyn Fn(&proto::AuditEvent) -> bool>;
    let search = |change: &dyn Fn(&mut proto::AuditSearchRequest)| {
        let mut request = proto::AuditSearchRequest::default();
        change(&mut request);
        request
    };
    let mother_in = mother_pseudonym.clone();
    let cases: Vec<(&str, proto::AuditSearchRequest, Filter)> = vec![
        (
            "time range, start inclusive, end exclusive",
            search(&|r| {
                r.from_unix_ms = Some(T0 + 2 * SECOND);
                r.until_unix_ms = Some(T0 + 5 * SECOND);
            }),
            Box::new(|e| (T0 + 2 * SECOND..T0 + 5 * SECOND).contains(&e.time_unix_ms)),
        ),
        (
            "from only",
            search(&|r| r.from_unix_ms = Some(T0 + 5 * SECOND)),
            Box::new(|e| e.time_unix_ms >= T0 + 5 * SECOND),
        ),
        (
            "actor",
            search(&|r| r.actor = Some("p.devries".into())),
            Box::new(|e| user(e) == "p.devries"),
        ),
        (
            "action",
            search(&|r| r.action = Some(AuditAction::SignalRegister as i32)),
            Box::new(|e| e.action == AuditAction::SignalRegister as i32),
        ),
        (
            "subject by BSN",
            search(&|r| r.subject_bsn = Some(mother.clone())),
            Box::new(move |e| e.subjects.contains(&mother_in)),
        ),
        (
            "purpose",
            search(&|r| r.purpose = Some(Purpose::AuditReview as i32)),
            Box::new(|e| e.purpose == Purpose::AuditReview as i32),
        ),
        (
            "outcome",
            search(&|r| r.outcome = Some(Outcome::Refused as i32)),
            Box::new(|e| e.outcome == Outcome::Refused as i32),
        ),
        (
            "actor and action together",
            search(&|r| {
                r.actor = Some(SIGNALER.into());
                r.action = Some(AuditAction::SignalRegister as i32);
            }),
            Box::new(|e| user(e) == SIGNALER && e.action == AuditAction::SignalRegister as i32),
        ),
    ];
    for (name, request, filter) in cases {
        let expected: Vec<u64> = baseline
            .iter()
            .filter(|e| filter(e))
            .map(|e| e.index)
            .collect();
        assert!(
            !expected.is_empty() && expected.len() < baseline.len(),
            "{name}: the filter must select some events but not all"
        );
        for page_size in [0, 2] {
            let found = search_all(
                &mut officer,
                proto::AuditSearchRequest {
                    page_size,
                    ..request.clone()
                },
            )
            .await;
            assert!(
                found.iter().all(&filter),
                "{name}: every event found matches"
            );
            let within: Vec<u64> = found
                .iter()
                .map(|e| e.index)
                .filter(|i| *i < signed.size)
                .collect();
            assert_eq!(within, expected, "{name}, pages of {page_size}");
            let indexes: Vec<u64> = found.iter().map(|e| e.index).collect();
            assert!(indexes.is_sorted(), "{name}: in log order");
        }
    }

    // The outcome filter found the one refusal, which names its field.
    let refusals = search_all(
        &mut officer,
        proto::AuditSearchRequest {
            outcome: Some(Outcome::Refused as i32),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(refusals.len(), 1);
    assert_eq!(
        refusals[0].reason,
        "invalid_argument: subject_bsn: fails the elfproef"
    );
    assert_eq!(refusals[0].time_unix_ms, T0 + 4 * SECOND);

    // A subject by BSN is the same search as by its pseudonym; the first search is itself an
    // event about that person, found by the second.
    let by_bsn = officer
        .search(proto::AuditSearchRequest {
            subject_bsn: Some(mother.clone()),
            ..Default::default()
        })
        .await
        .expect("a search by BSN")
        .into_inner();
    let by_pseudonym = officer
        .search(proto::AuditSearchRequest {
            subject_pseudonym: Some(mother_pseudonym.clone()),
            ..Default::default()
        })
        .await
        .expect("a search by pseudonym")
        .into_inner();
    assert_eq!(by_pseudonym.events.len(), by_bsn.events.len() + 1);
    assert_eq!(
        by_pseudonym.events[..by_bsn.events.len()],
        by_bsn.events[..]
    );
    let own = by_pseudonym
        .events
        .last()
        .expect("the first search's event");
    assert_eq!(own.action, AuditAction::AuditSearch as i32);
    assert_eq!(own.transaction_id, by_bsn.transaction_id);
    assert_eq!(user(own), OFFICER);
    assert_eq!(own.subjects, vec![mother_pseudonym.clone()]);
    assert_eq!(own.purpose, Purpose::AuditReview as i32);
    assert_eq!(own.object, format!("events:{}", by_bsn.events.len()));
    // The mother is named by both registrations that relate her, the list and these searches.
    let objects: BTreeSet<&str> = by_bsn.events.iter().map(|e| e.object.as_str()).collect();
    assert!(objects.contains(format!("signal:{}", first.id).as_str()));

    // Pages of three over a fixed time window: no duplicates, no gaps, tokens until the end.
    let window = proto::AuditSearchRequest {
        until_unix_ms: Some(until_now),
        page_size: 3,
        ..Default::default()
    };
    let mut request = window.clone();
    let mut pages = Vec::new();
    loop {
        let page = officer
            .search(request.clone())
            .await
            .expect("a page")
            .into_inner();
        assert!(page.events.len() <= 3);
        pages.push(page.events.iter().map(|e| e.index).collect::<Vec<_>>());
        if page.next_page_token.is_empty() {
            break;
        }
        request.page_token = page.next_page_token;
        assert!(pages.len() < 100, "the paging never ends");
    }
    let expected: Vec<u64> = baseline
        .iter()
        .filter(|e| e.time_unix_ms < until_now)
        .map(|e| e.index)
        .collect();
    assert_eq!(pages.concat(), expected);
    assert!(pages.len() >= 3, "several pages: {pages:?}");
}

#[tokio::test]
async fn checkpoints_and_proofs_verify_with_the_pinned_key_alone() {
    let test = start_node(&school()).await;
    let key = test.node.audit_key().clone();
    let mut signals = test.signals(SIGNALER);
    let mut officer = test.audit(OFFICER);
    for i in 0..5 {
        register_ok(&mut signals, register(&bsn(10 + i))).await;
    }

    // A C2SP signed note that opens with the node's key, and with no other.
    let (response, first) = checkpoint_now(&test).await;
    assert_eq!(response.verifier_key, test.node.verifier_key());
    assert_eq!(response.tree_size, first.size);
    assert_eq!(response.root_hash, first.root.to_vec());
    assert_eq!(first.origin, key.name());
    assert!(first.size >= 6, "the start and five registrations");
    use base64::Engine;
    let root_b64 = base64::engine::general_purpose::STANDARD.encode(first.root);
    assert!(
        response.signed_note.starts_with(&format!(
            "{}\n{}\n{root_b64}\n\n\u{2014} {} ",
            key.name(),
            first.size,
            key.name()
        )),
        "{}",
        response.signed_note
    );
    let stranger = NoteSigner::from_pkcs8(key.name(), &kring::audit::note::generate_pkcs8())
        .expect("a key")
        .verifier();
    assert!(checkpoint::open(&stranger, &response.signed_note).is_err());
    let forged = response.signed_note.replacen(
        &format!("\n{}\n", first.size),
        &format!("\n{}\n", first.size + 1),
        1,
    );
    assert!(checkpoint::open(&key, &forged).is_err());

    // Inclusion proofs of several events against the checkpoint's root.
    for index in [0, 1, first.size / 2, first.size - 1] {
        let proof = officer
            .inclusion_proof(proto::InclusionProofRequest {
                index,
                tree_size: first.size,
            })
            .await
            .expect("an inclusion proof")
            .into_inner();
        assert_eq!(proof.tree_size, first.size);
        assert_eq!(proof.signed_note, response.signed_note);
        let event = proof.event.expect("the event");
        assert_eq!(event.index, index);
        let decoded = kring::audit::event::decode(&event.canonical).expect("canonical JSON");
        assert_eq!(decoded.index, index);
        let path = hashes(&proof.proof);
        let leaf = leaf_hash(&event.canonical);
        verify_inclusion(&leaf, index, first.size, &path, &first.root)
            .unwrap_or_else(|e| panic!("event {index}: {e}"));
        // The same proof does not prove another leaf, another place or another root.
        let mut changed = event.canonical.clone();
        changed.push(b' ');
        assert!(
            verify_inclusion(&leaf_hash(&changed), index, first.size, &path, &first.root).is_err()
        );
        assert!(
            verify_inclusion(
                &leaf,
                (index + 1) % first.size,
                first.size,
                &path,
                &first.root
            )
            .is_err()
        );
        assert!(verify_inclusion(&leaf, index, first.size, &path, &[0; 32]).is_err());
    }
    // 0 means the latest checkpoint; the client helper agrees.
    let proven = prove_event(&mut officer, &key, 1).await.expect("proven");
    assert_eq!(proven.event.index, 1);

    // More work, a second checkpoint, and a consistency proof between the two.
    for i in 0..7 {
        register_ok(&mut signals, register(&bsn(20 + i))).await;
    }
    let (second_response, second) = checkpoint_now(&test).await;
    assert!(second.size > first.size);
    let consistency = officer
        .consistency_proof(proto::ConsistencyProofRequest {
            old_size: first.size,
            new_size: second.size,
        })
        .await
        .expect("a consistency proof")
        .into_inner();
    assert_eq!(
        (consistency.old_size, consistency.new_size),
        (first.size, second.size)
    );
    assert_eq!(consistency.old_signed_note, response.signed_note);
    assert_eq!(consistency.new_signed_note, second_response.signed_note);
    let path = hashes(&consistency.proof);
    verify_consistency(first.size, &first.root, second.size, &second.root, &path)
        .expect("the second checkpoint extends the first");
    assert!(verify_consistency(first.size, &[7; 32], second.size, &second.root, &path).is_err());
    assert!(verify_consistency(first.size, &first.root, second.size, &first.root, &path).is_err());
    let (latest, _) = prove_extends(&mut officer, &key, &first)
        .await
        .expect("the latest checkpoint extends the first");
    assert!(latest.size >= second.size);

    // The node's own verification of its log.
    let verified = officer
        .verify(proto::VerifyRequest {})
        .await
        .expect("a verification")
        .into_inner();
    assert!(verified.ok, "{}", verified.problem);
    assert!(verified.problem.is_empty());
    assert!(verified.events_checked >= second.size);
    assert!(verified.checkpoints_checked >= 2);
    assert_eq!(verified.root_hash.len(), 32);

    // Export streams exactly the bytes that were hashed: their root is the signed root.
    let exported = export(&mut officer, 0, 0).await;
    let size = exported.len() as u64;
    assert!(size >= second.size);
    let mut frontier = Frontier::default();
    for (i, event) in exported.iter().enumerate() {
        assert_eq!(event.index, i as u64, "contiguous from 0");
        assert_eq!(
            kring::audit::event::decode(&event.canonical)
                .expect("canonical JSON")
                .index,
            event.index
        );
        frontier.push(leaf_hash(&event.canonical), |_, _| {});
        if frontier.size() == first.size {
            assert_eq!(frontier.root(), first.root, "the first checkpoint's root");
        }
        if frontier.size() == second.size {
            assert_eq!(frontier.root(), second.root, "the second checkpoint's root");
        }
    }
    // A checkpoint after the export covers it: the exported bytes are a prefix of its tree.
    let (_, third) = checkpoint_now(&test).await;
    let covered = export(&mut officer, 0, third.size).await;
    assert_eq!(covered[..exported.len()], exported[..]);
    let mut frontier = Frontier::default();
    for event in &covered {
        frontier.push(leaf_hash(&event.canonical), |_, _| {});
    }
    assert_eq!(frontier.size(), third.size);
    assert_eq!(frontier.root(), third.root, "the third checkpoint's root");
    let part = export(&mut officer, 2, 5).await;
    assert_eq!(part, exported[2..5]);

    // verify_remote: the whole log, every checkpoint, and the two checkpoints kept before.
    let pinned = Verifier::new(Some(key.clone()))
        .expect_origin(key.name())
        .trust(first.clone())
        .trust(second.clone());
    let report = verify_remote(&mut officer, &pinned)
        .await
        .expect("the log downloads");
    assert!(report.ok(), "{:?}", report.problem);
    assert!(report.signatures_checked);
    assert!(report.events >= size);
    assert!(report.checkpoints >= 3);
    // The same download fails against a forged memory of the past, and another key.
    let rewritten = SignedCheckpoint {
        root: [9; 32],
        ..first.clone()
    };
    let report = verify_remote(
        &mut officer,
        &Verifier::new(Some(key.clone())).trust(rewritten),
    )
    .await
    .expect("the log downloads");
    assert_eq!(
        report.problem,
        Some(Break::TrustedCheckpoint { size: first.size })
    );
    let report = verify_remote(&mut officer, &Verifier::new(Some(stranger)))
        .await
        .expect("the log downloads");
    assert!(matches!(
        report.problem,
        Some(Break::CheckpointUnreadable { .. })
    ));
}

#[tokio::test]
async fn the_audit_api_is_audited() {
    let test = start_node(&school()).await;
    let mut officer = test.audit(OFFICER);
    register_ok(&mut test.signals(SIGNALER), register(&bsn(30))).await;

    let searched = officer
        .search(proto::AuditSearchRequest::default())
        .await
        .expect("a search")
        .into_inner();
    let (checkpointed, signed) = checkpoint_now(&test).await;
    let proof = officer
        .inclusion_proof(proto::InclusionProofRequest {
            index: 1,
            tree_size: signed.size,
        })
        .await
        .expect("a proof")
        .into_inner();
    let proven_subjects = proof.event.expect("the event").subjects;
    let consistency = officer
        .consistency_proof(proto::ConsistencyProofRequest {
            old_size: 1,
            new_size: signed.size,
        })
        .await
        .expect("a consistency proof")
        .into_inner();
    let verified = officer
        .verify(proto::VerifyRequest {})
        .await
        .expect("a verification")
        .into_inner();
    let exported = officer
        .export(proto::ExportRequest {
            from_index: 0,
            until_index: signed.size,
        })
        .await
        .expect("an export");
    let export_transaction = common::transaction_of(exported.metadata());
    drop(exported);

    let events = search_all(
        &mut officer,
        proto::AuditSearchRequest {
            actor: Some(OFFICER.into()),
            ..Default::default()
        },
    )
    .await;
    let find = |transaction: &str, action: AuditAction| {
        let found: Vec<&proto::AuditEvent> = events
            .iter()
            .filter(|e| e.transaction_id == transaction)
            .collect();
        assert_eq!(found.len(), 1, "one event for {action:?}");
        let event = found[0];
        assert_eq!(event.action, action as i32);
        assert_eq!(event.outcome, Outcome::Success as i32);
        assert_eq!(event.purpose, Purpose::AuditReview as i32);
        assert_eq!(
            event.actor.as_ref().expect("an actor").role,
            proto::Role::PrivacyOfficer as i32
        );
        event.clone()
    };
    let search = find(&searched.transaction_id, AuditAction::AuditSearch);
    assert_eq!(search.object, format!("events:{}", searched.events.len()));
    let checkpoint = find(&checkpointed.transaction_id, AuditAction::AuditCheckpoint);
    assert_eq!(checkpoint.object, "checkpoint:latest");
    // The checkpoint covers its own audit event: it is recorded before the answer.
    assert!(checkpoint.index < signed.size);
    let inclusion = find(&proof.transaction_id, AuditAction::AuditProof);
    assert_eq!(inclusion.object, "event:1");
    assert_eq!(inclusion.subjects, proven_subjects);
    assert!(
        !inclusion.subjects.is_empty(),
        "event 1 is the registration"
    );
    let consistent = find(&consistency.transaction_id, AuditAction::AuditProof);
    assert_eq!(consistent.object, format!("consistency:1..{}", signed.size));
    let verification = find(&verified.transaction_id, AuditAction::AuditVerify);
    assert_eq!(verification.reason, "verified");
    let export = find(&export_transaction, AuditAction::AuditExport);
    assert_eq!(export.object, format!("events:0..{}", signed.size));
}

#[tokio::test]
async fn a_callers_transaction_id_is_carried_into_the_log() {
    let test = start_node(&school()).await;
    let mut signals = test.signals(SIGNALER);
    let mut officer = test.audit(OFFICER);
    let transaction = uuid::Uuid::now_v7().to_string();
    let mut request = tonic::Request::new(register(&bsn(40)));
    request.metadata_mut().insert(
        kring::api::TRANSACTION_HEADER,
        transaction.parse().expect("an ASCII header"),
    );
    let response = signals.register(request).await.expect("a registration");
    assert_eq!(common::transaction_of(response.metadata()), transaction);
    assert_eq!(response.into_inner().transaction_id, transaction);

    // A refusal in the same exchange carries it too.
    let mut refused = tonic::Request::new(register("123456789"));
    refused.metadata_mut().insert(
        kring::api::TRANSACTION_HEADER,
        transaction.parse().expect("an ASCII header"),
    );
    let status = signals.register(refused).await.expect_err("a refusal");
    assert_eq!(common::transaction_of(status.metadata()), transaction);

    // Something that is not a transaction id is replaced, not trusted.
    let mut garbage = tonic::Request::new(register(&bsn(41)));
    garbage.metadata_mut().insert(
        kring::api::TRANSACTION_HEADER,
        "not-a-uuid".parse().expect("an ASCII header"),
    );
    let response = signals.register(garbage).await.expect("a registration");
    let replaced = common::transaction_of(response.metadata());
    assert_ne!(replaced, "not-a-uuid");
    assert!(uuid::Uuid::try_parse(&replaced).is_ok());

    let events: Vec<proto::AuditEvent> =
        search_all(&mut officer, proto::AuditSearchRequest::default())
            .await
            .into_iter()
            .filter(|e| e.transaction_id == transaction)
            .collect();
    let outcomes: Vec<i32> = events.iter().map(|e| e.outcome).collect();
    assert_eq!(
        outcomes,
        vec![Outcome::Success as i32, Outcome::Refused as i32]
    );
    assert!(
        events
            .iter()
            .all(|e| e.action == AuditAction::SignalRegister as i32)
    );
}
