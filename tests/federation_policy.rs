//! The purpose policy of the signed directory, enforced where it is decided: at the requesting
//! node before anything leaves it, at the index for lookups, and at every source for
//! disclosures, each independently. Every denial is PERMISSION_DENIED naming the rule and is
//! on record at the node that decided it.

mod common_federation;

use std::sync::Arc;

use common_federation::*;
use kring::api::proto;
use kring::demo::demo_members;
use kring::devnet::{DevMember, RunningFederation};
use kring::domain::{Bsn, Pseudonym, Purpose, Role};
use kring::pseudonym::{OprfPseudonymiser, Pseudonymiser};
use proto::{AuditAction, Relation};
use tonic::Code;

/// The demo's members, with a Veilig Thuis employee who may only register signals.
fn members() -> Vec<DevMember> {
    let mut members = demo_members();
    add_principal(
        &mut members,
        "veilig-thuis",
        "v.signaler",
        &[Role::Signaler],
    );
    members
}

/// The school on the child (naming the mother) and the GGD on the mother.
async fn register_family(federation: &RunningFederation) -> (proto::Signal, proto::Signal) {
    let mut school = client(federation, SCHOOL_AF).await;
    let mut ggd = client(federation, GGD_SIGNALER).await;
    let school_signal = register_ok(&mut school, worry(CHILD, &[(MOTHER, Relation::Parent)])).await;
    let ggd_signal = register_ok(
        &mut ggd,
        register(
            MOTHER,
            &[],
            proto::Category::Psychological,
            proto::Severity::Zorg,
        ),
    )
    .await;
    matches_until(&school, "the index holds both pointers", |m| m.len() == 1).await;
    (school_signal, ggd_signal)
}

fn ask(purpose: proto::Purpose, bsn: &str, household: bool) -> proto::LinkedSignalsRequest {
    proto::LinkedSignalsRequest {
        purpose: purpose as i32,
        person_bsn: bsn.into(),
        household,
    }
}

/// The federation pseudonym of a BSN, computed as Veilig Thuis's node computes it: blinded
/// there, evaluated by the pseudonym service over mutual TLS.
async fn federation_pseudonym(federation: &RunningFederation, bsn: &str) -> Pseudonym {
    let vt = federation
        .node("veilig-thuis")
        .federation()
        .unwrap()
        .clone();
    let peers = Arc::new(kring::api::peer_client::GrpcPeers::new(vt.clone()));
    OprfPseudonymiser::new(vt, peers)
        .pseudonymise(vec![Bsn::parse(bsn).unwrap()])
        .await
        .expect("the pseudonym service answers")[0]
}

fn no_pointer_lookup_in(events: &[proto::AuditEvent], transaction: &str) -> bool {
    !events.iter().any(|e| e.transaction_id == transaction)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purpose_the_organisation_type_may_not_use_is_refused_before_anything_leaves_the_node() {
    let (_dir, federation) = start(&members()).await;
    register_family(&federation).await;
    let mut school = client(&federation, SCHOOL_AF).await;
    let status = refused(
        school
            .cases
            .linked_signals(ask(proto::Purpose::VtTriage, CHILD, true))
            .await,
        Code::PermissionDenied,
        "policy: purpose vt_triage: organisation type school may not ask",
    );
    let transaction = transaction_of(status.metadata());
    let event = audited_refusal(
        &federation,
        "school",
        &transaction,
        AuditAction::LinkedSignals,
        "permission_denied",
        "purpose vt_triage: organisation type school may not ask",
    )
    .await;
    assert_eq!(event.actor.unwrap().user, "m.jansen");
    // Nothing went to the index under that transaction.
    let lookups = events(&federation, "index", AuditAction::PointerLookup).await;
    assert!(no_pointer_lookup_in(&lookups, &transaction));
    // The same for an organisation type the MDA++ purpose leaves out.
    refused(
        school
            .cases
            .linked_signals(ask(proto::Purpose::MdaCaseConference, CHILD, true))
            .await,
        Code::PermissionDenied,
        "policy: purpose mda_case_conference: organisation type school may not ask",
    );
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn household_expansion_is_refused_where_the_purpose_forbids_it_at_the_requester_and_the_index()
 {
    // A policy whose triage stays with the person asked about.
    let (_dir, federation) = start_with_directory(&members(), |content| {
        let triage = content
            .policy
            .purposes
            .iter_mut()
            .find(|r| r.purpose == Purpose::VtTriage)
            .unwrap();
        triage.household = false;
    })
    .await;
    let (school_signal, _) = register_family(&federation).await;
    let mut vt = client(&federation, VT_ANALYST).await;
    let status = refused(
        vt.cases
            .linked_signals(ask(proto::Purpose::VtTriage, CHILD, true))
            .await,
        Code::PermissionDenied,
        "policy: purpose vt_triage: household expansion is not allowed",
    );
    let transaction = transaction_of(status.metadata());
    audited_refusal(
        &federation,
        "veilig-thuis",
        &transaction,
        AuditAction::LinkedSignals,
        "permission_denied",
        "purpose vt_triage: household expansion is not allowed",
    )
    .await;
    assert!(no_pointer_lookup_in(
        &events(&federation, "index", AuditAction::PointerLookup).await,
        &transaction
    ));
    // The person alone is allowed.
    let own = vt
        .cases
        .linked_signals(ask(proto::Purpose::VtTriage, CHILD, false))
        .await
        .expect("triage of the person alone")
        .into_inner();
    assert_eq!(own.persons.len(), 1);
    assert_eq!(
        own.persons[0].organisations[0].signals[0].signal_ref,
        school_signal.id
    );

    // The index decides the same on its own, for a caller that skips its node's check.
    let transaction = new_transaction();
    let channel = peer_channel(&federation, "index", &identity(&federation, "veilig-thuis")).await;
    let status = IndexClient::new(channel)
        .lookup(proto::LookupRequest {
            context: Some(context(
                &transaction,
                proto::Purpose::VtTriage,
                "l.smit",
                proto::Role::Analyst,
            )),
            person: federation_pseudonym(&federation, CHILD).await.0.to_vec(),
            household: true,
        })
        .await
        .expect_err("the index refuses the household");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "policy: purpose vt_triage: household expansion is not allowed"
    );
    let event = audited_refusal(
        &federation,
        "index",
        &transaction,
        AuditAction::PointerLookup,
        "permission_denied",
        "purpose vt_triage: household expansion is not allowed",
    )
    .await;
    assert_eq!(event.counterpart_oin, VEILIG_THUIS);
    assert_eq!(event.on_behalf_of.unwrap().user, "l.smit");
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_roles_and_organisation_types_the_policy_names_may_break_the_glass() {
    let (_dir, federation) = start(&members()).await;
    register_family(&federation).await;
    let emergency = |reason: proto::BreakGlassReason| proto::BreakGlassRequest {
        person_bsn: MOTHER.into(),
        reason: reason as i32,
    };

    // A Veilig Thuis employee who only registers signals: the node's own role table.
    let mut vt_signaler = client(&federation, ("veilig-thuis", "v.signaler")).await;
    refused_and_audited(
        &federation,
        "veilig-thuis",
        vt_signaler
            .cases
            .break_glass(emergency(proto::BreakGlassReason::AcuteDangerAdult))
            .await,
        Code::PermissionDenied,
        AuditAction::BreakGlass,
        "rule cases.break_glass: requires the role analyst or coordinator",
    )
    .await;

    // A school's coordinator: the policy's organisation types.
    let mut school = client(&federation, SCHOOL_AF).await;
    let status = refused(
        school
            .cases
            .break_glass(emergency(proto::BreakGlassReason::AcuteDangerChild))
            .await,
        Code::PermissionDenied,
        "policy: purpose emergency: organisation type school may not ask",
    );
    audited_refusal(
        &federation,
        "school",
        &transaction_of(status.metadata()),
        AuditAction::BreakGlass,
        "permission_denied",
        "purpose emergency: organisation type school may not ask",
    )
    .await;

    // Veilig Thuis's analyst without a reason: the reason is mandatory.
    let mut vt = client(&federation, VT_ANALYST).await;
    refused(
        vt.cases
            .break_glass(emergency(proto::BreakGlassReason::Unspecified))
            .await,
        Code::InvalidArgument,
        "reason",
    );
    // None of these reached a source: no organisation has anything to review.
    for node in ["school", "ggd"] {
        let queue = officer(&federation, node)
            .await
            .audit
            .break_glass_queue(proto::BreakGlassQueueRequest {
                include_reviewed: true,
            })
            .await
            .unwrap()
            .into_inner()
            .items;
        assert!(queue.is_empty(), "{node}");
    }

    // With a reason, the analyst gets through.
    let map = vt
        .cases
        .break_glass(emergency(proto::BreakGlassReason::AcuteDangerAdult))
        .await
        .expect("the analyst breaks the glass")
        .into_inner();
    assert!(map.break_glass);
    assert_eq!(
        map.persons
            .iter()
            .map(|p| p.organisations.len())
            .sum::<usize>(),
        2
    );
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_enforces_the_policy_for_a_legitimate_member_that_asks_directly() {
    let (_dir, federation) = start(&members()).await;
    register_family(&federation).await;
    let person = federation_pseudonym(&federation, CHILD).await.0.to_vec();
    let mut index = IndexClient::new(
        peer_channel(&federation, "index", &identity(&federation, "school")).await,
    );
    let lookup = |transaction: &str, purpose, role, household| proto::LookupRequest {
        context: Some(context(transaction, purpose, "m.jansen", role)),
        person: person.clone(),
        household,
    };

    // The school's own certificate, a purpose its type may not use.
    let transaction = new_transaction();
    let status = index
        .lookup(lookup(
            &transaction,
            proto::Purpose::VtTriage,
            proto::Role::Analyst,
            true,
        ))
        .await
        .expect_err("the index refuses the school's triage");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "policy: purpose vt_triage: organisation type school may not ask"
    );
    let event = audited_refusal(
        &federation,
        "index",
        &transaction,
        AuditAction::PointerLookup,
        "permission_denied",
        "purpose vt_triage: organisation type school may not ask",
    )
    .await;
    assert_eq!(event.counterpart_oin, SCHOOL);
    assert_eq!(event.purpose, proto::Purpose::VtTriage as i32);

    // A purpose it may use, but without household expansion in the default policy.
    let transaction = new_transaction();
    let status = index
        .lookup(lookup(
            &transaction,
            proto::Purpose::Registration,
            proto::Role::Signaler,
            true,
        ))
        .await
        .expect_err("registration does not reach the household");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "policy: purpose registration: household expansion is not allowed"
    );
    audited_refusal(
        &federation,
        "index",
        &transaction,
        AuditAction::PointerLookup,
        "permission_denied",
        "purpose registration: household expansion is not allowed",
    )
    .await;

    // The same purpose for the person alone is answered: the refusals above were the policy's.
    let answer = index
        .lookup(lookup(
            &new_transaction(),
            proto::Purpose::Registration,
            proto::Role::Signaler,
            false,
        ))
        .await
        .expect("registration for the person alone")
        .into_inner();
    assert_eq!(answer.pointers.len(), 1);
    assert_eq!(answer.pointers[0].oin, SCHOOL);
    assert!(answer.household.is_empty());
    federation.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_enforces_the_policy_itself_and_discloses_nothing_for_the_wrong_subject() {
    let (_dir, federation) = start(&members()).await;
    let (_, ggd_signal) = register_family(&federation).await;
    let mother = federation_pseudonym(&federation, MOTHER).await;
    let fetch = |transaction: &str, subject: &[u8]| proto::FetchSignalsRequest {
        context: Some(context(
            transaction,
            proto::Purpose::VtTriage,
            "l.smit",
            proto::Role::Analyst,
        )),
        signals: vec![proto::SignalAbout {
            signal_ref: ggd_signal.id.clone(),
            subject: subject.to_vec(),
        }],
    };

    // The school asks the GGD directly for triage, with the right reference and subject.
    let transaction = new_transaction();
    let mut as_school = FederationClient::new(
        peer_channel(&federation, "ggd", &identity(&federation, "school")).await,
    );
    let status = as_school
        .fetch_signals(fetch(&transaction, &mother.0))
        .await
        .expect_err("the GGD refuses the school's triage");
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "policy: purpose vt_triage: organisation type school may not ask"
    );
    let event = audited_refusal(
        &federation,
        "ggd",
        &transaction,
        AuditAction::SignalsFetch,
        "permission_denied",
        "purpose vt_triage: organisation type school may not ask",
    )
    .await;
    assert_eq!(event.counterpart_oin, SCHOOL);
    assert_eq!(event.on_behalf_of.unwrap().organisation_oin, SCHOOL);

    // Veilig Thuis may ask, but a reference with another person's pseudonym shows nothing.
    let mut as_vt = FederationClient::new(
        peer_channel(&federation, "ggd", &identity(&federation, "veilig-thuis")).await,
    );
    let transaction = new_transaction();
    let wrong = federation_pseudonym(&federation, CHILD).await;
    let shown = as_vt
        .fetch_signals(fetch(&transaction, &wrong.0))
        .await
        .expect("the request is allowed")
        .into_inner()
        .signals;
    assert!(
        shown.is_empty(),
        "nothing is disclosed for the wrong subject: {shown:?}"
    );
    let recorded = events_of(&federation, "ggd", &transaction).await;
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].object, "signals:0");
    assert_eq!(
        recorded[0].reason,
        "1 references did not match their subject"
    );

    // The right subject: the signal, with the triage fields.
    let shown = as_vt
        .fetch_signals(fetch(&new_transaction(), &mother.0))
        .await
        .expect("the GGD answers Veilig Thuis")
        .into_inner()
        .signals;
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].signal_ref, ggd_signal.id);
    assert_eq!(
        shown[0].category,
        Some(proto::Category::Psychological as i32)
    );
    assert_eq!(shown[0].severity, Some(proto::Severity::Zorg as i32));
    federation.shutdown().await.unwrap();
}
